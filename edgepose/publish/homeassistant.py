"""Home Assistant MQTT discovery: one device per source, its entities, and removing a retired source.

Each source is one Home Assistant device. Its id is ``<node>_<source_id>``, where the node is the MQTT topic prefix
made id-safe (``edgepose`` by default), so two edgepose nodes with different prefixes never share a device even when
their sources have the same id. Each entity's config is retained on
``<discovery_prefix>/<component>/<node>_<source_id>/<key>/config``, its ``unique_id`` is ``<node>_<source_id>_<key>``
and its suggested entity id (``default_entity_id``) is ``<component>.<unique_id>``. Every config carries the device
block (model, ``sw_version``, ``configuration_url`` when the dashboard's URL is configured), an ``origin`` block, and
the source's ``status`` topic as availability, so a source that stops or a process that dies shows unavailable.

The entities, one builder function per kind in ``ENTITY_KINDS``:

  people     sensor, the people count (``<prefix>/<id>/people``; unit ``people``)
  occupancy  binary_sensor, on while anyone is counted (same topic)
  presence   event, person_entered / person_left with the track id (``<prefix>/<id>/events``)
  snapshot   camera, the retained JPEG (``<prefix>/<id>/snapshot``), when snapshots are on
  fps, latency, dropped_frames
             diagnostic sensors from ``<prefix>/<id>/stats``

Sensors expire (``expire_after``) three stats intervals after their last message; the service sends stats, and the
people count again with them, every ``mqtt.stats_interval_s``, so a frozen process shows unavailable values rather
than its last ones. A new kind of entity is a function ``(SourceDevice) -> list[Entity]`` (use
``SourceDevice.entity``) passed in ``kinds``; it must only announce topics edgepose publishes.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from edgepose import __version__
from edgepose.config import MqttConfig
from edgepose.errors import EdgeposeError
from edgepose.publish.message import EVENT_KINDS

ONLINE, OFFLINE = "online", "offline"
ORIGIN = {"name": "edgepose", "sw_version": __version__}
# Before node-scoped ids, configs lived on <discovery_prefix>/sensor/edgepose_<id>_<key>/config; cleared on start so
# an upgraded node does not leave a second config with the same unique_id behind.
LEGACY_KEYS = ("people", "fps")


def node_id(config: MqttConfig) -> str:
    """The node part of device and entity ids: the topic prefix with every character outside [A-Za-z0-9_-] as ``_``."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", config.topic_prefix)


@dataclass(frozen=True)
class Entity:
    """One discovery config: Home Assistant component (sensor, binary_sensor...), key within the device, payload."""

    component: str
    key: str
    payload: dict


@dataclass(frozen=True)
class SourceDevice:
    """What the entities of one source share.

    snapshots / events: whether this source publishes snapshots / entered-left events (tracking on), so that only
    published topics are announced. configuration_url: the dashboard's URL, linked from the device page.
    """

    mqtt: MqttConfig
    source_id: str
    model: str = "EfficientHRNet"
    snapshots: bool = True
    events: bool = True
    configuration_url: str | None = None

    @property
    def id(self) -> str:
        return f"{node_id(self.mqtt)}_{self.source_id}"

    @property
    def expire_after_s(self) -> int:
        return max(1, math.ceil(3 * self.mqtt.stats_interval_s))

    def state_topic(self, kind: str) -> str:
        return f"{self.mqtt.topic_prefix}/{self.source_id}/{kind}"

    def device(self) -> dict:
        default_node = self.mqtt.topic_prefix == MqttConfig().topic_prefix
        device = {
            "identifiers": [self.id],
            "name": f"edgepose {self.source_id}" if default_node else f"edgepose {self.mqtt.topic_prefix} {self.source_id}",
            "manufacturer": "edgepose",
            "model": self.model,
            "sw_version": __version__,
        }
        if self.configuration_url:
            device["configuration_url"] = self.configuration_url
        return device

    def entity(self, component: str, key: str, name: str, **fields) -> Entity:
        """An entity of this device with ids, availability, device and origin filled in; ``fields`` add the rest."""
        unique_id = f"{self.id}_{key}"
        payload = {
            "name": name,
            "unique_id": unique_id,
            "default_entity_id": f"{component}.{unique_id}",
            "availability_topic": self.state_topic("status"),
            "payload_available": ONLINE,
            "payload_not_available": OFFLINE,
            "device": self.device(),
            "origin": ORIGIN,
            **fields,
        }
        return Entity(component, key, payload)

    def config_topic(self, entity: Entity) -> str:
        return f"{self.mqtt.homeassistant_prefix}/{entity.component}/{self.id}/{entity.key}/config"


# --- entity kinds ------------------------------------------------------------------------------------------------


def people_entities(dev: SourceDevice) -> list[Entity]:
    """The people count and occupancy, both from the retained ``people`` topic."""
    topic = dev.state_topic("people")
    return [
        dev.entity("sensor", "people", "People", state_topic=topic, value_template="{{ value | int }}",
                   unit_of_measurement="people", state_class="measurement", icon="mdi:account-group",
                   expire_after=dev.expire_after_s),
        dev.entity("binary_sensor", "occupancy", "Occupancy", state_topic=topic, device_class="occupancy",
                   value_template="{{ 'ON' if value | int > 0 else 'OFF' }}", expire_after=dev.expire_after_s),
    ]


def presence_event_entities(dev: SourceDevice) -> list[Entity]:
    """person_entered / person_left as an event entity (attributes: track_id; duration_s on person_left)."""
    if not dev.events:
        return []
    template = ("{{ {'event_type': value_json.event, 'track_id': value_json.track_id, "
                "'duration_s': value_json.duration_s | default(none)} | tojson }}")
    return [dev.entity("event", "presence", "Presence", state_topic=dev.state_topic("events"),
                       event_types=list(EVENT_KINDS), value_template=template, qos=1, icon="mdi:walk")]


def snapshot_entities(dev: SourceDevice) -> list[Entity]:
    """The retained JPEG snapshot as a camera."""
    if not dev.snapshots:
        return []
    return [dev.entity("camera", "snapshot", "Snapshot", topic=dev.state_topic("snapshot"))]


def diagnostic_entities(dev: SourceDevice) -> list[Entity]:
    """Frame rate, capture-to-publish latency and dropped frames from ``stats``."""
    common = {"state_topic": dev.state_topic("stats"), "entity_category": "diagnostic",
              "expire_after": dev.expire_after_s}
    return [
        dev.entity("sensor", "fps", "FPS", value_template="{{ value_json.fps }}", unit_of_measurement="fps",
                   state_class="measurement", icon="mdi:speedometer", **common),
        dev.entity("sensor", "latency", "Latency", value_template="{{ value_json.latency_ms.total.p50 }}",
                   unit_of_measurement="ms", device_class="duration", state_class="measurement", **common),
        dev.entity("sensor", "dropped_frames", "Dropped frames", value_template="{{ value_json.dropped_frames }}",
                   state_class="total_increasing", icon="mdi:filmstrip-off", **common),
    ]


EntityKind = Callable[[SourceDevice], list[Entity]]
ENTITY_KINDS: tuple[EntityKind, ...] = (people_entities, presence_event_entities, snapshot_entities,
                                        diagnostic_entities)


def discovery_messages(dev: SourceDevice, kinds: Iterable[EntityKind] = ENTITY_KINDS) -> list[tuple[str, str]]:
    """(topic, payload) pairs to publish retained for one source: legacy configs cleared, then every entity."""
    legacy = [(f"{dev.mqtt.homeassistant_prefix}/sensor/edgepose_{dev.source_id}_{key}/config", "")
              for key in LEGACY_KEYS]
    entities = [entity for kind in kinds for entity in kind(dev)]
    keys = [(e.component, e.key) for e in entities]
    if len(set(keys)) != len(keys):
        raise ValueError(f"two entities of source {dev.source_id} share a component and key: {keys}")
    return legacy + [(dev.config_topic(e), json.dumps(e.payload)) for e in entities]


# --- removing a retired source -------------------------------------------------------------------------------------


@dataclass
class ForgetResult:
    cleared: list[str]
    status: str | None  # the source's retained status when we looked (None: none)


def retained_topics(config: MqttConfig, patterns: Sequence[str], *, settle_s: float = 0.5,
                    timeout_s: float = 10.0) -> dict[str, bytes]:
    """The retained messages the broker holds under ``patterns`` (topic -> payload).

    The broker sends retained messages right after SUBACK; collection ends once ``settle_s`` passes without one.
    """
    from edgepose.publish.mqtt import connect_client, make_client

    found: dict[str, bytes] = {}
    last = [time.monotonic()]
    subscribed = threading.Event()
    client = make_client(config, f"edgepose-forget-{threading.get_ident() % 100000}")

    def on_message(client, userdata, msg):
        if msg.retain and msg.payload:
            found[msg.topic] = msg.payload
        last[0] = time.monotonic()

    def on_subscribe(*args):
        last[0] = time.monotonic()
        subscribed.set()

    client.on_message = on_message
    client.on_subscribe = on_subscribe
    connect_client(client, config, lambda c, rc: c.subscribe([(p, 1) for p in patterns]))
    try:
        subscribed.wait(timeout_s)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() - last[0] < settle_s and time.monotonic() < deadline:
            time.sleep(0.05)
        return dict(found)
    finally:
        client.disconnect()
        client.loop_stop()


def forget(config: MqttConfig, source_id: str, *, force: bool = False) -> ForgetResult:
    """Clear a retired source's retained discovery configs and its retained topics (status, people, stats...).

    Refuses (EdgeposeError) while the source's status says ``online``, unless ``force``: a running source would
    announce itself again on its next reconnect, and meanwhile Home Assistant would lose its entities.
    """
    from edgepose.publish.mqtt import connect_client, make_client

    dev = SourceDevice(config, source_id)
    status_topic = dev.state_topic("status")
    patterns = [f"{config.homeassistant_prefix}/+/{dev.id}/+/config", f"{config.topic_prefix}/{source_id}/#"]
    patterns += [topic for topic, _ in discovery_messages(dev, kinds=())]  # legacy config topics
    found = retained_topics(config, patterns)
    status = found[status_topic].decode(errors="replace") if status_topic in found else None
    if status == ONLINE and not force:
        raise EdgeposeError(f"source {source_id} is online ({status_topic}); stop it first, or pass --force")
    client = make_client(config, f"edgepose-forget-{source_id}"[:60])
    connect_client(client, config)
    try:
        infos = [client.publish(topic, b"", qos=1, retain=True) for topic in sorted(found)]
        for info in infos:
            info.wait_for_publish(5)
    finally:
        client.disconnect()
        client.loop_stop()
    return ForgetResult(sorted(found), status)
