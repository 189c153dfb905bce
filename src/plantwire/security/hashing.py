"""Secrets at rest: argon2id for human passwords, SHA-256 for random machine secrets.

API tokens, session tokens and (later) device secrets are 256-bit random values; hashing them
with SHA-256 is safe (they cannot be guessed or looked up in a dictionary) and makes checking
thousands of them per second cheap. Passwords chosen by people get argon2id (RFC 9106)."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

__all__ = ["PasswordHashing", "hash_secret", "new_secret", "secrets_equal"]

_TOKEN_PREFIX = "pw_"


def new_secret() -> str:
    """A fresh 256-bit secret, URL-safe, prefixed so that secret scanners can spot leaks."""
    return _TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def secrets_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))


class PasswordHashing:
    """argon2id with configurable cost; verifies hashes made with any earlier cost."""

    def __init__(self, time_cost: int = 3, memory_kib: int = 65536) -> None:
        self._hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=1)
        # Verifying an unknown user's password against this keeps failed logins equally slow,
        # so response times do not reveal which usernames exist.
        self._decoy = self._hasher.hash(secrets.token_urlsafe(16))

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, stored_hash: str | None, password: str) -> bool:
        try:
            return self._hasher.verify(stored_hash or self._decoy, password) and bool(stored_hash)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False
