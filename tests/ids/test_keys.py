"""Handle identity keys: PEM, JWK and cryptography keys both ways for RSA and DSA, the
HS_PUBKEY challenge signature (checked byte for byte as a Java verifier reads it), and garbage
refused with KeyFormatError, never another exception."""

from __future__ import annotations

import base64
import contextlib
import hashlib
from dataclasses import replace

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from cryptography.utils import CryptographyDeprecationWarning
from hypothesis import given, settings
from hypothesis import strategies as st

from plantwire.ids.handle_json import value_from_json, value_to_json
from plantwire.ids.keys import (
    MAX_PEM_BYTES,
    KeyFormatError,
    PrivateKey,
    generate_private_key,
    key_fingerprint,
    load_private_key_pem,
    load_public_key_pem,
    private_key_to_pem,
    public_key_from_jwk,
    public_key_to_jwk,
    public_key_to_pem,
    sign_challenge,
    verify_challenge,
)
from plantwire.ids.model import HandleValue, PublicKey

NONCE = bytes(range(16))
CNONCE = b"client nonce \x00\xff"
HASHES = {"SHA256": hashes.SHA256(), "SHA1": hashes.SHA1()}  # noqa: S303 (the protocol has SHA-1)
# DigestInfo prefixes of EMSA-PKCS1-v1_5 (RFC 8017 §9.2 note 1)
DIGEST_INFO = {
    "SHA256": bytes.fromhex("3031300d060960864801650304020105000420"),
    "SHA1": bytes.fromhex("3021300906052b0e03021a05000414"),
}


def b64url(value: int) -> str:
    raw = value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    key = generate_private_key("RSA", 2048)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


@pytest.fixture(scope="module")
def dsa_key() -> dsa.DSAPrivateKey:
    key = generate_private_key("dsa", 2048)
    assert isinstance(key, dsa.DSAPrivateKey)
    return key


@pytest.fixture(scope="module", params=["RSA", "DSA"])
def private_key(
    request: pytest.FixtureRequest, rsa_key: rsa.RSAPrivateKey, dsa_key: dsa.DSAPrivateKey
) -> PrivateKey:
    return rsa_key if request.param == "RSA" else dsa_key


@pytest.fixture(scope="module")
def jwks(rsa_key: rsa.RSAPrivateKey, dsa_key: dsa.DSAPrivateKey) -> list[PublicKey]:
    return [public_key_to_jwk(rsa_key), public_key_to_jwk(dsa_key)]


# --- round trips ------------------------------------------------------------------------------


def test_generate_kinds_and_sizes() -> None:
    assert isinstance(generate_private_key("rsa", 1024), rsa.RSAPrivateKey)
    assert isinstance(generate_private_key("DSA", 1024), dsa.DSAPrivateKey)
    with pytest.raises(KeyFormatError, match="'RSA' or 'DSA'"):
        generate_private_key("EC")
    with pytest.raises(KeyFormatError, match="1024 to 16384"):
        generate_private_key("RSA", 512)
    with pytest.raises(KeyFormatError, match="DSA key of 1536 bits"):
        generate_private_key("DSA", 1536)


def test_private_key_pem_round_trip(private_key: PrivateKey) -> None:
    pem = private_key_to_pem(private_key)
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----\n")
    loaded = load_private_key_pem(pem)
    assert type(loaded) is type(private_key)
    assert public_key_to_jwk(loaded) == public_key_to_jwk(private_key)
    assert private_key_to_pem(loaded) == pem


def test_encrypted_private_key_pem(rsa_key: rsa.RSAPrivateKey) -> None:
    pem = private_key_to_pem(rsa_key, b"correct horse")
    assert pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----\n")
    assert public_key_to_jwk(load_private_key_pem(pem, b"correct horse")) == public_key_to_jwk(
        rsa_key
    )
    with pytest.raises(KeyFormatError, match="wrong password"):
        load_private_key_pem(pem, b"battery staple")
    with pytest.raises(KeyFormatError, match="a password is needed"):
        load_private_key_pem(pem)
    with pytest.raises(KeyFormatError, match="not encrypted, but a password"):
        load_private_key_pem(private_key_to_pem(rsa_key), b"correct horse")


def test_jwk_round_trip(private_key: PrivateKey) -> None:
    jwk = public_key_to_jwk(private_key)
    expected = {"RSA": ["n", "e"], "DSA": ["y", "p", "q", "g"]}[jwk.kty]
    assert list(jwk.members) == expected
    key = public_key_from_jwk(jwk)
    assert key == private_key.public_key()
    assert public_key_to_jwk(key) == jwk
    # and through the Handle JSON codec, as an HS_PUBKEY value
    value = HandleValue(300, "HS_PUBKEY", jwk)
    assert value_from_json(value_to_json(value)).data == jwk


def test_rsa_jwk_members_are_minimal_base64url(rsa_key: rsa.RSAPrivateKey) -> None:
    jwk = public_key_to_jwk(rsa_key.public_key())
    assert jwk.members["e"] == "AQAB"
    numbers = rsa_key.public_key().public_numbers()
    assert jwk.members["n"] == b64url(numbers.n)
    assert "=" not in jwk.members["n"]


def test_public_key_pem_round_trip(private_key: PrivateKey) -> None:
    jwk = public_key_to_jwk(private_key)
    pem = public_key_to_pem(jwk)
    assert pem.startswith(b"-----BEGIN PUBLIC KEY-----\n")
    assert pem == private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert load_public_key_pem(pem) == jwk


def test_fingerprint_is_rfc7638() -> None:
    """The example of RFC 7638 §3.1."""
    n = (
        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_B"
        "JECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_F"
        "DW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4"
        "vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
    )
    jwk = PublicKey("RSA", {"n": n, "e": "AQAB"})
    assert key_fingerprint(jwk) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
    # leading zero bytes and a lower-case kty name the same key
    padded = PublicKey("rsa", {"e": "AAEAAQ", "n": "AAAA" + n})
    assert key_fingerprint(padded) == key_fingerprint(jwk)


def test_fingerprint_of_dsa_and_distinct(jwks: list[PublicKey]) -> None:
    rsa_jwk, dsa_jwk = jwks
    canonical = (
        f'{{"g":"{dsa_jwk.members["g"]}","kty":"DSA","p":"{dsa_jwk.members["p"]}",'
        f'"q":"{dsa_jwk.members["q"]}","y":"{dsa_jwk.members["y"]}"}}'
    )
    digest = hashlib.sha256(canonical.encode()).digest()
    assert key_fingerprint(dsa_jwk) == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    assert key_fingerprint(rsa_jwk) != key_fingerprint(dsa_jwk)
    assert len(key_fingerprint(rsa_jwk)) == 43
    with pytest.raises(KeyFormatError):
        key_fingerprint(PublicKey("RSA", {"n": "a=", "e": "AQAB"}))


# --- the challenge ----------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["SHA256", "SHA1"])
def test_sign_and_verify(private_key: PrivateKey, alg: str) -> None:
    jwk = public_key_to_jwk(private_key)
    signature = sign_challenge(private_key, NONCE, CNONCE, alg)
    assert verify_challenge(jwk, NONCE, CNONCE, alg, signature)
    # the order is nonce then cnonce: the same bytes in one piece verify, swapped ones do not
    assert verify_challenge(jwk, NONCE + CNONCE, b"", alg, signature)
    assert not verify_challenge(jwk, CNONCE, NONCE, alg, signature)


@pytest.mark.parametrize(
    ("alias", "alg"),
    [
        ("sha-256", "SHA256"),
        ("Sha2", "SHA256"),
        ("SHA-2", "SHA256"),
        ("sha-1", "SHA1"),
        ("sha", "SHA1"),
    ],
)
def test_algorithm_aliases(rsa_key: rsa.RSAPrivateKey, alias: str, alg: str) -> None:
    jwk = public_key_to_jwk(rsa_key)
    assert verify_challenge(jwk, NONCE, CNONCE, alg, sign_challenge(rsa_key, NONCE, CNONCE, alias))
    assert verify_challenge(jwk, NONCE, CNONCE, alias, sign_challenge(rsa_key, NONCE, CNONCE, alg))


def test_unknown_algorithm(rsa_key: rsa.RSAPrivateKey) -> None:
    with pytest.raises(KeyFormatError, match="SHA256 or SHA1"):
        sign_challenge(rsa_key, NONCE, CNONCE, "MD5")
    signature = sign_challenge(rsa_key, NONCE, CNONCE)
    assert not verify_challenge(public_key_to_jwk(rsa_key), NONCE, CNONCE, "MD5", signature)


@pytest.mark.parametrize("alg", ["SHA256", "SHA1"])
def test_wrong_inputs_do_not_verify(
    private_key: PrivateKey, jwks: list[PublicKey], alg: str
) -> None:
    jwk = public_key_to_jwk(private_key)
    other_jwk = next(other for other in jwks if other != jwk)
    other_alg = "SHA1" if alg == "SHA256" else "SHA256"
    signature = sign_challenge(private_key, NONCE, CNONCE, alg)
    assert not verify_challenge(jwk, NONCE[:-1] + b"\x00", CNONCE, alg, signature)
    assert not verify_challenge(jwk, NONCE, CNONCE + b"!", alg, signature)
    assert not verify_challenge(other_jwk, NONCE, CNONCE, alg, signature)
    assert not verify_challenge(jwk, NONCE, CNONCE, other_alg, signature)
    assert not verify_challenge(jwk, NONCE, CNONCE, alg, signature[:-1])
    assert not verify_challenge(jwk, NONCE, CNONCE, alg, b"")
    flipped = bytes([signature[0] ^ 1]) + signature[1:]
    assert not verify_challenge(jwk, NONCE, CNONCE, alg, flipped)


def test_another_key_of_the_same_type_does_not_verify(dsa_key: dsa.DSAPrivateKey) -> None:
    """Same DSA group, another private key: only y differs."""
    other = dsa_key.parameters().generate_private_key()
    signature = sign_challenge(other, NONCE, CNONCE)
    assert not verify_challenge(public_key_to_jwk(dsa_key), NONCE, CNONCE, "SHA256", signature)
    assert verify_challenge(public_key_to_jwk(other), NONCE, CNONCE, "SHA256", signature)


@pytest.mark.parametrize("alg", ["SHA256", "SHA1"])
def test_rsa_signature_is_java_sha_with_rsa(rsa_key: rsa.RSAPrivateKey, alg: str) -> None:
    """What Java's ``Signature.getInstance(alg + "withRSA")`` checks after ``update(nonce);
    update(cnonce)``: EMSA-PKCS1-v1_5 of the digest of the concatenation, computed by hand."""
    signature = sign_challenge(rsa_key, NONCE, CNONCE, alg)
    numbers = rsa_key.public_key().public_numbers()
    size = (numbers.n.bit_length() + 7) // 8
    assert len(signature) == size
    encoded = pow(int.from_bytes(signature, "big"), numbers.e, numbers.n).to_bytes(size, "big")
    digest = hashlib.new(alg.lower(), NONCE + CNONCE).digest()
    tail = DIGEST_INFO[alg] + digest
    assert encoded == b"\x00\x01" + b"\xff" * (size - len(tail) - 3) + b"\x00" + tail
    rsa_key.public_key().verify(signature, NONCE + CNONCE, padding.PKCS1v15(), HASHES[alg])


@pytest.mark.parametrize("alg", ["SHA256", "SHA1"])
def test_dsa_signature_is_java_sha_with_dsa(dsa_key: dsa.DSAPrivateKey, alg: str) -> None:
    """What Java's ``SHA1withDSA``/``SHA256withDSA`` checks: a DER SEQUENCE of the INTEGERs r and
    s, and the DSA equation (FIPS 186-4 §4.7) over the digest of ``nonce ‖ cnonce``."""
    signature = sign_challenge(dsa_key, NONCE, CNONCE, alg)
    r, s = decode_dss_signature(signature)
    assert encode_dss_signature(r, s) == signature  # strict DER, nothing around it
    assert signature[0] == 0x30
    numbers = dsa_key.public_key().public_numbers()
    p, q, g = numbers.parameter_numbers.p, numbers.parameter_numbers.q, numbers.parameter_numbers.g
    digest = hashlib.new(alg.lower(), NONCE + CNONCE).digest()
    n = q.bit_length()
    z = int.from_bytes(digest[: n // 8], "big")  # the leftmost min(N, outlen) bits
    w = pow(s, -1, q)
    v = (pow(g, z * w % q, p) * pow(numbers.y, r * w % q, p)) % p % q
    assert v == r
    dsa_key.public_key().verify(signature, NONCE + CNONCE, HASHES[alg])


# --- malformed input --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kty", "members", "message"),
    [
        ("EC", {"x": "AA", "y": "AA"}, "'RSA' or 'DSA'"),
        ("RSA", {"e": "AQAB"}, "'n' must be a base64url"),
        ("RSA", {"n": "AQAB=", "e": "AQAB"}, "'n' must be a base64url"),
        ("RSA", {"n": "AQ+B", "e": "AQAB"}, "'n' must be a base64url"),
        ("RSA", {"n": "AQABC", "e": "AQAB"}, "'n' must be a base64url"),
        ("RSA", {"n": "", "e": "AQAB"}, "'n' must be a base64url"),
        ("RSA", {"n": "A" * 4097, "e": "AQAB"}, "'n' must be a base64url"),
        ("RSA", {"n": b64url(2**1022 + 1), "e": "AQAB"}, "1023 bits; 1024 to 16384"),
        ("RSA", {"n": b64url(2**1024), "e": "AQAB"}, "must be odd"),
        ("RSA", {"n": b64url(2**2047 + 1), "e": "AQ"}, "e must be"),
        ("RSA", {"n": b64url(2**2047 + 1), "e": b64url(65538)}, "e must be odd"),
        ("DSA", {"y": "AQ", "p": "AQ", "q": "AQ"}, "'g' must be a base64url"),
        ("DSA", {"y": "Ag", "p": b64url(2**1023 + 1), "q": "Bw", "g": "Ag"}, "DSA key"),
    ],
)
def test_malformed_jwk(kty: str, members: dict[str, str], message: str) -> None:
    with pytest.raises(KeyFormatError, match=message):
        public_key_from_jwk(PublicKey(kty, members))


def test_dsa_group_checks(dsa_key: dsa.DSAPrivateKey) -> None:
    jwk = public_key_to_jwk(dsa_key)
    numbers = dsa_key.public_key().public_numbers()
    p, q = numbers.parameter_numbers.p, numbers.parameter_numbers.q
    for y in (0, 1, p - 1, p):
        with pytest.raises(KeyFormatError, match="subgroup"):
            public_key_from_jwk(replace(jwk, members={**jwk.members, "y": b64url(y)}))
    with pytest.raises(KeyFormatError, match="q must divide"):
        public_key_from_jwk(replace(jwk, members={**jwk.members, "q": b64url(q + 2)}))
    # y = 1 signs anything: no challenge verifies with it
    weak = replace(jwk, members={**jwk.members, "y": "AQ"})
    assert not verify_challenge(weak, NONCE, CNONCE, "SHA256", b"")


def test_non_identity_keys_refused() -> None:
    ec_key = ec.generate_private_key(ec.SECP256R1())
    ed_key = ed25519.Ed25519PrivateKey.generate()
    for key in (ec_key, ed_key):
        private_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        public_pem = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        with pytest.raises(KeyFormatError, match="RSA or DSA"):
            load_private_key_pem(private_pem)
        with pytest.raises(KeyFormatError, match="RSA or DSA"):
            load_public_key_pem(public_pem)


def test_small_rsa_refused() -> None:
    small = rsa.RSAPublicNumbers(65537, 2**511 + 1).public_key()  # cryptography allows it here
    pem = small.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(KeyFormatError, match="512 bits"):
        load_public_key_pem(pem)
    with pytest.raises(KeyFormatError, match="512 bits"):
        public_key_from_jwk(PublicKey("RSA", {"n": b64url(2**511 + 1), "e": "AQAB"}))


# A throwaway finite-field Diffie-Hellman key pair (1024-bit group, `openssl genpkey` with a DH
# parameter file): cryptography 50 warns that FFDH is deprecated when it loads one, and that
# warning would escape as an exception where warnings are errors.
DH_PUBLIC_PEM = b"""-----BEGIN PUBLIC KEY-----
MIIBHzCBlQYJKoZIhvcNAQMBMIGHAoGBAPnOu9EW25Eykad4qPqSaOF1oAKYvbSo
8erdHfdYy+MLvq4FnWNA9oJ5nkQf8lU6jqBoywp4s3cP2uNX0FQjg5CarGNDJXRj
pvvSsBPaedUF6sSIp7socgMhSvf4sRqLVT/6LQBialdg8n9UDZjzyf2r7qDY75lO
2ZkGC3qDBG0fAgECA4GEAAKBgD48OTEeB7Gst05ImPmGO52zq35dKMRLQ+j3RwT2
rTDsQDuxWlLAg9sV40onMto/+xq9s8sd71bL4q4tdgk9gQpEDae6Rg5pr/laJ6xc
L/9Daz+qsui06olsdtiBB9SjsiopemYG+guKtuomMoVLcS2MKmLZPncj/xDesmys
13sH
-----END PUBLIC KEY-----
"""
DH_PRIVATE_PEM = b"""-----BEGIN PRIVATE KEY-----
MIIBIQIBADCBlQYJKoZIhvcNAQMBMIGHAoGBAPnOu9EW25Eykad4qPqSaOF1oAKY
vbSo8erdHfdYy+MLvq4FnWNA9oJ5nkQf8lU6jqBoywp4s3cP2uNX0FQjg5CarGND
JXRjpvvSsBPaedUF6sSIp7socgMhSvf4sRqLVT/6LQBialdg8n9UDZjzyf2r7qDY
75lO2ZkGC3qDBG0fAgECBIGDAoGAKgiPstcG30r699LtfMWUamjKaL4Ou9xa/I+H
oL5H4ywyQAemsK1Hp2GPChnJ7HDjGtEEz5jwZ8Ras1racVeWYZTDNz8AWtVJMmOc
zXUMvN5PfMtdWzjWRwjIvi4jTsy8A0wGfdM7MqVbmex/LpULkLqP3C+AMW8W7OLu
TH7woJk=
-----END PRIVATE KEY-----
"""


def test_diffie_hellman_pem_refused_without_warning() -> None:
    with pytest.warns(CryptographyDeprecationWarning):  # why keys.py looks before it loads
        serialization.load_pem_public_key(DH_PUBLIC_PEM)
    with pytest.raises(KeyFormatError, match="Diffie-Hellman"):
        load_public_key_pem(DH_PUBLIC_PEM)
    with pytest.raises(KeyFormatError, match="Diffie-Hellman"):
        load_private_key_pem(DH_PRIVATE_PEM)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"garbage",
        b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
        b"-----BEGIN PUBLIC KEY-----\n!!!!\n-----END PUBLIC KEY-----\n",
        b"-----BEGIN CERTIFICATE-----\nMA==\n-----END CERTIFICATE-----\n",
        b"-----BEGIN PUBLIC KEY-----\n" + b"A" * (MAX_PEM_BYTES + 1),
    ],
)
def test_pem_garbage(data: bytes) -> None:
    with pytest.raises(KeyFormatError):
        load_public_key_pem(data)
    with pytest.raises(KeyFormatError):
        load_private_key_pem(data)
    with pytest.raises(KeyFormatError):
        load_private_key_pem(data, b"password")


def test_public_pem_is_not_a_private_key(rsa_key: rsa.RSAPrivateKey) -> None:
    public_pem = public_key_to_pem(public_key_to_jwk(rsa_key))
    with pytest.raises(KeyFormatError, match="cannot be read"):
        load_private_key_pem(public_pem)
    with pytest.raises(KeyFormatError, match="cannot be read"):
        load_public_key_pem(private_key_to_pem(rsa_key))


# --- never a crash ----------------------------------------------------------------------------

b64url_text = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
member_values = st.one_of(
    st.integers(min_value=0, max_value=2**4200).map(b64url), b64url_text, st.text(max_size=20)
)
arbitrary_jwks = st.builds(
    PublicKey,
    kty=st.sampled_from(["RSA", "DSA", "rsa", "dsa", "EC", "", "RSA "]),
    members=st.dictionaries(
        st.sampled_from(["n", "e", "y", "p", "q", "g", "x"]), member_values, max_size=6
    ),
)


def _mutated(jwk: PublicKey, name: str, value: str) -> PublicKey:
    return replace(jwk, members={**jwk.members, name: value})


@settings(deadline=None)
@given(
    data=st.data(),
    nonce=st.binary(max_size=64),
    cnonce=st.binary(max_size=64),
    alg=st.one_of(st.sampled_from(["SHA256", "SHA1", "sha-256", "MD5", ""]), st.text(max_size=8)),
    signature=st.binary(max_size=600),
)
def test_verify_challenge_never_raises(
    jwks: list[PublicKey],
    data: st.DataObject,
    nonce: bytes,
    cnonce: bytes,
    alg: str,
    signature: bytes,
) -> None:
    real = data.draw(st.sampled_from(jwks))
    jwk = data.draw(
        st.one_of(
            st.just(real),
            arbitrary_jwks,
            st.builds(_mutated, st.just(real), st.sampled_from(list(real.members)), member_values),
        )
    )
    assert verify_challenge(jwk, nonce, cnonce, alg, signature) is False


@settings(deadline=None)
@given(data=st.data())
def test_public_key_from_jwk_raises_only_key_format_error(
    jwks: list[PublicKey], data: st.DataObject
) -> None:
    real = data.draw(st.sampled_from(jwks))
    jwk = data.draw(
        st.one_of(
            arbitrary_jwks,
            st.builds(_mutated, st.just(real), st.sampled_from(list(real.members)), member_values),
        )
    )
    try:
        key = public_key_from_jwk(jwk)
    except KeyFormatError:
        return
    assert isinstance(key, rsa.RSAPublicKey | dsa.DSAPublicKey)


def _pem(label: bytes, der: bytes) -> bytes:
    body = base64.encodebytes(der)
    return b"-----BEGIN " + label + b"-----\n" + body + b"-----END " + label + b"-----\n"


def _flip(der: bytes, position: int, value: int) -> bytes:
    position %= len(der)
    return der[:position] + bytes([value]) + der[position + 1 :]


@settings(deadline=None)
@given(data=st.data())
def test_pem_loaders_raise_only_key_format_error(
    rsa_key: rsa.RSAPrivateKey, dsa_key: dsa.DSAPrivateKey, data: st.DataObject
) -> None:
    real_der = data.draw(
        st.sampled_from(
            [
                key.public_key().public_bytes(
                    serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
                )
                for key in (rsa_key, dsa_key)
            ]
        )
    )
    label = data.draw(st.sampled_from([b"PUBLIC KEY", b"PRIVATE KEY", b"RSA PUBLIC KEY", b"X"]))
    pem = data.draw(
        st.one_of(
            st.binary(max_size=300),
            st.builds(_pem, st.just(label), st.binary(max_size=300)),
            st.builds(
                _pem,
                st.just(label),
                st.builds(_flip, st.just(real_der), st.integers(0, 10**4), st.integers(0, 255)),
            ),
            st.builds(_pem, st.just(label), st.just(real_der[: len(real_der) // 2])),
        )
    )
    for load in (load_public_key_pem, load_private_key_pem):
        with contextlib.suppress(KeyFormatError):
            load(pem)
