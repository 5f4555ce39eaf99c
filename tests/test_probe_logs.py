"""The `logs` probe on real files in tmp: following, rotations both ways, restarts through the
checkpoint, damaged input, back-pressure, the journal (a fake journalctl replaying real
journal JSON) and wtmp/btmp fixtures.

The `Agent` helper plays the scheduler and the spool: after each collect() the records and
the checkpoint are "committed" together, or (a crash) both dropped; a restart builds a new
probe restored from the last committed checkpoint. Exactly once = the committed lines equal
the written lines, in order.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import sys
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from warden.agent import records
from warden.agent.probes import HostPaths, _utmp
from warden.agent.probes.logs import LogsOptions, LogsProbe
from warden.v1 import records_pb2

FIXTURES = Path(__file__).parent / "fixtures" / "logs"
LINE_KINDS = ("log.line", "log.journal")


class RawParser:
    """Stands in for warden.agent.logparse.LineParser with the same contract: one event per
    line, the line as raw. Keeps these tests about positions, not about parsing."""

    def __init__(self, source: str) -> None:
        self.source = source

    def parse(self, line: bytes) -> records_pb2.Record:
        return records.event("log.line", "info", raw=line.decode("utf-8", "replace"), source=self.source)

    def parse_journal(self, entry: dict[str, Any]) -> records_pb2.Record:
        msg = entry.get("MESSAGE", "")
        if isinstance(msg, list):
            msg = bytes(msg).decode("utf-8", "replace")
        return records.event("log.journal", "info", {"cursor": entry["__CURSOR"][:200]}, raw=str(msg),
                             source="journal")


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class Agent:
    """A logs probe plus what the spool would hold (records and checkpoint, committed together)."""

    def __init__(self, paths: Iterable[Path | str], **options: Any) -> None:
        base: dict[str, Any] = {"journal": "off", "wtmp": "", "btmp": "", "rotate_wait_seconds": 0.0,
                                "partial_line_timeout_seconds": 5.0, "poll_interval_seconds": 0.001,
                                "metrics_interval_seconds": 0.001, "start_at": "beginning"}
        base.update(options)
        base["paths"] = tuple(str(p) for p in paths)
        self.options = LogsOptions(**base)
        self.clock = Clock()
        self.stored: bytes | None = None  # the checkpoint in the "spool"
        self.lines: list[str] = []  # committed lines
        self.events: list[records_pb2.Event] = []  # committed non-line events
        self.metrics: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        self.journalctl: str | None = None
        self.probe: LogsProbe | None = None
        self.start()

    def start(self) -> None:
        self.probe = LogsProbe(self.options, HostPaths(), parser_factory=RawParser, clock=self.clock,
                               journalctl=self.journalctl)
        self.probe.validate()
        self.probe.restore(self.stored)

    def run(self, commit: bool = True, advance: float = 1.0) -> list[str]:
        assert self.probe is not None
        self.clock.t += advance
        recs = self.probe.collect()
        cp = self.probe.checkpoint()
        got = [r.event.raw for r in recs if r.WhichOneof("kind") == "event" and r.event.kind in LINE_KINDS]
        if commit:
            self.lines += got
            self.events += [r.event for r in recs if r.WhichOneof("kind") == "event"
                            and r.event.kind not in LINE_KINDS]
            if cp is not None:
                self.stored = cp
            for r in recs:
                if r.WhichOneof("kind") == "metric":
                    self.metrics[(r.metric.name, tuple(sorted(r.metric.labels.items())))] = r.metric.value
        return got

    def drain(self, runs: int = 4, advance: float = 1.0) -> list[str]:
        out: list[str] = []
        for _ in range(runs):
            out += self.run(advance=advance)
        return out

    def restart(self) -> None:
        """A crash: whatever was not committed is gone; a new probe resumes from the spool."""
        assert self.probe is not None
        self.probe.stop()
        self.start()

    def metric(self, name: str, **labels: str) -> float:
        return self.metrics.get((name, tuple(sorted(labels.items()))), 0.0)


class Writer:
    """Appends numbered lines and rotates like logrotate. File mtimes follow a clock advanced by
    one second per operation, as real rotations are far apart (filesystem timestamps are too
    coarse to order operations microseconds apart)."""

    def __init__(self, path: Path, prefix: str = "line") -> None:
        self.path = path
        self.prefix = prefix
        self.n = 0
        self.written: list[str] = []
        self.pending = b""  # the rest of a half-written line
        self.t = 1_700_000_000 * 10**9
        path.touch()
        self._stamp(path)

    def _stamp(self, p: Path) -> None:
        self.t += 10**9
        os.utime(p, ns=(self.t, self.t))

    def lines(self, k: int, target: Path | None = None, partial: bool = False) -> list[str]:
        """k numbered lines; `partial`: then the first half of one more (finished by the next call)."""
        new = []
        for _ in range(k + partial):
            self.n += 1
            new.append(f"{self.prefix} {self.n:06d} " + "x" * (self.n % 37))
        data = b"".join(s.encode() + b"\n" for s in new)
        if self.pending:
            data = self.pending + data
        self.pending = b""
        if partial:
            half = len(new[-1]) // 2
            data = data[:len(data) - len(new[-1]) - 1 + half]
            self.pending = new[-1].encode()[half:] + b"\n"
        with open(target or self.path, "ab") as f:
            f.write(data)
        self._stamp(target or self.path)
        self.written += new
        return new

    def _shift(self) -> None:
        gens = sorted((int(p.name.rsplit(".", 1)[1]), p) for p in self.path.parent.glob(self.path.name + ".*")
                      if p.name.rsplit(".", 1)[1].isdigit())
        for i, p in reversed(gens):
            p.rename(self.path.with_name(f"{self.path.name}.{i + 1}"))

    def rename(self, late: int = 0) -> None:
        """rename-and-create; `late` lines still go to the old file (before the writer's HUP)."""
        self.lines(0)  # a writer finishes its line before it rotates
        self._shift()
        old = self.path.with_name(self.path.name + ".1")
        self.path.rename(old)
        self.path.touch()
        self._stamp(self.path)
        if late:
            self.lines(late, target=old)

    def copytruncate(self) -> None:
        self.lines(0)
        self._shift()
        copy = self.path.with_name(self.path.name + ".1")
        shutil.copyfile(self.path, copy)
        self._stamp(copy)
        with open(self.path, "r+b") as f:
            f.truncate(0)
        self._stamp(self.path)


def append(path: Path, data: bytes) -> None:
    with open(path, "ab") as f:
        f.write(data)


# --- following ----------------------------------------------------------------------------------


def test_append_and_read(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(b"one\ntwo\n")
    a = Agent([log])
    assert a.run() == ["one", "two"]
    assert a.run() == []
    append(log, b"three\nfour\n")
    assert a.run() == ["three", "four"]
    assert a.metric("logs_lines_total", source=str(log)) == 4
    assert a.metric("logs_bytes_total", source=str(log)) == len(b"one\ntwo\nthree\nfour\n")


def test_start_at_end_only_on_the_very_first_run(tmp_path: Path) -> None:
    old = tmp_path / "old.log"
    old.write_bytes(b"history 1\nhistory 2\nhalf a li")
    a = Agent([tmp_path / "*.log"], start_at="end")
    assert a.run() == []  # existing lines skipped; the unfinished one is not cut in two
    append(old, b"ne\nnew\n")
    assert a.run() == ["half a line", "new"]
    # A file appearing later (a rotation's new file) is read from its beginning.
    (tmp_path / "later.log").write_bytes(b"first\n")
    assert a.run() == ["first"]
    # So is one that appeared while the agent was down, once there is a checkpoint.
    a.restart()
    (tmp_path / "while-down.log").write_bytes(b"early\n")
    assert a.run() == ["early"]


def test_missing_paths_are_reported_once_and_followed_when_they_appear(tmp_path: Path) -> None:
    log = tmp_path / "late.log"
    a = Agent([log], start_at="end")
    a.drain(3)
    missing = [e for e in a.events if e.kind == "logs.source_missing"]
    assert len(missing) == 1 and missing[0].fields["source"].string_value == str(log)
    log.write_bytes(b"appeared\n")
    assert a.run() == ["appeared"]  # appeared after the first run: read whole


# --- rotation -----------------------------------------------------------------------------------


def test_rename_and_create_reads_old_file_to_its_end_first(tmp_path: Path) -> None:
    w = Writer(tmp_path / "auth.log")
    a = Agent([w.path], rotate_wait_seconds=2.0)
    w.lines(5)
    a.run()
    w.lines(3)  # written just before the rename, not yet read
    w.rename(late=2)  # and two more into the old file after it (before the daemon reopens)
    w.lines(4)
    a.run()
    w.lines(1, target=tmp_path / "auth.log.1")  # still inside rotate_wait: still read
    a.drain(3)
    # Everything once; the old file's lines (1-10) before the new file's (11-14); the late
    # line 15 went to the old file after the new one had lines, so it follows them.
    assert a.lines == w.written
    assert a.metric("logs_rotations_total", source=str(w.path), kind="rename") == 1
    assert a.probe is not None and not a.probe._sources[str(w.path)].follower.drains  # dropped after the wait


def test_copytruncate_recovers_lines_from_the_copy(tmp_path: Path) -> None:
    w = Writer(tmp_path / "app.log")
    a = Agent([w.path])
    w.lines(5)
    a.run()
    w.lines(3)  # not read before the copy: found in the copy
    w.copytruncate()
    w.lines(2)
    a.drain(2)
    assert a.lines == w.written
    assert a.metric("logs_rotations_total", source=str(w.path), kind="copytruncate") == 1


def test_copytruncate_refilled_past_our_position_is_noticed_by_fingerprint(tmp_path: Path) -> None:
    w = Writer(tmp_path / "app.log")
    a = Agent([w.path])
    w.lines(2)
    a.run()
    w.copytruncate()
    w.lines(10)  # longer than before: the size alone would not tell
    a.drain(2)
    assert a.lines == w.written


def test_shrinking_file_without_copy_is_read_from_zero(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(b"a\nb\nc\n")
    a = Agent([log])
    assert a.run() == ["a", "b", "c"]
    log.write_bytes(b"d\n")  # truncated to 0 and rewritten, shorter
    assert a.run() == ["d"]
    assert a.metric("logs_rotations_total", source=str(log), kind="truncate") == 1


def test_compressed_and_numbered_rotations_are_not_followed(tmp_path: Path) -> None:
    (tmp_path / "app.log").write_bytes(b"live\n")
    (tmp_path / "app.log.1").write_bytes(b"rotated\n")
    (tmp_path / "app.log.2.gz").write_bytes(b"\x1f\x8b compressed")
    (tmp_path / "app.log-20240301").write_bytes(b"dateext\n")
    (tmp_path / "app.log.3.zst").write_bytes(b"zstd")
    a = Agent([tmp_path / "*"])
    assert a.drain(2) == ["live"]


def test_file_replaced_under_the_same_name_is_new(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(b"first file\n")
    a = Agent([log])
    a.run()
    tmp = tmp_path / "new.tmp"
    tmp.write_bytes(b"second file\nmore\n")
    tmp.replace(log)  # atomic replace: new inode at the same name
    assert a.drain(2) == ["second file", "more"]


def test_file_deleted_while_being_read_is_drained_then_dropped(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(b"a\n")
    a = Agent([log], rotate_wait_seconds=3.0)
    a.run()
    with open(log, "ab") as f:
        log.unlink()
        f.write(b"written after the unlink\n")
        f.flush()
        assert a.run() == ["written after the unlink"]
    a.drain(4)
    assert a.probe is not None
    follower = a.probe._sources[str(log)].follower
    assert follower.current is None and not follower.drains  # descriptor closed: space freed
    assert a.metric("logs_rotations_total", source=str(log), kind="deleted") == 1
    log.write_bytes(b"back\n")
    assert a.run() == ["back"]


# --- damaged input ------------------------------------------------------------------------------


def test_invalid_utf8_nul_bytes_and_crlf(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(b"bad \xff\xfe bytes\n\0\0\0\0after a hole\nmid\0dle\nwindows\r\n\0\0\0\n")
    a = Agent([log])
    assert a.run() == ["bad \ufffd\ufffd bytes", "after a hole", "mid\0dle", "windows"]
    src = str(log)
    assert a.metric("logs_invalid_utf8_total", source=src) == 1
    assert a.metric("logs_nul_lines_total", source=src) == 3


def test_one_megabyte_line_and_longer(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    big = b"A" * 1_000_000
    huge = b"B" * (3 * 1024 * 1024 + 5)
    log.write_bytes(b"before\n" + big + b"\n" + huge + b"\nafter\n")
    a = Agent([log])
    a.drain(2)
    assert a.lines[0] == "before" and a.lines[-1] == "after" and len(a.lines) == 4
    # The 1 MB line is read whole (under max_line_bytes); its raw text is capped for the
    # collector (max_raw_bytes), so it cannot make the collector refuse a batch.
    assert a.lines[1] == "A" * a.options.max_raw_bytes
    assert a.lines[2] == "B" * a.options.max_raw_bytes
    assert a.metric("logs_truncated_lines_total", source=str(log)) == 1  # the 3 MiB one


def test_overlong_line_cut_across_reads_and_restart(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    a = Agent([log], max_line_bytes=1000)
    append(log, b"x" * 150_000)  # no newline yet: cut at once, the rest skipped as it comes
    assert a.run() == ["x" * 1000]
    a.restart()  # the checkpoint remembers we are inside a skipped line
    append(log, b"y" * 100_000 + b"\nnext\n")
    assert a.drain(2) == ["next"]
    assert a.lines == ["x" * 1000, "next"]


def test_partial_last_line_held_then_completed_or_flushed(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    a = Agent([log], partial_line_timeout_seconds=5.0)
    append(log, b"complete\nhalf")
    assert a.run() == ["complete"]
    append(log, b" and the rest\nquiet")
    assert a.run() == ["half and the rest"]
    assert a.run(advance=1) == []
    a.restart()  # the held bytes are not in the checkpoint: read again after a restart
    assert a.run(advance=1) == []
    assert a.run(advance=6) == ["quiet"]  # the writer never finished it
    assert a.metric("logs_partial_lines_total", source=str(log)) == 1
    append(log, b" late\n")
    assert a.run() == [" late"]


def test_partial_line_flushed_when_its_file_rotates(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    a = Agent([log], partial_line_timeout_seconds=3600.0, rotate_wait_seconds=2.0)
    append(log, b"a\nunfinished")
    a.run()
    log.rename(tmp_path / "app.log.1")
    log.write_bytes(b"b\n")
    a.drain(3)
    # The old file's last line waits for its writer until the file is dropped (rotate_wait).
    assert a.lines == ["a", "b", "unfinished"]
    assert a.metric("logs_partial_lines_total", source=str(log)) == 1


# --- restarts and back-pressure -----------------------------------------------------------------


def test_restart_resumes_without_loss_or_duplicates(tmp_path: Path) -> None:
    w = Writer(tmp_path / "app.log")
    a = Agent([w.path])
    w.lines(10)
    a.run()
    w.lines(5)
    a.run(commit=False)  # read, but the agent died before the spool committed
    a.restart()
    w.lines(5)
    a.drain(2)
    assert a.lines == w.written


def test_max_lines_per_run_keeps_the_checkpoint_exact(tmp_path: Path) -> None:
    logs = [Writer(tmp_path / f"{n}.log", prefix=n) for n in ("a", "b")]
    a = Agent([tmp_path / "*.log"], max_lines_per_run=30)
    for w in logs:
        w.lines(100)
    got = a.run()
    assert len(got) == 30
    # Fair shares: a flooded file does not starve the other.
    assert sum(s.startswith("a ") for s in got) == sum(s.startswith("b ") for s in got) == 15
    assert a.metric("logs_throttled_runs_total") == 1
    a.restart()  # what was read ahead but not returned is read again, nothing else
    while a.run():
        pass
    for w in logs:
        assert [ln for ln in a.lines if ln.startswith(w.prefix + " ")] == w.written  # in order
    assert len(a.lines) == 200


def test_backpressure_pauses_reading(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    a = Agent([log])
    pressed = True
    assert a.probe is not None
    a.probe.set_backpressure(lambda: pressed)
    append(log, b"waits in the file\n")
    assert a.run() == []
    pressed = False
    assert a.run() == ["waits in the file"]
    assert a.metric("logs_paused_runs_total") == 1


def test_rotations_while_the_agent_was_down(tmp_path: Path) -> None:
    w = Writer(tmp_path / "auth.log")
    a = Agent([w.path])
    w.lines(5)
    a.run()
    w.lines(3)
    a.probe.stop()  # type: ignore[union-attr]
    w.rename()  # the old file is found as auth.log.1 by its inode
    w.lines(4)
    w.rename()  # ... and this whole generation (auth.log.1 now) was never seen
    w.lines(2)
    a.start()
    a.drain(3)
    assert a.lines == w.written


def test_copytruncate_while_the_agent_was_down(tmp_path: Path) -> None:
    w = Writer(tmp_path / "app.log")
    a = Agent([w.path])
    w.lines(5)
    a.run()
    w.lines(3)
    a.probe.stop()  # type: ignore[union-attr]
    w.copytruncate()
    w.lines(20)  # refilled past the old position: only the fingerprint tells
    a.start()
    a.drain(3)
    assert a.lines == w.written


def test_rotated_file_compressed_while_down_is_counted_lost(tmp_path: Path) -> None:
    w = Writer(tmp_path / "app.log")
    a = Agent([w.path])
    w.lines(5)
    a.run()
    w.lines(3)  # never read: lost with the file
    a.probe.stop()  # type: ignore[union-attr]
    w.rename()
    rotated = tmp_path / "app.log.1"
    rotated.with_name("app.log.1.gz").write_bytes(b"\x1f\x8b...")
    rotated.unlink()
    w.lines(2)
    a.start()
    a.drain(2)
    assert a.lines == w.written[:5] + w.written[8:]
    assert a.metric("logs_source_errors_total", source=str(w.path)) >= 1
    assert any(e.kind == "logs.source_error" and "not found" in e.fields["error"].string_value
               for e in a.events)


def test_unreadable_checkpoint_starts_at_the_end(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(b"old\n")
    a = Agent([log], start_at="end")
    a.stored = b"{not json"
    a.restart()
    a.run()
    append(log, b"new\n")
    assert a.drain(2) == ["new"]
    assert any("checkpoint unreadable" in e.fields["error"].string_value for e in a.events)


def test_unreadable_file_is_reported_once(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root reads any file")
    log = tmp_path / "secret.log"
    log.write_bytes(b"x\n")
    log.chmod(0)
    a = Agent([log])
    a.drain(3)
    assert [e.kind for e in a.events].count("logs.source_error") == 1


def test_special_file_is_an_error_reported_once(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo.log")  # opened and refused (a read would block the probe)
    a = Agent([tmp_path / "fifo.log"])
    a.drain(3)
    assert a.lines == []
    errors = [e.fields["error"].string_value for e in a.events if e.kind == "logs.source_error"]
    assert len(errors) == 1 and "not a regular file" in errors[0]
    assert a.metric("logs_source_errors_total", source=str(tmp_path / "fifo.log")) == 1


# Exactly once under random interleavings of writes, rotations, runs with small budgets, runs
# whose records never reached the spool (a crash) and restarts. One rotation style per log,
# as logrotate configures it.
_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("write"), st.integers(1, 40)),
        st.tuples(st.just("partial"), st.integers(0, 5)),
        st.tuples(st.just("rotate"), st.integers(0, 3)),
        st.tuples(st.just("run"), st.integers(1, 60)),
        st.tuples(st.just("crash"), st.integers(1, 60)),
        st.tuples(st.just("down"), st.just(0)),
    ),
    min_size=1, max_size=30,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(style=st.sampled_from(["rename", "copytruncate"]), ops=_OPS)
def test_exactly_once_under_random_rotations_and_crashes(tmp_path_factory: pytest.TempPathFactory,
                                                         style: str, ops: list[tuple[str, int]]) -> None:
    d = tmp_path_factory.mktemp("prop")
    w = Writer(d / "app.log")
    a = Agent([w.path], rotate_wait_seconds=2.0, partial_line_timeout_seconds=3600.0)
    a.run()  # the first look: what happens before it is not the probe's to know
    up = True
    for op, k in ops:
        if op in ("write", "partial"):
            w.lines(k, partial=op == "partial")
        elif op == "rotate" and style == "rename":
            w.rename(late=k)
        elif op == "rotate":
            w.copytruncate()
        elif op in ("run", "crash"):
            if not up:
                a.start()
                up = True
            a.options = replace(a.options, max_lines_per_run=k)
            assert a.probe is not None
            a.probe.options = a.options
            a.run(commit=op == "run")
            if op == "crash":
                a.restart()
        elif op == "down" and up:
            assert a.probe is not None
            a.probe.stop()
            up = False
    w.lines(0)
    if not up:
        a.start()
    a.options = replace(a.options, max_lines_per_run=20000)
    assert a.probe is not None
    a.probe.options = a.options
    a.drain(4, advance=3.0)
    assert a.lines == w.written


# --- journal ------------------------------------------------------------------------------------

FAKE_JOURNALCTL = """#!{python}
# A stand-in for journalctl: replays real `journalctl -o json` lines from a file, honouring
# --after-cursor and --lines, then with --follow prints entries appended to the file.
import json, sys, time
entries = [l for l in open({fixture!r}, encoding="utf-8") if l.strip()]
args = sys.argv[1:]
open({argv_log!r}, "a").write(json.dumps(args) + "\\n")
after = next((a.split("=", 1)[1] for a in args if a.startswith("--after-cursor=")), None)
lines = next((a.split("=", 1)[1] for a in args if a.startswith("--lines=")), "10")
cursors = [json.loads(l)["__CURSOR"] for l in entries]
if after is not None:
    if after not in cursors:
        print("Failed to seek to cursor: Invalid argument", file=sys.stderr)
        sys.exit(1)
    entries = entries[cursors.index(after) + 1:]
elif lines != "all":
    entries = entries[len(entries) - int(lines):] if int(lines) else []
sys.stdout.write("".join(entries))
sys.stdout.flush()
seen = len(cursors)
deadline = time.monotonic() + 60
while "--follow" in args and time.monotonic() < deadline:  # entries appended to the file come out
    time.sleep(0.05)
    now = [l for l in open({fixture!r}, encoding="utf-8") if l.strip()]
    sys.stdout.write("".join(now[seen:]))
    sys.stdout.flush()
    seen = max(seen, len(now))
"""


def _fake_journalctl(tmp_path: Path, fixture: Path) -> tuple[Path, Path]:
    exe = tmp_path / "bin" / "journalctl"
    exe.parent.mkdir(exist_ok=True)
    argv_log = tmp_path / "journalctl-argv.log"
    exe.write_text(FAKE_JOURNALCTL.format(python=sys.executable, fixture=str(fixture),
                                          argv_log=str(argv_log)))
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    return exe, argv_log


def _journal_lines(fixture: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in fixture.read_text().splitlines() if line.strip()]


def _messages(entries: list[dict[str, Any]]) -> list[str]:
    out = []
    for e in entries:
        m = e["MESSAGE"]
        out.append(bytes(m).decode("utf-8", "replace") if isinstance(m, list) else m)
    return out


def _wait_lines(a: Agent, n: int) -> None:
    import time
    for _ in range(100):
        a.run()
        if len(a.lines) >= n:
            return
        time.sleep(0.05)


def test_journal_follows_and_resumes_at_the_cursor(tmp_path: Path) -> None:
    fixture = tmp_path / "journal.jsonl"
    real = (FIXTURES / "journal-debian12-systemd252.jsonl").read_text().splitlines(keepends=True)
    fixture.write_text("".join(real[:8]))
    exe, argv_log = _fake_journalctl(tmp_path, fixture)
    a = Agent([], journal="on", start_at="beginning")
    a.journalctl = str(exe)
    a.restart()
    _wait_lines(a, 8)
    assert a.lines == _messages(_journal_lines(fixture))
    # journalctl is restarted after a crash, after the last entry committed: the rest comes once.
    fixture.write_text("".join(real))
    a.run(commit=False)
    a.restart()
    _wait_lines(a, len(real))
    assert a.lines == _messages(_journal_lines(fixture))
    assert "bad utf8 \ufffd\ufffd end" in a.lines  # MESSAGE as a byte array (invalid UTF-8)
    calls = [json.loads(line) for line in argv_log.read_text().splitlines()]
    assert f"--after-cursor={_journal_lines(fixture)[7]['__CURSOR']}" in calls[-1]
    a.probe.stop()  # type: ignore[union-attr]


def test_journal_start_at_end_takes_a_cursor_at_once(tmp_path: Path) -> None:
    fixture = tmp_path / "journal.jsonl"
    real = (FIXTURES / "journal-debian12-systemd252.jsonl").read_text().splitlines(keepends=True)
    fixture.write_text("".join(real[:5]))
    exe, _ = _fake_journalctl(tmp_path, fixture)
    a = Agent([], journal="on", start_at="end")
    a.journalctl = str(exe)
    a.restart()
    a.drain(3)
    assert a.lines == []  # old entries skipped
    assert a.stored is not None and json.loads(a.stored)["journal"] == json.loads(real[4])["__CURSOR"]
    fixture.write_text("".join(real[:7]))  # two entries arrive while the agent is down
    a.restart()
    _wait_lines(a, 2)
    assert a.lines == _messages(_journal_lines(fixture)[5:7])
    a.probe.stop()  # type: ignore[union-attr]


def test_journalctl_missing_is_reported_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr("warden.agent.probes._journal.DEFAULT_TOOL_PATH", str(tmp_path))
    monkeypatch.setattr("warden.agent.probes._journal._tool_path", lambda: str(tmp_path))
    a = Agent([], journal="on")
    a.drain(3)
    errors = [e for e in a.events if e.kind == "logs.source_error"]
    assert len(errors) == 1 and "journalctl not found" in errors[0].fields["error"].string_value
    b = Agent([], journal="auto")
    b.drain(2)
    assert [e.fields["error"].string_value for e in b.events if e.kind == "logs.source_missing"] == [
        "journal not read: journalctl not found"]


def test_journal_auto_defers_to_syslog_files(tmp_path: Path) -> None:
    (tmp_path / "syslog").write_bytes(b"x\n")
    exe, _ = _fake_journalctl(tmp_path, FIXTURES / "journal-debian12-systemd252.jsonl")
    a = Agent([tmp_path / "syslog"], journal="auto")
    a.journalctl = str(exe)
    a.restart()
    a.run()
    assert a.probe is not None and a.probe._journal is None
    assert any("instead" in e.fields["error"].string_value for e in a.events)


# --- wtmp / btmp --------------------------------------------------------------------------------


def test_wtmp_and_btmp_fixtures(tmp_path: Path) -> None:
    wtmp, btmp = tmp_path / "wtmp", tmp_path / "btmp"
    wtmp.touch()
    btmp.touch()
    a = Agent([], wtmp=str(wtmp), btmp=str(btmp), start_at="end")
    a.run()
    wtmp.write_bytes((FIXTURES / "wtmp-utmpdump-2.38.1").read_bytes())
    btmp.write_bytes((FIXTURES / "btmp-utmpdump-2.38.1").read_bytes())
    a.run()
    kinds = [(e.kind, e.fields["user"].string_value if "user" in e.fields else "",
              e.fields["result"].string_value if "result" in e.fields else "") for e in a.events
             if e.source in (str(wtmp), str(btmp))]
    assert kinds == [
        ("system.boot", "", ""),
        ("auth.login", "alice", "success"), ("auth.login", "bob", "success"),
        ("auth.session_closed", "", ""),
        ("auth.login", "root", "success"), ("auth.session_closed", "", ""),
        ("system.shutdown", "", ""),
        ("auth.login", "admin", "failure"), ("auth.login", "root", "failure"),
        ("auth.login", "UNKNOWN", "failure"),
    ]
    alice = next(e for e in a.events if e.fields.get("user") and e.fields["user"].string_value == "alice")
    assert alice.fields["src_ip"].string_value == "203.0.113.5"
    assert alice.fields["service"].string_value == "sshd" and alice.fields["tty"].string_value == "pts/0"
    assert alice.time_unix_nano == 1709284542654321000
    bob = next(e for e in a.events if e.fields.get("user") and e.fields["user"].string_value == "bob")
    assert bob.fields["src_ip"].string_value == "2001:db8::42"
    # Offsets are whole records.
    assert a.stored is not None
    offsets = [e["off"] for e in json.loads(a.stored)["files"][str(wtmp)]]
    assert offsets and all(o % _utmp.RECORD_SIZE == 0 for o in offsets)


def test_truncated_utmp_record_held_until_complete(tmp_path: Path) -> None:
    wtmp = tmp_path / "wtmp"
    data = (FIXTURES / "wtmp-utmpdump-2.38.1").read_bytes()
    cut = 3 * _utmp.RECORD_SIZE + 100  # three records and part of the fourth (alice's login)
    wtmp.write_bytes(data[:cut])
    a = Agent([], wtmp=str(wtmp), start_at="beginning")
    a.run()
    assert [e.kind for e in a.events] == ["system.boot"]
    a.restart()
    append(wtmp, data[cut:4 * _utmp.RECORD_SIZE])
    a.run()
    assert [e.kind for e in a.events] == ["system.boot", "auth.login"]
    assert json.loads(a.stored or b"{}")["files"][str(wtmp)][-1]["off"] == 4 * _utmp.RECORD_SIZE


def test_utmp_struct_pack_round_trip() -> None:
    import struct
    rec = struct.pack("=h2xi32s4s32s256shhiii16s20s", _utmp.USER_PROCESS, 777, b"pts/3", b"ts/3", b"carol",
                      b"bastion.example.org", 0, 0, 42, 1700000000, 500000,
                      bytes([192, 0, 2, 44]) + bytes(12), bytes(20))
    u = _utmp.decode(rec)
    assert (u.user, u.line, u.host, u.addr, u.session, u.time_ns) == (
        "carol", "pts/3", "bastion.example.org", "192.0.2.44", 42, 1700000000_500000000)
    ev = _utmp.to_event(u, "/var/log/wtmp", failed=False)
    assert ev is not None
    assert ev.event.fields["src_ip"].string_value == "192.0.2.44"
    assert ev.event.fields["src_host"].string_value == "bastion.example.org"


# --- with the real parser -----------------------------------------------------------------------


def test_real_parser_auth_log_and_journal(tmp_path: Path) -> None:
    """The default parser (warden.agent.logparse.LineParser), one per source, typed events."""
    log = tmp_path / "auth.log"
    log.write_bytes(b"")
    exe, _ = _fake_journalctl(tmp_path, FIXTURES / "journal-debian12-systemd252.jsonl")
    opts = LogsOptions(paths=(str(log),), journal="on", wtmp="", btmp="", start_at="beginning",
                       metrics_interval_seconds=3600)
    probe = LogsProbe(opts, HostPaths(), journalctl=str(exe))
    probe.restore(None)
    try:
        probe.collect()
        append(log, b"Dec 10 06:55:46 LabSZ sshd[24200]: Failed password for root from 173.234.31.186 "
                    b"port 38926 ssh2\n" + b"x" * 40_000 + b"\n")
        evs: list[records_pb2.Event] = []
        import time
        for _ in range(100):
            evs += [r.event for r in probe.collect() if r.WhichOneof("kind") == "event"]
            if sum(e.source == "journal" for e in evs) >= 13:
                break
            time.sleep(0.05)
    finally:
        probe.stop()
    from_file = [e for e in evs if e.source == str(log)]
    assert [e.kind for e in from_file] == ["auth.login", "log.line"]
    failed = from_file[0]
    assert failed.fields["result"].string_value == "failure"
    assert failed.fields["src_ip"].string_value == "173.234.31.186"
    assert len(from_file[1].raw.encode()) <= 16 * 1024  # cut to the collector's limit
    journal = [e for e in evs if e.source == "journal"]
    assert len(journal) == 13
    assert any(e.kind == "auth.login" and e.fields["user"].string_value == "deploy" for e in journal)


def test_journal_cursor_it_cannot_seek_to_is_dropped(tmp_path: Path) -> None:
    fixture = tmp_path / "journal.jsonl"
    real = (FIXTURES / "journal-debian12-systemd252.jsonl").read_text().splitlines(keepends=True)
    fixture.write_text("".join(real[:4]))
    exe, _ = _fake_journalctl(tmp_path, fixture)
    a = Agent([], journal="on", start_at="end")
    a.journalctl = str(exe)
    a.stored = json.dumps({"v": 1, "globs": [], "files": {}, "journal": "s=from-another-machine",
                           "counters": []}).encode()
    a.restart()
    import time
    for _ in range(40):  # journalctl exits; the next run notices
        a.run()
        if any(e.kind == "logs.source_error" for e in a.events):
            break
        time.sleep(0.05)
    errors = [e.fields["error"].string_value for e in a.events if e.kind == "logs.source_error"]
    assert len(errors) == 1 and "could not resume at the saved cursor" in errors[0]
    a.run()  # journalctl started again, at the end
    fixture.write_text("".join(real[:6]))  # new entries: followed
    _wait_lines(a, 2)
    assert a.lines == _messages(_journal_lines(fixture)[4:6])
    a.probe.stop()  # type: ignore[union-attr]


def test_watchdog_notices_new_files_of_a_glob_between_polls(tmp_path: Path) -> None:
    import time
    a = Agent([tmp_path / "*.log"], poll_interval_seconds=3600.0)
    assert a.probe is not None
    a.probe.start()  # watchdog on the glob's directory
    try:
        a.run()
        (tmp_path / "new.log").write_bytes(b"hello\n")
        deadline = time.monotonic() + 10
        while not a.run() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert a.lines == ["hello"]
    finally:
        a.probe.stop()


def test_watch_root() -> None:
    from warden.agent.probes.logs import _watch_root
    assert _watch_root("/var/log/nginx/*.log") == ("/var/log/nginx", False)
    assert _watch_root("/srv/*/logs/app.log") == ("/srv", True)
    assert _watch_root("/var/log/**/*.log") == ("/var/log", True)
