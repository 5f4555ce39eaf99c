"""Probe `packages`: real runs on this Debian machine (dpkg status, apt-get simulation), every
backend on fixtures captured from real tools (tests/fixtures/packages/README.md says where
each came from), and bad input: truncated or garbled output, a missing tool, a hung tool,
too much output, permission denied.

Fake tools are small scripts put first on PATH: real processes, so the timeout, output cap
and permission paths are the ones the agent really takes.
"""

from __future__ import annotations

import calendar
import gzip
import json
import os
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path

import pytest

from warden.agent.probes import HostPaths, registered
from warden.agent.probes._packages_apk import parse_apk_installed, parse_apk_version
from warden.agent.probes._packages_common import (
    BackendContext,
    InstalledPackage,
    PendingUpdate,
    ToolError,
    run_command,
)
from warden.agent.probes._packages_dpkg import (
    last_upgrade_time,
    newest_kernel,
    parse_apt_simulation,
    parse_dpkg_status,
)
from warden.agent.probes._packages_macos import last_apple_install, parse_pkgutil, parse_softwareupdate
from warden.agent.probes._packages_pacman import PacmanBackend, last_upgrade_from_log, parse_desc, parse_qu
from warden.agent.probes._packages_rpm import (
    RpmBackend,
    last_update_from_history,
    newest_rpm_kernel,
    parse_check_update,
    parse_needs_restarting,
    parse_rpm_qa,
    parse_updateinfo_security,
)
from warden.agent.probes._packages_windows import (
    json_date,
    last_success_from_history,
    parse_hotfixes,
    parse_pending,
    parse_report,
)
from warden.agent.probes.packages import (
    STATE_FILE,
    PackagesOptions,
    PackagesProbe,
    content_hash,
    detect_manager,
)
from warden.v1 import records_pb2

FIX = Path(__file__).parent / "fixtures" / "packages"
ON_DEBIAN = Path("/var/lib/dpkg/status").is_file() and shutil.which("apt-get") is not None
FakeUname = os.uname_result


def uname(
    release: str = "6.1.0-28-amd64", version: str = "#1 SMP PREEMPT_DYNAMIC Debian 6.1.119-1"
) -> object:
    return lambda: FakeUname(("Linux", "host", release, version, "x86_64"))


def metrics(out: Iterable[records_pb2.Record]) -> dict[str, float]:
    return {r.metric.name: r.metric.value for r in out if r.HasField("metric")}


def section(out: Iterable[records_pb2.Record], name: str) -> object | None:
    for r in out:
        if r.HasField("inventory") and r.inventory.WhichOneof("section") == name:
            return getattr(r.inventory, name)
    return None


def events(out: Iterable[records_pb2.Record]) -> list[records_pb2.Event]:
    return [r.event for r in out if r.HasField("event")]


def fake_tool(bindir: Path, name: str, script: str) -> Path:
    bindir.mkdir(parents=True, exist_ok=True)
    path = bindir / name
    path.write_text("#!/bin/sh\n" + script + "\n")
    path.chmod(0o755)
    return path


@pytest.fixture
def bindir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory first on PATH for fake tools; the real tools stay reachable after it."""
    d = tmp_path / "bin"
    d.mkdir()
    monkeypatch.setenv("PATH", f"{d}{os.pathsep}{os.environ.get('PATH', '')}")
    return d


def dpkg_rootfs(tmp_path: Path, status: str | None = None) -> Path:
    root = tmp_path / "root"
    (root / "var/lib/dpkg").mkdir(parents=True)
    (root / "var/log/apt").mkdir(parents=True)
    (root / "var/lib/dpkg/status").write_text(status or (FIX / "debian12_dpkg_status").read_text())
    return root


def ctx(root: Path, **kw: object) -> BackendContext:
    base = dict(
        rootfs=root,
        command_timeout_seconds=10.0,
        max_output_bytes=1 << 20,
        check_updates=True,
        running_kernel="6.1.0-28-amd64",
    )
    base.update(kw)
    return BackendContext(**base)  # type: ignore[arg-type]


# --- registration and options ------------------------------------------------------------------


def test_registered_with_documented_defaults() -> None:
    spec = registered()["packages"]
    assert spec.cls is PackagesProbe and spec.config is PackagesOptions
    assert spec.default_interval_seconds == 3600 and spec.default_enabled
    opts = PackagesOptions()
    assert (opts.manager, opts.check_updates, opts.apt_command) == ("auto", True, "dist-upgrade")
    assert opts.full_resend_seconds == 86400


def test_validate_rejects_unknown_manager_and_apt_command() -> None:
    with pytest.raises(ValueError, match="manager"):
        PackagesProbe(PackagesOptions(manager="yum"), HostPaths()).validate()
    with pytest.raises(ValueError, match="apt_command"):
        PackagesProbe(PackagesOptions(apt_command="full-upgrade"), HostPaths()).validate()


def test_detect_manager_by_what_exists_under_rootfs(tmp_path: Path) -> None:
    assert detect_manager(tmp_path, "linux") is None
    assert detect_manager(tmp_path, "win32") == "windows"
    assert detect_manager(tmp_path, "darwin") == "macos"
    (tmp_path / "var/lib/pacman/local").mkdir(parents=True)
    assert detect_manager(tmp_path, "linux") == "pacman"
    (tmp_path / "lib/apk/db").mkdir(parents=True)
    (tmp_path / "lib/apk/db/installed").write_text("")
    assert detect_manager(tmp_path, "linux") == "apk"
    (tmp_path / "usr/bin").mkdir(parents=True)
    (tmp_path / "usr/bin/rpm").write_text("")
    (tmp_path / "var/lib/rpm").mkdir(parents=True)
    assert detect_manager(tmp_path, "linux") == "rpm"
    (tmp_path / "var/lib/dpkg").mkdir(parents=True)
    (tmp_path / "var/lib/dpkg/status").write_text("")
    assert detect_manager(tmp_path, "linux") == "dpkg"  # a Debian host with rpm installed


# --- real runs on this machine -------------------------------------------------------------------


@pytest.mark.skipif(not ON_DEBIAN, reason="needs dpkg and apt-get (this project's Debian machine)")
def test_real_dpkg_and_apt_on_this_machine(tmp_path: Path) -> None:
    probe = PackagesProbe(PackagesOptions(), HostPaths(), tmp_path / "state")
    probe.validate()
    t0 = time.monotonic()
    first = probe.collect()
    assert time.monotonic() - t0 < 120

    states = subprocess.run(
        ["dpkg-query", "-W", "-f", "${db:Status-Status}\n"], capture_output=True, text=True, check=True
    ).stdout.split()
    present = sum(s not in ("config-files", "not-installed") for s in states)
    m = metrics(first)
    assert m["packages_installed"] == present
    assert "updates_pending" in m and m["updates_security_pending"] <= m["updates_pending"]
    assert m["reboot_required"] in (0, 1) and m["kernel_update_pending_reboot"] in (0, 1)
    pkgs = section(first, "packages")
    assert pkgs.manager == "dpkg" and pkgs.full and pkgs.count == present == len(pkgs.packages)
    assert len(pkgs.content_hash) == 64
    names = {p.name for p in pkgs.packages}
    assert {"dpkg", "apt"} <= names
    updates = section(first, "updates")
    assert updates.error == "" and updates.pending_count == m["updates_pending"]
    assert updates.running_kernel == os.uname().release
    assert not events(first)

    second = probe.collect()
    again = section(second, "packages")
    assert again.content_hash == pkgs.content_hash and not again.full and not again.packages
    assert again.count == pkgs.count

    # An agent restart: a new probe on the same state directory does not resend the list.
    restarted = PackagesProbe(PackagesOptions(), HostPaths(), tmp_path / "state").collect()
    assert not section(restarted, "packages").full
    assert oct((tmp_path / "state").stat().st_mode & 0o777) == "0o700"


@pytest.mark.skipif(not ON_DEBIAN, reason="needs apt-get")
def test_real_apt_simulation_against_a_fixture_rootfs(tmp_path: Path) -> None:
    """apt-get really runs, reading the rootfs' own dpkg database (Dir=<rootfs>): with no
    package lists there, nothing is pending."""
    root = tmp_path / "root"
    for d in (
        "var/lib/dpkg",
        "etc/apt/apt.conf.d",
        "etc/apt/preferences.d",
        "etc/apt/sources.list.d",
        "var/lib/apt/lists/partial",
        "var/cache/apt/archives/partial",
        "var/log/apt",
    ):
        (root / d).mkdir(parents=True)
    status = (FIX / "debian12_dpkg_status").read_text()
    # Only packages without dependencies, so the empty archive leaves nothing broken.
    keep = [p for p in status.split("\n\n") if "\nDepends:" not in p and "\nPre-Depends:" not in p and p]
    (root / "var/lib/dpkg/status").write_text("\n\n".join(keep[:5]) + "\n")
    probe = PackagesProbe(PackagesOptions(), HostPaths(rootfs=root), uname=uname())
    out = probe.collect()
    assert section(out, "updates").error == ""
    assert metrics(out)["updates_pending"] == 0 and metrics(out)["packages_installed"] == 5


# --- dpkg fixtures -------------------------------------------------------------------------------


def test_parse_dpkg_status_fixture() -> None:
    text = (FIX / "debian12_dpkg_status").read_text()
    pkgs = parse_dpkg_status(text)
    paragraphs = [p for p in text.split("\n\n") if p.strip()]
    installed = [p for p in paragraphs if "Status: install ok installed" in p]
    assert len(paragraphs) == 120 and len(pkgs) == len(installed)
    adduser = next(p for p in pkgs if p.name == "adduser")
    assert adduser.arch == "all" and adduser.version


def test_parse_dpkg_status_skips_removed_and_truncated_paragraphs() -> None:
    text = (
        "Package: a\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1.0-1\n"
        "Description: x\n multi-line\n\n"
        "Package: gone\nStatus: deinstall ok config-files\nVersion: 2.0\n\n"
        "Package: half\nStatus: install reinstreq half-installed\nVersion: 3.0\n\n"
        "Package: b\nStatus: install ok installed\nVers"  # cut mid-field
    )
    pkgs = parse_dpkg_status(text)
    assert [(p.name, p.version) for p in pkgs] == [("a", "1.0-1"), ("half", "3.0")]


def test_parse_dpkg_status_garbled() -> None:
    with pytest.raises(ToolError) as e:
        parse_dpkg_status("\x00\x01\x02 garbage\nnot a status file\n" * 100)
    assert e.value.kind == "garbled"
    assert parse_dpkg_status("") == []


def test_parse_real_debian_apt_simulation() -> None:
    text = (FIX / "debian12_apt_get_s_dist_upgrade.txt").read_text()
    pending = parse_apt_simulation(text)
    inst = [ln for ln in text.splitlines() if ln.startswith("Inst ")]
    assert len(pending) == len(inst) == 135  # all upgrades here, no new install
    by = {p.name: p for p in pending}
    assert by["libssl3"].security and by["libssl3"].origin == "Debian-Security:12/oldstable-security"
    assert (by["libssl3"].current_version, by["libssl3"].new_version, by["libssl3"].arch) == (
        "3.0.19-1~deb12u2",
        "3.0.22-1~deb12u2",
        "amd64",
    )
    assert not by["bash"].security and by["bash"].origin == "Debian:12.15/oldstable"
    # Two origins, one of them the security pocket.
    assert by["libgcrypt20"].security
    assert by["libpam-runtime"].arch == "all"
    assert sum(p.security for p in pending) == sum("-security" in ln for ln in inst)


def test_parse_public_ubuntu_apt_simulation() -> None:
    pending = parse_apt_simulation((FIX / "ubuntu2204_apt_get_s_install_curl.txt").read_text())
    # curl is a new install, not a pending update; libcurl4 is an upgrade from -security.
    assert [(p.name, p.current_version, p.new_version, p.security) for p in pending] == [
        ("libcurl4", "7.81.0-1ubuntu1.17", "7.81.0-1ubuntu1.18", True)
    ]
    assert pending[0].origin == "Ubuntu:22.04/jammy-updates, Ubuntu:22.04/jammy-security"


def test_parse_apt_simulation_none_pending_and_garbled() -> None:
    assert parse_apt_simulation((FIX / "apt_get_s_none_pending.txt").read_text()) == []
    garbled = "Inst \nInst foo [1.0\nInst bar (2.0 [amd64]\nInst \x00\x01 [x] (y [z])\n" + "junk " * 1000
    assert parse_apt_simulation(garbled) == []
    truncated = (FIX / "debian12_apt_get_s_dist_upgrade.txt").read_text()[:3000]
    assert 0 < len(parse_apt_simulation(truncated)) < 135


def test_last_upgrade_time_from_real_history_and_rotated_logs(tmp_path: Path) -> None:
    real = (FIX / "debian12_apt_history.log").read_text()
    log = tmp_path / "history.log"
    log.write_text(real)
    expected = int(time.mktime(time.strptime("2026-09-22 04:45:29", "%Y-%m-%d %H:%M:%S")))
    assert last_upgrade_time(log) == expected  # the newest transaction with an Upgrade: line

    # Nothing upgraded in the current log: the rotated ones are read, newest first.
    log.write_text(
        "Start-Date: 2027-01-01  10:00:00\nInstall: foo:amd64 (1.0)\nEnd-Date: 2027-01-01  10:00:01\n"
    )
    with gzip.open(tmp_path / "history.log.2.gz", "wt") as f:
        f.write("Start-Date: 2020-01-01  10:00:00\nUpgrade: a:amd64 (1, 2)\nEnd-Date: 2020-01-01  10:00:05\n")
    with gzip.open(tmp_path / "history.log.1.gz", "wt") as f:
        f.write(
            "Start-Date: 2021-01-01  10:00:00\nUpgrade: b:amd64 (1, 2)\nEnd-Date: 2021-01-01  10:00:05\n\n"
            "Start-Date: 2021-02-01  10:00:00\nUpgrade: c:amd64 (1, 2)\n"
            "Error: Sub-process returned an error\n"
            "End-Date: 2021-02-01  10:00:05\n"
        )
    assert last_upgrade_time(log) == int(time.mktime((2021, 1, 1, 10, 0, 5, 0, 0, -1)))
    (tmp_path / "history.log.1.gz").write_bytes(b"\x1f\x8b\x08garbage")  # a truncated gzip
    assert last_upgrade_time(log) == int(time.mktime((2020, 1, 1, 10, 0, 5, 0, 0, -1)))
    assert last_upgrade_time(tmp_path / "missing.log") == 0


def test_newest_kernel_by_dpkg_ordering() -> None:
    from warden.agent.probes._packages_common import InstalledPackage as P

    installed = [
        P("linux-image-6.1.0-28-amd64", "6.1.119-1", "amd64"),
        P("linux-image-6.1.0-30-amd64", "6.1.124-1", "amd64"),
        P("linux-image-6.1.0-30-amd64-dbg", "6.1.124-1", "amd64"),
        P("linux-image-amd64", "6.1.124-1", "amd64"),  # the meta package
    ]
    assert newest_kernel(installed) == ("6.1.0-30-amd64", "6.1.124-1")
    assert newest_kernel([P("bash", "5.2", "amd64")]) == ("", "")


def test_dpkg_kernel_and_reboot_flags_from_the_rootfs(tmp_path: Path, bindir: Path) -> None:
    status = (
        "Package: linux-image-6.1.0-28-amd64\nStatus: install ok installed\nArchitecture: amd64\n"
        "Version: 6.1.119-1\n\n"
        "Package: linux-image-6.1.0-30-amd64\nStatus: install ok installed\nArchitecture: amd64\n"
        "Version: 6.1.124-1\n"
    )
    root = dpkg_rootfs(tmp_path, status)
    (root / "run").mkdir()
    (root / "run/reboot-required").write_text("*** System restart required ***\n")
    (root / "run/reboot-required.pkgs").write_text("linux-image-6.1.0-30-amd64\nlibc6\nlibc6\n")
    fake_tool(bindir, "apt-get", f"cat {FIX / 'apt_get_s_none_pending.txt'}")
    out = PackagesProbe(PackagesOptions(), HostPaths(rootfs=root), uname=uname("6.1.0-28-amd64")).collect()
    m = metrics(out)
    assert m["reboot_required"] == 1 and m["kernel_update_pending_reboot"] == 1
    up = section(out, "updates")
    assert (up.running_kernel, up.newest_kernel) == ("6.1.0-28-amd64", "6.1.0-30-amd64")
    assert list(up.reboot_required_packages) == ["libc6", "linux-image-6.1.0-30-amd64"]

    # Running the newest release, booted from the same package build: nothing pending.
    (root / "run/reboot-required").unlink()
    out = PackagesProbe(
        PackagesOptions(),
        HostPaths(rootfs=root),
        uname=uname("6.1.0-30-amd64", "#1 SMP Debian 6.1.124-1 (x)"),
    ).collect()
    assert metrics(out)["kernel_update_pending_reboot"] == 0 and metrics(out)["reboot_required"] == 0
    # Same release name, but the package on disk is newer than the booted build.
    out = PackagesProbe(
        PackagesOptions(),
        HostPaths(rootfs=root),
        uname=uname("6.1.0-30-amd64", "#1 SMP Debian 6.1.123-1 (x)"),
    ).collect()
    assert metrics(out)["kernel_update_pending_reboot"] == 1


# --- the full list only when changed -------------------------------------------------------------


def test_full_list_only_when_changed_persisted_and_resent_daily(tmp_path: Path, bindir: Path) -> None:
    fake_tool(bindir, "apt-get", f"cat {FIX / 'debian12_apt_get_s_dist_upgrade.txt'}")
    root = dpkg_rootfs(tmp_path)
    state = tmp_path / "state"
    now = [1_000_000.0]

    def make() -> PackagesProbe:
        return PackagesProbe(
            PackagesOptions(), HostPaths(rootfs=root), state, uname=uname(), clock=lambda: now[0]
        )

    probe = make()
    first = section(probe.collect(), "packages")
    assert first.full and first.count == len(first.packages) > 0
    assert first.content_hash == content_hash(parse_dpkg_status((root / "var/lib/dpkg/status").read_text()))
    assert [p.name for p in first.packages] == sorted(p.name for p in first.packages)

    now[0] += 3600
    second = section(probe.collect(), "packages")
    assert not second.full and not second.packages and second.content_hash == first.content_hash
    assert not section(make().collect(), "packages").full  # after a restart: not resent

    # A package changes: the full list goes out once, then the hash alone again.
    with open(root / "var/lib/dpkg/status", "a") as f:
        f.write("\nPackage: newpkg\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1.0\n")
    third = section(probe.collect(), "packages")
    assert third.full and third.count == first.count + 1 and third.content_hash != first.content_hash
    assert not section(probe.collect(), "packages").full

    # At least every full_resend_seconds, for a collector that lost it.
    now[0] += 86400
    assert section(probe.collect(), "packages").full

    # A corrupt state file is not fatal: the list is simply sent again.
    (state / STATE_FILE).write_text("{not json")
    assert section(make().collect(), "packages").full


def test_content_hash_is_order_independent_and_stable() -> None:
    from warden.agent.probes._packages_common import InstalledPackage as P

    a = [P("b", "2", "amd64"), P("a", "1", "all")]
    assert content_hash(a) == content_hash(list(reversed(a)))
    import hashlib

    assert content_hash(a) == hashlib.sha256(b"a 1 all\nb 2 amd64\n").hexdigest()
    assert content_hash(a) != content_hash([P("a", "1", "all")])


def test_pending_list_capped_with_security_first(tmp_path: Path, bindir: Path) -> None:
    fake_tool(bindir, "apt-get", f"cat {FIX / 'debian12_apt_get_s_dist_upgrade.txt'}")
    probe = PackagesProbe(
        PackagesOptions(max_pending_listed=10), HostPaths(rootfs=dpkg_rootfs(tmp_path)), uname=uname()
    )
    up = section(probe.collect(), "updates")
    fixture = parse_apt_simulation((FIX / "debian12_apt_get_s_dist_upgrade.txt").read_text())
    assert up.pending_count == 135 and up.security_count == sum(p.security for p in fixture) > 10
    assert len(up.pending) == 10 and all(p.security for p in up.pending)


# --- bad input: missing tool, hung tool, too much output, permission denied, garbled ----------------


def test_missing_apt_get_is_reported_once_and_the_rest_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    probe = PackagesProbe(PackagesOptions(), HostPaths(rootfs=dpkg_rootfs(tmp_path)), uname=uname())
    out = probe.collect()
    m = metrics(out)
    assert m["packages_installed"] > 0
    assert "updates_pending" not in m  # unknown is not "0 pending"
    up = section(out, "updates")
    assert "apt-get" in up.error and "not installed" in up.error
    (ev,) = events(out)
    assert ev.kind == "packages.updates_unavailable" and ev.severity == records_pb2.SEVERITY_WARNING
    assert ev.fields["manager"].string_value == "dpkg" and ev.source == "probe:packages"
    again = probe.collect()
    assert not events(again) and section(again, "updates").error  # data each run, event once


def test_hung_tool_is_killed_within_the_timeout(tmp_path: Path, bindir: Path) -> None:
    fake_tool(bindir, "apt-get", "sleep 30 & sleep 30")  # a child in the group, too
    opts = PackagesOptions(command_timeout_seconds=0.5)
    probe = PackagesProbe(opts, HostPaths(rootfs=dpkg_rootfs(tmp_path)), uname=uname())
    t0 = time.monotonic()
    out = probe.collect()
    assert time.monotonic() - t0 < 5
    assert "no answer within 0.5 s" in section(out, "updates").error


def test_tool_output_is_bounded(tmp_path: Path, bindir: Path) -> None:
    fake_tool(bindir, "apt-get", "yes 'Inst x [1] (2 Debian-Security:12/stable-security [amd64])'")
    opts = PackagesOptions(max_output_bytes=1 << 20)
    t0 = time.monotonic()
    out = PackagesProbe(opts, HostPaths(rootfs=dpkg_rootfs(tmp_path)), uname=uname()).collect()
    assert time.monotonic() - t0 < 10
    assert "output exceeded 1048576 bytes" in section(out, "updates").error


def test_tool_not_executable_is_permission_denied(
    tmp_path: Path, bindir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tool = fake_tool(bindir, "apt-get", "echo never")
    tool.chmod(0o644)  # not executable, even for root
    monkeypatch.setenv("PATH", str(bindir))  # else the PATH search skips it for the real one
    out = PackagesProbe(PackagesOptions(), HostPaths(rootfs=dpkg_rootfs(tmp_path)), uname=uname()).collect()
    assert "permission denied" in section(out, "updates").error


def test_tool_failing_with_its_own_error(tmp_path: Path, bindir: Path) -> None:
    fake_tool(
        bindir, "apt-get", "echo 'E: Could not open lock file - open (13: Permission denied)' >&2; exit 100"
    )
    out = PackagesProbe(PackagesOptions(), HostPaths(rootfs=dpkg_rootfs(tmp_path)), uname=uname()).collect()
    assert section(out, "updates").error.startswith("apt-get: permission denied: E: Could not open lock")
    fake_tool(bindir, "apt-get", "echo 'E: Unmet dependencies.' >&2; exit 100")
    out = PackagesProbe(
        PackagesOptions(), HostPaths(rootfs=dpkg_rootfs(tmp_path / "b")), uname=uname()
    ).collect()
    assert section(out, "updates").error == "apt-get: exit code 100: E: Unmet dependencies."


def test_check_updates_off_runs_no_tool(tmp_path: Path, bindir: Path) -> None:
    marker = tmp_path / "ran"
    fake_tool(bindir, "apt-get", f"touch {marker}")
    out = PackagesProbe(
        PackagesOptions(check_updates=False), HostPaths(rootfs=dpkg_rootfs(tmp_path)), uname=uname()
    ).collect()
    assert not marker.exists() and section(out, "updates").error == ""


def test_garbled_status_file_reported_once(tmp_path: Path) -> None:
    root = dpkg_rootfs(tmp_path, "\x00\x01garbage\xff\n" * 50)
    probe = PackagesProbe(PackagesOptions(), HostPaths(rootfs=root), uname=uname())
    out = probe.collect()
    (ev,) = events(out)
    assert ev.kind == "packages.unavailable" and "garbled" in ev.fields["error"].string_value
    assert section(out, "updates").error and not metrics(out)
    assert probe.collect() == []  # reported once
    (root / "var/lib/dpkg/status").write_text((FIX / "debian12_dpkg_status").read_text())
    assert metrics(probe.collect())["packages_installed"] > 0  # recovered


def test_no_package_manager_under_rootfs(tmp_path: Path) -> None:
    probe = PackagesProbe(PackagesOptions(), HostPaths(rootfs=tmp_path))
    out = probe.collect()
    (ev,) = events(out)
    assert "no supported package manager" in ev.fields["error"].string_value
    assert section(out, "updates").manager == "none"
    assert probe.collect() == []


def _collect_as_nobody(root: Path) -> dict[str, object]:
    """Run the probe in a forked child that dropped root, so file permissions apply."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            os.close(r)
            os.setgid(65534)
            os.setuid(65534)
            out = PackagesProbe(PackagesOptions(check_updates=False), HostPaths(rootfs=root)).collect()
            ev = events(out)
            os.write(w, json.dumps({"events": [e.fields["error"].string_value for e in ev]}).encode())
        finally:
            os._exit(0)
    os.close(w)
    data = b""
    while chunk := os.read(r, 65536):
        data += chunk
    os.close(r)
    os.waitpid(pid, 0)
    return json.loads(data or b"{}")


def test_unreadable_status_file_is_permission_denied(tmp_path: Path) -> None:
    root = dpkg_rootfs(tmp_path)
    status = root / "var/lib/dpkg/status"
    status.chmod(0)
    if os.geteuid() == 0:
        for p in [root, *root.parents][:4]:  # let the unprivileged child reach the file
            p.chmod(p.stat().st_mode | stat.S_IXOTH)
        result = _collect_as_nobody(root)
        assert result["events"] and "permission denied" in result["events"][0]
    else:
        out = PackagesProbe(PackagesOptions(check_updates=False), HostPaths(rootfs=root)).collect()
        assert "permission denied" in events(out)[0].fields["error"].string_value


def test_run_command_basics(tmp_path: Path) -> None:
    res = run_command(
        [sys.executable, "-c", "import os; print(os.environ['LC_ALL'])"], timeout=10, max_bytes=100
    )
    assert res.stdout.strip() == "C"  # parsers read untranslated output
    with pytest.raises(ToolError) as e:
        run_command([str(tmp_path / "nope")], timeout=1, max_bytes=10)
    assert e.value.kind == "missing"
    res = run_command(
        [sys.executable, "-c", "import sys; sys.exit(100)"], timeout=10, max_bytes=10, ok_codes=(0, 100)
    )
    assert res.returncode == 100


# --- rpm / dnf -----------------------------------------------------------------------------------


def test_rpm_parsers_on_real_captures() -> None:
    """rpm 4.18 and dnf 4.14 output (capture/capture.sh): packages named and versioned after
    RHEL 9, two install-only kernels, i686 + x86_64 glibc, epoch, tilde and caret versions."""
    pkgs = parse_rpm_qa((FIX / "rpm_qa.txt").read_text())
    triples = [(p.name, p.version, p.arch) for p in pkgs]
    assert len(pkgs) == 14 and "gpg-pubkey" not in {p.name for p in pkgs}  # imported key skipped
    assert ("openssl", "1:3.0.7-24.el9", "x86_64") in triples  # EPOCHNUM 1 kept
    assert ("glibc", "2.34-83.el9", "i686") in triples and ("glibc", "2.34-83.el9", "x86_64") in triples
    assert ("fonts-caret", "1.0^20240101git1a2b3c4-1.el9", "noarch") in triples
    assert ("rust-tilde", "2.0-1.el9", "x86_64") in triples  # upgraded from 2.0~rc1 by dnf
    assert newest_rpm_kernel(pkgs) == "5.14.0-427.13.1.el9_4.x86_64"

    upd = parse_check_update((FIX / "dnf_check_update.txt").read_text())
    assert [(u[0], u[1]) for u in upd] == [
        ("bash", "x86_64"),
        ("glibc", "i686"),
        ("glibc", "x86_64"),
        ("kernel", "x86_64"),
        ("kernel-core", "x86_64"),
        ("openssl", "x86_64"),
        ("python3-a-very-long-package-name-that-wraps", "noarch"),
    ]  # the "Obsoleting Packages" section (modern-tool replacing legacy-tool) is not an update
    assert upd[5] == ("openssl", "x86_64", "1:3.0.7-27.el9", "baseos")
    assert upd[6] == ("python3-a-very-long-package-name-that-wraps", "noarch", "1.2.3-4.el9", "appstream")
    # Without -q dnf starts with "Last metadata expiration check: …"; on a terminal it colours
    # and wraps a long name (both real, the second de-coloured): the same list either way.
    assert parse_check_update((FIX / "dnf_check_update_verbose.txt").read_text()) == upd
    tty = (FIX / "dnf_check_update_tty70.txt").read_text()
    assert "wraps.noarch\n      " in tty and parse_check_update(tty) == upd

    sec = parse_updateinfo_security((FIX / "dnf_updateinfo_list_security.txt").read_text())
    # Important and Moderate alike; RHSA-2024:3138 is for the kernel already installed: not listed.
    assert sec == {
        "glibc": "RHSA-2024:2722",
        "kernel": "RHSA-2024:5101",
        "kernel-core": "RHSA-2024:5101",
        "openssl": "RHSA-2024:4623",
    }

    # Four transactions within one minute (the newest is "I, U").
    hist = last_update_from_history((FIX / "dnf_history_list.txt").read_text())
    assert hist == int(time.mktime(time.strptime("2026-11-22 15:40", "%Y-%m-%d %H:%M")))
    # CentOS 7 `yum history` (public): the newest transaction only installed, "I, U" before it.
    hist = last_update_from_history((FIX / "centos7_yum_history_list.txt").read_text())
    assert hist == int(time.mktime(time.strptime("2018-04-20 22:38", "%Y-%m-%d %H:%M")))
    # Written by us: dnf flags an aborted transaction with '*' in "Altered" (none captured).
    aborted = "     5 | upgrade                  | 2026-11-23 10:00 | Upgrade        |    3 **\n"
    assert last_update_from_history(aborted) == 0

    # Written by us in needs-restarting's format: it cannot run inside a temporary root.
    text = (
        "Core libraries or services have been updated since boot-up:\n"
        "  * kernel\n  * systemd\n\nReboot is required to fully utilize these updates.\n"
    )
    assert parse_needs_restarting(1, text) == (True, ["kernel", "systemd"])
    assert parse_needs_restarting(0, "No core libraries or services have been updated") == (False, [])
    with pytest.raises(ToolError):
        parse_rpm_qa("garbage without tabs\nmore garbage\n")


def fake_dnf(bindir: Path) -> None:
    fake_tool(
        bindir,
        "dnf",
        f"""case "$*" in
  *check-update*) cat {FIX / "dnf_check_update.txt"}; exit 100 ;;
  *updateinfo*) cat {FIX / "dnf_updateinfo_list_security.txt"} ;;
  *history*) cat {FIX / "dnf_history_list.txt"} ;;
  *) exit 1 ;;
esac""",
    )


def test_rpm_backend_end_to_end_with_fake_tools(tmp_path: Path, bindir: Path) -> None:
    fake_tool(bindir, "rpm", f"cat {FIX / 'rpm_qa.txt'}")
    fake_dnf(bindir)
    probe = PackagesProbe(
        PackagesOptions(manager="rpm"), HostPaths(), uname=uname("5.14.0-362.8.1.el9_3.x86_64")
    )
    out = probe.collect()
    m = metrics(out)
    assert m["packages_installed"] == 14 and m["updates_pending"] == 7 and m["updates_security_pending"] == 5
    assert m["kernel_update_pending_reboot"] == 1
    up = section(out, "updates")
    pending = {(p.name, p.arch): p for p in up.pending}
    openssl = pending["openssl", "x86_64"]
    assert (openssl.current_version, openssl.new_version, openssl.origin, openssl.security) == (
        "1:3.0.7-24.el9",
        "1:3.0.7-27.el9",
        "RHSA-2024:4623",
        True,
    )
    glibc32 = pending["glibc", "i686"]
    assert (glibc32.current_version, glibc32.origin) == ("2.34-83.el9", "RHSA-2024:2722")
    bash = pending["bash", "x86_64"]  # a bugfix advisory: not security, origin is the repository
    assert (bash.security, bash.origin) == (False, "baseos")
    assert up.newest_kernel == "5.14.0-427.13.1.el9_4.x86_64" and up.last_update_unix > 0
    # exit 0 from check-update: nothing pending
    fake_tool(bindir, "dnf", "exit 0")
    out = PackagesProbe(PackagesOptions(manager="rpm"), HostPaths(), uname=uname()).collect()
    assert metrics(out)["updates_pending"] == 0


def test_rpm_current_version_is_the_newest_installed_kernel(tmp_path: Path, bindir: Path) -> None:
    """Regression: with two kernels installed, the pending kernel's current version was
    whichever rpm -qa listed last (database order), here the older one."""
    lines = (FIX / "rpm_qa.txt").read_text().splitlines()
    (tmp_path / "reversed.txt").write_text("\n".join(reversed(lines)) + "\n")
    fake_tool(bindir, "rpm", f"cat {tmp_path / 'reversed.txt'}")
    fake_dnf(bindir)
    out = PackagesProbe(PackagesOptions(manager="rpm"), HostPaths(), uname=uname()).collect()
    kernels = [p for p in section(out, "updates").pending if p.name in ("kernel", "kernel-core")]
    assert len(kernels) == 2
    assert {p.current_version for p in kernels} == {"5.14.0-427.13.1.el9_4"}
    assert {p.new_version for p in kernels} == {"5.14.0-427.24.1.el9_4"}


def test_dnf_never_skips_a_repository_without_cache(tmp_path: Path, bindir: Path) -> None:
    """Regression: with skip_if_unavailable=True (Debian's dnf.conf, some hosts') `dnf -q -C
    check-update` skips a never-cached repository silently and exits 0 (capture.sh shows it):
    a false "nothing pending". The probe overrides it, so dnf fails instead."""
    fake_tool(bindir, "rpm", f"cat {FIX / 'rpm_qa.txt'}")
    fake_tool(bindir, "dnf", f'echo "$@" >> {tmp_path / "argv"}; exit 0')
    PackagesProbe(PackagesOptions(manager="rpm"), HostPaths(), uname=uname()).collect()
    calls = (tmp_path / "argv").read_text().splitlines()
    check = next(c.split() for c in calls if "check-update" in c)
    assert check[:3] == ["-q", "-C", "--setopt=skip_if_unavailable=False"]


def test_dnf_error_exit_is_an_updates_error(tmp_path: Path, bindir: Path) -> None:
    fake_tool(bindir, "rpm", f"cat {FIX / 'rpm_qa.txt'}")
    # dnf's real message (and exit code 1) for `-C` on a host whose cache was never built.
    fake_tool(bindir, "dnf", f"cat {FIX / 'dnf_check_update_no_cache.stderr'} >&2; exit 1")
    out = PackagesProbe(PackagesOptions(manager="rpm"), HostPaths(), uname=uname()).collect()
    assert section(out, "updates").error == (
        "dnf: exit code 1: Error: Cache-only enabled but no cache for 'baseos'"
    )
    assert events(out)[0].kind == "packages.updates_unavailable"


# --- apk -----------------------------------------------------------------------------------------


def test_apk_parsers_and_backend(tmp_path: Path, bindir: Path) -> None:
    text = (FIX / "alpine_apk_db_installed").read_text()
    pkgs = parse_apk_installed(text)
    assert [(p.name, p.version) for p in pkgs][:2] == [
        ("alpine-baselayout", "3.4.3-r1"),
        ("alpine-baselayout-data", "3.4.3-r1"),
    ]
    assert len(pkgs) == 8 and {p.arch for p in pkgs} == {"aarch64"}
    assert parse_apk_installed(text[: text.index("P:musl-utils")])[-1].name == "musl"  # truncated
    with pytest.raises(ToolError):
        parse_apk_installed("garbage\nmore\n")
    # A public capture (alpine:3.18 pointed at the v3.21 repositories): the header is skipped,
    # names with hyphens, underscores and a date version are split from their versions.
    pending = parse_apk_version((FIX / "alpine_apk_version_l.txt").read_text())
    assert len(pending) == 14
    assert pending[0] == ("alpine-baselayout", "3.4.3-r1", "3.6.8-r1")
    assert pending[1] == ("alpine-baselayout-data", "3.4.3-r1", "3.6.8-r1")
    assert ("ca-certificates-bundle", "20241121-r1", "20250911-r0") in pending
    assert ("ssl_client", "1.36.1-r7", "1.37.0-r14") in pending
    assert pending[-1] == ("zlib", "1.2.13-r1", "1.3.1-r2")

    root = tmp_path / "alpine"
    (root / "lib/apk/db").mkdir(parents=True)
    (root / "lib/apk/db/installed").write_text(text)
    for rel in ("6.1.50-0-lts", "6.6.31-0-lts"):
        (root / "lib/modules" / rel).mkdir(parents=True)
        (root / "lib/modules" / rel / "modules.dep").write_text("")
    fake_tool(bindir, "apk", f"cat {FIX / 'alpine_apk_version_l.txt'}")
    out = PackagesProbe(PackagesOptions(), HostPaths(rootfs=root), uname=uname("6.1.50-0-lts")).collect()
    m = metrics(out)
    # The installed db and the version capture come from two different Alpine 3.18 systems.
    assert m["packages_installed"] == 8 and m["updates_pending"] == 14 and m["updates_security_pending"] == 0
    assert m["kernel_update_pending_reboot"] == 1
    assert section(out, "updates").newest_kernel == "6.6.31-0-lts"
    assert section(out, "packages").manager == "apk"


def test_apk_version_line_with_a_repository_tag() -> None:
    # No public capture shows it: the line is built after apk-tools' own format
    # (src/app_version.c: `PKG_VER_FMT "%*s %s " BLOB_FMT " " BLOB_FMT`, the last field the
    # repository tag, `@edge` for `@edge https://...` in /etc/apk/repositories, empty otherwise).
    text = (
        "Installed:                                Available:\n"
        "busybox-1.36.1-r7                       < 1.37.0-r14 \n"
        "zlib-1.2.13-r1                          < 1.3.1-r2 @edge\n"
    )
    assert parse_apk_version(text) == [
        ("busybox", "1.36.1-r7", "1.37.0-r14"),
        ("zlib", "1.2.13-r1", "1.3.1-r2"),
    ]


# --- pacman --------------------------------------------------------------------------------------


# pacman 6.0.2 output (capture/capture.sh): the real pacman.log has the time of the upgrade of
# tzdata (2024a-1 -> 2024b-1), the last transaction that upgraded; vim was installed after it.
PACMAN_LAST_UPGRADE = calendar.timegm((2026, 11, 22, 15, 41, 7, 0, 0, 0))


def test_pacman_parsers_on_real_captures() -> None:
    desc = parse_desc((FIX / "pacman_local_desc").read_text())
    assert (desc.name, desc.version, desc.arch) == ("openssl", "3.3.0-1", "x86_64")
    desc = parse_desc((FIX / "pacman_local_desc_epoch").read_text())
    assert (desc.name, desc.version, desc.arch) == ("zlib", "1:1.3.1-1", "x86_64")
    assert parse_desc("%NAME%\nfoo\n") is None  # truncated: no version
    assert parse_qu((FIX / "pacman_qu.txt").read_text()) == [
        ("linux", "6.9.3.arch1-1", "6.9.5.arch1-1"),
        ("openssl", "3.3.0-1", "3.3.1-1"),
        ("zlib", "1:1.3.1-1", "1:1.3.1-2"),
    ]  # "glibc 2.39-1 -> 2.39-4 [ignored]" (IgnorePkg) is not pending
    # After a full upgrade only the ignored line is left, and pacman exits 0 for it.
    assert (FIX / "pacman_qu_only_ignored.txt").read_text().strip().endswith("[ignored]")
    assert parse_qu((FIX / "pacman_qu_only_ignored.txt").read_text()) == []

    log = (FIX / "pacman.log").read_text()
    # A transaction refused for a file conflict leaves only its "Running" line.
    assert "Running 'pacman --config" in log and "transaction failed" not in log
    assert last_upgrade_from_log(log) == PACMAN_LAST_UPGRADE
    # Written by us: a transaction that failed after it started (not reproduced here) does not count.
    failed = (
        "[2026-11-23T08:00:00+0000] [ALPM] transaction started\n"
        "[2026-11-23T08:00:01+0000] [ALPM] upgraded linux (6.9.3.arch1-1 -> 6.9.5.arch1-1)\n"
        "[2026-11-23T08:00:02+0000] [ALPM] transaction failed\n"
    )
    assert last_upgrade_from_log(log + failed) == PACMAN_LAST_UPGRADE
    # pacman < 5.2 wrote local time without seconds.
    old = "[2019-01-01 10:00] [ALPM] transaction started\n[2019-01-01 10:00] [ALPM] upgraded a (1-1 -> 1-2)\n"
    old += "[2019-01-01 10:00] [ALPM] transaction completed\n"
    assert last_upgrade_from_log(old) == int(time.mktime(time.strptime("2019-01-01 10:00", "%Y-%m-%d %H:%M")))


def pacman_rootfs(tmp_path: Path) -> Path:
    root = tmp_path / "arch"
    local = root / "var/lib/pacman/local"
    for name, fixture in (
        ("openssl-3.3.0-1", "pacman_local_desc"),
        ("zlib-1:1.3.1-1", "pacman_local_desc_epoch"),
    ):
        (local / name).mkdir(parents=True)
        (local / name / "desc").write_text((FIX / fixture).read_text())
    (local / "broken-entry").mkdir()  # no desc: skipped
    (root / "var/log").mkdir(parents=True)
    (root / "var/log/pacman.log").write_text((FIX / "pacman.log").read_text())
    return root


def test_pacman_backend_on_a_rootfs_asks_pacman_about_that_root(tmp_path: Path, bindir: Path) -> None:
    """Regression: for a rootfs other than / the probe ran `checkupdates` (or a bare `pacman
    -Qu`), which look at the agent's own container, not at the host under the rootfs."""
    root = pacman_rootfs(tmp_path)
    fake_tool(bindir, "checkupdates", "echo 'container-only 1-1 -> 2-1'")
    fake_tool(bindir, "pacman", f'echo "$@" > {tmp_path / "argv"}; cat {FIX / "pacman_qu.txt"}')
    out = PackagesProbe(PackagesOptions(), HostPaths(rootfs=root), uname=uname("6.9.3-arch1-1")).collect()
    argv = (tmp_path / "argv").read_text().split()
    assert argv == [
        "--config",
        str(root / "etc/pacman.conf"),
        "--root",
        str(root),
        "--dbpath",
        str(root / "var/lib/pacman"),
        "-Qu",
    ]
    m = metrics(out)
    assert m["packages_installed"] == 2 and m["updates_pending"] == 3 and m["updates_security_pending"] == 0
    assert m["updates_last_success_timestamp_seconds"] == PACMAN_LAST_UPGRADE
    assert section(out, "packages").manager == "pacman"
    zlib = next(p for p in section(out, "updates").pending if p.name == "zlib")
    assert (zlib.current_version, zlib.new_version, zlib.arch) == ("1:1.3.1-1", "1:1.3.1-2", "x86_64")
    # Exit 1 with no output: nothing pending; exit 0 with only an IgnorePkg line: nothing either.
    fake_tool(bindir, "pacman", "exit 1")
    assert metrics(PackagesProbe(PackagesOptions(), HostPaths(rootfs=root)).collect())["updates_pending"] == 0
    fake_tool(bindir, "pacman", f"cat {FIX / 'pacman_qu_only_ignored.txt'}")
    assert metrics(PackagesProbe(PackagesOptions(), HostPaths(rootfs=root)).collect())["updates_pending"] == 0


@pytest.mark.parametrize("stderr", ["pacman_qu_no_config.stderr", "pacman_qu_not_synced.stderr"])
def test_pacman_exit_1_with_an_error_is_no_false_zero(tmp_path: Path, bindir: Path, stderr: str) -> None:
    """Regression: `pacman -Qu` exits 1 both for "nothing pending" and when it cannot read its
    configuration or has never synced (real messages); the second was reported as 0 pending."""
    root = pacman_rootfs(tmp_path)
    fake_tool(bindir, "pacman", f"cat {FIX / stderr} >&2; exit 1")
    out = PackagesProbe(PackagesOptions(), HostPaths(rootfs=root)).collect()
    assert "updates_pending" not in metrics(out)
    error = section(out, "updates").error
    assert error.startswith("pacman: exit code 1: ") and (FIX / stderr).read_text().strip() in error
    assert events(out)[0].kind == "packages.updates_unavailable"


def test_pacman_backend_on_the_host_prefers_checkupdates(bindir: Path) -> None:
    fake_tool(bindir, "checkupdates", f"grep -v ignored {FIX / 'pacman_qu.txt'}")  # it drops [ignored]
    fake_tool(bindir, "pacman", "exit 3")
    backend = PacmanBackend(ctx(Path("/")))
    info = backend.updates([InstalledPackage("linux", "6.9.3.arch1-1", "x86_64")])
    assert [(p.name, p.arch) for p in info.pending] == [("linux", "x86_64"), ("openssl", ""), ("zlib", "")]
    fake_tool(bindir, "checkupdates", "exit 2")  # checkupdates: 2 means nothing pending
    assert backend.updates([]).pending == [] and backend.updates([]).error == ""


# --- the real tools, when this machine has them -------------------------------------------------
# Debian packages them (rpm, dnf, createrepo-c, pacman-package-manager, libarchive-tools) and
# scripts/test installs them; elsewhere these skip and the fixture tests above carry the coverage.
# Installing into a temporary root needs root (rpm and pacman chroot for scriptlets).

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def missing(*tools: str) -> str:
    absent = [t for t in tools if shutil.which(t) is None]
    return f"needs {', '.join(absent)}" if absent else ("needs root" if not IS_ROOT else "")


def pacman_package(out: Path, name: str, version: str) -> Path:
    """A minimal package archive: .PKGINFO and one file, as makepkg would pack it."""
    tree = out / f"{name}-{version}"
    (tree / "usr/share/warden-test").mkdir(parents=True)
    (tree / "usr/share/warden-test" / name).write_text(version + "\n")
    (tree / ".PKGINFO").write_text(
        f"pkgname = {name}\npkgbase = {name}\npkgver = {version}\npkgdesc = test\n"
        "builddate = 1795000000\nsize = 8\narch = any\n"
    )
    archive = out / f"{name}-{version}-any.pkg.tar.gz"
    subprocess.run(["bsdtar", "-czf", str(archive), "-C", str(tree), ".PKGINFO", "usr"], check=True)
    return archive


@pytest.mark.skipif(
    bool(missing("pacman", "repo-add", "bsdtar")), reason=missing("pacman", "repo-add", "bsdtar")
)
def test_real_pacman_in_a_temporary_root(tmp_path: Path) -> None:
    root, repo = tmp_path / "root", tmp_path / "repo"
    (root / "etc").mkdir(parents=True)
    (root / "var/lib/pacman").mkdir(parents=True)
    (root / "var/cache/pacman/pkg").mkdir(parents=True)
    (root / "var/log").mkdir(parents=True)  # pacman writes no log without the directory
    repo.mkdir()
    (root / "etc/pacman.conf").write_text(
        f"[options]\nArchitecture = x86_64\nCacheDir = {root}/var/cache/pacman/pkg/\n"
        f"HookDir = {tmp_path}/hooks/\nSigLevel = Never\nLocalFileSigLevel = Never\n\n[core]\nServer = file://{repo}\n"
    )
    pacman = ["pacman", "--config", str(root / "etc/pacman.conf"), "--root", str(root)]
    pacman += ["--dbpath", str(root / "var/lib/pacman"), "--noconfirm"]
    old = pacman_package(tmp_path, "demo", "1.0-1")
    subprocess.run([*pacman, "-U", str(old)], check=True, capture_output=True)
    backend = PacmanBackend(ctx(root))
    assert backend.installed() == [InstalledPackage("demo", "1.0-1", "any")]
    unsynced = backend.updates(backend.installed())  # no sync database yet: unknown, not 0
    assert "does not exist" in unsynced.error and unsynced.pending == []

    new = pacman_package(repo, "demo", "1:1.1-1")  # the sync repository serves it from beside its db
    subprocess.run(
        ["repo-add", "-q", str(repo / "core.db.tar.gz"), str(new)], check=True, capture_output=True
    )
    subprocess.run([*pacman, "-Sy"], check=True, capture_output=True)
    info = backend.updates(backend.installed())
    assert info.error == "" and info.pending == [PendingUpdate("demo", "1.0-1", "1:1.1-1", "any")]
    subprocess.run([*pacman, "-Su"], check=True, capture_output=True)
    info = backend.updates(backend.installed())  # exit 1, nothing printed
    assert info.error == "" and info.pending == []
    assert info.last_update_unix >= int(time.time()) - 600  # from the pacman.log it just wrote


RPM_TOOLS = ("rpm", "rpmbuild", "createrepo_c", "dnf")


@pytest.mark.skipif(bool(missing(*RPM_TOOLS)), reason=missing(*RPM_TOOLS))
def test_real_rpm_and_dnf_in_a_temporary_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home, root, repo = tmp_path / "home", tmp_path / "root", tmp_path / "repo"
    home.mkdir()
    # Debian's rpm keeps its database in ~/.rpmdb; a RHEL host's is /var/lib/rpm under the root.
    (home / ".rpmmacros").write_text(f"%_topdir {tmp_path}/rpmbuild\n%_dbpath /var/lib/rpm\n")
    monkeypatch.setenv("HOME", str(home))
    spec = FIX / "capture/rpm/fixture.spec"
    for release in ("1.el9", "2.el9"):
        defines = ["--define", "fx_name demo", "--define", "fx_epoch 1", "--define", "fx_version 1.0"]
        defines += ["--define", "fx_provides system-release(releasever) = 9"]  # dnf needs a release
        defines += ["--define", f"fx_release {release}"]
        subprocess.run(
            ["rpmbuild", "-bb", "--quiet", *defines, "--target", "x86_64", str(spec)],
            check=True,
            capture_output=True,
        )
    rpms = tmp_path / "rpmbuild/RPMS/x86_64"
    subprocess.run(
        ["rpm", "--root", str(root), "-i", str(rpms / "demo-1.0-1.el9.x86_64.rpm")],
        check=True,
        capture_output=True,
    )
    repo.mkdir()
    shutil.copy(rpms / "demo-1.0-2.el9.x86_64.rpm", repo)
    subprocess.run(["createrepo_c", "--quiet", str(repo)], check=True)
    (root / "etc/yum.repos.d").mkdir(parents=True)
    (root / "etc/yum.repos.d/test.repo").write_text(f"[test]\nname=test\nbaseurl=file://{repo}\ngpgcheck=0\n")
    backend = RpmBackend(ctx(root))
    assert backend.installed() == [InstalledPackage("demo", "1:1.0-1.el9", "x86_64")]
    no_cache = backend.updates(backend.installed())  # dnf -C before any makecache
    assert no_cache.error == "dnf: exit code 1: Error: Cache-only enabled but no cache for 'test'"

    subprocess.run(
        ["dnf", "-q", "--installroot", str(root), "--releasever", "9", "makecache"],
        check=True,
        capture_output=True,
    )
    info = backend.updates(backend.installed())
    assert info.error == ""
    assert info.pending == [PendingUpdate("demo", "1:1.0-1.el9", "1:1.0-2.el9", "x86_64", False, "test")]


# --- Windows -------------------------------------------------------------------------------------


def test_windows_parsers_on_fixtures() -> None:
    real = json.loads((FIX / "windows_get_hotfix.json").read_text())
    assert [p.name for p in parse_hotfixes(real)] == ["KB4512578"]  # one object, not an array
    assert json_date(real["InstalledOn"]) == 1567807200
    assert json_date({"value": "/Date(1567807200000)/", "DateTime": "x"}) == 1567807200
    assert json_date("2019-09-10T00:00:00+02:00") == 1568066400
    assert json_date("garbage") == 0 and json_date(None) == 0

    # windows_report.json is documented (written by us; no public capture of such a report).
    report = parse_report((FIX / "windows_report.json").read_text())
    assert [p.name for p in parse_hotfixes(report["hotfixes"])] == ["KB4512578", "KB4514366"]
    assert last_success_from_history(report["history"]) == 1568109600  # the failed one is newer
    pending = parse_pending(report["pending"])
    assert [(p.name, p.security, p.origin) for p in pending] == [
        ("KB4519338", True, "Critical"),
        ("KB4519568", False, ""),
    ]
    with pytest.raises(ToolError):
        parse_report((FIX / "windows_report.json").read_text()[:200])  # truncated JSON
    with pytest.raises(ToolError):
        parse_report("[1, 2]")


def test_windows_backend_with_a_fake_powershell(tmp_path: Path, bindir: Path) -> None:
    fake_tool(bindir, "powershell.exe", f"cat {FIX / 'windows_report.json'}")
    out = PackagesProbe(PackagesOptions(manager="windows"), HostPaths()).collect()
    m = metrics(out)
    assert m["packages_installed"] == 2 and m["updates_pending"] == 2 and m["updates_security_pending"] == 1
    assert m["reboot_required"] == 1 and m["updates_last_success_timestamp_seconds"] == 1568109600
    assert section(out, "packages").manager == "windows"


# --- macOS ---------------------------------------------------------------------------------------


# install_date of "MAContent10_AssetPack_0048_AlchemyPadsDigitalHolyGhost" in the public capture.
MACOS_LAST_APPLE = calendar.timegm((2025, 1, 26, 1, 16, 31, 0, 0, 0))


def test_macos_parsers_on_fixtures() -> None:
    cat = parse_softwareupdate((FIX / "macos_softwareupdate_catalina.txt").read_text())
    assert [(p.name, p.new_version, p.origin) for p in cat] == [
        ("Command Line Tools beta 5 for Xcode-11.0", "11.0", ""),
        ("macOS Catalina Developer Beta-6", "5", "restart"),
        ("BridgeOSUpdateCustomer", "10.15.0.1.1.1560926689", ""),
        ("iCal-1.0.2", "1.0.2", ""),
    ]
    moj = parse_softwareupdate((FIX / "macos_softwareupdate_mojave.txt").read_text())
    assert [(p.name, p.new_version) for p in moj] == [
        ("Command Line Tools (macOS Mojave version 10.14) for Xcode-10.3", "10.3"),
        ("macOS 10.14.1 Update", "10.14.1"),
        ("BridgeOSUpdateCustomer", "10.14.4.1.1.1555388607"),
        ("iCal-1.0.2", "1.0.2"),
    ]
    # Its "Security Update 2021-002" entry is documented (written by us in the Catalina format).
    sec = parse_softwareupdate((FIX / "macos_softwareupdate_security.txt").read_text())
    assert [p.name for p in sec if p.security] == ["Security Update 2021-002 Catalina-10.15.7"]
    assert len(sec) == 4
    assert (
        parse_softwareupdate(
            "Software Update Tool\n\nFinding available software\nNo new software available.\n"
        )
        == []
    )
    tahoe = parse_softwareupdate((FIX / "macos_softwareupdate_tahoe.txt").read_text())
    assert [(p.name, p.new_version, p.security, p.origin) for p in tahoe] == [
        ("Command Line Tools for Xcode 26.2-26.2", "26.2", False, ""),
        ("macOS Tahoe 26.2-25C56", "26.2", False, "restart"),
    ]  # a real macOS 26 list: sizes in KiB, no "Action:" for an update without restart
    # The newest Apple item is the asset pack (listed first), not "macOS 15.2" below it nor
    # the newer package_source_other item.
    assert last_apple_install((FIX / "macos_install_history.json").read_text()) == MACOS_LAST_APPLE
    with pytest.raises(ToolError):
        last_apple_install("{truncated")
    pkgs = parse_pkgutil((FIX / "macos_pkgutil_pkgs.txt").read_text())
    assert len(pkgs) == 132 and all(p.version == "" for p in pkgs)
    names = [p.name for p in pkgs]
    assert names == sorted(names) and "com.apple.pkg.MobileAssets" in names
    assert "org.golang.go" in names and "com.microsoft.package.Microsoft_PowerPoint.appv" in names


def test_macos_backend_with_fake_tools(tmp_path: Path, bindir: Path) -> None:
    fake_tool(bindir, "pkgutil", f"cat {FIX / 'macos_pkgutil_pkgs.txt'}")
    fake_tool(bindir, "softwareupdate", f"cat {FIX / 'macos_softwareupdate_security.txt'}")
    fake_tool(bindir, "system_profiler", f"cat {FIX / 'macos_install_history.json'}")
    out = PackagesProbe(PackagesOptions(manager="macos"), HostPaths()).collect()
    m = metrics(out)
    assert m["packages_installed"] == 132 and m["updates_pending"] == 4 and m["updates_security_pending"] == 1
    assert m["updates_last_success_timestamp_seconds"] == MACOS_LAST_APPLE


def test_custom_kernel_release_that_is_no_dpkg_version(tmp_path: Path, bindir: Path) -> None:
    status = (
        "Package: linux-image-6.1.0-30-amd64\nStatus: install ok installed\nArchitecture: amd64\n"
        "Version: 6.1.124-1\n"
    )
    fake_tool(bindir, "apt-get", f"cat {FIX / 'apt_get_s_none_pending.txt'}")
    root = dpkg_rootfs(tmp_path, status)
    out = PackagesProbe(PackagesOptions(), HostPaths(rootfs=root), uname=uname("custom_kernel!")).collect()
    assert metrics(out)["kernel_update_pending_reboot"] == 0  # not comparable: no false alarm
    assert section(out, "updates").newest_kernel == "6.1.0-30-amd64"
