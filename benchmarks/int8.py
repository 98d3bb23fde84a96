#!/usr/bin/env python3
"""INT8 (NNCF post-training quantisation) against FP16: speed on this CPU and AP on coco-mini, in one run.

For each model (the given H-4 export and an H-2), the FP16 IR is quantised with ``edgepose quantize``'s code,
calibrated on real unlabeled images (never coco-mini), preprocessed as the runtime does; then

  speed: FP16 and INT8 compiled with the same config (the runtime's latency mode), timed interleaved
         (A B A B ...) on the same real video frame, compilation and warm-up excluded; median, p10-p90 and the
         median of the per-round ratios;
  AP:    both on all coco-mini images with `edgepose eval`'s machinery (single scale, no flip).

    python benchmarks/int8.py [--model models/edgepose-h4] [--h2 DIR] [--rounds 40] [--calib-images 64]
Without --h2, H-2 is exported with random weights (FP16): its speed counts, its AP does not. ISA, runtime
precision, threads and the number of convolutions the CPU really runs in INT8 are printed. Without VNNI
(AVX2 only) the CPU has no 8-bit dot-product instruction, so INT8 gains little there.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import REPO, SAMPLES

SHARED = REPO.parent / "shared" / "data"


def timed_interleaved(models: dict, frame: np.ndarray, rounds: int) -> dict[str, list[float]]:
    """ms per synchronous inference of each model, the models alternating within every round."""
    times = {name: [] for name in models}
    for m in models.values():
        for _ in range(3):
            m.infer(frame)  # compile for this size and warm up outside the timing
    for _ in range(rounds):
        for name, m in models.items():
            t0 = time.perf_counter()
            m.infer(frame)
            times[name].append((time.perf_counter() - t0) * 1e3)
    return times


def describe(model) -> str:
    """Runtime precision, threads and INT8-executed convolutions of the model's compiled form."""
    from edgepose.train.export import executed_int8_layers

    compiled = model._last.compiled
    threads = compiled.get_property("INFERENCE_NUM_THREADS")
    return (f"precision {model.runtime_precision()}, {threads} threads, "
            f"{executed_int8_layers(compiled)} convs in INT8")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(REPO / "models" / "edgepose-h4"), help="H-4 FP16/FP32 export (folder)")
    ap.add_argument("--h2", help="H-2 FP16/FP32 export (folder); default: random weights exported here")
    ap.add_argument("--calib", default=str(SHARED / "unlabeled"))
    ap.add_argument("--calib-images", type=int, default=64)
    ap.add_argument("--coco", default=str(SHARED / "coco-mini"), help="folder with person_keypoints.json, images/")
    ap.add_argument("--video", default=str(SAMPLES / "one-by-one-person-detection.mp4"))
    ap.add_argument("--rounds", type=int, default=40)
    args = ap.parse_args()
    os.environ.setdefault("OPENVINO_TELEMETRY", "0")

    import cv2

    from edgepose.inference import PoseModel
    from edgepose.registry.profiler import cpu_isa, cpu_model
    from edgepose.train.export import export_variant, quantize_ir

    for path in (args.model, args.calib, args.coco, args.video):
        if not Path(path).exists():
            sys.exit(f"not found: {path}")
    cap = cv2.VideoCapture(args.video)
    cap.set(cv2.CAP_PROP_POS_FRAMES, 100)
    ok, frame = cap.read()
    if not ok:
        sys.exit(f"cannot read a frame of {args.video}")
    tmp = Path(tempfile.mkdtemp(prefix="edgepose-int8-"))
    h2 = args.h2 or export_variant("H-2", tmp / "h2-fp16", random_init=True, precision="FP16").parent
    ann = Path(args.coco) / "person_keypoints.json"
    print(f"CPU {cpu_model()} ({cpu_isa()}), {os.cpu_count()} cores; frame {frame.shape[1]}x{frame.shape[0]} "
          f"from {Path(args.video).name}; calibration: {args.calib_images} images of {args.calib}")
    rows = []
    for label, src in (("H-4", Path(args.model)), ("H-2", Path(h2))):
        t0 = time.perf_counter()
        int8 = quantize_ir(src, tmp / f"{label}-int8", args.calib, limit=args.calib_images, ann_file=ann,
                           eval_images=Path(args.coco) / "images")
        card = json.loads((int8.parent / "model.json").read_text())
        print(f"{label}: quantised {src} in {time.perf_counter() - t0:.0f} s (with AP of both)")
        models = {"FP16": PoseModel(src), "INT8": PoseModel(int8)}
        times = timed_interleaved(models, frame, args.rounds)
        net = models["FP16"].network_shape
        for name, m in models.items():
            t = np.array(times[name])
            print(f"  {name}: {np.median(t):7.1f} ms median, p10-p90 {np.percentile(t, 10):.1f}-"
                  f"{np.percentile(t, 90):.1f} ms; {describe(m)}")
        ratio = np.array(times["FP16"]) / np.array(times["INT8"])
        apc = card["int8"]["ap"]
        rows.append((label, card.get("weights", "?"), net, np.median(times["FP16"]), np.median(times["INT8"]),
                     np.median(ratio), np.percentile(ratio, 10), np.percentile(ratio, 90), apc))
    print(f"\n{'model':<5} {'net':>8} {'FP16 ms':>8} {'INT8 ms':>8} {'speed-up':>9} {'p10-p90':>11} "
          f"{'AP FP16':>8} {'AP INT8':>8} {'AP change':>9}")
    for label, _, net, f16, i8, r, r10, r90, apc in rows:
        print(f"{label:<5} {net[0]:>4}x{net[1]:<3} {f16:8.1f} {i8:8.1f} {r:8.2f}x {r10:5.2f}-{r90:<5.2f} "
              f"{apc['reference']:8.3f} {apc['int8']:8.3f} {apc['change']:+9.3f}")
    print(f"\nAP on {apc['dataset']}, single scale. Weights: " + "; ".join(f"{r[0]} {r[1]}" for r in rows))
    print("Speed-ups are interleaved ratios; on a shared machine absolute ms are inflated, the ratios count.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
