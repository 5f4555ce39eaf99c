"""`warden-collector query ...`: the canned questions and read-only SQL, on the store file.

No running collector is needed: the store is opened read-only (WAL lets it be read while the
collector writes). A store older than the query tables is migrated first, once, as starting
the collector would do.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from warden.collector.query import QueryError, QueryResult, canned
from warden.collector.query import sql as qsql
from warden.collector.query.output import FORMATS, render
from warden.collector.query.views import FUNCTIONS_DOC, VIEWS


def views_result() -> QueryResult:
    """Every view column (and the SQL functions) as rows: view, column, type, description."""
    rows = [(v.name, c.name, c.type, c.doc) for v in VIEWS for c in v.columns]
    rows += [("(function)", sig, "", doc) for sig, doc in FUNCTIONS_DOC]
    return QueryResult(["view", "column", "type", "description"], rows)


def views_text() -> str:
    out = []
    for v in VIEWS:
        out.append(f"{v.name}: {v.doc}")
        width = max(len(c.name) for c in v.columns)
        out.extend(f"  {c.name:{width}}  {c.type:7}  {c.doc}" for c in v.columns)
        out.append("")
    out.append("functions:")
    out.extend(f"  {sig}: {doc}" for sig, doc in FUNCTIONS_DOC)
    return "\n".join(out) + "\n"


def _positive(text: str) -> float:
    v = float(text)
    if v < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return v


def add_parser(sub: argparse._SubParsersAction, run: Callable[[argparse.Namespace], int]) -> None:
    """Add `query` and its sub-commands to the collector CLI; each runs `run(args)`."""
    q = sub.add_parser("query", help="fleet queries: outdated packages, pending updates, compliance, SQL",
                       description="Patch-compliance queries and read-only SQL over the store "
                                   "(see docs/queries.md). Needs no running collector.")
    qs = q.add_subparsers(dest="query_cmd", required=True)

    def cmd(name: str, help_text: str) -> argparse.ArgumentParser:
        # help is %-formatted by argparse, the description is not
        p = qs.add_parser(name, help=help_text.replace("%", "%%"), description=help_text)
        p.add_argument("--format", "-f", choices=FORMATS, default="table", help="output (default: table)")
        p.add_argument("--config", type=Path, default=argparse.SUPPRESS)
        p.set_defaults(func=run)
        return p

    p = cmd("package", "hosts where a package's version compares OP VERSION, by each host's own "
                       "version rules (e.g. openssl '<' 3.0.15-1~deb12u1)")
    p.add_argument("name")
    p.add_argument("op", help="< <= = != >= > (or lt le eq ne ge gt)")
    p.add_argument("version")
    p = cmd("security-pending", "hosts with security updates pending for DAYS days or more")
    p.add_argument("--days", type=_positive, default=7.0, help="default 7")
    p = cmd("reboot", "hosts that need a reboot (for DAYS days or more), and since when")
    p.add_argument("--days", type=_positive, default=0.0, help="default 0: all")
    p = cmd("stale-updates", "hosts without a successful package update for DAYS days or more")
    p.add_argument("--days", type=_positive, default=30.0, help="default 30")
    p.add_argument("--include-unknown", action="store_true",
                   help="also hosts whose agent cannot tell when it last updated")
    p = cmd("versions", "installed versions of a package across the fleet, with host counts")
    p.add_argument("name")
    p.add_argument("--max-hosts", type=int, default=10, help="host ids listed per version (0: all)")
    p = cmd("compliance", "% of hosts with no security update pending for DAYS days and no reboot "
                          "needed, per label value")
    p.add_argument("--by", help="label to group by, e.g. room (default: the whole fleet)")
    p.add_argument("--days", type=_positive, default=7.0, help="default 7")
    p = cmd("sql", "one read-only SELECT over the views (see `query views`), with version_cmp()")
    p.add_argument("query", help="the SQL text, or - to read it from stdin")
    p.add_argument("--time-limit", type=float, default=qsql.DEFAULT_TIME_LIMIT_S,
                   help=f"seconds (default {qsql.DEFAULT_TIME_LIMIT_S:g})")
    p.add_argument("--max-rows", type=int, default=qsql.DEFAULT_ROW_LIMIT,
                   help=f"refuse larger results (default {qsql.DEFAULT_ROW_LIMIT})")
    cmd("views", "the views and columns `query sql` can read")


def answer(args: argparse.Namespace, conn: qsql.QueryConnection) -> QueryResult:
    """Run the query `args` asks for on an open query connection."""
    c = args.query_cmd
    if c == "package":
        return canned.package(conn, args.name, args.op, args.version)
    if c == "security-pending":
        return canned.security_pending(conn, args.days)
    if c == "reboot":
        return canned.reboot(conn, args.days)
    if c == "stale-updates":
        return canned.stale_updates(conn, args.days, include_unknown=args.include_unknown)
    if c == "versions":
        return canned.versions(conn, args.name, args.max_hosts)
    if c == "compliance":
        return canned.compliance(conn, args.by, args.days)
    if c == "sql":
        text = sys.stdin.read() if args.query == "-" else args.query
        return qsql.run_sql(conn, text, time_limit_s=args.time_limit, row_limit=args.max_rows)
    raise QueryError(f"unknown query {c!r}")


def run(args: argparse.Namespace, db_path: Path, alerts_db_path: Path | None) -> int:
    """Print the answer to stdout (notes to stderr); 1 with a message when it is refused."""
    if args.query_cmd == "views":
        sys.stdout.write(views_text() if args.format == "table" else render(views_result(), args.format))
        return 0
    try:
        conn = qsql.open_store(db_path, alerts_db_path, notify=lambda m: print(m, file=sys.stderr))
        try:
            result = answer(args, conn)
        finally:
            conn.close()
    except QueryError as exc:
        print(f"warden-collector: {exc}", file=sys.stderr)
        return 1
    sys.stdout.write(render(result, args.format))
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    return 0
