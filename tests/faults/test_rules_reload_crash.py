"""The collector killed (SIGKILL) while it reloads its rules.

Injected, three times, under a steady flow from 2 simulated agents: a rule file is edited (a
summary text changes, a rule file is added and the previous one removed), the collector gets
SIGHUP and is SIGKILLed 0 s, 0.2 s or 1.5 s later (before, around and after the reload), then
restarted.
Asserted: after each restart the rules on disk are the ones in force (count, no load error,
a new alert carries the new summary); alerts.db stays consistent: never two open alerts for
one fingerprint, an alert already open is not opened again when its trigger repeats (same id);
the feed's positions keep increasing across the crashes (entries after a restart come after
every entry before it, and an operator following the feed from the start over gRPC sees them
strictly increasing); the agents' events are stored exactly once.
Two regression tests for what was not consistent across a restart (now fixed by reconciling the
engine with the alert store at start, RuleEngine.adopt_open_alerts): a firing alert whose
condition clears after a crash resolves, and the open alerts of a rule removed while the
collector was down are resolved.
"""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import grpc
import pytest

from tests.harness import CollectorProc, wait_for
from warden.agent import records
from warden.v1 import alerts_pb2, alerts_pb2_grpc

from .common import AgentDir, Fleet, enroll_agents, exactly_once, report, stored_numbers

TEMP = """rules:
  - id: temp_high
    kind: metric
    severity: warning
    summary: "{{ host }} temp {{ value }}"
    metric: fault_temp
    threshold: {op: ">", value: 50}
"""


def trigger_rule(version: int) -> str:
    return f"""rules:
  - id: trigger_seen
    kind: event
    severity: warning
    summary: "trigger {{{{ k }}}} v{version}"
    match: {{kind: test.trigger}}
    group_by: [k]
    keep_firing_for: 1h
"""


def extra_rule(i: int) -> str:
    return f"""rules:
  - id: extra_{i}
    kind: event
    severity: info
    summary: "extra {i}"
    match: {{kind: test.extra{i}}}
"""


class Setup:
    def __init__(self, root: Path) -> None:
        self.rules = root / "rules"
        self.rules.mkdir()
        (self.rules / "temp.yml").write_text(TEMP)
        (self.rules / "trigger.yml").write_text(trigger_rule(0))
        self.collector = CollectorProc(root / "collector", rules={"dir": str(self.rules), "tick": "1s",
                                                                    "watch": False})
        try:
            self.collector.start()
            (self.agent,) = enroll_agents(self.collector, root / "agents", ["rules-host"], rpc=True)
        except BaseException:
            self.collector.stop()
            raise
        self.spool_id = uuid.uuid4().hex
        self.seq = 0
        self.root = root

    def send(self, *recs: Any) -> None:
        n = len(recs)
        committed = asyncio.run(report(self.agent.state_dir, self.collector.report_port, self.spool_id,
                                       self.seq + 1, list(recs)))
        assert committed == self.seq + n
        self.seq += n

    def trigger(self, k: str) -> None:
        self.send(records.event("test.trigger", "warning", {"k": k}))

    def alerts(self, rule: str | None = None) -> list[dict[str, Any]]:
        alerts = self.collector.get("/api/v1/alerts")["alerts"]
        return [a for a in alerts if rule is None or a["rule"] == rule]

    def alert(self, k: str) -> list[dict[str, Any]]:
        return [a for a in self.alerts("trigger_seen") if a["labels"].get("k") == k]

    def crash_during_reload(self, delay: float) -> None:
        proc = self.collector.proc
        assert proc is not None
        proc.send_signal(signal.SIGHUP)
        if delay:
            time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        self.collector.start()

    def db(self) -> sqlite3.Connection:
        return sqlite3.connect(self.collector.root / "data" / "alerts.db", timeout=30)


def duplicate_open(s: Setup) -> list[tuple[str, int]]:
    db = s.db()
    try:
        return db.execute("SELECT fingerprint, COUNT(*) FROM alerts WHERE state != 'resolved' "
                          "GROUP BY fingerprint HAVING COUNT(*) > 1").fetchall()
    finally:
        db.close()


def feed_positions(s: Setup) -> list[tuple[int, int]]:
    db = s.db()
    try:
        return db.execute("SELECT position, at_ns FROM feed ORDER BY position").fetchall()
    finally:
        db.close()


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    s = Setup(tmp_path)
    try:
        yield s
    finally:
        s.collector.stop()  # (Setup stops it itself if it fails half-way)


def _operator_feed(s: Setup) -> list[int]:
    out = s.root / "op"
    s.collector.cli("operator", "cert", "faults", "--out", str(out))
    creds = grpc.ssl_channel_credentials((out / "ca.crt").read_bytes(), (out / "faults.key").read_bytes(),
                                         (out / "faults.crt").read_bytes())
    with grpc.secure_channel(f"127.0.0.1:{s.collector.report_port}", creds,
                             options=[("grpc.ssl_target_name_override", "localhost")]) as ch:
        stream = alerts_pb2_grpc.AlertsStub(ch).WatchAlerts(alerts_pb2.WatchAlertsRequest(after_position=0),
                                                            timeout=10)
        positions = []
        last = feed_positions(s)[-1][0]
        for entry in stream:
            positions.append(entry.position)
            if entry.position >= last:
                stream.cancel()
                break
    return positions


def test_sigkill_during_rule_reloads_keeps_rules_alerts_and_feed_consistent(setup: Setup, tmp_path: Path,
                                                                            cleanup: ExitStack) -> None:
    s = setup
    fleet_agents: list[AgentDir] = enroll_agents(s.collector, tmp_path / "fleet-agents", ["rr-0", "rr-1"],
                                                 rpc=False)
    fleet = Fleet(tmp_path / "fleet", fleet_agents, burst_every_s=0.05, events_per_burst=2)
    cleanup.callback(fleet.kill)
    fleet.start()
    try:
        s.send(records.metric("fault_temp", 80.0))
        s.trigger("a")
        wait_for(lambda: s.alert("a") and s.alerts("temp_high"), 15, what="the first alerts")
        ids = {"a": s.alert("a")[0]["id"], "temp": s.alerts("temp_high")[0]["id"]}
        for i, delay in enumerate((0.0, 0.2, 1.5), start=1):
            before = feed_positions(s)
            (s.rules / "trigger.yml").write_text(trigger_rule(i))
            (s.rules / f"extra_{i - 1}.yml").unlink(missing_ok=True)
            (s.rules / f"extra_{i}.yml").write_text(extra_rule(i))
            restart_ns = time.time_ns()
            s.crash_during_reload(delay)
            status = s.collector.get("/api/v1/rules/status")
            assert status["last_reload_ok"] and status["loaded"] == 3 and status["files"] == 3, status
            assert not duplicate_open(s)
            # The same trigger again: the open alert is refreshed, not opened twice.
            s.trigger("a")
            s.trigger(f"new{i}")
            new = wait_for(lambda i=i: s.alert(f"new{i}"), 15, what="an alert from the reloaded rules")
            assert new[0]["annotations"]["summary"] == f"trigger new{i} v{i}"
            assert [x["id"] for x in s.alert("a")] == [ids["a"]]
            assert [x["id"] for x in s.alerts("temp_high")] == [ids["temp"]]
            assert not duplicate_open(s)
            after = [p for p, at in feed_positions(s) if at >= restart_ns]
            assert after and min(after) > max(p for p, _ in before)  # positions keep increasing
        positions = _operator_feed(s)
        assert positions == sorted(set(positions)) and positions == [p for p, _ in feed_positions(s)]
        result = fleet.result()
    finally:
        fleet.kill()
    assert result["drained"]
    for a in result["agents"]:
        missing, dup = exactly_once(stored_numbers(s.collector, a["host_id"]), range(1, a["events"] + 1))
        assert not missing and not dup, (a["host_id"], missing[:9], dup[:9])


def test_alert_firing_at_a_crash_resolves_when_its_condition_clears(setup: Setup) -> None:
    s = setup
    s.send(records.metric("fault_temp", 80.0))
    wait_for(lambda: s.alerts("temp_high"), 15, what="temp_high firing")
    s.crash_during_reload(0.0)
    s.send(records.metric("fault_temp", 20.0))
    time.sleep(3)  # a few ticks
    assert not s.alerts("temp_high"), s.alerts("temp_high")


def test_alerts_of_a_rule_removed_while_the_collector_was_down_are_resolved(setup: Setup) -> None:
    s = setup
    s.trigger("gone")
    wait_for(lambda: s.alert("gone"), 15, what="trigger_seen firing")
    s.collector.stop()  # a clean stop: the engine's state is saved
    (s.rules / "trigger.yml").unlink()
    s.collector.start()
    assert s.collector.get("/api/v1/rules/status")["loaded"] == 1
    time.sleep(3)  # a few ticks
    assert not s.alerts("trigger_seen"), s.alerts("trigger_seen")
