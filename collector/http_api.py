"""The collector's HTTP face: health, Prometheus /metrics, and a read-only JSON API
over the store (hosts, latest metrics, metric history, inventory, events).

aiohttp runs in the collector's own event loop beside grpc.aio, so there is one
process and one loop; store reads go to a worker thread.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from warden.collector import compliance, overview
from warden.collector.alerts.manager import AlertManager
from warden.collector.servicer import StreamRegistry
from warden.collector.sinks.influx import InfluxSink
from warden.collector.store.base import Host, SeriesPoints, Store
from warden.collector.telemetry import Telemetry


def _host_json(h: Host, now_ns: int) -> dict[str, Any]:
    d = dataclasses.asdict(h)
    d["last_seen_seconds_ago"] = round((now_ns - h.last_seen_ns) / 1e9, 1) if h.last_seen_ns else None
    return d


def _series_json(s: SeriesPoints) -> dict[str, Any]:
    return {"name": s.name, "labels": s.labels, "points": [[t, v] for t, v in s.points]}


class HttpApi:
    def __init__(self, store: Store, telemetry: Telemetry, streams: StreamRegistry,
                 sink: InfluxSink | None, alerts: AlertManager | None = None,
                 rules_status: Callable[[], dict[str, Any]] | None = None) -> None:
        self._store, self._telemetry, self._streams, self._sink = store, telemetry, streams, sink
        self._alerts, self._rules_status = alerts, rules_status
        self.web_error = ""  # set by the server when the configured dashboard could not start
        app = web.Application()
        app.add_routes([
            web.get("/", self.overview),
            web.get("/healthz", self.health),
            web.get("/metrics", self.metrics),
            web.get("/api/v1/hosts", self.hosts),
            web.get("/api/v1/hosts/{host_id}", self.host),
            web.get("/api/v1/hosts/{host_id}/metrics", self.host_metrics),
            web.get("/api/v1/hosts/{host_id}/inventory", self.host_inventory),
            web.get("/api/v1/events", self.events),
            web.get("/api/v1/compliance/patches", self.patches),
            web.get("/api/v1/compliance/packages/{name}", self.package),
            web.get("/api/v1/alerts", self.alerts),
            web.get("/api/v1/alerts/{alert_id}", self.alert),
            web.get("/api/v1/silences", self.silences),
            web.get("/api/v1/rules/status", self.rules),
        ])
        app.add_routes(self._query_routes(store, alerts))
        self._app = app
        self._runner: web.AppRunner | None = None

    @staticmethod
    def _query_routes(store: Store, alerts: AlertManager | None) -> list[web.RouteDef]:
        """/api/v1/query/...: canned queries and read-only SQL (warden.collector.query.api)."""
        from warden.collector.query.api import QueryApi

        return QueryApi(store.query_database, alerts.store.path if alerts is not None else None).routes()

    async def start(self, listen: str) -> int:
        host, _, port = listen.rpartition(":")
        self._runner = web.AppRunner(self._app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host.strip("[]") or None, int(port))
        await site.start()
        return site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()

    async def _read(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.to_thread(fn, *args)

    async def overview(self, request: web.Request) -> web.Response:
        def load() -> list[tuple[Host, list[SeriesPoints]]]:
            return [(h, self._store.latest_metrics(h.host_id)) for h in self._store.list_hosts()]

        return web.Response(text=overview.render(await self._read(load)), content_type="text/html")

    async def health(self, request: web.Request) -> web.Response:
        status, checks = "ok", {}
        try:
            checks["store"] = await self._read(self._store.counts)
        except Exception as exc:
            status, checks["store"] = "failing", {"error": str(exc)}
        if self._sink is not None:
            stats = self._sink.stats()
            checks["sink"] = stats
            if stats.get("last_error") and stats.get("buffered"):
                status = "degraded" if status == "ok" else status
        checks["streams_active"] = len(self._streams)
        if self._rules_status is not None:
            checks["rules"] = self._rules_status()
            if not checks["rules"]["last_reload_ok"] and status == "ok":
                status = "degraded"  # running on the last good rules
        if self.web_error:
            checks["web"] = {"error": self.web_error}
            status = "degraded" if status == "ok" else status
        checks["counters"] = self._telemetry.snapshot()
        return web.json_response({"status": status, **checks}, status=200 if status != "failing" else 503)

    async def metrics(self, request: web.Request) -> web.Response:
        return web.Response(text=self._telemetry.render_prometheus(),
                            content_type="text/plain", charset="utf-8")

    async def hosts(self, request: web.Request) -> web.Response:
        now = time.time_ns()
        hosts = await self._read(self._store.list_hosts)
        return web.json_response({"hosts": [_host_json(h, now) for h in hosts]})

    def _alert_manager(self) -> AlertManager:
        if self._alerts is None:
            raise web.HTTPNotFound(text="alerting is not running")
        return self._alerts

    async def alerts(self, request: web.Request) -> web.Response:
        """Open alerts; `?state=resolved&since=NS` for resolved ones; `?host=` to filter."""
        mgr = self._alert_manager()
        host = request.query.get("host") or None
        if request.query.get("state") == "resolved":
            since = int(request.query.get("since", "0") or 0)
            items = [a for a in await self._read(mgr.history, since, time.time_ns() + 1, 1000, host)
                     if a["state"] == "resolved"]
        else:
            items = [a for a in await self._read(mgr.active)
                     if host is None or a["labels"].get("host") == host]
        return web.json_response({"alerts": items})

    async def alert(self, request: web.Request) -> web.Response:
        mgr = self._alert_manager()
        try:
            alert_id = int(request.match_info["alert_id"])
        except ValueError:
            raise web.HTTPBadRequest(text="alert id must be an integer") from None
        alert = await self._read(mgr.get, alert_id)
        if alert is None:
            raise web.HTTPNotFound(text=f"no alert {alert_id}")
        return web.json_response({"alert": alert, "history": await self._read(mgr.alert_history, alert_id)})

    async def silences(self, request: web.Request) -> web.Response:
        mgr = self._alert_manager()
        expired = request.query.get("expired") in ("1", "true")
        return web.json_response({"silences": await self._read(mgr.silences, expired)})

    async def rules(self, request: web.Request) -> web.Response:
        if self._rules_status is None:
            raise web.HTTPNotFound(text="alerting is not running")
        return web.json_response(self._rules_status())

    async def _host_or_404(self, request: web.Request) -> Host:
        host = await self._read(self._store.get_host, request.match_info["host_id"])
        if host is None:
            raise web.HTTPNotFound(text=f"unknown host {request.match_info['host_id']!r}")
        return host

    async def host(self, request: web.Request) -> web.Response:
        host = await self._host_or_404(request)
        latest = await self._read(self._store.latest_metrics, host.host_id)
        return web.json_response({"host": _host_json(host, time.time_ns()),
                                  "latest_metrics": [_series_json(s) for s in latest]})

    async def host_metrics(self, request: web.Request) -> web.Response:
        host = await self._host_or_404(request)
        name = request.query.get("name")
        if not name:
            raise web.HTTPBadRequest(text="query parameter 'name' is required")
        try:
            since_s = float(request.query.get("since_seconds", "3600"))
        except ValueError as exc:
            raise web.HTTPBadRequest(text="since_seconds must be a number") from exc
        since_ns = time.time_ns() - int(since_s * 1e9)
        series = await self._read(self._store.query_metrics, host.host_id, name, since_ns)
        return web.json_response({"host_id": host.host_id, "series": [_series_json(s) for s in series]})

    async def host_inventory(self, request: web.Request) -> web.Response:
        host = await self._host_or_404(request)
        inv = await self._read(self._store.inventory, host.host_id)
        return web.json_response({"host_id": host.host_id, "sections": {
            name: {"time_ns": t, "data": data} for name, (t, data) in inv.items()}})

    def _all_inventory(self) -> list[tuple[str, dict[str, Any]]]:
        return [(h.host_id, self._store.inventory(h.host_id)) for h in self._store.list_hosts()]

    async def patches(self, request: web.Request) -> web.Response:
        hosts = await self._read(self._all_inventory)
        return web.json_response({"hosts": compliance.patch_summary(hosts)})

    async def package(self, request: web.Request) -> web.Response:
        """Hosts with a package installed; with ?fixed=VERSION, which of them are older."""
        hosts = await self._read(self._all_inventory)
        rows = compliance.package_status(hosts, request.match_info["name"], request.query.get("fixed"))
        return web.json_response({"package": request.match_info["name"], "hosts": rows})

    async def events(self, request: web.Request) -> web.Response:
        try:
            limit = min(int(request.query.get("limit", "100")), 1000)
        except ValueError as exc:
            raise web.HTTPBadRequest(text="limit must be an integer") from exc
        evs = await self._read(self._store.events, request.query.get("host") or None, 0, limit)
        return web.json_response({"events": [
            {"id": e.id, "host_id": e.host_id, **dataclasses.asdict(e.event)} for e in evs]})
