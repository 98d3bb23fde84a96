"""Adapter for Intel Open Model Zoo human-pose-estimation-0005/0006/0007 (EfficientHRNet-based).

Those IRs end in a 5x5 max-pool NMS: the ``heatmaps`` output keeps each local maximum as is and negates every
other pixel, and ``embeddings`` is (1, 17, H, W, 1). Their peaks are therefore the positive pixels, and the
absolute value restores the heatmap for the quarter-pixel adjustment and refinement.
"""

from __future__ import annotations

import numpy as np

from edgepose.types import NUM_JOINTS, NetOutput


def from_omz(heatmaps: np.ndarray, embeddings: np.ndarray, scale: tuple[float, float] = (1.0, 1.0)) -> NetOutput:
    """NetOutput (nms_applied=True) from OMZ outputs heatmaps (1, 17, H, W) and embeddings (1, 17, H, W, 1)."""
    hm = np.asarray(heatmaps, dtype=np.float32)
    emb = np.asarray(embeddings, dtype=np.float32)
    if hm.ndim == 4 and hm.shape[0] == 1:
        hm = hm[0]
    if emb.ndim == 5 and emb.shape[0] == 1:
        emb = emb[0]
    if hm.ndim != 3 or hm.shape[0] != NUM_JOINTS:
        raise ValueError(f"OMZ heatmaps must be (1, {NUM_JOINTS}, H, W), got shape {np.shape(heatmaps)}")
    if emb.ndim != 4 or emb.shape[:3] != hm.shape:
        raise ValueError(
            f"OMZ embeddings must be (1, {NUM_JOINTS}, H, W, L) matching heatmaps {hm.shape}, "
            f"got shape {np.shape(embeddings)}"
        )
    return NetOutput(np.ascontiguousarray(hm), np.ascontiguousarray(emb), nms_applied=True, scale=scale)


def split_nms_heatmaps(heatmaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(peaks, heatmap) from NMS-ed heatmaps: peaks are the positive pixels; |value| is the heatmap (a new array)."""
    return heatmaps, np.abs(heatmaps)
