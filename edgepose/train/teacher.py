"""Teachers: pretrained COCO-17 models used to pseudo-label training data.

Training tooling only (the runtime never imports it). Two teachers:

* ``MoveNet``: Google's MoveNet MultiPose Lightning alone (coco-mini AP 0.358 at 256 + 512 px);
* ``StrongTeacher``: NanoDet-m person boxes -> MoveNet Thunder on a square crop of each, plus MultiPose at
  512 px, merged by OKS-NMS (coco-mini AP 0.45): top-down Thunder is far more precise per person and is not
  limited to MultiPose's six person slots.

MoveNet MultiPose is an OpenVINO IR with a dynamic input (../shared/models/movenet-multipose/README.md). Its
contract:

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
from edgepose.types import NUM_JOINTS, OKS_SIGMAS, Poses

MODEL_FILE = "movenet-multipose.xml"
SIZES = (256, 512)  # the merged scales measured best
NMS_OKS = 0.5  # two detections with OKS above this are the same person
TEACHERS = ("multipose", "strong")
# NanoDet-m (../shared/models/nanodet/README.md): 416x416 BGR, the original NanoDet mean/std, GFL head with 11
# bins per side at strides 8/16/32, class 0 = person, then score >= 0.05 and box NMS at IoU 0.6.
NANODET_SIZE = 416
NANODET_MEAN = np.array([103.53, 116.28, 123.675], np.float32)
NANODET_STD = np.array([57.375, 57.12, 58.395], np.float32)
NANODET_STRIDES = (8, 16, 32)
NANODET_BINS = 11
BOX_SCORE = 0.05
BOX_NMS_IOU = 0.6
MAX_BOXES = 20  # Thunder runs once per box: the 20 best boxes bound the cost of a crowd
THUNDER_SIZE = 256
CROP_ENLARGE = 1.25  # the square crop around a box, so limbs outside a tight box stay in view
MULTIPOSE_SIZE = 512


def _compile(xml: Path, bf16: bool):
    """One CPU-compiled model; f32 unless asked, so labels do not depend on the machine's ISA."""
    import openvino as ov

    return ov.Core().compile_model(str(xml), "CPU", {"INFERENCE_PRECISION_HINT": "bf16" if bf16 else "f32",
                                                      "PERFORMANCE_HINT": "LATENCY"})


def oks_nms(poses: Poses, nms_oks: float = NMS_OKS) -> np.ndarray:
    """Indices of the people kept by OKS-NMS, best score first: a person is dropped when its OKS with one already
    kept is >= ``nms_oks``. OKS over all 17 joints, scaled by the kept person's keypoint box."""
    order = np.argsort(-poses.score, kind="stable")
    lo, hi = poses.xy.min(1), poses.xy.max(1)
    area = np.maximum(np.prod(hi - lo, axis=1), 1.0)  # (n,)
    kappa2 = (2.0 * OKS_SIGMAS) ** 2
    keep: list[int] = []
    for i in order:
        if keep:
            d2 = ((poses.xy[keep] - poses.xy[i][None]) ** 2).sum(-1)  # (k, 17)
            similarity = np.exp(-d2 / (2.0 * area[keep][:, None] * kappa2)).mean(1)
            if (similarity >= nms_oks).any():
                continue
        keep.append(int(i))
    return np.array(keep, dtype=np.int64)


def model_xml(path: str | Path) -> Path:
    """The teacher's .xml from a model folder or the .xml itself; ModelError if absent."""
    p = Path(path)
    xml = p / MODEL_FILE if p.is_dir() else p
    if not xml.is_file() or xml.suffix != ".xml":
        raise ModelError(f"no MoveNet MultiPose IR at {p}: pass the folder holding {MODEL_FILE} "
                         f"(e.g. ../shared/models/movenet-multipose)")
    return xml


class MoveNet:
    """MoveNet MultiPose Lightning compiled for CPU at f32 (reproducible labels on any CPU; ``bf16`` is faster)."""

    def __init__(self, model: str | Path, bf16: bool = False):
        self.model = _compile(model_xml(model), bf16)

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
        keep = oks_nms(poses, nms_oks)
        return poses[keep], boxes[keep]

    def __call__(self, image_bgr: np.ndarray, size: int = 256, min_score: float = 0.25) -> Poses:
        """People with person score >= min_score at one scale, joints in frame pixels."""
        poses, _ = self.detect(image_bgr, size)
        return poses[poses.score >= min_score]


def _box_nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> list[int]:
    order, keep = np.argsort(-scores, kind="stable"), []
    areas = np.prod(boxes[:, 2:] - boxes[:, :2], axis=1)
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(int(i))
        lo = np.maximum(boxes[i, :2], boxes[rest, :2])
        hi = np.minimum(boxes[i, 2:], boxes[rest, 2:])
        inter = np.prod(np.clip(hi - lo, 0, None), axis=1)
        order = rest[inter / np.maximum(areas[i] + areas[rest] - inter, 1e-6) < iou]
    return keep


class StrongTeacher:
    """NanoDet person boxes -> MoveNet Thunder per box, plus MoveNet MultiPose at 512 px, merged by OKS-NMS.

    ``models``: the folder holding ``nanodet/``, ``movenet-thunder/`` and ``movenet-multipose/`` (each with its
    IR; ../shared/models). A person's score is its source's score (box or MultiPose person score) times its mean
    keypoint score, so a confident box with a confused pose ranks low. Called on a BGR image it returns
    ``(Poses, boxes)`` like ``MoveNet.multiscale``; boxes are the NanoDet box, or MultiPose's.
    """

    def __init__(self, models: str | Path, bf16: bool = False):
        root = Path(models)
        paths = {name: root / name / f"{name}.xml" for name in ("nanodet", "movenet-thunder", "movenet-multipose")}
        missing = [str(p) for p in paths.values() if not p.is_file()]
        if missing:
            raise ModelError(f"the strong teacher needs {', '.join(missing)}: pass the folder holding nanodet/, "
                             "movenet-thunder/ and movenet-multipose/ (e.g. ../shared/models)")
        self.nanodet = _compile(paths["nanodet"], bf16)
        self.thunder = _compile(paths["movenet-thunder"], bf16)
        self.multipose = MoveNet(paths["movenet-multipose"], bf16)

    def person_boxes(self, image_bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(n, 4) person boxes x0, y0, x1, y1 in image pixels and their scores, best first, after NMS."""
        h, w = image_bgr.shape[:2]
        x = cv2.resize(image_bgr, (NANODET_SIZE, NANODET_SIZE), interpolation=cv2.INTER_LINEAR).astype(np.float32)
        result = self.nanodet(((x - NANODET_MEAN) / NANODET_STD).transpose(2, 0, 1)[None])
        outputs = [result[o][0] for o in self.nanodet.outputs]
        classes = {v.shape[0]: v for v in outputs if v.shape[1] == 80}
        dists = {v.shape[0]: v for v in outputs if v.shape[1] == 4 * NANODET_BINS}
        boxes, scores = [], []
        for stride in NANODET_STRIDES:
            grid = NANODET_SIZE // stride
            cls, reg = classes[grid * grid], dists[grid * grid]
            cells = np.flatnonzero(cls[:, 0] >= BOX_SCORE)
            if not len(cells):
                continue
            logits = reg[cells].reshape(-1, 4, NANODET_BINS)
            e = np.exp(logits - logits.max(2, keepdims=True))
            side = (e / e.sum(2, keepdims=True) * np.arange(NANODET_BINS)).sum(2) * stride  # l, t, r, b
            cx, cy = (cells % grid + 0.5) * stride, (cells // grid + 0.5) * stride
            boxes.append(np.stack([cx - side[:, 0], cy - side[:, 1], cx + side[:, 2], cy + side[:, 3]], 1))
            scores.append(cls[cells, 0])
        if not boxes:
            return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
        scale = np.array([w, h, w, h], np.float32) / NANODET_SIZE
        all_boxes = np.clip(np.concatenate(boxes) * scale, 0, [w, h, w, h]).astype(np.float32)
        all_scores = np.concatenate(scores).astype(np.float32)
        keep = _box_nms(all_boxes, all_scores, BOX_NMS_IOU)
        return all_boxes[keep], all_scores[keep]

    def pose_in_box(self, image_rgb: np.ndarray, box: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Thunder on the enlarged square around ``box``: (17, 2) joints in image pixels and (17,) scores."""
        x0, y0, x1, y1 = (float(v) for v in box)
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        side = max(x1 - x0, y1 - y0, 8.0) * CROP_ENLARGE
        k = THUNDER_SIZE / side
        matrix = np.float32([[k, 0, THUNDER_SIZE / 2 - cx * k], [0, k, THUNDER_SIZE / 2 - cy * k]])
        crop = cv2.warpAffine(image_rgb, matrix, (THUNDER_SIZE, THUNDER_SIZE), flags=cv2.INTER_LINEAR, borderValue=0)
        out = self.thunder(crop[None].astype(np.int32))[0][0, 0]  # (17, 3): y, x, score in the crop, 0..1
        xy = np.stack([cx - side / 2 + out[:, 1] * side, cy - side / 2 + out[:, 0] * side], 1)
        return xy.astype(np.float32), out[:, 2].astype(np.float32)

    def __call__(self, image_bgr: np.ndarray) -> tuple[Poses, np.ndarray]:
        rgb = np.ascontiguousarray(image_bgr[:, :, ::-1])
        boxes, box_scores = self.person_boxes(image_bgr)
        xy, conf, score = [], [], []
        for box, box_score in zip(boxes[:MAX_BOXES], box_scores[:MAX_BOXES]):
            joints, joint_scores = self.pose_in_box(rgb, box)
            xy.append(joints)
            conf.append(joint_scores)
            score.append(box_score * joint_scores.mean())
        bottom_up, mp_boxes = self.multipose.detect(image_bgr, MULTIPOSE_SIZE)
        poses = Poses(np.concatenate([np.reshape(xy, (-1, NUM_JOINTS, 2)), bottom_up.xy]).astype(np.float32),
                      np.concatenate([np.reshape(conf, (-1, NUM_JOINTS)), bottom_up.conf]).astype(np.float32),
                      np.concatenate([np.asarray(score, np.float32), bottom_up.score * bottom_up.conf.mean(1)]))
        all_boxes = np.concatenate([boxes[:MAX_BOXES], mp_boxes]).astype(np.float32)
        keep = oks_nms(poses)
        return poses[keep], all_boxes[keep]


def make_teacher(name: str, models: str | Path, bf16: bool = False):
    """A teacher callable ``image_bgr -> (Poses, boxes)``: ``strong`` or ``multipose`` (256 + 512 px), from the
    models folder (``multipose`` also accepts the MultiPose folder or .xml itself)."""
    if name == "strong":
        return StrongTeacher(models, bf16)
    if name == "multipose":
        root = Path(models)
        return MoveNet(root / "movenet-multipose" if (root / "movenet-multipose").is_dir() else root, bf16).multiscale
    raise ValueError(f"unknown teacher {name!r}: choose one of {', '.join(TEACHERS)}")


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


def teacher_ap(teacher, ann_file: str | Path, images_dir: str | Path, progress=lambda it: it) -> dict[str, float]:
    """COCO keypoint metrics (``edgepose.eval.coco``) of a teacher callable (``image_bgr -> (Poses, boxes)``,
    e.g. ``MoveNet(...).multiscale`` or a ``StrongTeacher``) on an annotated image folder: every person kept (as
    COCO AP wants), result score = person score."""
    images = image_list(ann_file, images_dir)
    results = []
    for image_id, path in progress(images):
        poses, _ = teacher(cv2.imread(str(path), cv2.IMREAD_COLOR))
        results += poses_to_coco(image_id, poses)
    return evaluate(ann_file, results, image_ids=[i for i, _ in images])
