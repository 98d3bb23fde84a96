"""``make demo``: the main job end to end on one machine, with nothing but this checkout.

1. a model: the shipped trained ``edgepose-h4`` if present, else Intel's human-pose-estimation-0005 (downloaded
   with its checksum when the network allows), else our H-4 exported with untrained weights (said loudly);
2. a broker: the local Mosquitto on 127.0.0.1:1883, started here (with a websockets listener for the
   dashboard) if nothing listens there;
3. a sample video: ../shared/data/video/ when present, else the public sample, else the test pattern;
4. ``edgepose run`` publishes to the broker while a subscriber prints what arrives; then an annotated
   snapshot and video are written to ``out/``, and the dashboard URL is printed.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from edgepose.errors import EdgeposeError

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "out"
SAMPLE_URL = "https://github.com/intel-iot-devkit/sample-videos/raw/master/store-aisle-detection.mp4"
BROKER_PORT = 1883
WS_PORT = 9001


def say(text: str) -> None:
    print(f"[demo] {text}", flush=True)


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.3):
            return True
    except OSError:
        return False


def start_broker(workdir: Path) -> subprocess.Popen | None:
    if listening(BROKER_PORT):
        say(f"using the MQTT broker already listening on 127.0.0.1:{BROKER_PORT}")
        return None
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    conf = workdir / "mosquitto.conf"
    conf.write_text(f"listener {BROKER_PORT} 127.0.0.1\nlistener {WS_PORT} 127.0.0.1\nprotocol websockets\n"
                    "allow_anonymous true\npersistence false\nlog_dest stderr\n")
    proc = subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        if listening(BROKER_PORT):
            say(f"started Mosquitto on 127.0.0.1:{BROKER_PORT} (websockets on {WS_PORT})")
            return proc
        time.sleep(0.05)
    proc.kill()
    raise SystemExit("demo: Mosquitto did not start; run `make install` (it installs the mosquitto package)")


def pick_video(workdir: Path) -> str:
    shared = REPO.parent / "shared" / "data" / "video" / "store-aisle-detection.mp4"
    if shared.exists():
        return str(shared)
    target = workdir / "store-aisle-detection.mp4"
    try:
        urllib.request.urlretrieve(SAMPLE_URL, target)  # noqa: S310 - fixed public sample
        return str(target)
    except OSError as exc:
        say(f"no sample video here and the public one cannot be downloaded ({exc}); using the test pattern")
        return "test"


def pick_model() -> tuple[str, str]:
    """(model spec, notice)."""
    from edgepose import registry

    local = registry.local_models()
    if "edgepose-h4" in local:
        return str(local["edgepose-h4"]), "edgepose-h4 (trained by distillation, shipped in models/)"
    if "human-pose-estimation-0005" in local:
        return str(local["human-pose-estimation-0005"]), "Intel human-pose-estimation-0005"
    try:
        from edgepose.registry.pull import pull

        xml = pull("human-pose-estimation-0005", timeout=10)
        return str(xml), "Intel human-pose-estimation-0005 (downloaded)"
    except EdgeposeError as exc:
        say(f"Intel's model cannot be downloaded here ({exc})")
    target = registry.download_dir() / "efficienthrnet-h-4-untrained"
    if not (target / "model.xml").exists():
        from edgepose.train.export import export_variant

        say("exporting EfficientHRNet H-4 with UNTRAINED weights (skeletons will be noise)")
        export_variant("H-4", target, random_init=True, seed=0)
    return str(target / "model.xml"), "EfficientHRNet H-4 with UNTRAINED random weights — skeletons are noise"


class Subscriber:
    """Collects and prints what the broker delivers on edgepose/#."""

    def __init__(self):
        import paho.mqtt.client as mqtt

        self.counts: dict[str, int] = {}
        self.last_poses: dict | None = None
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="edgepose-demo-watch")
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", BROKER_PORT)
        self.client.subscribe("edgepose/#", qos=1)
        self.client.loop_start()
        self._printed = 0

    def _on_message(self, client, userdata, msg):
        kind = msg.topic.rsplit("/", 1)[-1]
        self.counts[kind] = self.counts.get(kind, 0) + 1
        if kind == "poses":
            data = json.loads(msg.payload)
            self.last_poses = data
            if self._printed < 5 or data["frame_index"] % 20 == 0:
                self._printed += 1
                say(f"MQTT {msg.topic}: frame {data['frame_index']}, {len(data['people'])} people, "
                    f"inference {data['latency']['inference_ms']:.0f} ms")
        elif kind == "status" or (kind == "events" and self.counts[kind] <= 5):
            say(f"MQTT {msg.topic}: {msg.payload.decode()[:120]}")

    def close(self):
        time.sleep(0.5)
        self.client.loop_stop()
        self.client.disconnect()


def main() -> int:
    os.environ.setdefault("OPENVINO_TELEMETRY", "0")
    from edgepose.config import load_config
    from edgepose.service.run import run

    OUT.mkdir(exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="edgepose-demo-"))
    broker = start_broker(workdir)
    try:
        model, notice = pick_model()
        video = pick_video(workdir)
        say(f"model: {notice}")
        say(f"video: {video}")
        sub = Subscriber()
        dashboard = start_dashboard()
        cfg = load_config(None, {"sources": [{"id": "demo", "source": video}], "model": {"name": model},
                                 "save": str(OUT / "demo.mp4"), "mqtt": {"stats_interval_s": 2.0}})
        figures = run(cfg, max_frames=None if video != "test" else 60, status=True)["demo"]
        sub.close()
        snapshot = write_snapshot(OUT / "demo.mp4", OUT / "demo-snapshot.jpg")
        say(f"processed {figures['frames']} frames at {figures['fps']:.1f} fps; MQTT messages received: "
            + ", ".join(f"{k} {v}" for k, v in sorted(sub.counts.items())))
        if sub.last_poses:
            say("last poses message: " + json.dumps(sub.last_poses)[:400] + " ...")
        say(f"annotated video: {OUT / 'demo.mp4'}")
        say(f"annotated snapshot: {snapshot}")
        if dashboard is not None:
            linger(dashboard)
    except EdgeposeError as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 1
    finally:
        if broker is not None:
            broker.terminate()
            broker.wait(5)
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


def write_snapshot(video: Path, target: Path) -> Path:
    """The middle frame of the annotated video, as a JPEG."""
    import cv2

    cap = cv2.VideoCapture(str(video))
    n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    cap.set(cv2.CAP_PROP_POS_FRAMES, max(0, n // 2))
    ok, frame = cap.read()
    cap.release()
    if ok:
        cv2.imwrite(str(target), frame)
    return target


def start_dashboard():
    """The live dashboard on http://127.0.0.1:8080/ while the demo runs (when its broker has websockets)."""
    if not listening(WS_PORT):
        say("dashboard: needs a broker with a websockets listener; see docs/dashboard.md")
        return None
    from edgepose.config import DashboardConfig
    from edgepose.dashboard.server import DashboardServer

    try:
        server = DashboardServer(DashboardConfig(mqtt_ws=f"ws://127.0.0.1:{WS_PORT}", port=8080))
    except EdgeposeError as exc:
        say(f"dashboard not started: {exc}")
        return None
    server.start()
    say(f"dashboard: open {server.url} to watch live")
    return server


def linger(server) -> None:
    """Keep the dashboard up for a person at a terminal (Ctrl-C ends); scripts and CI go on at once."""
    if sys.stdin.isatty():
        say(f"dashboard still at {server.url} with the last state — Ctrl-C to stop")
        try:
            while True:
                time.sleep(1)
        except KeyboardInterrupt:
            pass
    server.shutdown()
    server.server_close()


if __name__ == "__main__":
    sys.exit(main())
