"""Query results as an aligned table (people), CSV (spreadsheets) or JSON (scripts).

- table: upper-case header, columns separated by two spaces, numbers right-aligned, NULL as `-`.
- csv: RFC 4180 with a header of the column names; NULL is an empty field.
- json: an array of objects keyed by column name, in column order; NULL is null.

Lists (e.g. `host_ids`) are joined with ", " in table and CSV, arrays in JSON.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from warden.collector.query import QueryResult

FORMATS = ("table", "csv", "json")


def _text(v: Any, null: str, *, short_floats: bool = False) -> str:
    if v is None:
        return null
    if isinstance(v, list | tuple):
        return ", ".join(_text(x, null, short_floats=short_floats) for x in v)
    if short_floats and isinstance(v, float) and abs(v) < 1e15:
        return f"{v:g}"  # tables: 12.5, 0, 1e-05; CSV keeps every digit
    return str(v)


def _numeric(values: list[Any]) -> bool:
    present = [v for v in values if v is not None]
    return bool(present) and all(isinstance(v, int | float) and not isinstance(v, bool) for v in present)


def render_table(result: QueryResult) -> str:
    cols = list(zip(*result.rows, strict=True)) if result.rows else [() for _ in result.columns]
    cells = [[_text(v, "-", short_floats=True).replace("\n", "\\n") for v in col] for col in cols]
    headers = [c.upper() for c in result.columns]
    widths = [max([len(h), *(len(x) for x in col)]) for h, col in zip(headers, cells, strict=True)]
    right = [_numeric(list(col)) for col in cols]

    def line(values: list[str]) -> str:
        parts = [v.rjust(w) if r else v.ljust(w) for v, w, r in zip(values, widths, right, strict=True)]
        return "  ".join(parts).rstrip()

    lines = [line(headers)]
    lines.extend(line([col[i] for col in cells]) for i in range(len(result.rows)))
    return "\n".join(lines) + "\n"


def render_csv(result: QueryResult) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(result.columns)
    w.writerows([_text(v, "") for v in row] for row in result.rows)
    return buf.getvalue()


def render_json(result: QueryResult) -> str:
    return json.dumps(result.dicts(), indent=2, default=str) + "\n"


def render(result: QueryResult, fmt: str) -> str:
    """The result in `fmt` (one of FORMATS), ending with a newline."""
    if fmt == "table":
        return render_table(result)
    if fmt == "csv":
        return render_csv(result)
    if fmt == "json":
        return render_json(result)
    raise ValueError(f"unknown format {fmt!r} (one of {', '.join(FORMATS)})")
