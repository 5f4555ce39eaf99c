"""protobuf -> plain records, enforcing the collector's limits.

This is the only place that reads `warden.v1` record messages. Anything malformed is
refused with a `Refused` naming the problem; nothing of a refused batch is stored.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.message import Message

from warden.collector.records import Batch, Event, FieldValue, InventorySection, MetricSample, Record
from warden.v1 import collector_pb2, records_pb2

_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
_KEY = re.compile(r"[a-zA-Z_][a-zA-Z0-9_.]*\Z")
_KIND = re.compile(r"[a-z0-9_]+(\.[a-z0-9_]+)*\Z")
# Timestamps beyond this skew into the future are refused: they would sort after every
# honest point forever and defeat retention.
MAX_FUTURE_SKEW_NS = 3600 * 10**9
_SEVERITIES = {
    v.number: v.name.removeprefix("SEVERITY_").lower() for v in records_pb2.Severity.DESCRIPTOR.values
}


@dataclass(frozen=True, slots=True)
class Limits:
    max_message_bytes: int = 4 * 1024 * 1024
    max_records_per_batch: int = 5000
    max_name_bytes: int = 200
    max_label_value_bytes: int = 1024
    max_labels: int = 64
    max_raw_bytes: int = 16 * 1024

    def to_proto(self) -> collector_pb2.Limits:
        return collector_pb2.Limits(
            max_message_bytes=self.max_message_bytes,
            max_records_per_batch=self.max_records_per_batch,
            max_name_bytes=self.max_name_bytes,
            max_label_value_bytes=self.max_label_value_bytes,
            max_labels=self.max_labels,
            max_raw_bytes=self.max_raw_bytes,
        )


class Refused(Exception):
    """A batch the collector will not store. `reason` is a short counter label."""

    def __init__(self, code: grpc.StatusCode, reason: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.seqs: tuple[int, int] | None = None  # the refused batch's sequence range, if any


def _bad(reason: str, message: str) -> Refused:
    return Refused(grpc.StatusCode.INVALID_ARGUMENT, reason, message)


MAX_SEQ = 2**63 - 1


def batch_from_proto(pb: collector_pb2.Batch, host_id: str, spool_id: str, limits: Limits,
                     now_ns: int) -> Batch:
    """Translate one Batch; raise Refused on the first violation."""
    if pb.host_id and pb.host_id != host_id:
        raise Refused(grpc.StatusCode.PERMISSION_DENIED, "spoofed_host",
                      f"batch claims host {pb.host_id!r} but the client certificate identifies "
                      f"{host_id!r}")
    n = len(pb.records)
    if n > limits.max_records_per_batch:
        raise Refused(grpc.StatusCode.RESOURCE_EXHAUSTED, "too_many_records",
                      f"batch has {n} records; max_records_per_batch is {limits.max_records_per_batch}")
    if n == 0 or pb.first_seq < 1 or pb.last_seq - pb.first_seq + 1 != n:
        raise _bad("bad_sequence", f"batch sequence range [{pb.first_seq}, {pb.last_seq}] does not "
                                   f"cover its {n} records (sequences start at 1)")
    if pb.last_seq > MAX_SEQ:  # the store keeps sequences as SQLite's signed 64-bit integers
        raise _bad("bad_sequence", f"batch sequence {pb.last_seq} is above the largest allowed ({MAX_SEQ})")
    max_ts = now_ns + MAX_FUTURE_SKEW_NS
    records: list[Record] = []
    append = records.append
    for i, rec in enumerate(pb.records):
        which = rec.WhichOneof("kind")
        try:
            if which == "metric":
                append(_metric(rec.metric, limits, max_ts))
            elif which == "event":
                append(_event(rec.event, limits, max_ts))
            elif which == "inventory":
                append(_inventory(rec.inventory, max_ts))
            else:
                raise _bad("empty_record", "no record kind set")
        except Refused as refused:  # name the record only on this rare path
            refused.message = f"record seq {pb.first_seq + i}: {refused.message}"
            refused.args = (refused.message,)
            raise
    return Batch(host_id=host_id, spool_id=spool_id, first_seq=pb.first_seq, last_seq=pb.last_seq,
                 records=records)


def _check_time(t: int, max_ts: int) -> None:
    if t <= 0 or t > max_ts:
        raise _bad("bad_timestamp", f"timestamp {t} ns is not a plausible time")


# Names already found valid, per pattern, with their UTF-8 size: the same few dozen metric,
# label and field names arrive in every batch, and matching each one again was a third of the
# translation's time (measured under tests/bench/bench_logs_ship.py). Bounded: emptied when full.
_VALID_NAMES: dict[re.Pattern[str], dict[str, int]] = {_METRIC_NAME: {}, _KEY: {}, _KIND: {}}
_VALID_NAMES_MAX = 4096


def _check_name(name: str, pattern: re.Pattern[str], limits: Limits, what: str) -> None:
    known = _VALID_NAMES[pattern]
    size = known.get(name)
    if size is None:
        size = len(name.encode())
        if size <= limits.max_name_bytes:
            if not pattern.match(name):
                raise _bad("bad_name", f"{what} {name[:64]!r} is not a valid name")
            if len(known) >= _VALID_NAMES_MAX:
                known.clear()
            known[name] = size
    if size > limits.max_name_bytes:
        raise _bad("oversized_name", f"{what} is longer than max_name_bytes "
                                     f"({limits.max_name_bytes})")


def _metric(m: records_pb2.MetricSample, limits: Limits, max_ts: int) -> MetricSample:
    _check_name(m.name, _METRIC_NAME, limits, "metric name")
    value = m.value
    if not math.isfinite(value):
        raise _bad("bad_value", f"metric {m.name} value {value} is not finite")
    _check_time(m.time_unix_nano, max_ts)
    src = m.labels
    labels = {k: src[k] for k in src}  # ~40% faster than dict(src) on upb maps
    if len(labels) > limits.max_labels:
        raise _bad("too_many_labels", f"metric {m.name} has {len(labels)} labels; "
                                      f"max_labels is {limits.max_labels}")
    for k, v in labels.items():
        _check_name(k, _KEY, limits, "label name")
        if len(v.encode()) > limits.max_label_value_bytes:
            raise _bad("oversized_label", f"label {k} value is longer than "
                                          f"max_label_value_bytes ({limits.max_label_value_bytes})")
    return MetricSample(m.name, labels, value, m.time_unix_nano)


def _event(e: records_pb2.Event, limits: Limits, max_ts: int) -> Event:
    _check_name(e.kind, _KIND, limits, "event kind")
    _check_time(e.time_unix_nano, max_ts)
    severity = _SEVERITIES.get(e.severity)
    if severity is None:
        raise _bad("bad_value", f"unknown severity {e.severity}")
    if len(e.fields) > limits.max_labels:
        raise _bad("too_many_labels", f"event has {len(e.fields)} fields; "
                                      f"max_labels is {limits.max_labels}")
    # A str's UTF-8 is at most 4 bytes a character: most texts need no encoding to be measured.
    if len(e.raw) > limits.max_raw_bytes // 4 and len(e.raw.encode()) > limits.max_raw_bytes:
        raise _bad("oversized_raw", f"raw line is longer than max_raw_bytes "
                                    f"({limits.max_raw_bytes})")
    fields: dict[str, FieldValue] = {}
    known, max_name = _VALID_NAMES[_KEY], limits.max_name_bytes
    src = e.fields
    for k in src:  # keys, then src[k]: .items() on a upb map is a slower Python-level view
        size = known.get(k)
        if size is None or size > max_name:  # _check_name's work, inline for a known name
            _check_name(k, _KEY, limits, "field name")
        v = src[k]
        which = v.WhichOneof("kind")
        if which is None:
            raise _bad("bad_value", f"field {k} has no value")
        value = getattr(v, which)
        if (which == "string_value" and len(value) > limits.max_label_value_bytes // 4
                and len(value.encode()) > limits.max_label_value_bytes):
            raise _bad("oversized_label", f"field {k} value is longer than "
                                          f"max_label_value_bytes ({limits.max_label_value_bytes})")
        if which == "double_value" and not math.isfinite(value):
            raise _bad("bad_value", f"field {k} value {value} is not finite")
        fields[k] = value
    source, cap = e.source, limits.max_label_value_bytes
    if len(source) > cap // 4 and len(source.encode()) > cap:
        raise _bad("oversized_label", "event source is longer than max_label_value_bytes")
    return Event(e.kind, severity, e.time_unix_nano, fields, e.raw, e.source)


def _inventory(inv: records_pb2.InventorySnapshot, max_ts: int) -> InventorySection:
    section = inv.WhichOneof("section")
    if section is None:
        raise _bad("empty_record", "inventory snapshot has no section")
    _check_time(inv.time_unix_nano, max_ts)
    return InventorySection(section, inv.time_unix_nano, _to_dict(getattr(inv, section)))


def _to_dict(msg: Message) -> dict[str, Any]:
    """Every field, defaults included, with 64-bit integers kept as ints (MessageToDict
    would turn them into strings, per the proto3 JSON mapping)."""
    out: dict[str, Any] = {}
    for f in msg.DESCRIPTOR.fields:
        v = getattr(msg, f.name)
        if f.message_type is not None and f.message_type.GetOptions().map_entry:
            out[f.name] = dict(v)
        elif f.message_type is not None:
            out[f.name] = [_to_dict(x) for x in v] if f.is_repeated else _to_dict(v)
        else:
            out[f.name] = list(v) if f.is_repeated else v
    return out
