"""The example edge node of docs/sparkplug.md ("An example"), run as the docs run it: a
subprocess with the credentials of a node provisioned through the device API, against the real
platform, bundled broker and ingest. What the walkthrough shows must hold: the Sparkplug
device made with its metrics and units, its latest values, the node online, a command to
Setpoint confirmed by the node's read-back, a rebirth answered, and a clean stop (Ctrl-C, or
``--count``) taking the node offline with its own NDEATH."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from plantwire.telemetry.broker import BundledBroker
from tests.conftest import Seed
from tests.telemetry.sparkplug.test_host import eventually, got, ingest_started, made
from tests.telemetry.sparkplug.test_provisioning import DEVICES, make_node

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "sparkplug_edge_node.py"
REBIRTH = "Node Control/Rebirth"


@contextmanager
def edge_node(
    broker: BundledBroker, mqtt: dict[str, str], log: Path, *options: str
) -> Iterator[subprocess.Popen[bytes]]:
    """The example running as ``Plant1/Edge1``; killed if the test leaves it running."""
    command = [
        sys.executable,
        str(EXAMPLE),
        *("--port", str(broker.options.mqtt_port)),
        # with "=": a password may begin with "-", which argparse takes for an option
        f"--username={mqtt['username']}",
        f"--password={mqtt['password']}",
        *("--group", "Plant1", "--edge-node", "Edge1"),
        *options,
    ]
    with log.open("wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
        try:
            yield process
        finally:
            if process.poll() is None:
                process.kill()
            process.wait()


async def test_the_example_edge_node_as_the_docs_walk_through_it(
    with_broker: tuple[TestClient, Seed, BundledBroker], tmp_path: Path
) -> None:
    client, seed, broker = with_broker
    tenant = seed.tenants["a"]
    engineer, operator = tenant.headers["engineer"], tenant.headers["operator"]
    node = make_node(client, engineer, "Plant1/Edge1")
    node_path = f"{DEVICES}/{node['id']}"
    mqtt: dict[str, str] = node["mqtt"]  # type: ignore[assignment]
    await ingest_started(client)

    def status(path: str) -> dict[str, Any]:
        found: dict[str, Any] = got(client, path, engineer)["sparkplug"]
        return found

    def latest(path: str) -> dict[str, Any]:
        found: dict[str, Any] = got(client, f"{path}/latest", engineer)
        return found

    log = tmp_path / "edge-node.log"
    options = ("--primary-host", "plantwire", "--interval", "0.1")
    with edge_node(broker, mqtt, log, *options) as process:
        press = await made(client, engineer, "Plant1/Edge1/press-1")
        assert (press["kind"], press["parent"]) == ("sparkplug-device", node["id"])
        press_path = f"{DEVICES}/{press['id']}"
        assert press["topics"] == {
            "telemetry": "spBv1.0/Plant1/DDATA/Edge1/press-1",
            "commands": "spBv1.0/Plant1/DCMD/Edge1/press-1",
        }
        metrics = [
            {"name": "Running", "data_type": "bool", "unit": "", "description": ""},
            {"name": "Setpoint", "data_type": "float", "unit": "°C", "description": ""},
            {"name": "Temperature", "data_type": "float", "unit": "°C", "description": ""},
        ]
        declared = [{**metric, "writable": False} for metric in metrics]
        await eventually(
            lambda: got(client, press_path, engineer)["metrics"] == declared, "the DBIRTH's metrics"
        )
        # DDATA by alias: the temperature moves from 20 towards the setpoint, 60
        await eventually(
            lambda: 20.0 < latest(press_path).get("Temperature", {}).get("value", 0) < 60.0,
            "DDATA",
        )
        values = latest(press_path)
        assert values["Running"]["value"] is True
        assert values["Setpoint"]["value"] == 60.0
        assert {value["quality"] for value in values.values()} == {"good"}
        assert not any("stale" in value for value in values.values())
        assert latest(node_path)["bdSeq"]["value"] == 0
        assert latest(node_path)[REBIRTH]["value"] is False
        born = status(node_path)
        assert born["online"] is True
        letters = got(client, f"{node_path}/dead-letters", engineer)
        assert (born["bd_seq"], born["seq_gaps"], born["rebirths"]) == (0, 0, 0), letters
        assert status(press_path)["online"] is True

        # Setpoint made writable, then commanded: the node's DDATA confirms it
        writable = [{**m, "writable": m["name"] == "Setpoint"} for m in metrics]
        patched = client.patch(press_path, json={"metrics": writable}, headers=engineer)
        assert patched.status_code == 200, patched.text
        sent = client.post(
            f"{press_path}/commands?wait=10",
            json={"metric": "Setpoint", "value": 42.5},
            headers=operator,
        )
        assert sent.status_code == 202, sent.text
        command = sent.json()
        assert (command["metric"], command["value"], command["status"]) == (
            "Setpoint",
            42.5,
            "confirmed",
        )
        assert command["device"] == press["id"]
        assert latest(press_path)["Setpoint"]["value"] == 42.5

        # a rebirth request (a command to Node Control/Rebirth) is answered with new births,
        # seq from 0 again: no gap
        node_metrics = got(client, node_path, engineer)["metrics"]
        rebirth = [{**m, "writable": m["name"] == REBIRTH} for m in node_metrics]
        patched = client.patch(node_path, json={"metrics": rebirth}, headers=engineer)
        assert patched.status_code == 200, patched.text
        asked = client.post(
            f"{node_path}/commands", json={"metric": REBIRTH, "value": True}, headers=operator
        )
        assert asked.status_code == 202, asked.text
        await eventually(lambda: status(node_path)["birth"] > born["birth"], "the rebirth")
        await eventually(lambda: status(press_path)["online"], "the device born again")

        # Ctrl-C: the node publishes its NDEATH (bdSeq 0) and exits cleanly
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0, log.read_text()
    await eventually(lambda: not status(node_path)["online"], "the NDEATH")
    dead = status(node_path)
    assert (dead["bd_seq"], dead["seq_gaps"], dead["rebirths"]) == (0, 0, 0), dead
    assert dead["last_death"] is not None
    setpoint = latest(press_path)["Setpoint"]
    assert (setpoint["value"], setpoint["stale"], setpoint["quality"]) == (42.5, True, "uncertain")
    output = log.read_text()
    assert "DCMD: Setpoint = 42.5" in output
    assert "rebirth requested" in output

    # --count: a few DDATA and a clean stop, without waiting for the host's STATE
    counted = ("--count", "3", "--interval", "0.05", "--bd-seq", "1")
    with edge_node(broker, mqtt, tmp_path / "counted.log", *counted) as process:
        assert process.wait(timeout=10) == 0, (tmp_path / "counted.log").read_text()
    await eventually(lambda: status(node_path)["bd_seq"] == 1, "the second session")
    await eventually(lambda: not status(node_path)["online"], "its NDEATH")
    assert status(node_path)["seq_gaps"] == 0
