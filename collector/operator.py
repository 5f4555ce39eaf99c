"""Operator certificates: how people and tools on the collector's side reach the alert feed.

`warden-collector operator cert NAME --out DIR` issues a key and client certificate with the
common name "operator:NAME" (registered in the store, revocable with `operator revoke`).
The `alerts` commands of the CLI use one named "cli", created on first use under the data
directory (the CLI runs where the CA is, as `token create` does).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import grpc

from warden.collector.config import CollectorConfig
from warden.collector.pki import CollectorPKI
from warden.collector.store.base import Store

OPERATOR_CERT_SECONDS = 397 * 86400


@dataclass(frozen=True, slots=True)
class OperatorFiles:
    key: Path
    cert: Path
    ca: Path


def issue(pki: CollectorPKI, store: Store, name: str, out_dir: Path,
          lifetime_seconds: int = OPERATOR_CERT_SECONDS) -> OperatorFiles:
    """Write NAME.key (0600), NAME.crt and ca.crt into out_dir and register the certificate."""
    key_pem, issued = pki.issue_operator_cert(name, lifetime_seconds)
    out_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    files = OperatorFiles(out_dir / f"{name}.key", out_dir / f"{name}.crt", out_dir / "ca.crt")
    fd = os.open(files.key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key_pem)
    files.cert.write_bytes(issued.pem)
    files.ca.write_bytes(pki.ca_cert_pem)
    store.add_operator_cert(name, issued.serial_hex, int(issued.not_before.timestamp() * 1e9),
                            int(issued.not_after.timestamp() * 1e9), time.time_ns())
    return files


def cli_files(cfg: CollectorConfig) -> OperatorFiles:
    """The CLI's own operator certificate, issued on first use (or when it expires soon)."""
    from cryptography import x509

    from warden.collector.store.sqlite import SqliteStore

    d = cfg.data_dir / "operators"
    files = OperatorFiles(d / "cli.key", d / "cli.crt", d / "ca.crt")
    if files.cert.exists() and files.key.exists():
        cert = x509.load_pem_x509_certificate(files.cert.read_bytes())
        if cert.not_valid_after_utc.timestamp() - time.time() > 86400:
            return files
    cfg.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    pki = CollectorPKI.load_or_create(cfg.tls_dir, list(cfg.tls.sans),
                                      server_cert_days=cfg.tls.server_cert_days)
    store = SqliteStore(cfg.db_path)
    try:
        return issue(pki, store, "cli", d)
    finally:
        store.close()


def channel(cfg: CollectorConfig, files: OperatorFiles, address: str | None = None) -> grpc.Channel:
    """An mTLS channel to the collector's report port, as an operator."""
    if address is None:
        host, _, port = cfg.collector.report_listen.rpartition(":")
        if host in ("0.0.0.0", "::", "[::]", ""):
            host = "127.0.0.1"
        address = f"{host}:{port}"
    creds = grpc.ssl_channel_credentials(root_certificates=files.ca.read_bytes(),
                                         private_key=files.key.read_bytes(),
                                         certificate_chain=files.cert.read_bytes())
    # The server certificate names the collector by its configured SANs.
    return grpc.secure_channel(address, creds, options=[("grpc.ssl_target_name_override", cfg.tls.sans[0])])
