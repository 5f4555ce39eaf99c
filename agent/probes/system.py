"""Probe `system`: CPU, memory, swap, load, uptime and filesystem usage, plus the host's
os / hardware / filesystems inventory.

psutil reads the host's procfs through `psutil.PROCFS_PATH` (set once by the agent from
`[paths] proc_root`); the other host files are read through `HostPaths`.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import shlex
import socket
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from warden.agent import records
from warden.agent.probes import HostPaths, option, probe
from warden.agent.probes._hardware import block_devices, virtualization
from warden.v1 import records_pb2

log = logging.getLogger(__name__)

SOURCE = "probe:system"
# psutil's user/system include guest time on Linux; these are the modes operators look at.
CPU_MODES = ("user", "system", "iowait", "idle", "steal")


@dataclass(frozen=True)
class SystemOptions:
    exclude_fstypes: tuple[str, ...] = option(
        ("squashfs", "iso9660", "udf", "erofs"),
        "Filesystem types not reported (pseudo filesystems such as proc or tmpfs never are).",
    )
    exclude_mounts: tuple[str, ...] = option(
        (
            "/dev",
            "/dev/*",
            "/proc",
            "/proc/*",
            "/sys",
            "/sys/*",
            "/run/credentials/*",
            "/snap/*",
            "/var/lib/docker/*",
            "/var/lib/containers/storage/*",
            "/var/lib/kubelet/*",
        ),
        "Mount points not reported: shell-style patterns, where * also matches /.",
    )
    statvfs_timeout_seconds: float = option(
        5.0, "A mount whose statvfs takes longer (hung NFS) is skipped and reported once.", gt=0
    )
    inventory_interval_seconds: float = option(
        3600.0, "Resend the os/hardware/filesystems inventory this often even when unchanged.", gt=0
    )


@dataclass(frozen=True)
class _Mount:
    mountpoint: str
    device: str
    fstype: str
    opts: str


class _StatvfsCall:
    """One statvfs in a daemon thread: a call stuck in the kernel can never be cancelled, so it
    must neither block the probe nor keep the agent from exiting."""

    def __init__(self, fn: Callable[[str], Any], path: str) -> None:
        self.done = threading.Event()
        self.result: Any = None
        self.error: OSError | None = None
        threading.Thread(target=self._run, args=(fn, path), name=f"statvfs {path}", daemon=True).start()

    def _run(self, fn: Callable[[str], Any], path: str) -> None:
        try:
            self.result = fn(path)
        except OSError as e:
            self.error = e
        finally:
            self.done.set()


@probe("system", default_interval_seconds=15, config=SystemOptions)
class SystemProbe:
    """Host metrics (CPU, memory, swap, load, uptime, filesystems) and os/hardware/filesystems inventory."""

    def __init__(
        self,
        options: SystemOptions,
        paths: HostPaths,
        state_dir: Path | None = None,  # unused: everything this probe needs is in memory
        *,
        statvfs: Callable[[str], Any] = os.statvfs,
        partitions: Callable[[], Iterable[Any]] | None = None,
    ) -> None:
        self.options = options
        self.paths = paths
        self._statvfs = statvfs
        # all=False: only filesystems backed by a device; proc, sysfs, tmpfs... are skipped.
        self._partitions = partitions or (lambda: psutil.disk_partitions(all=False))
        # CPU percent is a rate: computed from our own previous sample rather than psutil's
        # module-global one, which any other caller of cpu_percent() would disturb.
        self._prev_cpu = psutil.cpu_times()
        self._stuck: dict[str, _StatvfsCall] = {}  # mount -> call still hung since an earlier run
        self._last_stat: dict[str, Any] = {}  # mount -> last statvfs that answered (for inventory)
        self._sent: dict[str, tuple[bytes, float]] = {}  # section -> (serialized, monotonic time sent)
        self._virtualization: str | None = None  # cannot change under a running agent: asked once

    def validate(self) -> None:
        for pat in self.options.exclude_mounts:
            # Mount points are absolute: a relative pattern can never match, surely a typo.
            if not pat.startswith(("/", "*", "?", "[")):
                raise ValueError(f"exclude_mounts: pattern {pat!r} is not an absolute path pattern")

    def collect(self) -> list[records_pb2.Record]:
        t = records.now_ns()
        out = [*self._cpu(t), *self._memory(t), *self._load_uptime(t)]
        mounts = self._mounts()
        stats, hung = self._statvfs_all(mounts)
        for m in hung:
            out.append(
                records.event(
                    "system.mount_hung",
                    "warning",
                    {
                        "mount": m.mountpoint,
                        "device": m.device,
                        "fstype": m.fstype,
                        "timeout_seconds": self.options.statvfs_timeout_seconds,
                    },
                    source=SOURCE,
                    time_ns=t,
                )
            )
        for m in mounts:
            if m.mountpoint in stats:
                out.extend(_filesystem_metrics(m, stats[m.mountpoint], t))
        # Inventory last: it marks sections as sent, so nothing after it may fail.
        out.extend(self._inventory(t, mounts))
        return out

    # --- metrics --------------------------------------------------------------------------------

    def _cpu(self, t: int) -> list[records_pb2.Record]:
        ncpu = psutil.cpu_count() or 1
        out = [records.metric("system_cpu_count", ncpu, time_ns=t)]
        cur = psutil.cpu_times()
        delta = {k: max(0.0, getattr(cur, k) - getattr(self._prev_cpu, k)) for k in cur._fields}
        # guest and guest_nice are already counted in user and nice (as psutil does on Linux).
        total = sum(v for k, v in delta.items() if k not in ("guest", "guest_nice"))
        if total < 0.05 * ncpu:
            # Under ~50 ms since the last sample (the first run, right after start-up): a few
            # clock ticks would give a meaningless percentage. Keep the older sample for next time.
            return out
        self._prev_cpu = cur
        idle = delta.get("idle", 0.0) + delta.get("iowait", 0.0)
        out.append(records.metric("system_cpu_percent", 100.0 * (total - idle) / total, time_ns=t))
        for mode in CPU_MODES:
            if mode in delta:
                out.append(
                    records.metric("system_cpu_mode_percent", 100.0 * delta[mode] / total, {"mode": mode}, t)
                )
        return out

    def _memory(self, t: int) -> list[records_pb2.Record]:
        vm, sw = psutil.virtual_memory(), psutil.swap_memory()
        values = {
            "system_memory_total_bytes": vm.total,
            "system_memory_available_bytes": vm.available,
            "system_memory_used_bytes": vm.used,
            "system_memory_used_percent": vm.percent,
            "system_swap_total_bytes": sw.total,
            "system_swap_used_bytes": sw.used,
            "system_swap_used_percent": sw.percent,
        }
        return [records.metric(name, value, time_ns=t) for name, value in values.items()]

    def _load_uptime(self, t: int) -> list[records_pb2.Record]:
        load1, load5, load15 = psutil.getloadavg()
        return [
            records.metric("system_load1", load1, time_ns=t),
            records.metric("system_load5", load5, time_ns=t),
            records.metric("system_load15", load15, time_ns=t),
            records.metric("system_uptime_seconds", max(0.0, t / 1e9 - psutil.boot_time()), time_ns=t),
        ]

    # --- filesystems ----------------------------------------------------------------------------

    def _mounts(self) -> list[_Mount]:
        by_point: dict[str, _Mount] = {}
        for p in self._partitions():
            if p.fstype in self.options.exclude_fstypes:
                continue
            if any(fnmatch.fnmatchcase(p.mountpoint, pat) for pat in self.options.exclude_mounts):
                continue
            # The last mount on a mount point hides the earlier ones (mount table order).
            by_point[p.mountpoint] = _Mount(p.mountpoint, p.device, p.fstype, p.opts)
        return sorted(by_point.values(), key=lambda m: m.mountpoint)

    def _statvfs_all(self, mounts: Sequence[_Mount]) -> tuple[dict[str, Any], list[_Mount]]:
        """statvfs every mount concurrently, within one shared deadline.

        Returns the answers by mount point and the mounts that newly hung. A mount whose earlier
        call is still stuck gets no new thread (they would pile up) and is skipped silently:
        it was reported when it hung.
        """
        calls: dict[str, _StatvfsCall] = {}
        for m in mounts:
            stuck = self._stuck.get(m.mountpoint)
            if stuck is not None:
                if not stuck.done.is_set():
                    continue
                del self._stuck[m.mountpoint]  # it came back; ask afresh
            calls[m.mountpoint] = _StatvfsCall(self._statvfs, str(self.paths.host_path(m.mountpoint)))
        deadline = time.monotonic() + self.options.statvfs_timeout_seconds
        answers: dict[str, Any] = {}
        hung: list[_Mount] = []
        for m in mounts:
            call = calls.get(m.mountpoint)
            if call is None:
                continue
            if not call.done.wait(max(0.0, deadline - time.monotonic())):
                self._stuck[m.mountpoint] = call
                hung.append(m)
            elif call.error is not None:
                # Vanished between listing and statvfs, or not readable by the agent: skip it.
                log.debug("statvfs %s: %s", m.mountpoint, call.error)
            else:
                answers[m.mountpoint] = self._last_stat[m.mountpoint] = call.result
        return answers, hung

    # --- inventory ------------------------------------------------------------------------------

    def _inventory(self, t: int, mounts: Sequence[_Mount]) -> list[records_pb2.Record]:
        sections = {
            "os": self._os_section(),
            "hardware": self._hardware_section(),
            "filesystems": self._filesystems_section(mounts),
        }
        out = []
        now = time.monotonic()
        for name, section in sections.items():
            blob = section.SerializeToString(deterministic=True)
            last = self._sent.get(name)
            if last is None or last[0] != blob or now - last[1] >= self.options.inventory_interval_seconds:
                out.append(records.inventory(section, t))
                self._sent[name] = (blob, now)
        return out

    def _os_section(self) -> records_pb2.OsSection:
        rel = self._os_release()
        uname = os.uname()
        return records_pb2.OsSection(
            hostname=socket.gethostname(),
            os_name=rel.get("PRETTY_NAME") or rel.get("NAME", ""),
            os_id=rel.get("ID", ""),
            os_version=rel.get("VERSION_ID", ""),
            kernel=uname.release,
            arch=uname.machine,
            boot_time_unix=int(psutil.boot_time()),
            agent_version=records.agent_version(),
            timezone=host_timezone(self.paths.rootfs),
        )

    def _os_release(self) -> dict[str, str]:
        # os-release(5): /etc/os-release, falling back to /usr/lib/os-release.
        for rel in ("etc/os-release", "usr/lib/os-release"):
            try:
                text = (self.paths.rootfs / rel).read_text(errors="replace")
            except OSError:
                continue
            return parse_os_release(text)
        return {}

    def _hardware_section(self) -> records_pb2.HardwareSection:
        if self._virtualization is None:
            self._virtualization = virtualization(self.paths)
        return records_pb2.HardwareSection(
            cpu_model=self._cpu_model(),
            cpu_cores_logical=psutil.cpu_count() or 0,
            cpu_cores_physical=psutil.cpu_count(logical=False) or 0,
            memory_bytes=psutil.virtual_memory().total,
            swap_bytes=psutil.swap_memory().total,
            virtualization=self._virtualization,
            disks=block_devices(self.paths.sys_root),
        )

    def _cpu_model(self) -> str:
        try:
            text = (self.paths.proc_root / "cpuinfo").read_text(errors="replace")
        except OSError:
            return _processor()
        found: dict[str, str] = {}
        for line in text.splitlines():
            key, sep, value = line.partition(":")
            if sep:
                found.setdefault(key.strip().lower(), value.strip())
        # x86 says "model name"; ARM and others use one of the later keys.
        for key in ("model name", "hardware", "cpu model", "model", "processor"):
            if found.get(key) and not found[key].isdigit():
                return found[key]
        return _processor()

    def _filesystems_section(self, mounts: Sequence[_Mount]) -> records_pb2.FilesystemsSection:
        section = records_pb2.FilesystemsSection()
        for m in mounts:
            st = self._last_stat.get(m.mountpoint)
            section.filesystems.append(
                records_pb2.Filesystem(
                    mountpoint=m.mountpoint,
                    device=m.device,
                    fstype=m.fstype,
                    total_bytes=st.f_blocks * (st.f_frsize or st.f_bsize) if st else 0,
                    total_inodes=st.f_files if st else 0,
                    read_only=bool(st.f_flag & os.ST_RDONLY) if st else "ro" in m.opts.split(","),
                )
            )
        return section


def _filesystem_metrics(m: _Mount, st: Any, t: int) -> list[records_pb2.Record]:
    labels = {"mount": m.mountpoint, "device": m.device, "fstype": m.fstype}
    frsize = st.f_frsize or st.f_bsize
    used = (st.f_blocks - st.f_bfree) * frsize
    avail = st.f_bavail * frsize  # what unprivileged users can still write, as df's "Avail"
    values: dict[str, float] = {
        "system_filesystem_total_bytes": st.f_blocks * frsize,
        "system_filesystem_used_bytes": used,
        "system_filesystem_free_bytes": avail,
        # df's Use%: reserved blocks count neither as used nor as available.
        "system_filesystem_used_percent": 100.0 * used / (used + avail) if used + avail else 0.0,
        "system_filesystem_readonly": 1.0 if st.f_flag & os.ST_RDONLY else 0.0,
        "system_filesystem_inodes_total": st.f_files,
        "system_filesystem_inodes_used": st.f_files - st.f_ffree,
        "system_filesystem_inodes_free": st.f_ffree,
    }
    if st.f_files:  # some filesystems (btrfs) have no fixed inode table and report 0
        values["system_filesystem_inodes_used_percent"] = 100.0 * (st.f_files - st.f_ffree) / st.f_files
    return [records.metric(name, value, labels, t) for name, value in values.items()]


def parse_os_release(text: str) -> dict[str, str]:
    """KEY=value lines of os-release(5); values may be shell-quoted."""
    out = {}
    for line in text.splitlines():
        line = line.strip()
        key, sep, value = line.partition("=")
        if not sep or line.startswith("#") or not key.isidentifier():
            continue
        try:
            words = shlex.split(value)
        except ValueError:  # unbalanced quotes: keep the raw text rather than lose the key
            words = [value.strip("\"'")]
        out[key] = " ".join(words)
    return out


def host_timezone(rootfs: Path) -> str:
    """The host's IANA zone: the /etc/localtime link target (systemd's source of truth),
    else /etc/timezone (older Debian); "" when neither says."""
    try:
        target = os.readlink(rootfs / "etc/localtime")
        if "zoneinfo/" in target:
            return target.split("zoneinfo/", 1)[1]
    except OSError:
        pass
    try:
        return (rootfs / "etc/timezone").read_text().strip().split()[0]
    except (OSError, IndexError):
        return ""


def _processor() -> str:
    import platform  # only when /proc/cpuinfo names no model: the module costs RSS for good

    return platform.processor()
