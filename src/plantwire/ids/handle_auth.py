"""Who is asking: Handle System authentication on the REST API (HANDLE.NET 9's
``StandardHandleAuthenticationFilter`` and ``SessionsServlet``), without I/O of its own.

An identity is a value reference ``index:handle``: the HS_SECKEY or HS_PUBKEY value that holds
its key. It proves itself in one of two ways:

- HTTP Basic, per request: the username is ``index%3Ahandle`` (percent-decoded; no digits
  before a colon means index 0, "any key value of the handle") and the password is the
  secret key. Secret keys are stored hashed (argon2id), so the secret itself never rests on
  disk; a node that does not hold the identity's record asks the node that does to verify
  it (``POST /api/verifications``).
- Challenge-response (``Authorization: Handle ...``): the server hands out a session and a
  nonce (``POST /api/sessions``, or a 401 with ``WWW-Authenticate: Handle sessionId=..,
  nonce=..``); the client signs ``nonce ‖ cnonce`` with the private key of an HS_PUBKEY value
  and sends ``id``, ``type``, ``alg``, ``cnonce`` and ``signature``; later requests name only
  the ``sessionId``. Each nonce answers one attempt: it is replaced after every try, so a
  captured signature cannot be replayed.

Because secret keys are kept hashed, the HS_SECKEY form of the challenge (a digest over the
secret and the nonces) cannot be checked and is refused with a message saying so."""

from __future__ import annotations

import base64
import binascii
import functools
import hmac
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from urllib.parse import unquote

from plantwire.ids.keys import verify_challenge
from plantwire.ids.model import HS_PUBKEY, HS_SECKEY, HandleValue, PublicKey, ValueRef
from plantwire.ids.names import HandleSyntaxError, parse_handle
from plantwire.security.hashing import PasswordHashing

__all__ = [
    "SECRET_HASH_PREFIX",
    "AuthHeaderError",
    "Authenticator",
    "BasicCredentials",
    "BearerCredentials",
    "ChallengeSession",
    "HandleCredentials",
    "SecretKeys",
    "SessionTable",
    "parse_authorization",
    "parse_identity",
]

SECRET_HASH_PREFIX = b"$argon2id$"
_FIELD = re.compile(r'\s*([A-Za-z]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,"]*))\s*(?:,|$)')
_DIGITS = re.compile(r"[0-9]{1,10}")
MAX_HEADER = 16 * 1024


class AuthHeaderError(ValueError):
    """An Authorization header that cannot be read; the message says why."""


@dataclass(frozen=True, slots=True)
class BasicCredentials:
    identity: ValueRef
    secret: str


@dataclass(frozen=True, slots=True)
class BearerCredentials:
    """A platform API or session token (only inside the platform)."""

    token: str


@dataclass(frozen=True, slots=True)
class HandleCredentials:
    """The fields of ``Authorization: Handle k="v", ...`` (keys lower-cased)."""

    fields: Mapping[str, str]

    @property
    def session_id(self) -> str | None:
        return self.fields.get("sessionid")

    @property
    def authenticating(self) -> bool:
        """Whether the header carries a proof (HANDLE.NET: any of id, type, alg, signature)."""
        return any(name in self.fields for name in ("id", "type", "alg", "signature"))


def parse_identity(text: str) -> ValueRef:
    """``index:handle`` (or a bare handle, index 0) as a value reference."""
    head, colon, rest = text.partition(":")
    if colon and _DIGITS.fullmatch(head):
        index, handle_text = int(head), rest
    else:
        index, handle_text = 0, text
    try:
        handle = parse_handle(handle_text)
    except HandleSyntaxError as error:
        raise AuthHeaderError(f"Bad identity {text!r}: {error}") from error
    return ValueRef(str(handle), index)


def _b64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as error:
        raise AuthHeaderError(f"{what} is not base64.") from error


def parse_authorization(
    header: str | None,
) -> BasicCredentials | HandleCredentials | BearerCredentials | None:
    """The credentials an ``Authorization`` header carries; None without one."""
    if header is None or not header.strip():
        return None
    if len(header) > MAX_HEADER:
        raise AuthHeaderError("The Authorization header is too long.")
    scheme, _, rest = header.strip().partition(" ")
    scheme = scheme.lower()
    if scheme == "basic":
        raw = _b64(rest.strip(), "The Basic credentials")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise AuthHeaderError("The Basic credentials are not UTF-8.") from error
        username, colon, password = text.partition(":")
        if not colon:
            raise AuthHeaderError("Basic credentials are 'username:password'.")
        return BasicCredentials(parse_identity(unquote(username)), password)
    if scheme == "bearer":
        return BearerCredentials(rest.strip())
    if scheme == "handle":
        return _handle_credentials(rest.strip())
    raise AuthHeaderError(f"Unknown authorization scheme {scheme!r}: use Basic or Handle.")


@functools.lru_cache(maxsize=1024)  # a client sends the same session header on every request
def _handle_credentials(rest: str) -> HandleCredentials:
    fields: dict[str, str] = {}
    position = 0
    while position < len(rest):
        match = _FIELD.match(rest, position)
        if match is None or match.end() == position:
            raise AuthHeaderError("The Handle authorization fields cannot be read.")
        name = match.group(1).lower()
        value = match.group(2) if match.group(2) is not None else match.group(3)
        fields[name] = re.sub(r"\\(.)", r"\1", value)
        position = match.end()
    if fields.get("version", "0") != "0":
        raise AuthHeaderError("Only version 0 of Handle authorization is known.")
    if "id" in fields:
        fields["id"] = unquote(fields["id"])
    return HandleCredentials(MappingProxyType(fields))  # shared: read-only


# --- challenge sessions ------------------------------------------------------------------


@dataclass(slots=True)
class ChallengeSession:
    id: str
    nonce: bytes
    expires: float
    identity: ValueRef | None = None

    @property
    def nonce_b64(self) -> str:
        return base64.b64encode(self.nonce).decode()


@dataclass(slots=True)
class SessionTable:
    """The node's challenge sessions, in memory (a session belongs to one server process; a
    client whose server is replaced starts a new one). Sessions not yet authenticated — every
    401 hands one out, to anyone — live in a smaller pool with a short idle time, so a flood
    of challenges cannot push authenticated sessions out. Both pools are bounded: the oldest
    go first."""

    idle_seconds: float = 1800.0
    max_sessions: int = 100_000
    clock: Callable[[], float] = time.monotonic
    challenge_seconds: float = 120.0
    max_challenges: int = 20_000
    _sessions: OrderedDict[str, ChallengeSession] = field(default_factory=OrderedDict)
    _challenges: OrderedDict[str, ChallengeSession] = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def create(self) -> ChallengeSession:
        session = ChallengeSession(
            secrets.token_urlsafe(24),
            secrets.token_bytes(16),
            self.clock() + self.challenge_seconds,
        )
        with self._lock:
            self._challenges[session.id] = session
            while len(self._challenges) > self.max_challenges:
                self._challenges.popitem(last=False)
        return session

    def get(self, session_id: str) -> ChallengeSession | None:
        with self._lock:
            now = self.clock()
            for pool, idle in (
                (self._sessions, self.idle_seconds),
                (self._challenges, self.challenge_seconds),
            ):
                session = pool.get(session_id)
                if session is None:
                    continue
                if session.expires <= now:
                    del pool[session_id]
                    return None
                session.expires = now + idle
                pool.move_to_end(session_id)
                return session
            return None

    def take_nonce(self, session: ChallengeSession) -> bytes:
        """The session's nonce, replaced at once: each nonce answers one attempt."""
        with self._lock:
            nonce = session.nonce
            session.nonce = secrets.token_bytes(16)
            return nonce

    def authenticated(self, session: ChallengeSession, identity: ValueRef | None) -> None:
        """Record the outcome of a proof: a proven session joins the long-lived pool."""
        with self._lock:
            session.identity = identity
            if identity is None or session.id in self._sessions:
                return
            self._challenges.pop(session.id, None)
            session.expires = self.clock() + self.idle_seconds
            self._sessions[session.id] = session
            while len(self._sessions) > self.max_sessions:
                self._sessions.popitem(last=False)

    def delete(self, session_id: str) -> bool:
        with self._lock:
            found = self._sessions.pop(session_id, None) or self._challenges.pop(session_id, None)
            return found is not None

    def __len__(self) -> int:
        return len(self._sessions) + len(self._challenges)


# --- secret keys -------------------------------------------------------------------------


class SecretKeys:
    """HS_SECKEY values at rest: argon2id hashes. A verified secret is remembered for a
    while (under a keyed digest that exists only in this process's memory), so a client
    sending Basic credentials with each request pays for argon2 once, not every time."""

    def __init__(
        self,
        hashing: PasswordHashing,
        remember_seconds: float = 300.0,
        max_remembered: int = 10_000,
    ) -> None:
        self.hashing = hashing
        self.remember_seconds = remember_seconds
        self.max_remembered = max_remembered
        self._key = secrets.token_bytes(32)
        self._verified: OrderedDict[bytes, float] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def is_hashed(data: bytes) -> bool:
        return data.startswith(SECRET_HASH_PREFIX)

    def hash(self, secret: bytes) -> bytes:
        return self.hashing.hash(secret.decode("utf-8", errors="surrogateescape")).encode()

    def verify(self, stored: bytes, secret: str) -> bool:
        if not self.is_hashed(stored):
            return False  # never compare against a secret kept in clear
        memo = hmac.digest(
            self._key, stored + b"\0" + secret.encode("utf-8", "surrogatepass"), "sha256"
        )
        now = time.monotonic()
        with self._lock:
            until = self._verified.get(memo)
            if until is not None and until > now:
                return True
        if not self.hashing.verify(stored.decode("ascii", errors="replace"), secret):
            return False
        with self._lock:
            self._verified[memo] = now + self.remember_seconds
            self._verified.move_to_end(memo)
            while len(self._verified) > self.max_remembered:
                self._verified.popitem(last=False)
        return True


# --- checking proofs ---------------------------------------------------------------------

#: The values of a handle, or None if there is no such handle (local store or resolver).
RecordReader = Callable[[str], Sequence[HandleValue] | None]
#: Asks the node that holds the identity's record whether the secret is right.
RemoteVerifier = Callable[[ValueRef, str], bool]


def _candidates(
    values: Sequence[HandleValue], identity: ValueRef, value_type: str
) -> list[HandleValue]:
    return [
        value
        for value in values
        if value.has_type(value_type) and identity.index in (0, value.index)
    ]


class Authenticator:
    """Checks an identity's proof against the key values of its record. ``held_here`` says
    whether this node holds the identity's record (then secrets are checked here);
    ``read`` reads records (locally or through the resolver; public keys are public)."""

    def __init__(
        self,
        secret_keys: SecretKeys,
        read: RecordReader,
        held_here: Callable[[str], bool],
        verify_elsewhere: RemoteVerifier | None = None,
    ) -> None:
        self.secret_keys = secret_keys
        self.read = read
        self.held_here = held_here
        self.verify_elsewhere = verify_elsewhere

    def check_secret(self, identity: ValueRef, secret: str) -> ValueRef | None:
        """The identity (with its index resolved) if ``secret`` is its secret key."""
        if not self.held_here(identity.handle):
            if self.verify_elsewhere is None:
                return None
            return identity if self.verify_elsewhere(identity, secret) else None
        values = self.read(identity.handle) or ()
        for value in _candidates(values, identity, HS_SECKEY):
            if isinstance(value.data, bytes) and self.secret_keys.verify(value.data, secret):
                return ValueRef(identity.handle, value.index)
        return None

    def check_signature(
        self,
        identity: ValueRef,
        nonce: bytes,
        credentials: HandleCredentials,
    ) -> ValueRef | None:
        """The identity if ``credentials`` sign ``nonce ‖ cnonce`` with one of its public
        keys. Raises AuthHeaderError when fields are missing or the type is not HS_PUBKEY."""
        fields = credentials.fields
        missing = [
            name for name in ("id", "cnonce", "type", "alg", "signature") if name not in fields
        ]
        if missing:
            raise AuthHeaderError(f"Missing fields in authentication data: {', '.join(missing)}.")
        if fields["type"].upper() == HS_SECKEY:
            raise AuthHeaderError(
                "Secret keys are stored hashed here, so they cannot answer a challenge: "
                "send them with HTTP Basic (over HTTPS), or authenticate with an HS_PUBKEY."
            )
        if fields["type"].upper() != HS_PUBKEY:
            raise AuthHeaderError(f"Unknown authentication type {fields['type']!r}.")
        cnonce = _b64(fields["cnonce"], "cnonce")
        signature = _b64(fields["signature"], "signature")
        values = self.read(identity.handle) or ()
        for value in _candidates(values, identity, HS_PUBKEY):
            if isinstance(value.data, PublicKey) and verify_challenge(
                value.data, nonce, cnonce, fields["alg"], signature
            ):
                return ValueRef(identity.handle, value.index)
        return None
