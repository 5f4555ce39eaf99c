"""Runs every enabled probe on its own cadence and hands the records to `emit`.

Each run's `collect()` happens in a worker thread with a timeout. A probe that raises or
hangs never stops the others; a run still busy when the next is due is skipped and counted.
After every run the scheduler adds the agent's own health as data:
`agent_probe_success{probe}` (1/0), `agent_probe_duration_seconds{probe}`, and an
`agent.probe_error` event the first time a probe fails and again only when the error text
changes (or after it recovered), so a probe failing every 15 s is reported once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from warden.agent import records
from warden.agent.config import AgentConfig, ConfigError
from warden.agent.probes import Probe, spec
from warden.v1 import records_pb2

__all__ = ["ProbeStats", "ScheduledProbe", "Scheduler", "build_probes"]

log = logging.getLogger(__name__)

# emit(records) or, for probes with checkpoint(), emit(records, {"probe:<name>": state}):
# the state must be stored atomically with the records (see Spool.append).
Emit = Callable[..., None]

# Error texts go into an event field; keep them within the collector's value limits.
_MAX_ERROR_CHARS = 1000


@dataclass
class ScheduledProbe:
    name: str
    probe: Probe
    interval_seconds: float
    timeout_seconds: float | None = None  # None: the interval (a run may not outlast its period)


@dataclass
class ProbeStats:
    runs: int = 0  # finished runs, successful or not
    failures: int = 0  # runs that raised or timed out
    skipped: int = 0  # due times skipped because the previous run was still busy
    last_duration_seconds: float = 0.0
    error: str | None = None  # the current error; None once a run succeeds
    busy: bool = False  # a collect() thread is running (possibly past its timeout)


@dataclass
class _State:
    spec: ScheduledProbe
    stats: ProbeStats = field(default_factory=ProbeStats)
    thread_result: asyncio.Future[list[records_pb2.Record]] | None = None
    run_task: asyncio.Task[None] | None = None
    reported_error: str | None = None
    started: bool = False
    checkpoint: bytes | None = None  # set by the worker thread after a checkpointing collect()
    last_health_ns: int = 0

    def take_checkpoint(self) -> tuple[str, bytes] | None:
        cp, self.checkpoint = self.checkpoint, None
        return (f"probe:{self.spec.name}", cp) if cp is not None else None


def build_probes(config: AgentConfig) -> list[ScheduledProbe]:
    """Construct and validate every enabled probe; bad options raise ConfigError naming the probe."""
    if config.paths.proc_root != Path("/proc"):
        # psutil reads procfs through this one module-global; there is one host per agent.
        psutil.PROCFS_PATH = str(config.paths.proc_root)
    out = []
    for name, settings in config.probes.items():
        if not settings.enabled:
            continue
        try:
            instance = spec(name).cls(settings.options, config.paths,
                                       config.agent.state_dir / "probes" / name)
            validate = getattr(instance, "validate", None)
            if validate is not None:
                validate()
        except Exception as e:
            raise ConfigError(f"[probes.{name}] {e}") from e
        out.append(ScheduledProbe(name, instance, settings.interval_seconds))
    return out


class Scheduler:
    def __init__(
        self,
        probes: Sequence[ScheduledProbe],
        emit: Emit,
        *,
        jitter_seconds: float = 1.0,
        stop_grace_seconds: float = 5.0,
        health_interval_seconds: float = 60.0,
    ) -> None:
        """`emit` is called on the event loop's thread with each run's records (and must not block long).

        Each due time is delayed by a random 0..min(jitter_seconds, 10% of the interval), so
        agents started together do not report in lockstep.
        """
        names = [p.name for p in probes]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate probe names: {names}")
        self._states = [_State(p) for p in probes]
        self._emit_cb = emit
        self._jitter = jitter_seconds
        self._grace = stop_grace_seconds
        self._health_interval_ns = int(health_interval_seconds * 1e9)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._stop_requested = False

    def stats(self) -> dict[str, ProbeStats]:
        return {s.spec.name: s.stats for s in self._states}

    def stop(self) -> None:
        """Ask run() to return; safe from any thread and before run() started."""
        self._stop_requested = True
        loop, event = self._loop, self._stopping
        if loop is None or event is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            event.set()
        else:
            with contextlib.suppress(RuntimeError):  # loop already closed: run() is over
                loop.call_soon_threadsafe(event.set)

    async def run(self) -> None:
        """Run the probes until stop(); then let runs in flight finish (up to the grace) and stop probes."""
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        if self._stop_requested:
            self._stopping.set()
        cadences = []
        try:
            for s in self._states:
                if self._start_probe(s):
                    cadences.append(asyncio.create_task(self._cadence(s), name=f"probe {s.spec.name}"))
            await self._stopping.wait()
        finally:
            for task in cadences:
                task.cancel()
            await asyncio.gather(*cadences, return_exceptions=True)
            inflight = [s.run_task for s in self._states if s.run_task is not None and not s.run_task.done()]
            if inflight:
                _, pending = await asyncio.wait(inflight, timeout=self._grace)
                for task in pending:  # their threads are abandoned (daemon): results are discarded
                    task.cancel()
                await asyncio.gather(*inflight, return_exceptions=True)
            for s in reversed(self._states):
                self._stop_probe(s)

    # --- one probe ------------------------------------------------------------------------------

    async def _cadence(self, s: _State) -> None:
        loop = asyncio.get_running_loop()
        interval = s.spec.interval_seconds
        start = loop.time()
        tick = 0
        while True:
            delay = start + tick * interval - loop.time()
            if tick:
                delay += random.uniform(0.0, min(self._jitter, interval * 0.1))
            if delay > 0:
                await asyncio.sleep(delay)
            if s.thread_result is not None and not s.thread_result.done():
                s.stats.skipped += 1
                self._emit(
                    [records.metric("agent_probe_skipped_total", s.stats.skipped, {"probe": s.spec.name})]
                )
            else:
                s.run_task = asyncio.create_task(self._run_once(s), name=f"run {s.spec.name}")
            # Fixed cadence from `start`; due times already past (a suspended host, a blocked
            # loop) are passed over rather than run in a burst.
            tick = max(tick + 1, int((loop.time() - start) // interval) + 1)

    async def _run_once(self, s: _State) -> None:
        name = s.spec.name
        timeout = s.spec.timeout_seconds or s.spec.interval_seconds
        result = self._start_thread(s)
        t0 = time.perf_counter()
        out: list[records_pb2.Record] = []
        error: str | None = None
        try:
            # shield: a timeout abandons the wait, not the thread; the probe stays busy (and
            # later runs are skipped) until collect() really returns.
            out = await asyncio.wait_for(asyncio.shield(result), timeout)
        except Exception as e:
            if isinstance(e, TimeoutError) and not result.done():
                error = f"timed out after {timeout:g}s"
                if hasattr(s.spec.probe, "checkpoint"):
                    # A checkpointing probe (a log tail) has already moved its position past
                    # these records: ship them when they arrive rather than lose them.
                    result.add_done_callback(lambda f: self._emit_late(s, f))
            else:
                error = f"{type(e).__name__}: {e}"[:_MAX_ERROR_CHARS]
        duration = time.perf_counter() - t0
        t = records.now_ns()

        s.stats.runs += 1
        s.stats.last_duration_seconds = duration
        s.stats.error = error
        if error is not None:
            s.stats.failures += 1
        labels = {"probe": name}
        # Health samples at least every health_interval_seconds and on every change of state,
        # not every run: a 1 s log tail would otherwise commit to the spool every second
        # for nothing (measured: 0.6 % vs 0.3 % of a core for an idle agent).
        if error != s.reported_error or t - s.last_health_ns >= self._health_interval_ns:
            s.last_health_ns = t
            out.append(records.metric("agent_probe_success", 0.0 if error else 1.0, labels, t))
            out.append(records.metric("agent_probe_duration_seconds", duration, labels, t))
        if error is not None and error != s.reported_error:
            log.warning("probe %s failed: %s", name, error)  # logged as often as reported
            out.append(_error_event(name, error, t))
        s.reported_error = error  # a success re-arms the report for the next failure
        checkpoint = s.take_checkpoint() if error is None else None
        if out or checkpoint is not None:
            self._emit(out, checkpoint)

    def _emit_late(self, s: _State, f: asyncio.Future[list[records_pb2.Record]]) -> None:
        if not f.cancelled() and f.exception() is None:
            self._emit(f.result(), s.take_checkpoint())

    def _start_thread(self, s: _State) -> asyncio.Future[list[records_pb2.Record]]:
        # A daemon thread of our own rather than asyncio.to_thread: a collect() that never
        # returns would otherwise hold a default-executor worker for good and make the
        # interpreter's shutdown wait for it.
        loop = asyncio.get_running_loop()
        result: asyncio.Future[list[records_pb2.Record]] = loop.create_future()
        s.thread_result = result
        s.stats.busy = True

        def done(_: asyncio.Future[list[records_pb2.Record]]) -> None:
            s.thread_result = None
            s.stats.busy = False

        result.add_done_callback(done)

        def settle(value: list[records_pb2.Record] | None, exc: BaseException | None) -> None:
            if result.done():
                return
            if exc is not None:
                result.set_exception(exc)
            else:
                result.set_result(value or [])
            # A result nobody awaits any more (timed out) must not log "never retrieved".
            result.exception()

        # A probe that can hand over records already serialized (the logs probe: its parser
        # writes the wire bytes directly) skips building each message only to serialize it.
        collect = getattr(s.spec.probe, "collect_serialized", None) or s.spec.probe.collect

        def work() -> None:
            try:
                value = list(collect())
                for r in value:
                    if r.__class__ is not bytes and not isinstance(r, records_pb2.Record):
                        raise TypeError(f"collect() yielded {type(r).__name__}, not warden.v1.Record")
                checkpoint = getattr(s.spec.probe, "checkpoint", None)
                if checkpoint is not None:
                    # Taken in the same thread right after collect(): the position that
                    # produced exactly these records.
                    s.checkpoint = checkpoint()
                args: tuple[list[records_pb2.Record] | None, BaseException | None] = (value, None)
            except BaseException as e:  # reported as this probe's failure, never raised further
                if not isinstance(e, Exception) or isinstance(e, StopIteration):
                    # SystemExit & co. must not escape into the loop; futures refuse StopIteration.
                    e = RuntimeError(f"collect() raised {type(e).__name__}: {e}")
                args = (None, e)
            with contextlib.suppress(RuntimeError):  # loop closed: the agent is gone
                loop.call_soon_threadsafe(settle, *args)

        threading.Thread(target=work, name=f"probe-{s.spec.name}", daemon=True).start()
        return result

    def _start_probe(self, s: _State) -> bool:
        start = getattr(s.spec.probe, "start", None)
        if start is not None:
            try:
                start()
            except Exception as e:
                # Not fatal for the agent: this probe does not run, the others do.
                error = f"start failed: {type(e).__name__}: {e}"[:_MAX_ERROR_CHARS]
                log.error("probe %s %s", s.spec.name, error)
                s.stats.error = s.reported_error = error
                t = records.now_ns()
                self._emit(
                    [
                        records.metric("agent_probe_success", 0.0, {"probe": s.spec.name}, t),
                        _error_event(s.spec.name, error, t),
                    ]
                )
                return False
        s.started = True
        return True

    def _stop_probe(self, s: _State) -> None:
        stop = getattr(s.spec.probe, "stop", None)
        if s.started and stop is not None:
            try:
                stop()
            except Exception:
                log.exception("probe %s: stop() failed", s.spec.name)
        s.started = False

    def _emit(self, out: list[records_pb2.Record], checkpoint: tuple[str, bytes] | None = None) -> None:
        try:
            if checkpoint is None:
                self._emit_cb(out)
            else:
                self._emit_cb(out, dict([checkpoint]))
        except Exception:
            # E.g. the spool's disk is full: losing these records beats stopping every probe.
            log.exception("emit failed; %d records lost", len(out))


def _error_event(probe: str, error: str, t: int) -> records_pb2.Record:
    return records.event(
        "agent.probe_error", "error", {"probe": probe, "error": error}, source=f"probe:{probe}", time_ns=t
    )
