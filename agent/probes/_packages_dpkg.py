"""dpkg/apt backend (Debian, Ubuntu): the dpkg status database read directly, pending updates
from apt-get's simulation, the last upgrade from apt's history log.

Nothing here changes the host: `apt-get -s` only simulates (with Debug::NoLocking it takes no
lock, with an empty Dir::Cache::pkgcache it writes no binary cache), and no `apt-get update` is
ever run, so pending updates are as fresh as the host's own package lists (refreshed by the
host's apt timers or unattended-upgrades).
"""

from __future__ import annotations

import gzip
import re
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from warden.agent.probes._packages_common import (
    BackendContext,
    InstalledPackage,
    PendingUpdate,
    ToolError,
    UpdatesInfo,
    iter_lines_bounded,
    read_text_bounded,
)
from warden.agent.versions import compare_versions

__all__ = [
    "DpkgBackend",
    "last_upgrade_time",
    "newest_kernel",
    "parse_apt_simulation",
    "parse_dpkg_status",
    "reboot_required_flag",
]

STATUS_FILE = "var/lib/dpkg/status"
HISTORY_LOG = "var/log/apt/history.log"
MAX_STATUS_BYTES = 256 * 1024 * 1024  # the largest real status files are ~20 MB
MAX_HISTORY_BYTES = 64 * 1024 * 1024

# dpkg states in which the package's files are on disk ("config-files" and "not-installed"
# are not installed; "half-installed" is a failed unpack, still present).
_PRESENT = frozenset(
    {"installed", "half-configured", "unpacked", "half-installed", "triggers-awaited", "triggers-pending"}
)

# Inst name [current] (new origin[, origin...] [arch]) [...]; "[current]" is absent for a new
# install, the origin for a package from no archive.
_INST = re.compile(
    r"^Inst (?P<name>[A-Za-z0-9][A-Za-z0-9+.:_-]*)(?: \[(?P<cur>[^\]]*)\])?"
    r" \((?P<new>\S+)(?: (?P<origin>[^\[]*?))? \[(?P<arch>[^\]]+)\]\)"
)
_KERNEL_PKG = re.compile(r"^linux-image-(?:unsigned-)?(?P<release>\d\S*)$")
_DEBIAN_BUILD = re.compile(r"Debian (?P<version>\d\S*) \(")


class DpkgBackend:
    manager = "dpkg"
    scheme = "dpkg"

    def __init__(self, ctx: BackendContext, apt_command: str = "dist-upgrade") -> None:
        self.ctx = ctx
        self.apt_command = apt_command

    def installed(self) -> list[InstalledPackage]:
        return parse_dpkg_status(iter_lines_bounded(self.ctx.host(STATUS_FILE), MAX_STATUS_BYTES))

    def updates(self, installed: Sequence[InstalledPackage]) -> UpdatesInfo:
        info = UpdatesInfo(running_kernel=self.ctx.running_kernel)
        if self.ctx.check_updates:
            try:
                info.pending = parse_apt_simulation(self._simulate())
            except ToolError as e:
                info.error = str(e)
        info.last_update_unix = last_upgrade_time(self.ctx.host(HISTORY_LOG))
        info.newest_kernel, _ = newest_kernel(installed)
        info.reboot_required, info.reboot_required_packages = reboot_required_flag(self.ctx)
        running = self.ctx.running_kernel
        if info.newest_kernel and running:
            info.kernel_update_pending = _newer(info.newest_kernel, running)
        # Debian keeps a kernel's ABI name across some updates: the running release is then
        # the newest, but the package on disk is newer than the booted build ("Debian
        # 6.1.119-1" in uname -v).
        booted = _DEBIAN_BUILD.search(self.ctx.kernel_build)
        on_disk = {p.name: p.version for p in installed}.get(f"linux-image-{running}")
        if booted and on_disk and _newer(on_disk, booted.group("version")):
            info.kernel_update_pending = True
        return info

    def _simulate(self) -> str:
        # -s: simulate only; NoLocking: take no dpkg/apt lock; empty pkgcache/srcpkgcache: build
        # apt's binary cache in memory instead of (re)writing /var/cache/apt/*.bin.
        argv = ["apt-get", "-s", "-q", "-o", "Debug::NoLocking=1",
                "-o", "Dir::Cache::pkgcache=", "-o", "Dir::Cache::srcpkgcache="]
        if self.ctx.rootfs != Path("/"):
            # Read the host's apt state and dpkg database, not the agent container's.
            argv += ["-o", f"Dir={self.ctx.rootfs}", "-o", f"Dir::State::status={self.ctx.host(STATUS_FILE)}"]
        argv.append(self.apt_command)
        return self.ctx.run(argv).stdout


def _newer(a: str, b: str) -> bool:
    """a > b by dpkg ordering; False when either is no valid version (a custom kernel name)."""
    try:
        return compare_versions(a, b, "dpkg") > 0
    except ValueError:
        return False


def parse_dpkg_status(text: str | Iterable[str]) -> list[InstalledPackage]:
    """Installed packages of a dpkg status file (deb822 paragraphs).

    A paragraph missing its Package, Version or Status (a truncated file) is skipped; a
    non-empty file with no valid paragraph at all is garbled.
    """
    out: list[InstalledPackage] = []
    named = 0  # paragraphs with a Package field, installed or not
    content = False
    fields: dict[str, str] = {}

    def flush() -> None:
        nonlocal named
        if not fields:
            return
        named += "package" in fields
        name, version, status = fields.get("package"), fields.get("version"), fields.get("status", "")
        state = status.split()[-1] if status.split() else ""
        if name and version and state in _PRESENT:
            out.append(InstalledPackage(name, version, fields.get("architecture", "")))
        fields.clear()

    for line in text.splitlines() if isinstance(text, str) else text:
        line = line.rstrip("\r\n")
        if not line.strip():
            flush()
            continue
        content = True
        if line[0] in " \t":
            continue  # continuation of a multi-line field (Description, Conffiles)
        key, sep, value = line.partition(":")
        if sep and key in ("Package", "Version", "Status", "Architecture"):
            fields[key.lower()] = value.strip()
        elif sep:
            fields.setdefault("_other", "")
    flush()
    if content and not named:
        raise ToolError("garbled", "dpkg status: no package paragraph found (garbled file?)")
    return out


def parse_apt_simulation(text: str) -> list[PendingUpdate]:
    """Upgrades of installed packages in `apt-get -s` output (new installs are not pending
    updates; a new kernel package shows up through its upgraded meta package)."""
    out: list[PendingUpdate] = []
    for line in text.splitlines():
        if not line.startswith("Inst "):
            continue
        m = _INST.match(line)
        if m is None or m.group("cur") is None:
            continue
        origin = (m.group("origin") or "").strip()
        out.append(
            PendingUpdate(
                name=m.group("name").split(":")[0],
                current_version=m.group("cur"),
                new_version=m.group("new"),
                arch=m.group("arch"),
                # "Debian-Security:12/stable-security", "Ubuntu:22.04/jammy-security": any
                # of the candidate's origins being a security pocket makes it a security fix.
                security=any(o.strip().endswith("-security") for o in origin.split(",")),
                origin=origin,
            )
        )
    return out


def last_upgrade_time(log: Path) -> int:
    """End time (Unix) of the newest transaction in apt's history that upgraded packages and
    reported no error; 0 when none is found. Reads history.log, then the rotated
    history.log.1.gz, .2.gz... until one has such a transaction."""
    candidates = [log] + sorted(
        log.parent.glob(log.name + ".*.gz"),
        key=lambda p: int(p.name.split(".")[-2]) if p.name.split(".")[-2].isdigit() else 1 << 30,
    )
    for path in candidates:
        try:
            if path.suffix == ".gz":
                with gzip.open(path, "rb") as f:
                    text = f.read(MAX_HISTORY_BYTES).decode("utf-8", errors="replace")
            else:
                text = read_text_bounded(path, MAX_HISTORY_BYTES)
        except (OSError, EOFError, ToolError):
            continue  # missing, unreadable or a truncated .gz: try the older ones
        found = _last_upgrade_in(text)
        if found:
            return found
    return 0


def _last_upgrade_in(text: str) -> int:
    newest = 0
    for entry in re.split(r"\n\s*\n", text):
        if "Upgrade:" not in entry or re.search(r"(?m)^Error:", entry):
            continue
        m = re.search(r"(?m)^End-Date: (\d{4}-\d\d-\d\d)\s+(\d\d:\d\d:\d\d)\s*$", entry)
        if m is None:
            continue  # interrupted (no End-Date) or garbled
        try:
            tm = time.strptime(f"{m.group(1)} {m.group(2)}", "%Y-%m-%d %H:%M:%S")
        except ValueError:
            continue
        # apt writes local time.
        newest = max(newest, int(time.mktime(tm)))
    return newest


def newest_kernel(installed: Sequence[InstalledPackage]) -> tuple[str, str]:
    """(kernel release, package version) of the newest installed linux-image-<release>
    package by dpkg ordering of its version; ("", "") when none (containers)."""
    best: tuple[str, str] = ("", "")
    for p in installed:
        m = _KERNEL_PKG.match(p.name)
        if not m or m.group("release").endswith("-dbg"):
            continue
        release = m.group("release")
        if best[0]:
            try:
                by_version = compare_versions(p.version, best[1], "dpkg")
            except ValueError:
                continue  # a corrupt Version field: not a candidate
            if by_version < 0 or (by_version == 0 and not _newer(release, best[0])):
                continue
        best = (release, p.version)
    return best


def reboot_required_flag(ctx: BackendContext) -> tuple[bool, list[str]]:
    """Debian/Ubuntu's /run/reboot-required (written by update-notifier, needrestart or
    unattended-upgrades) and the packages in reboot-required.pkgs."""
    for run in ("run", "var/run"):
        base = ctx.rootfs / run
        if run == "var/run" and base.is_symlink():
            continue  # an absolute link to /run would leave the rootfs
        flag = base / "reboot-required"
        if flag.exists():
            try:
                pkgs = read_text_bounded(base / "reboot-required.pkgs", 1024 * 1024).split()
            except ToolError:
                pkgs = []
            return True, sorted(set(pkgs))
    return False, []

