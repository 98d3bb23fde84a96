"""Capture on real GStreamer pipelines: real videos from ../shared, the test pattern, a real RTSP server."""

from __future__ import annotations

import numpy as np
import pytest

from edgepose.capture import open_source, parse_source
from edgepose.errors import SourceError


@pytest.mark.parametrize(("fixture", "count"), [("video_classroom", 45), ("video_aisle", 67)])
def test_file_yields_every_frame_in_order(request, fixture, count):
    path = request.getfixturevalue(fixture)
    with open_source(path) as source:
        frames = list(source)
        assert not source.live
        assert source.size == (480, 270)
        assert source.fps == pytest.approx(15.0)
        assert source.dropped == 0
    assert len(frames) == count
    assert [f.index for f in frames] == list(range(count))
    stamps = [f.timestamp_ns for f in frames]
    assert stamps == sorted(stamps)
    image = frames[0].image
    assert image.shape == (270, 480, 3) and image.dtype == np.uint8
    assert image.flags.c_contiguous and image.flags.writeable


def test_test_pattern_is_live_and_yields_frames():
    with open_source(parse_source("test")) as source:
        frames = [next(source) for _ in range(5)]
        assert source.live
        assert source.size == (640, 480)
        assert source.fps == pytest.approx(30.0)
    assert [f.index for f in frames] == sorted({f.index for f in frames})
    assert all(f.image.shape == (480, 640, 3) for f in frames)
    assert frames[-1].image.std() > 10  # a real picture, not a blank buffer


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(SourceError, match="no such video file: .*nope.mp4 — check the path"):
        open_source(str(tmp_path / "nope.mp4"))
