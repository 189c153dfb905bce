"""The ``plantwire`` command: one entry point for every role a process can play."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from plantwire import __version__
from plantwire.config import ConfigError, Settings, load_settings
from plantwire.security.schemas import MIN_PASSWORD_LENGTH

__all__ = ["app", "main"]

app = typer.Typer(
    name="plantwire",
    help="plantwire: an open Industrial Internet platform.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="Data dir (default: $PLANTWIRE_DATA_DIR, else ./plantwire-data).",
        show_default=False,
    ),
]


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.secho(f"plantwire: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code)


def _settings(data_dir: Path | None, **overrides: object) -> Settings:
    try:
        return load_settings(data_dir, **overrides)
    except ConfigError as error:
        raise _fail(str(error)) from error


@app.command()
def version() -> None:
    """Print plantwire's version."""
    typer.echo(__version__)


@app.command()
def init(data_dir: DataDir = None) -> None:
    """Create the data dir, its databases and the first platform admin ('admin').

    The admin's password is taken from PLANTWIRE_ADMIN_PASSWORD, or generated and printed once.
    """
    from plantwire.datadir import DataDirError
    from plantwire.lifecycle import initialise

    settings = _settings(data_dir)
    password = os.environ.get("PLANTWIRE_ADMIN_PASSWORD") or None
    if password is not None and len(password) < MIN_PASSWORD_LENGTH:
        raise _fail(f"PLANTWIRE_ADMIN_PASSWORD needs at least {MIN_PASSWORD_LENGTH} characters.")
    try:
        result = initialise(settings, password)
    except DataDirError as error:
        raise _fail(str(error)) from error
    where = settings.data_dir.resolve()
    if not result.created:
        typer.echo(f"{where} is initialised already; schema is up to date.")
        return
    typer.echo(f"Initialised plantwire data dir {where}")
    if result.admin_password:
        typer.echo("Platform admin 'admin' created. Its password, shown only this once:")
        typer.echo(f"  {result.admin_password}")
    else:
        typer.echo("Platform admin 'admin' created with the password in PLANTWIRE_ADMIN_PASSWORD.")


@app.command()
def up(
    data_dir: DataDir = None,
    host: Annotated[str | None, typer.Option("--host", help="Listen address.")] = None,
    http_port: Annotated[int | None, typer.Option("--http-port", help="HTTP(S) port.")] = None,
    tls_cert: Annotated[Path | None, typer.Option(help="PEM certificate: serve HTTPS.")] = None,
    tls_key: Annotated[Path | None, typer.Option(help="PEM private key of --tls-cert.")] = None,
) -> None:
    """Serve the platform (initialising the data dir first if it is new)."""
    import uvicorn

    from plantwire.app import create_app
    from plantwire.datadir import DataDirError, read_format
    from plantwire.lifecycle import prepare
    from plantwire.observability import configure_logging

    settings = _settings(
        data_dir, http_host=host, http_port=http_port, tls_cert=tls_cert, tls_key=tls_key
    )
    configure_logging(settings.log_format, settings.log_level)
    try:
        if read_format(settings.data_dir) is None:
            init(settings.data_dir)
        else:
            prepare(settings)
    except DataDirError as error:
        raise _fail(str(error)) from error
    scheme = "https" if settings.tls_enabled else "http"
    base = f"{scheme}://{settings.http_host}:{settings.http_port}"
    typer.echo(f"plantwire {__version__} serving on {base}")
    typer.echo(
        f"  log in:  curl -X POST {base}/api/v1/auth/login -H 'content-type: application/json' "
        """-d '{"username": "admin", "password": "..."}'"""
    )
    typer.echo(f"  API:     {base}/api/openapi.json    health: {base}/readyz")
    uvicorn.run(
        create_app(settings),
        host=settings.http_host,
        port=settings.http_port,
        ssl_certfile=settings.tls_cert,
        ssl_keyfile=settings.tls_key,
        access_log=False,
        log_config=None,
        server_header=False,
    )


@app.command()
def backup(
    destination: Annotated[Path, typer.Argument(help="New or empty folder for the backup.")],
    data_dir: DataDir = None,
) -> None:
    """Write a consistent backup of the data dir (safe while the platform runs)."""
    from plantwire.backup import BackupError, make_backup

    settings = _settings(data_dir)
    try:
        manifest = make_backup(settings, destination)
    except BackupError as error:
        raise _fail(str(error)) from error
    rows = sum(manifest["tables"].values())
    typer.echo(f"Backed up {settings.data_dir} to {destination} ({rows} registry rows).")


@app.command()
def restore(
    source: Annotated[Path, typer.Argument(help="A folder written by 'plantwire backup'.")],
    data_dir: DataDir = None,
) -> None:
    """Restore a backup into a new data dir (its database must be empty)."""
    from plantwire.backup import BackupError, restore_backup

    settings = _settings(data_dir)
    try:
        manifest = restore_backup(source, settings)
    except BackupError as error:
        raise _fail(str(error)) from error
    typer.echo(
        f"Restored the backup of {manifest['created_at']} into {settings.data_dir}; "
        "start it with 'plantwire up'."
    )


def main() -> None:
    app()
