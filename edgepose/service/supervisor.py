"""Per-source supervision: a live source that ends, fails or stalls is reopened; the others never notice.

Each source runs on its own thread under a ``SourceSupervisor``. A camera, RTSP or HTTP source that cannot be
opened, reports an error, ends, or delivers no frame for ``stall_timeout_s`` goes ``reconnecting``: it is
reopened after an exponential backoff with jitter (``supervisor.reconnect_*``; forever by default), and its
``status``/``stats`` say so, with the reconnect count and the outage time. A video file ends normally at its
end; an error reading it, an inference or publishing failure, or running out of reconnect attempts is fatal:
the run stops (``offline`` published, queues flushed) and exits non-zero, so systemd restarts it.
``health`` is what ``/healthz`` answers.
"""

from __future__ import annotations

import random
import sys
import threading
import time
from typing import Callable

from edgepose.capture import FrameSource, open_source, parse_source
from edgepose.config import SourceConfig, SupervisorConfig
from edgepose.errors import EdgeposeError, SourceError
from edgepose.masking import mask

# Kinds that are reopened after a failure: they come back on their own (a camera reboots, a server restarts).
REOPENED_KINDS = frozenset({"camera", "rtsp", "uri", "test"})
STARTING, ONLINE, RECONNECTING, FINISHED, FAILED = "starting", "online", "reconnecting", "finished", "failed"


class Backoff:
    """Delays initial, 2x, 4x ... up to max, each varied by +-jitter; ``reset`` after a success."""

    def __init__(self, cfg: SupervisorConfig, rng: random.Random | None = None):
        self.cfg = cfg
        self.attempt = 0
        self._rng = rng or random.Random()

    def next_delay(self) -> float:
        base = min(self.cfg.reconnect_max_s, self.cfg.reconnect_initial_s * 2.0 ** min(self.attempt, 60))
        self.attempt += 1
        jitter = self.cfg.reconnect_jitter
        return base * (1.0 + self._rng.uniform(-jitter, jitter))

    @property
    def exhausted(self) -> bool:
        return self.cfg.reconnect_attempts is not None and self.attempt >= self.cfg.reconnect_attempts

    def reset(self) -> None:
        self.attempt = 0


def say(message: str) -> None:
    """A supervision message on stderr (shown even with --quiet: it is about the service, not a figure)."""
    print(f"edgepose: {mask(message)}", file=sys.stderr, flush=True)


class SourceSupervisor:
    """Keeps one source running through its ``Pipeline``; ``run`` is the source's thread.

    ``prepare(width, height)`` readies the shared model for a (re)opened source's frame size; ``on_change()``
    runs on every state change (the service publishes ``status`` and ``stats`` there).
    """

    def __init__(self, source_cfg: SourceConfig, cfg: SupervisorConfig, *, report: Callable[[str], None] = say):
        self.id = source_cfg.id
        self.source_cfg = source_cfg
        self.cfg = cfg
        self.spec = parse_source(source_cfg.source)  # a missing file is an error here, before anything starts
        self.reopens = self.spec.kind in REOPENED_KINDS
        self.report = report
        self.backoff = Backoff(cfg)
        self.state = STARTING
        self.reason = ""
        self.reconnects = 0
        self.outage_total_s = 0.0
        self.error: BaseException | None = None
        self.source: FrameSource | None = None
        self.pipeline = None  # set by the service before start()
        self.prepare: Callable[[int, int], object] = lambda w, h: None
        self.on_change: Callable[[], None] = lambda: None
        self.heartbeat = time.monotonic()
        self.last_frame: float | None = None
        self._online_since = 0.0
        self._outage_since: float | None = None
        self._retry_at = 0.0
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self.run, name=f"edgepose-{self.id}", daemon=True)

    # -- opening ------------------------------------------------------------------------------------------
    def _open(self) -> FrameSource:
        s = self.source_cfg
        self.heartbeat = time.monotonic()
        try:
            return open_source(self.spec, realtime=s.realtime, loop=s.loop, pipeline=s.pipeline,
                               timeout=self.cfg.stall_timeout_s)
        finally:
            self.heartbeat = time.monotonic()

    def open_first(self) -> None:
        """Open the source at start; a live one that is not there yet goes ``reconnecting`` (SourceError otherwise)."""
        try:
            self.source = self._open()
        except SourceError as exc:
            if not self.reopens:
                raise
            self._begin_outage(str(exc), suffix=" (Ctrl-C to stop)")

    # -- the source's thread -------------------------------------------------------------------------------
    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        """Ask the source to finish (frames in flight are still published); any thread, any number of times."""
        self._stop.set()
        if self.pipeline is not None:
            self.pipeline.stop()
        source = self.source
        if source is not None:
            source.close()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def run(self) -> None:
        try:
            self._loop()
            self._set(FINISHED)
        except BaseException as exc:  # noqa: BLE001 - handed to the run loop, which stops the service
            self.error = exc
            self._set(FAILED, str(exc))

    def _loop(self) -> None:
        while not self._stop.is_set():
            if self.source is None and not self._reopen():
                return
            source = self.source
            self.prepare(*source.size)
            self.pipeline.source = source
            self._online_since = time.monotonic()
            self._end_outage()
            failure: SourceError | None = None
            try:
                self.pipeline.run()
            except SourceError as exc:
                failure = exc
            finally:
                self.source = None
                source.close()
            if self._stop.is_set() or self.pipeline.reached_max_frames:
                return
            if not self.reopens or (failure is None and not source.live):
                if failure is not None:
                    raise failure
                return  # a file (or a finite stream) ended
            self._begin_outage(str(failure) if failure else f"{self.spec.display} ended")

    def _reopen(self) -> bool:
        """Wait for the next try and open the source; False when stopped, SourceError when out of attempts."""
        while True:
            while (left := self._retry_at - time.monotonic()) > 0:
                self.heartbeat = time.monotonic()
                if self._stop.wait(min(left, 1.0)):
                    return False
            if self.backoff.exhausted:
                raise SourceError(f"{self.id}: gave up after {self.backoff.attempt} reconnect attempts "
                                  f"({self.reason}) — check the source, or set supervisor.reconnect_attempts")
            try:
                self.source = self._open()
            except SourceError as exc:
                if self._stop.is_set():
                    return False
                self._schedule(str(exc))
                continue
            if self._stop.is_set():
                self.source.close()
                self.source = None
                return False
            return True

    # -- state --------------------------------------------------------------------------------------------
    def _post_frame(self) -> None:
        self.last_frame = self.heartbeat = time.monotonic()

    def post(self, worker_post):
        """Wrap a worker's ``post`` so every processed frame counts as a sign of life."""
        def post(frame, out, inference_ms):
            self._post_frame()
            return worker_post(frame, out, inference_ms)
        return post

    def _set(self, state: str, reason: str = "") -> None:
        self.state, self.reason = state, reason
        self.on_change()

    def _schedule(self, reason: str, suffix: str = "") -> None:
        delay = self.backoff.next_delay()
        self._retry_at = time.monotonic() + delay
        if reason != self.reason or suffix:
            self.report(f"{self.id}: {reason} — retrying in {delay:.2g} s{suffix}")
        self.reason = reason

    def _begin_outage(self, reason: str, suffix: str = "") -> None:
        if self._outage_since is None:
            self._outage_since = time.monotonic()
        self._schedule(reason, suffix)
        self._set(RECONNECTING, reason)

    def _end_outage(self) -> None:
        if self._outage_since is not None:
            lasted = time.monotonic() - self._outage_since
            self.outage_total_s += lasted
            self._outage_since = None
            self.reconnects += 1
            self.report(f"{self.id}: {self.spec.display} is back after {lasted:.1f} s (reconnect {self.reconnects})")
        self.backoff.reset()
        self._set(ONLINE)

    def outage_s(self) -> float:
        """Seconds spent reconnecting since start, the current outage included."""
        current = time.monotonic() - self._outage_since if self._outage_since is not None else 0.0
        return round(self.outage_total_s + current, 1)

    def figures(self) -> dict:
        """What the ``stats`` message carries about supervision."""
        return {"state": self.state, "reconnects": self.reconnects, "outage_s": self.outage_s()}

    def problem(self, now: float) -> str | None:
        """Why this source is unhealthy now, or None."""
        if self.state == FAILED:
            return f"{self.id} failed: {self.reason}"
        if self.state == STARTING:
            return f"{self.id} is starting"
        if self.state == RECONNECTING:
            return f"{self.id} reconnecting for {now - (self._outage_since or now):.0f} s: {self.reason}"
        if self.state == ONLINE:
            seen = max(self.last_frame or 0.0, self._online_since)
            if now - seen > self.cfg.stall_timeout_s:
                return f"{self.id} has had no frame for {now - seen:.0f} s"
        if self.state in (ONLINE, RECONNECTING) and self.thread.ident is not None and not self.thread.is_alive():
            return f"{self.id}'s worker is not running"
        return None

    def hung(self, now: float) -> bool:
        """True when the thread is alive but has shown no sign of life for far longer than any wait it does."""
        limit = max(3 * self.cfg.stall_timeout_s, 30.0)
        return self.thread.is_alive() and now - self.heartbeat > limit


def health(supervisors: list[SourceSupervisor], delivery: Callable[[str], dict], buffer_size: int) -> tuple[bool, dict]:
    """(healthy, body) for ``/healthz``: every source had a frame within ``stall_timeout_s``, its worker is
    alive, and the broker is connected or its outage still fits in the event buffer."""
    now = time.monotonic()
    reasons = []
    sources = {}
    for sup in supervisors:
        problem = sup.problem(now)
        if problem is None and sup.hung(now):
            problem = f"{sup.id}'s worker has not moved for {now - sup.heartbeat:.0f} s"
        if problem:
            reasons.append(problem)
        stats = delivery(sup.id)
        if stats.get("connected") is False and stats.get("buffered", 0) >= buffer_size:
            reasons.append(f"{sup.id}: the broker is unreachable and the event buffer ({buffer_size}) is full")
        age = None if sup.last_frame is None else round(now - sup.last_frame, 1)
        sources[sup.id] = {**sup.figures(), "last_frame_age_s": age, "broker_connected": stats.get("connected")}
    body = {"status": "ok" if not reasons else "unhealthy", "reasons": [mask(r) for r in reasons],
            "sources": sources}
    return not reasons, body


def failure_of(supervisors: list[SourceSupervisor]) -> BaseException | None:
    """The first fatal error among the sources, as a one-line EdgeposeError (the original chained)."""
    for sup in supervisors:
        exc = sup.error
        if exc is None:
            continue
        if isinstance(exc, EdgeposeError):
            return exc
        error = EdgeposeError(f"source {sup.id} stopped: {type(exc).__name__}: {mask(str(exc))} — --debug shows "
                              "the traceback")
        error.__cause__ = exc
        return error
    return None
