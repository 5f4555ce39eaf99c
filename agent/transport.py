"""The Report stream: spool -> collector, acks -> spool.

Records leave the spool only when the collector acknowledges them as durably committed,
so any crash on either side resends at most the unacknowledged tail, which the collector
deduplicates by (host, spool_id, sequence). Reconnects back off with full jitter.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections import deque
from dataclasses import dataclass, field
from operator import itemgetter
from pathlib import Path

import grpc
from google.protobuf.message import DecodeError

from warden.agent import identity as ident
from warden.agent.backoff import Backoff
from warden.agent.config import TransportSection
from warden.agent.spooler import AsyncSpool
from warden.agent.wire import varint
from warden.v1 import collector_pb2, records_pb2

log = logging.getLogger(__name__)

# Room left in a message for the Batch envelope around the records.
_ENVELOPE_BYTES = 1024
# Each record inside a Batch costs a tag byte and a length varint (<= 5 bytes below 4 GiB).
_RECORD_FRAMING_BYTES = 6
REPORT_METHOD = "/warden.v1.Collector/Report"
RENEW_RETRY_SECONDS = 300.0
CONNECT_TIMEOUT_SECONDS = 15.0


@dataclass
class TransportStats:
    connected: bool = False
    sessions: int = 0
    batches_sent: int = 0
    records_acked: int = 0
    refused_records: int = 0
    renewals: int = 0
    last_error: str = ""
    last_ack_seq: int = 0
    errors: dict[str, int] = field(default_factory=dict)


class Transport:
    def __init__(self, state_dir: Path, spool: AsyncSpool, settings: TransportSection,
                 agent_version: str) -> None:
        self._state_dir, self._spool, self._settings = state_dir, spool, settings
        self._agent_version = agent_version
        self._backoff = Backoff(settings.backoff_initial_seconds, settings.backoff_max_seconds)
        self._new_data = asyncio.Event()
        self.stats = TransportStats()
        self._renew_not_before = 0.0  # monotonic; after a failed renewal, wait before retrying
        # The highest seq written on the current session: the pending records up to it are in flight.
        self._sent_upto = 0
        spool.on_append(self._new_data.set)

    async def run(self, stop: asyncio.Event) -> None:
        """Keep a session open until `stop` is set."""
        while not stop.is_set():
            session = asyncio.create_task(self._session())
            stopper = asyncio.create_task(stop.wait())
            await asyncio.wait({session, stopper}, return_when=asyncio.FIRST_COMPLETED)
            stopper.cancel()
            if not session.done():
                session.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await session
                return
            delay = self._after_session(session)
            self.stats.connected = False
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)

    def _after_session(self, session: asyncio.Task[None]) -> float:
        """Log how the session ended and choose the delay before the next one."""
        exc = session.exception()
        if exc is None:
            return self._backoff.next()
        if isinstance(exc, grpc.aio.AioRpcError):
            code = exc.code().name
            text = f"{code}: {exc.details()}"
        else:
            code, text = type(exc).__name__, str(exc) or type(exc).__name__
        self.stats.errors[code] = self.stats.errors.get(code, 0) + 1
        self.stats.last_error = text
        delay = self._backoff.next()
        log.warning("collector session ended (%s); reconnecting in %.1fs", text, delay)
        return delay

    async def _session(self) -> None:
        s = self._settings
        identity = ident.load(self._state_dir)
        if self._renewal_wanted(identity):
            identity = await self._renew(identity)
        ca, key, cert = ident.credentials(self._state_dir)
        creds = grpc.ssl_channel_credentials(root_certificates=ca, private_key=key, certificate_chain=cert)
        options = [
            ("grpc.max_send_message_length", s.batch_max_bytes + _ENVELOPE_BYTES),
            ("grpc.keepalive_time_ms", int(max(s.heartbeat_seconds, 10) * 1000)),
            ("grpc.keepalive_timeout_ms", 10_000),
            ("grpc.keepalive_permit_without_calls", 1),
        ]
        async with grpc.aio.secure_channel(identity.report_target, creds, options=options) as channel:
            # Requests go out as bytes: batches are assembled from the spool's serialized
            # records without decoding and re-encoding each one (a third of the agent's CPU
            # when shipping logs, measured with tests/bench/bench_logs_ship.py).
            call = channel.stream_stream(REPORT_METHOD, request_serializer=None,
                                         response_deserializer=collector_pb2.ReportResponse.FromString)()
            await call.write(collector_pb2.ReportRequest(hello=collector_pb2.Hello(
                spool_id=self._spool.spool_id, agent_version=self._agent_version,
                hostname=socket.gethostname())).SerializeToString())
            first = await asyncio.wait_for(call.read(), CONNECT_TIMEOUT_SECONDS)
            if first is grpc.aio.EOF or first.WhichOneof("msg") != "welcome":
                raise ConnectionError("collector did not answer Hello with Welcome")
            welcome = first.welcome
            await self._spool.ack(welcome.committed_seq)
            self.stats.last_ack_seq = welcome.committed_seq
            self.stats.connected = True
            self.stats.sessions += 1
            self._backoff.reset()
            log.info("connected to %s as %s (committed seq %d)", identity.report_target,
                     welcome.host_id, welcome.committed_seq)
            try:
                await self._pump(call, welcome, identity)
            except asyncio.InvalidStateError:
                # A write raced the collector ending the call ("RPC already finished"): the
                # call's status says why, e.g. a refused batch to set aside now.
                status = await _final_status(call)
                if status is None:
                    raise
                await self._set_aside_refused(status)
                raise status from None
            except grpc.aio.AioRpcError as exc:
                await self._set_aside_refused(exc)
                raise

    async def _pump(self, call: grpc.aio.StreamStreamCall, welcome: collector_pb2.Welcome,
                    identity: ident.Identity) -> None:
        inflight: deque[int] = deque()
        acked = asyncio.Event()
        heartbeat = welcome.heartbeat_seconds or self._settings.heartbeat_seconds

        async def receive() -> None:
            while True:
                resp = await call.read()
                if resp is grpc.aio.EOF:
                    raise ConnectionError("collector closed the stream")
                if resp.WhichOneof("msg") == "ack":
                    seq = resp.ack.committed_seq
                    await self._spool.ack(seq)
                    while inflight and inflight[0] <= seq:
                        inflight.popleft()
                    self.stats.records_acked += max(0, seq - self.stats.last_ack_seq)
                    self.stats.last_ack_seq = max(seq, self.stats.last_ack_seq)
                    acked.set()

        async def send() -> None:
            limits = welcome.limits
            max_records = min(self._settings.batch_max_records, limits.max_records_per_batch or 1 << 30)
            max_bytes = min(self._settings.batch_max_bytes,
                            (limits.max_message_bytes or 1 << 30) - _ENVELOPE_BYTES)
            self._sent_upto = sent_upto = welcome.committed_seq
            last_sent_at = time.monotonic()
            while True:
                if self._renewal_wanted(identity):
                    return  # end the session cleanly; the next one renews first
                while len(inflight) >= self._settings.max_inflight_batches:
                    acked.clear()
                    await acked.wait()
                self._new_data.clear()
                rows = await self._spool.peek(sent_upto, max_records,
                                              max_bytes - _RECORD_FRAMING_BYTES * max_records)
                rows = _contiguous(rows)
                if rows:
                    if len(rows[0][1]) > max_bytes:  # one record larger than the collector accepts
                        await self._spool.drop([rows[0][0]])
                        self.stats.refused_records += 1
                        log.error("dropped record seq %d: %d bytes exceeds the message limit",
                                  rows[0][0], len(rows[0][1]))
                        sent_upto = rows[0][0]
                        continue
                    await call.write(encode_batch_request(rows))
                    inflight.append(rows[-1][0])
                    self._sent_upto = sent_upto = rows[-1][0]
                    self.stats.batches_sent += 1
                    last_sent_at = time.monotonic()
                    continue
                wait = heartbeat - (time.monotonic() - last_sent_at)
                if wait <= 0:
                    await call.write(collector_pb2.ReportRequest(heartbeat=collector_pb2.Heartbeat(
                        time_unix_nano=time.time_ns())).SerializeToString())
                    last_sent_at = time.monotonic()
                    continue
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._new_data.wait(), wait)

        tasks = [asyncio.create_task(receive()), asyncio.create_task(send())]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for t in done:
                t.result()
        finally:
            for t in tasks:
                t.cancel()
            call.cancel()

    async def _set_aside_refused(self, exc: grpc.aio.AioRpcError) -> None:
        """A batch the collector refused as malformed would be refused forever: set it aside
        (counted in the spool's rejected_total) so the rest can flow."""
        ranges = [str(v) for k, v in exc.trailing_metadata() or () if k == "warden-refused-seqs"]
        for value in ranges:
            first, _, last = value.partition("-")
            seqs = list(range(int(first), int(last) + 1))
            await self._spool.drop(seqs)
            self.stats.refused_records += len(seqs)
            log.error("collector refused records %s-%s (%s); set aside", first, last, exc.details())
        if not ranges and exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
            # No range: e.g. a message the collector could not decode ("undecodable").
            await self._set_aside_undecodable()

    async def _set_aside_undecodable(self) -> None:
        """Decode the records in flight on this session (pending, up to the last one sent) and
        set aside those that do not decode as a warden.v1.Record: one damaged record would
        otherwise make every batch holding it undecodable, on every session. When all of them
        decode, the refusal had another cause: nothing is deleted and the session is retried
        after the backoff, as for any other refusal."""
        bad: list[int] = []
        after, upto = 0, self._sent_upto
        while after < upto:
            rows = await self._spool.peek(after, self._settings.batch_max_records,
                                          self._settings.batch_max_bytes)
            if not rows:
                break
            for seq, payload in rows:
                if seq > upto:
                    break
                try:
                    records_pb2.Record.FromString(payload)
                except DecodeError:
                    bad.append(seq)
            after = rows[-1][0]
        if not bad:
            return
        self.stats.refused_records += await self._spool.drop(bad)
        for seq in bad:
            log.error("set aside record seq %d: it does not decode as warden.v1.Record "
                      "(the collector refused its batch as undecodable)", seq)

    def _renewal_wanted(self, identity: ident.Identity) -> bool:
        return (identity.renewal_due(self._settings.renew_before_fraction)
                and time.monotonic() >= self._renew_not_before)

    async def _renew(self, identity: ident.Identity) -> ident.Identity:
        from warden.agent.enroll import renew  # cryptography only while renewing

        try:
            renewed = await asyncio.to_thread(renew, self._state_dir, identity)
        except Exception as exc:  # keep going on the current certificate; retry next session
            log.error("certificate renewal failed: %s", exc)
            self._renew_not_before = time.monotonic() + RENEW_RETRY_SECONDS
            self.stats.last_error = f"renewal failed: {exc}"
            return identity
        self.stats.renewals += 1
        log.info("renewed certificate; valid until %s", time.ctime(renewed.cert_not_after))
        return renewed


async def _final_status(call: grpc.aio.StreamStreamCall) -> grpc.aio.AioRpcError | None:
    """The error a read would have raised for a call the collector has ended; None if it
    has not ended, or ended without an error."""
    if not call.done() or call.cancelled():
        return None
    code = await call.code()
    if code == grpc.StatusCode.OK:
        return None
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), await call.trailing_metadata(),
                                await call.details())


# Batch field 3 (a length-delimited Record): tag and length by payload length, as met.
_RECORD_HEADS: dict[int, bytes] = {}


def _record_head(n: int) -> bytes:
    head = _RECORD_HEADS.get(n)
    if head is None:
        head = b"\x1a" + varint(n)
        if len(_RECORD_HEADS) < 4096:
            _RECORD_HEADS[n] = head
    return head


def encode_batch_request(rows: list[tuple[int, bytes]]) -> bytes:
    """ReportRequest{batch: Batch{first_seq, last_seq, records}} in protobuf wire format,
    built from already-serialized Record payloads (repeated message fields concatenate)."""
    payloads = list(map(itemgetter(1), rows))
    heads = list(map(_RECORD_HEADS.get, map(len, payloads)))  # field 3: length-delimited Record
    if None in heads:  # lengths not met before
        heads = list(map(_record_head, map(len, payloads)))
    parts: list[bytes] = [b""] * (4 + 2 * len(payloads))
    parts[:4] = (b"\x08", varint(rows[0][0]), b"\x10", varint(rows[-1][0]))  # fields 1 and 2: varints
    parts[4::2] = heads
    parts[5::2] = payloads
    body = b"".join(parts)
    return b"\x12" + varint(len(body)) + body  # ReportRequest field 2 (batch)


def _contiguous(rows: list[tuple[int, bytes]]) -> list[tuple[int, bytes]]:
    """The leading run of consecutive sequences (a batch is a contiguous range)."""
    if not rows or rows[-1][0] - rows[0][0] == len(rows) - 1:  # seqs ascend: no gap
        return rows
    for i in range(1, len(rows)):
        if rows[i][0] != rows[i - 1][0] + 1:
            return rows[:i]
    return rows
