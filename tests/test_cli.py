"""The plantwire command, run as users run it: as a subprocess."""

from __future__ import annotations

import os
import re
import ssl
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psutil
import pytest
import trustme

from plantwire import __version__
from plantwire.datadir import FORMAT_FILE, DataDirError, read_format
from plantwire.lifecycle import initialise
from tests.conftest import ADMIN_PASSWORD, broker_port_env, make_settings

pytestmark = pytest.mark.slow

PLANTWIRE = [sys.executable, "-m", "plantwire"]
COMMANDS = ["version", "init", "up", "backup", "restore", "devices"]


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*PLANTWIRE, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PLANTWIRE_ARGON2_TIME_COST": "1", **(env or {})},
        check=False,
    )


def init_data_dir(data: Path) -> None:
    result = run("init", "--data-dir", str(data), env={"PLANTWIRE_ADMIN_PASSWORD": "pw-123456"})
    assert result.returncode == 0, result.stderr


def test_version() -> None:
    result = run("version")
    assert result.returncode == 0
    assert result.stdout.strip() == __version__


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_help_on_every_command(command: str | None) -> None:
    result = run(*([command] if command else []), "--help")
    assert result.returncode == 0, result.stderr
    assert "Usage" in result.stdout


def test_init_prints_a_generated_password_once(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PLANTWIRE_ADMIN_PASSWORD"}
    first = subprocess.run(
        [*PLANTWIRE, "init", "--data-dir", str(tmp_path / "d")],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert first.returncode == 0, first.stderr
    assert "shown only this once" in first.stdout
    password = first.stdout.strip().splitlines()[-1].strip()
    assert len(password) >= 20
    assert (tmp_path / "d" / FORMAT_FILE).exists()
    again = run("init", "--data-dir", str(tmp_path / "d"))
    assert again.returncode == 0
    assert "initialised already" in again.stdout
    assert password not in again.stdout


def test_init_refuses_a_newer_data_dir(tmp_path: Path) -> None:
    data = tmp_path / "d"
    init_data_dir(data)
    (data / FORMAT_FILE).write_text(
        '{"format": 99, "written_by": "9.0", "written_at": "2030-01-01"}', encoding="utf-8"
    )
    result = run("up", "--data-dir", str(data))
    assert result.returncode == 2
    assert "format 99" in result.stderr
    assert "Upgrade plantwire" in result.stderr


def test_init_refuses_a_short_admin_password(tmp_path: Path) -> None:
    result = run(
        "init", "--data-dir", str(tmp_path / "d"), env={"PLANTWIRE_ADMIN_PASSWORD": "short"}
    )
    assert result.returncode == 2
    assert "at least 8 characters" in result.stderr
    assert not (tmp_path / "d" / FORMAT_FILE).exists()


def test_bad_config_is_a_clear_error(tmp_path: Path) -> None:
    data = tmp_path / "d"
    data.mkdir()
    (data / "plantwire.toml").write_text("http_port = 'x'\n", encoding="utf-8")
    result = run("init", "--data-dir", str(data))
    assert result.returncode == 2
    assert "http_port" in result.stderr
    assert "Traceback" not in result.stderr


def assert_operator_error(result: subprocess.CompletedProcess[str], *words: str) -> None:
    """Exit status 2 and one ``plantwire: ...`` message, never a Python traceback."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert result.stderr.startswith("plantwire: "), result.stderr
    assert "Traceback" not in result.stderr
    assert "Traceback" not in result.stdout
    for word in words:
        assert word in result.stderr, result.stderr


def test_init_on_a_file_is_a_clear_error(tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("", encoding="utf-8")
    assert_operator_error(run("init", "--data-dir", str(afile)), str(afile), "File exists")
    assert_operator_error(run("up", "--data-dir", str(afile), "--http-port", "0"), str(afile))


def test_backup_and_restore_onto_files_are_clear_errors(tmp_path: Path) -> None:
    data = str(tmp_path / "d")
    assert (
        run("init", "--data-dir", data, env={"PLANTWIRE_ADMIN_PASSWORD": "pw-123456"}).returncode
        == 0
    )
    afile = tmp_path / "afile"
    afile.write_text("", encoding="utf-8")
    assert_operator_error(run("backup", str(afile), "--data-dir", data), str(afile))
    assert run("backup", str(tmp_path / "bk"), "--data-dir", data).returncode == 0
    assert_operator_error(
        run("restore", str(tmp_path / "bk"), "--data-dir", str(afile)), str(afile)
    )


def test_unreachable_postgres_is_a_clear_error(tmp_path: Path) -> None:
    env = {"PLANTWIRE_DATABASE_URL": "postgresql://u@127.0.0.1:1/x"}
    for command in ("init", "up"):
        result = run(command, "--data-dir", str(tmp_path / command), env=env)
        assert_operator_error(result, "database error", "127.0.0.1")
    assert not (tmp_path / "init" / FORMAT_FILE).exists()


def test_up_checks_the_tls_files_first(tmp_path: Path) -> None:
    data = tmp_path / "d"
    missing = tmp_path / "missing.pem"
    result = run(
        "up", "--data-dir", str(data), "--tls-cert", str(missing), "--tls-key", str(missing)
    )
    assert_operator_error(result, "tls_cert", str(missing), "No such file")
    assert not data.exists()  # refused before anything was initialised
    directory = tmp_path / "certs"
    directory.mkdir()
    result = run(
        "up", "--data-dir", str(data), "--tls-cert", str(directory), "--tls-key", str(directory)
    )
    assert_operator_error(result, "tls_cert", "Is a directory")
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate", encoding="utf-8")
    result = run(
        "up", "--data-dir", str(data), "--tls-cert", str(garbage), "--tls-key", str(garbage)
    )
    assert_operator_error(result, "not a usable PEM certificate")


def test_format_file_that_cannot_be_read(tmp_path: Path) -> None:
    data = tmp_path / "d"
    init_data_dir(data)
    (data / FORMAT_FILE).unlink()
    (data / FORMAT_FILE).mkdir()
    with pytest.raises(DataDirError, match="cannot be read"):
        read_format(data)
    for command in ("init", "up"):
        assert_operator_error(run(command, "--data-dir", str(data)), FORMAT_FILE, "cannot be read")
    assert_operator_error(
        run("backup", str(tmp_path / "bk"), "--data-dir", str(data)), "cannot be read"
    )


def test_init_reports_an_existing_admin(tmp_path: Path) -> None:
    """A data dir whose format file is gone is initialised again, over a registry that has its
    admin already: init must not claim to have created one."""
    settings = make_settings(tmp_path / "d")
    first = initialise(settings, ADMIN_PASSWORD)
    assert first.created
    assert first.admin is not None
    assert first.admin.created
    assert first.admin_password is None  # the given password, none generated
    (settings.data_dir / FORMAT_FILE).unlink()
    again = initialise(settings, None)
    assert again.created
    assert again.admin is not None
    assert not again.admin.created
    assert again.admin_password is None
    assert (settings.data_dir / FORMAT_FILE).exists()


@pytest.mark.postgres
def test_second_data_dir_on_the_same_postgres_creates_no_admin(
    tmp_path: Path, postgres_url: str
) -> None:
    first = initialise(make_settings(tmp_path / "one", database_url=postgres_url), None)
    assert first.admin is not None
    assert first.admin.created
    assert first.admin_password
    second = initialise(make_settings(tmp_path / "two", database_url=postgres_url), None)
    assert second.created
    assert second.admin is not None
    assert not second.admin.created
    assert second.admin_password is None


def test_init_prints_the_truth_about_the_admin(tmp_path: Path) -> None:
    data = tmp_path / "d"
    env = {"PLANTWIRE_ADMIN_PASSWORD": "pw-123456"}
    first = run("init", "--data-dir", str(data), env=env)
    assert first.returncode == 0, first.stderr
    assert "Platform admin 'admin' created with the password in PLANTWIRE_ADMIN_PASSWORD" in (
        first.stdout
    )
    (data / FORMAT_FILE).unlink()
    again = run("init", "--data-dir", str(data), env=env)
    assert again.returncode == 0, again.stderr
    assert "Initialised plantwire data dir" in again.stdout
    assert "A platform admin exists already; no new admin was created." in again.stdout
    assert "created with the password" not in again.stdout
    assert "shown only this once" not in again.stdout


@contextmanager
def serving(*args: str, env: dict[str, str] | None = None) -> Iterator[str]:
    """Run ``plantwire up`` on an ephemeral port; yield its base URL; stop it cleanly."""
    process = subprocess.Popen(
        [*PLANTWIRE, "up", "--http-port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PLANTWIRE_LOG_FORMAT": "console", **broker_port_env(), **(env or {})},
    )
    lines = []
    try:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            found = re.search(r"running on (https?://[\d.]+:\d+)", line)
            if found:
                yield found.group(1)
                break
        else:
            pytest.fail("plantwire up exited: " + "".join(lines))
    finally:
        process.terminate()
        rest, _ = process.communicate(timeout=30)
    # uvicorn shuts down gracefully on SIGTERM, then re-raises the signal
    assert process.returncode in (0, -15), rest
    assert "Application shutdown complete" in rest
    broker = re.search(r"nats-server \(pid (\d+)\)", "".join(lines))
    assert broker is not None, "".join(lines)
    assert not psutil.pid_exists(int(broker.group(1))), "plantwire up left its broker running"


def test_init_then_up_serves_healthz(tmp_path: Path) -> None:
    """The README's demo path: plantwire init, then plantwire up, then the platform answers."""
    data = str(tmp_path / "d")
    env = {"PLANTWIRE_ADMIN_PASSWORD": "demo-password-1"}
    assert run("init", "--data-dir", data, env=env).returncode == 0
    with serving("--data-dir", data) as url:
        assert httpx.get(f"{url}/healthz").json() == {"status": "ok"}
        assert httpx.get(f"{url}/readyz").status_code == 200
        login = httpx.post(
            f"{url}/api/v1/auth/login", json={"username": "admin", "password": "demo-password-1"}
        )
        assert login.status_code == 200


def test_up_initialises_a_fresh_data_dir(tmp_path: Path) -> None:
    data = tmp_path / "fresh"
    with serving("--data-dir", str(data)) as url:
        assert httpx.get(f"{url}/healthz").status_code == 200
    assert (data / FORMAT_FILE).exists()


def test_a_second_up_on_a_served_data_dir_leaves_the_first_and_its_broker_alone(
    tmp_path: Path,
) -> None:
    """The second stops at the store, which one platform holds, before it would take the
    first one's broker for a leftover (the pid file names it) and reload or stop it."""
    data = tmp_path / "d"
    ports = broker_port_env()
    with serving("--data-dir", str(data), env=ports) as url:
        config = (data / "broker" / "nats.conf").read_text()
        broker = int((data / "broker" / "nats.pid").read_text())
        quiet = {**ports, "PLANTWIRE_LOG_LEVEL": "warning"}  # the message alone on stderr
        second = run("up", "--data-dir", str(data), "--http-port", "0", env=quiet)
        assert_operator_error(second, "is another plantwire running on this data dir?")
        assert "broker:" not in second.stdout
        assert (data / "broker" / "nats.conf").read_text() == config  # not reloaded
        assert psutil.pid_exists(broker)
        assert httpx.get(f"{url}/readyz").status_code == 200


def test_https(tmp_path: Path) -> None:
    ca = trustme.CA()
    certificate = ca.issue_cert("127.0.0.1", "localhost")
    cert_file, key_file, ca_file = tmp_path / "c.pem", tmp_path / "k.pem", tmp_path / "ca.pem"
    certificate.private_key_and_cert_chain_pem.write_to_path(str(cert_file))
    certificate.private_key_pem.write_to_path(str(key_file))
    ca.cert_pem.write_to_path(str(ca_file))
    data = str(tmp_path / "d")
    env = {"PLANTWIRE_ADMIN_PASSWORD": "tls-password-1"}
    with serving(
        "--data-dir", data, "--tls-cert", str(cert_file), "--tls-key", str(key_file), env=env
    ) as url:
        assert url.startswith("https://")
        with httpx.Client(verify=ssl.create_default_context(cafile=str(ca_file))) as https:
            login = https.post(
                f"{url}/api/v1/auth/login", json={"username": "admin", "password": "tls-password-1"}
            )
            assert login.status_code == 200
            cookie = login.headers["set-cookie"].lower()
            assert "secure" in cookie
            assert "httponly" in cookie
            assert "samesite=strict" in cookie
            me = https.get(
                f"{url}/api/v1/auth/me",
                headers={"Authorization": f"Bearer {login.json()['token']}"},
            )
            assert me.json()["username"] == "admin"
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{url}/healthz")  # not trusted without the CA
        plain = url.replace("https://", "http://")
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"{plain}/healthz")
