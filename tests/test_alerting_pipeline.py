"""The alerting pipeline in process: records in, feed entries out; rule files watched;
back-pressure counted; the engine's state survives a restart."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from warden.collector.alerting import AlertPipeline
from warden.collector.alerts.manager import AlertManager
from warden.collector.alerts.store import AlertStore
from warden.collector.records import Event
from warden.collector.telemetry import Telemetry

RULES = """
rules:
  - id: root_login
    kind: event
    severity: critical
    summary: "{{ host }}: root from {{ src_ip }}"
    match: {kind: auth.login, fields: {user: root, result: success}}
    group_by: [src_ip]
  - id: new_source
    kind: event
    severity: warning
    summary: "{{ user }} from {{ src_ip }}"
    match: {kind: auth.login, fields: {result: success}}
    first_seen: {by: [user], value: src_ip, baseline: 1h}
"""


def _login(user: str, ip: str, t: int | None = None) -> Event:
    fields = {"user": user, "src_ip": ip, "result": "success"}
    return Event("auth.login", "notice", t or time.time_ns(), fields)


async def _wait(pred, timeout: float = 10.0):  # noqa: ANN001, ANN202
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if v := pred():
            return v
        await asyncio.sleep(0.05)
    raise AssertionError("timed out")


def _pipeline(tmp: Path, rules: Path, telemetry: Telemetry,
              **kw) -> tuple[AlertPipeline, AlertStore]:  # noqa: ANN003
    store = AlertStore(tmp / "alerts.db")
    p = AlertPipeline(rules, AlertManager(store), lambda: [], telemetry, tick_seconds=0.1,
                      reload_poll_seconds=0.1, snapshot_seconds=0.2, **kw)
    return p, store


async def test_records_become_feed_entries_and_wake_watchers(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "a.yml").write_text(RULES)
    tel = Telemetry()
    p, store = _pipeline(tmp_path, rules, tel)
    p.start(asyncio.get_running_loop())
    try:
        waiter = asyncio.create_task(p.feed.wait_beyond(0, 10))
        t0 = time.monotonic()
        p.submit("web1", [_login("root", "192.0.2.1")])
        assert await waiter
        assert time.monotonic() - t0 < 1.0  # event to feed: well under a second
        entries = p.manager.feed_since(0)
        assert [e.payload["rule"] for e in entries] == ["root_login"]
        assert entries[0].payload["labels"]["src_ip"] == "192.0.2.1"
        assert tel.get("warden_collector_rules_records_evaluated_total") == 1
    finally:
        p.stop()
        store.close()


async def test_rule_files_are_watched_and_a_broken_file_keeps_the_last_good_rules(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "a.yml").write_text(RULES)
    p, store = _pipeline(tmp_path, rules, Telemetry())
    p.start(asyncio.get_running_loop())
    try:
        assert p.status.loaded == 2
        (rules / "b.yml").write_text("rules:\n  - id: x\n    kind: nope\n")
        await _wait(lambda: not p.status.last_reload_ok)
        assert "b.yml:3:" in p.status.last_error and p.status.loaded == 2
        p.submit("web1", [_login("root", "192.0.2.2")])  # the last good rules still fire
        await _wait(lambda: p.manager.active())
        (rules / "b.yml").write_text("rules: []\n")
        await _wait(lambda: p.status.last_reload_ok)
        assert p.status.loaded == 2 and p.status.last_error == ""
        (rules / "a.yml").unlink()  # removed rules resolve their alerts
        await _wait(lambda: p.status.loaded == 0)
        await _wait(lambda: not p.manager.active())
    finally:
        p.stop()
        store.close()


async def test_backlog_past_its_bound_is_counted_not_buffered(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "a.yml").write_text(RULES)
    tel = Telemetry()
    p, store = _pipeline(tmp_path, rules, tel, max_backlog_records=3)
    # Not started: nothing drains, so the bound is reached deterministically.
    p.submit("web1", [_login("root", "192.0.2.3")] * 3)
    p.submit("web1", [_login("root", "192.0.2.4")] * 2)
    assert tel.get("warden_collector_rules_dropped_records_total") == 2
    store.close()


async def test_engine_state_survives_a_restart(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "a.yml").write_text(RULES)
    hour = 3600 * 10**9
    now = time.time_ns()
    p, store = _pipeline(tmp_path, rules, Telemetry())
    p.start(asyncio.get_running_loop())
    # bob's learning hour starts 2 h ago; at -30 min it is over and a new address fires.
    p.submit("web1", [_login("bob", "192.0.2.10", now - 2 * hour),
                      _login("bob", "192.0.2.11", now - hour // 2)])
    await _wait(lambda: p.engine.evaluated == 2)
    p.stop()
    store.close()
    # A new collector process keeps the baseline: .11 (seen 30 min ago) is known, .99 is new.
    p, store = _pipeline(tmp_path, rules, Telemetry())
    p.start(asyncio.get_running_loop())
    try:
        mark = p.manager.last_position()
        p.submit("web1", [_login("bob", "192.0.2.11"), _login("bob", "198.51.100.99")])
        await _wait(lambda: p.engine.evaluated == 2)
        await _wait(lambda: p.manager.feed_since(mark))
        fired = [e.payload["labels"]["src_ip"] for e in p.manager.feed_since(mark)
                 if e.payload.get("rule") == "new_source" and e.what == "firing"]
        assert fired == ["198.51.100.99"]
    finally:
        p.stop()
        store.close()


def test_prune_forgets_old_feed_and_resolved_alerts_but_keeps_open_ones(tmp_path: Path) -> None:
    from warden.collector.rules.model import Transition

    store = AlertStore(tmp_path / "alerts.db")
    mgr = AlertManager(store)
    s = 10**9

    def tr(fp: str, state: str, at: int) -> Transition:
        labels = {"alertname": "r", "severity": "warning", "host": fp}
        return Transition("r", fp, labels, {"summary": fp}, state, at, 100 * s, 1.0, state != "pending")

    mgr.apply([tr("old", "firing", 100 * s)], 100 * s)
    mgr.apply([tr("old", "resolved", 200 * s)], 200 * s)
    mgr.apply([tr("open", "firing", 150 * s)], 150 * s)
    mgr.apply([tr("new", "firing", 900 * s)], 900 * s)
    mgr.apply([tr("new", "resolved", 950 * s)], 950 * s)
    before = [e.position for e in mgr.feed_since(0)]
    deleted = store.prune(500 * s)
    assert deleted > 0
    kept = mgr.feed_since(0)
    assert [e.position for e in kept] == [p for p in before if p > before[2]]
    hosts = {a["labels"]["host"] for a in mgr.history(0, 10**6 * s, 100)}
    assert hosts == {"open", "new"}  # the old resolved alert is gone, the open one stays
    assert [a["labels"]["host"] for a in mgr.active()] == ["open"]
    store.close()
