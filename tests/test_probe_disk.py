import dataclasses
import json
import os
import re
import stat
import sys
import threading
import time
from collections import namedtuple
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import pytest

from warden.agent.config import ConfigError, load_config
from warden.agent.probes import HostPaths, registered
from warden.agent.probes._smartctl import (
    MAX_OUTPUT_BYTES,
    RunResult,
    find_smartctl,
    parse_device,
    parse_scan,
    run_bounded,
)
from warden.agent.probes.disk import (
    DiskOptions,
    DiskProbe,
    KernelErrorCounter,
    _Series,
    classify_kernel_line,
    days_to_full,
)
from warden.agent.scheduler import build_probes
from warden.v1 import records_pb2

FIXTURES = Path(__file__).parent / "fixtures" / "disk"
CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "loghub" / "Linux_2k.log"

sdiskpart = namedtuple("sdiskpart", "device mountpoint fstype opts")
statvfs_result = namedtuple(
    "statvfs_result", "f_bsize f_frsize f_blocks f_bfree f_bavail f_files f_ffree f_flag"
)
GiB = 1024**3
MiB = 1024**2


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def metrics(out: Iterable[records_pb2.Record]) -> list[records_pb2.MetricSample]:
    return [r.metric for r in out if r.HasField("metric")]


def events(out: Iterable[records_pb2.Record]) -> list[records_pb2.Event]:
    return [r.event for r in out if r.HasField("event")]


def health_sections(out: Iterable[records_pb2.Record]) -> list[records_pb2.DiskHealthSection]:
    return [r.inventory.disk_health for r in out if r.HasField("inventory")]


def by_device(out: Iterable[records_pb2.Record], name: str) -> dict[str, float]:
    return {m.labels["device"]: m.value for m in metrics(out) if m.name == name}


def fs_stat(used: int, total: int = 100 * GiB, ro: bool = False) -> statvfs_result:
    bs = 4096
    free = (total - used) // bs
    return statvfs_result(bs, bs, total // bs, free, free, 1000, 500, os.ST_RDONLY if ro else 0)


class FakeHost:
    """Mount table and statvfs answers the tests change between runs."""

    def __init__(self, **mounts: str) -> None:
        self.devices = {f"/{k}" if k != "root" else "/": v for k, v in mounts.items()}
        self.stats: dict[str, statvfs_result] = {p: fs_stat(10 * GiB) for p in self.devices}

    def partitions(self) -> list[sdiskpart]:
        return [
            sdiskpart(dev, mp, "ext4", "ro" if self.stats[mp].f_flag & os.ST_RDONLY else "rw")
            for mp, dev in self.devices.items()
        ]

    def statvfs(self, path: str) -> statvfs_result:
        for mp in sorted(self.stats, key=len, reverse=True):  # the longest mount point that fits
            if mp == "/" or path.endswith(mp):
                return self.stats[mp]
        raise FileNotFoundError(path)


class Clock:
    def __init__(self, t: float = 1_700_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def make_probe(
    tmp_path: Path,
    host: FakeHost | None = None,
    clock: Callable[[], float] = time.time,
    state: str | None = "state",
    **opts: object,
) -> DiskProbe:
    host = host or FakeHost()
    opts.setdefault("smart", False)
    return DiskProbe(
        DiskOptions(**opts),  # type: ignore[arg-type]
        HostPaths(rootfs=tmp_path),
        tmp_path / state if state else None,
        statvfs=host.statvfs,
        partitions=host.partitions,
        clock=clock,
    )


# --- registration and options --------------------------------------------------------------------


def test_registered_with_documented_defaults() -> None:
    spec = registered()["disk"]
    assert spec.cls is DiskProbe and spec.config is DiskOptions
    assert spec.default_interval_seconds == 60 and spec.default_enabled
    o = DiskOptions()
    assert (o.growth_window_seconds, o.growth_min_span_seconds, o.smartctl_timeout_seconds) == (
        21600,
        1800,
        20,
    )
    assert o.smart and o.smartctl_path == "smartctl" and o.smartctl_devices == ()


def test_options_are_checked() -> None:
    with pytest.raises(ValueError, match="growth_min_span_seconds"):
        DiskOptions(growth_window_seconds=600, growth_min_span_seconds=600)
    with pytest.raises(ValueError, match="exclude_mounts"):
        DiskProbe(DiskOptions(exclude_mounts=("mnt",)), HostPaths()).validate()


# --- real runs on this machine -------------------------------------------------------------------


def test_real_machine(tmp_path: Path) -> None:
    probe = DiskProbe(DiskOptions(smart_interval_seconds=0.01), HostPaths(), tmp_path / "disk")
    probe.validate()
    first = probe.collect()
    time.sleep(0.02)
    second = probe.collect()
    for out in (first, second):
        assert all(isinstance(r, records_pb2.Record) and r.WhichOneof("kind") for r in out)
        assert all(m.name.startswith("disk_") for m in metrics(out))
    # Nothing remounted read-only between two runs a few ms apart.
    ro = [m for m in metrics(second) if m.name == "disk_filesystem_readonly_remount"]
    assert ro and all(m.value == 0 and set(m.labels) == {"mount", "device"} for m in ro)
    assert not [e for e in events(second) if e.kind == "disk.readonly_remount"]
    # Per-mount usage is the system probe's: not repeated under new names.
    assert not [m for m in metrics(first) if "used" in m.name or "free" in m.name or "inode" in m.name]

    (section,) = health_sections(first)
    unavailable = [e for e in events(first) if e.kind == "agent.probe_unavailable"]
    if find_smartctl("smartctl") is None:
        assert section.error == "smartctl not installed" and not section.devices
        (ev,) = unavailable
        assert ev.fields["error"].string_value == "smartctl not installed"
    elif os.geteuid() == 0:
        assert not unavailable  # installed and root: whatever it finds, it is not "unavailable"
    assert not [e for e in events(second) if e.kind == "agent.probe_unavailable"]  # once
    assert health_sections(second) == []  # unchanged: not resent

    state = tmp_path / "disk" / "state.json"
    assert stat.S_IMODE(state.stat().st_mode) == 0o600
    assert stat.S_IMODE(state.parent.stat().st_mode) == 0o700
    assert json.loads(state.read_text())["version"] == 1


def test_real_smartctl_missing_is_reported_once(tmp_path: Path) -> None:
    probe = DiskProbe(
        DiskOptions(smartctl_path=str(tmp_path / "no" / "smartctl"), smart_interval_seconds=0.01),
        HostPaths(),
        None,
    )
    out = probe.collect()
    (section,) = health_sections(out)
    assert section.error == "smartctl not installed"
    (ev,) = events(out)
    assert ev.kind == "agent.probe_unavailable" and ev.severity == records_pb2.SEVERITY_WARNING
    assert {k: v.string_value for k, v in ev.fields.items()} == {
        "probe": "disk",
        "feature": "smart",
        "error": "smartctl not installed",
    }
    time.sleep(0.02)
    out = probe.collect()
    assert events(out) == [] and health_sections(out) == []


@pytest.mark.skipif(find_smartctl("smartctl") is None, reason="smartmontools not installed (never required)")
def test_real_smartctl_scan_parses(tmp_path: Path) -> None:
    exe = find_smartctl("smartctl")
    assert exe is not None
    res = run_bounded([exe, "--scan-open", "--json"], 20)
    assert res.returncode is not None and res.returncode & 0b11 == 0
    scan = parse_scan(res.stdout, res.returncode)
    assert not scan.error
    assert all(d.name.startswith("/dev/") and d.label for d in scan.devices)


# --- smartctl JSON parsing (fixtures from real disks) --------------------------------------------


def test_parse_sata_disk() -> None:
    r = parse_device(fixture("sata_wdc_wd20efrx.json"), returncode=0)
    assert not r.error and r.passed is True and r.disk_problems == []
    h = r.health
    assert h is not None
    assert (h.device, h.model, h.serial) == ("/dev/sda", "WDC WD20EFRX-68EUZN0", "REDACTED")
    assert h.protocol == "ATA"
    assert h.smart_passed
    assert (h.reallocated_sectors, h.pending_sectors, h.temperature_c, h.power_on_hours) == (0, 0, 33, 71605)
    assert (h.media_errors, h.percentage_used) == (-1, -1)  # not NVMe: not reported


def test_parse_nvme_disks() -> None:
    r = parse_device(fixture("nvme_samsung_mzvl21t0.json"), "/dev/nvme0")
    h = r.health
    assert h is not None and r.passed is True
    assert (h.model, h.protocol) == ("SAMSUNG MZVL21T0HCLR-00B00", "NVMe")
    assert (h.temperature_c, h.power_on_hours, h.media_errors, h.percentage_used) == (29, 10423, 0, 16)
    assert (h.reallocated_sectors, h.pending_sectors) == (-1, -1)

    r = parse_device(fixture("nvme_samsung_970evo_media_errors.json"))
    h = r.health
    assert h is not None and r.passed is True
    assert (h.device, h.serial) == ("/dev/nvme0", "S466NX0M776250H")
    assert (h.temperature_c, h.power_on_hours, h.media_errors, h.percentage_used) == (35, 12798, 7, 3)


def test_parse_failing_disk_and_exit_status_bits() -> None:
    r = parse_device(fixture("sata_hitachi_hds721050_failing.json"), "/dev/sdc", returncode=216)
    h = r.health
    assert h is not None and not r.error  # exit status 216 is a verdict on the disk, not a failed run
    assert r.passed is False and not h.smart_passed
    assert (h.reallocated_sectors, h.pending_sectors, h.power_on_hours) == (1975, 8, 65592)
    # temperature.current, not attribute 194's packed raw value 167504969753.
    assert h.temperature_c == 25
    assert r.disk_problems == [
        "SMART status DISK FAILING",
        "prefail attributes at or below threshold",
        "device error log has entries",
        "self-test log has errors",
    ]
    # The process's status wins over the JSON's; without one, the JSON's is used.
    assert parse_device(fixture("sata_hitachi_hds721050_failing.json")).exit_status == 216


def test_failing_verdict_from_the_exit_status_alone() -> None:
    doc = {"json_format_version": [1, 0], "device": {"name": "/dev/sdx", "protocol": "ATA"}}
    assert parse_device(json.dumps(doc), returncode=8).passed is False
    r = parse_device(json.dumps(doc), returncode=0)
    assert r.passed is None and r.health is not None  # unknown, not "passed"


def test_parse_missing_and_mistyped_fields() -> None:
    doc = json.loads(fixture("sata_wdc_wd20efrx.json"))
    for key in ("model_name", "serial_number", "smart_status", "power_on_time", "ata_smart_attributes"):
        del doc[key]
    doc["temperature"] = {"current": "hot"}
    r = parse_device(json.dumps(doc))
    h = r.health
    assert h is not None and r.passed is None
    assert (h.model, h.serial) == ("", "")
    assert (h.reallocated_sectors, h.pending_sectors, h.temperature_c, h.power_on_hours) == (-1, -1, -1, -1)

    doc = json.loads(fixture("nvme_samsung_mzvl21t0.json"))
    log = doc["nvme_smart_health_information_log"]
    log["media_errors"] = 2**70  # NVMe counters are 128-bit; past int64 is "not reported"
    log["percentage_used"] = True
    del doc["temperature"], doc["power_on_time"]
    h = parse_device(json.dumps(doc)).health
    assert h is not None
    assert (h.media_errors, h.percentage_used, h.temperature_c, h.power_on_hours) == (-1, -1, 29, 10423)


@pytest.mark.parametrize(
    "data, expect",
    [
        (fixture("sata_wdc_wd20efrx.json")[:4000], "not valid JSON"),
        (fixture("nvme_samsung_mzvl21t0.json")[:-2], "not valid JSON"),
        (b"\x00\xff\xfe garbage \x1b[0m", "not valid JSON"),
        (b"", "printed nothing"),
        (b"[1, 2, 3]", "not a JSON object"),
        (b"[" * 100_000, "not valid JSON"),  # nesting deeper than the parser goes
        (b'{"device": {"name": "/dev/sda"}}', "json_format_version"),
        (b'{"json_format_version": [2, 0]}', "json_format_version"),
        (b'{"json_format_version": [1, 0], "smartctl": {"exit_status": 0}}', "no device data"),
    ],
)
def test_bad_output_is_a_status(data: bytes, expect: str) -> None:
    r = parse_device(data, "/dev/sda", returncode=0)
    assert r.health is None and expect in r.error and r.label == "/dev/sda"
    assert expect in parse_scan(data).error or expect == "no device data"


def test_open_failures_from_this_vm() -> None:
    r = parse_device(fixture("vm_open_permission_denied.json"), "/dev/vda", returncode=2)
    assert r.health is None and r.permission_denied and not r.low_power
    assert "Permission denied" in r.error
    r = parse_device(fixture("vm_unknown_device_type.json"), "/dev/vda", returncode=1)
    assert r.health is None and not r.permission_denied and "Unable to detect device type" in r.error


# What smartctl prints for -n standby (its format "Device is in %s mode, exit(%d)").
STANDBY = {
    "json_format_version": [1, 0],
    "smartctl": {"exit_status": 2, "messages": [{"string": "Device is in STANDBY mode, exit(2)"}]},
}
NO_SMART = {
    "json_format_version": [1, 0],
    "device": {"name": "/dev/sdg", "protocol": "SCSI"},
    "smart_support": {"available": False},
}


def test_standby_and_no_smart_support() -> None:
    r = parse_device(json.dumps(STANDBY), "/dev/sdb")
    assert r.low_power and not r.permission_denied and r.health is None
    r = parse_device(json.dumps(NO_SMART), returncode=4)
    assert not r.smart_available and r.health is None
    doc = json.loads(fixture("sata_wdc_wd20efrx.json"))
    doc["smart_support"]["enabled"] = False
    r = parse_device(json.dumps(doc), returncode=4)
    assert r.smart_available and r.health is None and "SMART is disabled" in r.error


def test_parse_scan_fixtures() -> None:
    assert parse_scan(fixture("vm_scan_open_no_devices.json"), 0).devices == []
    scan = parse_scan(fixture("scan_seven_scsi.json"), 0)
    assert [d.label for d in scan.devices] == [f"/dev/sd{c}" for c in "abcdefg"]
    assert scan.devices[0].argv() == ["--device", "scsi", "/dev/sda"]
    # One controller, two disks: the type tells them apart.
    scan = parse_scan(fixture("scan_megaraid.json"))
    assert [d.label for d in scan.devices] == ["/dev/bus/0 [megaraid,0]", "/dev/bus/0 [megaraid,1]"]
    assert scan.devices[1].argv() == ["--device", "megaraid,1", "/dev/bus/0"]


def test_parse_scan_open_errors() -> None:
    doc = json.loads(fixture("scan_megaraid.json"))
    for d in doc["devices"]:
        d["open_error"] = f"{d['name']}: Permission denied"
    scan = parse_scan(json.dumps(doc))
    assert scan.devices == [] and scan.permission_denied and "Permission denied" in scan.error
    doc["devices"][0]["open_error"] = ""
    scan = parse_scan(json.dumps(doc))
    assert [d.type for d in scan.devices] == ["megaraid,0"] and not scan.error


# --- running smartctl within bounds --------------------------------------------------------------


def py(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_run_bounded_ok_and_failures(tmp_path: Path) -> None:
    # A non-zero status with output is a result (smartctl's bitmask), and a flood on stderr
    # does not block the child.
    res = run_bounded(py("import sys; print('{}'); sys.stderr.write('x' * 200000); sys.exit(4)"), 10)
    assert (res.returncode, res.stdout.strip(), res.error) == (4, "{}", "")

    t0 = time.monotonic()
    res = run_bounded(py("import time; print('partial', flush=True); time.sleep(30)"), 0.5)
    assert time.monotonic() - t0 < 5
    assert res.returncode is None and res.error == "timed out after 0.5s"

    res = run_bounded(py("import sys; sys.stdout.write('x' * (5 * 1024 * 1024))"), 10)
    assert res.returncode is None and res.error == f"output exceeds {MAX_OUTPUT_BYTES} bytes"
    assert len(res.stdout) <= MAX_OUTPUT_BYTES

    res = run_bounded([str(tmp_path / "missing")], 1)
    assert res.returncode is None and res.error.startswith("cannot run")
    script = tmp_path / "not-executable"
    script.write_text("#!/bin/sh\n")
    assert run_bounded([str(script)], 1).error.startswith("cannot run")


def test_find_smartctl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "bin" / "smartctl"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\n")
    assert find_smartctl(str(fake)) is None  # not executable
    fake.chmod(0o755)
    assert find_smartctl(str(fake)) == str(fake)
    monkeypatch.setenv("PATH", str(fake.parent))
    assert find_smartctl("smartctl") == str(fake)
    assert find_smartctl("no-such-tool-here") is None


# --- the probe's SMART part, with fixtures behind a fake runner ----------------------------------


class FakeSmartctl:
    """Answers smartctl command lines from fixtures: device name -> (stdout, returncode) or a failure."""

    def __init__(self, scan: bytes, devices: dict[str, RunResult]) -> None:
        self.scan = RunResult(0, scan)
        self.devices = devices
        self.calls: list[list[str]] = []
        self.lock = threading.Lock()

    def __call__(self, argv: Sequence[str], timeout: float) -> RunResult:
        with self.lock:
            self.calls.append(list(argv))
        assert timeout == 20
        if "--scan-open" in argv:
            return self.scan
        assert "--nocheck=standby" in argv and "--json" in argv
        return self.devices[argv[-1]]


def ok(name: str, code: int = 0) -> RunResult:
    return RunResult(code, fixture(name))


def smart_probe(tmp_path: Path, fake: FakeSmartctl, **opts: object) -> DiskProbe:
    opts.setdefault("smart_interval_seconds", 0.001)
    return DiskProbe(
        DiskOptions(**opts),  # type: ignore[arg-type]
        HostPaths(rootfs=tmp_path),
        None,
        partitions=list,
        smartctl_run=fake,
        which=lambda name: "/usr/sbin/smartctl",
    )


def test_smart_metrics_inventory_and_per_device_failures(tmp_path: Path) -> None:
    fake = FakeSmartctl(
        fixture("scan_seven_scsi.json"),
        {
            "/dev/sda": ok("sata_wdc_wd20efrx.json"),
            "/dev/sdb": ok("sata_hitachi_hds721050_failing.json", 216),
            "/dev/sdc": ok("nvme_samsung_970evo_media_errors.json"),
            "/dev/sdd": ok("vm_open_permission_denied.json", 2),
            "/dev/sde": RunResult(0, fixture("sata_wdc_wd20efrx.json")[:1000]),
            "/dev/sdf": RunResult(None, b"", "timed out after 20s"),
            "/dev/sdg": RunResult(4, json.dumps(NO_SMART).encode()),
        },
    )
    probe = smart_probe(tmp_path, fake)
    out = probe.collect()
    assert fake.calls[1][-3:] == ["--device", "scsi", "/dev/sda"]

    passed = {m.labels["device"]: (m.value, m.labels["model"], m.labels["serial"])
              for m in metrics(out) if m.name == "disk_smart_passed"}
    assert passed == {
        "/dev/sda": (1.0, "WDC WD20EFRX-68EUZN0", "REDACTED"),
        "/dev/sdb": (0.0, "Hitachi HDS721050DLE630", "MSK423Y20S3HBC"),
        "/dev/sdc": (1.0, "Samsung SSD 970 EVO 500GB", "S466NX0M776250H"),
    }
    assert by_device(out, "disk_reallocated_sectors") == {"/dev/sda": 0, "/dev/sdb": 1975}
    assert by_device(out, "disk_pending_sectors") == {"/dev/sda": 0, "/dev/sdb": 8}
    assert by_device(out, "disk_temperature_celsius") == {"/dev/sda": 33, "/dev/sdb": 25, "/dev/sdc": 35}
    assert by_device(out, "disk_power_on_hours") == {"/dev/sda": 71605, "/dev/sdb": 65592, "/dev/sdc": 12798}
    assert by_device(out, "disk_nvme_media_errors") == {"/dev/sdc": 7}
    assert by_device(out, "disk_nvme_percentage_used") == {"/dev/sdc": 3}
    assert by_device(out, "disk_smart_read_success") == {
        "/dev/sda": 1, "/dev/sdb": 1, "/dev/sdc": 1, "/dev/sdd": 0, "/dev/sde": 0, "/dev/sdf": 0,
    }
    (section,) = health_sections(out)
    assert [d.device for d in section.devices] == ["/dev/sda", "/dev/sdb", "/dev/sdc"]
    assert [d.smart_passed for d in section.devices] == [True, False, True]
    assert "/dev/sdd: Smartctl open device" in section.error and "Permission denied" in section.error
    assert "/dev/sde: smartctl output is not valid JSON" in section.error
    assert "/dev/sdf: timed out after 20s" in section.error and "/dev/sdg" not in section.error
    assert events(out) == []  # one device denied is a device error, not "SMART unavailable"

    # Same data again: metrics again, inventory not resent.
    time.sleep(0.002)
    out = probe.collect()
    assert health_sections(out) == [] and len(by_device(out, "disk_smart_passed")) == 3

    # Only the temperature moved: still no resend (the metric carries it).
    doc = json.loads(fixture("sata_wdc_wd20efrx.json"))
    doc["temperature"]["current"] = 41
    fake.devices["/dev/sda"] = RunResult(0, json.dumps(doc).encode())
    time.sleep(0.002)
    out = probe.collect()
    assert health_sections(out) == [] and by_device(out, "disk_temperature_celsius")["/dev/sda"] == 41

    # A verdict changed: resent at once.
    fake.devices["/dev/sda"] = ok("sata_hitachi_hds721050_failing.json", 216)
    time.sleep(0.002)
    (section,) = health_sections(probe.collect())
    assert [d.smart_passed for d in section.devices] == [False, False, True]


def test_standby_disk_keeps_its_last_reading(tmp_path: Path) -> None:
    fake = FakeSmartctl(fixture("scan_megaraid.json"), {})
    fake.devices["/dev/bus/0"] = ok("sata_wdc_wd20efrx.json")
    probe = smart_probe(tmp_path, fake)
    (section,) = health_sections(probe.collect())
    assert [d.device for d in section.devices] == ["/dev/bus/0 [megaraid,0]", "/dev/bus/0 [megaraid,1]"]
    fake.devices["/dev/bus/0"] = RunResult(2, json.dumps(STANDBY).encode())
    time.sleep(0.002)
    out = probe.collect()
    assert [m for m in metrics(out)] == [] and health_sections(out) == [] and events(out) == []


def test_smart_unavailable_reported_once_per_reason(tmp_path: Path) -> None:
    denied = ok("vm_open_permission_denied.json", 2)
    fake = FakeSmartctl(fixture("scan_megaraid.json"), {"/dev/bus/0": denied})
    installed = {"path": None}
    probe = DiskProbe(
        DiskOptions(smart_interval_seconds=0.001),
        HostPaths(rootfs=tmp_path),
        None,
        partitions=list,
        smartctl_run=fake,
        which=lambda name: installed["path"],
    )

    def run() -> tuple[list[str], list[records_pb2.DiskHealthSection]]:
        time.sleep(0.002)
        out = probe.collect()
        return [e.fields["error"].string_value for e in events(out)], health_sections(out)

    evs, (section,) = run()
    assert evs == ["smartctl not installed"] and section.error == "smartctl not installed"
    assert run() == ([], [])

    installed["path"] = "/usr/sbin/smartctl"  # installed, but the agent is not root
    evs, (section,) = run()
    assert len(evs) == 1 and evs[0].startswith("permission denied") and "Permission denied" in evs[0]
    assert section.error == evs[0] and not section.devices
    assert run() == ([], [])

    fake.scan = RunResult(None, "", "cannot run /usr/sbin/smartctl: permission denied")  # not executable
    evs, _ = run()
    assert len(evs) == 1 and evs[0].endswith("cannot run /usr/sbin/smartctl: permission denied")

    fake.scan = RunResult(0, fixture("scan_megaraid.json"))
    fake.devices["/dev/bus/0"] = ok("nvme_samsung_mzvl21t0.json")
    evs, (section,) = run()
    assert evs == [] and not section.error and len(section.devices) == 2

    installed["path"] = None  # uninstalled again: reported again
    evs, _ = run()
    assert evs == ["smartctl not installed"]


def test_scan_failures_are_a_section_error(tmp_path: Path) -> None:
    fake = FakeSmartctl(b"{ truncated", {})
    probe = smart_probe(tmp_path, fake)
    out = probe.collect()
    (section,) = health_sections(out)
    assert section.error.startswith("smartctl --scan-open: smartctl output is not valid JSON")
    assert events(out) == []
    fake.scan = RunResult(None, b"", "timed out after 20s")
    time.sleep(0.002)
    (section,) = health_sections(probe.collect())
    assert section.error == "smartctl --scan-open: timed out after 20s"


def test_configured_devices_skip_the_scan(tmp_path: Path) -> None:
    fake = FakeSmartctl(b"", {"/dev/nvme0": ok("nvme_samsung_mzvl21t0.json")})
    probe = smart_probe(tmp_path, fake, smartctl_devices=("/dev/nvme0",))
    (section,) = health_sections(probe.collect())
    assert [d.device for d in section.devices] == ["/dev/nvme0"]
    assert fake.calls == [["/usr/sbin/smartctl", *probe_args(), "/dev/nvme0"]]


def probe_args() -> list[str]:
    return ["--json", "--info", "--health", "--attributes", "--nocheck=standby"]


def test_smart_disabled(tmp_path: Path) -> None:
    fake = FakeSmartctl(b"", {})
    probe = smart_probe(tmp_path, fake, smart=False)
    out = probe.collect()
    assert health_sections(out) == [] and events(out) == [] and fake.calls == []


# --- read-only remounts --------------------------------------------------------------------------


def test_readonly_remount_event_and_metric(tmp_path: Path) -> None:
    host = FakeHost(root="/dev/sda1", data="/dev/sdb1")
    probe = make_probe(tmp_path, host)

    def run() -> tuple[dict[str, float], list[records_pb2.Event]]:
        out = probe.collect()
        flags = {
            m.labels["mount"]: m.value for m in metrics(out) if m.name == "disk_filesystem_readonly_remount"
        }
        return flags, [e for e in events(out) if e.kind == "disk.readonly_remount"]

    assert run() == ({"/": 0, "/data": 0}, [])
    host.stats["/data"] = fs_stat(10 * GiB, ro=True)  # ext4 errors=remount-ro
    flags, (ev,) = run()
    assert flags == {"/": 0, "/data": 1}
    assert ev.severity == records_pb2.SEVERITY_ERROR and ev.source == "probe:disk"
    assert {k: v.string_value for k, v in ev.fields.items()} == {
        "mount": "/data", "device": "/dev/sdb1", "fstype": "ext4",
    }
    assert run() == ({"/": 0, "/data": 1}, [])  # still ro: flagged, not re-reported
    host.stats["/data"] = fs_stat(10 * GiB)
    assert run() == ({"/": 0, "/data": 0}, [])


def test_remount_during_an_agent_restart_is_caught(tmp_path: Path) -> None:
    host = FakeHost(data="/dev/sdb1", ro="/dev/sdc1")
    host.stats["/ro"] = fs_stat(GiB, ro=True)  # read-only from the start: not a remount
    probe = make_probe(tmp_path, host)
    assert not [e for e in events(probe.collect()) if e.kind == "disk.readonly_remount"]

    host.stats["/data"] = fs_stat(GiB, ro=True)
    restarted = make_probe(tmp_path, host)
    evs = [e for e in events(restarted.collect()) if e.kind == "disk.readonly_remount"]
    assert [e.fields["mount"].string_value for e in evs] == ["/data"]

    # Another filesystem mounted there is a new mount, not a remount.
    host.devices["/data"] = "/dev/sdd1"
    host.stats["/data"] = fs_stat(GiB)
    again = make_probe(tmp_path, host)
    again.collect()
    host.devices["/data"] = "/dev/sde1"
    host.stats["/data"] = fs_stat(GiB, ro=True)
    assert not [e for e in events(again.collect()) if e.kind == "disk.readonly_remount"]


@pytest.mark.parametrize(
    "content",
    [b"", b"{not json", b"[]", b'{"version": 99}', b'{"version": 1, "mounts": {"/": 5}, "growth": []}'],
)
def test_damaged_state_file_is_ignored(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "state.json").write_bytes(content)
    out = make_probe(tmp_path, FakeHost(root="/dev/sda1")).collect()
    assert [m.value for m in metrics(out) if m.name == "disk_filesystem_readonly_remount"] == [0]
    assert json.loads((tmp_path / "state" / "state.json").read_text())["version"] == 1  # rewritten


def test_unwritable_state_dir_does_not_stop_the_probe(tmp_path: Path) -> None:
    (tmp_path / "state").write_text("a file where the directory should be")
    out = make_probe(tmp_path, FakeHost(root="/dev/sda1")).collect()
    assert [m.name for m in metrics(out)] == ["disk_filesystem_readonly_remount"]


# --- days to full --------------------------------------------------------------------------------


def test_days_to_full_from_recent_growth(tmp_path: Path) -> None:
    host = FakeHost(data="/dev/sdb1", flat="/dev/sdc1")
    clock = Clock()
    probe = make_probe(tmp_path, host, clock)
    growth = 1 * MiB  # per minute

    def step(minutes: int) -> dict[str, float]:
        used = 10 * GiB + minutes * growth
        host.stats["/data"] = fs_stat(used)
        clock.t = 1_700_000_000.0 + 60 * minutes
        out = probe.collect()
        return {m.labels["mount"]: m.value for m in metrics(out) if m.name == "disk_filesystem_days_to_full"}

    for minute in range(30):
        assert step(minute) == {}  # under 30 min of history: no estimate
    est = step(30)
    assert set(est) == {"/data"}  # the flat filesystem is not growing: nothing, not +inf
    avail = fs_stat(10 * GiB + 30 * growth).f_bavail * 4096
    assert est["/data"] == pytest.approx(avail / (growth / 60) / 86400, rel=1e-6)

    # The estimate survives a restart (samples persisted in the state dir).
    restarted = make_probe(tmp_path, host, clock)
    probe = restarted
    est = step(31)
    avail = fs_stat(10 * GiB + 31 * growth).f_bavail * 4096
    assert est["/data"] == pytest.approx(avail / (growth / 60) / 86400, rel=1e-6)

    # Shrinking (a clean-up): no estimate.
    for minute in range(32, 100):
        host.stats["/data"] = fs_stat(10 * GiB - (minute - 31) * 10 * MiB)
        clock.t = 1_700_000_000.0 + 60 * minute
        out = probe.collect()
    assert not [m for m in metrics(out) if m.name == "disk_filesystem_days_to_full"]


def test_growth_window_is_bounded() -> None:
    series = _Series("/dev/sdb1")
    t = 1_700_000_000.0
    for i in range(100_000):  # a run every second for a day, far more than samples kept
        t += 1
        series.add(t, float(i), 3600)
    assert len(series.samples) <= 513
    assert series.samples[-1][0] - series.samples[0][0] <= 3600
    assert series.slope(600, 5) == pytest.approx(1.0)


def test_clock_stepping_back_restarts_the_series(tmp_path: Path) -> None:
    host = FakeHost(data="/dev/sdb1")
    clock = Clock()
    probe = make_probe(tmp_path, host, clock)
    for i in range(5):
        clock.t += 60
        host.stats["/data"] = fs_stat(10 * GiB + i * MiB)
        probe.collect()
    state = json.loads((tmp_path / "state" / "state.json").read_text())
    assert len(state["growth"]["/data"]["samples"]) == 5
    clock.t -= 86400  # NTP stepped the clock back a day
    probe.collect()
    state = json.loads((tmp_path / "state" / "state.json").read_text())
    assert len(state["growth"]["/data"]["samples"]) == 1


def test_days_to_full_function() -> None:
    assert days_to_full(None, GiB) is None
    assert days_to_full(0.0, GiB) is None
    assert days_to_full(-5.0, GiB) is None
    assert days_to_full(GiB / 86400, GiB) == pytest.approx(1.0)
    assert days_to_full(1e-320, GiB) is None  # overflows to inf: the collector refuses non-finite values


# --- kernel I/O and filesystem error lines -------------------------------------------------------

# Lines built from the printk formats in the kernel sources (file and function named), with the
# syslog/dmesg prefixes they arrive with; the last two are real lines quoted on linux-xfs.
KERNEL_ERRORS = [
    # block/blk-core.c end_request() (2.6): "end_request: I/O error, dev %s, sector %llu"
    ("Jul 27 14:42:00 combo kernel: end_request: I/O error, dev hda, sector 1261", "io", "hda"),
    # block/blk-core.c print_req_error() called from blk_update_request (4.x)
    ("[ 1234.567890] blk_update_request: I/O error, dev sda, sector 2048 op 0x0:(READ) flags 0x0 "
     "phys_seg 1 prio class 0", "io", "sda"),
    # the same, 5.x caller name
    ("kernel: print_req_error: I/O error, dev nvme0n1, sector 123456 flags 80700", "io", "nvme0n1"),
    # block/blk-mq.c blk_print_req_error() (6.x): no caller prefix
    ("kernel: I/O error, dev sdb, sector 977104 op 0x1:(WRITE) flags 0x800 phys_seg 1 prio class 2",
     "io", "sdb"),
    ("kernel: critical target error, dev sdc, sector 0 op 0x0:(READ) flags 0x0 phys_seg 1 prio class 0",
     "io", "sdc"),
    ("kernel: timeout error, dev sdd, sector 8 op 0x0:(READ) flags 0x80700 phys_seg 1 prio class 0",
     "io", "sdd"),
    ("kernel: I/O error, dev ?, sector 0 op 0x0:(READ) flags 0x0 phys_seg 1 prio class 0", "io", "unknown"),
    # fs/buffer.c buffer_io_error(): "Buffer I/O error on dev %pg, logical block %llu%s"
    ("kernel: Buffer I/O error on dev sda1, logical block 0, async page read", "io", "sda1"),
    ("Buffer I/O error on device dm-0, logical block 1234", "io", "dm-0"),  # 2.6 wording
    # fs/ext4/super.c __ext4_error(): "EXT4-fs error (device %s): %s:%d: comm %s: %pV"
    ("kernel: EXT4-fs error (device sda1): ext4_lookup:1855: inode #2: comm ls: deleted inode referenced: 12",
     "fs", "sda1"),
    ("EXT3-fs error (device md0): ext3_find_entry: reading directory #2 offset 0", "fs", "md0"),
    # ext4_msg(sb, KERN_ERR, ...)
    ("kernel: EXT4-fs (dm-1): I/O error while writing superblock", "fs", "dm-1"),
    # fs/xfs/xfs_message.c: "XFS (%s): %pV"
    ("kernel: XFS (dm-0): Corruption detected. Unmount and run xfs_repair", "fs", "dm-0"),
    ("kernel: XFS (sda2): Metadata corruption detected at xfs_buf_ioend+0x58/0x1b0 [xfs], "
     "xfs_inode block 0x60", "fs", "sda2"),
    ("kernel: XFS (sdb1): xfs_do_force_shutdown(0x2) called from line 1196 of file fs/xfs/xfs_log.c.",
     "fs", "sdb1"),
    ("kernel: XFS (sdb1): log I/O error -5", "fs", "sdb1"),
    # fs/btrfs/messages.c: "BTRFS %s (device %s%s): %pV" (with "state X" since 6.x)
    ("kernel: BTRFS error (device sda3): bdev /dev/sda3 errs: wr 0, rd 1, flush 0, corrupt 0, gen 0",
     "fs", "sda3"),
    ("kernel: BTRFS critical (device nvme0n1p2 state EA): corrupt leaf: root=5 block=123 slot=4", "fs",
     "nvme0n1p2"),
    ("kernel: BTRFS warning (device sdb): csum failed root 5 ino 257 off 0 csum 0x8941f998 expected csum "
     "0x00000000 mirror 1", "fs", "sdb"),
    # Real, from linux-xfs (2023): a SCSI medium error and XFS reporting it.
    ("critical medium error, dev sdad, sector 2615107192 op 0x0:(READ) flags 0x1000 phys_seg 1 prio class 2",
     "io", "sdad"),
    ('XFS (sdad1): metadata I/O error in "xfs_da_read_buf+0xe1/0x140 [xfs]" at daddr 0x9bdf5678 len 8 '
     "error 61", "fs", "sdad1"),
]

NOT_ERRORS = [
    # Harmless block-layer statuses: discard/write-zeroes on loop devices and VMs.
    "kernel: blk_update_request: operation not supported error, dev loop0, sector 0 op 0x9:(WRITE_ZEROES)",
    "kernel: EXT4-fs (sda1): mounted filesystem with ordered data mode. Opts: errors=remount-ro",
    "kernel: EXT4-fs (sda1): error count since last fsck: 3",  # the daily reminder, not a new error
    "kernel: EXT4-fs warning (device sda1): ext4_dx_add_entry:2461: Directory index full!",
    "kernel: XFS (sda1): Mounting V5 Filesystem",
    "kernel: XFS (sda1): Ending clean mount",
    "kernel: BTRFS info (device sda1): disk space caching is enabled",
    "kernel: BTRFS warning (device sda1): block group 123 has wrong amount of free space",
    "sshd[123]: error: kex_exchange_identification: Connection closed by remote host",
    "kernel: ata1.00: error: { UNC }",  # the ATA layer's view; the block layer's line is counted
    "kernel: sd 0:0:0:0: [sda] tag#0 Sense Key : Medium Error [current]",
    "",
]


@pytest.mark.parametrize("line, kind, device", KERNEL_ERRORS)
def test_classify_kernel_error_lines(line: str, kind: str, device: str) -> None:
    assert classify_kernel_line(line) == (kind, device)


@pytest.mark.parametrize("line", NOT_ERRORS)
def test_classify_ignores_ordinary_lines(line: str) -> None:
    assert classify_kernel_line(line) is None


def test_real_syslog_corpus() -> None:
    """/var/log/messages of a Red Hat server (loghub Linux_2k): kernel lines, ftpd, sshd
    "authentication failure", "register_security failed" ... and no disk error."""
    lines = CORPUS.read_text(encoding="utf-8", errors="replace").splitlines()
    assert len(lines) == 2000
    assert sum("kernel:" in line for line in lines) == 76
    assert sum("fail" in line.lower() for line in lines) > 500  # plenty of near-misses
    assert [line for line in lines if classify_kernel_line(line)] == []

    # Interleaved with real error lines, exactly those are counted.
    counter = KernelErrorCounter()
    for i, line in enumerate(lines):
        counter.observe(line)
        if i % 90 == 0 and i // 90 < len(KERNEL_ERRORS):
            counter.observe(KERNEL_ERRORS[i // 90][0])
    counts, pending, dropped = counter.drain()
    assert len(pending) == sum(counts.values()) == len(KERNEL_ERRORS) and dropped == 0


def test_kernel_counter_is_thread_safe_and_bounded() -> None:
    counter = KernelErrorCounter(max_devices=3, max_pending=100, max_line_chars=50)
    line = "kernel: Buffer I/O error on dev sda1, logical block 0, async page read " + "x" * 1000

    def feed() -> None:
        for _ in range(500):
            counter.observe(line)

    threads = [threading.Thread(target=feed) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    counts, pending, dropped = counter.drain()
    assert counts == {("io", "sda1"): 2000}
    assert len(pending) == 100 and dropped == 1900 and all(len(p.line) == 50 for p in pending)
    for dev in ("sdb", "sdc", "sdd", "sde"):
        counter.observe(f"I/O error, dev {dev}, sector 1")
    counts, _, _ = counter.drain()
    assert set(counts) == {("io", "sda1"), ("io", "sdb"), ("io", "sdc"), ("io", "other")}

    t0 = time.monotonic()
    assert classify_kernel_line("XFS (sda): " + "error " * 200_000) is None  # no damage word
    assert classify_kernel_line("XFS (sda): " + "error " * 200_000 + "corruption") is None  # past 4 KiB
    assert classify_kernel_line("XFS (sda): Corruption " + "error " * 200_000) == ("fs", "sda")
    assert classify_kernel_line("EXT4-fs (sda1): " + "a" * 1_000_000 + " I/O error") is None  # past 4 KiB
    assert time.monotonic() - t0 < 1


def test_probe_counts_kernel_lines_without_duplicating_the_logs_events(tmp_path: Path) -> None:
    # Default: the logs probe already ships these lines as kernel.* events; only counters here.
    probe = make_probe(tmp_path, state=None)
    assert probe.observe_kernel_line(KERNEL_ERRORS[1][0])
    out = probe.collect()
    assert events(out) == [] and by_device(out, "disk_kernel_io_errors_total") == {"sda": 1}


def test_probe_reports_kernel_lines_fed_to_it(tmp_path: Path) -> None:
    probe = make_probe(tmp_path, state=None, kernel_error_events=True)
    assert probe.observe_kernel_line(KERNEL_ERRORS[1][0], source="/dev/kmsg", time_ns=123)
    assert probe.observe_kernel_line(KERNEL_ERRORS[9][0])
    assert probe.observe_kernel_line(KERNEL_ERRORS[1][0])
    assert not probe.observe_kernel_line("kernel: usbcore: registered new driver usbfs")
    out = probe.collect()
    evs = events(out)
    assert [(e.kind, e.fields["device"].string_value) for e in evs] == [
        ("disk.io_error", "sda"), ("disk.fs_error", "sda1"), ("disk.io_error", "sda"),
    ]
    assert evs[0].raw == KERNEL_ERRORS[1][0] and evs[0].source == "/dev/kmsg" and evs[0].time_unix_nano == 123
    assert evs[1].source == "probe:disk" and all(e.severity == records_pb2.SEVERITY_ERROR for e in evs)
    assert by_device(out, "disk_kernel_io_errors_total") == {"sda": 2}
    assert by_device(out, "disk_filesystem_errors_total") == {"sda1": 1}

    out = probe.collect()  # counters stay, events are not repeated
    assert events(out) == [] and by_device(out, "disk_kernel_io_errors_total") == {"sda": 2}


# --- configuration and docs ----------------------------------------------------------------------


def test_configured_through_the_agent_config(tmp_path: Path) -> None:
    cfg = tmp_path / "agent.toml"
    cfg.write_text(
        f'[agent]\nstate_dir = "{tmp_path / "state"}"\n'
        '[probes.disk]\ninterval_seconds = 120\nsmartctl_devices = ["/dev/sda"]\nsmart = false\n'
    )
    (disk,) = [p for p in build_probes(load_config(cfg)) if p.name == "disk"]
    assert disk.interval_seconds == 120 and isinstance(disk.probe, DiskProbe)
    assert disk.probe.options.smartctl_devices == ("/dev/sda",)
    disk.probe.collect()
    assert (tmp_path / "state" / "probes" / "disk" / "state.json").is_file()

    cfg.write_text("[probes.disk]\ngrowth_window_seconds = 600\ngrowth_min_span_seconds = 900\n")
    with pytest.raises(ConfigError, match="growth_min_span_seconds"):
        load_config(cfg)


def test_docs_name_every_option_metric_and_event() -> None:
    docs = (Path(__file__).resolve().parents[1] / "docs" / "probes" / "disk.md").read_text()
    for heading in ("## Configuration", "## Metrics", "## Troubleshooting", "## Example output"):
        assert heading in docs
    source = (Path(__file__).resolve().parents[1] / "agent" / "probes" / "disk.py").read_text()
    names = set(re.findall(r'"(disk_[a-z_]+)"', source)) | {"disk.readonly_remount", "disk.io_error",
                                                              "disk.fs_error", "agent.probe_unavailable"}
    names |= {f.name for f in dataclasses.fields(DiskOptions)}
    assert {n for n in names if f"`{n}`" not in docs and f"{n} =" not in docs} == set()


def test_kernel_error_events_can_be_left_to_the_log_probe(tmp_path: Path) -> None:
    probe = make_probe(tmp_path, state=None, kernel_error_events=False)
    assert probe.observe_kernel_line(KERNEL_ERRORS[9][0])
    out = probe.collect()
    assert events(out) == [] and by_device(out, "disk_filesystem_errors_total") == {"sda1": 1}
