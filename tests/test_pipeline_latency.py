"""What the run loop's latency figures measure, on a real video through real GStreamer and OpenVINO."""

from __future__ import annotations

import json
import statistics
import time

import pytest

from edgepose.registry import find_local

SEND_MS = 40.0


@pytest.mark.parametrize("mode", ["latency", "throughput"])
def test_total_ms_ends_after_the_sink_accepted_the_message(mode, video_classroom, tmp_path, monkeypatch):
    """A sink that takes 40 ms per poses message (a slow disk, a busy socket) shows up in the stats' total_ms,
    which is stamped after the sink returned; the message itself can only carry the time until it was built."""
    from edgepose.config import load_config
    from edgepose.publish.sinks import JsonLinesSink
    from edgepose.service.run import run

    model = find_local("edgepose-h4")
    if model is None:
        pytest.skip("the shipped model models/edgepose-h4 is not here")
    send = JsonLinesSink.send_poses

    def slow_send(self, source_id, msg):
        time.sleep(SEND_MS / 1e3)
        send(self, source_id, msg)

    monkeypatch.setattr(JsonLinesSink, "send_poses", slow_send)
    out = tmp_path / "poses.jsonl"
    cfg = load_config(None, {"sources": [{"id": "room", "source": str(video_classroom)}], "model": {"name": str(model)},
                             "inference": {"mode": mode}, "output": str(out), "snapshot": {"enabled": False}})
    figures = run(cfg, max_frames=7, status=False)["room"]
    stamped = [m["latency"]["total_ms"] for m in map(json.loads, out.read_text().splitlines()) if isinstance(m.get("people"), list)]
    assert len(stamped) == figures["frames"] == 7
    # Per frame the stats figure is the message's plus the send, so the medians differ by at least the send.
    assert figures["total_ms"]["p50"] >= statistics.median(stamped) + SEND_MS - 0.1
