"""The agent's disk: the spool's size cap, and a really full filesystem under its state dir.

1. Injected: a simulated agent (the real spool, transport and own-health reporter) with a
   32 KiB spool cap keeps producing numbered events while the collector is down, far past the cap.
   Asserted: the agent keeps running and appending; the cap drops the OLDEST records and counts
   each one (missing events + missing own-health records + records the collector had committed
   but not acknowledged == spool dropped_total); the missing events are one contiguous run, every
   event after it up to the newest arrived, none twice; the agent reports the drops as data
   (agent_spool_dropped_total at the collector equals the spool's count).
2. Injected: a real `warden-agent run` whose state dir is an 8 MiB tmpfs (room for the spool's
   WAL, up to 4 MiB, so the 96 KiB cap is what the spool meets first); the collector goes down,
   the spool reaches its cap, then a file fills the filesystem to the last byte for 5 s; then
   the space comes back and so does the collector.
   Asserted: the agent process survives and says so in its log ("spool append failed, N records
   lost"); after the space returns it recovers by itself: fresh system metrics arrive and its
   spool drains.
3. Injected: appends failing on a full tmpfs (SQLite rolls back by itself on SQLITE_FULL).
   Asserted: each failure reports the real reason, and afterwards the spool's own accounting
   (pending records and bytes) matches what it holds (bug 1, fixed: was phantom pending bytes).
4. Injected: the agent's own-health reporter while the disk is full.
   Asserted: it keeps running and reports again once space is back (bug 2, fixed: the task
   died on the first failed append).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.harness import AgentProc, CollectorProc, wait_for
from warden.agent.probes import registered
from warden.agent.run import _self_metrics
from warden.agent.spool import Spool
from warden.agent.spooler import AsyncSpool
from warden.agent.transport import TransportStats

from .common import Fleet, committed_seq, enroll_agents, exactly_once, sample_counts, stored_numbers

BATCH = 20


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    try:
        yield path
    finally:
        for _ in range(50):
            if subprocess.run(["umount", str(path)], capture_output=True).returncode == 0:
                break
            time.sleep(0.1)


def fill(path: Path) -> int:
    """Write a file until the filesystem refuses another byte; returns its size."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    size = 0
    try:
        for block in (1 << 16, 4096, 512, 1):
            with contextlib.suppress(OSError):
                while True:
                    size += os.write(fd, b"\0" * block)
    finally:
        os.close(fd)
    return size


def test_spool_cap_drops_the_oldest_counts_them_and_the_newest_arrive(tmp_path: Path,
                                                                       cleanup: ExitStack) -> None:
    collector = CollectorProc(tmp_path / "collector")
    cleanup.callback(collector.stop)
    collector.start()
    (agent,) = enroll_agents(collector, tmp_path / "agents", ["capped"], rpc=False)
    fleet = Fleet(tmp_path / "fleet", [agent], burst_every_s=0.01, events_per_burst=2, pad_bytes=300,
                  spool_max_bytes=32 * 1024, self_metrics_s=0.3, transport={"batch_max_records": BATCH})
    cleanup.callback(fleet.kill)
    fleet.start()
    try:
        fleet.wait_total("last_ack_seq", 200)
        collector.kill()
        time.sleep(0.6)  # the progress file settles: no ack can arrive any more
        acked = fleet.agents()[0]["last_ack_seq"]
        # Committed by the collector but never acknowledged (the kill came in between): these
        # records are stored AND, still in the spool, counted when the cap drops them.
        unacked = committed_seq(collector, "capped") - acked
        wait_for(lambda: fleet.total("dropped") >= 600, 30, what="the cap dropping records")
        assert fleet.total("append_errors") == 0
        assert fleet.agents()[0]["pending_bytes"] <= 32 * 1024
        collector.start()
        fleet.wait_total("events", fleet.total("events") + 100)
        time.sleep(0.7)  # one more own-health report after the last drop
        result = fleet.result()
    finally:
        fleet.kill()
    try:
        (a,) = result["agents"]
        assert result["drained"] and a["append_errors"] == 0, a
        dropped = a["spool"]["dropped_total"]
        numbers = stored_numbers(collector, "capped")
        missing, dup = exactly_once(numbers, range(1, a["events"] + 1))
        assert not dup
        own_appended = a["appended_records"] - a["events"]  # own-health records (6 per report)
        own_lost = own_appended - sample_counts(collector, "agent_")["capped"] - a["spool"]["pending_records"]
        assert dropped > len(missing) > 0
        # Every drop is accounted for: a lost event, a lost own-health record, or a record the
        # collector had already committed when the cap removed it from the spool (acks lost in
        # the kill, or batches in flight right after the restart, when the spool is still full).
        slack = dropped - len(missing) - own_lost
        assert unacked <= slack <= unacked + BATCH * 4, (len(missing), own_lost, unacked, dropped)
        reported = _latest(collector, "capped")["agent_spool_dropped_total"][1]
        assert reported == dropped
        # Oldest first: one contiguous hole, and everything after it, up to the newest, arrived.
        assert missing == list(range(missing[0], missing[-1] + 1))
        assert numbers[-1] == a["events"] and missing[-1] < a["events"]
        assert missing[0] > 200 - 2  # what was acknowledged before the outage was never at risk
    finally:
        collector.stop()


def _latest(collector: CollectorProc, host: str) -> dict[str, tuple[int, float]]:
    h = collector.host(host) or {"latest_metrics": []}
    out: dict[str, tuple[int, float]] = {}
    for s in h["latest_metrics"]:
        t, v = s["points"][-1]
        if s["name"] not in out or t > out[s["name"]][0]:
            out[s["name"]] = (t, v)
    return out


def test_full_filesystem_under_the_state_dir_agent_survives_reports_and_recovers(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "mnt", "8m") as mnt, ExitStack() as cleanup:
        collector = CollectorProc(tmp_path / "collector")
        cleanup.callback(collector.stop)
        collector.start()
        only = {f"probes.{n}": {"enabled": False} for n in registered() if n != "system"}
        agent = AgentProc(tmp_path / "agent", collector, "diskfull", interval=0.1,
                          agent={"state_dir": str(mnt / "state")}, spool={"max_bytes": 96 * 1024},
                          transport={"backoff_initial_seconds": 0.1, "backoff_max_seconds": 1.0,
                                     "heartbeat_seconds": 0.5}, **only)
        cleanup.callback(agent.kill)
        agent.enroll()
        agent.start()
        try:
            wait_for(lambda: "system_load1" in _latest(collector, "diskfull"), 20, what="first metrics")
            collector.kill()

            def spool() -> dict:
                return json.loads(agent.cli("status").stdout)["spool"]

            wait_for(lambda: spool()["dropped_total"] > 0, 30, interval=0.5, what="the spool cap")
            filled = fill(mnt / "filler")
            assert filled > 0
            time.sleep(5)  # longer than the agent's own-metrics interval (4 heartbeats)
            assert agent.proc is not None and agent.proc.poll() is None, agent.log.read_text()[-3000:]
            log = agent.log.read_text()
            assert "spool append failed" in log and "records lost" in log
            (mnt / "filler").unlink()
            recovered_ns = time.time_ns()
            collector.start()

            def fresh(name: str) -> bool:
                return _latest(collector, "diskfull").get(name, (0, 0))[0] > recovered_ns

            wait_for(lambda: fresh("system_load1") and fresh("system_cpu_percent"), 30,
                     what="fresh system metrics after recovery")
            wait_for(lambda: spool()["pending_records"] < 200, 30, what="the spool to drain")
            assert agent.proc.poll() is None
        finally:
            agent.kill()
            collector.stop()


def test_spool_accounting_survives_appends_failing_on_a_full_disk(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "mnt", "1m") as mnt:
        spool = Spool(mnt / "spool.db", 200 * 1024)
        try:
            spool.append([b"a" * 100] * 10)
            fill(mnt / "filler")
            errors = set()
            for _ in range(20):
                try:
                    spool.append([b"b" * 1000] * 20)
                except Exception as exc:
                    errors.add(str(exc))
            (mnt / "filler").unlink()
            spool.append([b"c" * 10])  # space is back
            stats = spool.stats()
            real = spool._db.execute(  # noqa: SLF001
                "SELECT COUNT(*), COALESCE(SUM(length(payload)), 0) FROM records").fetchone()
            assert errors and all("full" in e for e in errors), errors  # the real reason is reported
            assert (stats.pending_records, stats.pending_bytes) == tuple(real) == (11, 1010)
            assert stats.dropped_total == 0  # phantom bytes must not push real records out
        finally:
            spool.close()


async def test_own_health_metrics_resume_after_the_disk_was_full(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "mnt", "1m") as mnt:
        spool = AsyncSpool(mnt / "spool.db", 10 * 1024 * 1024)
        stop = asyncio.Event()
        transport = type("T", (), {"stats": TransportStats()})()
        task = asyncio.create_task(_self_metrics(spool, transport, 0.05, stop))  # type: ignore[arg-type]
        try:
            await asyncio.sleep(0.3)
            fill(mnt / "filler")
            await asyncio.sleep(0.5)  # several reports fail: nothing can be written
            (mnt / "filler").unlink()

            def rows() -> int:
                return spool._spool._db.execute("SELECT COUNT(*) FROM records").fetchone()[0]  # noqa: SLF001

            before = await spool._call(rows)  # noqa: SLF001
            await asyncio.sleep(0.5)
            after = await spool._call(rows)  # noqa: SLF001
            assert not task.done(), task.exception()
            assert after > before  # reporting resumed once the space came back
        finally:
            stop.set()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 2)
            spool.close()
