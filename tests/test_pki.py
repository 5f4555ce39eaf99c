"""Collector PKI: files, re-issue rules, CSR signing, and real TLS handshakes through gRPC."""

from __future__ import annotations

import hashlib
import ipaddress
import os
import re
import shutil
import ssl
import stat
import subprocess
from collections.abc import Callable, Iterator
from concurrent import futures
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from warden.collector.pki import (
    CollectorPKI,
    CsrRefused,
    IssuedCert,
    peer_identity,
    pin_of,
    valid_host_id,
)

SANS = ["localhost", "127.0.0.1"]
FILES = ["ca.key", "ca.crt", "server.key", "server.crt", "enroll.key", "enroll.crt"]
KEYS = ["ca.key", "server.key", "enroll.key"]

CsrKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


# ---- helpers ------------------------------------------------------------------------------


def cert_of(pem: bytes) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem)


def ext(cert: x509.Certificate, cls: type) -> x509.Extension:
    return cert.extensions.get_extension_for_class(cls)


def make_csr(
    cn: str, key: CsrKey | None = None, *, extra_subject: bool = False, san: str | None = None
) -> tuple[CsrKey, bytes]:
    key = key or ec.generate_private_key(ec.SECP256R1())
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if extra_subject:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Evil Corp"))
    b = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(attrs))
    if san:
        b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName(san)]), critical=False)
    algo = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    csr = b.sign(key, algo)
    return key, csr.public_bytes(serialization.Encoding.PEM)


def key_pem(key: CsrKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def mode_of(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


@pytest.fixture
def tls_dir(tmp_path: Path) -> Path:
    return tmp_path / "tls"


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> CollectorPKI:
    return CollectorPKI.load_or_create(tmp_path_factory.mktemp("shared") / "tls", SANS)


@pytest.fixture(scope="module")
def other(tmp_path_factory: pytest.TempPathFactory) -> CollectorPKI:
    """A second, unrelated collector (different CA)."""
    return CollectorPKI.load_or_create(tmp_path_factory.mktemp("other") / "tls", SANS)


# ---- gRPC plumbing ---------------------------------------------------------------------------

METHOD = "/warden.test.Echo/Who"


def _who(request: bytes, context: grpc.ServicerContext) -> bytes:
    # What the collector will do: read the verified client certificate from the auth context.
    pems = context.auth_context().get("x509_pem_cert")
    return peer_identity(pems[0]).common_name.encode() if pems else b"anonymous"


@contextmanager
def grpc_server(cert_pem: bytes, key_pem_: bytes, client_ca: bytes | None = None) -> Iterator[int]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers(
        [
            grpc.method_handlers_generic_handler(
                "warden.test.Echo", {"Who": grpc.unary_unary_rpc_method_handler(_who)}
            )
        ]
    )
    creds = grpc.ssl_server_credentials(
        [(key_pem_, cert_pem)], root_certificates=client_ca, require_client_auth=client_ca is not None
    )
    port = server.add_secure_port("127.0.0.1:0", creds)
    server.start()
    try:
        yield port
    finally:
        server.stop(None)


def grpc_call(
    port: int,
    root: bytes,
    *,
    client_key: bytes | None = None,
    client_cert: bytes | None = None,
    server_name: str | None = None,
) -> bytes:
    creds = grpc.ssl_channel_credentials(
        root_certificates=root, private_key=client_key, certificate_chain=client_cert
    )
    options = [("grpc.ssl_target_name_override", server_name)] if server_name else []
    with grpc.secure_channel(f"127.0.0.1:{port}", creds, options=options) as ch:
        return ch.unary_unary(METHOD)(b"", timeout=10)


# ---- files, permissions, reload -------------------------------------------------------------


def test_first_start_creates_files_with_private_modes(tls_dir: Path) -> None:
    # A permissive umask proves the keys are born 0600 rather than relying on the umask.
    old = os.umask(0)
    try:
        CollectorPKI.load_or_create(tls_dir, SANS)
    finally:
        os.umask(old)
    assert mode_of(tls_dir) == 0o700
    assert sorted(p.name for p in tls_dir.iterdir()) == sorted(FILES)  # no temp files left
    for name in KEYS:
        assert mode_of(tls_dir / name) == 0o600, name


def test_existing_loose_dir_is_tightened(tls_dir: Path) -> None:
    tls_dir.mkdir(mode=0o755)
    os.chmod(tls_dir, 0o755)
    CollectorPKI.load_or_create(tls_dir, SANS)
    assert mode_of(tls_dir) == 0o700


def test_ca_certificate(shared: CollectorPKI) -> None:
    ca = cert_of(shared.ca_cert_pem)
    assert ca.subject == ca.issuer
    cn = ca.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert re.fullmatch(r"Warden Collector CA [0-9a-f]+", cn)
    bc = ext(ca, x509.BasicConstraints)
    assert bc.critical and bc.value.ca and bc.value.path_length == 0
    ku = ext(ca, x509.KeyUsage)
    assert ku.critical and ku.value.key_cert_sign and ku.value.crl_sign and not ku.value.digital_signature
    assert ext(ca, x509.SubjectKeyIdentifier).value.digest
    assert isinstance(ca.public_key(), ec.EllipticCurvePublicKey)
    assert isinstance(ca.public_key().curve, ec.SECP256R1)
    assert isinstance(ca.signature_hash_algorithm, hashes.SHA256)
    ca.verify_directly_issued_by(ca)
    assert ca.not_valid_after_utc - ca.not_valid_before_utc > timedelta(days=3649)


def test_server_certificate(shared: CollectorPKI) -> None:
    ca, srv = cert_of(shared.ca_cert_pem), cert_of(shared.server_cert_pem)
    srv.verify_directly_issued_by(ca)
    san = ext(srv, x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert ext(srv, x509.ExtendedKeyUsage).value == x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH])
    ku = ext(srv, x509.KeyUsage).value
    assert ku.digital_signature and not ku.key_cert_sign
    assert not ext(srv, x509.BasicConstraints).value.ca
    aki = ext(srv, x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == ext(ca, x509.SubjectKeyIdentifier).value.digest
    assert isinstance(srv.public_key().curve, ec.SECP256R1)
    assert isinstance(srv.signature_hash_algorithm, hashes.SHA256)
    lifetime = srv.not_valid_after_utc - datetime.now(UTC)
    assert timedelta(days=396) < lifetime <= timedelta(days=397)
    # The key property matches the certificate.
    key = serialization.load_pem_private_key(shared.server_key_pem, None)
    assert key.public_key() == srv.public_key()


def test_enroll_certificate_is_self_signed_leaf(shared: CollectorPKI) -> None:
    enr = cert_of(shared.enroll_cert_pem)
    assert enr.subject == enr.issuer
    enr.verify_directly_issued_by(enr)
    assert not ext(enr, x509.BasicConstraints).value.ca
    assert ext(enr, x509.ExtendedKeyUsage).value == x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH])
    san = ext(enr, x509.SubjectAlternativeName).value
    assert set(map(str, san.get_values_for_type(x509.IPAddress))) == {"127.0.0.1"}
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    key = serialization.load_pem_private_key(shared.enroll_key_pem, None)
    assert key.public_key() == enr.public_key()
    assert enr.public_key() != cert_of(shared.server_cert_pem).public_key()


def test_reload_keeps_everything(tls_dir: Path) -> None:
    first = CollectorPKI.load_or_create(tls_dir, SANS)
    before = {name: (tls_dir / name).read_bytes() for name in FILES}
    second = CollectorPKI.load_or_create(tls_dir, list(reversed(SANS)))  # order does not matter
    assert {name: (tls_dir / name).read_bytes() for name in FILES} == before
    assert second.ca_cert_pem == first.ca_cert_pem
    assert second.server_cert_pem == first.server_cert_pem
    assert second.server_key_pem == first.server_key_pem
    assert second.enroll_cert_pem == first.enroll_cert_pem
    assert second.enroll_pin == first.enroll_pin


def test_san_change_reissues_server_and_enroll_certs_with_same_ca_and_pin(tls_dir: Path) -> None:
    first = CollectorPKI.load_or_create(tls_dir, SANS)
    ca_key = (tls_dir / "ca.key").read_bytes()
    second = CollectorPKI.load_or_create(tls_dir, ["collector.example.org", "10.0.0.5", "::1"])
    assert second.ca_cert_pem == first.ca_cert_pem
    assert (tls_dir / "ca.key").read_bytes() == ca_key
    assert second.server_cert_pem != first.server_cert_pem
    assert (tls_dir / "server.crt").read_bytes() == second.server_cert_pem
    srv = cert_of(second.server_cert_pem)
    srv.verify_directly_issued_by(cert_of(second.ca_cert_pem))
    san = ext(srv, x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["collector.example.org"]
    assert set(map(str, san.get_values_for_type(x509.IPAddress))) == {"10.0.0.5", "::1"}
    # enroll.crt follows the SANs but keeps its key, so tokens already handed out stay valid.
    assert second.enroll_cert_pem != first.enroll_cert_pem
    enr_san = ext(cert_of(second.enroll_cert_pem), x509.SubjectAlternativeName).value
    assert enr_san.get_values_for_type(x509.DNSName) == ["collector.example.org"]
    assert second.enroll_pin == first.enroll_pin
    assert mode_of(tls_dir / "server.key") == 0o600


def test_expiring_server_cert_is_reissued(tls_dir: Path) -> None:
    first = CollectorPKI.load_or_create(tls_dir, SANS, server_cert_days=10)
    second = CollectorPKI.load_or_create(tls_dir, SANS)
    assert second.ca_cert_pem == first.ca_cert_pem
    assert second.server_cert_pem != first.server_cert_pem
    assert cert_of(second.server_cert_pem).not_valid_after_utc - datetime.now(UTC) > timedelta(days=396)
    assert second.enroll_cert_pem != first.enroll_cert_pem
    assert second.enroll_pin == first.enroll_pin


def test_server_cert_from_another_ca_is_reissued(tls_dir: Path, other: CollectorPKI) -> None:
    first = CollectorPKI.load_or_create(tls_dir, SANS)
    # Put the other collector's server pair in place: consistent key/cert, wrong issuer.
    (tls_dir / "server.crt").write_bytes(other.server_cert_pem)
    (tls_dir / "server.key").write_bytes(other.server_key_pem)
    second = CollectorPKI.load_or_create(tls_dir, SANS)
    cert_of(second.server_cert_pem).verify_directly_issued_by(cert_of(first.ca_cert_pem))


def test_missing_enroll_cert_is_recreated_with_same_pin(tls_dir: Path) -> None:
    first = CollectorPKI.load_or_create(tls_dir, SANS)
    (tls_dir / "enroll.crt").unlink()
    second = CollectorPKI.load_or_create(tls_dir, SANS)
    assert (tls_dir / "enroll.crt").exists()
    assert second.enroll_pin == first.enroll_pin


@pytest.mark.parametrize("name", FILES)
def test_corrupt_file_is_refused_and_left_untouched(tls_dir: Path, name: str) -> None:
    CollectorPKI.load_or_create(tls_dir, SANS)
    garbage = b"-----BEGIN GARBAGE-----\nnot base64 at all\n"
    (tls_dir / name).write_bytes(garbage)
    with pytest.raises(ValueError, match=re.escape(name)):
        CollectorPKI.load_or_create(tls_dir, SANS)
    assert (tls_dir / name).read_bytes() == garbage


def test_truncated_certificate_is_refused(tls_dir: Path) -> None:
    CollectorPKI.load_or_create(tls_dir, SANS)
    data = (tls_dir / "ca.crt").read_bytes()
    (tls_dir / "ca.crt").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="ca.crt"):
        CollectorPKI.load_or_create(tls_dir, SANS)


def test_unreadable_file_is_refused(tls_dir: Path) -> None:
    CollectorPKI.load_or_create(tls_dir, SANS)
    # A directory in the file's place is unreadable even for root (chmod 000 is not).
    (tls_dir / "server.key").unlink()
    (tls_dir / "server.key").mkdir()
    with pytest.raises(ValueError, match="server.key"):
        CollectorPKI.load_or_create(tls_dir, SANS)
    assert (tls_dir / "server.key").is_dir()


@pytest.mark.parametrize("key_name", KEYS)
def test_key_not_matching_certificate_is_refused(tls_dir: Path, key_name: str) -> None:
    CollectorPKI.load_or_create(tls_dir, SANS)
    foreign = key_pem(ec.generate_private_key(ec.SECP256R1()))
    (tls_dir / key_name).write_bytes(foreign)
    with pytest.raises(ValueError, match=f"{re.escape(key_name)} does not match"):
        CollectorPKI.load_or_create(tls_dir, SANS)
    assert (tls_dir / key_name).read_bytes() == foreign


def test_half_a_ca_is_refused(tls_dir: Path) -> None:
    CollectorPKI.load_or_create(tls_dir, SANS)
    (tls_dir / "ca.crt").unlink()
    with pytest.raises(ValueError, match=r"ca\.key exists but .*ca\.crt is missing"):
        CollectorPKI.load_or_create(tls_dir, SANS)
    assert not (tls_dir / "ca.crt").exists()


def test_non_ca_certificate_as_ca_is_refused(tls_dir: Path) -> None:
    pki = CollectorPKI.load_or_create(tls_dir, SANS)
    (tls_dir / "ca.crt").write_bytes(pki.server_cert_pem)
    (tls_dir / "ca.key").write_bytes(pki.server_key_pem)
    with pytest.raises(ValueError, match="ca.crt is not a CA"):
        CollectorPKI.load_or_create(tls_dir, SANS)


@pytest.mark.parametrize("sans", [[], [""], ["bad name"], ["café.example"]])
def test_invalid_sans_are_refused(tls_dir: Path, sans: list[str]) -> None:
    with pytest.raises(ValueError):
        CollectorPKI.load_or_create(tls_dir, sans)
    assert not tls_dir.exists() or not any(tls_dir.iterdir())


# ---- pin -------------------------------------------------------------------------------------


def test_pin_format_stable_and_distinct(shared: CollectorPKI, other: CollectorPKI) -> None:
    pin = shared.enroll_pin
    assert re.fullmatch(r"sha256:[0-9a-f]{32}", pin)
    assert pin == pin_of(shared.enroll_cert_pem) == pin_of(bytes(shared.enroll_cert_pem))
    pins = {pin, other.enroll_pin, pin_of(shared.server_cert_pem), pin_of(shared.ca_cert_pem)}
    assert len(pins) == 4


def test_pin_is_spki_sha256_prefix(shared: CollectorPKI) -> None:
    # Recompute independently: the SPKI DER is the certificate's own bytes for an EC key.
    spki = (
        cert_of(shared.enroll_cert_pem)
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    assert shared.enroll_pin == "sha256:" + hashlib.sha256(spki).hexdigest()[:32]


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl CLI not installed")
def test_pin_matches_openssl(shared: CollectorPKI) -> None:
    pub = subprocess.run(
        ["openssl", "x509", "-pubkey", "-noout"],
        input=shared.enroll_cert_pem,
        capture_output=True,
        check=True,
    ).stdout
    der = subprocess.run(
        ["openssl", "pkey", "-pubin", "-outform", "DER"], input=pub, capture_output=True, check=True
    ).stdout
    assert shared.enroll_pin == "sha256:" + hashlib.sha256(der).hexdigest()[:32]


# ---- CSR signing -----------------------------------------------------------------------------


def test_issued_certificate_fields(shared: CollectorPKI) -> None:
    now = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    key, csr = make_csr("web-01.example.org", extra_subject=True, san="evil.example")
    issued = shared.sign_csr(csr, "web-01.example.org", 30 * 86400, now=now)
    assert isinstance(issued, IssuedCert)
    cert = cert_of(issued.pem)
    ca = cert_of(shared.ca_cert_pem)
    cert.verify_directly_issued_by(ca)
    # Subject is CN=host_id only; nothing else the CSR asked for is carried over.
    assert cert.subject == x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "web-01.example.org")])
    with pytest.raises(x509.ExtensionNotFound):
        ext(cert, x509.SubjectAlternativeName)
    assert cert.public_key() == key.public_key()
    assert ext(cert, x509.ExtendedKeyUsage).value == x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH])
    ku = ext(cert, x509.KeyUsage)
    assert ku.critical and ku.value.digital_signature and not ku.value.key_cert_sign
    bc = ext(cert, x509.BasicConstraints)
    assert bc.critical and not bc.value.ca
    assert ext(cert, x509.AuthorityKeyIdentifier).value.key_identifier == (
        ext(ca, x509.SubjectKeyIdentifier).value.digest
    )
    assert ext(cert, x509.SubjectKeyIdentifier).value == x509.SubjectKeyIdentifier.from_public_key(
        key.public_key()
    )
    assert isinstance(cert.signature_hash_algorithm, hashes.SHA256)
    # Validity: 5 minutes of clock-skew slack before, the requested lifetime after.
    assert cert.not_valid_before_utc == now - timedelta(minutes=5) == issued.not_before
    assert cert.not_valid_after_utc == now + timedelta(days=30) == issued.not_after
    # Serial: random, positive, at most 128 bits (RFC 5280 allows 20 octets), one hex format.
    assert 0 < cert.serial_number < 2**160
    assert issued.serial_hex == format(cert.serial_number, "x")
    assert re.fullmatch(r"[1-9a-f][0-9a-f]*", issued.serial_hex)


def test_serials_are_unique(shared: CollectorPKI) -> None:
    _, csr = make_csr("h1")
    serials = {shared.sign_csr(csr, "h1", 3600).serial_hex for _ in range(20)}
    assert len(serials) == 20


def test_lifetime_is_capped_at_ca_expiry(shared: CollectorPKI) -> None:
    _, csr = make_csr("h1")
    issued = shared.sign_csr(csr, "h1", 20 * 365 * 86400)
    assert issued.not_after == cert_of(shared.ca_cert_pem).not_valid_after_utc == shared.ca_not_after


@pytest.mark.parametrize(
    "key",
    [ec.generate_private_key(ec.SECP384R1()), rsa.generate_private_key(65537, 2048)],
    ids=["p384", "rsa2048"],
)
def test_other_accepted_key_types(shared: CollectorPKI, key: CsrKey) -> None:
    _, csr = make_csr("h1", key)
    cert = cert_of(shared.sign_csr(csr, "h1", 3600).pem)
    assert cert.public_key() == key.public_key()


def test_peer_identity(shared: CollectorPKI) -> None:
    _, csr = make_csr("db-7")
    issued = shared.sign_csr(csr, "db-7", 3600)
    peer = peer_identity(issued.pem)
    assert peer.common_name == "db-7"
    assert peer.serial_hex == issued.serial_hex
    assert peer.not_after == issued.not_after
    with pytest.raises(ValueError):
        peer_identity(b"garbage")


def _tampered_csr() -> bytes:
    """A well-formed CSR whose subject was altered after signing."""
    _, pem = make_csr("host-a")
    der = x509.load_pem_x509_csr(pem).public_bytes(serialization.Encoding.DER)
    assert der.count(b"host-a") == 1
    tampered = x509.load_der_x509_csr(der.replace(b"host-a", b"host-b"))
    return tampered.public_bytes(serialization.Encoding.PEM)


@pytest.mark.parametrize(
    ("csr", "host_id", "reason"),
    [
        (lambda: make_csr("host-a")[1], "host-b", "does not match host id"),
        (_tampered_csr, "host-b", "signature is invalid"),
        (lambda: make_csr("h1", rsa.generate_private_key(65537, 1024))[1], "h1", "at least 2048"),
        (lambda: make_csr("h1", ec.generate_private_key(ec.SECP521R1()))[1], "h1", "only P-256 and P-384"),
        (lambda: make_csr("h1", ed25519.Ed25519PrivateKey.generate())[1], "h1", "not accepted"),
        (lambda: b"garbage", "h1", "not a PEM"),
        (
            lambda: b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
            "h1",
            "cannot be parsed",
        ),
        (
            lambda: x509.load_pem_x509_csr(make_csr("h1")[1]).public_bytes(serialization.Encoding.DER),
            "h1",
            "not a PEM",
        ),
        (lambda: make_csr("h1")[1], "-h1", "invalid host id"),
    ],
    ids=[
        "wrong-cn",
        "bad-signature",
        "rsa1024",
        "p521",
        "ed25519",
        "garbage",
        "bad-base64",
        "der",
        "bad-host",
    ],
)
def test_csr_refusals(shared: CollectorPKI, csr: Callable[[], bytes], host_id: str, reason: str) -> None:
    with pytest.raises(CsrRefused, match=reason) as info:
        shared.sign_csr(csr(), host_id, 3600)
    assert info.value.reason == str(info.value)


def test_csr_with_two_common_names_is_refused(shared: CollectorPKI) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, "h1"), x509.NameAttribute(NameOID.COMMON_NAME, "h2")]
    )
    csr = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256())
    with pytest.raises(CsrRefused, match="exactly one common name"):
        shared.sign_csr(csr.public_bytes(serialization.Encoding.PEM), "h1", 3600)


def test_sign_csr_argument_checks(shared: CollectorPKI) -> None:
    _, csr = make_csr("h1")
    with pytest.raises(ValueError, match="lifetime"):
        shared.sign_csr(csr, "h1", 0)
    with pytest.raises(ValueError, match="timezone"):
        shared.sign_csr(csr, "h1", 60, now=datetime(2030, 1, 1))


@pytest.mark.parametrize(
    ("s", "ok"),
    [
        ("web01", True),
        ("web-01.example.org", True),
        ("_svc", True),
        ("A" * 253, True),
        ("1.2.3.4", True),
        ("", False),
        ("A" * 254, False),
        (".hidden", False),
        ("-rf", False),
        ("has space", False),
        ("a/b", False),
        ("host\n", False),
        ("héte", False),
    ],
)
def test_valid_host_id(s: str, ok: bool) -> None:
    assert valid_host_id(s) is ok


# ---- real TLS handshakes ---------------------------------------------------------------------


def test_enroll_cert_pinned_and_used_as_grpc_root(shared: CollectorPKI, other: CollectorPKI) -> None:
    """The agent's enrollment flow: fetch the certificate without verification, check the pin,
    then give gRPC that very PEM as root_certificates (a self-signed CA=False leaf)."""
    with grpc_server(shared.enroll_cert_pem, shared.enroll_key_pem) as port:
        fetched = ssl.get_server_certificate(("127.0.0.1", port), timeout=10).encode()
        assert pin_of(fetched) == shared.enroll_pin
        assert grpc_call(port, fetched) == b"anonymous"
        # The hostname is still verified against the SANs.
        with pytest.raises(grpc.RpcError) as info:
            grpc_call(port, fetched, server_name="evil.example")
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        # Trusting some other collector's enrollment certificate does not work.
        with pytest.raises(grpc.RpcError) as info:
            grpc_call(port, other.enroll_cert_pem)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE


def test_mutual_tls_with_issued_client_cert(shared: CollectorPKI, other: CollectorPKI) -> None:
    good_key, good_csr = make_csr("agent-1")
    good = shared.sign_csr(good_csr, "agent-1", 3600)
    bad_key, bad_csr = make_csr("agent-1")
    bad = other.sign_csr(bad_csr, "agent-1", 3600)  # right CN, wrong CA
    with grpc_server(shared.server_cert_pem, shared.server_key_pem, client_ca=shared.ca_cert_pem) as port:
        got = grpc_call(port, shared.ca_cert_pem, client_key=key_pem(good_key), client_cert=good.pem)
        assert got == b"agent-1"
        with pytest.raises(grpc.RpcError) as info:
            grpc_call(port, shared.ca_cert_pem, client_key=key_pem(bad_key), client_cert=bad.pem)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        with pytest.raises(grpc.RpcError) as info:
            grpc_call(port, shared.ca_cert_pem)  # no client certificate at all
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        # And the agent refuses a server not signed by its CA.
        with pytest.raises(grpc.RpcError) as info:
            grpc_call(port, other.ca_cert_pem, client_key=key_pem(good_key), client_cert=good.pem)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
