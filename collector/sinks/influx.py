"""Time-series sink: metric samples -> InfluxDB line protocol -> InfluxDB v2 write API.

Ingest must never wait for, or fail because of, the time-series database. `submit()` only
formats lines and appends them to a bounded in-memory buffer; a background thread drains
the buffer in batches and retries with jittered exponential backoff while the database is
down. When the buffer is full the oldest points are dropped (fresh data is worth more).

Delivery is at-least-once: a batch is removed from the buffer only after a successful
write, so a write whose response is lost is sent again.
"""

from __future__ import annotations

import collections
import itertools
import logging
import math
import os
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from influxdb_client import InfluxDBClient, WritePrecision
from influxdb_client.client.write_api import SYNCHRONOUS, WriteApi

from warden.collector.records import MetricSample

log = logging.getLogger(__name__)

# Line-protocol escaping. Backslash is escaped too: otherwise a value ending in "\" would
# escape the following separator. Newlines cannot be represented, so they become "\n" text.
_ESCAPE_MEASUREMENT = str.maketrans(
    {"\\": "\\\\", ",": "\\,", " ": "\\ ", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
)
_ESCAPE_TAG = str.maketrans(
    {"\\": "\\\\", ",": "\\,", "=": "\\=", " ": "\\ ", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
)

# HTTP statuses meaning "this batch will never be accepted": retrying would wedge the sink.
_REJECTED_STATUSES = frozenset({400, 413, 422})

_ESCAPE_CACHE_MAX = 50_000


def _cached_escape(table: dict[int, str]) -> Callable[[str], str]:
    """An escaper with a bounded cache: names and label values repeat a lot, translate() is slow."""
    cache: dict[str, str] = {}

    def escape(s: str) -> str:
        out = cache.get(s)
        if out is None:
            if len(cache) >= _ESCAPE_CACHE_MAX:
                cache.clear()
            out = cache[s] = s.translate(table)
        return out

    return escape


@dataclass(slots=True)
class InfluxConfig:
    url: str
    org: str
    bucket: str
    token: str
    batch_size: int = 5000
    flush_interval_s: float = 1.0
    max_buffer_points: int = 1_000_000
    retry_initial_s: float = 1.0
    retry_max_s: float = 30.0
    timeout_s: float = 10.0

    @classmethod
    def from_mapping(cls, d: Mapping[str, Any], env: Mapping[str, str] = os.environ) -> InfluxConfig:
        """Build from a config section; connection settings missing there come from WARDEN_INFLUX_*."""
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown influx config keys: {sorted(unknown)}")
        values = dict(d)
        for f in fields(cls):  # config files may give numbers as strings
            if f.name in values and f.type in ("int", "float"):
                values[f.name] = (int if f.type == "int" else float)(values[f.name])
        for key in ("url", "org", "bucket", "token"):
            if not values.get(key):
                values[key] = env.get(f"WARDEN_INFLUX_{key.upper()}", "")
        missing = [k for k in ("url", "org", "bucket") if not values[k]]
        if missing:
            raise ValueError(f"influx config is missing {missing} (set them or WARDEN_INFLUX_*)")
        return cls(**values)


class InfluxSink:
    def __init__(self, config: InfluxConfig) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._stop = threading.Event()  # set by stop(): ends waits and backoff at once
        self._wake = threading.Event()  # set by submit() when a full batch is waiting
        self._thread: threading.Thread | None = None
        self._client: InfluxDBClient | None = None
        self._write_api: WriteApi | None = None
        self._deadline = math.inf  # monotonic time after which the final flush gives up

        # Buffered lines; point sequence numbers are implicit: _buf[i] has seq _head_seq + i.
        self._buf: collections.deque[str] = collections.deque()
        self._head_seq = 0
        # (end_seq, arrival) per submit() call rather than per point, for lag_seconds.
        self._arrivals: collections.deque[tuple[int, float]] = collections.deque()
        # End seq (exclusive) of the batch being written; overflow drops inside it are only
        # losses if that write fails, so they are held in _dropped_inflight until we know.
        self._inflight_end: int | None = None
        self._dropped_inflight = 0

        self._written = 0
        self._dropped = 0
        self._dropped_invalid = 0
        self._rejected = 0
        self._write_errors = 0
        self._last_error: str | None = None
        self._last_success: float | None = None

        self._escape_tag = _cached_escape(_ESCAPE_TAG)
        self._escape_measurement = _cached_escape(_ESCAPE_MEASUREMENT)

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        c = self.config
        # influxdb-client takes its timeout in milliseconds.
        self._client = InfluxDBClient(url=c.url, token=c.token, org=c.org, timeout=int(c.timeout_s * 1000))
        self._write_api = self._client.write_api(write_options=SYNCHRONOUS)
        self._stop.clear()
        self._deadline = math.inf
        self._thread = threading.Thread(target=self._run, name="influx-sink", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Flush what can be flushed within `timeout` seconds, then stop the writer thread."""
        if self._thread is None:
            return
        self._deadline = time.monotonic() + timeout
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)
        if not self._thread.is_alive() and self._client is not None:
            self._client.close()
        # A thread stuck in a slow HTTP call is a daemon and dies with the process.
        self._thread = None

    # -- ingest path -------------------------------------------------------------------

    def submit(self, host_id: str, samples: Sequence[MetricSample]) -> None:
        """Queue samples for writing. Cheap, never blocks on the database, never raises."""
        try:
            lines, invalid = self._format(host_id, samples)
            self._enqueue(lines, invalid)
        except Exception:  # the ingest path must survive any sink bug
            log.exception("influx sink: submit failed")

    def _format(self, host_id: str, samples: Sequence[MetricSample]) -> tuple[list[str], int]:
        tag, meas = self._escape_tag, self._escape_measurement
        host_tag = "host=" + tag(str(host_id))
        lines: list[str] = []
        invalid = 0
        for s in samples:
            try:
                value = float(s.value)
                # '#' would turn the line into a comment; empty names are invalid line protocol.
                if not math.isfinite(value) or not s.name or s.name[0] == "#":
                    invalid += 1
                    continue
                # Empty tag values are invalid line protocol; `host` comes from the agent's identity.
                tags = [tag(k) + "=" + tag(v) for k, v in s.labels.items() if k and v and k != "host"]
                tags.append(host_tag)
                tags.sort()  # InfluxDB's recommended tag order
                lines.append(f"{meas(s.name)},{','.join(tags)} value={value!r} {int(s.time_ns)}")
            except Exception:  # a malformed sample must not lose its neighbours
                invalid += 1
        return lines, invalid

    def _enqueue(self, lines: list[str], invalid: int) -> None:
        cap = self.config.max_buffer_points
        now = time.monotonic()
        with self._lock:
            self._dropped_invalid += invalid
            if len(lines) > cap:  # more than fits at all: the oldest never enter the buffer
                self._dropped += len(lines) - cap
                lines = lines[len(lines) - cap :]
            if not lines:
                return
            excess = len(self._buf) + len(lines) - cap
            if excess > 0:
                self._drop_oldest(excess)
            self._buf.extend(lines)
            self._arrivals.append((self._head_seq + len(self._buf), now))
            if len(self._buf) >= self.config.batch_size:
                self._wake.set()

    def _drop_oldest(self, n: int) -> None:
        """Drop n points from the head of the buffer (lock held)."""
        start = self._head_seq
        for _ in range(n):
            self._buf.popleft()
        self._head_seq += n
        inflight = (
            0 if self._inflight_end is None else max(0, min(self._inflight_end, self._head_seq) - start)
        )
        self._dropped_inflight += inflight
        self._dropped += n - inflight
        self._prune_arrivals()

    def _prune_arrivals(self) -> None:
        while self._arrivals and self._arrivals[0][0] <= self._head_seq:
            self._arrivals.popleft()

    # -- writer thread -----------------------------------------------------------------

    def _run(self) -> None:
        c = self.config
        failures = 0  # consecutive, drives the backoff
        while not self._stop.is_set():
            self._wake.clear()
            if failures == 0 and len(self._buf) < c.batch_size:  # len() needs no lock
                # Let a partial batch fill up (or age) instead of sending many tiny writes.
                self._wake.wait(c.flush_interval_s)
                if self._stop.is_set():
                    break
            result = self._write_one_batch()
            if result is False:
                failures += 1
                cap = min(c.retry_max_s, c.retry_initial_s * 2 ** min(failures - 1, 30))
                self._stop.wait(max(c.retry_initial_s, random.uniform(cap / 2, cap)))
            else:
                failures = 0
        # Final flush on stop: no backoff, give up at the first failure or at the deadline.
        while time.monotonic() < self._deadline and self._write_one_batch():
            pass

    def _write_one_batch(self) -> bool | None:
        """Write the oldest batch: None if the buffer was empty, else whether the batch is settled."""
        with self._lock:
            if not self._buf:
                return None
            batch = list(itertools.islice(self._buf, self.config.batch_size))
            end = self._head_seq + len(batch)
            self._inflight_end = end
        error: str | None = None
        rejected = False
        try:
            assert self._write_api is not None
            self._write_api.write(
                bucket=self.config.bucket,
                org=self.config.org,
                record=batch,
                write_precision=WritePrecision.NS,
            )
        except Exception as exc:  # errors are counted, never propagated
            error = f"{type(exc).__name__}: {exc}"
            rejected = getattr(exc, "status", None) in _REJECTED_STATUSES
            if error != self._last_error:  # log changes, not every retry
                log.warning("influx sink: writing %d points failed: %s", len(batch), error)
        with self._lock:
            self._inflight_end = None
            if error is None or rejected:  # settled: take the batch out of the buffer
                n = max(0, end - self._head_seq)  # overflow may have dropped part of it meanwhile
                for _ in range(n):
                    self._buf.popleft()
                self._head_seq += n
                self._prune_arrivals()
            if error is None:
                self._written += len(batch)
                self._dropped_inflight = 0  # they reached the database after all
                self._last_success = time.time()
                return True
            self._write_errors += 1
            self._last_error = error
            self._dropped += self._dropped_inflight
            self._dropped_inflight = 0
            if rejected:
                self._rejected += n
            return rejected  # a rejected batch is gone: move on without backing off

    # -- observability -----------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        with self._lock:
            lag = time.monotonic() - self._arrivals[0][1] if self._buf and self._arrivals else 0.0
            return {
                "buffered": len(self._buf),
                "written_total": self._written,
                "dropped_total": self._dropped,  # drops inside an in-flight batch count once it fails
                "dropped_invalid": self._dropped_invalid,
                "rejected_total": self._rejected,
                "write_errors_total": self._write_errors,
                "last_error": self._last_error,
                "lag_seconds": lag,
                "last_success_unix": self._last_success,
            }
