"""Enrollment token strings, secret hashing, and the TTL/label parsers used by `token create`."""

from __future__ import annotations

import hashlib
import re

import pytest

from warden.collector.tokens import (
    NewToken,
    hash_secret,
    new_token,
    parse_labels,
    parse_ttl,
    split_enroll_token,
    split_full_token,
    verify_secret,
)

PIN = "sha256:" + "0123456789abcdef" * 2


def test_new_token_format() -> None:
    tok = new_token(PIN)
    assert isinstance(tok, NewToken)
    assert re.fullmatch(r"[0-9a-f]{12}\.[A-Za-z0-9_-]{32}\.[0-9a-f]{32}", tok.token)
    token_id, secret, pin = tok.token.split(".")
    assert token_id == tok.token_id
    assert pin == PIN.removeprefix("sha256:")
    assert tok.secret_hash == hashlib.sha256(secret.encode()).digest()


def test_new_token_accepts_bare_pin_and_is_random() -> None:
    toks = [new_token(PIN.removeprefix("sha256:")) for _ in range(50)]
    assert len({t.token_id for t in toks}) == 50
    assert len({t.token.split(".")[1] for t in toks}) == 50
    assert all(t.token.endswith("." + PIN.removeprefix("sha256:")) for t in toks)


@pytest.mark.parametrize(
    "pin", ["", "sha256:", "sha256:abc", "sha256:" + "G" * 32, "md5:" + "a" * 32, "A" * 32]
)
def test_new_token_rejects_bad_pin(pin: str) -> None:
    with pytest.raises(ValueError, match="pin"):
        new_token(pin)


def test_hash_and_verify_secret() -> None:
    h = hash_secret("s3cret")
    assert h == hashlib.sha256(b"s3cret").digest() and len(h) == 32
    assert verify_secret("s3cret", h)
    assert not verify_secret("s3cres", h)
    assert not verify_secret("s3cret", b"")


def test_split_roundtrip() -> None:
    tok = new_token(PIN)
    wire = tok.token.rsplit(".", 1)[0]  # what the agent sends
    token_id, secret = split_enroll_token(wire)
    assert token_id == tok.token_id
    assert verify_secret(secret, tok.secret_hash)
    assert split_full_token(tok.token) == (token_id, secret, PIN)


SECRET = "Zm9vYmFyYmF6cXV4X3NlY3JldF8xMjM0"


@pytest.mark.parametrize(
    ("s", "message"),
    [
        ("", "got 1 parts"),
        ("0123456789ab", "got 1 parts"),
        (f"0123456789ab.{SECRET}.{'a' * 32}", "pin part must not be sent"),
        (f"0123456789AB.{SECRET}", "id must be 12 lowercase hex"),
        (f"0123456789a.{SECRET}", "id must be 12 lowercase hex"),
        (f"0123456789abc.{SECRET}", "id must be 12 lowercase hex"),
        ("0123456789ab.", "empty secret"),
        ("0123456789ab." + "a" * 129, "longer than 128"),
        (f"0123456789ab.{SECRET}/+", "outside"),
        (f"0123456789ab.{SECRET}\n", "outside"),
    ],
)
def test_split_enroll_token_errors(s: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)) as info:
        split_enroll_token(s)
    assert SECRET not in str(info.value)  # secrets never end up in error messages / logs


def test_split_enroll_token_limits() -> None:
    assert split_enroll_token("0123456789ab." + "a" * 128)[1] == "a" * 128
    assert split_enroll_token("0123456789ab.x") == ("0123456789ab", "x")


@pytest.mark.parametrize("s", ["", "abc", f"0123456789ab.{SECRET}", f"0123456789ab.{SECRET}.{'a' * 31}"])
def test_split_full_token_errors(s: str) -> None:
    with pytest.raises(ValueError, match="malformed enrollment token"):
        split_full_token(s)


@pytest.mark.parametrize(
    ("s", "seconds"),
    [
        ("90s", 90),
        ("15m", 900),
        ("24h", 86400),
        ("7d", 7 * 86400),
        ("1w", 7 * 86400),
        ("3600", 3600),
        (" 5m ", 300),
        ("2H", 7200),
        ("3650d", 3650 * 86400),
    ],
)
def test_parse_ttl(s: str, seconds: int) -> None:
    assert parse_ttl(s) == seconds


@pytest.mark.parametrize(
    ("s", "message"),
    [
        ("", "invalid duration"),
        ("0", "greater than zero"),
        ("0s", "greater than zero"),
        ("-5", "invalid duration"),
        ("1.5h", "invalid duration"),
        ("5x", "invalid duration"),
        ("h", "invalid duration"),
        ("5 m", "invalid duration"),
        ("1h30m", "invalid duration"),
        ("\u0661\u0662", "invalid duration"),  # Arabic-Indic digits: int() would take them
        ("3651d", "at most 3650 days"),
        ("9" * 40, "at most"),
    ],
)
def test_parse_ttl_errors(s: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_ttl(s)


@pytest.mark.parametrize(
    ("s", "labels"),
    [
        ("", {}),
        ("   ", {}),
        ("room=A", {"room": "A"}),
        ("room=A,rack=3", {"room": "A", "rack": "3"}),
        (" room = A , rack=3 ", {"room": "A", "rack": "3"}),
        ("_k9=x=y", {"_k9": "x=y"}),
        ("site=Zürich", {"site": "Zürich"}),
    ],
)
def test_parse_labels(s: str, labels: dict[str, str]) -> None:
    assert parse_labels(s) == labels


@pytest.mark.parametrize(
    ("s", "message"),
    [
        ("room", "expected key=value"),
        ("room=", "empty value"),
        ("=A", "invalid label key"),
        ("9room=A", "invalid label key"),
        ("ro-om=A", "invalid label key"),
        ("room=A,", "empty item"),
        (",room=A", "empty item"),
        ("room=A,,rack=3", "empty item"),
        ("room=A,room=B", "duplicate key 'room'"),
        ("room=A\nB", "control characters"),
    ],
)
def test_parse_labels_errors(s: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_labels(s)
