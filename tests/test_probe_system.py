import os
import re
import threading
import time
from collections import namedtuple
from collections.abc import Iterable
from pathlib import Path

import psutil
import pytest

from warden.agent.probes import HostPaths, registered
from warden.agent.probes._hardware import virtualization
from warden.agent.probes._tools import ToolResult
from warden.agent.probes.system import SystemOptions, SystemProbe, parse_os_release
from warden.v1 import records_pb2

# The shape of psutil.disk_partitions() entries (psutil's own type is private).
sdiskpart = namedtuple("sdiskpart", "device mountpoint fstype opts")

NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
FIXTURES = Path(__file__).parent / "fixtures" / "system"  # README.md there says where each came from

OS_RELEASE = """\
# a comment
PRETTY_NAME="Testix GNU/Linux 7 (fixture)"
NAME='Testix'
VERSION_ID=7
ID=testix
BROKEN="unbalanced
"""

SCALARS = {
    "system_cpu_count",
    "system_memory_total_bytes",
    "system_memory_available_bytes",
    "system_memory_used_bytes",
    "system_memory_used_percent",
    "system_swap_total_bytes",
    "system_swap_used_bytes",
    "system_swap_used_percent",
    "system_load1",
    "system_load5",
    "system_load15",
    "system_uptime_seconds",
}
FILESYSTEM = {
    "system_filesystem_total_bytes",
    "system_filesystem_used_bytes",
    "system_filesystem_free_bytes",
    "system_filesystem_used_percent",
    "system_filesystem_readonly",
    "system_filesystem_inodes_total",
    "system_filesystem_inodes_used",
    "system_filesystem_inodes_free",
}


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "os-release").write_text(OS_RELEASE)
    return tmp_path


def fake_mounts(*points: str, fstype: str = "ext4") -> list[sdiskpart]:
    return [sdiskpart(f"/dev/fake{i}", p, fstype, "rw") for i, p in enumerate(points)]


def metrics(out: Iterable[records_pb2.Record]) -> list[records_pb2.MetricSample]:
    return [r.metric for r in out if r.HasField("metric")]


def sections(out: Iterable[records_pb2.Record]) -> dict[str, records_pb2.InventorySnapshot]:
    inv = [r.inventory for r in out if r.HasField("inventory")]
    return {i.WhichOneof("section"): i for i in inv}


def test_registered_with_documented_defaults() -> None:
    spec = registered()["system"]
    assert spec.cls is SystemProbe and spec.config is SystemOptions
    assert spec.default_interval_seconds == 15 and spec.default_enabled
    assert SystemOptions().inventory_interval_seconds == 3600


def test_real_machine_produces_well_formed_records(tmp_path: Path) -> None:
    probe = SystemProbe(SystemOptions(), HostPaths())
    probe.validate()
    first = probe.collect()
    time.sleep(0.2)  # CPU percent is a rate over the interval between two collects
    second = probe.collect()

    for out in (first, second):
        assert all(isinstance(r, records_pb2.Record) and r.WhichOneof("kind") for r in out)
        stamps = {r.metric.time_unix_nano for r in out if r.HasField("metric")}
        assert len(stamps) == 1 and abs(stamps.pop() - time.time_ns()) < 60e9

    samples = metrics(second)
    names = {m.name for m in samples}
    assert all(NAME.fullmatch(n) and n.startswith("system_") for n in names)
    assert names >= SCALARS
    by_name = {m.name: m for m in samples if not m.labels}
    assert by_name["system_cpu_count"].value == psutil.cpu_count()
    assert by_name["system_memory_total_bytes"].value == psutil.virtual_memory().total
    assert 0 <= by_name["system_cpu_percent"].value <= 100
    assert by_name["system_uptime_seconds"].value > 0
    modes = {m.labels["mode"]: m.value for m in samples if m.name == "system_cpu_mode_percent"}
    assert set(modes) == {"user", "system", "iowait", "idle", "steal"}
    assert all(0 <= v <= 100 for v in modes.values())
    assert "system_cpu_percent" not in {m.name for m in metrics(first)}  # no interval yet

    mounts = {p.mountpoint for p in psutil.disk_partitions(all=False)} - {"/dev", "/proc", "/sys"}
    fs = [m for m in samples if m.name.startswith("system_filesystem_")]
    assert {m.labels["mount"] for m in fs} <= mounts
    for m in fs:
        assert set(m.labels) == {"mount", "device", "fstype"} and m.name in FILESYSTEM | {
            "system_filesystem_inodes_used_percent"
        }
    if "/" in {m.labels["mount"] for m in fs}:
        root = {m.name: m.value for m in fs if m.labels["mount"] == "/"}
        usage = psutil.disk_usage("/")
        assert root["system_filesystem_total_bytes"] == usage.total
        assert abs(root["system_filesystem_used_percent"] - usage.percent) < 1
        assert set(root) >= FILESYSTEM

    inv = sections(first)
    assert set(inv) == {"os", "hardware", "filesystems"}
    os_section = inv["os"].os
    assert os_section.kernel == os.uname().release and os_section.arch == os.uname().machine
    assert os_section.boot_time_unix == int(psutil.boot_time())
    assert os_section.agent_version
    hw = inv["hardware"].hardware
    assert hw.cpu_cores_logical == psutil.cpu_count() and hw.memory_bytes == psutil.virtual_memory().total
    assert re.fullmatch(r"[a-z0-9_-]+", hw.virtualization)
    block = set(os.listdir("/sys/block")) if os.path.isdir("/sys/block") else set()
    assert {d.name for d in hw.disks} <= block
    assert not [d for d in hw.disks if d.name.startswith(("loop", "ram", "zram", "dm-"))]
    for d in hw.disks:
        with open(f"/sys/block/{d.name}/size") as f:
            assert d.size_bytes == int(f.read()) * 512
    assert {f.mountpoint for f in inv["filesystems"].filesystems.filesystems} == {
        m.labels["mount"] for m in fs
    }
    assert sections(second) == {}  # unchanged: not sent again


def test_os_inventory_from_the_rootfs_and_resent_only_when_changed(rootfs: Path) -> None:
    probe = SystemProbe(SystemOptions(), HostPaths(rootfs=rootfs), partitions=lambda: fake_mounts("/"))
    inv = sections(probe.collect())
    assert set(inv) == {"os", "hardware", "filesystems"}
    os_section = inv["os"].os
    assert (os_section.os_name, os_section.os_id, os_section.os_version) == (
        "Testix GNU/Linux 7 (fixture)",
        "testix",
        "7",
    )
    (fs,) = inv["filesystems"].filesystems.filesystems
    st = os.statvfs(rootfs)  # mount point "/" is read under the rootfs
    assert (fs.mountpoint, fs.device, fs.fstype, fs.total_inodes) == ("/", "/dev/fake0", "ext4", st.f_files)

    assert sections(probe.collect()) == {}
    (rootfs / "etc" / "os-release").write_text(OS_RELEASE.replace("VERSION_ID=7", "VERSION_ID=8"))
    inv = sections(probe.collect())
    assert set(inv) == {"os"} and inv["os"].os.os_version == "8"
    assert sections(probe.collect()) == {}


def test_os_release_fallback_and_absence(tmp_path: Path) -> None:
    (tmp_path / "usr" / "lib").mkdir(parents=True)
    (tmp_path / "usr" / "lib" / "os-release").write_text("ID=fallback\n")
    probe = SystemProbe(SystemOptions(), HostPaths(rootfs=tmp_path), partitions=list)
    assert sections(probe.collect())["os"].os.os_id == "fallback"
    empty = SystemProbe(SystemOptions(), HostPaths(rootfs=tmp_path / "nothing"), partitions=list)
    assert sections(empty.collect())["os"].os.os_id == ""


def test_inventory_resent_after_its_interval(rootfs: Path) -> None:
    opts = SystemOptions(inventory_interval_seconds=0.1)
    probe = SystemProbe(opts, HostPaths(rootfs=rootfs), partitions=list)
    assert len(sections(probe.collect())) == 3
    assert sections(probe.collect()) == {}
    time.sleep(0.15)
    assert len(sections(probe.collect())) == 3


def test_hung_mount_is_skipped_within_the_timeout_and_reported_once(rootfs: Path) -> None:
    (rootfs / "ok").mkdir()
    (rootfs / "nfs").mkdir()
    release = threading.Event()
    asked: list[str] = []

    def statvfs(path: str) -> os.statvfs_result:
        asked.append(path)
        if path.endswith("nfs"):
            release.wait(10)  # a hard NFS mount whose server is gone
        return os.statvfs(path)

    probe = SystemProbe(
        SystemOptions(statvfs_timeout_seconds=0.2),
        HostPaths(rootfs=rootfs),
        statvfs=statvfs,
        partitions=lambda: fake_mounts("/ok", "/nfs", fstype="nfs4"),
    )
    try:
        t0 = time.monotonic()
        out = probe.collect()
        assert time.monotonic() - t0 < 1.0
        assert {m.labels["mount"] for m in metrics(out) if "mount" in m.labels} == {"/ok"}
        (hung,) = [r.event for r in out if r.HasField("event")]
        assert hung.kind == "system.mount_hung" and hung.severity == records_pb2.SEVERITY_WARNING
        assert hung.fields["mount"].string_value == "/nfs" and hung.fields["fstype"].string_value == "nfs4"
        assert hung.source == "probe:system"

        t0 = time.monotonic()
        out = probe.collect()
        assert time.monotonic() - t0 < 0.5  # no second wait on a mount known to be stuck
        assert not [r for r in out if r.HasField("event")]  # reported once
        assert sum(p.endswith("nfs") for p in asked) == 1  # no thread piled on the stuck call

        release.set()
        time.sleep(0.05)
        out = probe.collect()
        assert {m.labels["mount"] for m in metrics(out) if "mount" in m.labels} == {"/ok", "/nfs"}
        assert not [r for r in out if r.HasField("event")]
    finally:
        release.set()


def test_excluded_and_unreadable_mounts_are_skipped(rootfs: Path) -> None:
    for d in ("data", "snap/core/1", "cdrom", "gone"):
        (rootfs / d).mkdir(parents=True)

    def statvfs(path: str) -> os.statvfs_result:
        if path.endswith("gone"):
            raise PermissionError(13, "Permission denied", path)
        return os.statvfs(path)

    parts = [
        *fake_mounts("/data", "/snap/core/1", "/gone"),
        sdiskpart("/dev/sr0", "/cdrom", "iso9660", "ro"),
    ]
    probe = SystemProbe(SystemOptions(), HostPaths(rootfs=rootfs), statvfs=statvfs, partitions=lambda: parts)
    out = probe.collect()
    assert {m.labels["mount"] for m in metrics(out) if "mount" in m.labels} == {"/data"}
    fs = sections(out)["filesystems"].filesystems.filesystems
    assert [(f.mountpoint, f.total_bytes > 0) for f in fs] == [("/data", True), ("/gone", False)]


def test_validate_rejects_relative_mount_patterns() -> None:
    with pytest.raises(ValueError, match="exclude_mounts"):
        SystemProbe(SystemOptions(exclude_mounts=("mnt/*",)), HostPaths()).validate()


def test_parse_os_release() -> None:
    parsed = parse_os_release(OS_RELEASE)
    assert parsed == {
        "PRETTY_NAME": "Testix GNU/Linux 7 (fixture)",
        "NAME": "Testix",
        "VERSION_ID": "7",
        "ID": "testix",
        "BROKEN": "unbalanced",
    }


def test_hardware_disks_from_a_sysfs_fixture(rootfs: Path) -> None:
    probe = SystemProbe(SystemOptions(), HostPaths(rootfs=rootfs, sys_root=FIXTURES / "sys"), partitions=list)
    hw = sections(probe.collect())["hardware"].hardware
    got = [(d.name, d.model, d.serial, d.size_bytes, d.rotational, d.transport) for d in hw.disks]
    # loop0, zram0, dm-0, md0 (virtual) and sr0 (optical) are not disks.
    assert got == [
        ("nvme0n1", "Samsung SSD 980 PRO 1TB", "S5GXNF0R000000X", 1953525168 * 512, False, "nvme"),
        ("sda", "ST4000DM004-2CV1", "ZFN0ABCD", 7814037168 * 512, True, "sata"),  # serial from VPD page 0x80
        ("sdb", "Ultra Fit", "", 60063744 * 512, False, "usb"),  # no readable serial
        ("vda", "", "overlayblk", 536870912 * 512, True, "virtio"),
    ]
    assert sections(probe.collect()) == {}  # disks unchanged: hardware not resent


def test_hardware_without_sysfs(rootfs: Path) -> None:
    probe = SystemProbe(SystemOptions(), HostPaths(rootfs=rootfs, sys_root=rootfs / "nosys"), partitions=list)
    hw = sections(probe.collect())["hardware"].hardware
    assert list(hw.disks) == [] and hw.virtualization


def test_virtualization_from_systemd_detect_virt() -> None:
    own = HostPaths()
    assert virtualization(own, lambda argv: ToolResult("ok", "kvm\n", "", 0)) == "kvm"
    assert virtualization(own, lambda argv: ToolResult("failed", "none\n", "", 1)) == "none"  # bare metal
    assert virtualization(own, lambda argv: ToolResult("ok", "docker\n", "", 0)) == "docker"
    # No tool, or an answer that is not one word: the file heuristics decide (this machine's).
    fallback = virtualization(own, lambda argv: ToolResult("missing"))
    assert re.fullmatch(r"[a-z0-9_-]+", fallback)
    no_bus = ToolResult("failed", "", "Failed to connect to bus", 1)
    assert virtualization(own, lambda argv: no_bus) == fallback


def test_virtualization_heuristics(tmp_path: Path) -> None:
    def paths() -> HostPaths:
        return HostPaths(proc_root=tmp_path / "proc", sys_root=tmp_path / "sys", rootfs=tmp_path / "root")

    def write(rel: str, text: str) -> None:
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)

    # A rootfs other than "/" is a host seen from a container: the tool would describe the
    # container, so it is not asked.
    asked: list[list[str]] = []
    assert virtualization(paths(), lambda argv: asked.append(argv) or ToolResult("ok", "kvm\n")) == "none"
    assert asked == []
    write("proc/cpuinfo", "processor\t: 0\nflags\t\t: fpu vme hypervisor lahf_lm\n")
    assert virtualization(paths()) == "vm-other"
    write("sys/class/dmi/id/product_name", "VMware Virtual Platform\n")
    assert virtualization(paths()) == "vmware"
    write("proc/1/cgroup", "0::/kubepods.slice/kubepods-burstable.slice/cri-containerd-0123.scope\n")
    assert virtualization(paths()) == "kubernetes"
    write("root/.dockerenv", "")
    assert virtualization(paths()) == "docker"


def test_host_timezone_from_localtime_link_then_etc_timezone(tmp_path):
    from warden.agent.probes.system import host_timezone

    (tmp_path / "etc").mkdir()
    assert host_timezone(tmp_path) == ""
    (tmp_path / "etc/timezone").write_text("America/New_York\n")
    assert host_timezone(tmp_path) == "America/New_York"
    (tmp_path / "etc/localtime").symlink_to("/usr/share/zoneinfo/Europe/Paris")
    assert host_timezone(tmp_path) == "Europe/Paris"
