"""The host application's rules without I/O: bad births, wrong data types, the rebirth rate
limit, and its state surviving serialisation."""

from __future__ import annotations

from plantwire.telemetry.sparkplug.codec import encode_payload
from plantwire.telemetry.sparkplug.host import NodeState, SparkplugHost
from plantwire.telemetry.sparkplug.model import DataType, Metric, Payload
from plantwire.telemetry.sparkplug.topics import MessageType, Topic

T = DataType
NBIRTH = Topic(MessageType.NBIRTH, "G", "E")
NDATA = Topic(MessageType.NDATA, "G", "E")


def payload(seq: int, *metrics: Metric) -> bytes:
    return encode_payload(Payload(timestamp=1000, seq=seq, metrics=list(metrics)))


def test_bad_births_and_wrong_types_are_refused_and_ask_for_a_rebirth() -> None:
    host = SparkplugHost(rebirth_seconds=5)
    twice = payload(0, Metric("a", 1, None, T.Int32, 1), Metric("b", 1, None, T.Int32, 2))
    outcome = host.apply("t", NBIRTH, twice, 0, now=0.0)
    assert outcome.refused is not None
    assert (outcome.refused.reason, outcome.rebirth) == ("birth", True)
    born = host.apply("t", NBIRTH, payload(0, Metric("a", 1, None, T.Int32, 1)), 0, now=1.0)
    assert born.refused is None
    assert [(s.metric, s.value, s.ms) for s in born.samples] == [("a", 1, 1000)]
    wrong = host.apply("t", NDATA, payload(1, Metric(None, 1, 7, T.Float, 1.5)), 0, now=2.0)
    assert wrong.refused is not None
    assert wrong.refused.reason == "datatype"
    early = host.apply("t", NDATA, payload(9, Metric(None, 9, None, T.Int32, 1)), 0, now=3.0)
    assert early.refused is not None
    assert (early.refused.reason, early.rebirth) == ("alias", False)  # within 5 s of the last
    state = dict(host.changes())[("t", "G", "E")]
    again = NodeState.from_bytes(state)
    assert again.to_bytes() == state
    assert (again.online, again.seq) == (True, 9)  # refused messages still count in seq
