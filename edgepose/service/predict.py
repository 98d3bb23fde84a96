"""One image in, poses out: the offline path used by ``edgepose eval`` and tools."""

from __future__ import annotations

import numpy as np

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
