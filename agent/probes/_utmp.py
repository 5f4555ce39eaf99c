"""Linux utmp/wtmp/btmp records, decoded directly with `struct` (no utmp(3) calls: the files
of a host mounted elsewhere, or of a fixture, are read the same way).

glibc's `struct utmp` is 384 bytes on x86_64, aarch64 and the other 64-bit Linux ABIs (ut_tv
is two int32 there, for compatibility with 32-bit programs), in the host's byte order:

    short ut_type; (2 bytes padding) pid_t ut_pid; char ut_line[32]; char ut_id[4];
    char ut_user[32]; char ut_host[256]; struct { short termination, exit; } ut_exit;
    int32 ut_session; struct { int32 tv_sec, tv_usec; } ut_tv; int32 ut_addr_v6[4];
    char __glibc_reserved[20];

wtmp is the history of logins (USER_PROCESS), logouts (DEAD_PROCESS), boots (BOOT_TIME) and
shutdowns (RUN_LVL named "shutdown"); btmp holds failed logins (written by sshd and login(1)).
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass
from datetime import UTC, datetime

from warden.agent import records
from warden.v1 import records_pb2

__all__ = ["RECORD_SIZE", "Utmp", "decode", "to_event"]

_STRUCT = struct.Struct("=h2xi32s4s32s256shhiii16s20s")
RECORD_SIZE = _STRUCT.size
assert RECORD_SIZE == 384

EMPTY, RUN_LVL, BOOT_TIME, NEW_TIME, OLD_TIME = 0, 1, 2, 3, 4
INIT_PROCESS, LOGIN_PROCESS, USER_PROCESS, DEAD_PROCESS, ACCOUNTING = 5, 6, 7, 8, 9
TYPE_NAMES = {
    EMPTY: "EMPTY", RUN_LVL: "RUN_LVL", BOOT_TIME: "BOOT_TIME", NEW_TIME: "NEW_TIME",
    OLD_TIME: "OLD_TIME", INIT_PROCESS: "INIT_PROCESS", LOGIN_PROCESS: "LOGIN_PROCESS",
    USER_PROCESS: "USER_PROCESS", DEAD_PROCESS: "DEAD_PROCESS", ACCOUNTING: "ACCOUNTING",
}


@dataclass(frozen=True)
class Utmp:
    type: int
    pid: int
    line: str
    id: str
    user: str
    host: str
    exit_termination: int
    exit_status: int
    session: int
    time_ns: int
    addr: str  # "" when the record carries no address

    @property
    def type_name(self) -> str:
        return TYPE_NAMES.get(self.type, str(self.type))


def _text(b: bytes) -> str:
    return b.split(b"\0", 1)[0].decode("utf-8", "replace")


def _addr(b: bytes) -> str:
    if not any(b):
        return ""
    # IPv4 in the first of the four words, the others zero; otherwise a full IPv6 address.
    if not any(b[4:]):
        return str(ipaddress.IPv4Address(b[:4]))
    return str(ipaddress.IPv6Address(b))


def decode(buf: bytes) -> Utmp:
    """One RECORD_SIZE-byte record."""
    (ut_type, pid, line, ut_id, user, host, term, exit_, session, sec, usec, addr, _) = _STRUCT.unpack(buf)
    return Utmp(ut_type, pid, _text(line), _text(ut_id), _text(user), _text(host), term, exit_,
                session, sec * 1_000_000_000 + max(0, usec) * 1000, _addr(addr))


def _service(u: Utmp) -> str:
    # sshd records its sessions on pts/N with the client's host ("ssh:notty" in btmp); a
    # local console or serial login has no remote host.
    if u.line.startswith("ssh:") or (u.host and not u.host.startswith(":") and u.line.startswith("pts/")):
        return "sshd"
    return "login"


def _raw(u: Utmp) -> str:
    when = datetime.fromtimestamp(u.time_ns / 1e9, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return (f"{u.type_name} pid={u.pid} line={u.line} id={u.id} user={u.user} host={u.host} "
            f"addr={u.addr or '-'} time={when}")


def _remote(u: Utmp, fields: dict[str, records.FieldValue]) -> None:
    # Same field names as the auth.log parsers (warden.agent.logparse.auth): src_ip when an
    # address is known, src_host for a name (sshd with UseDNS, or an X display).
    host = u.host
    if u.addr:
        fields["src_ip"] = u.addr
        if host and host != u.addr:
            fields["src_host"] = host
    elif host:
        try:
            fields["src_ip"] = str(ipaddress.ip_address(host))
        except ValueError:
            fields["src_host"] = host


def to_event(u: Utmp, source: str, failed: bool, now_ns: int | None = None) -> records_pb2.Record | None:
    """The event a record means, or None for bookkeeping records (getty's LOGIN_PROCESS in
    wtmp, runlevel changes, clock changes, empty slots).

    `failed`: the record comes from btmp, where every record is a failed login attempt.
    Kinds and fields follow the auth.log parsers: auth.login (result, user, service, tty,
    src_ip | src_host; success notice, failure warning), auth.session_closed, system.boot,
    system.shutdown.
    """
    t = u.time_ns if u.time_ns > 0 else (now_ns or records.now_ns())
    fields: dict[str, records.FieldValue]
    if failed or u.type == USER_PROCESS:
        if u.type == EMPTY:
            return None
        fields = {"result": "failure" if failed else "success", "user": u.user, "service": _service(u),
                  "tty": u.line, "pid": u.pid}
        if not failed:
            fields["session"] = u.session
        _remote(u, fields)
        return records.event("auth.login", "warning" if failed else "notice", fields, raw=_raw(u),
                             source=source, time_ns=t)
    if u.type == DEAD_PROCESS:
        return records.event("auth.session_closed", "info", {"tty": u.line, "pid": u.pid},
                             raw=_raw(u), source=source, time_ns=t)
    if u.type == BOOT_TIME:
        return records.event("system.boot", "notice", {"kernel": u.host}, raw=_raw(u), source=source,
                             time_ns=t)
    if u.type == RUN_LVL and u.user == "shutdown":
        return records.event("system.shutdown", "notice", {"kernel": u.host}, raw=_raw(u),
                             source=source, time_ns=t)
    return None
