"""edgepose against a real Home Assistant: what a user sees, over the whole one-by-one video. Not part of CI.

    python3.13 -m venv /tmp/ha && /tmp/ha/bin/pip install homeassistant==2025.4.4 paho-mqtt==2.1.0 \
        home-assistant-frontend==20250411.0
    .venv/bin/python benchmarks/homeassistant_e2e.py --ha /tmp/ha [--video V] [--out report.json]

Starts a Mosquitto and Home Assistant (own config folder, ``--skip-pip``: MQTT's paho-mqtt is pre-installed),
onboards a user and creates the MQTT config entry through HA's REST config flow, then runs two edgepose nodes
with the same source id ``cam0``: node ``edgepose`` on one-by-one-person-detection.mp4 and node ``site2`` on
store-aisle-detection.mp4, both ``--realtime --homeassistant``. It polls ``/api/states`` every 0.25 s and prints:
the edgepose entities HA created (state, unit, device class), the People sensor's state changes over the whole
video, the two nodes side by side, availability once the short video ends while the other runs, and HA's log
lines about MQTT (warnings about deprecated or invalid discovery fields show up there).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

from common import SAMPLES


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"nothing listens on 127.0.0.1:{port} after {timeout:g} s")


class HA:
    """Home Assistant's REST API at ``base`` (after onboarding, with a bearer token)."""

    def __init__(self, base: str):
        self.base = base
        self.token: str | None = None

    def call(self, method: str, path: str, body=None, form: bool = False):
        data = None
        headers = {}
        if body is not None:
            data = (urllib.parse.urlencode(body) if form else json.dumps(body)).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded" if form else "application/json"
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=headers)
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read() or b"null")

    def onboard(self) -> None:
        client_id = self.base + "/"
        user = self.call("POST", "/api/onboarding/users", {"client_id": client_id, "name": "check",
                                                           "username": "check", "password": "check-pass-1",
                                                           "language": "en"})
        token = self.call("POST", "/auth/token", {"grant_type": "authorization_code", "code": user["auth_code"],
                                                  "client_id": client_id}, form=True)
        self.token = token["access_token"]

    def add_mqtt(self, port: int) -> dict:
        """The MQTT config entry through the config flow, as the UI creates it."""
        step = self.call("POST", "/api/config/config_entries/flow", {"handler": "mqtt"})
        for _ in range(5):
            if step["type"] == "create_entry":
                return step
            if step["type"] == "menu":
                step = self.call("POST", f"/api/config/config_entries/flow/{step['flow_id']}",
                                 {"next_step_id": "broker" if "broker" in step["menu_options"] else step["menu_options"][0]})
            elif step["type"] == "form":
                step = self.call("POST", f"/api/config/config_entries/flow/{step['flow_id']}",
                                 {"broker": "127.0.0.1", "port": port})
            else:
                raise SystemExit(f"MQTT config flow stopped: {step}")
        raise SystemExit(f"MQTT config flow did not finish: {step}")

    def states(self) -> dict[str, dict]:
        return {s["entity_id"]: s for s in self.call("GET", "/api/states")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ha", required=True, help="virtualenv with homeassistant (and paho-mqtt) installed")
    ap.add_argument("--video", default=str(SAMPLES / "one-by-one-person-detection.mp4"))
    ap.add_argument("--short", default=str(SAMPLES / "store-aisle-detection.mp4"))
    ap.add_argument("--model", default="auto")
    ap.add_argument("--out", help="write the full report (JSON) here")
    args = ap.parse_args()

    hass = Path(args.ha) / "bin" / "hass"
    if not hass.exists():
        raise SystemExit(f"{hass} not found; install: python3.13 -m venv {args.ha} && {args.ha}/bin/pip install "
                         "homeassistant==2025.4.4 paho-mqtt==2.1.0 home-assistant-frontend==20250411.0")
    work = Path(tempfile.mkdtemp(prefix="edgepose-ha-"))
    procs: list[subprocess.Popen] = []
    try:
        mqtt_port, http_port = free_port(), free_port()
        (work / "mosquitto.conf").write_text(f"listener {mqtt_port} 127.0.0.1\nallow_anonymous true\n"
                                             "persistence false\nuser root\n")
        procs.append(subprocess.Popen([shutil.which("mosquitto") or "/usr/sbin/mosquitto", "-c",
                                       str(work / "mosquitto.conf")], stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL))
        wait_port(mqtt_port, 10)
        config = work / "ha"
        config.mkdir()
        (config / "configuration.yaml").write_text(
            "homeassistant:\n  name: edgepose check\n  time_zone: UTC\n  unit_system: metric\n"
            "  latitude: 0\n  longitude: 0\n  elevation: 0\n"
            f"http:\n  server_host: 127.0.0.1\n  server_port: {http_port}\n"
            "api:\nconfig:\nonboarding:\nlogger:\n  default: warning\n")
        t0 = time.monotonic()
        procs.append(subprocess.Popen([str(hass), "-c", str(config), "--skip-pip"], stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL))
        wait_port(http_port, 300)
        ha = HA(f"http://127.0.0.1:{http_port}")
        for _ in range(100):  # the API answers a moment after the port opens
            try:
                ha.onboard()
                break
            except OSError:
                time.sleep(1)
        entry = ha.add_mqtt(mqtt_port)
        print(f"Home Assistant up in {time.monotonic() - t0:.0f} s; MQTT entry: {entry.get('title')} "
              f"({entry['result']['entry_id'] if 'result' in entry else entry})")

        site2 = work / "site2.yaml"
        site2.write_text("mqtt: {topic_prefix: site2}\n")
        common = ["--mqtt", f"mqtt://127.0.0.1:{mqtt_port}", "--homeassistant", "--realtime", "--quiet",
                  "--source-id", "cam0", "--model", args.model]
        edgepose = [sys.executable, "-m", "edgepose", "run"]
        node_a = subprocess.Popen([*edgepose, "--source", args.video, *common], stderr=subprocess.PIPE, text=True)
        time.sleep(5)
        node_b = subprocess.Popen([*edgepose, "--source", args.short, "--config", str(site2), *common],
                                  stderr=subprocess.PIPE, text=True)
        timeline: list[tuple[float, str, str]] = []  # (t, entity, state) on every change
        last: dict[str, str] = {}
        snapshots = {}
        start = time.monotonic()
        b_ended = a_ended = None
        while True:
            now = time.monotonic() - start
            states = {k: v for k, v in ha.states().items() if "cam0" in k}
            for entity, s in states.items():
                if last.get(entity) != s["state"]:
                    last[entity] = s["state"]
                    timeline.append((round(now, 2), entity, s["state"]))
            if b_ended is None and node_b.poll() is not None:
                b_ended = now
            if b_ended is not None and "b_ended" not in snapshots and now > b_ended + 3:
                snapshots["b_ended"] = {k: v["state"] for k, v in states.items()}
            if a_ended is None and node_a.poll() is not None:
                a_ended = now
            if a_ended is not None and now > a_ended + 3:
                snapshots["a_ended"] = {k: v["state"] for k, v in states.items()}
                break
            if "running" not in snapshots and now > 20:
                snapshots["running"] = {k: dict(state=v["state"], **{a: v["attributes"].get(a) for a in (
                    "unit_of_measurement", "device_class", "friendly_name")}) for k, v in states.items()}
            time.sleep(0.25)
        for name, proc in (("edgepose", node_a), ("site2", node_b)):
            err = proc.stderr.read()
            if proc.returncode:
                print(f"node {name} exited {proc.returncode}: {err[-2000:]}")
        log = (config / "home-assistant.log").read_text(errors="replace") if (config / "home-assistant.log").exists() else ""
        mqtt_log = [line for line in log.splitlines() if "mqtt" in line.lower() and ("WARNING" in line or "ERROR" in line)]
    finally:
        for proc in reversed(procs):
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()

    people = [(t, s) for t, e, s in timeline if e == "sensor.edgepose_cam0_people"]
    values = [s for _, s in people]
    durations: dict[str, float] = {}
    for (t, s), (t_next, _) in zip(people, people[1:] + [(a_ended or people[-1][0], None)]):
        durations[s] = round(durations.get(s, 0.0) + t_next - t, 1)
    print("\nentities while both nodes ran (state, unit, device class, name):")
    for entity, s in sorted(snapshots.get("running", {}).items()):
        print(f"  {entity:48s} {s['state']!s:12s} {s['unit_of_measurement']!s:7s} {s['device_class']!s:10s} "
              f"{s['friendly_name']}")
    print(f"\nsensor.edgepose_cam0_people over the video ({a_ended:.0f} s): {len(values) - 1} changes, "
          f"values {values}")
    print(f"time per value (s): {durations}")
    print(f"\n3 s after node site2's video ended (node edgepose running): "
          f"{json.dumps(snapshots.get('b_ended'), indent=1, sort_keys=True)}")
    print(f"\n3 s after node edgepose's video ended: {json.dumps(snapshots.get('a_ended'), indent=1, sort_keys=True)}")
    print(f"\nHome Assistant log, MQTT warnings/errors ({len(mqtt_log)}):")
    for line in mqtt_log[:40]:
        print("  " + line[:300])
    if args.out:
        Path(args.out).write_text(json.dumps({"timeline": timeline, "snapshots": snapshots, "mqtt_log": mqtt_log,
                                              "durations": durations}, indent=1))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
