"""ONNX export and the ONNX Runtime backend: same contract and same poses as OpenVINO on the same weights."""

from __future__ import annotations

import json
import threading

import cv2
import numpy as np
import pytest

from edgepose.errors import ModelError
from edgepose.inference import load_model
from edgepose.inference.onnxruntime import CPU, CUDA, TENSORRT, choose_providers

pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")

# The first images of coco-mini in name order (not chosen by outcome).
PARITY_IMAGES = 8


@pytest.fixture(scope="module")
def h4_onnx(tmp_path_factory):
    """H-4 with the same seeded random weights as the ``h4_ir`` fixture, exported to ONNX."""
    pytest.importorskip("torch", reason="exporting needs the train extra (torch)")
    from edgepose.train.export import export_onnx

    return export_onnx("H-4", tmp_path_factory.mktemp("onnx") / "efficienthrnet-h-4", random_init=True, seed=0)


@pytest.fixture(scope="module")
def images(coco_mini):
    paths = sorted((coco_mini / "images").glob("*.jpg"))[:PARITY_IMAGES]
    return [cv2.imread(str(p)) for p in paths]


def test_onnx_export_contract(h4_onnx, h4_ir):
    import onnx

    model = onnx.load(str(h4_onnx))
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 17
    (inp,) = model.graph.input
    assert inp.name == "image"
    assert inp.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    dims = [d.dim_value or d.dim_param for d in inp.type.tensor_type.shape.dim]
    assert dims[0] == 1 and dims[3] == 3 and isinstance(dims[1], str) and isinstance(dims[2], str)  # dynamic H, W
    assert [o.name for o in model.graph.output] == ["heatmaps", "embeddings"]

    card = json.loads((h4_onnx.parent / "model.json").read_text())
    ir_card = json.loads((h4_ir.parent / "model.json").read_text())
    assert card["format"] == "edgepose-onnx" and card["opset"] >= 17
    differing = {k for k in ir_card if card.get(k) != ir_card[k]}
    assert differing == {"format", "sha256"}  # same model, same contract; only the file differs


@pytest.mark.slow
def test_same_poses_as_openvino(h4_onnx, h4_ir, images):
    """Raw outputs agree to float32 precision; decoded keypoints agree within 0.5 px.

    Random weights give heatmaps and tags in the hundreds with many near-equal candidates, so a 1e-4 relative
    difference can hand a joint to another person; people are matched first, and a few such swaps are allowed
    (measured here: 98% of keypoints over these images, most images 100%).
    """
    from scipy.optimize import linear_sum_assignment

    from edgepose.decode import decode

    ov = load_model(h4_ir)
    ort = load_model(h4_onnx, backend="onnxruntime", device="CPU")
    within = total = 0
    for image in images:
        a, b = ov.infer(image), ort.infer(image)
        assert a.heatmaps.shape == b.heatmaps.shape and a.tags.shape == b.tags.shape
        assert a.scale == b.scale and a.nms_applied == b.nms_applied
        for x, y in ((a.heatmaps, b.heatmaps), (a.tags, b.tags)):
            assert np.abs(x - y).max() <= 1e-3 * np.abs(x).max()
        pa, pb = decode(a), decode(b)
        assert len(pa) == len(pb) > 0
        dist = np.abs(pa.xy[:, None] - pb.xy[None]).max(-1)  # (n, n, 17) Chebyshev per joint
        rows, cols = linear_sum_assignment(dist.mean(-1))
        ok = dist[rows, cols] <= 0.5
        assert ok.mean() >= 0.8, f"only {ok.mean():.0%} of keypoints within 0.5 px"
        within, total = within + ok.sum(), total + ok.size
    assert within / total >= 0.95, f"{within}/{total} keypoints within 0.5 px"


@pytest.mark.slow
def test_dynamic_sizes_and_throughput_mode(h4_onnx, images):
    """Frames of different sizes share the model; submitted frames come back equal to synchronous runs."""
    sync = load_model(h4_onnx, backend="onnxruntime", device="CPU")
    fast = load_model(h4_onnx, backend="onnxruntime", device="CPU", mode="throughput")
    frames = [images[0], cv2.resize(images[1], (320, 240)), images[0][:200, :150].copy()]
    got, lock = {}, threading.Lock()

    def deliver(out, i):
        with lock:
            got[i] = out

    for i, frame in enumerate(frames):
        fast.submit(frame, i, deliver)
    fast.wait_all()
    assert sorted(got) == [0, 1, 2]
    for i, frame in enumerate(frames):
        expected = sync.infer(frame)
        net_w, net_h = sync.network_shape
        assert net_w % 64 == 0 and net_h % 64 == 0 and min(net_w, net_h) == sync.info.input_size
        assert expected.heatmaps.shape[1:] == (net_h // 2, net_w // 2)
        np.testing.assert_array_equal(got[i].heatmaps, expected.heatmaps)
        np.testing.assert_array_equal(got[i].tags, expected.tags)
    assert sync.runtime_precision() == "f32" and sync.providers == [CPU]


def test_errors_in_callbacks_surface(h4_onnx, images):
    model = load_model(h4_onnx, backend="onnxruntime", device="CPU", mode="throughput")

    def broken(out, data):
        raise RuntimeError("consumer failed")

    model.submit(images[0], None, broken)
    with pytest.raises(RuntimeError, match="consumer failed"):
        model.wait_all()


def test_provider_order():
    everything = ["AzureExecutionProvider", CPU, CUDA, TENSORRT]
    assert choose_providers("AUTO", everything) == [TENSORRT, CUDA, CPU]
    assert choose_providers("gpu", [CUDA, CPU]) == [CUDA, CPU]
    assert choose_providers("CUDA", everything) == [CUDA, CPU]
    assert choose_providers("CPU", everything) == [CPU]
    assert choose_providers("AUTO", [CPU]) == [CPU]
    with pytest.raises(ModelError, match="onnxruntime-gpu"):
        choose_providers("GPU", [CPU])
    with pytest.raises(ModelError, match="unknown onnxruntime device"):
        choose_providers("NPU", everything)


def test_bad_models(h4_onnx, h4_ir, tmp_path):
    with pytest.raises(ModelError, match="not an .onnx file"):
        load_model(h4_ir, backend="onnxruntime")
    with pytest.raises(ValueError, match="unknown inference backend"):
        load_model(h4_onnx, backend="tensorflow")

    # A card of the other format beside the model says which backend runs it.
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    (mixed / "model.onnx").write_bytes(h4_onnx.read_bytes())
    (mixed / "model.json").write_text((h4_ir.parent / "model.json").read_text())
    with pytest.raises(ModelError, match="'openvino'"):
        load_model(mixed, backend="onnxruntime")

    # Weights that do not match the card's checksum, and no card at all.
    card = json.loads((h4_onnx.parent / "model.json").read_text())
    (mixed / "model.json").write_text(json.dumps(card))
    (mixed / "model.onnx").write_bytes(h4_onnx.read_bytes()[:-10])
    with pytest.raises(ModelError, match="checksum"):
        load_model(mixed, backend="onnxruntime")
    (mixed / "model.json").unlink()
    with pytest.raises(ModelError, match="export --format onnx"):
        load_model(mixed / "model.onnx", backend="onnxruntime")


def test_export_refuses_a_folder_holding_the_other_format(h4_ir):
    from edgepose.train.export import export_onnx

    before = sorted(p.name for p in h4_ir.parent.iterdir())
    with pytest.raises(ModelError, match="own --out folder"):
        export_onnx("H-4", h4_ir.parent, random_init=True)
    assert sorted(p.name for p in h4_ir.parent.iterdir()) == before
    assert not list(h4_ir.parent.parent.glob(".*"))  # no temporary folder left behind


@pytest.mark.slow
def test_run_with_the_onnxruntime_backend(h4_onnx, video_one_by_one):
    """`edgepose run --backend onnxruntime` end to end: real video in, one JSON message per frame out."""
    from click.testing import CliRunner

    from edgepose.cli import cli

    result = CliRunner().invoke(cli, ["run", "--source", str(video_one_by_one), "--model", str(h4_onnx),
                                      "--backend", "onnxruntime", "--device", "CPU", "--output", "-",
                                      "--max-frames", "3", "--no-snapshot", "--quiet"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    messages = [m for m in lines if isinstance(m.get("people"), list)]  # poses; events and stats also come
    assert [m["frame_index"] for m in messages] == [0, 1, 2]
    assert all(len(m["people"]) > 0 for m in messages)  # random weights still find "people"
