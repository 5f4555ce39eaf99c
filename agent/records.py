"""Builders for `warden.v1.Record`: the only place probes touch protobuf construction.

Every builder takes an optional `time_ns`; when omitted it is `now_ns()`, the single clock
of the agent's records (so tests can pin time by passing it explicitly).
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping

from google.protobuf.message import Message

from warden.agent import __version__
from warden.v1 import records_pb2

__all__ = ["FieldValue", "agent_version", "event", "inventory", "metric", "now_ns"]

FieldValue = str | int | float | bool

# Same grammar as Prometheus, documented in records.proto; a bad name is a bug in a probe,
# so it fails loudly in tests instead of being refused later by the collector.
_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")

_SEVERITIES = {
    "debug": records_pb2.SEVERITY_DEBUG,
    "info": records_pb2.SEVERITY_INFO,
    "notice": records_pb2.SEVERITY_NOTICE,
    "warning": records_pb2.SEVERITY_WARNING,
    "error": records_pb2.SEVERITY_ERROR,
    "critical": records_pb2.SEVERITY_CRITICAL,
}

# Inventory oneof member by section message type, read from the schema so a new section
# added to records.proto needs no change here.
_SECTION_FIELD = {
    f.message_type.full_name: f.name
    for f in records_pb2.InventorySnapshot.DESCRIPTOR.oneofs_by_name["section"].fields
}


def now_ns() -> int:
    """Wall-clock time in Unix nanoseconds, as stamped on records."""
    return time.time_ns()


def agent_version() -> str:
    """The warden version (kept in warden.agent; importlib.metadata would cost the running
    agent ~2 MB of RSS for the email and zipfile modules it pulls in)."""
    return __version__


def metric(
    name: str, value: float, labels: Mapping[str, str] | None = None, time_ns: int | None = None
) -> records_pb2.Record:
    if not _METRIC_NAME.fullmatch(name):
        raise ValueError(f"invalid metric name {name!r}")
    sample = records_pb2.MetricSample(
        name=name, value=float(value), time_unix_nano=now_ns() if time_ns is None else time_ns
    )
    if labels:
        sample.labels.update(labels)
    return records_pb2.Record(metric=sample)


def event(
    kind: str,
    severity: str,
    fields: Mapping[str, FieldValue] | None = None,
    raw: str = "",
    source: str = "",
    time_ns: int | None = None,
) -> records_pb2.Record:
    """An event; `severity` is one of debug, info, notice, warning, error, critical."""
    try:
        sev = _SEVERITIES[severity]
    except KeyError:
        raise ValueError(f"unknown severity {severity!r} (one of {', '.join(_SEVERITIES)})") from None
    ev = records_pb2.Event(
        kind=kind,
        severity=sev,
        raw=raw,
        source=source,
        time_unix_nano=now_ns() if time_ns is None else time_ns,
    )
    for key, value in (fields or {}).items():
        ev.fields[key].CopyFrom(_value(key, value))
    return records_pb2.Record(event=ev)


def inventory(section: Message, time_ns: int | None = None) -> records_pb2.Record:
    """An inventory snapshot holding `section` (e.g. an `OsSection`) in its matching oneof member."""
    name = _SECTION_FIELD.get(section.DESCRIPTOR.full_name)
    if name is None:
        raise TypeError(f"{section.DESCRIPTOR.full_name} is not an inventory section")
    snap = records_pb2.InventorySnapshot(time_unix_nano=now_ns() if time_ns is None else time_ns)
    getattr(snap, name).CopyFrom(section)
    return records_pb2.Record(inventory=snap)


def _value(key: str, value: FieldValue) -> records_pb2.Value:
    # bool first: it is a subclass of int and must not become int_value.
    if isinstance(value, bool):
        return records_pb2.Value(bool_value=value)
    if isinstance(value, int):
        return records_pb2.Value(int_value=value)
    if isinstance(value, float):
        return records_pb2.Value(double_value=value)
    if isinstance(value, str):
        return records_pb2.Value(string_value=value)
    raise TypeError(f"event field {key!r}: unsupported type {type(value).__name__}")
