"""InfluxDB down, for the whole collector process (tests/test_sink_influx.py covers the sink
class alone; here it is the real collector with [influx] enabled).

Injected: 4 simulated agents stream metric samples (and numbered events) through a collector
whose InfluxDB sink writes to a real VictoriaMetrics; VictoriaMetrics is stopped for 4 s in the
middle of the flow, then started again on the same port and storage.
Asserted: ingest never waits for the sink (agents keep being acknowledged during the outage);
the outage is visible (/healthz sink: write errors, a growing buffer, lag); the embedded store
keeps everything (every sample and event, exactly once); afterwards the sink catches up by
itself (buffer empty, nothing dropped) and VictoriaMetrics holds every sample exactly once.
"""

from __future__ import annotations

import time
from contextlib import ExitStack
from pathlib import Path

from tests import vm
from tests.harness import CollectorProc, wait_for

from .common import Fleet, enroll_agents, exactly_once, sample_counts, stored_numbers

victoria_metrics = vm.victoria_metrics
METRICS_PER_BURST = 4


def test_influx_down_store_keeps_everything_and_sink_catches_up(
        tmp_path: Path, cleanup: ExitStack, victoria_metrics: vm.VictoriaMetrics) -> None:
    server = victoria_metrics
    collector = CollectorProc(tmp_path / "collector", influx={
        "enabled": True, "url": server.url, "org": "warden", "bucket": "warden", "token": "unused",
        "batch_size": 200})
    cleanup.callback(collector.stop)
    collector.start()
    agents = enroll_agents(collector, tmp_path / "agents", [f"influx-{i}" for i in range(4)], rpc=False)
    fleet = Fleet(tmp_path / "fleet", agents, burst_every_s=0.05, events_per_burst=1,
                  metrics_per_burst=METRICS_PER_BURST)
    cleanup.callback(fleet.kill)
    fleet.start()
    try:
        wait_for(lambda: collector.get("/healthz")["sink"]["written_total"] > 100, 30, what="sink writing")
        server.stop()
        acked = fleet.total("last_ack_seq")
        wait_for(lambda: collector.get("/healthz")["sink"]["write_errors_total"] > 0, 15,
                 what="the sink noticing the outage")
        time.sleep(4)
        sink = collector.get("/healthz")["sink"]
        assert sink["buffered"] > 0 and sink["lag_seconds"] > 1 and sink["dropped_total"] == 0, sink
        # Ingest went on: the agents were acknowledged all along.
        assert fleet.total("last_ack_seq") > acked + 4 * 50, (acked, fleet.total("last_ack_seq"))
        server.start()
        fleet.wait_total("events", fleet.total("events") + 40)
        result = fleet.result()
        sink = wait_for(lambda: (s := collector.get("/healthz")["sink"])["buffered"] == 0 and s, 60,
                        what="the sink's backlog to drain")
        assert sink["dropped_total"] == 0 and sink["lag_seconds"] == 0, sink
    finally:
        fleet.kill()
    try:
        assert result["drained"], result
        samples = sample_counts(collector)
        total = 0
        for a in result["agents"]:
            host = a["host_id"]
            missing, dup = exactly_once(stored_numbers(collector, host), range(1, a["events"] + 1))
            assert not missing and not dup, (host, missing[:9], dup[:9])
            expected = a["bursts"] * METRICS_PER_BURST
            assert samples[host] == expected, (host, samples[host], expected)
            total += expected
        assert collector.get("/healthz")["sink"]["written_total"] >= total
        for a in result["agents"]:
            expected = a["bursts"] * METRICS_PER_BURST
            series = server.export(f'{{__name__=~"fleet_.*_value",host="{a["host_id"]}"}}',
                                   expect_points=expected, timeout=30, settle=1.0)
            points = [(s["metric"]["__name__"], s["metric"]["slot"], t)
                      for s in series for t in s["timestamps"]]
            assert len(points) == len(set(points)) == expected, (a["host_id"], len(points), len(set(points)),
                                                                 expected)
    finally:
        collector.stop()
