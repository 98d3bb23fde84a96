#!/usr/bin/env python3
"""Fault soak: `edgepose run` with a looping video file and an RTSP camera whose server is restarted every 60 s,
publishing to a Mosquitto that is restarted every 90 s. Reports crashes, RTSP outages and their recoveries,
QoS 1 events published vs. received by a persistent subscriber, RSS growth of the edgepose process after
warm-up, and the windows in which /healthz answered 503 beside the RTSP outages.

    python benchmarks/faultsoak.py [--minutes 10] [--model MODEL.xml] [--video FILE]

Goals (the issue's): zero crashes, every outage recovered, every event delivered, RSS growth <= 5 %, /healthz
503 during the outages only. Not a test: it takes minutes and its timing depends on the machine.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from common import REPO, default_model, soak_arguments

sys.path.insert(0, str(REPO / "tests"))
import rtsp_server  # noqa: E402 - the tests' RTSP server (SIGUSR1 stalls it)
from conftest import Mosquitto, free_port, wait_port  # noqa: E402

RTSP_EVERY_S, RTSP_DOWN_S, BROKER_EVERY_S = 60.0, 5.0, 90.0


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Subscriber:
    """A persistent QoS 1 session on edgepose/+/events (the broker queues for it across its own restarts)."""

    def __init__(self, port: int):
        import paho.mqtt.client as mqtt

        self.events: set[bytes] = set()
        self.duplicates = 0
        self.stats: dict[str, dict] = {}
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="faultsoak-sub", clean_session=False)
        self.client.reconnect_delay_set(0.2, 2)
        self.client.on_connect = lambda c, *a: c.subscribe([("edgepose/+/events", 1), ("edgepose/+/stats", 0)])
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, client, userdata, msg):
        if msg.topic.endswith("/events"):
            if msg.payload in self.events:
                self.duplicates += 1  # QoS 1 is at-least-once
            self.events.add(msg.payload)
        else:
            stats = json.loads(msg.payload)
            self.stats[stats["source_id"]] = stats


def main() -> int:
    args = soak_arguments(__doc__)
    tmp = Path(tempfile.mkdtemp(prefix="edgepose-faultsoak-"))
    model = args.model or default_model(tmp)
    data = tmp / "broker"
    data.mkdir()
    broker = Mosquitto(tmp, extra_conf=f"user root\npersistence true\npersistence_location {data}/\n"
                                       "autosave_interval 1\n")
    broker.start()  # restarts below reuse its port
    rtsp_port, metrics_port = free_port(), free_port()
    rtsp = rtsp_server.start(rtsp_port)
    wait_port(rtsp_port)
    sub = Subscriber(broker.port)
    config = tmp / "faultsoak.yaml"
    config.write_text(json.dumps({
        "sources": [{"id": "file", "source": args.video, "loop": True, "realtime": True},
                    {"id": "rtsp", "source": f"rtsp://127.0.0.1:{rtsp_port}/cam"}],
        "model": {"name": model}, "mqtt": {"url": broker.url, "stats_interval_s": 5},
        "metrics": {"port": metrics_port}, "snapshot": {"enabled": False}}))
    env = dict(os.environ, OPENVINO_TELEMETRY="0", PYTHONPATH=str(REPO))
    log = open(tmp / "edgepose.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "edgepose", "run", "--config", str(config), "--quiet"],
                            stdout=subprocess.DEVNULL, stderr=log, env=env)
    health: list[tuple[float, int]] = []
    rss: list[tuple[float, float]] = []
    outages: list[tuple[float, float]] = []
    broker_restarts = 0
    t0 = time.monotonic()
    end = t0 + args.minutes * 60
    next_rtsp, next_broker, next_rss = t0 + RTSP_EVERY_S, t0 + BROKER_EVERY_S, t0
    crashed = None
    while time.monotonic() < end:
        now = time.monotonic()
        if proc.poll() is not None:
            crashed = proc.returncode
            break
        if now >= next_rtsp:
            rtsp.kill()
            rtsp.wait()
            time.sleep(RTSP_DOWN_S)
            rtsp = rtsp_server.start(rtsp_port)
            wait_port(rtsp_port)
            outages.append((now - t0, time.monotonic() - t0))
            next_rtsp += RTSP_EVERY_S
        if now >= next_broker:
            broker.stop()
            time.sleep(1.0)
            broker.start()
            broker_restarts += 1
            next_broker += BROKER_EVERY_S
        if now >= next_rss:
            rss.append((now - t0, rss_mb(proc.pid)))
            next_rss += 5
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/healthz", timeout=2) as r:
                health.append((now - t0, r.status))
        except urllib.error.HTTPError as exc:
            health.append((now - t0, exc.code))
        except (urllib.error.URLError, OSError):
            pass  # still starting
        time.sleep(0.5)
    if crashed is None:
        proc.terminate()
        proc.wait(60)
    time.sleep(3)  # the last QoS 1 events and the final stats reach the subscriber
    rtsp.kill()
    broker.stop()
    log.close()
    text = (tmp / "edgepose.log").read_text()
    recoveries = re.findall(r"rtsp: .* is back after ([\d.]+) s", text)

    windows, start = [], None
    for t, status in health:
        if status == 503 and start is None:
            start = t
        elif status == 200 and start is not None:
            windows.append((start, t))
            start = None
    if start is not None:
        windows.append((start, health[-1][0]))
    print(f"fault soak: {args.minutes:g} min, model {Path(model).parent.name}, RTSP restarted {len(outages)}x "
          f"(down {RTSP_DOWN_S:g} s), Mosquitto restarted {broker_restarts}x")
    print(f"crashes: {0 if crashed is None else 1}" + (f" (exit {crashed})" if crashed is not None else "")
          + f"; exit code on SIGTERM: {proc.returncode}")
    print(f"RTSP outages: {len(outages)}, recoveries: {len(recoveries)} "
          f"(outage seen by edgepose, s: {', '.join(recoveries) or '-'})")
    stats = sub.stats
    sent = sum(s.get("publish", {}).get("events_sent", 0) for s in stats.values())
    dropped = sum(s.get("publish", {}).get("events_dropped", 0) for s in stats.values())
    print(f"QoS 1 events: published {sent} (dropped {dropped}), received {len(sub.events)} distinct by the "
          f"persistent subscriber ({sub.duplicates} duplicates)")
    frames = {sid: s.get("frames") for sid, s in stats.items()}
    print(f"frames processed (last stats): {frames}")
    warm = [r for t, r in rss if t >= min(60.0, args.minutes * 15)]
    if len(warm) >= 2:
        print(f"RSS after warm-up {warm[0]:.0f} MB -> {warm[-1]:.0f} MB (max {max(warm):.0f} MB): "
              f"growth {(warm[-1] - warm[0]) / warm[0] * 100:+.1f} % (goal <= 5 %)")
    print("RTSP outages (s since start): " + ", ".join(f"{a:.0f}-{b:.0f}" for a, b in outages))
    print("/healthz 503 windows (s):     " + (", ".join(f"{a:.0f}-{b:.0f}" for a, b in windows) or "none"))
    outside = [w for w in windows if not any(a - 1 <= w[0] <= b + 30 for a, b in outages)]
    print(f"503 windows not explained by an RTSP outage: {len(outside)}; outages without a 503 window: "
          f"{sum(not any(a - 1 <= w[0] <= b + 30 for w in windows) for a, b in outages)}")
    shutil.rmtree(tmp, ignore_errors=True)
    return 0 if crashed is None else 1


if __name__ == "__main__":
    sys.exit(main())
