"""Group commit: batches from every stream are stored together in one durable transaction.

An fsync per batch would cap the collector at a few hundred batches a second; gathering
whatever arrived while the previous commit ran amortises it over all streams (as
PostgreSQL's and Kafka's group commit do). Only after the commit returns are the
streams' futures resolved, so an Ack always means "durably stored".
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from warden.collector.records import Batch, CommitResult, MetricSample, Record
from warden.collector.store.base import Store
from warden.collector.telemetry import Telemetry

log = logging.getLogger(__name__)
T = TypeVar("T")

# Receives (host_id, newly stored metric samples) after each commit; e.g. InfluxSink.submit.
MetricsSink = Callable[[str, Sequence[MetricSample]], None]
# Receives (host_id, every newly stored record) after each commit; e.g. AlertPipeline.submit.
RecordObserver = Callable[[str, Sequence[Record]], None]


class Ingest:
    def __init__(self, store: Store, telemetry: Telemetry, sinks: Sequence[MetricsSink] = (),
                 max_group_records: int = 50_000, max_pending_records: int = 100_000,
                 observers: Sequence[RecordObserver] = ()) -> None:
        self._store = store
        self.observers = list(observers)
        self._telemetry = telemetry
        self._sinks = list(sinks)
        self._max_group_records = max_group_records
        # One thread: SQLite has one writer anyway, and ordering stays simple.
        self._writer = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="warden-ingest")
        self._pending: deque[tuple[Batch, asyncio.Future[CommitResult]]] = deque()
        self._wakeup = asyncio.Event()
        # A global budget of translated-but-uncommitted records: past it, streams wait, and
        # gRPC flow control pushes back on agents (whose spools hold the data) instead of
        # the collector's memory growing with the number of agents.
        self._max_pending = max_pending_records
        self._pending_records = 0
        self._room = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None
        # (host, spool, stream) -> first seq of a batch of that stream that failed to commit
        self._failed: dict[tuple[str, str, int], int] = {}

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="ingest")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for _, fut in self._pending:
            if not fut.done():
                fut.set_exception(ConnectionAbortedError("collector shutting down"))
        self._pending.clear()
        self._writer.shutdown(wait=True)

    async def submit(self, batch: Batch) -> asyncio.Future[CommitResult]:
        """Queue a batch once the budget has room; the future resolves after the commit."""
        n = len(batch.records)
        async with self._room:
            await self._room.wait_for(
                lambda: self._pending_records == 0 or self._pending_records + n <= self._max_pending)
            self._pending_records += n
        fut: asyncio.Future[CommitResult] = asyncio.get_running_loop().create_future()
        self._pending.append((batch, fut))
        self._wakeup.set()
        return fut

    async def run_in_writer(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a store call on the writer thread, ordered with commits."""
        return await asyncio.get_running_loop().run_in_executor(
            self._writer, functools.partial(fn, *args, **kwargs))

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._pending:
                group, size = [], 0
                while self._pending and (not group or size < self._max_group_records):
                    item = self._pending.popleft()
                    group.append(item)
                    size += len(item[0].records)
                try:
                    await self._commit(loop, group)
                finally:
                    async with self._room:
                        self._pending_records -= size
                        self._room.notify_all()

    async def _commit(self, loop: asyncio.AbstractEventLoop,
                      group: list[tuple[Batch, asyncio.Future[CommitResult]]]) -> None:
        # A batch whose commit failed leaves a hole in its spool's sequence: a later batch of
        # the same stream must not commit past it, or the committed mark would acknowledge
        # records that were never stored (the agent would delete them). Those batches fail
        # too; the stream ends and the agent's next session resends from the committed mark.
        # (A new session may legitimately start past the hole: its spool dropped records.)
        if self._failed:
            kept = []
            for item in group:
                b = item[0]
                hole = self._failed.get((b.host_id, b.spool_id, b.stream))
                if hole is not None and b.first_seq > hole:
                    if not item[1].done():
                        item[1].set_exception(ConnectionAbortedError(
                            f"batch {hole}.. of this spool failed to commit; resend from {hole}"))
                    continue
                kept.append(item)
            group = kept
            if not group:
                return
        t0 = time.perf_counter()
        try:
            results = await loop.run_in_executor(self._writer, self._store.commit_batches,
                                                 [b for b, _ in group], time.time_ns())
        except Exception as exc:
            if len(group) > 1:
                # Find the batch at fault instead of failing every stream of the group; a
                # store-wide failure (disk full) fails them all again, one by one.
                for item in group:
                    await self._commit(loop, [item])
                return
            b = group[0][0]
            log.error("commit of batch %s-%s from %s failed: %s", b.first_seq, b.last_seq, b.host_id, exc)
            key = (b.host_id, b.spool_id, b.stream)
            self._failed[key] = min(self._failed.get(key, b.first_seq), b.first_seq)
            while len(self._failed) > 10_000:  # streams end; their marks need not live forever
                del self._failed[next(iter(self._failed))]
            self._telemetry.inc("warden_collector_store_errors_total")
            if not group[0][1].done():
                group[0][1].set_exception(exc)  # the agent keeps the batch and retries
            return
        self._telemetry.set("warden_collector_commit_seconds", time.perf_counter() - t0)
        stored = dup = 0
        for (batch, fut), res in zip(group, results, strict=True):
            stored += len(batch.records) - res.skipped
            dup += res.skipped
            if not fut.done():
                fut.set_result(res)
            if self.observers and res.skipped < len(batch.records):
                fresh = batch.records[res.skipped:] if res.skipped else batch.records
                if res.derived:
                    fresh = [*fresh, *res.derived]
                for observe in self.observers:
                    try:
                        observe(batch.host_id, fresh)
                    except Exception:  # an observer never stops ingestion
                        log.exception("record observer failed")
            if self._sinks and res.skipped < len(batch.records):
                samples = [r for r in batch.records[res.skipped:] if type(r) is MetricSample]
                if samples:
                    for sink in self._sinks:
                        try:
                            sink(batch.host_id, samples)
                        except Exception:  # a sink never stops ingestion
                            log.exception("sink failed")
        self._telemetry.inc("warden_collector_records_ingested_total", stored)
        self._telemetry.inc("warden_collector_records_deduplicated_total", dup)
        self._telemetry.inc("warden_collector_batches_ingested_total", len(group))
