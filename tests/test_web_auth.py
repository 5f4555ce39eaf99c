"""The dashboard's sign-in, sessions, CSRF, roles and headers: the real WebApp served over
real TLS (the collector's own PKI) in this test's event loop, driven by an HTTP client that
keeps cookies like a browser; plus the user store and the `warden-collector user` CLI."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import re
import socket
import ssl
import stat
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.bench.bench_web import populate
from tests.harness import PY, CollectorProc
from warden.collector.alerting import FeedHub
from warden.collector.alerts.manager import AlertManager
from warden.collector.alerts.store import AlertStore
from warden.collector.config import WebSection
from warden.collector.pki import CollectorPKI
from warden.collector.rules.model import Transition
from warden.collector.store.sqlite import SqliteStore
from warden.collector.web.app import COOKIE, LOGIN_COOKIE, WebApp, local_path, parse_matchers
from warden.collector.web.users import LoginLimiter, UserStore, hash_password, verify_password

ADMIN_PW = "admin-password-1"
VIEWER_PW = "viewer-password-1"
NS = 10**9


@dataclass
class Env:
    app: WebApp
    base: str
    ssl: ssl.SSLContext
    store: SqliteStore
    alerts: AlertManager
    feed: FeedHub
    users: UserStore
    alert_id: int
    tmp: Path

    def client(self) -> aiohttp.ClientSession:
        # unsafe=True: keep cookies for an IP address host (127.0.0.1), as a browser does.
        return aiohttp.ClientSession(base_url=self.base, cookie_jar=aiohttp.CookieJar(unsafe=True),
                                     connector=aiohttp.TCPConnector(ssl=self.ssl))

    def fire(self, rule: str, host: str, severity: str = "critical") -> int:
        now = time.time_ns()
        entries = self.alerts.apply([Transition(rule, f"{rule}:{host}", {"alertname": rule, "host": host,
                                                                          "severity": severity},
                                                {"summary": f"{host}: {rule}"}, "firing", now, now)], now)
        self.feed.publish_threadsafe(entries[-1].position)
        return entries[0].alert_id  # type: ignore[return-value]


async def _make_env(tmp: Path, **web: Any) -> Env:
    store = SqliteStore(tmp / "warden.db")
    populate(store, 3, samples=5, step_s=10)
    alert_store = AlertStore(tmp / "alerts.db")
    mgr = AlertManager(alert_store)
    feed = FeedHub()
    feed.bind(asyncio.get_running_loop(), mgr.last_position())
    users = UserStore(tmp / "web.db")
    users.add_user("admin", "admin", ADMIN_PW)
    users.add_user("viewer", "viewer", VIEWER_PW)
    pki = CollectorPKI.load_or_create(tmp / "tls", ["localhost", "127.0.0.1"])
    settings = WebSection(**{"listen": "127.0.0.1:0", **web})
    app = WebApp(settings, store, tmp / "warden.db", users, mgr, feed, pki.server_cert_pem,
                 pki.server_key_pem)
    port = await app.start("127.0.0.1:0")
    ctx = ssl.create_default_context(cadata=pki.ca_cert_pem.decode())  # verify: the SANs hold 127.0.0.1
    env = Env(app, f"https://127.0.0.1:{port}", ctx, store, mgr, feed, users, 0, tmp)
    env.alert_id = env.fire("ssh_brute_force", "host-0001")
    return env


async def _close(env: Env) -> None:
    await env.app.stop()
    env.users.close()
    env.alerts.store.close()
    env.store.close()


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    e = await _make_env(tmp_path)
    yield e
    await _close(e)


async def sign_in(c: aiohttp.ClientSession, user: str, password: str,
                  next_url: str = "/") -> aiohttp.ClientResponse:
    async with c.get("/login", params={"next": next_url}) as r:
        assert r.status == 200
        token = re.search(r'name="csrf" value="([^"]+)"', await r.text()).group(1)  # type: ignore[union-attr]
    async with c.post("/login", data={"user": user, "password": password, "csrf": token, "next": next_url},
                      allow_redirects=False) as r:
        await r.read()
        return r


def csrf_of(html: str) -> str:
    m = re.search(r'data-csrf="([^"]+)"', html)
    assert m, "signed-in pages carry the CSRF token"
    return m.group(1)


async def admin_client(env: Env) -> tuple[aiohttp.ClientSession, str]:
    c = env.client()
    r = await sign_in(c, "admin", ADMIN_PW)
    assert r.status == 303
    async with c.get("/") as page:
        return c, csrf_of(await page.text())


# --- passwords and the user store ------------------------------------------------------------------

def test_password_hash_is_salted_scrypt_and_verifies() -> None:
    a, b = hash_password("correct horse battery"), hash_password("correct horse battery")
    assert a.salt != b.salt and a.digest != b.digest  # per-user salt
    assert a.n >= 2**14 and a.r == 8 and len(a.digest) == 32
    assert verify_password("correct horse battery", a)
    assert not verify_password("correct horse batterz", a)
    assert a.digest == hashlib.scrypt(b"correct horse battery", salt=a.salt, n=a.n, r=a.r, p=a.p,
                                      maxmem=256 * 2**20, dklen=32)


def test_user_store_rules(tmp_path: Path) -> None:
    users = UserStore(tmp_path / "web.db")
    try:
        assert stat.S_IMODE((tmp_path / "web.db").stat().st_mode) == 0o600  # password hashes inside
        users.add_user("alice", "admin", "a-long-password")
        with pytest.raises(ValueError, match="exists"):
            users.add_user("alice", "viewer", "another-long-password")
        with pytest.raises(ValueError, match="at least 12"):
            users.add_user("bob", "viewer", "short")
        with pytest.raises(ValueError, match="role"):
            users.add_user("bob", "root", "a-long-password")
        with pytest.raises(ValueError, match="invalid user name"):
            users.add_user("bob smith", "viewer", "a-long-password")
        assert [(u.name, u.role) for u in users.users()] == [("alice", "admin")]
        assert users.authenticate("alice", "a-long-password") is not None
        assert users.authenticate("alice", "a-long-passworD") is None
        assert users.authenticate("nobody", "a-long-password") is None
        # The database holds neither the password nor the session id in clear.
        token, s = users.create_session(users.get("alice"), 3600)  # type: ignore[arg-type]
        raw = (tmp_path / "web.db").read_bytes() + b"".join(
            p.read_bytes() for p in tmp_path.glob("web.db-*"))
        assert b"a-long-password" not in raw and token.encode() not in raw
        assert users.session(token, 3600) == s
        users.set_password("alice", "a-new-long-password")
        assert users.session(token, 3600) is None  # a password change ends the sessions
        token, _ = users.create_session(users.get("alice"), 3600)  # type: ignore[arg-type]
        users.remove_user("alice")
        assert users.session(token, 3600) is None
        assert users.authenticate("alice", "a-new-long-password") is None
        with pytest.raises(KeyError):
            users.remove_user("alice")
    finally:
        users.close()


def test_sessions_expire_absolutely_and_when_idle(tmp_path: Path) -> None:
    users = UserStore(tmp_path / "web.db")
    try:
        u = users.add_user("alice", "viewer", "a-long-password")
        t0 = 1_000 * NS
        token, _ = users.create_session(u, lifetime_s=3600, now_ns=t0)
        assert users.session(token, idle_s=600, now_ns=t0 + 500 * NS) is not None
        assert users.session(token, idle_s=600, now_ns=t0 + 1000 * NS) is not None  # touched at +500 s
        assert users.session(token, idle_s=600, now_ns=t0 + 1700 * NS) is None  # idle 700 s
        token, _ = users.create_session(u, lifetime_s=3600, now_ns=t0)
        for k in range(1, 7):  # kept busy, yet the absolute lifetime ends it
            assert users.session(token, idle_s=600, now_ns=t0 + k * 500 * NS) is not None
        assert users.session(token, idle_s=600, now_ns=t0 + 3600 * NS) is None
        assert users.session("not-a-session", 600) is None
    finally:
        users.close()


def test_login_limiter_locks_pairs_out() -> None:
    lim = LoginLimiter(max_failures=3, lockout_s=60)
    assert not lim.failure("alice", "10.0.0.1", now=0) and not lim.failure("Alice", "10.0.0.1", now=1)
    assert lim.failure("alice", "10.0.0.1", now=2)  # third failure: locked
    assert lim.locked_for("alice", "10.0.0.1", now=3) == pytest.approx(59)
    assert lim.locked_for("alice", "10.0.0.2", now=3) == 0  # another address
    assert lim.locked_for("bob", "10.0.0.1", now=3) == 0  # another user
    assert lim.locked_for("alice", "10.0.0.1", now=63) == 0  # served
    assert not lim.failure("alice", "10.0.0.1", now=64)  # counting starts afresh


def test_helpers_refuse_open_redirects_and_bad_matchers() -> None:
    assert local_path("/hosts/a?x=1") == "/hosts/a?x=1"
    for bad in ("//evil.example", "https://evil.example/", "/\\evil.example", "evil", "", None, "/a\r\nX: y"):
        assert local_path(bad) == "/"
    assert parse_matchers("alertname=ssh\nhost=~web.*\nseverity!=info\n") == {
        "alertname": "ssh", "host": {"regex": "web.*"}, "severity": {"not": "info"}}
    for bad in ("", "host", "host=a\nhost=b", "9x=1"):
        with pytest.raises(ValueError):
            parse_matchers(bad)


# --- over HTTPS -----------------------------------------------------------------------------------

async def test_everything_but_login_requires_a_session(env: Env) -> None:
    async with env.client() as c:
        for path in ("/", "/alerts", "/compliance", "/hosts/host-0001", "/no/such/page"):
            async with c.get(path, allow_redirects=False) as r:
                assert r.status == 303, path
                assert r.headers["Location"].startswith("/login?next="), path
        for path in ("/api/overview", "/api/hosts/host-0001/series?metric=cpu", "/events/stream",
                     "/api/session"):
            async with c.get(path) as r:
                assert r.status == 401, path
                assert (await r.json())["error"]
        async with c.post(f"/alerts/{env.alert_id}/ack", data={"comment": "x"}) as r:
            assert r.status == 403
        async with c.get("/static/app.css") as r:  # assets are public: no data in them
            assert r.status == 200 and "tile" in await r.text()
    assert env.alerts.get(env.alert_id)["acknowledged"] is None


async def test_security_headers_everywhere(env: Env) -> None:
    c, _ = await admin_client(env)
    async with c:
        for path in ("/login", "/", "/alerts", "/static/app.js", "/api/overview", "/hosts/nope"):
            async with c.get(path) as r:
                h = r.headers
                csp = h["Content-Security-Policy"]
                assert "default-src 'none'" in csp and "script-src 'self'" in csp, path
                assert "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
                assert h["X-Frame-Options"] == "DENY" and h["Referrer-Policy"] == "no-referrer"
                assert h["X-Content-Type-Options"] == "nosniff"
                assert "aiohttp" not in h.get("Server", "")
                body = await r.read()
                if r.content_type == "text/html":
                    # No inline script or style anywhere: all code is in /static.
                    assert not re.search(rb"<script(?![^>]*\ssrc=)", body), path
                    assert b"<style" not in body and b" style=" not in body and b"onclick" not in body
        async with c.get("/") as r:
            assert "no-store" in r.headers["Cache-Control"]


async def test_sign_in_wrong_then_right_sets_a_strict_cookie(env: Env) -> None:
    async with env.client() as c:
        r = await sign_in(c, "admin", "wrong-password-1")
        assert r.status == 401 and COOKIE not in {k.key for k in c.cookie_jar}
        r = await sign_in(c, "nobody", ADMIN_PW)
        assert r.status == 401
        r = await sign_in(c, "admin", ADMIN_PW, next_url="/alerts")
        assert r.status == 303 and r.headers["Location"] == "/alerts"
        cookie = next(v for v in r.headers.getall("Set-Cookie") if v.startswith(COOKIE + "="))
        attrs = {a.strip().split("=")[0].lower(): a.strip() for a in cookie.split(";")}
        assert "secure" in attrs and "httponly" in attrs
        assert attrs["samesite"].lower() == "samesite=strict" and attrs["path"] == "Path=/"
        assert "domain" not in attrs
        assert len(cookie.split(";")[0].split("=", 1)[1]) >= 43  # 256 bits, base64
        async with c.get("/api/session") as s:
            assert (await s.json())["user"] == "admin"
        # An open redirect through `next` is refused.
    async with env.client() as c:
        r = await sign_in(c, "admin", ADMIN_PW, next_url="//evil.example/")
        assert r.headers["Location"] == "/"


async def test_sign_in_form_has_its_own_csrf_token(env: Env) -> None:
    async with env.client() as c:
        # No pre-session cookie (a cross-site form): refused, no session.
        async with c.post("/login", data={"user": "admin", "password": ADMIN_PW, "csrf": "x"},
                          allow_redirects=False) as r:
            assert r.status == 403
        async with c.get("/login") as r:
            await r.read()
        async with c.post("/login", data={"user": "admin", "password": ADMIN_PW, "csrf": "forged"},
                          allow_redirects=False) as r:
            assert r.status == 403
        assert COOKIE not in {k.key for k in c.cookie_jar} and LOGIN_COOKIE in {k.key for k in c.cookie_jar}


async def test_post_without_or_with_a_wrong_csrf_token_is_refused(env: Env) -> None:
    c, token = await admin_client(env)
    async with c:
        url = f"/alerts/{env.alert_id}/ack"
        for data, headers in (({"comment": "no token"}, {}), ({"comment": "bad", "csrf": "x" * 43}, {}),
                              ({"comment": "bad header"}, {"X-CSRF-Token": token[:-1] + "A"})):
            async with c.post(url, data=data, headers=headers, allow_redirects=False) as r:
                assert r.status == 403, data
        async with c.post("/silences", data={"matchers": "host=host-0001", "comment": "x", "duration": "1h"},
                          allow_redirects=False) as r:
            assert r.status == 403
        async with c.post(url, data={"comment": "x", "csrf": token}, headers={"Origin": "https://evil.example"},
                          allow_redirects=False) as r:
            assert r.status == 403  # a foreign origin, even with the token
        assert env.alerts.get(env.alert_id)["acknowledged"] is None  # nothing changed
        assert env.alerts.silences() == []
        # The right token (form field): acknowledged, the author is the signed-in user.
        async with c.post(url, data={"comment": "on it", "csrf": token}, allow_redirects=False) as r:
            assert r.status == 303 and r.headers["Location"] == "/alerts?msg=acked"
        ack = env.alerts.get(env.alert_id)["acknowledged"]
        assert ack["by"] == "admin" and ack["comment"] == "on it"
        # The header works as well (for scripts).
        other = env.fire("disk_almost_full", "host-0002", "warning")
        async with c.post(f"/alerts/{other}/ack", headers={"X-CSRF-Token": token},
                          allow_redirects=False) as r:
            assert r.status == 303
        assert env.alerts.get(other)["acknowledged"]["by"] == "admin"


async def test_viewer_cannot_acknowledge_or_silence(env: Env) -> None:
    async with env.client() as c:
        assert (await sign_in(c, "viewer", VIEWER_PW)).status == 303
        async with c.get("/alerts") as r:
            html = await r.text()
            token = csrf_of(html)
            assert f'data-a="{env.alert_id}"' in html and "/ack" not in html  # no action forms shown
        async with c.post(f"/alerts/{env.alert_id}/ack", data={"comment": "x", "csrf": token},
                          allow_redirects=False) as r:
            assert r.status == 403
        async with c.post("/silences", data={"matchers": "host=host-0001", "comment": "x", "duration": "1h",
                                             "csrf": token}, allow_redirects=False) as r:
            assert r.status == 403
    assert env.alerts.get(env.alert_id)["acknowledged"] is None and env.alerts.silences() == []


async def test_admin_silences_and_expires(env: Env) -> None:
    c, token = await admin_client(env)
    async with c:
        async with c.post("/silences", data={"matchers": "alertname=ssh_brute_force\nhost=host-0001",
                                             "duration": "2h", "comment": "maintenance", "csrf": token},
                          allow_redirects=False) as r:
            assert r.status == 303
        (s,) = env.alerts.silences()
        assert s["author"] == "admin"
        assert s["matchers"] == {"alertname": "ssh_brute_force", "host": "host-0001"}
        assert 2 * 3600 * NS - 10 * NS < s["ends_ns"] - s["starts_ns"] <= 2 * 3600 * NS
        assert env.alerts.get(env.alert_id)["silenced_by"] == [s["id"]]
        async with c.post("/silences", data={"matchers": "nonsense", "comment": "x", "csrf": token}) as r:
            assert r.status == 400 and "matcher line 1" in await r.text()
        async with c.post("/silences", data={"matchers": "host=a", "comment": "", "csrf": token}) as r:
            assert r.status == 400  # a silence must say why
        async with c.post(f"/silences/{s['id']}/expire", data={"csrf": token}, allow_redirects=False) as r:
            assert r.status == 303
        assert env.alerts.silences() == [] and env.alerts.get(env.alert_id)["silenced_by"] == []
        async with c.post("/alerts/99999/ack", data={"csrf": token}) as r:
            assert r.status == 404


async def test_lockout_after_repeated_failures(tmp_path: Path) -> None:
    env = await _make_env(tmp_path, login_max_failures=3, login_lockout="2s")
    try:
        async with env.client() as c:
            statuses = [(await sign_in(c, "admin", f"wrong-password-{i}")).status for i in range(3)]
            assert statuses == [401, 401, 401]
            r = await sign_in(c, "admin", ADMIN_PW)  # right password, but locked out
            assert r.status == 429
            r = await sign_in(c, "viewer", VIEWER_PW)  # other users are not affected
            assert r.status == 303
            await asyncio.sleep(2.2)
            assert (await sign_in(c, "admin", ADMIN_PW)).status == 303
    finally:
        await _close(env)


async def test_session_expiry_and_sign_out(tmp_path: Path) -> None:
    env = await _make_env(tmp_path, session_lifetime="2s")
    try:
        async with env.client() as c:
            assert (await sign_in(c, "viewer", VIEWER_PW)).status == 303
            async with c.get("/", allow_redirects=False) as r:
                assert r.status == 200
            await asyncio.sleep(2.2)
            async with c.get("/", allow_redirects=False) as r:
                assert r.status == 303  # expired: back to sign-in
    finally:
        await _close(env)
    (tmp_path / "2").mkdir()
    env = await _make_env(tmp_path / "2")
    try:
        c, token = await admin_client(env)
        async with c:
            cookie = next(k.value for k in c.cookie_jar if k.key == COOKIE)
            async with c.post("/logout", data={"csrf": token}, allow_redirects=False) as r:
                assert r.status == 303 and r.headers["Location"] == "/login"
                assert any(v.startswith(COOKIE + '=""') or v.startswith(COOKIE + "=;")
                           for v in r.headers.getall("Set-Cookie"))
        # The old cookie is dead server-side too (a copied cookie does not outlive sign-out).
        async with env.client() as c2:
            c2.cookie_jar.update_cookies({COOKIE: cookie})
            async with c2.get("/api/session") as r:
                assert r.status == 401
        assert env.users.session_count() == 0
    finally:
        await _close(env)


async def test_agent_supplied_text_is_escaped(env: Env) -> None:
    env.store.enroll_host("evil-host", "evil", {"room": "<script>alert(1)</script>", "role": '"><img src=x>'},
                          "abcdef01", 0, 2**62, time.time_ns())
    c, _ = await admin_client(env)
    async with c:
        for path in ("/", "/?group=role", "/hosts/evil-host", "/compliance"):
            async with c.get(path) as r:
                html = await r.text()
                assert "<script>alert" not in html and "<img src=x>" not in html, path
                assert "&lt;script&gt;" in html or "&quot;&gt;&lt;img" in html or path == "/compliance"


async def test_pages_and_json_endpoints_when_signed_in(env: Env) -> None:
    c, _ = await admin_client(env)
    async with c:
        async with c.get("/") as r:
            html = await r.text()
            assert html.count('class="tile ') == 3 and 'data-h="host-0001"' in html
            assert re.search(r'class="tile s-critical"[^>]*data-h="host-0001"', html)
        async with c.get("/", params={"group": "rack"}) as r:
            assert "rack = R1-01" in await r.text()
        async with c.get("/hosts/host-0001") as r:
            html = await r.text()
            assert 'id="chart-cpu"' in html and "Debian GNU/Linux 12" in html and "ssh_brute_force" in html
        async with c.get("/api/hosts/host-0001/series", params={"metric": "disk", "range": "1h"}) as r:
            data = await r.json()
            assert [s["label"] for s in data["series"]] == ["/", "/home", "/var"]
            assert len(data["series"][0]["points"]) == 5 and data["ymax"] == 100
        async with c.get("/api/hosts/host-0001/series", params={"metric": "nope"}) as r:
            assert r.status == 400
        async with c.get("/compliance") as r:
            html = await r.text()
            assert "Patch compliance by room" in html and 'id="security-table"' in html
            assert "host-0000" in html  # i % 9 == 0: security updates pending
        async with c.get("/api/overview") as r:
            tiles = {t["h"]: t for t in (await r.json())["tiles"]}
            assert tiles["host-0001"]["s"] == "critical" and tiles["host-0002"]["s"] == "ok"


async def _events(resp: aiohttp.ClientResponse) -> AsyncIterator[tuple[str, Any]]:
    event = ""
    async for raw in resp.content:
        line = raw.decode().rstrip("\n")
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            yield event, json.loads(line[6:])


async def test_event_stream_pushes_alerts_and_tile_changes(env: Env) -> None:
    c, _ = await admin_client(env)
    async with c, c.get("/events/stream") as r:
        assert r.headers["Content-Type"].startswith("text/event-stream")
        seen: dict[str, Any] = {}
        fired = False
        async with asyncio.timeout(20):
            async for event, data in _events(r):
                seen.setdefault(event, data)
                if event == "tiles" and not fired:
                    first = {t["h"]: t["s"] for t in data["tiles"]}
                    assert first == {"host-0000": "ok", "host-0001": "critical", "host-0002": "ok"}
                    env.fire("host_silent", "host-0002")  # now: one alert event, one changed tile
                    fired = True
                elif event == "alert":
                    assert data["payload"]["rule"] == "host_silent" and data["what"] == "firing"
                elif event == "tiles" and fired:
                    assert [(t["h"], t["s"]) for t in data["tiles"]] == [("host-0002", "silent")]
                    break
        assert {"hello", "hosts", "tiles", "seen", "alert"} <= seen.keys()
        assert seen["hosts"] == ["host-0000", "host-0001", "host-0002"]


def test_user_cli(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[collector]\ndata_dir = "{tmp_path / "data"}"\n')

    def cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run([PY, "-m", "warden.collector.cli", "--config", str(cfg), "user", *args],
                              input=stdin, capture_output=True, text=True, timeout=60)

    out = cli("add", "alice", "--role", "admin", "--password-stdin", stdin="alice-password-1\n")
    assert out.returncode == 0, out.stderr
    out = cli("add", "bob", "--role", "viewer", "--password-stdin", stdin="short\n")
    assert out.returncode == 2 and "at least 12" in out.stderr
    dup = cli("add", "alice", "--role", "viewer", "--password-stdin", stdin="alice-password-2\n")
    assert dup.returncode == 2 and "exists" in dup.stderr
    listed = cli("list").stdout
    assert "alice" in listed and "admin" in listed and "bob" not in listed
    assert cli("passwd", "alice", "--password-stdin", stdin="alice-password-2\n").returncode == 0
    users = UserStore(tmp_path / "data" / "web.db")
    try:
        assert users.authenticate("alice", "alice-password-2")
        assert not users.authenticate("alice", "alice-password-1")
    finally:
        users.close()
    assert cli("remove", "alice").returncode == 0
    assert cli("remove", "alice").returncode == 2
    assert "alice" not in cli("list").stdout


async def test_stop_ends_open_event_streams_promptly(env: Env) -> None:
    c, _ = await admin_client(env)
    async with c, c.get("/events/stream") as r:
        assert (await r.content.readline()).startswith(b"retry:")
        t0 = time.monotonic()
        await asyncio.wait_for(env.app.stop(), 10)
        assert time.monotonic() - t0 < 3
        async with asyncio.timeout(5):
            with contextlib.suppress(aiohttp.ClientPayloadError):
                await r.content.read()  # the stream ends instead of hanging


def test_collector_runs_on_when_the_dashboard_port_is_taken(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        c = CollectorProc(tmp_path / "c", web={"listen": f"127.0.0.1:{taken.getsockname()[1]}"})
        c.start(accept=("degraded",))  # up: ingest and alerting do not depend on the dashboard
        try:
            assert "dashboard disabled: cannot listen" in c.log.read_text()
            health = c.get("/healthz")
            assert health["status"] == "degraded" and "cannot listen" in health["web"]["error"]
        finally:
            c.stop()


def test_compliance_facts_carry_the_oldest_pending_security_update(tmp_path: Path) -> None:
    from warden.collector.store.sqlite import SqliteStore
    from warden.collector.web import views
    from warden.collector.web.fleet import FleetReader

    store = SqliteStore(tmp_path / "warden.db")
    t = time.time_ns() - 9 * 86400 * 10**9  # reported pending nine days ago
    populate(store, 10, now_ns=t)
    store.close()
    facts = {f.host_id: f for f in FleetReader(tmp_path / "warden.db").patch_facts()}
    assert facts["host-0000"].oldest_security_ns == t  # i % 9 == 0: security updates pending
    assert facts["host-0001"].oldest_security_ns is None
    html = views.compliance_page(list(facts.values()), [], None, time.time_ns())
    assert re.search(r"Oldest pending security update:\s*<b>9 d</b>", html)
