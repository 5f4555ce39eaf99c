import hashlib
import os
import shutil
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Iterable
from datetime import UTC, timedelta, timezone
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

from warden.agent.config import ConfigError, load_config
from warden.agent.probes import HostPaths, _borg, _restic, registered
from warden.agent.probes.backups import (
    BackupSetOptions,
    BackupsOptions,
    BackupsProbe,
    ToolError,
    parse_duration,
    parse_size,
    run_tool,
)
from warden.v1 import records_pb2

FIXTURES = Path(__file__).parent / "fixtures" / "backups"
HOUR = 3600.0


# --- helpers ------------------------------------------------------------------------------------


def opts(sets: dict[str, BackupSetOptions], **kw: Any) -> BackupsOptions:
    """Options for tests: files count as soon as written; the inventory is sent every run."""
    kw.setdefault("settle_seconds", 0)
    kw.setdefault("inventory_interval_seconds", 1e-9)
    return BackupsOptions(sets=MappingProxyType(sets), **kw)


def make(tmp_path: Path, sets: dict[str, BackupSetOptions], **kw: Any) -> BackupsProbe:
    return BackupsProbe(opts(sets, **kw), HostPaths(), tmp_path / "state")


def backup(directory: Path, name: str, content: bytes | int, age_hours: float = 1.0) -> Path:
    """A backup file `age_hours` old: `content` itself, or that many random bytes."""
    directory.mkdir(parents=True, exist_ok=True)
    p = directory / name
    p.write_bytes(os.urandom(content) if isinstance(content, int) else content)
    when = time.time() - age_hours * HOUR
    os.utime(p, (when, when))
    return p


def metrics(out: Iterable[records_pb2.Record], name: str = "") -> dict[str, float]:
    """Metric values of set `name` (any set when ""), by metric name."""
    return {
        r.metric.name: r.metric.value
        for r in out
        if r.HasField("metric") and (not name or r.metric.labels["set"] == name)
    }


def events(out: Iterable[records_pb2.Record], kind: str = "") -> list[records_pb2.Event]:
    return [r.event for r in out if r.HasField("event") and (not kind or r.event.kind == kind)]


def fields(ev: records_pb2.Event) -> dict[str, Any]:
    return {k: getattr(v, v.WhichOneof("kind")) for k, v in ev.fields.items()}


def inventory(out: Iterable[records_pb2.Record]) -> dict[str, records_pb2.BackupSet]:
    (snap,) = [r.inventory for r in out if r.HasField("inventory")]
    assert snap.WhichOneof("section") == "backups"
    return {s.name: s for s in snap.backups.sets}


def sha256(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def files_set(*paths: Path | str, **kw: Any) -> BackupSetOptions:
    return BackupSetOptions(paths=tuple(str(p) for p in paths), **kw)


# --- parsers: restic ----------------------------------------------------------------------------


def test_restic_parser_on_captured_restic_0_14_output() -> None:
    snaps = _restic.parse_snapshots((FIXTURES / "restic-0.14.0-snapshots.json").read_bytes())
    assert [s.short_id for s in snaps] == ["e41887c1", "a51ff944"]
    first = snaps[0]
    assert first.id.startswith("e41887c1") and len(first.id) == 64
    assert first.hostname == "fixturehost" and first.tags == ("nightly",)
    assert first.size_bytes is None  # no summary before restic 0.17
    # "2026-11-22T11:18:01.302963816Z": nanoseconds and a Z zone.
    assert first.time == pytest.approx(1795346281.302963816, abs=1e-6)


def test_restic_parser_on_restic_0_17_output_with_summary() -> None:
    (snap,) = _restic.parse_snapshots((FIXTURES / "restic-0.17.3-snapshots-issue.json").read_bytes())
    assert snap.short_id == "490d1990" and snap.paths == ("/etc/hosts",)
    assert snap.size_bytes == 7941120
    # "2025-03-11T08:00:01.664908291+01:00" is 07:00:01.66 UTC.
    assert snap.time == pytest.approx(1741676401.664908291, abs=1e-6)


def test_restic_parser_reads_group_by_output() -> None:
    # `restic snapshots --group-by host --json` nests the same objects in groups (shape from
    # restic's docs; the items are the captured 0.14 snapshots).
    import json

    items = json.loads((FIXTURES / "restic-0.14.0-snapshots.json").read_bytes())
    grouped = [{"group_key": {"hostname": "fixturehost"}, "snapshots": items}]
    old_style = [{"GroupKey": {"Hostname": "fixturehost"}, "Snapshots": items}]
    for doc in (grouped, old_style):
        assert [s.short_id for s in _restic.parse_snapshots(json.dumps(doc))] == ["e41887c1", "a51ff944"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2018-11-14T15:16:31.605184277+01:00", 1542204991.605184277),
        ("2018-11-14T14:16:31.605184277Z", 1542204991.605184277),
        ("2018-11-14T14:16:31Z", 1542204991.0),
        ("2018-11-14T09:16:31.5-0500", 1542204991.5),
        ("2018-11-14 14:16:31.000000+00:00", 1542204991.0),
        ("2018-11-14T14:16", 1542204960.0),  # zone-less: taken in the given zone (UTC here)
    ],
)
def test_parse_timestamp(text: str, expected: float) -> None:
    assert _restic.parse_timestamp(text, UTC) == pytest.approx(expected, abs=1e-6)


def test_parse_timestamp_zone_less_uses_the_given_zone_and_rejects_garbage() -> None:
    plus2 = timezone(timedelta(hours=2))
    assert _restic.parse_timestamp("2017-08-07T12:27:20", plus2) == 1502101640.0
    for bad in ("", "yesterday", "2017-13-40T12:27:20", "2017-08-07", "2017-08-07T12:27:20+1", None, 3):
        with pytest.raises(ValueError):
            _restic.parse_timestamp(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("fixture", ["restic-0.14.0-snapshots.json", "restic-0.17.3-snapshots-issue.json"])
def test_restic_parser_says_truncated_for_every_cut(fixture: str) -> None:
    data = (FIXTURES / fixture).read_bytes().rstrip()
    for cut in range(len(data)):
        with pytest.raises(_restic.ParseError) as err:
            _restic.parse_snapshots(data[:cut])
        assert "truncated" in str(err.value) or "empty" in str(err.value), (cut, str(err.value))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty output"),
        (b"Fatal: unable to open config file\n", "invalid JSON"),
        (b"\xff\xfe[]", "not UTF-8"),
        (b'{"archives": []}', "expected a JSON array"),
        (b"[1, 2]", "item 0: expected an object"),
        (b'[{"time": "2024-01-01T00:00:00Z"}]', "no snapshot id"),
        (b'[{"id": "abc", "time": "last tuesday"}]', "not a timestamp"),
        (b'[{"id": "abc"}]', "not a timestamp"),
        (b"[" * 100_000, "truncated JSON|nested too deeply"),
        (b'[{"id": "a"}] trailing', "invalid JSON"),
    ],
)
def test_restic_parser_rejects_garbage_with_a_clear_message(data: bytes, message: str) -> None:
    with pytest.raises(_restic.ParseError, match=message):
        _restic.parse_snapshots(data)


def test_restic_parser_ignores_odd_optional_fields() -> None:
    data = b'[{"id": "0123456789abcdef", "time": "2024-01-01T00:00:00Z", "paths": "x", "tags": null,'
    data += b' "summary": {"total_bytes_processed": -5}, "hostname": 7}]'
    (snap,) = _restic.parse_snapshots(data)
    assert (snap.short_id, snap.paths, snap.tags, snap.size_bytes, snap.hostname) == (
        "01234567",
        (),
        (),
        None,
        "",
    )


# --- parsers: borg ------------------------------------------------------------------------------


def test_borg_parser_on_captured_borg_1_2_output() -> None:
    listing = _borg.parse_list((FIXTURES / "borg-1.2.4-list.json").read_bytes(), UTC)
    assert [a.name for a in listing.archives] == ["db-2024-one", "db-2024-two"]
    assert listing.archives[1].time == 1795346286.0  # "2026-11-22T11:18:06.000000", zone-less
    assert listing.archives[0].id.startswith("4a1733a6")
    assert listing.repository.endswith("/borg-repo")


def test_borg_parser_on_the_documented_example() -> None:
    # borg 1.0-style archive objects: only name, id and start; no microseconds.
    listing = _borg.parse_list((FIXTURES / "borg-list-docs-example.json").read_bytes(), UTC)
    (archive,) = listing.archives
    assert archive.name == "host-system-backup-2017-02-27"
    assert archive.time == 1502108840.0  # 2017-08-07T12:27:20 UTC
    assert listing.repository == "/home/user/repository"


def test_borg_parser_says_truncated_for_every_cut_and_rejects_garbage() -> None:
    data = (FIXTURES / "borg-1.2.4-list.json").read_bytes().rstrip()
    for cut in range(len(data)):
        with pytest.raises(_borg.ParseError, match="truncated|empty"):
            _borg.parse_list(data[:cut])
    for bad, message in [
        (b"[]", "expected a JSON object"),
        (b'{"repository": {}}', "no 'archives' array"),
        (b'{"archives": [{"start": "2017-08-07T12:27:20"}]}', "no archive name"),
        (b'{"archives": [{"name": "x", "start": "soon"}]}', r"archives\[0\] \(x\): not a timestamp"),
        (b'{"archives": ["x"]}', "expected an object"),
    ]:
        with pytest.raises(_borg.ParseError, match=message):
            _borg.parse_list(bad)


# --- options ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("26h", 93600), ("90m", 5400), ("1d12h", 129600), ("3600", 3600), ("1.5h", 5400), ("2w", 1209600)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("text", "size"),
    [("0", 0), ("1", 1), ("500K", 512000), ("10MiB", 10485760), ("10M", 10485760), ("2GB", 2 * 10**9)],
)
def test_parse_size(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("bad", ["", "h", "26 hours", "1x", "-5h"])
def test_parse_duration_rejects(bad: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(bad)


@pytest.mark.parametrize("bad", ["", "ten", "5Mi", "1.2.3", "-1"])
def test_parse_size_rejects(bad: str) -> None:
    with pytest.raises(ValueError, match="not a size"):
        parse_size(bad)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"source": "tape"}, "not one of files, restic, borg"),
        ({"paths": ()}, "needs paths"),
        ({"paths": ("backups/*.tar",)}, "not absolute"),
        ({"paths": ("/b",), "max_age": "soon"}, "not a duration"),
        ({"paths": ("/b",), "min_size": "big"}, "not a size"),
        ({"paths": ("/b",), "repository": "/r"}, "for restic and borg sets only"),
        ({"source": "restic", "paths": ("/b",)}, "for files sets"),
        ({"source": "borg", "manifest": "/m"}, "for files sets"),
    ],
)
def test_set_options_are_checked(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BackupSetOptions(**kwargs)


def test_sets_are_read_from_toml(tmp_path: Path) -> None:
    cfg = tmp_path / "agent.toml"
    cfg.write_text(
        """
        [probes.backups]
        shrink_ratio = 0.25
        [probes.backups.sets.db]
        paths = ["/srv/backups/db-*.sql.gz"]
        max_age = "26h"
        min_size = "10MiB"
        expected_count = 7
        offsite_path = "/mnt/offsite/db"
        manifest = "/srv/backups/SHA256SUMS"
        [probes.backups.sets.home]
        source = "restic"
        repository = "/srv/restic"
        password_file = "/etc/warden/restic.pw"
        extra_args = ["--host", "files1"]
        """
    )
    options = load_config(cfg).probes["backups"].options
    assert options.shrink_ratio == 0.25
    assert set(options.sets) == {"db", "home"}
    db = options.sets["db"]
    assert db.paths == ("/srv/backups/db-*.sql.gz",) and db.offsite_path == Path("/mnt/offsite/db")
    assert (db.max_age_seconds, db.min_size_bytes, db.expected_count) == (93600, 10485760, 7)
    home = options.sets["home"]
    assert (home.source, home.password_file, home.extra_args) == (
        "restic",
        Path("/etc/warden/restic.pw"),
        ("--host", "files1"),
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[probes.backups.sets.db]\npath = ['/x']\n", r"probes.backups.sets.db: unknown key 'path'"),
        (
            "[probes.backups.sets.db]\npaths = ['/x']\nmax_age = 'soon'\n",
            r"\[probes.backups.sets.db\].*duration",
        ),
        ("[probes.backups.sets.db]\npaths = '/x'\n", r"probes.backups.sets.db.paths: expected an array"),
        ("[probes.backups]\nsets = 3\n", r"probes.backups.sets: expected a table"),
        ("[probes.backups.sets]\ndb = 'x'\n", r"probes.backups.sets.db: expected a table"),
        ("[probes.backups.sets.db]\npaths = ['/x']\nexpected_count = -1\n", r"expected_count: must be >= 0"),
    ],
)
def test_bad_set_config_names_the_key(tmp_path: Path, text: str, message: str) -> None:
    cfg = tmp_path / "agent.toml"
    cfg.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(cfg)


# --- registration and an empty configuration ----------------------------------------------------


def test_registered_with_documented_defaults() -> None:
    spec = registered()["backups"]
    assert spec.cls is BackupsProbe and spec.config is BackupsOptions
    assert spec.default_interval_seconds == 300 and spec.default_enabled
    o = BackupsOptions()
    assert dict(o.sets) == {} and o.shrink_ratio == 0.5 and o.offsite_hash_max_bytes == 1024**3
    s = BackupSetOptions(paths=("/b",))
    assert (s.source, s.max_age_seconds, s.min_size_bytes, s.expected_count) == ("files", 93600, 1, 0)


def test_no_sets_emit_only_an_empty_section(tmp_path: Path) -> None:
    probe = BackupsProbe(BackupsOptions(), HostPaths(), tmp_path / "state")
    probe.validate()
    probe.start()
    try:
        out = probe.collect()
        assert len(out) == 1 and inventory(out) == {}
        assert probe.collect() == []  # unchanged: not resent before inventory_interval_seconds
    finally:
        probe.stop()
    assert not (tmp_path / "state").exists()  # nothing to remember, nothing written


# --- files: freshness and size ------------------------------------------------------------------


def test_fresh_set_reports_age_size_count_and_ratio(tmp_path: Path) -> None:
    d = tmp_path / "b"
    for i, age in enumerate([100, 76, 52, 28]):
        backup(d, f"db-{i}.tar", 1000 + i, age)  # sizes 1000..1003
    newest = backup(d, "db-4.tar", 1100, 4)
    (d / "notes.txt").write_text("not a backup")
    (d / "sub.tar").mkdir()  # a directory matching the glob is not a backup
    backup(d, ".partial.tar", 5, 1)  # hidden: as glob, not matched by *.tar

    probe = make(tmp_path, {"db": files_set(d / "*.tar", max_age="26h", expected_count=5)})
    out = probe.collect()
    m = metrics(out, "db")
    assert m["backup_check_ok"] == 1 and m["backup_count"] == 5
    assert m["backup_newest_age_seconds"] == pytest.approx(4 * HOUR, abs=60)
    assert m["backup_newest_size_bytes"] == 1100
    assert m["backup_size_ratio_to_median"] == pytest.approx(1100 / 1001.5)
    assert (m["backup_stale"], m["backup_too_small"], m["backup_count_short"]) == (0, 0, 0)
    assert "backup_offsite_ok" not in m and "backup_verified" not in m  # not configured
    assert events(out) == []
    inv = inventory(out)["db"]
    assert inv.source == "files" and inv.newest == str(newest) and inv.count == 5
    assert inv.newest_size_bytes == 1100 and inv.median_previous_size_bytes == 1001
    assert inv.newest_time_unix == int(newest.stat().st_mtime)
    assert inv.verification == "not_configured" and not inv.offsite_configured and inv.error == ""


def test_stale_is_an_event_on_change_only(tmp_path: Path) -> None:
    d = tmp_path / "b"
    backup(d, "db-1.tar", 100, age_hours=30)
    probe = make(tmp_path, {"db": files_set(d, max_age="26h")})  # a directory: the files in it
    out = probe.collect()
    assert metrics(out)["backup_stale"] == 1
    (ev,) = events(out)
    assert ev.kind == "backup.stale" and ev.severity == records_pb2.SEVERITY_ERROR
    assert fields(ev)["set"] == "db" and fields(ev)["resolved"] is False
    assert fields(ev)["age_seconds"] == pytest.approx(30 * HOUR, abs=60)
    assert events(probe.collect()) == []  # still stale: not said again

    backup(d, "db-2.tar", 100, age_hours=1)
    out = probe.collect()
    assert metrics(out)["backup_stale"] == 0
    (ev,) = events(out)
    assert ev.kind == "backup.stale" and fields(ev)["resolved"] is True
    assert ev.severity == records_pb2.SEVERITY_INFO


def test_shrunk_backup_is_too_small(tmp_path: Path) -> None:
    d = tmp_path / "b"
    for i in range(4):
        backup(d, f"db-{i}.tar", 10_000, age_hours=100 - 24 * i)
    backup(d, "db-4.tar", 3_000, age_hours=2)  # 0.3 of its predecessors
    probe = make(tmp_path, {"db": files_set(d / "db-*.tar")})
    out = probe.collect()
    m = metrics(out)
    assert m["backup_size_ratio_to_median"] == pytest.approx(0.3)
    assert m["backup_too_small"] == 1
    (ev,) = events(out, "backup.shrunk")
    assert ev.severity == records_pb2.SEVERITY_WARNING
    assert fields(ev)["ratio_to_median"] == pytest.approx(0.3) and fields(ev)["size_bytes"] == 3000

    relaxed = make(tmp_path / "relaxed", {"db": files_set(d / "db-*.tar")}, shrink_ratio=0.2)
    assert metrics(relaxed.collect())["backup_too_small"] == 0


def test_min_size_and_count_short(tmp_path: Path) -> None:
    d = tmp_path / "b"
    backup(d, "only.tar", 10, age_hours=1)
    probe = make(tmp_path, {"db": files_set(d, min_size="1K", expected_count=7)})
    out = probe.collect()
    m = metrics(out)
    assert (m["backup_too_small"], m["backup_count_short"], m["backup_count"]) == (1, 1, 1)
    assert "backup_size_ratio_to_median" not in m  # nothing to compare with
    assert {e.kind for e in events(out)} == {"backup.shrunk", "backup.count_short"}


def test_a_file_still_being_written_is_not_yet_a_backup(tmp_path: Path) -> None:
    d = tmp_path / "b"
    backup(d, "db-1.tar", 1000, age_hours=20)
    backup(d, "db-2.tar", 10, age_hours=0)  # modified just now: a backup in progress
    probe = make(tmp_path, {"db": files_set(d)}, settle_seconds=120)
    m = metrics(probe.collect())
    assert m["backup_count"] == 1 and m["backup_newest_size_bytes"] == 1000


def test_overlapping_patterns_count_a_file_once(tmp_path: Path) -> None:
    d = tmp_path / "b"
    backup(d, "db-1.tar", 10)
    backup(d, "db-2.tar", 10)
    probe = make(tmp_path, {"db": files_set(d / "*.tar", d / "db-1.tar", d)})
    assert metrics(probe.collect())["backup_count"] == 2


def test_glob_in_a_directory_component(tmp_path: Path) -> None:
    for host in ("web1", "web2"):
        backup(tmp_path / "b" / host, "site.tar", 50, age_hours=3 if host == "web1" else 2)
    probe = make(tmp_path, {"sites": files_set(tmp_path / "b" / "*" / "site.tar")})
    out = probe.collect()
    assert metrics(out)["backup_count"] == 2
    assert inventory(out)["sites"].newest == str(tmp_path / "b" / "web2" / "site.tar")
    recursive = make(tmp_path / "r", {"sites": files_set(tmp_path / "b" / "**" / "*.tar")})
    assert metrics(recursive.collect())["backup_count"] == 2


def test_host_paths_are_read_under_rootfs_and_reported_as_on_the_host(tmp_path: Path) -> None:
    root = tmp_path / "host"
    backup(root / "srv" / "backups", "db.tar", 100)
    options = opts({"db": files_set("/srv/backups/*.tar")})
    probe = BackupsProbe(options, HostPaths(rootfs=root), tmp_path / "state")
    inv = inventory(probe.collect())["db"]
    assert inv.newest == "/srv/backups/db.tar" and inv.count == 1 and inv.error == ""


# --- files: bad input ---------------------------------------------------------------------------


def test_missing_path_is_a_clear_status_not_a_failure(tmp_path: Path) -> None:
    probe = make(tmp_path, {"db": files_set(tmp_path / "nowhere" / "*.tar", tmp_path / "gone.tar")})
    out = probe.collect()
    m = metrics(out)
    assert m["backup_check_ok"] == 1 and m["backup_count"] == 0 and m["backup_stale"] == 1
    assert "backup_newest_age_seconds" not in m
    inv = inventory(out)["db"]
    assert inv.error == f"not found: {tmp_path / 'nowhere'}, {tmp_path / 'gone.tar'}"
    (ev,) = events(out)
    assert ev.kind == "backup.stale" and fields(ev)["reason"] == "no backup found"


def test_permission_denied_is_reported_once_and_the_other_sets_go_on(tmp_path: Path) -> None:
    denied, ok = tmp_path / "denied", tmp_path / "ok"
    backup(denied, "db.tar", 10)
    backup(ok, "db.tar", 10)

    def scandir(path: str) -> Any:
        if path == str(denied):
            raise PermissionError(13, "Permission denied", path)
        return os.scandir(path)

    options = opts({"a": files_set(denied), "b": files_set(ok)})
    probe = BackupsProbe(options, HostPaths(), tmp_path / "state", scandir=scandir)
    out = probe.collect()
    assert metrics(out, "a") == {"backup_check_ok": 0}  # no verdicts from what could not be read
    assert metrics(out, "b")["backup_check_ok"] == 1 and metrics(out, "b")["backup_count"] == 1
    assert inventory(out)["a"].error == f"permission denied: {denied}"
    (ev,) = events(out)
    assert ev.kind == "backup.check_failed" and fields(ev)["error"] == f"permission denied: {denied}"
    assert events(probe.collect()) == []  # reported once

    fixed = BackupsProbe(options, HostPaths(), tmp_path / "state")  # a restart, now allowed
    out = fixed.collect()
    (ev,) = events(out)
    assert ev.kind == "backup.check_failed" and fields(ev)["resolved"] is True
    assert metrics(out, "a")["backup_check_ok"] == 1


@pytest.mark.skipif(
    os.geteuid() == 0, reason="root reads a mode-000 directory anyway: see the injected test above"
)
def test_permission_denied_for_real(tmp_path: Path) -> None:
    d = tmp_path / "locked"
    backup(d, "db.tar", 10)
    d.chmod(0)
    try:
        out = make(tmp_path, {"db": files_set(d)}).collect()
        assert inventory(out)["db"].error.startswith("permission denied")
    finally:
        d.chmod(0o700)


def test_a_glob_matching_100000_files_is_bounded_in_time_and_memory(tmp_path: Path) -> None:
    d = tmp_path / "many"
    d.mkdir()
    for i in range(100_000):
        os.close(os.open(d / f"b-{i:06d}.tar", os.O_CREAT | os.O_WRONLY, 0o600))
    newest = backup(d, "b-newest.tar", 10, age_hours=-0.01)  # written after the others
    probe = make(tmp_path, {"many": files_set(d / "b-*.tar", min_size="0")})

    t0 = time.monotonic()
    out = probe.collect()
    assert time.monotonic() - t0 < 5
    assert metrics(out)["backup_count"] == 100_001
    assert inventory(out)["many"].newest == str(newest)

    tracemalloc.start()
    try:
        probe.collect()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * 1024 * 1024  # the newest few are kept, never a list of all 100,000

    limited = make(tmp_path / "limited", {"many": files_set(d / "b-*.tar")}, scan_limit=1000)
    out = limited.collect()
    assert metrics(out) == {"backup_check_ok": 0}
    assert "more than 1000 files match" in inventory(out)["many"].error


# --- files: off-site and manifest ---------------------------------------------------------------


def test_offsite_copy_present_and_matching(tmp_path: Path) -> None:
    d, off = tmp_path / "b", tmp_path / "offsite"
    backup(d, "db-1.tar", 500, age_hours=25)
    newest = backup(d, "db-2.tar", 500, age_hours=1)
    probe = make(tmp_path, {"db": files_set(d, offsite_path=off)})

    out = probe.collect()  # no copy yet
    assert metrics(out)["backup_offsite_ok"] == 0
    inv = inventory(out)["db"]
    assert (inv.offsite_configured, inv.offsite_present, inv.offsite_matches) == (True, False, False)
    (ev,) = events(out)
    assert ev.kind == "backup.offsite_missing" and fields(ev)["copy"] == str(off / "db-2.tar")

    off.mkdir()
    shutil.copy2(newest, off / "db-2.tar")
    out = probe.collect()
    assert metrics(out)["backup_offsite_ok"] == 1
    assert inventory(out)["db"].offsite_matches
    assert fields(events(out, "backup.offsite_missing")[0])["resolved"] is True

    (off / "db-2.tar").write_bytes(os.urandom(500))  # same name and size, other bytes
    out = probe.collect()
    assert metrics(out)["backup_offsite_ok"] == 0
    inv = inventory(out)["db"]
    assert inv.offsite_present and not inv.offsite_matches


def test_large_offsite_copy_is_compared_by_size_only(tmp_path: Path) -> None:
    d, off = tmp_path / "b", tmp_path / "offsite"
    backup(d, "db.tar", 2000)
    backup(off, "db.tar", 2000)  # other bytes, same size
    probe = make(tmp_path, {"db": files_set(d, offsite_path=off)}, offsite_hash_max_bytes=1000)
    assert metrics(probe.collect())["backup_offsite_ok"] == 1


@pytest.mark.skipif(shutil.which("sha256sum") is None, reason="coreutils sha256sum not installed")
def test_manifest_written_by_sha256sum_verifies_the_newest(tmp_path: Path) -> None:
    d = tmp_path / "b"
    backup(d, "db-1.tar", 300, age_hours=30)
    backup(d, "db-2.tar", 300, age_hours=2)

    def manifest(*args: str, name: str = "SHA256SUMS") -> Path:
        text = subprocess.run(["sha256sum", *args], cwd=d, check=True, capture_output=True, text=True).stdout
        (tmp_path / "m").mkdir(exist_ok=True)
        (tmp_path / "m" / name).write_text(text)
        return tmp_path / "m" / name

    m = manifest("db-1.tar", "db-2.tar")  # relative names, as run in the backup directory
    probe = make(tmp_path, {"db": files_set(d / "*.tar", manifest=str(m))})
    out = probe.collect()
    assert metrics(out)["backup_verified"] == 1 and inventory(out)["db"].verification == "ok"

    manifest("--tag", str(d / "db-2.tar"))  # BSD format, absolute name
    assert inventory(probe.collect())["db"].verification == "ok"

    manifest(str(d / "db-1.tar"))  # no entry for the newest
    out = probe.collect()
    assert metrics(out)["backup_verified"] == 0 and inventory(out)["db"].verification == "missing"
    (ev,) = events(out)
    assert ev.kind == "backup.verification_failed" and fields(ev)["result"] == "missing"

    m.write_text(f"{'0' * 64}  db-2.tar\n")  # a digest that does not match
    out = probe.collect()
    assert inventory(out)["db"].verification == "mismatch"
    assert events(out) == []  # still failing: no second event

    # A glob of per-backup manifests: the newest is found in its own file.
    m.unlink()
    manifest("db-2.tar", name="db-2.tar.sha256")
    globbed = make(tmp_path / "g", {"db": files_set(d / "*.tar", manifest=str(tmp_path / "m" / "*.sha256"))})
    assert inventory(globbed.collect())["db"].verification == "ok"


def test_manifest_not_found_is_missing(tmp_path: Path) -> None:
    d = tmp_path / "b"
    backup(d, "db.tar", 10)
    probe = make(tmp_path, {"db": files_set(d, manifest=str(tmp_path / "SHA256SUMS"))})
    assert inventory(probe.collect())["db"].verification == "missing"


# --- files: backups never altered ---------------------------------------------------------------


class CountingOpener:
    def __init__(self) -> None:
        self.opened: list[str] = []

    def __call__(self, path: str) -> Any:
        self.opened.append(path)
        return open(path, "rb")  # noqa: SIM115


def test_a_recorded_backup_altered_later_is_a_critical_event(tmp_path: Path) -> None:
    d = tmp_path / "b"
    backup(d, "db-1.tar", 1000, age_hours=30)
    newest = backup(d, "db-2.tar", 1000, age_hours=5)
    probe = make(tmp_path, {"db": files_set(d)})
    assert events(probe.collect()) == []  # the first run records
    before = sha256(newest)

    with newest.open("r+b") as f:  # altered in place, and its mtime moves
        f.write(b"tampered")
    out = probe.collect()
    (ev,) = events(out, "backup.modified")
    assert ev.severity == records_pb2.SEVERITY_CRITICAL
    f_ = fields(ev)
    assert f_["path"] == str(newest) and f_["set"] == "db"
    assert f_["recorded_sha256"] == before and f_["sha256"] == sha256(newest)
    assert events(probe.collect(), "backup.modified") == []  # one alert per change


def test_restart_neither_realerts_nor_rehashes(tmp_path: Path) -> None:
    d = tmp_path / "b"
    for i in range(3):
        backup(d, f"db-{i}.tar", 100, age_hours=10 - i)
    sets = {"db": files_set(d)}
    first = CountingOpener()
    options = opts(sets)
    BackupsProbe(options, HostPaths(), tmp_path / "state", opener=first).collect()
    assert len(first.opened) == 3
    state = tmp_path / "state" / "backups.json"
    assert state.exists() and state.stat().st_mode & 0o777 == 0o600

    again = CountingOpener()
    out = BackupsProbe(options, HostPaths(), tmp_path / "state", opener=again).collect()
    assert again.opened == [] and events(out) == []

    # Altered while the agent was down (mtime put back, size the same): the daily re-check finds it.
    target = d / "db-2.tar"
    st = target.stat()
    target.write_bytes(os.urandom(100))
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    quiet = BackupsProbe(options, HostPaths(), tmp_path / "state").collect()
    assert events(quiet, "backup.modified") == []  # same size and mtime: not re-hashed...
    due = opts(sets, reverify_interval_seconds=1e-9)
    out = BackupsProbe(due, HostPaths(), tmp_path / "state").collect()
    assert len(events(out, "backup.modified")) == 1  # ...until re-verification is due


def test_watchdog_notices_a_change_that_puts_the_mtime_back(tmp_path: Path) -> None:
    d = tmp_path / "b"
    newest = backup(d, "db.tar", 4096, age_hours=3)
    probe = make(tmp_path, {"db": files_set(d / "*.tar")})
    probe.start()
    try:
        assert events(probe.collect()) == []
        st = newest.stat()
        with newest.open("r+b") as f:
            f.write(b"X" * 16)  # same size...
        os.utime(newest, ns=(st.st_atime_ns, st.st_mtime_ns))  # ...and the old mtime
        deadline = time.monotonic() + 5
        while not probe._touched and time.monotonic() < deadline:
            time.sleep(0.02)
        out = probe.collect()
    finally:
        probe.stop()
    (ev,) = events(out, "backup.modified")
    assert fields(ev)["path"] == str(newest) and fields(ev)["sha256"] == sha256(newest)


def test_an_altered_backup_made_to_look_old_is_still_caught(tmp_path: Path) -> None:
    d = tmp_path / "b"
    victim = backup(d, "db-1.tar", 100, age_hours=5)
    probe = make(tmp_path, {"db": files_set(d)}, hash_newest=1)
    probe.collect()
    backup(d, "db-2.tar", 100, age_hours=1)
    victim.write_bytes(os.urandom(100))
    os.utime(victim, (time.time() - 999 * HOUR,) * 2)  # pushed out of the newest
    assert len(events(probe.collect(), "backup.modified")) == 1


def test_a_recorded_backup_deleted(tmp_path: Path) -> None:
    d = tmp_path / "b"
    backup(d, "db-1.tar", 100, age_hours=50)
    gone = backup(d, "db-2.tar", 100, age_hours=26)
    backup(d, "db-3.tar", 100, age_hours=2)
    probe = make(tmp_path, {"db": files_set(d)})
    probe.collect()
    gone.unlink()
    (ev,) = events(probe.collect(), "backup.deleted")
    assert ev.severity == records_pb2.SEVERITY_WARNING
    assert fields(ev)["path"] == str(gone) and fields(ev)["within_retention"] is True

    # Past the set's retention the same deletion is rotation: recorded, not warned about.
    rotating = make(tmp_path / "r", {"db": files_set(d, retention="24h")})
    rotating.collect()
    (d / "db-1.tar").unlink()
    (ev,) = events(rotating.collect(), "backup.deleted")
    assert ev.severity == records_pb2.SEVERITY_INFO and fields(ev)["within_retention"] is False


# --- restic and borg ----------------------------------------------------------------------------


class FakeRun:
    """Stands in for run_tool: records the call, returns canned output."""

    def __init__(self, rc: int = 0, out: bytes = b"", err: bytes = b"") -> None:
        self.result = (rc, out, err)
        self.calls: list[tuple[list[str], dict[str, str]]] = []

    def __call__(self, argv: Any, env: Any, timeout: float, max_bytes: int) -> tuple[int, bytes, bytes]:
        self.calls.append((list(argv), dict(env)))
        return self.result


def tool_probe(tmp_path: Path, s: BackupSetOptions, run: Any, **kw: Any) -> BackupsProbe:
    return BackupsProbe(opts({"r": s}, **kw), HostPaths(), tmp_path / "state", run=run, environ={})


def test_restic_set_from_fixture_output(tmp_path: Path) -> None:
    run = FakeRun(out=(FIXTURES / "restic-0.17.3-snapshots-issue.json").read_bytes())
    s = BackupSetOptions(source="restic", repository="/srv/restic", password_file=Path("/etc/pw"))
    out = tool_probe(tmp_path, s, run).collect()
    ((argv, env),) = run.calls
    assert argv == [
        "restic",
        "--no-lock",
        "--json",
        "--repo",
        "/srv/restic",
        "--password-file",
        "/etc/pw",
        "snapshots",
    ]
    m = metrics(out)
    assert m["backup_count"] == 1 and m["backup_newest_size_bytes"] == 7941120
    assert m["backup_stale"] == 1  # from March 2025
    inv = inventory(out)["r"]
    assert (inv.source, inv.newest, inv.newest_time_unix) == ("restic", "490d1990", 1741676401)
    assert inv.verification == "not_configured"


def test_restic_0_14_output_has_no_sizes_so_no_size_verdicts(tmp_path: Path) -> None:
    run = FakeRun(out=(FIXTURES / "restic-0.14.0-snapshots.json").read_bytes())
    s = BackupSetOptions(source="restic", extra_args=("--host", "fixturehost"), expected_count=3)
    out = tool_probe(tmp_path, s, run).collect()
    assert run.calls[0][0][-3:] == ["snapshots", "--host", "fixturehost"]
    m = metrics(out)
    assert m["backup_count"] == 2 and m["backup_count_short"] == 1
    assert "backup_newest_size_bytes" not in m and "backup_too_small" not in m
    assert inventory(out)["r"].newest == "a51ff944"  # the later of the two


def test_borg_set_from_fixture_output_with_password_from_the_environment(tmp_path: Path) -> None:
    run = FakeRun(out=(FIXTURES / "borg-1.2.4-list.json").read_bytes())
    s = BackupSetOptions(source="borg", repository="/srv/borg", password_env="WARDEN_BORG_PW")
    probe = BackupsProbe(
        opts({"r": s}),
        HostPaths(),
        tmp_path / "state",
        run=run,
        environ={"WARDEN_BORG_PW": "s3cret", "PATH": "/usr/bin"},
    )
    out = probe.collect()
    ((argv, env),) = run.calls
    assert argv == ["borg", "list", "--json", "/srv/borg"]
    assert env["BORG_PASSPHRASE"] == "s3cret" and env["PATH"] == "/usr/bin"
    assert inventory(out)["r"].newest == "db-2024-two" and metrics(out)["backup_count"] == 2


def test_tool_failures_are_set_errors_reported_once(tmp_path: Path) -> None:
    cases = [
        (FakeRun(out=(FIXTURES / "restic-0.14.0-snapshots.json").read_bytes()[:200]), "truncated JSON"),
        (
            FakeRun(rc=1, err=b"repository does not exist\nFatal: unable to open config file\n"),
            "status 1: Fatal: unable",
        ),
        (FakeRun(rc=0, out=b"<html>proxy error</html>"), "invalid JSON"),
    ]
    for i, (run, message) in enumerate(cases):
        probe = tool_probe(tmp_path / str(i), BackupSetOptions(source="restic"), run)
        out = probe.collect()
        assert metrics(out) == {"backup_check_ok": 0}
        assert message in inventory(out)["r"].error
        (ev,) = events(out)
        assert ev.kind == "backup.check_failed" and message in fields(ev)["error"]
        assert events(probe.collect()) == []


def test_missing_tool_and_missing_password_variable(tmp_path: Path) -> None:
    s = BackupSetOptions(source="restic")
    out = tool_probe(tmp_path, s, run_tool, restic_command=str(tmp_path / "no-restic")).collect()
    assert inventory(out)["r"].error.startswith("no-restic not installed")

    s = BackupSetOptions(source="borg", password_env="NOT_SET_ANYWHERE")
    out = tool_probe(tmp_path / "2", s, FakeRun()).collect()
    assert inventory(out)["r"].error == "environment variable NOT_SET_ANYWHERE is not set"


def test_both_password_options_are_refused(tmp_path: Path) -> None:
    s = BackupSetOptions(source="borg", password_env="X", password_file=Path("/pw"))
    with pytest.raises(ValueError, match="not both"):
        tool_probe(tmp_path, s, FakeRun()).validate()


def script(tmp_path: Path, body: str) -> str:
    p = tmp_path / "tool"
    p.write_text("#!/bin/sh\n" + body)
    p.chmod(0o755)
    return str(p)


def test_run_tool_bounds_time_and_output(tmp_path: Path) -> None:
    with pytest.raises(ToolError, match="not installed"):
        run_tool([str(tmp_path / "absent")], {}, 5, 1000)

    t0 = time.monotonic()
    with pytest.raises(ToolError, match="timed out after 0.5s"):
        # The child keeps the pipe open too: the whole process group must go.
        run_tool([script(tmp_path, "sleep 30 & sleep 30\n")], {}, 0.5, 1000)
    assert time.monotonic() - t0 < 3

    with pytest.raises(ToolError, match="more than 100000 bytes"):
        run_tool(["yes"], {}, 10, 100_000)

    rc, out, err = run_tool([script(tmp_path, "echo '[]'; echo oops >&2; exit 3\n")], {}, 5, 1000)
    assert (rc, out, err) == (3, b"[]\n", b"oops\n")


def test_truncated_output_of_a_real_process(tmp_path: Path) -> None:
    data = (FIXTURES / "restic-0.14.0-snapshots.json").read_bytes()[:300]
    (tmp_path / "out.json").write_bytes(data)
    fake = script(tmp_path, f"cat {tmp_path / 'out.json'}\n")
    out = tool_probe(tmp_path, BackupSetOptions(source="restic"), run_tool, restic_command=fake).collect()
    assert inventory(out)["r"].error.startswith("truncated JSON")


@pytest.mark.skipif(shutil.which("restic") is None, reason="restic not installed (apt-get install restic)")
def test_real_restic_repository(tmp_path: Path) -> None:
    repo, pw, data = tmp_path / "repo", tmp_path / "pw", tmp_path / "data"
    pw.write_text("warden-test\n")
    backup(data, "file.txt", 1000)
    env = {**os.environ, "RESTIC_PASSWORD_FILE": str(pw), "RESTIC_REPOSITORY": str(repo)}
    env["RESTIC_CACHE_DIR"] = str(tmp_path / "cache")
    subprocess.run(["restic", "init"], env=env, check=True, capture_output=True)
    subprocess.run(
        ["restic", "backup", "--host", "warden-test", str(data)], env=env, check=True, capture_output=True
    )

    s = BackupSetOptions(source="restic", repository=str(repo), password_file=pw, max_age="1h")
    probe = BackupsProbe(
        opts({"r": s}),
        HostPaths(),
        tmp_path / "state",
        environ={"RESTIC_CACHE_DIR": str(tmp_path / "cache"), "PATH": os.environ["PATH"]},
    )
    out = probe.collect()
    m = metrics(out)
    assert m["backup_check_ok"] == 1 and m["backup_count"] == 1 and m["backup_stale"] == 0
    assert m["backup_newest_age_seconds"] < 120

    pw.write_text("wrong\n")
    out = probe.collect()
    assert metrics(out) == {"backup_check_ok": 0}
    assert "restic exited with status" in inventory(out)["r"].error


@pytest.mark.skipif(shutil.which("borg") is None, reason="borg not installed (apt-get install borgbackup)")
def test_real_borg_repository(tmp_path: Path) -> None:
    repo, data = tmp_path / "repo", tmp_path / "data"
    backup(data, "file.txt", 1000)
    env = {**os.environ, "BORG_PASSPHRASE": "warden-test", "BORG_BASE_DIR": str(tmp_path / "home")}
    subprocess.run(["borg", "init", "-e", "repokey", str(repo)], env=env, check=True, capture_output=True)
    subprocess.run(
        ["borg", "create", f"{repo}::nightly-1", str(data)], env=env, check=True, capture_output=True
    )

    s = BackupSetOptions(source="borg", repository=str(repo), password_env="TEST_BORG_PW", max_age="1h")
    probe = BackupsProbe(
        opts({"b": s}),
        HostPaths(),
        tmp_path / "state",
        environ={
            "TEST_BORG_PW": "warden-test",
            "BORG_BASE_DIR": str(tmp_path / "home"),
            "PATH": os.environ["PATH"],
        },
    )
    out = probe.collect()
    m = metrics(out)
    assert m["backup_check_ok"] == 1 and m["backup_count"] == 1 and m["backup_stale"] == 0
    assert inventory(out)["b"].newest == "nightly-1"

    missing = BackupSetOptions(source="borg", repository=str(tmp_path / "no-repo"))
    probe = BackupsProbe(
        opts({"b": missing}),
        HostPaths(),
        tmp_path / "state2",
        environ={"BORG_BASE_DIR": str(tmp_path / "home"), "PATH": os.environ["PATH"]},
    )
    assert "does not exist" in inventory(probe.collect())["b"].error


# --- the contract -------------------------------------------------------------------------------


def test_one_broken_set_does_not_hide_the_others(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    d = tmp_path / "b"
    backup(d, "db.tar", 10)
    probe = make(tmp_path, {"bad": files_set(d), "good": files_set(d)})
    real = probe._scan

    def scan(name: str, *args: Any) -> Any:
        if name == "bad":
            raise RuntimeError("surprise")
        return real(name, *args)

    monkeypatch.setattr(probe, "_scan", scan)
    out = probe.collect()
    assert all(isinstance(r, records_pb2.Record) for r in out)
    assert metrics(out, "bad") == {"backup_check_ok": 0} and metrics(out, "good")["backup_check_ok"] == 1
    assert inventory(out)["bad"].error == "RuntimeError: surprise"


def test_unwritable_state_is_reported_once_and_collect_goes_on(tmp_path: Path) -> None:
    d = tmp_path / "b"
    backup(d, "db.tar", 10)
    (tmp_path / "state").write_text("a file where the state directory should be")
    options = opts({"db": files_set(d)})
    probe = BackupsProbe(options, HostPaths(), tmp_path / "state" / "sub")
    out = probe.collect()
    (ev,) = events(out, "backup.state_error")
    assert "cannot write" in fields(ev)["error"]
    assert metrics(out)["backup_check_ok"] == 1
    backup(d, "db2.tar", 10)
    assert events(probe.collect(), "backup.state_error") == []


@pytest.mark.parametrize(
    "text",
    [
        '{"version": 1, "files": [',  # cut short
        '{"version": 1, "files": {"PATH": {"set": "db", "size": "10"}}, "alerts": {"db": {"stale": 1}}}',
        '{"version": 1, "files": {"PATH": 3}, "copies": [], "errors": {"db": 5}}',
        "[]",
    ],
)
def test_corrupt_state_file_starts_afresh(tmp_path: Path, text: str) -> None:
    d = tmp_path / "b"
    p = backup(d, "db.tar", 10)
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "backups.json").write_text(text.replace("PATH", str(p)))
    out = make(tmp_path, {"db": files_set(d)}).collect()
    assert metrics(out)["backup_check_ok"] == 1 and events(out) == []
    assert sha256(p) in (tmp_path / "state" / "backups.json").read_text()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
