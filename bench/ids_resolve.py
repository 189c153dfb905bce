"""Benchmark: an identifier node over HTTP, measured with wrk (32 connections).

Each figure is shown beside a baseline measured in the same run on the same HTTP server: a
raw ASGI app answering a dict lookup of pre-serialised bytes (what the server alone costs).

1. **Authoritative resolution**: ``GET /api/handles/88.101.5/SN-…`` of random handles on the
   node that homes the prefix, from a store of ``--handles`` handles (and of ``--big`` handles
   when given, to show how resolution scales with the store).
2. **Cached resolution on a recursive node**: the same handles through a recursive node whose
   cache was warmed first (its root is the authoritative node).
3. **Registration**: ``PUT /api/handles/88.101.5/bench-…`` of new handles, authenticated by a
   public-key session.

Servers run in their own processes (``serve`` sub-command), one per measurement, on
``--server`` (granian's embedded server, or uvicorn); wrk runs beside them on this machine.
Stores are built once under ``bench-data/`` (bulk-loaded with stdlib sqlite3) and reused, and
read once before measuring so that every size is measured warm (see ``warm``).

Run: ``.venv/bin/python bench/ids_resolve.py [--handles N] [--big N] [--server granian|uvicorn]``
Needs ``wrk`` (``apt-get install wrk``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import secrets
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "bench-data"
PREFIX = "88.101.5"
POOL = 20_000  # distinct handles wrk asks for
CONNECTIONS = 32
THREADS = 2
SERIAL_WIDTH = 9


def _handle(n: int) -> str:
    return f"{PREFIX}/SN-{n:0{SERIAL_WIDTH}d}"


# --- stores ---------------------------------------------------------------------------------


def _settings(directory: Path) -> Any:
    from plantwire.config import load_settings

    return load_settings(directory, argon2_time_cost=1, argon2_memory_kib=8192, log_level="warning")


def build_store(directory: Path, count: int, key_pem: bytes) -> None:
    """A node data dir homing PREFIX with ``count`` handles of three values each."""
    from plantwire.ids.handle_json import value_to_json
    from plantwire.ids.keys import load_private_key_pem, public_key_to_jwk
    from plantwire.ids.model import AdminPermission, AdminRef, HandleValue
    from plantwire.ids.names import match_key
    from plantwire.ids.server import NodeOptions, build_node, prepare_node_dir

    marker = directory / "handles.count"
    if marker.exists() and marker.read_text() == str(count):
        return
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    settings = _settings(directory)
    prepare_node_dir(settings)
    pubkey = public_key_to_jwk(load_private_key_pem(key_pem))
    running = build_node(settings, NodeOptions(homes=[PREFIX], admin_pubkey=pubkey))
    running.store.close()
    running.engine.dispose()
    stamp = "2026-11-22T00:00:00Z"
    templates = [
        HandleValue(1, "URL", b"https://plant.example/units/@@"),
        HandleValue(2, "PRODUCT", b'{"type":"gearbox","line":"L3"}'),
        HandleValue(100, "HS_ADMIN", AdminRef(f"0.NA/{PREFIX}", 200, AdminPermission.all())),
    ]
    fragments = []
    for template in templates:
        document = value_to_json(template)
        document["timestamp"] = stamp
        fragments.append(
            (template.index, match_key(template.type), json.dumps(document, separators=(",", ":")))
        )
    connection = sqlite3.connect(settings.data_dir / "plantwire.db", isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=OFF")
    connection.execute("BEGIN")
    started = time.perf_counter()
    now = "2026-11-22 00:00:00.000000"
    batch = 50_000
    prefix_key = match_key(PREFIX)
    for start in range(0, count, batch):
        numbers = range(start, min(count, start + batch))
        connection.executemany(
            "INSERT INTO handles (handle_key, handle, prefix_key, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?)",
            ((match_key(_handle(n)), _handle(n), prefix_key, now, now) for n in numbers),
        )
        connection.executemany(
            "INSERT INTO handle_values (handle_key, idx, type_key, public_read, value_json) "
            "VALUES (?, ?, ?, 1, ?)",
            (
                (
                    match_key(_handle(n)),
                    index,
                    type_key,
                    text.replace("@@", f"SN-{n:0{SERIAL_WIDTH}d}"),
                )
                for n in numbers
                for index, type_key, text in fragments
            ),
        )
        if start and start % 1_000_000 == 0:
            print(
                f"   loaded {start:,} handles ({time.perf_counter() - started:.0f} s)", flush=True
            )
    connection.execute("COMMIT")
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.close()
    marker.write_text(str(count))


def warm(directory: Path) -> None:
    """Read the store's files once, so both sizes are measured with the store in the page
    cache. A 10-million-handle store is ~8 GB: read cold from this machine's disk it measures
    the disk (one random read per lookup), not the node, and the page cache is dropped
    between sessions here."""
    started = time.perf_counter()
    total = 0
    for path in sorted(directory.glob("plantwire.db*")):
        with path.open("rb", buffering=0) as file:
            while chunk := file.read(8 << 20):
                total += len(chunk)
    print(f"   warmed {total / 1e9:.1f} GB in {time.perf_counter() - started:.0f} s", flush=True)


# --- servers (run in their own processes) -----------------------------------------------------


async def _baseline_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A raw ASGI app answering a dict lookup with pre-serialised bytes."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = _BASELINE.get(scope["path"], b'{"responseCode":100}')
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})


_BASELINE: dict[str, bytes] = {}


def serve(kind: str, server: str, port: int, data: Path | None, root: str | None) -> None:
    from plantwire.ids.server import NodeOptions, build_node
    from plantwire.observability import configure_logging

    configure_logging("console", "warning")
    if kind == "baseline":
        for n in range(POOL):
            _BASELINE[f"/api/handles/{_handle(n)}"] = (
                b'{"responseCode":1,"handle":"' + _handle(n).encode() + b'","values":[{"index":1,'
                b'"type":"URL","data":{"format":"string","value":"https://plant.example/units/x"},'
                b'"ttl":86400,"timestamp":"2026-11-22T00:00:00Z"}]}'
            )
        app: Any = _baseline_app
    elif kind == "node":
        assert data is not None
        app = build_node(_settings(data), NodeOptions(homes=[PREFIX], proxy_at_root=False)).node
    else:
        assert root is not None
        directory = Path(tempfile.mkdtemp(prefix="pw-bench-recursive-"))
        from plantwire.ids.server import prepare_node_dir

        settings = _settings(directory)
        prepare_node_dir(settings)
        options = NodeOptions(roots=[root], recursive=True, proxy_at_root=False)
        app = build_node(settings, options).node
    if server == "granian":
        from granian.constants import Interfaces
        from granian.server.embed import Server

        from plantwire.ids.server import run_loop

        async def run_granian() -> None:
            embedded = Server(
                app,
                address="127.0.0.1",
                port=port,
                interface=Interfaces.ASGINL,
                log_enabled=False,
                backlog=1024,
            )
            await embedded.serve()

        run_loop(run_granian())  # uvloop, as `plantwire ids serve` runs
    else:
        import uvicorn

        uvicorn.run(
            app, host="127.0.0.1", port=port, log_level="warning", access_log=False, lifespan="off"
        )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def server_process(
    kind: str, server: str, data: Path | None = None, root: str | None = None
) -> Iterator[str]:
    port = _free_port()
    command = [sys.executable, __file__, "serve", kind, "--server", server, "--port", str(port)]
    if data is not None:
        command += ["--data", str(data)]
    if root is not None:
        command += ["--root", root]
    process = subprocess.Popen(command)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                httpx.get(url + "/api/handles/x/y", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            raise RuntimeError(f"{kind} server did not start")
        yield url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# --- load -----------------------------------------------------------------------------------


_GET_SCRIPT = """
local paths = {}
for line in io.lines("%s") do paths[#paths + 1] = line end
math.randomseed(os.time())
request = function() return wrk.format("GET", paths[math.random(#paths)]) end
"""

_PUT_SCRIPT = """
local counter = 0
local tag = "%s"
local threads = 0
setup = function(thread) thread:set("tid", threads); threads = threads + 1 end
request = function()
  counter = counter + 1
  local path = "/api/handles/%s/bench-" .. tag .. "-" .. tid .. "-" .. counter
  return wrk.format("PUT", path, {["Content-Type"] = "application/json",
    ["Authorization"] = 'Handle version="0", sessionId="%s"'}, '%s')
end
"""


ROUNDS = 3


def best_of(url: str, script: str, seconds: int) -> dict[str, float]:
    """The best of ROUNDS wrk runs (the machine is shared: the best run is the least
    disturbed one; p99 is taken from that run)."""
    runs = [wrk(url, script, seconds) for _ in range(ROUNDS)]
    return max(runs, key=lambda run: run["rate"])


def wrk(url: str, script: str, seconds: int) -> dict[str, float]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script)
    try:
        output = subprocess.run(
            [
                "wrk",
                f"-t{THREADS}",
                f"-c{CONNECTIONS}",
                f"-d{seconds}s",
                "--latency",
                "-s",
                handle.name,
                url,
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        os.unlink(handle.name)
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", output)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    return {
        "rate": rate,
        "p99_ms": float(p99.group(1)) * scale[p99.group(2)] if p99 else float("nan"),
        "bad": float(bad.group(1)) if bad else 0.0,
        "socket_errors": float(sum(int(g) for g in errors.groups())) if errors else 0.0,
    }


def paths_file(count: int) -> str:
    chosen = random.sample(range(count), min(POOL, count)) if count > POOL else range(count)
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as handle:
        for n in chosen:
            handle.write(f"/api/handles/{_handle(n)}\n")
    return handle.name


def open_session(url: str, key_pem: bytes) -> str:
    from plantwire.ids.client import HandleClient
    from plantwire.ids.keys import load_private_key_pem

    client = HandleClient(
        url, identity=f"300:0.NA/{PREFIX}", private_key=load_private_key_pem(key_pem)
    )
    session = client._open_session()
    client.close()
    return session


def show(label: str, figure: dict[str, float], baseline: dict[str, float]) -> None:
    ratio = figure["rate"] / baseline["rate"]
    extra = ""
    if figure["bad"] or figure["socket_errors"]:
        extra = f"  (non-2xx: {figure['bad']:.0f}, socket errors: {figure['socket_errors']:.0f})"
    print(
        f"{label:<52} {figure['rate']:>9,.0f}/s  p99 {figure['p99_ms']:6.2f} ms  "
        f"{ratio:5.2f}x baseline{extra}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--handles", type=int, default=100_000)
    parser.add_argument("--big", type=int, default=0, help="also measure a store this large")
    parser.add_argument("--server", choices=("granian", "uvicorn"), default="granian")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3, help="wrk runs per figure (best counts)")
    args = parser.parse_args()
    global ROUNDS
    ROUNDS = args.rounds
    if shutil.which("wrk") is None:
        sys.exit("bench/ids_resolve.py needs wrk: apt-get install wrk")
    DATA.mkdir(exist_ok=True)
    key_file = DATA / "admin.pem"
    if not key_file.exists():
        from plantwire.ids.keys import generate_private_key, private_key_to_pem

        key_file.write_bytes(private_key_to_pem(generate_private_key()))
    key_pem = key_file.read_bytes()
    sizes = [args.handles] + ([args.big] if args.big else [])
    for size in sizes:
        print(f"== building a store of {size:,} handles (once; reused)", flush=True)
        build_store(DATA / f"node-{size}", size, key_pem)
        warm(DATA / f"node-{size}")
    print(
        f"server: {args.server}; wrk -t{THREADS} -c{CONNECTIONS} -d{args.seconds}s; "
        f"{os.cpu_count()} CPUs",
        flush=True,
    )
    paths = paths_file(min(sizes))
    with server_process("baseline", args.server) as base:
        baseline = best_of(base, _GET_SCRIPT % paths, args.seconds)
    show("baseline: raw ASGI dict lookup", baseline, baseline)
    with contextlib.ExitStack() as stack:
        nodes = {
            size: stack.enter_context(server_process("node", args.server, DATA / f"node-{size}"))
            for size in sizes
        }
        size_paths = {size: paths if size == sizes[0] else paths_file(size) for size in sizes}
        runs: dict[int, list[dict[str, float]]] = {size: [] for size in sizes}
        for _ in range(ROUNDS):  # sizes alternate, so the machine's drift hits both alike
            for size in sizes:
                runs[size].append(wrk(nodes[size], _GET_SCRIPT % size_paths[size], args.seconds))
        best = {size: max(runs[size], key=lambda run: run["rate"]) for size in sizes}
        for size in sizes:
            show(f"authoritative resolution, {size:,} handles", best[size], baseline)
        if args.big:
            small, big = best[sizes[0]], best[args.big]
            print(
                f"   {args.big:,} against {sizes[0]:,} handles: throughput "
                f"{big['rate'] / small['rate']:.2f}x, p99 {big['p99_ms'] / small['p99_ms']:.2f}x",
                flush=True,
            )
            os.unlink(size_paths[args.big])
        node = nodes[sizes[0]]
        with server_process("recursive", args.server, root=node) as recursive:
            with httpx.Client(base_url=recursive, timeout=10) as client:
                for line in Path(paths).read_text().split():
                    assert client.get(line).status_code == 200
            cached = best_of(recursive, _GET_SCRIPT % paths, args.seconds)
            show("cached resolution on a recursive node", cached, baseline)
        session = open_session(node, key_pem)
        body = json.dumps(
            {"values": [{"index": 1, "type": "URL", "data": "https://plant.example/u"}]}
        )
        runs_put = [  # new names each run: every PUT creates
            wrk(node, _PUT_SCRIPT % (secrets.token_hex(4), PREFIX, session, body), args.seconds)
            for _ in range(ROUNDS)
        ]
        registration = max(runs_put, key=lambda run: run["rate"])
        show("registration (PUT, session-authenticated)", registration, baseline)
    os.unlink(paths)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        sub = argparse.ArgumentParser()
        sub.add_argument("command")
        sub.add_argument("kind")
        sub.add_argument("--server", default="granian")
        sub.add_argument("--port", type=int, required=True)
        sub.add_argument("--data", type=Path)
        sub.add_argument("--root")
        options = sub.parse_args()
        serve(options.kind, options.server, options.port, options.data, options.root)
    else:
        main()
