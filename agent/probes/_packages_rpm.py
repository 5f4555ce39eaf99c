"""rpm/dnf backend (RHEL, Fedora, SUSE's rpm database): `rpm -qa` for the installed set,
dnf (or yum) in cache-only mode for pending and security updates and the transaction history,
`needs-restarting -r` for the reboot flag.

`dnf check-update` exits 100 when updates are available, 0 when none, 1 on error. `-C` keeps
dnf on its metadata cache: no download, no refresh; pending updates are as fresh as the
host's own cache (dnf-makecache.timer). On SUSE (zypper hosts) only the installed list and
kernel facts are reported, with `updates.error` saying dnf/yum is missing.
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Callable, Hashable, Sequence
from pathlib import Path

from warden.agent.probes._packages_common import (
    BackendContext,
    InstalledPackage,
    PendingUpdate,
    ToolError,
    UpdatesInfo,
)
from warden.agent.versions import compare_versions

__all__ = [
    "RpmBackend",
    "last_update_from_history",
    "newest_rpm_kernel",
    "parse_check_update",
    "parse_needs_restarting",
    "parse_rpm_qa",
    "parse_updateinfo_security",
]

# Cache only, quiet, and a repository without a cache is an error, not skipped: with
# skip_if_unavailable=True (Debian's dnf.conf, some hosts') `dnf -q -C check-update` says
# nothing about a never-cached repository and exits 0, a false "nothing pending".
DNF_CACHE_ONLY = ("-q", "-C", "--setopt=skip_if_unavailable=False")
QUERYFORMAT = "%{NAME}\\t%{EPOCHNUM}:%{VERSION}-%{RELEASE}\\t%{ARCH}\\n"
_KERNEL_NAMES = ("kernel", "kernel-core", "kernel-default", "kernel-uek", "kernel-uek-core")
_ARCHES = r"(?:x86_64|noarch|i[3-6]86|aarch64|ppc64le|ppc64|s390x|armv7hl|armhfp|src)"
_NEVRA = re.compile(
    rf"^(?P<name>.+)-(?:(?P<epoch>\d+):)?(?P<version>[^-]+)-(?P<release>[^-]+)\.(?P<arch>{_ARCHES})$"
)
_HISTORY_DATE = re.compile(r"(\d{4}-\d\d-\d\d \d\d:\d\d(?::\d\d)?)")


class RpmBackend:
    manager = "rpm"
    scheme = "rpm"

    def __init__(self, ctx: BackendContext) -> None:
        self.ctx = ctx
        self._root = [] if ctx.rootfs == Path("/") else ["--root", str(ctx.rootfs)]
        self._installroot = [] if ctx.rootfs == Path("/") else ["--installroot", str(ctx.rootfs)]

    def installed(self) -> list[InstalledPackage]:
        res = self.ctx.run(["rpm", *self._root, "-qa", "--qf", QUERYFORMAT])
        return parse_rpm_qa(res.stdout)

    def updates(self, installed: Sequence[InstalledPackage]) -> UpdatesInfo:
        info = UpdatesInfo(running_kernel=self.ctx.running_kernel)
        dnf = shutil.which("dnf") or shutil.which("yum")
        if self.ctx.check_updates:
            if dnf is None:
                info.error = "dnf/yum: not installed (not found on PATH)"
            else:
                try:
                    info.pending = self._pending(dnf, installed)
                except ToolError as e:
                    info.error = str(e)
        if dnf is not None:
            try:
                res = self.ctx.run([dnf, "-q", "-C", *self._installroot, "history", "list"])
                info.last_update_unix = last_update_from_history(res.stdout)
            except ToolError:
                pass  # history needs read access to dnf's database; unknown is 0
        info.newest_kernel = newest_rpm_kernel(installed)
        if info.newest_kernel and info.running_kernel:
            info.kernel_update_pending = compare_versions(info.newest_kernel, info.running_kernel, "rpm") > 0
        if shutil.which("needs-restarting") and self.ctx.rootfs == Path("/"):
            try:
                res = self.ctx.run(["needs-restarting", "-r"], ok_codes=(0, 1))
                info.reboot_required, info.reboot_required_packages = parse_needs_restarting(
                    res.returncode, res.stdout
                )
            except ToolError:
                pass
        return info

    def _pending(self, dnf: str, installed: Sequence[InstalledPackage]) -> list[PendingUpdate]:
        res = self.ctx.run([dnf, *DNF_CACHE_ONLY, *self._installroot, "check-update"], ok_codes=(0, 100))
        if res.returncode == 0:
            return []
        available = parse_check_update(res.stdout)
        sec = self.ctx.run([dnf, *DNF_CACHE_ONLY, *self._installroot, "updateinfo", "list", "--security"])
        advisories = parse_updateinfo_security(sec.stdout)
        current = _newest_installed(installed, lambda p: (p.name, p.arch))
        by_name = _newest_installed(installed, lambda p: p.name)
        return [
            PendingUpdate(
                name=name,
                current_version=current.get((name, arch), by_name.get(name, "")),
                new_version=version,
                arch=arch,
                security=name in advisories,
                origin=advisories.get(name, repo),
            )
            for name, arch, version, repo in available
        ]


def _newest_installed(
    installed: Sequence[InstalledPackage], key: Callable[[InstalledPackage], Hashable]
) -> dict[Hashable, str]:
    """The newest installed version per key: install-only packages (kernels) are installed in
    several versions at once, listed in the rpm database's order, not by version."""
    out: dict[Hashable, str] = {}
    for p in installed:
        k = key(p)
        if k not in out or compare_versions(p.version, out[k], "rpm") > 0:
            out[k] = p.version
    return out


def parse_rpm_qa(text: str) -> list[InstalledPackage]:
    """`rpm -qa --qf QUERYFORMAT` lines; epoch 0 is left out of the version, as rpm prints it."""
    out = []
    bad = 0
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) != 3 or not parts[0] or ":" not in parts[1]:
            bad += bool(line.strip())
            continue
        name, evr, arch = parts
        if name == "gpg-pubkey":
            continue  # imported signing keys, not packages
        epoch, _, vr = evr.partition(":")
        version = vr if epoch in ("0", "(none)", "") else evr
        out.append(InstalledPackage(name, version, "" if arch == "(none)" else arch))
    if not out and bad:
        raise ToolError("garbled", f"rpm -qa: {bad} line(s) not in the expected format")
    return out


def parse_check_update(text: str) -> list[tuple[str, str, str, str]]:
    """(name, arch, version, repo) of `dnf check-update` lines `name.arch  version  repo`;
    a long name makes dnf wrap the rest onto the next line. Obsoletes are not updates."""
    out = []
    pending_name = ""
    for line in text.splitlines():
        if line.startswith(("Obsoleting Packages", "Security:")):
            if line.startswith("Obsoleting"):
                break
            continue
        parts = line.split()
        if pending_name and len(parts) == 2 and line[:1].isspace():
            parts = [pending_name, *parts]
        pending_name = ""
        if len(parts) == 1 and "." in parts[0] and not line[:1].isspace():
            pending_name = parts[0]
            continue
        if len(parts) != 3 or "." not in parts[0] or parts[0].startswith("Last"):
            continue
        name, _, arch = parts[0].rpartition(".")
        version = parts[1]
        if version.startswith("0:"):
            version = version[2:]
        out.append((name, arch, version, parts[2]))
    return out


def parse_updateinfo_security(text: str) -> dict[str, str]:
    """Package name -> advisory id from `dnf updateinfo list --security` lines
    `RHSA-2024:4623 Important/Sec.  openssl-1:3.0.7-27.el9.x86_64`."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 3:
            continue
        m = _NEVRA.match(parts[-1])
        if m:
            out.setdefault(m.group("name"), parts[0])
    return out


def last_update_from_history(text: str) -> int:
    """Newest transaction of `dnf history list` (dnf4 table with '|', dnf5 columns) whose
    actions include an upgrade and that is not flagged aborted ('*') or failed."""
    newest = 0
    for line in text.splitlines():
        m = _HISTORY_DATE.search(line)
        if not m:
            continue
        rest = line[m.end() :]
        # dnf4: "| Action(s) | Altered" cells after the date; dnf5: plain columns.
        cells = rest.split("|")[1:] if "|" in rest else [rest]
        words = re.findall(r"[A-Za-z]+", cells[0])
        if not any(w in ("U", "Upgrade", "Update", "Upgraded", "Updated") for w in words):
            continue
        altered = cells[1] if len(cells) > 1 else ""
        if "*" in altered:
            continue  # aborted or incomplete transaction
        stamp = m.group(1)
        fmt = "%Y-%m-%d %H:%M:%S" if stamp.count(":") == 2 else "%Y-%m-%d %H:%M"
        try:
            newest = max(newest, int(time.mktime(time.strptime(stamp, fmt))))  # local time
        except ValueError:
            continue
    return newest


def newest_rpm_kernel(installed: Sequence[InstalledPackage]) -> str:
    """Kernel release (`uname -r` form: version-release.arch) of the newest installed kernel."""
    best = ""
    for p in installed:
        if p.name not in _KERNEL_NAMES:
            continue
        vr = p.version.split(":", 1)[-1]
        release = f"{vr}.{p.arch}" if p.arch else vr
        if not best or compare_versions(release, best, "rpm") > 0:
            best = release
    return best


def parse_needs_restarting(returncode: int, text: str) -> tuple[bool, list[str]]:
    """`needs-restarting -r`: exit 1 means a reboot is needed; the packages are `  * name` lines."""
    pkgs = sorted({ln.strip()[2:].strip() for ln in text.splitlines() if ln.strip().startswith("* ")})
    return returncode == 1, pkgs
