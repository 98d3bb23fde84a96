"""A subscriber for people: one readable line per edgepose message (``edgepose watch``)."""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Callable

from edgepose.config import MqttConfig
from edgepose.publish.mqtt import connect_client, make_client


def _p50(stats: dict, stage: str) -> str:
    value = (stats.get("latency_ms", {}).get(stage) or {}).get("p50")
    return "-" if value is None else f"{value:g}"


def _describe(kind: str, msg) -> str:
    if kind == "poses" and isinstance(msg, dict):
        ids = [p["track_id"] for p in msg.get("people", []) if p.get("track_id", -1) >= 0]
        lat = msg.get("latency", {})
        found = len(msg.get("people", []))
        count = msg.get("count", found)
        line = (f"frame {msg.get('frame_index')}  people {count}{f' (of {found} found)' if found != count else ''}  "
                f"latency {lat.get('inference_ms')}/{lat.get('total_ms')} ms (inference/total)")
        return line + (f"  ids {ids}" if ids else "")
    if kind == "events" and isinstance(msg, dict):
        where = "".join(f"  {key} {msg[key]}" for key in ("zone", "line", "direction", "count") if key in msg)
        return f"{msg.get('event')}  track {msg.get('track_id')}  frame {msg.get('frame_index')}{where}"
    if kind == "stats" and isinstance(msg, dict):
        return (f"{msg.get('fps')} fps  inference p50 {_p50(msg, 'inference')} ms  total p50 {_p50(msg, 'total')} ms"
                f"  dropped {msg.get('dropped_frames')}  people {msg.get('people')}  up {msg.get('uptime_s')} s")
    return json.dumps(msg) if isinstance(msg, (dict, list)) else str(msg)


def format_message(topic: str, payload: bytes, as_json: bool = False) -> str:
    """One line for a message: ``<source> <kind>  <summary>``, or a JSON object {topic, payload} when as_json."""
    parts = topic.split("/")
    kind = parts[-1]
    if kind == "snapshot":
        body = f"{len(payload)} bytes (jpeg)"
        return json.dumps({"topic": topic, "bytes": len(payload)}) if as_json else f"{parts[-2]} snapshot  {body}"
    text = payload.decode("utf-8", "replace")
    try:
        msg = json.loads(text)
    except ValueError:
        msg = text
    if as_json:
        return json.dumps({"topic": topic, "payload": msg}, separators=(",", ":"))
    if len(parts) >= 3 and kind in ("poses", "events", "stats", "status", "people"):
        return f"{parts[-2]} {kind:<7} {_describe(kind, msg)}"
    return f"{topic}  {_describe(kind, msg)}"


def watch(
    config: MqttConfig,
    topics: list[str],
    on_line: Callable[[str], None],
    *,
    count: int | None = None,
    as_json: bool = False,
    stop: threading.Event | None = None,
) -> int:
    """Subscribe to ``topics`` and call on_line for each message until ``count`` messages or ``stop`` is set.

    Raises BrokerError if the broker cannot be reached. Returns the number of messages shown.
    """
    stop = stop or threading.Event()
    seen = 0
    lock = threading.Lock()

    def on_message(client, userdata, msg):
        nonlocal seen
        with lock:
            if count is not None and seen >= count:
                return
            seen += 1
            on_line(format_message(msg.topic, msg.payload, as_json))
            if count is not None and seen >= count:
                stop.set()

    client = make_client(config, f"edgepose-watch-{secrets.token_hex(3)}")
    client.on_message = on_message
    connect_client(client, config, lambda c, rc: [c.subscribe(t, qos=1) for t in topics])
    try:
        while not stop.wait(0.2):
            pass
    finally:
        client.disconnect()
        client.loop_stop()
    return seen
