"""macOS backend: installed package receipts from `pkgutil --pkgs`, pending updates from
`softwareupdate --list` (it asks Apple's catalogue and installs nothing), the last update
from `system_profiler SPInstallHistoryDataType -json`.

Receipts carry no version in `pkgutil --pkgs` (a version per receipt would cost one process
each), so packages have an empty version. An update is security when its label or title says
so ("Security Update 2021-002", "Background Security Improvement", "Rapid Security Response").
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from warden.agent.probes._packages_common import (
    BackendContext,
    InstalledPackage,
    PendingUpdate,
    ToolError,
    UpdatesInfo,
)

__all__ = ["MacosBackend", "last_apple_install", "parse_pkgutil", "parse_softwareupdate"]

# Catalina and later: "* Label: <label>" then "\tTitle: <t>, Version: <v>, Size: ..., Action: restart,"
_LABEL = re.compile(r"^\s*[*-] Label: (?P<label>.+?)\s*$")
_TITLE = re.compile(r"^\s+Title: (?P<title>.*?), Version: (?P<version>[^,]*),(?P<rest>.*)$")
# Mojave and earlier: "   * <label>" then "\t<title> (<version>), <size>K [recommended] [restart]"
_OLD_LABEL = re.compile(r"^\s+[*-] (?P<label>.+)$")
_OLD_TITLE = re.compile(r"^\s+(?P<title>.*?),? \((?P<version>[^)]*)\),")


class MacosBackend:
    manager = "macos"
    scheme = ""

    def __init__(self, ctx: BackendContext) -> None:
        self.ctx = ctx

    def installed(self) -> list[InstalledPackage]:
        return parse_pkgutil(self.ctx.run(["pkgutil", "--pkgs"]).stdout)

    def updates(self, installed: Sequence[InstalledPackage]) -> UpdatesInfo:
        info = UpdatesInfo(running_kernel=self.ctx.running_kernel)
        if self.ctx.check_updates:
            try:
                info.pending = parse_softwareupdate(self.ctx.run(["softwareupdate", "--list"]).stdout)
            except ToolError as e:
                info.error = str(e)
        try:
            res = self.ctx.run(["system_profiler", "SPInstallHistoryDataType", "-json"])
            info.last_update_unix = last_apple_install(res.stdout)
        except ToolError:
            pass
        return info


def parse_pkgutil(text: str) -> list[InstalledPackage]:
    return sorted({InstalledPackage(ln.strip(), "") for ln in text.splitlines() if ln.strip()})


def parse_softwareupdate(text: str) -> list[PendingUpdate]:
    out = []
    label = ""
    for line in text.splitlines():
        m = _LABEL.match(line)
        if m:
            label = m.group("label")
            continue
        m2 = _TITLE.match(line)
        if m2 and label:
            out.append(_update(label, m2.group("title"), m2.group("version"), m2.group("rest")))
            label = ""
            continue
        m3 = _OLD_LABEL.match(line)
        if m3 and "Label:" not in line:
            label = m3.group("label").strip()
            continue
        m4 = _OLD_TITLE.match(line)
        if m4 and label:
            out.append(_update(label, m4.group("title"), m4.group("version"), line))
            label = ""
    return out


def _update(label: str, title: str, version: str, rest: str) -> PendingUpdate:
    words = f"{label} {title}".lower()
    return PendingUpdate(
        name=label,
        current_version="",
        new_version=version.strip(),
        security="security" in words,
        origin="restart" if "restart" in rest.lower() else "",
    )


def last_apple_install(text: str) -> int:
    """Newest install_date of an Apple-sourced item in SPInstallHistoryDataType JSON."""
    try:
        data: Any = json.loads(text)
    except ValueError as e:
        raise ToolError("garbled", f"system_profiler: not JSON: {e}") from None
    newest = 0
    items = data.get("SPInstallHistoryDataType", []) if isinstance(data, dict) else []
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict) or item.get("package_source") != "package_source_apple":
            continue
        try:
            when = datetime.fromisoformat(str(item.get("install_date", "")).replace("Z", "+00:00"))
        except ValueError:
            continue
        newest = max(newest, int(when.timestamp()))
    return newest
