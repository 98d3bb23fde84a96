"""edgepose's configuration: one YAML file, validated by pydantic, overridable by env and CLI.

Precedence, lowest first: field defaults < YAML file < ``EDGEPOSE_<SECTION>__<FIELD>`` environment variables
< ``overrides`` (what the CLI passes). Every field has a default that works, so an empty file (or none) runs.
Unknown keys are errors, reported as ``FILE:LINE: section.field: message`` so a typo never silently does nothing.
Each stage receives only its own section (``cfg.mqtt``, ``cfg.decode``...), never the whole ``AppConfig``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import unquote, urlsplit

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from edgepose.errors import EdgeposeError
from edgepose.masking import mask

ENV_PREFIX = "EDGEPOSE_"
_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"  # safe inside an MQTT topic level and a Prometheus label
MQTT_SCHEMES = {"mqtt": False, "tcp": False, "mqtts": True, "ssl": True}  # scheme -> TLS


class ConfigError(EdgeposeError):
    """The configuration is invalid; ``problems`` holds one ``WHERE: section.field: message`` line each."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid configuration:\n  " + "\n  ".join(problems) if len(problems) > 1 else problems[0])


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


Coordinate = Annotated[float, Field(ge=0, le=1)]
Point = tuple[Coordinate, Coordinate]  # (x, y) as fractions of the frame's width and height, origin top left
BodyPoint = Literal["ankles", "hips"]
_BODY_POINT_HELP = (
    "Which part of a person is tested: ankles (their midpoint; the hips when no ankle is visible) or hips."
)


def _crossing_edges(polygon: list[Point]) -> tuple[int, int] | None:
    """The first pair of non-adjacent edges that touch or cross (0-based edge i runs corner i -> i+1), or None."""

    def orient(a, b, c) -> float:
        return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])

    def on_segment(a, b, c) -> bool:  # c collinear with a-b: is it between them?
        return min(a[0], b[0]) <= c[0] <= max(a[0], b[0]) and min(a[1], b[1]) <= c[1] <= max(a[1], b[1])

    def touch(p1, p2, q1, q2) -> bool:
        d1, d2, d3, d4 = orient(q1, q2, p1), orient(q1, q2, p2), orient(p1, p2, q1), orient(p1, p2, q2)
        if ((d1 > 0) != (d2 > 0)) and ((d3 > 0) != (d4 > 0)) and 0 not in (d1, d2, d3, d4):
            return True
        return any(d == 0 and on_segment(a, b, c) for d, a, b, c in
                   ((d1, q1, q2, p1), (d2, q1, q2, p2), (d3, p1, p2, q1), (d4, p1, p2, q2)))

    n = len(polygon)
    edges = [(polygon[i], polygon[(i + 1) % n]) for i in range(n)]
    for i in range(n):
        for j in range(i + 2, n):
            if i == 0 and j == n - 1:
                continue  # neighbours through the closing corner
            if touch(*edges[i], *edges[j]):
                return i, j
    return None


class ZoneConfig(_Section):
    name: str = Field(pattern=_ID_PATTERN, description="Zone name, used in topics (<prefix>/<id>/zones/<name>/...).")
    polygon: list[Point] = Field(
        min_length=3, description="Corners in order around the zone, [x, y] fractions of the frame (0..1)."
    )
    point: BodyPoint = Field("ankles", description=_BODY_POINT_HELP)
    hysteresis: float = Field(
        0.02, ge=0, le=0.5, description="A person leaves only once this far outside (fraction of the frame height)."
    )
    dwell_s: float | None = Field(
        None, gt=0, le=86_400, description="Send a dwell event when someone stays longer than this; None = off."
    )
    crowd: int | None = Field(None, ge=1, le=1000, description="Send a crowd event at this many people; None = off.")

    @field_validator("polygon")
    @classmethod
    def _simple_polygon(cls, polygon: list[Point]) -> list[Point]:
        crossing = _crossing_edges(polygon)
        if crossing is not None:
            i, j = crossing
            raise ValueError(
                f"polygon edges {i + 1} and {j + 1} cross (self-intersecting); list the corners in order around "
                "the zone"
            )
        return polygon


class LineConfig(_Section):
    name: str = Field(pattern=_ID_PATTERN, description="Line name, used in topics (<prefix>/<id>/lines/<name>/...).")
    points: tuple[Point, Point] = Field(description="Its two ends, [x, y] fractions of the frame (0..1).")
    in_side: Literal["right", "left"] = Field(
        "right",
        description="Crossing towards this side counts as `in`: the side on your right (or left) when walking the "
        "line from its first point to its second, as seen in the picture.",
    )
    point: BodyPoint = Field("ankles", description=_BODY_POINT_HELP)
    hysteresis: float = Field(
        0.03, ge=0, le=0.5, description="A crossing counts once the point is this far past the line (fraction of the "
        "frame height), so jitter at the line counts once.",
    )

    @field_validator("points")
    @classmethod
    def _two_distinct(cls, points: tuple[Point, Point]) -> tuple[Point, Point]:
        if points[0] == points[1]:
            raise ValueError("the line's two points are the same; give two different points")
        return points


class FallRule(_Section):
    enabled: bool = Field(False, description="Detect falls: a fast drop of the hips, then lying still.")
    drop_speed: float = Field(
        0.25, gt=0, le=10, description="Downward hip speed that starts a fall, in body heights per second, averaged "
        "over drop_window_s (0.25 over 1 s: the hips fell a quarter of the body height within a second)."
    )
    drop_window_s: float = Field(1.0, gt=0, le=10, description="Seconds over which the hip speed is measured.")
    lying_angle_deg: float = Field(
        65.0, ge=20, le=90, description="Torso tilt from vertical (degrees) at or above which a person may be lying "
        "(a deep squat leans about 45, a person on the floor 70-90)."
    )
    lying_s: float = Field(2.0, ge=0, le=600, description="Seconds lying after the drop before the event fires.")
    within_s: float = Field(3.0, gt=0, le=60, description="Lying must begin within this many seconds of the drop.")
    upright_angle_deg: float = Field(
        30.0, ge=0, le=60, description="Torso tilt below which a person is up again (the rule re-arms)."
    )


class HandsUpRule(_Section):
    enabled: bool = Field(False, description="Detect both wrists held above the head (an alarm gesture).")
    hold_s: float = Field(2.0, ge=0, le=600, description="Seconds both hands must stay up before the event fires.")
    margin: float = Field(
        0.1, ge=0, le=2, description="How far above the top of the head the wrists must be, in torso lengths."
    )


def _rule_switch(value: Any) -> Any:
    if isinstance(value, bool):
        return {"enabled": value}  # `fall: true` is enough
    if not isinstance(value, (Mapping, BaseModel)):
        raise ValueError(f"expected true, false or a mapping of the rule's parameters, got {value!r}")
    return value


class RulesConfig(_Section):
    fall: FallRule = Field(default_factory=FallRule, description="`true`/`false` or the rule's parameters.")
    hands_up: HandsUpRule = Field(default_factory=HandsUpRule, description="`true`/`false` or its parameters.")
    joint_threshold: float = Field(
        0.2, ge=0, le=1, description="Joints below this confidence are treated as not visible by every rule."
    )

    _switch_fall = field_validator("fall", mode="before")(lambda cls, v: _rule_switch(v))
    _switch_hands = field_validator("hands_up", mode="before")(lambda cls, v: _rule_switch(v))


def _unique_names(items: list, kind: str) -> list:
    seen: dict[str, int] = {}
    for i, item in enumerate(items):
        if item.name in seen:
            # ctx["at"] (a path below the validated field) points the error at the repeated item, so
            # `config check` reports that item's line.
            raise PydanticCustomError(
                "duplicate_name", "{kind} name '{name}' is already used by item [{first}]; names must be unique",
                {"kind": kind, "name": item.name, "first": seen[item.name], "at": (i, "name")},
            )
        seen[item.name] = i
    return items


class SourceConfig(_Section):
    id: str = Field("cam0", pattern=_ID_PATTERN, description="Name used in MQTT topics and metrics labels.")
    source: str = Field(
        "test",
        min_length=1,
        description="Camera index (`0`), video file, file:// or http(s):// URI, rtsp:// URL, or `test` (pattern).",
    )
    pipeline: str | None = Field(
        None, description="Named GStreamer template from pipelines/ or a custom launch string; None picks one."
    )
    realtime: bool = Field(False, description="Read files at their frame rate, dropping frames like a live camera.")
    loop: bool = Field(False, description="Start a video file again at its end (demo sites, soak tests).")
    zones: list[ZoneConfig] = Field(default_factory=list, description="Named areas: entered/left, counts, dwell.")
    lines: list[LineConfig] = Field(default_factory=list, description="Named tripwires: in/out crossings.")
    rules: RulesConfig = Field(default_factory=RulesConfig, description="Pose rules: fall, hands_up.")

    _unique_zones = field_validator("zones")(lambda cls, v: _unique_names(v, "zone"))
    _unique_lines = field_validator("lines")(lambda cls, v: _unique_names(v, "line"))


class ModelConfig(_Section):
    name: str = Field(
        "auto", min_length=1, description="Variant (H0..H-4), path to an IR .xml, OMZ model name, or `auto`."
    )
    target_fps: float = Field(15.0, gt=0, le=240, description="Frame rate `auto` must sustain.")
    max_latency_ms: float | None = Field(
        None, gt=0, le=10_000, description="Latency budget `auto` must meet; None = no limit."
    )


class InferenceConfig(_Section):
    device: str = Field("CPU", min_length=1, description="OpenVINO device: CPU, GPU, NPU, AUTO, ...")
    mode: Literal["latency", "throughput"] = Field(
        "latency",
        description="latency: one sync request (fastest for one stream on few cores); throughput: async requests "
        "overlap capture, inference and decoding (more cores, several sources).",
    )
    cache_dir: Path | None = Field(None, description="Compiled-model cache; None = edgepose's user cache dir.")
    precision_hint: Literal["auto", "f32", "f16", "bf16"] = Field(
        "auto", description="INFERENCE_PRECISION_HINT; auto lets OpenVINO choose (bf16 on CPUs that have it)."
    )
    backend: Literal["openvino", "onnxruntime"] = Field(
        "openvino",
        description="openvino (IRs; Intel CPU/iGPU/NPU) or onnxruntime (.onnx exports; TensorRT/CUDA on Jetson).",
    )


class DecodeConfig(_Section):
    detection_threshold: float = Field(0.1, ge=0, le=1, description="Minimum heatmap peak to start a person.")
    joint_threshold: float = Field(0.1, ge=0, le=1, description="Minimum heatmap peak for a joint to be kept.")
    tag_threshold: float = Field(1.0, gt=0, description="Maximum tag distance for a joint to join a person.")
    max_people: int = Field(30, ge=1, le=300, description="Peaks kept per joint type (upper bound on people).")
    min_joints: int = Field(3, ge=1, le=17, description="People with fewer detected joints are dropped.")
    min_score: float = Field(
        0.1, ge=0, le=1, description="People whose score (mean of their 17 joint values) is lower are dropped: "
        "`refine` can complete a stray peak into a faint copy of a real person, which trackers and counts must not see."
    )
    adjust: bool = Field(True, description="Quarter-pixel refinement of peaks towards the higher neighbour.")
    refine: bool = Field(True, description="Search missing joints near each person's mean tag.")


class TlsConfig(_Section):
    ca_file: Path | None = Field(None, description="CA certificate (PEM) the broker's certificate must chain to.")
    cert_file: Path | None = Field(None, description="Client certificate (PEM) for mutual TLS.")
    key_file: Path | None = Field(None, description="Private key (PEM) of cert_file.")
    insecure: bool = Field(False, description="Skip broker certificate/hostname checks (testing only).")

    @model_validator(mode="after")
    def _cert_and_key_together(self) -> TlsConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file must be given together (client certificate and its key)")
        return self

    @property
    def configured(self) -> bool:
        return self.ca_file is not None or self.cert_file is not None or self.insecure


class MqttConfig(_Section):
    url: str = Field(
        "mqtt://127.0.0.1:1883",
        description="mqtt://[user:pass@]host[:port] or mqtts:// for TLS; credentials move to username/password.",
    )
    topic_prefix: str = Field("edgepose", pattern=r"^[^#+\s]+$", description="Topics are <prefix>/<source_id>/...")
    client_id: str | None = Field(
        None, max_length=60, description="Base MQTT client id (one client per source: <id>-<source>); None = random."
    )
    qos_poses: Literal[0, 1, 2] = Field(0, description="QoS of per-frame poses (0: dropped while disconnected).")
    qos_events: Literal[1, 2] = Field(1, description="QoS of person entered/left events (buffered when offline).")
    keepalive: int = Field(30, ge=5, le=3600, description="Seconds; the broker publishes `offline` after ~1.5x.")
    protocol: Literal["v311", "v5"] = Field("v311", description="MQTT protocol version.")
    username: str | None = Field(None, description="Broker user name.")
    password: SecretStr | None = Field(None, description="Broker password (prefer password_file or env).")
    password_file: Path | None = Field(None, description="File whose first line is the password.")
    tls: TlsConfig = Field(default_factory=TlsConfig, description="TLS settings (mqtts:// or any field set).")
    buffer_size: int = Field(
        1000, ge=1, le=1_000_000, description="QoS>=1 messages held while disconnected; oldest dropped first."
    )
    max_queued_messages: int = Field(
        200, ge=1, le=1_000_000,
        description="Messages paho may hold unsent on a slow but connected link (per kind); more are dropped "
        "and counted, so memory stays bounded.",
    )
    stats_interval_s: float = Field(10.0, ge=0.5, le=3600, description="Seconds between retained stats messages.")
    connect_timeout_s: float = Field(10.0, gt=0, le=120, description="How long startup waits for the broker.")
    reconnect_min_delay_s: float = Field(1.0, gt=0, le=60, description="First reconnect delay (doubles each try).")
    reconnect_max_delay_s: float = Field(60.0, gt=0, le=3600, description="Longest delay between reconnects.")
    homeassistant: bool = Field(False, description="Publish Home Assistant MQTT discovery: one device per source.")
    homeassistant_prefix: str = Field("homeassistant", pattern=r"^[^#+\s]+$", description="HA discovery prefix.")

    @field_validator("url")
    @classmethod
    def _check_url(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in MQTT_SCHEMES or not parts.hostname:
            raise ValueError(f"expected mqtt://host[:port] or mqtts://host[:port], got {mask(url)!r}")
        try:
            parts.port  # noqa: B018 - raises ValueError for a bad port
        except ValueError:
            raise ValueError(f"bad port in {mask(url)!r}") from None
        return url

    @model_validator(mode="after")
    def _credentials(self) -> MqttConfig:
        parts = urlsplit(self.url)
        if parts.username is not None:
            # Keep secrets out of the URL so it can be logged and shown as is.
            # Credentials in the URL were given with it, so they win over separately configured ones.
            self.username = unquote(parts.username)
            if parts.password is not None:
                self.password = SecretStr(unquote(parts.password))
            self.url = parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()
        if self.password is not None and self.password_file is not None:
            raise ValueError("give password or password_file, not both")
        if self.reconnect_max_delay_s < self.reconnect_min_delay_s:
            raise ValueError("reconnect_max_delay_s must be >= reconnect_min_delay_s")
        return self

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""

    @property
    def use_tls(self) -> bool:
        return MQTT_SCHEMES[urlsplit(self.url).scheme] or self.tls.configured

    @property
    def port(self) -> int:
        return urlsplit(self.url).port or (8883 if self.use_tls else 1883)

    def resolved_password(self) -> str | None:
        """The password from config/env/URL or the first line of password_file (read now, so rotations apply)."""
        if self.password is not None:
            return self.password.get_secret_value()
        if self.password_file is None:
            return None
        try:
            return self.password_file.read_text().splitlines()[0] if self.password_file.stat().st_size else ""
        except OSError as exc:
            raise EdgeposeError(
                f"cannot read mqtt.password_file {self.password_file}: {exc.strerror}; fix the path or permissions"
            ) from None


class TrackingConfig(_Section):
    enabled: bool = Field(True, description="Assign stable track ids and publish entered/left events.")
    distance: Literal["oks", "iou"] = Field("oks", description="Association distance: 1-OKS or 1-box IoU.")
    distance_threshold: float = Field(0.7, gt=0, le=1, description="Largest distance that still matches a track.")
    joint_threshold: float = Field(0.2, ge=0, le=1, description="Joints below this confidence are ignored.")
    min_hits: int = Field(2, ge=1, le=100, description="Frames a person must be seen before `entered` fires.")
    max_age: int = Field(15, ge=1, le=10_000, description="Frames a track survives unseen before `left` fires.")


class SupervisorConfig(_Section):
    stall_timeout_s: float = Field(
        10.0, gt=0, le=3600, description="A source with no frame for this long is stalled: reopened, /healthz 503."
    )
    reconnect_initial_s: float = Field(1.0, gt=0, le=3600, description="First delay before reopening a live source.")
    reconnect_max_s: float = Field(30.0, gt=0, le=86_400, description="Longest delay; the delay doubles up to it.")
    reconnect_jitter: float = Field(
        0.2, ge=0, le=1, description="Each delay is varied by up to this fraction, so cameras do not retry in step."
    )
    reconnect_attempts: int | None = Field(
        None, ge=1, description="Reopen attempts per outage before the run fails (exit 1); None = forever."
    )

    @model_validator(mode="after")
    def _delays_ordered(self) -> SupervisorConfig:
        if self.reconnect_max_s < self.reconnect_initial_s:
            raise ValueError("reconnect_max_s must be >= reconnect_initial_s")
        return self

class PublishConfig(_Section):
    min_person_score: float = Field(
        0.15, ge=0, le=1,
        description="A person counts (people topic, events, Home Assistant, metrics, dashboard chart) from this score; "
        "poses messages still carry everyone, flagged `counted`.",
    )


class MetricsConfig(_Section):
    port: int | None = Field(None, ge=0, le=65535, description="Prometheus /metrics and /healthz port; None = off.")
    host: str = Field("127.0.0.1", min_length=1, description="Bind address (0.0.0.0 exposes it to the network).")


class SnapshotConfig(_Section):
    enabled: bool = Field(
        True, description="Publish a JPEG (retained) on <prefix>/<id>/snapshot; off = no picture leaves the device."
    )
    interval_s: float = Field(2.0, ge=0.1, le=3600, description="Seconds between snapshots.")
    max_bytes: int = Field(256_000, ge=1024, le=10_000_000, description="Larger JPEGs are re-encoded smaller.")
    quality: int = Field(80, ge=10, le=100, description="JPEG quality.")
    annotate: bool = Field(False, description="Draw skeletons into the JPEG (dashboards draw them from poses).")


class DashboardConfig(_Section):
    mqtt_ws: str = Field(
        "ws://127.0.0.1:9001",
        description="Broker's MQTT-over-WebSocket URL as browsers reach it (ws:// or wss://); no host, e.g. "
        "ws://:9001, means the host the dashboard page came from.",
    )
    host: str = Field("127.0.0.1", min_length=1, description="Bind address (0.0.0.0 exposes it to the network).")
    port: int = Field(8080, ge=0, le=65535, description="HTTP port of the dashboard (0 = any free port).")
    username: str | None = Field(None, description="Broker user the page logs in as (give it read-only access).")
    password: SecretStr | None = Field(None, description="That user's password, handed to the page by the server.")
    token: SecretStr | None = Field(
        None, description="Access token the page needs when bound beyond loopback; None there = a random one, printed."
    )
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Host names browsers may use besides localhost, IP addresses and this machine's name "
        "(a foreign Host header is refused: DNS rebinding).",
    )
    url: str | None = Field(
        None, pattern=r"^https?://", description="The dashboard's address as users reach it (http://nuc.local:8080); "
        "Home Assistant links each source's device page to it. None = no link.",
    )

    @field_validator("mqtt_ws")
    @classmethod
    def _check_ws_url(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("ws", "wss") or parts.username is not None:
            raise ValueError(
                f"expected ws://host:port[/path] or wss://... without credentials (use dashboard.username and "
                f"dashboard.password), got {mask(url)!r}"
            )
        try:
            parts.port  # noqa: B018 - raises ValueError for a bad port
        except ValueError:
            raise ValueError(f"bad port in {url!r}") from None
        return url


class AppConfig(_Section):
    """The whole configuration; a YAML file holds any subset of these sections."""

    sources: list[SourceConfig] = Field(
        default_factory=lambda: [SourceConfig()], min_length=1, description="Video sources (one model shared)."
    )
    model: ModelConfig = Field(default_factory=ModelConfig)
    inference: InferenceConfig = Field(default_factory=InferenceConfig)
    decode: DecodeConfig = Field(default_factory=DecodeConfig)
    mqtt: MqttConfig = Field(default_factory=MqttConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    supervisor: SupervisorConfig = Field(default_factory=SupervisorConfig)
    publish: PublishConfig = Field(default_factory=PublishConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    snapshot: SnapshotConfig = Field(default_factory=SnapshotConfig)
    dashboard: DashboardConfig = Field(default_factory=DashboardConfig)
    output: str = Field(
        "mqtt", description="Where messages go: `mqtt`, `-` (JSON lines on stdout), a .jsonl file, or a comma list."
    )
    save: Path | None = Field(None, description="Write an annotated video here (.mp4); None = off.")

    @field_validator("output")
    @classmethod
    def _check_output(cls, output: str) -> str:
        for part in split_outputs(output):
            if part not in ("mqtt", "-") and not part.endswith(".jsonl"):
                raise ValueError(f"unknown output {part!r}: use mqtt, - (stdout) or a path ending in .jsonl")
        return output

    @model_validator(mode="after")
    def _analytics_need_tracks(self) -> AppConfig:
        if not self.tracking.enabled and any(
            s.zones or s.lines or s.rules.fall.enabled or s.rules.hands_up.enabled for s in self.sources
        ):
            raise PydanticCustomError(
                "analytics_need_tracks", "zones, lines and pose rules follow people by track id; set it to true",
                {"at": ("tracking", "enabled")},
            )
        return self

    @field_validator("sources")
    @classmethod
    def _unique_source_ids(cls, sources: list[SourceConfig]) -> list[SourceConfig]:
        ids = [s.id for s in sources]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"source ids must be unique; repeated: {', '.join(dupes)}")
        return sources


def split_outputs(output: str) -> list[str]:
    """``"mqtt,-"`` -> ``["mqtt", "-"]``; blanks removed."""
    return [p.strip() for p in output.split(",") if p.strip()]


# --- loading -------------------------------------------------------------------------------------------------


def _key_lines(node: yaml.Node, path: tuple, out: dict[tuple, int], dupes: list[tuple[tuple, int]]) -> None:
    """Record the 1-based line of every mapping key / sequence item under ``node``, and repeated keys."""
    if isinstance(node, yaml.MappingNode):
        seen = set()
        for key, value in node.value:
            k = key.value if isinstance(key, yaml.ScalarNode) else str(key.value)
            if k in seen:
                dupes.append((path + (k,), key.start_mark.line + 1))
            seen.add(k)
            out[path + (k,)] = key.start_mark.line + 1
            _key_lines(value, path + (k,), out, dupes)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            out[path + (i,)] = item.start_mark.line + 1
            _key_lines(item, path + (i,), out, dupes)


def _read_yaml(path: Path) -> tuple[dict, dict[tuple, str]]:
    """Parse ``path``; return the data and a map key path -> ``FILE:LINE``."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read config file: {exc.strerror}; check the path"]) from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError([f"{where}: YAML syntax error: {getattr(exc, 'problem', None) or exc}"]) from None
    if data is None:
        return {}, {}
    if not isinstance(data, dict):
        raise ConfigError([f"{path}:1: the file must be a mapping of sections (sources:, mqtt:, ...)"])
    lines: dict[tuple, int] = {}
    dupes: list[tuple[tuple, int]] = []
    _key_lines(node, (), lines, dupes)
    if dupes:
        raise ConfigError([f"{path}:{line}: {_dotted(p)}: key repeated; keep one" for p, line in dupes])
    return data, {tuple(map(str, p)): f"{path}:{line}" for p, line in lines.items()}


def _set_path(data: dict, path: tuple[str, ...], value: Any, label: str) -> None:
    """Set ``data[path] = value``; a numeric part indexes an existing list (``EDGEPOSE_SOURCES__0__SOURCE``)."""
    node: Any = data
    for i, key in enumerate(path):
        last = i == len(path) - 1
        if isinstance(node, list):
            if not key.isdigit() or int(key) >= len(node):
                raise ConfigError([f"{label}: {_dotted(path[:i])} has {len(node)} items; {key!r} is not one of them"])
            index: Any = int(key)
        else:
            index = key
        if last:
            node[index] = value
        else:
            if not isinstance(node[index] if isinstance(node, list) else node.get(index), (dict, list)):
                node[index] = {}
            node = node[index]


def _env_overrides(environ: Mapping[str, str]) -> list[tuple[tuple[str, ...], Any, str]]:
    """``EDGEPOSE_MQTT__URL=...`` -> ``(("mqtt", "url"), value, "env EDGEPOSE_MQTT__URL")``; values parsed as YAML."""
    found = []
    for name, raw in sorted(environ.items()):
        # Only names with "__" are config paths; EDGEPOSE_DEBUG and friends are left alone.
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        path = tuple(p.lower() for p in name[len(ENV_PREFIX) :].split("__"))
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            value = raw
        if isinstance(value, (int, float, bool)) and path[-1] in ("password", "username", "client_id"):
            value = raw  # a numeric password stays a string
        found.append((path, value, f"env {name}"))
    return found


def _dotted(loc: tuple) -> str:
    return ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in loc).replace(".[", "[")


def _locate(loc: tuple, where: dict[tuple, str], default: str) -> str:
    loc = tuple(str(p) for p in loc)  # env paths hold list indices as text
    for n in range(len(loc), 0, -1):
        if loc[:n] in where:
            return where[loc[:n]]
    return default


def load_config(
    path: str | os.PathLike | None = None,
    overrides: Mapping[str, Any] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
) -> AppConfig:
    """Build the effective configuration.

    path: YAML file, or None for defaults. overrides: ``{"mqtt.url": ..., "output": "-"}`` (dotted keys or nested
    dicts; None values are ignored so CLI options that were not given change nothing). environ: defaults to
    ``os.environ``. Raises ConfigError listing every problem as ``WHERE: section.field: message``.
    """
    data: dict = {}
    where: dict[tuple, str] = {}
    origin = "defaults"
    if path is not None:
        path = Path(path)
        data, where = _read_yaml(path)
        origin = str(path)
    layers = _env_overrides(os.environ if environ is None else environ)
    for key, value in _flatten(overrides or {}):
        if value is not None:
            layers.append((key, value, "override " + ".".join(key)))
    for key, value, label in layers:
        _set_path(data, key, value, label)
        where = {p: w for p, w in where.items() if p[: len(key)] != key}
        where[key] = label
    try:
        return AppConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError([_problem(err, where, origin) for err in exc.errors()]) from None


def _flatten(overrides: Mapping[str, Any], prefix: tuple[str, ...] = ()):
    for key, value in overrides.items():
        path = prefix + tuple(str(key).split("."))
        if isinstance(value, Mapping):
            yield from _flatten(value, path)
        else:
            yield path, value


def _problem(err: dict, where: dict[tuple, str], origin: str) -> str:
    loc = tuple(err["loc"]) + tuple((err.get("ctx") or {}).get("at", ()))
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        msg = "unknown key (typo?); `edgepose config show` lists the valid ones"
    field = _dotted(loc) or "(top level)"
    return f"{_locate(loc, where, origin)}: {field}: {msg}"


def config_as_dict(cfg: AppConfig) -> dict:
    """The configuration as plain data with secrets masked (for `config show` and logs): SecretStr fields and
    passwords inside URLs (``rtsp://user:pass@camera``)."""
    return _masked(cfg.model_dump(mode="json"))


def _masked(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _masked(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_masked(v) for v in value]
    return mask(value) if isinstance(value, str) else value
