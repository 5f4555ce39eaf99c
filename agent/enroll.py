"""Enrollment and certificate renewal. The only agent module that imports cryptography,
and it is imported lazily: a running agent pays for it only while renewing.

Trust on first contact comes from the token: "<id>.<secret>.<pin>". The agent fetches the
enrollment port's self-signed certificate, checks its public key against <pin>, and only
then uses it as the trust root of the enrollment channel. The private key is generated
here and never leaves the host; the collector sees a CSR.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import socket
from pathlib import Path

import grpc

from warden.agent import identity as ident
from warden.v1 import collector_pb2, collector_pb2_grpc

_TOKEN = re.compile(r"([0-9a-f]{12})\.([A-Za-z0-9_-]{1,128})\.([0-9a-f]{32})\Z")


class EnrollError(Exception):
    pass


def parse_token(token: str) -> tuple[str, str]:
    """Split a token into (the part sent to the collector, the pin)."""
    m = _TOKEN.match(token.strip())
    if not m:
        raise EnrollError("malformed token: expected <id>.<secret>.<pin> as printed by "
                          "`warden-collector token create`")
    return f"{m.group(1)}.{m.group(2)}", m.group(3)


def parse_address(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise EnrollError(f"collector address {address!r} must be HOST:PORT")
    return host.strip("[]"), int(port)


def spki_pin(cert_pem: bytes) -> str:
    """First 128 bits of SHA-256 over the certificate's SubjectPublicKeyInfo (hex)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    cert = x509.load_pem_x509_certificate(cert_pem)
    spki = cert.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(spki).hexdigest()[:32]


def fetch_certificate(host: str, port: int, timeout: float) -> bytes:
    """The certificate the enrollment port presents, not yet trusted (checked by pin next)."""
    import ssl  # only here: the running agent keeps Python's OpenSSL bindings unloaded

    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["h2"])  # gRPC servers expect HTTP/2
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock, \
                ctx.wrap_socket(sock, server_hostname=host) as tls:
            der = tls.getpeercert(binary_form=True)
    except OSError as exc:
        raise EnrollError(f"cannot reach the collector's enrollment port {host}:{port}: {exc}") from exc
    if not der:
        raise EnrollError(f"{host}:{port} presented no certificate")
    return ssl.DER_cert_to_PEM_cert(der).encode()


def _key_and_csr(host_id: str) -> tuple[bytes, bytes]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host_id)]))
           .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return key_pem, csr.public_bytes(serialization.Encoding.PEM)


def _validity(cert_pem: bytes) -> tuple[int, int]:
    from cryptography import x509

    cert = x509.load_pem_x509_certificate(cert_pem)
    return int(cert.not_valid_before_utc.timestamp()), int(cert.not_valid_after_utc.timestamp())


def _rpc_error(exc: grpc.RpcError, what: str) -> EnrollError:
    return EnrollError(f"{what} refused: {exc.code().name}: {exc.details()}")  # type: ignore[attr-defined]


def enroll(collector: str, token: str, state_dir: Path, host_id: str | None = None,
           timeout: float = 15.0) -> ident.Identity:
    """Enroll with the collector at `collector` (its enrollment port) and save the identity."""
    wire_token, pin = parse_token(token)
    host, port = parse_address(collector)
    host_id = host_id or socket.gethostname()
    presented = fetch_certificate(host, port, timeout)
    if spki_pin(presented) != pin:
        raise EnrollError(f"the certificate at {host}:{port} does not match the token's pin: "
                          "wrong collector address, or someone is in the middle")
    key_pem, csr_pem = _key_and_csr(host_id)
    creds = grpc.ssl_channel_credentials(root_certificates=presented)
    with grpc.secure_channel(f"{host if ':' not in host else f'[{host}]'}:{port}", creds) as channel:
        try:
            resp = collector_pb2_grpc.EnrollmentStub(channel).Enroll(
                collector_pb2.EnrollRequest(token=wire_token, csr_pem=csr_pem,
                                            hostname=socket.gethostname()),
                timeout=timeout)
        except grpc.RpcError as exc:
            raise _rpc_error(exc, "enrollment") from exc
    not_before, not_after = _validity(resp.certificate_pem)
    identity = ident.Identity(host_id=resp.host_id, collector_host=host, report_port=resp.report_port,
                              labels=dict(resp.labels), cert_not_before=not_before,
                              cert_not_after=not_after)
    ident.save(state_dir, identity, key_pem, resp.certificate_pem, resp.ca_certificate_pem)
    return identity


def renew(state_dir: Path, current: ident.Identity, timeout: float = 15.0) -> ident.Identity:
    """Renew the client certificate over mTLS with the current one (blocking: run it in a
    worker thread). A new key is generated; key and certificate are replaced together."""
    key_pem, csr_pem = _key_and_csr(current.host_id)
    ca_pem, old_key, old_cert = ident.credentials(state_dir)
    creds = grpc.ssl_channel_credentials(root_certificates=ca_pem, private_key=old_key,
                                         certificate_chain=old_cert)
    with grpc.secure_channel(current.report_target, creds) as channel:
        try:
            resp = collector_pb2_grpc.CollectorStub(channel).Renew(
                collector_pb2.RenewRequest(csr_pem=csr_pem), timeout=timeout)
        except grpc.RpcError as exc:
            raise _rpc_error(exc, "certificate renewal") from exc
    not_before, not_after = _validity(resp.certificate_pem)
    renewed = dataclasses.replace(current, cert_not_before=not_before, cert_not_after=not_after)
    ident.save(state_dir, renewed, key_pem, resp.certificate_pem, ca_pem)
    return renewed
