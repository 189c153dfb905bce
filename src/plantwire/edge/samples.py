"""What a connector hands the gateway: one `Sample` per metric read (no I/O).

Every connector (Modbus, later OPC UA) reports values as `Sample` records, in lists, to a
callback the gateway gives it (`SampleSink`). The gateway's store-and-forward buffer and its
Sparkplug B publisher consume them; nothing in a sample is specific to one protocol."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import IntEnum

__all__ = ["Quality", "Sample", "SampleSink", "SampleValue"]

#: A metric's value: what a connector decodes, after scaling.
SampleValue = bool | int | float | str


class Quality(IntEnum):
    """How far a sample's value can be trusted: OPC UA's and Sparkplug's three classes, as the
    codes of Sparkplug's ``Quality`` metric property (OPC DA's), which the gateway's buffer
    (`plantwire.edge.buffer.BufferedPoint.quality`) and edge node keep."""

    GOOD = 192
    #: the read got no answer (timeout, or a Modbus gateway found no target); the value, if
    #: any, is the last good one
    UNCERTAIN = 64
    #: the device refused the read, its data did not decode, or the connection is gone; no value
    BAD = 0


@dataclass(frozen=True, slots=True)
class Sample:
    """One metric of one device at one time.

    ``device`` is the connector's name of the device (the Sparkplug device id), ``metric`` the
    point's name, ``timestamp`` milliseconds since the Unix epoch (UTC) when the value was
    received (or the read failed). ``value`` is None when the quality is BAD, and when it is
    UNCERTAIN with no earlier good value."""

    device: str
    metric: str
    value: SampleValue | None
    quality: Quality
    timestamp: int


#: Takes each batch of samples a connector produces (one poll of one device's points that are
#: due together). Called on the event loop; it must not block (``queue.put_nowait`` fits).
SampleSink = Callable[[Sequence[Sample]], object]
