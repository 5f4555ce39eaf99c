"""Probe `packages`: installed packages and patch level (pending and security updates, the
last successful update, running versus newest kernel, reboot required).

The host's own tools and files are used, never one that changes the host: the dpkg status
database and `apt-get -s` (dpkg), `rpm -qa` and dnf in cache-only mode (rpm), the apk
database and `apk version` (apk), the pacman local database and `checkupdates` (pacman),
PowerShell's Get-HotFix and the Windows Update history (windows), `softwareupdate --list` and
pkgutil (macos). Each manager is a private sibling module (`_packages_<manager>.py`).

The full package list is sent only when its content hash changed, or after
`full_resend_seconds` so a collector that lost it recovers; otherwise the `packages` section
carries the hash and count alone (the collector keeps its earlier full copy). The hash last
sent is kept in the probe's state directory, so an agent restart does not resend the list.

A host where the package tool is missing or denied reports that as data: `updates.error`
and one `packages.*_unavailable` event per distinct error, while the rest goes on.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from warden.agent import records
from warden.agent.probes import HostPaths, option, probe
from warden.agent.probes._packages_common import (
    Backend,
    BackendContext,
    InstalledPackage,
    ToolError,
    UpdatesInfo,
)
from warden.v1 import records_pb2

__all__ = ["MANAGERS", "PackagesOptions", "PackagesProbe", "content_hash", "detect_manager"]

log = logging.getLogger(__name__)

SOURCE = "probe:packages"
MANAGERS = ("dpkg", "rpm", "apk", "pacman", "windows", "macos")
STATE_FILE = "packages-state.json"
MiB = 1024 * 1024


@dataclass(frozen=True)
class PackagesOptions:
    manager: str = option(
        "auto",
        "Package manager: auto (detected under paths.rootfs), dpkg, rpm, apk, pacman, windows or macos.",
    )
    check_updates: bool = option(
        True,
        "List pending updates (apt-get -s, dnf -C, apk version, checkupdates...): simulations and "
        "cache reads only, never an install or a metadata refresh.",
    )
    apt_command: str = option(
        "dist-upgrade",
        "What apt-get simulates: dist-upgrade (includes upgrades that need new packages, such as "
        "kernels) or upgrade.",
    )
    command_timeout_seconds: float = option(
        300.0, "A package tool taking longer is killed and the run reports a timeout.", gt=0
    )
    max_output_bytes: int = option(
        32 * MiB, "A package tool printing more than this (32 MiB) is killed and reported.", gt=0
    )
    full_resend_seconds: float = option(
        86400.0, "Resend the full package list at least this often (24 h) even when unchanged.", gt=0
    )
    max_pending_listed: int = option(
        2000, "Most pending updates listed in the updates section; the counts stay exact.", gt=0
    )


def content_hash(packages: Sequence[InstalledPackage]) -> str:
    """sha256 (hex) over the sorted "name version arch" lines, each ended by a newline."""
    h = hashlib.sha256()
    for line in sorted(f"{p.name} {p.version} {p.arch}" for p in packages):
        h.update(line.encode("utf-8", errors="replace") + b"\n")
    return h.hexdigest()


def detect_manager(rootfs: Path, platform: str = sys.platform) -> str | None:
    """The package manager whose database exists under `rootfs`, or the platform's own."""
    if platform == "win32":
        return "windows"
    if platform == "darwin":
        return "macos"
    # dpkg first: a Debian host may have the rpm tool installed, but its packages are dpkg's.
    if (rootfs / "var/lib/dpkg/status").is_file():
        return "dpkg"
    if any((rootfs / p).exists() for p in ("usr/bin/rpm", "bin/rpm")) and any(
        (rootfs / d).is_dir() for d in ("var/lib/rpm", "usr/lib/sysimage/rpm")
    ):
        return "rpm"
    if (rootfs / "lib/apk/db/installed").is_file():
        return "apk"
    if (rootfs / "var/lib/pacman/local").is_dir():
        return "pacman"
    return None


def _make_backend(manager: str, ctx: BackendContext, options: PackagesOptions) -> Backend:
    # Imported here: an agent only ever loads its own host's backend.
    if manager == "dpkg":
        from warden.agent.probes._packages_dpkg import DpkgBackend

        return DpkgBackend(ctx, apt_command=options.apt_command)
    if manager == "rpm":
        from warden.agent.probes._packages_rpm import RpmBackend

        return RpmBackend(ctx)
    if manager == "apk":
        from warden.agent.probes._packages_apk import ApkBackend

        return ApkBackend(ctx)
    if manager == "pacman":
        from warden.agent.probes._packages_pacman import PacmanBackend

        return PacmanBackend(ctx)
    if manager == "windows":
        from warden.agent.probes._packages_windows import WindowsBackend

        return WindowsBackend(ctx)
    from warden.agent.probes._packages_macos import MacosBackend

    return MacosBackend(ctx)


@probe("packages", default_interval_seconds=3600, config=PackagesOptions)
class PackagesProbe:
    """Installed packages (in full only when changed) and patch level: updates, kernel, reboot."""

    def __init__(
        self,
        options: PackagesOptions,
        paths: HostPaths,
        state_dir: Path | None = None,
        *,
        backend: Backend | None = None,
        uname: Callable[[], os.uname_result] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.options = options
        self.paths = paths
        self.state_dir = state_dir
        self._backend = backend
        self._uname = uname or getattr(os, "uname", None)  # os.uname is POSIX-only
        self._clock = clock
        self._reported: dict[str, str] = {}  # event kind -> error text already reported
        self._state = self._load_state()

    def validate(self) -> None:
        if self.options.manager != "auto" and self.options.manager not in MANAGERS:
            raise ValueError(f"manager {self.options.manager!r} is not auto or one of {', '.join(MANAGERS)}")
        if self.options.apt_command not in ("dist-upgrade", "upgrade"):
            raise ValueError(f"apt_command {self.options.apt_command!r} is not dist-upgrade or upgrade")

    # --- collect ------------------------------------------------------------------------------

    def collect(self) -> list[records_pb2.Record]:
        t = records.now_ns()
        backend = self._backend or self._choose_backend()
        if backend is None:
            error = f"no supported package manager found under {self.paths.rootfs}"
            return self._unavailable("none", error, t)
        try:
            installed = backend.installed()
        except ToolError as e:
            return self._unavailable(backend.manager, str(e), t)
        self._recovered("packages.unavailable")
        labels = {"manager": backend.manager}
        out = [records.metric("packages_installed", len(installed), labels, t)]

        info = backend.updates(installed)
        out += self._update_records(backend.manager, info, labels, t)
        # The packages section last: it commits the "sent" state, so nothing after it may fail.
        out.append(self._packages_section(backend.manager, installed, t))
        return out

    def _choose_backend(self) -> Backend | None:
        manager = self.options.manager
        if manager == "auto":
            manager = detect_manager(self.paths.rootfs) or ""
            if not manager:
                return None
        uname = self._uname() if self._uname else None
        ctx = BackendContext(
            rootfs=self.paths.rootfs,
            command_timeout_seconds=self.options.command_timeout_seconds,
            max_output_bytes=self.options.max_output_bytes,
            check_updates=self.options.check_updates,
            running_kernel=uname.release if uname else "",
            kernel_build=uname.version if uname else "",
        )
        self._backend = _make_backend(manager, ctx, self.options)
        return self._backend

    def _update_records(
        self, manager: str, info: UpdatesInfo, labels: dict[str, str], t: int
    ) -> list[records_pb2.Record]:
        out: list[records_pb2.Record] = []
        security = sum(1 for p in info.pending if p.security)
        if info.error:
            out += self._report_once(
                "packages.updates_unavailable", info.error, {"manager": manager, "error": info.error}, t
            )
        else:
            self._recovered("packages.updates_unavailable")
            # Counts only when the check ran: "0 pending" must never stand for "unknown".
            out.append(records.metric("updates_pending", len(info.pending), labels, t))
            out.append(records.metric("updates_security_pending", security, labels, t))
        if info.last_update_unix > 0:
            out.append(
                records.metric("updates_last_success_timestamp_seconds", info.last_update_unix, labels, t)
            )
        out.append(records.metric("reboot_required", 1 if info.reboot_required else 0, labels, t))
        out.append(
            records.metric("kernel_update_pending_reboot", 1 if info.kernel_update_pending else 0, labels, t)
        )
        section = records_pb2.UpdatesSection(
            manager=manager,
            pending_count=len(info.pending),
            security_count=security,
            last_update_unix=info.last_update_unix,
            running_kernel=info.running_kernel,
            newest_kernel=info.newest_kernel,
            reboot_required=info.reboot_required,
            reboot_required_packages=info.reboot_required_packages,
            error=info.error,
        )
        # Security updates first, so a capped list keeps the ones that matter most.
        ordered = sorted(info.pending, key=lambda p: (not p.security, p.name))
        for p in ordered[: self.options.max_pending_listed]:
            section.pending.append(
                records_pb2.PendingUpdate(
                    name=p.name,
                    current_version=p.current_version,
                    new_version=p.new_version,
                    arch=p.arch,
                    security=p.security,
                    origin=p.origin,
                )
            )
        out.append(records.inventory(section, t))
        return out

    def _packages_section(
        self, manager: str, installed: Sequence[InstalledPackage], t: int
    ) -> records_pb2.Record:
        digest = content_hash(installed)
        now = self._clock()
        last = self._state
        full = (
            last.get("hash") != digest
            or last.get("manager") != manager
            or now - float(last.get("full_sent_unix", 0)) >= self.options.full_resend_seconds
            or now < float(last.get("full_sent_unix", 0))  # the clock went back: be safe
        )
        section = records_pb2.PackagesSection(
            manager=manager, content_hash=digest, full=full, count=len(installed)
        )
        if full:
            for p in sorted(installed):
                section.packages.append(records_pb2.Package(name=p.name, version=p.version, arch=p.arch))
            self._state = {"hash": digest, "manager": manager, "full_sent_unix": now}
            self._save_state()
        return records.inventory(section, t)

    # --- errors as data -----------------------------------------------------------------------

    def _unavailable(self, manager: str, error: str, t: int) -> list[records_pb2.Record]:
        out = self._report_once("packages.unavailable", error, {"manager": manager, "error": error}, t)
        if out:
            # The collector's updates view shows why this host has no patch data.
            out.append(records.inventory(records_pb2.UpdatesSection(manager=manager, error=error), t))
        return out

    def _report_once(self, kind: str, error: str, fields: dict[str, str], t: int) -> list[records_pb2.Record]:
        if self._reported.get(kind) == error:
            return []
        self._reported[kind] = error
        log.warning("%s: %s", kind, error)
        return [records.event(kind, "warning", fields, source=SOURCE, time_ns=t)]

    def _recovered(self, kind: str) -> None:
        self._reported.pop(kind, None)

    # --- state --------------------------------------------------------------------------------

    def _load_state(self) -> dict[str, object]:
        if self.state_dir is None:
            return {}
        try:
            data = json.loads((self.state_dir / STATE_FILE).read_text())
        except (OSError, ValueError):
            return {}  # none yet, or corrupt: the full list is simply sent again
        return data if isinstance(data, dict) else {}

    def _save_state(self) -> None:
        if self.state_dir is None:
            return
        try:
            self.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            tmp = self.state_dir / (STATE_FILE + ".tmp")
            tmp.write_text(json.dumps(self._state))
            os.replace(tmp, self.state_dir / STATE_FILE)
        except OSError as e:
            # Not fatal: at worst the next restart resends the full list once.
            log.warning("packages: cannot save state in %s: %s", self.state_dir, e)
