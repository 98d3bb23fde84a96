"""COCO keypoint AP of a torch EfficientHRNet during training, computed the way the deployed model is used.

Each image goes through the runtime's geometry (short side to the test size, long side rounded up to a
multiple of 64, zero padding right/bottom: ``edgepose.inference.common.Geometry``), the network plus the
export's test-time aggregation (``InferenceHead``), ``edgepose.decode`` and pycocotools
(``edgepose.eval.coco``). So the AP seen while training is the AP the exported IR gets, up to OpenVINO
arithmetic.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import torch

from edgepose import decode
from edgepose.errors import EdgeposeError
from edgepose.eval.coco import evaluate, poses_to_coco
from edgepose.inference.common import Geometry
from edgepose.train.data import load_coco, normalize, person_category
from edgepose.train.model import InferenceHead
from edgepose.types import NetOutput

DIVISOR = 64  # the official test code rounds input sides up to multiples of 64
OUTPUT_STRIDE = 2  # InferenceHead returns maps at 1/2 of the input


def test_short_side(input_size: int) -> int:
    """The official test-time short side for a training input size: rounded up to a multiple of 64."""
    return int(math.ceil(input_size / DIVISOR) * DIVISOR)


@torch.no_grad()
def network_output(net: torch.nn.Module, image_bgr: np.ndarray, short: int, device: torch.device) -> NetOutput:
    """The torch network's aggregated heatmaps and tags for one BGR image (net in eval mode), as the runtime
    would get them from the exported model: ``scale`` maps map pixels to image pixels."""
    h, w = image_bgr.shape[:2]
    geometry = Geometry.for_frame(w, h, short, DIVISOR)
    frame = geometry.fill(image_bgr, geometry.new_buffer())[0]
    x = torch.from_numpy(normalize(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)))[None].to(device)
    heatmaps, tags = InferenceHead(net)(x)
    k = OUTPUT_STRIDE / geometry.scale
    return NetOutput(heatmaps[0].float().cpu().numpy(), tags[0].float().cpu().numpy(), nms_applied=False, scale=(k, k))


def predict_coco(net: torch.nn.Module, image_bgr: np.ndarray, image_id: int, short: int, device: torch.device) -> list[dict]:
    """COCO result entries for one BGR image, from the torch network in eval mode."""
    return poses_to_coco(image_id, decode.decode(network_output(net, image_bgr, short, device)))


def annotated_images(ann_file: str | Path, image_dir: str | Path, image_ids: list[int] | None = None):
    """(pycocotools COCO, image ids, iterator of (image id, BGR image)) over the images with a person annotation
    (or ``image_ids``); EdgeposeError for an image that is missing or unreadable."""
    coco = load_coco(ann_file)
    category = person_category(coco)
    ids = image_ids if image_ids is not None else [
        i for i in sorted(coco.getImgIds()) if coco.getAnnIds(imgIds=i, catIds=[category], iscrowd=None)
    ]

    def images():
        for image_id in ids:
            path = Path(image_dir) / coco.loadImgs(image_id)[0]["file_name"]
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is None:
                raise EdgeposeError(f"image {path} is missing or unreadable: check the image folder matches {ann_file}")
            yield image_id, image

    return coco, ids, images()


def coco_ap(
    net: torch.nn.Module,
    ann_file: str | Path,
    image_dir: str | Path,
    short: int,
    *,
    device: torch.device | str = "cpu",
    image_ids: list[int] | None = None,
    results_file: str | Path | None = None,
) -> dict[str, float]:
    """COCO keypoint metrics (``edgepose.eval.coco.METRICS``) of ``net`` on the annotated images of ``ann_file``.

    The network is put in eval mode for the pass and restored afterwards. ``image_ids`` restricts the set
    (default: every image with a person annotation).
    """
    _, ids, images = annotated_images(ann_file, image_dir, image_ids)
    was_training = net.training
    net.eval()
    results = []
    try:
        for image_id, image in images:
            results += predict_coco(net, image, image_id, short, torch.device(device))
    finally:
        net.train(was_training)
    return evaluate(ann_file, results, image_ids=ids, results_file=results_file)
