"""Measurements of one person's pose that the rules share: the body point a zone or line tests, the torso."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from edgepose.types import JOINT_NAMES

J = {name: i for i, name in enumerate(JOINT_NAMES)}
SHOULDERS = (J["left_shoulder"], J["right_shoulder"])
HIPS = (J["left_hip"], J["right_hip"])
ANKLES = (J["left_ankle"], J["right_ankle"])
WRISTS = (J["left_wrist"], J["right_wrist"])
HEAD = tuple(J[n] for n in ("nose", "left_eye", "right_eye", "left_ear", "right_ear"))
# Joints whose spread tells lying (wide) from bending or crouching (legs below the hips keep it tall).
BODY = SHOULDERS + HIPS + (J["left_knee"], J["right_knee"]) + ANKLES
# Torso length (shoulder midpoint to hip midpoint) is about 0.29 of standing height (adult anthropometry);
# unlike the box it does not shrink when a person tilts, so it scales every speed.
HEIGHT_PER_TORSO = 3.4


def _mean(xy: np.ndarray, conf: np.ndarray, joints: tuple[int, ...], threshold: float):
    seen = [j for j in joints if conf[j] >= threshold]
    if not seen:
        return None
    return xy[seen].mean(axis=0), float(conf[seen].mean())


def body_point(xy: np.ndarray, conf: np.ndarray, which: str, threshold: float):
    """((x, y), confidence) of the ankle midpoint (``ankles``; hips when no ankle is visible) or hip midpoint."""
    found = _mean(xy, conf, ANKLES, threshold) if which == "ankles" else None
    return found or _mean(xy, conf, HIPS, threshold)


@dataclass(frozen=True)
class Torso:
    hips: np.ndarray  # (x, y) midpoint of the visible hips
    length: float  # shoulder midpoint to hip midpoint, pixels
    angle_deg: float  # from vertical: 0 upright, 90 horizontal, 180 head down
    wide: bool  # the visible body (shoulders, hips, knees, ankles) spans more across than up-down
    confidence: float


def torso(xy: np.ndarray, conf: np.ndarray, threshold: float) -> Torso | None:
    """The torso of a person with at least one visible shoulder and hip, else None."""
    sh, hp = _mean(xy, conf, SHOULDERS, threshold), _mean(xy, conf, HIPS, threshold)
    if sh is None or hp is None:
        return None
    v = sh[0] - hp[0]
    length = float(np.hypot(*v))
    if length < 1e-6:
        return None
    body = [j for j in BODY if conf[j] >= threshold]
    span = xy[body].max(axis=0) - xy[body].min(axis=0)
    return Torso(hp[0], length, math.degrees(math.atan2(abs(v[0]), -v[1])), bool(span[0] > span[1]),
                 float(conf[body].mean()))


def hands_above_head(xy: np.ndarray, conf: np.ndarray, threshold: float, margin: float):
    """Confidence (> 0) when both wrists are at least ``margin`` torso lengths above the top of the head, else 0."""
    wrists = [j for j in WRISTS if conf[j] >= threshold]
    head = [j for j in HEAD if conf[j] >= threshold]
    t = torso(xy, conf, threshold)
    if len(wrists) < 2 or not head or t is None:
        return 0.0
    top = float(xy[head, 1].min()) - margin * t.length
    if (xy[wrists, 1] < top).all():
        return float(conf[wrists + head].mean())
    return 0.0
