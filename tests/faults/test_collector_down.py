"""Collector down for a while under load.

Injected: 8 simulated agents (the real spool and transport) stream numbered events and metric
samples at ~800 records/s in total; the collector is SIGKILLed and stays down for 3.5 s, comes
back, then is stopped gracefully (SIGTERM, which fails the batches still waiting for a commit)
and stays down for 3.5 s, and comes back again.
Asserted: while it is down every agent keeps spooling (its spool grows, nothing is refused or
dropped); after each restart every agent reconnects by itself; at the end each agent's events
n = 1..N are stored exactly once and every metric sample it produced is stored.
"""

from __future__ import annotations

import time
from contextlib import ExitStack
from pathlib import Path

from tests.harness import CollectorProc, wait_for

from .common import Fleet, enroll_agents, exactly_once, sample_counts, stored_numbers

AGENTS = 8
METRICS_PER_BURST = 5


def test_collector_down_under_load_then_every_record_exactly_once(tmp_path: Path, cleanup: ExitStack) -> None:
    collector = CollectorProc(tmp_path / "collector")
    cleanup.callback(collector.stop)
    collector.start()
    agents = enroll_agents(collector, tmp_path / "agents", [f"down-{i}" for i in range(AGENTS)], rpc=False)
    fleet = Fleet(tmp_path / "fleet", agents, burst_every_s=0.1, events_per_burst=5,
                  metrics_per_burst=METRICS_PER_BURST, drain_timeout_s=60)
    cleanup.callback(fleet.kill)
    fleet.start()
    try:
        wait_for(lambda: all(a["connected"] for a in fleet.agents()) and len(fleet.agents()) == AGENTS, 20,
                 what="every agent connected")
        for stop in (collector.kill, collector.stop):
            before = fleet.total("events")
            fleet.wait_total("events", before + 400)
            stop()  # SIGKILL first, then a graceful SIGTERM
            down_at = fleet.total("events")
            sessions = fleet.total("sessions")
            time.sleep(3.5)
            # The agents kept producing into their spools while nobody listened.
            during = fleet.agents()
            assert fleet.total("events") > down_at + 300
            assert all(a["pending_bytes"] > 0 and not a["connected"] and a["append_errors"] == 0
                       for a in during), during
            collector.start()
            wait_for(lambda s=sessions: fleet.total("sessions") >= s + AGENTS
                     and all(a["connected"] for a in fleet.agents()), 20, what="every agent back")
        fleet.wait_total("events", fleet.total("events") + 200)
        result = fleet.result()
    finally:
        fleet.kill()
    try:
        assert result["drained"], result
        samples = sample_counts(collector)
        for a in result["agents"]:
            assert a["spool"]["dropped_total"] == 0 and a["spool"]["rejected_total"] == 0, a
            assert a["transport"]["sessions"] >= 3, a  # first, after the kill, after the stop
            missing, dup = exactly_once(stored_numbers(collector, a["host_id"]), range(1, a["events"] + 1))
            assert not missing and not dup, (a["host_id"], missing[:10], dup[:10])
            assert len(stored_numbers(collector, a["host_id"])) == a["events"]
            assert samples.get(a["host_id"], 0) == a["bursts"] * METRICS_PER_BURST, a
    finally:
        collector.stop()
