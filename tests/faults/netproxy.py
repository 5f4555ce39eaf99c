"""A TCP proxy on loopback that a test controls: the network between an agent and the collector.

    with NetProxy("127.0.0.1", collector.report_port) as proxy:
        ...  # point the agent at proxy.port
        proxy.cut()              # reset every open connection (both sides see a RST)
        proxy.drop_new(True)     # accept new connections and reset them at once
        proxy.pause(True)        # stop forwarding bytes (a silent partition); pause(False) resumes
        proxy.set_latency(0.1)   # delay every chunk by 100 ms in each direction

It runs its own asyncio loop on a thread; the control methods are thread-safe. It only ever
listens on and connects to loopback. Every connection is recorded (`connections`), with when it
was accepted, whether it was dropped at once, when it closed and the bytes it carried, so a
test can tell when an agent reconnected and how long it waited between attempts.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from dataclasses import dataclass, field

CHUNK = 64 * 1024


@dataclass
class Conn:
    id: int
    accepted_at: float  # monotonic
    dropped: bool = False  # reset at accept (drop_new)
    closed_at: float | None = None
    up_bytes: int = 0  # client -> server
    down_bytes: int = 0  # server -> client
    first_down_at: float | None = None  # when the server first answered (monotonic)
    cut: bool = False  # reset by cut()
    _writers: list[asyncio.StreamWriter] = field(default_factory=list, repr=False)


class NetProxy:
    def __init__(self, upstream_host: str, upstream_port: int, listen_host: str = "127.0.0.1") -> None:
        assert upstream_host.startswith("127.") or upstream_host in ("localhost", "::1"), "loopback only"
        self.upstream = (upstream_host, upstream_port)
        self._listen_host = listen_host
        self.port = 0
        self.connections: list[Conn] = []
        self._lock = threading.Lock()
        self._latency = 0.0
        self._drop_new = False
        self._flowing: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.AbstractServer | None = None
        self._thread: threading.Thread | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # --- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> NetProxy:
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), name="netproxy", daemon=True)
        self._thread.start()
        if not ready.wait(10) or not self.port:
            raise RuntimeError("netproxy did not start")
        return self

    def _run(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)

        async def main() -> None:
            self._flowing = asyncio.Event()
            self._flowing.set()
            self._server = await asyncio.start_server(self._handle, self._listen_host, 0)
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()

        loop.run_until_complete(main())
        loop.run_forever()
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()

    def stop(self) -> None:
        if self._loop is None:
            return

        async def shutdown() -> None:
            assert self._server is not None
            self._server.close()
            self._abort_all(mark_cut=False)
            for t in list(self._tasks):
                t.cancel()
            await asyncio.sleep(0)

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread:
            self._thread.join(5)
        self._loop = None

    def __enter__(self) -> NetProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- control (thread-safe) ---------------------------------------------------------------------
    def _call(self, fn, *args):  # type: ignore[no-untyped-def]
        assert self._loop is not None

        async def run():  # type: ignore[no-untyped-def]
            return fn(*args)

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(5)

    def cut(self) -> int:
        """Reset every open connection; returns how many were cut."""
        return self._call(self._abort_all, True)

    def drop_new(self, on: bool) -> None:
        """While on, new connections are accepted and reset at once (the agent sees its
        connection attempt fail); open ones are left alone."""
        self._drop_new = on

    def pause(self, on: bool) -> None:
        """While on, no byte is forwarded in either direction; connections stay open."""
        assert self._flowing is not None
        self._call(self._flowing.clear if on else self._flowing.set)

    def set_latency(self, seconds: float) -> None:
        """Delay every chunk by `seconds` in each direction (throughput is kept)."""
        self._latency = max(0.0, seconds)

    # --- observation ------------------------------------------------------------------------------
    def snapshot(self) -> list[Conn]:
        with self._lock:
            return [Conn(c.id, c.accepted_at, c.dropped, c.closed_at, c.up_bytes, c.down_bytes,
                         c.first_down_at, c.cut) for c in self.connections]

    def open_count(self) -> int:
        with self._lock:
            return sum(1 for c in self.connections if c.closed_at is None and not c.dropped)

    def established(self, after: float = 0.0) -> list[Conn]:
        """Connections accepted after `after` (monotonic) that the server answered through."""
        return [c for c in self.snapshot() if c.accepted_at >= after and c.first_down_at is not None]

    # --- the proxy itself --------------------------------------------------------------------------
    def _abort_all(self, mark_cut: bool) -> int:
        n = 0
        with self._lock:
            conns = [c for c in self.connections if c.closed_at is None]
        for c in conns:
            if mark_cut:
                c.cut = True
            for w in c._writers:
                _reset(w)
            n += 1
        return n

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with self._lock:
            conn = Conn(len(self.connections) + 1, time.monotonic())
            self.connections.append(conn)
        if self._drop_new:
            conn.dropped = True
            conn.closed_at = time.monotonic()
            _reset(writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            conn.closed_at = time.monotonic()
            _reset(writer)
            return
        conn._writers = [writer, up_writer]
        tasks = [asyncio.ensure_future(self._pipe(reader, up_writer, conn, up=True)),
                 asyncio.ensure_future(self._pipe(up_reader, writer, conn, up=False))]
        for t in tasks:
            self._tasks.add(t)
            t.add_done_callback(self._tasks.discard)
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in tasks:
                t.cancel()
            for w in conn._writers:
                _reset(w)
            conn.closed_at = conn.closed_at or time.monotonic()

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, conn: Conn, up: bool) -> None:
        assert self._flowing is not None
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def deliver() -> None:
            while True:
                due, data = await queue.get()
                if not data:
                    return
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                await self._flowing.wait()  # type: ignore[union-attr]
                dst.write(data)
                await dst.drain()
                if up:
                    conn.up_bytes += len(data)
                else:
                    conn.down_bytes += len(data)
                    if conn.first_down_at is None:
                        conn.first_down_at = time.monotonic()

        sender = asyncio.ensure_future(deliver())
        try:
            while True:
                await self._flowing.wait()  # paused: stop reading too, so nothing moves
                data = await src.read(CHUNK)
                await queue.put((time.monotonic() + self._latency, data))
                if not data:
                    break
            await sender
        except (ConnectionError, OSError):
            pass
        finally:
            sender.cancel()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a RST, as a broken network path looks to both ends."""
    sock = writer.get_extra_info("socket")
    with contextlib.suppress(OSError, AttributeError):
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    with contextlib.suppress(Exception):
        writer.transport.abort()
