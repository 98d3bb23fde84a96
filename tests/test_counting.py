"""Who counts, end to end: `edgepose run --homeassistant` with the shipped model on the real sample videos, two
sources in one process, a real Mosquitto; what a subscriber and Home Assistant would see.

One run serves every test here (one-by-one-person-detection.mp4 is 1394 frames, a few minutes on 2 cores).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from test_mqtt import Collector

from edgepose.config import AppConfig, MqttConfig
from edgepose.publish import validate_pose_message
from edgepose.registry import find_local

# one-by-one-person-detection.mp4: people walk through one at a time. The MoveNet teacher (best person >= 0.3,
# gaps under 1 s closed, runs under 0.5 s dropped) sees 6 visits: `benchmarks/count_rule.py --teacher`.
VISITS = 6
ONE_BY_ONE_FRAMES = 1394


@pytest.fixture(scope="module")
def site(tmp_path_factory, shared_dir):
    from conftest import Mosquitto

    model = find_local("edgepose-h4")
    if model is None:
        pytest.skip("the shipped model models/edgepose-h4 is not here")
    tmp = tmp_path_factory.mktemp("counting")
    broker = Mosquitto(tmp).start()
    video = shared_dir / "data" / "video"
    config = tmp / "site.yaml"
    config.write_text(
        "sources:\n"
        f"  - {{id: obo, source: '{video / 'one-by-one-person-detection.mp4'}'}}\n"
        f"  - {{id: aisle, source: '{video / 'store-aisle-detection.mp4'}'}}\n"
        f"model: {{name: '{model}'}}\n"
        "mqtt: {stats_interval_s: 1.0}\n"
        "snapshot: {interval_s: 1.0}\n"
        "dashboard: {url: 'http://nuc.local:8080'}\n")
    sub = Collector(MqttConfig(url=broker.url))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    res = subprocess.run([sys.executable, "-m", "edgepose", "run", "--config", str(config), "--mqtt", broker.url,
                          "--homeassistant", "--quiet"], capture_output=True, text=True, timeout=1500, env=env)
    sub.wait(lambda s: s.on("obo/status")[-1:] == [b"offline"])
    sub.close()
    broker.stop()
    assert res.returncode == 0, res.stderr
    return sub.messages


def _poses(messages, source: str) -> list[dict]:
    return [json.loads(p) for t, p, _ in messages if t == f"edgepose/{source}/poses"]


def _changes(values) -> int:
    return int(sum(a != b for a, b in zip(values, values[1:])))


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_one_by_one_counts_one_person_at_a_time(site):
    poses = _poses(site, "obo")
    assert [m["frame_index"] for m in poses] == list(range(ONE_BY_ONE_FRAMES))
    counts = np.array([m["count"] for m in poses])
    assert np.isin(counts, (0, 1)).mean() >= 0.98, np.bincount(counts)
    assert (counts >= 1).mean() >= 0.5  # someone is in view most of the time (the teacher: 74 % of frames)
    people = [int(p) for t, p, _ in site if t == "edgepose/obo/people"]
    assert _changes(people) <= 2 * VISITS + 1, people  # one change per entry and per exit, +-1
    assert [v for i, v in enumerate(people) if i == 0 or v != people[i - 1]] == [
        int(v) for i, v in enumerate(counts) if i == 0 or v != counts[i - 1]]  # the topic follows the rule
    # The count is what entered/left events add up to, frame by frame.
    events = [json.loads(p) for t, p, _ in site if t == "edgepose/obo/events"]
    delta = np.zeros(ONE_BY_ONE_FRAMES, int)
    for ev in events:
        delta[ev["frame_index"]] += 1 if ev["event"] == "person_entered" else -1
    assert (np.cumsum(delta) == counts).all()
    # Every person the decoder found is still in poses, with its score and whether it counts.
    persons = [p for m in poses for p in m["people"]]
    assert any(not p["counted"] for p in persons) and any(p["counted"] for p in persons)
    least = AppConfig().publish.min_person_score
    assert all(p["track_id"] >= 0 and p["score"] >= least for p in persons if p["counted"])
    for m in poses[::50]:
        validate_pose_message(m)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_store_aisle_never_counts_more_than_three(site):
    counts = np.array([m["count"] for m in _poses(site, "aisle")])
    assert len(counts) == 67 and counts.max() <= 3 and (counts >= 1).mean() >= 0.5, counts.tolist()


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_a_source_that_ends_goes_offline_while_the_other_goes_on(site):
    topics = [t for t, _, _ in site]
    aisle_offline = next(i for i, (t, p, _) in enumerate(site) if t == "edgepose/aisle/status" and p == b"offline")
    assert topics[aisle_offline + 1:].count("edgepose/obo/poses") > 100
    assert [p for t, p, _ in site[:aisle_offline] if t == "edgepose/obo/status"] == [b"online"]


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_every_announced_topic_is_published(site):
    configs = {t: json.loads(p) for t, p, _ in site if t.startswith("homeassistant/") and p}
    published = {t for t, p, _ in site if not t.startswith("homeassistant/")}
    assert {t.split("/")[2] for t in configs} == {"edgepose_obo", "edgepose_aisle"}
    assert {t.split("/")[1] for t in configs} == {"sensor", "binary_sensor", "event", "camera"}
    for topic, c in configs.items():
        announced = {c[k] for k in ("state_topic", "topic", "availability_topic") if k in c}
        assert announced and announced <= published, (topic, announced - published)
        assert c["device"]["configuration_url"] == "http://nuc.local:8080"
