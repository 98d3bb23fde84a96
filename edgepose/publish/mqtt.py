"""MQTT publishing on paho-mqtt 2.x: topics, availability (Last Will), buffering across outages, TLS, HA discovery.

Topics, for each source ``<prefix>/<source_id>/``:
  ``poses``    one message per frame (QoS ``qos_poses``, default 0: dropped and counted while disconnected)
  ``events``   person entered/left (QoS ``qos_events``, buffered while disconnected)
  ``stats``    periodic figures (retained; the newest is kept while disconnected)
  ``people``   people count (``count`` of the poses message), published when it changes and again with every
               stats message (retained; what Home Assistant shows)
  ``snapshot`` annotated JPEG (retained; the newest is kept while disconnected)
  ``status``   ``online`` / ``offline`` (retained; ``offline`` is the Last Will)
  ``zones/...``, ``lines/...``, ``rules/...``, ``analytics``: zone, line and rule figures (retained; see
               ``edgepose.publish.analytics``)

Several sources: each source gets its own MQTT connection (client id ``<client_id>-<source_id>``). MQTT allows one
Last Will per connection, so this is what lets every ``<prefix>/<id>/status`` turn ``offline`` when the process
dies, and lets Home Assistant mark exactly that camera's sensors unavailable. A few connections per process cost
the broker nothing noticeable.

Nothing here blocks the caller on the network: paho's network thread (``loop_start``) does all I/O and reconnects
with exponential backoff. paho's own queue drops the *newest* message when full, so QoS>=1 messages produced
while disconnected wait in our own bounded deque that drops the *oldest* first, and are flushed, in order, on
reconnect.

Memory stays bounded on a slow but connected link too: paho holds at most ``max_queued_messages`` QoS>=1
messages (``max_queued_messages_set``), a pose is dropped (and counted) when that many packets already wait
for the socket, and a snapshot is only handed over when nothing waits at all: until then the newest one waits
in a one-JPEG slot (a newer one replaces it, counted as dropped) and goes out once paho has written its queue,
so a large JPEG never queues behind a slow link. Drops are counted per kind.
"""

from __future__ import annotations

import logging
import secrets
import ssl
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.packettypes import PacketTypes

from edgepose.config import MqttConfig
from edgepose.errors import BrokerError
from edgepose.publish.homeassistant import OFFLINE, ONLINE, SourceDevice, discovery_messages
from edgepose.publish.message import encode

log = logging.getLogger(__name__)


def topic(config: MqttConfig, source_id: str, kind: str) -> str:
    """``<prefix>/<source_id>/<kind>``."""
    return f"{config.topic_prefix}/{source_id}/{kind}"


def make_client(config: MqttConfig, client_id: str) -> mqtt.Client:
    """A paho client with protocol, credentials and TLS from ``config`` applied (not yet connected)."""
    v5 = config.protocol == "v5"
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
        clean_session=None if v5 else True,
    )
    client.connect_timeout = config.connect_timeout_s
    client.reconnect_delay_set(config.reconnect_min_delay_s, config.reconnect_max_delay_s)
    if config.username is not None:
        client.username_pw_set(config.username, config.resolved_password())
    if config.use_tls:
        tls = config.tls
        for name, path in (("ca_file", tls.ca_file), ("cert_file", tls.cert_file), ("key_file", tls.key_file)):
            if path is not None and not path.is_file():
                raise BrokerError(f"mqtt.tls.{name} {path} does not exist; fix the path in the config")
        try:
            client.tls_set(
                ca_certs=str(tls.ca_file) if tls.ca_file else None,
                certfile=str(tls.cert_file) if tls.cert_file else None,
                keyfile=str(tls.key_file) if tls.key_file else None,
                cert_reqs=ssl.CERT_NONE if tls.insecure else ssl.CERT_REQUIRED,
            )
        except (ssl.SSLError, ValueError) as exc:
            raise BrokerError(f"cannot load the TLS files of mqtt.tls: {exc}; check they are PEM and match") from None
        client.tls_insecure_set(tls.insecure)
    return client


def _describe_connect_error(exc: BaseException, config: MqttConfig) -> str:
    where = f"MQTT broker {config.host}:{config.port}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (
            f"{where}: TLS certificate not trusted ({exc.verify_message}); set mqtt.tls.ca_file to the CA that "
            "signed the broker's certificate"
        )
    if isinstance(exc, ssl.SSLError):
        return f"{where}: TLS handshake failed ({exc.reason or exc}); check the broker's TLS port and mqtt.tls"
    if isinstance(exc, ConnectionRefusedError):
        return f"{where} refused the connection; start the broker (e.g. `mosquitto -d`) or pass --mqtt URL"
    if isinstance(exc, TimeoutError):
        return f"{where} did not answer within {config.connect_timeout_s:g} s; check host, port and firewall"
    if isinstance(exc, OSError):
        return f"{where} unreachable ({exc.strerror or exc}); check the host name and network, or pass --mqtt URL"
    return f"{where}: {exc}"


def connect_client(client: mqtt.Client, config: MqttConfig, on_connect=None) -> None:
    """Connect, start the network thread and wait for the broker's answer; BrokerError (one line) if refused.

    on_connect(client, reason_code) runs on every successful (re)connection, in paho's thread.
    """
    done = threading.Event()
    result: dict = {}
    on_disconnect = client.on_disconnect

    def _on_connect(client, userdata, flags, reason_code, properties):
        if reason_code.is_failure:
            result.setdefault("refused", reason_code)
        else:
            result["connected"] = True
            if on_connect is not None:
                on_connect(client, reason_code)
        done.set()

    def _on_first_disconnect(client, *args):
        if not done.is_set():  # closed before any CONNACK: TLS rejected us after the handshake, or not MQTT
            result.setdefault("closed", True)
            done.set()
        if on_disconnect is not None:
            on_disconnect(client, *args)

    client.on_connect = _on_connect
    client.on_disconnect = _on_first_disconnect
    props = None
    if config.protocol == "v5":
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 0
    try:
        client.connect(config.host, config.port, keepalive=config.keepalive, properties=props)
    except (OSError, ValueError) as exc:
        raise BrokerError(_describe_connect_error(exc, config)) from None
    client.loop_start()
    done.wait(config.connect_timeout_s)
    if result.get("connected"):
        client.on_disconnect = on_disconnect
        return
    message = _describe_no_session(dict(result), config)  # before our own disconnect adds "closed"
    client.disconnect()  # first, so the network thread stops retrying and loop_stop returns at once
    client.loop_stop()
    client.on_disconnect = on_disconnect
    raise BrokerError(message)


def _describe_no_session(result: dict, config: MqttConfig) -> str:
    where = f"MQTT broker {config.host}:{config.port}"
    refused = result.get("refused")
    if refused is not None and refused.getName() in ("Not authorized", "Bad user name or password"):
        user = f"user {config.username!r}" if config.username else "anonymous access"
        return (
            f"{where} rejected {user} ({refused.getName()}); check mqtt.username and the password "
            "(mqtt.password_file or EDGEPOSE_MQTT__PASSWORD)"
        )
    if refused is not None:
        return f"{where} refused the connection: {refused.getName()}"
    if result.get("closed") and config.use_tls and config.tls.cert_file is None:
        return (
            f"{where} closed the connection before answering; if it requires a client certificate set "
            "mqtt.tls.cert_file and mqtt.tls.key_file"
        )
    if result.get("closed"):
        return f"{where} closed the connection before answering; check the broker's log and that this is its MQTT port"
    return f"{where} accepted TCP but sent no MQTT answer; is it an MQTT port (TLS: mqtts://)?"


class _SourceChannel:
    """One source's connection: its will, its outage buffer, its counters."""

    def __init__(self, config: MqttConfig, source_id: str, client_id: str, discovery: list[tuple[str, str]]):
        self.config = config
        self.source_id = source_id
        self.status_topic = topic(config, source_id, "status")
        self.discovery = discovery
        self.client = make_client(config, client_id)
        self.client.will_set(self.status_topic, OFFLINE, qos=1, retain=True)
        self.client.max_queued_messages_set(config.max_queued_messages)
        self.client.on_disconnect = self._on_disconnect
        self.state = ONLINE  # what status says while connected: online, or reconnecting while the source is away
        # Re-entrant: paho may run on_publish on the network thread while that thread holds it (_on_connect).
        self.lock = threading.RLock()
        self.pending_snapshot: tuple[str, bytes] | None = None  # the newest JPEG waiting for an idle link
        self.client.on_publish = self._on_publish
        self.connected = False
        self.buffer: deque[tuple[str, bytes, int, str]] = deque()  # topic, payload, qos, kind
        self.latest_retained: dict[str, bytes] = {}  # topic -> newest payload, sent on reconnect
        self.unacked: deque[mqtt.MQTTMessageInfo] = deque()
        self.last_people: int | None = None
        self.last_analytics: dict[str, bytes] = {}
        self.closed = False
        self.counters = {
            "poses_sent": 0,
            "poses_dropped": 0,
            "events_sent": 0,
            "events_dropped": 0,
            "snapshots_sent": 0,
            "snapshots_dropped": 0,
            "connects": 0,
            "disconnects": 0,
        }

    def connect(self) -> None:
        connect_client(self.client, self.config, self._on_connect)

    # paho's network thread -----------------------------------------------------------------------------
    def _on_connect(self, client, reason_code) -> None:
        with self.lock:
            self.counters["connects"] += 1
            self._send(self.status_topic, self.state.encode(), 1, True)
            for disc_topic, payload in self.discovery:
                self._send(disc_topic, payload.encode(), 1, True)
            # Buffered messages first, in order, then the newest retained values, before new messages.
            while self.buffer:
                topic_, payload, qos, kind = self.buffer.popleft()
                self._send(topic_, payload, qos, False)
                self.counters[f"{kind}_sent"] += 1
            for retained_topic, payload in self.latest_retained.items():
                self._send(retained_topic, payload, 0, True)
            self.latest_retained.clear()
            self.connected = True
        if self.counters["connects"] > 1:
            log.warning("MQTT source %s reconnected to %s:%s", self.source_id, self.config.host, self.config.port)

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        # A packet went out: if nothing else waits now, the waiting snapshot may go. paho calls this for QoS 1
        # acks while holding its message lock, and a caller holding ours may be waiting for that lock inside
        # client.publish: never wait here. If the caller has ours, the next packet out tries again.
        if self.pending_snapshot is not None and self.lock.acquire(blocking=False):
            try:
                self._send_pending_snapshot()
            finally:
                self.lock.release()

    def _send_pending_snapshot(self) -> None:
        if self.pending_snapshot is not None and self.connected and self.unsent_packets() == 0:
            topic_, jpeg = self.pending_snapshot
            self.pending_snapshot = None
            self.counters["snapshots_sent" if self._send(topic_, jpeg, 0, True) else "snapshots_dropped"] += 1

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        with self.lock:
            was_connected, self.connected = self.connected, False
            self.counters["disconnects"] += was_connected
        if was_connected:
            log.warning("MQTT source %s lost the broker (%s); buffering events", self.source_id, reason_code)

    # caller threads -------------------------------------------------------------------------------------
    def _send(self, topic_: str, payload: bytes, qos: int, retain: bool) -> bool:
        """Hand a message to paho; False when paho dropped it (QoS 0 on a connection that just broke, or its
        QoS>=1 queue full)."""
        info = self.client.publish(topic_, payload, qos=qos, retain=retain)
        if qos > 0:
            if info.rc == mqtt.MQTT_ERR_QUEUE_SIZE:
                return False
            # paho keeps QoS>=1 messages until acknowledged (resending after a reconnect); remember them for close().
            self.unacked.append(info)
            while self.unacked and self.unacked[0].is_published():
                self.unacked.popleft()
            return True
        return info.rc == mqtt.MQTT_ERR_SUCCESS

    def unsent_packets(self) -> int:
        """Packets paho has not yet written to the socket (grows on a slow link). paho has no public count,
        only ``want_write()``; its ``_out_packet`` deque is read for the number (paho 2.x)."""
        return len(getattr(self.client, "_out_packet", ())) if self.client.want_write() else 0

    def publish(self, topic_: str, payload: bytes, qos: int, kind: str) -> None:
        with self.lock:
            if self.connected and not self.buffer:
                backlog = qos == 0 and self.unsent_packets() >= self.config.max_queued_messages
                sent = not backlog and self._send(topic_, payload, qos, False)
                self.counters[f"{kind}_sent" if sent else f"{kind}_dropped"] += 1
            elif qos == 0:
                self.counters[f"{kind}_dropped"] += 1
            else:
                if len(self.buffer) >= self.config.buffer_size:
                    self.buffer.popleft()
                    self.counters[f"{kind}_dropped"] += 1
                self.buffer.append((topic_, payload, qos, kind))

    def publish_retained(self, topic_: str, payload: bytes) -> None:
        with self.lock:
            if self.connected:
                self._send(topic_, payload, 0, True)
            else:
                self.latest_retained[topic_] = payload

    def publish_snapshot(self, topic_: str, jpeg: bytes) -> None:
        """A retained JPEG, handed to paho only when nothing waits for the socket; meanwhile the newest one
        waits in a one-JPEG slot (the one it replaces is counted as dropped)."""
        with self.lock:
            if not self.connected:
                self.latest_retained[topic_] = jpeg  # the newest one only, sent on reconnect
                return
            if self.pending_snapshot is not None:
                self.counters["snapshots_dropped"] += 1
            self.pending_snapshot = (topic_, jpeg)
            self._send_pending_snapshot()

    def publish_status(self, state: str) -> None:
        """Retained ``status`` (QoS 1): ``online`` or ``reconnecting``; the Last Will says ``offline``."""
        with self.lock:
            changed, self.state = state != self.state, state
            if changed and self.connected:
                self._send(self.status_topic, state.encode(), 1, True)

    def stats(self) -> dict:
        with self.lock:
            return {**self.counters, "buffered": len(self.buffer), "unsent": self.unsent_packets(),
                    "queued_qos1": len(self.unacked), "connected": self.connected}

    def close(self, deadline: float) -> None:
        self.closed = True
        with self.lock:
            connected = self.connected
            if connected:
                self._send(self.status_topic, OFFLINE.encode(), 1, True)
            lost = len(self.buffer)
            self.buffer.clear()
        if connected:
            for info in list(self.unacked):
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._wait(info, remaining):
                    break
        pending = sum(not i.is_published() for i in self.unacked) + lost
        if pending:
            log.warning("MQTT source %s closed with %d unsent QoS>=1 messages", self.source_id, pending)
        with self.lock:
            self.connected = False  # a deliberate disconnect, not an outage
        self.client.disconnect()
        self.client.loop_stop()

    @staticmethod
    def _wait(info: mqtt.MQTTMessageInfo, timeout: float) -> bool:
        try:
            info.wait_for_publish(timeout)
        except (RuntimeError, ValueError):  # queue full / not connected any more
            return False
        return info.is_published()


class MqttPublisher:
    """Publishes edgepose messages for a fixed set of sources; connects at construction (BrokerError if refused).

    All ``publish_*`` methods are non-blocking and thread-safe. ``close()`` publishes ``offline`` and waits (bounded)
    for QoS>=1 messages to be acknowledged.
    """

    def __init__(self, config: MqttConfig, source_ids: Sequence[str], *, model: str = "EfficientHRNet",
                 discovery: Mapping[str, Sequence[tuple[str, str]]] | None = None):
        """discovery: source id -> Home Assistant discovery (topic, payload) pairs, published retained on every
        connection when ``config.homeassistant``; by default each source's standard entities (``homeassistant``)."""
        if not source_ids or len(set(source_ids)) != len(source_ids):
            raise ValueError(f"source_ids must be non-empty and unique, got {list(source_ids)}")
        self.config = config
        base = config.client_id or f"edgepose-{secrets.token_hex(3)}"
        self._channels: dict[str, _SourceChannel] = {}
        try:
            for sid in source_ids:
                announce = []
                if config.homeassistant:
                    announce = (discovery or {}).get(sid) or discovery_messages(SourceDevice(config, sid, model))
                channel = _SourceChannel(config, sid, f"{base}-{sid}", list(announce))
                channel.connect()
                self._channels[sid] = channel
        except BaseException:
            self.close(timeout=1.0)
            raise
        self._closed = False

    def _channel(self, source_id: str) -> _SourceChannel:
        try:
            return self._channels[source_id]
        except KeyError:
            raise ValueError(f"unknown source id {source_id!r}; publisher was made for {list(self._channels)}") from None

    def publish_poses(self, source_id: str, msg: dict) -> None:
        """Per-frame poses (QoS qos_poses); also updates the retained ``people`` count (the message's ``count``)
        when it changes."""
        channel = self._channel(source_id)
        channel.publish(topic(self.config, source_id, "poses"), encode(msg), self.config.qos_poses, "poses")
        people = msg["count"]
        if people != channel.last_people:
            channel.last_people = people
            channel.publish_retained(topic(self.config, source_id, "people"), str(people).encode())

    def publish_event(self, source_id: str, msg: dict) -> None:
        """A person entered/left event (QoS qos_events; buffered across outages)."""
        self._channel(source_id).publish(
            topic(self.config, source_id, "events"), encode(msg), self.config.qos_events, "events"
        )

    def publish_stats(self, source_id: str, msg: dict) -> None:
        """Retained stats; the publisher's own counters are added under ``publish``. The people count goes again
        with them, so Home Assistant's ``expire_after`` sees a live source's count as fresh."""
        channel = self._channel(source_id)
        payload = encode({**msg, "publish": channel.stats()})
        channel.publish_retained(topic(self.config, source_id, "stats"), payload)
        if channel.last_people is not None:
            channel.publish_retained(topic(self.config, source_id, "people"), str(channel.last_people).encode())

    def publish_analytics(self, source_id: str, retained: Mapping[str, bytes]) -> None:
        """Retained analytics values (sub-topic -> payload, see ``publish.analytics``); only changed ones are sent."""
        channel = self._channel(source_id)
        for sub, payload in retained.items():
            if channel.last_analytics.get(sub) != payload:
                channel.last_analytics[sub] = payload
                channel.publish_retained(topic(self.config, source_id, sub), payload)

    def publish_snapshot(self, source_id: str, jpeg: bytes) -> None:
        """Retained JPEG on ``<prefix>/<id>/snapshot``."""
        self._channel(source_id).publish_snapshot(topic(self.config, source_id, "snapshot"), bytes(jpeg))

    def publish_status(self, source_id: str, state: str) -> None:
        """The source's availability: ``online`` or ``reconnecting`` (``offline`` comes with close or the Will)."""
        self._channel(source_id).publish_status(state)

    def stats(self, source_id: str) -> dict:
        """Counters: poses/events sent and dropped, buffered, connects, disconnects, connected."""
        return self._channel(source_id).stats()

    def close_source(self, source_id: str, timeout: float = 5.0) -> None:
        """A source has ended: publish its ``offline``, flush its QoS>=1 messages (up to ``timeout`` s) and close its
        connection; the other sources go on."""
        channel = self._channel(source_id)
        if not channel.closed:
            channel.close(time.monotonic() + timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Publish ``offline`` on every status topic, wait up to ``timeout`` s for acknowledgements, disconnect."""
        if getattr(self, "_closed", False):
            return
        self._closed = True
        deadline = time.monotonic() + timeout
        for channel in self._channels.values():
            if not channel.closed:
                channel.close(deadline)

    def __enter__(self) -> MqttPublisher:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
