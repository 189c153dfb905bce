"""Schemathesis over an identifier node's own OpenAPI document (``/api/openapi.json`` of a
standalone node): every operation, anonymously and as the prefix's administrator, with
positive and negative data. No 5xx, documented statuses and content types, bodies matching
the documented schemas (the Handle JSON shape, never problem+json)."""

from __future__ import annotations

import base64
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import Case, GenerationMode, HookContext
from schemathesis.errors import FailureGroup

from plantwire.db import make_engine, migrate
from plantwire.ids.handle_auth import SecretKeys
from plantwire.ids.model import HandleValue
from plantwire.ids.names import parse_handle
from plantwire.ids.rest import HandleNode
from plantwire.ids.server import NodeOptions, bootstrap
from plantwire.ids.store import SqlHandleStore
from plantwire.security.hashing import PasswordHashing
from tests.conftest import make_settings

SECRET = "fuzzing-admin-secret"
BASE_URL = "https://testserver"  # credentials are accepted over HTTPS only from afar
# Not the prefix record itself: an admin case replacing it would lock the admin out.
SEEDED = ["88.101.5/SN-1", "88.101.5/SN-2", "88.101.5/no-such", "88.101.6/x"]
CHECKS = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_schema_conformance,
]
FUZZING = settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
ROLES = {
    "anonymous": {},
    "admin": {
        "Authorization": "Basic "
        + base64.b64encode(f"300%3A0.NA/88.101.5:{SECRET}".encode()).decode()
    },
}


@pytest.fixture
def node(tmp_path: Path) -> Iterator[TestClient]:
    settings_ = make_settings(tmp_path / "data")
    (tmp_path / "data").mkdir()
    engine = make_engine(settings_.registry_url)
    migrate(engine)
    store = SqlHandleStore(engine)
    secret_keys = SecretKeys(PasswordHashing(1, 8))
    bootstrap(store, secret_keys, NodeOptions(homes=["88.101.5"], admin_secret=SECRET))
    for name in SEEDED[:2]:
        store.create(
            parse_handle(name), [HandleValue(1, "URL", b"https://p.example")], overwrite=False
        )
    with TestClient(
        HandleNode(store, secret_keys, proxy_at_root=True), base_url=BASE_URL
    ) as client:
        yield client
    store.close()
    engine.dispose()


def _schema(client: TestClient) -> Any:
    document = client.get("/api/openapi.json")
    assert document.status_code == 200
    schema = schemathesis.openapi.from_dict(document.json())

    @schema.hook
    def flatmap_path_parameters(  # type: ignore[no-untyped-def]
        context: HookContext, path_parameters: dict[str, Any] | None
    ):
        if not path_parameters or "handle" not in path_parameters:
            return st.just(path_parameters)
        seeded = st.sampled_from(SEEDED).map(lambda name: {**path_parameters, "handle": name})
        return st.one_of(st.just(path_parameters), seeded)

    return schema


def _fuzz(
    node: TestClient,
    operation: Any,
    role: str,
    mode: GenerationMode,
    failures: dict[tuple[str, str], str],
    statuses: Counter[int],
) -> None:
    headers = ROLES[role]

    @FUZZING
    @given(case=operation.as_strategy(generation_mode=mode))
    def fuzz(case: Case[Any]) -> None:
        kwargs = case.as_transport_kwargs(base_url=BASE_URL, headers=headers)
        prepared = requests.Request(**kwargs).prepare()
        assert prepared.method is not None
        assert prepared.url is not None
        assert prepared.body is None or isinstance(prepared.body, bytes | str)
        sent = {
            k: v if isinstance(v, str) else v.decode("latin-1")
            for k, v in prepared.headers.items()
            if k.lower() != "content-length"
        }
        response = node.request(
            prepared.method,
            prepared.url,
            headers=sent,
            content=prepared.body,
            follow_redirects=False,
        )
        statuses[response.status_code] += 1
        try:
            case.validate_response(response, checks=CHECKS)
        except FailureGroup as group:
            for failure in group.exceptions:
                key = (f"{role} {operation.label}", failure.title)
                failures.setdefault(key, f"{case!r}\n{response.text[:300]}")

    fuzz()


def test_the_handle_api_conforms_to_its_document(node: TestClient) -> None:
    schema = _schema(node)
    failures: dict[tuple[str, str], str] = {}
    statuses: Counter[int] = Counter()
    for path in schema.values():
        for operation in path.values():
            for role in ROLES:
                modes = [GenerationMode.POSITIVE]
                if len(operation.query) or len(operation.body):  # paths have no invalid values
                    modes.append(GenerationMode.NEGATIVE)
                for mode in modes:
                    _fuzz(node, operation, role, mode, failures, statuses)
    report = "\n\n".join(
        f"--- {where}: {title}\n{detail}" for (where, title), detail in failures.items()
    )
    assert not failures, f"{len(failures)} distinct failures:\n\n{report}"
    for status in (200, 201, 404, 401):
        assert statuses[status], statuses
