"""The JSON messages edgepose publishes: poses (per frame), events (per track change), stats (periodic).

The poses message is specified by ``schema.json`` next to this file (shipped with the package) so that
dashboards can validate what they receive. Coordinates are frame pixels; floats are rounded so a message for a
few people stays around 1-2 kB.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from functools import lru_cache
from importlib import resources
from typing import Literal

import numpy as np
import orjson

from edgepose.types import JOINT_NAMES, Frame, Poses

SCHEMA_VERSION = 2  # 2: poses carry `count` and each person's `counted` (the counting rule, edgepose.track.counting)
EVENT_KINDS = ("person_entered", "person_left")


def encode(msg: Mapping) -> bytes:
    """A message as compact UTF-8 JSON, what the sinks send. orjson encodes a 30-person poses message (30 kB) about
    ten times faster than the standard library; numpy scalars and arrays become numbers and lists, NaN and
    infinity become null (json.dumps would write invalid JSON), non-string keys become strings."""
    return orjson.dumps(msg, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)


def iso_utc(wall_time_ns: int) -> str:
    """``time.time_ns()`` -> ``2024-05-01T12:00:00.123456Z``."""
    seconds, ns = divmod(int(wall_time_ns), 1_000_000_000)
    stamp = datetime.fromtimestamp(seconds, tz=timezone.utc).replace(microsecond=ns // 1000)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _person(xy: list, conf: list, score: float, track_id: int, box: list, counted: bool) -> dict:
    # Python lists of already rounded floats (``_rounded``): building 510 keypoint dicts for a crowd of 30 is
    # then all that is left per joint.
    return {
        "track_id": track_id,
        "score": score,
        "counted": counted,
        "bbox": box,
        "keypoints": {name: {"x": x, "y": y, "confidence": c} for name, (x, y), c in zip(JOINT_NAMES, xy, conf)},
    }


def person_entries(poses: Poses, counted: np.ndarray) -> list[dict]:
    """The ``people`` entries of a poses message (schema.json), one per person; counted: a flag per person."""
    return [_person(*person) for person in zip(_rounded(poses.xy, 1), _rounded(poses.conf, 4), _rounded(poses.score, 4),
                                               poses.track_id.tolist(), _rounded(poses.boxes(min_conf=0.0), 1),
                                               np.asarray(counted, bool).tolist())]


def _rounded(values: np.ndarray, decimals: int) -> list:
    """values rounded to ``decimals`` as nested Python floats. One vectorised round instead of a round() per
    value: for 30 people that was half the message's cost. numpy rounds x * 10^d to even, so a value within
    float error of a half (0.15) can round the other way than round() would: a 0.1 px difference at most."""
    return np.round(np.asarray(values, np.float64), decimals).tolist()


def pose_message(
    *,
    source_id: str,
    frame: Frame,
    poses: Poses,
    model: str,
    inference_ms: float,
    total_ms: float,
    frame_size: tuple[int, int] | None = None,
    counted: np.ndarray | None = None,
    count: int | None = None,
) -> dict:
    """One frame's people as the poses message (schema.json).

    poses must be in frame pixels (track_id -1 when untracked). frame_size: (width, height) the coordinates refer
    to; defaults to the frame's own size. bbox is around the joints with confidence > 0. counted (bool per person)
    and count: the counting rule's verdict (``edgepose.track.counting.CountUpdate``); by default everyone counts.
    """
    width, height = frame_size if frame_size is not None else frame.size
    counted = np.ones(len(poses), bool) if counted is None else np.asarray(counted, bool)
    if counted.shape != (len(poses),):
        raise ValueError(f"counted needs one flag per person ({len(poses)}), got shape {counted.shape}")
    return {
        "schema_version": SCHEMA_VERSION,
        "source_id": source_id,
        "frame_index": int(frame.index),
        "timestamp": iso_utc(frame.wall_time_ns),
        "timestamp_ns": int(frame.wall_time_ns),
        "frame": {"width": int(width), "height": int(height)},
        "model": model,
        "latency": {"inference_ms": round(float(inference_ms), 2), "total_ms": round(float(total_ms), 2)},
        "count": int(counted.sum()) if count is None else int(count),
        "people": person_entries(poses, counted),
    }


def event_message(
    *,
    source_id: str,
    kind: Literal["person_entered", "person_left"],
    track_id: int,
    frame_index: int,
    wall_time_ns: int,
    bbox: Sequence[float] | None = None,
    score: float | None = None,
    duration_s: float | None = None,
) -> dict:
    """A tracked person entered or left the view. duration_s (how long they were tracked) goes with person_left."""
    if kind not in EVENT_KINDS:
        raise ValueError(f"event kind must be one of {EVENT_KINDS}, got {kind!r}")
    msg: dict = {
        "schema_version": SCHEMA_VERSION,
        "source_id": source_id,
        "event": kind,
        "track_id": int(track_id),
        "frame_index": int(frame_index),
        "timestamp": iso_utc(wall_time_ns),
        "timestamp_ns": int(wall_time_ns),
    }
    if bbox is not None:
        msg["bbox"] = [round(float(v), 1) for v in bbox]
    if score is not None:
        msg["score"] = round(float(score), 4)
    if duration_s is not None:
        msg["duration_s"] = round(float(duration_s), 3)
    return msg


def percentiles(samples_ms: Sequence[float] | np.ndarray) -> dict[str, float | None]:
    """p50/p90 of latency samples in ms (None when there are none yet)."""
    arr = np.asarray(samples_ms, dtype=np.float64)
    if arr.size == 0:
        return {"p50": None, "p90": None}
    p50, p90 = np.percentile(arr, [50, 90])
    return {"p50": round(float(p50), 2), "p90": round(float(p90), 2)}


def stats_message(
    *,
    source_id: str,
    wall_time_ns: int,
    fps: float,
    latency_ms: Mapping[str, Sequence[float] | np.ndarray],
    frames: int,
    dropped_frames: int,
    people: int,
    model: str,
    device: str,
    uptime_s: float,
    extra: Mapping[str, object] | None = None,
) -> dict:
    """Periodic health figures for one source (published retained, mirrored by the metrics endpoint).

    latency_ms: stage name (``inference``, ``decode``, ``total``...) -> recent samples in ms; reported as p50/p90.
    frames: frames processed since start; dropped_frames: frames the source dropped; people: the people count after
    the last frame (the counting rule's, as on the ``people`` topic).
    extra: further counters (the MQTT sink adds its publish/drop counters under ``publish``).
    """
    msg = {
        "schema_version": SCHEMA_VERSION,
        "source_id": source_id,
        "timestamp": iso_utc(wall_time_ns),
        "timestamp_ns": int(wall_time_ns),
        "fps": round(float(fps), 2),
        "latency_ms": {stage: percentiles(samples) for stage, samples in latency_ms.items()},
        "frames": int(frames),
        "dropped_frames": int(dropped_frames),
        "people": int(people),
        "model": model,
        "device": device,
        "uptime_s": round(float(uptime_s), 1),
    }
    msg.update(extra or {})
    return msg


@lru_cache(maxsize=1)
def pose_schema() -> dict:
    """The JSON Schema (draft 2020-12) of the poses message, as shipped in the package."""
    return json.loads(resources.files("edgepose.publish").joinpath("schema.json").read_text())


@lru_cache(maxsize=1)
def _validator():
    import jsonschema  # only validation needs it; publishing does not

    schema = pose_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


def validate_pose_message(msg: Mapping) -> None:
    """Raise ValueError naming the first offending field if ``msg`` does not follow schema.json."""
    raise_first_error(_validator(), msg, "poses message")


def raise_first_error(validator, msg: Mapping, what: str) -> None:
    """ValueError ``<what> invalid at <path>: <reason>`` for the most relevant schema violation, if any."""
    from jsonschema.exceptions import best_match

    error = best_match(validator.iter_errors(msg))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(message)"
        raise ValueError(f"{what} invalid at {where}: {error.message}")
