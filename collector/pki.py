"""The collector's small PKI: a private CA, the report-port server certificate, the
self-signed enrollment certificate, and the signing of agents' CSRs.

Layout of `tls_dir` (0700):

    ca.key / ca.crt          private CA; signs server.crt and every agent certificate
    server.key / server.crt  report port (mutual TLS; agents trust ca.crt)
    enroll.key / enroll.crt  enrollment port (server-only TLS; agents pin its public key)

Everything is EC P-256 with SHA-256 signatures. Keys are PKCS#8 PEM, created 0600.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import os
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

log = logging.getLogger(__name__)

# Key types the collector can sign with. It only ever generates EC P-256; the others are
# accepted so an operator-supplied CA still loads.
PrivateKey = (
    ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey
)

CA_KEY, CA_CRT = "ca.key", "ca.crt"
SERVER_KEY, SERVER_CRT = "server.key", "server.crt"
ENROLL_KEY, ENROLL_CRT = "enroll.key", "enroll.crt"

# Server and enrollment certificates are re-issued when they get this close to expiry.
RENEW_BEFORE = timedelta(days=30)
# Issued certificates start a little in the past so an agent whose clock lags does not
# reject a certificate that is "not yet valid".
CLOCK_SKEW = timedelta(minutes=5)

_HOST_ID_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,252}")


class CsrRefused(Exception):
    """A certificate signing request the collector will not sign; str() is the reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class IssuedCert:
    pem: bytes
    serial_hex: str
    not_before: datetime
    not_after: datetime


@dataclass(frozen=True, slots=True)
class PeerCert:
    common_name: str
    serial_hex: str
    not_after: datetime


def pin_of(cert_pem: bytes) -> str:
    """Pin of a certificate: "sha256:" + the first 32 hex digits of SHA-256(SPKI DER).

    Pinning the public key rather than the whole certificate lets the collector re-issue
    enroll.crt (new SANs, renewal) with the same key without invalidating tokens.
    Deliberately self-contained so the agent can carry an identical copy.
    """
    cert = x509.load_pem_x509_certificate(cert_pem)
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "sha256:" + hashlib.sha256(spki).hexdigest()[:32]


OPERATOR_PREFIX = "operator:"


def valid_host_id(s: str) -> bool:
    """1..253 chars of [A-Za-z0-9._-], not starting with '.' or '-' (hostnames, FQDNs)."""
    return isinstance(s, str) and _HOST_ID_RE.fullmatch(s) is not None


def serial_hex(serial: int) -> str:
    """The one serial format used everywhere: lowercase hex, no leading zeros."""
    return format(serial, "x")


def peer_identity(cert_pem: bytes) -> PeerCert:
    """Identity of a client certificate as gRPC hands it over (auth context `x509_pem_cert`)."""
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
    except ValueError as e:
        raise ValueError(f"peer certificate is not a valid PEM certificate: {e}") from None
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if len(cns) != 1 or not isinstance(cns[0].value, str) or not cns[0].value:
        raise ValueError("peer certificate must have exactly one non-empty common name")
    return PeerCert(
        common_name=cns[0].value,
        serial_hex=serial_hex(cert.serial_number),
        not_after=cert.not_valid_after_utc,
    )


class CollectorPKI:
    """Keys and certificates of one collector; create with `load_or_create`."""

    def __init__(
        self,
        *,
        ca_key: PrivateKey,
        ca_cert: x509.Certificate,
        server_key: PrivateKey,
        server_cert: x509.Certificate,
        enroll_key: PrivateKey,
        enroll_cert: x509.Certificate,
    ) -> None:
        self._ca_key = ca_key
        self._ca_cert = ca_cert
        self._server_key = server_key
        self._server_cert = server_cert
        self._enroll_key = enroll_key
        self._enroll_cert = enroll_cert

    # ---- loading / first start -------------------------------------------------------

    @classmethod
    def load_or_create(
        cls,
        tls_dir: Path,
        sans: list[str],
        *,
        server_cert_days: int = 397,
        ca_days: int = 3650,
    ) -> CollectorPKI:
        """Load the PKI from `tls_dir`, creating what is missing.

        Existing keys are never replaced: server.crt / enroll.crt are re-issued (same key,
        same CA) when the configured SANs changed, when they expire within 30 days, or
        when server.crt is not signed by ca.crt. Keeping enroll.key keeps the pin, so
        tokens already handed out stay valid. Unreadable or corrupt files, or a key that
        does not match its certificate, raise ValueError naming the file and are left
        untouched for the operator to inspect.
        """
        if server_cert_days <= 0 or ca_days <= 0:
            raise ValueError("certificate lifetimes must be positive")
        san_list = _parse_sans(sans)
        tls_dir = Path(tls_dir)
        _ensure_private_dir(tls_dir)
        now = datetime.now(UTC)

        ca_key, ca_cert = _load_pair(tls_dir, CA_KEY, CA_CRT)
        if ca_key is None and ca_cert is None:
            ca_key, ca_cert = _new_ca(now, ca_days)
            # Key first: a crash in between leaves ca.key without ca.crt, which is refused
            # below rather than silently replaced.
            _write_file(tls_dir / CA_KEY, _key_pem(ca_key), 0o600)
            _write_file(tls_dir / CA_CRT, _cert_pem(ca_cert), 0o644)
            log.info("created collector CA %s in %s", ca_cert.subject.rfc4514_string(), tls_dir)
        elif ca_key is None or ca_cert is None:
            missing, present = (CA_KEY, CA_CRT) if ca_key is None else (CA_CRT, CA_KEY)
            raise ValueError(
                f"{tls_dir / present} exists but {tls_dir / missing} is missing; restore it, or "
                f"remove both to create a new CA (every agent will have to enroll again)"
            )
        else:
            _check_is_ca(ca_cert, tls_dir / CA_CRT)
        assert ca_key is not None and ca_cert is not None
        if ca_cert.not_valid_after_utc - now < RENEW_BEFORE:
            log.warning(
                "collector CA %s expires on %s; agents' certificates will stop verifying",
                tls_dir / CA_CRT,
                ca_cert.not_valid_after_utc.isoformat(),
            )

        def ca_signed(cert: x509.Certificate) -> bool:
            try:
                cert.verify_directly_issued_by(ca_cert)
            except (ValueError, TypeError, InvalidSignature):
                return False
            return True

        server_key, server_cert = cls._leaf(
            tls_dir,
            SERVER_KEY,
            SERVER_CRT,
            san_list,
            now,
            issue=lambda key: _issue_server_cert(key, san_list, ca_key, ca_cert, now, server_cert_days),
            extra_ok=ca_signed,
        )
        enroll_key, enroll_cert = cls._leaf(
            tls_dir,
            ENROLL_KEY,
            ENROLL_CRT,
            san_list,
            now,
            issue=lambda key: _issue_enroll_cert(key, san_list, now, server_cert_days),
            extra_ok=lambda cert: True,
        )
        return cls(
            ca_key=ca_key,
            ca_cert=ca_cert,
            server_key=server_key,
            server_cert=server_cert,
            enroll_key=enroll_key,
            enroll_cert=enroll_cert,
        )

    @staticmethod
    def _leaf(
        tls_dir: Path,
        key_name: str,
        crt_name: str,
        san_list: list[x509.GeneralName],
        now: datetime,
        *,
        issue: Callable[[PrivateKey], x509.Certificate],
        extra_ok: Callable[[x509.Certificate], bool],
    ) -> tuple[PrivateKey, x509.Certificate]:
        """Load or (re-)issue one server-side key/certificate pair."""
        key, cert = _load_pair(tls_dir, key_name, crt_name)
        new_key = key is None
        if key is None:
            key = ec.generate_private_key(ec.SECP256R1())
        reason = None
        if cert is None:
            reason = "missing"
        elif new_key:
            reason = f"{key_name} was missing"
        elif _sans_of(cert) != _san_set(san_list):
            reason = "configured SANs changed"
        elif cert.not_valid_after_utc - now < RENEW_BEFORE:
            reason = f"expires on {cert.not_valid_after_utc.isoformat()}"
        elif not extra_ok(cert):
            reason = "not signed by the current CA"
        if reason is None:
            assert cert is not None
            return key, cert
        cert = issue(key)
        # Certificate before key: if we crash in between, the key is missing on the next
        # start and the pair is simply created again, instead of a key/cert mismatch.
        _write_file(tls_dir / crt_name, _cert_pem(cert), 0o644)
        if new_key:
            _write_file(tls_dir / key_name, _key_pem(key), 0o600)
            if key_name == ENROLL_KEY and reason != "missing":
                log.warning("new enrollment key: tokens created before now carry the old pin and will fail")
        log.info("issued %s (%s)", tls_dir / crt_name, reason)
        return key, cert

    # ---- properties -----------------------------------------------------------------

    @property
    def ca_cert_pem(self) -> bytes:
        return _cert_pem(self._ca_cert)

    @property
    def ca_not_after(self) -> datetime:
        return self._ca_cert.not_valid_after_utc

    @property
    def server_cert_pem(self) -> bytes:
        return _cert_pem(self._server_cert)

    @property
    def server_key_pem(self) -> bytes:
        return _key_pem(self._server_key)

    @property
    def enroll_cert_pem(self) -> bytes:
        return _cert_pem(self._enroll_cert)

    @property
    def enroll_key_pem(self) -> bytes:
        return _key_pem(self._enroll_key)

    @property
    def enroll_pin(self) -> str:
        return pin_of(self.enroll_cert_pem)

    # ---- signing agents' CSRs -------------------------------------------------------

    def sign_csr(
        self,
        csr_pem: bytes,
        host_id: str,
        lifetime_seconds: int,
        now: datetime | None = None,
    ) -> IssuedCert:
        """Issue a client certificate for `host_id` from an agent's CSR.

        Only the CSR's public key is used: the subject is CN=host_id and nothing else the
        CSR asks for (other subject fields, SANs, extensions) is copied, so an agent cannot
        obtain a certificate that means more than "this is host X".
        """
        if lifetime_seconds <= 0:
            raise ValueError("lifetime_seconds must be positive")
        if now is None:
            now = datetime.now(UTC)
        elif now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        if not valid_host_id(host_id):
            raise CsrRefused(f"invalid host id {host_id!r}")
        csr = _load_csr(csr_pem)
        key = csr.public_key()
        cn = _single_cn(csr)
        if cn != host_id:
            raise CsrRefused(f"CSR common name {cn!r} does not match host id {host_id!r}")
        _check_client_key(key)
        return self._issue_client(key, host_id, lifetime_seconds, now)

    def issue_operator_cert(self, name: str, lifetime_seconds: int) -> tuple[bytes, IssuedCert]:
        """A key and client certificate for an operator (CN "operator:NAME"), for the alert feed.

        The ':' makes it impossible for an agent to enroll under an operator's name (host ids
        cannot contain one), and agents' certificates can never call the operator RPCs.
        """
        if not valid_host_id(name):
            raise ValueError(f"invalid operator name {name!r}: letters, digits, '.', '_', '-'")
        key = ec.generate_private_key(ec.SECP256R1())
        issued = self._issue_client(key.public_key(), f"{OPERATOR_PREFIX}{name}", lifetime_seconds,
                                    datetime.now(UTC))
        return _key_pem(key), issued

    def _issue_client(self, key: object, cn: str, lifetime_seconds: int, now: datetime) -> IssuedCert:
        not_before = now - CLOCK_SKEW
        # A certificate cannot usefully outlive the CA that vouches for it.
        not_after = min(now + timedelta(seconds=lifetime_seconds), self._ca_cert.not_valid_after_utc)
        serial = x509.random_serial_number()
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
            .issuer_name(self._ca_cert.subject)
            .public_key(key)  # type: ignore[arg-type]
            .serial_number(serial)
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(digital_signature=True), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key), critical=False)
            .add_extension(_aki(self._ca_cert), critical=False)
            .sign(self._ca_key, _hash_for(self._ca_key))
        )
        return IssuedCert(
            pem=_cert_pem(cert),
            serial_hex=serial_hex(serial),
            not_before=cert.not_valid_before_utc,
            not_after=cert.not_valid_after_utc,
        )


def csr_common_name(csr_pem: bytes) -> str:
    """The host id an enrolling agent asks for; CsrRefused if the CSR is unusable."""
    return _single_cn(_load_csr(csr_pem))


# ---- helpers ---------------------------------------------------------------------------


def _load_csr(csr_pem: bytes) -> x509.CertificateSigningRequest:
    """Parse a CSR and check its self-signature (proof the requester holds the key)."""
    if not isinstance(csr_pem, bytes | bytearray) or b"-----BEGIN CERTIFICATE REQUEST" not in csr_pem:
        raise CsrRefused("CSR is not a PEM certificate request")
    try:
        csr = x509.load_pem_x509_csr(bytes(csr_pem))
    except (ValueError, x509.InvalidVersion) as e:
        raise CsrRefused(f"CSR cannot be parsed: {e}") from None
    try:
        csr.public_key()
        sig_ok = csr.is_signature_valid
    except Exception as e:  # unsupported key/signature algorithms raise assorted types
        raise CsrRefused(f"CSR cannot be verified: {e}") from None
    if not sig_ok:
        raise CsrRefused("CSR signature is invalid")
    return csr


def _single_cn(csr: x509.CertificateSigningRequest) -> str:
    try:
        cns = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    except ValueError as e:
        raise CsrRefused(f"CSR subject cannot be parsed: {e}") from None
    if len(cns) != 1:
        raise CsrRefused(f"CSR subject must have exactly one common name, has {len(cns)}")
    return str(cns[0].value)


def _check_client_key(key: object) -> None:
    if isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, ec.SECP256R1 | ec.SECP384R1):
            raise CsrRefused(f"CSR key uses curve {key.curve.name}; only P-256 and P-384 are accepted")
    elif isinstance(key, rsa.RSAPublicKey):
        if key.key_size < 2048:
            raise CsrRefused(f"CSR RSA key has {key.key_size} bits; at least 2048 are required")
    else:
        raise CsrRefused(
            f"CSR key type {type(key).__name__} not accepted (use EC P-256/P-384 or RSA >= 2048)"
        )


def _hash_for(key: object) -> hashes.SHA256 | None:
    # Ed25519/Ed448 sign without a separate digest; only matters for an operator-supplied CA.
    return None if isinstance(key, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey) else hashes.SHA256()


def _key_usage(*, digital_signature: bool = False, cert_sign: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _aki(ca_cert: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    try:
        ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)
    except x509.ExtensionNotFound:
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key())  # type: ignore[arg-type]


def _parse_sans(sans: list[str]) -> list[x509.GeneralName]:
    if isinstance(sans, str):
        raise ValueError("sans must be a list of names, not a string")
    out: list[x509.GeneralName] = []
    for raw in sans:
        s = raw.strip()
        if not s:
            raise ValueError("empty subject alternative name")
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(s)))
            continue
        except ValueError:
            pass
        if not s.isascii() or any(c.isspace() for c in s):
            raise ValueError(f"invalid DNS name {s!r} (use the IDNA/punycode form for non-ASCII names)")
        out.append(x509.DNSName(s.lower()))
    if not out:
        raise ValueError("at least one subject alternative name (host name or IP) is required")
    # Drop duplicates but keep the operator's order (first DNS name becomes the CN).
    seen: set[tuple[str, str]] = set()
    unique = []
    for name in out:
        k = _san_key(name)
        if k not in seen:
            seen.add(k)
            unique.append(name)
    return unique


def _san_key(name: x509.GeneralName) -> tuple[str, str]:
    if isinstance(name, x509.IPAddress):
        return ("ip", str(name.value))
    return (type(name).__name__, str(name.value).lower())


def _san_set(names: list[x509.GeneralName]) -> set[tuple[str, str]]:
    return {_san_key(n) for n in names}


def _sans_of(cert: x509.Certificate) -> set[tuple[str, str]]:
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    return {_san_key(n) for n in ext}


def _short_id() -> str:
    return secrets.token_hex(4)


def _new_ca(now: datetime, days: int) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"Warden Collector CA {_short_id()}")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + timedelta(days=days))
        # path_length=0: the CA signs leaves only, never another CA.
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _server_name(san_list: list[x509.GeneralName], prefix: str) -> x509.Name:
    # Clients verify SANs, not the CN; the CN is just a readable label.
    dns = [n.value for n in san_list if isinstance(n, x509.DNSName)]
    label = dns[0] if dns else str(san_list[0].value)
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{prefix} {label}"[:64])])


def _issue_server_cert(
    key: PrivateKey,
    san_list: list[x509.GeneralName],
    ca_key: PrivateKey,
    ca_cert: x509.Certificate,
    now: datetime,
    days: int,
) -> x509.Certificate:
    pub = key.public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(_server_name(san_list, "Warden Collector"))
        .issuer_name(ca_cert.subject)
        .public_key(pub)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(min(now + timedelta(days=days), ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(digital_signature=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(san_list), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(pub), critical=False)
        .add_extension(_aki(ca_cert), critical=False)
        .sign(ca_key, _hash_for(ca_key))
    )


def _issue_enroll_cert(
    key: PrivateKey,
    san_list: list[x509.GeneralName],
    now: datetime,
    days: int,
) -> x509.Certificate:
    # Self-signed leaf: the agent trusts it because its public key matches the pin in the
    # token, then hands this very PEM to gRPC as root_certificates. BoringSSL accepts a
    # self-signed CA=False certificate as its own trust anchor (tested in test_pki.py).
    pub = key.public_key()
    name = _server_name(san_list, "Warden Enrollment")
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(pub)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(digital_signature=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(san_list), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(pub), critical=False)
        .sign(key, _hash_for(key))
    )


def _ensure_private_dir(d: Path) -> None:
    if not d.exists():
        d.mkdir(mode=0o700, parents=True)
        # mkdir's mode is filtered by the umask; make sure it is exactly 0700.
        os.chmod(d, 0o700)
        return
    if not d.is_dir():
        raise ValueError(f"TLS directory {d} exists and is not a directory")
    mode = d.stat().st_mode & 0o777
    if mode & 0o077:
        log.warning("tightening permissions of %s from %o to 700", d, mode)
        os.chmod(d, 0o700)


def _write_file(path: Path, data: bytes, mode: int) -> None:
    """Atomically write `path`, created with `mode` from the start (no window where a key
    is readable by others, no half-written file after a crash)."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def _read_file(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise ValueError(f"cannot read {path}: {e.strerror or e}") from None


def _load_pair(
    tls_dir: Path, key_name: str, crt_name: str
) -> tuple[PrivateKey | None, x509.Certificate | None]:
    """Load whichever of the pair exists; both None if neither does."""
    key_path, crt_path = tls_dir / key_name, tls_dir / crt_name
    key_data, crt_data = _read_file(key_path), _read_file(crt_path)
    key = cert = None
    if key_data is not None:
        try:
            loaded = serialization.load_pem_private_key(key_data, password=None)
        except Exception as e:  # ValueError, TypeError (encrypted), UnsupportedAlgorithm: all unusable
            raise ValueError(f"{key_path} is not a readable unencrypted PEM private key: {e}") from None
        if not isinstance(loaded, PrivateKey):
            raise ValueError(f"{key_path} holds an unsupported key type {type(loaded).__name__}")
        key = loaded
        mode = key_path.stat().st_mode & 0o777
        if mode & 0o077:
            log.warning("%s is accessible by group/others (mode %o); it should be 600", key_path, mode)
    if crt_data is not None:
        try:
            cert = x509.load_pem_x509_certificate(crt_data)
            cert.public_key()  # surfaces unsupported/corrupt key encodings now, not later
        except Exception as e:  # ValueError or UnsupportedAlgorithm: either way unusable
            raise ValueError(f"{crt_path} is not a readable PEM certificate: {e}") from None
    if key is not None and cert is not None and _spki(key.public_key()) != _spki(cert.public_key()):
        raise ValueError(f"{key_path} does not match the public key of {crt_path}")
    return key, cert


def _check_is_ca(cert: x509.Certificate, path: Path) -> None:
    try:
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        bc = None
    if bc is None or not bc.ca:
        raise ValueError(f"{path} is not a CA certificate (BasicConstraints CA=True missing)")


def _spki(pub: object) -> bytes:
    return pub.public_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
