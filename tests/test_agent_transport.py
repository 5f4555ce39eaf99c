"""The transport's handling of refusals that name no records (no collector needed: the
collector's status is built by hand; tests/test_fuzz.py has the end-to-end case)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from warden.agent import records
from warden.agent.config import TransportSection
from warden.agent.spooler import AsyncSpool
from warden.agent.transport import Transport, _final_status


def _refusal(code: grpc.StatusCode, trailer: tuple[tuple[str, str], ...] = ()) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(*trailer),
                                "a message that does not decode as warden.v1.ReportRequest")


def _good(n: int) -> bytes:
    return records.event("test.numbered", "info", {"n": n}).SerializeToString()


@pytest.fixture
async def spool(tmp_path: Path) -> AsyncIterator[AsyncSpool]:
    s = AsyncSpool(tmp_path / "spool.db", 1 << 20)
    yield s
    s.close()


def _transport(tmp_path: Path, spool: AsyncSpool, sent_upto: int) -> Transport:
    t = Transport(tmp_path / "state", spool, TransportSection(batch_max_records=2), "test")
    t._sent_upto = sent_upto  # noqa: SLF001  (as after writing batches up to this seq)
    return t


async def _pending(spool: AsyncSpool) -> list[int]:
    return [seq for seq, _ in await spool.peek(0, 1000, 1 << 20)]


async def test_undecodable_refusal_but_every_record_decodes_deletes_nothing(tmp_path: Path,
                                                                           spool: AsyncSpool) -> None:
    await spool.append([_good(n) for n in range(1, 6)])
    transport = _transport(tmp_path, spool, 5)
    await transport._set_aside_refused(_refusal(grpc.StatusCode.INVALID_ARGUMENT))  # noqa: SLF001
    assert await _pending(spool) == [1, 2, 3, 4, 5]
    assert (await spool.stats()).rejected_total == 0 and transport.stats.refused_records == 0


async def test_undecodable_refusal_sets_aside_only_the_records_in_flight_that_do_not_decode(
        tmp_path: Path, spool: AsyncSpool) -> None:
    await spool.append([_good(1), b"\xff\xff\xff", _good(3), _good(4), b"\xff", _good(6), b"\xff"])
    transport = _transport(tmp_path, spool, 6)  # seq 7 was not sent yet: not the collector's concern
    await transport._set_aside_refused(_refusal(grpc.StatusCode.INVALID_ARGUMENT))  # noqa: SLF001
    assert await _pending(spool) == [1, 3, 4, 6, 7]
    assert (await spool.stats()).rejected_total == 2 and transport.stats.refused_records == 2


async def test_other_refusals_without_a_range_delete_nothing(tmp_path: Path, spool: AsyncSpool) -> None:
    await spool.append([_good(1), b"\xff\xff\xff"])
    transport = _transport(tmp_path, spool, 2)
    await transport._set_aside_refused(_refusal(grpc.StatusCode.UNAVAILABLE))  # noqa: SLF001
    assert await _pending(spool) == [1, 2]


async def test_a_refused_range_is_set_aside_as_named(tmp_path: Path, spool: AsyncSpool) -> None:
    await spool.append([_good(n) for n in range(1, 6)])
    transport = _transport(tmp_path, spool, 5)
    refusal = _refusal(grpc.StatusCode.INVALID_ARGUMENT, (("warden-refused-seqs", "2-3"),))
    await transport._set_aside_refused(refusal)  # noqa: SLF001
    assert await _pending(spool) == [1, 4, 5]
    assert transport.stats.refused_records == 2


class _EndedCall:
    """A call the collector ended with `code` (what _final_status reads of a grpc.aio call)."""

    def __init__(self, code: grpc.StatusCode, done: bool = True) -> None:
        self._code, self._done = code, done

    def done(self) -> bool:
        return self._done

    def cancelled(self) -> bool:
        return False

    async def code(self) -> grpc.StatusCode:
        return self._code

    async def details(self) -> str:
        return "refused"

    async def trailing_metadata(self) -> grpc.aio.Metadata:
        return grpc.aio.Metadata(("warden-refused-seqs", "4-9"))


async def test_a_write_racing_a_refusal_gets_the_collectors_status() -> None:
    # A write after the collector ended the call raises InvalidStateError ("RPC already
    # finished"); the session then takes the call's own status, and its refused range.
    status = await _final_status(_EndedCall(grpc.StatusCode.INVALID_ARGUMENT))  # type: ignore[arg-type]
    assert status is not None and status.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert ("warden-refused-seqs", "4-9") in tuple(status.trailing_metadata())
    assert await _final_status(_EndedCall(grpc.StatusCode.OK)) is None  # type: ignore[arg-type]
    assert await _final_status(_EndedCall(grpc.StatusCode.INVALID_ARGUMENT, done=False)) is None  # type: ignore[arg-type]
