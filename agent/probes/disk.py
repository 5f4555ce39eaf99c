"""Probe `disk`: what per-mount usage alone does not tell about disks.

Per-mount used %, free bytes and inodes % are the system probe's `system_filesystem_*` and are
not repeated here. This probe adds:

- read-only remounts: a mount that was rw at the previous run (or before an agent restart:
  the last state is kept in `state_dir`) and is ro now; the kernel does that on filesystem
  errors (ext4 `errors=remount-ro`, XFS shutdown);
- days to full: a least-squares slope of used bytes over a sliding window, emitted only
  while the filesystem is growing;
- device health from `smartctl --json` when smartctl is installed (`_smartctl.py`);
- counts of kernel I/O and filesystem error lines per device. The probe does not read logs
  itself: the log probe hands it kernel lines through `DiskProbe.observe_kernel_line()`.

Mount enumeration and the hang-safe statvfs are the system probe's own helpers, reused.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from warden.agent import records
from warden.agent.probes import HostPaths, _smartctl, option, probe
from warden.agent.probes._smartctl import Reading, Runner, ScanDevice, Smartctl
from warden.agent.probes.system import SystemOptions, SystemProbe, _Mount
from warden.v1 import records_pb2

__all__ = ["DiskOptions", "DiskProbe", "KernelErrorCounter", "classify_kernel_line"]

log = logging.getLogger(__name__)

SOURCE = "probe:disk"
_SYSTEM = SystemOptions()  # the mount filters default to the system probe's

# Days-to-full keeps at most this many samples per mount, at least window/_MAX_SAMPLES apart,
# whatever the probe interval: memory and the state file stay bounded.
_MAX_SAMPLES = 512
_STATE_VERSION = 1
_STATE_FILE = "state.json"
_MAX_STATE_BYTES = 16 * 1024 * 1024
_MAX_MOUNTS = 1024
_MOUNT_STATE_TTL_SECONDS = 30 * 86400  # forget the rw/ro state of a mount unseen this long
_MAX_SMART_DEVICES = 256
_SMART_WORKERS = 4  # smartctl runs in parallel: one slow disk must not hold the others' turn
_MAX_ERROR_CHARS = 1000


@dataclass(frozen=True)
class DiskOptions:
    growth_window_seconds: float = option(
        6 * 3600.0, "Days to full: slope of used bytes over this much recent history (6 h).", gt=0
    )
    growth_min_span_seconds: float = option(
        1800.0, "Days to full: no estimate until the samples span this long (30 min).", gt=0
    )
    growth_min_samples: int = option(5, "Days to full: no estimate from fewer samples.", ge=2)
    kernel_error_events: bool = option(
        False,
        "Also one disk.io_error / disk.fs_error event per kernel error line fed in; off by default "
        "because the logs probe already ships those lines as kernel.* events (counters kept either way).",
    )
    smart: bool = option(True, "Read device health with smartctl when it is installed.")
    smartctl_path: str = option(
        "smartctl", "smartctl to run: a name looked up on PATH and in the sbin dirs, or an absolute path."
    )
    smartctl_devices: tuple[str, ...] = option(
        (), "Devices to read, e.g. [\"/dev/sda\"]; empty: every device `smartctl --scan-open` finds."
    )
    smartctl_timeout_seconds: float = option(
        20.0, "Longest one smartctl run may take before it is killed.", gt=0
    )
    smart_interval_seconds: float = option(300.0, "Read SMART data at most this often.", gt=0)
    inventory_interval_seconds: float = option(
        3600.0, "Resend the disk_health inventory this often even when unchanged.", gt=0
    )
    exclude_fstypes: tuple[str, ...] = option(
        _SYSTEM.exclude_fstypes, "Filesystem types not watched (pseudo filesystems never are)."
    )
    exclude_mounts: tuple[str, ...] = option(
        _SYSTEM.exclude_mounts, "Mount points not watched: shell-style patterns, where * also matches /."
    )
    statvfs_timeout_seconds: float = option(
        _SYSTEM.statvfs_timeout_seconds, "A mount whose statvfs takes longer (hung NFS) is skipped.", gt=0
    )

    def __post_init__(self) -> None:
        if self.growth_min_span_seconds >= self.growth_window_seconds:
            raise ValueError("growth_min_span_seconds must be less than growth_window_seconds")


# --- kernel error lines -------------------------------------------------------------------------

KIND_IO = "io"
KIND_FS = "fs"

# Only the first part of a line is looked at: bounded regex time on any input.
_MAX_LINE_CHARS = 4096
_DEV = r"(?P<dev>[^\s,()]+)"
# block/blk-core.c print_req_error()/blk_print_req_error(): "<caller>: <status> error, dev
# <disk>, sector N ..." (2.6 "end_request: I/O error, dev hda, sector N", 4.x "blk_update_request:",
# 5.x "print_req_error:", 6.x no prefix). Only the statuses that say something about the device
# or its path count; "operation not supported" (discard on a loop device), resource shortages
# and retries are not disk errors.
_BLK_STATUS = (
    r"I/O|critical medium|critical target|critical nexus|critical space allocation"
    r"|recoverable transport|protection|timeout|device offline"
)
_IO_PATTERNS = (
    re.compile(rf"(?:^|[\s:\]])(?:{_BLK_STATUS}) error, dev {_DEV}, sector"),
    # fs/buffer.c buffer_io_error(): "Buffer I/O error on dev sda1, logical block N, ..."
    # (2.6: "on device sda1").
    re.compile(rf"\bBuffer I/O error on dev(?:ice)? {_DEV}"),
)
_FS_PATTERNS = (
    # fs/ext4/super.c __ext4_error*(): "EXT4-fs error (device sda1): func:line: ..." (ext2/3 alike)
    re.compile(rf"\bEXT[234]-fs error \(device {_DEV}\)"),
    # ext4_msg(KERN_ERR, ...): "EXT4-fs (sda1): I/O error while writing superblock"; not the
    # daily "error count since last fsck" reminder nor "errors=remount-ro" mount options.
    re.compile(rf"\bEXT[234]-fs \({_DEV}\): .*?\bI/O error\b"),
    # fs/xfs/xfs_message.c: "XFS (dm-0): <message>"; the ones that mean damage or a shutdown.
    re.compile(
        rf"\bXFS \({_DEV}\): .*?(?:corrupt|I/O error|Internal error|force_shutdown|CRC error)",
        re.IGNORECASE,
    ),
    # fs/btrfs/messages.c: "BTRFS error (device sda1): ...", "BTRFS critical (device sda1 state EA): ..."
    re.compile(rf"\bBTRFS (?:error|critical) \(device {_DEV}"),
    re.compile(rf"\bBTRFS warning \(device {_DEV}[^)]*\): .*?(?:csum failed|checksum error|corrupt)"),
)

# Every pattern above contains one of these words: one cheap search rules out ordinary lines.
_HINT = re.compile(r"error|corrupt|csum|shutdown", re.IGNORECASE)


def classify_kernel_line(line: str) -> tuple[str, str] | None:
    """("io" | "fs", device) when `line` is a kernel I/O or filesystem error, else None.

    The device is as the kernel names it (a disk for block-layer errors, a partition or
    dm device for filesystem ones); "unknown" when the kernel printed "?".
    """
    text = line[:_MAX_LINE_CHARS]
    if not _HINT.search(text):
        return None  # the common case, cheaply
    for kind, patterns in ((KIND_IO, _IO_PATTERNS), (KIND_FS, _FS_PATTERNS)):
        for pat in patterns:
            m = pat.search(text)
            if m:
                dev = m.group("dev")
                return kind, "unknown" if dev == "?" else dev
    return None


@dataclass(frozen=True)
class KernelError:
    kind: str
    device: str
    line: str
    source: str
    time_ns: int


class KernelErrorCounter:
    """Counts kernel I/O and filesystem error lines per device and queues one event per line.

    Thread-safe: the log probe calls `observe()` from its own thread while the disk probe
    drains. Bounded: at most `max_devices` devices per kind (the rest count as "other") and
    `max_pending` queued lines (the overflow is counted, not kept).
    """

    def __init__(self, max_devices: int = 256, max_pending: int = 1000, max_line_chars: int = 2048) -> None:
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str], int] = {}
        self._pending: deque[KernelError] = deque()
        self._dropped = 0
        self._max_devices = max_devices
        self._max_pending = max_pending
        self._max_line_chars = max_line_chars

    def observe(self, line: str, source: str = "", time_ns: int | None = None) -> tuple[str, str] | None:
        found = classify_kernel_line(line)
        if found is None:
            return None
        kind, device = found
        err = KernelError(kind, device, line[: self._max_line_chars].rstrip("\r\n"), source,
                          records.now_ns() if time_ns is None else time_ns)
        with self._lock:
            key = (kind, device)
            if key not in self._counts and sum(k[0] == kind for k in self._counts) >= self._max_devices:
                key = (kind, "other")
            self._counts[key] = self._counts.get(key, 0) + 1
            if len(self._pending) < self._max_pending:
                self._pending.append(err)
            else:
                self._dropped += 1
        return found

    def drain(self) -> tuple[dict[tuple[str, str], int], list[KernelError], int]:
        """(cumulative counts, lines observed since the last drain, lines not queued so far)."""
        with self._lock:
            pending = list(self._pending)
            self._pending.clear()
            return dict(self._counts), pending, self._dropped


# --- days to full -------------------------------------------------------------------------------


class _Series:
    """Recent (unix time, used bytes) samples of one mount."""

    def __init__(self, device: str, samples: Iterable[tuple[float, float]] = ()) -> None:
        self.device = device
        self.samples: deque[tuple[float, float]] = deque(samples, maxlen=_MAX_SAMPLES + 1)

    def add(self, t: float, used: float, window: float) -> None:
        if self.samples and t < self.samples[-1][0]:
            self.samples.clear()  # the clock stepped back: the old times mean nothing now
        while self.samples and self.samples[0][0] < t - window:
            self.samples.popleft()
        if not self.samples or t - self.samples[-1][0] >= window / _MAX_SAMPLES:
            self.samples.append((t, used))

    def slope(self, min_span: float, min_samples: int) -> float | None:
        """Least-squares bytes per second, None while the samples are too few or too close."""
        n = len(self.samples)
        if n < max(2, min_samples) or self.samples[-1][0] - self.samples[0][0] < min_span:
            return None
        t0 = self.samples[0][0]  # offsets keep the sums well-conditioned
        mt = sum(t - t0 for t, _ in self.samples) / n
        mu = sum(u for _, u in self.samples) / n
        sxx = sum((t - t0 - mt) ** 2 for t, _ in self.samples)
        if sxx <= 0:
            return None
        return sum((t - t0 - mt) * (u - mu) for t, u in self.samples) / sxx


def days_to_full(slope: float | None, avail_bytes: float) -> float | None:
    """Days until `avail_bytes` are used at `slope` bytes/s; None unless growing (never inf)."""
    if slope is None or slope <= 0:
        return None
    days = max(0.0, avail_bytes) / slope / 86400.0
    return days if math.isfinite(days) else None


@dataclass
class _MountState:
    device: str
    read_only: bool
    remounted: bool  # went rw -> ro while watched, and is still ro
    seen: float  # unix time last listed


# --- the probe ----------------------------------------------------------------------------------


@probe("disk", default_interval_seconds=60, config=DiskOptions)
class DiskProbe:
    """Disk health: read-only remounts, days to full, SMART via smartctl, kernel I/O and fs errors."""

    def __init__(
        self,
        options: DiskOptions,
        paths: HostPaths,
        state_dir: Path | None = None,
        *,
        statvfs: Callable[[str], Any] = os.statvfs,
        partitions: Callable[[], Iterable[Any]] | None = None,
        smartctl_run: Runner | None = None,
        which: Callable[[str], str | None] = _smartctl.find_smartctl,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.options = options
        self.paths = paths
        self._state_path = Path(state_dir) / _STATE_FILE if state_dir is not None else None
        # The system probe's mount listing and hang-safe statvfs, with this probe's filters.
        self._fs = SystemProbe(
            SystemOptions(
                exclude_fstypes=options.exclude_fstypes,
                exclude_mounts=options.exclude_mounts,
                statvfs_timeout_seconds=options.statvfs_timeout_seconds,
            ),
            paths,
            statvfs=statvfs,
            partitions=partitions,
        )
        self._smartctl_run = smartctl_run
        self._which = which
        self._clock = clock
        self.kernel_errors = KernelErrorCounter()

        self._loaded = False
        self._mounts: dict[str, _MountState] = {}
        self._series: dict[str, _Series] = {}
        self._save_error: str | None = None

        self._smart_due = 0.0  # monotonic time of the next SMART read
        self._health: dict[str, records_pb2.DiskHealth] = {}  # last good reading per device
        self._section: records_pb2.DiskHealthSection | None = None
        self._sent: tuple[bytes, float] | None = None  # (comparison key, monotonic time sent)
        self._unavailable: str | None = None  # reason last reported, until SMART works again

    def validate(self) -> None:
        self._fs.validate()

    def observe_kernel_line(self, line: str, source: str = "", time_ns: int | None = None) -> bool:
        """Hand one kernel log line to this probe (from /dev/kmsg, the journal, kern.log ...).

        Safe from any thread and cheap for ordinary lines. An I/O or filesystem error line
        is counted per device and becomes a `disk.io_error` / `disk.fs_error` event (raw line
        kept, `source` as given) at the next collect(). Returns whether it was one.
        """
        return self.kernel_errors.observe(line, source, time_ns) is not None

    def collect(self) -> list[records_pb2.Record]:
        t = records.now_ns()
        now = self._clock()
        if not self._loaded:
            self._load_state()
        mounts = self._fs._mounts()
        # Hung mounts are skipped; reporting them is the system probe's job.
        stats, _hung = self._fs._statvfs_all(mounts)
        out = [*self._readonly(mounts, stats, now, t), *self._days_to_full(mounts, stats, now, t)]
        self._save_state()
        out.extend(self._kernel(t))
        out.extend(self._smart(t))
        return out

    # --- read-only remounts ---------------------------------------------------------------------

    def _readonly(
        self, mounts: Sequence[_Mount], stats: Mapping[str, Any], now: float, t: int
    ) -> list[records_pb2.Record]:
        out = []
        for m in mounts:
            st = stats.get(m.mountpoint)
            ro = bool(st.f_flag & os.ST_RDONLY) if st is not None else "ro" in m.opts.split(",")
            prev = self._mounts.get(m.mountpoint)
            remounted = False
            if prev is not None and prev.device == m.device:  # another device there: a new mount
                remounted = ro and (prev.remounted or not prev.read_only)
                if ro and not prev.read_only:
                    out.append(
                        records.event(
                            "disk.readonly_remount",
                            "error",
                            {"mount": m.mountpoint, "device": m.device, "fstype": m.fstype},
                            source=SOURCE,
                            time_ns=t,
                        )
                    )
            self._mounts[m.mountpoint] = _MountState(m.device, ro, remounted, now)
            out.append(
                records.metric(
                    "disk_filesystem_readonly_remount",
                    1.0 if remounted else 0.0,
                    {"mount": m.mountpoint, "device": m.device},
                    t,
                )
            )
        # Unlisted mounts are kept a while: one that comes back ro after a reboot is still caught.
        stale = [k for k, v in self._mounts.items() if now - v.seen > _MOUNT_STATE_TTL_SECONDS]
        for k in stale:
            del self._mounts[k]
        while len(self._mounts) > _MAX_MOUNTS:
            del self._mounts[min(self._mounts, key=lambda k: self._mounts[k].seen)]
        return out

    # --- days to full ---------------------------------------------------------------------------

    def _days_to_full(
        self, mounts: Sequence[_Mount], stats: Mapping[str, Any], now: float, t: int
    ) -> list[records_pb2.Record]:
        o = self.options
        out = []
        for m in mounts:
            st = stats.get(m.mountpoint)
            if st is None:
                continue
            frsize = st.f_frsize or st.f_bsize
            series = self._series.get(m.mountpoint)
            if series is None or series.device != m.device:
                series = self._series[m.mountpoint] = _Series(m.device)
            # Same definitions as system_filesystem_used_bytes / _free_bytes.
            series.add(now, float((st.f_blocks - st.f_bfree) * frsize), o.growth_window_seconds)
            days = days_to_full(
                series.slope(o.growth_min_span_seconds, o.growth_min_samples), st.f_bavail * frsize
            )
            if days is not None:
                out.append(
                    records.metric(
                        "disk_filesystem_days_to_full", days, {"mount": m.mountpoint, "device": m.device}, t
                    )
                )
        listed = {m.mountpoint for m in mounts}
        for gone in [k for k in self._series if k not in listed]:
            del self._series[gone]
        return out

    # --- state that survives restarts -----------------------------------------------------------

    def _load_state(self) -> None:
        self._loaded = True
        path = self._state_path
        if path is None:
            return
        try:
            if path.stat().st_size > _MAX_STATE_BYTES:
                raise ValueError(f"larger than {_MAX_STATE_BYTES} bytes")
            doc = json.loads(path.read_bytes())
            if not isinstance(doc, dict) or doc.get("version") != _STATE_VERSION:
                raise ValueError("not a version-1 state file")
        except FileNotFoundError:
            return
        except (OSError, ValueError) as e:
            log.warning("disk probe: ignoring state file %s: %s", path, e)
            return
        self._mounts, self._series = _parse_state(doc)

    def _save_state(self) -> None:
        path = self._state_path
        if path is None:
            return
        doc = {
            "version": _STATE_VERSION,
            "mounts": {
                k: {"device": v.device, "read_only": v.read_only, "remounted": v.remounted, "seen": v.seen}
                for k, v in self._mounts.items()
            },
            "growth": {
                k: {"device": s.device, "samples": [[round(t, 3), u] for t, u in s.samples]}
                for k, s in self._series.items()
            },
        }
        try:
            _write_atomically(path, json.dumps(doc, separators=(",", ":")).encode())
        except OSError as e:
            # E.g. the very disk being watched is full: report in the log, keep probing.
            msg = f"{type(e).__name__}: {e}"
            if msg != self._save_error:
                log.warning("disk probe: cannot save state to %s: %s", path, msg)
            self._save_error = msg
        else:
            self._save_error = None

    # --- kernel error lines ---------------------------------------------------------------------

    def _kernel(self, t: int) -> list[records_pb2.Record]:
        counts, pending, dropped = self.kernel_errors.drain()
        if not self.options.kernel_error_events:
            pending = []
        out = [
            records.event(
                f"disk.{e.kind}_error",
                "error",
                {"device": e.device},
                raw=e.line,
                source=e.source or SOURCE,
                time_ns=e.time_ns,
            )
            for e in pending
        ]
        names = {KIND_IO: "disk_kernel_io_errors_total", KIND_FS: "disk_filesystem_errors_total"}
        for (kind, device), n in sorted(counts.items()):
            out.append(records.metric(names[kind], n, {"device": device}, t))
        if dropped and self.options.kernel_error_events:
            out.append(records.metric("disk_kernel_error_events_dropped_total", dropped, None, t))
        return out

    # --- SMART ----------------------------------------------------------------------------------

    def _smart(self, t: int) -> list[records_pb2.Record]:
        if not self.options.smart:
            return []
        out: list[records_pb2.Record] = []
        now = time.monotonic()
        if now >= self._smart_due:
            self._smart_due = now + self.options.smart_interval_seconds
            out.extend(self._read_smart(t))
        # Inventory last: it marks the section as sent, so nothing after it may fail.
        out.extend(self._smart_inventory(t, now))
        return out

    def _read_smart(self, t: int) -> list[records_pb2.Record]:
        o = self.options
        exe = self._which(o.smartctl_path)
        if exe is None:
            return self._smart_unavailable("smartctl not installed", t)
        tool = Smartctl(exe, o.smartctl_timeout_seconds, self._smartctl_run)
        if o.smartctl_devices:
            devices = [ScanDevice(name=d, type="", label=d) for d in o.smartctl_devices]
        else:
            scan = tool.scan()
            if scan.permission_denied:
                return self._smart_unavailable(_denied(scan.error), t)
            if scan.error:
                self._health.clear()
                self._section = records_pb2.DiskHealthSection(error=f"smartctl --scan-open: {scan.error}")
                return []
            devices = scan.devices
        devices = devices[:_MAX_SMART_DEVICES]
        readings: list[Reading] = []
        if devices:
            with ThreadPoolExecutor(min(_SMART_WORKERS, len(devices)), thread_name_prefix="smartctl") as pool:
                readings = list(pool.map(tool.read, devices))
        if readings and all(r.permission_denied for r in readings):
            return self._smart_unavailable(_denied(readings[0].error), t)
        self._unavailable = None  # SMART works (again): a later failure is reported anew

        out: list[records_pb2.Record] = []
        errors: list[str] = []
        health: dict[str, records_pb2.DiskHealth] = {}
        for r in readings:
            if not r.smart_available:
                continue  # a virtual or USB disk without SMART: nothing to watch
            cached = self._health.get(r.label)
            if r.low_power:
                if cached is not None:  # spun down: its last reading still stands
                    health[r.label] = cached
                continue
            labels = {"device": r.label}
            if r.health is None:
                errors.append(f"{r.label}: {r.error}")
                out.append(records.metric("disk_smart_read_success", 0.0, labels, t))
                if cached is not None:
                    health[r.label] = cached
                continue
            health[r.label] = r.health
            out.append(records.metric("disk_smart_read_success", 1.0, labels, t))
            out.extend(_smart_metrics(r, t))
        self._health = health
        error = "; ".join(errors)
        self._section = records_pb2.DiskHealthSection(
            devices=[health[k] for k in sorted(health)],
            error=error if len(error) <= _MAX_ERROR_CHARS else error[: _MAX_ERROR_CHARS - 3] + "...",
        )
        return out

    def _smart_unavailable(self, reason: str, t: int) -> list[records_pb2.Record]:
        self._health.clear()
        self._section = records_pb2.DiskHealthSection(error=reason)
        if reason == self._unavailable:
            return []  # reported once, not every run
        self._unavailable = reason
        log.info("disk probe: SMART unavailable: %s", reason)
        return [
            records.event(
                "agent.probe_unavailable",
                "warning",
                {"probe": "disk", "feature": "smart", "error": reason},
                source=SOURCE,
                time_ns=t,
            )
        ]

    def _smart_inventory(self, t: int, now: float) -> list[records_pb2.Record]:
        if self._section is None:
            return []
        # Temperature and power-on hours move every read; they alone do not make a change worth
        # resending the section for (the metrics carry them), the hourly resend does.
        key = records_pb2.DiskHealthSection()
        key.CopyFrom(self._section)
        for d in key.devices:
            d.temperature_c = 0
            d.power_on_hours = 0
        blob = key.SerializeToString(deterministic=True)
        if self._sent is not None and self._sent[0] == blob and now - self._sent[1] < (
            self.options.inventory_interval_seconds
        ):
            return []
        self._sent = (blob, now)
        return [records.inventory(self._section, t)]


def _smart_metrics(r: Reading, t: int) -> list[records_pb2.Record]:
    h = r.health
    assert h is not None
    labels = {"device": h.device}
    out = []
    if r.passed is not None:
        out.append(
            records.metric(
                "disk_smart_passed",
                1.0 if r.passed else 0.0,
                {"device": h.device, "model": h.model, "serial": h.serial},
                t,
            )
        )
    values = {
        "disk_reallocated_sectors": h.reallocated_sectors,
        "disk_pending_sectors": h.pending_sectors,
        "disk_temperature_celsius": h.temperature_c,
        "disk_power_on_hours": h.power_on_hours,
        "disk_nvme_media_errors": h.media_errors,
        "disk_nvme_percentage_used": h.percentage_used,
    }
    # -1 is the proto's "not reported": no sample rather than a false value.
    out.extend(records.metric(name, v, labels, t) for name, v in values.items() if v >= 0)
    return out


def _denied(detail: str) -> str:
    return f"permission denied (reading SMART needs root or CAP_SYS_RAWIO): {detail}"


def _parse_state(doc: Mapping[str, Any]) -> tuple[dict[str, _MountState], dict[str, _Series]]:
    """The persisted state, entry by entry: a damaged entry is dropped, not the whole file."""
    mounts: dict[str, _MountState] = {}
    raw_mounts = doc.get("mounts")
    for k, v in (raw_mounts.items() if isinstance(raw_mounts, dict) else ()):
        if len(mounts) >= _MAX_MOUNTS:
            break
        if (
            isinstance(v, dict)
            and isinstance(v.get("device"), str)
            and isinstance(v.get("read_only"), bool)
            and isinstance(v.get("remounted"), bool)
            and _is_number(v.get("seen"))
        ):
            mounts[k] = _MountState(v["device"], v["read_only"], v["remounted"], float(v["seen"]))
    series: dict[str, _Series] = {}
    raw_growth = doc.get("growth")
    for k, v in (raw_growth.items() if isinstance(raw_growth, dict) else ()):
        if len(series) >= _MAX_MOUNTS:
            break
        if not isinstance(v, dict) or not isinstance(v.get("device"), str) or not isinstance(
            v.get("samples"), list
        ):
            continue
        samples = [
            (float(s[0]), float(s[1]))
            for s in v["samples"][-(_MAX_SAMPLES + 1) :]
            if isinstance(s, list) and len(s) == 2 and _is_number(s[0]) and _is_number(s[1])
        ]
        if all(a[0] <= b[0] for a, b in zip(samples, samples[1:], strict=False)):
            series[k] = _Series(v["device"], samples)
    return mounts, series


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def _write_atomically(path: Path, data: bytes) -> None:
    """Readers see the old file or the new one, never a torn one (also across a crash)."""
    import tempfile  # here: at module level it costs the running agent ~0.7 MB of RSS

    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # created 0600
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # the rename itself must reach the disk
    finally:
        os.close(dir_fd)
