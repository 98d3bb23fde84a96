"""Export an EfficientHRNet variant to an OpenVINO IR the edgepose runtime executes.

The IR takes raw frames: input ``image`` [1, H, W, 3] u8 BGR (H and W dynamic, multiples of 64); colour
conversion, mean/std normalisation and layout change are embedded with OpenVINO's PrePostProcessor. It
returns ``heatmaps`` [1, 17, H/2, W/2] and ``embeddings`` [1, 17, H/2, W/2, 1]: the official single-scale
test-time aggregation (see ``InferenceHead``) without NMS. A ``model.json`` card beside ``model.xml`` /
``model.bin`` describes it (``CARD_FORMAT`` version ``CARD_VERSION``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch

from edgepose.errors import ModelError
from edgepose.types import JOINT_NAMES
from edgepose.variants import Variant, get_variant

CARD_FORMAT = "edgepose-ir"
CARD_VERSION = 1
MULTIPLE_OF = 64
MEAN_RGB = (0.485, 0.456, 0.406)
STD_RGB = (0.229, 0.224, 0.225)
PRECISIONS = ("FP32", "FP16", "INT8")
# Spatial size of the trace example: small and non-square, so nothing square-only is baked into the graph.
EXAMPLE_HW = (128, 192)
CALIB_SUBSET = 16  # images NNCF calibrates on; post-training quantisation of BN-folded convs needs few
CALIB_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def to_openvino(net: torch.nn.Module):
    """Convert the network plus test-time aggregation plus embedded preprocessing to an ``ov.Model``."""
    import openvino as ov
    from openvino.preprocess import ColorFormat, PrePostProcessor

    from edgepose.train.model import InferenceHead

    head = InferenceHead(net).eval()
    with torch.no_grad():
        model = ov.convert_model(
            head,
            example_input=torch.zeros(1, 3, *EXAMPLE_HW),
            input=[ov.PartialShape([1, 3, -1, -1])],
        )
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


def calibration_frames(images: Path | Iterable[Path], hw: tuple[int, int], limit: int = CALIB_SUBSET) -> list[np.ndarray]:
    """Real images as the runtime feeds them: BGR u8 [1, H, W, 3], resized to ``hw``."""
    import cv2

    if isinstance(images, (str, Path)):
        folder = Path(images)
        if not folder.is_dir():
            raise ModelError(f"calibration folder {folder} does not exist: give a folder of .jpg/.png images")
        images = sorted(p for p in folder.iterdir() if p.suffix.lower() in CALIB_EXTENSIONS)
    frames = []
    for path in list(images)[:limit]:
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if img is None:
            raise ModelError(f"calibration image {path} cannot be read: remove it or convert it to JPEG/PNG")
        frames.append(cv2.resize(img, (hw[1], hw[0]), interpolation=cv2.INTER_AREA)[None])
    if not frames:
        raise ModelError("INT8 export needs calibration images: pass --calib with a folder of real photos of people")
    return frames


def quantize_int8(model, frames: list[np.ndarray]):
    """NNCF post-training quantisation of the IR (preprocessing included) on real frames."""
    import nncf

    return nncf.quantize(model, nncf.Dataset(frames), subset_size=len(frames))


def card(variant: Variant, precision: str, weights: str, bin_sha256: str) -> dict:
    """The ``model.json`` the runtime reads beside ``model.xml``."""
    from edgepose.train.counting import count_params_macs

    counts = count_params_macs(variant)
    return {
        "format": CARD_FORMAT,
        "version": CARD_VERSION,
        "name": f"efficienthrnet-{variant.name.lower()}",
        "variant": variant.name,
        "input_size": variant.input_size,
        "test_short_side": variant.test_short_side,
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
) -> Path:
    """Export one variant to ``out_dir/model.xml`` (+ ``model.bin``, ``model.json``); returns the .xml path.

    Exactly one of ``weights`` (an official or edgepose checkpoint) and ``random_init`` (seeded random
    weights, for tests and speed profiling) is required. ``precision`` is FP32, FP16 (weights compressed) or
    INT8 (NNCF post-training quantisation on ``calib_images``, a folder or a list of image paths). The
    export is atomic: it is built in a temporary folder beside ``out_dir`` and renamed into place (into an
    existing ``out_dir`` file by file, other files there left alone); nothing is left behind on failure.
    """
    import openvino as ov

    from edgepose.train.model import build_model, randomize
    from edgepose.train.official import load_official_state_dict, read_checkpoint

    variant = get_variant(variant) if isinstance(variant, str) else variant
    precision = precision.upper()
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
    if (weights is None) == (not random_init):
        raise ValueError("give exactly one of weights=<checkpoint> or random_init=True")
    if precision == "INT8" and calib_images is None:
        raise ModelError("INT8 export needs calibration images: pass --calib with a folder of real photos of people")
    out_dir = Path(out_dir)

    torch.manual_seed(seed)
    net = build_model(variant)
    if random_init:
        randomize(net, seed)
        source = f"random-init seed {seed}"
    else:
        state = read_checkpoint(weights)
        try:
            load_official_state_dict(net, state, drop_stride2_tags=drop_stride2_tags)
        except ValueError as exc:
            raise ModelError(f"{weights}: {exc}") from exc
        source = f"checkpoint:{Path(weights).name} sha256 {sha256_file(Path(weights))}"
    net.eval()

    model = to_openvino(net)
    if precision == "INT8":
        hw = (variant.test_short_side, variant.test_short_side)
        model = quantize_int8(model, calibration_frames(calib_images, hw))

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        ov.save_model(model, tmp / "model.xml", compress_to_fp16=precision == "FP16")
        info = card(variant, precision, source, sha256_file(tmp / "model.bin"))
        (tmp / "model.json").write_text(json.dumps(info, indent=2) + "\n")
        if out_dir.exists():
            # Never delete a user's folder (it may hold a model card): replace our files one by one, the card
            # last, so a reader never sees a card that describes other weights.
            for name in ("model.bin", "model.xml", "model.json"):
                os.replace(tmp / name, out_dir / name)
            tmp.rmdir()
        else:
            tmp.rename(out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir / "model.xml"
