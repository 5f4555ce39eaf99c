"""Group commit in front of the real SQLite store: acks only after a durable commit; a
full disk refuses the batches (the agents keep them) and harms nothing already stored."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest

from warden.collector.ingest import Ingest
from warden.collector.records import Batch, Event, MetricSample
from warden.collector.store.sqlite import SqliteStore
from warden.collector.telemetry import Telemetry


def _batch(host: str, first: int, n: int, spool: str = "s1") -> Batch:
    t = time.time_ns()
    recs = [MetricSample("m", {"i": str(first + i)}, float(first + i), t) for i in range(n)]
    return Batch(host, spool, first, first + n - 1, recs)  # type: ignore[arg-type]


async def test_concurrent_streams_are_grouped_and_deduplicated(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "w.db")
    tel = Telemetry()
    seen: list[tuple[str, int]] = []
    ingest = Ingest(store, tel, [lambda host, samples: seen.append((host, len(samples)))])
    ingest.start()
    try:
        futs = [await ingest.submit(_batch(f"h{h}", 1 + 10 * k, 10)) for k in range(20) for h in range(5)]
        results = await asyncio.gather(*futs)
        assert {r.committed_seq for r in results[-5:]} == {200}
        again = await (await ingest.submit(_batch("h0", 191, 10)))  # a resend of the last batch
        assert again.committed_seq == 200 and again.skipped == 10
    finally:
        await ingest.stop()
    assert tel.get("warden_collector_records_ingested_total") == 1000
    assert tel.get("warden_collector_records_deduplicated_total") == 10
    assert tel.get("warden_collector_batches_ingested_total") == 101
    # Fewer commits than batches: they were grouped. The sink saw only new samples.
    assert sum(n for _, n in seen) == 1000
    assert sum(len(s.points) for s in store.query_metrics("h3", "m")) == 200
    store.close()


async def test_full_disk_refuses_batches_and_keeps_stored_data(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "w.db")
    tel = Telemetry()
    ingest = Ingest(store, tel)
    ingest.start()
    try:
        ok = await (await ingest.submit(_batch("h", 1, 50)))
        assert ok.committed_seq == 50
        pages = store._w.execute("PRAGMA page_count").fetchone()[0]
        store.set_max_pages(pages)  # the disk is now full
        big = Batch("h", "s1", 51, 51, [Event("test.big", "info", time.time_ns(), raw="x" * 200_000)])
        with pytest.raises(sqlite3.OperationalError, match="full"):
            await (await ingest.submit(big))
        assert tel.get("warden_collector_store_errors_total") == 1
        # Nothing stored was harmed and the committed mark did not move.
        assert store.committed_seq("h", "s1") == 50
        assert sum(len(s.points) for s in store.query_metrics("h", "m")) == 50
        assert store._w.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        # Space comes back: the agent's retry of the same batch succeeds.
        store.set_max_pages(None)
        assert (await (await ingest.submit(big))).committed_seq == 51
    finally:
        await ingest.stop()
        store.close()


async def test_one_bad_batch_does_not_fail_its_group(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "w.db")
    ingest = Ingest(store, Telemetry())
    ingest.start()
    try:
        bad = Batch("h2", "s1", 1, 5, [])  # inconsistent range: the store refuses it
        futs = [await ingest.submit(b) for b in (_batch("h1", 1, 5), bad, _batch("h3", 1, 5))]
        res = await asyncio.gather(*futs, return_exceptions=True)
        assert res[0].committed_seq == 5 and res[2].committed_seq == 5  # type: ignore[union-attr]
        assert isinstance(res[1], ValueError)
    finally:
        await ingest.stop()
        store.close()


async def test_pending_budget_pushes_back(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "w.db")
    ingest = Ingest(store, Telemetry(), max_pending_records=10)
    first = await ingest.submit(_batch("h", 1, 10))  # fills the budget; not committed yet
    second = asyncio.ensure_future(ingest.submit(_batch("h", 11, 5)))
    await asyncio.sleep(0.1)
    assert not second.done(), "a full budget must make the stream wait"
    ingest.start()  # commits free the budget
    assert (await first).committed_seq == 10
    assert (await (await asyncio.wait_for(second, 5))).committed_seq == 15
    await ingest.stop()
    store.close()
