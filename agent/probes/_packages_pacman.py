"""pacman backend (Arch): the local database `var/lib/pacman/local/<pkg>/desc` read directly,
pending updates from `checkupdates` (pacman-contrib, which syncs a private copy of the
databases and never touches the host's) or else `pacman -Qu` (the host's last synced
databases), the last upgrade from pacman.log, the kernel from the module trees.

With a rootfs other than `/` only `pacman -Qu` can look at the host: it gets the host's
configuration (IgnorePkg), root and database (`--config <rootfs>/etc/pacman.conf --root
<rootfs> --dbpath <rootfs>/var/lib/pacman`); checkupdates has no such option and would report
on the agent's own container.

`pacman -Qu` exits 1 when it prints nothing and 0 when it prints a line, an IgnorePkg line
(`glibc 2.39-1 -> 2.39-4 [ignored]`, not pending) included; but it also exits 1 when it cannot
read its configuration or has no synced database: those say so on stderr and are errors, not
"nothing pending". `checkupdates` exits 2 for none.

Arch publishes no security flag in its databases: no pending update is marked security.
"""

from __future__ import annotations

import calendar
import contextlib
import re
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

from warden.agent.probes._packages_common import (
    BackendContext,
    InstalledPackage,
    PendingUpdate,
    ToolError,
    UpdatesInfo,
    kernel_from_modules,
    read_text_bounded,
)

__all__ = ["PacmanBackend", "check_qu_failure", "last_upgrade_from_log", "parse_desc", "parse_qu"]

DB_PATH = "var/lib/pacman"
LOCAL_DB = "var/lib/pacman/local"
PACMAN_CONF = "etc/pacman.conf"
PACMAN_LOG = "var/log/pacman.log"
MAX_DESC_BYTES = 1024 * 1024
MAX_LOG_BYTES = 64 * 1024 * 1024
_LOG_LINE = re.compile(r"^\[(?P<ts>[^\]]+)\] \[ALPM\] (?P<msg>.*)$")


class PacmanBackend:
    manager = "pacman"
    scheme = "pacman"

    def __init__(self, ctx: BackendContext) -> None:
        self.ctx = ctx
        self._root: list[str] = []
        if ctx.rootfs != Path("/"):
            conf, db = ctx.host(PACMAN_CONF), ctx.host(DB_PATH)
            self._root = ["--config", str(conf), "--root", str(ctx.rootfs), "--dbpath", str(db)]

    def installed(self) -> list[InstalledPackage]:
        db = self.ctx.host(LOCAL_DB)
        try:
            entries = sorted(d for d in db.iterdir() if d.is_dir())
        except FileNotFoundError:
            raise ToolError("missing", f"{db}: not found") from None
        except PermissionError:
            raise ToolError("permission", f"{db}: permission denied") from None
        out = []
        for entry in entries:
            try:
                pkg = parse_desc(read_text_bounded(entry / "desc", MAX_DESC_BYTES))
            except ToolError:
                continue  # a half-written entry (pacman running) or a stray directory
            if pkg:
                out.append(pkg)
        if entries and not out:
            raise ToolError("garbled", f"{db}: no readable package entry")
        return out

    def updates(self, installed: Sequence[InstalledPackage]) -> UpdatesInfo:
        info = UpdatesInfo(running_kernel=self.ctx.running_kernel)
        if self.ctx.check_updates:
            try:
                if not self._root and shutil.which("checkupdates"):
                    res = self.ctx.run(["checkupdates"], ok_codes=(0, 2))  # 2: none pending
                else:
                    res = self.ctx.run(["pacman", *self._root, "-Qu"], ok_codes=(0, 1))
                    if res.returncode == 1:
                        check_qu_failure(res.stderr)
                arch = {p.name: p.arch for p in installed}
                info.pending = [
                    PendingUpdate(name, cur, new, arch.get(name, ""))
                    for name, cur, new in parse_qu(res.stdout)
                ]
            except ToolError as e:
                info.error = str(e)
        with contextlib.suppress(ToolError):
            info.last_update_unix = last_upgrade_from_log(
                read_text_bounded(self.ctx.host(PACMAN_LOG), MAX_LOG_BYTES)
            )
        info.newest_kernel, info.kernel_update_pending = kernel_from_modules(self.ctx)
        return info


def parse_desc(text: str) -> InstalledPackage | None:
    """%NAME%, %VERSION%, %ARCH% of a local database `desc` file (alpm-db-desc(5))."""
    fields: dict[str, str] = {}
    key = ""
    for line in text.splitlines():
        if line.startswith("%") and line.endswith("%") and len(line) > 2:
            key = line
        elif key and line.strip():
            fields.setdefault(key, line.strip())
    name, version = fields.get("%NAME%"), fields.get("%VERSION%")
    return InstalledPackage(name, version, fields.get("%ARCH%", "")) if name and version else None


def check_qu_failure(stderr: str) -> None:
    """Raise ToolError when `pacman -Qu`'s exit code 1 is a failure, not "nothing pending":
    `error: config file … could not be read`, `error: failed to initialize alpm library`, or
    `warning: database file for 'core' does not exist` (never synced: pending unknown)."""
    for line in stderr.splitlines():
        line = line.strip()
        if line.startswith("error:") or (
            line.startswith("warning: database file") and "does not exist" in line
        ):
            raise ToolError("failed", f"pacman: exit code 1: {line}")


def parse_qu(text: str) -> list[tuple[str, str, str]]:
    """(name, installed, available) of `checkupdates` / `pacman -Qu` lines `name 1.0-1 -> 1.1-1`
    (pacman adds " [ignored]" for IgnorePkg entries, which are not pending)."""
    out = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[2] == "->":
            out.append((parts[0], parts[1], parts[3]))
    return out


def last_upgrade_from_log(text: str) -> int:
    """Time of the newest "transaction completed" in pacman.log that upgraded something."""
    newest = 0
    upgraded = False
    for line in text.splitlines():
        m = _LOG_LINE.match(line)
        if not m:
            continue
        msg = m.group("msg")
        if msg.startswith("transaction started"):
            upgraded = False
        elif msg.startswith("upgraded "):
            upgraded = True
        elif msg.startswith("transaction completed") and upgraded:
            ts = _parse_log_time(m.group("ts"))
            newest = max(newest, ts)
            upgraded = False
    return newest


def _parse_log_time(ts: str) -> int:
    # pacman >= 5.2: "2024-05-30T10:12:01+0200"; older: "2019-01-01 10:00" in local time.
    try:
        return calendar.timegm(time.strptime(ts[:19], "%Y-%m-%dT%H:%M:%S")) - _offset_seconds(ts[19:])
    except ValueError:
        pass
    try:
        return int(time.mktime(time.strptime(ts, "%Y-%m-%d %H:%M")))
    except ValueError:
        return 0


def _offset_seconds(tz: str) -> int:
    m = re.fullmatch(r"([+-])(\d\d):?(\d\d)", tz.strip())
    if not m:
        return 0  # "Z" or none: UTC
    seconds = int(m.group(2)) * 3600 + int(m.group(3)) * 60
    return seconds if m.group(1) == "+" else -seconds
