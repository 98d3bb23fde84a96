"""Analytics on the wire: event messages, retained counter topics, the geometry message and Home Assistant entities.

Topics under ``<prefix>/<source_id>/``:
  ``events``               zone_entered/left, dwell, crowd(_ended), line_crossed, fall, hands_up, beside
                           person_entered/left (schema: ``schema.json`` ``$defs/analytics_event``)
  ``zones/<name>/count``   people in the zone (retained)
  ``lines/<name>/in|out``  crossings since start (retained)
  ``rules/<rule>``         ``ON`` while someone is fallen / holds the hands up (retained)
  ``analytics``            zones and lines with their geometry and figures (retained; what the dashboard draws)
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache

from edgepose.config import SourceConfig
from edgepose.publish.homeassistant import Entity, EntityKind, SourceDevice
from edgepose.publish.message import SCHEMA_VERSION, encode, iso_utc, person_entries, pose_schema, raise_first_error

RULE_ENTITIES = {"fall": ("Fall", "safety", "mdi:human-handsdown"), "hands_up": ("Hands up", None, "mdi:human-handsup")}


def analytics_event_message(*, source_id: str, event, frame_index: int, frame_size: tuple[int, int]) -> dict:
    """An ``edgepose.analytics.Event`` as the schema's analytics_event (with the pose, in frame pixels, when seen)."""
    msg: dict = {
        "schema_version": SCHEMA_VERSION,
        "source_id": source_id,
        "event": event.type,
        "rule": event.rule,
        "track_id": event.track_id,
        "frame_index": int(frame_index),
        "timestamp": iso_utc(event.end_ns if event.end_ns is not None else event.start_ns),
        "start": iso_utc(event.start_ns),
        "start_ns": int(event.start_ns),
        "end": None if event.end_ns is None else iso_utc(event.end_ns),
        "end_ns": None if event.end_ns is None else int(event.end_ns),
        "confidence": round(float(event.confidence), 4),
        "frame": {"width": int(frame_size[0]), "height": int(frame_size[1])},
    }
    for key in ("zone", "line", "direction", "count"):
        value = getattr(event, key)
        if value is not None:
            msg[key] = value
    if event.pose is not None and len(event.pose):
        p = event.pose
        msg["person"] = person_entries(p[:1], p.track_id[:1] >= 0)[0]
    return msg


def retained_topics(source: SourceConfig, counters: Mapping) -> dict[str, bytes]:
    """Sub-topic -> payload of every retained analytics value (the publisher sends the ones that changed)."""
    out = {f"zones/{name}/count": str(z["count"]).encode() for name, z in counters["zones"].items()}
    for name, c in counters["lines"].items():
        out[f"lines/{name}/in"], out[f"lines/{name}/out"] = str(c["in"]).encode(), str(c["out"]).encode()
    for rule, active in counters["rules"].items():
        out[f"rules/{rule}"] = b"ON" if active else b"OFF"
    out["analytics"] = encode(analytics_message(source, counters))
    return out


def analytics_message(source: SourceConfig, counters: Mapping) -> dict:
    """Zones and lines with their normalised geometry and current figures, and the rules' state."""
    return {
        "schema_version": SCHEMA_VERSION,
        "source_id": source.id,
        "zones": [{"name": z.name, "polygon": [list(p) for p in z.polygon], **counters["zones"][z.name]}
                  for z in source.zones],
        "lines": [{"name": ln.name, "points": [list(p) for p in ln.points], "in_side": ln.in_side,
                   **counters["lines"][ln.name]} for ln in source.lines],
        "rules": dict(counters["rules"]),
    }


def analytics_entities(dev: SourceDevice, source: SourceConfig) -> list[Entity]:
    """Home Assistant entities for a source's zones, lines and enabled pose rules, on the source's device."""
    base = dev.state_topic("")
    entities: list[Entity] = []
    for z in source.zones:
        state = f"{base}zones/{z.name}/count"
        entities.append(dev.entity("binary_sensor", f"zone_{z.name}_occupied", f"{z.name} occupied",
                                   state_topic=state, device_class="occupancy",
                                   value_template="{{ 'ON' if value | int > 0 else 'OFF' }}"))
        entities.append(dev.entity("sensor", f"zone_{z.name}_count", f"{z.name} people", state_topic=state,
                                   value_template="{{ value | int }}", unit_of_measurement="people",
                                   state_class="measurement", icon="mdi:account-group"))
    for ln in source.lines:
        for direction in ("in", "out"):
            entities.append(dev.entity("sensor", f"line_{ln.name}_{direction}", f"{ln.name} {direction}",
                                       state_topic=f"{base}lines/{ln.name}/{direction}",
                                       value_template="{{ value | int }}", state_class="total_increasing",
                                       icon="mdi:transfer-right" if direction == "in" else "mdi:transfer-left"))
    for rule, (label, device_class, icon) in RULE_ENTITIES.items():
        if getattr(source.rules, rule).enabled:
            fields = {"device_class": device_class} if device_class else {}
            entities.append(dev.entity("binary_sensor", f"rule_{rule}", label, state_topic=f"{base}rules/{rule}",
                                       payload_on="ON", payload_off="OFF", icon=icon, **fields))
    return entities


def analytics_kind(source: SourceConfig) -> EntityKind:
    """``analytics_entities`` of ``source`` as an entity kind for ``homeassistant.discovery_messages``."""
    return lambda dev: analytics_entities(dev, source)


@lru_cache(maxsize=1)
def _event_validator():
    import jsonschema

    schema = pose_schema()
    event_schema = {"$schema": schema["$schema"], "$defs": schema["$defs"], "$ref": "#/$defs/analytics_event"}
    return jsonschema.Draft202012Validator(event_schema, format_checker=jsonschema.FormatChecker())


def validate_analytics_event(msg: Mapping) -> None:
    """Raise ValueError naming the first offending field if ``msg`` is not a schema.json analytics_event."""
    raise_first_error(_event_validator(), msg, "analytics event")
