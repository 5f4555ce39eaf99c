"""Network faults between agents and the collector, through tests/faults/netproxy.py.

Injected, during a steady flow from 3 simulated agents (the real spool and transport), each
behind its own proxy: 100 ms of added latency each way; 12 cuts (every open connection reset)
at 0.4-0.9 s intervals; 3 s during which every new connection is reset at once; a 2 s silent
pause (bytes held, connections open).
Asserted: after every cut each agent reconnects within the transport's backoff bound
(backoff_max_seconds + 1 s for the TLS handshake); while connections are refused it retries
with growing delays never above the bound, without a hot loop; a pause shorter than the
keepalive timeout costs no reconnect; at the end every agent's events n = 1..N are stored
exactly once and every metric sample is stored.
"""

from __future__ import annotations

import random
import time
from contextlib import ExitStack
from pathlib import Path

from tests.harness import CollectorProc, wait_for

from .common import Fleet, counter_sum, enroll_agents, exactly_once, point_at, sample_counts, stored_numbers
from .netproxy import NetProxy

BACKOFF_INITIAL, BACKOFF_MAX = 0.1, 1.0
BOUND = BACKOFF_MAX + 1.0


def test_cuts_drops_pauses_and_latency_lose_and_duplicate_nothing(tmp_path: Path, cleanup: ExitStack) -> None:
    collector = CollectorProc(tmp_path / "collector")
    cleanup.callback(collector.stop)
    collector.start()
    proxies = [NetProxy("127.0.0.1", collector.report_port).start() for _ in range(3)]
    for p in proxies:
        cleanup.callback(p.stop)
    agents = enroll_agents(collector, tmp_path / "agents", ["net-0", "net-1", "net-2"], rpc=False)
    for a, p in zip(agents, proxies, strict=True):
        point_at(a.state_dir, p.port)
    fleet = Fleet(tmp_path / "fleet", agents, burst_every_s=0.05, events_per_burst=4, metrics_per_burst=2,
                  transport={"backoff_initial_seconds": BACKOFF_INITIAL, "backoff_max_seconds": BACKOFF_MAX,
                             "batch_max_records": 40})
    cleanup.callback(fleet.kill)
    fleet.start()
    rng = random.Random(7)
    reconnects: list[float] = []
    try:
        wait_for(lambda: all(p.established() for p in proxies), 20, what="agents connected through proxies")
        fleet.wait_total("events", 300)
        for p in proxies:
            p.set_latency(0.1)
        fleet.wait_total("events", fleet.total("events") + 300)
        for p in proxies:
            p.set_latency(0)

        # Repeated cuts mid-stream.
        for _ in range(12):
            time.sleep(rng.uniform(0.4, 0.9))
            t_cut = time.monotonic()
            assert sum(p.cut() for p in proxies) >= 1
            wait_for(lambda t=t_cut: all(p.established(after=t) for p in proxies), BOUND + 5,
                     interval=0.02, what="reconnect after a cut")
            reconnects.append(max(min(c.accepted_at for c in p.established(after=t_cut)) - t_cut
                                  for p in proxies))
        assert max(reconnects) <= BOUND, reconnects

        # New connections refused for 3 s (after a cut, so every agent must reconnect).
        for p in proxies:
            p.drop_new(True)
        t_drop = time.monotonic()
        for p in proxies:
            p.cut()
        time.sleep(3.0)
        for p in proxies:
            p.drop_new(False)
        t_open = time.monotonic()
        wait_for(lambda: all(p.established(after=t_open) for p in proxies), BOUND + 5, interval=0.02,
                 what="reconnect after refusals")
        for p in proxies:
            attempts = [c.accepted_at for c in p.snapshot() if c.dropped and c.accepted_at >= t_drop]
            gaps = [b - a for a, b in zip(attempts, attempts[1:], strict=False)]
            assert 2 <= len(attempts) <= 15, attempts  # retried, with backoff, not in a hot loop
            assert max(gaps) <= BOUND, gaps  # the delay grows up to backoff_max_seconds, never beyond
            first = min(c.accepted_at for c in p.established(after=t_open))
            assert first - t_open <= BOUND, first - t_open

        # A silent partition shorter than the keepalive timeout: the stream stalls, then goes on.
        fleet.wait_total("last_ack_seq", fleet.total("last_ack_seq") + 50)
        opened = sum(len(p.snapshot()) for p in proxies)
        for p in proxies:
            p.pause(True)
        acked = fleet.total("last_ack_seq")
        time.sleep(2.0)
        assert fleet.total("last_ack_seq") <= acked + 3 * 40 * 4  # at most what was already in flight
        for p in proxies:
            p.pause(False)
        fleet.wait_total("last_ack_seq", acked + 200, timeout=15)
        assert sum(len(p.snapshot()) for p in proxies) == opened  # no reconnect was needed
        result = fleet.result()
    finally:
        fleet.kill()
        for p in proxies:
            p.stop()
    try:
        assert result["drained"], result
        samples = sample_counts(collector)
        for a in result["agents"]:
            assert a["transport"]["sessions"] >= 8, a  # a cut during a handshake is no session
            numbers = stored_numbers(collector, a["host_id"])
            missing, dup = exactly_once(numbers, range(1, a["events"] + 1))
            assert not missing and not dup and len(numbers) == a["events"], \
                (a["host_id"], missing[:9], dup[:9])
            assert samples[a["host_id"]] == a["bursts"] * 2, a
        print(f"reconnect after cut: max {max(reconnects):.3f}s; resends deduplicated by the collector: "
              f"{counter_sum(collector, 'warden_collector_records_deduplicated_total'):.0f}")
    finally:
        collector.stop()
