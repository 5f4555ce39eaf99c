"""Simulated agents that use the REAL agent spool and transport, many in one process.

Each agent has its own enrolled identity (state dir: key, certificate, CA, identity.json), its
own durable spool (warden.agent.spooler.AsyncSpool, SQLite WAL, synchronous=FULL) and its own
Report stream (warden.agent.transport.Transport: Hello/Welcome, batches, acks, heartbeats,
backoff). Only the probes are simulated: every `burst_every_s` an agent appends one burst, in
one spool transaction, of `events_per_burst` numbered events (kind `test.numbered`, field
`n` = 1, 2, 3, ... per agent) and `metrics_per_burst` metric samples (series `fleet_*` with a
`slot` label, all stamped with the burst's time). So after any fault the collector must hold,
per host, events n = 1..N exactly once (or the documented exceptions, e.g. the spool cap),
and `bursts * metrics_per_burst` samples.

    python -m tests.faults.fleet SPEC.json

SPEC is JSON: {"agents": [{"host_id", "state_dir", "spool_path"}, ...], and optional
burst_every_s (1.0), events_per_burst (1), metrics_per_burst (0), pad_bytes (0: extra bytes
of raw text per event), max_bursts (null: unbounded), duration_s (null), stop_file (null: stop
producing once it exists), spool_max_bytes (64 MiB), transport ({} TransportSection fields),
self_metrics_s (null: else run the real agent's own-health reporter, warden.agent.run,
at that interval), drain_timeout_s (60), status_file (null: else rewritten every
status_every_s with the progress), start_spread_s (0: agents start spread over this)}.

It prints one JSON line at the end: per agent how many bursts/events/metrics it appended, its
spool id and final spool stats and transport stats; the exit code is 0 when every agent's
spool drained (everything acknowledged) within drain_timeout_s.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from warden.agent import records
from warden.agent.config import TransportSection
from warden.agent.spooler import AsyncSpool
from warden.agent.transport import Transport

log = logging.getLogger("fleet")

EVENT_KIND = "test.numbered"
METRIC_NAMES = ("fleet_cpu_percent", "fleet_memory_used_bytes", "fleet_load1", "fleet_filesystem_free_bytes")


class CountingSpool(AsyncSpool):
    """The real AsyncSpool, counting every record appended (the agent's own health records too)."""

    appended = 0

    async def append(self, payloads: list[bytes]) -> int:
        last = await super().append(payloads)
        self.appended += len(payloads)
        return last


@dataclass
class AgentState:
    host_id: str
    state_dir: Path
    spool_path: Path
    spool: CountingSpool | None = None
    transport: Transport | None = None
    bursts: int = 0
    events: int = 0
    metrics: int = 0
    append_errors: int = 0
    last_error: str = ""
    delay: float = 0.0  # start spread: this agent starts (connects, produces) this late
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)

    def progress(self) -> dict[str, Any]:
        t = self.transport.stats if self.transport else None
        return {"host_id": self.host_id, "bursts": self.bursts, "events": self.events,
                "metrics": self.metrics, "append_errors": self.append_errors,
                "pending_bytes": self.spool._spool.pending_bytes if self.spool else 0,  # noqa: SLF001
                "dropped": self.spool._spool._dropped if self.spool else 0,  # noqa: SLF001
                "connected": bool(t and t.connected), "sessions": t.sessions if t else 0,
                "last_ack_seq": t.last_ack_seq if t else 0, "errors": dict(t.errors) if t else {}}


def burst_records(a: AgentState, spec: dict[str, Any], t_ns: int) -> list[bytes]:
    out = []
    pad = "x" * int(spec.get("pad_bytes", 0))
    for _ in range(int(spec.get("events_per_burst", 1))):
        a.events += 1
        out.append(records.event(EVENT_KIND, "info", {"n": a.events}, raw=pad, source="fleet",
                                 time_ns=t_ns).SerializeToString())
    for i in range(int(spec.get("metrics_per_burst", 0))):
        name = METRIC_NAMES[i % len(METRIC_NAMES)]
        out.append(records.metric(name, float(a.bursts * 7 % 100 + i), {"slot": str(i)},
                                  time_ns=t_ns).SerializeToString())
    a.metrics += int(spec.get("metrics_per_burst", 0))
    return out


async def produce(a: AgentState, spec: dict[str, Any], stop: asyncio.Event, t_end: float) -> None:
    assert a.spool is not None
    every = float(spec.get("burst_every_s", 1.0))
    max_bursts = spec.get("max_bursts")
    stop_file = Path(spec["stop_file"]) if spec.get("stop_file") else None
    await asyncio.sleep(a.delay)
    next_at = time.monotonic()
    while not stop.is_set():
        if max_bursts is not None and a.bursts >= int(max_bursts):
            return
        if time.monotonic() >= t_end or (stop_file is not None and stop_file.exists()):
            return
        saved = (a.events, a.metrics)
        payloads = burst_records(a, spec, time.time_ns())
        try:
            await a.spool.append(payloads)
            a.bursts += 1
        except Exception as exc:  # e.g. disk full: the burst is not in the spool
            a.events, a.metrics = saved
            a.append_errors += 1
            a.last_error = f"{type(exc).__name__}: {exc}"
        next_at += every
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))


async def main(spec: dict[str, Any]) -> int:
    settings = TransportSection(**{"backoff_initial_seconds": 0.1, "backoff_max_seconds": 1.0,
                                   "heartbeat_seconds": 2.0, **spec.get("transport", {})})
    max_bytes = int(spec.get("spool_max_bytes", 64 * 1024 * 1024))
    agents = [AgentState(x["host_id"], Path(x["state_dir"]), Path(x["spool_path"])) for x in spec["agents"]]
    stop_transport = asyncio.Event()
    stop_producing = asyncio.Event()
    duration = spec.get("duration_s")
    t_end = time.monotonic() + float(duration) if duration is not None else float("inf")
    self_metrics_s = spec.get("self_metrics_s")
    if self_metrics_s:
        from warden.agent.run import _self_metrics  # the real agent's own-health reporter
    async def delayed(a: AgentState, coro: Any) -> None:
        await asyncio.sleep(a.delay)
        await coro

    spread = float(spec.get("start_spread_s", 0.0))
    for a in agents:
        a.delay = random.uniform(0, spread)
        a.spool = CountingSpool(a.spool_path, max_bytes)
        a.transport = Transport(a.state_dir, a.spool, settings, agent_version="fleet")
        a.tasks.append(asyncio.create_task(delayed(a, a.transport.run(stop_transport))))
        if self_metrics_s:
            a.tasks.append(asyncio.create_task(_self_metrics(a.spool, a.transport, float(self_metrics_s),
                                                             stop_transport)))
    status_file = Path(spec["status_file"]) if spec.get("status_file") else None
    status_every = float(spec.get("status_every_s", 0.25))

    def write_status(phase: str) -> None:
        if status_file is None:
            return
        tmp = status_file.with_name(status_file.name + ".tmp")
        tmp.write_text(json.dumps({"phase": phase, "pid": os.getpid(), "t": time.time(),
                                   "agents": [a.progress() for a in agents]}))
        os.replace(tmp, status_file)

    async def status_loop(phase: list[str]) -> None:
        while True:
            write_status(phase[0])
            await asyncio.sleep(status_every)

    phase = ["producing"]
    status = asyncio.create_task(status_loop(phase))
    producers = [asyncio.create_task(produce(a, spec, stop_producing, t_end)) for a in agents]
    await asyncio.gather(*producers)
    phase[0] = "draining"
    drained = False
    deadline = time.monotonic() + float(spec.get("drain_timeout_s", 60))
    while time.monotonic() < deadline:
        if all(a.spool is not None and a.spool._spool.pending_bytes == 0 for a in agents):  # noqa: SLF001
            drained = True
            break
        await asyncio.sleep(0.1)
    stop_transport.set()
    await asyncio.gather(*(t for a in agents for t in a.tasks), return_exceptions=True)
    out = []
    for a in agents:
        assert a.spool is not None and a.transport is not None
        st = await a.spool.stats()
        out.append({"host_id": a.host_id, "spool_id": a.spool.spool_id, "bursts": a.bursts,
                    "events": a.events, "metrics": a.metrics, "append_errors": a.append_errors,
                    "appended_records": a.spool.appended, "last_append_error": a.last_error,
                    "spool": asdict(st),
                    "transport": asdict(a.transport.stats)})
        a.spool.close()
    phase[0] = "done"
    status.cancel()
    write_status("done")
    print(json.dumps({"drained": drained, "agents": out}), flush=True)
    return 0 if drained else 1


if __name__ == "__main__":
    logging.basicConfig(level=os.environ.get("FLEET_LOG", "WARNING"),
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    with open(sys.argv[1]) as f:
        sys.exit(asyncio.run(main(json.load(f))))
