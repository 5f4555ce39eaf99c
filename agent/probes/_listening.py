"""Linux backend of the `listening` inventory: TCP sockets in LISTEN and bound, unconnected
UDP sockets, with their owning process when visible.

psutil first (it maps socket inodes to pids); when psutil is denied, the kernel tables
`<proc_root>/net/{tcp,tcp6,udp,udp6}` are parsed directly, without owners (pid -1).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from warden.v1 import records_pb2

__all__ = ["ListeningResult", "collect_listening", "parse_proc_net"]

_TCP_LISTEN = "0A"
_TCP_CLOSE = "07"  # an unconnected UDP socket shows this state
_MAX_PROC_NET_BYTES = 32 * 1024 * 1024  # ~200k sockets; beyond, the rest is left out


@dataclass
class ListeningResult:
    section: records_pb2.ListeningSection
    source: str  # "psutil" or "procfs"
    problem: str = ""  # why the fallback was used, reported once by the probe


@dataclass(frozen=True)
class _Sock:
    protocol: str
    address: str
    port: int
    pid: int  # -1 unknown


def collect_listening(
    proc_root: Path,
    *,
    udp_ephemeral: bool,
    connections: Callable[[], Iterable[Any]] | None = None,
) -> ListeningResult:
    problem = ""
    source = "psutil"
    try:
        socks = list(_from_psutil((connections or _inet_connections)()))
    except (psutil.AccessDenied, PermissionError) as e:
        problem = f"psutil.net_connections: permission denied ({e}); owners unknown"
        source = "procfs"
        socks = list(_from_procfs(proc_root))
    low, high = _ephemeral_range(proc_root) if not udp_ephemeral else (0, -1)

    # One entry per (protocol, address, port): prefork servers share one listening socket
    # across many pids; the lowest pid is usually the parent that opened it.
    best: dict[tuple[str, str, int], _Sock] = {}
    for s in socks:
        if s.protocol.startswith("udp") and low <= s.port <= high:
            continue  # a client's ephemeral UDP socket, not a service: it would churn
        key = (s.protocol, s.address, s.port)
        cur = best.get(key)
        if cur is None or (s.pid >= 0 and (cur.pid < 0 or s.pid < cur.pid)):
            best[key] = s

    section = records_pb2.ListeningSection()
    names: dict[int, tuple[str, str]] = {}
    for key in sorted(best, key=lambda k: (k[0], k[2], k[1])):
        s = best[key]
        process, user = _owner(s.pid, names) if s.pid >= 0 else ("", "")
        section.ports.append(
            records_pb2.ListeningPort(
                protocol=s.protocol, address=s.address, port=s.port, pid=s.pid, process=process, user=user
            )
        )
    return ListeningResult(section, source, problem)


def _inet_connections() -> list[Any]:
    return psutil.net_connections(kind="inet")


def _from_psutil(conns: Iterable[Any]) -> Iterable[_Sock]:
    for c in conns:
        if not c.laddr:
            continue
        v6 = c.family == socket.AF_INET6
        if c.type == socket.SOCK_STREAM:
            if c.status != psutil.CONN_LISTEN:
                continue
            proto = "tcp6" if v6 else "tcp"
        elif c.type == socket.SOCK_DGRAM:
            if c.raddr:  # connected: a client talking to one peer
                continue
            proto = "udp6" if v6 else "udp"
        else:
            continue
        yield _Sock(proto, _norm(c.laddr.ip), c.laddr.port, c.pid if c.pid is not None else -1)


def _from_procfs(proc_root: Path) -> Iterable[_Sock]:
    for proto in ("tcp", "tcp6", "udp", "udp6"):
        try:
            with open(proc_root / "net" / proto, "rb") as f:
                text = f.read(_MAX_PROC_NET_BYTES).decode("ascii", "replace")
        except OSError:
            continue
        for address, port in parse_proc_net(text, proto):
            yield _Sock(proto, address, port, -1)


def parse_proc_net(text: str, proto: str) -> list[tuple[str, int]]:
    """(address, port) of listening (TCP) or unconnected (UDP) sockets in a /proc/net table.
    Lines that do not parse (a truncated read, garbage) are skipped."""
    want = _TCP_LISTEN if proto.startswith("tcp") else _TCP_CLOSE
    out = []
    for line in text.splitlines()[1:]:
        f = line.split()
        if len(f) < 4 or f[3] != want:
            continue
        try:
            addr, port = _hex_endpoint(f[1])
            raddr, rport = _hex_endpoint(f[2])
        except ValueError:
            continue
        if proto.startswith("udp") and rport != 0:
            continue
        out.append((addr, port))
    return out


def _hex_endpoint(text: str) -> tuple[str, int]:
    """'0100007F:0035' -> ('127.0.0.1', 53). The address is in host byte order per 32-bit word
    (little-endian on the machines we run on)."""
    hexaddr, sep, hexport = text.partition(":")
    if not sep or len(hexaddr) not in (8, 32):
        raise ValueError(text)
    raw = bytes.fromhex(hexaddr)
    raw = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    ip = ipaddress.ip_address(raw)
    return _norm(str(ip)), int(hexport, 16)


def _norm(ip: str) -> str:
    # "::ffff:127.0.0.1" is how a dual-stack socket shows an IPv4 peer; keep the text as is
    # otherwise, and drop a zone ("fe80::1%eth0") that psutil may add.
    return ip.split("%", 1)[0]


def _ephemeral_range(proc_root: Path) -> tuple[int, int]:
    try:
        text = (proc_root / "sys/net/ipv4/ip_local_port_range").read_text()
        low, high = (int(x) for x in text.split()[:2])
        return low, high
    except (OSError, ValueError):
        return 32768, 60999  # the kernel's default


def _owner(pid: int, cache: dict[int, tuple[str, str]]) -> tuple[str, str]:
    if pid not in cache:
        try:
            p = psutil.Process(pid)
            with p.oneshot():
                cache[pid] = (p.name(), p.username())
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, KeyError, OSError):
            cache[pid] = ("", "")
    return cache[pid]
