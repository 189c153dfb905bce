"""``plantwire devices``: manage a tenant's devices through the platform's HTTP API (so the
command works from any machine, with the caller's own token, and every change is audited)."""

from __future__ import annotations

import json
import os
from typing import Annotated, Any

import httpx
import typer

__all__ = ["devices_app"]

devices_app = typer.Typer(
    name="devices",
    help="Devices of a tenant: create (with MQTT credentials), list, delete.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

Url = Annotated[
    str,
    typer.Option(
        "--url", envvar="PLANTWIRE_URL", help="Base URL of the platform (or PLANTWIRE_URL)."
    ),
]
Token = Annotated[
    str | None,
    typer.Option(
        "--token",
        envvar="PLANTWIRE_TOKEN",
        help="API token (or PLANTWIRE_TOKEN); make one with POST /api/v1/tokens.",
        show_default=False,
    ),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print the API's JSON answer.")]
DEFAULT_URL = "http://127.0.0.1:8080"


def _fail(message: str) -> typer.Exit:
    typer.secho(f"plantwire: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(2)


def _call(method: str, url: str, token: str | None, path: str, **kwargs: Any) -> Any:
    """One API request; a problem answer or a network failure becomes a clear exit."""
    token = token or os.environ.get("PLANTWIRE_TOKEN")
    if not token:
        raise _fail("give --token or set PLANTWIRE_TOKEN (an API token of the platform).")
    headers = {"Authorization": f"Bearer {token}"}
    try:
        with httpx.Client(base_url=url, timeout=30) as client:
            response = client.request(method, path, headers=headers, **kwargs)
    except httpx.HTTPError as error:
        raise _fail(f"cannot reach {url}: {error}") from error
    if response.status_code >= 400:
        try:
            problem = response.json()
            detail = problem.get("detail") or problem.get("title")
        except ValueError:
            detail = response.text[:200]
        raise _fail(f"{method} {path}: {response.status_code} {detail}")
    return response.json() if response.content else None


@devices_app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="Device name, unique within the tenant.")],
    place: Annotated[
        str, typer.Option("--place", help="ISA-95 place, e.g. Plant1/Assembly/Line3.")
    ] = "",
    metric: Annotated[
        list[str] | None,
        typer.Option(
            "--metric", help="NAME[:TYPE[:UNIT]], repeatable; TYPE float (default), int, bool…"
        ),
    ] = None,
    tenant: Annotated[
        str | None, typer.Option("--tenant", help="Platform admins: the tenant id.")
    ] = None,
    url: Url = DEFAULT_URL,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Create a device and print its MQTT credentials (shown this once)."""
    metrics = []
    for spec in metric or []:
        metric_name, _, rest = spec.partition(":")
        data_type, _, unit = rest.partition(":")
        metrics.append({"name": metric_name, "data_type": data_type or "float", "unit": unit})
    body: dict[str, Any] = {"name": name, "place": place, "metrics": metrics}
    if tenant is not None:
        body["tenant"] = tenant
    device = _call("POST", url, token, "/api/v1/devices", json=body)
    if as_json:
        typer.echo(json.dumps(device, indent=2))
        return
    typer.echo(f"device   {device['id']}  {device['name']}")
    typer.echo(f"topic    {device['topics']['telemetry']}")
    typer.echo(f"username {device['mqtt']['username']}")
    typer.echo(f"password {device['mqtt']['password']}  (shown this once)")


@devices_app.command("list")
def list_devices(
    search: Annotated[
        str | None, typer.Option("--search", help="Only names containing this.")
    ] = None,
    place: Annotated[
        str | None, typer.Option("--place", help="Only at this place or below.")
    ] = None,
    url: Url = DEFAULT_URL,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """List the tenant's devices (all tenants' for platform admins), by name."""
    params: dict[str, Any] = {"limit": 1000}
    if search:
        params["search"] = search
    if place:
        params["place"] = place
    items: list[dict[str, Any]] = []
    while True:
        page = _call("GET", url, token, "/api/v1/devices", params={**params, "offset": len(items)})
        items.extend(page["items"])
        if len(page["items"]) < params["limit"]:
            break
    if as_json:
        typer.echo(json.dumps(items, indent=2))
        return
    for device in items:
        typer.echo(f"{device['id']}  {device['name']}  {device['place']}".rstrip())


@devices_app.command("delete")
def delete(
    device_id: Annotated[str, typer.Argument(help="The device's id.")],
    url: Url = DEFAULT_URL,
    token: Token = None,
) -> None:
    """Delete a device and its MQTT credentials."""
    _call("DELETE", url, token, f"/api/v1/devices/{device_id}")
    typer.echo(f"deleted {device_id}")
