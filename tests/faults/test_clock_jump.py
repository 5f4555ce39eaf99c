"""Clock jumps on an agent: a simulated agent (the real spool, transport and own-health
reporter) runs under libfaketime (Debian's `faketime`, installed on demand like tests/vm.py
installs VictoriaMetrics), whose wall clock the test moves while it runs: normal, +1 day,
normal, -1 day, normal. The monotonic clock is left alone, as on a real host whose time is
stepped.

What the collector does, by design (collector/translate.py): a record stamped more than
MAX_FUTURE_SKEW_NS (1 h) ahead of the collector's clock is refused with INVALID_ARGUMENT
`bad_timestamp`, together with the rest of its batch, and the refused range goes back in
trailing metadata so the agent sets it aside (counted in its spool's rejected_total) instead of
resending it forever. Records from the past are plausible and stored as stamped.

Asserted: nothing is lost silently: every event produced is either stored exactly once or
among the records the agent counted as refused (missing events + missing own-health records
== rejected_total); the refusals are visible at the collector
(warden_collector_batches_rejected_total{reason="bad_timestamp"}) and as data
(agent_spool_rejected_total, reported once the clock is right again); events stamped a day in
the past are stored with that time; the agent does not wedge: events made after each jump back
are all stored, and its spool drains.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.harness import CollectorProc, wait_for

from .common import Fleet, _db, enroll_agents, exactly_once, sample_counts, stored_numbers

LIBS = ("/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1",
        "/usr/lib/aarch64-linux-gnu/faketime/libfaketimeMT.so.1")
DAY_NS = 86400 * 10**9
BATCH = 20


def libfaketime() -> str:
    found = next((p for p in LIBS if os.path.exists(p)), None)
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip("libfaketime is not installed and cannot be installed here: apt-get install faketime")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "install", "-y", "faketime"], ["apt-get", "update"],
                ["apt-get", "install", "-y", "faketime"]):
        ok = subprocess.run(cmd, env=env, capture_output=True, timeout=600).returncode == 0
        if ok and cmd[1] == "install":
            break
    found = next((p for p in LIBS if os.path.exists(p)), None)
    if not found:
        pytest.fail("installed faketime but found no libfaketimeMT.so.1")
    return found


def test_clock_jumps_on_an_agent_refusals_are_counted_and_nothing_wedges(tmp_path: Path,
                                                                          cleanup: ExitStack) -> None:
    lib = libfaketime()
    offset = tmp_path / "faketime"
    offset.write_text("+0\n")
    collector = CollectorProc(tmp_path / "collector")
    cleanup.callback(collector.stop)
    collector.start()
    (agent,) = enroll_agents(collector, tmp_path / "agents", ["skewed"], rpc=False)
    fleet = Fleet(tmp_path / "fleet", [agent], burst_every_s=0.05, events_per_burst=1, self_metrics_s=0.3,
                  transport={"batch_max_records": BATCH},
                  env={"LD_PRELOAD": lib, "FAKETIME_TIMESTAMP_FILE": str(offset),
                       "FAKETIME_DONT_FAKE_MONOTONIC": "1", "FAKETIME_CACHE_DURATION": "1"})
    cleanup.callback(fleet.kill)
    fleet.start()
    marks: dict[str, int] = {}
    try:
        fleet.wait_total("last_ack_seq", 60)

        def jump(to: str, name: str) -> None:
            marks[name + "_before"] = fleet.total("events")
            offset.write_text(to + "\n")
            time.sleep(1.3)  # libfaketime re-reads the offset every second
            marks[name] = fleet.total("events")

        jump("+1d", "future")
        wait_for(lambda: fleet.agents()[0]["errors"].get("INVALID_ARGUMENT", 0) >= 2, 30,
                 what="future records refused")
        jump("+0", "back1")
        fleet.wait_total("last_ack_seq", fleet.total("last_ack_seq") + 40, timeout=30)
        jump("-1d", "past")
        fleet.wait_total("last_ack_seq", fleet.total("last_ack_seq") + 30, timeout=30)
        jump("+0", "back2")
        fleet.wait_total("last_ack_seq", fleet.total("last_ack_seq") + 30, timeout=30)
        time.sleep(0.7)  # one more own-health report with the clock right
        result = fleet.result()
    finally:
        fleet.kill()
    try:
        (a,) = result["agents"]
        assert result["drained"] and a["append_errors"] == 0, (a, fleet.log.read_text()[-3000:])
        numbers = stored_numbers(collector, "skewed")
        missing, dup = exactly_once(numbers, range(1, a["events"] + 1))
        assert not dup
        rejected = a["spool"]["rejected_total"]
        assert rejected > 0 and missing
        # Every record not stored was refused and counted: nothing vanished silently.
        own_lost = (a["appended_records"] - a["events"]) - sample_counts(collector, "agent_")["skewed"] \
            - a["spool"]["pending_records"]
        assert len(missing) + own_lost == rejected, (len(missing), own_lost, rejected)
        # Only what was stamped a day ahead (and the rest of its batches) was refused.
        slack = BATCH + 60  # a batch, and the events made while libfaketime picks up the offset
        assert marks["future_before"] - slack <= missing[0] and missing[-1] <= marks["back1"] + slack, \
            (marks, missing[0], missing[-1])
        assert all(n in set(numbers) for n in range(marks["back1"] + slack, a["events"] + 1))
        # The refusals are visible at the collector and as the agent's own data.
        assert collector.counter('warden_collector_batches_rejected_total{reason="bad_timestamp"}') >= 1
        host = collector.host("skewed") or {}
        reported = [s for s in host["latest_metrics"] if s["name"] == "agent_spool_rejected_total"]
        assert reported and reported[0]["points"][-1][1] == rejected
        # A day in the past is plausible: stored as stamped.
        db = _db(collector)
        try:
            times = [r[0] for r in db.execute(
                "SELECT time_ns FROM events WHERE host_id = 'skewed' AND kind = 'test.numbered' "
                "AND json_extract(fields, '$.n') BETWEEN ? AND ?", (marks["past"], marks["back2_before"]))]
        finally:
            db.close()
        assert times and min(times) < time.time_ns() - DAY_NS + 3600 * 10**9
    finally:
        collector.stop()
