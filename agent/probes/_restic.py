"""Parse `restic snapshots --json` (pure: bytes in, snapshots out), for the backups probe.

restic prints one JSON array of snapshot objects; with `--group-by` it prints an array of
groups, each holding its snapshots. Only `id` and `time` are required; `summary` (with the
snapshot's size as `total_bytes_processed`) exists from restic 0.17 on.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any

__all__ = ["ParseError", "Snapshot", "load_json", "parse_snapshots", "parse_timestamp"]


class ParseError(ValueError):
    """The tool's output is not what it documents (truncated, garbled, another format)."""


@dataclass(frozen=True)
class Snapshot:
    id: str
    short_id: str
    time: float  # Unix seconds
    hostname: str
    paths: tuple[str, ...]
    tags: tuple[str, ...]
    size_bytes: int | None  # summary.total_bytes_processed (restic >= 0.17), else unknown


# Go's RFC 3339 with up to nanoseconds, as restic writes it; also borg's zone-less local time.
_TIMESTAMP = re.compile(
    r"(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}(?::\d{2})?)(?:[.,](\d{1,9}))?\s*(Z|z|[+-]\d{2}:?\d{2})?"
)


def parse_timestamp(text: str, naive_tz: tzinfo | None = None) -> float:
    """Unix seconds of an ISO 8601 / RFC 3339 time, e.g. "2018-11-14T15:16:31.605184277+01:00".

    datetime.fromisoformat (3.11) refuses more than 6 fractional digits, which restic (Go)
    writes; a time without zone is taken in `naive_tz`, or local time when None.
    """
    m = _TIMESTAMP.fullmatch(text.strip()) if isinstance(text, str) else None
    if m is None:
        raise ValueError(f"not a timestamp: {text!r}")
    date, clock, fraction, zone = m.groups()
    try:
        dt = datetime.fromisoformat(f"{date}T{clock}")
    except ValueError:
        raise ValueError(f"not a timestamp: {text!r}") from None
    if zone in ("Z", "z"):
        dt = dt.replace(tzinfo=UTC)
    elif zone:
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
        dt = dt.replace(tzinfo=timezone(sign * offset))
    elif naive_tz is not None:
        dt = dt.replace(tzinfo=naive_tz)
    # A naive datetime's timestamp() is taken in local time.
    return dt.timestamp() + (int(fraction) / 10 ** len(fraction) if fraction else 0.0)


def parse_snapshots(data: bytes | str) -> list[Snapshot]:
    """All snapshots in `restic snapshots --json` output, in the order printed."""
    doc = load_json(data)
    if not isinstance(doc, list):
        raise ParseError(f"expected a JSON array of snapshots, got {type(doc).__name__}")
    out: list[Snapshot] = []
    for i, item in enumerate(doc):
        if not isinstance(item, dict):
            raise ParseError(f"item {i}: expected an object, got {type(item).__name__}")
        # --group-by output: {"group_key": {...}, "snapshots": [...]} ("GroupKey"/"Snapshots" before 0.10).
        group = item.get("snapshots", item.get("Snapshots"))
        if isinstance(group, list) and "id" not in item:
            out.extend(_snapshot(s, f"item {i}.snapshots[{j}]") for j, s in enumerate(group))
        else:
            out.append(_snapshot(item, f"item {i}"))
    return out


def load_json(data: bytes | str) -> Any:
    """One JSON document, or a ParseError that says whether it was cut short or garbled."""
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
    except UnicodeDecodeError as e:
        raise ParseError(f"output is not UTF-8 ({e.reason} at byte {e.start})") from None
    if not text.strip():
        raise ParseError("empty output")
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        # An unterminated string also runs to the end: both mean the output was cut short.
        cut = e.pos >= len(text.rstrip()) or e.msg.startswith("Unterminated string")
        what = "truncated JSON" if cut else "invalid JSON"
        raise ParseError(f"{what}: {e.msg} at line {e.lineno} column {e.colno}") from None
    except RecursionError:  # "[[[[..." nested past the interpreter's limit
        raise ParseError("invalid JSON: nested too deeply") from None


def _snapshot(item: Any, where: str) -> Snapshot:
    if not isinstance(item, dict):
        raise ParseError(f"{where}: expected an object, got {type(item).__name__}")
    sid, when = item.get("id"), item.get("time")
    if not isinstance(sid, str) or not sid:
        raise ParseError(f"{where}: no snapshot id")
    try:
        t = parse_timestamp(when)  # type: ignore[arg-type]
    except ValueError as e:
        raise ParseError(f"{where} ({sid[:8]}): {e}") from None
    summary = item.get("summary")
    size = summary.get("total_bytes_processed") if isinstance(summary, dict) else None
    short = item.get("short_id")
    return Snapshot(
        id=sid,
        short_id=short if isinstance(short, str) and short else sid[:8],
        time=t,
        hostname=_str(item.get("hostname")),
        paths=_strs(item.get("paths")),
        tags=_strs(item.get("tags")),
        size_bytes=size if isinstance(size, int) and not isinstance(size, bool) and size >= 0 else None,
    )


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _strs(value: Any) -> tuple[str, ...]:
    return tuple(v for v in value if isinstance(v, str)) if isinstance(value, list) else ()
