"""Patch-compliance answers from the hosts' latest `packages` and `updates` sections.

Version comparison is the agent's own `compare_versions`, so the collector orders versions
exactly as the host's package manager does (dpkg, rpm, apk, pacman).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from warden.agent.versions import SCHEMES, compare_versions

Inventory = dict[str, tuple[int, dict[str, Any]]]  # section -> (time_ns, data), per host


def package_status(hosts: Iterable[tuple[str, Inventory]], name: str,
                   fixed_version: str | None = None) -> list[dict[str, Any]]:
    """Every host with package `name` installed: its version(s) and, when `fixed_version`
    is given, whether it is older than that ("outdated") by the host's own scheme."""
    out = []
    for host_id, inv in hosts:
        section = inv.get("packages")
        if not section:
            continue
        data = section[1]
        manager = str(data.get("manager", ""))
        for pkg in data.get("packages") or ():
            if pkg.get("name") != name:
                continue
            row: dict[str, Any] = {"host_id": host_id, "manager": manager, "version": pkg.get("version"),
                                   "arch": pkg.get("arch")}
            if fixed_version is not None:
                if manager in SCHEMES:
                    try:
                        row["outdated"] = compare_versions(str(pkg.get("version")), fixed_version,
                                                           manager) < 0
                    except ValueError as exc:  # e.g. a version dpkg would not parse
                        row["outdated"], row["error"] = None, str(exc)
                else:
                    row["outdated"], row["error"] = None, f"no version ordering for {manager or 'unknown'}"
            out.append(row)
    return out


def patch_summary(hosts: Iterable[tuple[str, Inventory]]) -> list[dict[str, Any]]:
    """Per host: pending and security updates, reboot needed, last successful update."""
    out = []
    for host_id, inv in hosts:
        section = inv.get("updates")
        if not section:
            out.append({"host_id": host_id, "reported": False})
            continue
        t, d = section
        out.append({
            "host_id": host_id, "reported": True, "reported_ns": t, "manager": d.get("manager"),
            "pending": d.get("pending_count"), "security": d.get("security_count"),
            "reboot_required": d.get("reboot_required"), "running_kernel": d.get("running_kernel"),
            "newest_kernel": d.get("newest_kernel"), "last_update_unix": d.get("last_update_unix"),
            "error": d.get("error") or None,
        })
    return out
