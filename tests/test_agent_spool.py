import os
import sqlite3
import stat
from pathlib import Path

import pytest

from warden.agent.spool import Spool, SpoolError, SpoolStats


def payloads(n: int, size: int = 100, tag: str = "r") -> list[bytes]:
    return [f"{tag}{i}".encode().ljust(size, b".") for i in range(n)]


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "spool.db"


def test_new_spool_is_empty_private_and_in_wal_mode(path: Path) -> None:
    with Spool(path, 1000) as s:
        assert s.stats() == SpoolStats(0, 0, 0, 0, 0, 0)
        assert len(s.spool_id) == 32
        assert s.peek(0, 10, 1000) == []
        assert s._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        db.close()


def test_append_peek_ack(path: Path) -> None:
    with Spool(path, 10_000) as s:
        assert s.append(payloads(3)) == 3
        assert s.append([]) == 3
        assert s.append(payloads(2, tag="x")) == 5
        got = s.peek(0, 100, 10_000)
        assert [seq for seq, _ in got] == [1, 2, 3, 4, 5]
        assert got[3][1] == payloads(1, tag="x")[0]
        assert s.ack(2) == 2
        assert s.ack(2) == 0
        assert [seq for seq, _ in s.peek(0, 100, 10_000)] == [3, 4, 5]
        assert s.stats() == SpoolStats(3, 300, 0, 0, 3, 5)


def test_append_refuses_non_bytes_without_storing_anything(path: Path) -> None:
    with Spool(path, 10_000) as s:
        with pytest.raises(TypeError):
            s.append([b"ok", "text"])  # type: ignore[list-item]
        assert s.stats().pending_records == 0


def test_persists_across_reopen_and_never_reuses_a_seq(path: Path) -> None:
    s = Spool(path, 10_000)
    spool_id = s.spool_id
    s.append(payloads(4))
    s.close()

    s = Spool(path, 10_000)
    assert s.spool_id == spool_id
    assert s.stats() == SpoolStats(4, 400, 0, 0, 1, 4)
    assert [p for _, p in s.peek(0, 10, 10_000)] == payloads(4)
    assert s.append(payloads(1, tag="y")) == 5
    assert s.ack(5) == 5  # everything acknowledged: the table is empty
    s.close()

    s = Spool(path, 10_000)
    assert s.stats() == SpoolStats(0, 0, 0, 0, 0, 5)
    assert s.append(payloads(1, tag="z")) == 6  # not 1: the collector would take it for a duplicate
    s.close()


def test_cap_drops_oldest_first_and_counts_exactly(path: Path) -> None:
    with Spool(path, 1000) as s:
        s.append(payloads(8))
        assert s.stats().dropped_total == 0
        s.append(payloads(7, tag="n"))  # 1500 bytes pending: the 5 oldest must go
        st = s.stats()
        assert (st.pending_records, st.pending_bytes, st.dropped_total) == (10, 1000, 5)
        assert [seq for seq, _ in s.peek(0, 100, 10_000)] == list(range(6, 16))
        s.append([b"a" * 250])  # 250 over: three 100-byte records make room
        st = s.stats()
        assert (st.pending_records, st.pending_bytes, st.dropped_total, st.first_seq) == (8, 950, 8, 9)
    with Spool(path, 1000) as s:
        assert s.stats().dropped_total == 8  # persisted


def test_lowering_the_cap_trims_at_open(path: Path) -> None:
    with Spool(path, 1000) as s:
        s.append(payloads(10))
    with Spool(path, 500) as s:
        st = s.stats()
        assert (st.pending_records, st.dropped_total, st.first_seq) == (5, 5, 6)


def test_peek_limits(path: Path) -> None:
    with Spool(path, 100_000) as s:
        s.append(payloads(10))
        assert [q for q, _ in s.peek(0, 3, 100_000)] == [1, 2, 3]
        assert [q for q, _ in s.peek(4, 100, 100_000)] == [5, 6, 7, 8, 9, 10]
        assert [q for q, _ in s.peek(0, 100, 350)] == [1, 2, 3]  # a 4th would exceed 350 bytes
        assert [q for q, _ in s.peek(0, 100, 300)] == [1, 2, 3]  # exactly at the limit is fine
        assert [q for q, _ in s.peek(0, 100, 10)] == [1]  # at least one, however large
        assert s.peek(10, 100, 100_000) == []


def test_peek_contiguous_stops_at_a_gap(path: Path) -> None:
    with Spool(path, 100_000) as s:
        s.append(payloads(6))
        s.drop([3])
        assert [q for q, _ in s.peek(0, 100, 100_000)] == [1, 2, 4, 5, 6]
        assert [q for q, _ in s.peek(0, 100, 100_000, contiguous=True)] == [1, 2]
        assert [q for q, _ in s.peek(2, 100, 100_000, contiguous=True)] == [4, 5, 6]


def test_drop_counts_rejected_and_persists(path: Path) -> None:
    with Spool(path, 100_000) as s:
        s.append(payloads(5))
        assert s.drop([2, 4, 99]) == 2  # 99 was never pending
        assert s.drop([]) == 0
        assert s.stats() == SpoolStats(3, 300, 0, 2, 1, 5)
        s.append(payloads(1000, size=10))
        assert s.drop(range(6, 1006)) == 1000  # more than one SQL chunk
    with Spool(path, 100_000) as s:
        st = s.stats()
        assert (st.pending_records, st.rejected_total) == (3, 1002)
        assert [q for q, _ in s.peek(0, 100, 100_000)] == [1, 3, 5]


def test_running_totals_match_the_table(path: Path) -> None:
    with Spool(path, 5000) as s:
        for i in range(20):
            s.append(payloads(i % 7 + 1, size=50 + i))
            if i % 3 == 0:
                s.ack(s.stats().first_seq + 2)
            if i % 5 == 0:
                s.drop([s.stats().last_seq])
        count, size = s._db.execute("SELECT COUNT(*), SUM(length(payload)) FROM records").fetchone()
        st = s.stats()
        assert (st.pending_records, st.pending_bytes) == (count, size)
    with Spool(path, 5000) as s:  # recomputed at open, same numbers
        assert s.stats() == st


@pytest.mark.parametrize("damage", ["garbage", "truncated", "header_only"])
def test_damaged_file_is_a_clear_error_and_left_untouched(path: Path, damage: str) -> None:
    with Spool(path, 10_000_000) as s:
        s.append([os.urandom(200) for _ in range(2000)])
    data = path.read_bytes()
    if damage == "garbage":
        data = os.urandom(len(data))
    elif damage == "truncated":
        data = data[: len(data) // 2]
    else:
        data = data[:100]
    path.write_bytes(data)

    with pytest.raises(SpoolError, match="spool.db.*move it aside"):
        Spool(path, 10_000_000)
    assert path.read_bytes() == data
    assert not Path(f"{path}-wal").exists()


def test_foreign_sqlite_database_is_refused(path: Path) -> None:
    path.parent.mkdir(parents=True)
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE users (name TEXT)")
    db.commit()
    db.close()
    with pytest.raises(SpoolError, match="not a Warden spool"):
        Spool(path, 1000)


def test_second_open_of_a_spool_in_use_is_refused(path: Path) -> None:
    with Spool(path, 1000), pytest.raises(SpoolError, match="in use"):
        Spool(path, 1000)
    Spool(path, 1000).close()  # free again once closed


def test_closed_spool_refuses_writes(path: Path) -> None:
    s = Spool(path, 1000)
    s.close()
    s.close()  # idempotent
    with pytest.raises(SpoolError, match="closed"):
        s.append([b"x"])


def test_checkpoints_are_saved_with_their_records(tmp_path):
    from warden.agent.spool import Spool

    path = tmp_path / "cp.db"
    with Spool(path, 1 << 20) as spool:
        assert spool.checkpoint("probe:logs") is None
        spool.append([b"a", b"b"], {"probe:logs": b"offset=2"})
        spool.append([], {"probe:logs": b"offset=2b"})  # a position move without records
    with Spool(path, 1 << 20) as spool:
        assert spool.checkpoint("probe:logs") == b"offset=2b"
        assert spool.stats().pending_records == 2


def test_checkpoint_is_not_saved_when_the_append_fails(tmp_path):
    from warden.agent.spool import Spool

    with Spool(tmp_path / "cp.db", 1 << 20) as spool:
        spool.append([b"a"], {"k": b"1"})
        with pytest.raises(TypeError):
            spool.append(["not bytes"], {"k": b"2"})  # type: ignore[list-item]
        assert spool.checkpoint("k") == b"1"


def test_batch_request_bytes_equal_protobufs_own_encoding():
    from warden.agent import records
    from warden.agent.transport import encode_batch_request
    from warden.v1 import collector_pb2, records_pb2

    recs = [records.metric("m", float(i), {"i": str(i)}) for i in range(300)]
    recs.append(records.event("log.line", "info", raw="x" * 70_000))  # multi-byte length varint
    rows = [(2**35 + i, r.SerializeToString()) for i, r in enumerate(recs)]  # large seqs too
    wire = encode_batch_request(rows)
    expected = collector_pb2.ReportRequest(batch=collector_pb2.Batch(
        first_seq=rows[0][0], last_seq=rows[-1][0], records=recs))
    assert collector_pb2.ReportRequest.FromString(wire) == expected
    assert wire == expected.SerializeToString()
    assert [records_pb2.Record.FromString(p) for _, p in rows] == recs


def test_a_full_batch_fits_the_send_limit_with_its_framing(tmp_path):
    # Regression: peek() bounds payload bytes only; each record adds framing on the wire.
    # 5000-record batches of ~200-byte records once overflowed a 1 MiB send limit forever.
    from warden.agent import records
    from warden.agent.spool import Spool
    from warden.agent.transport import _ENVELOPE_BYTES, _RECORD_FRAMING_BYTES, encode_batch_request

    max_records, max_bytes = 5000, 1 << 20
    with Spool(tmp_path / "s.db", 1 << 26) as spool:
        spool.append([records.event("log.line", "info", raw="y" * 180).SerializeToString()
                      for _ in range(8000)])
        rows = spool.peek(0, max_records, max_bytes - _RECORD_FRAMING_BYTES * max_records)
    assert len(encode_batch_request(rows)) <= max_bytes + _ENVELOPE_BYTES
