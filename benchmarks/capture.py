"""Decoding speed of edgepose's capture: the GStreamer source against the OpenCV fallback on one video.

    .venv/bin/python benchmarks/capture.py [--video ../shared/data/video/one-by-one-person-detection.mp4]
                                           [--frames 0] [--repeat 2]

Reads the file as fast as possible (no realtime pacing) through ``open_source`` with each backend, so the
numbers include decoding, the conversion to BGR and the copy into a numpy array the pipeline gets. Prints
frames/s per backend (best of --repeat runs, alternating backends so machine load hits both alike) and
the GStreamer / OpenCV ratio, all from this one run.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

from edgepose.capture import gstreamer_available, open_source

DEFAULT_VIDEO = Path(__file__).resolve().parents[1].parent / "shared/data/video/one-by-one-person-detection.mp4"


def decode_fps(video: Path, backend: str, max_frames: int) -> tuple[float, int, tuple[int, int] | None]:
    """(frames/s, frames read, frame size) reading ``video`` with ``backend`` from open to the last frame."""
    start = time.perf_counter()
    count = 0
    with open_source(video, backend=backend) as source:
        for _ in source:
            count += 1
            if count == max_frames:
                break
        size = source.size
    return count / (time.perf_counter() - start), count, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", type=Path, default=DEFAULT_VIDEO)
    parser.add_argument("--frames", type=int, default=0, help="stop after this many frames (0: whole file)")
    parser.add_argument("--repeat", type=int, default=2, help="runs per backend; the best is reported")
    args = parser.parse_args()
    ok, why = gstreamer_available()
    if not ok:
        raise SystemExit(f"GStreamer is not available ({why}); nothing to compare")

    print(f"video: {args.video.name}; {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.2f}")
    best: dict[str, float] = {}
    for _ in range(args.repeat):
        for backend in ("gstreamer", "opencv"):
            fps, count, size = decode_fps(args.video, backend, args.frames)
            best[backend] = max(best.get(backend, 0.0), fps)
            print(f"  {backend:9s} {count} frames {size[0]}x{size[1]}: {fps:7.1f} frames/s")
    print(f"best: gstreamer {best['gstreamer']:.1f} frames/s, opencv {best['opencv']:.1f} frames/s, "
          f"ratio gstreamer/opencv {best['gstreamer'] / best['opencv']:.2f}")


if __name__ == "__main__":
    main()
