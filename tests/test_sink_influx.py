"""InfluxSink against a real VictoriaMetrics server (see tests/vm.py for its quirks).

VictoriaMetrics names the series written as measurement `m`, field `value` as `m_value`, turns
tags into labels, keeps millisecond timestamps (truncated) and values as decimals with about 13
significant digits: the tests read back through its export API with that mapping.
"""

from __future__ import annotations

import http.server
import math
import threading
import time
from collections.abc import Callable

import pytest

from tests import vm
from tests.vm import VictoriaMetrics
from warden.collector.records import MetricSample
from warden.collector.sinks.influx import InfluxConfig, InfluxSink

victoria_metrics = vm.victoria_metrics  # the fixture: a fresh server per test (~0.1 s to start)

MS = 1_000_000


def make_sink(url: str, **overrides: float) -> InfluxSink:
    options: dict = dict(
        batch_size=50, flush_interval_s=0.05, retry_initial_s=0.05, retry_max_s=0.2, timeout_s=2.0
    )
    options.update(overrides)
    return InfluxSink(InfluxConfig(url=url, org="warden", bucket="metrics", token="t", **options))


def wait_until(pred: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


def values_of(series: list[dict]) -> list[float]:
    return sorted(v for s in series for v in s["values"])


def test_roundtrip_values_tags_and_timestamps(victoria_metrics: VictoriaMetrics) -> None:
    labels = {
        "path": r"C:\Program Files\a,b=c",  # backslashes, comma, '=' and space
        "k ey,=": "v a,l=ue",  # ...in the key too
        "trailing": "ends with\\",  # a trailing backslash must not escape the separator
        "host": "spoofed",  # host comes from the agent's identity, not from labels
    }
    base = time.time_ns() - 60 * 10**9
    sent: dict[tuple[str, int], float] = {}
    sink = make_sink(victoria_metrics.url)
    sink.start()
    try:
        for host in ("host-a", "host b,1"):
            samples = []
            for i in range(200):
                ts = base + i * MS + 123_456  # sub-millisecond part is truncated by VM
                value = (i - 100) * 1.000001 + (0.5 if host == "host-a" else 1e12)
                samples.append(MetricSample("disk io,total", labels, value, ts))
                sent[(host, ts // MS)] = value
            sink.submit(host, samples)
        wait_until(lambda: sink.stats()["written_total"] == 400, what="all points written")
    finally:
        sink.stop(5)

    series = victoria_metrics.export('{__name__="disk io,total_value"}', expect_points=400)
    got: dict[tuple[str, int], float] = {}
    for s in series:
        metric = dict(s["metric"])
        host = metric.pop("host")
        assert metric == {
            "__name__": "disk io,total_value",
            **{k: v for k, v in labels.items() if k != "host"},
        }
        for value, ts_ms in zip(s["values"], s["timestamps"], strict=True):
            assert (host, ts_ms) not in got
            got[(host, ts_ms)] = value
    # VM stores values as decimals and may keep only ~13 significant digits: compare approximately.
    assert got == pytest.approx(sent, rel=1e-12)
    stats = sink.stats()
    assert stats["buffered"] == 0 and stats["dropped_total"] == 0 and stats["write_errors_total"] == 0
    assert stats["last_success_unix"] is not None and stats["lag_seconds"] == 0


def test_outage_buffers_then_delivers_every_point_exactly_once(victoria_metrics: VictoriaMetrics) -> None:
    server = victoria_metrics
    sink = make_sink(server.url)
    sink.start()
    base = time.time_ns() - 600 * 10**9
    submitted = 0
    stop_submitting = threading.Event()

    def submitter() -> None:  # a steady ingest stream that never stops for the outage
        nonlocal submitted
        while not stop_submitting.is_set():
            chunk = [
                MetricSample("outage", {"k": "v"}, float(submitted + i), base + (submitted + i) * MS)
                for i in range(10)
            ]
            sink.submit("h1", chunk)
            submitted += len(chunk)
            time.sleep(0.005)

    thread = threading.Thread(target=submitter)
    thread.start()
    try:
        wait_until(lambda: sink.stats()["written_total"] > 100, what="writes before the outage")
        server.stop()
        wait_until(lambda: sink.stats()["write_errors_total"] > 0, what="write errors")
        before = sink.stats()["buffered"]
        time.sleep(0.3)
        during = sink.stats()
        assert during["buffered"] > before > 0
        assert during["lag_seconds"] > 0.2
        assert during["dropped_total"] == 0
        assert during["last_error"]
        server.restart()  # same port, same storage
        time.sleep(0.2)
    finally:
        stop_submitting.set()
        thread.join()
    try:
        wait_until(lambda: sink.stats()["buffered"] == 0, timeout=10, what="the backlog to drain")
        stats = sink.stats()
        assert stats["written_total"] == submitted
        assert stats["dropped_total"] == 0 and stats["lag_seconds"] == 0
    finally:
        sink.stop(5)
    series = server.export("outage_value", expect_points=submitted, settle=1.5)
    assert values_of(series) == [float(i) for i in range(submitted)]  # each point exactly once


def test_full_buffer_drops_oldest_and_counts_exactly(victoria_metrics: VictoriaMetrics) -> None:
    server = victoria_metrics
    server.stop()
    sink = make_sink(server.url, max_buffer_points=100, batch_size=10)
    sink.start()
    try:
        base = time.time_ns() - 600 * 10**9
        seq = 0
        for size in [7] * 18 + [4, 120]:  # the last chunk alone is larger than the buffer
            sink.submit(
                "h1", [MetricSample("bound", {}, float(seq + i), base + (seq + i) * MS) for i in range(size)]
            )
            seq += size
            time.sleep(0.005)
        assert seq == 250
        wait_until(lambda: sink.stats()["dropped_total"] == 150, timeout=5, what="150 dropped")
        stats = sink.stats()
        assert stats["buffered"] == 100 and stats["written_total"] == 0 and stats["write_errors_total"] > 0
        server.start()
        wait_until(lambda: sink.stats()["buffered"] == 0, what="the buffer to drain")
        assert sink.stats()["dropped_total"] == 150 and sink.stats()["written_total"] == 100
    finally:
        sink.stop(5)
    series = server.export("bound_value", expect_points=100, settle=1.0)
    assert values_of(series) == [float(i) for i in range(150, 250)]  # the newest 100 survived


def test_submit_is_fast_and_never_raises_while_server_is_down(victoria_metrics: VictoriaMetrics) -> None:
    victoria_metrics.stop()
    sink = make_sink(victoria_metrics.url, batch_size=5000)
    sink.start()
    try:
        now = time.time_ns()
        chunks = [
            [
                MetricSample(
                    f"cpu.core{j % 16}",
                    {"mode": ("user", "system")[j % 2], "cpu": str(j % 16)},
                    float(i * j),
                    now + i * 1000 + j,
                )
                for j in range(1000)
            ]
            for i in range(100)
        ]
        t0 = time.perf_counter()
        for chunk in chunks:
            sink.submit("h1", chunk)
        elapsed = time.perf_counter() - t0
        assert elapsed < 1.5, f"100k samples took {elapsed:.2f}s"
        # Garbage must not escape either: it is counted as invalid.
        sink.submit("h1", [MetricSample("x", None, 1.0, 1), MetricSample("y", {}, "abc", 1)])  # type: ignore[arg-type]
        sink.submit("h1", None)  # type: ignore[arg-type]
        stats = sink.stats()
        assert stats["buffered"] == 100_000 and stats["dropped_total"] == 0
        assert stats["dropped_invalid"] == 2
    finally:
        t0 = time.monotonic()
        sink.stop(1)
        assert time.monotonic() - t0 < 2


def test_nan_and_inf_are_skipped_and_counted(victoria_metrics: VictoriaMetrics) -> None:
    sink = make_sink(victoria_metrics.url)
    sink.start()
    now = time.time_ns()
    values = [1.0, math.nan, math.inf, -math.inf, 2.0]
    try:
        sink.submit("h1", [MetricSample("nan_test", {}, v, now + i * MS) for i, v in enumerate(values)])
        sink.submit("h1", [MetricSample("", {}, 1.0, now), MetricSample("#comment", {}, 1.0, now)])
        wait_until(lambda: sink.stats()["written_total"] == 2, what="finite points written")
    finally:
        sink.stop(5)
    assert sink.stats()["dropped_invalid"] == 5
    assert values_of(victoria_metrics.export("nan_test_value", expect_points=2)) == [1.0, 2.0]


def test_stop_is_prompt_while_backing_off(victoria_metrics: VictoriaMetrics) -> None:
    victoria_metrics.stop()
    sink = make_sink(victoria_metrics.url, retry_initial_s=10, retry_max_s=30)
    sink.start()
    sink.submit("h1", [MetricSample("m", {}, 1.0, time.time_ns())])
    wait_until(lambda: sink.stats()["write_errors_total"] >= 1, what="a failed write")
    t0 = time.monotonic()
    sink.stop(5)
    assert time.monotonic() - t0 < 0.5
    assert sink.stats()["buffered"] == 1  # kept, not lost, though it could not be written


def test_stop_flushes_what_is_buffered(victoria_metrics: VictoriaMetrics) -> None:
    sink = make_sink(victoria_metrics.url, flush_interval_s=60, batch_size=1000)
    sink.start()
    now = time.time_ns()
    sink.submit("h1", [MetricSample("flush_on_stop", {}, float(i), now + i * MS) for i in range(10)])
    sink.stop(5)
    assert sink.stats()["written_total"] == 10 and sink.stats()["buffered"] == 0
    assert len(values_of(victoria_metrics.export("flush_on_stop_value", expect_points=10))) == 10


class _Rejecting(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        self.rfile.read(int(self.headers["Content-Length"]))
        body = b'{"code":"invalid","message":"unable to parse"}'
        self.send_response(400)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_rejected_batch_is_dropped_instead_of_wedging_the_sink() -> None:
    # VictoriaMetrics accepts even malformed lines (204), so a tiny server plays InfluxDB's 400.
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Rejecting)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sink = make_sink(f"http://127.0.0.1:{server.server_address[1]}", batch_size=10, retry_initial_s=10)
    sink.start()
    try:
        sink.submit("h1", [MetricSample("m", {}, 1.0, time.time_ns() + i) for i in range(25)])
        wait_until(lambda: sink.stats()["rejected_total"] == 25, timeout=5, what="all batches rejected")
        stats = sink.stats()
        assert stats["buffered"] == 0 and stats["write_errors_total"] == 3 and "400" in stats["last_error"]
    finally:
        sink.stop(1)
        server.shutdown()
        server.server_close()


def test_config_from_mapping_falls_back_to_env() -> None:
    env = {"WARDEN_INFLUX_URL": "http://db:8086", "WARDEN_INFLUX_ORG": "o", "WARDEN_INFLUX_TOKEN": "secret"}
    cfg = InfluxConfig.from_mapping({"bucket": "b", "org": "mine", "batch_size": "100"}, env=env)
    assert (cfg.url, cfg.org, cfg.bucket, cfg.token, cfg.batch_size) == (
        "http://db:8086",
        "mine",
        "b",
        "secret",
        100,
    )
    assert cfg.max_buffer_points == 1_000_000 and cfg.retry_max_s == 30.0
    with pytest.raises(ValueError, match="bucket"):
        InfluxConfig.from_mapping({}, env=env)
    with pytest.raises(ValueError, match="unknown"):
        InfluxConfig.from_mapping({"bukket": "b"}, env=env)
