import asyncio
import threading
import time
from collections.abc import Iterator

import pytest

from warden.agent import records
from warden.agent.config import AgentConfig, ConfigError, ProbeSettings
from warden.agent.probes.system import SystemOptions, SystemProbe
from warden.agent.scheduler import ScheduledProbe, Scheduler, build_probes
from warden.v1 import records_pb2


class Good:
    def __init__(self) -> None:
        self.calls = 0

    def collect(self) -> Iterator[records_pb2.Record]:
        self.calls += 1
        yield records.metric("test_good", self.calls)


class Failing:
    """Raises the next message of `errors` on each run (the last one forever); None succeeds."""

    def __init__(self, *errors: str | None) -> None:
        self.errors = list(errors)

    def collect(self) -> list[records_pb2.Record]:
        error = self.errors.pop(0) if len(self.errors) > 1 else self.errors[0]
        if error is not None:
            raise RuntimeError(error)
        return []


class Hanging:
    def __init__(self) -> None:
        self.release = threading.Event()
        self.calls = 0

    def collect(self) -> list[records_pb2.Record]:
        self.calls += 1
        self.release.wait(10)
        return [records.metric("test_late", 1)]


class Slow:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.calls = 0

    def collect(self) -> list[records_pb2.Record]:
        self.calls += 1
        time.sleep(self.seconds)
        return []


class Emitted(list):
    def __call__(self, out: list[records_pb2.Record]) -> None:
        assert all(isinstance(r, records_pb2.Record) for r in out)
        self.extend(out)

    def metrics(self, name: str, probe: str) -> list[float]:
        return [
            r.metric.value
            for r in self
            if r.HasField("metric") and r.metric.name == name and r.metric.labels.get("probe") == probe
        ]

    def errors(self, probe: str) -> list[str]:
        return [
            r.event.fields["error"].string_value
            for r in self
            if r.HasField("event")
            and r.event.kind == "agent.probe_error"
            and r.event.fields["probe"].string_value == probe
        ]


def run_for(scheduler: Scheduler, seconds: float) -> None:
    async def main() -> None:
        task = asyncio.create_task(scheduler.run())
        await asyncio.sleep(seconds)
        scheduler.stop()
        await asyncio.wait_for(task, 5)

    asyncio.run(main())


def test_a_failing_and_a_hanging_probe_do_not_stop_a_good_one() -> None:
    good, failing, hanging = Good(), Failing("boom"), Hanging()
    out = Emitted()
    sched = Scheduler(
        [
            ScheduledProbe("good", good, 0.05),
            ScheduledProbe("failing", failing, 0.05),
            ScheduledProbe("hanging", hanging, 0.05, timeout_seconds=0.1),
        ],
        out,
        jitter_seconds=0,
        stop_grace_seconds=0.1,
        health_interval_seconds=0,  # a health sample every run, to count runs by them
    )
    try:
        run_for(sched, 0.6)
    finally:
        hanging.release.set()

    assert good.calls >= 8
    assert out.metrics("agent_probe_success", "good") == [1.0] * good.calls
    assert len(out.metrics("agent_probe_duration_seconds", "good")) == good.calls
    assert [r.metric.value for r in out if r.metric.name == "test_good"] == list(range(1, good.calls + 1))

    fails = out.metrics("agent_probe_success", "failing")
    assert len(fails) >= 8 and set(fails) == {0.0}
    assert out.errors("failing") == ["RuntimeError: boom"]  # once, not every interval

    assert hanging.calls == 1  # never a second thread on a busy probe
    assert out.metrics("agent_probe_success", "hanging") == [0.0]
    assert out.errors("hanging") == ["timed out after 0.1s"]
    stats = sched.stats()
    assert stats["hanging"].skipped >= 5 and stats["hanging"].busy
    assert out.metrics("agent_probe_skipped_total", "hanging")[-1] == stats["hanging"].skipped
    assert not [r for r in out if r.metric.name == "test_late"]
    assert stats["good"].failures == 0 and stats["failing"].failures == stats["failing"].runs


def test_error_event_once_per_distinct_error_and_again_after_recovery() -> None:
    probe = Failing("a", "a", "b", "b", "a", None, "a", "a", None)
    out = Emitted()
    sched = Scheduler([ScheduledProbe("p", probe, 0.02)], out, jitter_seconds=0, health_interval_seconds=0)
    run_for(sched, 0.4)
    assert out.errors("p") == ["RuntimeError: a", "RuntimeError: b", "RuntimeError: a", "RuntimeError: a"]
    assert out.metrics("agent_probe_success", "p")[:9] == [0, 0, 0, 0, 0, 1, 0, 0, 1]
    event = next(r.event for r in out if r.HasField("event"))
    assert event.severity == records_pb2.SEVERITY_ERROR
    assert event.source == "probe:p"
    assert sched.stats()["p"].error is None


def test_a_run_still_busy_when_the_next_is_due_is_skipped_and_counted() -> None:
    slow = Slow(0.25)
    out = Emitted()
    sched = Scheduler([ScheduledProbe("slow", slow, 0.1, timeout_seconds=1)], out, jitter_seconds=0)
    run_for(sched, 0.95)
    st = sched.stats()["slow"]
    assert 3 <= slow.calls <= 4
    assert st.skipped >= 4
    assert st.failures == 0
    assert out.metrics("agent_probe_skipped_total", "slow") == list(range(1, st.skipped + 1))
    assert set(out.metrics("agent_probe_success", "slow")) == {1.0}


def test_first_run_is_immediate_then_a_fixed_cadence_without_drift() -> None:
    starts: list[float] = []

    class Stamping:
        def collect(self) -> list[records_pb2.Record]:
            starts.append(time.monotonic())
            time.sleep(0.05)  # run time must not push later runs back (drift would add 0.05 per run)
            return []

    t0 = time.monotonic()
    run_for(Scheduler([ScheduledProbe("p", Stamping(), 0.1)], Emitted(), jitter_seconds=0), 0.75)
    assert len(starts) >= 6
    assert starts[0] - t0 < 0.05
    for k, t in enumerate(starts):
        # Generous upper slack: thread start-up latency on a loaded CI machine, not drift.
        assert k * 0.1 - 0.01 <= t - t0 < k * 0.1 + 0.09, f"run {k} started at {t - t0:.3f}s"


def test_start_and_stop_are_called_and_a_failed_start_only_disables_that_probe() -> None:
    calls = []

    class WithLifecycle(Good):
        def start(self) -> None:
            calls.append("start")

        def stop(self) -> None:
            calls.append("stop")

    class BrokenStart(Good):
        def start(self) -> None:
            raise OSError("no such device")

    ok, broken = WithLifecycle(), BrokenStart()
    out = Emitted()
    run_for(
        Scheduler(
            [ScheduledProbe("ok", ok, 0.05), ScheduledProbe("broken", broken, 0.05)], out, jitter_seconds=0
        ),
        0.2,
    )
    assert calls == ["start", "stop"]
    assert ok.calls >= 3 and broken.calls == 0
    assert out.errors("broken") == ["start failed: OSError: no such device"]
    assert out.metrics("agent_probe_success", "broken") == [0.0]


def test_a_failing_emit_does_not_stop_the_scheduler() -> None:
    good = Good()
    n = 0

    def emit(_: list[records_pb2.Record]) -> None:
        nonlocal n
        n += 1
        raise OSError("disk full")

    run_for(Scheduler([ScheduledProbe("good", good, 0.05)], emit, jitter_seconds=0), 0.3)
    assert good.calls >= 5 and n == good.calls


def test_a_probe_returning_something_else_than_records_fails() -> None:
    class Wrong:
        def collect(self) -> list[object]:
            return [{"name": "x"}]

    out = Emitted()
    run_for(Scheduler([ScheduledProbe("wrong", Wrong(), 1)], out), 0.1)
    assert out.errors("wrong") == ["TypeError: collect() yielded dict, not warden.v1.Record"]


def test_stop_from_another_thread_and_before_run() -> None:
    sched = Scheduler([ScheduledProbe("good", Good(), 0.05)], Emitted())
    threading.Timer(0.1, sched.stop).start()
    asyncio.run(asyncio.wait_for(sched.run(), 5))

    early = Scheduler([ScheduledProbe("good", Good(), 0.05)], Emitted())
    early.stop()
    asyncio.run(asyncio.wait_for(early.run(), 5))


def test_in_flight_runs_finish_within_the_grace_at_stop() -> None:
    slow = Slow(0.2)
    out = Emitted()

    async def main() -> None:
        sched = Scheduler([ScheduledProbe("slow", slow, 10)], out, stop_grace_seconds=2)
        task = asyncio.create_task(sched.run())
        await asyncio.sleep(0.05)
        sched.stop()
        await task

    asyncio.run(main())
    assert out.metrics("agent_probe_success", "slow") == [1.0]


def test_duplicate_names_are_refused() -> None:
    with pytest.raises(ValueError, match="duplicate"):
        Scheduler([ScheduledProbe("a", Good(), 1), ScheduledProbe("a", Good(), 1)], Emitted())


def test_build_probes_constructs_enabled_probes_and_validates_them() -> None:
    from warden.agent.probes import registered

    cfg = AgentConfig()
    built = {b.name: b for b in build_probes(cfg)}
    assert set(built) == {n for n, spec in registered().items() if spec.default_enabled}
    system = built["system"]
    assert isinstance(system.probe, SystemProbe) and system.interval_seconds == 15

    off = AgentConfig(probes={"system": ProbeSettings(False, 15.0, SystemOptions())})
    assert build_probes(off) == []

    bad = AgentConfig(probes={"system": ProbeSettings(True, 15.0, SystemOptions(exclude_mounts=("mnt/*",)))})
    with pytest.raises(ConfigError, match=r"\[probes.system\] exclude_mounts: pattern 'mnt/\*'"):
        build_probes(bad)


def test_a_probe_calling_exit_is_only_a_failure() -> None:
    class Exiting:
        def collect(self) -> list[records_pb2.Record]:
            raise SystemExit(3)

    out = Emitted()
    run_for(Scheduler([ScheduledProbe("exiting", Exiting(), 1)], out), 0.1)
    assert out.errors("exiting") == ["RuntimeError: collect() raised SystemExit: 3"]


# The record builders the scheduler and probes share (agent/records.py).


def test_record_builders() -> None:
    m = records.metric("x_total", 3, {"a": "b"}, time_ns=7).metric
    assert (m.name, m.value, dict(m.labels), m.time_unix_nano) == ("x_total", 3.0, {"a": "b"}, 7)
    with pytest.raises(ValueError, match="metric name"):
        records.metric("bad-name", 1)

    e = records.event(
        "k.v", "warning", {"b": True, "i": 2, "f": 0.5, "s": "x"}, raw="line", source="src"
    ).event
    assert e.severity == records_pb2.SEVERITY_WARNING and (e.raw, e.source) == ("line", "src")
    assert {k: v.WhichOneof("kind") for k, v in e.fields.items()} == {
        "b": "bool_value",
        "i": "int_value",
        "f": "double_value",
        "s": "string_value",
    }
    assert abs(e.time_unix_nano - time.time_ns()) < 10e9
    with pytest.raises(ValueError, match="severity"):
        records.event("k", "fatal")
    with pytest.raises(TypeError, match="'l'"):
        records.event("k", "info", {"l": [1]})  # type: ignore[dict-item]

    inv = records.inventory(records_pb2.HardwareSection(cpu_model="z"), time_ns=1).inventory
    assert inv.WhichOneof("section") == "hardware" and inv.hardware.cpu_model == "z"
    with pytest.raises(TypeError, match="not an inventory section"):
        records.inventory(records_pb2.Filesystem())
    assert records.agent_version()  # the installed warden version, or "0+unknown"


async def test_checkpointing_probe_state_travels_with_its_records():
    from warden.agent.scheduler import ScheduledProbe, Scheduler

    class Tail:
        def __init__(self) -> None:
            self.pos = 0

        def collect(self):
            self.pos += 1
            return [records.event("log.line", "info", {"n": self.pos})]

        def checkpoint(self) -> bytes:
            return str(self.pos).encode()

    got: list[tuple[int, dict | None]] = []

    def emit(recs, checkpoints=None):
        got.append((len(recs), checkpoints))

    sched = Scheduler([ScheduledProbe("tail", Tail(), 0.05)], emit, jitter_seconds=0)
    task = asyncio.create_task(sched.run())
    await asyncio.sleep(0.18)
    sched.stop()
    await task
    assert got and all(cp and cp["probe:tail"] for _, cp in got)
    positions = [int(cp["probe:tail"]) for _, cp in got]
    assert positions == list(range(1, len(positions) + 1))


def test_health_samples_are_throttled_but_state_changes_always_reported() -> None:
    probe = Failing(None, None, None, "x", "x", None, None)
    out = Emitted()
    run_for(Scheduler([ScheduledProbe("p", probe, 0.02)], out, jitter_seconds=0,
                      health_interval_seconds=3600), 0.3)
    # First run, the failure and the recovery: three samples, not one per run.
    assert out.metrics("agent_probe_success", "p") == [1.0, 0.0, 1.0]
