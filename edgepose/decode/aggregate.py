"""Test-time aggregation of network outputs, as HigherHRNet and EfficientHRNet do it before grouping.

The stride-4 output (heatmaps + tags) is bilinearly upsampled (align_corners=False, i.e. PyTorch's
``interpolate(mode="bilinear")`` without antialiasing) to the stride-2 output's size and the heatmaps of all
resolutions are averaged. With the flip test the flipped image's outputs are mirrored back, their joints
swapped left/right with ``types.FLIP_INDEX``, the heatmaps averaged with the plain ones and the tags stacked
as one more embedding dimension.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from edgepose.types import FLIP_INDEX, NUM_JOINTS, NetOutput


def _axis_weights(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source indices i0, i1 and weight of i1 for each output position (half-pixel centres)."""
    src = (np.arange(n_out, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5
    src = np.maximum(src, 0.0)  # PyTorch clamps negative source positions to the first pixel
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    return i0, i1, (src - i0).astype(np.float32)


def resize_bilinear(maps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize (C, h, w) or (C, h, w, L) maps to (C, H, W[, L]) with size = (H, W), align_corners=False."""
    maps = np.asarray(maps, dtype=np.float32)
    if maps.ndim not in (3, 4):
        raise ValueError(f"maps must be (C, h, w) or (C, h, w, L), got shape {maps.shape}")
    out_h, out_w = (int(s) for s in size)
    if out_h < 1 or out_w < 1:
        raise ValueError(f"size must be two positive integers (H, W), got {size!r}")
    if maps.shape[1:3] == (out_h, out_w):
        return maps
    y0, y1, wy = _axis_weights(maps.shape[1], out_h)
    x0, x1, wx = _axis_weights(maps.shape[2], out_w)
    extra = (None,) * (maps.ndim - 3)  # broadcast the weights over a trailing embedding axis
    wy = wy[(None, slice(None), None) + extra]
    wx = wx[(None, None, slice(None)) + extra]
    rows = maps[:, y0] * (1 - wy) + maps[:, y1] * wy
    return np.ascontiguousarray(rows[:, :, x0] * (1 - wx) + rows[:, :, x1] * wx, dtype=np.float32)


def aggregate_outputs(
    heatmaps: Sequence[np.ndarray], tags: np.ndarray, size: tuple[int, int] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Average heatmaps of several resolutions and bring the tags to the same size.

    heatmaps: (17, h_i, w_i) arrays, e.g. [stride-4 heatmaps, stride-2 heatmaps].
    tags: (17, h, w) or (17, h, w, L), e.g. the stride-4 tag maps.
    size: (H, W) to resample to; default the largest heatmap resolution.
    Returns heatmaps (17, H, W) and tags (17, H, W, L), float32.
    """
    if len(heatmaps) == 0:
        raise ValueError("aggregate_outputs needs at least one heatmap array")
    for hm in heatmaps:
        if np.ndim(hm) != 3 or np.shape(hm)[0] != NUM_JOINTS:
            raise ValueError(f"each heatmap array must be ({NUM_JOINTS}, h, w), got shape {np.shape(hm)}")
    if size is None:
        size = max((np.shape(hm)[1:] for hm in heatmaps), key=lambda s: s[0] * s[1])
    avg = sum(resize_bilinear(hm, size) for hm in heatmaps) / np.float32(len(heatmaps))
    tags = np.asarray(tags, dtype=np.float32)
    if tags.ndim == 3:
        tags = tags[..., None]
    return np.ascontiguousarray(avg, dtype=np.float32), resize_bilinear(tags, size)


def flip_back(out: NetOutput) -> NetOutput:
    """Outputs of a horizontally flipped image, mirrored back and with left/right joints swapped."""
    order = list(FLIP_INDEX)
    return NetOutput(
        heatmaps=np.ascontiguousarray(out.heatmaps[order, :, ::-1]),
        tags=np.ascontiguousarray(out.tags[order, :, ::-1]),
        nms_applied=out.nms_applied,
        scale=out.scale,
    )


def flip_merge(out: NetOutput, flipped: NetOutput) -> NetOutput:
    """Merge the outputs for an image and for its horizontal mirror (the flip test).

    ``flipped`` is what the network gave for the mirrored image, as is. Heatmaps are averaged; tags are stacked,
    so the result has 2L embedding dimensions. Both outputs must be the same size and not already NMS-ed
    (averaging NMS-ed maps would drop peaks).
    """
    if out.nms_applied or flipped.nms_applied:
        raise ValueError("flip_merge needs raw heatmaps; this model applies NMS itself, so run it without --flip")
    if out.heatmaps.shape != flipped.heatmaps.shape or out.tags.shape != flipped.tags.shape:
        raise ValueError(
            f"flip_merge needs equal shapes, got heatmaps {out.heatmaps.shape} vs {flipped.heatmaps.shape}, "
            f"tags {out.tags.shape} vs {flipped.tags.shape}"
        )
    back = flip_back(flipped)
    return NetOutput(
        heatmaps=np.ascontiguousarray((out.heatmaps + back.heatmaps) * np.float32(0.5), dtype=np.float32),
        tags=np.ascontiguousarray(np.concatenate([out.tags, back.tags], axis=-1), dtype=np.float32),
        nms_applied=False,
        scale=out.scale,
    )
