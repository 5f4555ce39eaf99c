"""Refusals over real TLS on loopback: each has a clear status, stores nothing, and moves
a counter. One collector process serves the module; each test enrolls its own hosts."""

from __future__ import annotations

import math
import time
from pathlib import Path

import grpc
import pytest

from warden.agent import identity as ident
from warden.agent import records
from warden.agent.enroll import EnrollError, enroll
from warden.collector.pki import CollectorPKI
from warden.collector.store.sqlite import SqliteStore
from warden.v1 import collector_pb2, collector_pb2_grpc, records_pb2

from .harness import CollectorProc, wait_for


@pytest.fixture(scope="module")
def collector(tmp_path_factory: pytest.TempPathFactory):
    c = CollectorProc(tmp_path_factory.mktemp("collector"),
                      limits={"max_records_per_batch": 100, "max_message_bytes": 256 * 1024})
    c.start()
    yield c
    c.stop()


def _enroll(collector: CollectorProc, tmp_path: Path, host_id: str) -> Path:
    state = tmp_path / host_id
    enroll(collector.enroll_address, collector.token(), state, host_id=host_id)
    return state


def _channel(state: Path, port: int) -> grpc.aio.Channel:
    ca, key, cert = ident.credentials(state)
    creds = grpc.ssl_channel_credentials(root_certificates=ca, private_key=key, certificate_chain=cert)
    return grpc.aio.secure_channel(f"127.0.0.1:{port}", creds)


def _metric_batch(first: int, n: int, host_id: str = "", name: str = "test_metric",
                  value: float | None = None, time_ns: int | None = None) -> collector_pb2.Batch:
    """Built from raw protobuf on purpose: the agent's own builders refuse bad input, and
    these tests play a misbehaving agent."""
    b = collector_pb2.Batch(first_seq=first, last_seq=first + n - 1, host_id=host_id)
    for i in range(n):
        b.records.append(records_pb2.Record(metric=records_pb2.MetricSample(
            name=name, value=float(i) if value is None else value, labels={"i": str(first + i)},
            time_unix_nano=time.time_ns() if time_ns is None else time_ns)))
    return b


async def _report(state: Path, port: int, *batches: collector_pb2.Batch,
                  spool_id: str = "spool-a") -> list[collector_pb2.ReportResponse]:
    """Send Hello + batches; return the responses; raise AioRpcError if the stream fails."""
    async with _channel(state, port) as ch:
        call = collector_pb2_grpc.CollectorStub(ch).Report()
        await call.write(collector_pb2.ReportRequest(hello=collector_pb2.Hello(spool_id=spool_id)))
        out = [await call.read()]
        for b in batches:
            await call.write(collector_pb2.ReportRequest(batch=b))
            out.append(await call.read())
        await call.done_writing()
        return out


def _stored_samples(collector: CollectorProc, host_id: str) -> int:
    store = SqliteStore(collector.root / "data" / "warden.db")
    try:
        return sum(len(s.points) for s in store.query_metrics(host_id, "test_metric"))
    finally:
        store.close()


def _rejected(collector: CollectorProc, reason: str) -> float:
    return collector.counter(f'warden_collector_batches_rejected_total{{reason="{reason}"}}')


async def test_good_batch_is_acked_and_stored(collector, tmp_path):
    state = _enroll(collector, tmp_path, "good-host")
    resp = await _report(state, collector.report_port, _metric_batch(1, 10))
    assert resp[0].welcome.host_id == "good-host" and resp[0].welcome.committed_seq == 0
    assert resp[1].ack.committed_seq == 10
    assert _stored_samples(collector, "good-host") == 10
    # The same batch again (a resend after a lost ack) is acknowledged and stored once.
    resp = await _report(state, collector.report_port, _metric_batch(1, 10))
    assert resp[0].welcome.committed_seq == 10 and resp[1].ack.committed_seq == 10
    assert _stored_samples(collector, "good-host") == 10


def test_token_single_use_and_expiry(collector, tmp_path):
    token = collector.token()
    enroll(collector.enroll_address, token, tmp_path / "a", host_id="token-host-a")
    before = collector.counter('warden_collector_enrollments_total{result="token_used"}')
    with pytest.raises(EnrollError, match="PERMISSION_DENIED.*used"):
        enroll(collector.enroll_address, token, tmp_path / "b", host_id="token-host-b")
    assert collector.counter('warden_collector_enrollments_total{result="token_used"}') == before + 1
    assert collector.host("token-host-b") is None
    assert not (tmp_path / "b" / ident.IDENTITY_FILE).exists()

    expired = collector.token(ttl="1s")
    time.sleep(1.2)
    with pytest.raises(EnrollError, match="PERMISSION_DENIED.*expired"):
        enroll(collector.enroll_address, expired, tmp_path / "c", host_id="token-host-c")
    assert collector.host("token-host-c") is None


def test_token_pin_mismatch_is_refused_before_sending_anything(collector, tmp_path):
    token = collector.token()
    forged = token[: token.rindex(".") + 1] + "0" * 32
    with pytest.raises(EnrollError, match="does not match the token's pin"):
        enroll(collector.enroll_address, forged, tmp_path / "x", host_id="pin-host")
    # The genuine token was not spent by the refused attempt.
    enroll(collector.enroll_address, token, tmp_path / "y", host_id="pin-host")


async def test_wrong_ca_is_refused_at_handshake(collector, tmp_path):
    rogue = CollectorPKI.load_or_create(tmp_path / "rogue-ca", ["localhost"])
    from warden.agent.enroll import _key_and_csr

    key, csr = _key_and_csr("good-host")  # claims an enrolled identity, from the wrong CA
    cert = rogue.sign_csr(csr, "good-host", 3600).pem
    state = tmp_path / "rogue"
    ident.save(state, ident.Identity("good-host", "127.0.0.1", collector.report_port, {}, 0, 2**31),
               key, cert, (collector.root / "data" / "tls" / "ca.crt").read_bytes())
    before = _stored_samples(collector, "good-host")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _report(state, collector.report_port, _metric_batch(100, 5))
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert _stored_samples(collector, "good-host") == before


async def test_no_client_certificate_on_enroll_port_is_unauthenticated(collector, tmp_path):
    pem = (collector.root / "data" / "tls" / "enroll.crt").read_bytes()
    async with grpc.aio.secure_channel(collector.enroll_address,
                                       grpc.ssl_channel_credentials(root_certificates=pem)) as ch:
        # Nothing is written: the collector refuses before reading, and a write racing that refusal
        # fails locally with INTERNAL, hiding the server's status.
        call = collector_pb2_grpc.CollectorStub(ch).Report()
        assert await call.code() == grpc.StatusCode.UNAUTHENTICATED
    assert collector.counter('warden_collector_rpcs_refused_total{reason="no_client_certificate"}') >= 1


async def test_spoofed_host_is_refused_and_counted(collector, tmp_path):
    state = _enroll(collector, tmp_path, "honest-host")
    _enroll(collector, tmp_path, "victim-host")
    before = _rejected(collector, "spoofed_host")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _report(state, collector.report_port, _metric_batch(1, 5, host_id="victim-host"))
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "victim-host" in err.value.details() and "honest-host" in err.value.details()
    assert _rejected(collector, "spoofed_host") == before + 1
    assert _stored_samples(collector, "victim-host") == 0
    assert _stored_samples(collector, "honest-host") == 0


async def test_oversized_batches_are_refused(collector, tmp_path):
    state = _enroll(collector, tmp_path, "big-host")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _report(state, collector.report_port, _metric_batch(1, 101))
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "max_records_per_batch is 100" in err.value.details()
    # The refused range travels back so an agent can set it aside.
    assert ("warden-refused-seqs", "1-101") in tuple(err.value.trailing_metadata())
    assert _rejected(collector, "too_many_records") >= 1

    huge = collector_pb2.Batch(first_seq=1, last_seq=1)
    huge.records.append(records.event("test.big", "info", raw="x" * 300_000))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _report(state, collector.report_port, huge)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert _stored_samples(collector, "big-host") == 0
    # The collector is unharmed: a good batch still goes through.
    resp = await _report(state, collector.report_port, _metric_batch(1, 3))
    assert resp[-1].ack.committed_seq == 3


@pytest.mark.parametrize("kwargs, reason, text", [
    ({"value": math.nan}, "bad_value", "not finite"),
    ({"value": math.inf}, "bad_value", "not finite"),
    ({"time_ns": 0}, "bad_timestamp", "plausible"),
    ({"time_ns": time.time_ns() + 10**9 * 86400 * 30}, "bad_timestamp", "plausible"),
    ({"name": "bad name!"}, "bad_name", "not a valid name"),
    ({"name": "x" * 300}, "oversized_name", "max_name_bytes"),
])
async def test_malformed_values_are_refused(collector, tmp_path, kwargs, reason, text):
    host = f"malformed-{reason.replace('_', '-')}-{abs(hash(str(kwargs))) % 10000}"
    state = _enroll(collector, tmp_path, host)
    batch = _metric_batch(1, 3)
    batch.records.append(_metric_batch(4, 1, **kwargs).records[0])
    batch.last_seq = 4
    before = _rejected(collector, reason)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _report(state, collector.report_port, batch)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert text in err.value.details() and "seq 4" in err.value.details()
    assert _rejected(collector, reason) == before + 1
    # Nothing of the batch is stored, not even its three good records.
    store = SqliteStore(collector.root / "data" / "warden.db")
    try:
        assert store.latest_metrics(host) == []
        assert store.committed_seq(host, "spool-a") == 0
    finally:
        store.close()


async def test_bad_sequence_and_missing_hello_are_refused(collector, tmp_path):
    state = _enroll(collector, tmp_path, "seq-host")
    bad = _metric_batch(1, 3)
    bad.last_seq = 7
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _report(state, collector.report_port, bad)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    async with _channel(state, collector.report_port) as ch:
        call = collector_pb2_grpc.CollectorStub(ch).Report()
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call.write(collector_pb2.ReportRequest(batch=_metric_batch(1, 1)))
            await call.read()
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_revocation_closes_open_stream_and_refuses_reconnects(collector, tmp_path):
    state = _enroll(collector, tmp_path, "doomed-host")
    async with _channel(state, collector.report_port) as ch:
        call = collector_pb2_grpc.CollectorStub(ch).Report()
        await call.write(collector_pb2.ReportRequest(hello=collector_pb2.Hello(spool_id="s")))
        assert (await call.read()).welcome.host_id == "doomed-host"
        await call.write(collector_pb2.ReportRequest(batch=_metric_batch(1, 2)))
        assert (await call.read()).ack.committed_seq == 2
        t0 = time.monotonic()
        out = collector.cli("host", "revoke", "doomed-host")
        assert "revoked 1 certificate" in out.stdout
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call.read()  # the open stream ends without the agent sending anything
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "revoked" in err.value.details()
        assert time.monotonic() - t0 < 5
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _report(state, collector.report_port, _metric_batch(3, 2))
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert _stored_samples(collector, "doomed-host") == 2
    host = collector.host("doomed-host")
    assert host and host["host"]["revoked"] is True
    # Renewal is refused too: a revoked agent cannot mint itself a fresh certificate.
    from warden.agent.enroll import renew

    with pytest.raises(EnrollError, match="PERMISSION_DENIED"):
        renew(state, ident.load(state))
    assert collector.cli("host", "revoke", "no-such-host", check=False).returncode == 2


def test_renewal_without_token(collector, tmp_path):
    from warden.agent.enroll import renew

    state = _enroll(collector, tmp_path, "renew-host")
    old = ident.load(state)
    old_pem = (state / ident.CREDENTIALS_FILE).read_bytes()
    time.sleep(1.1)  # certificate validity has one-second resolution
    new = renew(state, old)
    assert new.cert_not_after > old.cert_not_after
    assert (state / ident.CREDENTIALS_FILE).read_bytes() != old_pem
    assert (state / ident.CREDENTIALS_FILE).stat().st_mode & 0o777 == 0o600
    assert collector.counter('warden_collector_renewals_total{result="ok"}') >= 1
    wait_for(lambda: collector.host("renew-host")["host"]["cert_serial"], what="serial")


async def test_renewed_certificate_works(collector, tmp_path):
    from warden.agent.enroll import renew

    state = _enroll(collector, tmp_path, "renew-host-2")
    renew(state, ident.load(state))
    resp = await _report(state, collector.report_port, _metric_batch(1, 2))
    assert resp[-1].ack.committed_seq == 2


def test_enrollment_refuses_malformed_csr(collector, tmp_path):
    token = collector.token()
    wire = token[: token.rindex(".")]
    pem = (collector.root / "data" / "tls" / "enroll.crt").read_bytes()
    creds = grpc.ssl_channel_credentials(root_certificates=pem)
    with grpc.secure_channel(collector.enroll_address, creds) as ch, pytest.raises(grpc.RpcError) as err:
        collector_pb2_grpc.EnrollmentStub(ch).Enroll(
            collector_pb2.EnrollRequest(token=wire, csr_pem=b"garbage"), timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    # A refused CSR does not spend the token.
    enroll(collector.enroll_address, token, tmp_path / "after-bad-csr", host_id="csr-host")


def test_record_kinds_are_typed():
    # Every Record oneof member maps to a plain type in the collector.
    assert set(records_pb2.Record.DESCRIPTOR.oneofs_by_name["kind"].fields) == {
        records_pb2.Record.DESCRIPTOR.fields_by_name[n] for n in ("metric", "inventory", "event")}


async def test_heartbeat_keeps_an_idle_host_fresh(collector, tmp_path):
    state = _enroll(collector, tmp_path, "quiet-host")
    async with _channel(state, collector.report_port) as ch:
        call = collector_pb2_grpc.CollectorStub(ch).Report()
        await call.write(collector_pb2.ReportRequest(hello=collector_pb2.Hello(spool_id="q")))
        await call.read()
        first = collector.host("quiet-host")["host"]["last_seen_ns"]
        time.sleep(0.05)
        await call.write(collector_pb2.ReportRequest(heartbeat=collector_pb2.Heartbeat(
            time_unix_nano=time.time_ns())))
        assert (await call.read()).WhichOneof("msg") == "heartbeat"
        assert collector.host("quiet-host")["host"]["last_seen_ns"] > first
        await call.done_writing()
