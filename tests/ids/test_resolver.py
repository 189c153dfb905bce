"""The recursive resolver against real nodes on loopback ports (small ASGI apps answering canned
Handle.net JSON, served by uvicorn): referral chains, both caches and their TTLs, coalescing,
failing and misbehaving servers. Only the fuzz test and the address test use a mock transport,
since the network is not their point."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote

import httpx
import pytest
import uvicorn
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from starlette.types import Receive, Scope, Send

from plantwire.ids.codes import ResponseCode
from plantwire.ids.handle_json import value_to_json
from plantwire.ids.model import (
    HS_SITE,
    HS_SITE_PREFIX,
    AdminPermission,
    AdminRef,
    HandleValue,
    SiteInfo,
    SiteInterface,
    SiteServer,
)
from plantwire.ids.names import Handle, match_key, parse_handle, prefix_chain
from plantwire.ids.resolver import Resolution, Resolver

UNIT = "88.101.5/SN-000123"
OTHER = "88.101.5/SN-2"
VALUES = [
    value_to_json(HandleValue(1, "URL", b"https://plant.example/units/SN-000123")),
    value_to_json(HandleValue(2, "EMAIL", b"qa@plant.example")),
    value_to_json(HandleValue(100, "HS_ADMIN", AdminRef("0.NA/88.101.5", 200, AdminPermission(0)))),
]
Json = dict[str, Any]
Answer = tuple[int, bytes]


def answer(status: int, document: Any) -> Answer:
    return status, json.dumps(document).encode()


def site(
    *ports: int,
    ttl: int | datetime = 86400,
    kind: str = HS_SITE,
    index: int = 1,
    address: str = "127.0.0.1",
    protocol: str = "HTTP",
) -> Json:
    servers = tuple(
        SiteServer(n + 1, address, None, (SiteInterface(True, True, protocol, port),))
        for n, port in enumerate(ports)
    )
    info = SiteInfo(1, "2.10", 1, True, False, servers)
    return value_to_json(HandleValue(index, kind, info, ttl=ttl))


def url_value(target: str, ttl: int | datetime = 86400) -> Json:
    return value_to_json(HandleValue(1, "URL", target.encode(), ttl=ttl))


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def handle(text: str) -> Handle:
    return parse_handle(text)


class FakeNode:
    """A node that answers ``GET /api/handles/{handle}`` as ``rest.py`` does, from canned
    records and referrals, and remembers what it was asked."""

    def __init__(self, *homed: str) -> None:
        self.homed = {match_key(prefix) for prefix in homed}
        self.records: dict[str, list[Json]] = {}
        self.referrals: dict[str, tuple[str, list[Json]]] = {}
        self.canned: dict[str, Answer] = {}
        self.always: Answer | None = None
        self.requests: list[str] = []
        self.queries: list[bytes] = []
        self.gate: asyncio.Event | None = None
        self.silent = False
        self.secrets: dict[str, str] = {}  # "index:handle" -> secret

    def add(self, text: str, *values: Json) -> None:
        self.records[handle(text).key] = list(values)

    def refer(self, prefix: str, *values: Json) -> None:
        self.referrals[match_key(prefix)] = (f"0.NA/{prefix}", list(values))

    def asked(self, text: str) -> int:
        return sum(match_key(asked) == match_key(text) for asked in self.requests)

    def answer(self, text: str) -> Answer:
        if self.always is not None:
            return self.always
        asked = handle(text)
        if asked.key in self.canned:
            return self.canned[asked.key]
        if asked.key in self.records:
            values = self.records[asked.key]
            return answer(
                200, {"responseCode": 1 if values else 200, "handle": text, "values": values}
            )
        chain = prefix_chain(asked.authority)
        if asked.is_prefix_record:
            chain = chain[:-1]
        for prefix in reversed(chain):
            if match_key(prefix) in self.referrals:
                record, values = self.referrals[match_key(prefix)]
                body = {"responseCode": 303, "handle": text, "referral": record, "values": values}
                return answer(300, body)
        if any(match_key(prefix) in self.homed for prefix in chain):
            return answer(404, {"responseCode": 100, "handle": text})
        return answer(400, {"responseCode": 301, "handle": text, "message": "Not here"})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http"
        path = scope["raw_path"].decode("ascii")
        if scope["method"] == "POST" and path == "/api/verifications":
            request = await receive()
            document = json.loads(request["body"])
            verified = self.secrets.get(document["id"]) == document["secret"]
            status, body = answer(200, {"responseCode": 1, "verified": verified})
        else:
            text = unquote(path.removeprefix("/api/handles/"), errors="strict")
            self.requests.append(text)
            self.queries.append(scope["query_string"])
            if self.silent:  # until the client hangs up
                while (await receive())["type"] != "http.disconnect":
                    pass
                return
            if self.gate is not None:
                await self.gate.wait()
            status, body = self.answer(text)
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


Serve = Callable[[FakeNode], Awaitable[int]]
MakeResolver = Callable[..., Resolver]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Start a node on an ephemeral loopback port; all are stopped after the test."""
    running: list[tuple[uvicorn.Server, asyncio.Task[None]]] = []

    async def start(node: FakeNode) -> int:
        config = uvicorn.Config(
            node,
            host="127.0.0.1",
            port=0,
            log_level="warning",
            lifespan="off",
            http="h11",
            ws="none",
            timeout_graceful_shutdown=2,
        )
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve())
        running.append((server, task))
        while not server.started:
            if task.done():
                await task
                raise RuntimeError("the node did not start")
            await asyncio.sleep(0.005)
        return int(server.servers[0].sockets[0].getsockname()[1])

    yield start
    for server, _ in running:
        server.should_exit = True
    await asyncio.gather(*(task for _, task in running))


@pytest.fixture
async def make_resolver(serve: Serve) -> AsyncIterator[MakeResolver]:
    """Resolvers on root ports (or URLs), closed after the test, before the nodes stop."""
    made: list[Resolver] = []

    def make(*roots: int | str, **options: Any) -> Resolver:
        urls = [f"http://127.0.0.1:{root}" if isinstance(root, int) else root for root in roots]
        resolver = Resolver(urls, **options)
        made.append(resolver)
        return resolver

    yield make
    for resolver in made:
        await resolver.aclose()


class Tree:
    """root → top (homes 88) → secondary (88.101) → enterprise (88.101.5), each referring
    to the next by an HS_SITE value of the next prefix's record."""

    def __init__(self, serve: Serve) -> None:
        self.serve = serve
        self.root = FakeNode()
        self.top = FakeNode("88")
        self.secondary = FakeNode("88.101")
        self.enterprise = FakeNode("88.101.5")
        self.port: dict[str, int] = {}

    async def start(self) -> Tree:
        for name in ("root", "top", "secondary", "enterprise"):
            self.port[name] = await self.serve(getattr(self, name))
        self.root.refer("88", site(self.port["top"]))
        self.top.refer("88.101", site(self.port["secondary"]))
        self.secondary.refer("88.101.5", site(self.port["enterprise"]))
        self.secondary.add("0.NA/88.101.5", VALUES[2])
        self.enterprise.add(UNIT, *VALUES)
        self.enterprise.add(OTHER, url_value("https://plant.example/units/2"))
        return self

    @property
    def nodes(self) -> list[FakeNode]:
        return [self.root, self.top, self.secondary, self.enterprise]


@pytest.fixture
async def tree(serve: Serve) -> Tree:
    return await Tree(serve).start()


# --- referrals --------------------------------------------------------------------------------


async def test_a_chain_of_referrals_resolves(tree: Tree, make_resolver: MakeResolver) -> None:
    resolver = make_resolver(tree.port["root"])
    result = await resolver.resolve(handle(UNIT))
    assert result.code is ResponseCode.SUCCESS
    assert result.http_status == 200
    assert result.handle == UNIT
    assert not result.from_cache
    assert result.message is None
    assert [value.index for value in result.values] == [1, 2, 100]
    assert [value.type_key for value in result.values] == ["url", "email", "hs_admin"]
    assert all(value.public_read for value in result.values)
    compact = [json.dumps(v, ensure_ascii=False, separators=(",", ":")) for v in VALUES]
    assert [value.json for value in result.values] == compact
    assert result.values[0].decode().data == b"https://plant.example/units/SN-000123"
    # One request per node; the whole record is asked for (no index/type filter), so one
    # cache entry serves every filter the REST layer applies afterwards.
    assert [node.requests for node in tree.nodes] == [[UNIT]] * 4
    assert {query for node in tree.nodes for query in node.queries} == {b""}
    assert resolver.stats.upstream_requests == 4


async def test_the_second_lookup_is_answered_from_the_cache(
    tree: Tree, make_resolver: MakeResolver
) -> None:
    resolver = make_resolver(tree.port["root"])
    first = await resolver.resolve(handle(UNIT))
    again = await resolver.resolve(handle(UNIT.lower()))
    assert again.from_cache
    assert again.handle == UNIT.lower()  # echoed as asked
    assert again.values == first.values
    hot = resolver.cached(handle(UNIT))
    assert hot is not None
    assert hot.from_cache
    assert hot.handle == UNIT
    assert resolver.cached(handle(OTHER)) is None
    assert resolver.stats.upstream_requests == 4
    assert (resolver.stats.cache_hits, resolver.stats.cache_misses) == (2, 1)


async def test_another_handle_under_the_prefix_goes_straight_to_its_node(
    tree: Tree, make_resolver: MakeResolver
) -> None:
    resolver = make_resolver(tree.port["root"])
    await resolver.resolve(handle(UNIT))
    result = await resolver.resolve(handle(OTHER))
    assert result.code is ResponseCode.SUCCESS
    assert tree.enterprise.requests == [UNIT, OTHER]
    assert [len(node.requests) for node in tree.nodes[:3]] == [1, 1, 1]


async def test_a_prefix_record_is_read_from_the_node_of_its_parent(
    tree: Tree, make_resolver: MakeResolver
) -> None:
    resolver = make_resolver(tree.port["root"])
    record = await resolver.resolve(handle("0.NA/88.101.5"))
    assert record.code is ResponseCode.SUCCESS
    assert [value.type_key for value in record.values] == ["hs_admin"]
    assert tree.enterprise.requests == []  # the record lives with 88.101, not with 88.101.5
    await resolver.resolve(handle(UNIT))  # the cached referrals to 88 and 88.101 serve it
    assert tree.root.requests == ["0.NA/88.101.5"]
    assert tree.top.requests == ["0.NA/88.101.5"]
    tree.root.add("0.NA/88", VALUES[2])  # a top-level prefix's record is the root's
    assert (await resolver.resolve(handle("0.NA/88"))).code is ResponseCode.SUCCESS
    assert tree.root.requests == ["0.NA/88.101.5", "0.NA/88"]


async def test_a_site_for_derived_prefixes_is_used_for_them(
    serve: Serve, make_resolver: MakeResolver
) -> None:
    """HS_SITE.PREFIX names the site holding the records of the prefixes under one; HS_SITE
    the site of the prefix's own handles. Both are cached, each for its own use."""
    root, handles_of_88, prefixes_of_88 = FakeNode(), FakeNode("88"), FakeNode()
    ports = [await serve(node) for node in (root, handles_of_88, prefixes_of_88)]
    root.refer("88", site(ports[1]), site(ports[2], kind=HS_SITE_PREFIX, index=2))
    handles_of_88.add("88/direct", url_value("https://a.example"))
    prefixes_of_88.add("0.NA/88.101", url_value("https://b.example"))
    resolver = make_resolver(ports[0])
    assert (await resolver.resolve(handle("0.NA/88.101"))).code is ResponseCode.SUCCESS
    assert (await resolver.resolve(handle("88/direct"))).code is ResponseCode.SUCCESS
    assert root.requests == ["0.NA/88.101"]
    assert prefixes_of_88.requests == ["0.NA/88.101"]
    assert handles_of_88.requests == ["88/direct"]


async def test_a_referral_loop_ends_with_code_6(tree: Tree, make_resolver: MakeResolver) -> None:
    tree.top.refer("88.101", site(tree.port["root"]))
    resolver = make_resolver(tree.port["root"])
    result = await resolver.resolve(handle(UNIT))
    assert result.code is ResponseCode.RECURSION_COUNT_TOO_HIGH
    assert result.http_status == 502
    assert result.message is not None
    assert "loop" in result.message
    assert tree.root.requests == [UNIT]  # stopped before asking it again
    assert resolver.cached(handle(UNIT)) is None
    assert resolver.stats.failures == 1


async def test_too_many_referrals_end_with_code_6(tree: Tree, make_resolver: MakeResolver) -> None:
    shallow = make_resolver(tree.port["root"], max_referrals=2)
    result = await shallow.resolve(handle(UNIT))
    assert result.code is ResponseCode.RECURSION_COUNT_TOO_HIGH
    assert result.http_status == 502
    assert result.message == f"More than 2 referrals resolving {UNIT}."
    assert tree.enterprise.requests == []
    enough = make_resolver(tree.port["root"], max_referrals=3)
    assert (await enough.resolve(handle(UNIT))).code is ResponseCode.SUCCESS


async def test_a_moved_prefix_is_found_at_its_new_site(
    tree: Tree, make_resolver: MakeResolver
) -> None:
    resolver = make_resolver(tree.port["root"])
    await resolver.resolve(handle(UNIT))
    new_home = FakeNode("88.101.5")
    new_home.add(OTHER, url_value("https://plant.example/moved"))
    tree.secondary.refer("88.101.5", site(await tree.serve(new_home)))
    tree.enterprise.homed.clear()  # the old node now disowns the prefix (301)
    tree.enterprise.records.clear()
    result = await resolver.resolve(handle(OTHER))
    assert result.code is ResponseCode.SUCCESS
    assert json.loads(result.values[0].json)["data"]["value"] == "https://plant.example/moved"
    assert tree.enterprise.requests == [UNIT, OTHER]
    assert tree.secondary.requests == [UNIT, OTHER]  # walked again from the cached 88.101
    assert tree.root.requests == [UNIT]


# --- answer and referral caching --------------------------------------------------------------


async def test_answers_expire_with_their_ttl(tree: Tree, make_resolver: MakeResolver) -> None:
    tree.enterprise.add("88.101.5/short", url_value("https://a.example", ttl=60), VALUES[1])
    clock = Clock()
    resolver = make_resolver(tree.port["root"], clock=clock)
    await resolver.resolve(handle("88.101.5/short"))
    clock.advance(59)
    assert (await resolver.resolve(handle("88.101.5/short"))).from_cache
    clock.advance(2)
    assert resolver.cached(handle("88.101.5/short")) is None
    fresh = await resolver.resolve(handle("88.101.5/short"))
    assert not fresh.from_cache
    assert fresh.code is ResponseCode.SUCCESS
    assert tree.enterprise.asked("88.101.5/short") == 2
    assert len(tree.root.requests) == 1  # the referrals are still good for a day


async def test_referrals_expire_with_their_ttl(tree: Tree, make_resolver: MakeResolver) -> None:
    tree.secondary.refer("88.101.5", site(tree.port["enterprise"], ttl=30))
    clock = Clock()
    resolver = make_resolver(tree.port["root"], clock=clock)
    await resolver.resolve(handle(UNIT))
    clock.advance(31)
    await resolver.resolve(handle(OTHER))
    assert tree.secondary.requests == [UNIT, OTHER]  # from the cached site of 88.101
    assert tree.root.requests == [UNIT]


async def test_an_absolute_ttl_expires_at_its_time(tree: Tree, make_resolver: MakeResolver) -> None:
    expires = datetime.now(UTC) + timedelta(seconds=120)
    tree.enterprise.add("88.101.5/until", url_value("https://a.example", ttl=expires))
    expired = datetime.now(UTC) - timedelta(seconds=5)
    tree.enterprise.add("88.101.5/stale", url_value("https://a.example", ttl=expired))
    clock = Clock()
    resolver = make_resolver(tree.port["root"], clock=clock)
    await resolver.resolve(handle("88.101.5/until"))
    clock.advance(60)
    assert (await resolver.resolve(handle("88.101.5/until"))).from_cache
    clock.advance(65)
    assert not (await resolver.resolve(handle("88.101.5/until"))).from_cache
    for _ in range(2):
        assert not (await resolver.resolve(handle("88.101.5/stale"))).from_cache
    assert tree.enterprise.asked("88.101.5/until") == 2
    assert tree.enterprise.asked("88.101.5/stale") == 2


async def test_ttl_zero_is_not_cached(tree: Tree, make_resolver: MakeResolver) -> None:
    tree.enterprise.add("88.101.5/live", url_value("https://a.example", ttl=0), VALUES[1])
    tree.secondary.refer("88.101.5", site(tree.port["enterprise"], ttl=0))
    resolver = make_resolver(tree.port["root"])
    for _ in range(3):
        result = await resolver.resolve(handle("88.101.5/live"))
        assert result.code is ResponseCode.SUCCESS
        assert not result.from_cache
    assert tree.enterprise.asked("88.101.5/live") == 3
    assert len(tree.secondary.requests) == 3  # the referral to 88.101.5 was not kept either
    assert len(tree.root.requests) == 1


async def test_not_found_and_empty_records_are_cached_for_negative_ttl(
    tree: Tree, make_resolver: MakeResolver
) -> None:
    tree.enterprise.add("88.101.5/empty")
    clock = Clock()
    resolver = make_resolver(tree.port["root"], clock=clock, negative_ttl=5)
    missing = await resolver.resolve(handle("88.101.5/missing"))
    assert (missing.code, missing.http_status, missing.values) == (
        ResponseCode.HANDLE_NOT_FOUND,
        404,
        (),
    )
    empty = await resolver.resolve(handle("88.101.5/empty"))
    assert (empty.code, empty.http_status, empty.values) == (ResponseCode.VALUES_NOT_FOUND, 200, ())
    clock.advance(4)
    assert (await resolver.resolve(handle("88.101.5/missing"))).from_cache
    assert (await resolver.resolve(handle("88.101.5/empty"))).from_cache
    clock.advance(2)
    assert not (await resolver.resolve(handle("88.101.5/missing"))).from_cache
    assert not (await resolver.resolve(handle("88.101.5/empty"))).from_cache
    assert tree.enterprise.asked("88.101.5/missing") == 2
    assert tree.enterprise.asked("88.101.5/empty") == 2


async def test_bypass_cache_asks_again_and_refreshes_the_cache(
    tree: Tree, make_resolver: MakeResolver
) -> None:
    resolver = make_resolver(tree.port["root"])
    await resolver.resolve(handle(UNIT))
    tree.enterprise.add(UNIT, url_value("https://plant.example/new"))
    fresh = await resolver.resolve(handle(UNIT), bypass_cache=True)
    assert not fresh.from_cache
    assert [value.index for value in fresh.values] == [1]
    cached = await resolver.resolve(handle(UNIT))
    assert cached.from_cache
    assert cached.values == fresh.values
    assert tree.enterprise.asked(UNIT) == 2
    assert len(tree.root.requests) == 1  # referrals still come from the cache


async def test_the_caches_are_bounded(tree: Tree, make_resolver: MakeResolver) -> None:
    names = [f"88.101.5/bounded-{n}" for n in range(4)]
    for name in names:
        tree.enterprise.add(name, url_value("https://a.example"))
    resolver = make_resolver(tree.port["root"], max_entries=2)
    for name in names:
        assert (await resolver.resolve(handle(name))).code is ResponseCode.SUCCESS
    assert [resolver.cached(handle(name)) is not None for name in names] == [
        False,
        False,
        True,
        True,
    ]
    assert not (await resolver.resolve(handle(names[0]))).from_cache
    assert tree.enterprise.asked(names[0]) == 2
    # Two referral entries held: 88.101 and 88.101.5; the walk from the root ran once.
    assert len(tree.root.requests) == 1


# --- coalescing -----------------------------------------------------------------------------


async def wait_for(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 5
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.005)


async def test_concurrent_lookups_share_one_upstream_resolution(
    tree: Tree, make_resolver: MakeResolver
) -> None:
    tree.enterprise.gate = asyncio.Event()
    resolver = make_resolver(tree.port["root"])
    lookups = [asyncio.create_task(resolver.resolve(handle(UNIT))) for _ in range(50)]
    await wait_for(lambda: bool(tree.enterprise.requests))
    tree.enterprise.gate.set()
    results = await asyncio.gather(*lookups)
    assert {result.code for result in results} == {ResponseCode.SUCCESS}
    assert not any(result.from_cache for result in results)
    assert [len(node.requests) for node in tree.nodes] == [1, 1, 1, 1]
    assert resolver.stats.upstream_requests == 4
    assert resolver.stats.coalesced == 49


async def test_a_caller_that_gives_up_does_not_stop_the_others(
    tree: Tree, make_resolver: MakeResolver
) -> None:
    tree.enterprise.gate = asyncio.Event()
    resolver = make_resolver(tree.port["root"])
    impatient = asyncio.create_task(resolver.resolve(handle(UNIT)))
    patient = asyncio.create_task(resolver.resolve(handle(UNIT)))
    await wait_for(lambda: bool(tree.enterprise.requests))
    impatient.cancel()
    tree.enterprise.gate.set()
    assert (await patient).code is ResponseCode.SUCCESS
    assert impatient.cancelled()
    assert resolver.cached(handle(UNIT)) is not None


async def test_concurrent_failing_lookups_all_get_the_failure(make_resolver: MakeResolver) -> None:
    resolver = make_resolver(closed_port())
    results = await asyncio.gather(*(resolver.resolve(handle(UNIT)) for _ in range(10)))
    assert {(result.code, result.http_status) for result in results} == {(ResponseCode.ERROR, 502)}
    assert resolver.stats.failures == 1
    assert resolver.stats.upstream_requests == 1


async def test_a_bug_reaches_every_waiter_and_is_not_reported_twice(
    make_resolver: MakeResolver, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    resolver = make_resolver(closed_port())

    async def broken(_: Handle) -> None:
        await asyncio.sleep(0.01)
        raise RuntimeError("a bug")

    monkeypatch.setattr(resolver, "_upstream", broken)
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        results = await asyncio.gather(
            *(resolver.resolve(handle(UNIT)) for _ in range(5)), return_exceptions=True
        )
        gc.collect()
    assert all(isinstance(result, RuntimeError) for result in results)
    assert "never retrieved" not in caplog.text


async def test_aclose_cancels_lookups_under_way(tree: Tree, make_resolver: MakeResolver) -> None:
    gate = tree.enterprise.gate = asyncio.Event()
    resolver = make_resolver(tree.port["root"])
    lookup = asyncio.create_task(resolver.resolve(handle(UNIT)))
    await wait_for(lambda: bool(tree.enterprise.requests))
    await resolver.aclose()
    with pytest.raises(asyncio.CancelledError):
        await lookup
    gate.set()


# --- failing servers --------------------------------------------------------------------------


async def test_a_site_with_its_first_server_down_still_resolves(
    tree: Tree, make_resolver: MakeResolver
) -> None:
    tree.secondary.refer("88.101.5", site(closed_port(), tree.port["enterprise"]))
    resolver = make_resolver(tree.port["root"])
    result = await resolver.resolve(handle(UNIT))
    assert result.code is ResponseCode.SUCCESS
    assert resolver.stats.upstream_requests == 5


async def test_a_root_that_is_down_is_skipped(tree: Tree, make_resolver: MakeResolver) -> None:
    resolver = make_resolver(closed_port(), tree.port["root"])
    assert (await resolver.resolve(handle(UNIT))).code is ResponseCode.SUCCESS


async def test_when_every_server_of_a_site_is_down_the_answer_is_502(
    tree: Tree, make_resolver: MakeResolver
) -> None:
    dead = [closed_port(), closed_port()]
    tree.secondary.refer("88.101.5", site(*dead))
    resolver = make_resolver(tree.port["root"])
    for attempt in (1, 2):
        result = await resolver.resolve(handle(UNIT))
        assert result.code is ResponseCode.ERROR
        assert result.http_status == 502
        assert result.values == ()
        assert result.message is not None
        assert result.message.startswith("No server of the site for 88.101.5 answered: ")
        for port in dead:
            assert f"127.0.0.1:{port} connection refused" in result.message
        assert resolver.stats.failures == attempt  # failures are not cached
    assert resolver.cached(handle(UNIT)) is None


async def test_when_every_root_is_down_the_answer_is_502(make_resolver: MakeResolver) -> None:
    port = closed_port()
    result = await make_resolver(port).resolve(handle(UNIT))
    assert (result.code, result.http_status) == (ResponseCode.ERROR, 502)
    assert result.message == f"No root node answered: 127.0.0.1:{port} connection refused"


async def test_a_server_that_never_answers_times_out_with_504(
    tree: Tree, make_resolver: MakeResolver
) -> None:
    tree.enterprise.silent = True
    resolver = make_resolver(tree.port["root"], timeout=0.3)
    started = time.monotonic()
    result = await resolver.resolve(handle(UNIT))
    assert time.monotonic() - started < 2
    assert (result.code, result.http_status) == (ResponseCode.ERROR, 504)
    assert result.message is not None
    assert f"127.0.0.1:{tree.port['enterprise']} did not answer within 0.3 s" in result.message


async def test_a_root_that_knows_no_such_prefix_answers_301(
    tree: Tree, make_resolver: MakeResolver
) -> None:
    resolver = make_resolver(tree.port["root"])
    result = await resolver.resolve(handle("77.1/x"))
    assert (result.code, result.http_status) == (ResponseCode.SERVER_NOT_RESPONSIBLE, 400)
    assert result.message == "No node knows prefix 77.1."
    assert (await resolver.resolve(handle("77.1/x"))).from_cache  # as long as negative_ttl


async def test_a_referred_node_that_disowns_the_prefix_is_a_failure(
    tree: Tree, make_resolver: MakeResolver
) -> None:
    tree.enterprise.homed.clear()
    tree.enterprise.records.clear()
    resolver = make_resolver(tree.port["root"])
    result = await resolver.resolve(handle(UNIT))
    assert (result.code, result.http_status) == (ResponseCode.ERROR, 502)
    assert result.message is not None
    assert "not responsible" in result.message


async def test_an_invalid_handle_is_passed_through_and_not_cached(
    tree: Tree, make_resolver: MakeResolver
) -> None:
    tree.enterprise.canned[handle(UNIT).key] = answer(
        400, {"responseCode": 102, "message": "Handle too long for this node"}
    )
    resolver = make_resolver(tree.port["root"])
    for _ in range(2):
        result = await resolver.resolve(handle(UNIT))
        assert (result.code, result.http_status) == (ResponseCode.INVALID_HANDLE, 400)
        assert result.message == "Handle too long for this node"
    assert tree.enterprise.asked(UNIT) == 2


BAD_SITE = {"index": 1, "type": "HS_SITE", "data": {"format": "site", "value": {"servers": []}}}
UDP_ONLY = site(9, protocol="UDP")
GARBAGE = {
    "not JSON": ((200, b"<html>oops</html>"), "not JSON"),
    "empty body": ((200, b""), "not JSON"),
    "not an object": (answer(200, [1, 2]), "not an object"),
    "code as text": (answer(200, {"responseCode": "1", "values": []}), "numeric responseCode"),
    "server error": (
        answer(500, {"responseCode": 2, "message": "database down"}),
        "HTTP 500 with responseCode 2 (database down)",
    ),
    "unprintable message": (
        (500, b'{"responseCode":2,"message":"bad \\ud800\\nnews"}'),
        "HTTP 500 with responseCode 2 (bad ? news)",
    ),
    "value not UTF-8": (
        (200, b'{"responseCode":1,"values":[{"index":1,"type":"URL","data":"x","n":"\\udc00"}]}'),
        "cannot be passed on as UTF-8",
    ),
    "status and code disagree": (answer(200, {"responseCode": 100}), "responseCode 100"),
    "values not a list": (answer(200, {"responseCode": 1, "values": {}}), "must be a list"),
    "undecodable value": (
        answer(
            200, {"responseCode": 1, "values": [{"index": 1, "type": "URL", "data": {"format": 7}}]}
        ),
        "does not decode",
    ),
    "duplicate index": (
        answer(200, {"responseCode": 1, "values": [VALUES[0], VALUES[0]]}),
        "Two values have index 1",
    ),
    "NaN": ((200, b'{"responseCode":1,"values":[],"x":NaN}'), "not JSON"),
    "another handle": (
        answer(200, {"responseCode": 1, "handle": "88.101.5/other", "values": []}),
        "another handle",
    ),
    "no values though some": (
        answer(200, {"responseCode": 200, "values": [VALUES[0]]}),
        "with values",
    ),
    "referral to another prefix": (
        answer(300, {"responseCode": 303, "referral": "0.NA/99", "values": [site(9)]}),
        "not the record of a prefix above",
    ),
    "referral without a record": (
        answer(300, {"responseCode": 303, "values": [site(9)]}),
        "without naming",
    ),
    "referral back up": (
        answer(300, {"responseCode": 303, "referral": "0.NA/88", "values": [site(9)]}),
        "back up",
    ),
}


@pytest.mark.parametrize("case", list(GARBAGE))
async def test_a_server_answering_garbage_is_a_failure(
    case: str, tree: Tree, make_resolver: MakeResolver
) -> None:
    canned, reason = GARBAGE[case]
    tree.enterprise.canned[handle(UNIT).key] = canned
    resolver = make_resolver(tree.port["root"])
    result = await resolver.resolve(handle(UNIT))
    assert (result.code, result.http_status) == (ResponseCode.ERROR, 502)
    assert result.message is not None
    assert result.message.startswith(
        f"No server of the site for 88.101.5 answered: 127.0.0.1:{tree.port['enterprise']} "
    )
    assert reason in result.message
    assert resolver.cached(handle(UNIT)) is None


@pytest.mark.parametrize("values", [[BAD_SITE], [UDP_ONLY], [VALUES[0]], []])
async def test_a_referral_to_no_usable_server_is_a_failure(
    values: list[Json], tree: Tree, make_resolver: MakeResolver
) -> None:
    tree.secondary.refer("88.101.5", *values)
    resolver = make_resolver(tree.port["root"])
    result = await resolver.resolve(handle(UNIT))
    assert (result.code, result.http_status) == (ResponseCode.ERROR, 502)
    assert result.message == (
        f"No server of the site for 88.101 answered: 127.0.0.1:{tree.port['secondary']} "
        "referred to 0.NA/88.101.5 without a server that answers HTTP(S) queries"
    )
    assert tree.enterprise.requests == []


async def test_handles_with_any_characters_reach_the_node_intact(
    tree: Tree, make_resolver: MakeResolver
) -> None:
    odd = ["88.101.5/a/../b", "88.101.5/..", "88.101.5/./x", "88.101.5/ä ?#%2F&x=1", "88.101.5//"]
    for text in odd:
        tree.enterprise.add(text, url_value("https://a.example"))
    resolver = make_resolver(tree.port["root"])
    for text in odd:
        result = await resolver.resolve(handle(text))
        assert result.code is ResponseCode.SUCCESS, text
        assert result.handle == text
    assert tree.enterprise.requests == odd


# --- secrets, addresses, configuration ------------------------------------------------------


async def test_verify_secret_asks_the_node_holding_the_identity(
    tree: Tree, make_resolver: MakeResolver
) -> None:
    # The secret key value is not public: the record as served has only the other values.
    tree.enterprise.add("88.101.5/admin", url_value("https://a.example"))
    tree.enterprise.secrets["300:88.101.5/admin"] = "s3cret"
    resolver = make_resolver(tree.port["root"])
    assert await resolver.verify_secret(handle("88.101.5/admin"), 300, "s3cret")
    assert not await resolver.verify_secret(handle("88.101.5/admin"), 300, "wrong")
    assert not await resolver.verify_secret(handle("88.101.5/nobody"), 300, "s3cret")


async def test_verify_secret_sends_no_secret_in_clear_to_another_host() -> None:
    posted: list[httpx.Request] = []

    def node(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            posted.append(request)
            return httpx.Response(200, json={"responseCode": 1, "verified": True})
        return httpx.Response(200, json={"responseCode": 1, "values": VALUES})

    resolver = Resolver(["http://192.0.2.1:8000"], transport=httpx.MockTransport(node))
    try:
        assert not await resolver.verify_secret(handle(UNIT), 300, "s3cret")
    finally:
        await resolver.aclose()
    assert posted == []


async def test_site_addresses_become_base_urls() -> None:
    asked: list[str] = []
    servers = (
        SiteServer(1, "::1", None, (SiteInterface(True, False, "HTTP", 8000),)),
        SiteServer(
            2,
            "::ffff:192.0.2.7",
            None,
            (SiteInterface(True, False, "HTTP", 8080), SiteInterface(True, False, "HTTPS", 8443)),
        ),
        SiteServer(3, "fe80::1%eth0", None, (SiteInterface(True, False, "HTTP", 80),)),
        SiteServer(4, "0.0.0.0", None, (SiteInterface(True, False, "HTTP", 80),)),
        SiteServer(5, "bad host/x", None, (SiteInterface(True, False, "HTTP", 80),)),
        SiteServer(6, "192.0.2.8", None, (SiteInterface(False, True, "HTTP", 80),)),
        SiteServer(7, "node.example", None, (SiteInterface(True, False, "HTTP", 81),)),
    )
    referral = {
        "responseCode": 303,
        "referral": "0.NA/88",
        "values": [
            value_to_json(HandleValue(1, HS_SITE, SiteInfo(1, "2.10", 1, True, False, servers)))
        ],
    }

    def node(request: httpx.Request) -> httpx.Response:
        base = f"{request.url.scheme}://{request.url.netloc.decode()}"
        asked.append(base)
        if base == "http://root.test":
            return httpx.Response(300, json=referral)
        return httpx.Response(503, json={"responseCode": 3})

    resolver = Resolver(["http://root.test"], transport=httpx.MockTransport(node))
    try:
        result = await resolver.resolve(handle(UNIT))
    finally:
        await resolver.aclose()
    assert asked == [
        "http://root.test",
        "http://[::1]:8000",
        "https://192.0.2.7:8443",
        "http://node.example:81",
    ]
    assert (result.code, result.http_status) == (ResponseCode.ERROR, 502)


async def test_a_handle_that_does_not_parse_is_invalid(make_resolver: MakeResolver) -> None:
    resolver = make_resolver(closed_port())
    result = await resolver.resolve(Handle("88..1", "x"))
    assert (result.code, result.http_status) == (ResponseCode.INVALID_HANDLE, 400)
    assert resolver.stats.upstream_requests == 0


def test_a_resolver_needs_http_roots() -> None:
    with pytest.raises(ValueError, match="at least one root"):
        Resolver([])
    with pytest.raises(ValueError, match="http"):
        Resolver(["ftp://root.example"])
    with pytest.raises(ValueError, match="timeout"):
        Resolver(["http://root.example"], timeout=0)


# --- anything at all from upstream ----------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=12,
)
NEAR_VALUES = st.one_of(
    st.sampled_from([*VALUES, site(1), site(1, kind=HS_SITE_PREFIX), BAD_SITE, UDP_ONLY]),
    st.fixed_dictionaries(
        {
            "index": st.integers(-1, 3) | st.text(max_size=3),
            "type": st.sampled_from(["URL", "HS_SITE", "HS_SITE.PREFIX", "", "HS_ADMIN"]),
            "data": JSON_VALUES | st.sampled_from([site(1)["data"], {"format": "site"}]),
        },
        optional={
            "ttl": st.integers(-2, 100) | st.text(max_size=25),
            "permissions": st.text(max_size=5),
        },
    ),
    JSON_VALUES,
)
GOOD_VALUES = [*VALUES, site(1, index=4), site(2, kind=HS_SITE_PREFIX, index=5)]
STATUSES = st.sampled_from([200, 300, 400, 404, 500])
# Mostly the status and code pairs the protocol has, so the bodies get read further.
PAIRS = st.sampled_from([(200, 1), (200, 200), (404, 100), (400, 102), (400, 301), (300, 303)])
FIELDS = st.fixed_dictionaries(
    {},
    optional={
        "handle": st.sampled_from([UNIT, UNIT.lower()]) | st.just("88/other") | JSON_VALUES,
        "values": st.lists(st.sampled_from(GOOD_VALUES), max_size=4, unique_by=lambda v: v["index"])
        | st.lists(NEAR_VALUES, max_size=3)
        | JSON_VALUES,
        "referral": st.sampled_from(["0.NA/88", "0.NA/88.101", "0.NA/88.101.5"])
        | st.sampled_from(["0.NA/99", "88/x", "0.NA/"])
        | JSON_VALUES,
        "message": JSON_VALUES,
    },
)


def _near(pair: tuple[int, Any], fields: Json) -> Answer:
    return answer(pair[0], {"responseCode": pair[1], **fields})


def _referral(prefix: str, values: list[Json]) -> Answer:
    document = {"responseCode": 303, "handle": UNIT, "referral": f"0.NA/{prefix}", "values": values}
    return answer(300, document)


GOOD_LISTS = st.lists(
    st.sampled_from([*GOOD_VALUES, BAD_SITE, UDP_ONLY]), max_size=4, unique_by=lambda v: v["index"]
)
REPLIES = st.one_of(
    st.builds(_referral, st.sampled_from(["88", "88.101", "88.101.5"]), GOOD_LISTS),
    GOOD_LISTS.map(lambda values: answer(200, {"responseCode": 1, "values": values})),
    st.builds(_near, PAIRS | st.tuples(STATUSES, st.integers(0, 999) | JSON_VALUES), FIELDS),
    st.tuples(STATUSES, JSON_VALUES.map(lambda document: json.dumps(document).encode())),
    st.tuples(STATUSES, st.binary(max_size=64)),
    st.tuples(
        STATUSES,
        st.sampled_from(
            [b"[" * 100_000, b'{"responseCode":1,"values":[{"x":' + b"[" * 5000 + b"]}"]
        ),
    ),
)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(replies=st.lists(REPLIES, min_size=1, max_size=4))
async def test_any_upstream_answer_ends_in_a_resolution(replies: list[Answer]) -> None:
    """Whatever the servers answer, one after the other, the lookup ends in a Resolution."""
    served = iter(replies)

    def node(_: httpx.Request) -> httpx.Response:
        status, body = next(served, replies[-1])
        return httpx.Response(status, content=body, headers={"content-type": "application/json"})

    resolver = Resolver(["http://root.test"], transport=httpx.MockTransport(node), max_referrals=3)
    try:
        result = await resolver.resolve(handle(UNIT))
    finally:
        await resolver.aclose()
    assert isinstance(result, Resolution)
    event(f"{result.code.name} after {resolver.stats.upstream_requests} requests")
    (result.message or "").encode("utf-8")
    assert result.http_status in (200, 404, 400, 502, 504)
    for value in result.values:
        json.loads(value.json)
        value.json.encode("utf-8")
