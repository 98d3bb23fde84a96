"""Model registry, pull and the device profiler behind --model auto."""

from __future__ import annotations

import functools
import hashlib
import http.server
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from edgepose.errors import EdgeposeError, ModelError
from edgepose.registry import catalog, resolve
from edgepose.registry.profiler import Profile, ProfileCache, profile_models, select


@pytest.fixture()
def isolated(tmp_path, monkeypatch):
    """Model dirs and caches inside tmp_path only."""
    models = tmp_path / "models"
    models.mkdir()
    monkeypatch.setenv("EDGEPOSE_MODEL_PATH", str(models))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("EDGEPOSE_CACHE_DIR", str(tmp_path / "cache"))
    return models


def install(xml: Path, models: Path, name: str) -> Path:
    """Copy an IR (and its card) into a model dir under ``name``."""
    dest = models / name
    dest.mkdir()
    for f in xml.parent.iterdir():
        if f.suffix in (".xml", ".bin", ".json"):
            shutil.copy(f, dest / f.name)
    return dest / xml.name


def prof(name, fps, p90=50.0, overhead=2.0) -> Profile:
    return Profile(name, "CPU", (640, 480), (640, 448), "f32", p90 * 0.8, p90, fps, overhead, 0.0)


ACCURACY = {"small": 30.0, "medium": 45.0, "large": 60.0}.get


@pytest.mark.parametrize(
    "target, expected, meets",
    [(5, "large", True), (15, "medium", True), (25, "small", True), (60, "small", False)],
)
def test_selection_rule_by_fps(target, expected, meets):
    profiles = {"small": prof("small", 40), "medium": prof("medium", 20), "large": prof("large", 8)}
    choice = select(profiles, target_fps=target, accuracy=ACCURACY)
    assert choice.name == expected and choice.meets_target is meets
    if not meets:  # the fastest, with how far it falls short
        assert "fps short" in choice.reason and f"{target - profiles['small'].effective_fps:.1f}" in choice.reason


def test_selection_counts_decode_overhead_and_latency_budget():
    # 20 fps raw but 30 ms of grouping per frame: 1000 / (50 + 30) = 12.5 fps, below a 15 fps target.
    profiles = {"medium": prof("medium", 20, overhead=30.0), "small": prof("small", 40, p90=20.0)}
    assert select(profiles, target_fps=15, accuracy=ACCURACY).name == "small"
    assert select(profiles, max_latency_ms=100, accuracy=ACCURACY).name == "medium"
    lat = select(profiles, max_latency_ms=10, accuracy=ACCURACY)
    assert lat.name == "small" and not lat.meets_target and "ms over" in lat.reason


def test_catalog_lists_variants_and_omz():
    names = set(catalog())
    assert {f"efficienthrnet-h{s}" for s in ("0", "-1", "-2", "-3", "-4")} <= names
    assert {"human-pose-estimation-0005", "human-pose-estimation-0006", "human-pose-estimation-0007"} <= names


def test_resolve(isolated, h4_ir):
    install(h4_ir, isolated, "efficienthrnet-h-4")
    assert resolve("H-4").parent.name == "efficienthrnet-h-4"
    assert resolve("h4") == resolve("efficienthrnet-h-4")
    assert resolve(str(h4_ir)) == h4_ir
    assert resolve(str(h4_ir.parent)) == h4_ir
    with pytest.raises(ModelError, match="edgepose export --variant H-2"):
        resolve("H-2")
    with pytest.raises(ModelError, match="edgepose models pull human-pose-estimation-0006"):
        resolve("human-pose-estimation-0006")
    with pytest.raises(ModelError, match="unknown model"):
        resolve("nonsense")


@pytest.fixture()
def local_server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_pull_verifies_checksum_and_is_atomic(isolated, omz_model, local_server, monkeypatch):
    from edgepose.registry import pull as pull_mod
    from edgepose.registry.catalog import ModelEntry, RemoteFile

    root, base = local_server
    shutil.copy(omz_model, root / "m.xml")
    shutil.copy(omz_model.with_suffix(".bin"), root / "m.bin")
    sha = hashlib.sha256((root / "m.xml").read_bytes()).hexdigest()
    good = ModelEntry("test-model", "omz", "", 288, 40.0, "", "FP16", files=(
        RemoteFile("test-model.xml", f"{base}/m.xml", sha), RemoteFile("test-model.bin", f"{base}/m.bin", None)))
    monkeypatch.setattr(pull_mod, "catalog", lambda: {"test-model": good})
    xml = pull_mod.pull("test-model", progress=False)
    assert xml == isolated / "test-model" / "test-model.xml" and xml.with_suffix(".bin").exists()

    bad = ModelEntry("bad-model", "omz", "", 288, 40.0, "", "FP16",
                         files=(RemoteFile("bad-model.xml", f"{base}/m.xml", "0" * 64),))
    monkeypatch.setattr(pull_mod, "catalog", lambda: {"bad-model": bad})
    with pytest.raises(EdgeposeError, match="checksum mismatch"):
        pull_mod.pull("bad-model", progress=False)
    assert sorted(p.name for p in isolated.iterdir()) == ["test-model"]  # nothing half-written

    gone = ModelEntry("gone", "omz", "", 288, 40.0, "", "FP16",
                          files=(RemoteFile("gone.xml", f"{base}/missing.xml", None),))
    monkeypatch.setattr(pull_mod, "catalog", lambda: {"gone": gone})
    with pytest.raises(EdgeposeError, match="cannot download"):
        pull_mod.pull("gone", progress=False)
    assert sorted(p.name for p in isolated.iterdir()) == ["test-model"]


@pytest.fixture(scope="session")
def omz_0007(tmp_path_factory):
    from conftest import shared_path

    src = shared_path("models", "omz", "human-pose-estimation-0007", "FP16", "human-pose-estimation-0007.xml")
    out = tmp_path_factory.mktemp("omz7") / src.name
    shutil.copy(src, out)
    subprocess.run([sys.executable, str(shared_path("tools", "make_standin_weights.py")), str(out)],
                   check=True, capture_output=True)
    return out


@pytest.mark.slow
def test_real_profile_ranks_by_macs_and_is_cached(isolated, omz_model, omz_0007, tmp_path):
    from edgepose.registry.macs import ir_macs

    models = {"human-pose-estimation-0005": omz_model, "human-pose-estimation-0007": omz_0007}
    cache = ProfileCache(tmp_path / "profiles.json")
    profiles = profile_models(models, frame_size=(320, 240), iterations=4, cache=cache)
    macs = {n: ir_macs(x, *reversed(profiles[n].network_size)) for n, x in models.items()}
    assert macs["human-pose-estimation-0007"] > 2 * macs["human-pose-estimation-0005"]
    assert profiles["human-pose-estimation-0005"].latency_ms_p50 < profiles["human-pose-estimation-0007"].latency_ms_p50
    assert profiles["human-pose-estimation-0005"].throughput_fps > profiles["human-pose-estimation-0007"].throughput_fps
    t0 = time.monotonic()
    again = profile_models(models, frame_size=(320, 240), iterations=4, cache=ProfileCache(tmp_path / "profiles.json"))
    assert time.monotonic() - t0 < 1.0
    assert again == profiles
    other_size = profile_models({"human-pose-estimation-0005": omz_model}, frame_size=(352, 288), iterations=2,
                                cache=cache)
    assert other_size["human-pose-estimation-0005"].measured_at > profiles["human-pose-estimation-0005"].measured_at


@pytest.mark.slow
def test_auto_explain_cli(isolated, omz_model):
    install(omz_model, isolated, "human-pose-estimation-0005")
    res = subprocess.run([sys.executable, "-m", "edgepose", "run", "--source", "test", "--model", "auto",
                          "--explain", "--target-fps", "240"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "human-pose-estimation-0005" in res.stdout and "choice:" in res.stdout
    assert "short of the target" in res.stdout  # 240 fps cannot be met here: the fastest is used, with a warning


def test_untrained_exports_rank_last(isolated, h4_ir):
    """A random-init export keeps the paper's AP in the catalog but must not win --model auto on it."""
    from edgepose.registry.profiler import expected_ap

    assert expected_ap("efficienthrnet-h-4") == 35.7  # not on this machine: the paper's figure
    install(h4_ir, isolated, "efficienthrnet-h-4")
    assert expected_ap("efficienthrnet-h-4") == -1.0
    profiles = {"efficienthrnet-h-4": prof("efficienthrnet-h-4", 30), "human-pose-estimation-0005": prof(
        "human-pose-estimation-0005", 20)}
    assert select(profiles, target_fps=15).name == "human-pose-estimation-0005"


def test_corrupted_bin_fails_the_published_checksum_and_leaves_nothing(isolated, omz_model, local_server,
                                                                      monkeypatch):
    """The real manifest entry of human-pose-estimation-0005, served from a local HTTP server with a corrupted
    .bin: the pull fails on the published sha256 and nothing is left behind; a tampered install fails at load."""
    from dataclasses import replace

    from edgepose.registry import pull as pull_mod
    from edgepose.registry.catalog import RemoteFile, verify_local

    real = catalog()["human-pose-estimation-0005"]
    root, base = local_server
    assert all(f.checksum is not None for e in catalog().values() for f in e.files)  # every download verified
    xml_file, bin_file = real.files
    shutil.copy(omz_model, root / xml_file.path)
    (root / bin_file.path).write_bytes(b"\0" * bin_file.size)  # the right size, the wrong bytes
    local = replace(real, files=tuple(  # only the .bin keeps its checksum: the .xml here is the shared copy
        RemoteFile(f.path, f"{base}/{f.path}", f.sha256 if f is bin_file else None) for f in real.files))
    monkeypatch.setattr(pull_mod, "catalog", lambda: {real.name: local})
    with pytest.raises(EdgeposeError, match=r"checksum mismatch for human-pose-estimation-0005.bin: expected "
                                            r"sha256 8d99a9ef.*nothing was installed"):
        pull_mod.pull(real.name, progress=False)
    assert list(isolated.iterdir()) == []

    installed = install(omz_model, isolated, real.name)
    with pytest.raises(ModelError, match=r"does not match the sha256 Open Model Zoo publishes"):
        verify_local(real.name, installed)
    res = subprocess.run([sys.executable, "-m", "edgepose", "run", "--source", "test", "--model", real.name,
                          "--output", "-", "--max-frames", "1"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 1 and "does not match the sha256" in res.stderr and "Traceback" not in res.stderr


@pytest.mark.parametrize(
    "card, eligible",
    [
        ({"precision": "FP16"}, True),
        ({"precision": "INT8", "int8": {"calibration": {"images": 64}}}, False),  # AP change never measured
        ({"precision": "INT8", "int8": {"ap": {"reference": 0.40, "int8": 0.395, "change": -0.005}}}, True),
        ({"precision": "INT8", "int8": {"ap": {"reference": 0.40, "int8": 0.37, "change": -0.03}}}, False),
        ({"precision": "INT8", "int8": {"ap": {"reference": 0.40, "int8": 0.41, "change": 0.01}}}, True),
    ],
    ids=["fp16", "int8-unmeasured", "int8-small-loss", "int8-large-loss", "int8-gain"],
)
def test_auto_considers_int8_only_with_a_small_measured_ap_loss(card, eligible, isolated, h4_ir, monkeypatch):
    """--model auto profiles only eligible models: an INT8 export needs its card's measured AP change."""
    import json

    from edgepose.config import AppConfig
    from edgepose.registry import auto_eligible
    from edgepose.service import run as run_mod

    xml = install(h4_ir, isolated, "h4-variant")
    full = json.loads((xml.parent / "model.json").read_text())
    (xml.parent / "model.json").write_text(json.dumps({**full, **card}))
    assert auto_eligible(xml) is eligible
    seen = {}
    monkeypatch.setattr("edgepose.registry.profiler.profile_models",
                        lambda local, **kw: seen.update(local) or {n: prof(n, 30) for n in local})
    run_mod.choose_model(AppConfig())
    assert ("h4-variant" in seen) is eligible
