"""GET /api/v1/query/... : the `warden-collector query` commands over HTTP.

    GET  /api/v1/query/views
    GET  /api/v1/query/package/{name}?op=<&version=3.0.15-1~deb12u1   (op: < <= = != >= > or lt le ...)
    GET  /api/v1/query/security-pending?days=7
    GET  /api/v1/query/reboot?days=0
    GET  /api/v1/query/stale-updates?days=30&include_unknown=1
    GET  /api/v1/query/versions/{name}?max_hosts=10
    GET  /api/v1/query/compliance?by=room&days=7
    GET  /api/v1/query/sql?q=SELECT...             POST /api/v1/query/sql {"q": "SELECT ..."}

Every endpoint takes `format=json` (default: {"query", "columns", "rows": [objects], "count",
"notes"}), `csv` or `table`. A refused or failed query is HTTP 400 {"error", "kind"}; 503 when
the store cannot be opened. SQL may ask for a lower `time_limit` / `row_limit` than the
server's, never a higher one, and at most `concurrency` queries run at once: a runaway query
costs one worker thread for the time limit, not the collector.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from warden.collector.query import QueryError, QueryResult, canned
from warden.collector.query import sql as qsql
from warden.collector.query.command import views_result
from warden.collector.query.output import FORMATS, render

_CONTENT_TYPES = {"csv": "text/csv", "table": "text/plain"}
# What a handler's parameter check returns: the query to run, and the parameters it understood.
_Built = tuple[Callable[[qsql.QueryConnection], QueryResult], dict[str, Any]]


def _number(request: web.Request, key: str, default: float, *, minimum: float = 0.0) -> float:
    text = request.query.get(key)
    if text is None or text == "":
        return default
    try:
        v = float(text)
    except ValueError:
        raise QueryError(f"{key} must be a number") from None
    if not v >= minimum:  # also refuses NaN
        raise QueryError(f"{key} must be >= {minimum:g}")
    return v


def _flag(request: web.Request, key: str) -> bool:
    return request.query.get(key, "").lower() in ("1", "true", "yes")


class QueryApi:
    """The query routes; `db_path` and `alerts_db_path` are the files a query opens read-only."""

    def __init__(self, db_path: Callable[[], Path], alerts_db_path: Path | None = None, *,
                 time_limit_s: float = qsql.DEFAULT_TIME_LIMIT_S, row_limit: int = qsql.DEFAULT_ROW_LIMIT,
                 concurrency: int = 2) -> None:
        self._db_path, self._alerts_db_path = db_path, alerts_db_path
        self.time_limit_s, self.row_limit = time_limit_s, row_limit
        self._concurrency = concurrency
        self._sem: asyncio.Semaphore | None = None  # created in the serving loop

    def routes(self) -> list[web.RouteDef]:
        p = "/api/v1/query"
        return [
            web.get(f"{p}/views", self.views),
            web.get(f"{p}/package/{{name}}", self.package),
            web.get(f"{p}/security-pending", self.security_pending),
            web.get(f"{p}/reboot", self.reboot),
            web.get(f"{p}/stale-updates", self.stale_updates),
            web.get(f"{p}/versions/{{name}}", self.versions),
            web.get(f"{p}/compliance", self.compliance),
            web.get(f"{p}/sql", self.sql),
            web.post(f"{p}/sql", self.sql),
        ]

    def _answer(self, fn: Callable[[qsql.QueryConnection], QueryResult]) -> QueryResult:
        conn = qsql.connect(self._db_path(), self._alerts_db_path)
        try:
            return fn(conn)
        finally:
            conn.close()

    async def _respond(self, request: web.Request, name: str,
                       fn: Callable[[qsql.QueryConnection], QueryResult] | None,
                       params: dict[str, Any], result: QueryResult | None = None) -> web.Response:
        fmt = request.query.get("format", "json")
        if fmt not in FORMATS:
            return web.json_response({"error": f"format must be one of {', '.join(FORMATS)}",
                                      "kind": "invalid"}, status=400)
        if result is None:
            assert fn is not None
            if self._sem is None:
                self._sem = asyncio.Semaphore(self._concurrency)
            try:
                async with self._sem:
                    result = await asyncio.to_thread(self._answer, fn)
            except QueryError as exc:
                return web.json_response({"error": str(exc), "kind": exc.kind},
                                         status=503 if exc.kind == "unavailable" else 400)
        if fmt != "json":
            return web.Response(text=render(result, fmt), content_type=_CONTENT_TYPES[fmt], charset="utf-8")
        return web.json_response({"query": name, "params": params, **result.as_json()},
                                 dumps=lambda d: json.dumps(d, default=str))

    async def _guarded(self, request: web.Request, name: str, build: Callable[[], _Built]) -> web.Response:
        """Validate the parameters (`build`), then answer; a bad parameter is a 400."""
        try:
            fn, params = build()
        except QueryError as exc:
            return web.json_response({"error": str(exc), "kind": exc.kind}, status=400)
        return await self._respond(request, name, fn, params)

    async def views(self, request: web.Request) -> web.Response:
        return await self._respond(request, "views", None, {}, views_result())

    async def package(self, request: web.Request) -> web.Response:
        def build() -> _Built:
            name = request.match_info["name"]
            op = canned.operator(request.query.get("op", "<"))
            version = request.query.get("version", "")
            if not version:
                raise QueryError("query parameter 'version' is required")
            return (lambda c: canned.package(c, name, op, version)), {"name": name, "op": op,
                                                                      "version": version}
        return await self._guarded(request, "package", build)

    async def security_pending(self, request: web.Request) -> web.Response:
        def build() -> _Built:
            days = _number(request, "days", 7.0)
            return (lambda c: canned.security_pending(c, days)), {"days": days}
        return await self._guarded(request, "security-pending", build)

    async def reboot(self, request: web.Request) -> web.Response:
        def build() -> _Built:
            days = _number(request, "days", 0.0)
            return (lambda c: canned.reboot(c, days)), {"days": days}
        return await self._guarded(request, "reboot", build)

    async def stale_updates(self, request: web.Request) -> web.Response:
        def build() -> _Built:
            days, unknown = _number(request, "days", 30.0), _flag(request, "include_unknown")
            return ((lambda c: canned.stale_updates(c, days, include_unknown=unknown)),
                    {"days": days, "include_unknown": unknown})
        return await self._guarded(request, "stale-updates", build)

    async def versions(self, request: web.Request) -> web.Response:
        def build() -> _Built:
            name, max_hosts = request.match_info["name"], int(_number(request, "max_hosts", 10))
            return (lambda c: canned.versions(c, name, max_hosts)), {"name": name, "max_hosts": max_hosts}
        return await self._guarded(request, "versions", build)

    async def compliance(self, request: web.Request) -> web.Response:
        def build() -> _Built:
            by, days = request.query.get("by") or None, _number(request, "days", 7.0)
            return (lambda c: canned.compliance(c, by, days)), {"by": by, "days": days}
        return await self._guarded(request, "compliance", build)

    async def sql(self, request: web.Request) -> web.Response:
        body: dict[str, Any] = {}
        if request.method == "POST":
            try:
                body = await request.json()
            except ValueError:
                body = None  # type: ignore[assignment]
            if not isinstance(body, dict):
                return web.json_response({"error": 'body must be a JSON object: {"q": "SELECT ..."}',
                                          "kind": "invalid"}, status=400)

        def build() -> _Built:
            text = body.get("q", body.get("sql")) if body else request.query.get("q")
            if not isinstance(text, str) or not text.strip():
                raise QueryError("the SQL text is required: ?q=SELECT... or a JSON body {\"q\": ...}")
            limits = {**request.query, **body}
            time_limit = min(self.time_limit_s, _limit(limits, "time_limit", self.time_limit_s))
            row_limit = int(min(self.row_limit, _limit(limits, "row_limit", self.row_limit)))
            return ((lambda c: qsql.run_sql(c, text, time_limit_s=time_limit, row_limit=row_limit)),
                    {"q": text, "time_limit": time_limit, "row_limit": row_limit})
        return await self._guarded(request, "sql", build)


def _limit(values: dict[str, Any], key: str, default: float) -> float:
    raw = values.get(key)
    if raw is None or raw == "":
        return default
    try:
        v = float(raw)
    except (TypeError, ValueError):
        raise QueryError(f"{key} must be a number") from None
    if not v > 0:
        raise QueryError(f"{key} must be > 0")
    return v
