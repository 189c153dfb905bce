"""One identifier node over real HTTP: Handle.net REST writes, authentication by secret key
(Basic) and by public key (challenge-response), HS_ADMIN enforcement, listing, the proxy and
bad input. The node is root-less here, so it holds its own prefix's record."""

from __future__ import annotations

import asyncio
import base64
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from plantwire.ids.client import HandleClient, HandleClientError
from plantwire.ids.handle_json import value_to_json
from plantwire.ids.keys import (
    PrivateKey,
    generate_private_key,
    public_key_to_jwk,
    sign_challenge,
)
from plantwire.ids.model import HS_ADMIN, AdminPermission, AdminRef, HandleValue
from plantwire.ids.server import (
    NodeOptions,
    RunningNode,
    base_url,
    bind_socket,
    build_node,
    prepare_node_dir,
    serve_node,
)
from tests.conftest import make_settings

PREFIX = "88.101.5"
ADMIN = "300:0.NA/88.101.5"
SECRET = "enterprise-admin-secret"
UNIT = "88.101.5/SN-000123"
URL_VALUE = {
    "index": 1,
    "type": "URL",
    "data": {"format": "string", "value": "https://plant.example/u/1"},
}
ADMIN_VALUE = {
    "index": 100,
    "type": "HS_ADMIN",
    "data": {
        "format": "admin",
        "value": {"handle": "0.NA/88.101.5", "index": "200", "permissions": "011111110011"},
    },
}


def admin_json(index: int, handle: str, admin_index: int, permissions: str) -> dict[str, Any]:
    """An HS_ADMIN value in Handle.net JSON granting ``admin_index:handle`` ``permissions``."""
    granted = {"handle": handle, "index": admin_index, "permissions": permissions}
    return {"index": index, "type": "HS_ADMIN", "data": {"format": "admin", "value": granted}}


@dataclass
class Node:
    url: str
    running: RunningNode
    http: httpx.AsyncClient

    def client(self, **kwargs: Any) -> HandleClient:
        return HandleClient(self.url, **kwargs)

    def admin(self) -> HandleClient:
        return self.client(identity=ADMIN, secret=SECRET)


def basic(identity: str, secret: str) -> dict[str, str]:
    token = base64.b64encode(f"{identity.replace(':', '%3A')}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


async def start_node(
    tmp_path: Path, database_url: str | None = None, **options: Any
) -> tuple[RunningNode, Any, str]:
    settings = make_settings(tmp_path / "node", database_url=database_url)
    await asyncio.to_thread(prepare_node_dir, settings)
    node_options = NodeOptions(homes=[PREFIX], admin_secret=SECRET, **options)
    running = await asyncio.to_thread(build_node, settings, node_options)
    sock = bind_socket("127.0.0.1", 0)
    return running, sock, base_url(sock, "127.0.0.1", tls=False)


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    running, sock, url = await start_node(tmp_path)
    async with serve_node(running, sock), httpx.AsyncClient(base_url=url) as http:
        yield Node(url, running, http)


async def put(
    node: Node, handle: str, values: list[dict[str, Any]], **params: str
) -> httpx.Response:
    return await node.http.put(
        f"/api/handles/{handle}",
        params=params,
        json={"values": values},
        headers=basic(ADMIN, SECRET),
    )


async def test_bootstrap_creates_the_prefix_record_with_a_hashed_secret(node: Node) -> None:
    public = (await node.http.get("/api/handles/0.NA/88.101.5")).json()
    types = {v["index"]: v["type"] for v in public["values"]}
    assert types == {100: "HS_ADMIN", 200: "HS_VLIST"}  # the secret key is not public
    assert public["values"][0]["data"]["value"]["handle"] == "0.NA/88.101.5"
    full = (await node.http.get("/api/handles/0.NA/88.101.5", headers=basic(ADMIN, SECRET))).json()
    secret_value = next(v for v in full["values"] if v["type"] == "HS_SECKEY")
    assert secret_value["data"]["value"].startswith("$argon2id$")
    assert SECRET not in str(full)


async def test_create_read_modify_delete(node: Node) -> None:
    created = await put(node, UNIT, [URL_VALUE, ADMIN_VALUE], overwrite="false")
    assert created.status_code == 201
    assert created.json() == {"responseCode": 1, "handle": UNIT}
    again = await put(node, UNIT, [URL_VALUE, ADMIN_VALUE], overwrite="false")
    assert (again.status_code, again.json()["responseCode"]) == (409, 101)
    replaced = await put(node, UNIT, [URL_VALUE, ADMIN_VALUE])
    assert replaced.status_code == 200
    email = {"index": 2, "type": "EMAIL", "data": "qa@plant.example"}  # bare string data
    added = await put(node, UNIT, [email], index="2")
    assert added.status_code == 201
    clash = await put(node, UNIT, [email], index="2", overwrite="false")
    assert (clash.status_code, clash.json()["responseCode"]) == (409, 201)
    modified = await put(node, UNIT, [{**email, "data": "ops@plant.example"}], index="various")
    assert modified.status_code == 200
    record = (await node.http.get(f"/api/handles/{UNIT}")).json()
    assert [v["index"] for v in record["values"]] == [1, 2, 100]
    assert record["values"][1]["data"]["value"] == "ops@plant.example"
    assert all("timestamp" in v for v in record["values"])
    gone = await node.http.delete(
        f"/api/handles/{UNIT}", params={"index": "2"}, headers=basic(ADMIN, SECRET)
    )
    assert gone.status_code == 200
    missing = await node.http.delete(
        f"/api/handles/{UNIT}", params={"index": "2"}, headers=basic(ADMIN, SECRET)
    )
    assert (missing.status_code, missing.json()["responseCode"]) == (400, 200)
    deleted = await node.http.delete(f"/api/handles/{UNIT}", headers=basic(ADMIN, SECRET))
    assert deleted.json() == {"responseCode": 1, "handle": UNIT}
    after = await node.http.delete(f"/api/handles/{UNIT}", headers=basic(ADMIN, SECRET))
    assert (after.status_code, after.json()["responseCode"], after.json()["handle"]) == (
        404,
        100,
        UNIT,
    )


async def test_mint_new_suffix(node: Node) -> None:
    response = await node.http.put(
        "/api/handles/88.101.5/unit-",
        params={"mintNewSuffix": "true"},
        json=[URL_VALUE],
        headers=basic(ADMIN, SECRET),
    )
    assert response.status_code == 201
    minted = response.json()["handle"]
    assert minted.startswith("88.101.5/unit-")
    assert len(minted) == len("88.101.5/unit-") + 36
    assert (await node.http.get(f"/api/handles/{minted}")).status_code == 200


@pytest.mark.parametrize(
    ("body", "params", "headers", "status", "code"),
    [
        (b"not json", {}, {"content-type": "application/json"}, 400, 4),
        (b"[]", {}, {"content-type": "text/plain"}, 400, 4),
        (
            b'[{"index": 0, "type": "URL", "data": "x"}]',
            {},
            {"content-type": "application/json"},
            400,
            202,
        ),
        (
            b'[{"index": 1, "type": "URL", "data": {"format": "nope", "value": 1}}]',
            {},
            {"content-type": "application/json"},
            400,
            202,
        ),
        (
            b'[{"index": 1, "type": "URL", "data": "a"}, {"index": 1, "type": "URL", "data": "b"}]',
            {},
            {"content-type": "application/json"},
            409,
            201,
        ),
        (
            b'[{"index": 1, "type": "URL", "data": "a"}]',
            {"index": "2"},
            {"content-type": "application/json"},
            400,
            4,
        ),
        (
            b'{"handle": "88.101.5/other", "values": []}',
            {},
            {"content-type": "application/json"},
            400,
            4,
        ),
    ],
)
async def test_bad_writes_get_handle_codes(
    node: Node, body: bytes, params: dict[str, str], headers: dict[str, str], status: int, code: int
) -> None:
    response = await node.http.put(
        f"/api/handles/{UNIT}",
        params=params,
        content=body,
        headers={**headers, **basic(ADMIN, SECRET)},
    )
    assert (response.status_code, response.json()["responseCode"]) == (status, code)
    assert response.json()["message"]


async def test_writes_need_credentials_and_say_how(node: Node) -> None:
    response = await node.http.put(f"/api/handles/{UNIT}", json=[URL_VALUE])
    assert (response.status_code, response.json()["responseCode"]) == (401, 402)
    challenges = response.headers.get_list("www-authenticate")
    assert challenges[0] == 'Basic realm="handle"'
    assert challenges[1].startswith('Handle sessionId="')
    assert 'nonce="' in challenges[1]
    wrong = await node.http.put(
        f"/api/handles/{UNIT}", json=[URL_VALUE], headers=basic(ADMIN, "wrong")
    )
    assert (wrong.status_code, wrong.json()["responseCode"]) == (401, 403)
    unknown = await node.http.put(
        f"/api/handles/{UNIT}", json=[URL_VALUE], headers=basic("300:0.NA/88.101.9", SECRET)
    )
    assert unknown.status_code == 401
    garbage = await node.http.put(
        f"/api/handles/{UNIT}", json=[URL_VALUE], headers={"Authorization": "Basic %%%"}
    )
    assert (garbage.status_code, garbage.json()["responseCode"]) == (401, 403)
    assert (await node.http.get(f"/api/handles/{UNIT}")).status_code == 404  # nothing was written


async def test_an_identity_without_the_permission_is_refused(node: Node) -> None:
    # A second identity, holding a secret key on a handle of its own but no HS_ADMIN grant.
    other = "300:88.101.5/operator"
    key_value = {"index": 300, "type": "HS_SECKEY", "data": "operator-secret"}
    assert (await put(node, "88.101.5/operator", [key_value, ADMIN_VALUE])).status_code == 201
    response = await node.http.put(
        f"/api/handles/{UNIT}", json=[URL_VALUE], headers=basic(other, "operator-secret")
    )
    assert (response.status_code, response.json()["responseCode"]) == (403, 400)
    # Granting it ADD_HANDLE on the prefix record lets it create (but not delete) handles.
    grant = admin_json(110, "88.101.5/operator", 300, "000000000001")
    assert (await put(node, "0.NA/88.101.5", [grant], index="110")).status_code == 201
    created = await node.http.put(
        f"/api/handles/{UNIT}", json=[URL_VALUE], headers=basic(other, "operator-secret")
    )
    assert created.status_code == 201
    # UNIT has no HS_ADMIN value, so nobody but... nobody may delete it by Handle identity.
    refused = await node.http.delete(
        f"/api/handles/{UNIT}", headers=basic(other, "operator-secret")
    )
    assert (refused.status_code, refused.json()["responseCode"]) == (403, 400)


async def test_handles_of_other_prefixes_are_not_written_here(node: Node) -> None:
    response = await node.http.put(
        "/api/handles/88.101.6/x", json=[URL_VALUE], headers=basic(ADMIN, SECRET)
    )
    assert (response.status_code, response.json()["responseCode"]) == (400, 301)
    resolved = await node.http.get("/api/handles/88.101.6/x")
    assert (resolved.status_code, resolved.json()["responseCode"]) == (400, 301)


async def test_listing_needs_list_handles(node: Node) -> None:
    for n in range(5):
        assert (await put(node, f"88.101.5/item-{n}", [URL_VALUE])).status_code == 201
    anonymous = await node.http.get("/api/handles", params={"prefix": PREFIX})
    assert anonymous.status_code == 401
    listed = (
        await node.http.get("/api/handles", params={"prefix": PREFIX}, headers=basic(ADMIN, SECRET))
    ).json()
    assert listed["totalCount"] == "5"
    assert listed["handles"] == [f"88.101.5/item-{n}" for n in range(5)]
    page = (
        await node.http.get(
            "/api/handles",
            params={"prefix": "0.NA/88.101.5", "page": "1", "pageSize": "2"},
            headers=basic(ADMIN, SECRET),
        )
    ).json()
    assert page == {
        "responseCode": 1,
        "prefix": "0.NA/88.101.5",
        "totalCount": "5",
        "page": 1,
        "pageSize": 2,
        "handles": ["88.101.5/item-2", "88.101.5/item-3"],
    }
    count = (
        await node.http.get(
            "/api/handles",
            params={"prefix": PREFIX, "page": "0", "pageSize": "0"},
            headers=basic(ADMIN, SECRET),
        )
    ).json()
    assert (count["totalCount"], count["handles"]) == ("5", [])
    prefixes = (await node.http.get("/api/prefixes", headers=basic(ADMIN, SECRET))).json()
    assert prefixes["prefixes"] == ["0.NA/88.101.5"]


@pytest.fixture(scope="module")
def rsa_key() -> PrivateKey:
    return generate_private_key("RSA", 2048)


async def add_pubkey(node: Node, key: PrivateKey, index: int) -> str:
    pub = HandleValue(index, "HS_PUBKEY", public_key_to_jwk(key))
    admin = HandleValue(
        index - 200, HS_ADMIN, AdminRef("0.NA/88.101.5", index, AdminPermission.all())
    )
    response = await put(
        node, "0.NA/88.101.5", [value_to_json(pub), value_to_json(admin)], index="various"
    )
    assert response.status_code == 201, response.text
    return f"{index}:0.NA/88.101.5"


async def test_challenge_response_with_a_public_key(node: Node, rsa_key: PrivateKey) -> None:
    identity = await add_pubkey(node, rsa_key, 301)
    with node.client(identity=identity, private_key=rsa_key) as client:
        await asyncio.to_thread(client.put, UNIT, [URL_VALUE])
        record = await asyncio.to_thread(client.get, UNIT)
    assert record["values"][0]["index"] == 1


async def test_dsa_keys_and_sha1_are_accepted(node: Node) -> None:
    key = generate_private_key("DSA", 2048)
    identity = await add_pubkey(node, key, 302)
    with node.client(identity=identity, private_key=key, alg="SHA1") as client:
        assert (await asyncio.to_thread(client.put, UNIT, [URL_VALUE]))["responseCode"] == 1


async def test_a_signature_cannot_be_replayed_or_forged(node: Node, rsa_key: PrivateKey) -> None:
    identity = await add_pubkey(node, rsa_key, 301)
    opened = (await node.http.post("/api/sessions")).json()
    nonce = base64.b64decode(opened["nonce"])
    cnonce = secrets.token_bytes(16)

    def header(session: str, signature: bytes) -> dict[str, str]:
        return {
            "Authorization": (
                f'Handle version="0", sessionId="{session}", id="{identity}", type="HS_PUBKEY", '
                f'cnonce="{base64.b64encode(cnonce).decode()}", alg="SHA256", '
                f'signature="{base64.b64encode(signature).decode()}"'
            )
        }

    good = sign_challenge(rsa_key, nonce, cnonce)
    forged = bytes([good[0] ^ 1]) + good[1:]
    refused = await node.http.put("/api/sessions/this", headers=header(opened["sessionId"], forged))
    assert refused.status_code == 401
    assert refused.json()["authenticated"] is False
    # The nonce was used up by the failed attempt: the right signature over it fails too.
    stale = await node.http.put("/api/sessions/this", headers=header(opened["sessionId"], good))
    assert stale.status_code == 401
    # A fresh session with its own nonce works, and is then used by sessionId alone.
    fresh = (await node.http.post("/api/sessions")).json()
    signature = sign_challenge(rsa_key, base64.b64decode(fresh["nonce"]), cnonce)
    accepted = await node.http.put(
        "/api/sessions/this", headers=header(fresh["sessionId"], signature)
    )
    assert accepted.json()["authenticated"] is True
    assert accepted.json()["id"] == identity
    session_header = {"Authorization": f'Handle version="0", sessionId="{fresh["sessionId"]}"'}
    assert (
        await node.http.put(f"/api/handles/{UNIT}", json=[URL_VALUE], headers=session_header)
    ).status_code == 201
    # Replaying the accepted signature into that session again fails (its nonce changed).
    replay = await node.http.put(
        "/api/sessions/this", headers=header(fresh["sessionId"], signature)
    )
    assert replay.status_code == 401
    assert (await node.http.delete("/api/sessions/this", headers=session_header)).status_code == 204
    ended = await node.http.put(f"/api/handles/{UNIT}", json=[URL_VALUE], headers=session_header)
    assert ended.status_code == 401
    secret_try = await node.http.post(
        "/api/sessions",
        headers={
            "Authorization": 'Handle version="0", id="300:0.NA/88.101.5", type="HS_SECKEY", '
            'cnonce="AA==", alg="SHA1", signature="AA=="'
        },
    )
    assert secret_try.status_code == 401


async def test_credentials_in_clear_from_elsewhere_are_refused(node: Node) -> None:
    transport = httpx.ASGITransport(app=node.running.node, client=("192.0.2.7", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://node.example") as remote:
        response = await remote.put(
            f"/api/handles/{UNIT}", json=[URL_VALUE], headers=basic(ADMIN, SECRET)
        )
        assert (response.status_code, response.json()["responseCode"]) == (401, 402)
        assert "HTTPS" in response.json()["message"]
        assert (await remote.post("/api/sessions")).status_code == 403
    secure = httpx.ASGITransport(app=node.running.node, client=("192.0.2.7", 40000))
    async with httpx.AsyncClient(transport=secure, base_url="https://node.example") as remote:
        response = await remote.put(
            f"/api/handles/{UNIT}", json=[URL_VALUE], headers=basic(ADMIN, SECRET)
        )
        assert response.status_code == 201


async def test_the_proxy_redirects_to_the_url(node: Node) -> None:
    second = {"index": 5, "type": "URL", "data": "https://plant.example/u/1/specs"}
    assert (
        await put(
            node, UNIT, [URL_VALUE, second, {"index": 3, "type": "EMAIL", "data": "<b>qa</b>"}]
        )
    ).status_code == 201
    for path in (f"/hdl/{UNIT}", f"/{UNIT}", f"/hdl/hdl:{UNIT}"):
        response = await node.http.get(path)
        assert (response.status_code, response.headers["location"]) == (
            302,
            "https://plant.example/u/1",
        ), path
    by_index = await node.http.get(f"/hdl/{UNIT}", params={"index": "5"})
    assert by_index.headers["location"] == "https://plant.example/u/1/specs"
    page = await node.http.get(f"/hdl/{UNIT}", params={"noredirect": ""})
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "&lt;b&gt;qa&lt;/b&gt;" in page.text  # values are escaped
    assert (
        await put(node, "88.101.5/no-url", [{"index": 1, "type": "EMAIL", "data": "x@y"}])
    ).status_code == 201
    plain = await node.http.get("/hdl/88.101.5/no-url")
    assert plain.status_code == 200
    assert "x@y" in plain.text
    unknown = await node.http.get("/hdl/88.101.5/nothing")
    assert unknown.status_code == 404
    assert "not found" in unknown.text
    bad = await node.http.get("/hdl/88.101.5/%ZZ")
    assert bad.status_code == 400
    assert bad.headers["content-type"].startswith("text/html")


async def test_unknown_api_paths_answer_in_handle_json(node: Node) -> None:
    response = await node.http.get("/api/nothing")
    assert (response.status_code, response.json()["responseCode"]) == (404, 4)
    preflight = await node.http.options(f"/api/handles/{UNIT}")
    assert preflight.status_code == 204
    assert "PUT" in preflight.headers["access-control-allow-methods"]


async def test_handle_client_errors_carry_the_response_code(node: Node) -> None:
    with node.client() as client, pytest.raises(HandleClientError) as caught:
        await asyncio.to_thread(client.get, "88.101.5/none")
    assert (caught.value.status, caught.value.response_code) == (404, 100)


async def test_bodies_nested_too_deep_are_bad_requests(node: Node) -> None:
    deep = b"[" * 200_000
    put_deep = await node.http.put(
        f"/api/handles/{UNIT}",
        content=deep,
        headers={"content-type": "application/json", **basic(ADMIN, SECRET)},
    )
    assert (put_deep.status_code, put_deep.json()["responseCode"]) == (400, 4)
    verify_deep = await node.http.post("/api/verifications", content=deep)
    assert verify_deep.status_code == 400


async def test_client_made_secret_hashes_are_hashed_again(node: Node) -> None:
    greedy = "$argon2id$v=19$m=4194304,t=100000,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"
    key = {"index": 300, "type": "HS_SECKEY", "data": greedy}
    assert (await put(node, "88.101.5/robot", [key, ADMIN_VALUE])).status_code == 201
    record = (
        await node.http.get("/api/handles/88.101.5/robot", headers=basic(ADMIN, SECRET))
    ).json()
    stored = next(v for v in record["values"] if v["type"] == "HS_SECKEY")["data"]["value"]
    assert stored != greedy
    assert "m=4194304" not in stored  # this node's own argon2 parameters
    # The text sent is the secret; sending the stored hash back unchanged keeps it.
    kept = {"index": 300, "type": "HS_SECKEY", "data": stored}
    assert (await put(node, "88.101.5/robot", [kept], index="300")).status_code == 200
    again = (
        await node.http.get("/api/handles/88.101.5/robot", headers=basic(ADMIN, SECRET))
    ).json()
    assert next(v for v in again["values"] if v["type"] == "HS_SECKEY")["data"]["value"] == stored
    works = await node.http.put(
        "/api/handles/88.101.5/by-robot",
        json=[URL_VALUE],
        headers=basic("300:88.101.5/robot", greedy),
    )
    assert works.status_code == 403  # authenticated (no HS_ADMIN grant), not refused as unknown


async def test_concurrent_creates_of_one_handle_never_both_win(node: Node) -> None:
    operator_key = {"index": 300, "type": "HS_SECKEY", "data": "operator-secret"}
    assert (await put(node, "88.101.5/operator", [operator_key, ADMIN_VALUE])).status_code == 201
    grant = admin_json(110, "88.101.5/operator", 300, "000000000001")
    assert (await put(node, "0.NA/88.101.5", [grant], index="110")).status_code == 201
    mine = [{**URL_VALUE, "data": "https://mine.example"}, ADMIN_VALUE]
    theirs = [{**URL_VALUE, "data": "https://theirs.example"}]
    for round_ in range(5):
        name = f"/api/handles/88.101.5/contested-{round_}"
        answers = await asyncio.gather(
            node.http.put(name, json=mine, headers=basic(ADMIN, SECRET)),
            node.http.put(
                name, json=theirs, headers=basic("300:88.101.5/operator", "operator-secret")
            ),
        )
        created = [a for a in answers if a.status_code == 201]
        assert len(created) == 1, [a.text for a in answers]
        assert next(a.status_code for a in answers if a.status_code != 201) in (403, 409)


async def test_delete_index_out_of_range_is_a_bad_request(node: Node) -> None:
    assert (await put(node, UNIT, [URL_VALUE, ADMIN_VALUE])).status_code == 201
    response = await node.http.delete(
        f"/api/handles/{UNIT}",
        params={"index": "99999999999999999999"},
        headers=basic(ADMIN, SECRET),
    )
    assert (response.status_code, response.json()["responseCode"]) == (400, 4)


async def test_the_proxy_encodes_what_a_header_cannot_carry(node: Node) -> None:
    odd = {"index": 1, "type": "URL", "data": "https://plant.example/a b\r\nX-Evil: 1/ü"}
    assert (await put(node, UNIT, [odd])).status_code == 201
    response = await node.http.get(f"/hdl/{UNIT}")
    assert response.status_code == 302
    assert response.headers["location"] == "https://plant.example/a%20b%0D%0AX-Evil:%201/%C3%BC"
    assert "x-evil" not in response.headers


async def test_session_writes_decided_on_the_loop_replace_and_refuse_rightly(
    node: Node, rsa_key: PrivateKey
) -> None:
    """Session-authenticated creates are decided on the event loop without reading the
    handle; a handle that exists after all is decided again as a replace."""
    identity = await add_pubkey(node, rsa_key, 301)
    with node.client(identity=identity, private_key=rsa_key) as client:
        session = await asyncio.to_thread(client._open_session)
    header = {"Authorization": f'Handle version="0", sessionId="{session}"'}

    async def session_put(handle: str, values: list[dict[str, Any]], **params: str) -> Any:
        response = await node.http.put(
            f"/api/handles/{handle}", params=params, json=values, headers=header
        )
        return response.status_code, response.json()

    mine = admin_json(100, "0.NA/88.101.5", 301, "011111110011")
    assert (await session_put(UNIT, [URL_VALUE, mine]))[0] == 201
    other_url = {**URL_VALUE, "data": "https://plant.example/u/2"}
    assert (await session_put(UNIT, [other_url, mine]))[0] == 200  # replaced
    status, body = await session_put(UNIT, [URL_VALUE], overwrite="false")
    assert (status, body["responseCode"]) == (409, 101)
    values = (await node.http.get(f"/api/handles/{UNIT}")).json()["values"]
    assert [v["data"]["value"] for v in values if v["type"] == "URL"] == [
        "https://plant.example/u/2"
    ]
    # An identity holding only the handle's own HS_ADMIN (nothing on the prefix) may
    # replace that handle, and may not create others.
    robot_key = generate_private_key()
    robot = HandleValue(300, "HS_PUBKEY", public_key_to_jwk(robot_key))
    assert (await put(node, "88.101.5/robot", [value_to_json(robot)])).status_code == 201
    robot_admin = admin_json(101, "88.101.5/robot", 300, "011111110011")
    assert (await session_put(UNIT, [URL_VALUE, robot_admin]))[0] == 200
    with node.client(identity="300:88.101.5/robot", private_key=robot_key) as client:
        robot_session = await asyncio.to_thread(client._open_session)
    header["Authorization"] = f'Handle version="0", sessionId="{robot_session}"'
    assert (await session_put(UNIT, [other_url, robot_admin]))[0] == 200
    status, body = await session_put("88.101.5/not-the-robots", [URL_VALUE])
    assert (status, body["responseCode"]) == (403, 400)
