"""The fault proxy itself (tests/faults/netproxy.py), against an echo server on loopback: it
passes bytes, delays them by the latency asked, holds them while paused, resets open
connections on a cut and new ones while dropping."""

from __future__ import annotations

import socket
import socketserver
import threading
import time
from collections.abc import Iterator

import pytest

from .netproxy import NetProxy


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        try:
            while data := self.request.recv(65536):
                self.request.sendall(data)
        except OSError:  # the proxy resets connections on purpose
            pass


@pytest.fixture
def proxy() -> Iterator[NetProxy]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with NetProxy("127.0.0.1", server.server_address[1]) as p:
        yield p
    server.shutdown()
    server.server_close()


def _roundtrip(sock: socket.socket, data: bytes) -> float:
    t0 = time.monotonic()
    sock.sendall(data)
    got = b""
    while len(got) < len(data):
        chunk = sock.recv(65536)
        assert chunk, "connection closed"
        got += chunk
    assert got == data
    return time.monotonic() - t0


def test_pass_latency_pause_cut_and_drop(proxy: NetProxy) -> None:
    s = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
    assert _roundtrip(s, b"hello" * 1000) < 0.5
    proxy.set_latency(0.15)
    assert 0.3 <= _roundtrip(s, b"slow") < 1.5  # 0.15 s each way
    proxy.set_latency(0)
    proxy.pause(True)
    s.sendall(b"held")
    s.settimeout(0.5)
    with pytest.raises(TimeoutError):
        s.recv(10)
    proxy.pause(False)
    s.settimeout(5)
    assert s.recv(10) == b"held"
    assert proxy.cut() == 1
    with pytest.raises((ConnectionResetError, AssertionError)):
        _roundtrip(s, b"after the cut")
        _roundtrip(s, b"after the cut")
    s.close()
    proxy.drop_new(True)
    with (pytest.raises((ConnectionResetError, AssertionError, BrokenPipeError)),
          socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as d):
        _roundtrip(d, b"x")
    proxy.drop_new(False)
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as ok:
        assert _roundtrip(ok, b"back") < 0.5
    conns = proxy.snapshot()
    assert [c.cut for c in conns] == [True, False, False]
    assert [c.dropped for c in conns] == [False, True, False]
    assert conns[0].up_bytes >= 5000 and conns[0].first_down_at is not None
