"""The host application's rules without I/O: bad births, wrong data types, the rebirth rate
limit, and its state (shapes of DataSets and Templates included) surviving serialisation."""

from __future__ import annotations

from plantwire.telemetry.sparkplug.codec import encode_payload
from plantwire.telemetry.sparkplug.host import NodeState, SparkplugHost
from plantwire.telemetry.sparkplug.model import (
    DataSet,
    DataType,
    Metric,
    Parameter,
    Payload,
    PropertyValue,
    Template,
)
from plantwire.telemetry.sparkplug.shapes import Member, TableShape, TemplateShape
from plantwire.telemetry.sparkplug.topics import MessageType, Topic

T = DataType
QUALITY_192 = PropertyValue(DataType.Int32, 192)
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


def test_status_counts_carry_over_births_and_older_states_still_load() -> None:
    """Rebirth requests (of a node not born yet too), gaps and deaths are counted in the
    node's state; a new NBIRTH keeps them and its devices, offline until their DBIRTH."""
    host = SparkplugHost(rebirth_seconds=0)
    early = host.apply("t", NDATA, payload(0, Metric("a", 1, None, T.Int32, 1)), 5, now=0.0)
    assert early.rebirth
    assert host.nodes[("t", "G", "E")].rebirths == 1  # a node heard of by its data only
    host.apply("t", NBIRTH, payload(0, Metric("a", 1, None, T.Int32, 1)), 10, now=1.0)
    dbirth = Topic(MessageType.DBIRTH, "G", "E", "d")
    host.apply("t", dbirth, payload(1, Metric("x", 2, None, T.Int32, 1)), 20, now=2.0)
    gap = host.apply("t", NDATA, payload(5, Metric(None, 1, None, T.Int32, 2)), 30, now=3.0)
    assert (gap.gap, gap.rebirth) == (True, True)
    host.apply("t", NBIRTH, payload(0, Metric("a", 1, None, T.Int32, 1)), 40, now=4.0)
    node = host.nodes[("t", "G", "E")]
    assert (node.online, node.rebirths, node.seq_gaps, node.death_ms) == (True, 2, 1, 40)
    device = node.devices["d"]
    assert (device.online, device.birth, device.birth_ms, device.death_ms) == (
        False,
        None,
        20,
        40,
    )
    death = encode_payload(Payload(timestamp=1000, metrics=[]))
    host.apply("t", Topic(MessageType.NDEATH, "G", "E"), death, 50, now=5.0)
    assert (node.online, node.death_ms) == (False, 50)
    # a state committed before status was kept
    older = b'{"online":true,"bd_seq":0,"seq":3,"birth_ms":1,"metrics":[],"devices":{}}'
    loaded = NodeState.from_bytes(older)
    assert (loaded.rebirths, loaded.seq_gaps, loaded.death_ms) == (0, 0, None)


def test_times_the_store_cannot_hold_are_refused_not_stored() -> None:
    """A metric stamped after the year 9999 (Sparkplug timestamps are any uint64) is refused
    with reason ``timestamp``: stored, it overflowed the store's 64-bit microseconds when the
    batch was appended, and the append failed on every retry — ingest stuck on one message."""
    host = SparkplugHost()
    born = host.apply("t", NBIRTH, payload(0, Metric("a", 1, None, T.Double, 1.0)), 0, 0.0)
    assert born.born == ""  # the node itself
    for seq, late in enumerate((253_402_300_800_000, 2**63, 2**64 - 1), start=1):
        # by the quick path (alias and value only) and by the full one (a property)
        for metric in (
            Metric(None, 1, late, T.Double, 1.0),
            Metric(None, 1, late, T.Double, 1.0, properties={"Quality": QUALITY_192}),
        ):
            outcome = host.apply("t", NDATA, payload(seq, metric), 0, now=1.0)
            assert outcome.refused is not None
            assert outcome.refused.reason == "timestamp"
            assert (outcome.samples, outcome.grouped) == ([], [])
    fine = host.apply(
        "t", NDATA, payload(4, Metric(None, 1, 253_402_300_799_999, T.Double, 2.0)), 0, 1.0
    )
    assert fine.refused is None
    assert [(group.ms, group.values) for group in fine.grouped] == [(253_402_300_799_999, [2.0])]


def test_births_keep_the_shape_of_datasets_and_templates_in_the_state() -> None:
    """A DataSet's columns and types, a template instance's ref, version, parameters and
    members (nested ones too) are kept with the certificate and survive its serialisation;
    a metric born null has none, and states written before shapes were kept still load."""
    valve = Template(
        [
            Metric("open", None, None, T.Boolean, False),
            Metric("log", None, None, T.DataSet, DataSet(["v"], [T.Float], [[1.0]])),
            Metric("pump", None, None, T.Template, Template([], [], None, "Pump")),
        ],
        [Parameter("size", T.Int32, 50)],
        "1",
        "Valve",
    )
    born = payload(
        0,
        Metric("Table", 1, None, T.DataSet, DataSet(["a", "b"], [T.Int8, T.Text], [[1, "x"]])),
        Metric("Valve", 2, None, T.Template, valve),
        Metric("Empty", 3, None, T.DataSet),
    )
    host = SparkplugHost()
    assert host.apply("t", NBIRTH, born, 0, now=0.0).refused is None
    certificate = host.nodes[("t", "G", "E")].birth
    assert certificate is not None
    assert certificate.shapes == {
        "Table": TableShape(("a", "b"), (T.Int8, T.Text)),
        "Valve": TemplateShape(
            "Valve",
            "1",
            False,
            (("size", T.Int32),),
            (
                Member("open", T.Boolean),
                Member("log", T.DataSet, TableShape(("v",), (T.Float,))),
                Member("pump", T.Template, TemplateShape("Pump", None, False, (), ())),
            ),
        ),
    }
    state = dict(host.changes())[("t", "G", "E")]
    again = NodeState.from_bytes(state)
    assert again.birth == certificate
    assert again.to_bytes() == state
    older = b'{"online":true,"bd_seq":0,"seq":3,"birth_ms":1,"metrics":[["T",1,16]],"devices":{}}'
    loaded = NodeState.from_bytes(older).birth
    assert loaded is not None
    assert (loaded.types, loaded.shapes) == ({"T": T.DataSet}, {})
