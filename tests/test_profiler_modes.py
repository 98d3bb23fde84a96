"""--model auto measures what it will run: the configured mode, sources and precision, on frames with people;
and it ranks an export by the AP its own card measured."""

from __future__ import annotations

import json
import shutil

import pytest
from test_registry import isolated  # noqa: F401 - model dirs and caches in tmp_path

from edgepose.registry import find_local
from edgepose.registry.profiler import Profile, expected_ap


def export_dir(models, name: str, card: dict):
    """A model folder as `edgepose export` writes it (the shipped model's IR under another card)."""
    shipped = find_local("edgepose-h4")
    if shipped is None:
        pytest.skip("the shipped model models/edgepose-h4 is not here")
    dest = models / name
    dest.mkdir()
    for f in ("model.xml", "model.bin"):
        shutil.copy(shipped.parent / f, dest / f)
    base = json.loads((shipped.parent / "model.json").read_text())
    (dest / "model.json").write_text(json.dumps({**base, "name": name, **card}))
    return dest / "model.xml"


def test_a_self_trained_export_ranks_by_its_card_never_by_the_paper(isolated):
    paper = expected_ap("efficienthrnet-h-2")
    assert paper > 40  # not here: the catalog's paper figure
    export_dir(isolated, "efficienthrnet-h-2", {"weights": "checkpoint:best.pt sha256 0"})
    assert expected_ap("efficienthrnet-h-2") == -1.0  # self-trained, nothing measured: unknown, ranks last
    (isolated / "efficienthrnet-h-2" / "model.json").write_text(json.dumps(
        {**json.loads((isolated / "efficienthrnet-h-2" / "model.json").read_text()), "ap": 12.5}))
    assert expected_ap("efficienthrnet-h-2") == 12.5
    export_dir(isolated, "efficienthrnet-h-3", {"weights": "random-init seed 0", "ap": 50.0})
    assert expected_ap("efficienthrnet-h-3") == -1.0  # untrained: a stale figure does not count either


def test_the_profiler_times_grouping_on_shipped_frames_with_people():
    from edgepose.registry.profiler import people_frames

    frames = people_frames()
    assert len(frames) == 8  # from the package, so a machine without the sample videos measures the same
    assert all(f.shape == (270, 480, 3) and 40 < f.mean() < 220 for f in frames)


def test_effective_fps_follows_the_mode_and_the_sources():
    common = dict(model="m", device="CPU", frame_size=(640, 480), network_size=(640, 448), precision="f32",
                  latency_ms_p50=40.0, latency_ms_p90=50.0, throughput_fps=50.0, overhead_ms=10.0, measured_at=0.0)
    assert Profile(**common, mode="latency").effective_fps == pytest.approx(20.0)  # 1000 / (40 + 10)
    assert Profile(**common, mode="latency", sources=4).effective_fps == pytest.approx(5.0)
    assert Profile(**common, mode="throughput").effective_fps == pytest.approx(1000 / 30)  # 20 ms + 10 ms
    assert Profile(**common, mode="throughput", sources=2).effective_fps == pytest.approx(1000 / 60)


@pytest.mark.parametrize("mode", ["latency", "throughput"])
def test_auto_profiles_the_configured_mode_sources_and_frames_with_people(isolated, mode, video_aisle, video_classroom):
    from edgepose.config import load_config
    from edgepose.service.run import choose_model

    export_dir(isolated, "site-h4", {"weights": "checkpoint:last.pt sha256 0", "ap": 1.0})
    cfg = load_config(None, {"sources": [{"id": "a", "source": str(video_aisle)},
                                         {"id": "b", "source": str(video_classroom)}],
                             "model": {"name": "auto"}, "inference": {"mode": mode, "precision_hint": "f32"}})
    rows = {}
    choice = choose_model(cfg, (480, 270), profiles_out=rows)
    assert "site-h4" in rows and choice.name in rows
    for p in rows.values():
        assert (p.mode, p.sources, p.precision) == (mode, 2, "f32")
        assert p.overhead_ms > 0  # grouping measured on the shipped frames with people
