"""One image in, poses out: the offline path used by ``edgepose eval`` and tools."""

from __future__ import annotations

import numpy as np

from pathlib import Path

from edgepose.inference import PoseModel
from edgepose.types import NetOutput, Poses


def _valid_part(out: NetOutput, image_width: int) -> NetOutput:
    """Crop the right-hand padding columns (frames are padded right/bottom to the network's divisor)."""
    width = min(out.heatmaps.shape[2], int(round(image_width / out.scale[0])))
    return NetOutput(out.heatmaps[:, :, :width], out.tags[:, :, :width], out.nms_applied, out.scale)


def predict_image(model: PoseModel, image_bgr: np.ndarray, *, flip: bool = False, params=None) -> Poses:
    """Run ``model`` on one BGR image and group the result; poses are in image pixels.

    With ``flip`` the mirrored image is run too and merged as the paper's flip test does (heatmaps averaged,
    tags stacked as a second embedding dimension). Both outputs are cropped to the image's own columns first,
    so the mirrored padding does not shift the merge.
    """
    from edgepose import decode

    out = model.infer(image_bgr)
    if flip:
        mirrored = model.infer(np.ascontiguousarray(image_bgr[:, ::-1]))
        width = image_bgr.shape[1]
        out = decode.flip_merge(_valid_part(out, width), _valid_part(mirrored, width))
    return decode.decode(out, params)


def evaluate_model(model: PoseModel, ann_file: str | Path, images: list[tuple[int, Path]], *, flip: bool = False,
                   results_file: str | Path | None = None, progress: bool = False) -> tuple[dict[str, float], int]:
    """COCO keypoint metrics of ``model`` on ``images`` ((id, path) from ``eval.coco.image_list``, read first so
    a bad annotation file fails before a model is loaded): (metrics, people found)."""
    import cv2

    from edgepose.eval.coco import evaluate, poses_to_coco

    ids = [i for i, _ in images]
    if progress:
        from tqdm import tqdm

        images = tqdm(images, desc="eval", unit="img")
    results = []
    for image_id, path in images:
        results += poses_to_coco(image_id, predict_image(model, cv2.imread(str(path)), flip=flip))
    return evaluate(ann_file, results, image_ids=ids, results_file=results_file), len(results)
