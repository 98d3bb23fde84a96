"""Distances between tracked people and newly detected people, for the tracker's assignment.

A distance function takes `(track_predictions, poses)`, both `Poses`, and returns a float
`(len(track_predictions), len(poses))` matrix. The built-in ones return 1 - similarity, in [0, 1]:
0 is the same pose, 1 is nothing in common. Pass your own callable to `Tracker(distance=...)` to use another.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import numpy as np

from edgepose.types import OKS_SIGMAS, Poses

DistanceFn = Callable[[Poses, Poses], np.ndarray]

# Keeps a person whose visible joints collapse to a line or a point (area 0) from dividing by zero;
# one square pixel is far below any real person.
_MIN_AREA = 1.0


def _check_conf(min_joint_conf: float) -> None:
    if not 0.0 <= min_joint_conf < 1.0:
        raise ValueError(f"min_joint_conf must be in [0, 1), got {min_joint_conf!r}")


def _box_areas(boxes: np.ndarray) -> np.ndarray:
    return np.maximum((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]), _MIN_AREA)


def oks_distance(track_predictions: Poses, poses: Poses, *, min_joint_conf: float = 0.1) -> np.ndarray:
    """1 - object keypoint similarity (COCO OKS), as an (n_tracks, n_people) float64 matrix in [0, 1].

    Only joints with confidence > min_joint_conf on both sides count, so occluded joints neither help nor
    hurt. The scale is the area of each detected person's box (`Poses.boxes(min_joint_conf)`), as COCO uses
    the ground-truth area. A pair with no joint visible on both sides gets distance 1.
    """
    _check_conf(min_joint_conf)
    if len(track_predictions) == 0 or len(poses) == 0:
        return np.ones((len(track_predictions), len(poses)))
    area = _box_areas(poses.boxes(min_joint_conf).astype(np.float64))  # (p,)
    d2 = ((track_predictions.xy[:, None].astype(np.float64) - poses.xy[None]) ** 2).sum(-1)  # (t, p, 17)
    kappa2 = (2.0 * OKS_SIGMAS.astype(np.float64)) ** 2  # (17,)
    similarity = np.exp(-d2 / (2.0 * area[None, :, None] * kappa2))
    both = (track_predictions.conf[:, None] > min_joint_conf) & (poses.conf[None] > min_joint_conf)
    n_both = both.sum(-1)
    oks = np.where(both, similarity, 0.0).sum(-1) / np.maximum(n_both, 1)
    return np.where(n_both > 0, 1.0 - oks, 1.0)


def iou_distance(track_predictions: Poses, poses: Poses, *, min_joint_conf: float = 0.1) -> np.ndarray:
    """1 - intersection over union of the boxes around joints with confidence > min_joint_conf,
    as an (n_tracks, n_people) float64 matrix in [0, 1]. Cheaper than OKS and blind to the pose itself."""
    _check_conf(min_joint_conf)
    a = track_predictions.boxes(min_joint_conf).astype(np.float64)[:, None]  # (t, 1, 4)
    b = poses.boxes(min_joint_conf).astype(np.float64)[None]  # (1, p, 4)
    w = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0.0, None)
    h = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0.0, None)
    inter = w * h
    union = (
        (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1]) + (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1]) - inter
    )
    # Two degenerate (zero-area) boxes have no overlap to speak of: distance 1, never 0/0.
    return np.where(union > 0, 1.0 - inter / np.where(union > 0, union, 1.0), 1.0)


DISTANCES: dict[str, Callable[..., np.ndarray]] = {"oks": oks_distance, "iou": iou_distance}


def get_distance_by_name(name: str, *, min_joint_conf: float = 0.1) -> DistanceFn:
    """The built-in distance called `name` ("oks" or "iou") with its joint-confidence threshold bound."""
    try:
        fn = DISTANCES[name]
    except KeyError:
        raise ValueError(f"unknown distance {name!r}: use one of {sorted(DISTANCES)} or pass a callable") from None
    _check_conf(min_joint_conf)
    return partial(fn, min_joint_conf=min_joint_conf)
