"""The ``plantwire`` command: one entry point for every role a process can play."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from plantwire import __version__
from plantwire.config import ConfigError, Settings, load_settings
from plantwire.security.schemas import MIN_PASSWORD_LENGTH

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from plantwire.demo.run import DemoPorts
    from plantwire.platform import Platform
    from plantwire.serving import PlatformServer
    from plantwire.telemetry.broker import BundledBroker

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
MqttPort = Annotated[
    int | None, typer.Option("--mqtt-port", help="MQTT port of the bundled broker.")
]
NatsPort = Annotated[
    int | None, typer.Option("--nats-port", help="NATS port of the bundled broker (127.0.0.1).")
]
MqttHost = Annotated[
    str | None,
    typer.Option(
        "--mqtt-host",
        help="Address the MQTT listener binds to; beyond loopback it needs broker_mqtt_tls_*.",
    ),
]


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.secho(f"plantwire: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code)


def _describe(error: BaseException) -> str:
    """An operator-facing one-line account of a file system or database error."""
    from sqlalchemy.exc import SQLAlchemyError

    if isinstance(error, SQLAlchemyError):
        cause = getattr(error, "orig", None) or error
        text = " ".join(str(cause).split()) or type(cause).__name__
        return f"database error: {text}"
    if isinstance(error, OSError) and error.strerror:
        where = f"{error.filename}: " if error.filename is not None else ""
        if error.filename2 is not None:
            where = f"{error.filename} -> {error.filename2}: "
        return f"{where}{error.strerror}"
    return str(error) or type(error).__name__


@contextmanager
def _operator_errors(*expected: type[Exception]) -> Iterator[None]:
    """Turn the errors an operator can cause or fix (``expected`` ones, which carry their own
    message, and file system and database errors) into a ``plantwire: ...`` line and exit
    status 2, never a traceback."""
    from sqlalchemy.exc import SQLAlchemyError

    try:
        yield
    except expected as error:
        raise _fail(str(error)) from error
    except (OSError, SQLAlchemyError) as error:
        raise _fail(_describe(error)) from error


def _check_readable(setting: str, path: Path) -> None:
    try:
        with path.open("rb") as handle:
            handle.read(1)
    except OSError as error:
        raise _fail(f"cannot read {setting} {path}: {error.strerror or error}") from error


class _KeyNeedsPassword(Exception):
    pass


def _no_password() -> str:
    raise _KeyNeedsPassword


def _check_tls(settings: Settings) -> None:
    """Refuse to start with a TLS certificate or key that cannot be read or used."""
    import ssl

    if settings.tls_cert is None or settings.tls_key is None:
        return
    _check_readable("tls_cert", settings.tls_cert)
    _check_readable("tls_key", settings.tls_key)
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(
            settings.tls_cert, settings.tls_key, password=_no_password
        )
    except _KeyNeedsPassword:
        return  # an encrypted key: the server asks for its passphrase when it starts
    except (OSError, ValueError) as error:  # ssl.SSLError is an OSError
        raise _fail(
            f"tls_cert {settings.tls_cert} and tls_key {settings.tls_key} are not a usable PEM "
            f"certificate chain and matching private key ({error})."
        ) from error


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
    with _operator_errors(DataDirError):
        result = initialise(settings, password)
        where = settings.data_dir.resolve()
    if not result.created:
        typer.echo(f"{where} is initialised already; schema is up to date.")
        return
    typer.echo(f"Initialised plantwire data dir {where}")
    if result.admin is None or not result.admin.created:
        typer.echo("A platform admin exists already; no new admin was created.")
    elif result.admin.generated_password:
        typer.echo("Platform admin 'admin' created. Its password, shown only this once:")
        typer.echo(f"  {result.admin.generated_password}")
    else:
        typer.echo("Platform admin 'admin' created with the password in PLANTWIRE_ADMIN_PASSWORD.")


def _broker_options(
    mqtt_port: int | None, nats_port: int | None, mqtt_host: str | None
) -> dict[str, object]:
    """The broker's command-line options as settings overrides."""
    return {
        "broker_mqtt_port": mqtt_port,
        "broker_nats_port": nats_port,
        "broker_mqtt_host": mqtt_host,
    }


def _without_secrets(url: str) -> str:
    """A URL fit to print: any user and password taken out."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    return parts._replace(netloc=netloc).geturl()


def _start_broker(settings: Settings, registry: sessionmaker[Session] | None) -> BundledBroker:
    """Start the bundled broker admitting the registry's tenants and devices (none without a
    registry), or adopt the one a killed run left and give it those: from the start, since
    such a broker serves them still and JetStream holds their tenants' MQTT sessions (a
    tenant it is not given is taken off, its state purged). Print where devices and the
    platform reach it."""
    from plantwire.telemetry.broker import BrokerError, BundledBroker
    from plantwire.telemetry.devices import broker_accounts

    tenants = []
    if registry is not None:
        with _operator_errors(), registry() as session:
            tenants = broker_accounts(session)
    with _operator_errors(BrokerError):
        broker = BundledBroker.from_settings(settings)
        broker.start(tenants)
    how = "reused the running" if broker.reused else "started"
    typer.echo(f"  broker:  {how} nats-server (pid {broker.pid})")
    typer.echo(f"  MQTT:    {broker.mqtt_url}    NATS: {broker.endpoint.url}")
    return broker


def _open_platform(settings: Settings) -> Platform:
    """The platform of the data dir, initialised first if it is new, with its store open
    and its broker started (or an external one named): what ``plantwire up`` serves."""
    from plantwire.datadir import DataDirError, read_format
    from plantwire.lifecycle import build_platform, open_store, prepare

    with _operator_errors(DataDirError):
        if read_format(settings.data_dir) is None:
            init(settings.data_dir)
        else:
            prepare(settings)
        platform = build_platform(settings)
        # first the store, which one process holds: so a broker the pid file names is one
        # a dead run left, never the broker of a platform serving this data dir
        platform.store = open_store(settings)
    scheme = "https" if settings.tls_enabled else "http"
    base = f"{scheme}://{settings.http_host}:{settings.http_port}"
    typer.echo(f"plantwire {__version__} serving on {base}")
    typer.echo(
        f"  log in:  curl -X POST {base}/api/v1/auth/login -H 'content-type: application/json' "
        """-d '{"username": "admin", "password": "..."}'"""
    )
    typer.echo(f"  API:     {base}/api/openapi.json    health: {base}/readyz")
    try:
        if settings.broker_url is None:
            platform.broker = _start_broker(settings, platform.sessions)
        else:
            typer.echo(
                f"  broker:  {_without_secrets(settings.broker_url)} (external; nothing started)"
            )
    except BaseException:
        platform.store.close()
        raise
    return platform


def _close_platform(platform: Platform) -> None:
    """Stop what ``_open_platform`` started when the app did not (it never ran, or ran to
    its shutdown: both are safe to repeat)."""
    if platform.broker is not None:
        platform.broker.stop()
    if platform.store is not None:  # the app's shutdown closes it once the app ran
        platform.store.close()


def _platform_server(
    settings: Settings, platform: Platform, *, handle_signals: bool = True
) -> PlatformServer:
    """The platform's app on uvicorn, ready to run (the app's shutdown stops the broker)."""
    import uvicorn

    from plantwire.app import create_app
    from plantwire.datadir import DataDirError
    from plantwire.serving import PlatformServer

    with _operator_errors(DataDirError):
        application = create_app(settings, platform, console=True)
    config = uvicorn.Config(
        application,
        host=settings.http_host,
        port=settings.http_port,
        ssl_certfile=settings.tls_cert,
        ssl_keyfile=settings.tls_key,
        access_log=False,
        log_config=None,
        server_header=False,
    )
    # ends live streams on shutdown
    return PlatformServer(config, platform, handle_signals=handle_signals)


@app.command()
def up(
    data_dir: DataDir = None,
    host: Annotated[str | None, typer.Option("--host", help="Listen address.")] = None,
    http_port: Annotated[int | None, typer.Option("--http-port", help="HTTP(S) port.")] = None,
    tls_cert: Annotated[Path | None, typer.Option(help="PEM certificate: serve HTTPS.")] = None,
    tls_key: Annotated[Path | None, typer.Option(help="PEM private key of --tls-cert.")] = None,
    mqtt_port: MqttPort = None,
    nats_port: NatsPort = None,
    mqtt_host: MqttHost = None,
    demo: Annotated[
        bool,
        typer.Option(
            "--demo",
            help="Also run a demo plant: an identifier hierarchy, the simulator, a gateway, "
            "a demo tenant, and an identifier for each finished part (docs/demo.md).",
        ),
    ] = False,
    demo_ids_port: Annotated[
        int,
        typer.Option(
            "--demo-ids-port",
            min=0,
            max=65531,
            help="--demo: the root identifier node's port; top-level, secondary and recursive "
            "nodes take the next 1, 2 and 4 (0: free ports).",
        ),
    ] = 0,
    demo_opcua_port: Annotated[
        int, typer.Option("--demo-opcua-port", min=0, max=65535, help="--demo: 0 picks one.")
    ] = 0,
    demo_modbus_port: Annotated[
        int, typer.Option("--demo-modbus-port", min=0, max=65535, help="--demo: 0 picks one.")
    ] = 0,
) -> None:
    """Serve the platform and its broker (initialising the data dir first if it is new)."""
    # imported before logging is configured: their import-time chatter (alembic's plugins
    # at info) is not the operator's business
    import plantwire.app
    import plantwire.lifecycle  # noqa: F401
    from plantwire.datadir import DataDirError
    from plantwire.observability import configure_logging

    settings = _settings(
        data_dir,
        http_host=host,
        http_port=http_port,
        tls_cert=tls_cert,
        tls_key=tls_key,
        **_broker_options(mqtt_port, nats_port, mqtt_host),
    )
    if not demo and (demo_ids_port or demo_opcua_port or demo_modbus_port):
        raise _fail("--demo-ids-port, --demo-opcua-port and --demo-modbus-port need --demo.")
    level = settings.log_level
    if demo and "log_level" not in settings.model_fields_set:
        level = "warning"  # the demo's banner, not every request, is what a newcomer reads
    configure_logging(settings.log_format, level)
    _check_tls(settings)
    if demo:
        from plantwire.demo.run import DemoPorts

        _up_demo(settings, DemoPorts(demo_ids_port, demo_opcua_port, demo_modbus_port))
        return
    platform = _open_platform(settings)
    try:
        with _operator_errors(DataDirError):
            server = _platform_server(settings, platform)
            with suppress(KeyboardInterrupt):  # Ctrl-C: shut down, as uvicorn.run
                server.run()
            if not server.started:  # a port in use, say; uvicorn logged why
                raise typer.Exit(3)
    finally:  # when uvicorn returns at all (it did not start; no signal to re-raise)
        _close_platform(platform)


def _up_demo(settings: Settings, ports: DemoPorts) -> None:
    """``plantwire up --demo``: the platform with the demo plant around it, until Ctrl-C."""
    import asyncio

    from plantwire.datadir import DataDirError
    from plantwire.demo.provision import ProvisionError
    from plantwire.demo.run import DemoError, DemoParts, run_demo
    from plantwire.edge.config import ConfigError as GatewayConfigError

    parts = DemoParts(
        open_platform=_open_platform,
        close_platform=_close_platform,
        platform_server=lambda s, p: _platform_server(s, p, handle_signals=False),
        announce=typer.echo,
        ports=ports,
    )
    with _operator_errors(DemoError, ProvisionError, GatewayConfigError, DataDirError):
        started = asyncio.run(run_demo(settings, parts))
    if not started:  # the platform's server did not start (a port in use, say)
        raise typer.Exit(3)
    typer.echo("plantwire demo stopped.")


@app.command("broker")
def broker_command(
    data_dir: DataDir = None,
    mqtt_port: MqttPort = None,
    nats_port: NatsPort = None,
    mqtt_host: MqttHost = None,
) -> None:
    """Run the bundled broker alone (nats-server: MQTT, NATS, JetStream) until Ctrl-C,
    admitting the devices the data dir's registry holds when it starts."""
    import signal
    import threading

    from plantwire.datadir import DataDirError, read_format
    from plantwire.db import make_engine, make_sessionmaker
    from plantwire.lifecycle import prepare
    from plantwire.observability import configure_logging

    settings = _settings(data_dir, **_broker_options(mqtt_port, nats_port, mqtt_host))
    configure_logging(settings.log_format, settings.log_level)
    if settings.broker_url is not None:
        where = _without_secrets(settings.broker_url)
        raise _fail(f"broker_url is set ({where}): there is no broker to run here.")
    with _operator_errors(DataDirError):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        initialised = read_format(settings.data_dir) is not None
        if initialised:  # a registry, checked and migrated as for plantwire up
            prepare(settings)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    engine = make_engine(settings.registry_url) if initialised else None
    try:
        broker = _start_broker(settings, make_sessionmaker(engine) if engine else None)
    finally:
        if engine is not None:
            engine.dispose()
    try:
        typer.echo("plantwire broker ready; Ctrl-C stops it.")
        while not stop.wait(1.0):
            pass
    finally:
        broker.stop()


@app.command("sim")
def sim_command(
    host: Annotated[str, typer.Option("--host", help="Address both servers bind to.")] = (
        "127.0.0.1"
    ),
    opcua_port: Annotated[
        int, typer.Option("--opcua-port", min=0, max=65535, help="OPC UA port; 0 picks one.")
    ] = 4840,
    modbus_port: Annotated[
        int, typer.Option("--modbus-port", min=0, max=65535, help="Modbus TCP port; 0 picks one.")
    ] = 5020,
    seed: Annotated[int, typer.Option("--seed", help="Random seed: same seed, same plant.")] = 0,
    speed: Annotated[
        float, typer.Option("--speed", min=0.0, help="Simulated seconds per wall second.")
    ] = 1.0,
) -> None:
    """Run the factory simulator until Ctrl-C: a CNC cell and a press line on OPC UA, their
    energy meters on Modbus TCP (see docs/simulator.md)."""
    import asyncio

    from plantwire.observability import configure_logging
    from plantwire.sim.runner import SimEndpoints, Simulator, serve

    configure_logging("console", os.environ.get("PLANTWIRE_LOG_LEVEL", "warning"))

    def ready(endpoints: SimEndpoints) -> None:
        units = ", ".join(f"unit {unit} {line}" for line, unit in endpoints.modbus_units.items())
        typer.echo(f"plantwire sim: seed {seed}, speed {speed:g}x")
        typer.echo(f"  OPC UA:  {endpoints.opcua_url}    namespace {endpoints.namespace_uri}")
        typer.echo(f"  Modbus:  {endpoints.modbus_url}    meters: {units}")
        typer.echo("Ctrl-C stops it.")

    simulator = Simulator(
        seed=seed, speed=speed, host=host, opcua_port=opcua_port, modbus_port=modbus_port
    )
    with _operator_errors(), suppress(KeyboardInterrupt):
        asyncio.run(serve(simulator, ready))
    typer.echo("plantwire sim stopped.")


@app.command("gateway")
def gateway_command(
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="The gateway's configuration (gateway.toml)."),
    ] = None,
    schema: Annotated[
        bool, typer.Option("--schema", help="Print the JSON schema of gateway.toml and exit.")
    ] = False,
) -> None:
    """Run the edge gateway until Ctrl-C: its connectors' devices published to the platform
    as a Sparkplug B edge node, buffered while the uplink is down (see docs/edge.md)."""
    import asyncio

    from plantwire.edge.config import ConfigError, load_config, schema_text

    if schema:
        typer.echo(schema_text(), nl=False)
        return
    if config is None:
        typer.echo("plantwire gateway needs --config gateway.toml (or --schema)", err=True)
        raise typer.Exit(2)
    try:
        checked = load_config(config)
    except ConfigError as error:
        typer.echo(f"plantwire gateway: the configuration cannot run:\n{error}", err=True)
        raise typer.Exit(2) from None
    from plantwire.edge.gateway import Gateway, quiet_protocol_libraries
    from plantwire.observability import configure_logging
    from plantwire.signals import stop_on_signals

    configure_logging("console", os.environ.get("PLANTWIRE_LOG_LEVEL", "info"))
    quiet_protocol_libraries()

    async def main() -> None:
        stop = asyncio.Event()
        gateway = Gateway(checked, config.resolve().parent)
        uplink = checked.uplink
        typer.echo(
            f"plantwire gateway: edge node {checked.node.group}/{checked.node.edge_node} → "
            f"mqtt{'s' if uplink.tls else ''}://{uplink.host}:{uplink.port}, "
            f"{len(checked.modbus_devices)} Modbus device(s). Ctrl-C stops it."
        )
        with stop_on_signals(stop):
            await gateway.run(stop)

    with _operator_errors():
        asyncio.run(main())
    typer.echo("plantwire gateway stopped.")


@app.command()
def backup(
    destination: Annotated[Path, typer.Argument(help="New or empty folder for the backup.")],
    data_dir: DataDir = None,
) -> None:
    """Write a consistent backup of the data dir (safe while the platform runs)."""
    from plantwire.backup import BackupError, make_backup
    from plantwire.datadir import DataDirError

    settings = _settings(data_dir)
    with _operator_errors(BackupError, DataDirError):
        manifest = make_backup(settings, destination)
    rows = sum(manifest["tables"].values())
    typer.echo(f"Backed up {settings.data_dir} to {destination} ({rows} registry rows).")


@app.command()
def restore(
    source: Annotated[Path, typer.Argument(help="A folder written by 'plantwire backup'.")],
    data_dir: DataDir = None,
) -> None:
    """Restore a backup into a new data dir (its database must be empty)."""
    from plantwire.backup import BackupError, restore_backup
    from plantwire.datadir import DataDirError

    settings = _settings(data_dir)
    with _operator_errors(BackupError, DataDirError):
        manifest = restore_backup(source, settings)
    typer.echo(
        f"Restored the backup of {manifest['created_at']} into {settings.data_dir}; "
        "start it with 'plantwire up'."
    )


def _add_subcommands() -> None:
    from plantwire.ids.cli import ids_app
    from plantwire.telemetry.cli import devices_app

    app.add_typer(ids_app, name="ids")
    app.add_typer(devices_app, name="devices")


_add_subcommands()


def main() -> None:
    app()
