"""Read-only SQL over the documented views, sandboxed.

The query connection (`connect`) is opened read-only (`mode=ro` URI), with the alert store
attached read-only by us (the user's SQL can never ATTACH), the views of views.py as TEMP
views, `version_cmp(a, b, scheme)`, and `PRAGMA query_only`. `run_sql` then runs one user
statement under:

- an authorizer that allows only SELECT, reads of the views and of the base-table columns the
  views read (tokens, certificates, samples, ... stay out of reach), functions (but not
  load_extension) and recursive CTEs: every write, ATTACH/DETACH, PRAGMA, CREATE/DROP/ALTER,
  transaction control is refused with a message saying what was refused;
- a time limit (a progress handler aborts the statement), and a row limit (more rows than the
  limit is an error, not a silently cut answer);
- one statement only, which must start with SELECT, WITH or VALUES.

Three layers stop writes (read-only file handle, query_only, authorizer); the authorizer is
the one that also keeps the query to the documented data.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

from warden.agent.versions import compare_versions
from warden.collector.query import QueryError, QueryResult
from warden.collector.query.views import ALERT_SCHEMA, ALERTS, VIEW_NAMES, VIEWS, empty_select
from warden.collector.store.sqlite import QUERY_SCHEMA_VERSION, SqliteStore

DEFAULT_TIME_LIMIT_S = 5.0
DEFAULT_ROW_LIMIT = 10_000
MAX_SQL_CHARS = 100_000
MAX_VALUE_BYTES = 16 << 20  # SQLITE_LIMIT_LENGTH: no 1 GB zeroblob() in one VM step
PROGRESS_STEPS = 10_000  # VM instructions between time checks (well under a millisecond)

# Eponymous table-valued functions a query may use (labels are JSON objects).
_TABLE_FUNCTIONS = frozenset({"json_each", "json_tree"})
_DENIED_FUNCTIONS = frozenset({"load_extension"})
_SCHEMA_TABLES = frozenset({"sqlite_master", "sqlite_temp_master", "sqlite_schema", "sqlite_temp_schema"})

_ACTIONS = {
    sqlite3.SQLITE_INSERT: "INSERT", sqlite3.SQLITE_UPDATE: "UPDATE", sqlite3.SQLITE_DELETE: "DELETE",
    sqlite3.SQLITE_ATTACH: "ATTACH (and VACUUM INTO)", sqlite3.SQLITE_DETACH: "DETACH",
    sqlite3.SQLITE_PRAGMA: "PRAGMA (and pragma_* table functions)",
    sqlite3.SQLITE_TRANSACTION: "transaction control (BEGIN/COMMIT/ROLLBACK)",
    sqlite3.SQLITE_SAVEPOINT: "SAVEPOINT/RELEASE", sqlite3.SQLITE_ALTER_TABLE: "ALTER TABLE",
    sqlite3.SQLITE_ANALYZE: "ANALYZE", sqlite3.SQLITE_REINDEX: "REINDEX",
    sqlite3.SQLITE_CREATE_VTABLE: "CREATE VIRTUAL TABLE", sqlite3.SQLITE_DROP_VTABLE: "DROP VIRTUAL TABLE",
}
for _name in dir(sqlite3):  # every CREATE_* / DROP_* action code (table, index, view, trigger; temp too)
    if _name.startswith(("SQLITE_CREATE_", "SQLITE_DROP_")):
        _ACTIONS.setdefault(getattr(sqlite3, _name), _name[7:].replace("_", " "))


@lru_cache(maxsize=200_000)
def version_cmp(a: Any, b: Any, scheme: Any) -> int | None:
    """The SQL function: compare_versions, or NULL where it cannot answer (never an error, so
    one odd version in the fleet does not abort a query). Cached: a fleet has few distinct
    versions per package, and a dpkg comparison parses both versions every time."""
    if not isinstance(a, str) or not isinstance(b, str) or not isinstance(scheme, str):
        return None
    try:
        return compare_versions(a, b, scheme)
    except ValueError:
        return None


class QueryConnection(sqlite3.Connection):
    """A connection made by `connect`: knows which base-table columns its views read."""

    readable_columns: frozenset[tuple[str, str, str]] = frozenset()


def _ro_uri(path: Path) -> str:
    return path.resolve().as_uri() + "?mode=ro"


def connect(db_path: Path | str, alerts_db_path: Path | str | None = None) -> QueryConnection:
    """A read-only connection to the store with the documented views and version_cmp.

    Raises QueryError(kind="unavailable") when there is no store, or its schema predates the
    query tables (open it once with SqliteStore to migrate: see `open_store`).
    """
    db_path = Path(db_path)
    if not db_path.exists():
        raise QueryError(f"no store at {db_path}", "unavailable")
    try:
        conn = sqlite3.connect(_ro_uri(db_path), uri=True, isolation_level=None, check_same_thread=False,
                               timeout=5.0, factory=QueryConnection)
    except sqlite3.Error as exc:
        raise QueryError(f"cannot open {db_path} read-only: {exc}", "unavailable") from exc
    try:
        conn.execute("PRAGMA busy_timeout=5000")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version < QUERY_SCHEMA_VERSION:
            raise QueryError(f"{db_path}: schema version {version} has no query tables yet; open the "
                             "store once with this collector version to migrate it", "unavailable")
        alerts_body = empty_select(ALERTS)
        if alerts_db_path is not None and Path(alerts_db_path).exists():
            conn.execute(f"ATTACH DATABASE ? AS {ALERT_SCHEMA}", (_ro_uri(Path(alerts_db_path)),))
            try:
                conn.execute(f"SELECT 1 FROM {ALERT_SCHEMA}.alerts LIMIT 0")
                alerts_body = ALERTS.select
            except sqlite3.OperationalError:  # an alert store not initialised yet: no alerts
                pass
        for v in VIEWS:
            conn.execute(f"CREATE TEMP VIEW {v.name} AS {alerts_body if v is ALERTS else v.select}")
        for f in sorted(_TABLE_FUNCTIONS):
            # Their first use registers them in the schema (a write the authorizer would refuse).
            conn.execute(f"SELECT * FROM {f}('[]')").fetchall()
        conn.create_function("version_cmp", 3, version_cmp, deterministic=True)
        conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, MAX_VALUE_BYTES)
        conn.setlimit(sqlite3.SQLITE_LIMIT_SQL_LENGTH, MAX_SQL_CHARS * 4)
        conn.execute("PRAGMA query_only=ON")
        conn.readable_columns = _view_columns(conn)
    except sqlite3.Error as exc:  # e.g. a WAL file this user may not read
        conn.close()
        raise QueryError(f"cannot query {db_path}: {exc}", "unavailable") from exc
    except BaseException:
        conn.close()
        raise
    return conn


def open_store(db_path: Path | str, alerts_db_path: Path | str | None = None, *, migrate: bool = True,
               notify: Callable[[str], None] | None = None) -> QueryConnection:
    """`connect`, first migrating a store older than the query tables (a one-time write, as
    starting the collector would do) when `migrate` is true; `notify` hears about it."""
    try:
        return connect(db_path, alerts_db_path)
    except QueryError as exc:
        if not migrate or exc.kind != "unavailable" or not Path(db_path).exists():
            raise
        probe = sqlite3.connect(_ro_uri(Path(db_path)), uri=True)
        try:
            version = probe.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.Error:
            raise exc from None
        finally:
            probe.close()
        if version >= QUERY_SCHEMA_VERSION:
            raise
    if notify is not None:
        notify(f"migrating {db_path} (schema {version}): indexing stored packages and updates for queries")
    try:
        SqliteStore(db_path).close()
    except sqlite3.Error as exc:
        raise QueryError(f"cannot migrate {db_path}: {exc}", "unavailable") from exc
    return connect(db_path, alerts_db_path)


def _view_columns(conn: sqlite3.Connection) -> frozenset[tuple[str, str, str]]:
    """(schema, table, column) read by the view bodies: the only base-table columns a query
    may read. Recorded from SQLite itself, so it follows the view SQL."""
    seen: set[tuple[str, str, str]] = set()

    def record(action: int, table: str | None, column: str | None, db: str | None, source: str | None) -> int:
        if action == sqlite3.SQLITE_READ and db != "temp" and table and column is not None:
            seen.add((db or "main", table, column))
        return sqlite3.SQLITE_OK

    conn.set_authorizer(record)
    try:
        for v in VIEWS:
            conn.execute(f"SELECT * FROM {v.name} LIMIT 0").fetchall()
    finally:
        conn.set_authorizer(None)
    return frozenset(seen)


def _first_keyword(sql: str) -> str:
    """The statement's first keyword, after leading comments and whitespace."""
    i, n = 0, len(sql)
    while i < n:
        if sql[i].isspace():
            i += 1
        elif sql.startswith("--", i):
            j = sql.find("\n", i)
            i = n if j < 0 else j + 1
        elif sql.startswith("/*", i):
            j = sql.find("*/", i + 2)
            i = n if j < 0 else j + 2
        else:
            break
    j = i
    while j < n and (sql[j].isalnum() or sql[j] == "_"):
        j += 1
    return sql[i:j].upper() or sql[i:i + 1]


class _Guard:
    """The authorizer and the progress handler of one run, remembering why they refused."""

    def __init__(self, readable: frozenset[tuple[str, str, str]], time_limit_s: float) -> None:
        self.readable = readable
        self.tables = frozenset((db, t) for db, t, _ in readable)
        self.deadline = time.monotonic() + time_limit_s
        self.refusal: str | None = None
        self.timed_out = False

    def _deny(self, why: str) -> int:
        if self.refusal is None:
            self.refusal = why
        return sqlite3.SQLITE_DENY

    def authorize(self, action: int, arg1: str | None, arg2: str | None, db: str | None,
                  source: str | None) -> int:
        if action in (sqlite3.SQLITE_SELECT, sqlite3.SQLITE_RECURSIVE):
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_FUNCTION:
            if arg2 and arg2.lower() in _DENIED_FUNCTIONS:
                return self._deny(f"function {arg2}() is not allowed")
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_READ:
            # Decided by what is read, never by `source` (the view name): a CTE can take a
            # view's name and would then pass for it.
            table = arg1 or ""
            if db is None or (db == "temp" and table in VIEW_NAMES):
                return sqlite3.SQLITE_OK  # no schema: a CTE (count(*) over it), not a stored table
            if table in _TABLE_FUNCTIONS:
                return sqlite3.SQLITE_OK
            key = (db or "main", table)
            if (*key, arg2 or "") in self.readable or (arg2 == "" and key in self.tables):
                return sqlite3.SQLITE_OK  # arg2 "": count(*) reads no column
            where = table if db in (None, "main", "temp") else f"{db}.{table}"
            views = ", ".join(v.name for v in VIEWS)
            return self._deny(f"reading {where}{'.' + arg2 if arg2 else ''} is not allowed: query the "
                              f"views {views} (see `warden-collector query views`)")
        if action in (sqlite3.SQLITE_INSERT, sqlite3.SQLITE_DELETE) and arg1 in _SCHEMA_TABLES:
            return self._deny("changing the schema (CREATE, DROP, ANALYZE) is not allowed: the query "
                              "interface is read-only")
        if action == sqlite3.SQLITE_UPDATE and arg1 in _SCHEMA_TABLES:
            # What the first use of a table-valued function (pragma_table_info, ...) looks like.
            return self._deny(f"table-valued functions other than {', '.join(sorted(_TABLE_FUNCTIONS))} "
                              "are not allowed")
        what = _ACTIONS.get(action, f"operation {action}")
        return self._deny(f"{what} is not allowed: the query interface is read-only "
                          "(one SELECT over the documented views)")

    def progress(self) -> int:
        if time.monotonic() > self.deadline:
            self.timed_out = True
            return 1  # non-zero: SQLite interrupts the statement
        return 0


def _cell(v: Any) -> Any:
    return v.hex() if isinstance(v, bytes) else v


def run_sql(conn: QueryConnection, sql: str, *, time_limit_s: float = DEFAULT_TIME_LIMIT_S,
            row_limit: int = DEFAULT_ROW_LIMIT) -> QueryResult:
    """Run one read-only statement on a `connect` connection; QueryError on any refusal.

    Blobs come back as hex strings. The connection stays usable after an error.
    """
    if not isinstance(sql, str) or not sql.strip():
        raise QueryError("empty query")
    if len(sql) > MAX_SQL_CHARS:
        raise QueryError(f"query longer than {MAX_SQL_CHARS} characters", "refused")
    if time_limit_s <= 0 or row_limit <= 0:
        raise QueryError("time and row limits must be positive")
    first = _first_keyword(sql)
    if first not in ("SELECT", "WITH", "VALUES"):
        raise QueryError(f"{first} is not allowed: the query interface is read-only "
                         "(one SELECT over the documented views)", "refused")
    guard = _Guard(conn.readable_columns, time_limit_s)
    conn.set_authorizer(guard.authorize)
    conn.set_progress_handler(guard.progress, PROGRESS_STEPS)
    cur: sqlite3.Cursor | None = None
    try:
        cur = conn.execute(sql)
        columns = [d[0] for d in cur.description or ()]
        rows: list[tuple[Any, ...]] = []
        while chunk := cur.fetchmany(1000):
            rows.extend(chunk)
            if len(rows) > row_limit:
                raise QueryError(f"more than {row_limit} rows: narrow the query (WHERE, LIMIT, GROUP BY) "
                                 "or raise the row limit", "row_limit")
    except sqlite3.Error as exc:
        raise _translate(exc, guard, time_limit_s) from None
    finally:
        if cur is not None:
            cur.close()  # ends the statement and its read snapshot, also when stopped midway
        conn.set_progress_handler(None, 0)
        conn.set_authorizer(None)
    return QueryResult(columns, [tuple(_cell(v) for v in r) for r in rows])


def _translate(exc: sqlite3.Error, guard: _Guard, time_limit_s: float) -> QueryError:
    text = str(exc)
    if guard.timed_out:
        return QueryError(f"stopped after the time limit of {time_limit_s:g} s: narrow the query "
                          "(WHERE on indexed columns, LIMIT) or raise the time limit", "time_limit")
    if guard.refusal is not None:
        return QueryError(guard.refusal, "refused")
    if isinstance(exc, sqlite3.ProgrammingError) and "one statement" in text:
        return QueryError("only one SQL statement per query", "refused")
    if "readonly" in text or "read-only" in text:
        return QueryError(f"refused: {text} (the query interface is read-only)", "refused")
    return QueryError(f"SQL error: {text}")

