"""Dashboard users and sessions, in their own SQLite file (`data_dir/web.db`, mode 0600).

Passwords: scrypt (hashlib) with a random 16-byte salt per user; the cost parameters are
stored with each hash so they can be raised later without invalidating old ones. Checks
use `hmac.compare_digest`, and an unknown user name costs the same scrypt run as a known
one, so timing does not tell which names exist.

Sessions: the browser holds a random 256-bit id; only its SHA-256 is stored, so a copy of
web.db does not let anyone sign in. A session ends at an absolute expiry, after an idle
period, on sign-out, and when its user is removed or changes password. Each session has
its own CSRF token, required on every POST.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROLES = ("viewer", "admin")
MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024  # scrypt hashes anything, but a megabyte "password" is an attack
# scrypt cost: N=2^15, r=8 (32 MiB, ~0.1 s here). Logins are rare and rate-limited.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1
SCRYPT_MAXMEM = 256 * 1024 * 1024
SALT_BYTES = 16
DIGEST_BYTES = 32
# last_seen is written at most this often per session (every request would be a write).
TOUCH_EVERY_NS = 30 * 10**9

_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    name       TEXT PRIMARY KEY,
    role       TEXT NOT NULL CHECK (role IN ('viewer', 'admin')),
    salt       BLOB NOT NULL,
    hash       BLOB NOT NULL,
    n          INTEGER NOT NULL,
    r          INTEGER NOT NULL,
    p          INTEGER NOT NULL,
    created_ns INTEGER NOT NULL,
    updated_ns INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    id_hash      BLOB PRIMARY KEY,
    user         TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    csrf         TEXT NOT NULL,
    address      TEXT NOT NULL DEFAULT '',
    created_ns   INTEGER NOT NULL,
    expires_ns   INTEGER NOT NULL,
    last_seen_ns INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_user ON sessions(user);
"""


def valid_name(name: str) -> bool:
    return isinstance(name, str) and _NAME_RE.fullmatch(name) is not None


def check_password_policy(password: str) -> None:
    """ValueError when the password is too short (or absurdly long)."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"password must be at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise ValueError(f"password must be at most {MAX_PASSWORD_LENGTH} characters")


@dataclass(frozen=True, slots=True)
class PasswordHash:
    salt: bytes
    digest: bytes
    n: int = SCRYPT_N
    r: int = SCRYPT_R
    p: int = SCRYPT_P


def hash_password(password: str, salt: bytes | None = None, n: int = SCRYPT_N, r: int = SCRYPT_R,
                  p: int = SCRYPT_P) -> PasswordHash:
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=SCRYPT_MAXMEM,
                            dklen=DIGEST_BYTES)
    return PasswordHash(salt, digest, n, r, p)


def verify_password(password: str, stored: PasswordHash) -> bool:
    if len(password) > MAX_PASSWORD_LENGTH:
        return False
    candidate = hash_password(password, stored.salt, stored.n, stored.r, stored.p).digest
    return hmac.compare_digest(candidate, stored.digest)


# Verified against when the user does not exist, so an unknown name costs a full scrypt run.
_DUMMY = PasswordHash(b"\0" * SALT_BYTES, b"\0" * DIGEST_BYTES)


@dataclass(frozen=True, slots=True)
class User:
    name: str
    role: str
    created_ns: int
    updated_ns: int

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


@dataclass(frozen=True, slots=True)
class Session:
    user: str
    role: str
    csrf: str
    created_ns: int
    expires_ns: int
    last_seen_ns: int

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def csrf_ok(self, token: str | None) -> bool:
        if not token:
            return False
        return hmac.compare_digest(token.encode("utf-8", "replace"), self.csrf.encode())


def _id_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode("ascii", "replace")).digest()


class UserStore:
    """Users and sessions. Thread-safe (one connection behind a lock); the CLI may change
    users from another process while the collector runs."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        if not self.path.exists():
            # Password hashes live here: create it private before SQLite does (its -wal and
            # -shm files take the database file's permissions).
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=10)
        self._conn.execute("PRAGMA busy_timeout=10000")
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA foreign_keys=ON")
        with self._lock:
            self._conn.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def _exec(self, sql: str, args: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        """Run one statement and fetch its rows, all under the lock (one shared connection)."""
        with self._lock:
            return self._conn.execute(sql, args).fetchall()

    def _one(self, sql: str, args: tuple[object, ...] = ()) -> tuple[Any, ...] | None:
        rows = self._exec(sql, args)
        return rows[0] if rows else None

    # --- users ----------------------------------------------------------------------------
    def add_user(self, name: str, role: str, password: str, now_ns: int | None = None) -> User:
        if not valid_name(name):
            raise ValueError(f"invalid user name {name!r}: 1-64 of letters, digits and . _ @ - "
                             "(starting with a letter or digit)")
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}")
        check_password_policy(password)
        now = time.time_ns() if now_ns is None else now_ns
        h = hash_password(password)
        try:
            self._exec("INSERT INTO users (name, role, salt, hash, n, r, p, created_ns, updated_ns) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (name, role, h.salt, h.digest, h.n, h.r, h.p, now, now))
        except sqlite3.IntegrityError:
            raise ValueError(f"user {name!r} exists already") from None
        return User(name, role, now, now)

    def set_password(self, name: str, password: str, now_ns: int | None = None) -> None:
        """Change a password; the user's sessions end (a stolen session dies with the old password)."""
        check_password_policy(password)
        h = hash_password(password)
        now = time.time_ns() if now_ns is None else now_ns
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                n = self._conn.execute("UPDATE users SET salt = ?, hash = ?, n = ?, r = ?, p = ?, "
                                       "updated_ns = ? WHERE name = ?",
                                       (h.salt, h.digest, h.n, h.r, h.p, now, name)).rowcount
                self._conn.execute("DELETE FROM sessions WHERE user = ?", (name,))
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        if not n:
            raise KeyError(name)

    def remove_user(self, name: str) -> None:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.execute("DELETE FROM sessions WHERE user = ?", (name,))
                n = self._conn.execute("DELETE FROM users WHERE name = ?", (name,)).rowcount
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        if not n:
            raise KeyError(name)

    def users(self) -> list[User]:
        rows = self._exec("SELECT name, role, created_ns, updated_ns FROM users ORDER BY name")
        return [User(*r) for r in rows]

    def get(self, name: str) -> User | None:
        row = self._one("SELECT name, role, created_ns, updated_ns FROM users WHERE name = ?", (name,))
        return User(*row) if row else None

    def authenticate(self, name: str, password: str) -> User | None:
        """The user if the password is right, else None (same cost either way). Slow: call
        it off the event loop."""
        row = self._one("SELECT name, role, created_ns, updated_ns, salt, hash, n, r, p FROM users "
                        "WHERE name = ?", (name,)) if valid_name(name) else None
        stored = PasswordHash(row[4], row[5], row[6], row[7], row[8]) if row else _DUMMY
        ok = verify_password(password, stored)
        return User(*row[:4]) if ok and row else None

    # --- sessions -------------------------------------------------------------------------
    def create_session(self, user: User, lifetime_s: int, address: str = "",
                       now_ns: int | None = None) -> tuple[str, Session]:
        """A new session; returns (the cookie value, the session). Expired rows are pruned."""
        now = time.time_ns() if now_ns is None else now_ns
        token = secrets.token_urlsafe(32)  # 256 bits
        s = Session(user.name, user.role, secrets.token_urlsafe(32), now, now + lifetime_s * 10**9, now)
        with self._lock:
            self._conn.execute("DELETE FROM sessions WHERE expires_ns <= ?", (now,))
            self._conn.execute("INSERT INTO sessions (id_hash, user, csrf, address, created_ns, expires_ns, "
                               "last_seen_ns) VALUES (?, ?, ?, ?, ?, ?, ?)",
                               (_id_hash(token), s.user, s.csrf, address, now, s.expires_ns, now))
        return token, s

    def session(self, token: str, idle_s: int, now_ns: int | None = None) -> Session | None:
        """The live session for a cookie value, or None (unknown, expired, idle too long, or
        its user is gone). Refreshes the idle clock."""
        if not token or len(token) > 128:
            return None
        now = time.time_ns() if now_ns is None else now_ns
        key = _id_hash(token)
        row = self._one("SELECT s.user, u.role, s.csrf, s.created_ns, s.expires_ns, s.last_seen_ns "
                        "FROM sessions s JOIN users u ON u.name = s.user WHERE s.id_hash = ?", (key,))
        if row is None:
            return None
        s = Session(*row)
        if now >= s.expires_ns or now - s.last_seen_ns >= idle_s * 10**9:
            self._exec("DELETE FROM sessions WHERE id_hash = ?", (key,))
            return None
        if now - s.last_seen_ns >= TOUCH_EVERY_NS:
            self._exec("UPDATE sessions SET last_seen_ns = ? WHERE id_hash = ?", (now, key))
        return s

    def end_session(self, token: str) -> None:
        self._exec("DELETE FROM sessions WHERE id_hash = ?", (_id_hash(token),))

    def session_count(self, user: str | None = None) -> int:
        if user is None:
            return int(self._exec("SELECT count(*) FROM sessions")[0][0])
        return int(self._exec("SELECT count(*) FROM sessions WHERE user = ?", (user,))[0][0])


class LoginLimiter:
    """Failed sign-ins per (user name, address): `max_failures` in a row lock that pair out
    for `lockout_s`. In memory: a restart forgets, which only helps someone who can restart
    the collector anyway. Bounded: the oldest entries go first past `max_entries`."""

    def __init__(self, max_failures: int = 5, lockout_s: float = 60.0, max_entries: int = 10_000) -> None:
        self.max_failures, self.lockout_s, self.max_entries = max_failures, lockout_s, max_entries
        self._lock = threading.Lock()
        self._state: dict[tuple[str, str], tuple[int, float]] = {}  # key -> (failures, locked_until)

    def locked_for(self, name: str, address: str, now: float | None = None) -> float:
        """Seconds the pair is still locked out (0: may try)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            failures, until = self._state.get((name.lower(), address), (0, 0.0))
            if until and now >= until:
                del self._state[(name.lower(), address)]  # the lockout served: start afresh
                return 0.0
            return max(0.0, until - now)

    def failure(self, name: str, address: str, now: float | None = None) -> bool:
        """Count a failure; True if the pair is now locked out."""
        now = time.monotonic() if now is None else now
        key = (name.lower(), address)
        with self._lock:
            failures, _ = self._state.pop(key, (0, 0.0))  # re-insert: dict order = recency
            failures += 1
            until = now + self.lockout_s if failures >= self.max_failures else 0.0
            self._state[key] = (failures, until)
            while len(self._state) > self.max_entries:
                del self._state[next(iter(self._state))]
            return bool(until)

    def success(self, name: str, address: str) -> None:
        with self._lock:
            self._state.pop((name.lower(), address), None)
