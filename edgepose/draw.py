"""Skeletons drawn onto BGR frames: the annotated video (``--save``), annotated snapshots and the demo.

Each person is drawn in the colour of its track id (``PALETTE``, shared with the dashboard's app.js so a
person has the same colour in the browser and in a saved video). Each limb and joint is alpha-blended with an
opacity that grows with its confidence, so a doubtful joint looks faint instead of certain.
Only numpy and cv2 are used: any layer may call this.
"""

from __future__ import annotations

import cv2
import numpy as np

from edgepose.types import SKELETON, Poses

# Tableau-10: distinct on dark and bright scenes, and for the common colour-vision deficiencies.
# The dashboard (edgepose/dashboard/static/app.js) uses the same list in the same order.
PALETTE: tuple[str, ...] = (
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
    "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac",
)
_PALETTE_BGR = tuple(tuple(int(h[i : i + 2], 16) for i in (5, 3, 1)) for h in PALETTE)

# Opacity of an element with confidence c is MIN_OPACITY + (1 - MIN_OPACITY) * clip(c, 0, 1): a kept joint stays
# visible even at a low threshold, a confident one is opaque.
MIN_OPACITY = 0.3

_SHIFT = 4  # cv2 fixed-point bits: sub-pixel joint positions without rounding jitter
_LIMBS = np.array(SKELETON, dtype=np.intp)


def color_index(track_id: int, position: int) -> int:
    """Palette slot of a person: by track id when tracked, else by its position in the frame's list."""
    return (track_id if track_id >= 0 else position) % len(PALETTE)


def opacity(conf: np.ndarray) -> np.ndarray:
    """Confidence -> opacity in [MIN_OPACITY, 1]."""
    return MIN_OPACITY + (1.0 - MIN_OPACITY) * np.clip(conf, 0.0, 1.0)


def draw_poses(image_bgr: np.ndarray, poses: Poses, *, min_conf: float = 0.1, copy: bool = True) -> np.ndarray:
    """Draw skeletons (limbs from ``types.SKELETON`` and joints) onto a BGR image and return it.

    poses must be in the image's pixels. Joints with confidence < min_conf are not drawn, nor limbs touching them.
    copy=False draws into ``image_bgr`` itself (it must then be writable), saving a frame copy per video frame.
    Line width follows the image size, so a 4K frame and a 320 px thumbnail both look right.
    """
    if not isinstance(image_bgr, np.ndarray) or image_bgr.dtype != np.uint8 or image_bgr.ndim != 3 or image_bgr.shape[2] != 3:
        got = f"{image_bgr.dtype} {image_bgr.shape}" if isinstance(image_bgr, np.ndarray) else type(image_bgr).__name__
        raise ValueError(f"draw_poses needs a (H, W, 3) uint8 BGR image, got {got}")
    out = image_bgr.copy() if copy else image_bgr
    if len(poses) == 0:
        return out
    h, w = out.shape[:2]
    thickness = max(2, round(min(h, w) / 240))  # AA lines thinner than 2 px never reach full opacity
    radius = thickness + 1

    visible = poses.conf >= min_conf
    limbs = visible[:, _LIMBS[:, 0]] & visible[:, _LIMBS[:, 1]]
    if not visible.any():
        return out
    # Everything is drawn inside the box around the visible joints: blending a small region instead of the whole
    # frame keeps --save cheap at 1080p.
    pad = radius + thickness + 2
    pts = poses.xy[visible]
    x0, y0 = np.maximum(np.floor(pts.min(axis=0)).astype(int) - pad, 0)
    x1, y1 = np.minimum(np.ceil(pts.max(axis=0)).astype(int) + pad + 1, (w, h))
    if x1 <= x0 or y1 <= y0:
        return out  # every joint is off the image
    roi = out[y0:y1, x0:x1]

    # One colour layer and one alpha layer; the most confident elements are drawn last (on top).
    color = np.zeros_like(roi)
    alpha = np.zeros(roi.shape[:2], np.uint8)
    limit = 4 * max(h, w)  # far-off coordinates would overflow cv2's fixed point; clipping keeps the visible part
    fixed = (np.clip(poses.xy - (x0, y0), -limit, limit) * (1 << _SHIFT)).round().astype(np.int64)
    joint_alpha = opacity(poses.conf)
    elements = []  # (opacity, person, joint a, joint b); a == b is a joint
    for p in range(len(poses)):
        for k in np.flatnonzero(limbs[p]):
            a, b = _LIMBS[k]
            elements.append((min(joint_alpha[p, a], joint_alpha[p, b]), p, a, b))
        elements.extend((joint_alpha[p, j], p, j, j) for j in np.flatnonzero(visible[p]))
    elements.sort(key=lambda e: e[0])
    for op, p, a, b in elements:
        bgr = _PALETTE_BGR[color_index(int(poses.track_id[p]), p)]
        pa, pb = tuple(map(int, fixed[p, a])), tuple(map(int, fixed[p, b]))
        level = int(round(255 * op))
        if a == b:
            cv2.circle(color, pa, (radius + 1) << _SHIFT, bgr, -1, cv2.LINE_8, _SHIFT)
            cv2.circle(alpha, pa, radius << _SHIFT, level, -1, cv2.LINE_AA, _SHIFT)
        else:
            # The colour layer is drawn wider and hard-edged so that the anti-aliased alpha edge blends pure
            # colour, not colour darkened by the layer's black background.
            cv2.line(color, pa, pb, bgr, thickness + 2, cv2.LINE_8, _SHIFT)
            cv2.line(alpha, pa, pb, level, thickness, cv2.LINE_AA, _SHIFT)

    # Blend only the pixels that were drawn on: skeletons cover a few percent of their box.
    ys, xs = np.nonzero(alpha)
    a = alpha[ys, xs, None].astype(np.uint16)
    mixed = roi[ys, xs].astype(np.uint16) * (255 - a) + color[ys, xs].astype(np.uint16) * a
    roi[ys, xs] = ((mixed + 127) // 255).astype(np.uint8)
    return out


__all__ = ["MIN_OPACITY", "PALETTE", "color_index", "draw_poses", "opacity"]
