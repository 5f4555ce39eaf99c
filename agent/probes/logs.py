"""Probe `logs`: log files, the systemd journal and wtmp/btmp, every line exactly once.

Each run reads what was appended since the last one (up to `max_lines_per_run`) and turns
every line into one event (`warden.agent.logparse.LineParser`, one parser per source).

Exactly once. The read position of every source is the probe's checkpoint (`checkpoint()`),
which the scheduler stores in the spool in the same transaction as the run's records; after a
crash `restore()` gets the position that matches the last records stored, so nothing is lost
and nothing is sent twice. Positions are never written anywhere else.

Sources:
- files by path or glob (`paths`, minus `exclude`), followed across rotations by `_tail`
  (rename-and-create, copytruncate, deletion, replacement under the same name);
- the journal, through `journalctl -o json --follow` resuming at the saved cursor (`_journal`);
- wtmp and btmp, read as fixed-size binary records (`_utmp`) by the same follower.

Explicit paths are stat'ed every run (two syscalls per file, cheaper than an inotify event per
write at hundreds of lines a second); glob patterns are expanded again when watchdog reports a
file created, moved or deleted in their directory, and every `poll_interval_seconds` anyway.
"""

from __future__ import annotations

import fnmatch
import glob
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path
from typing import Any

from warden.agent import records
from warden.agent.logparse import LineParser
from warden.agent.probes import HostPaths, _tail, _utmp, option, probe
from warden.agent.probes._journal import Journal, find_journalctl, journal_present
from warden.v1 import records_pb2

__all__ = ["LogsOptions", "LogsProbe"]

log = logging.getLogger(__name__)

SOURCE = "probe:logs"
JOURNAL_SOURCE = "journal"
KiB, MiB = 1024, 1024 * 1024
_CHECKPOINT_VERSION = 1
_GLOB_CHARS = frozenset("*?[")
# Files a syslog daemon writes: when one is followed, the journal's content already arrives
# through it, and journal = "auto" does not read the journal a second time.
_SYSLOG_NAMES = frozenset({"syslog", "messages", "auth.log", "secure"})
# Collector limits (collector/translate.py defaults) a record must fit, or its whole batch
# is refused: event field values and the clock skew allowed into the future.
_MAX_FIELD_BYTES = 1024
_LINE, _FLAGS = itemgetter(0), itemgetter(1)  # of a follower's frame
_MAX_FUTURE_NS = 3000 * 10**9

DEFAULT_PATHS = ("/var/log/auth.log", "/var/log/secure", "/var/log/syslog", "/var/log/messages",
                 "/var/log/kern.log")
DEFAULT_EXCLUDE = ("*.gz", "*.xz", "*.bz2", "*.zst", "*.lz4", "*.zip", "*.[0-9]", "*.[0-9][0-9]",
                   "*-[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]", "*.old", "*.bak")

# Follower counts -> (metric, kind label or None)
_COUNT_METRICS = {
    "rename": ("logs_rotations_total", "rename"),
    "copytruncate": ("logs_rotations_total", "copytruncate"),
    "truncate": ("logs_rotations_total", "truncate"),
    "deleted": ("logs_rotations_total", "deleted"),
    "lost": ("logs_source_errors_total", None),
    "partial_record_dropped": ("logs_truncated_lines_total", None),
}


@dataclass(frozen=True)
class LogsOptions:
    paths: tuple[str, ...] = option(
        DEFAULT_PATHS,
        "Log files to follow: absolute paths or globs. Missing ones are fine (reported once).",
    )
    exclude: tuple[str, ...] = option(
        DEFAULT_EXCLUDE,
        "Never follow files matching these (file name, or whole path if the pattern has a /): "
        "compressed and rotated copies.",
    )
    journal: str = option(
        "auto",
        'Read the systemd journal: "on", "off", or "auto" (when journalctl and a journal exist '
        "and no syslog file such as /var/log/syslog or auth.log is followed).",
    )
    wtmp: str = option("/var/log/wtmp", 'Login history (binary utmp): logins, logouts, boots; "" for none.')
    btmp: str = option("/var/log/btmp", 'Failed logins (binary utmp); "" for none.')
    start_at: str = option(
        "end",
        'Where to start in files found on the very first run: "end" (only new lines) or '
        '"beginning". Files appearing later (a rotation\'s new file) are always read whole.',
    )
    max_lines_per_run: int = option(
        20000, "Most lines (all sources together) read per run; the rest waits in the files.", ge=1
    )
    max_line_bytes: int = option(
        1 * MiB, "Longer lines are cut to this many bytes and counted as truncated.", ge=256
    )
    max_raw_bytes: int = option(
        16 * KiB, "Longest raw text sent with an event; keep at or below the collector's max_raw_bytes.",
        ge=256,
    )
    partial_line_timeout_seconds: float = option(
        5.0, "A last line without its newline is held this long for the writer to finish it.", ge=0
    )
    rotate_wait_seconds: float = option(
        30.0, "Keep reading a rotated or deleted file until it has been idle this long.", ge=0
    )
    poll_interval_seconds: float = option(
        5.0, "Expand glob patterns again at least this often (besides watchdog notifications).", gt=0
    )
    metrics_interval_seconds: float = option(60.0, "Report the logs_* counters this often.", gt=0)


@dataclass
class _Source:
    name: str  # the host path ("/var/log/auth.log"): event source and metric label
    follower: _tail.Follower
    parser: Any  # LineParser, or None for wtmp/btmp
    explicit: bool  # configured by name (kept while missing) rather than matched by a glob
    failed_logins: bool = False  # btmp


def _is_glob(pattern: str) -> bool:
    return any(c in _GLOB_CHARS for c in pattern)


@probe("logs", default_interval_seconds=1, config=LogsOptions)
class LogsProbe:
    """Log files, the systemd journal and wtmp/btmp logins: every line once, across rotations and restarts."""

    def __init__(
        self,
        options: LogsOptions,
        paths: HostPaths,
        state_dir: Path | None = None,  # unused: positions live in the spool's checkpoint
        *,
        journalctl: str | None = None,  # path of journalctl; default: looked up on PATH
        parser_factory: Callable[[str], Any] = LineParser,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.options = options
        self.paths = paths
        self._journalctl = journalctl
        self._parser_factory = parser_factory
        self._clock = clock
        self._root = str(paths.rootfs).rstrip("/")  # "" when the host is "/"
        self._sources: dict[str, _Source] = {}
        self._journal: Journal | None = None
        self._journal_parser: Any = None
        self._restored: dict[str, Any] | None = None
        self._set_up = False
        self._counters: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        self._reported: dict[str, str] = {}  # source -> last problem reported (reported once)
        self._last_glob = float("-inf")
        self._last_metrics = float("-inf")
        self._last_checkpoint: bytes | None = None
        self._rescan = threading.Event()  # set by watchdog's thread
        self._observer: Any = None
        self._watched: set[str] = set()
        self.backpressure: Callable[[], bool] | None = None
        self._early: list[str] = []  # problems found outside collect(), reported by the next one

    # --- lifecycle ------------------------------------------------------------------------------

    def validate(self) -> None:
        o = self.options
        if o.journal not in ("auto", "on", "off"):
            raise ValueError(f'journal must be "auto", "on" or "off", got {o.journal!r}')
        if o.start_at not in ("end", "beginning"):
            raise ValueError(f'start_at must be "end" or "beginning", got {o.start_at!r}')
        for p in (*o.paths, *(x for x in (o.wtmp, o.btmp) if x)):
            if not p.startswith("/"):
                raise ValueError(f"log path {p!r} is not absolute")

    def set_backpressure(self, pressed: Callable[[], bool]) -> None:
        """While `pressed()` is true (e.g. the spool is nearly full), read nothing: the lines
        wait in their files instead of pushing older records out of the spool."""
        self.backpressure = pressed

    def start(self) -> None:
        if not any(_is_glob(p) for p in self.options.paths):
            return  # explicit paths are stat'ed every run; nothing to watch
        try:
            from watchdog.observers import Observer  # imported here: explicit paths never pay for it

            observer = Observer()
            observer.daemon = True
            observer.start()
        except Exception as e:  # no inotify left, or no watchdog: polling alone still works
            self._early.append(f"watchdog unavailable, polling globs every "
                               f"{self.options.poll_interval_seconds:g}s: {e}")
            return
        self._observer = observer
        self._schedule_watches()

    def stop(self) -> None:
        observer, self._observer = self._observer, None
        if observer is not None:
            observer.stop()
            observer.join(timeout=5)
        self._watched.clear()
        for s in self._sources.values():
            s.follower.close()
        self._sources.clear()
        if self._journal is not None:
            self._journal.close()
        self._set_up = False

    def _schedule_watches(self) -> None:
        if self._observer is None:
            return
        from watchdog.events import (
            DirCreatedEvent,
            DirMovedEvent,
            FileCreatedEvent,
            FileDeletedEvent,
            FileMovedEvent,
            FileSystemEventHandler,
        )

        rescan = self._rescan

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event: Any) -> None:
                rescan.set()

        for pattern in self.options.paths:
            if not _is_glob(pattern):
                continue
            root, recursive = _watch_root(self._host(pattern))
            if root in self._watched or not os.path.isdir(root):
                continue  # a directory missing now is tried again at the next glob expansion
            try:
                # Not modifications: growth is seen by the runs' fstat; an event per write would
                # cost more CPU than the reads themselves.
                self._observer.schedule(Handler(), root, recursive=recursive, event_filter=[
                    FileCreatedEvent, FileMovedEvent, FileDeletedEvent, DirCreatedEvent, DirMovedEvent])
            except OSError as e:
                self._early.append(f"cannot watch {root}: {e.strerror or e}; polling it")
                continue
            self._watched.add(root)

    # --- checkpoint -----------------------------------------------------------------------------

    def restore(self, state: bytes | None) -> None:
        """Positions saved with the last records stored; None on the very first run."""
        self._restored = None
        if state is None:
            return
        try:
            cp = json.loads(state)
            if not isinstance(cp, dict) or cp.get("v") != _CHECKPOINT_VERSION:
                raise ValueError(f"version {cp.get('v') if isinstance(cp, dict) else '?'}")
        except ValueError as e:
            # Unreadable: start as on a first run (new lines only) rather than resend everything.
            self._early.append(f"checkpoint unreadable ({e}); starting as on a first run (start_at)")
            return
        self._restored = cp
        for name, labels, value in cp.get("counters", []):
            key = (str(name), tuple(sorted((str(k), str(v)) for k, v in labels.items())))
            self._counters[key] = float(value)

    def checkpoint(self) -> bytes | None:
        """Every source's position after the lines returned by the last collect(); None if unchanged."""
        if not self._set_up:
            return None
        cp: dict[str, Any] = {
            "v": _CHECKPOINT_VERSION,
            "globs": sorted(self._known_patterns()),
            "files": {name: st for name, s in self._sources.items() if (st := s.follower.state())},
            "journal": self._journal.cursor if self._journal is not None else
            (self._restored or {}).get("journal"),
            "counters": [[n, dict(labels), v] for (n, labels), v in sorted(self._counters.items())],
        }
        blob = json.dumps(cp, separators=(",", ":"), sort_keys=True).encode()
        if blob == self._last_checkpoint:
            return None
        self._last_checkpoint = blob
        return blob

    def _known_patterns(self) -> set[str]:
        o = self.options
        return {*o.paths, *(p for p in (o.wtmp, o.btmp) if p)}

    # --- collect --------------------------------------------------------------------------------

    def collect(self) -> list[records_pb2.Record]:
        return [records_pb2.Record.FromString(r) if r.__class__ is bytes else r  # type: ignore[arg-type]
                for r in self.collect_serialized()]

    def collect_serialized(self) -> list[records_pb2.Record | bytes]:
        """collect() with the lines' events already serialized (bytes of a `warden.v1.Record`),
        as the parser makes them: the scheduler spools them as they are."""
        now = self._clock()
        t = records.now_ns()
        out: list[Any] = []
        while self._early:
            self._report(SOURCE, self._early.pop(0), t, out)
        if not self._set_up:
            self._setup(now, t, out)
        elif self._rescan.is_set() or now - self._last_glob >= self.options.poll_interval_seconds:
            self._discover(now, t, out, initial=False)
        if self.backpressure is not None and self.backpressure():
            # Nothing read, nothing checked: the open descriptors keep rotated files readable.
            self._count("logs_paused_runs_total", {}, 1)
        else:
            for s in list(self._sources.values()):
                try:
                    s.follower.check(now)
                except OSError as e:
                    s.follower.errors.append(f"{s.name}: {e}")
            self._read_files(now, t, out)
            self._read_journal(now, t, out)
        for s in list(self._sources.values()):
            for err in s.follower.take_errors():
                self._report(s.name, err, t, out)
            if s.follower.idle and not s.explicit:
                s.follower.close()
                del self._sources[s.name]
        if self._journal is not None:
            for err in self._journal.take_errors():
                self._report(JOURNAL_SOURCE, err, t, out)
        if now - self._last_metrics >= self.options.metrics_interval_seconds:
            self._last_metrics = now
            out.extend(self._metrics(t))
        return out

    def _setup(self, now: float, t: int, out: list[records_pb2.Record]) -> None:
        cp = self._restored
        self._discover(now, t, out, initial=True)
        # Sources of the checkpoint no longer at their path (rotated away, not yet recreated).
        if cp is not None:
            for name, entries in cp.get("files", {}).items():
                if name not in self._sources and self._wanted(name):
                    self._add(name, entries, now, explicit=False)
        o = self.options
        for path, failed in ((o.wtmp, False), (o.btmp, True)):
            if path and path not in self._sources:
                self._add(path, self._entries(path), now, explicit=True, record_size=_utmp.RECORD_SIZE,
                          failed_logins=failed)
        self._setup_journal(t, out)
        self._set_up = True

    def _entries(self, name: str) -> list[dict[str, Any]] | None:
        return (self._restored or {}).get("files", {}).get(name)

    def _wanted(self, name: str) -> bool:
        if self._excluded(name):
            return False
        return any(p == name or (_is_glob(p) and fnmatch.fnmatchcase(name, p)) for p in self.options.paths)

    def _excluded(self, name: str) -> bool:
        base = name.rsplit("/", 1)[-1]
        o = self.options
        if name in (o.wtmp, o.btmp):
            return True
        return any(fnmatch.fnmatchcase(name if "/" in pat else base, pat) for pat in o.exclude)

    def _discover(self, now: float, t: int, out: list[records_pb2.Record], initial: bool) -> None:
        """Follow every file the patterns match now (explicit paths even while missing)."""
        self._rescan.clear()
        self._last_glob = now
        if self._observer is not None:
            self._schedule_watches()
        known = set((self._restored or {}).get("globs", []))
        for pattern in self.options.paths:
            if not _is_glob(pattern):
                names = [pattern]
            else:
                names = sorted(self._shown(p) for p in glob.glob(self._host(pattern)))
                names = [n for n in names if not self._excluded(n) and os.path.isfile(self._host(n))]
            if initial and not any(os.path.exists(self._host(n)) for n in names):
                self._report(pattern, "no such file", t, out, severity="info", kind="logs.source_missing")
            for name in names:
                if name in self._sources:
                    continue
                entries = self._entries(name) if initial else None
                # Without a position: on the very first run (no checkpoint), or for a pattern
                # added to the configuration since, start_at applies; any other file is new
                # since we last looked (a rotation's fresh file) and is read whole.
                fresh = initial and (self._restored is None or pattern not in known)
                self._add(name, entries, now, explicit=not _is_glob(pattern),
                          from_end=fresh and self.options.start_at == "end")

    def _add(self, name: str, entries: list[dict[str, Any]] | None, now: float, *, explicit: bool,
             from_end: bool | None = None, record_size: int | None = None,
             failed_logins: bool = False) -> None:
        o = self.options

        def count(kind: str, n: int) -> None:
            metric, label = _COUNT_METRICS.get(kind, ("logs_source_errors_total", None))
            self._count(metric, {"source": name, **({"kind": label} if label else {})}, n)

        f = _tail.Follower(Path(self._host(name)), count=count, max_line=o.max_line_bytes,
                           record_size=record_size, partial_timeout=o.partial_line_timeout_seconds,
                           rotate_wait=o.rotate_wait_seconds)
        if entries:
            f.restore(entries)
        else:
            if from_end is None:  # wtmp/btmp: as files found on the first run
                from_end = (self._restored is None or name not in self._restored.get("globs", [])) \
                    and o.start_at == "end"
            f.start(from_end)
        parser = None if record_size else self._parser_factory(name)
        self._sources[name] = _Source(name, f, parser, explicit, failed_logins)

    def _setup_journal(self, t: int, out: list[records_pb2.Record]) -> None:
        mode = self.options.journal
        if mode == "off":
            return
        exe = self._journalctl or find_journalctl()
        if mode == "auto":
            syslog = sorted(n for n, s in self._sources.items()
                            if s.follower.current is not None and n.rsplit("/", 1)[-1] in _SYSLOG_NAMES)
            why = ("journalctl not found" if exe is None else
                   f"read through {syslog[0]} instead" if syslog else
                   "no journal files" if not journal_present(self.paths.rootfs) else "")
            if why:
                self._report(JOURNAL_SOURCE, f"journal not read: {why}", t, out, severity="info",
                             kind="logs.source_missing")
                return
        elif exe is None:
            self._report(JOURNAL_SOURCE, "journalctl not found", t, out)
            return
        assert exe is not None
        cp = self._restored or {}
        # Without a cursor (first run, or the journal newly enabled) start_at applies; a
        # cursor is taken at once, so from then on nothing is skipped even if no entry comes.
        self._journal = Journal(exe, rootfs=self.paths.rootfs,
                                from_start=self.options.start_at == "beginning")
        self._journal.restore(cp.get("journal"))
        self._journal_parser = self._parser_factory(JOURNAL_SOURCE)

    # --- reading --------------------------------------------------------------------------------

    def _read_files(self, now: float, t: int, out: list[records_pb2.Record]) -> None:
        budget = self.options.max_lines_per_run
        active = list(self._sources.values())
        # Fair shares, so one flooded file cannot starve the others; what a quiet source
        # leaves over goes to the busy ones in the next pass.
        while budget > 0 and active:
            share = max(1, budget // len(active))
            still = []
            for s in active:
                try:
                    frames = s.follower.read(min(share, budget), now)
                    budget -= len(frames)
                    self._emit(s, frames, t, out)
                except Exception as e:  # a bug with one file must not stop the others
                    log.exception("logs: %s", s.name)
                    s.follower.errors.append(f"{type(e).__name__}: {e}")
                    continue
                if len(frames) >= share:
                    still.append(s)
            active = still
        if budget <= 0:
            self._count("logs_throttled_runs_total", {}, 1)

    def _emit(self, s: _Source, frames: list[_tail.Frame], t: int, out: list[Any]) -> None:
        if not frames:
            return
        labels = {"source": s.name}
        if s.parser is None:
            self._emit_utmp(s, frames, t, out)
            return
        lines = truncated = partial = invalid = nul = 0
        data = list(map(_LINE, frames))
        nbytes = sum(map(len, data)) + len(data)
        if any(map(_FLAGS, frames)):
            for _, flags in frames:
                truncated += bool(flags & _tail.TRUNCATED)
                partial += bool(flags & _tail.PARTIAL)
        encode = getattr(s.parser, "encode", None)
        parse = s.parser.parse
        fit = (self.options.max_raw_bytes, t, t + _MAX_FUTURE_NS)
        append = out.append
        for line in data:
            if b"\0" in line:
                nul += 1
                # A run of NULs heads a line when a writer without O_APPEND kept its offset
                # across a copytruncate (a sparse hole): the text after it is the real line.
                line = line.lstrip(b"\0")
            if line.endswith(b"\r"):
                line = line[:-1]
            if not line:
                continue
            if not line.isascii():
                try:
                    line.decode()
                except UnicodeDecodeError:
                    invalid += 1
            if encode is not None:
                try:
                    append(encode(line, fit))
                except Exception as e:
                    append(self._fit(self._unparsed(e, line, s.name, t), t))
            else:
                append(self._fit(self._parse(parse, line, s.name, t), t))
            lines += 1
        self._count("logs_lines_total", labels, lines)
        self._count("logs_bytes_total", labels, nbytes)
        for name, n in (("logs_truncated_lines_total", truncated), ("logs_partial_lines_total", partial),
                        ("logs_invalid_utf8_total", invalid), ("logs_nul_lines_total", nul)):
            if n:
                self._count(name, labels, n)

    def _emit_utmp(self, s: _Source, frames: list[_tail.Frame], t: int,
                   out: list[records_pb2.Record]) -> None:
        events = 0
        for rec, _ in frames:
            ev = _utmp.to_event(_utmp.decode(rec), s.name, s.failed_logins, t)
            if ev is not None:
                out.append(self._fit(ev, t))
                events += 1
        labels = {"source": s.name}
        self._count("logs_lines_total", labels, events)
        self._count("logs_bytes_total", labels, len(frames) * _utmp.RECORD_SIZE)

    def _read_journal(self, now: float, t: int, out: list[records_pb2.Record]) -> None:
        j = self._journal
        if j is None:
            return
        budget = max(1, self.options.max_lines_per_run // 4)
        entries = j.read(budget, now)
        for line in j.stderr_lines():
            self._report(JOURNAL_SOURCE, f"journalctl: {line}", t, out)
        if not entries:
            return
        encode = getattr(self._journal_parser, "encode_journal", None)
        parse = self._journal_parser.parse_journal
        fit = (self.options.max_raw_bytes, t, t + _MAX_FUTURE_NS)
        for entry in entries:
            if encode is not None:
                try:
                    out.append(encode(entry, fit))
                except Exception as e:
                    out.append(self._fit(self._unparsed(e, entry, JOURNAL_SOURCE, t), t))
            else:
                out.append(self._fit(self._parse(parse, entry, JOURNAL_SOURCE, t), t))
        labels = {"source": JOURNAL_SOURCE}
        self._count("logs_lines_total", labels, len(entries))
        if j.invalid_lines:
            self._count("logs_invalid_lines_total", labels, j.invalid_lines)
            j.invalid_lines = 0

    def _parse(self, parse: Callable[[Any], records_pb2.Record], item: Any, source: str,
               t: int) -> records_pb2.Record:
        try:
            rec = parse(item)
            if rec.WhichOneof("kind") == "event":
                return rec
            raise TypeError(f"parser returned a {rec.WhichOneof('kind')} record")
        except Exception as e:
            return self._unparsed(e, item, source, t)

    def _unparsed(self, e: Exception, item: Any, source: str, t: int) -> records_pb2.Record:
        """A parser bug must not lose the line: send it unparsed, and count it."""
        self._count("logs_parse_errors_total", {"source": source}, 1)
        log.debug("%s: parse failed: %s", source, e)
        raw = item.decode("utf-8", "replace") if isinstance(item, bytes) else str(item.get("MESSAGE", ""))
        return records.event("log.line", "info", raw=raw, source=source, time_ns=t)

    def _fit(self, rec: records_pb2.Record, t: int) -> records_pb2.Record:
        """Keep an event within the collector's limits, whatever the parser did: an oversized raw
        text or an impossible time would make it refuse the whole batch (hundreds of records).
        (LineParser already cuts fields and raw to the collector's defaults; this is O(1).)"""
        ev = rec.event
        limit = self.options.max_raw_bytes
        if len(ev.raw) > limit // 4 and len(raw := ev.raw.encode()) > limit:
            ev.raw = raw[:limit].decode("utf-8", "ignore")
            ev.fields["truncated"].bool_value = True
        if not 0 < ev.time_unix_nano <= t + _MAX_FUTURE_NS:
            ev.time_unix_nano = t
        return rec

    # --- reporting ------------------------------------------------------------------------------

    def _count(self, name: str, labels: dict[str, str], n: float) -> None:
        if n:
            key = (name, tuple(sorted(labels.items())))
            self._counters[key] = self._counters.get(key, 0.0) + n

    def _metrics(self, t: int) -> list[records_pb2.Record]:
        out = [records.metric(name, value, dict(labels), t)
               for (name, labels), value in self._counters.items()]
        files = sum((s.follower.current is not None) + len(s.follower.drains) for s in self._sources.values())
        out.append(records.metric("logs_files_open", files, time_ns=t))
        return out

    def _report(self, source: str, error: str, t: int, out: list[records_pb2.Record],
                severity: str = "warning", kind: str = "logs.source_error") -> None:
        """A problem with one source, once (again only when the text changes)."""
        if self._reported.get(source) == error:
            return
        self._reported[source] = error
        if kind == "logs.source_error":
            self._count("logs_source_errors_total", {"source": source}, 1)
            log.warning("logs: %s: %s", source, error)
        out.append(records.event(kind, severity, {"source": source, "error": error[:_MAX_FIELD_BYTES // 2]},
                                 source=SOURCE, time_ns=t))

    # --- paths ----------------------------------------------------------------------------------

    def _host(self, path: str) -> str:
        """A host path as seen from this process (under `rootfs`)."""
        return self._root + path

    def _shown(self, path: str) -> str:
        """The host path of a file found under `rootfs`."""
        return path[len(self._root):] if self._root and path.startswith(self._root) else path


def _watch_root(pattern: str) -> tuple[str, bool]:
    """The deepest directory of a glob without wildcards, and whether the glob goes below it."""
    parts = pattern.split("/")
    fixed: list[str] = []
    for p in parts[:-1]:
        if any(c in _GLOB_CHARS for c in p):
            return "/".join(fixed) or "/", True
        fixed.append(p)
    return "/".join(fixed) or "/", "**" in pattern

