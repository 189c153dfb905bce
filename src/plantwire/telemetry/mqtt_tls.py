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

import re
import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from plantwire.certificates import self_signed_leaf, write_atomically

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
    key_pem, cert_pem = self_signed_leaf(_COMMON_NAME, ExtendedKeyUsageOID.CLIENT_AUTH, _VALIDITY)
    write_atomically(key_path, key_pem, 0o600)  # the key first: a certificate implies its key
    write_atomically(cert_path, cert_pem, 0o644)
    return True


def write_client_cas(operator_ca: Path, host_cert: Path, out: Path) -> None:
    """The CA file the MQTT listener checks client certificates against: the operator's
    CAs, then the host's own certificate. OSError: a file cannot be read or written."""
    ours = operator_ca.read_bytes().rstrip(b"\n") + b"\n" + host_cert.read_bytes()
    write_atomically(out, ours, 0o644)
