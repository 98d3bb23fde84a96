"""Analytics end to end: `edgepose run` on the real sample videos with the shipped model (models/edgepose-h4),
real GStreamer, OpenVINO and Mosquitto; what a subscriber receives is checked against what the footage shows.

Ground truth for one-by-one-person-detection.mp4 (768x432, 10 fps, 139.4 s), counted by eye on contact sheets of
one frame per second (cv2.VideoCapture, every 10th frame, 6 x 8 tiles of 256x144, timestamps burnt in) and on
every second frame around each exit: SIX people, one at a time, each walks in from the bottom edge (feet at x ~0.3
to 0.55), stands at the table (feet at x ~0.5 to 0.65) and leaves past the pillar to the bottom right (feet through
x ~0.75 to 0.95): visits at 7-19 s, 23-44 s, 51-69 s, 75-86 s, 93-119 s and 124-135 s. A line from (0.72, 0) to
(0.72, 1) is therefore crossed exactly six times, each time towards the right, which for a line drawn top to
bottom is `out` (its right-hand side, the `in` side, is x < 0.72), and never the other way; a zone on the floor
around the table (x 0.42 to 0.68, y 0.65 to 0.98) is entered and left once by each of them. Nobody falls, sits,
bends, lies down or raises both hands in any of the three videos.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from test_mqtt import Collector

from edgepose.config import MqttConfig
from edgepose.publish.analytics import validate_analytics_event

MODEL = Path(__file__).resolve().parents[1] / "models" / "edgepose-h4"
PEOPLE_WHO_WALK_ACROSS = 6


def run_video(video: Path, broker, tmp_path, zones: str = "[]", lines: str = "[]") -> Collector:
    if not (MODEL / "model.xml").exists():
        pytest.skip("models/edgepose-h4 is not in this checkout")
    config = tmp_path / "site.yaml"
    config.write_text(
        f"sources:\n  - id: room\n    source: '{video}'\n    zones: {zones}\n    lines: {lines}\n"
        "    rules: {fall: true, hands_up: true}\n"
        f"model: {{name: '{MODEL}'}}\nmqtt: {{url: '{broker.url}'}}\nsnapshot: {{enabled: false}}\n")
    sub = Collector(MqttConfig(url=broker.url), topic="edgepose/room/#")
    res = subprocess.run([sys.executable, "-m", "edgepose", "run", "--config", str(config), "--quiet"],
                         capture_output=True, text=True, timeout=1500)
    assert res.returncode == 0, res.stderr
    sub.wait(lambda s: s.on("room/status")[-1:] == [b"offline"], timeout=20)
    sub.close()
    return sub


def analytics_events(sub: Collector) -> list[dict]:
    events = [json.loads(p) for p in sub.on("room/events")]
    out = [e for e in events if "rule" in e]
    for e in out:
        validate_analytics_event(e)
    return out


@pytest.mark.slow
@pytest.mark.timeout(1800)  # every one of the 1394 frames is processed: about 2 minutes idle, 6 on a busy 2-core box
def test_line_across_the_room_counts_everyone_who_walks_across_and_nobody_falls(
        mosquitto, video_one_by_one, tmp_path):
    sub = run_video(video_one_by_one, mosquitto, tmp_path,
                    zones="[{name: table, polygon: [[0.42, 0.65], [0.68, 0.65], [0.68, 0.98], [0.42, 0.98]]}]",
                    lines="[{name: exit, points: [[0.72, 0.0], [0.72, 1.0]]}]")
    events = analytics_events(sub)
    kinds = [e["event"] for e in events]
    crossings = [(e["direction"], e["track_id"], e["start"]) for e in events if e["event"] == "line_crossed"]
    falls = [e for e in events if e["event"] == "fall"]
    retained_in, retained_out = sub.on("room/lines/exit/in")[-1], sub.on("room/lines/exit/out")[-1]
    print(f"crossings {crossings}; retained in={retained_in.decode()} out={retained_out.decode()}; "
          f"fall events {len(falls)}; zone_entered {kinds.count('zone_entered')} zone_left {kinds.count('zone_left')}; "
          f"hands_up {kinds.count('hands_up')}")
    assert falls == [] and "hands_up" not in kinds
    assert (int(retained_in), int(retained_out)) == (0, PEOPLE_WHO_WALK_ACROSS), crossings
    assert len(crossings) == PEOPLE_WHO_WALK_ACROSS
    assert (kinds.count("zone_entered"), kinds.count("zone_left")) == (PEOPLE_WHO_WALK_ACROSS,) * 2
    assert sub.on("room/zones/table/count")[-1] == b"0" and sub.on("room/rules/fall")[-1] == b"OFF"
    stats = json.loads(sub.on("room/stats")[-1])
    assert stats["analytics"]["lines"]["exit"] == {"in": 0, "out": PEOPLE_WHO_WALK_ACROSS}
    assert stats["analytics"]["events"]["fall"] == 0


@pytest.mark.slow
@pytest.mark.parametrize("video", ["store-aisle-detection.mp4", "classroom.mp4"])
def test_no_fall_events_on_the_other_sample_videos(mosquitto, shared_dir, tmp_path, video):
    sub = run_video(shared_dir / "data" / "video" / video, mosquitto, tmp_path)
    events = analytics_events(sub)
    assert [e["event"] for e in events if e["event"] in ("fall", "hands_up")] == []
    assert sub.on("room/rules/fall")[-1] == b"OFF"
