"""Fleet queries over the collector's store (docs/queries.md).

- `canned`: the patch-compliance questions (package older than a version, security updates
  pending for N days, reboot needed, no update for N days, versions across the fleet,
  compliance by label), on the query tables the store maintains at ingest.
- `sql`: read-only SQL over documented views (`views`), sandboxed: authorizer, time and row limits.
- `output`: results as an aligned table, CSV or JSON.
- `command` / `http`: the `warden-collector query` CLI and the /api/v1/query/... endpoints.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class QueryError(ValueError):
    """A query that cannot be answered; `kind` says why, the message says what to do.

    kind: "refused" (the sandbox does not allow it), "time_limit", "row_limit",
    "invalid" (a bad argument or SQL error), "unavailable" (no store, or one to migrate).
    """

    def __init__(self, message: str, kind: str = "invalid") -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(slots=True)
class QueryResult:
    columns: list[str]
    rows: list[tuple[Any, ...]]
    notes: list[str] = field(default_factory=list)  # e.g. hosts skipped, and why

    def dicts(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, r, strict=True)) for r in self.rows]

    def as_json(self) -> dict[str, Any]:
        return {"columns": self.columns, "rows": self.dicts(), "count": len(self.rows), "notes": self.notes}
