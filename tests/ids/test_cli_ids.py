"""``plantwire ids …``: nodes refusing to start without an administrator, the demo hierarchy,
and every handle command against a running node (secret-key and private-key credentials)."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from plantwire.cli import app
from plantwire.ids.keys import generate_private_key, load_public_key_pem, private_key_to_pem
from plantwire.ids.server import (
    NodeOptions,
    base_url,
    bind_socket,
    build_node,
    prepare_node_dir,
    serve_node,
)
from tests.conftest import make_settings

SECRET = "secondary-admin-secret"


def plantwire(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "plantwire", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_a_root_node_without_an_administrator_refuses_to_start(tmp_path: Path) -> None:
    result = plantwire(
        "ids",
        "serve",
        "--data-dir",
        str(tmp_path / "n"),
        "--home",
        "88.101",
        "--listen",
        "127.0.0.1:0",
    )
    assert result.returncode == 2
    assert "--admin-secret-file" in result.stderr
    assert "Traceback" not in result.stderr
    recursive = plantwire("ids", "serve", "--data-dir", str(tmp_path / "r"), "--recursive")
    assert recursive.returncode == 2
    assert "--root" in recursive.stderr


@pytest.mark.parametrize("server", ["granian", "uvicorn"])
def test_a_node_serves_until_it_is_told_to_stop(tmp_path: Path, server: str) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [
        sys.executable,
        "-m",
        "plantwire",
        "ids",
        "serve",
        "--data-dir",
        str(tmp_path / "n"),
        "--home",
        "88.101",
        "--listen",
        f"127.0.0.1:{port}",
        "--server",
        server,
    ]
    environment = {**os.environ, "PLANTWIRE_IDS_ADMIN_SECRET": SECRET}
    with subprocess.Popen(
        command, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:
        try:
            assert process.stdout is not None
            line = process.stdout.readline()
            assert f"serving on http://127.0.0.1:{port}" in line
            record = httpx.get(f"http://127.0.0.1:{port}/api/handles/0.NA/88.101", timeout=10)
            assert record.json()["responseCode"] == 1
            fast = httpx.get(f"http://127.0.0.1:{port}/api/handles/88.101/none", timeout=10)
            assert fast.status_code == 404
            assert fast.json() == {"responseCode": 100, "handle": "88.101/none"}
        finally:
            process.terminate()
            _, errors = process.communicate(timeout=30)
    assert process.returncode == 0, errors
    assert "Traceback" not in errors


def test_demo_hierarchy_prints_its_nodes(tmp_path: Path) -> None:
    result = plantwire(
        "ids",
        "demo-hierarchy",
        "--data-dir",
        str(tmp_path),
        "--base-port",
        "0",
        "--json",
        "--exit-after-start",
    )
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout.strip().splitlines()[-1])
    assert list(info["nodes"]) == ["root", "top", "secondary", "enterprise", "recursive"]
    assert info["example_handle"] == "88.101.5/SN-000123"
    assert info["enterprise_admin"]["id"] == "300:0.NA/88.101.5"
    assert len(info["enterprise_admin"]["secret"]) >= 16


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[tuple[str, Path]]:
    key = generate_private_key()
    key_file = tmp_path / "admin.pem"
    key_file.write_bytes(private_key_to_pem(key))
    (tmp_path / "admin.pem.pub").write_bytes(subprocess_free_public_pem(key_file))
    settings = make_settings(tmp_path / "node")
    await asyncio.to_thread(prepare_node_dir, settings)
    options = NodeOptions(
        homes=["88.101"],
        admin_secret=SECRET,
        admin_pubkey=load_public_key_pem((tmp_path / "admin.pem.pub").read_bytes()),
    )
    running = await asyncio.to_thread(build_node, settings, options)
    sock = bind_socket("127.0.0.1", 0)
    async with serve_node(running, sock):
        yield base_url(sock, "127.0.0.1", tls=False), tmp_path


def subprocess_free_public_pem(key_file: Path) -> bytes:
    from plantwire.ids.keys import load_private_key_pem, public_key_to_jwk, public_key_to_pem

    return public_key_to_pem(public_key_to_jwk(load_private_key_pem(key_file.read_bytes())))


async def cli(*args: str) -> tuple[int, str, str]:
    runner = CliRunner()
    result = await asyncio.to_thread(runner.invoke, app, list(args))
    return result.exit_code, result.stdout, result.stderr


async def test_handle_commands(node: tuple[str, Path]) -> None:
    url, folder = node
    secret = ["--via", url, "--auth", "300:0.NA/88.101", "--secret", SECRET]
    created = await cli(
        "ids",
        "create",
        "88.101/pump-7",
        "--url",
        "https://p.example/7",
        "--value",
        "2:EMAIL=ops@p.example",
        *secret,
    )
    assert created[0] == 0, created
    code, out, _ = await cli("ids", "get", "88.101/pump-7", "--via", url)
    record = json.loads(out)
    assert code == 0
    assert [(v["index"], v["type"]) for v in record["values"]] == [
        (1, "URL"),
        (2, "EMAIL"),
        (100, "HS_ADMIN"),
    ]
    changed = await cli("ids", "set", "88.101/pump-7", "--value", "2:EMAIL=qa@p.example", *secret)
    assert changed[0] == 0, changed
    code, out, _ = await cli("ids", "get", "88.101/pump-7", "--type", "EMAIL", "--via", url)
    assert json.loads(out)["values"][0]["data"]["value"] == "qa@p.example"
    # With the private key instead of the secret (challenge-response session).
    keyed = ["--via", url, "--auth", "301:0.NA/88.101", "--key", str(folder / "admin.pem")]
    assert (await cli("ids", "create", "88.101/pump-8", "--url", "https://p.example/8", *keyed))[
        0
    ] == 0
    code, out, err = await cli("ids", "list", "88.101", *secret)
    assert code == 0
    assert out.split() == ["88.101/pump-7", "88.101/pump-8"]
    assert (await cli("ids", "delete", "88.101/pump-7", "--index", "2", *secret))[0] == 0
    code, out, _ = await cli("ids", "resolve", "88.101/pump-7", "--via", url)
    assert [v["index"] for v in json.loads(out)["values"]] == [1, 100]
    assert (await cli("ids", "delete", "88.101/pump-7", *secret))[0] == 0
    code, _, err = await cli("ids", "get", "88.101/pump-7", "--via", url)
    assert code == 2
    assert "responseCode 100" in err
    code, _, err = await cli(
        "ids",
        "create",
        "88.101/x",
        "--url",
        "https://p.example",
        "--via",
        url,
        "--auth",
        "300:0.NA/88.101",
        "--secret",
        "wrong",
    )
    assert code == 2
    assert "403" in err or "401" in err
    code, _, err = await cli("ids", "create", "88.101/x", "--auth", "300:0.NA/88.101", "--via", url)
    assert code == 2
    assert "--secret" in err


async def test_prefix_commands(node: tuple[str, Path]) -> None:
    url, folder = node
    secret_file = folder / "child.secret"
    secret_file.write_text("enterprise-admin-secret\n")
    secret = ["--via", url, "--auth", "300:0.NA/88.101", "--secret", SECRET]
    created = await cli(
        "ids",
        "prefix",
        "create",
        "88.101.5",
        "--site",
        "http://127.0.0.1:8103",
        "--admin-secret-file",
        str(secret_file),
        *secret,
    )
    assert created[0] == 0, created
    code, out, _ = await cli("ids", "get", "0.NA/88.101.5", "--via", url)
    types = sorted(v["type"] for v in json.loads(out)["values"])
    assert types == ["HS_ADMIN", "HS_SITE", "HS_VLIST"]
    again = await cli(
        "ids",
        "prefix",
        "create",
        "88.101.5",
        "--site",
        "http://127.0.0.1:8103",
        "--admin-secret-file",
        str(secret_file),
        *secret,
    )
    assert again[0] == 2
    assert (await cli("ids", "prefix", "delete", "88.101.5", *secret))[0] == 0
    code, _, _ = await cli("ids", "get", "0.NA/88.101.5", "--via", url)
    assert code == 2


async def test_keygen_writes_a_private_key_only_its_owner_reads(tmp_path: Path) -> None:
    code, out, _ = await cli("ids", "keygen", str(tmp_path / "id.pem"))
    assert code == 0, out
    assert (tmp_path / "id.pem").stat().st_mode & 0o777 == 0o600
    assert load_public_key_pem((tmp_path / "id.pem.pub").read_bytes()).kty == "RSA"
    code, _, _ = await cli("ids", "keygen", str(tmp_path / "id.pem"))
    assert code == 2  # never overwrites a key
