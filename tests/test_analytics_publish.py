"""Analytics config checks (line-numbered), event messages against schema.json, retained counters and Home Assistant
entities through a real Mosquitto, and the Prometheus figures."""

from __future__ import annotations

import json
import textwrap

import numpy as np
import pytest
from click.testing import CliRunner
from test_mqtt import Collector

from edgepose.analytics import Analytics, Event
from edgepose.cli import cli
from edgepose.config import ConfigError, MqttConfig, SourceConfig, load_config
from edgepose.publish.analytics import (
    analytics_entities,
    analytics_kind,
    analytics_event_message,
    retained_topics,
    validate_analytics_event,
)
from edgepose.publish.metrics import render_metrics
from edgepose.publish.homeassistant import ENTITY_KINDS, SourceDevice, discovery_messages
from edgepose.publish.mqtt import MqttPublisher
from edgepose.types import Poses

SHOP = textwrap.dedent(
    """\
    sources:
      - id: shop
        source: test
        zones:
          - name: counter
            polygon: [[0.10, 0.50], [0.40, 0.50], [0.40, 0.90], [0.10, 0.90]]
            dwell_s: 120
        lines:
          - name: door
            points: [[0.5, 0.0], [0.5, 1.0]]
        rules: {fall: true, hands_up: false}
    """
)


def _source(rules=None) -> SourceConfig:
    return SourceConfig(id="shop", zones=[{"name": "counter", "polygon": [[0.1, 0.5], [0.4, 0.5], [0.4, 0.9]]}],
                        lines=[{"name": "door", "points": [[0.5, 0.0], [0.5, 1.0]]}], rules=rules or {"fall": True})


# ---------------------------------------------------------------------------------------------- config


def test_the_issue_example_is_valid_and_minimal_lines_get_defaults(tmp_path):
    (tmp_path / "shop.yaml").write_text(SHOP)
    src = load_config(tmp_path / "shop.yaml", environ={}).sources[0]
    assert src.zones[0].dwell_s == 120 and src.zones[0].point == "ankles" and src.zones[0].crowd is None
    assert (src.lines[0].in_side, src.lines[0].point, src.lines[0].hysteresis) == ("right", "ankles", 0.03)
    assert src.rules.fall.enabled and not src.rules.hands_up.enabled and src.rules.fall.lying_s == 2.0


@pytest.mark.parametrize("replace, line, message", [
    ("[0.40, 0.90], [0.10, 0.90]", 6, "sources[0].zones[0].polygon: polygon edges 2 and 4 cross (self-intersecting)"),
    ("[0.40, 0.50], [0.40, 0.90]", 6, "sources[0].zones[0].polygon[1][0]: Input should be less than or equal to 1"),
    ("[[0.5, 0.0], [0.5, 1.0]]", 10, "sources[0].lines[0].points: the line's two points are the same"),
    ("hands_up: false", 11, "sources[0].rules.hands_up: expected true, false or a mapping of the rule's parameters"),
])
def test_config_check_reports_geometry_errors_with_lines(tmp_path, replace, line, message):
    broken = {
        "[0.40, 0.90], [0.10, 0.90]": "[0.10, 0.90], [0.40, 0.90]",  # corners out of order: a bow tie
        "[0.40, 0.50], [0.40, 0.90]": "[1.40, 0.50], [0.40, 0.90]",
        "[[0.5, 0.0], [0.5, 1.0]]": "[[0.5, 0.5], [0.5, 0.5]]",
        "hands_up: false": "hands_up: maybe",
    }[replace]
    path = tmp_path / "shop.yaml"
    path.write_text(SHOP.replace(replace, broken))
    result = CliRunner().invoke(cli, ["config", "check", str(path)])
    assert result.exit_code == 1
    assert result.output.startswith(f"{path}:{line}: {message}"), result.output


def test_analytics_without_tracking_is_refused(tmp_path):
    path = tmp_path / "shop.yaml"
    path.write_text(SHOP + "tracking: {enabled: false}\n")
    with pytest.raises(ConfigError, match=r"shop.yaml:12: tracking.enabled: zones, lines and pose rules follow people "
                                          r"by track id; set it to true"):
        load_config(path, environ={})


def test_duplicate_names_point_at_the_repeated_item(tmp_path):
    zone = "      - name: counter\n        polygon: [[0, 0], [1, 0], [1, 1]]\n"
    text = SHOP.replace("    lines:\n", zone + "    lines:\n")
    text = text.replace("    rules:", "      - name: door\n        points: [[0, 0.5], [1, 0.5]]\n    rules:")
    path = tmp_path / "dup.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(path, environ={})
    assert sorted(err.value.problems) == [
        f"{path}:13: sources[0].lines[1].name: line name 'door' is already used by item [0]; names must be unique",
        f"{path}:8: sources[0].zones[1].name: zone name 'counter' is already used by item [0]; names must be unique",
    ]


# ---------------------------------------------------------------------------------------------- messages


def _pose() -> Poses:
    rng = np.random.default_rng(0)
    return Poses(rng.uniform(0, 300, (1, 17, 2)), rng.uniform(0.3, 1, (1, 17)), [0.8], [4])


def test_event_messages_follow_the_schema():
    t = 1_700_000_000 * 10**9
    events = [
        Event("line_crossed", "line", 4, t, None, 0.9, line="door", direction="in", pose=_pose()),
        Event("zone_left", "zone", 4, t, t + 5 * 10**9, 1.0, zone="counter", count=0),
        Event("crowd", "crowd", None, t, None, 1.0, zone="counter", count=3),
        Event("fall", "fall", 4, t, None, 0.7, pose=_pose()),
    ]
    for event in events:
        msg = analytics_event_message(source_id="shop", event=event, frame_index=12, frame_size=(640, 360))
        validate_analytics_event(json.loads(json.dumps(msg)))
    assert msg["person"]["track_id"] == 4 and set(msg["person"]["keypoints"]) >= {"nose", "left_hip"}
    left = analytics_event_message(source_id="shop", event=events[1], frame_index=12, frame_size=(640, 360))
    assert left["end_ns"] - left["start_ns"] == 5 * 10**9 and left["timestamp"] == left["end"]
    with pytest.raises(ValueError, match="analytics event invalid at direction"):
        validate_analytics_event({**msg, "direction": "sideways"})
    with pytest.raises(ValueError, match="analytics event invalid at \\(message\\): 'rule' is a required"):
        validate_analytics_event({k: v for k, v in msg.items() if k != "rule"})


def test_retained_topics_and_metrics_carry_the_same_figures():
    src = _source()
    a = Analytics(src.zones, src.lines, src.rules)
    counters = a.counters()
    counters["lines"]["door"]["in"] = 3  # as after three crossings
    topics = retained_topics(src, counters)
    assert {k: v for k, v in topics.items() if k != "analytics"} == {
        "zones/counter/count": b"0", "lines/door/in": b"3", "lines/door/out": b"0", "rules/fall": b"OFF"}
    geometry = json.loads(topics["analytics"])
    assert geometry["lines"][0] == {"name": "door", "points": [[0.5, 0.0], [0.5, 1.0]], "in_side": "right",
                                    "in": 3, "out": 0}
    text = render_metrics({"shop": {"fps": 9.0, "analytics": counters}}, True)
    assert 'edgepose_line_crossings_total{source="shop",line="door",direction="in"} 3' in text
    assert 'edgepose_zone_people{source="shop",zone="counter"} 0' in text
    assert 'edgepose_rule_active{source="shop",rule="fall"} 0' in text
    assert 'edgepose_analytics_events_total{source="shop",event="fall"} 0' in text
    assert "edgepose_analytics_" in text and "edgepose_analytics_zones" not in text  # names are labels


# ---------------------------------------------------------------------------------------------- Home Assistant


def _discovery(config, src) -> list[tuple[str, str]]:
    return discovery_messages(SourceDevice(config, "shop", "H-4"), ENTITY_KINDS + (analytics_kind(src),))


def test_discovery_entities_for_zones_lines_and_rules():
    config = MqttConfig(homeassistant=True)
    src = _source(rules={"fall": True, "hands_up": True})
    entries = [(t, p) for t, p in _discovery(config, src) if p]
    payloads = {topic: json.loads(p) for topic, p in entries}
    assert len(payloads) == len(entries)  # one config topic per entity
    ids = [p["unique_id"] for p in payloads.values()]
    assert len(set(ids)) == len(ids)
    device = payloads["homeassistant/sensor/edgepose_shop/people/config"]["device"]
    mine = {t: p for t, p in payloads.items() if "/zone_" in t or "/line_" in t or "/rule_" in t}
    assert sorted(mine) == sorted([
        "homeassistant/binary_sensor/edgepose_shop/zone_counter_occupied/config",
        "homeassistant/sensor/edgepose_shop/zone_counter_count/config",
        "homeassistant/sensor/edgepose_shop/line_door_in/config",
        "homeassistant/sensor/edgepose_shop/line_door_out/config",
        "homeassistant/binary_sensor/edgepose_shop/rule_fall/config",
        "homeassistant/binary_sensor/edgepose_shop/rule_hands_up/config",
    ])
    for p in mine.values():
        assert p["device"] == device and p["availability_topic"] == "edgepose/shop/status"
        assert (p["payload_available"], p["payload_not_available"]) == ("online", "offline")
        assert p["state_topic"].startswith("edgepose/shop/") and "object_id" not in p and p["origin"]
    occupied = mine["homeassistant/binary_sensor/edgepose_shop/zone_counter_occupied/config"]
    assert occupied["state_topic"] == "edgepose/shop/zones/counter/count" and occupied["device_class"] == "occupancy"
    assert mine["homeassistant/sensor/edgepose_shop/line_door_in/config"]["state_class"] == "total_increasing"
    assert mine["homeassistant/binary_sensor/edgepose_shop/rule_fall/config"]["payload_on"] == "ON"
    # A disabled rule has no entity; a source without analytics adds nothing.
    assert analytics_entities(SourceDevice(config, "shop"), SourceConfig(id="shop")) == []
    assert not any("hands_up" in t for t, _ in _discovery(config, _source()))


def test_publisher_sends_discovery_and_only_changed_counters(mosquitto):
    config = MqttConfig(url=mosquitto.url, homeassistant=True)
    src = _source()
    sub = Collector(config)
    a = Analytics(src.zones, src.lines, src.rules)
    with MqttPublisher(config, ["shop"], discovery={"shop": _discovery(config, src)}) as pub:
        counters = a.counters()
        pub.publish_analytics("shop", retained_topics(src, counters))
        counters["lines"]["door"]["out"] = 1
        pub.publish_analytics("shop", retained_topics(src, counters))
        sub.wait(lambda s: s.on("shop/lines/door/out") == [b"0", b"1"] and len(s.on("shop/analytics")) == 2)
    assert sub.on("shop/lines/door/in") == [b"0"] and sub.on("shop/zones/counter/count") == [b"0"]
    assert sub.on("shop/rules/fall") == [b"OFF"]
    discovery = [t for t, p, _ in sub.messages if t.startswith("homeassistant/") and p]
    assert "homeassistant/binary_sensor/edgepose_shop/zone_counter_occupied/config" in discovery
    standard = [t for t, p in discovery_messages(SourceDevice(config, "shop")) if p]
    assert len(discovery) == len(standard) + 5  # zone x2, line x2, fall
    sub.close()


def test_watch_shows_where_an_analytics_event_happened():
    from edgepose.publish.watch import format_message

    event = Event("line_crossed", "line", 4, 1_700_000_000 * 10**9, None, 0.9, line="door", direction="in")
    msg = analytics_event_message(source_id="shop", event=event, frame_index=12, frame_size=(640, 360))
    assert format_message("edgepose/shop/events", json.dumps(msg).encode()) == (
        "shop events  line_crossed  track 4  frame 12  line door  direction in")
