"""Sparkplug B topics: parsed, built, refused with a clear error, and carried as the NATS
subjects nats-server makes of them (dots in names included)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plantwire.telemetry.payloads import PayloadError
from plantwire.telemetry.sparkplug.topics import (
    DEVICE_MESSAGES,
    NODE_MESSAGES,
    HostStateTopic,
    MessageType,
    Topic,
    TopicError,
    parse_subject,
    parse_topic,
    subject_to_topic,
    topic_to_subject,
)

M = MessageType


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("spBv1.0/Plant1/NBIRTH/Edge7", Topic(M.NBIRTH, "Plant1", "Edge7")),
        ("spBv1.0/Plant1/NDEATH/Edge7", Topic(M.NDEATH, "Plant1", "Edge7")),
        ("spBv1.0/Plant1/NDATA/Edge7", Topic(M.NDATA, "Plant1", "Edge7")),
        ("spBv1.0/Plant1/NCMD/Edge7", Topic(M.NCMD, "Plant1", "Edge7")),
        ("spBv1.0/Plant1/DBIRTH/Edge7/Press 1", Topic(M.DBIRTH, "Plant1", "Edge7", "Press 1")),
        ("spBv1.0/Plant1/DDEATH/Edge7/Press.1", Topic(M.DDEATH, "Plant1", "Edge7", "Press.1")),
        ("spBv1.0/Plant1/DDATA/Edge7/ünï ✓", Topic(M.DDATA, "Plant1", "Edge7", "ünï ✓")),
        ("spBv1.0/Plant1/DCMD/Edge7/d", Topic(M.DCMD, "Plant1", "Edge7", "d")),
        (
            "spBv1.0/Sparkplug B Devices/NBIRTH/Raspberry Pi",
            Topic(M.NBIRTH, "Sparkplug B Devices", "Raspberry Pi"),
        ),
        ("spBv1.0/STATE/scada-1", HostStateTopic("scada-1")),
        ("spBv1.0/STATE/NDATA/Edge7", Topic(M.NDATA, "STATE", "Edge7")),  # a group named STATE
    ],
)
def test_topics_parse_and_build_back(text: str, parsed: Topic | HostStateTopic) -> None:
    assert parse_topic(text) == parsed
    assert str(parsed) == text


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("spAv1.0/Plant1/NBIRTH/Edge7", "not under spBv1.0/"),
        ("STATE/scada-1", "not under spBv1.0/"),  # Sparkplug 2.2's host state topic
        ("spBv1.0/Plant1/NBIRTH", "is not spBv1.0/group/type/edge_node[/device]"),
        ("spBv1.0/Plant1/DDATA/Edge7/d/extra", "is not spBv1.0/group/type/edge_node[/device]"),
        ("spBv1.0/Plant1/NBRTH/Edge7", "'NBRTH' is no message type"),
        ("spBv1.0/Plant1/STATE/Edge7", "STATE is no edge node or device message type"),
        ("spBv1.0/Plant1/DDATA/Edge7", "DDATA topics need a device id"),
        ("spBv1.0/Plant1/NDATA/Edge7/d", "NDATA topics have no device id"),
        ("spBv1.0//NDATA/Edge7", "the group id is empty"),
        ("spBv1.0/Plant1/NDATA/", "the edge node id is empty"),
        ("spBv1.0/Plant1/DDATA/Edge7/", "the device id is empty"),
        (
            "spBv1.0/Plant+1/NDATA/Edge7",
            "the group id 'Plant+1' holds '+', which Sparkplug reserves",
        ),
        ("spBv1.0/Plant1/NDATA/#", "the edge node id '#' holds '#', which Sparkplug reserves"),
        ("spBv1.0/Plant1/NDATA/a\0b", "holds '\\x00'"),
        ("spBv1.0/STATE/", "the host id is empty"),
        ("spBv1.0/STATE/h+", "the host id 'h+' holds '+'"),
    ],
)
def test_illegal_topics_are_refused_with_a_clear_error(text: str, says: str) -> None:
    with pytest.raises(TopicError) as caught:
        parse_topic(text)
    assert says in str(caught.value)
    assert caught.value.reason == "topic"
    assert isinstance(caught.value, PayloadError)  # counted and dead-lettered as payloads are


def test_building_refuses_what_parsing_does() -> None:
    with pytest.raises(TopicError, match="group id 'a/b' holds '/'"):
        Topic(M.NBIRTH, "a/b", "e")
    with pytest.raises(TopicError, match="is empty"):
        Topic(M.DCMD, "g", "e", "")
    with pytest.raises(TopicError, match="not valid UTF-8"):
        HostStateTopic("\ud800")
    assert HostStateTopic("h").message_type is M.STATE
    assert NODE_MESSAGES | DEVICE_MESSAGES | {M.STATE} == set(M)


@pytest.mark.parametrize(
    ("topic", "subject"),
    [
        ("spBv1.0/Plant1/NBIRTH/Edge7", "spBv1//0.Plant1.NBIRTH.Edge7"),
        ("spBv1.0/Plant.1/DDATA/Edge.7/press.1.a", "spBv1//0.Plant//1.DDATA.Edge//7.press//1//a"),
        ("spBv1.0/.lead/NDATA/trail.", "spBv1//0.//lead.NDATA.trail//"),
        ("spBv1.0/a..b/NDATA/...", "spBv1//0.a////b.NDATA.//////"),
        ("spBv1.0/STATE/host.example.com", "spBv1//0.STATE.host//example//com"),
    ],
)
def test_topics_and_the_subjects_nats_server_carries_them_as(topic: str, subject: str) -> None:
    assert topic_to_subject(topic) == subject
    assert topic_to_subject(parse_topic(topic)) == subject
    assert subject_to_topic(subject) == topic
    assert parse_subject(subject) == parse_topic(topic)


@pytest.mark.parametrize(
    "topic",
    [
        "spBv1.0/Sparkplug B Devices/NBIRTH/Pi",
        "spBv1.0/g/NDATA/e\t1",
        "spBv1.0/g/NDATA/a*",
        "spBv1.0/g/NDATA/>",
        "spBv1.0//NDATA/e",
    ],
)
def test_topics_nats_server_cannot_carry_are_refused(topic: str) -> None:
    with pytest.raises(TopicError, match="cannot pass through nats-server"):
        topic_to_subject(topic)


@pytest.mark.parametrize(
    "subject", ["", "spBv1//0..NDATA.e", "spBv1//0.g/x.NDATA.e", "a///b", "spBv1//0.g.NDATA."]
)
def test_subjects_that_no_topic_maps_to_are_refused(subject: str) -> None:
    with pytest.raises(TopicError):
        subject_to_topic(subject)


_ids = st.text(
    alphabet=st.characters(
        codec="utf-8", exclude_characters="+/#\0*> ", exclude_categories=["Zs", "Cc", "Zl", "Zp"]
    ),
    min_size=1,
    max_size=10,
)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(NODE_MESSAGES | DEVICE_MESSAGES)), _ids, _ids, _ids)
def test_any_topic_survives_the_subject_round_trip(
    message_type: MessageType, group: str, edge: str, device: str
) -> None:
    topic = Topic(message_type, group, edge, device if message_type in DEVICE_MESSAGES else None)
    assert parse_subject(topic_to_subject(topic)) == topic


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_any_text_parses_or_is_refused_as_a_topic(text: str) -> None:
    try:
        parsed = parse_topic(text)
    except TopicError:
        return
    assert str(parsed) == text
