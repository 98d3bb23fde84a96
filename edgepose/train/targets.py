"""Training targets of HigherHRNet / EfficientHRNet: Gaussian heatmaps and joint lists for the AE loss.

Both follow the official generators (``HeatmapGenerator`` and ``JointsGenerator`` of HigherHRNet, which
EfficientHRNet reuses): a joint at (x, y) in output pixels lands on pixel (int(x), int(y)); its heatmap is an
unnormalised Gaussian (peak 1, ``sigma`` 2 output pixels, cut at 3 sigma) and overlapping people keep the
maximum. numpy only, so the data loader workers never touch torch.
"""

from __future__ import annotations

import numpy as np

from edgepose.types import NUM_JOINTS

SIGMA = 2.0  # DATASET.SIGMA of every EfficientHRNet config (fixed, not scale-aware)
MAX_PEOPLE = 30  # DATASET.MAX_NUM_PEOPLE


def gaussian_patch(sigma: float) -> np.ndarray:
    """The (6 sigma + 3)^2 patch pasted at each joint, its peak (value 1) at the centre."""
    size = int(6 * sigma + 3)
    centre = 3 * sigma + 1
    x = np.arange(size, dtype=np.float64)
    return np.exp(-((x[None, :] - centre) ** 2 + (x[:, None] - centre) ** 2) / (2 * sigma**2)).astype(np.float32)


def _inside(joints: np.ndarray, res: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Integer pixel (x, y) of every joint and whether it is labelled and on the map."""
    # Truncation towards zero, like the official int(): a joint at x = -0.5 still lands on column 0.
    x = np.trunc(joints[..., 0]).astype(np.int64)
    y = np.trunc(joints[..., 1]).astype(np.int64)
    ok = (joints[..., 2] > 0) & (x >= 0) & (y >= 0) & (x < res) & (y < res)
    return x, y, ok


def heatmaps(joints: np.ndarray, res: int, sigma: float = SIGMA) -> np.ndarray:
    """(17, res, res) float32 Gaussian heatmaps of ``joints`` (P, 17, 3): x, y in output pixels, visibility."""
    joints = np.asarray(joints, dtype=np.float32).reshape(-1, NUM_JOINTS, 3)
    out = np.zeros((NUM_JOINTS, res, res), dtype=np.float32)
    patch = gaussian_patch(sigma)
    half = int(round(3 * sigma + 1))  # offset from the patch corner to its centre
    xs, ys, ok = _inside(joints, res)
    for p, j in zip(*np.nonzero(ok)):
        x0, y0 = xs[p, j] - half, ys[p, j] - half
        x1, y1 = x0 + patch.shape[1], y0 + patch.shape[0]
        cx0, cy0, cx1, cy1 = max(0, x0), max(0, y0), min(res, x1), min(res, y1)
        region = out[j, cy0:cy1, cx0:cx1]
        np.maximum(region, patch[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0], out=region)
    return out


def joint_indices(joints: np.ndarray, res: int, max_people: int = MAX_PEOPLE) -> np.ndarray:
    """(max_people, 17, 2) int64 rows (flat index j*res*res + y*res + x into the tag maps, visible 0/1).

    Person i's visible joints fill rows [i, 0..k) in joint order, as the official generator packs them;
    people beyond ``max_people`` are dropped (the official code would crash on them).
    """
    joints = np.asarray(joints, dtype=np.float32).reshape(-1, NUM_JOINTS, 3)[:max_people]
    out = np.zeros((max_people, NUM_JOINTS, 2), dtype=np.int64)
    xs, ys, ok = _inside(joints, res)
    for p in range(len(joints)):
        js = np.nonzero(ok[p])[0]
        out[p, : len(js), 0] = js * res * res + ys[p, js] * res + xs[p, js]
        out[p, : len(js), 1] = 1
    return out
