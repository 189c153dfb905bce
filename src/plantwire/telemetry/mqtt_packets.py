"""The few MQTT 3.1.1 packets the Sparkplug host needs to publish its STATE (sans-I/O): CONNECT
with a will, PUBLISH at QoS 1, PINGREQ and DISCONNECT out; CONNACK, PUBACK and PINGRESP in.

OASIS MQTT 3.1.1, chapter 2 (fixed header, remaining length) and chapter 3 (packets). A
client that only publishes needs no more; devices use a full client library."""

from __future__ import annotations

import struct
from dataclasses import dataclass

__all__ = [
    "CONNACK",
    "PINGRESP",
    "PUBACK",
    "Incoming",
    "MqttError",
    "Will",
    "connack_code",
    "connect",
    "disconnect",
    "pingreq",
    "puback_id",
    "publish",
    "read_packet",
]

CONNACK = 0x20
PUBACK = 0x40
PINGRESP = 0xD0
_CONNECT = 0x10
_PUBLISH = 0x30
_PINGREQ = 0xC0
_DISCONNECT = 0xE0
_MAX_REMAINING = 268_435_455  # four bytes of variable-length integer (2.2.3)


class MqttError(Exception):
    """A packet that breaks the protocol, or a refused connection."""


@dataclass(frozen=True, slots=True)
class Will:
    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True


@dataclass(frozen=True, slots=True)
class Incoming:
    """A packet from the server: its type (the fixed header's high nibble, e.g. ``PUBACK``),
    its flags and its body after the remaining length."""

    kind: int
    flags: int
    body: bytes


def _string(text: str) -> bytes:
    data = text.encode("utf-8")
    return _blob(data)


def _blob(data: bytes) -> bytes:
    if len(data) > 0xFFFF:
        raise MqttError("a string or binary field is longer than 65,535 bytes")
    return struct.pack("!H", len(data)) + data


def _remaining(length: int) -> bytes:
    if not 0 <= length <= _MAX_REMAINING:
        raise MqttError(f"a packet of {length} bytes is too long")
    out = bytearray()
    while True:
        byte, length = length % 128, length // 128
        out.append(byte | (0x80 if length else 0))
        if not length:
            return bytes(out)


def _packet(first: int, body: bytes) -> bytes:
    return bytes([first]) + _remaining(len(body)) + body


def connect(
    client_id: str,
    username: str,
    password: str,
    *,
    keepalive: int = 30,
    will: Will | None = None,
) -> bytes:
    """CONNECT with a clean session (3.1)."""
    flags = 0x02 | 0x80 | 0x40  # clean session, username, password
    payload = _string(client_id)
    if will is not None:
        flags |= 0x04 | (will.qos << 3) | (0x20 if will.retain else 0)
        payload += _string(will.topic) + _blob(will.payload)
    payload += _string(username) + _string(password)
    header = _string("MQTT") + bytes([4, flags]) + struct.pack("!H", keepalive)
    return _packet(_CONNECT, header + payload)


def publish(topic: str, payload: bytes, packet_id: int, *, retain: bool = False) -> bytes:
    """PUBLISH at QoS 1 (3.3); the server answers PUBACK with ``packet_id``."""
    if not 1 <= packet_id <= 0xFFFF:
        raise MqttError("a packet identifier is 1-65535")
    first = _PUBLISH | 0x02 | (0x01 if retain else 0)
    return _packet(first, _string(topic) + struct.pack("!H", packet_id) + payload)


def pingreq() -> bytes:
    return bytes([_PINGREQ, 0])


def disconnect() -> bytes:
    """DISCONNECT (3.14): the server discards the will."""
    return bytes([_DISCONNECT, 0])


def read_packet(buffer: bytearray) -> Incoming | None:
    """Take one whole packet off the front of ``buffer``; None: not all of it is there yet."""
    if len(buffer) < 2:
        return None
    length, multiplier, position = 0, 1, 1
    while True:
        if position >= len(buffer):
            return None
        byte = buffer[position]
        length += (byte & 0x7F) * multiplier
        position += 1
        if not byte & 0x80:
            break
        multiplier *= 128
        if position > 4:
            raise MqttError("a remaining length of more than four bytes")
    if len(buffer) < position + length:
        return None
    packet = Incoming(
        buffer[0] & 0xF0, buffer[0] & 0x0F, bytes(buffer[position : position + length])
    )
    del buffer[: position + length]
    return packet


def connack_code(packet: Incoming) -> int:
    """The CONNACK's return code (0: accepted; 4: bad user name or password; 5: not
    authorised)."""
    if packet.kind != CONNACK or len(packet.body) != 2:
        raise MqttError("expected a CONNACK")
    return packet.body[1]


def puback_id(packet: Incoming) -> int:
    if packet.kind != PUBACK or len(packet.body) != 2:
        raise MqttError("expected a PUBACK")
    return int(struct.unpack("!H", packet.body)[0])
