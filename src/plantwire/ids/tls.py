"""A self-signed TLS certificate for an identifier node that has none yet, so its HTTPS and
Handle-over-TLS interfaces work from the first start. Operators pin it by the fingerprint
``certificate_fingerprint`` prints, or replace both files with ones their CA issued: an
existing pair is never touched.

The certificate: an ECDSA P-256 key, valid from an hour ago (clock skew) for 825 days (the
longest lifetime Apple platforms accept for a server certificate), subjectAltName naming every
host name or IP address given plus ``localhost``, ``127.0.0.1`` and ``::1``, not a CA, for
TLS servers only."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtendedKeyUsageOID

from plantwire.certificates import self_signed_leaf, write_atomically

__all__ = ["LOCAL_NAMES", "VALIDITY", "certificate_fingerprint", "ensure_self_signed"]

#: Names every self-signed certificate covers, so local tools can connect by any of them.
LOCAL_NAMES = ("localhost", "127.0.0.1", "::1")
VALIDITY = timedelta(days=825)
_COMMON_NAME = "plantwire node (self-signed)"


def _general_name(name: str) -> x509.GeneralName:
    """An IP address when ``name`` parses as one (IPv6 may be in brackets), else a DNS name
    (internationalised names as IDNA A-labels)."""
    try:
        return x509.IPAddress(ipaddress.ip_address(name.removeprefix("[").removesuffix("]")))
    except ValueError:
        pass
    try:
        return x509.DNSName(name.encode("idna").decode("ascii"))
    except UnicodeError as error:
        raise ValueError(f"{name!r} is neither an IP address nor a valid host name.") from error


def _subject_alt_names(hostnames: Sequence[str]) -> list[x509.GeneralName]:
    if isinstance(hostnames, str):
        raise TypeError("hostnames must be a sequence of names, not one string.")
    names: list[x509.GeneralName] = []
    for hostname in (*hostnames, *LOCAL_NAMES):
        name = _general_name(hostname.strip()) if hostname.strip() else None
        if name is not None and name not in names:
            names.append(name)
    return names


def ensure_self_signed(cert_path: Path, key_path: Path, hostnames: Sequence[str]) -> bool:
    """Make a self-signed certificate and its key unless both files exist. True when it made
    them (the key PKCS#8 PEM with mode 0o600, the certificate PEM), False when it left the
    existing pair alone. A missing half is made again together with the other."""
    if cert_path.exists() and key_path.exists():
        return False
    names = _subject_alt_names(hostnames)
    key_pem, cert_pem = self_signed_leaf(
        _COMMON_NAME, ExtendedKeyUsageOID.SERVER_AUTH, VALIDITY, names
    )
    write_atomically(key_path, key_pem, 0o600)  # the key first: a certificate implies its key
    write_atomically(cert_path, cert_pem, 0o644)
    return True


def certificate_fingerprint(cert_path: Path) -> str:
    """The SHA-256 fingerprint of a PEM certificate as ``AB:CD:…`` (what ``openssl x509
    -fingerprint -sha256`` and browsers show), for operators to compare or pin."""
    certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
    return certificate.fingerprint(hashes.SHA256()).hex(":").upper()
