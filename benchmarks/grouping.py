"""Multi-person grouping of a model against the strong teacher's people, on the multi-person sample videos.

    .venv/bin/python benchmarks/grouping.py [--model models/edgepose-h4] [--videos classroom.mp4 ...]
                                            [--stride 1] [--teacher-score 0.3] [--min-score 0.3]

Per video, over every ``--stride``-th frame, with the teacher's people (NanoDet -> Thunder + MultiPose, score
>= ``--teacher-score``) as the reference and the model's people (edgepose's runtime path: PoseModel + decode,
score >= ``--min-score``):
  * matched: teacher people matched one-to-one (Hungarian on OKS) to a model person at OKS >= 0.5 (goal >= 90 %);
  * merged: model people that take joints of two teacher people, i.e. at least two of its confident joints lie
    nearer (OKS per joint >= 0.5) to a second teacher person than to the one it matches best (goal <= 5 %).
OKS uses the teacher person's keypoint box as its scale. Needs the train extra (the teacher lives in
edgepose.train).
"""

from __future__ import annotations

import argparse
import os
import platform
from pathlib import Path

import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment

from common import REPO, SAMPLES
from edgepose import decode
from edgepose.inference import PoseModel
from edgepose.train.teacher import StrongTeacher
from edgepose.types import OKS_SIGMAS, Poses

MATCH_OKS = 0.5
JOINT_OKS = 0.5
JOINT_CONF = 0.3


def joint_similarity(student: Poses, teacher: Poses) -> np.ndarray:
    """(s, t, 17) per-joint OKS terms, scaled by each teacher person's box of confident joints."""
    boxes = teacher.boxes(JOINT_CONF).astype(np.float64)
    area = np.maximum((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]), 1.0)
    d2 = ((student.xy[:, None].astype(np.float64) - teacher.xy[None]) ** 2).sum(-1)
    return np.exp(-d2 / (2.0 * area[None, :, None] * (2.0 * OKS_SIGMAS) ** 2))


def compare(student: Poses, teacher: Poses) -> tuple[int, int, int]:
    """(teacher people matched, model people, model people that merge two teacher people) for one frame."""
    if not len(teacher) or not len(student):
        return 0, len(student), 0
    per_joint = joint_similarity(student, teacher)
    both = (student.conf[:, None] >= JOINT_CONF) & (teacher.conf[None] >= JOINT_CONF)
    oks = np.where(both, per_joint, 0).sum(-1) / np.maximum(both.sum(-1), 1)
    rows, cols = linear_sum_assignment(-oks)
    matched = int((oks[rows, cols] >= MATCH_OKS).sum())
    merged = 0
    for s in range(len(student)):
        owner = np.where(both[s] & (per_joint[s] >= JOINT_OKS), 1, 0)  # (t, 17): joints this teacher person explains
        if (owner.sum(-1) >= 2).sum() >= 2:
            merged += 1
    return matched, len(student), merged


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(REPO / "models" / "edgepose-h4"), help="IR folder or .xml")
    ap.add_argument("--videos", nargs="+", default=["classroom.mp4", "store-aisle-detection.mp4"])
    ap.add_argument("--stride", type=int, default=1)
    ap.add_argument("--teacher-score", type=float, default=0.3)
    ap.add_argument("--min-score", type=float, default=0.3)
    args = ap.parse_args()
    os.environ.setdefault("OPENVINO_TELEMETRY", "0")
    model = PoseModel(args.model, precision_hint=os.environ.get("EDGEPOSE_PRECISION_HINT"))
    teacher = StrongTeacher(REPO.parent / "shared" / "models")
    totals = np.zeros(4, int)
    for name in args.videos:
        path = Path(name) if Path(name).is_file() else SAMPLES / name
        cap = cv2.VideoCapture(str(path))
        counts = np.zeros(4, int)  # teacher people, matched, model people, merged
        index = 0
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            if index % args.stride == 0:
                ref, _ = teacher(frame)
                ref = ref[ref.score >= args.teacher_score]
                ours = decode.decode(model.infer(frame))
                ours = ours[ours.score >= args.min_score]
                matched, n_ours, merged = compare(ours, ref)
                counts += (len(ref), matched, n_ours, merged)
            index += 1
        cap.release()
        totals += counts
        report(path.name, counts)
    if len(args.videos) > 1:
        report("all", totals)
    # The compiled precision is known only once a frame has run.
    print(f"model {args.model}, precision {model.runtime_precision()}, {platform.processor() or platform.machine()}")


def report(name: str, c: np.ndarray) -> None:
    people, matched, ours, merged = (int(v) for v in c)
    print(f"{name}: teacher people {people}, matched one-to-one at OKS >= {MATCH_OKS}: {matched} "
          f"({100 * matched / max(people, 1):.1f} %, goal >= 90 %); model people {ours}, taking joints of two "
          f"teacher people: {merged} ({100 * merged / max(ours, 1):.1f} %, goal <= 5 %)")


if __name__ == "__main__":
    main()
