"""Numba decoder vs the NumPy/scipy reference, on the same inputs in one run.

(a) coco-mini oracle set: perfect outputs rendered from the ground truth of ../shared/data/coco-mini at stride 2
    of HigherHRNet's test input size; (b) a synthetic 640x640 frame at stride 2 (320x320 maps) with 20 people,
    network-like noise and 10 % of joints missing (tests/pose_render.py:synthetic_frame).
Prints median times, speed-ups and the cold start of a fresh process (numba cache populated, then warm).

    .venv/bin/python benchmarks/decode.py [--repeat 30]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from pose_render import coco_oracle, synthetic_frame  # noqa: E402
from reference_decoder import reference_group  # noqa: E402

from edgepose.decode import group  # noqa: E402

COLD = "import time, numpy as np; t = time.perf_counter(); from edgepose.decode import group; " \
       "group(np.zeros((17, 8, 8), np.float32), np.zeros((17, 8, 8), np.float32)); " \
       "print(time.perf_counter() - t)"


def median_ms(fn, inputs, repeat):
    """Median over `repeat` passes of the time for one input (each pass decodes every input once)."""
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        for heat, tags in inputs:
            fn(heat, tags)
        times.append((time.perf_counter() - t) / len(inputs))
    return statistics.median(times) * 1e3


def cold_start() -> list[float]:
    env = dict(os.environ, NUMBA_CACHE_DIR=str(Path(os.environ.get("TMPDIR", "/tmp")) / f"edgepose-numba-{os.getpid()}"))
    return [float(subprocess.run([sys.executable, "-c", COLD], env=env, capture_output=True, text=True,
                                 check=True).stdout) for _ in range(2)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=30)
    ap.add_argument("--ref-repeat", type=int, default=3)
    args = ap.parse_args()
    print(f"python {platform.python_version()}, {platform.machine()}, numpy {np.__version__}, one thread")

    oracle = [(o.heatmaps, o.tags) for _, o in coco_oracle(REPO.parent / "shared/data/coco-mini/person_keypoints.json")]
    heat, tags, _ = synthetic_frame(np.random.default_rng(0), 20, (320, 320))
    cases = {"coco-mini oracle (32 images)": oracle, "synthetic 20 people, 320x320 maps": [(heat, tags)]}
    for label, inputs in cases.items():
        group(*inputs[0])  # JIT / cache load outside the timing
        for refine in (True, False):
            ours = median_ms(lambda h, t: group(h, t, refine=refine), inputs, args.repeat)
            ref = median_ms(lambda h, t: reference_group(h, t, refine_on=refine), inputs, args.ref_repeat)
            print(f"{label:36s} refine={refine!s:5s}  numba {ours:8.3f} ms  reference {ref:9.2f} ms  "
                  f"speed-up {ref / ours:7.1f}x")
    first, second = cold_start()
    print(f"fresh process, first group() call incl. import: {first:.2f} s with an empty numba cache, "
          f"{second:.2f} s with the cache on disk")


if __name__ == "__main__":
    main()
