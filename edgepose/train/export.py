"""Export an EfficientHRNet variant to an OpenVINO IR the edgepose runtime executes.

The IR takes raw frames: input ``image`` [1, H, W, 3] u8 BGR (H and W dynamic, multiples of 64); colour
conversion, mean/std normalisation and layout change are embedded with OpenVINO's PrePostProcessor. It
returns ``heatmaps`` [1, 17, H/2, W/2] and ``embeddings`` [1, 17, H/2, W/2, 1]: the official single-scale
test-time aggregation (see ``InferenceHead``) without NMS. A ``model.json`` card beside ``model.xml`` /
``model.bin`` describes it (``CARD_FORMAT`` version ``CARD_VERSION``).

``export_onnx`` writes the same contract as ONNX (``model.onnx``, card format ``ONNX_CARD_FORMAT``) for ONNX
Runtime (TensorRT/CUDA on NVIDIA Jetson); there the normalisation is part of the traced graph.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import torch

from edgepose.errors import ModelError
from edgepose.inference.common import Geometry, file_sha256
from edgepose.types import JOINT_NAMES
from edgepose.variants import Variant, get_variant

CARD_FORMAT = "edgepose-ir"
ONNX_CARD_FORMAT = "edgepose-onnx"
ONNX_OPSET = 17
CARD_VERSION = 1
MULTIPLE_OF = 64
MEAN_RGB = (0.485, 0.456, 0.406)
STD_RGB = (0.229, 0.224, 0.225)
PRECISIONS = ("FP32", "FP16", "INT8")
# Spatial size of the trace example: small and non-square, so nothing square-only is baked into the graph.
EXAMPLE_HW = (128, 192)
CALIB_SUBSET = 64  # images NNCF calibrates on; post-training quantisation of BN-folded convs needs few
CALIB_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")


def to_openvino(net: torch.nn.Module):
    """Convert the network plus test-time aggregation plus embedded preprocessing to an ``ov.Model``."""
    import openvino as ov
    from openvino.preprocess import ColorFormat, PrePostProcessor

    from edgepose.train.model import InferenceHead

    example = torch.zeros(1, 3, *EXAMPLE_HW)
    with torch.no_grad():
        # Tracing ourselves without trace checking takes a third of convert_model's own tracing time.
        traced = torch.jit.trace(InferenceHead(net).eval(), example, check_trace=False)
        model = ov.convert_model(traced, example_input=example, input=[ov.PartialShape([1, 3, -1, -1])])
    model.outputs[0].get_tensor().set_names({"heatmaps"})
    model.outputs[1].get_tensor().set_names({"embeddings"})

    ppp = PrePostProcessor(model)
    inp = ppp.input()
    inp.tensor().set_element_type(ov.Type.u8).set_layout(ov.Layout("NHWC")).set_color_format(ColorFormat.BGR)
    inp.model().set_layout(ov.Layout("NCHW"))
    inp.preprocess().convert_element_type(ov.Type.f32).convert_color(ColorFormat.RGB).mean(
        [m * 255.0 for m in MEAN_RGB]
    ).scale([s * 255.0 for s in STD_RGB])
    model = ppp.build()
    model.input().get_tensor().set_names({"image"})
    return model


def calibration_images(source: Path | Iterable[Path], limit: int) -> list[Path]:
    """Up to ``limit`` image paths: a folder is searched recursively and sampled evenly over its sorted files,
    so every sub-folder (source) is represented, not just the first one."""
    if isinstance(source, (str, Path)):
        folder = Path(source)
        if not folder.is_dir():
            raise ModelError(f"calibration folder {folder} does not exist: give a folder of .jpg/.png images")
        paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in CALIB_EXTENSIONS and p.is_file())
    else:
        paths = list(source)
    if len(paths) > limit:
        paths = [paths[round(i * (len(paths) - 1) / (limit - 1))] for i in range(limit)] if limit > 1 else paths[:1]
    if not paths:
        raise ModelError("INT8 export needs calibration images: pass --calib with a folder of real photos of people")
    return paths


def calibration_frames(images: Path | Iterable[Path], short_side: int, divisor: int = MULTIPLE_OF,
                       limit: int = CALIB_SUBSET) -> list[np.ndarray]:
    """Real images exactly as the runtime feeds them: BGR u8 [1, H, W, 3], each scaled so its short side is
    ``short_side`` and padded right/bottom to multiples of ``divisor`` (``Geometry``, as ``PoseModel`` does)."""
    import cv2

    frames = []
    for path in calibration_images(images, limit):
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if img is None:
            raise ModelError(f"calibration image {path} cannot be read: remove it or convert it to JPEG/PNG")
        geometry = Geometry.for_frame(img.shape[1], img.shape[0], short_side, divisor)
        frames.append(geometry.fill(img, geometry.new_buffer()))
    return frames


def quantize_int8(model, frames: list[np.ndarray]):
    """NNCF post-training quantisation of the IR (preprocessing included) on real frames."""
    import contextlib
    import sys

    import nncf

    with contextlib.redirect_stdout(sys.stderr):  # its progress bars: stdout is the CLI's result line
        return nncf.quantize(model, nncf.Dataset(frames), subset_size=len(frames))


def executed_int8_layers(compiled) -> int:
    """Convolutions of a compiled model that the device really runs in 8-bit integers (its runtime precision)."""
    return sum(op.get_rt_info()["runtimePrecision"].astype(str) in ("i8", "u8")
               for op in compiled.get_runtime_model().get_ordered_ops()
               if op.get_rt_info()["layerType"].astype(str) in ("Convolution", "GroupConvolution", "Deconvolution"))


def int8_record(calib: Path | Iterable[Path], frames: list[np.ndarray], short_side: int, source: dict) -> dict:
    """The card's ``int8`` entry: what was quantised, with what tool, on which images."""
    import nncf

    where = str(calib) if isinstance(calib, (str, Path)) else f"{len(frames)} listed files"
    return {
        "tool": f"nncf {nncf.__version__} post-training quantisation (default preset)",
        "source": source,
        "calibration": {"images": len(frames), "from": where, "short_side": short_side,
                        "preprocessing": "as the runtime: short side scaled, padded right/bottom to /64"},
    }


def quantize_ir(
    model_dir: str | Path,
    out_dir: str | Path,
    calib_images: Path | Iterable[Path],
    *,
    limit: int = CALIB_SUBSET,
    ann_file: str | Path | None = None,
    eval_images: str | Path | None = None,
) -> Path:
    """Quantise an edgepose IR (FP32 or FP16) to INT8 into ``out_dir``; returns the new .xml.

    Calibration runs on up to ``limit`` of ``calib_images`` preprocessed as the runtime does, at the short
    side the card names. With ``ann_file``/``eval_images`` (a COCO keypoint set) both models are evaluated and
    the AP change goes into the card (``int8.ap``), which ``--model auto`` requires before it picks an INT8
    model; an evaluation image among the calibration images is refused (it would flatter the figure). The
    write is atomic, as ``export_variant``'s.
    """
    import openvino as ov

    from edgepose.inference.openvino import read_model_info

    info = read_model_info(model_dir)
    src = info.card
    if info.kind != "edgepose" or not src:
        raise ModelError(f"{info.path}: only edgepose exports (with a model.json card) can be quantised here")
    if str(src.get("precision", "")).upper() == "INT8":
        raise ModelError(f"{info.path} is already INT8: quantise its FP32/FP16 export instead")
    if (ann_file is None) != (eval_images is None):
        raise ModelError("measuring the AP change needs both --ann and --images")
    paths = calibration_images(calib_images, limit)
    if eval_images is not None:
        _refuse_eval_images(paths, ann_file, eval_images)
    frames = calibration_frames(paths, info.input_size, info.divisor, limit)
    model = quantize_int8(ov.Core().read_model(info.path), frames)
    source = {"name": info.name, "precision": src.get("precision"), "sha256": src.get("sha256")}
    record = int8_record(calib_images, frames, info.input_size, source)

    def write(tmp: Path) -> dict:
        ov.save_model(model, tmp / "model.xml")
        new = dict(src, name=f"{info.name}-int8", precision="INT8", sha256=file_sha256(tmp / "model.bin"),
                   int8=record)
        new.pop("ap", None)  # the source's measured AP (%, what auto ranks by) is not this model's
        if ann_file is not None:
            (tmp / "model.json").write_text(json.dumps(new))  # the runtime needs the card to load tmp's model
            new["int8"]["ap"] = change = ap_change(info.path, tmp / "model.xml", ann_file, eval_images)
            if src.get("ap") is not None:  # the source's figure, moved by the change measured here
                new["ap"] = round(float(src["ap"]) + 100 * change["change"], 2)
        return new

    _write_export(Path(out_dir), CARD_FORMAT, ("model.bin", "model.xml"), write)
    return Path(out_dir) / "model.xml"


def _eval_entries(ann_file: str | Path | None, images: str | Path | None) -> list:
    """(image id, path) of a COCO keypoint set, [] without one."""
    if ann_file is None:
        return []
    from edgepose.eval.coco import image_list

    return image_list(ann_file, images)


def coco_ap(xml: Path, ann_file: str | Path, entries: list) -> dict:
    """COCO keypoint AP of one IR on ``entries``, as ``edgepose eval`` measures it (single scale, no flip)."""
    from edgepose.inference.openvino import PoseModel
    from edgepose.service.predict import evaluate_model

    stats = evaluate_model(PoseModel(xml), ann_file, entries)[0]
    return {"dataset": f"{Path(ann_file).name} ({len(entries)} images)",
            **{k: round(stats[k], 4) for k in ("AP", "AP50", "AP75", "AR")}}


def ap_change(reference_xml: Path, int8_xml: Path, ann_file: str | Path, images: str | Path) -> dict:
    """AP of both models on a COCO keypoint set, as ``edgepose eval`` measures it (single scale, no flip)."""
    entries = _eval_entries(ann_file, images)
    ref, int8 = (coco_ap(xml, ann_file, entries) for xml in (reference_xml, int8_xml))
    return {"dataset": ref["dataset"], "reference": ref["AP"], "int8": int8["AP"],
            "change": round(int8["AP"] - ref["AP"], 4)}


def _refuse_eval_images(calib: list[Path], ann_file: str | Path, images: str | Path) -> None:
    """ModelError if a calibration image has the same bytes as an evaluation image."""
    from edgepose.eval.coco import image_list

    held_out = {file_sha256(path): path for _, path in image_list(ann_file, images)}
    for path in calib:
        if file_sha256(path) in held_out:
            raise ModelError(f"calibration image {path} is the evaluation image {held_out[file_sha256(path)].name}: "
                             "calibrate on other images (e.g. ../shared/data/unlabeled)")


def tiny_weights_to_fp16(model, min_size: int = 1024) -> int:
    """Store in f16 (with a Convert back to f32) the large f32 constants whose values all fit f16's range.

    ``compress_to_fp16`` keeps a constant in f32 when most of its values would underflow in f16. Training
    from scratch with weight decay drives the weights of layers that get almost no gradient to ~1e-7 (40 %
    of the distilled H-4's weights), so the "FP16" file came out nearly FP32-sized; flushing such weights
    changed that model's outputs by ~2e-6. Values too large for f16 are left alone. Returns the count.
    """
    import openvino as ov
    from openvino import opset13

    count = 0
    for op in model.get_ordered_ops():
        if op.get_type_name() != "Constant" or op.get_output_element_type(0) != ov.Type.f32:
            continue
        data = op.get_data()
        if data.size < min_size or np.abs(data).max() > np.finfo(np.float16).max:
            continue
        f16 = opset13.convert(opset13.constant(data.astype(np.float16)), ov.Type.f32)
        for target in list(op.output(0).get_target_inputs()):
            target.replace_source_output(f16.output(0))
        count += 1
    model.validate_nodes_and_infer_types()
    return count


def trained_input_size(weights: str | Path | None) -> int | None:
    """The input size an ``edgepose train`` checkpoint was trained at (its saved config), else None."""
    if weights is None:
        return None
    obj = torch.load(weights, map_location="cpu", weights_only=True)
    config = obj.get("config") if isinstance(obj, dict) else None
    return int(config["input_size"]) if isinstance(config, dict) and config.get("input_size") else None


def runtime_short_side(variant: Variant, input_size: int | None) -> int:
    """The short side the runtime scales frames to: the trained size rounded up to a multiple of 64, as the
    official test code does (validation's own rule), else the variant's test size."""
    from edgepose.train.validate import test_short_side

    return test_short_side(input_size) if input_size else variant.test_short_side


def card(variant: Variant, precision: str, weights: str, bin_sha256: str, input_size: int | None = None) -> dict:
    """The ``model.json`` the runtime reads beside ``model.xml``.

    ``input_size``: the size the weights were trained at when not the variant's (e.g. a small CPU run); the
    runtime then tests at that size rounded up to a multiple of 64, as the official test code does.
    """
    from edgepose.train.counting import count_params_macs

    counts = count_params_macs(variant)
    return {
        "format": CARD_FORMAT,
        "version": CARD_VERSION,
        "name": f"efficienthrnet-{variant.name.lower()}",
        "variant": variant.name,
        "input_size": input_size or variant.input_size,
        "test_short_side": runtime_short_side(variant, input_size),
        "multiple_of": MULTIPLE_OF,
        "input": {"name": "image", "layout": "NHWC", "color": "BGR", "dtype": "u8"},
        "outputs": {"heatmaps": {"stride": 2}, "embeddings": {"stride": 2}},
        "nms_in_graph": False,
        "normalisation": {"mean": list(MEAN_RGB), "std": list(STD_RGB), "rgb": True},
        "joints": list(JOINT_NAMES),
        "precision": precision,
        "weights": weights,
        "params": counts.params,
        "macs": counts.macs,
        "sha256": bin_sha256,
    }


def export_variant(
    variant: Variant | str,
    out_dir: str | Path,
    *,
    weights: str | Path | None = None,
    random_init: bool = False,
    precision: str = "FP32",
    calib_images: Path | Iterable[Path] | None = None,
    seed: int = 0,
    drop_stride2_tags: bool = False,
    ann_file: str | Path | None = None,
    eval_images: str | Path | None = None,
) -> Path:
    """Export one variant to ``out_dir/model.xml`` (+ ``model.bin``, ``model.json``); returns the .xml path.

    Exactly one of ``weights`` (an official or edgepose checkpoint) and ``random_init`` (seeded random
    weights, for tests and speed profiling) is required. ``precision`` is FP32, FP16 (weights compressed) or
    INT8 (NNCF post-training quantisation on ``calib_images``, a folder or a list of image paths). With
    ``ann_file``/``eval_images`` (a COCO keypoint set) the exported IR is evaluated as ``edgepose eval`` does
    and its AP goes into the card (``ap`` in %, what ``--model auto`` ranks by, and ``eval``). The
    export is atomic: it is built in a temporary folder beside ``out_dir`` and renamed into place (into an
    existing ``out_dir`` file by file, other files there left alone); nothing is left behind on failure.
    """
    import openvino as ov

    variant = get_variant(variant) if isinstance(variant, str) else variant
    precision = precision.upper()
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
    if (ann_file is None) != (eval_images is None):
        raise ModelError("measuring the AP needs both --ann and --images")
    entries = _eval_entries(ann_file, eval_images)  # a bad annotation file fails before minutes of work
    frames = None
    if precision == "INT8":  # read the calibration set first: a bad folder fails before minutes of work
        if calib_images is None:
            raise ModelError("INT8 export needs calibration images: pass --calib with a folder of real photos of people")
        side = runtime_short_side(variant, trained_input_size(weights))
        frames = calibration_frames(calib_images, side)
    net, source = _network(variant, weights, random_init, seed, drop_stride2_tags)

    model = to_openvino(net)
    if frames is not None:
        model = quantize_int8(model, frames)

    if precision == "FP16":
        tiny_weights_to_fp16(model)

    def write(tmp: Path) -> dict:
        ov.save_model(model, tmp / "model.xml", compress_to_fp16=precision == "FP16")
        info = card(variant, precision, source, file_sha256(tmp / "model.bin"), trained_input_size(weights))
        if frames is not None:
            info["int8"] = int8_record(calib_images, frames, side, {"precision": "FP32", "weights": source})
        if entries:
            (tmp / "model.json").write_text(json.dumps(info))  # the runtime needs the card to load tmp's model
            info["eval"] = coco_ap(tmp / "model.xml", ann_file, entries)
            info["ap"] = round(100 * info["eval"]["AP"], 2)
        return info

    _write_export(Path(out_dir), CARD_FORMAT, ("model.bin", "model.xml"), write)
    return Path(out_dir) / "model.xml"


class OnnxGraph(torch.nn.Module):
    """What ``export_onnx`` traces: raw u8 BGR NHWC frames in, the ``InferenceHead`` outputs out, with the same
    colour conversion and mean/std normalisation that ``to_openvino`` embeds with PrePostProcessor."""

    def __init__(self, net: torch.nn.Module):
        from edgepose.train.model import InferenceHead

        super().__init__()
        self.head = InferenceHead(net).eval()
        self.register_buffer("mean", torch.tensor([m * 255.0 for m in MEAN_RGB]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([s * 255.0 for s in STD_RGB]).view(1, 3, 1, 1))

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        rgb = image.permute(0, 3, 1, 2)[:, [2, 1, 0]].float()
        return self.head((rgb - self.mean) / self.std)


def export_onnx(
    variant: Variant | str,
    out_dir: str | Path,
    *,
    weights: str | Path | None = None,
    random_init: bool = False,
    seed: int = 0,
    drop_stride2_tags: bool = False,
    opset: int = ONNX_OPSET,
) -> Path:
    """Export one variant to ``out_dir/model.onnx`` (+ ``model.json``) for ONNX Runtime; returns the .onnx path.

    Same contract as the IR: input ``image`` [1, H, W, 3] u8 BGR (H, W dynamic, multiples of 64), outputs
    ``heatmaps`` [1, 17, H/2, W/2] and ``embeddings`` [1, 17, H/2, W/2, 1]; FP32 weights (TensorRT picks FP16
    when it builds its engine). ``weights``/``random_init``/``seed`` as for ``export_variant``; atomic likewise.
    """
    import onnx

    variant = get_variant(variant) if isinstance(variant, str) else variant
    if opset < ONNX_OPSET:
        raise ValueError(f"opset {opset} is too old: edgepose ONNX exports need opset >= {ONNX_OPSET}")
    net, source = _network(variant, weights, random_init, seed, drop_stride2_tags)
    graph = OnnxGraph(net).eval()
    example = torch.zeros(1, *EXAMPLE_HW, 3, dtype=torch.uint8)
    spatial = {2: "heatmap_height", 3: "heatmap_width"}

    def write(tmp: Path) -> dict:
        with torch.no_grad(), warnings.catch_warnings():
            # The TorchScript exporter reports slices it leaves unfolded; harmless, and noise to users.
            warnings.filterwarnings("ignore", message="Constant folding - Only steps=1", category=UserWarning)
            torch.onnx.export(
                graph, (example,), str(tmp / "model.onnx"), dynamo=False, opset_version=opset,
                input_names=["image"], output_names=["heatmaps", "embeddings"],
                dynamic_axes={"image": {1: "height", 2: "width"}, "heatmaps": spatial, "embeddings": spatial},
            )
        onnx.checker.check_model(str(tmp / "model.onnx"))
        info = card(variant, "FP32", source, file_sha256(tmp / "model.onnx"), trained_input_size(weights))
        return dict(info, format=ONNX_CARD_FORMAT, opset=opset)

    _write_export(Path(out_dir), ONNX_CARD_FORMAT, ("model.onnx",), write)
    return Path(out_dir) / "model.onnx"


def _network(variant: Variant, weights, random_init: bool, seed: int, drop_stride2_tags: bool):
    """(network in eval mode, a description of its weights for the card)."""
    from edgepose.train.model import build_model, randomize
    from edgepose.train.official import load_official_state_dict, read_checkpoint_and_config

    if (weights is None) == (not random_init):
        raise ValueError("give exactly one of weights=<checkpoint> or random_init=True")
    torch.manual_seed(seed)
    if random_init:
        net = build_model(variant)
        randomize(net, seed)
        source = f"random-init seed {seed}"
    else:
        state, config = read_checkpoint_and_config(weights)
        # An edgepose run records its backbone activation (ReLU6 when it started from EfficientNet-Lite).
        net = build_model(variant, config.get("activation") or "swish")
        try:
            load_official_state_dict(net, state, drop_stride2_tags=drop_stride2_tags)
        except ValueError as exc:
            raise ModelError(f"{weights}: {exc}") from exc
        source = f"checkpoint:{Path(weights).name} sha256 {file_sha256(Path(weights))}"
    return net.eval(), source


def _write_export(out_dir: Path, card_format: str, names: tuple[str, ...], write: Callable[[Path], dict]) -> None:
    """Atomically put an export into ``out_dir``: ``write(tmp)`` writes ``names`` into a temporary folder beside
    it and returns the card, saved as ``model.json``; then everything is renamed into place."""
    _check_same_format(out_dir / "model.json", card_format)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)  # mkdtemp's 0700 would hide a renamed folder from the service's user
    try:
        info = write(tmp)
        (tmp / "model.json").write_text(json.dumps(info, indent=2) + "\n")
        if out_dir.exists():
            # Never delete a user's folder (it may hold a model card): replace our files one by one, the card
            # last, so a reader never sees a card that describes other weights.
            for name in (*names, "model.json"):
                os.replace(tmp / name, out_dir / name)
            tmp.rmdir()
        else:
            tmp.rename(out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _check_same_format(card_path: Path, card_format: str) -> None:
    """One export per folder: an IR and an ONNX model would fight over the one ``model.json``."""
    try:
        existing = json.loads(card_path.read_text()).get("format")
    except (OSError, ValueError, AttributeError):
        return
    if existing and existing != card_format:
        raise ModelError(f"{card_path.parent} already holds an {existing!r} export; give the {card_format!r} "
                         "export its own --out folder")
