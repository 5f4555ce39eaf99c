"""`kind: state` rules: each check at its boundary, disappearing items, memories, liveness."""

from __future__ import annotations

import json
from typing import Any

import pytest

from warden.collector.rules.model import HostView, ParseContext, Transition, parse_common
from warden.collector.rules.spec import RuleError, Spec, load_yaml
from warden.collector.rules.state import CHECKS, StateRule, parse_state_rule

S = 1_000_000_000
H = 3600 * S
D = 24 * H
T0 = 1_700_000_000 * S  # engine time of most tests
T0_UNIX = T0 // S


def build(check: str, extra: str = "") -> StateRule:
    text = ("id: r\nkind: state\nseverity: critical\n"
            f"summary: '{{{{ host }}}} {{{{ set }}}} {{{{ age | int }}}}'\ncheck: {check}\n{extra}")
    spec = Spec(load_yaml(text, "t.yml"), "t.yml", "rule")
    return parse_state_rule(spec, parse_common(spec, "state"), ParseContext())


def error(check: str, extra: str = "") -> RuleError:
    with pytest.raises(RuleError) as info:
        build(check, extra)
    return info.value


def host(host_id: str = "h1", labels: dict[str, str] | None = None, **sections: dict[str, Any]) -> HostView:
    return HostView(host_id, {"host": host_id, **(labels or {})},
                    inventory={k: (T0, v) for k, v in sections.items()})


def run(rule: StateRule, h: HostView, now: int) -> list[tuple[str, str]]:
    """(state, the item label or "") per transition, from one tick over one host."""
    return summary(rule.tick({h.host_id: h}, now))


def summary(trs: list[Transition]) -> list[tuple[str, str]]:
    return [(t.state, t.labels.get("set") or t.labels.get("user") or t.labels.get("device") or "")
            for t in trs]


def backup_set(name: str = "db", **over: Any) -> dict[str, Any]:
    s = {"name": name, "source": "files", "newest": f"/srv/{name}-1.gz", "newest_time_unix": T0_UNIX - 3600,
         "newest_size_bytes": 1000, "count": 5, "median_previous_size_bytes": 1000,
         "offsite_configured": False, "offsite_present": False, "offsite_matches": False,
         "verification": "not_configured", "error": ""}
    s.update(over)
    return s


def updates(pending: list[tuple[str, str, bool]] = (), **over: Any) -> dict[str, Any]:  # type: ignore[assignment]
    u = {"manager": "dpkg",
         "pending": [{"name": n, "current_version": "1", "new_version": v, "arch": "amd64", "security": sec,
                      "origin": "Debian-Security" if sec else "Debian"} for n, v, sec in pending],
         "pending_count": len(pending), "security_count": sum(1 for p in pending if p[2]),
         "last_update_unix": T0_UNIX - 3600, "running_kernel": "6.1.0-1", "newest_kernel": "6.1.0-1",
         "reboot_required": False, "reboot_required_packages": [], "error": ""}
    u.update(over)
    return u


def user(name: str, **over: Any) -> dict[str, Any]:
    u = {"name": name, "uid": 1000, "gid": 1000, "home": f"/home/{name}", "shell": "/bin/bash",
         "login_shell": True, "locked": False, "empty_password": False, "password_age_days": 10,
         "last_login_unix": 0, "admin": False}
    u.update(over)
    return u


def accounts(*users: dict[str, Any]) -> dict[str, Any]:
    return {"users": list(users), "groups": [], "uid0_users": ["root"], "admin_users": [],
            "sudoers_entries": [], "shadow_readable": True}


# --- backups -----------------------------------------------------------------------------------


def test_backup_stale_boundary_and_template() -> None:
    rule = build("backup_stale", "params: {max_age: 26h}\n")
    h = host(backups={"sets": [backup_set(newest_time_unix=T0_UNIX - 26 * 3600)]})
    assert run(rule, h, T0) == []  # exactly max_age old: not older
    trs = rule.tick({"h1": h}, T0 + S)
    assert summary(trs) == [("firing", "db")]
    assert trs[0].annotations["summary"] == f"h1 db {26 * 3600 + 1}"
    assert trs[0].value == 26 * 3600 + 1


def test_backup_stale_with_no_backup_and_per_set() -> None:
    rule = build("backup_stale")  # default 26h
    h = host(backups={"sets": [backup_set("db"), backup_set("mail", count=0, newest_time_unix=0, newest="")]})
    assert run(rule, h, T0) == [("firing", "mail")]
    assert run(rule, h, T0 + S) == []  # no repeats


def test_a_removed_backup_set_resolves() -> None:
    rule = build("backup_stale", "params: {max_age: 1h}\n")
    old = T0_UNIX - 2 * 3600
    h = host(backups={"sets": [backup_set("db", newest_time_unix=old),
                               backup_set("web", newest_time_unix=old)]})
    assert sorted(run(rule, h, T0)) == [("firing", "db"), ("firing", "web")]
    h = host(backups={"sets": [backup_set("web", newest_time_unix=old)]})
    assert run(rule, h, T0 + S) == [("resolved", "db")]
    assert run(rule, host(), T0 + 2 * S) == [("resolved", "web")]  # section gone: nothing holds


def test_a_set_the_agent_could_not_check_keeps_its_state() -> None:
    rule = build("backup_stale", "params: {max_age: 1h}\n")
    stale = host(backups={"sets": [backup_set(newest_time_unix=T0_UNIX - 7200)]})
    assert run(rule, stale, T0) == [("firing", "db")]
    broken = backup_set(count=0, newest_time_unix=0, newest="", verification="",
                        error="permission denied: /srv")
    assert run(rule, host(backups={"sets": [broken]}), T0 + S) == []  # unknown: still firing
    fixed = backup_set(newest_time_unix=T0_UNIX)
    assert run(rule, host(backups={"sets": [fixed]}), T0 + 2 * S) == [("resolved", "db")]
    fresh = build("backup_stale", "params: {max_age: 1h}\n")
    assert run(fresh, host(backups={"sets": [broken]}), T0) == []  # unknown is not stale
    # "not found" is a finding: the agent judged the set (verification filled in)
    missing = backup_set(count=0, newest_time_unix=0, newest="", error="not found: /srv")
    assert run(fresh, host(backups={"sets": [missing]}), T0) == [("firing", "db")]


def test_backup_shrunk_boundary() -> None:
    rule = build("backup_shrunk", "params: {min_ratio: 0.5}\n")
    assert run(rule, host(backups={"sets": [backup_set(newest_size_bytes=500)]}), T0) == []
    trs = rule.tick({"h1": host(backups={"sets": [backup_set(newest_size_bytes=499)]})}, T0 + S)
    assert summary(trs) == [("firing", "db")] and trs[0].value == pytest.approx(0.499)
    no_history = build("backup_shrunk")
    h = host(backups={"sets": [backup_set(newest_size_bytes=0, median_previous_size_bytes=0)]})
    assert run(no_history, h, T0) == []


def test_backup_offsite_missing() -> None:
    rule = build("backup_offsite_missing")
    ok = backup_set(offsite_configured=True, offsite_present=True, offsite_matches=True)
    assert run(rule, host(backups={"sets": [ok, backup_set("nooff")]}), T0) == []
    differs = backup_set(offsite_configured=True, offsite_present=True, offsite_matches=False)
    assert run(rule, host(backups={"sets": [differs]}), T0 + S) == [("firing", "db")]
    absent = backup_set("x", offsite_configured=True)
    assert run(rule, host(backups={"sets": [differs, absent]}), T0 + 2 * S) == [("firing", "x")]
    assert run(rule, host(backups={"sets": [ok, absent]}), T0 + 3 * S) == [("resolved", "db")]


@pytest.mark.parametrize(("verification", "fires"), [
    ("ok", False), ("not_configured", False), ("mismatch", True), ("missing", True), ("error", True),
])
def test_backup_verification_failed(verification: str, fires: bool) -> None:
    rule = build("backup_verification_failed")
    h = host(backups={"sets": [backup_set(verification=verification)]})
    assert run(rule, h, T0) == ([("firing", "db")] if fires else [])


# --- updates -------------------------------------------------------------------------------------


def test_security_updates_pending_age_tracking() -> None:
    rule = build("security_updates_pending", "params: {min_age: 7d}\n")
    h = host(updates=updates([("openssl", "3.0.2", True), ("vim", "9.1", False)]))
    assert run(rule, h, T0) == []
    later = host(updates=updates([("openssl", "3.0.2", True), ("curl", "8.5", True)]))
    assert run(rule, later, T0 + 3 * D) == []  # curl's clock starts now; openssl's still runs
    assert run(rule, later, T0 + 7 * D - 1) == []
    trs = rule.tick({"h1": later}, T0 + 7 * D)
    assert summary(trs) == [("firing", "")]
    assert trs[0].value == 7 * 86400
    (_, tr), = rule.lifecycle.active()
    assert (tr.values["count"], tr.values["oldest"]) == (2, "openssl")
    # openssl installed: curl (seen at +3d) is only 4 days old
    only_curl = host(updates=updates([("curl", "8.5", True)]))
    assert run(rule, only_curl, T0 + 7 * D + S) == [("resolved", "")]
    assert run(rule, only_curl, T0 + 10 * D - S) == []
    assert run(rule, only_curl, T0 + 10 * D) == [("firing", "")]


def test_a_security_update_that_reappears_restarts_its_clock() -> None:
    rule = build("security_updates_pending", "params: {min_age: 1d}\n")
    pending = host(updates=updates([("openssl", "3.0.2", True)]))
    assert run(rule, pending, T0) == []
    assert run(rule, host(updates=updates()), T0 + H) == []  # installed
    assert run(rule, pending, T0 + 2 * H) == []  # back (e.g. downgraded): new clock
    assert run(rule, pending, T0 + D + H) == []  # 1d after the first sighting: not yet
    assert run(rule, pending, T0 + D + 2 * H) == [("firing", "")]


def test_a_new_version_of_a_pending_package_has_its_own_clock() -> None:
    rule = build("security_updates_pending", "params: {min_age: 1d}\n")
    assert run(rule, host(updates=updates([("openssl", "3.0.2", True)])), T0) == []
    newer = host(updates=updates([("openssl", "3.0.3", True)]))
    assert run(rule, newer, T0 + H) == []
    assert run(rule, newer, T0 + D) == []
    assert run(rule, newer, T0 + D + H) == [("firing", "")]


def test_security_update_clock_survives_snapshot_and_restore() -> None:
    body = "params: {min_age: 7d}\n"
    rule = build("security_updates_pending", body)
    pending = host(updates=updates([("openssl", "3.0.2", True)]))
    run(rule, pending, T0)
    state = json.loads(json.dumps(rule.snapshot()))
    restarted = build("security_updates_pending", body)
    restarted.restore(state)
    assert run(restarted, pending, T0 + 7 * D - S) == []
    assert run(restarted, pending, T0 + 7 * D) == [("firing", "")]
    # a firing alert survives too, and resolves when the update is installed
    again = build("security_updates_pending", body)
    again.restore(json.loads(json.dumps(restarted.snapshot())))
    assert run(again, pending, T0 + 8 * D) == []
    assert run(again, host(updates=updates()), T0 + 8 * D + S) == [("resolved", "")]


def test_updates_error_keeps_clocks_and_alerts() -> None:
    rule = build("security_updates_pending", "params: {min_age: 1d}\n")
    pending = host(updates=updates([("openssl", "3.0.2", True)]))
    run(rule, pending, T0)
    broken = host(updates=updates(error="apt: could not get lock"))
    assert run(rule, broken, T0 + H) == []
    assert run(rule, pending, T0 + D) == [("firing", "")]  # the clock kept running
    assert run(rule, broken, T0 + D + S) == []  # unknown: still firing


def test_reboot_required_remembers_since_when() -> None:
    rule = build("reboot_required", "params: {min_age: 3d}\n")
    needed = host(updates=updates(reboot_required=True, reboot_required_packages=["linux-image"]))
    assert run(rule, needed, T0) == []
    assert run(rule, needed, T0 + 3 * D - 1) == []
    trs = rule.tick({"h1": needed}, T0 + 3 * D)
    assert summary(trs) == [("firing", "")]
    restored = build("reboot_required", "params: {min_age: 3d}\n")
    restored.restore(json.loads(json.dumps(rule.snapshot())))
    assert run(restored, host(updates=updates()), T0 + 4 * D) == [("resolved", "")]  # rebooted
    assert run(restored, needed, T0 + 5 * D) == []  # a new need: a new clock
    assert run(restored, needed, T0 + 8 * D - 1) == []
    assert run(restored, needed, T0 + 8 * D) == [("firing", "")]


def test_no_recent_update_boundary() -> None:
    rule = build("no_recent_update", "params: {max_age: 30d}\n")
    h = host(updates=updates(last_update_unix=T0_UNIX - 30 * 86400))
    assert run(rule, h, T0) == []
    assert run(rule, h, T0 + S) == [("firing", "")]
    unknown = build("no_recent_update")
    assert run(unknown, host(updates=updates(last_update_unix=0)), T0) == []


# --- antivirus, firewall, time -------------------------------------------------------------------


def av(**over: Any) -> dict[str, Any]:
    a = {"product": "clamav", "installed": True, "signatures_time_unix": T0_UNIX - 3600,
         "signature_age_hours": 1.0}
    a.update(over)
    return a


def test_antivirus_stale_boundary() -> None:
    rule = build("antivirus_stale", "params: {max_age: 48h}\n")
    h = host(antivirus=av(signatures_time_unix=T0_UNIX - 48 * 3600))
    assert run(rule, h, T0) == []
    assert run(rule, h, T0 + S) == [("firing", "")]


def test_antivirus_stale_from_the_reported_age_grows_with_time() -> None:
    rule = build("antivirus_stale", "params: {max_age: 48h}\n")
    h = host(antivirus=av(signatures_time_unix=0, signature_age_hours=47.0))  # as of T0
    assert run(rule, h, T0 + H) == []
    assert run(rule, h, T0 + H + S) == [("firing", "")]


def test_antivirus_stale_without_signatures_or_not_installed() -> None:
    rule = build("antivirus_stale")
    assert run(rule, host(antivirus=av(signatures_time_unix=0, signature_age_hours=0.0)), T0) == [
        ("firing", "")]
    assert run(rule, host(antivirus=av(installed=False, product="")), T0 + S) == [("resolved", "")]
    assert run(rule, host(), T0 + 2 * S) == []


def test_antivirus_missing() -> None:
    rule = build("antivirus_missing")
    assert run(rule, host(), T0) == []  # no section: no verdict
    assert run(rule, host(antivirus=av()), T0) == []
    absent = {"product": "", "installed": False, "signatures_time_unix": 0, "signature_age_hours": 0.0}
    assert run(rule, host(antivirus=absent), T0 + S) == [("firing", "")]


def test_firewall_off() -> None:
    rule = build("firewall_off")
    on = {"backends": [{"name": "nftables", "present": True, "active": True, "rule_count": 12, "error": ""}],
          "active": True}
    off = {"backends": [{"name": "nftables", "present": True, "active": False, "rule_count": 0, "error": ""}],
           "active": False}
    assert run(rule, host(firewall=on), T0) == []
    assert run(rule, host(firewall=off), T0 + S) == [("firing", "")]
    assert run(rule, host(firewall=on), T0 + 2 * S) == [("resolved", "")]


def test_timesync_lost() -> None:
    rule = build("timesync_lost")
    synced = {"service": "chrony", "synchronized": True, "ntp_enabled": True}
    assert run(rule, host(time_sync=synced), T0) == []
    assert run(rule, host(time_sync={**synced, "synchronized": False}), T0 + S) == [("firing", "")]
    assert run(rule, host(), T0 + 2 * S) == [("resolved", "")]  # section gone: yields nothing


# --- accounts, disks, liveness -------------------------------------------------------------------


def test_password_age_boundary_and_exclusions() -> None:
    rule = build("password_age", "params: {max_age: 365d}\n")
    users = [user("young", password_age_days=364), user("old", password_age_days=365),
             user("locked", password_age_days=999, locked=True),
             user("daemon", password_age_days=999, login_shell=False, shell="/usr/sbin/nologin"),
             user("unknown", password_age_days=-1)]
    assert run(rule, host(accounts=accounts(*users)), T0) == [("firing", "old")]
    users[1] = user("old", password_age_days=0)  # changed
    assert run(rule, host(accounts=accounts(*users)), T0 + S) == [("resolved", "old")]


def test_empty_password_per_user_and_a_deleted_user_resolves() -> None:
    rule = build("empty_password")
    a = accounts(user("alice"), user("guest", empty_password=True))
    assert run(rule, host(accounts=a), T0) == [("firing", "guest")]
    assert run(rule, host(accounts=accounts(user("alice"))), T0 + S) == [("resolved", "guest")]


def test_smart_failing_per_device() -> None:
    rule = build("smart_failing")
    dev = {"model": "X", "serial": "1", "protocol": "ATA", "reallocated_sectors": 0, "pending_sectors": 0,
           "temperature_c": 30, "power_on_hours": 1, "media_errors": -1, "percentage_used": -1}
    disks = {"devices": [{**dev, "device": "/dev/sda", "smart_passed": True},
                         {**dev, "device": "/dev/sdb", "smart_passed": False}], "error": ""}
    assert run(rule, host(disk_health=disks), T0) == [("firing", "/dev/sdb")]


def test_host_silent() -> None:
    rule = build("host_silent", "params: {heartbeats: 3}\n")
    h = HostView("h1", {"host": "h1"}, last_seen_ns=T0, heartbeat_seconds=30.0)
    assert run(rule, h, T0 + 90 * S) == []
    trs = rule.tick({"h1": h}, T0 + 90 * S + 1)
    assert summary(trs) == [("firing", "")]
    back = HostView("h1", {"host": "h1"}, last_seen_ns=T0 + 100 * S, heartbeat_seconds=30.0)
    assert run(rule, back, T0 + 101 * S) == [("resolved", "")]
    assert run(rule, HostView("new", {"host": "new"}), T0) == []  # never seen


# --- the rule machinery ----------------------------------------------------------------------------


def test_for_and_keep_firing_for() -> None:
    rule = build("firewall_off", "for: 10m\nkeep_firing_for: 5m\n")
    off = host(firewall={"backends": [], "active": False})
    on = host(firewall={"backends": [], "active": True})
    assert run(rule, off, T0) == [("pending", "")]
    assert run(rule, off, T0 + 10 * 60 * S - 1) == []
    assert run(rule, off, T0 + 10 * 60 * S) == [("firing", "")]
    assert run(rule, on, T0 + 11 * 60 * S) == []  # keeps firing
    assert run(rule, on, T0 + 15 * 60 * S - 1) == []
    assert run(rule, on, T0 + 15 * 60 * S) == [("resolved", "")]


def test_evaluate_host_for_one_host() -> None:
    rule = build("firewall_off")
    off = {"backends": [], "active": False}
    trs = rule.evaluate_host(host("h2", firewall=off), T0)
    assert [(t.state, t.labels["host"]) for t in trs] == [("firing", "h2")]


def test_scope_and_hosts_that_leave() -> None:
    rule = build("firewall_off", "scope: {env: prod}\n")
    off = {"backends": [], "active": False}
    prod = host("p1", {"env": "prod"}, firewall=off)
    test = host("t1", {"env": "test"}, firewall=off)
    trs = rule.tick({"p1": prod, "t1": test}, T0)
    assert [(t.state, t.labels["host"]) for t in trs] == [("firing", "p1")]
    moved = host("p1", {"env": "test"}, firewall=off)
    trs = rule.tick({"p1": moved, "t1": test}, T0 + S)
    assert [(t.state, t.labels["host"]) for t in trs] == [("resolved", "p1")]
    rule.tick({"p1": prod}, T0 + 2 * S)
    trs = rule.tick({}, T0 + 3 * S)  # the host was removed
    assert [(t.state, t.labels["host"]) for t in trs] == [("resolved", "p1")]


def test_sections_and_routing_properties() -> None:
    assert build("backup_stale").sections == frozenset({"backups"})
    assert build("security_updates_pending").sections == frozenset({"updates"})
    assert build("host_silent").sections == frozenset()
    rule = build("smart_failing")
    assert (rule.event_kinds, rule.metric_names) == (frozenset(), frozenset())


# --- errors ------------------------------------------------------------------------------------------


def test_error_unknown_check_lists_the_checks() -> None:
    e = error("backup_old")
    assert (e.file, e.line) == ("t.yml", 5)
    assert "unknown check 'backup_old'" in e.message and "host_silent" in e.message
    assert all(name in e.message for name in CHECKS)


def test_error_unknown_param_lists_the_params() -> None:
    e = error("backup_stale", "params:\n  max_age: 1h\n  min_age: 2h\n")
    assert e.line == 8 and "min_age" in e.message and "max_age" in e.message
    e = error("firewall_off", "params: {strict: true}\n")
    assert e.line == 6 and "params: none" in e.message


def test_error_bad_param_values() -> None:
    e = error("backup_stale", "params:\n  max_age: 26 hours\n")
    assert e.line == 7 and "invalid duration" in e.message
    e = error("backup_shrunk", "params:\n  min_ratio: 1.5\n")
    assert e.line == 7 and "at most 1" in e.message
    e = error("host_silent", "params:\n  heartbeats: 0\n")
    assert e.line == 7 and "more than 0" in e.message


def test_error_unknown_field_and_bad_for() -> None:
    e = error("firewall_off", "param: {x: 1}\n")
    assert e.line == 6 and "unknown field 'param'" in e.message
    e = error("firewall_off", "for: soon\n")
    assert e.line == 6 and "invalid duration" in e.message
    assert str(e).startswith("t.yml:6: ")
