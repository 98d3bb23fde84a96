"""Export to OpenVINO IR: the runtime contract, torch/OpenVINO parity on a real image, FP16, INT8 (export and
``edgepose quantize``), the CLI.

Parity uses seeded random weights (``randomize``): outputs of order 1 that depend on every op, so a
conversion error shows. OpenVINO runs with INFERENCE_PRECISION_HINT f32 (bf16 CPUs would otherwise differ).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ov = pytest.importorskip("openvino")

import cv2  # noqa: E402

from conftest import shared_path  # noqa: E402
from edgepose.cli import main  # noqa: E402
from edgepose.errors import ModelError  # noqa: E402
from edgepose.train import InferenceHead, build_model, export_variant, randomize  # noqa: E402
from edgepose.inference.common import file_sha256  # noqa: E402
from edgepose.train.export import MEAN_RGB, STD_RGB, executed_int8_layers  # noqa: E402
from edgepose.types import JOINT_NAMES  # noqa: E402
from edgepose.variants import VARIANTS, get_variant  # noqa: E402

HW = (256, 384)  # non-square, multiples of 64
F32 = {"INFERENCE_PRECISION_HINT": "f32"}


@pytest.fixture(scope="module")
def frame(coco_mini) -> np.ndarray:
    """A real COCO photo of people as the runtime feeds it: BGR u8 [1, H, W, 3]."""
    img = cv2.imread(str(coco_mini / "images" / "000000000785.jpg"))
    return cv2.resize(img, (HW[1], HW[0]), interpolation=cv2.INTER_AREA)[None]


def torch_reference(name: str, frame: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """What the exported graph must compute, done in torch with the normalisation written out by hand."""
    net = build_model(name)
    randomize(net, seed)
    rgb = frame[0, :, :, ::-1].astype(np.float64) / 255.0
    x = torch.from_numpy(((rgb - MEAN_RGB) / STD_RGB).astype(np.float32)).permute(2, 0, 1)[None]
    with torch.no_grad():
        heatmaps, embeddings = InferenceHead(net.eval())(x)
    return heatmaps.numpy(), embeddings.numpy()


def infer(xml, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    compiled = ov.Core().compile_model(str(xml), "CPU", F32)
    out = compiled(frame)
    return out["heatmaps"], out["embeddings"]


def assert_parity(xml, name, frame, tol=1e-4):
    ref_h, ref_e = torch_reference(name, frame)
    got_h, got_e = infer(xml, frame)
    h, w = frame.shape[1:3]
    assert got_h.shape == (1, 17, h // 2, w // 2) and got_e.shape == (1, 17, h // 2, w // 2, 1)
    assert ref_h.std() > 0.1 and ref_e.std() > 0.1, "outputs too flat to show a conversion error"
    diff_h, diff_e = np.abs(got_h - ref_h).max(), np.abs(got_e - ref_e).max()
    assert diff_h <= tol and diff_e <= tol, (diff_h, diff_e)


def test_h4_ir_contract(h4_ir):
    model = ov.Core().read_model(str(h4_ir))
    (inp,) = model.inputs
    assert inp.get_any_name() == "image" and inp.get_element_type() == ov.Type.u8
    shape = inp.get_partial_shape()
    assert shape[0] == 1 and shape[3] == 3 and shape[1].is_dynamic and shape[2].is_dynamic
    assert [o.get_any_name() for o in model.outputs] == ["heatmaps", "embeddings"]
    assert not any(op.get_type_name() == "MaxPool" for op in model.get_ordered_ops()), "no NMS in the graph"

    card = json.loads((h4_ir.parent / "model.json").read_text())
    v = get_variant("H-4")
    assert card == {
        "format": "edgepose-ir", "version": 1, "name": "efficienthrnet-h-4", "variant": "H-4",
        "input_size": 384, "test_short_side": 384, "multiple_of": 64,
        "input": {"name": "image", "layout": "NHWC", "color": "BGR", "dtype": "u8"},
        "outputs": {"heatmaps": {"stride": 2}, "embeddings": {"stride": 2}}, "nms_in_graph": False,
        "normalisation": {"mean": list(MEAN_RGB), "std": list(STD_RGB), "rgb": True},
        "joints": list(JOINT_NAMES), "precision": "FP32", "weights": "random-init seed 0",
        "params": v.true_params, "macs": v.true_macs, "sha256": file_sha256(h4_ir.with_suffix(".bin")),
    }
    assert sorted(p.name for p in h4_ir.parent.iterdir()) == ["model.bin", "model.json", "model.xml"]


def test_h4_parity_landscape_and_portrait(h4_ir, frame):
    assert_parity(h4_ir, "H-4", frame)
    # Same IR, other orientation: H and W are dynamic, no re-export.
    assert_parity(h4_ir, "H-4", np.ascontiguousarray(frame.transpose(0, 2, 1, 3)))


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in VARIANTS if n != "H-4"])
def test_fp32_parity_every_variant(name, frame, tmp_path):
    xml = export_variant(name, tmp_path / name, random_init=True, seed=0)
    small = cv2.resize(frame[0], (192, 128), interpolation=cv2.INTER_AREA)[None]  # the larger nets, kept quick
    assert_parity(xml, name, small)


def test_fp16_relative_error(h4_ir, frame, tmp_path):
    xml = export_variant("H-4", tmp_path / "fp16", random_init=True, precision="FP16")
    assert xml.with_suffix(".bin").stat().st_size < 0.6 * h4_ir.with_suffix(".bin").stat().st_size
    ref_h, ref_e = infer(h4_ir, frame)
    got_h, got_e = infer(xml, frame)
    for ref, got in ((ref_h, got_h), (ref_e, got_e)):
        assert np.abs(got - ref).max() <= 1e-2 * np.abs(ref).max()
        assert not np.array_equal(got, ref)  # the weights really were rounded
    assert json.loads((xml.parent / "model.json").read_text())["precision"] == "FP16"


@pytest.fixture(scope="module")
def unlabeled() -> Path:
    """Real images of people kept apart from coco-mini: calibration data (coco-mini is for validation only)."""
    return shared_path("data", "unlabeled")


def int8_ops(xml) -> int:
    return executed_int8_layers(ov.Core().compile_model(str(xml), "CPU", F32))


def assert_quantised_same_function(xml, reference_xml, frame) -> None:
    model = ov.Core().read_model(str(xml))
    assert sum(op.get_type_name() == "FakeQuantize" for op in model.get_ordered_ops()) > 50
    assert int8_ops(xml) > 50 and int8_ops(reference_xml) == 0
    heatmaps, embeddings = infer(xml, frame)
    ref_h, ref_e = infer(reference_xml, frame)
    assert heatmaps.shape == ref_h.shape and embeddings.shape == ref_e.shape
    assert not np.array_equal(heatmaps, ref_h)  # really quantised
    # Quantised, yet still the same function: strongly correlated with the float model on a real image.
    assert np.corrcoef(ref_h.ravel(), heatmaps.ravel())[0, 1] > 0.9
    assert np.corrcoef(ref_e.ravel(), embeddings.ravel())[0, 1] > 0.9


@pytest.mark.slow
def test_int8_export_quantised_on_real_images(unlabeled, h4_ir, frame, tmp_path):
    calib = sorted(unlabeled.rglob("*.jpg"))[:2]
    xml = export_variant("H-4", tmp_path / "int8", random_init=True, precision="INT8", calib_images=calib)
    assert_quantised_same_function(xml, h4_ir, frame)
    card = json.loads((xml.parent / "model.json").read_text())
    assert card["precision"] == "INT8" and card["sha256"] == file_sha256(xml.with_suffix(".bin"))
    assert card["int8"]["calibration"]["images"] == 2 and card["int8"]["calibration"]["short_side"] == 384
    assert card["int8"]["source"] == {"precision": "FP32", "weights": "random-init seed 0"}


@pytest.mark.slow
def test_quantize_cli_records_calibration_and_ap_change(unlabeled, coco_mini, h4_ir, frame, tmp_path, capsys):
    """An IR quantised on unlabeled images loads in the runtime, runs in INT8 and still computes its source's
    function; the card records the calibration and the AP change on coco-mini as `edgepose eval` measures it."""
    from edgepose.inference import PoseModel
    from edgepose.registry import auto_eligible

    src = tmp_path / "h4-fp32"  # the session's H-4 with a measured AP in its card, which auto ranks by
    src.mkdir()
    for name in ("model.xml", "model.bin"):
        (src / name).write_bytes((h4_ir.parent / name).read_bytes())
    (src / "model.json").write_text(json.dumps({**json.loads((h4_ir.parent / "model.json").read_text()), "ap": 40.0}))
    out = tmp_path / "models" / "h4-int8"
    main(["quantize", "--model", str(src), "--calib", str(unlabeled), "--calib-images", "3",
          "--ann", str(coco_mini / "person_keypoints.json"), "--images", str(coco_mini / "images"), "--out", str(out)])
    card = json.loads((out / "model.json").read_text())
    ap = card["int8"]["ap"]
    assert capsys.readouterr().out == (f"wrote {out / 'model.xml'} (INT8, AP {ap['reference']:.3f} -> "
                                       f"{ap['int8']:.3f} ({ap['change']:+.3f}))\n")
    assert ap["dataset"] == "person_keypoints.json (32 images)"
    assert ap["change"] == pytest.approx(ap["int8"] - ap["reference"], abs=1e-4)
    assert card["ap"] == pytest.approx(40.0 + 100 * ap["change"])  # the source's AP moved by the measured change
    assert card["name"] == "efficienthrnet-h-4-int8" and card["precision"] == "INT8"
    assert card["sha256"] == file_sha256(out / "model.bin")
    assert card["int8"]["source"] == {"name": "efficienthrnet-h-4", "precision": "FP32",
                                      "sha256": file_sha256(h4_ir.with_suffix(".bin"))}
    calibration = card["int8"]["calibration"]
    assert calibration["images"] == 3 and calibration["from"] == str(unlabeled) and calibration["short_side"] == 384
    assert sorted(p.name for p in out.parent.iterdir()) == ["h4-int8"]  # no temporary folder left
    assert_quantised_same_function(out / "model.xml", h4_ir, frame)
    poses_input = frame[0, :200, :300]
    assert PoseModel(out / "model.xml").infer(np.ascontiguousarray(poses_input)).heatmaps.shape[0] == 17
    assert auto_eligible(out / "model.xml") is (ap["change"] >= -0.01)


@pytest.fixture()
def int8_copy(h4_ir, tmp_path) -> Path:
    """The H-4 IR with a card claiming INT8 (the check refuses it before reading the weights)."""
    dest = tmp_path / "already-int8"
    dest.mkdir()
    for name in ("model.xml", "model.bin"):
        (dest / name).write_bytes((h4_ir.parent / name).read_bytes())
    card = json.loads((h4_ir.parent / "model.json").read_text())
    (dest / "model.json").write_text(json.dumps(dict(card, precision="INT8")))
    return dest


@pytest.mark.parametrize(
    "args, message",
    [
        (["--calib", "{coco}/images", "--ann", "{coco}/person_keypoints.json", "--images", "{coco}/images"],
         "is the evaluation image"),
        (["--calib", "{tmp}/nope"], "calibration folder"),
        (["--calib", "{tmp}"], "INT8 export needs calibration images"),
        (["--calib", "{unlabeled}", "--ann", "{coco}/person_keypoints.json"], "needs both --ann and --images"),
        (["--calib", "{unlabeled}", "--model", "{int8}"], "is already INT8"),
        (["--calib", "{unlabeled}", "--model", "{omz}"], "only edgepose exports"),
        (["--calib", "{unlabeled}", "--model", "{tmp}/missing"], "model file not found"),
    ],
    ids=["calibrate-on-validation", "no-folder", "empty-folder", "ann-without-images", "already-int8", "omz",
         "no-model"],
)
def test_quantize_bad_input_one_error_line_nothing_written(args, message, h4_ir, int8_copy, omz_model, coco_mini,
                                                          unlabeled, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    paths = {"coco": coco_mini, "tmp": empty, "unlabeled": unlabeled, "int8": int8_copy, "omz": omz_model}
    args = [a.format(**{k: str(v) for k, v in paths.items()}) for a in args]
    if "--model" not in args:
        args += ["--model", str(h4_ir.parent)]
    out_parent = tmp_path / "models"
    code, out, err = run_cli(["quantize", *args, "--out", str(out_parent / "x")], capsys)
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], err
    assert not out_parent.exists()


def test_int8_without_calibration_images_is_refused(tmp_path):
    with pytest.raises(ModelError, match="calibration images"):
        export_variant("H-4", tmp_path / "x", random_init=True, precision="INT8")
    assert list(tmp_path.iterdir()) == []


def run_cli(args, capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


def test_cli_export_from_checkpoint_into_existing_folder(h4_ir, tmp_path, capsys):
    """A saved checkpoint of the same seeded weights gives the very same IR as --random-init."""
    net = build_model("H-4")
    randomize(net, 0)
    ckpt = tmp_path / "h4.pth"
    torch.save({"epoch": 1, "state_dict": {f"module.{k}": v for k, v in net.state_dict().items()}}, ckpt)
    out = tmp_path / "models" / "h4"
    out.mkdir(parents=True)
    (out / "README.md").write_text("my notes\n")
    main(["export", "--variant", "h4", "--weights", str(ckpt), "--out", str(out)])  # returns on success
    assert capsys.readouterr().out == f"wrote {out / 'model.xml'} (H-4, FP32, openvino)\n"
    card = json.loads((out / "model.json").read_text())
    assert card["weights"] == f"checkpoint:h4.pth sha256 {file_sha256(ckpt)}"
    assert card["sha256"] == file_sha256(h4_ir.with_suffix(".bin"))
    assert (out / "README.md").read_text() == "my notes\n"
    assert sorted(p.name for p in out.parent.iterdir()) == ["h4"]  # no temporary folder left


@pytest.mark.slow
def test_cli_export_records_the_ap_it_measured(coco_mini, tmp_path, capsys):
    """With --ann/--images the card carries the AP of the exported IR on that set, as `edgepose eval` gets it."""
    from edgepose.eval.coco import image_list
    from edgepose.inference import PoseModel
    from edgepose.service.predict import evaluate_model

    out = tmp_path / "models" / "h4"
    ann, images = coco_mini / "person_keypoints.json", coco_mini / "images"
    main(["export", "--variant", "H-4", "--random-init", "--precision", "FP16", "--ann", str(ann),
          "--images", str(images), "--out", str(out)])
    card = json.loads((out / "model.json").read_text())
    measured = card["eval"]
    assert measured["dataset"] == "person_keypoints.json (32 images)"
    assert capsys.readouterr().out == (f"wrote {out / 'model.xml'} (H-4, FP16, openvino, AP {measured['AP']:.3f} on "
                                       "person_keypoints.json (32 images))\n")
    stats, _ = evaluate_model(PoseModel(out / "model.xml"), ann, image_list(ann, images))
    assert measured["AP"] == round(stats["AP"], 4) and measured["AR"] == round(stats["AR"], 4)
    assert card["ap"] == round(100 * measured["AP"], 2)
    assert sorted(p.name for p in out.iterdir()) == ["model.bin", "model.json", "model.xml"]


@pytest.fixture()
def bad_checkpoints(tmp_path) -> dict:
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(os.urandom(4096))
    with torch.device("meta"):
        h3 = build_model("H-3")
    wrong = tmp_path / "h3.pth"
    torch.save({k: torch.zeros(v.shape) for k, v in h3.state_dict().items()}, wrong)
    not_weights = tmp_path / "opt.pth"
    torch.save({"epoch": 3, "lr": 0.001}, not_weights)
    with torch.device("meta"):
        h4 = build_model("H-4")
    tags = tmp_path / "tags.pth"  # trained with WITH_AE_LOSS [True, True]: 34 channels in final_layers.1
    torch.save({k: torch.zeros((34, *v.shape[1:]) if k.startswith("final_layers.1.") else v.shape)
                for k, v in h4.state_dict().items()}, tags)
    return {"corrupt": corrupt, "wrong": wrong, "not_weights": not_weights, "tags": tags,
            "missing": tmp_path / "nope.pth"}


@pytest.mark.parametrize(
    "args, message",
    [
        (["--variant", "H-9", "--random-init"], "unknown variant 'H-9': choose one of H0, H-1, H-2, H-3, H-4"),
        (["--variant", "H-4"], "give exactly one of --weights CHECKPOINT or --random-init"),
        (["--variant", "H-4", "--random-init", "--weights", "{missing}"], "give exactly one of"),
        (["--variant", "H-4", "--weights", "{missing}"], "nope.pth does not exist"),
        (["--variant", "H-4", "--weights", "{corrupt}"], "expected a PyTorch state_dict saved with torch.save"),
        (["--variant", "H-4", "--weights", "{not_weights}"], "'epoch' is a int, not a tensor"),
        (["--variant", "H-4", "--weights", "{wrong}"], "The checkpoint is an EfficientHRNet H-3: use variant H-3."),
        (["--variant", "H-4", "--random-init", "--precision", "INT8"], "INT8 export needs calibration images"),
        (["--variant", "H-4", "--random-init", "--precision", "INT8", "--calib", "{missing}"],
         "calibration folder"),
        (["--variant", "H-4", "--random-init", "--format", "onnx", "--precision", "FP16"], "FP32 only"),
        (["--variant", "H-4", "--weights", "{tags}"], "(edgepose export --drop-stride2-tags) to keep its 17 heatmap"),
        (["--variant", "H-4", "--random-init", "--ann", "{corrupt}"], "measuring the AP needs both --ann and --images"),
        (["--variant", "H-4", "--random-init", "--ann", "{corrupt}", "--images", "{missing}"],
         "corrupt.pth is not a COCO annotation file"),
        (["--variant", "H-4", "--random-init", "--format", "onnx", "--ann", "{corrupt}"], "drop them with --format onnx"),
    ],
    ids=["unknown-variant", "no-weights", "both", "missing", "corrupt", "not-weights", "wrong-shapes", "int8-no-calib",
         "int8-bad-calib", "onnx-fp16", "stride2-tags", "ann-no-images", "bad-ann", "onnx-ann"],
)
def test_cli_bad_input_one_error_line_nothing_written(args, message, bad_checkpoints, tmp_path, capsys):
    out_parent = tmp_path / "models"
    args = [a.format(**{k: str(v) for k, v in bad_checkpoints.items()}) for a in args]
    code, out, err = run_cli(["export", *args, "--out", str(out_parent / "x")], capsys)
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], err
    assert not out_parent.exists() or list(out_parent.iterdir()) == []
