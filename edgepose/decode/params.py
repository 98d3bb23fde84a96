"""Grouping parameters: one frozen dataclass, defaults as in HigherHRNet's and EfficientHRNet's test configs."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

from edgepose.types import NUM_JOINTS

# HigherHRNet groups the head first, then shoulders, hips, and the limbs outwards: joints seen most reliably
# seed the people and later, noisier joints are matched against their mean tags.
JOINT_ORDER: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 6, 11, 12, 7, 8, 9, 10, 13, 14, 15, 16)


@dataclass(frozen=True)
class GroupingParams:
    """How associative-embedding grouping turns heatmaps and tags into people.

    nms_kernel: side of the max-pool window of the peak NMS (odd; padding (k-1)//2, as TEST.NMS_KERNEL 5 / PADDING 2).
    top_k: candidates kept per joint type after NMS, the highest first (DATASET.MAX_NUM_PEOPLE).
    detection_threshold: a candidate joins only if its heatmap value is above this (TEST.DETECTION_THRESHOLD).
    tag_threshold: a joint joins a person only if the L2 distance of its tag to the person's mean tag is below this;
        otherwise it starts a new person (TEST.TAG_THRESHOLD).
    max_people: later joints are matched only against the first `max_people` people formed, and only those are
        returned (people formed after that hold a single joint type).
    use_detection_val: match on round(tag distance) * 100 - heatmap value (True, official) or on the raw distance.
    ignore_too_much: once `max_people` people exist, drop further joint types entirely instead of matching them.
    adjust: move each joint a quarter pixel towards its higher neighbour, in x and y.
    refine: fill each person's missing joints at the best position of heatmap - round(tag distance to the
        person's mean tag), as the official code does (the person score is computed before this step).
    joint_order: the order joint types are grouped in.
    """

    nms_kernel: int = 5
    top_k: int = 30
    detection_threshold: float = 0.1
    tag_threshold: float = 1.0
    max_people: int = 30
    use_detection_val: bool = True
    ignore_too_much: bool = False
    adjust: bool = True
    refine: bool = True
    joint_order: tuple[int, ...] = JOINT_ORDER

    def __post_init__(self) -> None:
        if not (isinstance(self.nms_kernel, int) and self.nms_kernel >= 1 and self.nms_kernel % 2 == 1):
            raise ValueError(f"nms_kernel must be a positive odd integer (e.g. 5), got {self.nms_kernel!r}")
        for name in ("top_k", "max_people"):
            value = getattr(self, name)
            if not (isinstance(value, int) and value >= 1):
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        # A non-negative threshold keeps "value > 0" meaning "joint found" everywhere downstream.
        if not (math.isfinite(self.detection_threshold) and self.detection_threshold >= 0):
            raise ValueError(f"detection_threshold must be a finite number >= 0, got {self.detection_threshold!r}")
        if not (math.isfinite(self.tag_threshold) and self.tag_threshold > 0):
            raise ValueError(f"tag_threshold must be a finite number > 0, got {self.tag_threshold!r}")
        order = tuple(int(j) for j in self.joint_order)
        if sorted(order) != list(range(NUM_JOINTS)):
            raise ValueError(f"joint_order must be a permutation of 0..{NUM_JOINTS - 1}, got {self.joint_order!r}")
        object.__setattr__(self, "joint_order", order)

    def with_overrides(self, **overrides) -> GroupingParams:
        """A copy with some fields changed; unknown names raise a ValueError listing the valid ones."""
        valid = {f.name for f in fields(self)}
        unknown = sorted(set(overrides) - valid)
        if unknown:
            raise ValueError(f"unknown grouping parameter(s) {unknown}; valid: {sorted(valid)}")
        return replace(self, **overrides) if overrides else self
