"""Shared by the benchmark scripts."""

from __future__ import annotations

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
