"""The MoveNet MultiPose teacher: a pretrained multi-person COCO-17 model used to pseudo-label training data.

Training tooling only (the runtime never imports it). The model is Google's MoveNet MultiPose Lightning as an
OpenVINO IR with a dynamic input (../shared/models/movenet-multipose/README.md). Its contract:

* input: RGB int32 NHWC, raw 0..255 pixels, height and width each a multiple of 32 (the CPU plugin rejects
  others): the image's longer side is resized to ``size`` and the rest padded with zeros at the bottom/right;
* output (1, 6, 56): six person slots, 17 x (y, x, score) then (ymin, xmin, ymax, xmax, person score), all
  coordinates normalised to the padded tensor.

It is compiled with ``INFERENCE_PRECISION_HINT=f32``: on bf16 CPUs OpenVINO would otherwise silently run bf16
and labels would depend on the machine. Running it at 256 and 512 px and merging with OKS-NMS was measured
best on coco-mini (AP 0.358 against 0.326 at 512 alone), so that is ``multiscale``'s default.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from edgepose.errors import ModelError
from edgepose.eval.coco import evaluate, image_list, poses_to_coco
from edgepose.track.distances import oks_distance
from edgepose.types import NUM_JOINTS, Poses

MODEL_FILE = "movenet-multipose.xml"
SIZES = (256, 512)  # the merged scales measured best
NMS_OKS = 0.5  # two detections with OKS above this are the same person


def model_xml(path: str | Path) -> Path:
    """The teacher's .xml from a model folder or the .xml itself; ModelError if absent."""
    p = Path(path)
    xml = p / MODEL_FILE if p.is_dir() else p
    if not xml.is_file() or xml.suffix != ".xml":
        raise ModelError(f"no MoveNet MultiPose IR at {p}: pass the folder holding {MODEL_FILE} "
                         f"(e.g. ../shared/models/movenet-multipose)")
    return xml


class MoveNet:
    """MoveNet MultiPose Lightning compiled for CPU at f32 (reproducible labels on any CPU)."""

    def __init__(self, model: str | Path):
        import openvino as ov

        self.model = ov.Core().compile_model(str(model_xml(model)), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})

    def detect(self, image_bgr: np.ndarray, size: int) -> tuple[Poses, np.ndarray]:
        """All six person slots at one scale: Poses in frame pixels (score = person score) and (6, 4) boxes
        x0, y0, x1, y1 in frame pixels."""
        if size <= 0 or size % 32:
            raise ValueError(f"MoveNet sizes are multiples of 32 (e.g. 256 or 512), got {size}")
        h, w = image_bgr.shape[:2]
        s = size / max(h, w)
        nh, nw = max(1, round(h * s)), max(1, round(w * s))
        resized = cv2.resize(image_bgr, (nw, nh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
        pad_h, pad_w = (nh + 31) // 32 * 32, (nw + 31) // 32 * 32
        x = np.zeros((1, pad_h, pad_w, 3), np.int32)
        x[0, :nh, :nw] = resized[:, :, ::-1]  # the model wants RGB
        out = self.model(x)[0][0]  # (6, 56)
        k = out[:, :51].reshape(-1, NUM_JOINTS, 3)
        to_px = np.array([pad_w / s, pad_h / s], np.float32)
        xy = k[..., [1, 0]] * to_px
        boxes = out[:, [52, 51, 54, 53]] * np.tile(to_px, 2)
        return Poses(xy, k[..., 2], out[:, 55]), boxes.astype(np.float32)

    def multiscale(self, image_bgr: np.ndarray, sizes: tuple[int, ...] = SIZES,
                   nms_oks: float = NMS_OKS) -> tuple[Poses, np.ndarray]:
        """Detections at every size merged by OKS-NMS (best person score first), as ``detect`` returns them."""
        runs = [self.detect(image_bgr, size) for size in sizes]
        poses = Poses(np.concatenate([p.xy for p, _ in runs]), np.concatenate([p.conf for p, _ in runs]),
                      np.concatenate([p.score for p, _ in runs]))
        boxes = np.concatenate([b for _, b in runs])
        order = np.argsort(-poses.score, kind="stable")
        similarity = 1.0 - oks_distance(poses, poses, min_joint_conf=0.0)
        keep: list[int] = []
        for i in order:
            if all(similarity[j, i] < nms_oks for j in keep):
                keep.append(int(i))
        return poses[np.array(keep, dtype=np.int64)], boxes[keep]

    def __call__(self, image_bgr: np.ndarray, size: int = 256, min_score: float = 0.25) -> Poses:
        """People with person score >= min_score at one scale, joints in frame pixels."""
        poses, _ = self.detect(image_bgr, size)
        return poses[poses.score >= min_score]


def teacher_error(teacher: Poses, teacher_box: np.ndarray, student: Poses, *, joint_conf: float = 0.3,
                  student_joint_conf: float = 0.1) -> float | None:
    """How far a student's keypoints lie from one teacher person: the smallest, over the student's people, of
    the mean joint distance divided by the teacher box height, counting joints the teacher scores >=
    ``joint_conf`` and the student >= ``student_joint_conf``. ``teacher`` holds that one person; None when no
    student person shares a confident joint with it."""
    if len(teacher) != 1:
        raise ValueError(f"teacher_error compares one teacher person, got {len(teacher)}")
    height = max(float(teacher_box[3] - teacher_box[1]), 1.0)
    both = (teacher.conf[0] >= joint_conf)[None] & (student.conf >= student_joint_conf)  # (n, 17)
    dist = np.linalg.norm(student.xy - teacher.xy[0][None], axis=-1)  # (n, 17)
    errors = [dist[i][both[i]].mean() / height for i in range(len(student)) if both[i].any()]
    return min(errors) if errors else None


def teacher_ap(teacher: MoveNet, ann_file: str | Path, images_dir: str | Path,
               sizes: tuple[int, ...] = SIZES) -> dict[str, float]:
    """COCO keypoint metrics (``edgepose.eval.coco``) of the teacher on an annotated image folder: every person
    slot kept (as COCO AP wants), scales merged by OKS-NMS, result score = person score."""
    images = image_list(ann_file, images_dir)
    results = []
    for image_id, path in images:
        poses, _ = teacher.multiscale(cv2.imread(str(path), cv2.IMREAD_COLOR), sizes)
        results += poses_to_coco(image_id, poses)
    return evaluate(ann_file, results, image_ids=[i for i, _ in images])
