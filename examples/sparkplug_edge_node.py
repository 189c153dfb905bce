"""A Sparkplug B edge node with one device, talking to plantwire through its bundled broker.

Run it with the MQTT credentials the platform printed when the node was provisioned
(docs/sparkplug.md, "An example"):

    python examples/sparkplug_edge_node.py --port 1883 --group Plant1 --edge-node Edge1 \\
        --username='<device id>@<tenant id>' --password='<password>' --primary-host plantwire

(``--password=…`` with ``=``: a password may begin with ``-``.)

It registers its NDEATH (with ``bdSeq``) as the MQTT will, publishes the NBIRTH (``bdSeq``,
``Node Control/Rebirth``) and the DBIRTH of the device ``press-1`` (Temperature, Running,
Setpoint, each with an alias), then a DDATA every ``--interval`` seconds, by alias, with the
next ``seq``. A DCMD writing Setpoint is applied and reported back in DDATA, which is how the
platform confirms the command; ``Node Control/Rebirth`` makes it publish its births again.
Ctrl-C (or SIGTERM, or ``--count`` data messages) publishes the NDEATH and disconnects.

Needs paho-mqtt 2 (``pip install 'paho-mqtt>=2'``) and plantwire, for its Sparkplug codec.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import threading
import time
from collections.abc import Sequence
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from plantwire.telemetry.payloads import PayloadError
from plantwire.telemetry.sparkplug import (
    DataType,
    Metric,
    Payload,
    PropertyValue,
    decode_payload,
    encode_payload,
)

log = logging.getLogger("sparkplug_edge_node")

NAMESPACE = "spBv1.0"
REBIRTH = "Node Control/Rebirth"
#: The device's metrics: name -> (alias, data type). Aliases are unique across the node.
TEMPERATURE, RUNNING, SETPOINT = "Temperature", "Running", "Setpoint"
ALIASES = {TEMPERATURE: 1, RUNNING: 2, SETPOINT: 3}
TYPES = {TEMPERATURE: DataType.Double, RUNNING: DataType.Boolean, SETPOINT: DataType.Double}
WRITABLE = {SETPOINT}


def now_ms() -> int:
    return int(time.time() * 1000)


class EdgeNode:
    """The node's Sparkplug session: bdSeq, seq, births, data and commands. paho calls
    ``on_connect`` and ``on_message`` from its network thread while another thread sends
    data, so sending (which takes the next seq) is done under one lock: seq numbers reach
    the broker in order."""

    def __init__(self, client: mqtt.Client, args: argparse.Namespace) -> None:
        self.client = client
        self.group: str = args.group
        self.edge_node: str = args.edge_node
        self.device: str = args.device
        self.primary_host: str | None = args.primary_host
        self.bd_seq: int = args.bd_seq
        self.seq = 0
        self.born = False
        self.refused: ReasonCode | None = None  # the broker's answer to a refused CONNECT
        self.stopping = threading.Event()  # set: Ctrl-C, --count reached, or refused
        self.values: dict[str, float | bool] = {
            TEMPERATURE: 20.0,
            RUNNING: True,
            SETPOINT: args.setpoint,
        }
        self.lock = threading.Lock()

    def topic(self, kind: str, device: str | None = None) -> str:
        topic = f"{NAMESPACE}/{self.group}/{kind}/{self.edge_node}"
        return f"{topic}/{device}" if device else topic

    def death(self) -> bytes:
        """The NDEATH: only bdSeq, no seq. Registered as the will, so the platform takes the
        node offline when the connection is lost; published by ``stop`` on a clean stop."""
        bd_seq = Metric(name="bdSeq", datatype=DataType.Int64, value=self.bd_seq)
        return encode_payload(Payload(timestamp=now_ms(), metrics=[bd_seq]))

    def set_will(self) -> None:
        self.client.will_set(self.topic("NDEATH"), self.death(), qos=1, retain=False)

    # --- sending (under self.lock) ----------------------------------------------------------

    def send(self, kind: str, metrics: list[Metric], device: str | None = None) -> None:
        """Publish with the next seq: QoS 0, as Sparkplug asks of births and data. Births
        carry each metric's data type; data leaves it out (the birth declared it)."""
        payload = Payload(timestamp=now_ms(), metrics=metrics, seq=self.seq)
        self.seq = (self.seq + 1) % 256
        births = kind.endswith("BIRTH")
        data = encode_payload(payload, include_datatypes=births)
        self.client.publish(self.topic(kind, device), data, qos=0)

    def publish_births(self) -> None:
        """NBIRTH (seq 0) and the device's DBIRTH. Also the answer to a rebirth request:
        same bdSeq (same MQTT session), seq from 0 again. Not once stopping."""
        with self.lock:
            if self.stopping.is_set():
                return
            self.seq = 0
            self.send(
                "NBIRTH",
                [
                    Metric(name="bdSeq", datatype=DataType.Int64, value=self.bd_seq),
                    Metric(name=REBIRTH, datatype=DataType.Boolean, value=False),
                ],
            )
            celsius = {"engUnit": PropertyValue(DataType.String, "°C")}
            self.send(
                "DBIRTH",
                [
                    Metric(
                        name=name,
                        alias=ALIASES[name],
                        timestamp=now_ms(),
                        datatype=TYPES[name],
                        value=self.values[name],
                        properties=dict(celsius) if name != RUNNING else {},
                    )
                    for name in (TEMPERATURE, RUNNING, SETPOINT)
                ],
                self.device,
            )
            self.born = True
        log.info("NBIRTH (bdSeq %d) and DBIRTH of %s published", self.bd_seq, self.device)

    def by_alias(self, *names: str) -> list[Metric]:
        stamp = now_ms()
        return [
            Metric(alias=ALIASES[n], timestamp=stamp, datatype=TYPES[n], value=self.values[n])
            for n in names
        ]

    def publish_data(self) -> bool:
        """One DDATA: the temperature moves a tenth of the way to the setpoint. False while
        not born (waiting for the primary host, or between connections)."""
        with self.lock:
            if not self.born:
                return False
            temperature = float(self.values[TEMPERATURE])
            setpoint = float(self.values[SETPOINT])
            self.values[TEMPERATURE] = round(temperature + (setpoint - temperature) / 10, 3)
            self.send("DDATA", self.by_alias(TEMPERATURE, RUNNING), self.device)
            return True

    def send_data(self, interval: float, count: int) -> None:
        """A DDATA every ``interval`` seconds until stopped, or until ``count`` were sent
        (0: no limit)."""
        sent = 0
        while not self.stopping.wait(interval):
            if self.publish_data():
                sent += 1
            if count and sent >= count:
                self.stopping.set()

    def stop(self) -> None:
        """A clean stop: Sparkplug asks an edge node to publish its NDEATH itself before it
        disconnects (a clean DISCONNECT discards the will). QoS 1, waited for. Nothing is
        sent after it (a command answered late, say)."""
        with self.lock:
            self.born = False
        if self.client.is_connected():
            info = self.client.publish(self.topic("NDEATH"), self.death(), qos=1)
            info.wait_for_publish(5)
            log.info("NDEATH (bdSeq %d) published", self.bd_seq)
        self.client.disconnect()

    # --- paho callbacks (its network thread) ------------------------------------------------

    def on_connect(
        self, _client: Any, _userdata: Any, _flags: Any, code: ReasonCode, _props: Any
    ) -> None:
        if code.is_failure:
            log.error("connection refused: %s", code)
            self.refused = code
            self.stopping.set()
            return
        log.info("connected as %s/%s", self.group, self.edge_node)
        subscriptions = [(self.topic("NCMD"), 1), (self.topic("DCMD", self.device), 1)]
        if self.primary_host is not None:
            subscriptions.append((f"{NAMESPACE}/STATE/{self.primary_host}", 1))
        self.client.subscribe(subscriptions)
        if self.primary_host is None:
            self.publish_births()
        else:  # born once the host's retained STATE says it is online (on_message)
            log.info("waiting for the primary host %s", self.primary_host)

    def on_disconnect(
        self, _client: Any, _userdata: Any, _flags: Any, code: ReasonCode, _props: Any
    ) -> None:
        """A new MQTT session needs a new bdSeq, in the will as in the next NBIRTH: the will
        of the lost session may still come, and the platform must not take it for ours."""
        with self.lock:
            self.born = False
            self.bd_seq = (self.bd_seq + 1) % 256
            self.set_will()
        log.info("disconnected (%s)", code)

    def on_message(self, _client: Any, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        levels, data = message.topic.split("/"), bytes(message.payload)
        kind = levels[2] if len(levels) > 2 else ""
        if levels[1] == "STATE":
            self.on_state(data)
        elif kind in ("NCMD", "DCMD"):
            try:
                command = decode_payload(data, datatypes=self.datatypes())
            except PayloadError as error:
                log.warning("%s refused: %s", kind, error)
                return
            if kind == "NCMD":
                self.on_node_command(command)
            else:
                self.on_device_command(command)

    def on_state(self, data: bytes) -> None:
        try:
            online = json.loads(data)["online"] is True
        except (ValueError, KeyError, TypeError):
            log.warning("STATE that is not Sparkplug's JSON: %r", data[:100])
            return
        log.info("primary host %s is %s", self.primary_host, "online" if online else "offline")
        if online and not self.born:
            self.publish_births()

    def datatypes(self) -> dict[int | str, DataType]:
        """For commands that leave the data type out (plantwire sends it; others may not)."""
        known: dict[int | str, DataType] = {REBIRTH: DataType.Boolean}
        for name, alias in ALIASES.items():
            known[name] = known[alias] = TYPES[name]
        return known

    def on_node_command(self, command: Payload) -> None:
        for metric in command.metrics:
            if metric.name == REBIRTH and metric.value is True:
                log.info("rebirth requested")
                self.publish_births()
            else:
                log.warning("NCMD of %s ignored: not a metric this node writes", metric.label)

    def on_device_command(self, command: Payload) -> None:
        """Apply each write of a writable metric, then report all of them in one DDATA: the
        value the platform reads back to confirm the command."""
        names = {alias: name for name, alias in ALIASES.items()}
        written = []
        for metric in command.metrics:
            name = metric.name or names.get(metric.alias or -1)
            value = metric.value
            if (
                name not in WRITABLE
                or isinstance(value, bool)
                or not isinstance(value, int | float)
            ):
                log.warning("DCMD of %s ignored: not writable here", metric.label)
                continue
            with self.lock:
                self.values[name] = float(value)
            written.append(name)
            log.info("DCMD: %s = %s", name, value)
        if written:
            with self.lock:
                if self.born:
                    self.send("DDATA", self.by_alias(*written), self.device)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1", help="MQTT broker (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=1883, help="MQTT port (default 1883)")
    parser.add_argument("--username", required=True, help="the node's MQTT username")
    parser.add_argument(
        "--password",
        required=True,
        help="the node's MQTT password (--password=…: it may begin with -)",
    )
    parser.add_argument("--group", default="Plant1", help="Sparkplug group id")
    parser.add_argument("--edge-node", default="Edge1", help="Sparkplug edge node id")
    parser.add_argument("--device", default="press-1", help="the device's id (default press-1)")
    parser.add_argument(
        "--primary-host", help="wait for this host application's STATE before the births"
    )
    parser.add_argument("--bd-seq", type=int, default=0, help="bdSeq of the first session")
    parser.add_argument("--setpoint", type=float, default=60.0, help="initial Setpoint")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between DDATA")
    parser.add_argument(
        "--count", type=int, default=0, help="stop after this many DDATA (0: run until Ctrl-C)"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the edge node until Ctrl-C, SIGTERM or ``--count`` data messages; 0 on a clean
    stop."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # stops as Ctrl-C does
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=args.username,
        clean_session=True,
        protocol=mqtt.MQTTv311,  # what nats-server's MQTT speaks
    )
    client.username_pw_set(args.username, args.password)
    node = EdgeNode(client, args)
    node.set_will()
    client.on_connect = node.on_connect
    client.on_disconnect = node.on_disconnect
    client.on_message = node.on_message
    try:
        client.connect(args.host, args.port, keepalive=30)
    except OSError as error:
        log.error("cannot connect to %s:%d: %s", args.host, args.port, error)
        return 1
    client.loop_start()
    # DDATA go out from a thread of their own: Ctrl-C (a KeyboardInterrupt in this thread)
    # then only ever interrupts the wait below, never a publish half done.
    sender = threading.Thread(target=node.send_data, args=(args.interval, args.count))
    sender.start()
    try:
        node.stopping.wait()
    except KeyboardInterrupt:
        log.info("stopping")
    finally:
        node.stopping.set()
        sender.join()
        node.stop()
        client.loop_stop()
    return 1 if node.refused is not None else 0


if __name__ == "__main__":
    raise SystemExit(main())
