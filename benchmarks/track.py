"""Tracker update time per frame for 1, 10 and 30 people walking around a 1920x1080 frame.

    .venv/bin/python benchmarks/track.py [--frames 300] [--distance oks iou]

Prints the median and p90 milliseconds of `Tracker.update` per frame and the ratio to the 1-person case,
all measured in this one run. People are synthetic (COCO-17 skeletons with joint jitter and a few joints
occluded per frame), so the numbers are the tracker's own cost, not a detector's.
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np

from edgepose.track import Tracker
from edgepose.types import NUM_JOINTS, Poses


def walking_people(n: int, frames: int, seed: int = 0) -> list[Poses]:
    """n people with random start points and velocities, jittered joints and ~10 % occluded joints."""
    rng = np.random.default_rng(seed)
    body = rng.normal(0, 40, (n, NUM_JOINTS, 2)) * np.array([0.5, 2.0])  # tall, narrow joint clouds
    start = rng.uniform([100, 200], [1820, 900], (n, 2))
    velocity = rng.uniform(-8, 8, (n, 2))
    out = []
    for t in range(frames):
        xy = body + (start + velocity * t)[:, None] + rng.normal(0, 2, (n, NUM_JOINTS, 2))
        conf = np.where(rng.random((n, NUM_JOINTS)) < 0.1, 0.0, rng.uniform(0.3, 1.0, (n, NUM_JOINTS)))
        out.append(Poses(xy, conf, conf.mean(axis=1)))
    return out


def time_updates(distance: str, frames: list[Poses]) -> tuple[np.ndarray, int]:
    """Milliseconds per update after the first 10 frames (tracks being confirmed), and how many ids were
    handed out (= the number of people when tracking held, so the timing is of the steady state)."""
    tracker = Tracker(distance)
    times = []
    n_ids = 0
    for k, poses in enumerate(frames):
        start = time.perf_counter()
        n_ids += len(tracker.update(poses).entered)
        if k >= 10:
            times.append((time.perf_counter() - start) * 1e3)
    return np.array(times), n_ids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--distance", nargs="+", default=["oks", "iou"], choices=["oks", "iou"])
    args = parser.parse_args()
    print(f"python {platform.python_version()}, numpy {np.__version__}, {platform.machine()} {platform.processor()}")
    print(f"{args.frames} frames per case; ms per Tracker.update")
    for distance in args.distance:
        base = None
        for n in (1, 10, 30):
            ms, n_ids = time_updates(distance, walking_people(n, args.frames))
            median = float(np.median(ms))
            base = base or median
            print(
                f"{distance:>3} {n:3d} people ({n_ids:3d} ids): median {median:6.3f} ms"
                f"  p90 {np.percentile(ms, 90):6.3f} ms  ({median / base:4.1f}x the 1-person case)"
            )


if __name__ == "__main__":
    main()
