"""Linux backend of the `time_sync` inventory.

Asked in order, first answer wins: `timedatectl show` (systemd hosts), `chronyc tracking`
(chrony without systemd), then the kernel's own clock status (adjtimex(2), read-only), which
every NTP daemon keeps up to date and which needs no tool at all (containers, ntpd hosts).
The daemon's name comes from the process table.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import psutil

from warden.agent.probes._tools import ToolResult
from warden.v1 import records_pb2

__all__ = ["TimeSyncResult", "collect_time_sync", "parse_chronyc_tracking", "parse_timedatectl_show"]

Runner = Callable[[Sequence[str]], ToolResult]

# Process name (as the kernel truncates it to 15 characters) -> service name in the report.
_DAEMONS = {
    "chronyd": "chrony",
    "ntpd": "ntpd",
    "openntpd": "ntpd",
    "systemd-timesyn": "systemd-timesyncd",
    "systemd-timesyncd": "systemd-timesyncd",
}

_STA_UNSYNC = 0x0040
_TIME_ERROR = 5


@dataclass
class TimeSyncResult:
    section: records_pb2.TimeSyncSection
    source: str  # "timedatectl", "chronyc", "kernel" or "" (nothing answered)


def collect_time_sync(
    run: Runner,
    processes: Callable[[], Iterable[str]] | None = None,
    kernel: Callable[[], bool | None] | None = None,
) -> TimeSyncResult:
    names = set((processes or _process_names)())
    service = next((svc for proc, svc in _DAEMONS.items() if proc in names), "")

    res = run(["timedatectl", "show"])
    if res.ok:
        parsed = parse_timedatectl_show(res.stdout)
        if parsed is not None:
            synced, ntp = parsed
            section = records_pb2.TimeSyncSection(service=service, synchronized=synced, ntp_enabled=ntp)
            return TimeSyncResult(section, "timedatectl")

    res = run(["chronyc", "-n", "tracking"])
    if res.ok:
        synced_or_none = parse_chronyc_tracking(res.stdout)
        if synced_or_none is not None:
            return TimeSyncResult(
                records_pb2.TimeSyncSection(service="chrony", synchronized=synced_or_none, ntp_enabled=True),
                "chronyc",
            )

    synced = (kernel or kernel_synchronized)()
    if synced is None:
        return TimeSyncResult(records_pb2.TimeSyncSection(service=service, ntp_enabled=bool(service)), "")
    return TimeSyncResult(
        records_pb2.TimeSyncSection(service=service, synchronized=synced, ntp_enabled=bool(service)), "kernel"
    )


def parse_timedatectl_show(text: str) -> tuple[bool, bool] | None:
    """(NTPSynchronized, NTP) from `timedatectl show`; None if the output lacks them."""
    props = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            props[key.strip()] = value.strip()
    if "NTPSynchronized" not in props:
        return None
    return props["NTPSynchronized"] == "yes", props.get("NTP") == "yes"


def parse_chronyc_tracking(text: str) -> bool | None:
    """Whether chronyd is synchronised, from `chronyc tracking`; None if unparseable.

    "Leap status: Not synchronised" (or reference id 0) means it has no usable source yet;
    reference 7F7F0101 (127.127.1.1) is chrony's `local` mode: serving its own clock, not
    synchronised to anything.
    """
    fields = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip().lower()] = value.strip()
    leap = fields.get("leap status")
    if leap is None:
        return None
    ref = fields.get("reference id", "").split(" ", 1)[0]
    return leap.lower() != "not synchronised" and ref.upper() not in ("", "00000000", "7F7F0101")


def _process_names() -> list[str]:
    out = []
    for p in psutil.process_iter(["name"]):
        name = p.info.get("name")
        if name:
            out.append(name)
    return out


class _Timex(ctypes.Structure):
    # The leading fields of struct timex; the kernel writes ~200 bytes, hence the padding.
    _fields_ = [
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        ("_rest", ctypes.c_byte * 512),
    ]


def kernel_synchronized() -> bool | None:
    """The kernel clock's sync state, as adjtimex(2) with modes=0 (read only) reports it; the
    same rule as node_exporter's timex collector. None where the call is unavailable."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        tx = _Timex()
        state = libc.adjtimex(ctypes.byref(tx))
    except (OSError, AttributeError):
        return None
    if state < 0:
        return None
    return state != _TIME_ERROR and not tx.status & _STA_UNSYNC
