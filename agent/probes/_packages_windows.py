"""Windows backend: one PowerShell run that prints JSON with the installed hotfixes
(`Get-HotFix`), the Windows Update history (`IUpdateSearcher.QueryHistory`), the pending
updates from the Update Agent's offline search (its cached catalogue: nothing is downloaded
or installed) and the reboot-pending registry flags.

The package list is the hotfix list (name = KB id; Windows has no package versions for
them). A pending update is security when it has an MSRC severity or is in the "Security
Updates" category. The parsers take the JSON as PowerShell 5.1 and 7 print it (dates as
`\\/Date(ms)\\/`, ISO strings or `{"value": ..., "DateTime": ...}` objects).
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

__all__ = [
    "REPORT_SCRIPT",
    "WindowsBackend",
    "json_date",
    "last_success_from_history",
    "parse_hotfixes",
    "parse_pending",
    "parse_report",
]

REPORT_SCRIPT = r"""
$ErrorActionPreference = 'Stop'
$out = [ordered]@{}
$out.hotfixes = @(Get-HotFix | Select-Object HotFixID, Description, InstalledOn)
$searcher = (New-Object -ComObject Microsoft.Update.Session).CreateUpdateSearcher()
$n = $searcher.GetTotalHistoryCount()
$out.history = @(if ($n -gt 0) { $searcher.QueryHistory(0, [Math]::Min($n, 500)) |
    Select-Object Date, Title, Operation, ResultCode })
try {
    $searcher.Online = $false
    $out.pending = @($searcher.Search('IsInstalled=0 and IsHidden=0').Updates | ForEach-Object {
        [ordered]@{ Title = $_.Title; KBArticleIDs = @($_.KBArticleIDs); MsrcSeverity = $_.MsrcSeverity;
                    Categories = @($_.Categories | ForEach-Object { $_.Name }) } })
} catch { $out.pending_error = $_.Exception.Message }
$cv = 'HKLM:\SOFTWARE\Microsoft\Windows\CurrentVersion'
$out.reboot_required = (Test-Path "$cv\WindowsUpdate\Auto Update\RebootRequired") -or
    (Test-Path "$cv\Component Based Servicing\RebootPending")
$out | ConvertTo-Json -Depth 4 -Compress
"""

_MS_DATE = re.compile(r"/Date\((-?\d+)(?:[+-]\d{4})?\)/")
_KB = re.compile(r"\bKB(\d{6,8})\b")


class WindowsBackend:
    manager = "windows"
    scheme = ""  # KB ids have no version order

    def __init__(self, ctx: BackendContext) -> None:
        self.ctx = ctx
        self._report: dict[str, Any] = {}

    def installed(self) -> list[InstalledPackage]:
        res = self.ctx.run(["powershell.exe", "-NoProfile", "-NonInteractive", "-Command", REPORT_SCRIPT])
        self._report = parse_report(res.stdout)
        return parse_hotfixes(self._report.get("hotfixes"))

    def updates(self, installed: Sequence[InstalledPackage]) -> UpdatesInfo:
        report = self._report
        info = UpdatesInfo(
            last_update_unix=last_success_from_history(report.get("history")),
            reboot_required=bool(report.get("reboot_required")),
        )
        if self.ctx.check_updates:
            if report.get("pending_error"):
                info.error = f"Windows Update offline search: {report['pending_error']}"
            else:
                info.pending = parse_pending(report.get("pending"))
        return info


def parse_report(text: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except ValueError as e:
        raise ToolError("garbled", f"PowerShell report is not JSON: {e}") from None
    if not isinstance(data, dict):
        raise ToolError("garbled", "PowerShell report is not a JSON object")
    return data


def _as_list(value: Any) -> list[Any]:
    # ConvertTo-Json prints a one-element array as the bare element.
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def json_date(value: Any) -> int:
    """Unix seconds of a date as PowerShell's ConvertTo-Json writes it; 0 if unparseable."""
    if isinstance(value, dict):
        value = value.get("value", value.get("DateTime"))
    if not isinstance(value, str):
        return 0
    m = _MS_DATE.search(value.replace("\\/", "/"))
    if m:
        return int(m.group(1)) // 1000
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return 0
    return int(dt.timestamp())  # a naive ISO time is the agent's local time, as PowerShell's


def parse_hotfixes(value: Any) -> list[InstalledPackage]:
    """Get-HotFix objects (HotFixID) as packages; entries without an id ("File 1") skipped."""
    out = set()
    for item in _as_list(value):
        if isinstance(item, dict):
            kb = str(item.get("HotFixID") or "").strip()
            if kb and kb.lower() != "file 1":
                out.add(InstalledPackage(kb, ""))
    return sorted(out)


def last_success_from_history(value: Any) -> int:
    """Newest installation (Operation 1) that succeeded (ResultCode 2, or 3 "succeeded with
    errors") in IUpdateHistoryEntry objects."""
    newest = 0
    for item in _as_list(value):
        if not isinstance(item, dict):
            continue
        if item.get("Operation", 1) not in (1, "Installation"):
            continue
        if item.get("ResultCode") not in (2, 3, "Succeeded", "SucceededWithErrors"):
            continue
        newest = max(newest, json_date(item.get("Date")))
    return newest


def parse_pending(value: Any) -> list[PendingUpdate]:
    out = []
    for item in _as_list(value):
        if not isinstance(item, dict):
            continue
        title = str(item.get("Title") or "")
        kbs = [f"KB{k}" for k in _as_list(item.get("KBArticleIDs")) if str(k).isdigit()]
        if not kbs:
            kbs = [f"KB{m}" for m in _KB.findall(title)]
        categories = [str(c) for c in _as_list(item.get("Categories"))]
        severity = str(item.get("MsrcSeverity") or "")
        out.append(
            PendingUpdate(
                name=kbs[0] if kbs else title[:200],
                current_version="",
                new_version=title[:200],
                security=bool(severity) or "Security Updates" in categories,
                origin=severity,
            )
        )
    return out
