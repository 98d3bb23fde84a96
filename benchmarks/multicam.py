#!/usr/bin/env python3
"""Many cameras on one compiled model: N sources through the service's pipelines at once, against bare async
inference on the same model, in one process with the sides interleaved (ABBA) for ``--rounds`` rounds.

  aggregate fps of the N sources / bare async inference fps        (goal >= 0.9)
  per-source fps: slowest / fastest                                  (goal >= 0.9, i.e. within 10 %)

The sources are the sample videos (looped, so each gives ``--frames`` frames), each with its own worker, tracker
and poses messages into one JSON-lines sink, sharing one throughput-mode model as ``edgepose run --config`` does.
The bare side feeds the videos' frames, decoded beforehand and taken in turn, to that model. Sources are opened
and models compiled before the clocks start.

    python benchmarks/multicam.py [--model MODEL.xml] [--sources 4] [--frames 100] [--rounds 4]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

from common import SAMPLES, default_model
from pipeline import Bench, spread

VIDEOS = ("one-by-one-person-detection.mp4", "classroom.mp4", "store-aisle-detection.mp4")


def multicam_round(bench: Bench, n_frames: int) -> tuple[float, list[float]]:
    """(aggregate fps, per-source fps) of every configured source running at once on the shared model."""
    from edgepose.capture import open_source
    from edgepose.publish import open_sink
    from edgepose.service.pipeline import Pipeline
    from edgepose.service.run import SourceWorker

    ids = [s.id for s in bench.cfg.sources]
    sink = open_sink(str(bench.tmp / "multicam.jsonl"), bench.cfg.mqtt, ids, model="bench", discovery={})
    sources = [open_source(s.source, loop=True) for s in bench.cfg.sources]
    try:
        pipelines = []
        for s, src in zip(bench.cfg.sources, sources):
            worker = SourceWorker(s, bench.cfg, "bench", sink, bench.decoder)
            worker.pipeline = Pipeline(src, bench.models["throughput"], post=worker.post, emit=worker.emit,
                                       max_frames=n_frames)
            pipelines.append(worker.pipeline)
        elapsed = [0.0] * len(pipelines)

        def run(i: int) -> None:
            t = time.perf_counter()
            pipelines[i].run()
            elapsed[i] = time.perf_counter() - t

        threads = [threading.Thread(target=run, args=(i,)) for i in range(len(pipelines))]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
    finally:
        for src in sources:
            src.close()
        sink.close()
    frames = [p.stats.frames for p in pipelines]
    if frames != [n_frames] * len(pipelines):
        sys.exit(f"sources published {frames} frames, expected {n_frames} each")
    return sum(frames) / wall, [f / e for f, e in zip(frames, elapsed)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model")
    ap.add_argument("--sources", type=int, default=4)
    ap.add_argument("--frames", type=int, default=100, help="frames per source per round")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--device", default="CPU")
    args = ap.parse_args()
    os.environ.setdefault("OPENVINO_TELEMETRY", "0")
    from edgepose.registry.profiler import cpu_isa, cpu_model

    videos = [str(SAMPLES / VIDEOS[i % len(VIDEOS)]) for i in range(args.sources)]
    missing = [v for v in videos if not Path(v).exists()]
    if missing:
        sys.exit(f"sample video not found: {missing[0]}")
    tmp = Path(tempfile.mkdtemp(prefix="edgepose-multicam-"))
    model = args.model or default_model(tmp)
    bench = Bench(model, videos, args.frames * args.sources, args.device, tmp, modes=("throughput",))
    m = bench.models["throughput"]
    print(f"CPU {cpu_model()} ({os.cpu_count()} cores), ISA {cpu_isa()}; model {model}; {args.sources} sources "
          f"({', '.join(Path(v).name for v in videos)}), {args.frames} frames each, {args.rounds} rounds")
    print(f"  throughput mode: network {m.network_shape}, compiled as {m.runtime_properties()}")
    agg, bare, ratio, balance = [], [], [], []
    for r in range(args.rounds):
        order = ("bare", "multi") if r % 2 == 0 else ("multi", "bare")
        for side in order:
            if side == "bare":
                bare.append(bench.bare_throughput()[0])
            else:
                total, per_source = multicam_round(bench, args.frames)
                agg.append(total)
                balance.append(min(per_source) / max(per_source))
        ratio.append(agg[-1] / bare[-1])
        print(f"  round {r + 1}: aggregate {agg[-1]:.1f} / bare {bare[-1]:.1f} fps = {ratio[-1]:.3f}; per source "
              f"{', '.join(f'{f:.1f}' for f in per_source)} fps, slowest/fastest {balance[-1]:.3f}", flush=True)
    print(f"aggregate {spread(agg, '.1f')} fps, bare async inference {spread(bare, '.1f')} fps; "
          f"ratio {spread(ratio)} (goal >= 0.9)")
    print(f"per-source fps slowest/fastest {spread(balance)} (goal >= 0.9)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
