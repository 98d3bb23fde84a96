"""Bottom-up pose decoding: heatmaps + associative-embedding tags -> ``Poses``.

``decode(out)`` is what the run service calls: it takes a ``NetOutput`` and returns people in frame pixels.
``group(heatmaps, tags)`` is the same grouping on bare arrays, in heatmap pixels. The hot path is one Numba
function (``grouping.group_arrays``), compiled on first use and cached on disk, so later processes start warm.

Keypoint positions follow HigherHRNet: heatmap pixel (i, j) covers [j, j+1) x [i, i+1), a joint found at that
pixel is reported at its centre (j + 0.5, i + 0.5) moved a quarter pixel towards the higher neighbour, and
``decode`` multiplies by ``out.scale``: x_frame = x_map * sx, y_frame = y_map * sy.
"""

from __future__ import annotations

import numpy as np

from edgepose.decode.aggregate import aggregate_outputs, flip_back, flip_merge, resize_bilinear
from edgepose.decode.omz import from_omz, split_nms_heatmaps
from edgepose.decode.params import JOINT_ORDER, GroupingParams
from edgepose.types import NUM_JOINTS, NetOutput, Poses

__all__ = [
    "JOINT_ORDER",
    "GroupingParams",
    "aggregate_outputs",
    "decode",
    "flip_back",
    "flip_merge",
    "from_omz",
    "group",
    "resize_bilinear",
    "warm",
]

_DEFAULT = GroupingParams()


def _checked_maps(heatmaps, tags) -> tuple[np.ndarray, np.ndarray]:
    """C-contiguous float32 (17, H, W) and (17, H, W, L), or a ValueError naming what is wrong."""
    hm = np.ascontiguousarray(heatmaps, dtype=np.float32)
    tg = np.ascontiguousarray(tags, dtype=np.float32)
    if hm.ndim != 3 or hm.shape[0] != NUM_JOINTS:
        raise ValueError(f"heatmaps must have shape ({NUM_JOINTS}, H, W), got {hm.shape}")
    if hm.shape[1] < 1 or hm.shape[2] < 1:
        raise ValueError(f"heatmaps must not be empty, got shape {hm.shape}")
    if tg.ndim == 3:
        tg = tg[..., None]
    if tg.ndim != 4 or tg.shape[:3] != hm.shape or tg.shape[3] < 1:
        raise ValueError(f"tags must have shape {hm.shape} or {hm.shape + ('L',)} like the heatmaps, got {tg.shape}")
    # NaN and infinite values are found by the grouping's own passes over the maps (``_run``).
    return hm, tg


def _non_finite(name: str) -> str:
    return f"{name} contain NaN or infinite values; check the model output or its precision"


def _run(peaks, det, tags, do_nms: bool, params: GroupingParams) -> Poses:
    from edgepose.decode import grouping  # numba loads on first use, not on import

    xy, conf, score, status = grouping.group_arrays(
        peaks, det, tags, do_nms, params.nms_kernel, params.top_k, float(params.detection_threshold),
        float(params.tag_threshold), params.max_people, params.use_detection_val, params.ignore_too_much,
        params.adjust, params.refine, np.asarray(params.joint_order, np.int64),
    )
    if status:
        raise ValueError(_non_finite("heatmaps" if status == grouping.NON_FINITE_PEAKS else "tags"))
    return Poses(xy, conf, score)


def group(heatmaps, tags, params: GroupingParams | None = None, **overrides) -> Poses:
    """Group joints into people; positions in heatmap pixels.

    heatmaps: (17, H, W) float32, not NMS-ed. tags: (17, H, W) or (17, H, W, L) float32.
    params: a GroupingParams (defaults: HigherHRNet's test settings); keyword overrides change single fields,
    e.g. ``group(hm, tg, detection_threshold=0.2)``.
    Raises ValueError for wrong dimensions, mismatched shapes, NaN/inf values or unknown parameters.
    """
    params = (params or _DEFAULT).with_overrides(**overrides)
    hm, tg = _checked_maps(heatmaps, tags)
    return _run(hm, hm, tg, True, params)


def decode(out: NetOutput, params: GroupingParams | None = None) -> Poses:
    """People in frame pixels from one network output (``out.scale`` maps heatmap to frame pixels).

    Outputs whose network already applied NMS (``out.nms_applied``, Intel OMZ models) skip the decoder's NMS.
    """
    params = params or _DEFAULT
    hm, tg = _checked_maps(out.heatmaps, out.tags)
    if out.nms_applied:
        peaks, det = split_nms_heatmaps(hm)
        poses = _run(peaks, det, tg, False, params)
    else:
        poses = _run(hm, hm, tg, True, params)
    sx, sy = out.scale
    return poses.scaled(sx, sy)


def warm() -> float:
    """Compile the grouping into Numba's on-disk cache (seconds taken), so later processes start warm.

    The installer runs this: otherwise a fresh install's first frame waits for the JIT (~10-20 s on a small CPU).
    Every call the service makes has the same argument types, so one decode of each kind compiles everything.
    """
    import time

    t = time.perf_counter()
    rng = np.random.default_rng(0)
    heat = rng.random((NUM_JOINTS, 16, 40), dtype=np.float32)
    tags = rng.random((NUM_JOINTS, 16, 40, 1), dtype=np.float32)
    decode(NetOutput(heat, tags))
    decode(NetOutput(np.where(heat > 0.9, heat, -heat), tags, nms_applied=True))
    return time.perf_counter() - t
