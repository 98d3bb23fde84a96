"""Decoding speed of edgepose's capture: the GStreamer source against the OpenCV fallback on one video.

    .venv/bin/python benchmarks/capture.py [--video ../shared/data/video/one-by-one-person-detection.mp4]
                                           [--frames 0] [--repeat 2]

Reads the file as fast as possible (no realtime pacing) through ``open_source``, so the numbers include
decoding, the conversion to BGR and the copy into the numpy array the pipeline gets. Three ways:
``gstreamer`` (the default: appsink takes I420, OpenCV converts), ``gst-videoconvert`` (the same file with
videoconvert making BGR, what the default replaced) and ``opencv`` (the fallback backend). Prints frames/s
for each (best and median of --repeat runs, alternating so machine load hits all alike) and the ratios,
all measured in this one run.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

from edgepose.capture import gstreamer_available, open_source
from edgepose.capture.templates import quote

WAYS = ("gstreamer", "gst-videoconvert", "opencv")
DEFAULT_VIDEO = Path(__file__).resolve().parents[1].parent / "shared/data/video/one-by-one-person-detection.mp4"


def decode_fps(video: Path, way: str, max_frames: int) -> tuple[float, int, tuple[int, int] | None]:
    """(frames/s, frames read, frame size) reading ``video`` one ``way`` from open to the last frame."""
    backend, pipeline = ("opencv", None) if way == "opencv" else ("gstreamer", None)
    if way == "gst-videoconvert":
        pipeline = f"filesrc location={quote(str(video))} ! decodebin ! videoconvert n-threads=0 ! " \
                   "video/x-raw,format=BGR ! appsink name=sink"
    start = time.perf_counter()
    count = 0
    with open_source(video, backend=backend, pipeline=pipeline) as source:
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
    for way in WAYS:  # warm-up: first-use costs (plugin loading, decoder set-up) are not decoding speed
        decode_fps(args.video, way, 10)
    runs: dict[str, list[float]] = {way: [] for way in WAYS}
    for _ in range(args.repeat):
        for way in WAYS:
            fps, count, size = decode_fps(args.video, way, args.frames)
            runs[way].append(fps)
            print(f"  {way:16s} {count} frames {size[0]}x{size[1]}: {fps:7.1f} frames/s")
    for label, pick in (("best", max), ("median", statistics.median)):
        fps = {way: pick(values) for way, values in runs.items()}
        print(f"{label}: " + ", ".join(f"{way} {fps[way]:.1f}" for way in WAYS) + " frames/s; "
              f"gstreamer/opencv {fps['gstreamer'] / fps['opencv']:.2f}, "
              f"gstreamer/gst-videoconvert {fps['gstreamer'] / fps['gst-videoconvert']:.2f}")


if __name__ == "__main__":
    main()
