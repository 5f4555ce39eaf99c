"""`warden-agent run`: probes -> records -> spool -> Report stream.

Also reports the agent's own health as data every heartbeat: spool depth and drops,
transport state, and the scheduler's per-probe success and duration.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from warden.agent import identity as ident
from warden.agent import records
from warden.agent.config import AgentConfig
from warden.agent.scheduler import Scheduler, build_probes
from warden.agent.spooler import AsyncSpool
from warden.agent.transport import Transport
from warden.v1 import records_pb2

log = logging.getLogger(__name__)


async def _self_metrics(spool: AsyncSpool, transport: Transport, interval: float,
                        stop: asyncio.Event) -> None:
    lost = 0  # reports lost in a row (e.g. disk full): logged when that starts and when it ends
    while not stop.is_set():
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)
        try:
            st = await spool.stats()
            t = records.now_ns()
            out = [records.metric(name, float(value), time_ns=t) for name, value in (
                ("agent_spool_pending_records", st.pending_records),
                ("agent_spool_pending_bytes", st.pending_bytes),
                ("agent_spool_dropped_total", st.dropped_total),
                ("agent_spool_rejected_total", st.rejected_total),
                ("agent_transport_sessions_total", transport.stats.sessions),
                ("agent_certificate_renewals_total", transport.stats.renewals),
            )]
            await spool.append([r.SerializeToString() for r in out])
        except Exception as exc:  # this report is lost; the next one may be stored again
            if not lost:
                log.error("own health metrics not stored (%s); retrying every %gs", exc, interval)
            lost += 1
            continue
        if lost:
            log.warning("own health metrics stored again, %d report(s) lost", lost)
            lost = 0


async def run(cfg: AgentConfig) -> None:
    """Run until SIGINT/SIGTERM. Refuses to start when not enrolled."""
    state_dir = cfg.agent.state_dir
    ident.load(state_dir)  # fail fast with the enroll hint
    probes = build_probes(cfg)
    spool = AsyncSpool(cfg.spool_path, cfg.spool.max_bytes)
    for p in probes:
        restore = getattr(p.probe, "restore", None)
        if restore is not None:  # e.g. log read positions saved with the records they produced
            restore(await spool.checkpoint(f"probe:{p.name}"))

    for p in probes:
        set_backpressure = getattr(p.probe, "set_backpressure", None)
        if set_backpressure is not None:
            set_backpressure(spool.filling)
    # The disk probe counts kernel I/O and filesystem errors per device from the lines the
    # logs probe ships (kernel.* events); a tap on the way to the spool, not a probe-to-probe call.
    disk = next((p.probe for p in probes if p.name == "disk"), None)
    observe_kernel = getattr(disk, "observe_kernel_line", None)

    def emit(recs: list[records_pb2.Record | bytes], checkpoints: dict[str, bytes] | None = None) -> None:
        """Records, or records already serialized (bytes, from a probe's collect_serialized()),
        to the spool."""
        payloads = [r if r.__class__ is bytes else r.SerializeToString() for r in recs]  # type: ignore[union-attr]
        if observe_kernel is not None:
            for p in payloads:
                # A kernel.* kind is within the first bytes of a serialized event (Record.event,
                # its length, Event.kind's tag and length): only those are decoded.
                if b"kernel." in p[:24]:
                    r = records_pb2.Record.FromString(p)
                    if r.WhichOneof("kind") == "event" and r.event.kind.startswith("kernel."):
                        observe_kernel(r.event.raw, r.event.source, r.event.time_unix_nano)
        spool.append_nowait(payloads, checkpoints)

    scheduler = Scheduler(probes, emit)
    transport = Transport(state_dir, spool, cfg.transport, records.agent_version())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    log.info("agent running: probes %s, spool %s", ", ".join(p.name for p in probes), cfg.spool_path)
    tasks = [asyncio.create_task(scheduler.run(), name="scheduler"),
             asyncio.create_task(transport.run(stop), name="transport"),
             asyncio.create_task(_self_metrics(spool, transport, cfg.transport.heartbeat_seconds * 4,
                                               stop), name="self-metrics")]
    await stop.wait()
    log.info("stopping")
    scheduler.stop()
    await asyncio.gather(*tasks, return_exceptions=True)
    spool.close()
