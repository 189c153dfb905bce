"""TLS between the Sparkplug host and the bundled broker's MQTT listener.

**The server.** The host connects to its own broker, whose certificate file it reads, so it
pins that certificate: the first one in ``broker_mqtt_tls_cert`` is the only trust anchor
(OpenSSL's partial-chain mode lets a leaf be one), read again for every connection, so a
renewed certificate is taken once the broker serves it. The host name is not checked: the
listener may be bound to ``0.0.0.0`` while the host dials loopback, and the certificate names
the plant's host names, not ``127.0.0.1``; a pinned certificate proves the server holds its
key whatever name it answers on, which is all a name check would add.

**The client.** With ``broker_mqtt_tls_ca`` every MQTT client must present a certificate, and
nats-server's MQTT listener has one TLS configuration for all clients (``verify: true``
requires a certificate in every handshake). The platform holds no key of the operator's CA,
so it makes its own client certificate for the host (self-signed, ECDSA P-256, for TLS client
authentication only, not a CA) in the broker's folder, and the server is given a CA file of
its own there: the operator's CAs followed by that certificate. Go trusts a certificate found
in the roots as it is and refuses one that is not a CA as the issuer of another, so it admits
exactly the host's certificate besides what the operator's CAs sign; and the host's MQTT user
still needs its password.

**An external broker** (``sparkplug_state_mqtt_url``) is not the platform's: its listener is
checked as any TLS client checks a server, chain and host name."""

from __future__ import annotations

import os
import re
import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "client_certificate",
    "external_tls_context",
    "host_tls_context",
    "pinned_certificate",
    "write_client_cas",
]

_PEM_CERTIFICATE = re.compile(
    rb"-----BEGIN CERTIFICATE-----\r?\n.+?\r?\n-----END CERTIFICATE-----", re.DOTALL
)
_VALIDITY = timedelta(days=3650)
_RENEW_BEFORE = timedelta(days=365)  # made again at a start within a year of its end
_BACKDATE = timedelta(hours=1)
_COMMON_NAME = "plantwire Sparkplug host (MQTT client)"


def pinned_certificate(cert_file: Path) -> str:
    """The first certificate of a PEM file (a chain, maybe with its key) as PEM text.
    OSError: unreadable; ValueError: no certificate in it."""
    found = _PEM_CERTIFICATE.search(cert_file.read_bytes())
    if found is None:
        raise ValueError(f"{cert_file} holds no PEM certificate")
    return found.group(0).decode("ascii") + "\n"


def host_tls_context(server_cert: Path, client: tuple[Path, Path] | None = None) -> ssl.SSLContext:
    """A client context that trusts exactly the server's certificate (the first of
    ``server_cert``), checks no host name, and presents ``client`` (certificate, key) when
    given. OSError, ssl.SSLError or ValueError when the files are unreadable or wrong."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = False  # pinned: see the module's docstring
    context.verify_mode = ssl.CERT_REQUIRED
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN  # the pinned leaf is the anchor
    context.load_verify_locations(cadata=pinned_certificate(server_cert))
    if client is not None:
        context.load_cert_chain(*client)
    return context


def external_tls_context(
    ca_file: Path | None, client: tuple[Path, Path] | None = None
) -> ssl.SSLContext:
    """A client context for an external broker's MQTT listener: the usual checks (the chain
    to ``ca_file``, else to the system's CAs, and the host name of the URL), presenting
    ``client`` (certificate, key) when given."""
    context = ssl.create_default_context(cafile=str(ca_file) if ca_file is not None else None)
    if client is not None:
        context.load_cert_chain(*client)
    return context


def client_certificate(cert_path: Path, key_path: Path) -> bool:
    """Make the host's self-signed client certificate and key unless a pair exists that is
    valid for another year; True when it made them (the key with mode 0o600)."""
    try:
        existing = x509.load_pem_x509_certificate(cert_path.read_bytes())
        if key_path.is_file() and existing.not_valid_after_utc - _RENEW_BEFORE > datetime.now(UTC):
            return False
    except (OSError, ValueError):
        pass
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, _COMMON_NAME)])
    now = datetime.now(UTC)
    usage = x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now - _BACKDATE + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    _write(key_path, key_pem, 0o600)  # the key first: a certificate implies its key
    _write(cert_path, certificate.public_bytes(serialization.Encoding.PEM), 0o644)
    return True


def write_client_cas(operator_ca: Path, host_cert: Path, out: Path) -> None:
    """The CA file the MQTT listener checks client certificates against: the operator's
    CAs, then the host's own certificate. OSError: a file cannot be read or written."""
    ours = operator_ca.read_bytes().rstrip(b"\n") + b"\n" + host_cert.read_bytes()
    _write(out, ours, 0o644)


def _write(path: Path, data: bytes, mode: int) -> None:
    """Write ``data`` to a new file beside ``path`` (with ``mode`` from the start), then
    rename it over ``path``."""
    scratch = path.with_name(f".{path.name}.new")
    scratch.unlink(missing_ok=True)
    descriptor = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
    os.replace(scratch, path)
