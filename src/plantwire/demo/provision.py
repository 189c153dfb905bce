"""The demo tenant and what it owns, made on the first run and found again on the next:
the tenant and its admin user (in the registry, as ``plantwire init`` makes the first
admin), the enterprise prefix homed for it on the platform's node, and the gateway's edge
node as a device made through the device API with that user's login."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path

import httpx
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from plantwire.db import transaction
from plantwire.ids.names import match_key
from plantwire.platform import Platform
from plantwire.security import audit
from plantwire.security.roles import Role
from plantwire.security.tables import Tenant, User, name_key

__all__ = [
    "DEMO_PREFIX",
    "DEMO_TENANT",
    "DEMO_USERNAME",
    "EDGE_NODE",
    "ProvisionError",
    "ensure_edge_node",
    "ensure_tenant_and_user",
    "home_prefix",
    "login",
]

DEMO_TENANT = "Demo Manufacturing"
DEMO_USERNAME = "demo"
DEMO_PREFIX = "88.101.5"
EDGE_NODE = ("Plant1", "Gateway1")  # the gateway's Sparkplug group and edge node ids
_ACTOR = "plantwire up --demo"


class ProvisionError(Exception):
    """The data dir holds something in the demo's way (its message says what)."""


def ensure_tenant_and_user(platform: Platform, password: str) -> str:
    """The demo tenant's id, with user ``demo`` as its admin whose password is ``password``
    (set again if it differs: the demo's secrets file is where the password lives)."""
    with transaction(platform.sessions) as session:
        tenant = session.scalar(select(Tenant).where(Tenant.name_key == name_key(DEMO_TENANT)))
        if tenant is None:
            tenant = Tenant(name=DEMO_TENANT, name_key=name_key(DEMO_TENANT))
            session.add(tenant)
            session.flush()
            _audit(session, "tenant.create", "tenant", tenant.id, tenant.id, {"name": DEMO_TENANT})
        user = session.scalar(select(User).where(func.lower(User.username) == DEMO_USERNAME))
        if user is None:
            user = User(
                username=DEMO_USERNAME,
                password_hash=platform.passwords.hash(password),
                role=Role.TENANT_ADMIN.value,
                tenant_id=tenant.id,
                disabled=False,
            )
            session.add(user)
            session.flush()
            detail = {"username": DEMO_USERNAME, "role": Role.TENANT_ADMIN.value}
            _audit(session, "user.create", "user", user.id, tenant.id, detail)
        elif user.tenant_id != tenant.id or user.role != Role.TENANT_ADMIN.value:
            raise ProvisionError(
                f"user '{DEMO_USERNAME}' exists and is not the tenant admin of "
                f"'{DEMO_TENANT}'; the demo needs that name (use another data dir)."
            )
        elif user.disabled or not platform.passwords.verify(user.password_hash, password):
            user.password_hash = platform.passwords.hash(password)
            user.disabled = False
            _audit(session, "user.update", "user", user.id, tenant.id, {"password": "reset"})
        return tenant.id


def _audit(
    session: Session, action: str, kind: str, target: str, tenant: str, detail: dict[str, str]
) -> None:
    audit.record(
        session,
        actor=None,
        actor_name=_ACTOR,
        action=action,
        target_type=kind,
        target_id=target,
        tenant_id=tenant,
        source="cli",
        detail=detail,
    )


def home_prefix(platform: Platform, tenant_id: str, prefix: str = DEMO_PREFIX) -> None:
    """Home ``prefix`` for the tenant on the platform's identifier node (as
    ``POST /api/v1/ids/prefixes`` does); its record lives on the parent's node."""
    node = platform.ids
    assert node is not None, "the platform runs its identifier node once its app exists"
    key = match_key(prefix)
    homed = next((h for h in node.store.homed() if match_key(h.prefix) == key), None)
    if homed is not None:
        if homed.tenant_id != tenant_id:
            raise ProvisionError(f"prefix {prefix} is homed here for another tenant.")
        return
    node.store.home(prefix, tenant_id)
    node.node.refresh_homed()
    with transaction(platform.sessions) as session:
        _audit(session, "prefix.home", "prefix", prefix, tenant_id, {})


async def login(client: httpx.AsyncClient, username: str, password: str) -> str:
    """A session token of the user (``POST /api/v1/auth/login``)."""
    answer = await client.post(
        "/api/v1/auth/login", json={"username": username, "password": password}
    )
    _check(answer, "log in as the demo user")
    return str(answer.json()["token"])


@dataclass(frozen=True, slots=True)
class EdgeNodeCredentials:
    username: str
    password_file: Path


async def ensure_edge_node(
    client: httpx.AsyncClient, folder: Path, place: str = "Demo/Plant1"
) -> EdgeNodeCredentials:
    """The gateway's edge node ``<group>/<edge node>`` as a ``sparkplug-node`` device of the
    client's tenant, and its MQTT credentials kept in ``folder`` (the password readable by
    the owner only). Made once; when the password file is gone the secret is replaced."""
    name = "/".join(EDGE_NODE)
    kept = await asyncio.to_thread(_kept, folder)
    found = await client.get("/api/v1/devices", params={"search": name, "limit": 100})
    _check(found, "list the demo's devices")
    device = next((d for d in found.json()["items"] if d["name"] == name), None)
    if device is not None and kept is not None:
        return kept
    if device is None:
        made = await client.post(
            "/api/v1/devices",
            json={"name": name, "kind": "sparkplug-node", "place": place},
        )
        _check(made, f"create the edge node {name}")
        credentials = made.json()["mqtt"]
    else:
        rotated = await client.post(f"/api/v1/devices/{device['id']}/credentials")
        _check(rotated, f"replace the MQTT secret of {name}")
        credentials = rotated.json()
    return await asyncio.to_thread(
        _keep, folder, str(credentials["username"]), str(credentials["password"])
    )


def _kept(folder: Path) -> EdgeNodeCredentials | None:
    secret_file, username_file = folder / "uplink.secret", folder / "uplink.username"
    if not (secret_file.exists() and username_file.exists()):
        return None
    return EdgeNodeCredentials(username_file.read_text(encoding="utf-8").strip(), secret_file)


def _keep(folder: Path, username: str, password: str) -> EdgeNodeCredentials:
    folder.mkdir(parents=True, exist_ok=True)
    secret_file = folder / "uplink.secret"
    secret_file.unlink(missing_ok=True)
    fd = os.open(secret_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(password)
    (folder / "uplink.username").write_text(username, encoding="utf-8")
    return EdgeNodeCredentials(username, secret_file)


def _check(answer: httpx.Response, doing: str) -> None:
    if answer.status_code >= 400:
        raise ProvisionError(f"could not {doing}: HTTP {answer.status_code} {answer.text[:300]}")
