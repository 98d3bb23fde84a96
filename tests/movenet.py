"""Real poses on real frames for tests, from the pretrained MoveNet MultiPose teacher (OpenVINO IR in ../shared).

Tests only: the edgepose runtime never uses the teacher. Pre/post-processing follows
../shared/models/movenet-multipose/README.md (RGB int32 input, longer side resized to `size`, padded to
multiples of 32; outputs are 6 person slots of 17 x (y, x, score) normalised to the padded tensor).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from edgepose.types import NUM_JOINTS, Poses


class MoveNet:
    """MoveNet MultiPose Lightning compiled for CPU with f32 precision (reproducible numbers)."""

    def __init__(self, model_xml: Path):
        import openvino as ov

        self.model = ov.Core().compile_model(str(model_xml), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})

    def __call__(self, image_bgr: np.ndarray, size: int = 256, min_score: float = 0.25) -> Poses:
        """People with person score >= min_score, joints in frame pixels."""
        h, w = image_bgr.shape[:2]
        s = size / max(h, w)
        nh, nw = max(1, round(h * s)), max(1, round(w * s))
        resized = cv2.resize(image_bgr, (nw, nh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
        pad_h, pad_w = (nh + 31) // 32 * 32, (nw + 31) // 32 * 32
        x = np.zeros((1, pad_h, pad_w, 3), np.int32)
        x[0, :nh, :nw] = resized[:, :, ::-1]  # the model wants RGB
        out = self.model(x)[0][0]  # (6, 56)
        out = out[out[:, 55] >= min_score]
        k = out[:, :51].reshape(-1, NUM_JOINTS, 3)
        xy = np.stack([k[..., 1] * pad_w / s, k[..., 0] * pad_h / s], axis=-1)
        return Poses(xy, k[..., 2], out[:, 55])
