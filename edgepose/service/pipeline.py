"""The run loop: capture -> inference -> grouping -> tracking -> sinks, with bounded queues between threads.

Latency mode runs on one thread: take the source's next frame (live sources hand over the newest), infer
synchronously, post-process, publish. Throughput mode has two: capture submits frames to OpenVINO's async
queue (blocking while every request is busy, and bounded by a semaphore, so memory stays bounded) and a
worker post-processes completed requests in submission order.
Post-processing = decode (Numba) -> track -> build the message -> sinks. Sinks never block on the network
(the MQTT sink queues), so a broker outage cannot stall capture.
"""

from __future__ import annotations

import heapq
import logging
import queue
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from edgepose.types import Frame, NetOutput, Poses

log = logging.getLogger(__name__)

_END = object()


@dataclass
class FrameResult:
    """Everything known about one processed frame, handed to the frame hooks (video writer, snapshots)."""

    frame: Frame
    poses: Poses
    inference_ms: float
    decode_ms: float
    total_ms: float  # capture -> the sink accepted the poses message; ``emit`` sets it after sending
    entered: list = field(default_factory=list)
    left: list = field(default_factory=list)
    analytics: tuple | None = None  # (events, counters) when the source has zones, lines or pose rules
    counted: np.ndarray | None = None  # per person: counts under the counting rule (edgepose.track.counting)
    count: int = 0  # the people count after this frame


class RunStats:
    """Rolling figures for the status line, the ``stats`` topic and the metrics endpoint."""

    STAGES = ("inference", "decode", "total")

    def __init__(self, window: int = 300):
        self.started = time.monotonic()
        self.frames = 0
        self.people = 0
        self._t = deque(maxlen=window)
        self._samples = {stage: deque(maxlen=window) for stage in self.STAGES}
        self._lock = threading.Lock()

    def add(self, result: FrameResult) -> None:
        with self._lock:
            self.frames += 1
            self.people = result.count
            self._t.append(time.monotonic())
            for stage, ms in zip(self.STAGES, (result.inference_ms, result.decode_ms, result.total_ms)):
                self._samples[stage].append(ms)

    def samples(self) -> dict[str, list[float]]:
        """Recent per-stage latencies in ms (for p50/p90)."""
        with self._lock:
            return {stage: list(values) for stage, values in self._samples.items()}

    def snapshot(self) -> dict:
        from edgepose.publish.message import percentiles

        with self._lock:
            t = list(self._t)
            fps = (len(t) - 1) / (t[-1] - t[0]) if len(t) > 1 and t[-1] > t[0] else 0.0
            figures = {"frames": self.frames, "fps": round(fps, 2), "people": self.people,
                       "uptime_s": round(time.monotonic() - self.started, 1)}
        for stage, values in self.samples().items():
            figures[f"{stage}_ms"] = {k: v or 0.0 for k, v in percentiles(values).items()}
        return figures


class Pipeline:
    """Runs one source through one model until the source ends, ``max_frames`` is reached or ``stop()``.

    ``post`` turns (frame, NetOutput, inference_ms) into a FrameResult (decode + track) and ``emit`` delivers
    it (messages, video, snapshots) and sets its ``total_ms``; both run on one thread, in frame order.
    """

    def __init__(self, source, model, *, post: Callable[[Frame, NetOutput, float], FrameResult],
                 emit: Callable[[FrameResult], None], max_frames: int | None = None,
                 status: Callable[[dict], None] | None = None, status_interval_s: float = 5.0):
        self.source = source
        self.model = model
        self.post = post
        self.emit = emit
        self.max_frames = max_frames
        self.status = status
        self.status_interval_s = status_interval_s
        self.stats = RunStats()
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._submitted = 0
        self._slots = threading.Semaphore(8)

    # -- control ------------------------------------------------------------------------------------------
    def stop(self) -> None:
        """Ask the pipeline to finish: capture stops, frames already in flight are still published."""
        self._stop.set()

    @property
    def reached_max_frames(self) -> bool:
        return self.max_frames is not None and self._submitted >= self.max_frames

    @property
    def dropped(self) -> int:
        return int(getattr(self.source, "dropped", 0))

    def run(self) -> RunStats:
        if self.model.mode == "throughput":
            self._run_throughput()
        else:
            self._run_latency()
        return self.stats

    def _frames(self):
        """Frames until the source ends, ``stop()`` or ``max_frames``; prints the status line on the way."""
        last_status = time.monotonic()
        for frame in self.source:
            if self._stop.is_set() or self._error is not None:
                return
            yield frame
            self._submitted += 1
            if self.status and time.monotonic() - last_status >= self.status_interval_s:
                last_status = time.monotonic()
                self.status(self.status_figures())
            if self.max_frames is not None and self._submitted >= self.max_frames:
                return

    def _run_latency(self) -> None:
        # One thread: each frame the source hands over (the newest, for live sources) goes straight to inference,
        # so capture->publish latency is one inference plus grouping; GStreamer decodes in its own threads.
        for frame in self._frames():
            t0 = time.perf_counter()
            out = self.model.infer(frame.pixels)
            self._deliver(frame, out, (time.perf_counter() - t0) * 1e3)

    def _run_throughput(self) -> None:
        inbox: queue.Queue = queue.Queue()
        # Sequence numbers continue across runs (a reopened source): the worker starts at the next one.
        worker = threading.Thread(target=self._guard, args=(inbox, self._submitted), name="edgepose-worker",
                                  daemon=True)
        worker.start()
        try:
            for frame in self._frames():
                # Bound frames in flight + awaiting post-processing, so a slow decoder cannot pile up memory.
                while not self._slots.acquire(timeout=0.2):
                    if self._stop.is_set() or self._error is not None:
                        return
                data = (self._submitted, frame, time.perf_counter())
                self.model.submit(frame.pixels, data,
                                  lambda out, d: inbox.put((d, out, (time.perf_counter() - d[2]) * 1e3)))
        finally:
            try:
                self.model.wait_all()  # raises what failed in a completion callback
            finally:
                inbox.put(_END)
                while worker.is_alive():
                    worker.join(0.2)
            if self._error is not None:
                raise self._error

    def _guard(self, inbox: queue.Queue, first_seq: int) -> None:
        try:
            self._worker_throughput(inbox, first_seq)
        except BaseException as exc:  # noqa: BLE001 - handed to the capture thread
            self._error = exc
            self._stop.set()
            self.source.close()

    def _worker_throughput(self, inbox: queue.Queue, next_seq: int) -> None:
        # Requests complete out of order; publish in submission order so subscribers see a monotonic stream.
        pending: list = []
        while (item := inbox.get()) is not _END:
            (seq, frame, _), out, inference_ms = item
            heapq.heappush(pending, (seq, frame, out, inference_ms))
            while pending and pending[0][0] == next_seq:
                _, f, o, ms = heapq.heappop(pending)
                self._deliver(f, o, ms)
                self._slots.release()
                next_seq += 1
        for _, f, o, ms in sorted(pending, key=lambda p: p[0]):
            self._deliver(f, o, ms)
            self._slots.release()  # the supervisor runs this pipeline again on a reopened source

    def _deliver(self, frame: Frame, out: NetOutput, inference_ms: float) -> None:
        result = self.post(frame, out, inference_ms)
        self.emit(result)
        self.stats.add(result)  # after emit: total_ms covers building and sending the message

    def status_figures(self) -> dict:
        figures = self.stats.snapshot()
        figures["dropped"] = self.dropped
        return figures


def status_line(figures: dict) -> str:
    return (f"edgepose: {figures['frames']} frames  {figures['fps']:.1f} fps  "
            f"infer {figures['inference_ms']['p50']:.1f} ms  decode {figures['decode_ms']['p50']:.2f} ms  "
            f"total {figures['total_ms']['p50']:.1f} ms  dropped {figures['dropped']}  people {figures['people']}")


def print_status(figures: dict) -> None:
    print(status_line(figures), file=sys.stderr, flush=True)
