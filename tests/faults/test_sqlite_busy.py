"""SQLite busy: another process holds a write transaction (BEGIN IMMEDIATE) on the collector's
databases.

1. warden.db, under a steady flow from 3 simulated agents. Injected: the lock held twice,
   for 2 s and 4 s (shorter than the store's 5 s busy timeout).
   Asserted: while it is held nothing is committed and no agent is acknowledged (acks mean
   "durably stored") while the agents keep spooling; the hold is waited out (no store error, no
   stream ended); after the release every event is stored exactly once and every sample stored.
2. (regression test of a fixed bug) warden.db held past the busy timeout, with two batches of
   one stream queued: the first fails visibly (warden_collector_store_errors_total, the stream
   ends with UNAVAILABLE); the second used to commit after the release, the committed mark
   jumping over the first (acknowledged, never stored). Now it fails too and nothing is lost.
3. alerts.db (the alert manager's database), held for 3 s (shorter than its 10 s busy timeout)
   while an event that raises an alert arrives. Asserted: ingest goes on meanwhile (agents are
   acknowledged), and the alert is stored and served once the lock is released.
4. (regression test of a fixed bug) alerts.db held for 12 s, longer than its busy timeout: the
   alert raised meanwhile used to be lost; now it is stored after the release.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from tests.harness import CollectorProc, wait_for
from warden.agent import records

from .common import (
    AgentDir,
    Fleet,
    Locker,
    committed_seq,
    counter_sum,
    enroll_agents,
    exactly_once,
    report,
    sample_counts,
    stored_numbers,
)

STORE_ERRORS = "warden_collector_store_errors_total"


def test_store_locked_by_another_process_ingest_waits_retries_and_loses_nothing(tmp_path: Path,
                                                                                 cleanup: ExitStack) -> None:
    collector = CollectorProc(tmp_path / "collector")
    cleanup.callback(collector.stop)
    collector.start()
    hosts = ["busy-0", "busy-1", "busy-2"]
    agents = enroll_agents(collector, tmp_path / "agents", hosts, rpc=False)
    fleet = Fleet(tmp_path / "fleet", agents, burst_every_s=0.05, events_per_burst=2, metrics_per_burst=2)
    cleanup.callback(fleet.kill)
    fleet.start()
    locker = Locker(collector.root / "data" / "warden.db")
    cleanup.callback(locker.kill)
    try:
        fleet.wait_total("last_ack_seq", 300)
        for hold in (2.0, 4.0):
            errors = counter_sum(collector, STORE_ERRORS)
            sessions = fleet.total("sessions")
            locker.lock()
            time.sleep(0.6)  # a commit that had the lock first finishes; the progress file settles
            acked, committed = fleet.total("last_ack_seq"), sum(committed_seq(collector, h) for h in hosts)
            produced = fleet.total("events")
            time.sleep(hold - 0.6)
            # Nothing committed, nobody acknowledged, but the agents kept spooling.
            assert fleet.total("last_ack_seq") == acked
            assert sum(committed_seq(collector, h) for h in hosts) == committed
            assert fleet.total("events") > produced + 50
            locker.release()
            fleet.wait_total("last_ack_seq", acked + 300, timeout=30)
            # Waited out: no error, no stream ended.
            assert counter_sum(collector, STORE_ERRORS) == errors
            assert fleet.total("sessions") == sessions
        result = fleet.result()
    finally:
        locker.kill()
        fleet.kill()
    try:
        assert result["drained"], result
        samples = sample_counts(collector)
        for a in result["agents"]:
            numbers = stored_numbers(collector, a["host_id"])
            missing, dup = exactly_once(numbers, range(1, a["events"] + 1))
            assert not missing and not dup and len(numbers) == a["events"], \
                (a["host_id"], missing[:9], dup[:9])
            assert samples[a["host_id"]] == a["bursts"] * 2
            assert a["spool"]["rejected_total"] == a["spool"]["dropped_total"] == 0
    finally:
        collector.stop()


def _batch(first: int, n: int) -> Any:
    from warden.v1 import collector_pb2

    b = collector_pb2.Batch(first_seq=first, last_seq=first + n - 1)
    b.records.extend(records.event("test.numbered", "info", {"n": first + i}) for i in range(n))
    return collector_pb2.ReportRequest(batch=b)


async def test_failed_commit_is_not_jumped_over_by_the_next_batch_of_the_stream(tmp_path: Path,
                                                                               cleanup: ExitStack) -> None:
    import grpc

    from warden.agent import identity as ident
    from warden.v1 import collector_pb2, collector_pb2_grpc

    collector = CollectorProc(tmp_path / "collector")
    cleanup.callback(collector.stop)
    collector.start()
    try:
        (agent,) = enroll_agents(collector, tmp_path / "agents", ["gap"], rpc=True)
        ca, key, cert = ident.credentials(agent.state_dir)
        creds = grpc.ssl_channel_credentials(root_certificates=ca, private_key=key, certificate_chain=cert)
        locker = Locker(collector.root / "data" / "warden.db")
        try:
            async with grpc.aio.secure_channel(f"127.0.0.1:{collector.report_port}", creds) as ch:
                call = collector_pb2_grpc.CollectorStub(ch).Report()
                await call.write(collector_pb2.ReportRequest(hello=collector_pb2.Hello(spool_id="s1")))
                assert (await call.read()).welcome.committed_seq == 0
                await asyncio.to_thread(locker.lock)
                await call.write(_batch(1, 10))  # its commit waits for the lock, then fails (5 s)
                await asyncio.sleep(0.5)
                await call.write(_batch(11, 10))  # queued behind it, same stream
                await asyncio.sleep(5.5)  # past the first one's busy timeout...
                await asyncio.to_thread(locker.release)  # ...and the second one can commit
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    while True:
                        msg = await call.read()
                        assert msg is not grpc.aio.EOF
                        assert msg.WhichOneof("msg") != "ack" or msg.ack.committed_seq < 11, msg
                assert err.value.code() == grpc.StatusCode.UNAVAILABLE  # the failure is visible
            assert collector.counter(STORE_ERRORS) >= 1
            await asyncio.sleep(1)
            # The agent reconnects: what does the collector say it has?
            async with grpc.aio.secure_channel(f"127.0.0.1:{collector.report_port}", creds) as ch:
                call = collector_pb2_grpc.CollectorStub(ch).Report()
                await call.write(collector_pb2.ReportRequest(hello=collector_pb2.Hello(spool_id="s1")))
                committed = (await call.read()).welcome.committed_seq
                call.cancel()
        finally:
            locker.kill()
        stored = stored_numbers(collector, "gap")
        # Everything the collector claims as committed must be stored (the agent deletes it).
        assert stored == list(range(1, committed + 1)), (committed, stored)
    finally:
        collector.stop()


RULE = """rules:
  - id: trigger_seen
    kind: event
    severity: warning
    summary: "trigger {{ k }}"
    match: {kind: test.trigger}
    group_by: [k]
    keep_firing_for: 1h
"""


class Alerting:
    def __init__(self, collector: CollectorProc, trigger: AgentDir, fleet: Fleet) -> None:
        self.collector, self.trigger, self.fleet = collector, trigger, fleet
        self.spool_id = uuid.uuid4().hex
        self.seq = 0

    def raise_alert(self, k: str) -> None:
        """Send one test.trigger event (the rule opens one alert per k); returns once stored."""
        self.seq += 1
        rec = records.event("test.trigger", "warning", {"k": k}, source="test")
        assert asyncio.run(report(self.trigger.state_dir, self.collector.report_port, self.spool_id,
                                  self.seq, [rec])) == self.seq

    def alerts(self, k: str) -> list[dict[str, Any]]:
        return [a for a in self.collector.get("/api/v1/alerts")["alerts"]
                if a["rule"] == "trigger_seen" and a["labels"].get("k") == k]


@pytest.fixture(scope="module")
def alerting(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Alerting]:
    root = tmp_path_factory.mktemp("alerting")
    rules = root / "rules"
    rules.mkdir()
    (rules / "trigger.yml").write_text(RULE)
    collector = CollectorProc(root / "collector", rules={"dir": str(rules), "tick": "1s"})
    fleet: Fleet | None = None
    try:
        collector.start()
        (trigger,) = enroll_agents(collector, root / "agents", ["trigger"], rpc=True)
        agents = enroll_agents(collector, root / "agents", ["alock-0", "alock-1"], rpc=False)
        fleet = Fleet(root / "fleet", agents, burst_every_s=0.05, events_per_burst=2)
        fleet.start()
        fleet.wait_total("last_ack_seq", 100)
        yield Alerting(collector, trigger, fleet)
        result = fleet.result()
        assert result["drained"]
        for a in result["agents"]:
            missing, dup = exactly_once(stored_numbers(collector, a["host_id"]), range(1, a["events"] + 1))
            assert not missing and not dup
    finally:
        if fleet is not None:
            fleet.kill()
        collector.stop()


def _locked_alerts_db(alerting: Alerting, k: str, hold: float) -> None:
    al = alerting
    al.raise_alert(f"{k}-before")
    wait_for(lambda: al.alerts(f"{k}-before"), 15, what="an alert before the lock")
    locker = Locker(al.collector.root / "data" / "alerts.db")
    try:
        locker.lock()
        acked = al.fleet.total("last_ack_seq")
        al.raise_alert(k)  # stored and acknowledged: ingest does not wait for alerts.db
        time.sleep(hold)
        assert al.fleet.total("last_ack_seq") > acked + 100  # ingest went on all along
        locker.release()
    finally:
        locker.kill()


def test_alerts_db_locked_briefly_ingest_goes_on_and_the_alert_arrives(alerting: Alerting) -> None:
    errors = alerting.collector.counter("warden_collector_alert_store_errors_total")
    _locked_alerts_db(alerting, "short", 3.0)
    got = wait_for(lambda: alerting.alerts("short"), 15, what="the alert raised during the lock")
    assert [a["state"] for a in got] == ["firing"]
    assert alerting.collector.counter("warden_collector_alert_store_errors_total") == errors


def test_alert_raised_while_alerts_db_locked_past_busy_timeout_is_not_lost(alerting: Alerting) -> None:
    errors = alerting.collector.counter("warden_collector_alert_store_errors_total")
    _locked_alerts_db(alerting, "long", 12.0)
    assert alerting.collector.counter("warden_collector_alert_store_errors_total") > errors  # visible
    alerting.raise_alert("after")  # the pipeline works again...
    wait_for(lambda: alerting.alerts("after"), 15, what="an alert after the release")
    time.sleep(2)
    assert alerting.alerts("long")  # ...but is the alert raised during the lock there?
