"""Wires the collector together: PKI, store, ingest, sinks, gRPC ports, HTTP API,
and the background duties (revocation watch, retention)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import time
from dataclasses import dataclass
from typing import Any

import grpc

from warden.collector.alerting import AlertPipeline
from warden.collector.alerts.config import build_dispatcher, from_mapping
from warden.collector.alerts.manager import AlertManager
from warden.collector.alerts.service import AlertsServicer
from warden.collector.alerts.store import AlertStore
from warden.collector.config import CollectorConfig
from warden.collector.http_api import HttpApi
from warden.collector.ingest import Ingest, MetricsSink
from warden.collector.pki import CollectorPKI
from warden.collector.register import diff_section
from warden.collector.servicer import (
    CollectorServicer,
    EnrollmentServicer,
    ServiceSettings,
    StreamRegistry,
)
from warden.collector.sinks.influx import InfluxConfig, InfluxSink
from warden.collector.store.sqlite import SqliteStore
from warden.collector.telemetry import Telemetry
from warden.v1 import alerts_pb2_grpc, collector_pb2_grpc

log = logging.getLogger(__name__)

REVOCATION_POLL_SECONDS = 0.25


@dataclass(frozen=True, slots=True)
class Endpoints:
    enroll_port: int
    report_port: int
    http_port: int | None
    web_port: int | None = None


class CollectorServer:
    def __init__(self, cfg: CollectorConfig) -> None:
        self.cfg = cfg
        self.telemetry = Telemetry()
        self.streams = StreamRegistry()
        self.endpoints: Endpoints | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._grpc: grpc.aio.Server | None = None
        self._http: HttpApi | None = None
        self._web: Any = None  # warden.collector.web.app.WebApp, imported only when enabled
        self.sink: InfluxSink | None = None

    async def start(self) -> Endpoints:
        cfg = self.cfg
        cfg.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.pki = CollectorPKI.load_or_create(cfg.tls_dir, list(cfg.tls.sans),
                                               server_cert_days=cfg.tls.server_cert_days)
        self.store = SqliteStore(cfg.db_path, inventory_observer=diff_section)
        sinks: list[MetricsSink] = []
        if cfg.influx.enabled:
            self.sink = InfluxSink(InfluxConfig.from_mapping(
                {k: v for k, v in vars(cfg.influx).items() if k != "enabled" and v != ""}))
            self.sink.start()
            sinks.append(self.sink.submit)
            for key in ("buffered", "lag_seconds", "dropped_total", "written_total", "write_errors_total"):
                self.telemetry.gauge(f"warden_collector_sink_{key}",
                                     lambda k=key: self.sink.stats()[k])  # type: ignore[union-attr]
        # Alerting: stored records -> rules engine (own thread) -> alert manager -> feed.
        notify = from_mapping(cfg.alerts)
        self.dispatcher = build_dispatcher(notify)
        self.dispatcher.start()
        self.alert_store = AlertStore(cfg.alerts_db_path)
        self.alerts = AlertManager(self.alert_store, self.dispatcher, notify.inhibit)
        self.pipeline = AlertPipeline(
            cfg.rules_dir, self.alerts, self.store.list_hosts, self.telemetry,
            heartbeat_seconds=cfg.seconds(cfg.collector.heartbeat),
            tick_seconds=float(cfg.seconds(cfg.rules.tick)), watch=cfg.rules.watch)
        self.pipeline.start(asyncio.get_running_loop())
        self.ingest = Ingest(self.store, self.telemetry, sinks, observers=[self.pipeline.submit])
        self.ingest.start()

        limits = cfg.to_limits()
        self._grpc = grpc.aio.server(options=[
            ("grpc.max_receive_message_length", limits.max_message_bytes),
            ("grpc.max_send_message_length", limits.max_message_bytes),
            ("grpc.keepalive_time_ms", 60_000),
            ("grpc.keepalive_timeout_ms", 20_000),
            ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
            ("grpc.keepalive_permit_without_calls", 1),
        ])
        enroll_creds = grpc.ssl_server_credentials([(self.pki.enroll_key_pem, self.pki.enroll_cert_pem)])
        report_creds = grpc.ssl_server_credentials(
            [(self.pki.server_key_pem, self.pki.server_cert_pem)],
            root_certificates=self.pki.ca_cert_pem, require_client_auth=True)
        enroll_port = self._grpc.add_secure_port(cfg.collector.enroll_listen, enroll_creds)
        report_port = self._grpc.add_secure_port(cfg.collector.report_listen, report_creds)
        if not enroll_port or not report_port:
            raise OSError(f"cannot listen on {cfg.collector.enroll_listen} / {cfg.collector.report_listen}")
        settings = ServiceSettings(
            limits=limits, client_cert_seconds=cfg.seconds(cfg.tls.client_cert_lifetime),
            heartbeat_seconds=cfg.seconds(cfg.collector.heartbeat), report_port=report_port)
        collector_pb2_grpc.add_EnrollmentServicer_to_server(
            EnrollmentServicer(self.store, self.pki, self.ingest, self.telemetry, settings), self._grpc)
        collector_pb2_grpc.add_CollectorServicer_to_server(
            CollectorServicer(self.store, self.pki, self.ingest, self.telemetry, settings, self.streams),
            self._grpc)
        alerts_pb2_grpc.add_AlertsServicer_to_server(
            AlertsServicer(self.alerts, self.pipeline.feed, self.store, self.telemetry), self._grpc)
        await self._grpc.start()

        http_port = None
        if cfg.collector.http_listen:
            self._http = HttpApi(self.store, self.telemetry, self.streams, self.sink, self.alerts,
                                 self.pipeline.status.as_dict)
            http_port = await self._http.start(cfg.collector.http_listen)
        self._tasks = [asyncio.create_task(self._watch_revocations(), name="revocations"),
                       asyncio.create_task(self._retention(), name="retention")]
        web_port = await self._start_web() if cfg.web.listen else None
        self.endpoints = Endpoints(enroll_port, report_port, http_port, web_port)
        log.info("collector up: enroll :%d, report :%d, http %s, data %s", enroll_port, report_port,
                 http_port, cfg.data_dir)
        return self.endpoints

    async def wait(self) -> None:
        assert self._grpc
        await self._grpc.wait_for_termination()

    async def stop(self, grace: float = 2.0) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        if self._http:
            await self._http.stop()
        if self._web:
            await self._web.stop()
            self._web.users.close()
        if self._grpc:
            await self._grpc.stop(grace)
        await self.ingest.stop()
        self.pipeline.stop()
        self.dispatcher.stop(grace)
        self.alert_store.close()
        if self.sink:
            self.sink.stop(timeout=grace)
        self.store.close()

    async def _start_web(self) -> int | None:
        """The dashboard (HTTPS). A taken port costs the dashboard, not the collector:
        ingest and alerting matter more, so it is logged and the collector runs on."""
        from warden.collector.web.app import WebApp
        from warden.collector.web.users import UserStore

        cfg = self.cfg
        users = UserStore(cfg.web_db_path)
        self._web = WebApp(cfg.web, self.store, cfg.db_path, users, self.alerts, self.pipeline.feed,
                           self.pki.server_cert_pem, self.pki.server_key_pem, self.telemetry)
        try:
            port = await self._web.start(cfg.web.listen)
        except OSError as exc:
            log.error("dashboard disabled: cannot listen on %s: %s", cfg.web.listen, exc)
            if self._http is not None:  # /healthz says "degraded" with the reason
                self._http.web_error = f"cannot listen on {cfg.web.listen}: {exc}"
            await self._web.stop()
            users.close()
            self._web = None
            return None
        if not users.users():
            log.warning("dashboard: no users yet; add one with: warden-collector user add NAME --role admin")
        log.info("dashboard: https on port %d (listen %s)", port, cfg.web.listen)
        return port

    async def _watch_revocations(self) -> None:
        """Revocations are written by another process (the CLI); notice them within a
        fraction of a second and end the affected streams."""
        seen = -1
        while True:
            try:
                counter = await asyncio.to_thread(self.store.change_counter)
                if counter != seen:
                    seen = counter
                    open_serials = self.streams.serials()
                    if open_serials:
                        revoked = await asyncio.to_thread(self.store.revoked_serials)
                        if n := self.streams.revoke(open_serials & revoked):
                            log.warning("ended %d stream(s) of revoked certificates", n)
            except Exception:
                log.exception("revocation watch failed; retrying")
            await asyncio.sleep(REVOCATION_POLL_SECONDS)

    async def _retention(self) -> None:
        cfg = self.cfg
        every = cfg.seconds(cfg.retention.interval)
        while True:
            try:
                deleted = await self.ingest.run_in_writer(
                    self.store.apply_retention, time.time_ns(), cfg.seconds(cfg.retention.metrics),
                    cfg.seconds(cfg.retention.events))
                # The alert feed and resolved alerts follow the events' retention.
                deleted += await asyncio.to_thread(
                    self.alert_store.prune, time.time_ns() - cfg.seconds(cfg.retention.events) * 10**9)
                if deleted:
                    log.info("retention deleted %s rows", deleted)
            except Exception:
                log.exception("retention failed")
            await asyncio.sleep(every)


async def serve(cfg: CollectorConfig) -> None:
    """Run until SIGINT/SIGTERM."""
    import signal

    server = CollectorServer(cfg)
    await server.start()
    # Ingest allocates many short-lived objects; with the default thresholds the cyclic GC
    # rescans everything loaded at start-up every few hundred allocations. Freezing the
    # start-up heap and collecting less often gave ~25-30% more records/s (tests/bench).
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, server.pipeline.request_reload)
    await stop.wait()
    log.info("shutting down (pid %d)", os.getpid())
    await server.stop()
