"""How the people-count rule (edgepose.track.counting) behaves on the sample videos, over a grid of settings.

    .venv/bin/python benchmarks/count_rule.py [--model models/edgepose-h4] [--teacher] [--scores 0.1,0.15,0.2]

Runs the runtime's decode path (GStreamer capture, OpenVINO, grouping, the decoder's joint/min-joints/min-score filter)
once per video, keeps every frame's people, then replays them through ``PeopleCounter`` with each setting of
``publish.min_person_score`` x ``tracking.min_hits`` x ``tracking.max_age`` and prints, per setting:

  * one-by-one-person-detection.mp4 (one person at a time): the share of frames whose count is 0 or 1, the
    number of count changes, and (with ``--teacher``) the share of frames where the count equals the MoveNet
    teacher's presence (best teacher person >= 0.3 on that frame, 0 or 1) and the teacher's number of visits;
  * store-aisle-detection.mp4 (2 people): the largest count and the share of frames counting 2;
  * classroom.mp4 (4 seated people): the share of frames counting 4 and the largest count;
  * the score distribution of the detections on each video.

``--teacher`` needs the train extra (MoveNet lives in edgepose.train). Numbers depend on the model: rerun this
after replacing models/edgepose-h4.
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import time
from pathlib import Path

import numpy as np

from common import REPO, SAMPLES

TEACHER = REPO.parent / "shared" / "models" / "movenet-multipose"
TEACHER_SCORE = 0.3
VIDEOS = ("one-by-one-person-detection.mp4", "store-aisle-detection.mp4", "classroom.mp4")


def run_video(model, path: Path, cfg) -> tuple[list, list[int]]:
    """Every frame's people (after the runtime's filters) and its capture timestamp, in frame order."""
    from edgepose.capture import open_source
    from edgepose.service.run import _decoder, grouping_params, keep_people

    decoder = _decoder(grouping_params(cfg.decode))
    frames, stamps = [], []
    with open_source(str(path)) as src:
        for frame in src:
            d = cfg.decode
            poses = keep_people(decoder(model.infer(frame.image)), d.joint_threshold, d.min_joints, d.min_score)
            frames.append(poses)
            stamps.append(frame.timestamp_ns)
    return frames, stamps


def teacher_presence(path: Path) -> np.ndarray:
    """Per frame: 1 when the MoveNet teacher sees a person scored >= TEACHER_SCORE, else 0."""
    import cv2

    from edgepose.train.teacher import MoveNet

    teacher = MoveNet(TEACHER)
    cap = cv2.VideoCapture(str(path))
    out = []
    while True:
        ok, image = cap.read()
        if not ok:
            break
        poses, _ = teacher.multiscale(image)
        out.append(int(len(poses) > 0 and poses.score[0] >= TEACHER_SCORE))
    cap.release()
    return np.array(out)


def visits(presence: np.ndarray, min_gap: int, min_len: int) -> int:
    """Number of runs of presence, after closing gaps shorter than min_gap and dropping runs shorter than min_len."""
    runs, start = [], None
    for i, p in enumerate(np.append(presence, 0)):
        if p and start is None:
            start = i
        elif not p and start is not None:
            if runs and start - runs[-1][1] < min_gap:
                runs[-1] = (runs[-1][0], i)
            else:
                runs.append((start, i))
            start = None
    return sum(end - begin >= min_len for begin, end in runs)


def counts(frames, stamps, min_score: float, min_hits: int, max_age: int, cfg) -> np.ndarray:
    from edgepose.track import Tracker
    from edgepose.track.counting import PeopleCounter

    t = cfg.tracking
    counter = PeopleCounter(min_score, Tracker(t.distance, max_distance=t.distance_threshold,
                                               min_joint_conf=t.joint_threshold, init_delay=min_hits - 1,
                                               max_age=max_age))
    return np.array([counter.update(p, ts).count for p, ts in zip(frames, stamps)])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(REPO / "models" / "edgepose-h4"))
    ap.add_argument("--teacher", action="store_true", help="also compare with the MoveNet teacher's presence")
    ap.add_argument("--scores", default="0,0.05,0.1,0.15,0.2,0.25,0.3")
    ap.add_argument("--min-hits", default="1,2,3,5")
    ap.add_argument("--max-age", default="5,10,15,30")
    args = ap.parse_args()

    os.environ.setdefault("OPENVINO_TELEMETRY", "0")
    from edgepose.config import AppConfig
    from edgepose.inference import load_model
    from edgepose.registry.profiler import cpu_isa

    cfg = AppConfig()
    model = load_model(Path(args.model), precision_hint=os.environ.get("EDGEPOSE_PRECISION_HINT"))
    data = {}
    for name in VIDEOS:
        t0 = time.perf_counter()
        data[name] = run_video(model, SAMPLES / name, cfg)
        n = len(data[name][0])
        print(f"{name}: {n} frames in {time.perf_counter() - t0:.1f} s")
    print(f"model {args.model}, CPU {platform.processor() or platform.machine()} ({cpu_isa()}), precision "
          f"{model.runtime_precision()}, OpenVINO threads default; decode defaults "
          f"(detection_threshold {cfg.decode.detection_threshold}, min_joints {cfg.decode.min_joints}, "
          f"min_score {cfg.decode.min_score})")
    for name, (frames, _) in data.items():
        scores = np.concatenate([p.score for p in frames]) if frames else np.zeros(0)
        hist = np.histogram(scores, bins=[0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 1.0])[0]
        print(f"{name}: {len(scores)} detections, score bins [0,.05,.1,.15,.2,.25,.3,.4,.5,1]: {hist.tolist()}; "
              f"raw count per frame: max {max((len(p) for p in frames), default=0)}")

    obo, aisle, room = (data[v] for v in VIDEOS)
    truth = None
    if args.teacher:
        truth = teacher_presence(SAMPLES / VIDEOS[0])[: len(obo[0])]
        fps = 10  # the file's frame rate: gaps under 1 s close, runs under 0.5 s are noise
        print(f"teacher: a person in {truth.mean():.1%} of frames, {visits(truth, fps, fps // 2)} visits "
              f"(gaps < 1 s closed, runs < 0.5 s dropped)")
    head = "score hits age | obo in{0,1}  changes" + ("  =teacher" if truth is not None else "") + \
        " | aisle max  =2   | class max  =4"
    print(head)
    grid = itertools.product(*(map(float, args.scores.split(",")), map(int, args.min_hits.split(",")),
                               map(int, args.max_age.split(","))))
    for score, hits, age in grid:
        c = counts(*obo, score, hits, age, cfg)
        line = f"{score:5.2f} {hits:4d} {age:3d} | {np.isin(c, (0, 1)).mean():8.1%} {int((np.diff(c) != 0).sum()):8d}"
        if truth is not None:
            line += f"  {(c == truth).mean():8.1%}"
        a = counts(*aisle, score, hits, age, cfg)
        r = counts(*room, score, hits, age, cfg)
        line += f" | {a.max():6d} {(a == 2).mean():6.1%} | {r.max():6d} {(r == 4).mean():6.1%}"
        print(line)


if __name__ == "__main__":
    main()
