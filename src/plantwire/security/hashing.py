"""Secrets at rest: argon2id for human passwords, SHA-256 for random machine secrets.

API tokens, session tokens and (later) device secrets are 256-bit random values; hashing them
with SHA-256 is safe (they cannot be guessed or looked up in a dictionary) and makes checking
thousands of them per second cheap. Passwords chosen by people get argon2id (RFC 9106)."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import threading

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

__all__ = ["PasswordHashing", "default_concurrency", "hash_secret", "new_secret", "secrets_equal"]

_TOKEN_PREFIX = "pw_"


def new_secret() -> str:
    """A fresh 256-bit secret, URL-safe, prefixed so that secret scanners can spot leaks."""
    return _TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def secrets_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))


def default_concurrency() -> int:
    """How many argon2 computations may run at once: one per CPU, at least two."""
    return max(2, os.cpu_count() or 2)


class PasswordHashing:
    """argon2id with configurable cost; verifies hashes made with any earlier cost.

    At most ``concurrency`` hashes and verifications run at once (the others wait their turn):
    each one takes ``memory_kib`` of RAM and a CPU for its duration, so a flood of parallel
    logins queues up instead of exhausting memory."""

    def __init__(
        self, time_cost: int = 3, memory_kib: int = 65536, concurrency: int | None = None
    ) -> None:
        self._hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=1)
        self.concurrency = concurrency or default_concurrency()
        self._slots = threading.BoundedSemaphore(self.concurrency)
        # Verifying an unknown user's password against this keeps failed logins equally slow,
        # so response times do not reveal which usernames exist.
        self._decoy = self.hash(secrets.token_urlsafe(16))

    def hash(self, password: str) -> str:
        with self._slots:
            return self._hasher.hash(password)

    def verify(self, stored_hash: str | None, password: str) -> bool:
        try:
            with self._slots:
                matches = self._hasher.verify(stored_hash or self._decoy, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False
        return matches and bool(stored_hash)
