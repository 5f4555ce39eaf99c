"""A test agent that produces numbered events through the REAL agent spool and transport.

Event number n is appended as spool sequence n (one record per append), so after any
number of crashes the collector must hold events n = 1..last_seq, each exactly once.

usage: python -m tests.producer STATE_DIR SPOOL_PATH COUNT [RATE_PER_S]
"""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path

from warden.agent import records
from warden.agent.config import TransportSection
from warden.agent.spooler import AsyncSpool
from warden.agent.transport import Transport


async def main(state_dir: Path, spool_path: Path, count: int, rate: float) -> None:
    spool = AsyncSpool(spool_path, 64 * 1024 * 1024)
    transport = Transport(state_dir, spool, TransportSection(
        backoff_initial_seconds=0.1, backoff_max_seconds=0.5, heartbeat_seconds=1.0,
        batch_max_records=50), agent_version="test-producer")
    stop = asyncio.Event()
    sender = asyncio.create_task(transport.run(stop))
    n = (await spool.stats()).last_seq
    while n < count:
        n += 1
        rec = records.event("test.numbered", "info", {"n": n}, source="producer")
        seq = await spool.append([rec.SerializeToString()])
        assert seq == n, (seq, n)
        print(f"appended {n}", flush=True)
        await asyncio.sleep(1 / rate)
    # Wait until everything is acknowledged, then exit.
    while (await spool.stats()).pending_records:
        await asyncio.sleep(0.05)
    print("all acknowledged", flush=True)
    stop.set()
    await sender
    spool.close()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    rate = float(sys.argv[4]) if len(sys.argv) > 4 else 200.0
    asyncio.run(main(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), rate))
