"""The collector's state store interface. SQLite (sqlite.py) is the default backend.

Everything a collector remembers goes through this interface: hosts, certificates,
enrollment tokens, per-spool commit marks, latest inventory, metric history, events.
Methods are synchronous and thread-safe; the collector calls writers from one writer
thread (group commit) and readers from any thread.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from warden.collector.records import Batch, CommitResult, Event

# (host_id, section, old data, new data) -> change events, stored with the new data.
InventoryObserver = Callable[[str, str, dict[str, Any], dict[str, Any]], Iterable[Event]]


class TokenRefused(Exception):
    """An enrollment token cannot be used. `reason` is one of: unknown, expired, used."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"enrollment token {reason}")
        self.reason = reason


@dataclass(slots=True)
class Host:
    host_id: str
    hostname: str
    labels: dict[str, str]
    os: str
    agent_version: str
    cert_serial: str  # hex serial of the newest certificate issued to the host
    first_seen_ns: int
    last_seen_ns: int
    revoked: bool


@dataclass(slots=True)
class TokenInfo:
    token_id: str
    labels: dict[str, str]
    created_ns: int
    expires_ns: int
    used_ns: int | None
    used_by: str | None


@dataclass(slots=True)
class SeriesPoints:
    name: str
    labels: dict[str, str]
    points: list[tuple[int, float]] = field(default_factory=list)  # (time_ns, value), ascending


@dataclass(slots=True)
class StoredEvent:
    id: int
    host_id: str
    event: Event


class Store(Protocol):
    # --- enrollment tokens -------------------------------------------------------------
    def add_token(self, token_id: str, secret_hash: bytes, labels: dict[str, str],
                  created_ns: int, expires_ns: int) -> None: ...

    def consume_token(self, token_id: str, secret_hash: bytes, now_ns: int,
                      host_id: str) -> dict[str, str]:
        """Mark the token used by host_id and return its labels; raise TokenRefused otherwise.

        Single use is enforced atomically: of two concurrent consumers exactly one wins.
        """

    def list_tokens(self) -> list[TokenInfo]: ...

    # --- hosts and certificates -----------------------------------------------------------
    def enroll_host(self, host_id: str, hostname: str, labels: dict[str, str], cert_serial: str,
                    not_before_ns: int, not_after_ns: int, now_ns: int) -> None:
        """Create or re-enroll a host. Re-enrolling revokes the host's earlier certificates
        and clears its revoked flag (a fresh token is the operator's decision)."""

    def add_certificate(self, host_id: str, cert_serial: str, not_before_ns: int,
                        not_after_ns: int) -> None:
        """Record a renewed certificate; it becomes the host's current serial."""

    def revoke_host(self, host_id: str, now_ns: int) -> int:
        """Revoke every certificate of the host; return how many. Unknown host -> KeyError."""

    def is_revoked(self, cert_serial: str) -> bool:
        """True for a revoked serial and for a serial the store never issued."""

    def revoked_serials(self) -> set[str]: ...

    # --- operators (people and tools following the alert feed) ------------------------------
    def add_operator_cert(self, name: str, cert_serial: str, not_before_ns: int, not_after_ns: int,
                          now_ns: int) -> None: ...

    def operator_of(self, cert_serial: str) -> str | None:
        """The operator name of a valid (issued, unrevoked) operator certificate, else None."""

    def revoke_operator(self, name: str, now_ns: int) -> int:
        """Revoke every certificate of the operator; return how many."""

    def change_counter(self) -> int:
        """A number that changes whenever any connection (another process too) commits
        to the store; cheap to poll (PRAGMA data_version on SQLite)."""

    def get_host(self, host_id: str) -> Host | None: ...

    def list_hosts(self) -> list[Host]: ...

    def touch_host(self, host_id: str, now_ns: int, *, hostname: str | None = None,
                   agent_version: str | None = None) -> None: ...

    # --- ingest ----------------------------------------------------------------------------
    def committed_seq(self, host_id: str, spool_id: str) -> int: ...

    def commit_batches(self, batches: Sequence[Batch], now_ns: int) -> list[CommitResult]:
        """Store many batches in ONE durable transaction (group commit) and return one
        result per batch, in order. Deduplicates by (host, spool, sequence): records at or
        below the spool's committed sequence are skipped. Updates hosts.last_seen, the
        latest inventory per (host, section) and hosts.os from an "os" section. Either all
        batches are stored or none (an exception leaves the store unchanged)."""

    # --- queries -----------------------------------------------------------------------------
    def query_metrics(self, host_id: str, name: str, since_ns: int = 0,
                      until_ns: int | None = None) -> list[SeriesPoints]: ...

    def latest_metrics(self, host_id: str) -> list[SeriesPoints]:
        """Each series of the host with only its newest point."""

    def inventory(self, host_id: str) -> dict[str, tuple[int, dict[str, Any]]]:
        """section -> (time_ns, data)."""

    def events(self, host_id: str | None = None, since_ns: int = 0,
               limit: int = 100) -> list[StoredEvent]:
        """Newest first."""

    def counts(self) -> dict[str, int]:
        """Row counts: hosts, series, samples, events, inventory."""

    def query_database(self) -> Path:
        """The SQLite file that fleet queries (warden.collector.query) open read-only: it holds
        the hosts, events and the query tables derived from inventory (see docs/queries.md)."""

    # --- maintenance ---------------------------------------------------------------------
    def apply_retention(self, now_ns: int, metrics_seconds: int, events_seconds: int) -> int:
        """Delete samples/events older than the retention; return rows deleted."""

    def close(self) -> None: ...
