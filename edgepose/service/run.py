"""``edgepose run``: wires configuration, sources, the shared model, grouping, tracking and sinks together.

Startup fails fast with one clear error (sources, then model, then broker) before any frame is processed.
SIGINT/SIGTERM stop capture; frames in flight are still published, then the sinks close (MQTT publishes
``offline`` and flushes queued QoS-1 messages) and the cameras are released.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgepose.config import AppConfig, DecodeConfig, SourceConfig
from edgepose.errors import EdgeposeError
from edgepose.types import Frame, NetOutput, Poses
from edgepose.service.pipeline import FrameResult, Pipeline, print_status

log = logging.getLogger(__name__)


def grouping_params(cfg: DecodeConfig):
    from edgepose.decode import GroupingParams

    return GroupingParams(detection_threshold=cfg.detection_threshold, tag_threshold=cfg.tag_threshold,
                          max_people=cfg.max_people, top_k=cfg.max_people, adjust=cfg.adjust, refine=cfg.refine)


def keep_people(poses: Poses, joint_threshold: float, min_joints: int, min_score: float = 0.0) -> Poses:
    """Drop people with fewer than ``min_joints`` joints above ``joint_threshold`` or a score below ``min_score``."""
    if not len(poses):
        return poses
    return poses[((poses.conf > joint_threshold).sum(axis=1) >= min_joints) & (poses.score >= min_score)]


def cache_dir(cfg: AppConfig) -> Path:
    import platformdirs

    return Path(cfg.inference.cache_dir or Path(platformdirs.user_cache_dir("edgepose")) / "openvino")


def _hint(cfg: AppConfig) -> str | None:
    """The configured INFERENCE_PRECISION_HINT (None: the device's default)."""
    return None if cfg.inference.precision_hint == "auto" else cfg.inference.precision_hint


@dataclass
class ModelChoice:
    name: str
    xml: Path
    explanation: str = ""
    registry: bool = False  # found by name in the model directories: checked against its published checksum


def choose_model(cfg: AppConfig, frame_size: tuple[int, int] | None = None, *, reprofile: bool = False,
                 progress=None, profiles_out: dict | None = None) -> ModelChoice:
    """Resolve ``model.name``; ``auto`` profiles the local models on this device and applies the selection rule."""
    from edgepose import registry

    if cfg.model.name != "auto":
        xml = registry.resolve(cfg.model.name)
        # A path names the model by its folder (exports are <name>/model.xml) or its file stem (Intel's IRs).
        is_path = xml.name in cfg.model.name or Path(cfg.model.name).expanduser().exists()
        name = (xml.parent.name if xml.stem == "model" else xml.stem) if is_path else cfg.model.name
        return ModelChoice(name, xml, registry=not is_path)
    from edgepose.registry.profiler import DEFAULT_SIZE, profile_models, select

    local = {name: xml for name, xml in registry.local_models().items() if registry.auto_eligible(xml)}
    if not local:
        raise EdgeposeError("--model auto found no model on this machine; export one (edgepose export --variant "
                            "H-4 ...) or pull one (edgepose models pull human-pose-estimation-0005)")
    decoder = _decoder(grouping_params(cfg.decode))
    # Measured as this configuration will run: its mode, precision hint and number of sources sharing the model.
    profiles = profile_models(local, device=cfg.inference.device, frame_size=frame_size or DEFAULT_SIZE,
                              reprofile=reprofile, cache_dir=cache_dir(cfg), postprocess=decoder, progress=progress,
                              mode=cfg.inference.mode, sources=len(cfg.sources), precision_hint=_hint(cfg))
    if profiles_out is not None:
        profiles_out.update(profiles)
    choice = select(profiles, target_fps=cfg.model.target_fps, max_latency_ms=cfg.model.max_latency_ms)
    if not choice.meets_target:
        log.warning(choice.reason)
    return ModelChoice(choice.name, local[choice.name], choice.reason, registry=True)


def explain(cfg: AppConfig, *, reprofile: bool = False) -> str:
    """The ``--model auto --explain`` report: every local model's profile on this device and the choice."""
    from edgepose.capture import open_source
    from edgepose.registry.profiler import cpu_isa, device_name, format_table

    with open_source(cfg.sources[0].source, pipeline=cfg.sources[0].pipeline) as src:
        size = src.size
    rows = {}
    choice = choose_model(cfg.model_copy(update={"model": cfg.model.model_copy(update={"name": "auto"})}), size,
                          reprofile=reprofile, profiles_out=rows)
    goal = (f"p90 latency <= {cfg.model.max_latency_ms:g} ms" if cfg.model.max_latency_ms is not None
            else f">= {cfg.model.target_fps:g} fps")
    head = (f"device {cfg.inference.device} ({device_name(cfg.inference.device)}, {cpu_isa()}), "
            f"frame {size[0]}x{size[1]}, {cfg.inference.mode} mode, {len(cfg.sources)} source(s), "
            "grouping timed on frames with 2-4 people, "
            f"target {goal} per source")
    return "\n".join([head, format_table(rows), "", "choice: " + choice.explanation])


def people_counter(cfg: AppConfig):
    """The counting rule for one source: score >= publish.min_person_score, tracked, tracking.min_hits to enter,
    tracking.max_age missed frames to leave (per frame by score alone with tracking off)."""
    from edgepose.track import Tracker
    from edgepose.track.counting import PeopleCounter

    t = cfg.tracking
    tracker = Tracker(t.distance, max_distance=t.distance_threshold, min_joint_conf=t.joint_threshold,
                      init_delay=t.min_hits - 1, max_age=t.max_age) if t.enabled else None
    return PeopleCounter(cfg.publish.min_person_score, tracker)


def discovery(cfg: AppConfig, model_name: str) -> dict[str, list[tuple[str, str]]]:
    """Home Assistant discovery per source id (empty unless mqtt.homeassistant): the standard entities and the
    source's zones, lines and rules."""
    if not cfg.mqtt.homeassistant:
        return {}
    from edgepose.publish.analytics import analytics_kind
    from edgepose.publish.homeassistant import ENTITY_KINDS, SourceDevice, discovery_messages

    return {s.id: discovery_messages(SourceDevice(cfg.mqtt, s.id, model_name, snapshots=cfg.snapshot.enabled,
                                                  events=cfg.tracking.enabled, configuration_url=cfg.dashboard.url),
                                     ENTITY_KINDS + (analytics_kind(s),))
            for s in cfg.sources}


def _since(frame: Frame) -> float:
    """Milliseconds since ``frame`` was captured."""
    return (time.monotonic_ns() - frame.timestamp_ns) / 1e6


def _decoder(params):
    from edgepose import decode

    return lambda out: decode.decode(out, params)


class SourceWorker:
    """Per-source state on the worker thread: tracker, stats timer, snapshots, annotated video."""

    def __init__(self, source_cfg: SourceConfig, cfg: AppConfig, model_name: str, sink, decoder, metrics=None,
                 video=None):
        self.id = source_cfg.id
        self.cfg = cfg
        self.model_name = model_name
        self.sink = sink
        self.decoder = decoder
        self.metrics = metrics
        self.video = video
        self.pipeline: Pipeline | None = None
        self.counter = people_counter(cfg)
        self.snapshots = None
        if cfg.snapshot.enabled and hasattr(sink, "send_snapshot"):
            from edgepose.publish.snapshot import SnapshotEncoder

            self.snapshots = SnapshotEncoder(cfg.snapshot)
        self.supervision = None  # () -> the supervisor's figures (state, reconnects, outage_s)
        self._next_stats = time.monotonic() + cfg.mqtt.stats_interval_s
        self._entered_at: dict[int, int] = {}
        self.source_cfg = source_cfg
        self.analytics = None
        from edgepose.analytics import Analytics

        analytics = Analytics(source_cfg.zones, source_cfg.lines, source_cfg.rules)
        if analytics.enabled:
            self.analytics = analytics
        self._counters: dict | None = None

    def post(self, frame: Frame, out: NetOutput, inference_ms: float) -> FrameResult:
        t0 = time.perf_counter()
        d = self.cfg.decode
        poses = keep_people(self.decoder(out), d.joint_threshold, d.min_joints, d.min_score)
        decode_ms = (time.perf_counter() - t0) * 1e3
        update = self.counter.update(poses, frame.clock_ns)
        analytics = None
        if self.analytics is not None:
            events = self.analytics.update(update.poses, frame.size, frame.clock_ns, frame.wall_time_ns,
                                           update.left)
            analytics = (events, self.analytics.counters())
        return FrameResult(frame, update.poses, inference_ms, decode_ms, 0.0, update.entered, update.left,
                           analytics, update.counts, update.count)

    def emit(self, result: FrameResult) -> None:
        from edgepose.publish import event_message, pose_message

        frame, poses = result.frame, result.poses
        # The message can only carry capture -> built; the stats' total_ms also covers the sink accepting it.
        self.sink.send_poses(self.id, pose_message(source_id=self.id, frame=frame, poses=poses, model=self.model_name,
                                                   inference_ms=result.inference_ms, total_ms=_since(frame),
                                                   counted=result.counted, count=result.count))
        result.total_ms = _since(frame)
        boxes = poses.boxes() if result.entered else None
        for tid in result.entered:
            i = int(np.flatnonzero(poses.track_id == tid)[0]) if (poses.track_id == tid).any() else None
            self._entered_at[tid] = frame.wall_time_ns
            self.sink.send_event(self.id, event_message(
                source_id=self.id, kind="person_entered", track_id=tid, frame_index=frame.index,
                wall_time_ns=frame.wall_time_ns, bbox=None if i is None else boxes[i],
                score=None if i is None else float(poses.score[i])))
        for tid in result.left:
            since = self._entered_at.pop(tid, None)
            self.sink.send_event(self.id, event_message(
                source_id=self.id, kind="person_left", track_id=tid, frame_index=frame.index,
                wall_time_ns=frame.wall_time_ns, duration_s=None if since is None else (frame.wall_time_ns - since) / 1e9))
        if result.analytics is not None:
            self._emit_analytics(frame, *result.analytics)
        if self.snapshots is not None:
            jpeg = self.snapshots.maybe_encode(frame, poses, time.monotonic())
            if jpeg is not None:
                self.sink.send_snapshot(self.id, jpeg)
        if self.video is not None:
            self.video.write(frame.image, poses)
        if time.monotonic() >= self._next_stats:
            self._next_stats = time.monotonic() + self.cfg.mqtt.stats_interval_s
            self.publish_stats()

    def _emit_analytics(self, frame: Frame, events: list, counters: dict) -> None:
        from edgepose.publish.analytics import analytics_event_message, retained_topics

        for event in events:
            self.sink.send_event(self.id, analytics_event_message(source_id=self.id, event=event,
                                                                  frame_index=frame.index, frame_size=frame.size))
        if counters != self._counters:
            self._counters = counters
            self.sink.send_analytics(self.id, retained_topics(self.source_cfg, counters))

    def finish(self) -> None:
        """The source has ended while others may go on: final stats, then its own ``offline``."""
        self.publish_stats()
        self.sink.end_source(self.id)

    def publish_stats(self) -> None:
        from edgepose.publish import stats_message

        if self.pipeline is None:
            return
        fig = self.pipeline.status_figures()
        msg = stats_message(
            source_id=self.id, wall_time_ns=time.time_ns(), fps=fig["fps"], latency_ms=self.pipeline.stats.samples(),
            frames=fig["frames"], dropped_frames=fig["dropped"], people=fig["people"], model=self.model_name,
            device=self.cfg.inference.device, uptime_s=fig["uptime_s"],
            extra={"publish": self.sink.delivery_stats(self.id),
                   **({"analytics": self._counters} if self._counters is not None else {}),
                   **(self.supervision() if self.supervision else {})})
        self.sink.send_stats(self.id, msg)
        if self.metrics is not None:
            self.metrics.update(self.id, msg)


def run(cfg: AppConfig, *, max_frames: int | None = None, status: bool = True, model: ModelChoice | None = None,
        stop_event: threading.Event | None = None, reprofile: bool = False) -> dict[str, dict]:
    """Run every configured source until its end, ``max_frames`` each, a signal or ``stop_event``.

    Startup fails fast, before ``online`` is published: a missing file, a model with the wrong outputs or one that
    does not compile for a source's frame size, a refused broker. A live source that is not there yet is retried
    (see ``supervisor``). Returns the final status figures per source id; raises EdgeposeError when the run
    stopped because of a failure.
    """
    from edgepose import registry
    from edgepose.inference import load_model
    from edgepose.publish import open_sink
    from edgepose.service.supervisor import SourceSupervisor, failure_of

    params = grouping_params(cfg.decode)
    decoder = _decoder(params)
    with ExitStack() as stack:
        supervisors = [SourceSupervisor(s, cfg.supervisor) for s in cfg.sources]
        stack.callback(lambda: [sup.stop() for sup in supervisors])
        for sup in supervisors:
            sup.open_first()
        sizes = [sup.source.size for sup in supervisors if sup.source is not None]
        choice = model or choose_model(cfg, sizes[0] if sizes else None, reprofile=reprofile)
        if choice.registry:  # a downloaded model must still be what was published (a path is the user's own)
            registry.verify_local(choice.name, choice.xml)
        if status and choice.explanation:
            print(f"edgepose: --model auto chose {choice.explanation}", file=sys.stderr, flush=True)
        pose_model = load_model(choice.xml, device=cfg.inference.device, mode=cfg.inference.mode,
                                cache_dir=cache_dir(cfg), precision_hint=_hint(cfg), backend=cfg.inference.backend)
        for size in dict.fromkeys(sizes):
            pose_model.prepare(*size)  # compile now: a model that cannot run these frames fails before `online`
        sink = open_sink(cfg.output, cfg.mqtt, [s.id for s in cfg.sources], model=choice.name,
                         discovery=discovery(cfg, choice.name))
        stack.callback(sink.close)
        metrics = None
        if cfg.metrics.port is not None:
            from edgepose.publish.metrics import MetricsServer

            metrics = MetricsServer(cfg.metrics.host, cfg.metrics.port, health=lambda: _health(supervisors, sink, cfg))
            stack.callback(metrics.close)
        video = None
        if cfg.save is not None:
            from edgepose.service.video import AnnotatedVideo

            fps = next((sup.source.fps for sup in supervisors[:1] if sup.source is not None), None)
            video = stack.enter_context(AnnotatedVideo(cfg.save, fps=fps or 15.0))
        workers = []
        for s, sup in zip(cfg.sources, supervisors):
            w = SourceWorker(s, cfg, choice.name, sink, decoder, metrics, video if s is cfg.sources[0] else None)
            w.supervision = sup.figures
            w.pipeline = Pipeline(sup.source, pose_model, post=sup.post(w.post), emit=w.emit, max_frames=max_frames,
                                  status=print_status if status else None)
            sup.pipeline = w.pipeline
            sup.prepare = pose_model.prepare
            sup.on_change = _announcer(sup, w, sink)
            workers.append(w)
            sup.on_change()  # a source still waiting for its camera says `reconnecting` from the start
        _run_all(supervisors, stop_event)
        failure = failure_of(supervisors)
        if failure is not None:
            raise failure  # the sinks close on the way out: `offline`, queued QoS-1 messages flushed
        for w, sup in zip(workers, supervisors):
            if not _ended_alone(sup):  # an ended source published its final stats already
                w.publish_stats()
        return {w.id: w.pipeline.status_figures() for w in workers}


def _health(supervisors, sink, cfg: AppConfig) -> tuple[bool, dict]:
    from edgepose.service.supervisor import health

    return health(supervisors, sink.delivery_stats, cfg.mqtt.buffer_size)


def _ended_alone(sup) -> bool:
    """The source finished by itself (a file's end), not because the run was asked to stop."""
    from edgepose.service.supervisor import FINISHED

    return sup.state == FINISHED and not sup.stopping


def _announcer(sup, worker: SourceWorker, sink):
    """What a state change publishes: ``status`` (online / reconnecting) and a fresh ``stats`` message; a
    source that ended by itself its final stats and its own ``offline`` while the others go on."""
    from edgepose.service.supervisor import ONLINE, RECONNECTING

    def announce() -> None:
        if sup.state in (ONLINE, RECONNECTING):
            sink.send_status(sup.id, sup.state)
            worker.publish_stats()
        elif _ended_alone(sup):
            worker.finish()

    return announce


def _run_all(supervisors, stop_event: threading.Event | None) -> None:
    """Run every source's supervisor until all have finished; a fatal error in one stops the others.

    The loop also feeds systemd: READY=1 once started, WATCHDOG=1 while every worker is alive and moving (a
    hung process is restarted), STOPPING=1 at the end.
    """
    from edgepose.service.notify import sd_notify, watchdog_interval_s

    def stop_all(*_):
        for sup in supervisors:
            sup.stop()

    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, stop_all)
    ping_every = watchdog_interval_s()
    next_ping = 0.0
    try:
        for sup in supervisors:
            sup.start()
        sd_notify("READY=1")
        while any(sup.thread.is_alive() for sup in supervisors):
            if (stop_event is not None and stop_event.is_set()) or any(sup.error for sup in supervisors):
                stop_all()
            now = time.monotonic()
            if ping_every is not None and now >= next_ping and not any(sup.hung(now) for sup in supervisors):
                sd_notify("WATCHDOG=1")
                next_ping = now + ping_every
            for sup in supervisors:
                sup.thread.join(0.1)
    finally:
        sd_notify("STOPPING=1")
        for sig, handler in previous.items():
            signal.signal(sig, handler)
