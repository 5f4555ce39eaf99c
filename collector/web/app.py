"""The dashboard's web application: aiohttp on its own HTTPS listener, in the collector's
event loop.

Security design (see also users.py):
- TLS only, with the collector's server certificate (agents already trust its CA).
- Every page, JSON endpoint and the event stream needs a session; only /login and the
  static assets (no data in them) are public.
- Session cookie `__Host-warden-session`: Secure, HttpOnly, SameSite=Strict, Path=/
  (the __Host- prefix makes browsers refuse it without Secure or with a Domain).
- CSRF: every POST carries the session's token (form field `csrf` or header
  X-CSRF-Token), compared with hmac.compare_digest before anything changes; sign-in uses
  a double-submit token in a short-lived pre-session cookie. A foreign Origin is refused.
- Sign-in failures per (user name, address) lock the pair out for a while.
- Roles: viewers read; only admins acknowledge, silence and expire silences. The author
  recorded with an acknowledgement or silence is the signed-in user, never a form field.
- Headers: a Content-Security-Policy allowing only our own scripts and styles (no inline
  code anywhere), X-Frame-Options DENY, Referrer-Policy no-referrer, nosniff. No HSTS: it
  would pin the whole host name to HTTPS in the browser, breaking the plain-HTTP API on
  another port of the same host, and this listener speaks nothing but TLS anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import re
import secrets
import ssl
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from warden.collector.alerting import FeedHub
from warden.collector.alerts.manager import AlertManager
from warden.collector.config import WebSection
from warden.collector.store.base import Store
from warden.collector.telemetry import Telemetry
from warden.collector.tokens import parse_ttl
from warden.collector.web import views
from warden.collector.web.fleet import NS, FleetReader, HostFacts
from warden.collector.web.users import LoginLimiter, Session, UserStore

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
COOKIE = "__Host-warden-session"
LOGIN_COOKIE = "__Host-warden-login"
LOGIN_COOKIE_S = 3600
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "font-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), usb=()",
}
SEEN_EVERY_S = 30.0  # "last seen" times pushed to open overviews
MAX_CHART_POINTS = 360  # per series; plenty for a chart a few hundred pixels wide
MAX_CONCURRENT_HASHES = 4  # scrypt takes 32 MiB and ~0.1 s each
# Per-request storage keys (typed keys on aiohttp >= 3.12, plain strings before).
_RequestKey = getattr(web, "RequestKey", None)
SESSION: Any = _RequestKey("warden_session", Session) if _RequestKey else "warden_session"
TOKEN: Any = _RequestKey("warden_token", str) if _RequestKey else "warden_token"
_MATCHER_RE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!=|=)(.*)")

# chart -> (metric name, label to name the line by | fixed line name), unit, fixed y maximum
CHART_METRICS: dict[str, tuple[list[tuple[str, str]], str, float | None]] = {
    "cpu": ([("system_cpu_percent", "=CPU")], "%", 100.0),
    "memory": ([("system_memory_used_percent", "=memory"), ("system_swap_used_percent", "=swap")], "%",
               100.0),
    "disk": ([("system_filesystem_used_percent", "mount")], "%", 100.0),
    "load": ([("system_load1", "=1 min"), ("system_load5", "=5 min"), ("system_load15", "=15 min")], "",
             None),
}


def ssl_context(cert_pem: bytes, key_pem: bytes) -> ssl.SSLContext:
    """A TLS 1.2+ server context from PEM bytes (the collector's server certificate)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    # load_cert_chain reads files only: a private temporary directory (0700), removed at once.
    with tempfile.TemporaryDirectory(prefix="warden-web-") as d:
        cert, key = Path(d) / "server.crt", Path(d) / "server.key"
        cert.write_bytes(cert_pem)
        fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key_pem)
        ctx.load_cert_chain(cert, key)
    return ctx


def redirect(location: str) -> web.Response:
    """303 See Other: after a POST the browser GETs the result (no resubmission on reload)."""
    return web.Response(status=303, headers={"Location": location})


def local_path(url: str | None, default: str = "/") -> str:
    """`url` if it is a path on this site (open redirects refused), else `default`."""
    if not url or not url.startswith("/") or url.startswith(("//", "/\\")) or any(c in url for c in "\r\n\\"):
        return default
    return url


def parse_matchers(text: str) -> dict[str, Any]:
    """`label=value`, `label=~regex`, `label!=value`, one per line, into the alert manager's
    matcher mapping; ValueError names the bad line."""
    out: dict[str, Any] = {}
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        m = _MATCHER_RE.fullmatch(line)
        if not m:
            raise ValueError(f"matcher line {n} ({line!r}): use label=value, label=~regex or label!=value")
        label, op, value = m.group(1), m.group(2), m.group(3).strip()
        if label in out:
            raise ValueError(f"two matchers for label {label!r}")
        out[label] = {"regex": value} if op == "=~" else {"not": value} if op == "!=" else value
    if not out:
        raise ValueError("a silence needs at least one matcher")
    return out


def downsample(points: list[tuple[int, float]], since_ns: int, until_ns: int,
               buckets: int = MAX_CHART_POINTS) -> list[list[float]]:
    """Mean per time bucket, as [[epoch ms, value], ...]; NaN samples are dropped. Few
    enough points are returned as they are."""
    if len(points) <= buckets:
        return [[t // 10**6, round(v, 3)] for t, v in points if math.isfinite(v)]
    width = max(1, (until_ns - since_ns) // buckets)
    out: list[list[float]] = []
    cur, n, vsum, tsum = None, 0, 0.0, 0
    for t, v in points:
        if not math.isfinite(v):
            continue
        b = (t - since_ns) // width
        if b != cur and n:
            out.append([round(tsum / n / 1e6), round(vsum / n, 3)])
            n, vsum, tsum = 0, 0.0, 0
        cur = b
        n, vsum, tsum = n + 1, vsum + v, tsum + t
    if n:
        out.append([round(tsum / n / 1e6), round(vsum / n, 3)])
    return out


class WebApp:
    def __init__(self, settings: WebSection, store: Store, db_path: Path, users: UserStore,
                 alerts: AlertManager | None, feed: FeedHub | None, cert_pem: bytes, key_pem: bytes,
                 telemetry: Telemetry | None = None) -> None:
        self.settings = settings
        self.store, self.users, self.alerts, self.feed = store, users, alerts, feed
        self.telemetry = telemetry or Telemetry()
        self.fleet = FleetReader(db_path)
        self._ssl = ssl_context(cert_pem, key_pem)
        self.lifetime_s = parse_ttl(settings.session_lifetime)
        self.idle_s = parse_ttl(settings.session_idle)
        self.refresh_s = float(parse_ttl(settings.refresh))
        self.limiter = LoginLimiter(settings.login_max_failures, float(parse_ttl(settings.login_lockout)))
        self._hashing = asyncio.Semaphore(MAX_CONCURRENT_HASHES)
        self._facts_cache: tuple[float, list[HostFacts]] | None = None
        self._facts_lock = asyncio.Lock()
        self._streams: set[asyncio.Task[Any]] = set()
        app = web.Application(middlewares=[self._auth], client_max_size=256 * 1024)
        app.on_response_prepare.append(self._headers)
        app.add_routes([
            web.get("/login", self.login_form),
            web.post("/login", self.login),
            web.post("/logout", self.logout),
            web.get("/", self.overview),
            web.get("/hosts/{host_id}", self.host),
            web.get("/alerts", self.alerts_page),
            web.get("/alerts/live", self.alerts_live),
            web.post("/alerts/{alert_id}/ack", self.acknowledge),
            web.post("/silences", self.silence),
            web.post("/silences/{silence_id}/expire", self.expire),
            web.get("/compliance", self.compliance),
            web.get("/events/stream", self.stream),
            web.get("/api/overview", self.api_overview),
            web.get("/api/hosts/{host_id}/series", self.api_series),
            web.get("/api/session", self.api_session),
        ])
        app.router.add_static("/static/", STATIC, follow_symlinks=False)
        self.app = app
        self._runner: web.AppRunner | None = None

    # --- lifecycle ----------------------------------------------------------------------------
    async def start(self, listen: str) -> int:
        host, _, port = listen.rpartition(":")
        self._runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host.strip("[]") or None, int(port), ssl_context=self._ssl)
        try:
            await site.start()
        except BaseException:
            await self._runner.cleanup()
            self._runner = None
            raise
        return site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        for t in list(self._streams):  # event streams never end by themselves
            t.cancel()
        if self._runner:
            await self._runner.cleanup()
            self._runner = None
        self.fleet.close()

    # --- plumbing -----------------------------------------------------------------------------
    async def _headers(self, request: web.Request, response: web.StreamResponse) -> None:
        response.headers.update(SECURITY_HEADERS)
        response.headers["Server"] = "warden"
        if not request.path.startswith("/static/"):
            response.headers["Cache-Control"] = "no-store"

    @web.middleware
    async def _auth(self, request: web.Request,
                    handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        path = request.path
        unsafe = request.method not in ("GET", "HEAD")
        origin = request.headers.get("Origin")
        # "null" is what a same-origin form sends under Referrer-Policy no-referrer.
        if unsafe and origin and origin != "null" and origin != f"https://{request.host}":
            return self._error(request, 403, "Cross-site request refused.")
        if path.startswith("/static/") or path == "/login":
            return await handler(request)
        token = request.cookies.get(COOKIE, "")
        session = await asyncio.to_thread(self.users.session, token, self.idle_s) if token else None
        if session is None:
            if unsafe:
                return self._error(request, 403, "Not signed in (or the session ended): sign in again.")
            if path.startswith(("/api/", "/events/")):
                return web.json_response({"error": "sign-in required"}, status=401)
            return redirect("/login?" + urlencode({"next": request.path_qs}))
        request[SESSION], request[TOKEN] = session, token
        if unsafe:
            sent = request.headers.get("X-CSRF-Token")
            if sent is None:
                sent = str((await request.post()).get("csrf", ""))
            if not session.csrf_ok(sent):
                self.telemetry.inc("warden_collector_web_csrf_refused_total")
                return self._error(request, 403,
                                   "Missing or wrong CSRF token: reload the page and try again.")
        try:
            return await handler(request)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            return self._error(request, exc.status, exc.text or exc.reason)

    def _error(self, request: web.Request, status: int, message: str) -> web.Response:
        s: Session | None = request.get(SESSION)
        if request.path.startswith(("/api/", "/events/")):
            return web.json_response({"error": message}, status=status)
        text = views.error_page(status, message, s.user if s else "", s.role if s else "",
                                s.csrf if s else "")
        return web.Response(text=text, status=status, content_type="text/html")

    def _page(self, request: web.Request, title: str, body: str, active: str,
              scripts: tuple[str, ...] = ()) -> web.Response:
        s: Session = request[SESSION]
        return web.Response(text=views.page(title, body, user=s.user, role=s.role, csrf=s.csrf, active=active,
                                            scripts=scripts), content_type="text/html")

    def _admin(self, request: web.Request) -> Session:
        s: Session = request[SESSION]
        if not s.is_admin:
            raise web.HTTPForbidden(text="Only admins can acknowledge alerts and manage silences.")
        return s

    def _manager(self) -> AlertManager:
        if self.alerts is None:
            raise web.HTTPServiceUnavailable(text="alerting is not running")
        return self.alerts

    async def _active(self) -> list[dict[str, Any]]:
        return await asyncio.to_thread(self.alerts.active) if self.alerts else []

    async def _facts(self, max_age: float) -> list[HostFacts]:
        """The fleet's tile figures, shared by every open dashboard (one read per refresh)."""
        async with self._facts_lock:
            now = time.monotonic()
            if self._facts_cache is None or now - self._facts_cache[0] > max_age:
                self._facts_cache = (now, await asyncio.to_thread(self.fleet.facts))
            return self._facts_cache[1]

    # --- sign-in ------------------------------------------------------------------------------
    def _login_response(self, request: web.Request, status: int = 200, user: str = "",
                        error: str = "", next_url: str | None = None) -> web.Response:
        token = request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(32)
        nxt = local_path(next_url if next_url is not None else request.query.get("next"))
        resp = web.Response(text=views.login_page(token, nxt, user, error), status=status,
                            content_type="text/html")
        resp.set_cookie(LOGIN_COOKIE, token, max_age=LOGIN_COOKIE_S, path="/", secure=True, httponly=True,
                        samesite="Strict")
        return resp

    async def login_form(self, request: web.Request) -> web.Response:
        return self._login_response(request)

    async def login(self, request: web.Request) -> web.Response:
        form = await request.post()
        name, password = str(form.get("user", "")).strip(), str(form.get("password", ""))
        next_url = local_path(str(form.get("next", "")))
        expected = request.cookies.get(LOGIN_COOKIE, "")
        sent = str(form.get("csrf", ""))
        if not expected or not secrets.compare_digest(sent.encode(), expected.encode()):
            return self._login_response(request, 403, name, "The sign-in form expired: please try again.",
                                        next_url)
        address = request.remote or ""
        wait = self.limiter.locked_for(name, address)
        if wait:
            self.telemetry.inc("warden_collector_web_logins_total", result="locked")
            return self._login_response(request, 429, name, f"Too many failed sign-ins: try again in "
                                        f"{math.ceil(wait)} s.", next_url)
        async with self._hashing:
            user = await asyncio.to_thread(self.users.authenticate, name, password)
        if user is None:
            locked = self.limiter.failure(name, address)
            self.telemetry.inc("warden_collector_web_logins_total", result="failure")
            log.warning("dashboard sign-in failed for %r from %s%s", name[:64], address,
                        " (locked out)" if locked else "")
            msg = "Wrong user name or password."
            if locked:
                msg += f" Sign-in is locked for {math.ceil(self.limiter.lockout_s)} s."
            return self._login_response(request, 401, name, msg, next_url)
        self.limiter.success(name, address)
        self.telemetry.inc("warden_collector_web_logins_total", result="success")
        token, _ = await asyncio.to_thread(self.users.create_session, user, self.lifetime_s, address)
        log.info("dashboard sign-in: %s (%s) from %s", user.name, user.role, address)
        resp = redirect(next_url)
        resp.set_cookie(COOKIE, token, max_age=self.lifetime_s, path="/", secure=True, httponly=True,
                        samesite="Strict")
        resp.del_cookie(LOGIN_COOKIE, path="/", secure=True, httponly=True, samesite="Strict")
        return resp

    async def logout(self, request: web.Request) -> web.Response:
        await asyncio.to_thread(self.users.end_session, request[TOKEN])
        resp = redirect("/login")
        resp.del_cookie(COOKIE, path="/", secure=True, httponly=True, samesite="Strict")
        return resp

    async def api_session(self, request: web.Request) -> web.Response:
        s: Session = request[SESSION]
        return web.json_response({"user": s.user, "role": s.role, "expires_ns": s.expires_ns})

    # --- pages --------------------------------------------------------------------------------
    async def overview(self, request: web.Request) -> web.Response:
        facts = await self._facts(0.0)  # a page load always reads fresh figures
        body, _ = views.overview(facts, await self._active(), request.query.get("group"), time.time_ns())
        return self._page(request, "Overview", body, "overview", ("overview.js",))

    async def api_overview(self, request: web.Request) -> web.Response:
        facts = await self._facts(self.refresh_s)
        tiles = self._tiles(facts, await self._active())
        return web.json_response({"now": time.time_ns() // NS, "tiles": list(tiles.values())})

    async def host(self, request: web.Request) -> web.Response:
        host_id = request.match_info["host_id"]
        host = await asyncio.to_thread(self.store.get_host, host_id)
        if host is None:
            return self._error(request, 404, f"No host {host_id!r}.")
        now = time.time_ns()

        def load() -> tuple[Any, ...]:
            inv = self.store.inventory(host_id)
            events = self.store.events(host_id, 0, 50)
            logins = self.fleet.logins(host_id, 20)
            past = self.alerts.history(now - 30 * 86400 * NS, now + 1, 50, host_id) if self.alerts else []
            return inv, events, logins, past

        inv, events, logins, past = await asyncio.to_thread(load)
        active = [a for a in await self._active() if a["labels"].get("host") == host_id]
        s: Session = request[SESSION]
        body = views.host_page(host, inv, active, past, logins, events, now, is_admin=s.is_admin, csrf=s.csrf)
        return self._page(request, host_id, body, "host", ("chart.js", "host.js"))

    async def api_series(self, request: web.Request) -> web.Response:
        host_id = request.match_info["host_id"]
        chart = request.query.get("metric", "")
        rng = request.query.get("range", "1h")
        if chart not in CHART_METRICS or rng not in views.RANGES:
            return web.json_response({"error": f"metric must be one of {', '.join(CHART_METRICS)} and range "
                                               f"one of {', '.join(views.RANGES)}"}, status=400)
        until = time.time_ns()
        since = until - views.RANGES[rng] * NS
        metrics, unit, ymax = CHART_METRICS[chart]

        def load() -> list[dict[str, Any]]:
            out = []
            for name, by in metrics:
                for s in self.store.query_metrics(host_id, name, since, until):
                    label = by[1:] if by.startswith("=") else s.labels.get(by, name)
                    out.append({"label": label, "points": downsample(s.points, since, until)})
            return sorted(out, key=lambda x: x["label"]) if chart == "disk" else out

        series = await asyncio.to_thread(load)
        return web.json_response({"metric": chart, "unit": unit, "ymax": ymax, "from": since // 10**6,
                                  "to": until // 10**6, "series": series})

    async def alerts_page(self, request: web.Request) -> web.Response:
        s: Session = request[SESSION]
        now = time.time_ns()
        active, silences, past = await self._alert_lists(now, history=True)
        body = views.alerts_page(active, silences, past, s.is_admin, s.csrf, now,
                                 request.query.get("msg", ""))
        return self._page(request, "Alerts", body, "alerts", ("alerts.js",))

    async def alerts_live(self, request: web.Request) -> web.Response:
        s: Session = request[SESSION]
        now = time.time_ns()
        active, silences, _ = await self._alert_lists(now, history=False)
        return web.Response(text=views.alerts_live(active, silences, s.is_admin, s.csrf, now),
                            content_type="text/html")

    async def _alert_lists(self, now: int, history: bool) -> tuple[list[Any], list[Any], list[Any]]:
        if self.alerts is None:
            return [], [], []
        mgr = self.alerts

        def load() -> tuple[list[Any], list[Any], list[Any]]:
            past = mgr.history(now - 7 * 86400 * NS, now + 1, 200) if history else []
            return mgr.active(), mgr.silences(now_ns=now), past

        return await asyncio.to_thread(load)

    async def compliance(self, request: web.Request) -> web.Response:
        facts = await asyncio.to_thread(self.fleet.patch_facts)
        body = views.compliance_page(facts, await self._active(), request.query.get("group"), time.time_ns())
        return self._page(request, "Compliance", body, "compliance", ())

    # --- actions (admins) ---------------------------------------------------------------------
    async def acknowledge(self, request: web.Request) -> web.Response:
        s = self._admin(request)
        mgr = self._manager()
        try:
            alert_id = int(request.match_info["alert_id"])
        except ValueError:
            return self._error(request, 400, "The alert id must be a number.")
        form = await request.post()
        try:
            await asyncio.to_thread(mgr.acknowledge, alert_id, s.user, str(form.get("comment", "")),
                                    time.time_ns())
        except KeyError:
            return self._error(request, 404, f"No alert {alert_id}.")
        except ValueError as exc:
            return self._error(request, 400, str(exc))
        log.info("alert %d acknowledged by %s (dashboard)", alert_id, s.user)
        return redirect(self._back(form, "acked"))

    async def silence(self, request: web.Request) -> web.Response:
        s = self._admin(request)
        mgr = self._manager()
        form = await request.post()
        now = time.time_ns()
        try:
            matchers = parse_matchers(str(form.get("matchers", "")))
            seconds = parse_ttl(str(form.get("duration", "2h")))
            comment = str(form.get("comment", "")).strip()
            if not comment:
                raise ValueError("a silence needs a comment: say why, so the others know")
            sid = await asyncio.to_thread(mgr.add_silence, matchers, now, now + seconds * NS, s.user, comment,
                                          now)
        except ValueError as exc:
            return self._error(request, 400, str(exc))
        log.info("silence %d created by %s (dashboard): %s", sid, s.user, matchers)
        return redirect(self._back(form, "silenced"))

    async def expire(self, request: web.Request) -> web.Response:
        s = self._admin(request)
        mgr = self._manager()
        try:
            sid = int(request.match_info["silence_id"])
            await asyncio.to_thread(mgr.expire_silence, sid, s.user, time.time_ns())
        except KeyError:
            return self._error(request, 404, "No such silence.")
        except ValueError as exc:
            return self._error(request, 400, str(exc))
        return redirect("/alerts?msg=expired")

    @staticmethod
    def _back(form: Any, msg: str) -> str:
        back = local_path(str(form.get("back", "")), "/alerts")
        return f"/alerts?msg={msg}" if back == "/alerts" else back

    # --- live updates -------------------------------------------------------------------------
    def _tiles(self, facts: list[HostFacts], active: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        by_host = views.alerts_by_host(active)
        return {h.host_id: views.tile_state(h, *views.host_severity(by_host.get(h.host_id, ())))
                for h in facts if not h.revoked}

    async def stream(self, request: web.Request) -> web.StreamResponse:
        """Server-Sent Events: `alert` (each alert feed entry), `tiles` (changed host tiles),
        `hosts` (the host list, when it changes) and `seen` (last-seen times)."""
        token: str = request[TOKEN]
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "X-Accel-Buffering": "no"})
        await resp.prepare(request)
        task = asyncio.current_task()
        assert task is not None
        self._streams.add(task)
        loop = asyncio.get_running_loop()

        async def send(event: str, data: Any) -> None:
            await resp.write(f"event: {event}\ndata: {views.to_json(data)}\n\n".encode())

        position = self.feed.position if self.feed else 0
        sent: dict[str, tuple[Any, ...]] = {}
        hosts: list[str] | None = None
        next_tiles = next_seen = loop.time()
        try:
            await resp.write(b"retry: 3000\n\n")  # reconnect quickly after a collector restart
            await send("hello", {"position": position})
            while True:
                woke = False
                timeout = max(0.0, min(next_tiles, next_seen) - loop.time())
                if self.feed is not None:
                    woke = await self.feed.wait_beyond(position, timeout)
                else:
                    await asyncio.sleep(timeout)
                if woke and self.feed is not None:
                    entries = (await asyncio.to_thread(self.alerts.feed_since, position, 500)
                               if self.alerts else [])
                    for e in entries:
                        await send("alert", {"position": e.position, "kind": e.kind, "what": e.what,
                                             "alert_id": e.alert_id, "payload": e.payload})
                    # Entries may have been pruned by retention: never wait on them again.
                    position = entries[-1].position if entries else max(position, self.feed.position)
                now = loop.time()
                if woke or now >= next_tiles:
                    if now >= next_tiles:
                        next_tiles = now + self.refresh_s
                        # The session may have ended (sign-out elsewhere, expiry, user removed);
                        # checking also keeps an open dashboard's session from idling out.
                        if await asyncio.to_thread(self.users.session, token, self.idle_s) is None:
                            await send("signed-out", {})
                            break
                    tiles = self._tiles(await self._facts(self.refresh_s), await self._active())
                    ids = list(tiles)
                    if ids != hosts:
                        hosts = ids
                        await send("hosts", ids)
                    changed = []
                    for hid, st in tiles.items():
                        key = tuple(v for k, v in st.items() if k != "seen")
                        if sent.get(hid) != key:
                            sent[hid] = key
                            changed.append(st)
                    if changed:
                        await send("tiles", {"now": time.time_ns() // NS, "tiles": changed})
                if now >= next_seen:
                    next_seen = now + SEEN_EVERY_S
                    facts = await self._facts(self.refresh_s)
                    await send("seen", {"now": time.time_ns() // NS,
                                        "seen": {h.host_id: h.last_seen_ns // NS for h in facts}})
        except ConnectionError:
            return resp  # the browser went away
        finally:
            self._streams.discard(task)  # also when cancelled: the collector stops
        with contextlib.suppress(ConnectionError):
            await resp.write_eof()
        return resp
