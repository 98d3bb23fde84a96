"""Prometheus text-format ``/metrics`` and a ``/healthz`` probe, served by the stdlib in a daemon thread.

The figures are the ``stats`` messages (see ``message.stats_message``) the service already builds, so MQTT stats
and Prometheus never disagree. Bound to 127.0.0.1 unless configured otherwise: the endpoint has no auth.
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from edgepose.errors import EdgeposeError

log = logging.getLogger(__name__)

PREFIX = "edgepose"
# stats field -> (metric name, type, help); anything numeric not listed is exported as edgepose_<path> gauge.
KNOWN: dict[str, tuple[str, str, str]] = {
    "fps": ("fps", "gauge", "Frames processed per second."),
    "frames": ("frames_total", "counter", "Frames processed since start."),
    "dropped_frames": ("dropped_frames_total", "counter", "Frames the source dropped (live sources keep the newest)."),
    "people": ("people", "gauge", "People present under the counting rule (the people topic)."),
    "uptime_s": ("uptime_seconds", "gauge", "Seconds since the source started."),
    "timestamp_ns": ("stats_timestamp_seconds", "gauge", "Wall time of the last stats update."),
}
SKIP = {"schema_version", "source_id", "timestamp", "model", "device", "latency_ms", "analytics", "state"}
_NAME_BAD = re.compile(r"[^a-zA-Z0-9_]")


def _label_value(value: object) -> str:
    return str(value).replace("\\", r"\\").replace('"', r"\"").replace("\n", r"\n")


def _labels(**labels: object) -> str:
    return "{" + ",".join(f'{k}="{_label_value(v)}"' for k, v in labels.items()) + "}"


def _number(value: object) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)) and math.isfinite(value):
        return float(value)
    return None


def render_metrics(stats: Mapping[str, Mapping], healthy: bool) -> str:
    """Prometheus exposition text for ``{source_id: stats message}``."""
    samples: dict[str, list[str]] = {}
    meta: dict[str, tuple[str, str]] = {}

    def add(name: str, kind: str, help_: str, labels: str, value: float) -> None:
        full = f"{PREFIX}_{name}"
        meta.setdefault(full, (kind, help_))
        samples.setdefault(full, []).append(f"{full}{labels} {value:.10g}")

    add("healthy", "gauge", "1 while the service is healthy (see /healthz).", "", float(healthy))
    for source, msg in sorted(stats.items()):
        add("info", "gauge", "Model and device of each source.",
            _labels(source=source, model=msg.get("model", ""), device=msg.get("device", "")), 1.0)
        for stage, quantiles in sorted((msg.get("latency_ms") or {}).items()):
            for q, value in sorted((quantiles or {}).items()):
                number = _number(value)
                if number is not None and q.startswith("p"):
                    labels = _labels(source=source, stage=stage, quantile=f"{int(q[1:]) / 100:g}")
                    add("latency_ms", "gauge", "Per-stage latency percentiles over the stats window, ms.", labels,
                        number)
        _analytics(add, source, msg.get("analytics") or {})
        for path, value in _leaves(msg):
            number = _number(value)
            if number is None or path[0] in SKIP:
                continue
            if path[0] in KNOWN and len(path) == 1:
                name, kind, help_ = KNOWN[path[0]]
                number = number / 1e9 if path[0] == "timestamp_ns" else number
            else:
                name, kind, help_ = _NAME_BAD.sub("_", "_".join(path)), "gauge", "From the stats message."
            add(name, kind, help_, _labels(source=source), number)
    lines = []
    for name, rows in samples.items():
        kind, help_ = meta[name]
        lines += [f"# HELP {name} {help_}", f"# TYPE {name} {kind}", *rows]
    return "\n".join(lines) + "\n"


def _analytics(add, source: str, figures: Mapping) -> None:
    """Zone, line, rule and event figures of the stats message's ``analytics`` part, names as labels."""
    for zone, z in sorted((figures.get("zones") or {}).items()):
        add("zone_people", "gauge", "People in the zone.", _labels(source=source, zone=zone), z["count"])
        add("zone_crowded", "gauge", "1 while the zone holds at least its crowd threshold.",
            _labels(source=source, zone=zone), float(z["crowded"]))
    for line, c in sorted((figures.get("lines") or {}).items()):
        for direction in ("in", "out"):
            add("line_crossings_total", "counter", "Line crossings since start.",
                _labels(source=source, line=line, direction=direction), c[direction])
    for rule, active in sorted((figures.get("rules") or {}).items()):
        add("rule_active", "gauge", "People the rule holds now (fallen, hands up).", _labels(source=source, rule=rule),
            active)
    for event, n in sorted((figures.get("events") or {}).items()):
        add("analytics_events_total", "counter", "Analytics events since start.", _labels(source=source, event=event),
            n)


def _leaves(msg: Mapping, prefix: tuple[str, ...] = ()):
    for key, value in msg.items():
        if isinstance(value, Mapping):
            yield from _leaves(value, prefix + (str(key),))
        else:
            yield prefix + (str(key),), value


class MetricsServer:
    """Serves ``/metrics`` and ``/healthz`` on host:port (port 0 picks a free one; see ``.port``) until close().

    ``/healthz`` answers 200 or 503 with a JSON body ``{"status": "ok"|"unhealthy", "reasons": [...], ...}``.
    health() -> (healthy, body) decides (the service passes its supervisors' verdict); without it,
    ``set_healthy`` does.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *,
                 health: Callable[[], tuple[bool, dict]] | None = None):
        self._lock = threading.Lock()
        self._stats: dict[str, dict] = {}
        self._healthy = True
        self._reason = ""
        self._health = health
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's naming
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    status, ctype, body = 200, "text/plain; version=0.0.4; charset=utf-8", owner.render()
                elif path == "/healthz":
                    healthy, verdict = owner.health()
                    status, ctype = (200 if healthy else 503), "application/json"
                    body = json.dumps(verdict) + "\n"
                else:
                    status, ctype, body = 404, "text/plain; charset=utf-8", "try /metrics or /healthz\n"
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, fmt, *args):
                log.debug("metrics %s " + fmt, self.client_address[0], *args)

        try:
            self._server = ThreadingHTTPServer((host, port), Handler)
        except OSError as exc:
            raise EdgeposeError(
                f"cannot serve metrics on {host}:{port}: {exc.strerror}; pick another --metrics-port or metrics.host"
            ) from None
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="edgepose-metrics", daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        host = self._server.server_address[0]
        return f"http://{host}:{self.port}"

    def update(self, source_id: str, stats: Mapping) -> None:
        """Replace a source's figures with its latest stats message."""
        with self._lock:
            self._stats[source_id] = dict(stats)

    def set_healthy(self, healthy: bool, reason: str = "") -> None:
        """What /healthz answers: 200 when healthy, 503 with ``reason`` otherwise."""
        with self._lock:
            self._healthy, self._reason = bool(healthy), reason

    def health(self) -> tuple[bool, dict]:
        """(healthy, body) of ``/healthz``."""
        if self._health is not None:
            try:
                return self._health()
            except Exception as exc:  # noqa: BLE001 - a probe that cannot decide must say so, not hang up
                log.warning("health check failed: %s", exc)
                return False, {"status": "unhealthy", "reasons": [f"health check failed: {exc}"]}
        with self._lock:
            healthy, reason = self._healthy, self._reason
        return healthy, {"status": "ok" if healthy else "unhealthy", "reasons": [] if healthy else [reason or "see logs"]}

    def render(self) -> str:
        with self._lock:
            stats = dict(self._stats)
        return render_metrics(stats, self.health()[0])

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=2)

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
