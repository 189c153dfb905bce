"""``plantwire devices`` against a real ``plantwire up`` over HTTP, with an API token."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from tests.test_cli import run, serving

pytestmark = pytest.mark.slow


def test_devices_create_list_delete(tmp_path: Path) -> None:
    data = str(tmp_path / "d")
    assert (
        run("init", "--data-dir", data, env={"PLANTWIRE_ADMIN_PASSWORD": "pw-123456"}).returncode
        == 0
    )
    with serving("--data-dir", data) as url, httpx.Client(base_url=url) as http:
        login = http.post("/api/v1/auth/login", json={"username": "admin", "password": "pw-123456"})
        admin = {"Authorization": f"Bearer {login.json()['token']}"}
        tenant = http.post("/api/v1/tenants", json={"name": "Acme"}, headers=admin).json()
        user = {"username": "eng", "password": "an-engineer-pw", "role": "engineer"}
        made = http.post("/api/v1/users", json={**user, "tenant": tenant["id"]}, headers=admin)
        assert made.status_code == 201, made.text
        session = http.post(
            "/api/v1/auth/login", json={"username": "eng", "password": "an-engineer-pw"}
        ).json()["token"]
        token = http.post(
            "/api/v1/tokens",
            json={"name": "cli"},
            headers={"Authorization": f"Bearer {session}"},
        ).json()["token"]
        env = {"PLANTWIRE_TOKEN": token, "PLANTWIRE_URL": url}

        created = run(
            "devices", "create", "press-1", "--place", "Plant1/Line3",
            "--metric", "temperature:float:°C", "--metric", "strokes:int", env=env,
        )  # fmt: skip
        assert created.returncode == 0, created.stderr
        device_id = re.search(r"^device\s+(\S+)\s+press-1$", created.stdout, re.M)
        password = re.search(r"^password\s+(\S+)\s+\(shown this once\)$", created.stdout, re.M)
        assert device_id is not None, created.stdout
        assert password is not None, created.stdout
        username = rf"^username\s+{device_id.group(1)}@{tenant['id']}$"
        assert re.search(username, created.stdout, re.M)
        shown = http.get(
            f"/api/v1/devices/{device_id.group(1)}", headers={"Authorization": f"Bearer {token}"}
        ).json()
        assert [(m["name"], m["data_type"], m["unit"]) for m in shown["metrics"]] == [
            ("strokes", "int", ""),
            ("temperature", "float", "°C"),
        ]
        assert run("devices", "create", "oven-1", env=env).returncode == 0

        listed = run("devices", "list", env=env)
        assert listed.returncode == 0, listed.stderr
        assert [line.split()[1] for line in listed.stdout.splitlines()] == ["oven-1", "press-1"]
        found = run("devices", "list", "--place", "Plant1", env=env)
        assert [line.split()[1] for line in found.stdout.splitlines()] == ["press-1"]

        duplicate = run("devices", "create", "PRESS-1", env=env)
        assert duplicate.returncode == 2
        assert "409" in duplicate.stderr
        assert "press-1" in duplicate.stderr.lower()
        assert "Traceback" not in duplicate.stderr

        deleted = run("devices", "delete", device_id.group(1), env=env)
        assert deleted.returncode == 0, deleted.stderr
        listed = run("devices", "list", "--json", env=env)
        assert '"press-1"' not in listed.stdout
        assert '"oven-1"' in listed.stdout

        bad_token = run("devices", "list", env={**env, "PLANTWIRE_TOKEN": "pw_nope"})
        assert bad_token.returncode == 2
        assert "401" in bad_token.stderr
    no_token = run("devices", "list", "--url", url, env={"PLANTWIRE_TOKEN": ""})
    assert no_token.returncode == 2
    assert "PLANTWIRE_TOKEN" in no_token.stderr
    unreachable = run("devices", "list", "--url", url, "--token", "x")
    assert unreachable.returncode == 2
    assert "cannot reach" in unreachable.stderr
