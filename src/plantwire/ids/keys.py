"""Handle System identity keys (``HS_PUBKEY``) with the ``cryptography`` library: make RSA and
DSA keys, store private keys as PKCS#8 PEM, turn public keys into the JSON Web Key form handle
records hold (``model.PublicKey``) and back, and sign and check the answer to HANDLE.NET 9's
``HS_PUBKEY`` challenge. No I/O: callers read and write the PEM bytes.

The challenge: the server sends a nonce, the client picks a cnonce and signs ``nonce ‖ cnonce``
with its private key, hashing with ``alg`` (SHA-256 or SHA-1). RSA keys sign with PKCS#1 v1.5
and DSA keys with DSA, the signature a DER ``SEQUENCE { r, s }``: the bytes Java's
``SHA256withRSA`` or ``SHA1withDSA`` make and check, as HANDLE.NET's verifier does.

Every reader refuses malformed input with ``KeyFormatError`` and a message saying what is wrong;
``verify_challenge`` answers False instead of raising."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Callable, Mapping
from typing import TypeAlias

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, padding, rsa

from plantwire.ids.model import PublicKey

__all__ = [
    "MAX_PEM_BYTES",
    "MAX_RSA_BITS",
    "MIN_RSA_BITS",
    "CryptoPublicKey",
    "KeyFormatError",
    "PrivateKey",
    "generate_private_key",
    "key_fingerprint",
    "load_private_key_pem",
    "load_public_key_pem",
    "private_key_to_pem",
    "public_key_from_jwk",
    "public_key_to_jwk",
    "public_key_to_pem",
    "sign_challenge",
    "verify_challenge",
]

#: A private identity key: what signs challenges.
PrivateKey: TypeAlias = rsa.RSAPrivateKey | dsa.DSAPrivateKey
#: A public identity key as ``cryptography`` holds it (``PublicKey`` is the JWK form).
CryptoPublicKey: TypeAlias = rsa.RSAPublicKey | dsa.DSAPublicKey

MIN_RSA_BITS = 1024  # smaller moduli are within reach of factoring
MAX_RSA_BITS = 16384  # OpenSSL's limit for RSA verification
MAX_PEM_BYTES = 64 * 1024  # a 16384-bit encrypted private key is ~13 KiB
_MAX_MEMBER_CHARS = 4096  # as handle_json reads them
_B64URL = re.compile(r"[A-Za-z0-9_-]+")
_JWK_MEMBERS = {"RSA": ("n", "e"), "DSA": ("y", "p", "q", "g")}
_HASHES: dict[str, Callable[[], hashes.HashAlgorithm]] = {
    "SHA256": hashes.SHA256,
    "SHA-256": hashes.SHA256,
    "SHA2": hashes.SHA256,
    "SHA-2": hashes.SHA256,
    "SHA1": hashes.SHA1,
    "SHA-1": hashes.SHA1,
    "SHA": hashes.SHA1,
}
# DER-encoded OIDs of finite-field Diffie-Hellman keys (PKCS#3 dhKeyAgreement, X9.42
# dhpublicnumber): cryptography warns (deprecation) when it loads one, so they are refused first.
_FFDH_OIDS = (bytes.fromhex("06092a864886f70d010301"), bytes.fromhex("06072a8648ce3e0201"))


class KeyFormatError(ValueError):
    """A key, PEM document, JWK, algorithm name or signature is malformed or unusable."""


# --- base64url integers ---------------------------------------------------------------------


def _b64url_uint(value: int) -> str:
    """Big-endian, minimal length (zero is one zero byte), base64url without padding."""
    raw = value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _uint_from_b64url(text: object, where: str) -> int:
    if (
        not isinstance(text, str)
        or len(text) > _MAX_MEMBER_CHARS
        or not _B64URL.fullmatch(text)
        or len(text) % 4 == 1
    ):
        raise KeyFormatError(f"{where} must be a base64url integer without padding.")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except binascii.Error as error:  # unreachable after the checks above; kept as a guard
        raise KeyFormatError(f"{where} is not valid base64url.") from error
    return int.from_bytes(raw, "big")


def _jwk_numbers(jwk: PublicKey) -> tuple[str, dict[str, int]]:
    """The key type (upper case) and its members as integers."""
    kty = jwk.kty.upper() if isinstance(jwk.kty, str) else None
    if kty not in _JWK_MEMBERS:
        raise KeyFormatError(f"JWK kty must be 'RSA' or 'DSA', not {jwk.kty!r}.")
    if not isinstance(jwk.members, Mapping):
        raise KeyFormatError("JWK members must be a mapping of names to base64url integers.")
    numbers = {
        name: _uint_from_b64url(jwk.members.get(name), f"JWK member {name!r}")
        for name in _JWK_MEMBERS[kty]
    }
    return kty, numbers


# --- public keys ------------------------------------------------------------------------------


def _rsa_public_key(n: int, e: int) -> rsa.RSAPublicKey:
    if not MIN_RSA_BITS <= n.bit_length() <= MAX_RSA_BITS:
        raise KeyFormatError(
            f"RSA modulus has {n.bit_length()} bits; {MIN_RSA_BITS} to {MAX_RSA_BITS} are accepted."
        )
    if n % 2 == 0:
        raise KeyFormatError("RSA modulus must be odd.")
    try:
        return rsa.RSAPublicNumbers(e, n).public_key()
    except ValueError as error:
        raise KeyFormatError(f"RSA key is not valid: {error}") from error


def _dsa_public_key(y: int, p: int, q: int, g: int) -> dsa.DSAPublicKey:
    try:
        key = dsa.DSAPublicNumbers(y, dsa.DSAParameterNumbers(p, q, g)).public_key()
    except ValueError as error:  # sizes of p and q, 1 < g < p
        raise KeyFormatError(f"DSA key is not valid: {error}") from error
    # Partial public-key validation (NIST SP 800-89): a key outside the order-q subgroup,
    # or y = 1, makes signatures anyone can forge.
    if (p - 1) % q != 0 or pow(g, q, p) != 1:
        raise KeyFormatError(
            "DSA parameters are not valid: q must divide p - 1 and g have order q."
        )
    if not 1 < y < p or pow(y, q, p) != 1:
        raise KeyFormatError("DSA public value y is not in the subgroup of order q.")
    return key


def public_key_from_jwk(jwk: PublicKey) -> CryptoPublicKey:
    """The ``cryptography`` key of an HS_PUBKEY JWK, after checking its members (RSA moduli of
    1024 to 16384 bits, DSA groups as FIPS 186 defines them)."""
    kty, numbers = _jwk_numbers(jwk)
    if kty == "RSA":
        return _rsa_public_key(numbers["n"], numbers["e"])
    return _dsa_public_key(numbers["y"], numbers["p"], numbers["q"], numbers["g"])


def public_key_to_jwk(key: PrivateKey | CryptoPublicKey) -> PublicKey:
    """The JWK of an RSA or DSA key (of its public half, when given a private key)."""
    if isinstance(key, rsa.RSAPrivateKey | dsa.DSAPrivateKey):
        key = key.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        rsa_numbers = key.public_numbers()
        return PublicKey(
            "RSA", {"n": _b64url_uint(rsa_numbers.n), "e": _b64url_uint(rsa_numbers.e)}
        )
    if isinstance(key, dsa.DSAPublicKey):
        dsa_numbers = key.public_numbers()
        group = dsa_numbers.parameter_numbers
        members = {"y": dsa_numbers.y, "p": group.p, "q": group.q, "g": group.g}
        return PublicKey("DSA", {name: _b64url_uint(value) for name, value in members.items()})
    raise KeyFormatError(f"Identity keys are RSA or DSA, not {type(key).__name__}.")


def _pem_bytes(data: bytes, what: str) -> bytes:
    """``data`` if it may go to cryptography's loaders: bytes, not too large, no FFDH key."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise KeyFormatError(f"{what} must be bytes.")
    data = bytes(data)
    if len(data) > MAX_PEM_BYTES:
        raise KeyFormatError(f"{what} is longer than {MAX_PEM_BYTES} bytes.")
    for chunk in data.split(b"-----BEGIN ")[1:]:  # linear, whatever the input
        _, dashes, rest = chunk.partition(b"-----")
        body, end, _ = rest.partition(b"-----END ")
        if not (dashes and end):
            continue
        try:
            der = binascii.a2b_base64(body)  # lenient: skips line breaks and headers' colons
        except binascii.Error:
            continue  # cryptography refuses it too
        if any(oid in der for oid in _FFDH_OIDS):
            raise KeyFormatError(
                f"{what} holds a Diffie-Hellman key; identity keys are RSA or DSA."
            )
    return data


def load_public_key_pem(data: bytes) -> PublicKey:
    """The JWK of a PEM public key (SubjectPublicKeyInfo, ``BEGIN PUBLIC KEY``; PKCS#1
    ``BEGIN RSA PUBLIC KEY`` is read too), checked as ``public_key_from_jwk`` checks it."""
    data = _pem_bytes(data, "Public key PEM")
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError, UnsupportedAlgorithm) as error:
        raise KeyFormatError(f"Public key PEM cannot be read: {error}") from error
    if not isinstance(key, rsa.RSAPublicKey | dsa.DSAPublicKey):
        raise KeyFormatError(f"Identity keys are RSA or DSA, not {type(key).__name__}.")
    jwk = public_key_to_jwk(key)
    public_key_from_jwk(jwk)  # the same checks, whichever way a key comes in
    return jwk


def public_key_to_pem(jwk: PublicKey) -> bytes:
    """A JWK as SubjectPublicKeyInfo PEM (``BEGIN PUBLIC KEY``)."""
    return public_key_from_jwk(jwk).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


# --- private keys ---------------------------------------------------------------------------


def generate_private_key(kind: str = "RSA", bits: int = 2048) -> PrivateKey:
    """A new RSA (exponent 65537) or DSA key; DSA sizes are 1024, 2048, 3072 or 4096 bits."""
    name = kind.upper() if isinstance(kind, str) else kind
    if name not in _JWK_MEMBERS:
        raise KeyFormatError(f"Key kind must be 'RSA' or 'DSA', not {kind!r}.")
    if name == "RSA" and not MIN_RSA_BITS <= bits <= MAX_RSA_BITS:
        raise KeyFormatError(f"RSA keys have {MIN_RSA_BITS} to {MAX_RSA_BITS} bits, not {bits}.")
    try:
        if name == "RSA":
            return rsa.generate_private_key(public_exponent=65537, key_size=bits)
        return dsa.generate_private_key(key_size=bits)
    except ValueError as error:
        raise KeyFormatError(f"Cannot make a {name} key of {bits} bits: {error}") from error


def private_key_to_pem(key: PrivateKey, password: bytes | None = None) -> bytes:
    """PKCS#8 PEM, encrypted with the best algorithm cryptography offers when ``password`` is
    given (``BEGIN ENCRYPTED PRIVATE KEY``)."""
    encryption: serialization.KeySerializationEncryption = (
        serialization.NoEncryption()
        if password is None
        else serialization.BestAvailableEncryption(password)
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


def load_private_key_pem(data: bytes, password: bytes | None = None) -> PrivateKey:
    """An RSA or DSA private key from PEM (PKCS#8 or the traditional OpenSSL forms),
    decrypted with ``password`` when it is encrypted."""
    data = _pem_bytes(data, "Private key PEM")
    try:
        key = serialization.load_pem_private_key(data, password)
    except TypeError as error:  # a password missing or one too many
        if password is None:
            raise KeyFormatError("Private key PEM is encrypted: a password is needed.") from error
        raise KeyFormatError(
            "Private key PEM is not encrypted, but a password was given."
        ) from error
    except (ValueError, UnsupportedAlgorithm) as error:
        hint = "wrong password or " if password is not None else ""
        raise KeyFormatError(f"Private key PEM cannot be read ({hint}{error})") from error
    if not isinstance(key, rsa.RSAPrivateKey | dsa.DSAPrivateKey):
        raise KeyFormatError(f"Identity keys are RSA or DSA, not {type(key).__name__}.")
    public_key_from_jwk(public_key_to_jwk(key))  # the checks public keys get
    return key


# --- the HS_PUBKEY challenge ------------------------------------------------------------------


def _hash_algorithm(alg: str) -> hashes.HashAlgorithm:
    factory = _HASHES.get(alg.upper()) if isinstance(alg, str) else None
    if factory is None:
        raise KeyFormatError(f"Hash algorithm must be SHA256 or SHA1, not {alg!r}.")
    return factory()


def sign_challenge(
    private_key: PrivateKey, nonce: bytes, cnonce: bytes, alg: str = "SHA256"
) -> bytes:
    """The signature of ``nonce ‖ cnonce``: PKCS#1 v1.5 for RSA keys, DER (r, s) for DSA."""
    algorithm = _hash_algorithm(alg)
    data = b"".join((nonce, cnonce))
    if isinstance(private_key, rsa.RSAPrivateKey):
        return private_key.sign(data, padding.PKCS1v15(), algorithm)
    if isinstance(private_key, dsa.DSAPrivateKey):
        return private_key.sign(data, algorithm)
    raise KeyFormatError(f"Identity keys are RSA or DSA, not {type(private_key).__name__}.")


def verify_challenge(
    jwk: PublicKey, nonce: bytes, cnonce: bytes, alg: str, signature: bytes
) -> bool:
    """Whether ``signature`` is the holder of ``jwk`` signing ``nonce ‖ cnonce`` with ``alg``.
    False, never an exception, for a wrong signature, another key, an unknown ``alg`` or a
    malformed or unusable key."""
    try:
        algorithm = _hash_algorithm(alg)
        key = public_key_from_jwk(jwk)
        data = b"".join((nonce, cnonce))
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, data, padding.PKCS1v15(), algorithm)
        else:
            key.verify(signature, data, algorithm)
    except (InvalidSignature, KeyFormatError, TypeError):  # TypeError: not bytes
        return False
    return True


def key_fingerprint(jwk: PublicKey) -> str:
    """The RFC 7638 thumbprint of a JWK: base64url SHA-256 of its required members in
    canonical JSON. Members are re-encoded minimally first, so one key has one thumbprint; DSA
    (which RFC 7518 does not define) uses its members g, kty, p, q, y the same way."""
    kty, numbers = _jwk_numbers(jwk)
    canonical = {"kty": kty} | {name: _b64url_uint(value) for name, value in numbers.items()}
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"))
    digest = hashlib.sha256(text.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
