"""Benchmark: authenticating a bearer token on an API request.

Every API call pays for it: SHA-256 of the presented secret, one indexed SELECT joining the
token to its user, and the checks (revoked, expired, user disabled, effective role). The
script builds a real platform on a temporary data dir (SQLite registry, or the database in
``PLANTWIRE_DATABASE_URL``, which must then be empty) and measures, in one run:

1. HTTP, in-process through the whole ASGI app and its middleware (httpx's ASGI transport):
   ``GET /api/v1/auth/me`` with a bearer token, against the baseline ``GET /healthz``, which
   passes the same middleware and client but authenticates nothing. Also
   ``GET /api/v1/tenants``: authentication plus a permission check (``require``), the shape
   of most API operations.
2. The verification function alone (``plantwire.security.auth.authenticate``) with
   ``TOKENS`` API tokens in the table, each call presenting a different one, against the
   baseline of one registry session running ``SELECT 1``. For reference, also the same
   indexed join through a bare SQLAlchemy Core connection, and SHA-256 alone.

Shared machines are noisy, so each measurement and its baseline run in short alternating
blocks and the fastest block of each counts. Run: ``.venv/bin/python bench/auth.py``.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import httpx
from sqlalchemy import bindparam, insert, select, text
from starlette.requests import Request

from plantwire.app import create_app
from plantwire.config import Settings, load_settings
from plantwire.lifecycle import build_platform, initialise
from plantwire.observability import configure_logging
from plantwire.platform import Platform
from plantwire.security.auth import authenticate
from plantwire.security.hashing import hash_secret, new_secret
from plantwire.security.roles import Role
from plantwire.security.tables import ApiToken, User, utcnow

ADMIN_PASSWORD = "bench-admin-password"
TOKENS = 10_000
HTTP_BLOCK = 100  # requests per block
HTTP_BLOCKS = 20  # blocks of each path
CALL_BLOCK = 250  # calls per block of the bare function
CALL_BLOCKS = 16


def _settings(data_dir: Path) -> Settings:
    # The argon2 cost only matters for the one login; keep set-up fast.
    return load_settings(data_dir, argon2_time_cost=1, argon2_memory_kib=8, cookie_secure=False)


def _add_tokens(platform: Platform, count: int) -> list[str]:
    """``count`` viewer API tokens of the platform admin, inserted in bulk; their secrets."""
    secrets = [new_secret() for _ in range(count)]
    now = utcnow()
    expires = now + timedelta(days=30)
    with platform.sessions() as session, session.begin():
        admin_id = session.scalars(select(User.id).where(User.username == "admin")).one()
        rows = [
            {
                "id": f"bench-{index:08d}",
                "user_id": admin_id,
                "tenant_id": None,
                "kind": "api",
                "name": f"bench {index}",
                "role": Role.VIEWER.value,
                "secret_hash": hash_secret(secret),
                "created_at": now,
                "expires_at": expires,
                "revoked_at": None,
            }
            for index, secret in enumerate(secrets)
        ]
        session.execute(insert(ApiToken), rows)
    return secrets


def _alternate(
    measure: Callable[[], float], baseline: Callable[[], float], blocks: int
) -> tuple[float, float]:
    """Fastest block time of ``measure`` and of ``baseline``, run alternately."""
    best_measure = best_baseline = float("inf")
    for _ in range(blocks):
        best_baseline = min(best_baseline, baseline())
        best_measure = min(best_measure, measure())
    return best_measure, best_baseline


async def _http(settings: Settings, platform: Platform) -> tuple[float, float, float]:
    """Requests per second of the two authenticated GETs and of the baseline."""
    app = create_app(settings, platform)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        login = await client.post(
            "/api/v1/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}
        )
        login.raise_for_status()
        bearer = {"Authorization": f"Bearer {login.json()['token']}"}

        async def block(path: str, headers: dict[str, str]) -> float:
            started = time.perf_counter()
            for _ in range(HTTP_BLOCK):
                response = await client.get(path, headers=headers)
                if response.status_code != 200:
                    raise RuntimeError(f"GET {path} answered {response.status_code}")
            return time.perf_counter() - started

        await block("/healthz", {})  # warm up: routes, connection pool, worker threads
        await block("/api/v1/auth/me", bearer)
        await block("/api/v1/tenants", bearer)
        auth = permitted = baseline = float("inf")
        for _ in range(HTTP_BLOCKS):
            baseline = min(baseline, await block("/healthz", {}))
            auth = min(auth, await block("/api/v1/auth/me", bearer))
            permitted = min(permitted, await block("/api/v1/tenants", bearer))
    return HTTP_BLOCK / auth, HTTP_BLOCK / permitted, HTTP_BLOCK / baseline


def _request(secret: str) -> Request:
    return Request(
        {
            "type": "http",
            "method": "GET",
            "path": "/api/v1/auth/me",
            "headers": [(b"authorization", f"Bearer {secret}".encode())],
            "client": ("127.0.0.1", 50000),
        }
    )


def _function(platform: Platform, secrets: list[str]) -> tuple[float, float, float]:
    """Calls per second of authenticate(), of the SELECT 1 baseline and of the bare join."""
    requests = [_request(secret) for secret in secrets]
    position = 0

    def verify() -> float:
        nonlocal position
        started = time.perf_counter()
        for _ in range(CALL_BLOCK):
            principal = authenticate(requests[position], platform)
            position = (position + 1) % len(requests)
            if principal.role is not Role.VIEWER:  # min(token's viewer, admin's role)
                raise RuntimeError(f"unexpected effective role {principal.role}")
        return time.perf_counter() - started

    def select_one() -> float:
        started = time.perf_counter()
        for _ in range(CALL_BLOCK):
            with platform.sessions() as session:
                session.execute(text("SELECT 1")).scalar()
        return time.perf_counter() - started

    verify()  # warm up
    select_one()
    verify_time, select_time = _alternate(verify, select_one, CALL_BLOCKS)

    # The same indexed join on one Core connection, without an ORM session: roughly what the
    # database and driver cost per verification.
    query = (
        select(ApiToken.id, ApiToken.role, ApiToken.expires_at, ApiToken.revoked_at)
        .add_columns(User.id, User.role, User.tenant_id, User.disabled)
        .join(User, User.id == ApiToken.user_id)
        .where(ApiToken.secret_hash == bindparam("secret_hash"))
    )
    digests = [hash_secret(secret) for secret in secrets]
    core_time = float("inf")
    with platform.engine.connect() as connection:
        for block in range(CALL_BLOCKS):
            started = time.perf_counter()
            for digest in digests[block * CALL_BLOCK : (block + 1) * CALL_BLOCK]:
                if connection.execute(query, {"secret_hash": digest}).first() is None:
                    raise RuntimeError("token not found")
            core_time = min(core_time, time.perf_counter() - started)
    return CALL_BLOCK / verify_time, CALL_BLOCK / select_time, CALL_BLOCK / core_time


def _sha256_rate(secrets: list[str]) -> float:
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        for secret in secrets:
            hash_secret(secret)
        best = min(best, time.perf_counter() - started)
    return len(secrets) / best


def main() -> None:
    configure_logging("console", "warning")  # no access-log line per request
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="plantwire-bench-") as scratch:
        settings = _settings(Path(scratch) / "data")
        initialise(settings, ADMIN_PASSWORD)
        platform = build_platform(settings)
        try:
            backend = platform.engine.dialect.name
            secrets = _add_tokens(platform, TOKENS)
            auth_rate, permitted_rate, base_rate = asyncio.run(_http(settings, platform))
            verify_rate, select_rate, core_rate = _function(platform, secrets)
            sha_rate = _sha256_rate(secrets)
        finally:
            platform.engine.dispose()
    elapsed = time.perf_counter() - started
    print(f"bench/auth.py: registry on {backend}, {TOKENS:,} API tokens in the table")
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs; fastest block of each")
    print()
    print(f"HTTP in-process, {HTTP_BLOCKS} blocks of {HTTP_BLOCK} sequential requests:")
    print(f"  baseline GET /healthz (no auth)         {base_rate:10,.0f} req/s")
    print(f"  GET /api/v1/auth/me (bearer token)      {auth_rate:10,.0f} req/s")
    print(f"  ratio auth / baseline                   {auth_rate / base_rate:10.2f}")
    print(f"  GET /api/v1/tenants (+ permission)      {permitted_rate:10,.0f} req/s")
    print(f"  ratio permitted / baseline              {permitted_rate / base_rate:10.2f}")
    print()
    print(f"Verification, {CALL_BLOCKS} blocks of {CALL_BLOCK} calls, a different token each:")
    print(f"  baseline session + SELECT 1             {select_rate:10,.0f} /s")
    print(f"  authenticate() (sha256 + indexed join)  {verify_rate:10,.0f} /s")
    print(f"  ratio verify / baseline                 {verify_rate / select_rate:10.2f}")
    print(f"  the join alone, one Core connection     {core_rate:10,.0f} /s")
    print(f"  sha256 of a secret alone                {sha_rate:10,.0f} /s")
    print()
    print(f"total {elapsed:.1f} s")


if __name__ == "__main__":
    main()
