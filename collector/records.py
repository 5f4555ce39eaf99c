"""Plain records: what the collector works with once protobuf is left at the door.

The gRPC servicer translates `warden.v1` messages into these; ingest, the store,
sinks and (later) rules never see protobuf types.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

FieldValue = str | int | float | bool


@dataclass(slots=True)
class MetricSample:
    name: str
    labels: dict[str, str]
    value: float
    time_ns: int


@dataclass(slots=True)
class InventorySection:
    """The latest state of one typed inventory section (e.g. "os"), as a JSON-able dict."""

    section: str
    time_ns: int
    data: dict[str, Any]


@dataclass(slots=True)
class Event:
    kind: str
    severity: str  # "debug" | "info" | "notice" | "warning" | "error" | "critical" | "unspecified"
    time_ns: int
    fields: dict[str, FieldValue] = field(default_factory=dict)
    raw: str = ""
    source: str = ""


Record = MetricSample | InventorySection | Event


@dataclass(slots=True)
class Batch:
    """Records [first_seq, last_seq] of one agent spool; identity comes from the client certificate."""

    host_id: str
    spool_id: str
    first_seq: int
    last_seq: int
    records: list[Record]
    stream: int = 0  # which Report stream carried it (the servicer numbers them; 0 = none)


@dataclass(slots=True, frozen=True)
class CommitResult:
    """Outcome of committing one batch.

    `committed_seq` is the host/spool high-water mark after the commit (what the agent is acked);
    `skipped` is how many leading records of the batch were already stored (duplicates), so
    `batch.records[skipped:]` are the records that were stored by this commit, and `derived`
    the events stored with them (the machine register's change events).
    """

    committed_seq: int
    skipped: int
    derived: tuple[Event, ...] = ()  # events the store made from these records (register changes)
