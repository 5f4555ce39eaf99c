"""collector/translate.py: the checks keep their meaning with the valid-name cache and the
size shortcuts (a name or text measured once is not measured again)."""

from __future__ import annotations

import time

import pytest

from warden.agent import records
from warden.collector.translate import Limits, Refused, batch_from_proto
from warden.v1 import collector_pb2, records_pb2


def _batch(*recs: object) -> collector_pb2.Batch:
    b = collector_pb2.Batch(first_seq=1, last_seq=len(recs))
    b.records.extend(recs)  # type: ignore[arg-type]
    return b


def _translate(limits: Limits, *recs: object):
    return batch_from_proto(_batch(*recs), "h", "s", limits, time.time_ns())


def _event(**fields: object):
    return records.event("auth.login", "info", fields, raw="a line")  # type: ignore[arg-type]


def _metric(name: str) -> records_pb2.Record:
    """A metric the agent's own helper would refuse to build (the collector must refuse it)."""
    return records_pb2.Record(metric=records_pb2.MetricSample(name=name, value=1.0,
                                                              time_unix_nano=time.time_ns()))


def test_a_name_once_valid_is_still_checked_against_each_collectors_limit() -> None:
    name = "f" * 50
    assert _translate(Limits(), _event(**{name: "x"})).records  # valid, now cached
    with pytest.raises(Refused) as err:
        _translate(Limits(max_name_bytes=40), _event(**{name: "x"}))
    assert err.value.reason == "oversized_name"


def test_an_invalid_name_is_refused_every_time_and_never_taken_for_valid() -> None:
    for _ in range(3):
        with pytest.raises(Refused) as err:
            _translate(Limits(), _metric("bad name!"))
        assert err.value.reason == "bad_name"


def test_an_oversized_invalid_name_reports_its_size_first() -> None:
    with pytest.raises(Refused) as err:
        _translate(Limits(max_name_bytes=8), _metric("bad name, and long"))
    assert err.value.reason == "oversized_name"


@pytest.mark.parametrize("text, limit, refused", [
    ("é" * 300, 600, False),   # 600 bytes: at the limit
    ("é" * 301, 600, True),    # 602 bytes in 301 characters: only the bytes tell
    ("𝄞" * 150, 600, False),   # 4-byte characters: 600 bytes
    ("𝄞" * 151, 600, True),
    ("a" * 600, 600, False),
    ("a" * 601, 600, True),
])
def test_texts_are_measured_in_utf8_bytes(text: str, limit: int, refused: bool) -> None:
    limits = Limits(max_label_value_bytes=limit, max_raw_bytes=limit)
    for rec, reason in ((_event(user=text), "oversized_label"),
                        (records.event("auth.login", "info", raw=text), "oversized_raw"),
                        (records.event("auth.login", "info", raw="x", source=text), "oversized_label")):
        if refused:
            with pytest.raises(Refused) as err:
                _translate(limits, rec)
            assert err.value.reason == reason
        else:
            assert len(_translate(limits, rec).records) == 1
