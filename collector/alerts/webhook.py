"""Webhook notifier: POSTs Alertmanager's webhook JSON (version 4) to a URL.

Signature. With a secret configured, every request carries

    X-Warden-Timestamp: <unix seconds>
    X-Warden-Signature: sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>

A receiver recomputes the HMAC over the raw body bytes and refuses stale timestamps (a
captured request cannot be replayed later), e.g.:

    from warden.collector.alerts.webhook import verify_signature
    ok = verify_signature(secret, request.headers["X-Warden-Timestamp"], raw_body,
                          request.headers["X-Warden-Signature"])

Any answer but 2xx is a failure (the dispatcher retries); redirects are not followed, so a
signed body is never re-sent somewhere else. Errors name the URL's scheme and host only:
webhook URLs often carry a token in their path.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from warden.collector.alerts.notify import Notification

USER_AGENT = "warden-collector"
TIMESTAMP_HEADER = "X-Warden-Timestamp"
SIGNATURE_HEADER = "X-Warden-Signature"


class WebhookError(Exception):
    pass


def sign(secret: str | bytes, timestamp: str, body: bytes) -> str:
    """The X-Warden-Signature value for `body` sent at `timestamp` (unix seconds, as text)."""
    key = secret.encode() if isinstance(secret, str) else secret
    return "sha256=" + hmac.new(key, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def verify_signature(secret: str | bytes, timestamp: str, body: bytes, header: str,
                     now: float | None = None, tolerance: float = 300) -> bool:
    """True if `header` signs `body` at `timestamp` with `secret`, and `timestamp` is within
    `tolerance` seconds of `now` (default: the current time)."""
    try:
        ts = int(timestamp)
    except (TypeError, ValueError):
        return False
    if abs((time.time() if now is None else now) - ts) > tolerance:
        return False
    if not isinstance(header, str) or not header.startswith("sha256="):
        return False
    return hmac.compare_digest(sign(secret, str(ts), body), header.strip())


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any,
                         newurl: str) -> None:
        return None  # urllib then raises HTTPError for the 3xx


def redact(url: str) -> str:
    p = urllib.parse.urlsplit(url)
    return f"{p.scheme}://{p.hostname or ''}{f':{p.port}' if p.port else ''}"


class WebhookNotifier:
    """POST each notification as JSON; see the module docstring."""

    def __init__(self, name: str, url: str, secret: str = "", timeout: float = 10.0,
                 headers: dict[str, str] | None = None) -> None:
        scheme = urllib.parse.urlsplit(url).scheme
        if scheme not in ("http", "https"):
            raise ValueError(f"webhook {name}: url must be http:// or https://, not {redact(url)!r}")
        self.name = name
        self.url = url
        self.secret = secret
        self.timeout = timeout
        self.headers = dict(headers or {})
        self._opener = urllib.request.build_opener(_NoRedirect())

    def body(self, notification: Notification) -> bytes:
        return json.dumps(notification.webhook_payload(), separators=(",", ":")).encode()

    def send(self, notification: Notification) -> None:
        body = self.body(notification)
        headers = {**self.headers, "Content-Type": "application/json", "User-Agent": USER_AGENT}
        if self.secret:
            ts = str(int(time.time()))
            headers[TIMESTAMP_HEADER] = ts
            headers[SIGNATURE_HEADER] = sign(self.secret, ts, body)
        req = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        where = redact(self.url)
        try:
            with self._opener.open(req, timeout=self.timeout) as resp:
                status = resp.status
                resp.read(65536)  # let the server finish; the content is not used
        except urllib.error.HTTPError as exc:
            detail = exc.read(200).decode("utf-8", "replace").strip()
            exc.close()
            raise WebhookError(f"{where} answered HTTP {exc.code}{': ' + detail if detail else ''}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            raise WebhookError(f"{where}: {reason}") from None
        if not 200 <= status < 300:
            raise WebhookError(f"{where} answered HTTP {status}")
