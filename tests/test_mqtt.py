"""MqttPublisher against a real Mosquitto: topics, Last Will, broker outages, buffer overflow, TLS + passwords."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import paho.mqtt.client as mqtt
import pytest
from conftest import Mosquitto, free_port, wait_port
from paho.mqtt.enums import CallbackAPIVersion

from edgepose.config import MqttConfig, TlsConfig
from edgepose.errors import BrokerError
from edgepose.publish import event_message, open_sink, pose_message, validate_pose_message
from edgepose.publish.mqtt import MqttPublisher, connect_client, make_client
from edgepose.types import Frame, Poses

# Mosquitto started as root drops to its own user, which cannot enter pytest's private tmp dirs; keep root there.
KEEP_USER = "user root\n"
FAST = {"reconnect_min_delay_s": 0.1, "reconnect_max_delay_s": 0.5, "keepalive": 5, "connect_timeout_s": 5}


class Collector:
    """A real subscriber recording (topic, payload, retain) of everything under ``topic``."""

    def __init__(self, config: MqttConfig, topic: str = "#", client_id: str = "collector", persistent=False):
        self.messages: list[tuple[str, bytes, bool]] = []
        self.cond = threading.Condition()
        if persistent:  # the broker keeps this session and queues QoS-1 messages while it is away
            self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
            self.client.reconnect_delay_set(0.1, 0.5)
        else:
            self.client = make_client(config, client_id)
        self.topic = topic
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *args: subscribed.set()
        self.client.on_message = self._on_message
        connect_client(self.client, config, lambda c, rc: c.subscribe(self.topic, qos=1))
        assert subscribed.wait(10), "no SUBACK"  # messages published from now on reach us

    def _on_message(self, client, userdata, msg):
        with self.cond:
            self.messages.append((msg.topic, msg.payload, msg.retain))
            self.cond.notify_all()

    def on(self, suffix: str) -> list[bytes]:
        with self.cond:
            return [p for t, p, _ in self.messages if t.endswith(suffix)]

    def wait(self, predicate, timeout: float = 10.0) -> None:
        with self.cond:
            assert self.cond.wait_for(lambda: predicate(self), timeout), f"timed out; got {self.messages}"

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


def _events(collector: Collector) -> list[int]:
    return [json.loads(p)["track_id"] for p in collector.on("/events")]


def _event(i: int) -> dict:
    return event_message(source_id="door", kind="person_entered", track_id=i, frame_index=i, wall_time_ns=time.time_ns())


def test_publisher_delivers_every_topic(mosquitto):
    config = MqttConfig(url=mosquitto.url, homeassistant=True)
    sub = Collector(config)
    pub = MqttPublisher(config, ["door", "aisle"], model="H-4")
    rng = np.random.default_rng(0)
    for i in range(5):
        people = Poses(rng.uniform(0, 300, (2, 17, 2)), rng.uniform(0, 1, (2, 17)), rng.uniform(0, 1, 2))
        frame = Frame(np.zeros((240, 320, 3), np.uint8), i, time.monotonic_ns(), time.time_ns())
        pub.publish_poses("door", pose_message(source_id="door", frame=frame, poses=people[: i % 3], model="H-4",
                                               inference_ms=5, total_ms=9))
    pub.publish_event("aisle", _event(7))
    pub.publish_stats("door", {"fps": 14.5, "people": 1})
    pub.publish_snapshot("door", b"\xff\xd8jpeg")
    with pytest.raises(ValueError, match="unknown source id 'garage'"):
        pub.publish_event("garage", _event(1))
    sub.wait(lambda s: len(s.on("door/poses")) == 5 and s.on("/snapshot") and s.on("/events"))
    for payload in sub.on("door/poses"):
        validate_pose_message(json.loads(payload))
    assert [len(json.loads(p)["people"]) for p in sub.on("door/poses")] == [0, 1, 2, 0, 1]
    # On change, then again with the stats message (the heartbeat Home Assistant's expire_after needs).
    assert sub.on("door/people") == [b"0", b"1", b"2", b"0", b"1", b"1"]
    assert _events(sub) == [7] and sub.on("aisle/events") and not sub.on("door/events")
    stats = json.loads(sub.on("door/stats")[0])
    assert stats["fps"] == 14.5 and stats["publish"]["poses_sent"] == 5 and stats["publish"]["connected"]
    assert sub.on("door/snapshot") == [b"\xff\xd8jpeg"]
    assert sub.on("door/status") == [b"online"] and sub.on("aisle/status") == [b"online"]
    discovery = {t: json.loads(p) for t, p, _ in sub.messages if t.startswith("homeassistant/") and p}
    people_cfg = discovery["homeassistant/sensor/edgepose_door/people/config"]
    assert people_cfg["state_topic"] == "edgepose/door/people"
    assert people_cfg["availability_topic"] == "edgepose/door/status"
    assert discovery["homeassistant/sensor/edgepose_aisle/fps/config"]["value_template"] == "{{ value_json.fps }}"
    pub.close()
    sub.wait(lambda s: s.on("door/status")[-1:] == [b"offline"] and s.on("aisle/status")[-1:] == [b"offline"])
    sub.close()
    # Retained: a late subscriber still learns the status, stats, people count, snapshot and discovery.
    late = Collector(config, client_id="late")
    announced = len([t for t, p, _ in sub.messages if t.startswith("homeassistant/") and p])
    late.wait(lambda s: s.on("door/snapshot") and s.on("door/people") and s.on("door/stats")
              and s.on("door/status") and len([m for m in s.messages if m[0].startswith("homeassistant/")]) == announced)
    assert late.on("door/status") == [b"offline"] and late.on("door/people") == [b"1"]
    late.close()


def test_mqtt_v5(mosquitto):
    config = MqttConfig(url=mosquitto.url, protocol="v5")
    sub = Collector(config)
    with MqttPublisher(config, ["door"]) as pub:
        pub.publish_event("door", _event(3))
        sub.wait(lambda s: _events(s) == [3])
    sub.close()


CHILD = """
import sys, time
from edgepose.config import MqttConfig
from edgepose.publish.mqtt import MqttPublisher
pub = MqttPublisher(MqttConfig(url=sys.argv[1]), ["door", "aisle"])
print("ready", flush=True)
time.sleep(60)
"""


def test_sigkilled_process_leaves_retained_offline(mosquitto):
    config = MqttConfig(url=mosquitto.url)
    child = subprocess.Popen([sys.executable, "-c", CHILD, mosquitto.url], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
        sub = Collector(config)
        sub.wait(lambda s: s.on("door/status") == [b"online"] and s.on("aisle/status") == [b"online"])
        child.send_signal(signal.SIGKILL)
        sub.wait(lambda s: s.on("door/status")[-1:] == [b"offline"] and s.on("aisle/status")[-1:] == [b"offline"])
        sub.close()
    finally:
        child.kill()
        child.wait()
    late = Collector(config, client_id="late")
    late.wait(lambda s: len(s.messages) == 2)
    assert sorted(late.messages) == [("edgepose/aisle/status", b"offline", True),
                                     ("edgepose/door/status", b"offline", True)]
    late.close()


@pytest.fixture()
def persistent_broker(tmp_path):
    """A broker that keeps sessions across a restart, like a production Mosquitto with persistence."""
    conf = f"{KEEP_USER}persistence true\npersistence_location {tmp_path}/\n"
    broker = Mosquitto(tmp_path, extra_conf=conf).start()
    yield broker
    broker.stop()


@pytest.mark.slow
def test_broker_restart_loses_no_event_and_status_goes_offline_then_online(persistent_broker):
    config = MqttConfig(url=persistent_broker.url, buffer_size=500, **FAST)
    sub = Collector(config, topic="edgepose/#", client_id="dashboard", persistent=True)
    pub = MqttPublisher(config, ["door"])
    sub.wait(lambda s: s.on("/status") == [b"online"])
    produced = 0
    for _ in range(10):
        pub.publish_event("door", _event(produced))
        produced += 1
    sub.wait(lambda s: len(_events(s)) == 10)
    persistent_broker.stop()
    outage_end = time.monotonic() + 10.0  # the ~10 s restart of a production broker
    while time.monotonic() < outage_end:  # events keep coming while the broker is away; none may block
        t0 = time.perf_counter()
        pub.publish_event("door", _event(produced))
        pub.publish_poses("door", {"count": 0, "people": []})
        assert time.perf_counter() - t0 < 0.05
        produced += 1
        time.sleep(0.1)
    stats = pub.stats("door")
    assert not stats["connected"] and stats["buffered"] == produced - 10 and stats["events_dropped"] == 0
    assert stats["poses_dropped"] == produced - 10  # QoS-0 poses are not kept
    persistent_broker.start()
    for _ in range(10):
        pub.publish_event("door", _event(produced))
        produced += 1
        time.sleep(0.02)
    sub.wait(lambda s: len(set(_events(s))) >= produced, timeout=15)
    # Every event, in order. QoS 1 is at-least-once: the broker may resend one whose acknowledgement it had not
    # yet seen when it stopped, hence the de-duplication.
    assert list(dict.fromkeys(_events(sub))) == list(range(produced))
    statuses = sub.on("/status")
    assert statuses[:2] == [b"online", b"offline"] and statuses[-1] == b"online"
    assert pub.stats("door")["connects"] == 2
    pub.close()
    sub.close()


def test_buffer_overflow_drops_oldest_and_counts(persistent_broker):
    config = MqttConfig(url=persistent_broker.url, buffer_size=5, **FAST)
    sub = Collector(config, topic="edgepose/door/events", client_id="dashboard", persistent=True)
    pub = MqttPublisher(config, ["door"])
    persistent_broker.stop()
    time.sleep(0.3)  # let the publisher notice
    for i in range(12):
        pub.publish_event("door", _event(i))
    stats = pub.stats("door")
    assert (stats["buffered"], stats["events_dropped"]) == (5, 7)
    persistent_broker.start()
    sub.wait(lambda s: len(_events(s)) == 5)
    time.sleep(0.3)
    assert _events(sub) == [7, 8, 9, 10, 11]
    pub.publish_stats("door", {"fps": 1.0})
    sub.close()
    stats_sub = Collector(config, topic="edgepose/door/stats", client_id="stats")
    stats_sub.wait(lambda s: s.on("/stats"))
    assert json.loads(stats_sub.on("/stats")[0])["publish"]["events_dropped"] == 7
    stats_sub.close()
    pub.close()


def test_refused_broker_is_one_clear_line():
    port = free_port()
    with pytest.raises(BrokerError) as err:
        MqttPublisher(MqttConfig(url=f"mqtt://127.0.0.1:{port}"), ["door"])
    assert str(err.value) == (
        f"MQTT broker 127.0.0.1:{port} refused the connection; start the broker (e.g. `mosquitto -d`) "
        "or pass --mqtt URL"
    )
    with socket.socket() as silent:  # accepts TCP, never speaks MQTT (e.g. a wrong port)
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"mqtt://127.0.0.1:{silent.getsockname()[1]}"
        with pytest.raises(BrokerError, match="accepted TCP but sent no MQTT answer"):
            open_sink("mqtt", MqttConfig(url=url, connect_timeout_s=0.5), ["door"])


# --- TLS and passwords -----------------------------------------------------------------------------------------


def _openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _make_ca(d, name):
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={name}",
             "-keyout", f"{name}.key", "-out", f"{name}.pem", cwd=d)


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory):
    """Mosquitto with a TLS listener (certificate from a CA made here) and password auth; user edge / s3cret."""
    d = tmp_path_factory.mktemp("tls")
    _make_ca(d, "ca")
    _make_ca(d, "otherca")
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", "server.key",
             "-out", "server.csr", cwd=d)
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-days", "2", "-extfile", "san.ext", "-out", "server.pem", cwd=d)
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=edge", "-keyout", "client.key",
             "-out", "client.csr", cwd=d)
    _openssl("x509", "-req", "-in", "client.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-days", "2", "-out", "client.pem", cwd=d)
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(d / "passwd"), "edge", "s3cret"], check=True)
    tls_port, mtls_port = free_port(), free_port()
    listener = f"cafile {d}/ca.pem\ncertfile {d}/server.pem\nkeyfile {d}/server.key\n"
    conf = (f"{KEEP_USER}allow_anonymous false\npassword_file {d}/passwd\n"
            f"listener {tls_port} 127.0.0.1\n{listener}"
            f"listener {mtls_port} 127.0.0.1\n{listener}require_certificate true\n")
    broker = Mosquitto(d, extra_conf=conf).start()
    wait_port(tls_port)
    wait_port(mtls_port)
    broker.tls_port, broker.mtls_port, broker.dir = tls_port, mtls_port, d
    yield broker
    broker.stop()


def _tls_config(broker, password="s3cret", ca="ca.pem", **kw):
    return MqttConfig(url=f"mqtts://edge:{password}@127.0.0.1:{broker.tls_port}",
                      tls=TlsConfig(ca_file=broker.dir / ca), **kw)


@pytest.mark.parametrize("protocol", ["v311", "v5"])
def test_tls_with_password_connects_and_delivers(tls_broker, protocol):
    config = _tls_config(tls_broker, protocol=protocol)
    sub = Collector(config)
    with MqttPublisher(config, ["door"]) as pub:
        pub.publish_event("door", _event(1))
        sub.wait(lambda s: _events(s) == [1])
    sub.close()


def test_tls_password_from_file(tls_broker, tmp_path):
    (tmp_path / "pw").write_text("s3cret\n")
    config = MqttConfig(url=f"mqtts://127.0.0.1:{tls_broker.tls_port}", username="edge", password_file=tmp_path / "pw",
                        tls=TlsConfig(ca_file=tls_broker.dir / "ca.pem"))
    MqttPublisher(config, ["door"]).close()


def test_client_certificate(tls_broker):
    d = tls_broker.dir
    url = f"mqtts://edge:s3cret@127.0.0.1:{tls_broker.mtls_port}"
    config = MqttConfig(url=url, tls=TlsConfig(ca_file=d / "ca.pem", cert_file=d / "client.pem",
                                               key_file=d / "client.key"))
    MqttPublisher(config, ["door"]).close()
    with pytest.raises(BrokerError) as err:  # the broker demands a certificate we do not present
        MqttPublisher(MqttConfig(url=url, tls=TlsConfig(ca_file=d / "ca.pem"), connect_timeout_s=2), ["door"])
    assert str(err.value) == (f"MQTT broker 127.0.0.1:{tls_broker.mtls_port} closed the connection before "
                              "answering; if it requires a client certificate set mqtt.tls.cert_file and "
                              "mqtt.tls.key_file")
    with pytest.raises(BrokerError, match="mqtt.tls.key_file .*missing.key does not exist"):
        MqttPublisher(MqttConfig(url=url, tls=TlsConfig(ca_file=d / "ca.pem", cert_file=d / "client.pem",
                                                        key_file=d / "missing.key")), ["door"])


def test_wrong_password_is_one_line(tls_broker):
    with pytest.raises(BrokerError) as err:
        MqttPublisher(_tls_config(tls_broker, password="guess"), ["door"])
    msg = str(err.value)
    assert "\n" not in msg and "guess" not in msg
    assert msg.startswith(f"MQTT broker 127.0.0.1:{tls_broker.tls_port} rejected user 'edge' (Not authorized)")


def test_wrong_ca_is_one_line(tls_broker):
    with pytest.raises(BrokerError) as err:
        MqttPublisher(_tls_config(tls_broker, ca="otherca.pem"), ["door"])
    assert "\n" not in str(err.value)
    assert "TLS certificate not trusted" in str(err.value) and "mqtt.tls.ca_file" in str(err.value)


def test_cli_exits_non_zero_with_one_line_on_wrong_password(tls_broker):
    env = {**os.environ, "EDGEPOSE_MQTT__TLS__CA_FILE": str(tls_broker.dir / "ca.pem")}
    url = f"mqtts://edge:guess@127.0.0.1:{tls_broker.tls_port}"
    exe = os.path.join(os.path.dirname(sys.executable), "edgepose")
    proc = subprocess.run([exe, "watch", "--mqtt", url, "--count", "1"], env=env, capture_output=True, text=True,
                          timeout=30)
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("Error: MQTT broker 127.0.0.1:")
    assert "rejected user 'edge'" in proc.stderr and "guess" not in proc.stderr


def test_mqtt_and_file_sink_together(mosquitto, tmp_path):
    config = MqttConfig(url=mosquitto.url)
    sub = Collector(config, topic="edgepose/door/events")
    sink = open_sink(f"mqtt,{tmp_path / 'log.jsonl'}", config, ["door"])
    sink.send_event("door", _event(5))
    sub.wait(lambda s: _events(s) == [5])
    assert sink.delivery_stats("door")["events_sent"] == 1
    sink.close()
    assert json.loads((tmp_path / "log.jsonl").read_text())["track_id"] == 5
    sub.close()


class SlowLink:
    """A real TCP proxy to the broker whose client->broker direction carries ``bytes_per_s`` (a congested uplink)."""

    def __init__(self, target_port: int, bytes_per_s: int):
        self.target_port = target_port
        self.rate = bytes_per_s
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16_384)  # the backlog stays in the sender
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen()
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            threading.Thread(target=self._pump, args=(client, upstream, self.rate), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, None), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket, rate: int | None) -> None:
        try:
            while data := src.recv(4096):
                dst.sendall(data)
                if rate:
                    time.sleep(len(data) / rate)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024


def test_slow_link_and_outage_keep_queues_and_memory_bounded(tmp_path):
    """60 MB of poses into a 50 kB/s uplink, then a broker outage: paho's queue, our buffer and RSS stay bounded,
    and every drop is counted per kind."""
    broker = Mosquitto(tmp_path, extra_conf=KEEP_USER).start()
    link = SlowLink(broker.port, 50_000)
    cfg = MqttConfig(url=f"mqtt://127.0.0.1:{link.port}", max_queued_messages=20, buffer_size=50, **FAST)
    pub = MqttPublisher(cfg, ["cam"])
    try:
        pad = "x" * 20_000
        rss_before = rss_mb()
        peak_unsent = peak_queued = 0
        for i in range(3000):
            pub.publish_poses("cam", {"frame_index": i, "people": [], "count": 0, "pad": pad})
            if i % 10 == 0:
                pub.publish_event("cam", {"event": "person_entered", "frame_index": i})
            if i % 100 == 0:
                pub.publish_snapshot("cam", b"\xff" * 100_000)
            stats = pub.stats("cam")
            peak_unsent, peak_queued = max(peak_unsent, stats["unsent"]), max(peak_queued, stats["queued_qos1"])
        growth = rss_mb() - rss_before
        stats = pub.stats("cam")
        assert stats["connected"]
        assert peak_unsent <= 2 * cfg.max_queued_messages + 5, peak_unsent
        assert peak_queued <= cfg.max_queued_messages, peak_queued
        assert growth < 25, f"RSS grew {growth:.0f} MB"  # unbounded, 60 MB of poses would pile up
        assert stats["poses_dropped"] > 2000 and stats["poses_sent"] > 0
        # Of the 30 snapshots (100 kB each), the link carries almost none during the loop; the socket buffers on
        # either side of it take a few (1-6 seen, depending on the kernel's buffer sizing). Queued without bound,
        # none would be dropped.
        assert stats["snapshots_sent"] + stats["snapshots_dropped"] >= 29  # at most one waits in the slot
        assert stats["snapshots_dropped"] >= 20, stats
        assert stats["events_dropped"] > 0

        broker.stop()  # outage: events go to the bounded buffer, oldest dropped first
        deadline = time.monotonic() + 10
        while pub.stats("cam")["connected"] and time.monotonic() < deadline:
            time.sleep(0.05)
        before = pub.stats("cam")
        assert not before["connected"]
        for i in range(200):
            pub.publish_event("cam", {"event": "person_left", "frame_index": i})
            pub.publish_poses("cam", {"frame_index": i, "people": [], "count": 0, "pad": pad})
        during = pub.stats("cam")
        assert during["buffered"] == cfg.buffer_size
        assert during["events_dropped"] - before["events_dropped"] == 200 - cfg.buffer_size
        assert during["poses_dropped"] - before["poses_dropped"] == 200
    finally:
        pub.close(timeout=1)
        broker.stop()
