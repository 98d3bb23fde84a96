"""The contract every stage speaks: frames in, network outputs, poses out.

COCO-17 joint names, skeleton edges and the horizontal-flip permutation are defined here and nowhere else.
Only numpy is imported: every layer of edgepose may depend on this module.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # for annotations only: at run time this module imports numpy alone
    from edgepose.resize import I420Image

JOINT_NAMES: tuple[str, ...] = (
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
)
NUM_JOINTS = len(JOINT_NAMES)

# Limbs as (joint, joint) pairs, 0-based, in COCO's order.
SKELETON: tuple[tuple[int, int], ...] = (
    (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7),
    (6, 8), (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),
)

# Joint j of a horizontally flipped image is joint FLIP_INDEX[j] of the original (left <-> right).
FLIP_INDEX: tuple[int, ...] = (0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15)

# COCO's per-joint OKS sigmas (keypoint evaluation and OKS-based tracking).
OKS_SIGMAS = np.array(
    [0.26, 0.25, 0.25, 0.35, 0.35, 0.79, 0.79, 0.72, 0.72, 0.62, 0.62, 1.07, 1.07, 0.87, 0.87, 0.89, 0.89],
    dtype=np.float32,
) / 10.0


@dataclass(frozen=True)
class Frame:
    """One captured picture.

    pixels: what capture delivered: a (H, W, 3) uint8 BGR C-contiguous array, or a decoder's I420 picture
        (``edgepose.resize.I420Image``), which inference shrinks without converting the whole frame.
    index: 0-based position in the source's stream (counts every frame the source produced, dropped ones too).
    timestamp_ns: time.monotonic_ns() when the frame was captured (latency measurements).
    wall_time_ns: time.time_ns() when the frame was captured (what subscribers see).
    media_ns: for a file, the frame's place in the file's own timeline (its presentation time; GStreamer backend);
        None for live sources. ``clock_ns`` is what tracking and analytics step by, so a file gives the same people, tracks
        and events however fast or unevenly the machine processes it.
    """

    pixels: np.ndarray | I420Image
    index: int
    timestamp_ns: int
    wall_time_ns: int
    media_ns: int | None = None

    @cached_property
    def image(self) -> np.ndarray:
        """The picture as a (H, W, 3) uint8 BGR array, converted on first use (snapshots, recorded video)."""
        return self.pixels if isinstance(self.pixels, np.ndarray) else self.pixels.to_bgr()

    @property
    def clock_ns(self) -> int:
        """The frame's time for motion and durations: the file's timeline, else the capture time."""
        return self.timestamp_ns if self.media_ns is None else self.media_ns

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return int(self.pixels.shape[1]), int(self.pixels.shape[0])


@dataclass(frozen=True)
class NetOutput:
    """What a pose network produced for one frame, ready for grouping.

    heatmaps: (17, h, w) float32. tags: (17, h, w, L) float32, L >= 1 embedding dims.
    nms_applied: True when the network already ran max-pool NMS and negated the suppressed values
        (Intel OMZ human-pose-estimation-000x); the decoder then skips its own NMS.
    scale: (sx, sy) mapping heatmap pixels to frame pixels: x_frame = x_map * sx (resize and stride folded in).
    """

    heatmaps: np.ndarray
    tags: np.ndarray
    nms_applied: bool = False
    scale: tuple[float, float] = (1.0, 1.0)


def _as_f32(a, name: str, shape_tail: tuple[int, ...], ndim: int) -> np.ndarray:
    arr = np.ascontiguousarray(a, dtype=np.float32)
    if arr.ndim != ndim or arr.shape[1:] != shape_tail:
        expected = "(n, " + ", ".join(map(str, shape_tail)) + ")" if shape_tail else "(n,)"
        raise ValueError(f"Poses.{name} must have shape {expected}, got {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"Poses.{name} contains NaN or infinite values")
    return arr


@dataclass(frozen=True)
class Poses:
    """People found in one frame: the one type passed from the decoder to the tracker and publishers.

    xy: (n, 17, 2) float32, joint positions (x, y) in pixels of whatever the producer states
        (heatmap pixels out of the decoder, frame pixels after the service scales them).
    conf: (n, 17) float32, per-joint confidence (heatmap value); 0 for a joint that was not found.
    score: (n,) float32, person score (mean joint confidence).
    track_id: (n,) int64, -1 until a tracker assigns ids.
    """

    xy: np.ndarray
    conf: np.ndarray
    score: np.ndarray
    track_id: np.ndarray = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        xy = _as_f32(self.xy, "xy", (NUM_JOINTS, 2), 3)
        n = xy.shape[0]
        conf = _as_f32(self.conf, "conf", (NUM_JOINTS,), 2)
        score = _as_f32(self.score, "score", (), 1)
        tid = np.full(n, -1, np.int64) if self.track_id is None else np.ascontiguousarray(self.track_id, np.int64)
        for name, arr in (("conf", conf), ("score", score), ("track_id", tid)):
            if arr.shape[0] != n:
                raise ValueError(f"Poses.{name} has {arr.shape[0]} people but xy has {n}")
        object.__setattr__(self, "xy", xy)
        object.__setattr__(self, "conf", conf)
        object.__setattr__(self, "score", score)
        object.__setattr__(self, "track_id", tid)

    @classmethod
    def _derived(cls, xy: np.ndarray, conf: np.ndarray, score: np.ndarray, track_id: np.ndarray) -> Poses:
        """Poses from arrays taken from a checked one by indexing or scaling: same dtypes and trailing shapes,
        finite, so only contiguity is restored. Re-checking costs more than the derivation (several per frame)."""
        obj = object.__new__(cls)
        for name, arr in (("xy", xy), ("conf", conf), ("score", score), ("track_id", track_id)):
            object.__setattr__(obj, name, np.ascontiguousarray(arr))
        return obj

    @classmethod
    def empty(cls) -> Poses:
        return cls(
            np.zeros((0, NUM_JOINTS, 2), np.float32), np.zeros((0, NUM_JOINTS), np.float32), np.zeros(0, np.float32)
        )

    def __len__(self) -> int:
        return int(self.xy.shape[0])

    def __getitem__(self, index) -> Poses:
        """Select people by a boolean mask, an index array or a slice."""
        if isinstance(index, (int, np.integer)):
            index = [int(index)]
        return Poses._derived(self.xy[index], self.conf[index], self.score[index], self.track_id[index])

    def scaled(self, sx: float, sy: float) -> Poses:
        """The same people with coordinates multiplied by (sx, sy), e.g. heatmap pixels -> frame pixels."""
        xy = self.xy * np.array([sx, sy], np.float32)
        if not np.isfinite(xy).all():
            raise ValueError(f"Poses.scaled({sx}, {sy}) gives non-finite positions")
        return Poses._derived(xy, self.conf, self.score, self.track_id)

    def with_track_ids(self, track_id: np.ndarray) -> Poses:
        tid = np.ascontiguousarray(track_id, np.int64)
        if tid.shape != (len(self),):
            raise ValueError(f"Poses.track_id has shape {tid.shape} but there are {len(self)} people")
        return Poses._derived(self.xy, self.conf, self.score, tid)

    def boxes(self, min_conf: float = 0.0) -> np.ndarray:
        """(n, 4) float32 boxes x0, y0, x1, y1 around the joints with conf > min_conf (all joints if none)."""
        keep = self.conf > min_conf
        keep[~keep.any(axis=1)] = True
        keep = keep[:, :, None]
        out = np.zeros((len(self), 4), np.float32)
        if len(self):
            out[:, :2] = np.where(keep, self.xy, np.inf).min(axis=1)
            out[:, 2:] = np.where(keep, self.xy, -np.inf).max(axis=1)
        return out
