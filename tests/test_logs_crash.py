"""Exactly once, for real: a `warden-agent run` with only the logs probe follows two files
that a writer keeps appending to and rotating (one rename-and-create, one copytruncate), is
SIGKILLed at random points and restarted, against a real collector. At the end the
collector holds every line exactly once.

logrotate's copytruncate has a window no reader can close (lines written between its copy
and its truncate are in neither file); the writer here does the copy and the truncate with
no write in between, as a quiet daemon would see it, so the test asserts nothing is lost.
"""

from __future__ import annotations

import collections
import random
import shutil
import threading
import time
from pathlib import Path

import pytest

from warden.agent.probes import registered
from warden.collector.store.sqlite import SqliteStore

from .harness import AgentProc, CollectorProc, wait_for


class RotatingWriter(threading.Thread):
    """Appends numbered lines at `rate` per second; rotates every `every` seconds."""

    def __init__(self, path: Path, style: str, rate: float, every: float, seed: int) -> None:
        super().__init__(daemon=True, name=f"writer {path.name}")
        self.path, self.style, self.rate, self.every = path, style, rate, every
        self.rng = random.Random(seed)
        self.written: list[str] = []
        self.rotations = 0
        self.stop = threading.Event()
        path.touch()

    def run(self) -> None:
        next_rotation = time.monotonic() + self.every
        while not self.stop.is_set():
            burst = self.rng.randint(1, 8)
            lines = []
            for _ in range(burst):
                lines.append(f"{self.path.name} {len(self.written) + len(lines) + 1:07d} "
                             + "z" * self.rng.randint(0, 120))
            with open(self.path, "ab") as f:
                f.write("".join(s + "\n" for s in lines).encode())
            self.written += lines
            if time.monotonic() >= next_rotation:
                self.rotate()
                next_rotation = time.monotonic() + self.every * self.rng.uniform(0.5, 1.5)
            time.sleep(burst / self.rate)

    def rotate(self) -> None:
        gens = sorted((int(p.name.rsplit(".", 1)[1]), p)
                      for p in self.path.parent.glob(self.path.name + ".*"))
        for i, p in reversed(gens):
            p.rename(self.path.with_name(f"{self.path.name}.{i + 1}"))
        rotated = self.path.with_name(self.path.name + ".1")
        if self.style == "rename":
            self.path.rename(rotated)
            self.path.touch()
        else:
            shutil.copyfile(self.path, rotated)
            with open(self.path, "r+b") as f:
                f.truncate(0)
        self.rotations += 1


def _stored_lines(collector: CollectorProc, host: str, sources: set[str]) -> list[str]:
    store = SqliteStore(collector.root / "data" / "warden.db")
    try:
        evs = store.events(host, 0, 10**6)
    finally:
        store.close()
    return [e.event.raw for e in evs if e.event.source in sources]


@pytest.fixture
def collector(tmp_path: Path):
    c = CollectorProc(tmp_path / "collector")
    c.start()
    yield c
    c.stop()


def test_logs_exactly_once_across_rotations_and_agent_kills(collector: CollectorProc, tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    rename_log, copy_log = logs / "app.log", logs / "ct.log"
    disabled = {f"probes.{name}": {"enabled": False} for name in registered() if name != "logs"}
    agent = AgentProc(tmp_path / "agent", collector, "logs-crash", **disabled, **{"probes.logs": {
        "interval_seconds": 0.2, "paths": [str(rename_log), str(copy_log)], "journal": "off",
        "wtmp": "", "btmp": "", "start_at": "beginning", "rotate_wait_seconds": 1.0,
        "poll_interval_seconds": 1.0, "max_lines_per_run": 300}})
    agent.enroll()
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    writers = [RotatingWriter(rename_log, "rename", 300, 1.5, seed + 1),
               RotatingWriter(copy_log, "copytruncate", 300, 1.5, seed + 2)]
    agent.start()
    for w in writers:
        w.start()
    kills = 0
    deadline = time.monotonic() + 14
    try:
        while time.monotonic() < deadline:
            time.sleep(rng.uniform(0.3, 2.5))  # the agent may be mid-import, mid-run or mid-commit
            agent.kill()
            kills += 1
            agent.start()
    finally:
        for w in writers:
            w.stop.set()
            w.join(5)
    sources = {str(rename_log), str(copy_log)}
    expected = writers[0].written + writers[1].written
    try:
        wait_for(lambda: len(_stored_lines(collector, "logs-crash", sources)) >= len(expected), 30, 0.5,
                 what=f"{len(expected)} lines at the collector (seed {seed})")
        time.sleep(1.0)  # anything sent twice would arrive now
    finally:
        agent.stop()
    got = _stored_lines(collector, "logs-crash", sources)
    counts = collections.Counter(got)
    dup = {line: n for line, n in counts.items() if n > 1}
    missing = set(expected) - counts.keys()
    assert not dup and not missing and len(got) == len(expected), (
        f"seed {seed}: {len(dup)} duplicated, {len(missing)} missing of {len(expected)}; "
        f"e.g. {sorted(dup)[:3]} {sorted(missing)[:3]}")
    assert kills >= 4 and all(w.rotations >= 4 for w in writers)
    # Per file, in the order written, across rotations and restarts (the store lists newest first).
    for w in writers:
        assert [line for line in reversed(got) if line.startswith(w.path.name + " ")] == w.written
    print(f"seed {seed}: {len(expected)} lines, {kills} kills, rotations "
          f"{[w.rotations for w in writers]}")
