"""The `warden.v1.Alerts` gRPC service: the alert feed and operator actions.

Only operator certificates may call it (common name "operator:NAME", registered and not
revoked); the author of an acknowledgement or silence is that NAME, never a payload field.
`WatchAlerts` replays the stored feed after the client's position, then follows it: the
feed table is the source of truth and the in-process hub only wakes watchers, so a slow
client or a reconnect never loses or reorders entries.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import grpc

from warden.collector import pki as pki_mod
from warden.collector.alerting import FeedHub
from warden.collector.alerts.manager import AlertManager
from warden.collector.alerts.store import FeedEntry
from warden.collector.store.base import Store
from warden.collector.telemetry import Telemetry
from warden.v1 import alerts_pb2, alerts_pb2_grpc

log = logging.getLogger(__name__)
PAGE = 500


def alert_pb(p: Mapping[str, Any]) -> alerts_pb2.Alert:
    ack = p.get("acknowledged") or {}
    return alerts_pb2.Alert(
        id=p["id"], fingerprint=p["fingerprint"], rule=p["rule"], severity=p["severity"], state=p["state"],
        labels=p["labels"], annotations=p["annotations"], starts_unix_nano=p.get("starts_ns") or 0,
        fired_unix_nano=p.get("fired_ns") or 0, ends_unix_nano=p.get("ends_ns") or 0,
        value=p.get("value") or 0.0, acknowledged_by=ack.get("by", ""),
        acknowledged_unix_nano=ack.get("at_ns") or 0, acknowledge_comment=ack.get("comment", ""),
        silenced_by=p.get("silenced_by", []), inhibited=bool(p.get("inhibited")))


def silence_pb(p: Mapping[str, Any]) -> alerts_pb2.Silence:
    matchers = []
    for label, m in p["matchers"].items():
        if isinstance(m, dict) and "regex" in m:
            matchers.append(alerts_pb2.SilenceMatcher(label=label, value=m["regex"], op="=~"))
        elif isinstance(m, dict) and "not" in m:
            matchers.append(alerts_pb2.SilenceMatcher(label=label, value=str(m["not"]), op="!="))
        else:
            matchers.append(alerts_pb2.SilenceMatcher(label=label, value=str(m), op="="))
    return alerts_pb2.Silence(id=p["id"], matchers=matchers, starts_unix_nano=p["starts_ns"],
                              ends_unix_nano=p["ends_ns"], author=p["author"], comment=p["comment"],
                              active=p.get("state") == "active")


def entry_pb(e: FeedEntry, gap: bool = False) -> alerts_pb2.FeedEntry:
    out = alerts_pb2.FeedEntry(position=e.position, time_unix_nano=e.at_ns, kind=e.kind, gap=gap,
                               detail_json=json.dumps({"what": e.what, **e.payload}, sort_keys=True))
    if e.kind == "alert":
        out.alert.CopyFrom(alert_pb(e.payload))
    return out


def _matches(e: FeedEntry, match: Mapping[str, str]) -> bool:
    if not match:
        return True
    if e.kind != "alert":
        return False
    labels = e.payload.get("labels", {})
    return all(labels.get(k) == v for k, v in match.items())


class AlertsServicer(alerts_pb2_grpc.AlertsServicer):
    def __init__(self, manager: AlertManager, hub: FeedHub, store: Store, telemetry: Telemetry,
                 idle_seconds: float = 15.0) -> None:
        self._manager = manager
        self._hub = hub
        self._store = store
        self._telemetry = telemetry
        self._idle = idle_seconds

    async def _operator(self, context: grpc.aio.ServicerContext) -> str:
        pem = (context.auth_context().get("x509_pem_cert") or [b""])[0]
        if not pem:
            self._telemetry.inc("warden_collector_rpcs_refused_total", reason="no_client_certificate")
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "an operator certificate is required")
        peer = pki_mod.peer_identity(pem)
        name = peer.common_name
        if not name.startswith(pki_mod.OPERATOR_PREFIX):
            self._telemetry.inc("warden_collector_rpcs_refused_total", reason="not_an_operator")
            await context.abort(grpc.StatusCode.PERMISSION_DENIED,
                                f"{name} is an agent certificate; the alert feed needs an operator's")
        who = await asyncio.to_thread(self._store.operator_of, peer.serial_hex)
        if who is None:
            self._telemetry.inc("warden_collector_rpcs_refused_total", reason="revoked_operator")
            await context.abort(grpc.StatusCode.PERMISSION_DENIED,
                                f"operator certificate {peer.serial_hex} is revoked or unknown")
        return who  # type: ignore[return-value]

    async def WatchAlerts(self, request: alerts_pb2.WatchAlertsRequest,  # noqa: N802
                          context: grpc.aio.ServicerContext) -> AsyncIterator[alerts_pb2.FeedEntry]:
        await self._operator(context)
        match = dict(request.match)
        pos = (await asyncio.to_thread(self._manager.last_position)) if request.from_now \
            else request.after_position
        first = not request.from_now
        while True:
            entries = await asyncio.to_thread(self._manager.feed_since, pos, PAGE)
            if entries:
                gap = first and pos > 0 and entries[0].position > pos + 1
                first = False
                for e in entries:
                    if _matches(e, match):
                        yield entry_pb(e, gap)
                        gap = False
                    pos = e.position
                continue
            first = False
            await self._hub.wait_beyond(pos, self._idle)

    async def ListAlerts(self, request: alerts_pb2.ListAlertsRequest,  # noqa: N802
                         context: grpc.aio.ServicerContext) -> alerts_pb2.ListAlertsResponse:
        await self._operator(context)
        items = await asyncio.to_thread(self._manager.active)
        if request.resolved_since_unix_nano:
            items += [a for a in await asyncio.to_thread(
                self._manager.history, request.resolved_since_unix_nano, time.time_ns() + 1, 1000)
                if a["state"] == "resolved"]
        match = dict(request.match)
        return alerts_pb2.ListAlertsResponse(alerts=[
            alert_pb(a) for a in items if all(a["labels"].get(k) == v for k, v in match.items())])

    async def Acknowledge(self, request: alerts_pb2.AcknowledgeRequest,  # noqa: N802
                          context: grpc.aio.ServicerContext) -> alerts_pb2.Alert:
        who = await self._operator(context)
        fn = self._manager.unacknowledge if request.remove else self._manager.acknowledge
        try:
            entry = await asyncio.to_thread(fn, request.alert_id, who, request.comment, time.time_ns())
        except KeyError:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no alert {request.alert_id}")
        except ValueError as exc:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
        self._hub.publish_threadsafe(entry.position)
        return alert_pb(entry.payload)

    async def CreateSilence(self, request: alerts_pb2.CreateSilenceRequest,  # noqa: N802
                            context: grpc.aio.ServicerContext) -> alerts_pb2.Silence:
        who = await self._operator(context)
        matchers: dict[str, Any] = {}
        for m in request.matchers:
            op = m.op or "="
            if op not in ("=", "=~", "!="):
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"unknown matcher op {op!r}")
            if m.label in matchers:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"two matchers for label {m.label!r}")
            matchers[m.label] = (m.value if op == "=" else
                                 {"regex": m.value} if op == "=~" else {"not": m.value})
        now = time.time_ns()
        try:
            sid = await asyncio.to_thread(self._manager.add_silence, matchers,
                                          request.starts_unix_nano or now, request.ends_unix_nano, who,
                                          request.comment, now)
        except ValueError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        return await self._silence(sid)

    async def ExpireSilence(self, request: alerts_pb2.ExpireSilenceRequest,  # noqa: N802
                            context: grpc.aio.ServicerContext) -> alerts_pb2.Silence:
        who = await self._operator(context)
        try:
            await asyncio.to_thread(self._manager.expire_silence, request.id, who, time.time_ns())
        except KeyError:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no silence {request.id}")
        except ValueError as exc:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
        return await self._silence(request.id)

    async def ListSilences(self, request: alerts_pb2.ListSilencesRequest,  # noqa: N802
                           context: grpc.aio.ServicerContext) -> alerts_pb2.ListSilencesResponse:
        await self._operator(context)
        items = await asyncio.to_thread(self._manager.silences, request.include_expired)
        return alerts_pb2.ListSilencesResponse(silences=[silence_pb(s) for s in items])

    async def _silence(self, sid: int) -> alerts_pb2.Silence:
        items = await asyncio.to_thread(self._manager.silences, True)
        found = next(s for s in items if s["id"] == sid)
        self._hub.publish_threadsafe(await asyncio.to_thread(self._manager.last_position))
        return silence_pb(found)
