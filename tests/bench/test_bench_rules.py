"""CI keeps the rules benchmark working: its quick mode pushes 60,000 records of the simulated
fleet through the default rule pack (alone, then with the alert manager), and sends 20 alerts
through a real collector to a WatchAlerts follower. Only loose floors are asserted (CI machines
are noisy): > 5,000 records/s, every alert arrived, p99 < 5 s; run the full benchmark by hand."""

from __future__ import annotations

from tests.bench import bench_rules


def test_bench_rules_smoke() -> None:
    summary = bench_rules.run(quick=True)  # asserts the floors itself
    engine, with_manager = summary["engine"], summary["engine_with_alert_manager"]
    assert engine["rules"] >= 30 and engine["records"] == with_manager["records"] == 60_000
    assert engine["records_per_s"] > bench_rules.SMOKE_FLOOR_RECORDS_PER_S, engine
    assert engine["events"] > 0 and engine["metric_samples"] > 0, engine
    # The same input gives the same transitions whether or not they are written.
    assert engine["transitions_by_rule"] == with_manager["transitions_by_rule"]
    assert "ssh_brute_force" in engine["transitions_by_rule"], engine["transitions_by_rule"]
    assert with_manager["feed_entries"] > 0 and not engine["rule_errors"]
    lat = summary["latency"]
    assert lat["alerts_sent"] == lat["alerts_arrived"] > 0 and not lat["missing"], lat
    assert lat["p99_ms"] < 1000 * bench_rules.SMOKE_MAX_P99_S, lat
