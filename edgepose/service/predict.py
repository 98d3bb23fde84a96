"""One image in, poses out: the offline path used by ``edgepose eval`` and tools."""

from __future__ import annotations

import numpy as np

from edgepose.inference import PoseModel
from edgepose.types import NetOutput, Poses


def predict_image(model: PoseModel, image_bgr: np.ndarray, *, flip: bool = False, params=None) -> Poses:
    """Run ``model`` on one BGR image and group the result; poses are in image pixels.

    With ``flip`` the mirrored image is run too and merged as the paper's flip test does (heatmaps averaged,
    tags stacked as a second embedding dimension).
    """
    from edgepose import decode

    out = model.infer(image_bgr)
    if flip:
        mirrored = model.infer(np.ascontiguousarray(image_bgr[:, ::-1]))
        heatmaps, tags = decode.flip_merge(out.heatmaps, out.tags, mirrored.heatmaps, mirrored.tags,
                                           image_width=image_bgr.shape[1], scale_x=out.scale[0])
        out = NetOutput(heatmaps, tags, nms_applied=False, scale=out.scale)
    return decode.decode(out, params)
