#!/usr/bin/env python3
"""Soak: one `edgepose run` on the sample video looping (--loop) for a while, publishing to a real local
Mosquitto, with the process's resident memory (RSS) sampled; reports the growth after warm-up (goal <= 5 %).

    python benchmarks/soak.py [--minutes 10] [--model MODEL.xml] [--video FILE]
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from common import default_model, soak_arguments


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    args = soak_arguments(__doc__)
    os.environ.setdefault("OPENVINO_TELEMETRY", "0")

    from edgepose.config import load_config
    from edgepose.service.run import run

    tmp = Path(tempfile.mkdtemp(prefix="edgepose-soak-"))
    model = args.model or default_model(tmp)
    port = free_port()
    conf = tmp / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest none\n")
    broker = subprocess.Popen([shutil.which("mosquitto") or "/usr/sbin/mosquitto", "-c", str(conf)])
    time.sleep(0.5)
    cfg = load_config(None, {"sources": [{"id": "soak", "source": args.video, "loop": True}], "model": {"name": model},
                             "mqtt": {"url": f"mqtt://127.0.0.1:{port}"}})
    samples: list[tuple[float, float]] = []
    stop = threading.Event()

    def sample():
        t0 = time.monotonic()
        while not stop.wait(5.0):  # the same event ends the run
            samples.append((time.monotonic() - t0, rss_mb()))

    threading.Thread(target=sample, daemon=True).start()
    threading.Timer(args.minutes * 60, stop.set).start()
    try:
        frames = run(cfg, status=False, stop_event=stop)["soak"]["frames"]
    finally:
        stop.set()
        broker.terminate()
        shutil.rmtree(tmp, ignore_errors=True)
    warm = [r for t, r in samples if t >= min(60.0, args.minutes * 60 / 4)] or [r for _, r in samples]
    if len(warm) < 2:
        print("run longer to get RSS samples")
        return 1
    growth = (warm[-1] - warm[0]) / warm[0] * 100
    print(f"{frames} frames in {args.minutes:g} min; RSS after warm-up {warm[0]:.0f} MB -> "
          f"{warm[-1]:.0f} MB (max {max(warm):.0f} MB): growth {growth:+.1f} % (goal <= 5 %)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
