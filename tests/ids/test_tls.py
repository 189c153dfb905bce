"""The self-signed node certificate: files and their modes, what the certificate says, a real
TLS handshake with Python's ssl module trusting it, and an existing pair left alone."""

from __future__ import annotations

import ipaddress
import socket
import ssl
import stat
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from plantwire.ids.tls import VALIDITY, certificate_fingerprint, ensure_self_signed

HOSTNAMES = ["node.plantwire.example", "192.0.2.7", "[2001:db8::7]", " ", "localhost"]


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Path, Path]:
    cert_path, key_path = tmp_path / "tls" / "node.crt", tmp_path / "tls" / "node.key"
    assert ensure_self_signed(cert_path, key_path, HOSTNAMES)
    return cert_path, key_path


def test_files_and_modes(pair: tuple[Path, Path]) -> None:
    cert_path, key_path = pair
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert key_path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----\n")
    assert cert_path.read_bytes().startswith(b"-----BEGIN CERTIFICATE-----\n")
    assert sorted(path.name for path in cert_path.parent.iterdir()) == ["node.crt", "node.key"]
    key = serialization.load_pem_private_key(key_path.read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert key.curve.name == "secp256r1"
    certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
    assert certificate.public_key() == key.public_key()


def test_certificate_contents(pair: tuple[Path, Path]) -> None:
    certificate = x509.load_pem_x509_certificate(pair[0].read_bytes())
    san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["node.plantwire.example", "localhost"]
    assert san.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("192.0.2.7"),
        ipaddress.ip_address("2001:db8::7"),
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    ]
    constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical
    assert constraints.value.ca is False
    usage = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert certificate.issuer == certificate.subject
    now = datetime.now(UTC)
    start = certificate.not_valid_before_utc
    assert now - timedelta(hours=1, minutes=1) < start < now - timedelta(minutes=59)
    assert certificate.not_valid_after_utc - start == VALIDITY == timedelta(days=825)
    certificate.verify_directly_issued_by(certificate)  # really self-signed


def test_local_names_are_always_there(tmp_path: Path) -> None:
    cert_path, key_path = tmp_path / "c.pem", tmp_path / "k.pem"
    assert ensure_self_signed(cert_path, key_path, [])
    certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
    san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1", "::1"]


def test_one_string_is_not_a_list_of_names(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="not one string"):
        ensure_self_signed(tmp_path / "c.pem", tmp_path / "k.pem", "node.example")
    assert list(tmp_path.iterdir()) == []


def test_fingerprint(pair: tuple[Path, Path]) -> None:
    certificate = x509.load_pem_x509_certificate(pair[0].read_bytes())
    fingerprint = certificate_fingerprint(pair[0])
    assert fingerprint == certificate.fingerprint(hashes.SHA256()).hex(":").upper()
    assert len(fingerprint) == 32 * 3 - 1


def test_existing_pair_is_left_alone(pair: tuple[Path, Path]) -> None:
    cert_path, key_path = pair
    before = {path: (path.read_bytes(), path.stat().st_mtime_ns) for path in pair}
    assert ensure_self_signed(cert_path, key_path, ["other.example"]) is False
    assert {path: (path.read_bytes(), path.stat().st_mtime_ns) for path in pair} == before


def test_missing_half_makes_a_new_pair(pair: tuple[Path, Path]) -> None:
    cert_path, key_path = pair
    old_key = key_path.read_bytes()
    cert_path.unlink()
    assert ensure_self_signed(cert_path, key_path, HOSTNAMES) is True
    assert key_path.read_bytes() != old_key
    certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
    key = serialization.load_pem_private_key(key_path.read_bytes(), None)
    assert certificate.public_key() == key.public_key()


def _handshake(cert_path: Path, key_path: Path, server_hostname: str) -> bytes:
    """Serve one TLS connection on 127.0.0.1 from a thread with the pair, connect to it
    trusting only the certificate and checking ``server_hostname``, echo a few bytes."""
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert_path, key_path)
    client_context = ssl.create_default_context(cafile=str(cert_path))
    client_context.verify_flags |= ssl.VERIFY_X509_STRICT  # Python 3.13's default
    assert client_context.check_hostname
    server_errors: list[BaseException] = []

    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(10)

        def serve() -> None:
            try:
                connection, _ = listener.accept()
                connection.settimeout(10)
                with server_context.wrap_socket(connection, server_side=True) as tls:
                    tls.sendall(tls.recv(16).upper())
            except (OSError, ssl.SSLError) as error:  # reported by the test, not the thread
                server_errors.append(error)

        thread = threading.Thread(target=serve, name="tls-test-server")
        thread.start()
        try:
            port = listener.getsockname()[1]
            with (
                socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
                client_context.wrap_socket(raw, server_hostname=server_hostname) as tls,
            ):
                tls.sendall(b"hello")
                answer = tls.recv(16)
        finally:  # the server side ends once the client's socket closes, handshake or not
            thread.join(10)
    assert not thread.is_alive()
    assert not server_errors
    return answer


@pytest.mark.parametrize(
    "server_hostname", ["localhost", "127.0.0.1", "::1", "node.plantwire.example", "192.0.2.7"]
)
def test_tls_handshake(pair: tuple[Path, Path], server_hostname: str) -> None:
    assert _handshake(*pair, server_hostname) == b"HELLO"


def test_tls_handshake_refuses_other_names(pair: tuple[Path, Path]) -> None:
    with pytest.raises(ssl.SSLCertVerificationError, match="mismatch"):
        _handshake(*pair, "other.example")
