#!/usr/bin/env python3
"""Pipeline overhead, measured in one run on the same model, video and machine.

  throughput mode: pipeline fps on the sample video / bare OpenVINO async inference fps   (goal >= 0.95)
  latency mode:    capture->publish latency p50 / bare synchronous inference latency p50  (goal <= 1.3)

The pipeline runs the whole path (GStreamer decode, resize, inference, Numba grouping, tracking, JSON
messages to a JSON-lines file); "bare" feeds the same frames, already decoded, to the same compiled model.

    python benchmarks/pipeline.py [--model MODEL.xml] [--video FILE] [--frames 150]
Without --model: the shipped edgepose-h4, else H-4 exported with random weights (needs the train extra).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from common import SAMPLES, default_model


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model")
    ap.add_argument("--video", default=str(SAMPLES / "one-by-one-person-detection.mp4"))
    ap.add_argument("--frames", type=int, default=150)
    ap.add_argument("--device", default="CPU")
    args = ap.parse_args()
    os.environ.setdefault("OPENVINO_TELEMETRY", "0")

    from edgepose.capture import open_source
    from edgepose.config import load_config
    from edgepose.inference import load_model
    from edgepose.registry.profiler import cpu_isa
    from edgepose.service.run import run

    tmp = Path(tempfile.mkdtemp(prefix="edgepose-bench-"))
    model = args.model or default_model(tmp)
    if not Path(args.video).exists():
        sys.exit(f"video not found: {args.video} (pass --video)")

    with open_source(args.video) as src:
        frames = [f.image for _, f in zip(range(args.frames), src)]
    results = {}
    for mode in ("throughput", "latency"):
        m = load_model(model, device=args.device, mode=mode)
        m.infer(frames[0])  # compile + warm up outside the timing
        if mode == "throughput":
            t0 = time.perf_counter()
            for i, img in enumerate(frames):
                m.submit(img, i, lambda out, i: None)
            m.wait_all()
            bare = len(frames) / (time.perf_counter() - t0)
        else:
            lat = []
            for img in frames:
                t0 = time.perf_counter()
                m.infer(img)
                lat.append((time.perf_counter() - t0) * 1e3)
            bare = statistics.median(lat)
        cfg = load_config(None, {"sources": [{"id": "bench", "source": args.video}], "model": {"name": model},
                                 "inference": {"device": args.device, "mode": mode},
                                 "output": str(tmp / f"{mode}.jsonl"), "snapshot": {"enabled": False}})
        run(cfg, max_frames=1, status=False)  # compile cache + JIT warm
        t0 = time.perf_counter()
        fig = run(cfg, max_frames=len(frames), status=False)["bench"]
        fps = fig["frames"] / (time.perf_counter() - t0)
        results[mode] = (bare, fps, fig, m.runtime_precision())

    bare_fps, pipe_fps, _, prec = results["throughput"]
    bare_ms, _, fig, _ = results["latency"]
    print(f"CPU ISA {cpu_isa()}, inference precision {prec}, model {model}, {len(frames)} frames of {args.video}")
    print(f"throughput: pipeline {pipe_fps:.1f} fps / bare inference {bare_fps:.1f} fps = {pipe_fps / bare_fps:.3f}"
          " (goal >= 0.95)")
    total = fig["total_ms"]["p50"]
    print(f"latency: capture->publish p50 {total:.1f} ms / bare inference p50 {bare_ms:.1f} ms = "
          f"{total / bare_ms:.3f} (goal <= 1.3)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
