"""Prometheus /metrics and /healthz over real HTTP; `edgepose watch` against a real broker."""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
from click.testing import CliRunner

from edgepose.cli import cli
from edgepose.config import MqttConfig
from edgepose.errors import BrokerError, EdgeposeError
from edgepose.publish import MetricsServer, event_message, pose_message, stats_message
from edgepose.publish.mqtt import MqttPublisher
from edgepose.publish.watch import format_message, watch
from edgepose.types import Frame, Poses

SAMPLE = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="(\\.|[^"\\])*",?)*\})? -?[0-9.e+-]+$')


def _stats(source="door", fps=14.5):
    return stats_message(source_id=source, wall_time_ns=1_700_000_000_000_000_000, fps=fps,
                         latency_ms={"inference": [10, 20, 30], "total": [15.0] * 4}, frames=300, dropped_frames=2,
                         people=3, model='H-4 "q"', device="CPU", uptime_s=20.5,
                         extra={"publish": {"events_dropped": 4, "connected": True}})


def _get(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.headers["Content-Type"], r.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.headers["Content-Type"], err.read().decode()


def test_metrics_endpoint_serves_stats_and_health():
    with MetricsServer("127.0.0.1", 0) as server:
        server.update("door", _stats())
        server.update("aisle", _stats("aisle", fps=7))
        status, ctype, body = _get(server.url + "/metrics")
        assert status == 200 and ctype.startswith("text/plain; version=0.0.4")
        lines = body.splitlines()
        for line in lines:
            assert line.startswith("# ") or SAMPLE.match(line), line
        names = [line.split()[2] for line in lines if line.startswith("# TYPE")]
        assert len(names) == len(set(names))  # one TYPE per metric family
        for expected in [
            'edgepose_fps{source="door"} 14.5',
            'edgepose_fps{source="aisle"} 7',
            'edgepose_frames_total{source="door"} 300',
            'edgepose_dropped_frames_total{source="door"} 2',
            'edgepose_people{source="door"} 3',
            'edgepose_uptime_seconds{source="door"} 20.5',
            'edgepose_latency_ms{source="door",stage="inference",quantile="0.5"} 20',
            'edgepose_latency_ms{source="door",stage="inference",quantile="0.9"} 28',
            'edgepose_latency_ms{source="door",stage="total",quantile="0.9"} 15',
            'edgepose_publish_events_dropped{source="door"} 4',
            'edgepose_publish_connected{source="door"} 1',
            'edgepose_info{source="door",model="H-4 \\"q\\"",device="CPU"} 1',
            "edgepose_healthy 1",
            "# TYPE edgepose_frames_total counter",
        ]:
            assert expected in lines, expected
        assert _get(server.url + "/healthz")[:1] == (200,)
        server.set_healthy(False, "camera door stalled")
        status, _, body = _get(server.url + "/healthz")
        assert status == 503 and json.loads(body) == {"status": "unhealthy", "reasons": ["camera door stalled"]}
        assert "edgepose_healthy 0" in _get(server.url + "/metrics")[2].splitlines()
        assert _get(server.url + "/nope")[0] == 404


def test_metrics_port_in_use_is_clear():
    with MetricsServer("127.0.0.1", 0) as first:
        with pytest.raises(EdgeposeError, match=f"cannot serve metrics on 127.0.0.1:{first.port}: .*--metrics-port"):
            MetricsServer("127.0.0.1", first.port)


def _poses_message(i, people):
    rng = np.random.default_rng(i)
    poses = Poses(rng.uniform(0, 100, (people, 17, 2)), rng.uniform(0, 1, (people, 17)), np.ones(people),
                  track_id=np.arange(people))
    frame = Frame(np.zeros((120, 160, 3), np.uint8), i, time.monotonic_ns(), time.time_ns())
    return pose_message(source_id="door", frame=frame, poses=poses, model="H-4", inference_ms=8.5, total_ms=12)


def test_format_lines():
    assert format_message("edgepose/door/poses", json.dumps(_poses_message(4, 2)).encode()) == (
        "door poses   frame 4  people 2  latency 8.5/12.0 ms (inference/total)  ids [0, 1]")
    ev = event_message(source_id="door", kind="person_left", track_id=3, frame_index=9, wall_time_ns=0)
    assert format_message("edgepose/door/events", json.dumps(ev).encode()) == (
        "door events  person_left  track 3  frame 9")
    assert format_message("edgepose/door/stats", json.dumps(_stats()).encode()) == (
        "door stats   14.5 fps  inference p50 20 ms  total p50 15 ms  dropped 2  people 3  up 20.5 s")
    assert format_message("edgepose/door/status", b"offline") == "door status  offline"
    assert format_message("edgepose/door/snapshot", b"\xff\xd8" * 10) == "door snapshot  20 bytes (jpeg)"
    assert json.loads(format_message("edgepose/door/status", b"online", as_json=True)) == {
        "topic": "edgepose/door/status", "payload": "online"}


def test_watch_prints_live_messages(mosquitto):
    config = MqttConfig(url=mosquitto.url)
    lines, ready = [], threading.Event()
    with MqttPublisher(config, ["door"]) as pub:
        def on_line(line):
            lines.append(line)
            ready.set()

        thread = threading.Thread(target=watch, args=(config, ["edgepose/door/poses", "edgepose/door/status"],
                                                       on_line), kwargs={"count": 4})
        thread.start()
        assert ready.wait(10)  # the retained status arrived: subscribed
        for i in range(3):
            pub.publish_poses("door", _poses_message(i, i))
        thread.join(10)
        assert not thread.is_alive()
    assert lines == ["door status  online"] + [
        f"door poses   frame {i}  people {i}  latency 8.5/12.0 ms (inference/total)" + ("  ids " + str(
            list(range(i))) if i else "") for i in range(3)]


def test_watch_cli_count_and_errors(mosquitto):
    config = MqttConfig(url=mosquitto.url)
    with MqttPublisher(config, ["door", "aisle"]) as pub:
        pub.publish_stats("door", _stats())
        runner = CliRunner()
        result = runner.invoke(cli, ["watch", "--mqtt", mosquitto.url, "--topic", "edgepose/+/status", "--count", "2"])
        assert result.exit_code == 0, result.output
        assert sorted(result.output.splitlines()) == ["aisle status  online", "door status  online"]
        result = runner.invoke(cli, ["watch", "--mqtt", mosquitto.url, "--topic", "edgepose/door/stats", "--count",
                                     "1", "--json"])
        line = json.loads(result.output)
        assert line["topic"] == "edgepose/door/stats" and line["payload"]["fps"] == 14.5
    mosquitto.stop()
    result = CliRunner().invoke(cli, ["watch", "--mqtt", mosquitto.url, "--count", "1"])
    assert isinstance(result.exception, BrokerError) and "refused the connection" in str(result.exception)
