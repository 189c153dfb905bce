"""The recursive resolver: finds a handle's record on the node that holds it, following the
prefix referrals of the Handle.net REST API down from the configured roots, and caches what it
learns.

What an upstream node answers to ``GET /api/handles/{handle}`` (``rest.py`` serves it):

- 200 with responseCode 1 (the values) or 200 (none visible): the record;
- 404 with 100: no such handle; 400 with 102: not a valid handle;
- 300 with 303: ask the site named by the HS_SITE or HS_SITE.PREFIX values of the prefix
  record ``referral`` (``0.NA/88.101``);
- 400 with 301: not responsible. From a root this means no node knows the prefix; from a
  node a referral led to, the hierarchy is broken there.

Anything else (another code, 5xx, a body that is not Handle JSON, a value that does not
decode, a referral to nowhere, no answer within ``timeout``) is a failure of that server, and
the next server of its site is asked.

Caching: answers per handle match key for the least TTL of their values (no such handle and
empty records for ``negative_ttl``; failures never); referral sites per prefix and kind
(HS_SITE: the site of the prefix's own handles; HS_SITE.PREFIX: the site holding the records of
the prefixes under it) for the least TTL of those values. A lookup starts at the cached site of
the longest prefix above the handle, else at the roots. A cached site whose servers all fail
or disown the handle is dropped and the lookup walks again from higher up, so a prefix that
moved is found at its new site at once rather than when its TTL runs out."""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import json
import math
import re
import ssl
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar
from urllib.parse import urlsplit

import httpx

from plantwire.ids.codes import ResponseCode, http_status
from plantwire.ids.handle_json import ValueFormatError, value_from_json
from plantwire.ids.model import HS_SITE, HS_SITE_PREFIX, HandleValue, SiteInfo, SiteServer
from plantwire.ids.names import (
    Handle,
    HandleSyntaxError,
    match_key,
    parse_handle,
    prefix_chain,
    url_path,
)
from plantwire.ids.store import StoredValue

__all__ = ["MAX_ANSWER_BYTES", "Resolution", "Resolver", "ResolverStats"]

MAX_ANSWER_BYTES = 16 * 1024 * 1024  # an upstream answer longer than this is a failure
_HANDLES_PATH = "/api/handles/"
_VERIFICATIONS_PATH = "/api/verifications"
_LIMITS = httpx.Limits(max_connections=512, max_keepalive_connections=128, keepalive_expiry=60)
_HEADERS = {
    "accept": "application/json",
    "accept-encoding": "identity",  # no decompression bombs; answers are small
    "user-agent": "plantwire-resolver",
}
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_HOSTNAME = re.compile(
    r"(?=.{1,253}\Z)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
)
# Referral sites are cached per prefix and kind: the site of the prefix's own handles
# (HS_SITE) and the site of the records of the prefixes under it (HS_SITE.PREFIX).
_OWN, _DERIVED = "site", "prefix"

_Sites = tuple[tuple[str, ...], ...]  # sites in the order to try, each its servers' base URLs
_SiteKey = tuple[str, str]  # (kind, prefix match key)
K = TypeVar("K")
V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class Resolution:
    """How a resolution ended. ``values`` is the whole record in index order (the caller
    filters by index, type and permission); ``handle`` is the text the caller asked for."""

    code: ResponseCode
    handle: str
    values: tuple[StoredValue, ...]
    http_status: int
    message: str | None = None
    from_cache: bool = False


@dataclass(slots=True)
class ResolverStats:
    upstream_requests: int = 0  # HTTP requests sent
    cache_hits: int = 0  # lookups answered from the answer cache
    cache_misses: int = 0  # lookups that went upstream or joined a lookup that did
    coalesced: int = 0  # of those, the ones that joined
    failures: int = 0  # upstream resolutions that ended in ERROR or RECURSION_COUNT_TOO_HIGH


# --- reading an upstream answer (no I/O) ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Search:
    """One handle being resolved, with what the walk needs to know about it."""

    text: str
    key: str
    path: str  # percent-encoded for the URL
    authority: str
    prefixes: tuple[str, ...]  # whose sites may hold or refer the handle, top first
    keys: tuple[str, ...]  # their match keys
    own_key: str | None  # the prefix whose own site holds the handle (None: a prefix record)


def _search_for(handle: Handle) -> _Search:
    """Raises HandleSyntaxError or UnicodeEncodeError for a Handle built without
    ``parse_handle`` that it would have refused."""
    chain = prefix_chain(handle.authority)
    own_key: str | None = match_key(handle.authority)
    if handle.is_prefix_record:  # 0.NA/88.101.5 is held by the node of 88.101
        chain, own_key = chain[:-1], None
    text = str(handle)
    return _Search(
        text=text,
        key=handle.key,
        path=url_path(text),
        authority=handle.authority,
        prefixes=tuple(chain),
        keys=tuple(match_key(prefix) for prefix in chain),
        own_key=own_key,
    )


@dataclass(frozen=True, slots=True)
class _Failed:
    """A server that failed; ``reason`` completes "<host:port> ..."."""

    reason: str
    timed_out: bool = False


@dataclass(frozen=True, slots=True)
class _Final:
    """A resolution's end. ``ttl``: seconds it may be cached (None: not at all);
    ``server``: who answered, when a server did."""

    resolution: Resolution
    ttl: float | None = None
    server: str | None = None


@dataclass(frozen=True, slots=True)
class _Referral:
    key: str  # match key of the prefix whose record referred
    depth: int  # its place in the search's chain, 1 for a top-level prefix
    follow: _Sites
    cache: tuple[tuple[str, _Sites, float], ...]  # (kind, sites, ttl) to remember


def _resolution(
    search: _Search,
    code: ResponseCode,
    message: str | None = None,
    values: tuple[StoredValue, ...] = (),
    status: int | None = None,
) -> Resolution:
    if status is None:
        status = http_status(code, resolution=True)
    return Resolution(code, search.text, values, status, message)


def _too_deep(search: _Search, message: str) -> _Final:
    return _Final(_resolution(search, ResponseCode.RECURSION_COUNT_TOO_HIGH, message, status=502))


def _unanswered(search: _Search, depth: int, failures: Sequence[tuple[str, _Failed]]) -> _Final:
    """The end of a walk whose servers at ``depth`` all failed: 504 if the last timed out."""
    where = "root node" if depth == 0 else f"server of the site for {search.prefixes[depth - 1]}"
    detail = "; ".join(f"{_netloc(server)} {failed.reason}" for server, failed in failures)
    status = 504 if failures and failures[-1][1].timed_out else 502
    message = f"No {where} answered: {detail or 'there was none to ask'}"
    return _Final(_resolution(search, ResponseCode.ERROR, message, status=status))


def _printable(text: str, limit: int = 300) -> str:
    """Upstream text made safe to pass on: valid UTF-8, no control characters, short."""
    clean = text.encode("utf-8", errors="replace").decode("utf-8")
    return _UNPRINTABLE.sub(" ", clean)[:limit]


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"{text} is out of range")
    return number


def _least_ttl(values: Iterable[HandleValue], now: datetime) -> float:
    """Seconds until the first of ``values`` expires (relative TTLs, absolute ones against
    ``now``); infinite when there are none."""
    least = math.inf
    for value in values:
        ttl = value.ttl if isinstance(value.ttl, int) else (value.ttl - now).total_seconds()
        least = min(least, ttl)
    return least


def _decoded(raw: Any) -> list[tuple[HandleValue, str]]:
    """The values of an answer, each with its JSON fragment, in index order."""
    if not isinstance(raw, list):
        raise ValueFormatError("'values' must be a list.")
    decoded = []
    seen: set[int] = set()
    for number, item in enumerate(raw):
        value = value_from_json(item, f"values[{number}]")
        if value.index in seen:
            raise ValueFormatError(f"Two values have index {value.index}.")
        seen.add(value.index)
        try:
            fragment = json.dumps(item, ensure_ascii=False, separators=(",", ":"))
            fragment.encode("utf-8")
        except (UnicodeEncodeError, RecursionError) as error:
            raise ValueFormatError(f"values[{number}] cannot be passed on as UTF-8.") from error
        decoded.append((value, fragment))
    decoded.sort(key=lambda pair: pair[0].index)
    return decoded


def _host(address: str) -> str | None:
    """How ``address`` goes in a URL, or None if it cannot be connected to."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address if _HOSTNAME.fullmatch(address) else None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # how HANDLE.NET writes IPv4 addresses
    if ip.is_unspecified or (isinstance(ip, ipaddress.IPv6Address) and ip.scope_id):
        return None
    return f"[{ip}]" if ip.version == 6 else str(ip)


def _server_url(server: SiteServer) -> str | None:
    """The base URL of a server's REST interface (HTTPS preferred), if it has one."""
    host = _host(server.address)
    usable = [
        interface
        for interface in server.interfaces
        if interface.query and interface.protocol in ("HTTP", "HTTPS") and interface.port > 0
    ]
    if host is None or not usable:
        return None
    chosen = min(usable, key=lambda interface: interface.protocol != "HTTPS")
    return f"{str(chosen.protocol).lower()}://{host}:{chosen.port}"


def _sites_of(values: Iterable[HandleValue]) -> _Sites:
    sites = []
    for value in values:
        if not isinstance(value.data, SiteInfo):
            continue
        urls = (_server_url(server) for server in value.data.servers)
        servers = tuple(dict.fromkeys(url for url in urls if url is not None))
        if servers:
            sites.append(servers)
    return tuple(sites)


def _referral(document: dict[str, Any], search: _Search, depth: int, now: datetime) -> _Outcome:
    named = document.get("referral")
    try:
        record = parse_handle(named) if isinstance(named, str) else None
    except HandleSyntaxError:
        record = None
    if record is None or not record.is_prefix_record:
        return _Failed("referred without naming a prefix record (0.NA/<prefix>)")
    key = match_key(record.suffix)
    if key not in search.keys:
        return _Failed(f"referred to {named}, which is not the record of a prefix above it")
    to = search.keys.index(key) + 1
    if to <= depth:
        return _Failed(f"referred back up to {named}")
    own: list[HandleValue] = []
    derived: list[HandleValue] = []
    for value, _ in _decoded(document.get("values")):
        if isinstance(value.data, SiteInfo) and value.has_type(HS_SITE):
            own.append(value)
        elif isinstance(value.data, SiteInfo) and value.has_type(HS_SITE_PREFIX):
            derived.append(value)
    own_sites, derived_sites = _sites_of(own), _sites_of(derived)
    first, second = (
        (own_sites, derived_sites) if key == search.own_key else (derived_sites, own_sites)
    )
    follow = first or second
    if not follow:
        return _Failed(f"referred to {named} without a server that answers HTTP(S) queries")
    cache = tuple(
        (kind, sites, _least_ttl(values, now))
        for kind, sites, values in ((_OWN, own_sites, own), (_DERIVED, derived_sites, derived))
        if sites
    )
    return _Referral(key, to, follow, cache)


_Outcome = _Final | _Referral | _Failed


def _interpret(
    status: int, body: bytes, search: _Search, depth: int, now: datetime, negative_ttl: float
) -> _Outcome:
    """What one server's answer means for ``search``, asked at ``depth`` (0: a root)."""
    try:
        document = json.loads(body, parse_constant=_no_constant, parse_float=_finite)
    except (ValueError, RecursionError):
        return _Failed(f"answered HTTP {status} with a body that is not JSON")
    if not isinstance(document, dict):
        return _Failed(f"answered HTTP {status} with JSON that is not an object")
    code, echoed, said = (document.get(k) for k in ("responseCode", "handle", "message"))
    if not isinstance(code, int) or isinstance(code, bool):
        return _Failed(f"answered HTTP {status} without a numeric responseCode")
    if echoed is not None and (not isinstance(echoed, str) or match_key(echoed) != search.key):
        return _Failed(f"answered HTTP {status} about another handle")
    message = _printable(said) if isinstance(said, str) else None
    try:
        if status == 200 and code == ResponseCode.SUCCESS:
            decoded = _decoded(document.get("values"))
            if not decoded:
                return _Final(_resolution(search, ResponseCode.VALUES_NOT_FOUND), negative_ttl)
            values = tuple(
                StoredValue(value.index, match_key(value.type), value.is_public, fragment)
                for value, fragment in decoded
            )
            ttl = _least_ttl((value for value, _ in decoded), now)
            return _Final(_resolution(search, ResponseCode.SUCCESS, values=values), ttl)
        if status == 200 and code == ResponseCode.VALUES_NOT_FOUND:
            if document.get("values", []) != []:
                return _Failed("answered responseCode 200 (no values) with values")
            return _Final(_resolution(search, ResponseCode.VALUES_NOT_FOUND), negative_ttl)
        if status == 404 and code == ResponseCode.HANDLE_NOT_FOUND:
            return _Final(_resolution(search, ResponseCode.HANDLE_NOT_FOUND), negative_ttl)
        if status == 400 and code == ResponseCode.INVALID_HANDLE:
            refusal = message or "An upstream node refused the handle as invalid."
            return _Final(_resolution(search, ResponseCode.INVALID_HANDLE, refusal))
        if status == 400 and code == ResponseCode.SERVER_NOT_RESPONSIBLE:
            unknown = f"No node knows prefix {search.authority}."
            return _Final(
                _resolution(search, ResponseCode.SERVER_NOT_RESPONSIBLE, unknown), negative_ttl
            )
        if status == 300 and code == ResponseCode.PREFIX_REFERRAL:
            return _referral(document, search, depth, now)
    except ValueFormatError as error:
        return _Failed(f"answered a value that does not decode ({error})")
    detail = f" ({message})" if message else ""
    return _Failed(f"answered HTTP {status} with responseCode {code}{detail}")


# --- the resolver ---------------------------------------------------------------------------


class _TtlCache(Generic[K, V]):
    """Entries that expire at a clock time; at most ``size``, the least recently used going
    first. O(1) per operation."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()

    def get(self, key: K, now: float) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] <= now:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry[1]

    def put(self, key: K, value: V, expires: float) -> None:
        self._entries[key] = (expires, value)
        self._entries.move_to_end(key)
        if len(self._entries) > self._size:
            self._entries.popitem(last=False)

    def discard(self, key: K) -> None:
        self._entries.pop(key, None)


@dataclass(slots=True)
class _Attempt:
    """What one resolution has learnt so far: referrals followed, servers that failed."""

    referrals: int = 0
    failed: dict[str, _Failed] = field(default_factory=dict)


def _echo(resolution: Resolution, text: str, *, from_cache: bool) -> Resolution:
    if resolution.handle == text and resolution.from_cache is from_cache:
        return resolution
    return replace(resolution, handle=text, from_cache=from_cache)


def _base_url(root: str) -> str:
    parts = urlsplit(root)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query:
        raise ValueError(f"A root is an http(s) base URL such as http://192.0.2.1:8000: {root!r}")
    return root.rstrip("/")


def _netloc(server: str) -> str:
    return server.partition("://")[2]


def _private(server: str) -> bool:
    """Whether a secret may be sent to ``server``: over HTTPS, or to this host."""
    parts = urlsplit(server)
    if parts.scheme == "https" or parts.hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(parts.hostname or "").is_loopback
    except ValueError:
        return False


def _connect_failure(error: httpx.ConnectError) -> str:
    cause: BaseException | None = error
    for _ in range(8):  # httpx wraps httpcore, which wraps anyio's OSError, which wraps...
        if cause is None:
            break
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        cause = cause.__cause__ or cause.__context__
    return f"could not connect ({error or type(error).__name__})"


class Resolver:
    """Resolves handles held by other nodes, starting at ``roots`` (base URLs of the root
    nodes, tried in order). One instance per node; its methods run on one event loop."""

    def __init__(
        self,
        roots: Sequence[str],
        *,
        timeout: float = 3.0,
        negative_ttl: float = 10.0,
        max_referrals: int = 10,
        max_entries: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
        transport: httpx.AsyncBaseTransport | None = None,
        verify: ssl.SSLContext | str | bool = True,
    ) -> None:
        self.roots = tuple(_base_url(root) for root in roots)
        if not self.roots:
            raise ValueError("A resolver needs at least one root node.")
        if timeout <= 0 or negative_ttl < 0 or max_referrals < 0 or max_entries < 1:
            raise ValueError("timeout must be positive, max_entries at least 1, and neither")
        self.timeout = timeout
        self.negative_ttl = negative_ttl
        self.max_referrals = max_referrals
        self.stats = ResolverStats()
        self._clock = clock
        self._transport = transport
        # httpx 0.28 deprecates a CA file path for ``verify``: make the context here.
        if isinstance(verify, str):
            verify = ssl.create_default_context(cafile=verify)
        self._verify = verify
        self._answers: _TtlCache[str, Resolution] = _TtlCache(max_entries)
        self._sites: _TtlCache[_SiteKey, _Sites] = _TtlCache(max_entries)
        self._inflight: dict[str, asyncio.Task[_Final]] = {}
        self._client: httpx.AsyncClient | None = None

    # --- public ---------------------------------------------------------------------------

    def cached(self, handle: Handle) -> Resolution | None:
        """The live cached answer for ``handle``, or None. No I/O."""
        hit = self._answers.get(handle.key, self._clock())
        if hit is None:
            return None
        self.stats.cache_hits += 1
        return _echo(hit, str(handle), from_cache=True)

    async def resolve(self, handle: Handle, *, bypass_cache: bool = False) -> Resolution:
        """Resolve ``handle`` (its whole record). ``bypass_cache`` skips the answer cache for
        this lookup, and the fresh answer replaces the cached one. Concurrent lookups of one
        handle share one upstream resolution. Never raises on anything an upstream does."""
        text, key = str(handle), handle.key
        if not bypass_cache:
            hit = self._answers.get(key, self._clock())
            if hit is not None:
                self.stats.cache_hits += 1
                return _echo(hit, text, from_cache=True)
        self.stats.cache_misses += 1
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.create_task(self._fetch(handle), name=f"resolve {text}")
            self._inflight[key] = task
            task.add_done_callback(functools.partial(self._settled, key))
        else:
            self.stats.coalesced += 1
        # Shielded: a caller that gives up does not cancel the lookup the others await.
        final = await asyncio.shield(task)
        return _echo(final.resolution, text, from_cache=False)

    async def verify_secret(self, handle: Handle, index: int, secret: str) -> bool:
        """Whether ``secret`` is the secret key at ``index`` of ``handle``, as the node that
        holds the record says (``POST /api/verifications``). False on any failure; the secret
        goes only over HTTPS or to this host, and nothing of it is cached."""
        final = await self._upstream(handle)
        answered = (ResponseCode.SUCCESS, ResponseCode.VALUES_NOT_FOUND)
        server = final.server
        if server is None or final.resolution.code not in answered or not _private(server):
            return False
        request = {"id": f"{index}:{handle}", "secret": secret}
        answer = await self._exchange("POST", server + _VERIFICATIONS_PATH, request)
        if isinstance(answer, _Failed):
            return False
        status, body = answer
        try:
            document = json.loads(body)
        except (ValueError, RecursionError):
            return False
        return (
            status == 200
            and isinstance(document, dict)
            and document.get("responseCode") == ResponseCode.SUCCESS
            and document.get("verified") is True
        )

    async def aclose(self) -> None:
        """Cancel lookups under way and close the HTTP connections."""
        tasks = list(self._inflight.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    # --- one upstream resolution ----------------------------------------------------------

    def _settled(self, key: str, task: asyncio.Task[_Final]) -> None:
        if self._inflight.get(key) is task:
            del self._inflight[key]
        if not task.cancelled():
            task.exception()  # retrieved: whoever awaited it has it; nobody else must log it

    async def _fetch(self, handle: Handle) -> _Final:
        final = await self._upstream(handle)
        code = final.resolution.code
        if code in (ResponseCode.ERROR, ResponseCode.RECURSION_COUNT_TOO_HIGH):
            self.stats.failures += 1
        if final.ttl is not None and final.ttl > 0:
            cached = _echo(final.resolution, final.resolution.handle, from_cache=True)
            self._answers.put(handle.key, cached, self._clock() + final.ttl)
        elif final.ttl is not None:
            self._answers.discard(handle.key)
        return final

    async def _upstream(self, handle: Handle) -> _Final:
        try:
            search = _search_for(handle)
        except (HandleSyntaxError, UnicodeEncodeError) as error:
            code = ResponseCode.INVALID_HANDLE
            return _Final(Resolution(code, str(handle), (), http_status(code), str(error)))
        attempt = _Attempt()
        # Each walk that fails at a cached site drops that site, so this ends: at worst
        # once per prefix of the chain, then from the roots.
        for _ in range(2 * len(search.keys) + 2):
            outcome = await self._walk(search, attempt)
            if isinstance(outcome, _Final):
                return outcome
            self._sites.discard(outcome)
        message = f"Gave up resolving {search.text}: every cached site failed."
        return _Final(_resolution(search, ResponseCode.ERROR, message, status=502))

    def _start(self, search: _Search) -> tuple[int, _Sites, _SiteKey | None]:
        """Where a walk starts: the cached site of the longest prefix above the handle (its
        depth, the sites, the cache key), else the roots."""
        now = self._clock()
        for depth in range(len(search.keys), 0, -1):
            key = search.keys[depth - 1]
            kinds = (_OWN, _DERIVED) if key == search.own_key else (_DERIVED, _OWN)
            for kind in kinds:
                sites = self._sites.get((kind, key), now)
                if sites is not None:
                    return depth, sites, (kind, key)
        return 0, (self.roots,), None

    async def _walk(self, search: _Search, attempt: _Attempt) -> _Final | _SiteKey:
        """Follow referrals to the record. Returns the cache key of the site it started from
        when that site failed (it may be stale)."""
        depth, sites, start = self._start(search)
        referred: set[str] = set()  # servers that referred this handle: asking again loops
        while True:
            outcome, server = await self._ask_site(search, sites, depth, referred, attempt)
            if isinstance(outcome, _Referral):
                attempt.referrals += 1
                now = self._clock()
                for kind, cached_sites, ttl in outcome.cache:
                    if ttl > 0:
                        self._sites.put((kind, outcome.key), cached_sites, now + ttl)
                    else:
                        self._sites.discard((kind, outcome.key))
                if attempt.referrals > self.max_referrals:
                    limit = f"More than {self.max_referrals} referrals resolving {search.text}."
                    return _too_deep(search, limit)
                depth, sites, start = outcome.depth, outcome.follow, None
            elif isinstance(outcome, _Final):
                return replace(outcome, server=server)
            elif start is not None:
                return start
            else:
                return _unanswered(search, depth, outcome)

    async def _ask_site(
        self,
        search: _Search,
        sites: _Sites,
        depth: int,
        referred: set[str],
        attempt: _Attempt,
    ) -> tuple[_Final | _Referral | tuple[tuple[str, _Failed], ...], str | None]:
        """Ask the servers of ``sites`` in turn until one answers; the answer and who gave
        it, or every server's failure."""
        failures: list[tuple[str, _Failed]] = []
        for site in sites:
            for server in site:
                if server in referred:
                    again = f"{_netloc(server)} was referred to again for {search.text}"
                    return _too_deep(search, f"Referral loop: {again}."), None
                failed = attempt.failed.get(server)
                if failed is None:
                    outcome = await self._ask(server, search, depth)
                    if isinstance(outcome, _Referral):
                        referred.add(server)
                        return outcome, server
                    if isinstance(outcome, _Final):
                        code = outcome.resolution.code
                        if code is not ResponseCode.SERVER_NOT_RESPONSIBLE or depth == 0:
                            return outcome, server
                        outcome = _Failed("answered that it is not responsible for it")
                    attempt.failed[server] = failed = outcome
                failures.append((server, failed))
        return tuple(failures), None

    async def _ask(self, server: str, search: _Search, depth: int) -> _Outcome:
        answer = await self._exchange("GET", server + _HANDLES_PATH + search.path)
        if isinstance(answer, _Failed):
            return answer
        status, body = answer
        return _interpret(status, body, search, depth, datetime.now(UTC), self.negative_ttl)

    # --- HTTP -----------------------------------------------------------------------------

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                transport=self._transport,
                verify=self._verify,
                timeout=self.timeout,
                limits=_LIMITS,
                headers=_HEADERS,
                follow_redirects=False,
                trust_env=False,  # no proxies or CA bundles from the environment
            )
        return self._client

    async def _exchange(
        self, method: str, url: str, payload: Any = None
    ) -> tuple[int, bytes] | _Failed:
        """One request: the status and body, or how it failed. Never longer than
        ``timeout`` all told, never more than MAX_ANSWER_BYTES read."""
        client = self._http()
        self.stats.upstream_requests += 1
        try:
            async with (
                asyncio.timeout(self.timeout),
                client.stream(method, url, json=payload) as response,
            ):
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_ANSWER_BYTES:
                        return _Failed(f"answered more than {MAX_ANSWER_BYTES} bytes")
                return response.status_code, bytes(body)
        except (TimeoutError, httpx.TimeoutException):
            return _Failed(f"did not answer within {self.timeout:g} s", timed_out=True)
        except httpx.ConnectError as error:
            return _Failed(_connect_failure(error))
        except (httpx.HTTPError, httpx.InvalidURL) as error:
            return _Failed(f"failed ({type(error).__name__}: {error})")
