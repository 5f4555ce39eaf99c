"""apk backend (Alpine): the installed database `lib/apk/db/installed` read directly, pending
updates from `apk version -l '<'` (which compares against the locally cached indexes and
fetches nothing), the kernel from the module trees.

apk keeps no transaction log: the last update is the installed database's modification
time, i.e. the last apk transaction of any kind. Alpine publishes no security flag in its
indexes, so no pending update is marked security.
"""

from __future__ import annotations

import contextlib
import re
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

__all__ = ["ApkBackend", "parse_apk_installed", "parse_apk_version"]

INSTALLED_DB = "lib/apk/db/installed"
MAX_DB_BYTES = 512 * 1024 * 1024  # the db lists every file; large hosts reach ~100 MB
# name-version where the version is apk's: digits..., optional suffixes, -rN.
_NAME_VERSION = re.compile(r"^(?P<name>.+?)-(?P<version>\d[^-]*-r\d+)$")


class ApkBackend:
    manager = "apk"
    scheme = "apk"

    def __init__(self, ctx: BackendContext) -> None:
        self.ctx = ctx

    def installed(self) -> list[InstalledPackage]:
        return parse_apk_installed(read_text_bounded(self.ctx.host(INSTALLED_DB), MAX_DB_BYTES))

    def updates(self, installed: Sequence[InstalledPackage]) -> UpdatesInfo:
        info = UpdatesInfo(running_kernel=self.ctx.running_kernel)
        if self.ctx.check_updates:
            root = [] if self.ctx.rootfs == Path("/") else ["--root", str(self.ctx.rootfs)]
            try:
                res = self.ctx.run(["apk", *root, "version", "-l", "<"])
                arch = {p.name: p.arch for p in installed}
                info.pending = [
                    PendingUpdate(name, cur, new, arch.get(name, ""))
                    for name, cur, new in parse_apk_version(res.stdout)
                ]
            except ToolError as e:
                info.error = str(e)
        with contextlib.suppress(OSError):
            info.last_update_unix = int(self.ctx.host(INSTALLED_DB).stat().st_mtime)
        info.newest_kernel, info.kernel_update_pending = kernel_from_modules(self.ctx)
        return info


def parse_apk_installed(text: str) -> list[InstalledPackage]:
    """P: (name), V: (version), A: (arch) of each blank-line separated package stanza."""
    out: list[InstalledPackage] = []
    fields: dict[str, str] = {}
    stanzas = 0

    def flush() -> None:
        nonlocal stanzas
        if fields:
            stanzas += 1
            if fields.get("P") and fields.get("V"):
                out.append(InstalledPackage(fields["P"], fields["V"], fields.get("A", "")))
        fields.clear()

    for line in text.splitlines():
        if not line.strip():
            flush()
        elif len(line) > 1 and line[1] == ":" and line[0] in "PVA":
            fields[line[0]] = line[2:].strip()
        elif len(line) > 1 and line[1] == ":":
            fields.setdefault("_", "")
    flush()
    if text.strip() and not out:
        raise ToolError("garbled", "apk installed database: no package stanza found (garbled file?)")
    return out


def parse_apk_version(text: str) -> list[tuple[str, str, str]]:
    """(name, installed, available) from `apk version -l '<'` lines `name-1.2-r0  < 1.3-r0`.

    apk-tools prints each line as `name-version<pad> < available <tag>` (src/app_version.c):
    the tag is empty for the untagged repositories and `@edge`-like when the newer version
    comes from a tagged one (`/etc/apk/repositories` lines `@edge https://...`).
    """
    out = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[3].startswith("@"):
            parts = parts[:3]  # the repository tag
        if len(parts) != 3 or parts[1] != "<":
            continue  # the "Installed: Available:" header, warnings
        m = _NAME_VERSION.match(parts[0])
        if m:
            out.append((m.group("name"), m.group("version"), parts[2]))
    return out
