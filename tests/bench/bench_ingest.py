"""Collector ingest benchmark: N simulated agents over mutual TLS.

    .venv/bin/python -m tests.bench.bench_ingest [--agents 1,100,1000] [--seconds 20] [--batch 500] [--smoke]

For each N a fresh collector is started as its own process (tests.harness.CollectorProc)
and N agent identities are registered (real Enroll RPCs up to --enroll-rpc-max agents,
otherwise keys, CSRs and certificates made in-process with the collector's own CA and
registered in its store). Load-generator processes then open N secure channels (one
client certificate and one TLS connection each), each running a Report stream with up
to --inflight unacknowledged batches, like the real agent's transport (500 records, 4
in flight). After --warmup seconds a --seconds window measures records acked per
second, batches/s, ack latency (batch written -> ack covering it) and the collector's
CPU and RSS. Then every agent drains its in-flight batches, and the collector's own
counters and store must account for exactly the records sent.

With >= 2 cores the collector is pinned to core 0 and the generator to the others
(--no-pin to disable), so the figures mean "one core of collector".

The generator is cheap by construction: each record is serialized once, and a request
is assembled from those bytes (repeated protobuf fields concatenate on the wire). Only
the timestamps change, so every record is a distinct stored (series, time) row.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import grpc
import psutil

from warden.agent.wire import varint
from warden.v1 import collector_pb2, records_pb2

from ..harness import CollectorProc

METHOD = "/warden.v1.Collector/Report"
TARGET_RECORDS_PER_S = 50_000
# Simulated scrape interval: with 1 ms per scrape the timestamps, which start 60 s in the
# past, stay around "the last minute" at any plausible rate (the collector refuses > now+1h).
SCRAPE_STEP_NS = 1_000_000
CONNECT_CONCURRENCY = 64
DRAIN_TIMEOUT_S = 120.0
INGESTED = "warden_collector_records_ingested_total"
DEDUPLICATED = "warden_collector_records_deduplicated_total"
REJECTED = "warden_collector_batches_rejected_total"
CHANNEL_OPTIONS = [
    ("grpc.use_local_subchannel_pool", 1),  # never share a connection: N agents = N TLS sessions
    ("grpc.keepalive_time_ms", 60_000),
]


# --- records: serialized once, assembled per batch ----------------------------------------

def host_series() -> list[tuple[str, dict[str, str], float]]:
    """What one host's system probe reports per scrape: 49 series with 2-3 labels each."""
    out: list[tuple[str, dict[str, str], float]] = []
    mounts = [("/", "/dev/vda1", "ext4"), ("/boot", "/dev/vda15", "vfat"),
              ("/var", "/dev/vdb1", "xfs"), ("/home", "/dev/vdc1", "ext4")]
    for name, base in (("system_filesystem_free_bytes", 4.2e10), ("system_filesystem_used_bytes", 1.1e10),
                       ("system_filesystem_inodes_free", 2.5e6)):
        for i, (mnt, dev, fstype) in enumerate(mounts):
            out.append((name, {"mountpoint": mnt, "device": dev, "fstype": fstype}, base / (i + 1)))
    for name, base in (("system_network_io_bytes_total", 8.1e9), ("system_network_packets_total", 6.4e6)):
        for i, iface in enumerate(("eth0", "eth1", "lo")):
            for direction in ("receive", "transmit"):
                out.append((name, {"interface": iface, "direction": direction}, base / (i + 1)))
    for name, base in (("system_disk_io_bytes_total", 3.3e10), ("system_disk_operations_total", 2.1e7)):
        for i, dev in enumerate(("vda", "vdb")):
            for direction in ("read", "write"):
                out.append((name, {"device": dev, "direction": direction}, base / (i + 1)))
    for cpu in ("cpu0", "cpu1"):
        for i, mode in enumerate(("user", "system", "idle", "iowait")):
            out.append(("system_cpu_time_seconds_total", {"cpu": cpu, "mode": mode}, 1.8e5 / (i + 1)))
    for i, state in enumerate(("used", "free", "cached", "buffers")):
        out.append(("system_memory_usage_bytes", {"state": state, "kind": "ram"}, 2.1e9 / (i + 1)))
    for i, period in enumerate(("1m", "5m", "15m")):
        out.append(("system_load_average", {"period": period, "scope": "host"}, 0.42 * (i + 1)))
    for i, state in enumerate(("running", "sleeping")):
        out.append(("system_processes", {"state": state, "scope": "host"}, 3.0 + 150 * i))
    return out


def record_prefixes() -> list[bytes]:
    """Per series: the wire bytes of one Batch.records entry up to (excluding) its timestamp.

    time_unix_nano (field 4) is written last: field order does not matter on the wire, and a
    timestamp between 2**56 and 2**63 ns is always a 9-byte varint, so every length in the
    prefix is known before the timestamp is.
    """
    out = []
    for name, labels, value in host_series():
        ms = records_pb2.MetricSample(name=name, labels=labels, value=value).SerializeToString()
        ms_len = len(ms) + 10  # + tag 0x20 + 9-byte varint
        rec = b"\x0a" + varint(ms_len) + ms  # Record.metric = 1
        out.append(b"\x1a" + varint(len(rec) + 10) + rec)  # Batch.records = 3
    return out


class RequestFactory:
    """Serialized ReportRequest(batch=...) of one agent: record j (seq j + 1) is series
    j % S of scrape j // S, timestamped t0 + scrape * SCRAPE_STEP_NS."""

    def __init__(self, prefixes: list[bytes], t0_ns: int) -> None:
        self._prefixes = prefixes
        self._t0 = t0_ns

    def _time_field(self, scrape: int) -> bytes:
        t = self._t0 + scrape * SCRAPE_STEP_NS
        assert 2**56 <= t < 2**63, "timestamp outside the 9-byte varint range"
        return b"\x20" + varint(t)

    def batch(self, first_seq: int, n: int) -> bytes:
        prefixes, per_scrape = self._prefixes, len(self._prefixes)
        parts: list[bytes] = []
        j, end = first_seq - 1, first_seq - 1 + n
        while j < end:
            scrape, i = divmod(j, per_scrape)
            stop = min(per_scrape, i + end - j)
            sep = self._time_field(scrape)
            parts.append(sep.join(prefixes[i:stop]))  # each record followed by its timestamp
            parts.append(sep)
            j += stop - i
        body = b"\x08" + varint(first_seq) + b"\x10" + varint(end) + b"".join(parts)
        return b"\x12" + varint(len(body)) + body  # ReportRequest.batch = 2


# --- load generator (runs in its own process) --------------------------------------------

@dataclass(frozen=True, slots=True)
class AgentSpec:
    host_id: str
    key_pem: bytes
    cert_pem: bytes


@dataclass(slots=True)
class WorkerStats:
    connected: int = 0
    sent_records: int = 0
    sent_batches: int = 0
    acked_records: int = 0
    acked_batches: int = 0
    window_records: int = 0
    window_batches: int = 0
    latencies: list[float] = field(default_factory=list)  # seconds, acks received in the window
    last_ack: float = 0.0  # monotonic
    errors: list[str] = field(default_factory=list)


class Phase:
    """Times shared by a worker's agents, set when the parent opens the window."""

    def __init__(self) -> None:
        self.w0 = self.w1 = self.stop_at = float("inf")
        self.warm_agents = 0  # agents whose first `inflight` batches (initial burst) are acked, or failed
        self.on_warm: Any = None


class Agent:
    """One simulated agent: its own channel, client certificate, spool id and Report stream."""

    def __init__(self, spec: AgentSpec, ca_pem: bytes, target: str, factory: RequestFactory,
                 batch: int, inflight: int, stats: WorkerStats) -> None:
        self.spec, self._ca, self._target = spec, ca_pem, target
        self._factory, self._batch, self._k, self._st = factory, batch, inflight, stats
        self.channel: grpc.aio.Channel | None = None
        self.call: Any = None
        self.seq = 0

    async def connect(self) -> None:
        creds = grpc.ssl_channel_credentials(root_certificates=self._ca, private_key=self.spec.key_pem,
                                             certificate_chain=self.spec.cert_pem)
        self.channel = grpc.aio.secure_channel(self._target, creds, options=CHANNEL_OPTIONS)
        # Raw bytes out (request_serializer=None), parsed responses in.
        self.call = self.channel.stream_stream(
            METHOD, request_serializer=None,
            response_deserializer=collector_pb2.ReportResponse.FromString)()
        hello = collector_pb2.ReportRequest(hello=collector_pb2.Hello(
            spool_id=uuid.uuid4().hex, agent_version="bench", hostname=self.spec.host_id))
        await self.call.write(hello.SerializeToString())
        resp = await self.call.read()
        if resp is grpc.aio.EOF or resp.WhichOneof("msg") != "welcome":
            raise RuntimeError(f"expected Welcome, got {resp!r}")
        self.seq = resp.welcome.committed_seq

    async def run(self, phase: Phase) -> None:
        st, k, n, call = self._st, self._k, self._batch, self.call
        inflight = asyncio.Semaphore(k)
        pending: deque[tuple[int, float]] = deque()  # (last_seq, monotonic time written)
        failed = False
        acked = 0

        async def read_acks() -> None:
            nonlocal failed, acked
            try:
                while True:
                    resp = await call.read()
                    if resp is grpc.aio.EOF:
                        if pending:
                            raise RuntimeError(f"stream ended with {len(pending)} batches unacked")
                        return
                    if resp.WhichOneof("msg") != "ack":
                        continue
                    committed, now = resp.ack.committed_seq, time.monotonic()
                    while pending and pending[0][0] <= committed:
                        _, t = pending.popleft()
                        st.acked_records += n
                        st.acked_batches += 1
                        if phase.w0 <= now < phase.w1:
                            st.window_records += n
                            st.window_batches += 1
                            st.latencies.append(now - t)
                        inflight.release()
                        acked += 1
                        if acked == k:
                            phase.warm_agents += 1
                            phase.on_warm()
                    st.last_ack = now
            except Exception as exc:  # the stream failed: unblock the writer
                failed = True
                if acked < k:  # never warm: do not hold the window up for it
                    phase.warm_agents += 1
                    phase.on_warm()
                st.errors.append(f"{self.spec.host_id}: {exc!r}"[:300])
                for _ in range(k + 1):
                    inflight.release()

        reader = asyncio.create_task(read_acks())
        try:
            while True:
                await inflight.acquire()
                if failed or time.monotonic() >= phase.stop_at:
                    break
                first = self.seq + 1
                self.seq += n
                req = self._factory.batch(first, n)
                pending.append((self.seq, time.monotonic()))
                st.sent_records += n
                st.sent_batches += 1
                await call.write(req)
            # Drain: the one permit held plus k - 1 more means nothing is in flight.
            for _ in range(k - 1):
                await asyncio.wait_for(inflight.acquire(), DRAIN_TIMEOUT_S)
            if not failed:
                await call.done_writing()
                await asyncio.wait_for(reader, DRAIN_TIMEOUT_S)
        except Exception as exc:
            if not failed:
                st.errors.append(f"{self.spec.host_id}: {exc!r}"[:300])
        finally:
            reader.cancel()

    async def close(self) -> None:
        if self.channel is not None:
            await self.channel.close()


async def _worker_main(conn: Connection, specs: list[AgentSpec], ca_pem: bytes, target: str,
                       batch: int, inflight: int) -> None:
    stats = WorkerStats()
    prefixes = record_prefixes()
    t0 = time.time_ns() - 60 * 10**9
    agents = [Agent(s, ca_pem, target, RequestFactory(prefixes, t0), batch, inflight, stats) for s in specs]
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)

    async def connect(a: Agent) -> bool:
        async with gate:
            try:
                await asyncio.wait_for(a.connect(), 120)
                return True
            except Exception as exc:
                stats.errors.append(f"{a.spec.host_id}: connect: {exc!r}"[:300])
                return False

    ok = [a for a, good in zip(agents, await asyncio.gather(*map(connect, agents)), strict=True) if good]
    stats.connected = len(ok)
    conn.send(("ready", stats.connected, stats.errors[:3]))
    loop = asyncio.get_running_loop()
    msg = await loop.run_in_executor(None, conn.recv)
    if msg[0] == "go":
        phase = Phase()
        phase.on_warm = lambda: conn.send(("warm",)) if phase.warm_agents == len(ok) else None

        async def listen() -> None:  # the parent opens the window once every worker is warm
            _, phase.w0, phase.w1 = await loop.run_in_executor(None, conn.recv)
            phase.stop_at = phase.w1

        listener = asyncio.create_task(listen())
        await asyncio.gather(*(a.run(phase) for a in ok))
        listener.cancel()
    await asyncio.gather(*(a.close() for a in agents), return_exceptions=True)
    conn.send(("done", asdict(stats)))


def _worker(conn: Connection, specs: list[AgentSpec], ca_pem: bytes, target: str, batch: int,
            inflight: int, cpus: list[int] | None) -> None:
    if cpus:
        os.sched_setaffinity(0, cpus)
    asyncio.run(_worker_main(conn, specs, ca_pem, target, batch, inflight))


# --- identities ----------------------------------------------------------------------------

def _ns(dt: datetime) -> int:
    return int(dt.timestamp()) * 10**9


def make_identities(collector: CollectorProc, n: int, rpc_max: int) -> tuple[bytes, list[AgentSpec], str]:
    """(CA PEM, N agent identities, how they were made)."""
    from warden.agent import identity as ident
    from warden.agent.enroll import _key_and_csr, enroll
    from warden.collector import tokens
    from warden.collector.pki import CollectorPKI
    from warden.collector.store.sqlite import SqliteStore

    data = collector.root / "data"
    ca_pem = (data / "tls" / "ca.crt").read_bytes()
    pki = CollectorPKI.load_or_create(data / "tls", ["localhost", "127.0.0.1"])  # the collector's files
    store = SqliteStore(data / "warden.db")  # shared with the running collector (WAL)
    hosts = [f"bench-{i:04d}" for i in range(n)]
    now = time.time_ns()
    try:
        if n <= rpc_max:
            # Real Enroll RPCs through the agent's own enrollment code, one token each.
            toks = []
            for _ in hosts:
                tok = tokens.new_token(pki.enroll_pin)
                store.add_token(tok.token_id, tok.secret_hash, {"role": "bench"}, now, now + 600 * 10**9)
                toks.append(tok.token)

            def one(host: str, token: str) -> AgentSpec:
                state = collector.root / "agents" / host
                enroll(collector.enroll_address, token, state, host_id=host)
                _, key, cert = ident.credentials(state)
                return AgentSpec(host, key, cert)

            with ThreadPoolExecutor(8) as pool:
                return ca_pem, list(pool.map(one, hosts, toks)), "Enroll RPC"
        specs = []
        for host in hosts:
            key, csr = _key_and_csr(host)
            issued = pki.sign_csr(csr, host, 86400)
            store.enroll_host(host, host, {"role": "bench"}, issued.serial_hex, _ns(issued.not_before),
                              _ns(issued.not_after), now)
            specs.append(AgentSpec(host, key, issued.pem))
        return ca_pem, specs, "in-process CA"
    finally:
        store.close()


# --- one run ------------------------------------------------------------------------------

@dataclass
class Result:
    agents: int
    batch: int
    inflight: int
    seconds: float
    records_per_s: float
    batches_per_s: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    collector_cpu_pct: float
    collector_rss_mb: float
    generator_cpu_pct: float
    records_sent: int
    records_acked: int
    collector_ingested: int
    collector_deduplicated: int
    collector_rejected: int
    samples_stored: int
    counts_match: bool
    errors: list[str]
    identities: str
    setup_s: float
    warmup_s: float
    drain_s: float
    profile: str | None = None


def _pct(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, max(0, round(q * len(sorted_values) + 0.5) - 1))]


def _counter_sum(health: dict[str, Any], name: str) -> float:
    return sum(v for k, v in health["counters"].items() if k == name or k.startswith(name + "{"))


def _cpu_s(procs: list[psutil.Process]) -> float:
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


def _sleep_until(t: float) -> None:
    time.sleep(max(0.0, t - time.monotonic()))


def _recv(conn: Connection, timeout: float, what: str) -> Any:
    if not conn.poll(timeout):
        raise TimeoutError(f"load generator: no {what} within {timeout:.0f}s")
    return conn.recv()


def run_one(n: int, args: argparse.Namespace, cpus: tuple[list[int], list[int]] | None) -> Result:
    root = Path(tempfile.mkdtemp(prefix=f"warden-bench-{n}-"))
    limits = {"max_records_per_batch": max(5000, args.batch)}
    collector = CollectorProc(root / "collector", limits=limits)
    workers: list[tuple[mp.process.BaseProcess, Connection]] = []
    spy: subprocess.Popen[bytes] | None = None
    try:
        collector.start()
        assert collector.proc is not None
        cproc = psutil.Process(collector.proc.pid)
        if cpus:
            cproc.cpu_affinity(cpus[0])
        t = time.monotonic()
        ca_pem, specs, how = make_identities(collector, n, args.enroll_rpc_max)

        ctx = mp.get_context("spawn")  # never fork a process that already used gRPC
        nproc = max(1, min(args.procs, n))
        target = f"127.0.0.1:{collector.report_port}"
        for i in range(nproc):
            parent, child = ctx.Pipe()
            p = ctx.Process(target=_worker, daemon=True, name=f"bench-gen-{i}",
                            args=(child, specs[i::nproc], ca_pem, target, args.batch, args.inflight,
                                  cpus[1] if cpus else None))
            p.start()
            workers.append((p, parent))
        connected, errors = 0, []
        for _, conn in workers:
            _, c, errs = _recv(conn, 300, "connections")
            connected += c
            errors += errs
        setup_s = time.monotonic() - t
        if connected != n:
            raise RuntimeError(f"only {connected}/{n} agents connected: {errors}")
        before = collector.get("/healthz")
        gprocs = [psutil.Process(p.pid) for p, _ in workers if p.pid]

        # Warm-up: at least --warmup seconds, and until every agent's initial burst of
        # `inflight` batches is acked (with N*inflight*batch records queued at once, that
        # takes a while); only then is the pipeline in its steady state.
        start_at = time.monotonic()
        for _, conn in workers:
            conn.send(("go",))
        rss, warm = 0, 0
        while warm < len(workers) or time.monotonic() < start_at + args.warmup:
            if time.monotonic() > start_at + args.max_warmup:
                raise TimeoutError(f"not warm after {args.max_warmup:g}s: initial bursts still unacked")
            for p, conn in workers:
                if not p.is_alive() and not conn.poll(0):
                    raise RuntimeError(f"load generator {p.name} died (exit code {p.exitcode})")
                if conn.poll(0):
                    msg = conn.recv()
                    if msg[0] != "warm":
                        raise RuntimeError(f"load generator ended early: {msg[1]['errors'][:3]}")
                    warm += 1
            rss = max(rss, cproc.memory_info().rss)
            time.sleep(0.05)
        w0 = time.monotonic() + 0.05
        w1 = w0 + args.seconds
        for _, conn in workers:
            conn.send(("window", w0, w1))
        _sleep_until(w0)
        c0, g0, t0 = _cpu_s([cproc]), _cpu_s(gprocs), time.monotonic()
        if args.profile:
            out = Path(args.profile) / f"ingest-n{n}-b{args.batch}.txt"
            out.parent.mkdir(parents=True, exist_ok=True)
            spy = subprocess.Popen(
                [str(Path(sys.executable).with_name("py-spy")), "record", "--pid", str(cproc.pid),
                 "--duration", str(int(args.seconds)), "--rate", "100", "--nonblocking", "--threads",
                 "--format", "raw", "-o", str(out)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if cpus:
                psutil.Process(spy.pid).cpu_affinity(cpus[1])
        while time.monotonic() < w1:
            rss = max(rss, cproc.memory_info().rss)
            time.sleep(min(0.2, max(0.0, w1 - time.monotonic())))
        c1, g1, t1 = _cpu_s([cproc]), _cpu_s(gprocs), time.monotonic()

        stats: list[dict[str, Any]] = [_recv(conn, DRAIN_TIMEOUT_S + 60, "results")[1] for _, conn in workers]
        rss = max(rss, cproc.memory_info().rss)
        after = collector.get("/healthz")
        profile = None
        if spy is not None:
            spy.wait(60)
            profile = str(Path(args.profile) / f"ingest-n{n}-b{args.batch}.txt")

        lat = sorted(x for s in stats for x in s["latencies"])
        sent = sum(s["sent_records"] for s in stats)
        acked = sum(s["acked_records"] for s in stats)
        ingested = int(_counter_sum(after, INGESTED) - _counter_sum(before, INGESTED))
        dedup = int(_counter_sum(after, DEDUPLICATED) - _counter_sum(before, DEDUPLICATED))
        rejected = int(_counter_sum(after, REJECTED) - _counter_sum(before, REJECTED))
        samples = after["store"]["samples"] - before["store"]["samples"]
        errors = [e for s in stats for e in s["errors"]]
        window = args.seconds
        drain_s = max(s["last_ack"] for s in stats) - w1
        return Result(
            agents=n, batch=args.batch, inflight=args.inflight, seconds=window,
            records_per_s=sum(s["window_records"] for s in stats) / window,
            batches_per_s=sum(s["window_batches"] for s in stats) / window,
            p50_ms=_pct(lat, 0.50) * 1e3, p99_ms=_pct(lat, 0.99) * 1e3,
            max_ms=(lat[-1] if lat else float("nan")) * 1e3,
            collector_cpu_pct=100 * (c1 - c0) / (t1 - t0), collector_rss_mb=rss / 2**20,
            generator_cpu_pct=100 * (g1 - g0) / (t1 - t0),
            records_sent=sent, records_acked=acked, collector_ingested=ingested,
            collector_deduplicated=dedup, collector_rejected=rejected, samples_stored=samples,
            counts_match=(sent > 0 and sent == acked == ingested == samples and dedup == 0
                          and rejected == 0 and not errors),
            errors=errors[:5], identities=how, setup_s=setup_s, warmup_s=w0 - start_at, drain_s=drain_s,
            profile=profile)
    finally:
        if spy is not None and spy.poll() is None:
            spy.kill()
        for p, conn in workers:
            conn.close()
            p.join(10)
            if p.is_alive():
                p.kill()
        collector.stop()
        if args.keep:
            print(f"  (kept {root})", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)


# --- reporting -----------------------------------------------------------------------------

HEADER = (f"{'agents':>6} {'batch':>5} {'records/s':>10} {'batches/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'coll CPU%':>9} {'coll RSS MB':>11} {'gen CPU%':>8}  committed == sent")


def row(r: Result) -> str:
    check = f"ok ({r.records_sent:,} records)" if r.counts_match else (
        f"MISMATCH sent={r.records_sent} acked={r.records_acked} ingested={r.collector_ingested} "
        f"stored={r.samples_stored} dedup={r.collector_deduplicated} rejected={r.collector_rejected} "
        f"errors={r.errors}")
    return (f"{r.agents:>6} {r.batch:>5} {r.records_per_s:>10,.0f} {r.batches_per_s:>9,.1f} "
            f"{r.p50_ms:>8.1f} {r.p99_ms:>8.1f} {r.collector_cpu_pct:>9.0f} {r.collector_rss_mb:>11.0f} "
            f"{r.generator_cpu_pct:>8.0f}  {check}")


def profile_summary(path: Path, top: int = 12) -> list[str]:
    """Hotspots from py-spy's raw (collapsed-stack) output: time per thread, self time per
    function, and per line of collector code (the deepest collector frame of each sample,
    so time spent in a library called from that line counts for the line)."""
    threads: Counter[str] = Counter()
    self_t: Counter[str] = Counter()
    lines: Counter[str] = Counter()
    total = 0
    for entry in path.read_text().splitlines():
        stack, _, count = entry.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        c = int(count)
        total += c
        frames = stack.split(";")
        if frames[0].startswith(("thread ", "process ")):
            threads[frames[0]] += c
            frames = frames[1:]
        if not frames:
            continue
        self_t[frames[-1].rsplit(":", 1)[0] + ")"] += c  # "func (file.py:12)" -> "func (file.py)"
        own = next((f for f in reversed(frames) if "collector/" in f), None)
        if own is not None:
            lines[own] += c
    if not total:
        return ["  (no samples)"]
    out = [f"  {total} samples at 100/s (active threads only); by thread:"]
    out += [f"    {100 * c / total:5.1f}%  {t}" for t, c in threads.most_common(4)]
    out.append("  self time by function:")
    out += [f"    {100 * c / total:5.1f}%  {nm}" for nm, c in self_t.most_common(top)]
    out.append("  by line of collector code (incl. what it calls):")
    out += [f"    {100 * c / total:5.1f}%  {nm}" for nm, c in lines.most_common(top)]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.bench.bench_ingest",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--agents", default="1,100,1000", help="comma-separated agent counts (1,100,1000)")
    ap.add_argument("--seconds", type=float, default=20.0, help="measured window per N (default 20)")
    ap.add_argument("--warmup", type=float, default=5.0,
                    help="minimum warm-up (default 5 s); it also lasts until every agent's first "
                         "--inflight batches are acked")
    ap.add_argument("--max-warmup", type=float, default=300.0, help="give up warming up after this (300 s)")
    ap.add_argument("--batch", type=int, default=500, help="records per batch (default 500, as the agent)")
    ap.add_argument("--inflight", type=int, default=4, help="unacked batches per agent (4, as the agent)")
    ap.add_argument("--procs", type=int, default=1, help="load-generator processes (default 1)")
    ap.add_argument("--enroll-rpc-max", type=int, default=100,
                    help="enroll through real Enroll RPCs up to this many agents (default 100)")
    ap.add_argument("--no-pin", action="store_true", help="do not pin collector and generator to own cores")
    ap.add_argument("--profile", metavar="DIR", help="py-spy the collector during each window into DIR")
    ap.add_argument("--keep", action="store_true", help="keep the collector directories")
    ap.add_argument("--smoke", action="store_true", help="quick CI check: N=1,10, 3 s, small batches")
    args = ap.parse_args(argv)
    if args.smoke:
        args.agents, args.seconds, args.warmup = "1,10", 3.0, 1.0
        args.batch, args.inflight, args.enroll_rpc_max = 100, 2, 1  # N=1 via Enroll RPC, N=10 in-process
    ns = [int(x) for x in args.agents.split(",") if x.strip()]

    cores = sorted(os.sched_getaffinity(0))
    cpus = None if args.no_pin or len(cores) < 2 else ([cores[0]], cores[1:])
    if cpus:
        os.sched_setaffinity(0, cpus[1])  # this process samples beside the generator
    print(f"collector ingest benchmark: batch {args.batch}, {args.inflight} in flight per agent, "
          f"warm-up {args.warmup:g}s, window {args.seconds:g}s, {len(record_prefixes())} series/agent, "
          f"{os.cpu_count()} cores, " + (f"collector on core {cpus[0]}, generator on {cpus[1]}" if cpus
                                         else "not pinned"), flush=True)
    results: list[Result] = []
    for n in ns:
        r = run_one(n, args, cpus)
        results.append(r)
        print(f"\nN={n}: identities by {r.identities} ({r.setup_s:.1f}s incl. connecting), warm-up "
              f"{r.warmup_s:.1f}s, drain {r.drain_s:.1f}s, max ack latency {r.max_ms:.0f} ms", flush=True)
        print(HEADER)
        print(row(r), flush=True)
        if r.profile:
            print(f"  collector profile ({r.profile}):")
            print("\n".join(profile_summary(Path(r.profile))), flush=True)
    print(f"\nsummary (target: {TARGET_RECORDS_PER_S:,} records/s)")
    print(HEADER)
    for r in results:
        print(row(r) + ("" if r.records_per_s >= TARGET_RECORDS_PER_S else "   [below target]"))
    print(json.dumps({"bench": "collector_ingest", "target_records_per_s": TARGET_RECORDS_PER_S,
                      "cores": os.cpu_count(), "pinned": bool(cpus), "min_warmup_s": args.warmup,
                      "results": [{k: v for k, v in asdict(r).items()} for r in results]}), flush=True)
    return 0 if all(r.counts_match for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
