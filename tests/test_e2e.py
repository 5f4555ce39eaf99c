"""End to end over real TLS on loopback, with real processes: enroll -> report -> stored ->
visible through the collector; crashes on either side lose and duplicate nothing."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from warden.collector.store.sqlite import SqliteStore

from . import vm
from .harness import PY, AgentProc, CollectorProc, wait_for

victoria_metrics = vm.victoria_metrics


@pytest.fixture
def collector(tmp_path: Path):
    c = CollectorProc(tmp_path / "collector")
    c.start()
    yield c
    c.stop()


def _latest_names(collector: CollectorProc, host_id: str) -> set[str]:
    host = collector.host(host_id)
    return {s["name"] for s in host["latest_metrics"]} if host else set()


def test_enroll_report_visible(collector: CollectorProc, tmp_path: Path) -> None:
    agent = AgentProc(tmp_path / "agent", collector, "e2e-host")
    out = agent.enroll(collector.token(labels="room=A,rack=3"))
    assert "enrolled as e2e-host" in out.stdout
    agent.start()
    try:
        names = wait_for(lambda: _latest_names(collector, "e2e-host") >= {
            "system_cpu_percent", "system_memory_available_bytes", "system_load1",
            "system_filesystem_free_bytes", "system_filesystem_inodes_used_percent",
            "system_uptime_seconds", "system_swap_used_bytes"} and _latest_names(collector, "e2e-host"),
            20, what="system metrics of e2e-host")
        assert "agent_probe_success" in names or wait_for(
            lambda: "agent_probe_success" in _latest_names(collector, "e2e-host"), 10)
        host = collector.host("e2e-host")["host"]
        assert host["labels"] == {"room": "A", "rack": "3"}
        assert host["agent_version"] and host["os"]
        assert host["last_seen_seconds_ago"] < 10 and not host["revoked"]
        inv = collector.get("/api/v1/hosts/e2e-host/inventory")["sections"]
        assert {"os", "hardware", "filesystems"} <= inv.keys()
        assert inv["hardware"]["data"]["memory_bytes"] > 0
        series = collector.get("/api/v1/hosts/e2e-host/metrics?name=system_filesystem_free_bytes")["series"]
        assert any(s["labels"]["mount"] == "/" for s in series)
        # The collector reports on itself too.
        text = collector.metrics_text()
        assert "warden_collector_records_ingested_total" in text
        listed = collector.cli("host", "list").stdout
        assert "e2e-host" in listed and "active" in listed
        running = json.loads(agent.cli("status").stdout)  # readable while the agent holds the spool
        assert running["host_id"] == "e2e-host" and running["spool"]["last_seq"] > 0
    finally:
        agent.stop()
    status = agent.cli("status").stdout
    assert '"host_id": "e2e-host"' in status


def test_agent_refuses_to_run_unenrolled(collector: CollectorProc, tmp_path: Path) -> None:
    agent = AgentProc(tmp_path / "agent", collector, "lonely")
    out = agent.cli("run", check=False)
    assert out.returncode == 2 and "not enrolled" in out.stderr and "warden-agent enroll" in out.stderr


def _producer(state: Path, spool: Path, count: int, rate: float, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([PY, "-m", "tests.producer", str(state), str(spool), str(count), str(rate)],
                            stdout=open(log, "ab"), stderr=subprocess.STDOUT,  # noqa: SIM115
                            cwd=Path(__file__).resolve().parents[1])


def _numbers(collector: CollectorProc, host_id: str) -> list[int]:
    store = SqliteStore(collector.root / "data" / "warden.db")
    try:
        evs = store.events(host_id, 0, 1_000_000)
    finally:
        store.close()
    return sorted(int(e.event.fields["n"]) for e in evs if e.event.kind == "test.numbered")


def _appended(log: Path) -> int:
    lines = [ln for ln in log.read_text().splitlines() if ln.startswith("appended ")]
    return int(lines[-1].split()[1]) if lines else 0


def test_collector_killed_and_restarted_exactly_once(collector: CollectorProc, tmp_path: Path) -> None:
    state, spool, log = tmp_path / "state", tmp_path / "spool.db", tmp_path / "producer.log"
    AgentProc(tmp_path / "p", collector, "crash-c").enroll()
    (tmp_path / "p" / "state").rename(state)
    count = 1500
    prod = _producer(state, spool, count, 300, log)
    try:
        wait_for(lambda: _appended(log) > 300, 20, what="producer to get going")
        collector.kill()  # SIGKILL: no graceful anything, mid-commit as likely as not
        killed_at = _appended(log)
        time.sleep(1.0)  # the agent keeps producing into its spool meanwhile
        assert _appended(log) > killed_at
        collector.start()
        assert prod.wait(60) == 0, log.read_text()[-2000:]
    finally:
        if prod.poll() is None:
            prod.kill()
    assert _numbers(collector, "crash-c") == list(range(1, count + 1))
    # The restarted collector's Welcome told the agent what was committed: nothing that was
    # committed before the crash was sent again.
    assert collector.counter("warden_collector_records_deduplicated_total") == 0


def test_agent_killed_mid_batch_exactly_once(collector: CollectorProc, tmp_path: Path) -> None:
    state, spool, log = tmp_path / "state", tmp_path / "spool.db", tmp_path / "producer.log"
    AgentProc(tmp_path / "p", collector, "crash-a").enroll()
    (tmp_path / "p" / "state").rename(state)
    count = 1500
    for _ in range(3):  # kill it three times at different points
        prod = _producer(state, spool, count, 400, log)
        before = _appended(log)
        wait_for(lambda b=before: _appended(log) > b + 200, 20, what="producer progress")
        prod.send_signal(signal.SIGKILL)
        prod.wait(10)
    prod = _producer(state, spool, count, 400, log)
    assert prod.wait(60) == 0, log.read_text()[-2000:]
    assert _numbers(collector, "crash-a") == list(range(1, count + 1))


def test_real_agent_killed_and_restarted_loses_nothing(collector: CollectorProc, tmp_path: Path) -> None:
    agent = AgentProc(tmp_path / "agent", collector, "crash-real", interval=0.2)
    agent.enroll()
    agent.start()
    wait_for(lambda: _latest_names(collector, "crash-real"), 20, what="first metrics")
    time.sleep(1)
    agent.kill()
    collector.kill()
    agent.start()  # produces into its spool while the collector is down
    time.sleep(1.5)
    collector.start()
    time.sleep(2)
    agent.stop()
    spool = json.loads(agent.cli("status").stdout)["spool"]
    store = SqliteStore(collector.root / "data" / "warden.db")
    try:
        committed = store.committed_seq("crash-real", spool["spool_id"])
    finally:
        store.close()
    # Nothing dropped, nothing lost: every record past the collector's committed mark is
    # still in the spool, contiguously (a stop does not wait for in-flight acks, so a few
    # committed-but-unacknowledged records may remain too; the next Welcome clears them).
    assert spool["dropped_total"] == 0 and committed > 0
    if spool["last_seq"] > committed:
        assert spool["first_seq"] <= committed + 1
        assert spool["pending_records"] == spool["last_seq"] - spool["first_seq"] + 1


def test_agent_renews_certificate_before_expiry(tmp_path: Path) -> None:
    collector = CollectorProc(tmp_path / "collector", tls={"client_cert_lifetime": "30s"})
    collector.start()
    agent = AgentProc(tmp_path / "agent", collector, "renewing", interval=1.0,
                      transport={"renew_before_fraction": 0.9})
    try:
        agent.enroll()
        first = collector.host("renewing") or {}
        agent.start()
        wait_for(lambda: collector.counter('warden_collector_renewals_total{result="ok"}') >= 1, 30,
                 what="an automatic renewal")
        serial_after = wait_for(lambda: collector.host("renewing")["host"]["cert_serial"], 5)
        assert serial_after != (first.get("host") or {}).get("cert_serial")
        seen = collector.host("renewing")["host"]["last_seen_seconds_ago"]
        time.sleep(3)
        assert collector.host("renewing")["host"]["last_seen_seconds_ago"] <= max(seen, 3)
    finally:
        agent.stop()
        collector.stop()


def test_metrics_reach_influx_sink(tmp_path: Path, victoria_metrics: vm.VictoriaMetrics) -> None:
    collector = CollectorProc(tmp_path / "collector", influx={
        "enabled": True, "url": victoria_metrics.url, "org": "warden", "bucket": "warden",
        "token": "unused"})
    collector.start()
    agent = AgentProc(tmp_path / "agent", collector, "influx-host")
    try:
        agent.enroll()
        agent.start()
        rows = victoria_metrics.export('{__name__="system_load1_value",host="influx-host"}',
                                       expect_points=1, timeout=30)
        assert rows and rows[0]["metric"]["host"] == "influx-host"
        health = collector.get("/healthz")
        assert health["sink"]["written_total"] > 0 and health["sink"]["dropped_total"] == 0
    finally:
        agent.stop()
        collector.stop()


def test_cli_entry_points_installed() -> None:
    bindir = Path(sys.executable).parent
    for name in ("warden-agent", "warden-collector"):
        out = subprocess.run([str(bindir / name), "--help"], capture_output=True, text=True, check=True)
        assert "usage" in out.stdout


def test_patch_levels_reach_the_collector_and_answer_compliance(collector: CollectorProc,
                                                                  tmp_path: Path) -> None:
    from warden.agent.probes import registered

    only = {f"probes.{n}": {"enabled": False} for n in registered() if n not in ("system", "packages")}
    agent = AgentProc(tmp_path / "agent", collector, "patch-host", **only)
    agent.enroll()
    agent.start()
    try:
        inv = wait_for(lambda: (s := collector.get("/api/v1/hosts/patch-host/inventory")["sections"])
                       and {"packages", "updates"} <= s.keys() and s, 60, what="packages inventory")
        pkgs = inv["packages"]["data"]
        assert pkgs["manager"] == "dpkg" and pkgs["full"] and pkgs["count"] == len(pkgs["packages"]) > 50
        dpkg = next(p for p in pkgs["packages"] if p["name"] == "dpkg")
        old = collector.get("/api/v1/compliance/packages/dpkg?fixed=999")["hosts"]
        new = collector.get(f"/api/v1/compliance/packages/dpkg?fixed={dpkg['version']}")["hosts"]
        assert [r["outdated"] for r in old] == [True] and [r["outdated"] for r in new] == [False]
        summary = collector.get("/api/v1/compliance/patches")["hosts"]
        row = next(r for r in summary if r["host_id"] == "patch-host")
        assert row["reported"] and row["manager"] == "dpkg" and row["pending"] is not None
    finally:
        agent.stop()
