"""The dashboard end to end: real Mosquitto with websockets, real `edgepose run` and `edgepose dashboard`, real
headless Chromium (Selenium) reading the page's DOM and canvas.

Needs the Debian packages chromium and chromium-driver and the pip package selenium (dev extra); skipped without.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import paho.mqtt.client as mqtt
import pytest
from click.testing import CliRunner
from conftest import REPO, Mosquitto, free_port, wait_port
from paho.mqtt.enums import CallbackAPIVersion

from edgepose.cli import cli
from edgepose.config import DashboardConfig, MqttConfig
from edgepose.dashboard.server import DashboardServer
from edgepose.draw import PALETTE
from edgepose.errors import EdgeposeError
from edgepose.publish import event_message, pose_message, stats_message
from edgepose.publish.mqtt import MqttPublisher
from edgepose.publish.snapshot import encode_jpeg
from edgepose.types import JOINT_NAMES, Frame, Poses

ARTIFACTS = REPO / "test-artifacts"
EDGEPOSE = [sys.executable, "-m", "edgepose"]
KEEPALIVE = 10  # s; the broker publishes the will after 1.5x this without a packet (a SIGKILL closes the socket)
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--window-size=1280,1100")


# ---------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (pip install -e '.[dev]')")
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        pytest.skip("needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SE_OFFLINE", "true")  # Selenium must never try to download a driver or browser
        drv = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=driver))
    drv.set_page_load_timeout(20)
    yield drv
    drv.quit()


@pytest.fixture()
def ws_broker(tmp_path):
    broker = Mosquitto(tmp_path, ws_port=free_port(), extra_conf="user root\n").start()
    yield broker
    broker.stop()


@pytest.fixture()
def dashboard_cli(ws_broker):
    """`edgepose dashboard` as a user starts it, on a free port; yields the URL it printed."""
    proc = subprocess.Popen(
        [*EDGEPOSE, "dashboard", "--port", "0", "--mqtt-ws", f"ws://127.0.0.1:{ws_broker.ws_port}"],
        stdout=subprocess.PIPE, text=True,
    )
    line = proc.stdout.readline()
    match = re.search(r"http://127\.0\.0\.1:\d+/", line)
    assert match, f"edgepose dashboard printed {line!r}"
    yield match.group(0)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(30) == 0


@pytest.fixture()
def auth_broker(tmp_path):
    """Mosquitto with websockets that only lets the user `viewer` (password `look-only`) in."""
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(tmp_path / "passwd"), "viewer", "look-only"], check=True)
    broker = Mosquitto(tmp_path, ws_port=free_port(),
                       extra_conf=f"user root\nallow_anonymous false\npassword_file {tmp_path}/passwd\n").start()
    yield broker
    broker.stop()


def page_state(drv) -> dict:
    """Per source card: what a user sees, read from the DOM."""
    return drv.execute_script("""
        const out = {broker: document.querySelector('#broker').dataset.state, cards: {}};
        for (const c of document.querySelectorAll('.card')) {
          const v = c.querySelector('.view');
          out.cards[c.dataset.source] = {
            status: c.querySelector('.status').dataset.status || null,
            fps: parseFloat(c.querySelector('dd.fps').textContent),
            people: c.querySelector('dd.people').textContent,
            model: c.querySelector('dd.model').textContent,
            snapshot: v.dataset.snapshot === '1', skeletons: parseInt(v.dataset.skeletons || '0'),
            size: [v.width, v.height],
            points: parseInt(c.querySelector('.chart').dataset.points),
            events: [...c.querySelectorAll('.events li')].map(li => li.textContent),
          };
        }
        out.order = Object.keys(out.cards);
        return out;""")


def wait_for(drv, predicate, timeout: float, what: str) -> dict:
    deadline = time.monotonic() + timeout
    state = page_state(drv)
    while not predicate(state):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}; page state: {state}")
        time.sleep(0.2)
        state = page_state(drv)
    return state


def canvas_pixel(drv, source: str, x: float, y: float) -> list[int]:
    """RGBA of the card's canvas at frame pixel (x, y) (the canvas may be scaled from the frame size)."""
    return drv.execute_script(
        "const v = document.querySelector(`.card[data-source='${arguments[0]}'] .view`);"
        "return [...v.getContext('2d').getImageData(arguments[1], arguments[2], 1, 1).data];",
        source, float(x), float(y),
    )


def coco_person(coco_mini: Path, width: int, height: int) -> tuple[Poses, np.ndarray]:
    """A real annotated COCO person with all 17 joints, fitted into a width x height frame; (poses, visible)."""
    ann = json.loads((coco_mini / "person_keypoints.json").read_text())
    best = max(ann["annotations"], key=lambda a: (a["num_keypoints"], a["area"]))
    kps = np.asarray(best["keypoints"], np.float32).reshape(17, 3)
    visible = kps[:, 2] > 0
    xy = kps[:, :2] - kps[visible, :2].min(axis=0)
    xy = xy / xy[visible].max() * 0.7 * min(width, height) + (0.15 * width, 0.15 * height)
    conf = visible.astype(np.float32)  # opaque: canvas pixels must show the exact track colour
    return Poses(xy[None], conf[None], conf[None].mean(axis=1), [1]), visible


def hex_rgb(color: str) -> list[int]:
    return [int(color[i : i + 2], 16) for i in (1, 3, 5)]


def publish_once(url: str, topic: str, payload: bytes) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="dashboard-test")
    host, port = url.removeprefix("mqtt://").split(":")
    client.connect(host, int(port))
    client.loop_start()
    client.publish(topic, payload, qos=1).wait_for_publish(5)
    client.disconnect()
    client.loop_stop()


# ---------------------------------------------------------------------------------------------- server


def test_server_serves_page_and_config_only(tmp_path):
    cfg = DashboardConfig(port=0, username="viewer", password="pa55-word", mqtt_ws="ws://:9001")
    server = DashboardServer(cfg, "site/a")
    server.start()
    try:
        static = {}
        for path in ("/", "/app.js", "/mqtt-ws.js", "/style.css"):
            with urllib.request.urlopen(server.url + path.lstrip("/")) as r:
                assert r.status == 200 and "Content-Security-Policy" in r.headers
                static[path] = r.read().decode()
        assert "<canvas" not in static["/"] and 'src="app.js"' in static["/"]
        with urllib.request.urlopen(server.url + "config.json") as r:
            assert r.headers["Cache-Control"] == "no-store"
            page = json.load(r)
        assert page["mqtt_ws"] == "ws://:9001" and page["topic_prefix"] == "site/a"
        assert (page["username"], page["password"]) == ("viewer", "pa55-word")
        assert page["joints"] == list(JOINT_NAMES) and page["palette"] == list(PALETTE)
        # The secret lives only in config.json, never in the static files.
        assert not any("pa55-word" in text for text in static.values())
        for bad in ("../../etc/passwd", "server.py", "static/app.js", "config.json/x"):
            with pytest.raises(urllib.error.HTTPError) as err:
                urllib.request.urlopen(server.url + bad)
            assert err.value.code == 404
        with pytest.raises(EdgeposeError, match=rf"port {server.server_address[1]} .* in use; pass another --port"):
            DashboardServer(DashboardConfig(port=server.server_address[1]))
    finally:
        server.shutdown()
        server.server_close()


def _fetch(url: str, **headers) -> tuple[int, dict, bytes]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=5) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def test_foreign_host_header_gets_no_config():
    """DNS rebinding: a page on evil.example whose name now resolves to 127.0.0.1 must not read the password."""
    server = DashboardServer(DashboardConfig(port=0, username="viewer", password="pa55-word",
                                             allowed_hosts=["dash.site.lan"]))
    server.start()
    port = server.server_address[1]
    try:
        for host in ("evil.example", f"evil.example:{port}", "localhost.evil.example", ""):
            status, _, body = _fetch(server.url + "config.json", Host=host)
            assert status == 403 and b"pa55-word" not in body, host
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}", f"dash.site.lan:{port}"):
            status, _, body = _fetch(server.url + "config.json", Host=host)
            assert status == 200 and json.loads(body)["password"] == "pa55-word", host
    finally:
        server.shutdown()
        server.server_close()


def test_beyond_loopback_every_request_needs_the_token():
    server = DashboardServer(DashboardConfig(host="0.0.0.0", port=0, password="pa55-word"))
    server.start()
    try:
        assert server.token and server.login_url == f"{server.url}?token={server.token}"
        for path in ("", "app.js", "config.json"):
            status, _, body = _fetch(server.url + path)
            assert status == 401 and b"pa55-word" not in body
        assert _fetch(server.url + "config.json?token=wrong")[0] == 401
        status, headers, _ = _fetch(server.login_url)
        assert status == 200 and "HttpOnly" in headers["Set-Cookie"] and "SameSite=Strict" in headers["Set-Cookie"]
        cookie = headers["Set-Cookie"].split(";")[0]
        status, _, body = _fetch(server.url + "config.json", Cookie=cookie)
        assert status == 200 and json.loads(body)["password"] == "pa55-word"
        assert _fetch(server.url + "config.json", Authorization=f"Bearer {server.token}")[0] == 200
    finally:
        server.shutdown()
        server.server_close()
    configured = DashboardServer(DashboardConfig(host="0.0.0.0", port=0, token="site-token"))
    assert configured.token == "site-token" and configured.login_url == configured.url  # never printed
    configured.server_close()


def test_cli_on_all_interfaces_prints_a_token_url_and_refuses_without_it():
    proc = subprocess.Popen([*EDGEPOSE, "dashboard", "--host", "0.0.0.0", "--port", "0"], stdout=subprocess.PIPE,
                            text=True)
    try:
        line = proc.stdout.readline()
        match = re.search(r"(http://127\.0\.0\.1:\d+/)\?token=(\S+)", line)
        assert match, line
        assert _fetch(match.group(1) + "config.json")[0] == 401
        assert _fetch(match.group(1) + "config.json?token=" + match.group(2))[0] == 200
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(30)


def test_cli_reports_bad_websocket_url_in_one_line():
    result = CliRunner().invoke(cli, ["dashboard", "--mqtt-ws", "mqtt://127.0.0.1:1883"], standalone_mode=False)
    assert isinstance(result.exception, EdgeposeError)
    assert "dashboard.mqtt_ws: expected ws://host:port" in str(result.exception)


# ---------------------------------------------------------------------------------------------- browser


@pytest.mark.slow
def test_several_nodes_privacy_mode_events_and_clean_shutdown(browser, ws_broker, dashboard_cli, coco_mini):
    """Two sources from the real publisher: one with snapshots, one without (privacy mode); events and stats."""
    config = MqttConfig(url=ws_broker.url, keepalive=KEEPALIVE)
    width, height = 640, 360
    poses, visible = coco_person(coco_mini, width, height)
    frame = Frame(np.zeros((height, width, 3), np.uint8), 7, time.monotonic_ns(), time.time_ns())
    with MqttPublisher(config, ["hall", "door"]) as pub:
        browser.get(dashboard_cli)
        wait_for(browser, lambda s: s["broker"] == "connected", 15, "the page to connect to the broker")
        for sid in ("door", "hall"):
            pub.publish_stats(sid, stats_message(
                source_id=sid, wall_time_ns=time.time_ns(), fps=12.5, latency_ms={"total": [40.0, 44.0]}, frames=70,
                dropped_frames=3, people=1, model="H-1", device="CPU", uptime_s=6.0))
            pub.publish_event(sid, event_message(source_id=sid, kind="person_entered", track_id=1, frame_index=7,
                                                 wall_time_ns=time.time_ns()))
        pub.publish_snapshot("door", encode_jpeg(np.full((height // 2, width // 2, 3), 200, np.uint8)))
        for sid in ("door", "hall"):
            pub.publish_poses(sid, pose_message(source_id=sid, frame=frame, poses=poses, model="H-1",
                                                inference_ms=30, total_ms=40))
        state = wait_for(browser, lambda s: all(
            s["cards"].get(sid, {}).get("skeletons") == 1 and s["cards"][sid]["events"] for sid in ("door", "hall")
        ) and s["cards"]["door"]["snapshot"], 15, "both cards with a skeleton and an event")
        assert state["order"] == ["door", "hall"]  # sorted by id, whatever came first
        for sid in ("door", "hall"):
            card = state["cards"][sid]
            assert card["status"] == "online" and card["fps"] == 12.5 and card["people"] == "1"
            assert card["model"] == "H-1 on CPU" and card["points"] >= 1 and "#1 entered" in card["events"][0]
        assert not state["cards"]["hall"]["snapshot"]  # privacy mode: skeletons on a blank canvas
        # The snapshot came at half size (as when shrunk to fit max_bytes): it is scaled up to the frame's size.
        assert state["cards"]["door"]["size"] == [width, height]
        hip = JOINT_NAMES.index("left_hip") if visible[JOINT_NAMES.index("left_hip")] else int(np.argmax(visible))
        x, y = poses.xy[0, hip]
        assert canvas_pixel(browser, "hall", x, y)[:3] == hex_rgb(PALETTE[1])  # track 1's colour, opaque
        assert canvas_pixel(browser, "door", x, y)[:3] == hex_rgb(PALETTE[1])
        assert canvas_pixel(browser, "door", width - 2, height - 2)[:3] == [200, 200, 200]  # the picture, scaled
        assert canvas_pixel(browser, "hall", 2, 2)[:3] == [0x15, 0x18, 0x1D]  # blank canvas, not a picture
        ARTIFACTS.mkdir(exist_ok=True)
        assert browser.save_screenshot(str(ARTIFACTS / "dashboard-two-nodes.png"))
    # A clean stop publishes offline for every source.
    wait_for(browser, lambda s: all(c["status"] == "offline" for c in s["cards"].values()), 10, "offline cards")


@pytest.mark.slow
def test_real_edgepose_run_shows_live_and_turns_offline_when_killed(
    browser, ws_broker, dashboard_cli, omz_model, video_aisle, coco_mini, tmp_path
):
    """`edgepose run` on a real video -> page shows snapshot, skeleton, chart, fps; SIGKILL -> offline."""
    (tmp_path / "edgepose.yaml").write_text(
        # Looping at the video's own frame rate, like a camera, until killed; the stand-in weights find
        # arbitrary 'people', so keep them few for a page that must keep up on a slow machine.
        f"sources: [{{id: aisle, source: '{video_aisle}', loop: true, realtime: true}}]\n"
        "decode: {max_people: 3}\n"
        f"model: {{name: '{omz_model}'}}\n"
        f"mqtt: {{url: '{ws_broker.url}', keepalive: {KEEPALIVE}, stats_interval_s: 1}}\n"
        "snapshot: {interval_s: 1}\n"
    )
    run = subprocess.Popen([*EDGEPOSE, "run", "--config", str(tmp_path / "edgepose.yaml"), "--quiet"],
                           stdout=subprocess.DEVNULL, stderr=open(tmp_path / "run.log", "w"))
    try:
        browser.get(dashboard_cli)
        state = wait_for(browser, lambda s: (c := s["cards"].get("aisle")) and c["status"] == "online"
                         and c["snapshot"] and (c["fps"] or 0) > 0 and c["points"] >= 1, 90,
                         "a live card from edgepose run (snapshot, fps, chart)")
        assert run.poll() is None, (tmp_path / "run.log").read_text()
        card = state["cards"]["aisle"]
        assert card["size"] == [480, 270] and card["model"].endswith("on CPU")
        print(f"edgepose run: {card['skeletons']} skeletons drawn from its own poses, fps {card['fps']}")
        # The stand-in weights find arbitrary 'people'. For a skeleton we can check, freeze the node (its
        # connection stays up for 1.5x keepalive) and publish one real COCO person for this source.
        run.send_signal(signal.SIGSTOP)
        poses, visible = coco_person(coco_mini, 480, 270)
        frame = Frame(np.zeros((270, 480, 3), np.uint8), 10_000, time.monotonic_ns(), time.time_ns())
        msg = pose_message(source_id="aisle", frame=frame, poses=poses, model="test", inference_ms=1, total_ms=1)
        # Messages the node wrote before it stopped can still be in its socket buffer and reach the page after
        # ours; publish again until ours is the one shown.
        for _ in range(8):
            publish_once(ws_broker.url, "edgepose/aisle/poses", json.dumps(msg).encode())
            try:
                state = wait_for(browser, lambda s: s["cards"]["aisle"]["skeletons"] == 1, 2, "the published skeleton")
                break
            except AssertionError:
                continue
        state = wait_for(browser, lambda s: s["cards"]["aisle"]["skeletons"] == 1, 15, "the published skeleton")
        assert state["cards"]["aisle"]["status"] == "online" and state["cards"]["aisle"]["snapshot"]
        joint = int(np.argmax(visible))
        assert canvas_pixel(browser, "aisle", *poses.xy[0, joint])[:3] == hex_rgb(PALETTE[1])
        ARTIFACTS.mkdir(exist_ok=True)
        assert browser.save_screenshot(str(ARTIFACTS / "dashboard.png"))

        run.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        run.wait(10)
        wait_for(browser, lambda s: s["cards"]["aisle"]["status"] == "offline", 1.5 * KEEPALIVE + 2,
                 "the card to turn offline after SIGKILL")
        print(f"offline shown {time.monotonic() - killed:.2f} s after SIGKILL")
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()


@pytest.mark.slow
def test_page_logs_in_with_credentials_from_the_server_config(browser, auth_broker):
    ws = f"ws://127.0.0.1:{auth_broker.ws_port}"
    for password, expected in (("look-only", "connected"), ("wrong", "refused")):
        server = DashboardServer(DashboardConfig(port=0, mqtt_ws=ws, username="viewer", password=password))
        server.start()
        try:
            browser.get(server.url)
            wait_for(browser, lambda s: s["broker"] == expected, 15, f"broker state {expected}")
            if expected == "refused":
                assert "not authorized" in browser.find_element("id", "broker").text
        finally:
            server.shutdown()
            server.server_close()


def test_shipped_mosquitto_config_carries_mqtt_and_websockets(tmp_path):
    """deploy/mosquitto-websockets.conf (ports moved, no persistence): a TCP publish reaches a WebSocket reader."""
    tcp, ws = free_port(), free_port()
    conf = (REPO / "deploy" / "mosquitto-websockets.conf").read_text()
    conf = conf.replace("listener 1883", f"listener {tcp} 127.0.0.1").replace("listener 9001", f"listener {ws} 127.0.0.1")
    conf = re.sub(r"(?m)^persistence.*$", "", conf) + "user root\n"
    (tmp_path / "m.conf").write_text(conf)
    proc = subprocess.Popen([shutil.which("mosquitto") or "/usr/sbin/mosquitto", "-c", str(tmp_path / "m.conf")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(tcp)
        wait_port(ws)
        got, subscribed = [], threading.Event()
        reader = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="ws-reader", transport="websockets")
        reader.on_message = lambda c, u, m: got.append((m.topic, m.payload))
        reader.on_connect = lambda c, u, f, rc, p: c.subscribe("edgepose/+/#", qos=1)
        reader.on_subscribe = lambda *args: subscribed.set()
        reader.connect("127.0.0.1", ws)
        reader.loop_start()
        assert subscribed.wait(5), "no SUBACK over the websockets listener"
        publish_once(f"mqtt://127.0.0.1:{tcp}", "edgepose/cam0/status", b"online")
        deadline = time.monotonic() + 5
        while not got and time.monotonic() < deadline:
            time.sleep(0.05)
        reader.loop_stop()
        assert got == [("edgepose/cam0/status", b"online")]
    finally:
        proc.terminate()
        proc.wait(5)


@pytest.mark.slow
def test_js_client_reassembles_packets_across_websocket_messages(browser):
    """mqtt-ws.js in the real browser: a 300-byte PUBLISH (2-byte length) split in three, plus two packets in one
    message, a QoS-1 PUBLISH answered with PUBACK, and the CONNECT it builds with credentials."""
    server = DashboardServer(DashboardConfig(port=0))
    server.start()
    try:
        browser.get(server.url + "config.json")  # any page of the server: same origin for the module import
        result = browser.execute_async_script("""
            const done = arguments[arguments.length - 1];
            import('/mqtt-ws.js').then(({MqttClient}) => {
              const got = [], sent = [];
              const c = new MqttClient('ws://127.0.0.1:1/', {username: 'u', password: 'p', keepalive: 30,
                                                             onMessage: (t, p, o) => got.push([t, p.length, o.qos])});
              c.ws = {readyState: WebSocket.OPEN, send: (b) => sent.push([...b])};
              const pub = (topic, n, qos) => {
                const t = new TextEncoder().encode(topic);
                const body = [t.length >> 8, t.length & 255, ...t, ...(qos ? [0x12, 0x34] : []), ...new Array(n).fill(7)];
                const len = body.length < 128 ? [body.length] : [(body.length & 127) | 128, body.length >> 7];
                return [0x30 | (qos << 1), ...len, ...body];
              };
              const big = pub('edgepose/a/snapshot', 300, 0);
              c.receive(new Uint8Array(big.slice(0, 1)));
              c.receive(new Uint8Array(big.slice(1, 2)));
              c.receive(new Uint8Array(big.slice(2)));
              c.receive(new Uint8Array([...pub('edgepose/a/poses', 5, 0), ...pub('edgepose/b/events', 3, 1)]));
              done({got, sent, connect: [...c.connectPacket()]});
            }).catch((e) => done({error: String(e)}));""")
    finally:
        server.shutdown()
        server.server_close()
    assert "error" not in result, result
    assert result["got"] == [["edgepose/a/snapshot", 300, 0], ["edgepose/a/poses", 5, 0], ["edgepose/b/events", 3, 1]]
    assert result["sent"] == [[0x40, 2, 0x12, 0x34]]  # PUBACK for the QoS-1 message, with its packet id
    connect = bytes(result["connect"])
    assert connect[0] == 0x10 and connect[2:10] == b"\x00\x04MQTT\x04\xc2"  # 3.1.1, user+password+clean session
    assert connect.endswith(b"\x00\x01u\x00\x01p")
