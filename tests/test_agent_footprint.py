"""What keeps the agent light without changing what it does: probe modules imported only when
used, records handed to the spool already serialized, the spool's bulk writes, and unmapping
the code pages only start-up used."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from warden.agent import records
from warden.agent.config import ConfigError, ProbeSettings, load_config
from warden.agent.probes import names, registered, spec
from warden.agent.scheduler import ScheduledProbe, Scheduler
from warden.agent.spool import Spool
from warden.v1 import records_pb2

ROOT = Path(__file__).resolve().parents[1]


def _python(code: str) -> str:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, capture_output=True,
                          text=True, check=True, timeout=60).stdout


# --- probe modules on demand ---------------------------------------------------------------------

def test_names_list_every_probe_and_spec_imports_only_its_own() -> None:
    out = json.loads(_python("""
        import json, sys
        from warden.agent.probes import names, spec
        before = sorted(m for m in sys.modules if m.startswith("warden.agent.probes."))
        all_names = names()
        spec("system")
        after = sorted(m for m in sys.modules if m.startswith("warden.agent.probes.") and "._" not in m)
        print(json.dumps([before, all_names, after]))
    """))
    before, all_names, after = out
    assert before == [] and after == ["warden.agent.probes.system"]
    assert all_names == sorted(registered())
    assert spec("logs") is registered()["logs"]
    with pytest.raises(KeyError):
        spec("no_such_probe")


def test_a_config_switching_probes_off_does_not_import_them(tmp_path: Path) -> None:
    off = "\n".join(f"[probes.{n}]\nenabled = false" + ("\ninterval_seconds = 3" if n == "logs" else "")
                    for n in names() if n != "system")
    (tmp_path / "agent.toml").write_text(off + "\n")
    loaded = json.loads(_python(f"""
        import json, sys
        from pathlib import Path
        from warden.agent.config import load_config
        from warden.agent.scheduler import build_probes
        cfg = load_config(Path({str(tmp_path / "agent.toml")!r}))
        built = [p.name for p in build_probes(cfg)]
        mods = sorted(m for m in sys.modules if m.startswith("warden.agent.probes.") and "._" not in m)
        print(json.dumps([built, mods]))
    """))
    assert loaded == [["system"], ["warden.agent.probes.system"]]


def test_a_probe_switched_off_reads_as_if_it_had_been_built(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text("[probes.logs]\nenabled = false\ninterval_seconds = 3\n[probes.disk]\nenabled = false\n")
    cfg = load_config(path)
    logs, disk = cfg.probes["logs"], cfg.probes["disk"]
    logs_spec, disk_spec = spec("logs"), spec("disk")
    assert logs == ProbeSettings(False, 3.0, logs_spec.config())
    assert ProbeSettings(False, 3.0, logs_spec.config()) == logs  # both ways
    assert disk == ProbeSettings(False, disk_spec.default_interval_seconds, disk_spec.config())
    assert (disk.enabled, disk.interval_seconds, disk.options) == (False, disk_spec.default_interval_seconds,
                                                                    disk_spec.config())
    assert hash(disk) == hash(ProbeSettings(False, disk_spec.default_interval_seconds, disk_spec.config()))
    path.write_text("[probes.logs]\nenabled = false\ninterval_seconds = 0\n")
    with pytest.raises(ConfigError, match="probes.logs.interval_seconds"):
        load_config(path)
    path.write_text("[probes.logs]\nenabled = false\nno_such_option = 1\n")  # checked as before
    with pytest.raises(ConfigError, match="no_such_option"):
        load_config(path)


# --- records handed over serialized ---------------------------------------------------------------

class Serialized:
    """A probe whose collect_serialized() gives some records as bytes."""

    def __init__(self) -> None:
        self.plain_calls = 0

    def collect(self) -> list[records_pb2.Record]:
        self.plain_calls += 1
        return []

    def collect_serialized(self) -> list[records_pb2.Record | bytes]:
        return [records.event("x.y", "info", {"a": 1}, time_ns=5).SerializeToString(),
                records.metric("m", 1.0, time_ns=5)]


def test_the_scheduler_hands_serialized_records_over_as_they_are() -> None:
    got: list[records_pb2.Record | bytes] = []
    probe = Serialized()
    sched = Scheduler([ScheduledProbe("s", probe, 10)], lambda out, *cp: got.extend(out), jitter_seconds=0)

    async def main() -> None:
        task = asyncio.create_task(sched.run())
        await asyncio.sleep(0.2)
        sched.stop()
        await asyncio.wait_for(task, 5)

    asyncio.run(main())
    assert probe.plain_calls == 0
    assert got[0] == records.event("x.y", "info", {"a": 1}, time_ns=5).SerializeToString()
    assert got[1] == records.metric("m", 1.0, time_ns=5)


def test_logs_collect_is_collect_serialized_decoded(tmp_path: Path) -> None:
    from warden.agent.probes import HostPaths
    from warden.agent.probes.logs import LogsOptions, LogsProbe

    log = tmp_path / "auth.log"
    log.write_bytes(b"Dec 10 06:55:46 LabSZ sshd[24200]: Invalid user webmaster from 173.234.31.186\n"
                    b"no header at all\n" + b"Dec 10 06:55:47 h app: " + b"x" * 3000 + b"\n")
    opts = LogsOptions(paths=(str(log),), start_at="beginning", journal="off", wtmp="", btmp="",
                       max_raw_bytes=1024)

    def probe() -> LogsProbe:
        return LogsProbe(opts, HostPaths(), clock=lambda: 1000.0)

    plain = [r for r in probe().collect() if r.HasField("event") and r.event.source == str(log)]
    wire = [r for r in probe().collect_serialized() if isinstance(r, bytes)]
    assert len(plain) == len(wire) == 3
    decoded = [records_pb2.Record.FromString(r) for r in wire]
    for a, b in zip(plain, decoded, strict=True):
        a.event.time_unix_nano = b.event.time_unix_nano = 0  # receive time for the header-less line
        assert a == b
    assert decoded[0].event.kind == "auth.invalid_user"
    assert len(decoded[2].event.raw) == 1024 and decoded[2].event.fields["truncated"].bool_value


# --- spool ------------------------------------------------------------------------------------------

def test_bulk_append_keeps_order_and_sequence_across_statement_chunks(tmp_path: Path) -> None:
    with Spool(tmp_path / "spool.db", 1 << 30) as s:
        sizes = (1, 511, 512, 513, 1500, 3)
        batches = [[f"r{i}-{j}".encode() for j in range(n)] for i, n in enumerate(sizes)]
        for b in batches:
            s.append(b)
        flat = [p for b in batches for p in b]
        rows = s.peek(0, 10_000, 1 << 30)
        assert rows == list(enumerate(flat, 1))
        assert s.stats().pending_bytes == sum(map(len, flat))
        assert s._db.execute("PRAGMA page_size").fetchone()[0] == 16384  # a new spool's pages
        with pytest.raises(TypeError, match="str"):
            s.append([b"ok", "not bytes"])  # type: ignore[list-item]
        assert s.stats().last_seq == len(flat)  # nothing of the refused append stored
