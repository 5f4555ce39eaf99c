"""Enrollment tokens: single use, expiring, stored hashed.

The token an operator hands to `warden-agent enroll --token T` is

    <token_id>.<secret>.<pin>

token_id  12 lowercase hex chars; the lookup key, safe to log
secret    secrets.token_urlsafe(24) (192 random bits; never logged, stored only hashed)
pin       the enrollment certificate pin without "sha256:" (32 hex chars)

The agent sends only "<token_id>.<secret>" (EnrollRequest.token) and keeps the pin to
authenticate the collector before sending anything. Storage, expiry and single use are
the token store's business; this module only makes and parses the strings.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

TOKEN_ID_RE = re.compile(r"[0-9a-f]{12}")
# token_urlsafe's alphabet; rejecting anything else keeps odd bytes out of the lookup path.
_SECRET_RE = re.compile(r"[A-Za-z0-9_-]+")
_PIN_RE = re.compile(r"[0-9a-f]{32}")
MAX_SECRET_LEN = 128
PIN_PREFIX = "sha256:"

# Upper bound only so that now + ttl cannot overflow datetime arithmetic downstream.
MAX_TTL_SECONDS = 3650 * 86400
_TTL_RE = re.compile(r"([0-9]+)([smhdw]?)")
_TTL_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}

_LABEL_KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True, slots=True)
class NewToken:
    token: str  # full "<id>.<secret>.<pin>", shown to the operator once
    token_id: str
    secret_hash: bytes


def hash_secret(secret: str) -> bytes:
    """SHA-256 of the secret.

    The secret is 192 random bits, not a human password: nobody can brute-force it, so a
    slow password hash (bcrypt, scrypt, argon2) would only cost CPU and add nothing.
    """
    return hashlib.sha256(secret.encode("utf-8")).digest()


def verify_secret(secret: str, secret_hash: bytes) -> bool:
    """Constant-time comparison of a presented secret with the stored hash."""
    return hmac.compare_digest(hash_secret(secret), secret_hash)


def new_token(pin: str) -> NewToken:
    """Make a token carrying `pin` (with or without the "sha256:" prefix)."""
    bare = pin.removeprefix(PIN_PREFIX)
    if not _PIN_RE.fullmatch(bare):
        raise ValueError(f"invalid enrollment pin {pin!r}: expected {PIN_PREFIX}<32 lowercase hex chars>")
    token_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(24)
    # token_urlsafe never yields '.', which is what keeps the three parts separable.
    assert "." not in secret
    return NewToken(token=f"{token_id}.{secret}.{bare}", token_id=token_id, secret_hash=hash_secret(secret))


def split_enroll_token(s: str) -> tuple[str, str]:
    """Parse the "<token_id>.<secret>" an agent sends; returns (token_id, secret).

    Error messages never echo the secret: they may end up in logs.
    """
    if not isinstance(s, str):
        raise ValueError("enrollment token must be a string")
    parts = s.split(".")
    if len(parts) != 2:
        hint = " (the pin part must not be sent)" if len(parts) == 3 else ""
        raise ValueError(
            f"malformed enrollment token: expected '<id>.<secret>', got {len(parts)} parts{hint}"
        )
    token_id, secret = parts
    if not TOKEN_ID_RE.fullmatch(token_id):
        raise ValueError("malformed enrollment token: id must be 12 lowercase hex characters")
    if not secret:
        raise ValueError("malformed enrollment token: empty secret")
    if len(secret) > MAX_SECRET_LEN:
        raise ValueError(f"malformed enrollment token: secret longer than {MAX_SECRET_LEN} characters")
    if not _SECRET_RE.fullmatch(secret):
        raise ValueError("malformed enrollment token: secret has characters outside [A-Za-z0-9_-]")
    return token_id, secret


def split_full_token(s: str) -> tuple[str, str, str]:
    """Parse the operator's "<id>.<secret>.<pin>"; returns (token_id, secret, "sha256:<pin>").

    The agent needs the same logic; it is kept trivial so agent/enroll.py can carry a copy.
    """
    if not isinstance(s, str):
        raise ValueError("enrollment token must be a string")
    head, sep, pin = s.strip().rpartition(".")
    if not sep or not _PIN_RE.fullmatch(pin):
        raise ValueError("malformed enrollment token: expected '<id>.<secret>.<pin>' (pin = 32 hex chars)")
    token_id, secret = split_enroll_token(head)
    return token_id, secret, PIN_PREFIX + pin


def parse_ttl(s: str) -> int:
    """Seconds from "90s", "15m", "24h", "7d", "1w" or a plain integer of seconds."""
    m = _TTL_RE.fullmatch(s.strip().lower()) if isinstance(s, str) else None
    if m is None:
        raise ValueError(
            f"invalid duration {s!r}: use an integer of seconds or a number with unit s, m, h, d or w "
            f"(e.g. 15m, 24h, 7d)"
        )
    seconds = int(m.group(1)) * _TTL_UNITS[m.group(2)]
    if seconds <= 0:
        raise ValueError(f"invalid duration {s!r}: must be greater than zero")
    if seconds > MAX_TTL_SECONDS:
        raise ValueError(f"invalid duration {s!r}: at most {MAX_TTL_SECONDS // 86400} days")
    return seconds


def parse_labels(s: str) -> dict[str, str]:
    """Parse "room=A,rack=3" into {"room": "A", "rack": "3"}; "" gives {}.

    Keys match [A-Za-z_][A-Za-z0-9_]*; values are non-empty and cannot contain ','
    (they may contain '='). Whitespace around items, keys and values is ignored.
    """
    if not isinstance(s, str):
        raise ValueError("labels must be a string")
    labels: dict[str, str] = {}
    if not s.strip():
        return labels
    for item in s.split(","):
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not item.strip():
            raise ValueError(f"invalid labels {s!r}: empty item (stray ',')")
        if not sep:
            raise ValueError(f"invalid label {item.strip()!r}: expected key=value")
        if not _LABEL_KEY_RE.fullmatch(key):
            raise ValueError(f"invalid label key {key!r}: must match [A-Za-z_][A-Za-z0-9_]*")
        if not value:
            raise ValueError(f"invalid label {key!r}: empty value")
        if not value.isprintable():
            raise ValueError(f"invalid label {key!r}: value contains control characters")
        if key in labels:
            raise ValueError(f"invalid labels {s!r}: duplicate key {key!r}")
        labels[key] = value
    return labels
