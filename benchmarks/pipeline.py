#!/usr/bin/env python3
"""Pipeline overhead: the service's run loop against bare inference on the same compiled model and frames.

  throughput mode: pipeline fps / bare OpenVINO async inference fps                   (goal >= 0.90 H-4, 0.95 H-2)
  latency mode:    capture->publish latency p50 / bare synchronous inference p50     (goal <= 1.2)

The pipeline side is the service's own path (GStreamer decode, resize, inference, Numba grouping, tracking, the
poses message and a JSON-lines sink; ``total_ms`` is stamped after the sink accepted each message). The bare side
feeds the same frames, decoded once beforehand (as capture delivers them: I420 from GStreamer), to the same
compiled model. Setup is outside both timings: models are loaded, compiled and warmed (grouping JIT included) once,
and each pipeline round opens its source and sink before its clock starts. The sides are interleaved (bare,
pipeline, pipeline, bare, ...) for ``--rounds`` rounds in this one process, so machine noise falls on both; each
ratio is per round, reported as the median with its min..max.

``--stages`` then runs the pipeline once more with each stage's thread CPU time summed (capture's frame step,
inference submit and output copy, grouping, tracking, message + sink), times capture alone (the source read
as fast as it decodes, no inference: demux, H.264 decode, frames; all threads), and prints the ratio the
pipeline could reach if everything but inference, capture, grouping and tracking cost nothing. On a CPU where
inference uses every core, that bound is what the video decoder and the grouping leave.

    python benchmarks/pipeline.py [--model MODEL.xml] [--video FILE] [--frames 200] [--rounds 8] [--stages]
Without --model: the shipped edgepose-h4, else H-4 exported with random weights (needs the train extra).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from common import SAMPLES, default_model


# (module, attribute, label) of each stage --stages times; a class method is named "Class.method".
GROUPING, TRACKING = "grouping (decode + checks)", "tracking"  # with capture alone, what the bound counts
STAGES = (
    ("edgepose.capture.gstreamer", "GstFrameSource._frame", "capture: GStreamer buffer -> frame"),
    ("edgepose.inference.openvino", "PoseModel.submit", "inference submit (shrink to BGR, copy in)"),
    ("edgepose.inference.openvino", "PoseModel._output", "inference output copy"),
    ("edgepose.decode", "decode", GROUPING),
    ("edgepose.track.tracker", "Tracker.update", TRACKING),
    ("edgepose.service.run", "SourceWorker.emit", "message + sink"),
)


@contextlib.contextmanager
def stage_timers():
    """Sum each STAGES function's thread CPU seconds (per calling thread, so nested threads do not count twice)."""
    spent = dict.fromkeys((label for *_, label in STAGES), 0.0)
    restore = []
    for module, attr, label in STAGES:
        owner = importlib.import_module(module)
        *path, name = attr.split(".")
        for part in path:
            owner = getattr(owner, part)
        original = getattr(owner, name)

        def timed(*args, _f=original, _label=label, **kwargs):
            t = time.thread_time()
            try:
                return _f(*args, **kwargs)
            finally:
                spent[_label] += time.thread_time() - t

        setattr(owner, name, functools.wraps(original)(timed))
        restore.append((owner, name, original))
    try:
        yield spent
    finally:
        for owner, name, original in restore:
            setattr(owner, name, original)


def capture_alone(video: str, n_frames: int) -> float:
    """Process CPU ms per frame of reading ``video`` with the service's source, no inference (all threads)."""
    from edgepose.capture import open_source

    with open_source(video) as src:
        frames = iter(src)
        next(frames)  # the pipeline's first frame is prerolled before its clock too
        c0 = time.process_time()
        read = sum(1 for _ in zip(range(n_frames), frames))
        return (time.process_time() - c0) * 1e3 / read


def print_stages(bench: Bench, bare_cpu: float, n_frames: int) -> None:
    with stage_timers() as spent:
        fps, cpu, _ = bench.pipeline("throughput", n_frames)
    capture = capture_alone(bench.video, n_frames)
    print(f"stages (thread CPU ms per frame, one pipeline run of {n_frames} frames at {fps:.1f} fps, "
          f"{cpu:.2f} ms CPU per frame; bare inference {bare_cpu:.2f} ms):")
    for label, seconds in spent.items():
        print(f"  {label:44s} {seconds * 1e3 / n_frames:6.3f}")
    print(f"  {'capture alone (demux, decode, frames)':44s} {capture:6.3f}")
    post = (spent[GROUPING] + spent[TRACKING]) * 1e3 / n_frames
    bound = bare_cpu / (bare_cpu + capture + post)
    print(f"bound: with inference, capture alone, grouping and tracking as measured and everything else free, "
          f"throughput / bare <= {bare_cpu:.2f} / ({bare_cpu:.2f} + {capture:.2f} + {post:.2f}) = {bound:.3f} "
          "(when inference keeps every core busy)")


def spread(values: list[float], fmt: str = ".3f") -> str:
    return f"{statistics.median(values):{fmt}} (min {min(values):{fmt}}, max {max(values):{fmt}})"


class Bench:
    """One model (both modes compiled), the decoded frames and the service's pieces for pipeline rounds."""

    def __init__(self, model_path: str, videos: list[str], n_frames: int, device: str, tmp: Path,
                 modes: tuple[str, ...] = ("throughput", "latency")):
        from edgepose.capture import open_source
        from edgepose.config import load_config
        from edgepose.inference import load_model
        from edgepose.service.run import _decoder, grouping_params

        self.video, self.tmp = videos[0], tmp
        per_video = []
        for video in videos:  # the bare side's frames: the videos' first frames, taken in turn
            with open_source(video) as src:
                per_video.append([f.pixels for _, f in zip(range(-(-n_frames // len(videos))), src)])
        self.frames = [img for batch in zip(*per_video) for img in batch][:n_frames]
        self.cfg = load_config(None, {"sources": [{"id": f"cam{i}", "source": v} for i, v in enumerate(videos)],
                                      "model": {"name": model_path}, "output": str(tmp / "bench.jsonl"),
                                      "snapshot": {"enabled": False}})
        hint = None if self.cfg.inference.precision_hint == "auto" else self.cfg.inference.precision_hint
        self.models = {mode: load_model(model_path, device=device, mode=mode, precision_hint=hint) for mode in modes}
        self.decoder = _decoder(grouping_params(self.cfg.decode))
        for mode, model in self.models.items():
            for img in {img.shape: img for img in self.frames}.values():
                model.infer(img)  # compile for every frame size + warm, outside the timing
            self.pipeline(mode, 3)  # grouping JIT, tracker, sink: warm

    def bare_throughput(self) -> tuple[float, float]:
        """(fps, CPU ms per frame) of bare async inference."""
        model = self.models["throughput"]
        t0, c0 = time.perf_counter(), time.process_time()
        for i, img in enumerate(self.frames):
            model.submit(img, i, lambda out, i: None)
        model.wait_all()
        return len(self.frames) / (time.perf_counter() - t0), (time.process_time() - c0) * 1e3 / len(self.frames)

    def bare_latency(self) -> float:
        model = self.models["latency"]
        lat = []
        for img in self.frames:
            t0 = time.perf_counter()
            model.infer(img)
            lat.append((time.perf_counter() - t0) * 1e3)
        return statistics.median(lat)

    def pipeline(self, mode: str, n_frames: int | None = None):
        """(fps, CPU ms per frame, total_ms samples) of one run of the service's pipeline; source and sink open
        before the clock."""
        from edgepose.capture import open_source
        from edgepose.publish import open_sink
        from edgepose.service.pipeline import Pipeline
        from edgepose.service.run import SourceWorker

        n = n_frames or len(self.frames)
        sink = open_sink(str(self.tmp / f"{mode}.jsonl"), self.cfg.mqtt, ["cam0"], model="bench", discovery={})
        try:
            with open_source(self.video) as src:
                worker = SourceWorker(self.cfg.sources[0], self.cfg, "bench", sink, self.decoder)
                worker.pipeline = Pipeline(src, self.models[mode], post=worker.post, emit=worker.emit, max_frames=n)
                t0, c0 = time.perf_counter(), time.process_time()
                stats = worker.pipeline.run()
                elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
        finally:
            sink.close()
        if stats.frames != n:
            sys.exit(f"the pipeline published {stats.frames} frames, expected {n}: is the video shorter?")
        return stats.frames / elapsed, cpu * 1e3 / stats.frames, stats.samples()["total"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model")
    ap.add_argument("--video", default=str(SAMPLES / "one-by-one-person-detection.mp4"))
    ap.add_argument("--frames", type=int, default=200,
                    help="frames per run: enough that filling and draining the queues is a small part of it")
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--device", default="CPU")
    ap.add_argument("--stages", action="store_true",
                    help="also time each stage of one more pipeline run and print the bound they set")
    args = ap.parse_args()
    os.environ.setdefault("OPENVINO_TELEMETRY", "0")
    from edgepose.registry.profiler import cpu_isa, cpu_model

    if not Path(args.video).exists():
        sys.exit(f"video not found: {args.video} (pass --video)")
    tmp = Path(tempfile.mkdtemp(prefix="edgepose-bench-"))
    model = args.model or default_model(tmp)
    bench = Bench(model, [args.video], args.frames, args.device, tmp)
    size = bench.frames[0].shape[1::-1]
    print(f"CPU {cpu_model()} ({os.cpu_count()} cores), ISA {cpu_isa()}; model {model}; "
          f"{len(bench.frames)} frames {size[0]}x{size[1]} of {Path(args.video).name}; {args.rounds} rounds")
    for mode, m in bench.models.items():
        print(f"  {mode}: network {m.network_shape}, compiled as {m.runtime_properties()}")

    tp, lat = {"bare": [], "pipe": [], "ratio": []}, {"bare": [], "pipe": [], "ratio": []}
    cpu = {"bare": [], "pipe": [], "ratio": []}
    for r in range(args.rounds):
        # ABBA order within a round: drift over the round lands on both sides equally.
        order = ("bare", "pipe") if r % 2 == 0 else ("pipe", "bare")
        for side in order:
            fps, cpu_ms = bench.bare_throughput() if side == "bare" else bench.pipeline("throughput")[:2]
            tp[side].append(fps)
            cpu[side].append(cpu_ms)
        for side in reversed(order):
            lat[side].append(bench.bare_latency() if side == "bare"
                             else statistics.median(bench.pipeline("latency")[2]))
        tp["ratio"].append(tp["pipe"][-1] / tp["bare"][-1])
        cpu["ratio"].append(cpu["bare"][-1] / cpu["pipe"][-1])
        lat["ratio"].append(lat["pipe"][-1] / lat["bare"][-1])
        print(f"  round {r + 1}: throughput {tp['pipe'][-1]:.1f} / {tp['bare'][-1]:.1f} fps = {tp['ratio'][-1]:.3f};"
              f" CPU {cpu['pipe'][-1]:.1f} / {cpu['bare'][-1]:.1f} ms per frame;"
              f" latency p50 {lat['pipe'][-1]:.1f} / {lat['bare'][-1]:.1f} ms = {lat['ratio'][-1]:.3f}", flush=True)
    print(f"throughput: pipeline {spread(tp['pipe'], '.1f')} fps, bare async inference {spread(tp['bare'], '.1f')} fps;"
          f" ratio {spread(tp['ratio'])}")
    print(f"  CPU time per frame (all threads of this process): pipeline {spread(cpu['pipe'], '.1f')} ms, bare "
          f"{spread(cpu['bare'], '.1f')} ms; bare/pipeline {spread(cpu['ratio'])} (what the throughput ratio tends "
          "to when the CPU is the limit, insensitive to other processes' load)")
    print(f"latency: capture->publish p50 {spread(lat['pipe'], '.1f')} ms, bare sync inference p50 "
          f"{spread(lat['bare'], '.1f')} ms; ratio {spread(lat['ratio'])} (goal <= 1.2)")
    if args.stages:
        print_stages(bench, statistics.median(cpu["bare"]), args.frames)
    return 0


if __name__ == "__main__":
    sys.exit(main())
