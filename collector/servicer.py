"""gRPC servicers: translate protobuf, authenticate by certificate, hand off to ingest.

Identity is the client certificate's common name, checked against the store's
certificate register (unknown or revoked serial -> refused) at every RPC and, for open
streams, whenever the register changes (see `StreamRegistry.revoke`).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from dataclasses import dataclass
from datetime import datetime

import grpc
from google.protobuf.message import DecodeError

from warden.collector import pki as pki_mod
from warden.collector import tokens
from warden.collector.ingest import Ingest
from warden.collector.pki import CollectorPKI, CsrRefused, PeerCert
from warden.collector.records import CommitResult
from warden.collector.store.base import Store, TokenRefused
from warden.collector.telemetry import Telemetry
from warden.collector.translate import Limits, Refused, batch_from_proto
from warden.v1 import collector_pb2, collector_pb2_grpc

log = logging.getLogger(__name__)
_STREAM_NUMBERS = itertools.count(1)


def _undecodable() -> Refused:
    # The sequence range cannot be known from bytes that do not parse: the agent checks its
    # own batch and sets aside the records that do not decode (agent/transport.py).
    return Refused(grpc.StatusCode.INVALID_ARGUMENT, "undecodable",
                   "a message that does not decode as warden.v1.ReportRequest")

MAX_SPOOL_ID = 64


@dataclass(frozen=True, slots=True)
class ServiceSettings:
    limits: Limits
    client_cert_seconds: int
    heartbeat_seconds: int
    report_port: int
    max_inflight_batches: int = 16


class _Revoked:
    pass


class _StreamEnd:
    pass


class StreamRegistry:
    """Open Report streams by certificate serial, so a revocation reaches them at once."""

    def __init__(self) -> None:
        self._streams: dict[str, set[asyncio.Queue[object]]] = {}

    def add(self, serial: str, outbox: asyncio.Queue[object]) -> None:
        self._streams.setdefault(serial, set()).add(outbox)

    def remove(self, serial: str, outbox: asyncio.Queue[object]) -> None:
        boxes = self._streams.get(serial)
        if boxes is not None:
            boxes.discard(outbox)
            if not boxes:
                del self._streams[serial]

    def serials(self) -> set[str]:
        return set(self._streams)

    def revoke(self, serials: set[str]) -> int:
        """End every open stream authenticated by one of `serials`; return how many."""
        n = 0
        for serial in serials & self._streams.keys():
            for outbox in self._streams[serial]:
                outbox.put_nowait(_Revoked())
                n += 1
        return n

    def __len__(self) -> int:
        return sum(len(s) for s in self._streams.values())


async def _peer(context: grpc.aio.ServicerContext, store: Store, telemetry: Telemetry) -> PeerCert:
    """The authenticated caller, or abort. Never trusts anything the payload says."""
    auth = context.auth_context()
    pem = (auth.get("x509_pem_cert") or [b""])[0]
    if not pem:
        telemetry.inc("warden_collector_rpcs_refused_total", reason="no_client_certificate")
        await context.abort(grpc.StatusCode.UNAUTHENTICATED,
                            "a client certificate is required: enroll first, and use the report port")
    peer = pki_mod.peer_identity(pem)
    if await asyncio.to_thread(store.is_revoked, peer.serial_hex):
        telemetry.inc("warden_collector_rpcs_refused_total", reason="revoked")
        await context.abort(grpc.StatusCode.PERMISSION_DENIED,
                            f"certificate {peer.serial_hex} of host {peer.common_name} is revoked")
    return peer


class EnrollmentServicer(collector_pb2_grpc.EnrollmentServicer):
    def __init__(self, store: Store, pki: CollectorPKI, ingest: Ingest, telemetry: Telemetry,
                 settings: ServiceSettings) -> None:
        self._store, self._pki, self._ingest = store, pki, ingest
        self._telemetry, self._settings = telemetry, settings

    async def _refuse(self, context: grpc.aio.ServicerContext, code: grpc.StatusCode, reason: str,
                      message: str) -> None:
        self._telemetry.inc("warden_collector_enrollments_total", result=reason)
        log.warning("enrollment refused (%s): %s", reason, message)
        await context.abort(code, message)

    async def Enroll(self, request: collector_pb2.EnrollRequest,  # noqa: N802 (gRPC method name)
                     context: grpc.aio.ServicerContext) -> collector_pb2.EnrollResponse:
        try:
            token_id, secret = tokens.split_enroll_token(request.token)
        except ValueError as exc:
            await self._refuse(context, grpc.StatusCode.INVALID_ARGUMENT, "malformed_token", str(exc))
        try:
            host_id = pki_mod.csr_common_name(request.csr_pem)
            if not pki_mod.valid_host_id(host_id):
                raise CsrRefused(f"host id {host_id[:64]!r} is not a valid host name")
            issued = self._pki.sign_csr(request.csr_pem, host_id, self._settings.client_cert_seconds)
        except CsrRefused as exc:
            await self._refuse(context, grpc.StatusCode.INVALID_ARGUMENT, "bad_csr", str(exc))
        now = time.time_ns()
        try:
            labels = await self._ingest.run_in_writer(
                self._store.consume_token, token_id, tokens.hash_secret(secret), now, host_id)
        except TokenRefused as exc:
            await self._refuse(context, grpc.StatusCode.PERMISSION_DENIED, f"token_{exc.reason}",
                               f"{exc} (ask for a new token: warden-collector token create)")
        await self._ingest.run_in_writer(
            self._store.enroll_host, host_id, request.hostname or host_id, labels, issued.serial_hex,
            _ns(issued.not_before), _ns(issued.not_after), now)
        self._telemetry.inc("warden_collector_enrollments_total", result="ok")
        log.info("enrolled host %s (certificate %s)", host_id, issued.serial_hex)
        return collector_pb2.EnrollResponse(
            host_id=host_id, certificate_pem=issued.pem, ca_certificate_pem=self._pki.ca_cert_pem,
            labels=labels, report_port=self._settings.report_port)


class CollectorServicer(collector_pb2_grpc.CollectorServicer):
    def __init__(self, store: Store, pki: CollectorPKI, ingest: Ingest, telemetry: Telemetry,
                 settings: ServiceSettings, streams: StreamRegistry) -> None:
        self._store, self._pki, self._ingest = store, pki, ingest
        self._telemetry, self._settings, self._streams = telemetry, settings, streams

    async def Renew(self, request: collector_pb2.RenewRequest,  # noqa: N802
                    context: grpc.aio.ServicerContext) -> collector_pb2.RenewResponse:
        peer = await _peer(context, self._store, self._telemetry)
        try:
            issued = self._pki.sign_csr(request.csr_pem, peer.common_name,
                                        self._settings.client_cert_seconds)
        except CsrRefused as exc:
            self._telemetry.inc("warden_collector_renewals_total", result="bad_csr")
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        await self._ingest.run_in_writer(self._store.add_certificate, peer.common_name,
                                         issued.serial_hex, _ns(issued.not_before),
                                         _ns(issued.not_after))
        self._telemetry.inc("warden_collector_renewals_total", result="ok")
        log.info("renewed certificate of %s: %s", peer.common_name, issued.serial_hex)
        return collector_pb2.RenewResponse(certificate_pem=issued.pem)

    async def Report(self, request_iterator: object,  # noqa: N802
                     context: grpc.aio.ServicerContext) -> None:
        peer = await _peer(context, self._store, self._telemetry)
        host_id = peer.common_name
        stream_no = next(_STREAM_NUMBERS)
        try:
            first = await context.read()
        except DecodeError:
            await self._reject(context, _undecodable())
        if first is grpc.aio.EOF:
            return
        if first.WhichOneof("msg") != "hello":
            await self._reject(context, Refused(grpc.StatusCode.FAILED_PRECONDITION, "no_hello",
                                                "the first message of a Report stream must be Hello"))
        hello = first.hello
        if not hello.spool_id or len(hello.spool_id) > MAX_SPOOL_ID:
            await self._reject(context, Refused(grpc.StatusCode.INVALID_ARGUMENT, "bad_hello",
                                                f"spool_id must be 1..{MAX_SPOOL_ID} characters"))
        spool_id = hello.spool_id
        await self._ingest.run_in_writer(self._store.touch_host, host_id, time.time_ns(),
                                         hostname=hello.hostname or None,
                                         agent_version=hello.agent_version or None)
        committed = await self._ingest.run_in_writer(self._store.committed_seq, host_id, spool_id)
        await context.write(collector_pb2.ReportResponse(welcome=collector_pb2.Welcome(
            host_id=host_id, committed_seq=committed, limits=self._settings.limits.to_proto(),
            heartbeat_seconds=self._settings.heartbeat_seconds)))

        # Reading and acknowledging run concurrently so an agent can keep several batches in
        # flight while earlier ones wait for the group commit; acks leave in order.
        outbox: asyncio.Queue[object] = asyncio.Queue()
        inflight = asyncio.Semaphore(self._settings.max_inflight_batches)
        self._streams.add(peer.serial_hex, outbox)
        self._telemetry.set("warden_collector_streams_active", len(self._streams))
        reader = asyncio.create_task(self._read(context, host_id, spool_id, outbox, inflight, stream_no))
        try:
            while True:
                item = await outbox.get()
                if isinstance(item, asyncio.Future):
                    try:
                        res: CommitResult = await item
                    except Exception as exc:
                        await context.abort(grpc.StatusCode.UNAVAILABLE,
                                            f"collector could not store the batch, retry later: {exc}")
                    inflight.release()
                    await context.write(collector_pb2.ReportResponse(
                        ack=collector_pb2.Ack(committed_seq=res.committed_seq)))
                elif isinstance(item, collector_pb2.ReportResponse):
                    await context.write(item)
                elif isinstance(item, Refused):
                    await self._reject(context, item)
                elif isinstance(item, _Revoked):
                    self._telemetry.inc("warden_collector_rpcs_refused_total", reason="revoked")
                    log.warning("closing stream of %s: certificate %s revoked", host_id, peer.serial_hex)
                    await context.abort(grpc.StatusCode.PERMISSION_DENIED,
                                        f"certificate {peer.serial_hex} of host {host_id} was revoked")
                elif isinstance(item, _StreamEnd):
                    return
        finally:
            reader.cancel()
            self._streams.remove(peer.serial_hex, outbox)
            self._telemetry.set("warden_collector_streams_active", len(self._streams))

    async def _read(self, context: grpc.aio.ServicerContext, host_id: str, spool_id: str,
                    outbox: asyncio.Queue[object], inflight: asyncio.Semaphore, stream_no: int) -> None:
        limits = self._settings.limits
        try:
            while True:
                try:
                    msg = await context.read()
                except DecodeError:
                    outbox.put_nowait(_undecodable())
                    return
                if msg is grpc.aio.EOF:
                    outbox.put_nowait(_StreamEnd())
                    return
                which = msg.WhichOneof("msg")
                if which == "batch":
                    try:
                        batch = batch_from_proto(msg.batch, host_id, spool_id, limits, time.time_ns())
                        batch.stream = stream_no
                    except Refused as refused:
                        refused.seqs = (msg.batch.first_seq, msg.batch.last_seq)
                        outbox.put_nowait(refused)
                        return
                    await inflight.acquire()
                    outbox.put_nowait(await self._ingest.submit(batch))
                elif which == "heartbeat":
                    # Agents send heartbeats only on an idle stream, so this write is rare; it
                    # keeps a quiet but connected host from looking stale.
                    await self._ingest.run_in_writer(self._store.touch_host, host_id, time.time_ns())
                    outbox.put_nowait(collector_pb2.ReportResponse(
                        heartbeat=collector_pb2.Heartbeat(time_unix_nano=time.time_ns())))
                else:
                    outbox.put_nowait(Refused(grpc.StatusCode.FAILED_PRECONDITION, "bad_message",
                                              f"unexpected {which or 'empty'} message after Hello"))
                    return
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # e.g. the peer vanished mid-read
            log.debug("stream of %s ended: %s", host_id, exc)
            outbox.put_nowait(_StreamEnd())

    async def _reject(self, context: grpc.aio.ServicerContext, refused: Refused) -> None:
        self._telemetry.inc("warden_collector_batches_rejected_total", reason=refused.reason)
        log.warning("refused batch: %s", refused.message)
        # The sequence range lets the agent set the refused records aside instead of
        # resending them forever.
        trailer = (("warden-refused-seqs", f"{refused.seqs[0]}-{refused.seqs[1]}"),) if refused.seqs else ()
        await context.abort(refused.code, refused.message, trailing_metadata=trailer)


def _ns(dt: datetime) -> int:
    return int(dt.timestamp()) * 10**9
