"""Linux backend of the hardware inventory: block devices from sysfs, virtualization.

Used by the system probe's `hardware` section. Everything is read through injected roots
(`sys_root`, `proc_root`, `rootfs`) so tests point it at fixture trees.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

from warden.agent.probes import HostPaths
from warden.agent.probes._tools import ToolResult, run_tool
from warden.v1 import records_pb2

__all__ = ["block_devices", "virtualization"]

# Kernel-made devices that are not hardware: loop files, RAM disks, device-mapper/LVM/crypt,
# software RAID, network block devices. Their parts (the real disks) are listed themselves.
_VIRTUAL_PREFIXES = ("loop", "ram", "zram", "dm-", "md", "nbd", "rbd", "drbd", "zd", "fd", "sr")

# (substring of the resolved sysfs device path, transport), first match wins.
_TRANSPORTS = (
    ("/nvme", "nvme"),
    ("/virtio", "virtio"),
    ("/usb", "usb"),
    ("/mmc_host/", "mmc"),
    ("/session", "iscsi"),
    ("/ata", "sata"),
    ("/vmbus", "hyperv"),
    ("/xen", "xen"),
    ("/host", "scsi"),
)

_SECTOR = 512  # /sys/block/*/size is always in 512-byte units, whatever the logical block size


def block_devices(sys_root: Path) -> list[records_pb2.BlockDevice]:
    """Whole disks under `<sys_root>/block`, sorted by name; virtual devices are skipped."""
    try:
        names = sorted(os.listdir(sys_root / "block"))
    except OSError:
        return []
    out = []
    for name in names:
        if name.startswith(_VIRTUAL_PREFIXES):
            continue
        dev = sys_root / "block" / name
        real = _resolved(dev)
        # NVMe multipath namespaces live under devices/virtual/nvme-subsystem but are real disks.
        if "/devices/virtual/" in real and "/nvme-subsystem/" not in real:
            continue
        out.append(
            records_pb2.BlockDevice(
                name=name,
                model=_read(dev / "device" / "model"),
                serial=_serial(dev),
                size_bytes=_int(_read(dev / "size")) * _SECTOR,
                rotational=_read(dev / "queue" / "rotational") == "1",
                transport=_transport(name, real),
            )
        )
    return out


def _resolved(dev: Path) -> str:
    try:
        return os.path.realpath(dev)
    except OSError:
        return str(dev)


def _serial(dev: Path) -> str:
    # NVMe and some SCSI drivers expose device/serial; virtio-blk has <dev>/serial; SATA/SAS
    # only answer through the SCSI VPD page 0x80 (unit serial number).
    for candidate in (dev / "device" / "serial", dev / "serial"):
        s = _read(candidate)
        if s:
            return s
    pg80 = _read_bytes(dev / "device" / "vpd_pg80")
    if len(pg80) > 4:
        # SPC: 4-byte header (byte 3 = page length), then the ASCII serial, space padded.
        length = pg80[3]
        s = pg80[4 : 4 + length].decode("ascii", "replace").strip(" \x00")
        if s:
            return s
    for candidate in (dev / "wwid", dev / "device" / "wwid"):
        s = _read(candidate)
        if s:
            return s
    return ""


def _transport(name: str, real: str) -> str:
    if name.startswith("xvd"):
        return "xen"
    for needle, transport in _TRANSPORTS:
        if needle in real:
            return transport
    return ""


def _read(path: Path) -> str:
    try:
        with open(path, "rb") as f:
            return f.read(4096).decode("utf-8", "replace").strip()
    except OSError:
        return ""  # absent for this device type, or readable by root only


def _read_bytes(path: Path) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(512)
    except OSError:
        return b""


def _int(text: str) -> int:
    try:
        return max(0, int(text))
    except ValueError:
        return 0


# --- virtualization -------------------------------------------------------------------------

# DMI product_name / sys_vendor fragments, lower-case, as systemd-detect-virt names them.
_DMI = (
    ("kvm", "kvm"),
    ("qemu", "qemu"),
    ("virtualbox", "oracle"),
    ("vmware", "vmware"),
    ("microsoft corporation", "microsoft"),
    ("xen", "xen"),
    ("amazon ec2", "amazon"),
    ("google compute engine", "google"),
    ("bochs", "bochs"),
    ("parallels", "parallels"),
    ("bhyve", "bhyve"),
    ("openstack", "kvm"),
)
_CGROUP_CONTAINERS = (("kubepods", "kubernetes"), ("docker", "docker"), ("lxc", "lxc"), ("libpod", "podman"))

Runner = Callable[[list[str]], ToolResult]


def virtualization(paths: HostPaths, run: Runner | None = None) -> str:
    """"none", or the hypervisor / container technology, in systemd-detect-virt's words.

    systemd-detect-virt is asked only when the rootfs is this process's own: from inside a
    container watching a host, it would describe the agent's container, not the host.
    """
    if paths.rootfs == Path("/"):
        res = (run or _detect_virt)(["systemd-detect-virt"])
        word = res.stdout.strip().splitlines()[0] if res.stdout.strip() else ""
        # It exits 1 and prints "none" on bare metal; anything else is an answer too.
        if res.status in ("ok", "failed") and re.fullmatch(r"[a-z0-9_-]+", word):
            return word
    return _heuristics(paths)


def _detect_virt(argv: list[str]) -> ToolResult:
    return run_tool(argv, timeout=5.0, max_bytes=4096)


def _heuristics(paths: HostPaths) -> str:
    if paths.host_path("/.dockerenv").exists():
        return "docker"
    if paths.host_path("/run/.containerenv").exists():
        return "podman"
    cgroup = _read(paths.proc_root / "1" / "cgroup").lower()
    for needle, word in _CGROUP_CONTAINERS:
        if needle in cgroup:
            return word
    dmi = " ".join(
        _read(paths.sys_root / "class" / "dmi" / "id" / f).lower()
        for f in ("product_name", "sys_vendor", "board_vendor")
    )
    for needle, word in _DMI:
        if needle in dmi:
            return word
    hyp = _read(paths.sys_root / "hypervisor" / "type")
    if hyp:
        return hyp
    # A hypervisor the tables above do not know still sets the CPU's hypervisor flag.
    cpuinfo = _read_head(paths.proc_root / "cpuinfo")
    if re.search(r"^flags\s*:.*\bhypervisor\b", cpuinfo, re.MULTILINE):
        return "vm-other"
    return "none"


def _read_head(path: Path, limit: int = 64 * 1024) -> str:
    try:
        with open(path, "rb") as f:
            return f.read(limit).decode("utf-8", "replace")
    except OSError:
        return ""
