"""Shared by the benchmark scripts."""

from __future__ import annotations

import argparse
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO.parent / "shared" / "data" / "video"


def default_model(tmp: Path) -> str:
    """The shipped trained edgepose-h4 when present (realistic grouping cost: real people, not noise);
    else H-4 exported with random weights into ``tmp`` (needs the train extra)."""
    from edgepose.registry import find_local

    shipped = find_local("edgepose-h4")
    if shipped is not None:
        return str(shipped)
    from edgepose.train.export import export_variant

    return str(export_variant("H-4", tmp / "h4", random_init=True))


def soak_arguments(doc: str) -> argparse.Namespace:
    """--minutes, --model and --video of the soak scripts, with ``doc`` as the help text."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--model")
    ap.add_argument("--video", default=str(SAMPLES / "store-aisle-detection.mp4"))
    return ap.parse_args()
