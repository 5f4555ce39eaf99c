"""The alerting pipeline: stored records → rules engine → alert manager → feed.

It runs on its own thread so rule evaluation never delays ingest's event loop: ingest
hands over the records of each commit (`submit`, non-blocking), the thread routes them
through the engine, applies the transitions to the alert manager (which stores them and
queues notifications), and wakes the feed's watchers on the event loop.

Rules reload on SIGHUP (`request_reload`) and when a rule file changes (polled); a broken
rule set keeps the last good one in force and says so (`status`). The engine's state
(pending timers, windows, first-seen baselines) is saved to the alert store every
`snapshot_seconds` and on stop, and restored on start.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from warden.collector.alerts.manager import AlertManager, FeedEntry
from warden.collector.records import Record
from warden.collector.rules.engine import RuleEngine
from warden.collector.rules.loader import RuleErrors, RuleSet, load_rules, rule_files
from warden.collector.rules.spec import RuleError
from warden.collector.store.base import Host
from warden.collector.telemetry import Telemetry

log = logging.getLogger(__name__)


@dataclass
class RulesStatus:
    """What `status` and /healthz say about the rules."""

    rules_dir: str = ""
    loaded: int = 0
    files: int = 0
    last_reload_ns: int = 0
    last_reload_ok: bool = True
    last_error: str = ""  # the reload errors, one per line, while the last good set stays in force
    rule_errors: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"dir": self.rules_dir, "loaded": self.loaded, "files": self.files,
                "last_reload_ns": self.last_reload_ns, "last_reload_ok": self.last_reload_ok,
                "last_error": self.last_error, "rule_errors": dict(self.rule_errors)}


class FeedHub:
    """Wakes feed watchers on the event loop when new entries were stored."""

    def __init__(self) -> None:
        self._cond: asyncio.Condition | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.position = 0

    def bind(self, loop: asyncio.AbstractEventLoop, position: int) -> None:
        self._loop = loop
        self._cond = asyncio.Condition()
        self.position = position

    def publish_threadsafe(self, position: int) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(lambda: asyncio.ensure_future(self._publish(position)))

    async def _publish(self, position: int) -> None:
        assert self._cond is not None
        async with self._cond:
            self.position = max(self.position, position)
            self._cond.notify_all()

    async def wait_beyond(self, position: int, timeout: float) -> bool:
        """Wait until the feed has an entry after `position` (True) or the timeout (False)."""
        assert self._cond is not None
        async with self._cond:
            try:
                await asyncio.wait_for(self._cond.wait_for(lambda: self.position > position), timeout)
            except TimeoutError:
                return False
        return True


class AlertPipeline:
    def __init__(self, rules_dir: Path, manager: AlertManager, hosts: Callable[[], Sequence[Host]],
                 telemetry: Telemetry, *, heartbeat_seconds: float = 30.0, tick_seconds: float = 1.0,
                 reload_poll_seconds: float = 2.0, snapshot_seconds: float = 30.0,
                 max_backlog_records: int = 2_000_000, watch: bool = True) -> None:
        self._watch = watch
        self.rules_dir = rules_dir
        self.manager = manager
        self._hosts = hosts
        self._telemetry = telemetry
        self._tick = tick_seconds
        self._reload_poll = reload_poll_seconds
        self._snapshot_every = snapshot_seconds
        self._max_backlog = max_backlog_records
        self.engine = RuleEngine(heartbeat_seconds=heartbeat_seconds)
        self.status = RulesStatus(rules_dir=str(rules_dir))
        self.feed = FeedHub()
        self._queue: queue.SimpleQueue[tuple[str, Sequence[Record], int] | None] = queue.SimpleQueue()
        self._backlog = 0
        self._backlog_lock = threading.Lock()
        self._reload = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._files_sig: tuple[Any, ...] = ()
        self._unapplied: list[Any] = []  # transitions the alert store refused; retried
        self._max_unapplied = 100_000
        telemetry.gauge("warden_collector_rules_backlog_records", lambda: self._backlog)
        telemetry.gauge("warden_collector_rules_loaded", lambda: self.status.loaded)
        telemetry.gauge("warden_collector_rules_last_reload_ok", lambda: int(self.status.last_reload_ok))

    # --- lifecycle -----------------------------------------------------------------------------
    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Load the rules and start the thread. A broken rule set at start-up leaves the
        collector running without rules (ingest matters more) and says so in `status`."""
        self._files_sig = self._signature()
        now = time.time_ns()
        try:
            ruleset = load_rules(self.rules_dir)
            self.engine.replace_rules(ruleset, now)
            self._loaded(ruleset, now)
        except RuleErrors as exc:
            self._failed_load(exc, now)
        except Exception as exc:
            log.exception("rules do not load")
            self._failed_load(RuleErrors([RuleError(f"the loader failed: {type(exc).__name__}: {exc}",
                                                    str(self.rules_dir))]), now)
        saved = self.manager.load_engine_state()
        if saved:
            self.engine.restore(saved)
        self._refresh_hosts()
        if self.status.last_reload_ok:  # with no rules loaded, nothing can be judged orphaned
            try:
                orphans = self.engine.adopt_open_alerts(self.manager.active(), now)
                if orphans:
                    self.manager.apply(orphans, now)
                    log.info("resolved %d open alert(s) of rules that no longer exist", len(orphans))
            except Exception:
                log.exception("could not reconcile open alerts with the rules")
        self.feed.bind(loop, self.manager.last_position())
        self._thread = threading.Thread(target=self._run, name="warden-rules", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._queue.put(None)
        if self._thread:
            self._thread.join(timeout)
        try:
            self.manager.save_engine_state(self.engine.snapshot())
        except Exception:
            log.exception("could not save the rules engine state")

    def request_reload(self) -> None:
        self._reload.set()
        self._queue.put(None)

    # --- input (from ingest, on the event loop) ----------------------------------------------
    def submit(self, host_id: str, records: Sequence[Record]) -> None:
        n = len(records)
        with self._backlog_lock:
            if self._backlog + n > self._max_backlog:
                # Records are stored already; only their evaluation is lost, and it is counted.
                self._telemetry.inc("warden_collector_rules_dropped_records_total", n)
                return
            self._backlog += n
        self._queue.put((host_id, records, time.time_ns()))

    # --- the thread ----------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._loop()
            except Exception:  # the thread must outlive any bug in one pass: log, count, go on
                log.exception("rules pipeline failed; continuing")
                self._telemetry.inc("warden_collector_rules_pipeline_errors_total")
                time.sleep(0.5)

    def _loop(self) -> None:
        next_tick = time.monotonic()
        next_poll = next_tick + self._reload_poll
        next_snapshot = next_tick + self._snapshot_every
        next_hosts = next_tick
        while not self._stop.is_set():
            timeout = max(0.0, next_tick - time.monotonic())
            transitions = []
            try:
                item = self._queue.get(timeout=timeout)
                items = [item]
                while len(items) < 1000:  # drain what is there, then act on it together
                    try:
                        items.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
            except queue.Empty:
                items = []
            n = 0
            for it in items:
                if it is None:
                    continue
                host_id, records, _ = it
                n += len(records)
                transitions += self.engine.process(host_id, records, time.time_ns())
            if n:
                with self._backlog_lock:
                    self._backlog -= n
                self._telemetry.inc("warden_collector_rules_records_evaluated_total", n)
            mono = time.monotonic()
            now = time.time_ns()
            if self._reload.is_set() or (self._watch and mono >= next_poll):
                next_poll = mono + self._reload_poll
                forced = self._reload.is_set()
                self._reload.clear()
                transitions += self._maybe_reload(forced, now)
            if mono >= next_hosts:
                next_hosts = mono + 5.0
                self._refresh_hosts()
            entries: list[FeedEntry] = []
            ticked = mono >= next_tick
            if ticked:
                next_tick = mono + self._tick
                transitions += self.engine.tick(now)
            if self._unapplied:
                transitions = self._unapplied + transitions
                self._unapplied = []
            try:
                if transitions:
                    entries += self.manager.apply(transitions, now)
                if ticked:
                    entries += self.manager.tick(now)
            except Exception:
                # The alert store failed (locked past its timeout, disk full): an apply is
                # all-or-nothing, so the transitions are kept and applied again next pass.
                log.exception("alert manager failed to apply %d transitions; retrying", len(transitions))
                self._telemetry.inc("warden_collector_alert_store_errors_total")
                self._unapplied = transitions[-self._max_unapplied:]
                if len(transitions) > self._max_unapplied:
                    self._telemetry.inc("warden_collector_alert_transitions_dropped_total",
                                        len(transitions) - self._max_unapplied)
                time.sleep(0.2)
            if entries:
                self._telemetry.inc("warden_collector_alert_feed_entries_total", len(entries))
                self.feed.publish_threadsafe(entries[-1].position)
            if self.engine.errors != self.status.rule_errors:
                self.status.rule_errors = dict(self.engine.errors)
                for rid, n in self.status.rule_errors.items():
                    self._telemetry.set("warden_collector_rule_errors_total", n, rule=rid)
            if mono >= next_snapshot:
                next_snapshot = mono + self._snapshot_every
                try:
                    self.manager.save_engine_state(self.engine.snapshot())
                except Exception:
                    log.exception("could not save the rules engine state")

    def _refresh_hosts(self) -> None:
        try:
            for h in self._hosts():
                if not h.revoked:
                    self.engine.upsert_host(h.host_id, h.labels, h.last_seen_ns)
        except Exception:
            log.exception("could not read hosts for the rules")

    def _signature(self) -> tuple[Any, ...]:
        try:
            return tuple((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in rule_files(self.rules_dir))
        except (RuleErrors, OSError):
            return ()

    def _maybe_reload(self, forced: bool, now: int) -> list[Any]:
        sig = self._signature()
        if not forced and sig == self._files_sig:
            return []
        self._files_sig = sig
        try:
            ruleset = load_rules(self.rules_dir)
        except RuleErrors as exc:
            self._failed_load(exc, now)
            return []
        except Exception as exc:  # a loader bug must not take the rules thread down with it
            log.exception("rules reload crashed")
            self._failed_load(RuleErrors([RuleError(f"the loader failed: {type(exc).__name__}: {exc}",
                                                    str(self.rules_dir))]), now)
            return []
        if ruleset.digest == self.engine.ruleset.digest and not forced:
            return []
        out = self.engine.replace_rules(ruleset, now)
        self._loaded(ruleset, now)
        self._telemetry.inc("warden_collector_rules_reloads_total", result="ok")
        log.info("rules reloaded: %d rules from %d files", len(ruleset.rules), len(ruleset.files))
        return out

    def _failed_load(self, exc: RuleErrors, now: int) -> None:
        self.status.last_reload_ok = False
        self.status.last_error = str(exc)
        self.status.last_reload_ns = now
        self._telemetry.inc("warden_collector_rules_reloads_total", result="error")
        log.error("rules in %s do not load; the last good rules (%d) stay in force:\n%s",
                  self.rules_dir, self.status.loaded, exc)

    def _loaded(self, ruleset: RuleSet, now: int) -> None:
        self.status.loaded = len(ruleset.rules)
        self.status.files = len(ruleset.files)
        self.status.last_reload_ns = now
        self.status.last_reload_ok = True
        self.status.last_error = ""
