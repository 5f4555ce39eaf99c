"""The spool on a thread of its own: SQLite commits (fsync) never stall the event loop,
and one thread owning the connection keeps SQLite's threading rules simple."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from warden.agent.spool import Spool, SpoolStats

log = logging.getLogger(__name__)

T = TypeVar("T")


class AsyncSpool:
    def __init__(self, path: Path, max_bytes: int) -> None:
        self._thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="warden-spool")
        self._spool: Spool = self._thread.submit(Spool, path, max_bytes).result()
        self.spool_id: str = self._spool.spool_id
        self._listeners: list[Callable[[], None]] = []

    def on_append(self, listener: Callable[[], None]) -> None:
        """Called (on the loop) after every append, e.g. to wake the sender."""
        self._listeners.append(listener)

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    async def append(self, payloads: list[bytes]) -> int:
        last = await self._call(self._spool.append, payloads)
        for listener in self._listeners:
            listener()
        return last

    def append_nowait(self, payloads: list[bytes], checkpoints: dict[str, bytes] | None = None) -> None:
        """Queue an append from synchronous code on the loop (the scheduler's emit);
        appends keep their order because one thread runs them all."""
        loop = asyncio.get_running_loop()
        fut = self._thread.submit(self._spool.append, payloads, checkpoints)

        def done(f: concurrent.futures.Future[int]) -> None:
            if f.exception() is not None:
                log.error("spool append failed, %d records lost: %s", len(payloads), f.exception())
                return
            for listener in self._listeners:
                loop.call_soon_threadsafe(listener)

        fut.add_done_callback(done)

    def filling(self, fraction: float = 0.5) -> bool:
        """True while pending records take more than `fraction` of the cap: readers that can
        wait (log tails: the lines stay in their files) pause instead of pushing older
        records out of the spool."""
        return self._spool.pending_bytes > fraction * self._spool.max_bytes

    async def checkpoint(self, key: str) -> bytes | None:
        return await self._call(self._spool.checkpoint, key)

    async def peek(self, after_seq: int, max_records: int, max_bytes: int) -> list[tuple[int, bytes]]:
        return await self._call(self._spool.peek, after_seq, max_records, max_bytes)

    async def ack(self, upto_seq: int) -> None:
        await self._call(self._spool.ack, upto_seq)

    async def drop(self, seqs: list[int]) -> int:
        return await self._call(self._spool.drop, seqs)

    async def stats(self) -> SpoolStats:
        return await self._call(self._spool.stats)

    def close(self) -> None:
        self._thread.submit(self._spool.close).result()
        self._thread.shutdown(wait=True)
