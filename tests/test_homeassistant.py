"""Home Assistant discovery against a real Mosquitto: ids per node, the fields HA wants, forgetting a source."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from test_mqtt import Collector

from edgepose.config import MqttConfig
from edgepose.publish.homeassistant import ENTITY_KINDS, SourceDevice, discovery_messages, forget
from edgepose.publish.mqtt import MqttPublisher


def _configs(messages) -> dict[str, dict]:
    return {t: json.loads(p) for t, p, _ in messages if t.startswith("homeassistant/") and p}


def test_two_nodes_with_the_same_source_id_stay_apart(mosquitto):
    """Prefixes edgepose and site2, both with source cam0: distinct devices, unique ids and config topics."""
    sub = Collector(MqttConfig(url=mosquitto.url))
    nodes = [MqttConfig(url=mosquitto.url, homeassistant=True, topic_prefix=p) for p in ("edgepose", "site2")]
    pubs = [MqttPublisher(config, ["cam0"], model="H-4") for config in nodes]
    sub.wait(lambda s: {t.split("/")[2] for t in _configs(s.messages)} == {"edgepose_cam0", "site2_cam0"})
    per_node = {}
    for prefix, config in zip(("edgepose", "site2"), nodes):
        expected = [t for t, p in discovery_messages(SourceDevice(config, "cam0", "H-4")) if p]
        sub.wait(lambda s: set(expected) <= set(_configs(s.messages)))
        per_node[prefix] = {t: c for t, c in _configs(sub.messages).items() if t in expected}
    ids = {prefix: {c["unique_id"] for c in configs.values()} for prefix, configs in per_node.items()}
    assert ids["edgepose"].isdisjoint(ids["site2"]) and len(ids["edgepose"]) == len(per_node["edgepose"])
    devices = {prefix: {c["device"]["identifiers"][0] for c in configs.values()} for prefix, configs in per_node.items()}
    assert devices == {"edgepose": {"edgepose_cam0"}, "site2": {"site2_cam0"}}
    assert {c["availability_topic"] for c in per_node["site2"].values()} == {"site2/cam0/status"}
    # One node going away marks only its own entities unavailable.
    pubs[1].close()
    sub.wait(lambda s: s.on("site2/cam0/status")[-1:] == [b"offline"])
    assert sub.on("edgepose/cam0/status") == [b"online"]
    pubs[0].close()
    sub.close()


def test_payloads_follow_current_home_assistant():
    config = MqttConfig(homeassistant=True, stats_interval_s=10)
    dev = SourceDevice(config, "door", "edgepose-h4", configuration_url="http://nuc.local:8080")
    configs = {t: json.loads(p) for t, p in discovery_messages(dev) if p}
    by_key = {t.split("/")[-2]: (t.split("/")[1], c) for t, c in configs.items()}
    assert set(by_key) == {"people", "occupancy", "presence", "snapshot", "fps", "latency", "dropped_frames"}
    for key, (component, c) in by_key.items():
        assert "object_id" not in c and c["default_entity_id"] == f"{component}.edgepose_door_{key}"
        assert c["unique_id"] == f"edgepose_door_{key}"
        assert c["origin"]["name"] == "edgepose" and c["origin"]["sw_version"]
        device = c["device"]
        assert device["identifiers"] == ["edgepose_door"] and device["model"] == "edgepose-h4"
        assert device["sw_version"] and device["configuration_url"] == "http://nuc.local:8080"
        assert c["availability_topic"] == "edgepose/door/status"
    assert {k for k, (_, c) in by_key.items() if c.get("entity_category") == "diagnostic"} == {
        "fps", "latency", "dropped_frames"}
    assert {k: c["expire_after"] for k, (_, c) in by_key.items() if "expire_after" in c} == {
        k: 30 for k in ("people", "occupancy", "fps", "latency", "dropped_frames")}
    people = by_key["people"][1]
    assert people["unit_of_measurement"] == "people" and people["state_topic"] == "edgepose/door/people"
    assert by_key["occupancy"] == ("binary_sensor", by_key["occupancy"][1])
    assert by_key["occupancy"][1]["device_class"] == "occupancy"
    assert by_key["presence"][0] == "event"
    assert by_key["presence"][1]["event_types"] == ["person_entered", "person_left"]
    assert by_key["snapshot"] == ("camera", by_key["snapshot"][1])
    assert by_key["snapshot"][1]["topic"] == "edgepose/door/snapshot"


def test_only_what_is_published_is_announced():
    config = MqttConfig(homeassistant=True)
    quiet = SourceDevice(config, "door", snapshots=False, events=False)
    components = {t.split("/")[1] for t, p in discovery_messages(quiet) if p}
    assert components == {"sensor", "binary_sensor"}  # no camera without snapshots, no event without tracking
    assert "configuration_url" not in json.loads(discovery_messages(quiet)[-1][1])["device"]


def test_kinds_are_extensible_and_keys_unique():
    config = MqttConfig(homeassistant=True)

    def zone(dev: SourceDevice):
        return [dev.entity("sensor", "zone_till", "Till", state_topic=dev.state_topic("zones/till"))]

    messages = dict(discovery_messages(SourceDevice(config, "door"), ENTITY_KINDS + (zone,)))
    assert json.loads(messages["homeassistant/sensor/edgepose_door/zone_till/config"])["unique_id"] == (
        "edgepose_door_zone_till")
    with pytest.raises(ValueError, match="share a component and key"):
        discovery_messages(SourceDevice(config, "door"), ENTITY_KINDS + (ENTITY_KINDS[0],))


def test_values_render_with_home_assistant_templates():
    """Each value_template rendered by Jinja2 (what Home Assistant uses) on real edgepose payloads."""
    jinja2 = pytest.importorskip("jinja2")
    from edgepose.publish import event_message, stats_message

    env = jinja2.Environment()
    env.policies["json.dumps_kwargs"] = {"sort_keys": True}
    configs = {t.split("/")[-2]: json.loads(p) for t, p in discovery_messages(SourceDevice(MqttConfig(), "door")) if p}
    stats = stats_message(source_id="door", wall_time_ns=0, fps=9.5, latency_ms={"total": [10.0, 30.0]}, frames=9,
                          dropped_frames=2, people=1, model="m", device="CPU", uptime_s=1)
    left = event_message(source_id="door", kind="person_left", track_id=4, frame_index=9, wall_time_ns=0,
                         duration_s=2.5)

    def render(key: str, payload) -> str:
        value = payload if isinstance(payload, str) else json.dumps(payload)
        return env.from_string(configs[key]["value_template"]).render(value=value, value_json=json.loads(value))

    assert (render("people", "2"), render("occupancy", "2"), render("occupancy", "0")) == ("2", "ON", "OFF")
    assert (render("fps", stats), render("latency", stats), render("dropped_frames", stats)) == ("9.5", "20.0", "2")
    assert json.loads(render("presence", left)) == {"event_type": "person_left", "track_id": 4, "duration_s": 2.5}


def test_forget_clears_a_retired_source(mosquitto, tmp_path):
    config = MqttConfig(url=mosquitto.url, homeassistant=True)
    pub = MqttPublisher(config, ["door", "aisle"])
    pub.publish_stats("door", {"fps": 1.0})
    pub.publish_snapshot("door", b"\xff\xd8jpeg")
    cmd = [sys.executable, "-m", "edgepose", "homeassistant", "forget", "door", "--mqtt", mosquitto.url]
    refused = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 1 and "source door is online" in refused.stderr and "--force" in refused.stderr
    pub.close_source("door")  # door retires; aisle goes on
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    cleared = [line.removeprefix("cleared ") for line in done.stdout.splitlines()]
    assert {"edgepose/door/status", "edgepose/door/stats", "edgepose/door/snapshot"} <= set(cleared)
    assert {t for t in cleared if t.startswith("homeassistant/")} == {
        t for t, p in discovery_messages(SourceDevice(config, "door")) if p}
    late = Collector(config, client_id="late")
    aisle = [t for t, p in discovery_messages(SourceDevice(config, "aisle")) if p]
    late.wait(lambda s: s.on("aisle/status") and set(_configs(s.messages)) == set(aisle))
    assert not [t for t, _, _ in late.messages if "door" in t]  # nothing of door is retained any more
    assert forget(config, "door").cleared == []
    late.close()
    pub.close()
