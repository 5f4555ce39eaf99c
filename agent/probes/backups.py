"""Probe `backups`: are the configured backup sets fresh, whole, copied off-site and unaltered?

The department rule: daily backups, a copy kept off-site, backups never altered. Each set
(`[probes.backups.sets.<name>]`) takes its facts from one source:

- "files": backup files found by paths or globs. The newest few (`hash_newest`) are recorded
  with their sha256 in `state_dir`; a recorded file that changes afterwards is a critical
  `backup.modified` event. watchdog (inotify) notices changes as they happen, even ones that
  put the old mtime back; every run also re-checks size and mtime, so changes made while the
  agent was down are found after a restart, and unchanged files are never hashed twice.
- "restic" / "borg": `restic snapshots --json` / `borg list --json`, run with a timeout and
  bounded output, parsed by `_restic` / `_borg`.

A set that cannot be checked (tool missing, permission denied, garbled output) reports that in
its inventory entry and as one `backup.check_failed` event; the other sets go on.
"""

from __future__ import annotations

import contextlib
import fnmatch
import glob
import hashlib
import heapq
import json
import logging
import os
import re
import shlex
import stat
import threading
import time
import types
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from warden.agent import records
from warden.agent.probes import HostPaths, _borg, _restic, option, probe
from warden.agent.probes._tools import run_process
from warden.v1 import records_pb2

log = logging.getLogger(__name__)

__all__ = [
    "BackupSetOptions",
    "BackupsOptions",
    "BackupsProbe",
    "ToolError",
    "parse_duration",
    "parse_size",
    "run_tool",
]

SOURCE = "probe:backups"
KiB, MiB, GiB = 1024, 1024**2, 1024**3
SOURCES = ("files", "restic", "borg")
_CHUNK = 1 * MiB  # sha256 reads: large files are streamed, never loaded whole
_STDERR_KEEP = 64 * KiB


# --- option values ------------------------------------------------------------------------------

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])", re.IGNORECASE)
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([KMGT]?)(i?B?)", re.IGNORECASE)


def parse_duration(text: str) -> float:
    """Seconds in "26h", "90m", "1d12h", "3600s" or a plain number of seconds."""
    s = text.strip().replace(" ", "")
    try:
        return float(s)
    except ValueError:
        pass
    if not s or _DURATION_PART.sub("", s):
        raise ValueError(f"{text!r} is not a duration (e.g. 26h, 90m, 1d12h)")
    return sum(float(n) * _DURATION_UNITS[u.lower()] for n, u in _DURATION_PART.findall(s))


def parse_size(text: str) -> int:
    """Bytes in "500", "10M"/"10MiB" (powers of 1024) or "10MB" (powers of 1000)."""
    m = _SIZE.fullmatch(text.strip())
    if m is None:
        raise ValueError(f"{text!r} is not a size (e.g. 0, 500K, 10MiB, 2GB)")
    number, prefix, suffix = m.groups()
    power = " KMGT".index(prefix.upper()) if prefix else 0
    if power and suffix.upper() == "B":  # "MB": SI units
        return int(float(number) * 1000**power)
    if suffix.lower() == "i":  # "Mi" without B
        raise ValueError(f"{text!r} is not a size (e.g. 0, 500K, 10MiB, 2GB)")
    return int(float(number) * 1024**power)


# --- options ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BackupSetOptions:
    """One backup set: [probes.backups.sets.<name>]."""

    source: str = option("files", "Where the facts come from: files, restic or borg.")
    paths: tuple[str, ...] = option(
        (), "Backup files (files source): absolute paths or globs; a directory means the files in it."
    )
    max_age: str = option("26h", "The newest backup is stale when older than this (s, m, h, d, w).")
    min_size: str = option("1", "The newest backup is too small below this (e.g. 0, 500K, 10MiB, 2GB).")
    expected_count: int = option(0, "Backups that should be kept; fewer is reported (0: not checked).", ge=0)
    retention: str = option(
        "", "How long a backup must be kept: deleting a younger one is a warning (empty: unknown)."
    )
    offsite_path: Path | None = option(
        None, "Directory (e.g. a mounted share) that must hold a copy of the newest backup (files source)."
    )
    manifest: str = option(
        "", "sha256sum-format manifest file or glob listing the backups' digests (files source)."
    )
    repository: str = option("", "restic or borg repository (empty: RESTIC_REPOSITORY or BORG_REPO).")
    password_file: Path | None = option(None, "File holding the restic or borg repository password.")
    password_env: str = option(
        "", "Name of an environment variable of the agent holding the restic or borg password."
    )
    extra_args: tuple[str, ...] = option(
        (), 'More arguments for restic snapshots or borg list, e.g. ["--host", "db1"].'
    )

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"source {self.source!r} is not one of {', '.join(SOURCES)}")
        parse_duration(self.max_age)
        parse_size(self.min_size)
        if self.retention:
            parse_duration(self.retention)
        if self.source == "files":
            if not self.paths:
                raise ValueError("a files set needs paths")
            for p in self.paths:
                if not p.startswith("/"):
                    raise ValueError(f"path {p!r} is not absolute")
            tool_keys = ("repository", "password_file", "password_env", "extra_args")
            if any(getattr(self, k) for k in tool_keys):
                raise ValueError(f"{', '.join(tool_keys)} are for restic and borg sets only")
        else:
            if self.paths or self.offsite_path or self.manifest:
                raise ValueError(f"paths, offsite_path and manifest are for files sets, not {self.source}")

    @property
    def max_age_seconds(self) -> float:
        return parse_duration(self.max_age)

    @property
    def min_size_bytes(self) -> int:
        return parse_size(self.min_size)

    @property
    def retention_seconds(self) -> float | None:
        return parse_duration(self.retention) if self.retention else None


@dataclass(frozen=True)
class BackupsOptions:
    sets: Mapping[str, BackupSetOptions] = field(
        default_factory=lambda: types.MappingProxyType({}),
        metadata={
            "doc": "Backup sets by name, one [probes.backups.sets.<name>] table each (none by default)."
        },
    )
    shrink_ratio: float = option(
        0.5, "The newest backup is too small below this fraction of the median of the previous ones.", ge=0
    )
    size_history: int = option(7, "How many previous backups the median size is taken over.", ge=1)
    hash_newest: int = option(
        3, "The newest files per set whose sha256 is recorded and watched for changes.", ge=1
    )
    digest_max_bytes: int = option(
        16 * GiB, "Files larger than this are not hashed (their changes go unnoticed).", gt=0
    )
    offsite_hash_max_bytes: int = option(
        1 * GiB, "Off-site copies up to this size are compared by sha256; larger ones by size only.", ge=0
    )
    reverify_interval_seconds: float = option(
        86400.0, "Re-hash recorded files this often even when size and mtime are unchanged (0: never).", ge=0
    )
    settle_seconds: float = option(
        120.0, "A new file modified more recently than this is still being written: not yet a backup.", ge=0
    )
    scan_limit: int = option(
        200_000, "Most files looked at per set and run; past it the set reports an error.", gt=0
    )
    watch: bool = option(True, "Watch recorded backups with inotify (watchdog) between runs.")
    restic_command: str = option("restic", "The restic executable.")
    borg_command: str = option("borg", "The borg executable.")
    tool_timeout_seconds: float = option(60.0, "Longest a restic or borg listing may take.", gt=0)
    tool_max_output_bytes: int = option(8 * MiB, "Largest restic or borg output read (8 MiB).", gt=0)
    inventory_interval_seconds: float = option(
        3600.0, "Resend the backups inventory this often even when unchanged.", gt=0
    )


# --- facts --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Backup:
    name: str  # a file's path (as on the host) or a snapshot / archive id
    time: float  # Unix seconds: a file's mtime, a snapshot's time
    size: int | None  # None: the source does not say
    mtime_ns: int = 0  # files only


@dataclass
class _Facts:
    backups: list[_Backup] = field(default_factory=list)  # newest first, at most the few needed
    count: int = 0
    error: str = ""  # the set could not be checked: no verdicts from it
    note: str = ""  # checked, but worth saying (e.g. a path that does not exist)


class ToolError(Exception):
    """restic or borg could not give its listing; the message is the set's status."""


# --- running restic / borg ----------------------------------------------------------------------


def run_tool(
    argv: Sequence[str], env: Mapping[str, str], timeout: float, max_bytes: int
) -> tuple[int, bytes, bytes]:
    """Run `argv` with no stdin; (exit status, stdout, stderr's first 64 KiB).

    ToolError when it cannot start, outlives `timeout` or prints more than `max_bytes`: then it
    is killed with its whole process group (borg's ssh too), so nothing is left running.
    """
    name = os.path.basename(argv[0])
    try:
        res = run_process(argv, env=env, timeout=timeout, max_bytes=max_bytes, max_stderr=_STDERR_KEEP)
    except FileNotFoundError:
        raise ToolError(f"{name} not installed ({argv[0]} not found)") from None
    except PermissionError:
        raise ToolError(f"{name}: permission denied running {argv[0]}") from None
    except OSError as e:
        raise ToolError(f"{name}: cannot run {argv[0]}: {e.strerror}") from None
    if res.timed_out:
        raise ToolError(f"{name} timed out after {timeout:g}s")
    if res.overflowed:
        raise ToolError(f"{name} printed more than {max_bytes} bytes; output not read")
    assert res.returncode is not None  # neither timed out nor killed: it exited
    return res.returncode, res.stdout, res.stderr


def _stderr_line(err: bytes) -> str:
    """The line of a tool's stderr that says what went wrong (restic: "Fatal: ...")."""
    lines = [ln.strip() for ln in err.decode("utf-8", "replace").splitlines() if ln.strip()]
    fatal = [ln for ln in lines if ln.startswith("Fatal:")]
    text = (fatal or lines or [""])[0]
    return text[:300]


# --- files --------------------------------------------------------------------------------------


def sha256_file(path: str, opener: Callable[[str], Any] | None = None) -> str:
    h = hashlib.sha256()
    with (opener or _open_rb)(path) as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _open_rb(path: str) -> Any:
    return open(path, "rb")  # noqa: SIM115 (a context manager at the call site)


def _watch_root(pattern: str) -> tuple[str, bool]:
    """The directory to watch for a path or glob, and whether recursively."""
    parts = pattern.split("/")
    for i, part in enumerate(parts):
        if glob.has_magic(part):
            base = "/".join(parts[:i]) or "/"
            # A wildcard above the last component ("/srv/*/db.tar", "**") spans subdirectories.
            return base, i < len(parts) - 1 or "**" in part
    return pattern, False


_MANIFEST_GNU = re.compile(r"\\?([0-9a-fA-F]{64}) [ *](.+)")
_MANIFEST_BSD = re.compile(r"\\?SHA256 \((.+)\) = ([0-9a-fA-F]{64})")
_MANIFEST_LINE_MAX = 8 * KiB


def _manifest_entries(lines: Iterator[str]) -> Iterator[tuple[str, str]]:
    """(name, sha256) of each line in `sha256sum` or `sha256sum --tag` (BSD) format."""
    for line in lines:
        if len(line) > _MANIFEST_LINE_MAX:
            continue
        text = line.rstrip("\r\n")
        if m := _MANIFEST_GNU.fullmatch(text):
            digest, name = m.groups()
        elif m := _MANIFEST_BSD.fullmatch(text):
            name, digest = m.groups()
        else:
            continue
        if text.startswith("\\"):  # sha256sum escapes names holding \ or newline
            name = name.replace("\\\\", "\0").replace("\\n", "\n").replace("\0", "\\")
        yield name, digest.lower()


# --- persistent state ---------------------------------------------------------------------------


class _Store:
    """Recorded digests and alert states, kept in `state_dir/backups.json` (written atomically)
    so a restart neither re-alerts nor re-hashes unchanged files."""

    VERSION = 1

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.files: dict[str, dict[str, Any]] = {}  # path -> set, size, mtime_ns, sha256, recorded, verified
        self.copies: dict[str, dict[str, Any]] = {}  # off-site copy path -> size, mtime_ns, sha256
        self.alerts: dict[str, dict[str, bool]] = {}  # set -> condition -> active
        self.errors: dict[str, str] = {}  # set -> error last reported
        self.dirty = False
        self.save_error: str | None = None
        self._load()

    def _load(self) -> None:
        if self.path is None:
            return
        try:
            doc = json.loads(self.path.read_text())
        except FileNotFoundError:
            return
        except (OSError, ValueError) as e:
            # Starting afresh costs one hash per recorded file and may repeat an alert: better
            # than refusing to run.
            log.warning("backups: ignoring unreadable state %s: %s", self.path, e)
            return
        if not isinstance(doc, dict) or doc.get("version") != self.VERSION:
            return
        # Keep only well-formed entries: a hand-edited or half-written file must not break a set.
        self.files = {p: r for p, r in _dict(doc.get("files")).items() if _is_record(r, "set")}
        self.copies = {p: r for p, r in _dict(doc.get("copies")).items() if _is_record(r)}
        self.alerts = {
            n: {c: a for c, a in _dict(conds).items() if isinstance(a, bool)}
            for n, conds in _dict(doc.get("alerts")).items()
        }
        self.errors = {n: e for n, e in _dict(doc.get("errors")).items() if isinstance(e, str)}

    def save(self) -> str | None:
        """Write the state if it changed; the error text when it could not be written."""
        if self.path is None or not self.dirty:
            return None
        doc = {
            "version": self.VERSION,
            "files": self.files,
            "copies": self.copies,
            "alerts": self.alerts,
            "errors": self.errors,
        }
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump(doc, f, separators=(",", ":"), sort_keys=True)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except OSError as e:
            return f"cannot write {self.path}: {e.strerror or e}"
        self.dirty = False
        return None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _is_record(r: Any, *str_keys: str) -> bool:
    """A stored digest: {size, mtime_ns, sha256} (+ `str_keys`) of the right types."""
    return (
        isinstance(r, dict)
        and all(isinstance(r.get(k), int) and not isinstance(r.get(k), bool) for k in ("size", "mtime_ns"))
        and isinstance(r.get("sha256"), str)
        and all(isinstance(r.get(k), str) for k in str_keys)
    )


# --- the probe ----------------------------------------------------------------------------------

# condition -> (event kind, severity while active)
_CONDITIONS = {
    "stale": ("backup.stale", "error"),
    "too_small": ("backup.shrunk", "warning"),
    "count_short": ("backup.count_short", "warning"),
    "offsite_missing": ("backup.offsite_missing", "error"),
    "verification_failed": ("backup.verification_failed", "error"),
}
# watchdog event types that may mean a recorded file's bytes changed.
_CHANGE_EVENTS = frozenset({"modified", "moved", "deleted", "created", "closed"})


@probe("backups", default_interval_seconds=300, config=BackupsOptions)
class BackupsProbe:
    """Backup sets: freshness, size, off-site copy, checksum manifest, and files altered after writing."""

    def __init__(
        self,
        options: BackupsOptions,
        paths: HostPaths,
        state_dir: Path | None = None,
        *,
        scandir: Callable[[str], Any] = os.scandir,
        opener: Callable[[str], Any] | None = None,
        run: Callable[[Sequence[str], Mapping[str, str], float, int], tuple[int, bytes, bytes]] = run_tool,
        environ: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.options = options
        self.paths = paths
        self._scandir = scandir  # injectable: tests simulate permission denied even as root
        self._opener = opener
        self._run = run
        self._environ = os.environ if environ is None else environ
        self._clock = clock
        self._root = str(paths.rootfs).rstrip("/")  # "" when the host is "/"
        self._store = _Store(Path(state_dir) / "backups.json" if state_dir is not None else None)
        self._lock = threading.Lock()
        self._touched: set[str] = set()  # recorded files watchdog saw change, until checked
        self._recorded: frozenset[str] = frozenset(self._store.files)
        self._observer: Any = None
        self._watched: set[str] = set()
        self._watch_errors: dict[str, str] = {}  # directory -> why it cannot be watched
        self._watch_reported: dict[str, str] = {}
        self._save_error_reported: str | None = None
        self._sent: tuple[bytes, float] | None = None

    # --- lifecycle ------------------------------------------------------------------------------

    def validate(self) -> None:
        for name, s in self.options.sets.items():
            if not name:
                raise ValueError("a backup set needs a non-empty name")
            if s.password_file and s.password_env:
                raise ValueError(f"set {name!r}: give password_file or password_env, not both")

    def start(self) -> None:
        if not self.options.watch or not any(s.source == "files" for s in self.options.sets.values()):
            return
        from watchdog.observers import Observer  # imported here: an agent without file sets never pays

        try:
            observer = Observer()
            observer.daemon = True
            observer.start()
        except OSError as e:  # e.g. no inotify instance left: the runs' own checks still work
            self._watch_errors["inotify"] = e.strerror or str(e)
            return
        self._observer = observer
        self._schedule_watches()

    def stop(self) -> None:
        observer, self._observer = self._observer, None
        if observer is not None:
            observer.stop()
            observer.join(timeout=5)
        self._watched.clear()

    def _schedule_watches(self) -> None:
        """Watch every files set's directories; one missing now is retried on the next run."""
        if self._observer is None:
            return
        from watchdog.events import FileSystemEventHandler

        probe_self = self

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event: Any) -> None:
                probe_self._notice(event)

        for s in self.options.sets.values():
            if s.source != "files":
                continue
            for pattern in s.paths:
                root, recursive = _watch_root(self._host(pattern))
                if os.path.isfile(root):
                    root = os.path.dirname(root)  # one backup file: watch its directory
                elif not os.path.isdir(root):
                    continue  # not there (yet): retried on the next run
                if root in self._watched:
                    continue
                try:
                    self._observer.schedule(Handler(), root, recursive=recursive)
                except OSError as e:  # missing directory, or the inotify watch limit reached
                    self._watch_errors[root] = e.strerror or str(e)
                    continue
                self._watched.add(root)
                self._watch_errors.pop(root, None)

    def _watch_error_events(self, t: int) -> list[records_pb2.Record]:
        """A directory that cannot be watched, once: changes there are then found by the runs only."""
        out = []
        for where, error in self._watch_errors.items():
            if self._watch_reported.get(where) != error:
                self._watch_reported[where] = error
                fields: dict[str, records.FieldValue] = {"path": self._shown(where), "error": error}
                out.append(records.event("backup.watch_error", "notice", fields, source=SOURCE, time_ns=t))
        return out

    def _notice(self, event: Any) -> None:
        """watchdog's thread: remember recorded files that may have changed; checked in collect()."""
        if event.is_directory or event.event_type not in _CHANGE_EVENTS:
            return
        recorded = self._recorded
        for p in (event.src_path, getattr(event, "dest_path", "")):
            p = os.fsdecode(p) if p else ""
            if p and p in recorded:
                with self._lock:
                    self._touched.add(p)

    # --- collect --------------------------------------------------------------------------------

    def collect(self) -> list[records_pb2.Record]:
        t = records.now_ns()
        now = self._clock()
        self._schedule_watches()
        out: list[records_pb2.Record] = self._watch_error_events(t)
        section = records_pb2.BackupsSection()
        for name, opts in self.options.sets.items():
            try:
                entry, recs = self._check_set(name, opts, now, t)
            except Exception as e:  # a bug or a surprise in one set must not hide the others
                log.exception("backups: set %s", name)
                entry = records_pb2.BackupSet(name=name, source=opts.source, error=f"{type(e).__name__}: {e}")
                recs = [records.metric("backup_check_ok", 0, {"set": name}, t)]
                recs.extend(self._error_event(name, entry.error, t))
            section.sets.append(entry)
            out.extend(recs)
        self._forget_unconfigured()
        with self._lock:
            self._recorded = frozenset(self._store.files)
            self._touched &= self._recorded  # notices about files no longer recorded are moot
        error = self._store.save()
        if error != self._save_error_reported:
            if error:
                log.warning("backups: %s", error)
                out.append(
                    records.event("backup.state_error", "warning", {"error": error}, source=SOURCE, time_ns=t)
                )
            self._save_error_reported = error
        out.extend(self._inventory(section, t))
        return out

    def _check_set(
        self, name: str, opts: BackupSetOptions, now: float, t: int
    ) -> tuple[records_pb2.BackupSet, list[records_pb2.Record]]:
        labels = {"set": name}
        entry = records_pb2.BackupSet(name=name, source=opts.source)
        out: list[records_pb2.Record] = []
        if opts.source == "files":
            facts = self._scan(name, opts, now)
            if not facts.error:
                out.extend(self._track(name, opts, facts, now, t))
        else:
            facts = self._tool_facts(opts)
        out.extend(self._error_event(name, facts.error, t))
        entry.error = facts.error or facts.note
        out.append(records.metric("backup_check_ok", 0 if facts.error else 1, labels, t))
        if facts.error:
            return entry, out  # unknown is not "stale": no verdicts, and alert states are kept

        conditions: dict[str, bool] = {}
        details: dict[str, dict[str, records.FieldValue]] = {}
        entry.count = facts.count
        out.append(records.metric("backup_count", facts.count, labels, t))
        newest = facts.backups[0] if facts.backups else None
        max_age = opts.max_age_seconds
        if newest is None:
            conditions["stale"] = True
            details["stale"] = {"reason": "no backup found", "max_age_seconds": max_age}
        else:
            age = max(0.0, now - newest.time)
            entry.newest = newest.name
            entry.newest_time_unix = int(newest.time)
            out.append(records.metric("backup_newest_age_seconds", age, labels, t))
            conditions["stale"] = age > max_age
            details["stale"] = {"newest": newest.name, "age_seconds": round(age), "max_age_seconds": max_age}
            if newest.size is not None:
                out.extend(self._size_verdict(opts, facts, newest, entry, conditions, details, labels, t))
        out.append(records.metric("backup_stale", 1 if conditions["stale"] else 0, labels, t))
        if opts.expected_count:
            conditions["count_short"] = facts.count < opts.expected_count
            details["count_short"] = {"count": facts.count, "expected_count": opts.expected_count}
            out.append(records.metric("backup_count_short", int(conditions["count_short"]), labels, t))
        if newest is not None and opts.offsite_path is not None:
            present, matches, where = self._offsite(opts.offsite_path, newest)
            entry.offsite_configured, entry.offsite_present, entry.offsite_matches = True, present, matches
            conditions["offsite_missing"] = not (present and matches)
            details["offsite_missing"] = {"newest": newest.name, "copy": where, "present": present}
            out.append(
                records.metric("backup_offsite_ok", 0 if conditions["offsite_missing"] else 1, labels, t)
            )
        elif opts.offsite_path is not None:
            entry.offsite_configured = True
        if opts.manifest:
            entry.verification = self._verify(opts.manifest, newest) if newest else "missing"
            conditions["verification_failed"] = entry.verification != "ok"
            details["verification_failed"] = {
                "newest": newest.name if newest else "",
                "result": entry.verification,
            }
            out.append(records.metric("backup_verified", int(entry.verification == "ok"), labels, t))
        else:
            entry.verification = "not_configured"
        out.extend(self._transitions(name, conditions, details, t))
        return entry, out

    def _size_verdict(
        self,
        opts: BackupSetOptions,
        facts: _Facts,
        newest: _Backup,
        entry: records_pb2.BackupSet,
        conditions: dict[str, bool],
        details: dict[str, dict[str, records.FieldValue]],
        labels: dict[str, str],
        t: int,
    ) -> list[records_pb2.Record]:
        assert newest.size is not None
        entry.newest_size_bytes = newest.size
        out = [records.metric("backup_newest_size_bytes", newest.size, labels, t)]
        previous = [b.size for b in facts.backups[1 : 1 + self.options.size_history] if b.size is not None]
        ratio = None
        if previous:
            # Imported here, not at module level: statistics pulls in decimal and fractions,
            # ~0.7 MB of the agent's resident memory for this one median.
            import statistics

            median = statistics.median(previous)
            entry.median_previous_size_bytes = int(median)
            if median > 0:
                ratio = newest.size / median
                out.append(records.metric("backup_size_ratio_to_median", ratio, labels, t))
        small = newest.size < opts.min_size_bytes or (ratio is not None and ratio < self.options.shrink_ratio)
        conditions["too_small"] = small
        details["too_small"] = {
            "newest": newest.name,
            "size_bytes": newest.size,
            "min_size_bytes": opts.min_size_bytes,
            "shrink_ratio": self.options.shrink_ratio,
        }
        if ratio is not None:
            details["too_small"]["ratio_to_median"] = round(ratio, 4)
        out.append(records.metric("backup_too_small", int(small), labels, t))
        return out

    # --- events on state change -----------------------------------------------------------------

    def _transitions(
        self,
        name: str,
        conditions: Mapping[str, bool],
        details: Mapping[str, Mapping[str, records.FieldValue]],
        t: int,
    ) -> list[records_pb2.Record]:
        """An event when a condition starts (or, first seen, is already on) and when it clears."""
        known = self._store.alerts.setdefault(name, {})
        out = []
        for cond, active in conditions.items():
            before = known.get(cond)
            if before == active or (before is None and not active):
                if before is None:
                    known[cond] = active
                    self._store.dirty = True
                continue
            kind, severity = _CONDITIONS[cond]
            fields: dict[str, records.FieldValue] = {
                "set": name,
                "resolved": not active,
                **details.get(cond, {}),
            }
            out.append(records.event(kind, severity if active else "info", fields, source=SOURCE, time_ns=t))
            known[cond] = active
            self._store.dirty = True
        return out

    def _error_event(self, name: str, error: str, t: int) -> list[records_pb2.Record]:
        """`backup.check_failed` once per distinct error, and once when the set recovers."""
        before = self._store.errors.get(name, "")
        if error == before:
            return []
        if error:
            self._store.errors[name] = error
        else:
            self._store.errors.pop(name, None)
        self._store.dirty = True
        fields: dict[str, records.FieldValue] = {"set": name, "error": error or before, "resolved": not error}
        return [
            records.event(
                "backup.check_failed", "warning" if error else "info", fields, source=SOURCE, time_ns=t
            )
        ]

    # --- files source ---------------------------------------------------------------------------

    def _host(self, path: str) -> str:
        """A configured host path as seen from this process (under rootfs)."""
        return os.path.normpath(self._root + path) if self._root else os.path.normpath(path)

    def _shown(self, path: str) -> str:
        """A path as seen from this process, as the host knows it (for reports)."""
        if self._root and path.startswith(self._root + "/"):
            return path[len(self._root) :]
        return path

    def _scan(self, name: str, opts: BackupSetOptions, now: float) -> _Facts:
        """Count the set's files and keep only the newest few: a glob matching 100,000 files costs
        one stat each and a heap of a handful, never a sorted list of all."""
        keep = max(self.options.size_history + 1, self.options.hash_newest)
        heap: list[tuple[int, str, int]] = []  # (mtime_ns, path, size): a min-heap of the newest
        facts = _Facts()
        missing: list[str] = []
        recorded = self._recorded
        # Two patterns may match one file; dedupe then (bounded by scan_limit), not for one pattern.
        seen: set[str] | None = set() if len(opts.paths) > 1 else None
        settle_ns = int(self.options.settle_seconds * 1e9)
        now_ns = int(now * 1e9)
        looked = 0
        for pattern in opts.paths:
            try:
                for path, st in self._iter_files(self._host(pattern), missing):
                    looked += 1
                    if looked > self.options.scan_limit:
                        facts.error = (
                            f"more than {self.options.scan_limit} files match {pattern}; "
                            "narrow the paths or raise scan_limit"
                        )
                        return facts
                    if seen is not None:
                        if path in seen:
                            continue
                        seen.add(path)
                    # Still being written (and not already a recorded backup): not a backup yet.
                    if 0 <= now_ns - st.st_mtime_ns < settle_ns and path not in recorded:
                        continue
                    facts.count += 1
                    item = (st.st_mtime_ns, path, st.st_size)
                    if len(heap) < keep:
                        heapq.heappush(heap, item)
                    elif item > heap[0]:
                        heapq.heapreplace(heap, item)
            except PermissionError as e:
                facts.error = f"permission denied: {self._shown(e.filename or pattern)}"
                return facts
            except OSError as e:
                facts.error = f"{e.strerror or e}: {self._shown(e.filename or pattern)}"
                return facts
        facts.backups = [
            _Backup(name=self._shown(p), time=m / 1e9, size=s, mtime_ns=m)
            for m, p, s in sorted(heap, reverse=True)
        ]
        if missing:
            facts.note = "not found: " + ", ".join(self._shown(m) for m in missing)
        return facts

    def _iter_files(self, pattern: str, missing: list[str]) -> Iterator[tuple[str, os.stat_result]]:
        """Regular files matching a path or glob, with their stat; paths not found go to `missing`."""
        if not glob.has_magic(pattern):
            try:
                st = os.stat(pattern)
            except FileNotFoundError:
                missing.append(pattern)
                return
            if stat.S_ISDIR(st.st_mode):
                yield from self._iter_dir(pattern, "*", missing)
            elif stat.S_ISREG(st.st_mode):
                yield pattern, st
            return
        root, _ = _watch_root(pattern)
        if not os.path.isdir(root):
            missing.append(root)
            return
        head, tail = os.path.split(pattern)
        if "**" in tail or glob.has_magic(head):
            dirs: Iterator[str] = (d for d in glob.iglob(head, recursive=True) if os.path.isdir(d))
            if "**" in tail:  # any depth: glob's own walk, each result stat'ed
                for p in glob.iglob(pattern, recursive=True):
                    with contextlib.suppress(FileNotFoundError):
                        st = os.stat(p)
                        if stat.S_ISREG(st.st_mode):
                            yield p, st
                return
        else:
            dirs = iter((head,))
        for d in dirs:
            yield from self._iter_dir(d, tail, missing)

    def _iter_dir(
        self, directory: str, pattern: str, missing: list[str]
    ) -> Iterator[tuple[str, os.stat_result]]:
        # glob's own leaf listing builds a list of every name; scandir streams them.
        try:
            it = self._scandir(directory)
        except FileNotFoundError:
            missing.append(directory)
            return
        with it:
            for entry in it:
                name = entry.name
                if name.startswith(".") and not pattern.startswith("."):
                    continue  # as glob: hidden files only for a pattern that says so
                if not fnmatch.fnmatchcase(name, pattern):
                    continue
                try:
                    if not entry.is_file():
                        continue
                    st = entry.stat()
                except FileNotFoundError:  # removed while we looked
                    continue
                yield entry.path, st

    def _digest(self, path: str) -> str:
        return sha256_file(path, self._opener)

    def _track(
        self, name: str, opts: BackupSetOptions, facts: _Facts, now: float, t: int
    ) -> list[records_pb2.Record]:
        """Record the newest files' digests; report recorded ones altered or deleted."""
        out: list[records_pb2.Record] = []
        settle = self.options.settle_seconds
        reverify = self.options.reverify_interval_seconds
        with self._lock:
            touched, self._touched = self._touched, set()
        target = {}
        for b in facts.backups[: self.options.hash_newest]:
            if b.size is not None and b.size <= self.options.digest_max_bytes:
                target[self._host(b.name)] = b
        for path, b in target.items():
            rec = self._store.files.get(path)
            if rec is not None and rec.get("set") != name:
                continue  # another set records it (overlapping paths): it checks it
            same = rec is not None and rec["size"] == b.size and rec["mtime_ns"] == b.mtime_ns
            due = rec is not None and reverify > 0 and now - rec.get("verified", 0) >= reverify
            if rec is not None and same and path not in touched and not due:
                continue
            if rec is not None and not same and 0 <= now - b.time < settle:
                touched.add(path)  # being changed right now: check once it has settled
                continue
            try:
                digest = self._digest(path)
            except FileNotFoundError:
                continue  # gone since the scan; the next run reports it
            except OSError as e:
                log.warning("backups: cannot hash %s: %s", path, e)
                continue
            touched.discard(path)
            if rec is not None and digest != rec["sha256"]:
                out.append(self._modified_event(name, b.name, rec, digest, b.size, b.mtime_ns, t))
            self._store.files[path] = {
                "set": name,
                "size": b.size,
                "mtime_ns": b.mtime_ns,
                "sha256": digest,
                "recorded": rec["recorded"] if rec else now,
                "verified": now,
            }
            self._store.dirty = True
        # Recorded files no longer among the newest: deleted, or older ones rotated out of view.
        for path, rec in list(self._store.files.items()):
            if rec.get("set") != name or path in target:
                continue
            try:
                st = os.stat(path)
            except FileNotFoundError:
                out.append(self._deleted_event(name, opts, path, rec, facts.count, now, t))
                del self._store.files[path]
                self._store.dirty = True
                continue
            except OSError:
                continue
            if path in touched or st.st_size != rec["size"] or st.st_mtime_ns != rec["mtime_ns"]:
                # Altered and pushed out of the newest (e.g. its mtime set back): check before forgetting.
                with contextlib.suppress(OSError):
                    digest = self._digest(path)
                    if digest != rec["sha256"]:
                        out.append(
                            self._modified_event(
                                name, self._shown(path), rec, digest, st.st_size, st.st_mtime_ns, t
                            )
                        )
                touched.discard(path)
            del self._store.files[path]
            self._store.dirty = True
        if touched:
            with self._lock:
                self._touched |= touched
        return out

    def _modified_event(
        self,
        name: str,
        shown: str,
        rec: Mapping[str, Any],
        digest: str,
        size: int | None,
        mtime_ns: int,
        t: int,
    ) -> records_pb2.Record:
        fields: dict[str, records.FieldValue] = {
            "set": name,
            "path": shown,
            "recorded_sha256": rec["sha256"],
            "sha256": digest,
            "recorded_size": int(rec["size"]),
            "size": int(size or 0),
            "recorded_mtime": rec["mtime_ns"] / 1e9,
            "mtime": mtime_ns / 1e9,
            "recorded_at": float(rec.get("recorded", 0)),
        }
        return records.event("backup.modified", "critical", fields, source=SOURCE, time_ns=t)

    def _deleted_event(
        self,
        name: str,
        opts: BackupSetOptions,
        path: str,
        rec: Mapping[str, Any],
        count: int,
        now: float,
        t: int,
    ) -> records_pb2.Record:
        age = now - rec["mtime_ns"] / 1e9
        retention = opts.retention_seconds
        if retention is not None:
            within = age < retention
        elif opts.expected_count:
            within = count < opts.expected_count
        else:
            within = True  # nothing says it may go: one of the newest backups vanished
        fields: dict[str, records.FieldValue] = {
            "set": name,
            "path": self._shown(path),
            "sha256": rec["sha256"],
            "size": int(rec["size"]),
            "age_seconds": round(age),
            "within_retention": within,
        }
        return records.event(
            "backup.deleted", "warning" if within else "info", fields, source=SOURCE, time_ns=t
        )

    def _offsite(self, offsite: Path, newest: _Backup) -> tuple[bool, bool, str]:
        """(present, matches, where) of the newest backup's copy under the off-site path."""
        copy = os.path.join(self._host(str(offsite)), os.path.basename(newest.name))
        shown = self._shown(copy)
        try:
            st = os.stat(copy)
        except OSError:
            return False, False, shown
        if not stat.S_ISREG(st.st_mode):
            return False, False, shown
        if st.st_size != newest.size:
            return True, False, shown
        if st.st_size > self.options.offsite_hash_max_bytes:
            return True, True, shown  # too large to read across a share every run: size only
        rec = self._store.files.get(self._host(newest.name))
        if rec is None or rec["mtime_ns"] != newest.mtime_ns:
            return True, True, shown  # the newest is not hashed (too large): size is all we have
        for other in [
            c for c in self._store.copies if c != copy and os.path.dirname(c) == os.path.dirname(copy)
        ]:
            del self._store.copies[other]  # an older backup's copy: only the newest is checked
            self._store.dirty = True
        cached = self._store.copies.get(copy)
        if cached is None or cached["size"] != st.st_size or cached["mtime_ns"] != st.st_mtime_ns:
            try:
                digest = self._digest(copy)
            except OSError:
                return True, False, shown
            cached = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": digest}
            self._store.copies[copy] = cached
            self._store.dirty = True
        return True, cached["sha256"] == rec["sha256"], shown

    def _verify(self, manifest: str, newest: _Backup) -> str:
        """ok / mismatch / missing / error: the newest backup against its manifest entry."""
        path = self._host(newest.name)
        rec = self._store.files.get(path)
        if rec is None or rec["mtime_ns"] != newest.mtime_ns:
            return "error"  # not hashed: larger than digest_max_bytes, or unreadable
        pattern = self._host(manifest)
        # The newest manifests first; a glob of many is bounded like the backups themselves.
        manifests: list[tuple[int, str]] = []
        try:
            for p, st in self._iter_files(pattern, []):
                item = (st.st_mtime_ns, p)
                if len(manifests) < 16:
                    heapq.heappush(manifests, item)
                elif item > manifests[0]:
                    heapq.heapreplace(manifests, item)
        except OSError:
            return "error"
        names = {path, self._shown(path), os.path.basename(path)}
        failed = False
        for _, m in sorted(manifests, reverse=True):
            try:
                with open(m, encoding="utf-8", errors="surrogateescape") as f:
                    for name, digest in _manifest_entries(f):
                        # Names are as given to sha256sum: relative to the manifest, absolute, or bare.
                        full = os.path.normpath(os.path.join(os.path.dirname(m), name))
                        if name in names or full == path or os.path.basename(name) == os.path.basename(path):
                            return "ok" if digest == rec["sha256"] else "mismatch"
            except OSError:
                failed = True
        return "error" if failed else "missing"

    def _forget_unconfigured(self) -> None:
        files_sets = {n for n, s in self.options.sets.items() if s.source == "files"}
        for path, rec in list(self._store.files.items()):
            if rec.get("set") not in files_sets:
                del self._store.files[path]
                self._store.dirty = True
        wanted = set()
        for s in self.options.sets.values():
            if s.offsite_path is not None:
                wanted.add(os.path.normpath(self._host(str(s.offsite_path))))
        for copy in list(self._store.copies):
            if os.path.dirname(copy) not in wanted:
                del self._store.copies[copy]
                self._store.dirty = True
        for table in (self._store.alerts, self._store.errors):
            for name in [n for n in table if n not in self.options.sets]:
                del table[name]
                self._store.dirty = True

    # --- restic / borg --------------------------------------------------------------------------

    def _tool_facts(self, opts: BackupSetOptions) -> _Facts:
        env = dict(self._environ)
        if opts.password_env:
            secret = self._environ.get(opts.password_env)
            if secret is None:
                return _Facts(error=f"environment variable {opts.password_env} is not set")
        else:
            secret = None
        try:
            if opts.source == "restic":
                backups = self._restic(opts, env, secret)
            else:
                backups = self._borg(opts, env, secret)
        except (ToolError, _restic.ParseError) as e:
            return _Facts(error=str(e))
        backups.sort(key=lambda b: b.time, reverse=True)
        keep = max(self.options.size_history + 1, 1)
        return _Facts(backups=backups[:keep], count=len(backups))

    def _call(self, argv: list[str], env: dict[str, str], ok: Sequence[int]) -> bytes:
        rc, out, err = self._run(
            argv, env, self.options.tool_timeout_seconds, self.options.tool_max_output_bytes
        )
        if rc not in ok:
            why = _stderr_line(err) or "no message"
            raise ToolError(f"{os.path.basename(argv[0])} exited with status {rc}: {why}")
        return out

    def _restic(self, opts: BackupSetOptions, env: dict[str, str], secret: str | None) -> list[_Backup]:
        # --no-lock: a listing must neither wait for nor disturb a backup in progress.
        argv = [self.options.restic_command, "--no-lock", "--json"]
        if opts.repository:
            argv += ["--repo", opts.repository]
        if opts.password_file:
            argv += ["--password-file", str(opts.password_file)]
        if secret is not None:
            env["RESTIC_PASSWORD"] = secret
        argv += ["snapshots", *opts.extra_args]
        snaps = _restic.parse_snapshots(self._call(argv, env, ok=(0,)))
        return [_Backup(name=s.short_id, time=s.time, size=s.size_bytes) for s in snaps]

    def _borg(self, opts: BackupSetOptions, env: dict[str, str], secret: str | None) -> list[_Backup]:
        argv = [self.options.borg_command, "list", "--json", *opts.extra_args]
        if opts.repository:
            argv.append(opts.repository)
        if opts.password_file:
            env["BORG_PASSCOMMAND"] = "cat " + shlex.quote(str(opts.password_file))
        if secret is not None:
            env["BORG_PASSPHRASE"] = secret
        # borg's JSON is UTF-8 only under a UTF-8 locale (borg docs, "All about JSON").
        env.setdefault("PYTHONIOENCODING", "utf-8")
        # Never answer a prompt (an unknown or moved repository) with anything but no.
        env.setdefault("BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK", "no")
        env.setdefault("BORG_RELOCATED_REPO_ACCESS_IS_OK", "no")
        listing = _borg.parse_list(self._call(argv, env, ok=(0, 1)))  # 1: borg's "warning"
        # borg lists no sizes (only `borg info`, which reads every archive): size checks skipped.
        return [_Backup(name=a.name, time=a.time, size=None) for a in listing.archives]

    # --- inventory ------------------------------------------------------------------------------

    def _inventory(self, section: records_pb2.BackupsSection, t: int) -> list[records_pb2.Record]:
        blob = section.SerializeToString(deterministic=True)
        now = time.monotonic()
        if (
            self._sent is not None
            and self._sent[0] == blob
            and now - self._sent[1] < self.options.inventory_interval_seconds
        ):
            return []
        self._sent = (blob, now)
        return [records.inventory(section, t)]
