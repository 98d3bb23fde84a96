"""Snapshot JPEGs from real video frames: rate limit, size cap, raw vs annotated, privacy mode."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edgepose.config import SnapshotConfig
from edgepose.publish.snapshot import SnapshotEncoder, encode_jpeg
from edgepose.types import Frame, Poses


@pytest.fixture(scope="module")
def frame(video_classroom) -> Frame:
    cap = cv2.VideoCapture(str(video_classroom))
    ok, image = cap.read()
    cap.release()
    assert ok
    return Frame(image, 0, 0, 0)


def _decode(jpeg: bytes) -> np.ndarray:
    assert jpeg[:2] == b"\xff\xd8"
    return cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)


def _person(frame: Frame) -> Poses:
    w, h = frame.size
    xy = np.tile([[w * 0.3, h * 0.3]], (17, 1)) + np.linspace(0, min(w, h) * 0.4, 17)[:, None]
    return Poses(xy[None], np.ones((1, 17)), np.ones(1))


def test_rate_limited_to_one_per_interval_starting_with_the_first_frame(frame):
    enc = SnapshotEncoder(SnapshotConfig(interval_s=2.0))
    got = [enc.maybe_encode(frame, Poses.empty(), t) is not None for t in (100.0, 101.0, 101.99, 102.0, 103.0, 104.5)]
    assert got == [True, False, False, True, False, True]


def test_raw_frame_by_default_and_skeletons_when_annotate(frame):
    raw = _decode(SnapshotEncoder().maybe_encode(frame, _person(frame), 0.0))
    assert raw.shape == frame.image.shape
    # Raw: only JPEG noise. Annotated: the skeleton is in the picture.
    assert np.abs(raw.astype(int) - frame.image).mean() < 4
    annotated = _decode(SnapshotEncoder(SnapshotConfig(annotate=True)).maybe_encode(frame, _person(frame), 0.0))
    diff = np.abs(annotated.astype(int) - raw).sum(axis=2)
    assert (diff > 60).sum() > 500


def test_privacy_mode_never_produces_a_picture(frame):
    enc = SnapshotEncoder(SnapshotConfig(enabled=False))
    assert all(enc.maybe_encode(frame, _person(frame), t) is None for t in (0.0, 10.0, 1000.0))


@pytest.mark.parametrize("max_bytes", [30_000, 8_000, 2_000])
def test_capped_to_max_bytes_by_quality_then_scale(frame, max_bytes):
    full = encode_jpeg(frame.image, quality=95)
    assert len(full) > max_bytes  # the cap really has to act
    jpeg = SnapshotEncoder(SnapshotConfig(max_bytes=max_bytes, quality=95)).maybe_encode(frame, None, 0.0)
    assert len(jpeg) <= max_bytes
    img = _decode(jpeg)
    h, w = frame.image.shape[:2]
    assert abs(img.shape[1] / img.shape[0] - w / h) < 0.05  # aspect ratio kept
    # The cap uses the budget, not a needlessly tiny picture.
    assert len(jpeg) > 0.3 * max_bytes


def test_impossible_cap_gives_none_and_one_warning(frame, caplog):
    assert encode_jpeg(frame.image, quality=80, max_bytes=200) is None
    enc = SnapshotEncoder(SnapshotConfig(max_bytes=1024, interval_s=0.1))
    enc.config = enc.config.model_copy(update={"max_bytes": 200})  # below what the config allows: forces failure
    assert enc.maybe_encode(frame, None, 0.0) is None and enc.maybe_encode(frame, None, 1.0) is None
    assert len([r for r in caplog.records if "max_bytes" in r.getMessage()]) == 1


def test_bad_quality_is_a_clear_error(frame):
    with pytest.raises(ValueError, match="quality must be 1..100"):
        encode_jpeg(frame.image, quality=0)
