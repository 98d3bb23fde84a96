"""Four cameras on one compiled model: the real sample videos through real GStreamer and OpenVINO."""

from __future__ import annotations

import json

import pytest

from edgepose.registry import find_local


@pytest.mark.slow
def test_four_sources_share_one_compiled_model(video_one_by_one, video_classroom, video_aisle, tmp_path,
                                               monkeypatch):
    """Throughput mode, as a site config runs it: every source publishes its frames in order, and the shipped
    model is compiled once (768x432 and 480x270 frames both enter it at 384x192)."""
    from edgepose.config import load_config
    from edgepose.inference import openvino as ov_backend
    from edgepose.service.run import run

    model = find_local("edgepose-h4")
    if model is None:
        pytest.skip("the shipped model models/edgepose-h4 is not here")
    compiles = []
    original = ov_backend.PoseModel._compile
    monkeypatch.setattr(ov_backend.PoseModel, "_compile",
                        lambda self, w, h: compiles.append((w, h)) or original(self, w, h))
    videos = {"door": video_one_by_one, "room": video_classroom, "aisle": video_aisle, "door2": video_one_by_one}
    out = tmp_path / "four.jsonl"
    cfg = load_config(None, {"sources": [{"id": i, "source": str(v)} for i, v in videos.items()],
                             "model": {"name": str(model)}, "inference": {"mode": "throughput"},
                             "output": str(out), "snapshot": {"enabled": False}})
    figures = run(cfg, max_frames=8, status=False)
    frames: dict[str, list[int]] = {}
    for m in map(json.loads, out.read_text().splitlines()):
        if isinstance(m.get("people"), list):
            frames.setdefault(m["source_id"], []).append(m["frame_index"])
    assert frames == {i: list(range(8)) for i in videos}
    assert {i: f["frames"] for i, f in figures.items()} == {i: 8 for i in videos}
    assert compiles == [(384, 192)]
