"""Poses/events/stats messages against the shipped JSON Schema, and the JSON-lines / multi sinks."""

from __future__ import annotations

import json
import re
import time
from collections import defaultdict

import cv2
import numpy as np
import pytest

from edgepose.publish import JsonLinesSink, MultiSink, event_message, open_sink, pose_message, stats_message
from edgepose.publish.message import encode, iso_utc, pose_schema, validate_pose_message
from edgepose.types import JOINT_NAMES, Frame, Poses


@pytest.fixture(scope="module")
def coco_people(coco_mini):
    """(image path, Poses in image pixels) for every COCO-mini image with annotated people."""
    ann = json.loads((coco_mini / "person_keypoints.json").read_text())
    files = {img["id"]: coco_mini / "images" / img["file_name"] for img in ann["images"]}
    by_image = defaultdict(list)
    for a in ann["annotations"]:
        if a["num_keypoints"] > 0:
            by_image[a["image_id"]].append(np.asarray(a["keypoints"], np.float32).reshape(17, 3))
    out = []
    for image_id, kps in sorted(by_image.items()):
        k = np.stack(kps)
        visible = (k[:, :, 2] > 0).astype(np.float32)
        out.append((files[image_id], Poses(k[:, :, :2], visible, visible.mean(axis=1))))
    return out


def _frame(image: np.ndarray, index: int = 0) -> Frame:
    return Frame(image, index, time.monotonic_ns(), time.time_ns())


def test_real_coco_people_make_valid_messages_with_exact_joints(coco_people):
    assert len(coco_people) >= 10
    for n, (path, poses) in enumerate(coco_people):
        frame = _frame(cv2.imread(str(path)), n)
        msg = pose_message(source_id="coco", frame=frame, poses=poses, model="gt", inference_ms=1.5, total_ms=4.25)
        validate_pose_message(msg)
        validate_pose_message(json.loads(encode(msg)))  # what a subscriber parses
        assert msg["frame"] == {"width": frame.size[0], "height": frame.size[1]}
        assert len(msg["people"]) == len(poses)
        for person, xy, conf, box in zip(msg["people"], poses.xy, poses.conf, poses.boxes()):
            assert list(person["keypoints"]) == list(JOINT_NAMES)
            got = np.array([[j["x"], j["y"]] for j in person["keypoints"].values()])
            np.testing.assert_allclose(got, xy, atol=0.05)
            assert [j["confidence"] for j in person["keypoints"].values()] == conf.tolist()
            np.testing.assert_allclose(person["bbox"], box, atol=0.05)
            assert person["track_id"] == -1


def test_encoded_messages_are_the_standard_librarys_json_and_always_valid(coco_people):
    """The sinks' encoder writes what json.dumps would for a poses message, byte for byte, plus what json.dumps
    gets wrong or refuses: numpy values become numbers, NaN and infinity null, integer keys strings."""
    path, poses = max(coco_people, key=lambda p: len(p[1]))
    msg = pose_message(source_id="coco", frame=_frame(cv2.imread(str(path))), poses=poses, model="gt",
                       inference_ms=1.5, total_ms=4.25)
    assert encode(msg) == json.dumps(msg, separators=(",", ":")).encode()
    odd = {"a": np.float32(0.5), "b": np.arange(3), "c": float("nan"), "d": float("inf"), 7: "seven", "é": "ü"}
    assert json.loads(encode(odd)) == {"a": 0.5, "b": [0, 1, 2], "c": None, "d": None, "7": "seven", "é": "ü"}


def test_crowd_message_values_are_rounded_as_the_schema_says():
    """Keypoints and boxes to 0.1 px, confidences and scores to 1e-4, however many people."""
    rng = np.random.default_rng(3)
    poses = Poses(rng.random((30, 17, 2), dtype=np.float32) * 640, rng.random((30, 17), dtype=np.float32),
                  rng.random(30, dtype=np.float32))
    msg = pose_message(source_id="crowd", frame=_frame(np.zeros((480, 640, 3), np.uint8)), poses=poses, model="m",
                       inference_ms=1, total_ms=2)
    for person, xy, conf, score in zip(msg["people"], poses.xy, poses.conf, poses.score):
        got = np.array([[j["x"], j["y"]] for j in person["keypoints"].values()])
        np.testing.assert_allclose(got, xy, atol=0.05 + 1e-4)
        assert all(round(v, 1) == v for v in got.ravel().tolist() + person["bbox"])
        got_conf = [j["confidence"] for j in person["keypoints"].values()]
        np.testing.assert_allclose(got_conf, conf, atol=5e-5 + 1e-7)
        assert all(round(c, 4) == c for c in got_conf) and person["score"] == round(person["score"], 4)
        assert abs(person["score"] - score) <= 5e-5 + 1e-7


def test_timestamp_is_iso_utc_of_wall_time():
    assert iso_utc(1_700_000_000_123_456_789) == "2023-11-14T22:13:20.123456Z"
    frame = Frame(np.zeros((4, 6, 3), np.uint8), 7, 1, 1_700_000_000_123_456_789)
    msg = pose_message(source_id="a", frame=frame, poses=Poses.empty(), model="m", inference_ms=0, total_ms=0)
    assert (msg["timestamp"], msg["timestamp_ns"], msg["frame_index"], msg["people"]) == (
        "2023-11-14T22:13:20.123456Z", 1_700_000_000_123_456_789, 7, [])
    validate_pose_message(msg)


@pytest.mark.parametrize(
    "mutate, where",
    [
        (lambda m: m.pop("model"), "(message)"),
        (lambda m: m["people"][0]["keypoints"].pop("left_knee"), "people/0/keypoints"),
        (lambda m: m["people"][0]["keypoints"]["nose"].update(confidence=-0.5), "people/0/keypoints/nose/confidence"),
        (lambda m: m["people"][0].update(bbox=[1, 2, 3]), "people/0/bbox"),
        (lambda m: m.update(timestamp="yesterday"), "timestamp"),
        (lambda m: m.update(source_id="a/b"), "source_id"),
        (lambda m: m.update(extra=1), "(message)"),
    ],
)
def test_schema_rejects_broken_messages(coco_people, mutate, where):
    path, poses = coco_people[0]
    msg = pose_message(source_id="a", frame=_frame(cv2.imread(str(path))), poses=poses, model="m",
                       inference_ms=1, total_ms=2)
    mutate(msg)
    with pytest.raises(ValueError, match=re.escape(f"invalid at {where}:")):
        validate_pose_message(msg)


def test_schema_names_every_joint_of_the_contract():
    person = pose_schema()["$defs"]["person"]["properties"]["keypoints"]
    assert person["required"] == list(JOINT_NAMES) == list(person["properties"])


def test_event_and_stats_messages():
    ev = event_message(source_id="a", kind="person_left", track_id=4, frame_index=9, wall_time_ns=10**18,
                       bbox=[1, 2, 3, 4], duration_s=2.5)
    assert (ev["event"], ev["track_id"], ev["timestamp"], ev["duration_s"]) == (
        "person_left", 4, "2001-09-09T01:46:40.000000Z", 2.5)
    with pytest.raises(ValueError, match="event kind"):
        event_message(source_id="a", kind="waved", track_id=1, frame_index=0, wall_time_ns=0)
    st = stats_message(source_id="a", wall_time_ns=0, fps=14.96, latency_ms={"inference": np.arange(1, 101),
                       "decode": []}, frames=100, dropped_frames=3, people=2, model="H-4", device="CPU", uptime_s=7)
    assert st["latency_ms"] == {"inference": {"p50": 50.5, "p90": 90.1}, "decode": {"p50": None, "p90": None}}
    assert (st["fps"], st["dropped_frames"], st["people"]) == (14.96, 3, 2)


def test_jsonl_file_appears_complete_only_on_close(tmp_path):
    out = tmp_path / "run.jsonl"
    sink = open_sink(str(out))
    assert isinstance(sink, JsonLinesSink)
    for i in range(3):
        sink.send_poses("a", {"frame_index": i})
    sink.send_event("a", {"event": "person_entered"})
    sink.send_snapshot("a", b"\xff\xd8")
    assert not out.exists()
    part = tmp_path / "run.jsonl.part"
    assert len(part.read_text().splitlines()) == 4  # flushed per line while running
    sink.close()
    assert not part.exists()
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert lines == [{"frame_index": 0}, {"frame_index": 1}, {"frame_index": 2}, {"event": "person_entered"}]


def test_stdout_and_file_together(tmp_path, capsys):
    sink = open_sink(f"-, {tmp_path / 'b.jsonl'}")
    assert isinstance(sink, MultiSink) and len(sink.sinks) == 2
    sink.send_stats("a", {"fps": 1.0})
    sink.close()
    assert capsys.readouterr().out == '{"fps":1.0}\n'
    assert (tmp_path / "b.jsonl").read_text() == '{"fps":1.0}\n'


def test_bad_outputs_are_clear(tmp_path):
    from edgepose.errors import EdgeposeError

    with pytest.raises(ValueError, match="unknown output 'out.txt'"):
        open_sink("out.txt")
    with pytest.raises(EdgeposeError, match="cannot write output file .*missing"):
        open_sink(str(tmp_path / "missing" / "x.jsonl"))
