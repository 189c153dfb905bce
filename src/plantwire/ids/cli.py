"""``plantwire ids``: run identifier nodes and manage handles from the command line."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

__all__ = ["ids_app"]

ids_app = typer.Typer(
    name="ids",
    help="Identifier resolution: Handle-compatible nodes, prefixes and handles.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
prefix_app = typer.Typer(
    help="Create or delete prefixes (on the parent prefix's node).", no_args_is_help=True
)
ids_app.add_typer(prefix_app, name="prefix")

Via = Annotated[str, typer.Option("--via", help="Base URL of the node to ask.")]
Auth = Annotated[
    str | None, typer.Option("--auth", help="Identity index:handle, e.g. 300:0.NA/88.101.5.")
]
Secret = Annotated[
    str | None,
    typer.Option(
        "--secret", help="Secret key of --auth (or set PLANTWIRE_IDS_SECRET).", show_default=False
    ),
]
SecretFile = Annotated[
    Path | None, typer.Option("--secret-file", help="File holding the secret key.")
]
KeyFile = Annotated[Path | None, typer.Option("--key", help="PEM private key of --auth.")]
Insecure = Annotated[
    bool, typer.Option("--insecure", help="Do not verify the node's TLS certificate.")
]

DEFAULT_VIA = "http://127.0.0.1:8000"


def _fail(message: str) -> typer.Exit:
    typer.secho(f"plantwire: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(2)


@contextmanager
def _errors() -> Iterator[None]:
    """Operator errors as one ``plantwire: ...`` line and exit status 2."""
    import httpx

    from plantwire.ids.client import HandleClientError
    from plantwire.ids.handle_json import ValueFormatError
    from plantwire.ids.keys import KeyFormatError
    from plantwire.ids.names import HandleSyntaxError
    from plantwire.ids.server import BootstrapError

    try:
        yield
    except (
        HandleClientError,
        HandleSyntaxError,
        KeyFormatError,
        ValueFormatError,
        BootstrapError,
    ) as error:
        raise _fail(str(error)) from error
    except httpx.HTTPError as error:
        raise _fail(f"cannot reach the node: {error}") from error
    except OSError as error:
        raise _fail(f"{error.filename or ''}: {error.strerror or error}") from error


def _read_secret(secret: str | None, secret_file: Path | None, variable: str) -> str | None:
    if secret_file is not None:
        return secret_file.read_text(encoding="utf-8").strip()
    return secret or os.environ.get(variable) or None


def _client(
    via: str,
    auth: str | None,
    secret: str | None,
    secret_file: Path | None,
    key: Path | None,
    insecure: bool,
) -> Any:
    from plantwire.ids.client import HandleClient
    from plantwire.ids.keys import load_private_key_pem

    the_secret = _read_secret(secret, secret_file, "PLANTWIRE_IDS_SECRET")
    private_key = None
    if key is not None:
        password = os.environ.get("PLANTWIRE_IDS_KEY_PASSWORD")
        private_key = load_private_key_pem(
            key.read_bytes(), password.encode() if password else None
        )
    if auth is not None and the_secret is None and private_key is None:
        raise _fail("--auth needs --secret, --secret-file, PLANTWIRE_IDS_SECRET or --key.")
    return HandleClient(
        via, identity=auth, secret=the_secret, private_key=private_key, verify=not insecure
    )


def _print(document: Any) -> None:
    typer.echo(json.dumps(document, indent=2, ensure_ascii=False))


def _values(urls: list[str], values: list[str], json_file: Path | None) -> list[dict[str, Any]]:
    """Values from --url, --value INDEX:TYPE=DATA and --json FILE."""
    out: list[dict[str, Any]] = []
    if json_file is not None:
        document = json.loads(json_file.read_text(encoding="utf-8"))
        out.extend(document["values"] if isinstance(document, dict) else document)
    taken = {
        int(v["index"]) for v in out if isinstance(v, dict) and str(v.get("index", "")).isdigit()
    }
    for url in urls:
        index = next(i for i in range(1, 10_000) if i not in taken)
        taken.add(index)
        out.append({"index": index, "type": "URL", "data": {"format": "string", "value": url}})
    for text in values:
        head, eq, data = text.partition("=")
        index_text, colon, value_type = head.partition(":")
        if not eq or not colon or not index_text.isdigit() or not value_type:
            raise _fail(f"--value is INDEX:TYPE=DATA, e.g. 2:EMAIL=qa@plant.example; got {text!r}.")
        taken.add(int(index_text))
        out.append(
            {
                "index": int(index_text),
                "type": value_type,
                "data": {"format": "string", "value": data},
            }
        )
    return out


# --- running nodes ------------------------------------------------------------------------


@ids_app.command()
def serve(
    data_dir: Annotated[Path, typer.Option("--data-dir", help="The node's data dir.")] = Path(
        "plantwire-ids"
    ),
    listen: Annotated[
        str, typer.Option("--listen", help="HOST:PORT to serve on.")
    ] = "127.0.0.1:8000",
    home: Annotated[
        list[str] | None, typer.Option("--home", help="A prefix this node serves (repeatable).")
    ] = None,
    root: Annotated[
        list[str] | None,
        typer.Option("--root", help="Root node URL (repeatable); none: this node is a root."),
    ] = None,
    recursive: Annotated[
        bool, typer.Option("--recursive", help="Resolve any handle for clients.")
    ] = False,
    admin_secret_file: Annotated[
        Path | None, typer.Option(help="Secret key of the new prefixes' administrator.")
    ] = None,
    admin_pubkey: Annotated[
        Path | None, typer.Option(help="PEM public key of the new prefixes' administrator.")
    ] = None,
    tls_cert: Annotated[
        Path | None, typer.Option(help="PEM certificate (default: self-signed, beyond loopback).")
    ] = None,
    tls_key: Annotated[Path | None, typer.Option(help="PEM private key of --tls-cert.")] = None,
    server: Annotated[
        str, typer.Option(help="HTTP server: granian (fast; default) or uvicorn.")
    ] = "granian",
    insecure_upstream: Annotated[
        bool, typer.Option(help="Do not verify upstream nodes' TLS certificates.")
    ] = False,
) -> None:
    """Serve an identifier node (Handle.net REST API and /hdl proxy)."""
    from plantwire.config import load_settings
    from plantwire.ids.keys import load_public_key_pem
    from plantwire.ids.rest import is_loopback_host
    from plantwire.ids.server import (
        NodeOptions,
        bind_socket,
        build_node,
        prepare_node_dir,
        run_loop,
        serve_node,
        serve_node_granian,
    )
    from plantwire.ids.tls import certificate_fingerprint, ensure_self_signed
    from plantwire.observability import configure_logging

    host, colon, port_text = listen.rpartition(":")
    if not colon or not port_text.isdigit():
        raise _fail(f"--listen is HOST:PORT; got {listen!r}.")
    if server not in ("granian", "uvicorn"):
        raise _fail(f"--server is granian or uvicorn; got {server!r}.")
    host = host.strip("[]")
    with _errors():
        settings = load_settings(data_dir)
        configure_logging(settings.log_format, settings.log_level)
        secret = _read_secret(None, admin_secret_file, "PLANTWIRE_IDS_ADMIN_SECRET")
        pubkey = load_public_key_pem(admin_pubkey.read_bytes()) if admin_pubkey else None
        options = NodeOptions(
            homes=home or [],
            roots=root or [],
            recursive=recursive,
            admin_secret=secret,
            admin_pubkey=pubkey,
            verify_tls=not insecure_upstream,
        )
        if recursive and not options.roots:
            raise _fail("--recursive needs at least one --root to resolve from.")
        prepare_node_dir(settings)
        if tls_cert is None and not is_loopback_host(host):
            tls_cert, tls_key = data_dir / "tls" / "node.crt", data_dir / "tls" / "node.key"
            tls_cert.parent.mkdir(parents=True, exist_ok=True)
            if ensure_self_signed(tls_cert, tls_key, [host]):
                typer.echo(f"Generated a self-signed certificate {tls_cert}")
            typer.echo(f"  SHA-256 fingerprint: {certificate_fingerprint(tls_cert)}")
        running = build_node(settings, options)
    scheme = "https" if tls_cert else "http"
    shown = f"[{host}]" if ":" in host else host

    def announce(port: int) -> None:
        typer.echo(f"plantwire identifier node serving on {scheme}://{shown}:{port}")
        typer.echo(
            f"  homes: {', '.join(options.homes) or '(nothing)'}; "
            f"roots: {', '.join(options.roots) or '(this node is a root)'}"
            f"{'; recursive' if options.recursive else ''}"
        )

    async def run() -> None:
        stopped = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stopped.set)
        if server == "granian":
            served = serve_node_granian(
                running, host, int(port_text), tls_cert=tls_cert, tls_key=tls_key
            )
            async with served:
                announce(int(port_text))
                await stopped.wait()
            return
        sock = bind_socket(host, int(port_text))
        async with serve_node(running, sock, tls_cert=tls_cert, tls_key=tls_key) as uvicorn_server:
            announce(sock.getsockname()[1])
            waiting = asyncio.ensure_future(stopped.wait())
            while not uvicorn_server.should_exit and not waiting.done():  # noqa: ASYNC110
                await asyncio.sleep(0.2)
            waiting.cancel()

    with _errors():
        run_loop(run())


@ids_app.command()
def keygen(
    out: Annotated[Path, typer.Argument(help="Where to write the private key (PEM).")],
    kind: Annotated[str, typer.Option(help="RSA or DSA.")] = "RSA",
    bits: Annotated[int, typer.Option(help="Key size.")] = 2048,
) -> None:
    """Make an identity key pair: OUT (private, mode 600) and OUT.pub (public, PEM)."""
    from plantwire.ids.keys import (
        generate_private_key,
        private_key_to_pem,
        public_key_to_jwk,
        public_key_to_pem,
    )

    with _errors():
        key = generate_private_key(kind, bits)
        password = os.environ.get("PLANTWIRE_IDS_KEY_PASSWORD")
        descriptor = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(private_key_to_pem(key, password.encode() if password else None))
        public = out.with_name(out.name + ".pub")
        public.write_bytes(public_key_to_pem(public_key_to_jwk(key)))
    typer.echo(f"Wrote {out} (private) and {public} (public, for --admin-pubkey or an HS_PUBKEY).")


# --- prefixes -----------------------------------------------------------------------------


@prefix_app.command("create")
def prefix_create(
    prefix: Annotated[str, typer.Argument(help="The new prefix, e.g. 88.101.5.")],
    site: Annotated[str, typer.Option("--site", help="URL of the node that will home it.")],
    via: Via = DEFAULT_VIA,
    auth: Auth = None,
    secret: Secret = None,
    secret_file: SecretFile = None,
    key: KeyFile = None,
    admin_secret_file: Annotated[
        Path | None, typer.Option(help="Secret key of the new prefix's administrator.")
    ] = None,
    admin_pubkey: Annotated[
        Path | None, typer.Option(help="PEM public key of the new prefix's administrator.")
    ] = None,
    insecure: Insecure = False,
) -> None:
    """Register PREFIX on its parent's node (--via): its site and its administrator."""
    from plantwire.ids.handle_json import value_to_json
    from plantwire.ids.keys import load_public_key_pem
    from plantwire.ids.model import HandleValue
    from plantwire.ids.names import parse_prefix, prefix_record
    from plantwire.ids.server import admin_values, site_value

    with _errors():
        parse_prefix(prefix)
        admin_secret = _read_secret(None, admin_secret_file, "PLANTWIRE_IDS_ADMIN_SECRET")
        pubkey = load_public_key_pem(admin_pubkey.read_bytes()) if admin_pubkey else None
        values = [
            site_value(site),
            *admin_values(prefix, admin_secret.encode() if admin_secret else None, pubkey),
        ]
        body = [value_to_json(v) for v in values if isinstance(v, HandleValue)]
        with _client(via, auth, secret, secret_file, key, insecure) as client:
            result = client.put(str(prefix_record(prefix)), body, overwrite=False)
    typer.echo(f"Created prefix {prefix} ({result['handle']}) served by {site}.")


@prefix_app.command("delete")
def prefix_delete(
    prefix: Annotated[str, typer.Argument(help="The prefix to delete.")],
    via: Via = DEFAULT_VIA,
    auth: Auth = None,
    secret: Secret = None,
    secret_file: SecretFile = None,
    key: KeyFile = None,
    insecure: Insecure = False,
) -> None:
    """Delete PREFIX's record on its parent's node."""
    from plantwire.ids.names import prefix_record

    with _errors(), _client(via, auth, secret, secret_file, key, insecure) as client:
        client.delete(str(prefix_record(prefix)))
    typer.echo(f"Deleted prefix {prefix}.")


# --- handles ------------------------------------------------------------------------------


@ids_app.command()
def create(
    handle: Annotated[str, typer.Argument(help="The handle, e.g. 88.101.5/SN-000123.")],
    url: Annotated[
        list[str] | None, typer.Option("--url", help="A URL value (repeatable).")
    ] = None,
    value: Annotated[
        list[str] | None, typer.Option("--value", help="INDEX:TYPE=DATA (repeatable).")
    ] = None,
    json_file: Annotated[Path | None, typer.Option("--json", help="Values as Handle JSON.")] = None,
    admin: Annotated[
        str | None,
        typer.Option("--admin", help="Admin group index:handle (default 200:0.NA/<prefix>)."),
    ] = None,
    via: Via = DEFAULT_VIA,
    auth: Auth = None,
    secret: Secret = None,
    secret_file: SecretFile = None,
    key: KeyFile = None,
    insecure: Insecure = False,
) -> None:
    """Create HANDLE with the given values and an HS_ADMIN value for its prefix's admins."""
    from plantwire.ids.names import parse_handle

    with _errors():
        parsed = parse_handle(handle)
        values = _values(url or [], value or [], json_file)
        if not any(str(v.get("type", "")).upper() == "HS_ADMIN" for v in values):
            group = admin or f"200:0.NA/{parsed.prefix}"
            index_text, _, group_handle = group.partition(":")
            values.append(
                {
                    "index": 100,
                    "type": "HS_ADMIN",
                    "data": {
                        "format": "admin",
                        "value": {
                            "handle": group_handle,
                            "index": int(index_text),
                            "permissions": "011111110011",
                        },
                    },
                }
            )
        with _client(via, auth, secret, secret_file, key, insecure) as client:
            result = client.put(handle, values, overwrite=False)
    typer.echo(f"Created {result['handle']}.")


@ids_app.command("set")
def set_values(
    handle: Annotated[str, typer.Argument(help="The handle to change.")],
    url: Annotated[list[str] | None, typer.Option("--url", help="A URL value to add.")] = None,
    value: Annotated[
        list[str] | None, typer.Option("--value", help="INDEX:TYPE=DATA to add or replace.")
    ] = None,
    json_file: Annotated[Path | None, typer.Option("--json", help="Values as Handle JSON.")] = None,
    via: Via = DEFAULT_VIA,
    auth: Auth = None,
    secret: Secret = None,
    secret_file: SecretFile = None,
    key: KeyFile = None,
    insecure: Insecure = False,
) -> None:
    """Add or replace values of HANDLE (the others stay)."""
    with _errors():
        values = _values(url or [], value or [], json_file)
        if not values:
            raise _fail("Nothing to set: give --url, --value or --json.")
        with _client(via, auth, secret, secret_file, key, insecure) as client:
            client.put(handle, values, overwrite=True, indexes="various")
    typer.echo(f"Set {len(values)} value(s) of {handle}.")


@ids_app.command()
def get(
    handle: Annotated[str, typer.Argument(help="The handle.")],
    index: Annotated[list[int] | None, typer.Option("--index", help="Only these indexes.")] = None,
    value_type: Annotated[
        list[str] | None, typer.Option("--type", help="Only these types.")
    ] = None,
    via: Via = DEFAULT_VIA,
    auth: Auth = None,
    secret: Secret = None,
    secret_file: SecretFile = None,
    key: KeyFile = None,
    insecure: Insecure = False,
) -> None:
    """Print HANDLE's record as the node (--via) answers it."""
    with _errors(), _client(via, auth, secret, secret_file, key, insecure) as client:
        _print(client.get(handle, index or [], value_type or [], authenticated=auth is not None))


@ids_app.command()
def delete(
    handle: Annotated[str, typer.Argument(help="The handle.")],
    index: Annotated[
        list[int] | None, typer.Option("--index", help="Delete only these values.")
    ] = None,
    via: Via = DEFAULT_VIA,
    auth: Auth = None,
    secret: Secret = None,
    secret_file: SecretFile = None,
    key: KeyFile = None,
    insecure: Insecure = False,
) -> None:
    """Delete HANDLE, or some of its values."""
    with _errors(), _client(via, auth, secret, secret_file, key, insecure) as client:
        client.delete(handle, index or [])
    typer.echo(f"Deleted {handle}" + (f" values {index}" if index else "") + ".")


@ids_app.command("list")
def list_handles(
    prefix: Annotated[str, typer.Argument(help="The prefix.")],
    page: Annotated[int | None, typer.Option(help="Zero-based page.")] = None,
    page_size: Annotated[int | None, typer.Option(help="Handles per page.")] = None,
    via: Via = DEFAULT_VIA,
    auth: Auth = None,
    secret: Secret = None,
    secret_file: SecretFile = None,
    key: KeyFile = None,
    insecure: Insecure = False,
) -> None:
    """List the handles under PREFIX (needs LIST_HANDLES)."""
    with _errors(), _client(via, auth, secret, secret_file, key, insecure) as client:
        result = client.list(prefix, page, page_size)
    for name in result.get("handles", []):
        typer.echo(name)
    typer.echo(f"({result.get('totalCount')} in all)", err=True)


@ids_app.command()
def resolve(
    handle: Annotated[str, typer.Argument(help="Any handle.")],
    via: Via = DEFAULT_VIA,
    insecure: Insecure = False,
) -> None:
    """Resolve HANDLE starting at --via (a recursive node, or a root: referrals are followed)."""
    from plantwire.ids.codes import ResponseCode
    from plantwire.ids.names import parse_handle
    from plantwire.ids.resolver import Resolver

    async def run() -> Any:
        resolver = Resolver([via], verify=not insecure)
        try:
            return await resolver.resolve(parse_handle(handle))
        finally:
            await resolver.aclose()

    with _errors():
        resolution = asyncio.run(run())
    if resolution.code not in (ResponseCode.SUCCESS, ResponseCode.VALUES_NOT_FOUND):
        raise _fail(
            f"{handle}: responseCode {int(resolution.code)} "
            f"{resolution.message or resolution.code.name}"
        )
    _print(
        {
            "responseCode": int(resolution.code),
            "handle": handle,
            "values": [json.loads(v.json) for v in resolution.values],
        }
    )


# --- a whole hierarchy to try -------------------------------------------------------------


@ids_app.command("demo-hierarchy")
def demo_hierarchy(
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir", help="Where the five nodes keep data (default: a new temp dir)."
        ),
    ] = None,
    base_port: Annotated[
        int, typer.Option(help="Root's port; the others follow (0: any free ports).")
    ] = 8100,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the hierarchy as one JSON object.")
    ] = False,
    exit_after_start: Annotated[bool, typer.Option(hidden=True)] = False,
) -> None:
    """Run root, top-level 88, secondary 88.101, enterprise 88.101.5 and a recursive node."""
    from plantwire.ids.demo import run_hierarchy
    from plantwire.ids.server import run_loop

    directory = data_dir or Path(tempfile.mkdtemp(prefix="plantwire-ids-demo-"))

    def announce(info: dict[str, Any]) -> None:
        if as_json:
            typer.echo(json.dumps(info))
        else:
            typer.echo("plantwire identifier hierarchy on loopback:")
            for name, node in info["nodes"].items():
                typer.echo(f"  {name:<10} {node['url']:<28} {node['role']}")
            admin = info["enterprise_admin"]
            typer.echo(f"Enterprise admin: --auth {admin['id']} --secret {admin['secret']}")
            typer.echo(f"Example handle:   {info['example_handle']}")
            typer.echo(
                f"  resolve:  plantwire ids resolve {info['example_handle']} "
                f"--via {info['nodes']['recursive']['url']}"
            )
            typer.echo(
                f"  proxy:    {info['nodes']['recursive']['url']}/hdl/{info['example_handle']}"
            )
            typer.echo("Ctrl-C stops the hierarchy.")
        sys.stdout.flush()

    with _errors():
        run_loop(
            run_hierarchy(
                directory,
                base_port,
                announce,
                stop_at_once=exit_after_start,
                secret=secrets.token_urlsafe(18),
            )
        )
