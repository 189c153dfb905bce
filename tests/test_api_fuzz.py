"""Schemathesis over the whole OpenAPI document, once per role, in-process.

The document is read from ``/api/openapi.json`` of ``create_app(settings)``. Every operation in
it is fuzzed with positive and negative data, anonymously and as each role, and every response
must pass schemathesis' conformance checks: no 5xx, a documented status code and content type,
headers and a body matching the documented schema. Anonymous calls of operations that need a
caller must all be answered 401.

Each operation is fuzzed on a fresh copy of one seeded platform, so a case that deletes a tenant
or revokes a token cannot starve the operations fuzzed after it. Hooks mix the seeded ids into
generated path parameters, queries and bodies (random ids never name a real resource), and
across all roles every operation must answer 2xx at least once.

Requests go through Starlette's TestClient, whose event-loop thread and app lifespan end with
each ``with`` block. (Schemathesis' own ASGI transport keeps one event-loop thread for the rest
of the process, which the leak check would rightly flag.)"""

from __future__ import annotations

import shutil
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx2
import pytest
import requests
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import APIOperation, BaseSchema, Case, GenerationMode, HookContext
from schemathesis.errors import FailureGroup

from plantwire.app import OPENAPI_URL, create_app
from plantwire.lifecycle import initialise
from plantwire.telemetry.tables import DeviceCommand
from tests.conftest import ADMIN_PASSWORD, PASSWORD, ROLES, login, make_settings, seed_platform
from tests.security.helpers import platform_of

ANONYMOUS = "anonymous"
FUZZ_ROLES = (ANONYMOUS, "platform-admin", *ROLES)  # the tenant roles act in tenant "a"
PUBLIC_OPERATIONS = frozenset(
    {"GET /api", "POST /api/v1/auth/login", "GET /healthz", "GET /readyz", "GET /metrics"}
)
EXAMPLES = 25  # per operation, role and generation mode
SEEDED_PREFIXES = ["88.101.5", "88.101.6"]  # homed for tenants "a" and "b"
SEEDED_METRIC = "setpoint"  # a metric of the seeded devices (their store holds no points)
BASE_URL = "http://testserver"
#: A live stream ends after this long here: the TestClient reads whole bodies, and so do the
#: checks (what a stream sends is tested in tests/telemetry/test_live.py).
STREAM_SECONDS = 0.05

CHECKS = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_headers_conformance,
    schemathesis.checks.response_schema_conformance,
]

FUZZING = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,  # the same cases on every run, so CI is reproducible
    database=None,
    # Failures are collected, never raised inside Hypothesis: there is nothing to shrink.
    phases=[Phase.explicit, Phase.generate],
    # Whole requests are slow to generate, and schemathesis filters some of what it draws.
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)

Operation = APIOperation[Any, Any, Any, Any]


@dataclass(frozen=True)
class Template:
    """A seeded data dir, copied for each operation's platform, and the document's operations
    (their schema carries the hooks that mix in the seeded ids)."""

    data_dir: Path
    operations: tuple[Operation, ...]
    headers: Mapping[str, Mapping[str, str]]  # fuzzing role -> its Authorization header


@dataclass
class RoleRun:
    """What fuzzing as one role saw: the status codes per operation, the distinct failures."""

    statuses: dict[str, Counter[int]] = field(default_factory=dict)
    failures: dict[tuple[str, str], str] = field(default_factory=dict)  # (operation, title)
    examples: int = 0


#: Results per fuzzing role, shared by the per-role tests and the coverage test: whatever order
#: (or subset) the tests run in, the coverage test runs the roles it finds missing.
RUNS: dict[str, RoleRun] = {}


def _api_token(client: TestClient, headers: Mapping[str, str], name: str) -> tuple[str, str]:
    response = client.post("/api/v1/tokens", json={"name": name}, headers=dict(headers))
    assert response.status_code == 201, response.text
    body = response.json()
    return body["id"], body["token"]


def _register_seed_hooks(
    schema: BaseSchema,
    tenant_ids: list[str],
    user_ids: list[str],
    token_ids: list[str],
    device_ids: list[str],
    command_ids: list[str],
    logins: list[dict[str, str]],
) -> None:
    """Make generated data name seeded resources about half of the time."""
    pools = {
        "tenant_id": tenant_ids,
        "user_id": user_ids,
        "token_id": token_ids,
        "prefix": SEEDED_PREFIXES,
        "device_id": device_ids,
        "command_id": command_ids,
    }

    def flatmap_path_parameters(
        context: HookContext, path_parameters: dict[str, Any] | None
    ) -> st.SearchStrategy[dict[str, Any] | None]:
        if not path_parameters:  # None for operations without path parameters
            return st.just(path_parameters)
        seeded = {
            name: st.sampled_from(pools[name]) if name in pools else st.just(value)
            for name, value in path_parameters.items()
        }
        return st.one_of(st.just(path_parameters), st.fixed_dictionaries(seeded))

    query_pools: dict[str, st.SearchStrategy[str]] = {
        "tenant": st.sampled_from(tenant_ids),
        "metric": st.just(SEEDED_METRIC),
        # a day of telemetry, in both forms the API reads
        "start": st.sampled_from(["2026-11-22T00:00:00Z", "1795305600000"]),
        "end": st.sampled_from(["2026-11-23T00:00:00+01:00", "1795388400000"]),
    }

    def flatmap_query(
        context: HookContext, query: dict[str, Any] | None
    ) -> st.SearchStrategy[dict[str, Any] | None]:
        if not isinstance(query, dict) or not query_pools.keys() & query.keys():
            return st.just(query)
        seeded = {name: query_pools.get(name, st.just(value)) for name, value in query.items()}
        return st.one_of(st.just(query), st.fixed_dictionaries(seeded))

    def flatmap_body(context: HookContext, body: Any) -> st.SearchStrategy[Any]:
        label = context.operation.label if context.operation is not None else ""
        if label == "POST /api/v1/auth/login":
            return st.one_of(st.just(body), st.sampled_from(logins))
        if label in ("POST /api/v1/users", "POST /api/v1/devices") and isinstance(body, dict):
            in_tenant = st.sampled_from(tenant_ids).map(lambda tenant: {**body, "tenant": tenant})
            own_tenant = {key: value for key, value in body.items() if key != "tenant"}
            return st.one_of(st.just(body), in_tenant, st.just(own_tenant))
        if label == "POST /api/v1/ids/prefixes" and isinstance(body, dict):
            fresh = st.tuples(st.sampled_from(tenant_ids), st.integers(1, 10**6)).map(
                lambda pair: {
                    **{key: value for key, value in body.items() if key != "admin_pubkey"},
                    "tenant": pair[0],
                    "prefix": f"88.200.{pair[1]}",
                }
            )
            return st.one_of(st.just(body), fresh)
        return st.just(body)

    for hook in (flatmap_path_parameters, flatmap_query, flatmap_body):
        schema.hook(hook)


def _seed_command(client: TestClient, device_id: str) -> str:
    """A command as the command route records it (sending one needs a broker)."""
    now = datetime.now(UTC)
    with platform_of(client).sessions() as session, session.begin():
        command = DeviceCommand(
            device_id=device_id, metric="setpoint", value=1.0, status="sent", sent_at=now,
            deadline=now,
        )  # fmt: skip
        session.add(command)
        session.flush()
        command_id: str = command.id
    return command_id


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    """Tenants "a" and "b" with a user of every role, an empty spare tenant, and for each
    fuzzing role an API token to fuzz with. Those tokens are kept out of the id pools, so no
    generated revocation or password change ends the fuzzing principal's access."""
    RUNS.clear()  # results belong to the platform they were fuzzed on
    config = make_settings(tmp_path_factory.mktemp("fuzz") / "template")
    initialise(config, ADMIN_PASSWORD)
    with TestClient(create_app(config), raise_server_exceptions=False) as client:
        document = client.get(OPENAPI_URL)
        assert document.status_code == 200, document.text
        seed = seed_platform(client)
        spare = client.post("/api/v1/tenants", json={"name": "Tenant spare"}, headers=seed.admin)
        assert spare.status_code == 201, spare.text
        for prefix, key in zip(SEEDED_PREFIXES, "ab", strict=True):
            body = {"prefix": prefix, "tenant": seed.tenants[key].id}
            homed = client.post("/api/v1/ids/prefixes", json=body, headers=seed.admin)
            assert homed.status_code == 201, homed.text
        device_ids = []
        for key in "ab":
            device = {"name": "press-1", "metrics": [{"name": SEEDED_METRIC, "writable": True}]}
            made = client.post(
                "/api/v1/devices", json=device, headers=seed.tenants[key].headers["engineer"]
            )
            assert made.status_code == 201, made.text
            device_ids.append(made.json()["id"])
        command_ids = [_seed_command(client, device_id) for device_id in device_ids]
        fuzzers = {"platform-admin": seed.admin} | {
            role: seed.tenants["a"].headers[role] for role in ROLES
        }
        headers: dict[str, Mapping[str, str]] = {ANONYMOUS: {}}
        fuzzing_tokens = set()
        for role, role_headers in fuzzers.items():
            token_id, secret = _api_token(client, role_headers, f"fuzzing as {role}")
            fuzzing_tokens.add(token_id)
            headers[role] = {"Authorization": f"Bearer {secret}"}
            _api_token(client, role_headers, f"read and revoked by {role}")
        everyone = {"limit": 1000}
        tokens = client.get(
            "/api/v1/tokens", params={**everyone, "scope": "tenant"}, headers=seed.admin
        )
        users = client.get("/api/v1/users", params=everyone, headers=seed.admin)
        assert tokens.status_code == users.status_code == 200
    token_ids = sorted(t["id"] for t in tokens.json()["items"] if t["id"] not in fuzzing_tokens)
    user_ids = sorted(u["id"] for u in users.json()["items"])
    tenant_ids = [seed.tenants["a"].id, seed.tenants["b"].id, spare.json()["id"]]
    logins = [{"username": "admin", "password": ADMIN_PASSWORD}] + [
        {"username": f"{key}-{role}", "password": PASSWORD} for key in "ab" for role in ROLES
    ]
    schema = schemathesis.openapi.from_dict(document.json())
    _register_seed_hooks(schema, tenant_ids, user_ids, token_ids, device_ids, command_ids, logins)
    operations = tuple(operation for path in schema.values() for operation in path.values())
    return Template(data_dir=config.data_dir, operations=operations, headers=headers)


def _send(client: TestClient, case: Case[Operation], headers: Mapping[str, str]) -> httpx2.Response:
    """Send ``case`` as schemathesis puts it on the wire (``requests`` serialises it)."""
    kwargs = case.as_transport_kwargs(base_url=BASE_URL, headers=dict(headers))
    prepared = requests.Request(**kwargs).prepare()
    assert prepared.method is not None
    assert prepared.url is not None
    assert prepared.body is None or isinstance(prepared.body, bytes | str)
    sent = {
        name: value if isinstance(value, str) else value.decode("latin-1")
        for name, value in prepared.headers.items()
        if name.lower() != "content-length"  # the client counts the body itself
    }
    client.cookies.clear()  # a login answer sets the session cookie; no case may inherit it
    return client.request(
        prepared.method, prepared.url, headers=sent, content=prepared.body, follow_redirects=False
    )


def _modes(operation: Operation) -> Iterator[GenerationMode]:
    yield GenerationMode.POSITIVE
    # Unconstrained string path parameters have no invalid values; queries and bodies do.
    if len(operation.query) or len(operation.body):
        yield GenerationMode.NEGATIVE


def _fuzz_operation(
    template: Template, role: str, operation: Operation, data_dir: Path, run: RoleRun
) -> None:
    label = operation.label
    statuses = run.statuses.setdefault(label, Counter())
    headers = template.headers[role]
    needs_caller = label not in PUBLIC_OPERATIONS
    shutil.copytree(template.data_dir, data_dir)
    settings = make_settings(data_dir, live_stream_max_seconds=STREAM_SECONDS)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        for mode in _modes(operation):

            @FUZZING
            @given(case=operation.as_strategy(generation_mode=mode))
            def fuzz(case: Case[Operation]) -> None:
                response = _send(client, case, headers)
                run.examples += 1
                statuses[response.status_code] += 1
                try:
                    case.validate_response(response, checks=CHECKS)
                except FailureGroup as group:
                    for failure in group.exceptions:
                        run.failures.setdefault((label, failure.title), group.message)
                if role == ANONYMOUS and needs_caller and response.status_code != 401:
                    title = f"anonymous call answered {response.status_code}, not 401"
                    run.failures.setdefault((label, title), f"{case!r}\n{response.text}")

            fuzz()
    shutil.rmtree(data_dir)


def _fuzz_role(template: Template, role: str, workdir: Path) -> RoleRun:
    if role not in RUNS:
        run = RoleRun()
        for index, operation in enumerate(template.operations):
            _fuzz_operation(template, role, operation, workdir / f"{role}-{index}", run)
        RUNS[role] = run
    return RUNS[role]


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("role", FUZZ_ROLES)
def test_responses_conform_to_the_document(template: Template, role: str, tmp_path: Path) -> None:
    run = _fuzz_role(template, role, tmp_path)
    assert run.examples >= len(template.operations)
    report = "\n\n".join(
        f"--- {label}: {title}\n{detail}" for (label, title), detail in run.failures.items()
    )
    assert not run.failures, f"{len(run.failures)} distinct failures as {role}:\n\n{report}"


#: Operations that can only succeed with a broker, which the fuzzed platform has not: they
#: answer 409 here (fuzzed all the same), and succeed in tests/telemetry/test_commands.py.
NEEDS_A_BROKER = {"POST /api/v1/devices/{device_id}/commands"}


@pytest.mark.slow
@pytest.mark.timeout(900)  # alone, it fuzzes every role itself
def test_every_operation_answers_2xx_for_some_role(template: Template, tmp_path: Path) -> None:
    runs = [_fuzz_role(template, role, tmp_path) for role in FUZZ_ROLES]
    seen: dict[str, set[int]] = {}
    for operation in template.operations:
        for run in runs:
            seen.setdefault(operation.label, set()).update(run.statuses.get(operation.label, ()))
    never = {
        label: sorted(codes)
        for label, codes in seen.items()
        if not any(200 <= code < 300 for code in codes) and label not in NEEDS_A_BROKER
    }
    assert not never, f"operations that never answered 2xx (the statuses they gave): {never}"


# --- what the fuzzing found, pinned down --------------------------------------------------


@pytest.mark.parametrize("body", [b"{", b"\xff"], ids=["malformed-json", "not-utf-8"])
def test_unreadable_bodies_are_refused_after_authentication(
    client: TestClient, body: bytes
) -> None:
    """FastAPI parses a body before it authenticates: anonymous callers were answered 400."""
    client.cookies.clear()
    json_body = {"Content-Type": "application/json"}
    anonymous = client.post("/api/v1/tenants", content=body, headers=json_body)
    assert anonymous.status_code == 401, anonymous.text
    assert anonymous.headers["www-authenticate"].startswith("Bearer")
    admin = login(client, "admin", ADMIN_PASSWORD)
    client.cookies.clear()
    authenticated = client.post("/api/v1/tenants", content=body, headers=json_body | admin)
    assert authenticated.status_code == 400, authenticated.text
    public = client.post("/api/v1/auth/login", content=body, headers=json_body)
    assert public.status_code == 400, public.text  # logging in needs no caller


def test_problem_bodies_are_documented_as_problem_json(client: TestClient) -> None:
    document = client.get(OPENAPI_URL).json()
    answers = document["paths"]["/api/v1/tenants/{tenant_id}"]["get"]["responses"]
    assert answers["404"]["content"] == {
        "application/problem+json": {"schema": {"$ref": "#/components/schemas/ProblemDetail"}}
    }
    assert list(document["paths"]["/metrics"]["get"]["responses"]["200"]["content"]) == [
        "text/plain"
    ]
