"""Patch-compliance answers use the host's own version ordering (compare_versions)."""

from __future__ import annotations

from warden.collector.compliance import package_status, patch_summary


def _inv(manager: str, version: str, **updates: object) -> dict:
    inv = {"packages": (1, {"manager": manager, "full": True, "content_hash": "h", "count": 1,
                            "packages": [{"name": "openssl", "version": version, "arch": "amd64"}]})}
    if updates:
        inv["updates"] = (2, {"manager": manager, **updates})
    return inv


def test_outdated_by_each_hosts_own_scheme() -> None:
    hosts = [
        ("deb-old", _inv("dpkg", "3.0.11-1~deb12u1")),   # ~ sorts before: older than 3.0.11-1
        ("deb-new", _inv("dpkg", "3.0.11-1")),
        ("rpm-old", _inv("rpm", "1:3.0.7-25.el9")),
        ("rpm-new", _inv("rpm", "1:3.0.7-27.el9")),
        ("mac", _inv("macos", "3.0")),
        ("none", {}),
    ]
    rows = {r["host_id"]: r for r in package_status(hosts[:2], "openssl", "3.0.11-1")}
    assert rows["deb-old"]["outdated"] is True and rows["deb-new"]["outdated"] is False
    rows = {r["host_id"]: r for r in package_status(hosts[2:], "openssl", "1:3.0.7-27.el9")}
    assert rows["rpm-old"]["outdated"] is True and rows["rpm-new"]["outdated"] is False
    assert rows["mac"]["outdated"] is None and "no version ordering" in rows["mac"]["error"]
    assert "none" not in rows
    assert package_status(hosts, "absent-package", "1") == []


def test_unparseable_version_is_reported_not_raised() -> None:
    rows = package_status([("h", _inv("dpkg", "not a version!"))], "openssl", "1.0")
    assert rows[0]["outdated"] is None and rows[0]["error"]


def test_patch_summary() -> None:
    hosts = [("a", _inv("dpkg", "1", pending_count=3, security_count=2, reboot_required=True)),
             ("b", {})]
    a, b = patch_summary(hosts)
    assert (a["pending"], a["security"], a["reboot_required"]) == (3, 2, True)
    assert b == {"host_id": "b", "reported": False}
