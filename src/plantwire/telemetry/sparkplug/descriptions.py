"""What a birth says of each metric beyond its name, alias and type: its unit and its
description (no I/O).

Eclipse Sparkplug 3.0.0 names one property key, ``Quality`` ("Quality Codes"); the rest of a
metric's ``properties`` (a "PropertySet") are free key/value pairs, and units and
descriptions travel in them by convention. plantwire reads:

* **unit**: the property ``engUnit`` (the name of Ignition's tag property, which MQTT
  Transmission sends; Eclipse Tahu's examples use it too) or ``Engineering Units``;
* **description**: the property ``description`` or ``Documentation`` (Ignition's tag
  documentation), else the metric's ``MetaData.description`` (the specification's free-form
  description of a metric).

Keys are matched ignoring case, in the order given; only a String or Text value counts (an
``engUnit`` of another type is as if absent). A metric with none of them has ``""``."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from plantwire.telemetry.sparkplug.model import DataType, Metric, PropertySet

__all__ = ["DESCRIPTION_KEYS", "UNIT_KEYS", "MetricDescription", "describe"]

UNIT_KEYS = ("engUnit", "Engineering Units")
DESCRIPTION_KEYS = ("description", "Documentation")
_UNIT = tuple(key.casefold() for key in UNIT_KEYS)
_DESCRIPTION = tuple(key.casefold() for key in DESCRIPTION_KEYS)


@dataclass(frozen=True, slots=True)
class MetricDescription:
    """One metric of a birth as a registry would describe it."""

    name: str
    datatype: DataType
    unit: str = ""
    description: str = ""


def describe(metrics: Iterable[Metric]) -> list[MetricDescription]:
    """The descriptions of a birth's metrics, in the birth's order (a metric without a name,
    which no birth may have, is left out)."""
    described = []
    for metric in metrics:
        if metric.name is None:
            continue
        unit = description = ""
        if metric.properties:
            texts = _texts(metric.properties)
            unit = _first(texts, _UNIT) or ""
            description = _first(texts, _DESCRIPTION) or ""
        if not description and metric.metadata is not None:
            description = metric.metadata.description or ""
        described.append(MetricDescription(metric.name, metric.datatype, unit, description))
    return described


def _texts(properties: PropertySet) -> dict[str, str]:
    """The string-valued properties by case-folded key (the first of a key wins)."""
    texts: dict[str, str] = {}
    for key, prop in properties.items():
        if isinstance(prop.value, str):
            texts.setdefault(key.casefold(), prop.value)
    return texts


def _first(texts: dict[str, str], keys: tuple[str, ...]) -> str | None:
    for key in keys:
        if key in texts:
            return texts[key]
    return None
