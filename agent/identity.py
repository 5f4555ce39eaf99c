"""The agent's enrolled identity on disk: key, certificate, CA, and where the collector is.

Reading it needs no cryptography import (the running agent stays small); only
enrollment and renewal (enroll.py) load cryptography.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

# Key and certificate share one file so a renewal replaces both in one atomic rename.
CREDENTIALS_FILE, CA_FILE, IDENTITY_FILE = "agent.pem", "ca.crt", "identity.json"
_CERT_MARK = b"-----BEGIN CERTIFICATE-----"


class NotEnrolled(Exception):
    pass


@dataclass(frozen=True)
class Identity:
    host_id: str
    collector_host: str
    report_port: int
    labels: dict[str, str]
    cert_not_before: int  # unix seconds
    cert_not_after: int

    @property
    def report_target(self) -> str:
        host = f"[{self.collector_host}]" if ":" in self.collector_host else self.collector_host
        return f"{host}:{self.report_port}"

    def renewal_due(self, fraction: float, now: float | None = None) -> bool:
        """True once less than `fraction` of the certificate's lifetime remains."""
        now = time.time() if now is None else now
        lifetime = self.cert_not_after - self.cert_not_before
        return now >= self.cert_not_after - fraction * lifetime


def write_private(path: Path, data: bytes) -> None:
    """Write atomically with mode 0600 from the start (never chmod after writing a key)."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def save(state_dir: Path, identity: Identity, key_pem: bytes, cert_pem: bytes, ca_pem: bytes) -> None:
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_private(state_dir / CA_FILE, ca_pem)
    write_private(state_dir / CREDENTIALS_FILE, key_pem + cert_pem)
    write_private(state_dir / IDENTITY_FILE, json.dumps(asdict(identity), indent=2).encode())


def load(state_dir: Path) -> Identity:
    path = state_dir / IDENTITY_FILE
    try:
        data = json.loads(path.read_text())
        return Identity(**data)
    except FileNotFoundError as exc:
        raise NotEnrolled(f"not enrolled: {path} is missing; run "
                          "`warden-agent enroll --collector HOST:PORT --token TOKEN`") from exc
    except (ValueError, TypeError) as exc:
        raise NotEnrolled(f"{path} is unreadable ({exc}); enroll again with a new token") from exc


def credentials(state_dir: Path) -> tuple[bytes, bytes, bytes]:
    """(ca, key, cert) PEM for the report channel."""
    both = (state_dir / CREDENTIALS_FILE).read_bytes()
    at = both.find(_CERT_MARK)
    if at <= 0:
        raise NotEnrolled(f"{state_dir / CREDENTIALS_FILE} holds no key and certificate; enroll again")
    return (state_dir / CA_FILE).read_bytes(), both[:at], both[at:]
