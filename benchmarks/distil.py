"""How close the shipped edgepose-h4 comes to its MoveNet teacher on one-by-one-person-detection.mp4.

    .venv/bin/python benchmarks/distil.py [--model models/edgepose-h4] [--start 0 --stride 2] [--save-frame F.jpg]
                                          [--teacher-ap ANN IMAGES]

Over the frames where the teacher (256 + 512 px, OKS-NMS) sees a person with score >= 0.3, prints:
  * found: the fraction where edgepose's own runtime path (PoseModel + decode) returns a person with score
    >= 0.1, the decoder's detection threshold (goal >= 90 %);
  * error: the mean distance of its keypoints to the teacher's (the student person closest to the teacher's
    best person, joints confident on both sides), as a fraction of the teacher's box height (goal <= 10 %);
  * false alarms: frames where the teacher sees nobody (best score < 0.1) but the model reports a person.
Frames are taken every ``--stride`` from ``--start``. edgepose-h4's pseudo-labels used frames 0, 4, 8, ... of
this video, so ``--start 2 --stride 4`` measures on frames it never saw. ``--teacher-ap`` also prints the
teacher's COCO keypoint AP on a split (edgepose.eval.coco), to set beside ``edgepose eval`` of the model.
Needs the train extra (the teacher lives in edgepose.train).
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import cv2
import numpy as np

from edgepose import decode
from edgepose.draw import draw_poses
from edgepose.inference import PoseModel
from edgepose.train.teacher import MoveNet, teacher_ap, teacher_error

REPO = Path(__file__).resolve().parents[1]
VIDEO = REPO.parent / "shared" / "data" / "video" / "one-by-one-person-detection.mp4"
TEACHER = REPO.parent / "shared" / "models" / "movenet-multipose"
TEACHER_SCORE = 0.3
STUDENT_SCORE = 0.1
EMPTY_SCORE = 0.1  # below this best teacher score a frame counts as empty


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(REPO / "models" / "edgepose-h4"), help="student IR folder or .xml")
    ap.add_argument("--video", default=str(VIDEO))
    ap.add_argument("--teacher", default=str(TEACHER))
    ap.add_argument("--stride", type=int, default=2, help="use every N-th frame")
    ap.add_argument("--start", type=int, default=0, help="first frame (--start 2 --stride 4: frames never trained on)")
    ap.add_argument("--save-frame", help="write the student's poses on the median-error frame to this JPEG")
    ap.add_argument("--teacher-ap", nargs=2, metavar=("ANN", "IMAGES"), help="also print the teacher's AP here")
    args = ap.parse_args()

    os.environ.setdefault("OPENVINO_TELEMETRY", "0")
    student = PoseModel(args.model, precision_hint=os.environ.get("EDGEPOSE_PRECISION_HINT"))
    teacher = MoveNet(args.teacher)
    if args.teacher_ap:
        metrics = teacher_ap(teacher.multiscale, *args.teacher_ap)
        print(f"teacher on {args.teacher_ap[0]}: " + "  ".join(f"{k} {v:.3f}" for k, v in metrics.items()))
    cap = cv2.VideoCapture(args.video)
    processed = seen = found = empty = false_alarms = 0
    errors: list[tuple[float, int]] = []
    t_student = 0.0
    index = 0
    while True:
        ok = cap.grab()
        if not ok:
            break
        if index >= args.start and (index - args.start) % args.stride == 0:
            processed += 1
            image = cap.retrieve()[1]
            tpose, tbox = teacher.multiscale(image)  # sorted by person score
            best = tpose.score[0] if len(tpose) else 0.0
            t0 = time.perf_counter()
            people = decode.decode(student.infer(image))
            t_student += time.perf_counter() - t0
            people = people[people.score >= STUDENT_SCORE]
            if best < EMPTY_SCORE:
                empty += 1
                false_alarms += len(people) > 0
            if best >= TEACHER_SCORE:
                seen += 1
                found += len(people) > 0
                err = teacher_error(tpose[0], tbox[0], people)
                if err is not None:
                    errors.append((err, index))
        index += 1
    cap.release()
    if not seen:
        raise SystemExit(f"the teacher saw nobody in {args.video}")
    errs = np.array([e for e, _ in errors])
    print(f"{Path(args.video).name}: {index} frames, {processed} used (start {args.start}, stride {args.stride}); "
          f"teacher sees a person (>= {TEACHER_SCORE}) in {seen}; model {args.model} on {platform.processor() or platform.machine()}, "
          f"precision {student.runtime_precision()}, {1e3 * t_student / processed:.1f} ms per frame "
          "(inference + decode)")
    print(f"found a person (score >= {STUDENT_SCORE}): {found}/{seen} = {100 * found / seen:.1f} % (goal >= 90 %)")
    print(f"keypoint error / teacher box height over {len(errs)} matched frames: mean {100 * errs.mean():.1f} % "
          f"(goal <= 10 %), median {100 * np.median(errs):.1f} %, p90 {100 * np.percentile(errs, 90):.1f} %")
    print(f"false alarms: {false_alarms}/{empty} frames where the teacher sees nobody (< {EMPTY_SCORE})")
    if args.save_frame and errors:
        _, median_index = sorted(errors)[len(errors) // 2]
        cap = cv2.VideoCapture(args.video)
        cap.set(cv2.CAP_PROP_POS_FRAMES, median_index)
        image = cap.read()[1]
        cap.release()
        people = decode.decode(student.infer(image))
        cv2.imwrite(args.save_frame, draw_poses(image, people[people.score >= STUDENT_SCORE]))
        print(f"wrote {args.save_frame} (frame {median_index}, the median error)")


if __name__ == "__main__":
    main()
