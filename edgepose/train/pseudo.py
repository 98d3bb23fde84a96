"""Pseudo-labels: COCO person-keypoint annotations written by the MoveNet teacher, plus real ones kept as they are.

``pseudo_label`` runs the teacher (``edgepose.train.teacher``, 256 + 512 px merged by OKS-NMS) on images and on
video frames taken every ``stride`` frames (saved as JPEG files so training can read them), and writes one
COCO json that ``edgepose train --ann`` reads. Thresholds (the values commonly used to display MoveNet):

* a teacher person with score >= ``PERSON_SCORE`` (0.25) becomes an annotation; each keypoint is visible
  (v=2) when its teacher score is >= ``KEYPOINT_SCORE`` (0.3), else unlabelled (0, 0, 0); the person's
  teacher score is kept as ``score``, its box as ``bbox`` and the box area as ``area``;
* a person with a lower score but >= ``IGNORE_SCORE`` (0.1), or one with no keypoint above threshold, is
  written with ``num_keypoints`` 0 and its box as ``segmentation``: training masks that region out of the
  heatmap loss (as COCO's unlabelled people), so the student is not punished for a person the teacher
  half-saw, and COCOeval ignores detections there.

Real annotations (``keep_real``: a COCO json and its image folder) are copied unchanged, and an image that
also appears among the pseudo-labelled ones (same file content) keeps only its real labels.

Every ``file_name`` is written relative to the json's folder, so train with ``--images <that folder>``.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path

import cv2
import numpy as np

from edgepose.errors import EdgeposeError
from edgepose.eval.coco import write_json_atomic
from edgepose.types import JOINT_NAMES, SKELETON

PERSON_SCORE = 0.25
KEYPOINT_SCORE = 0.3
IGNORE_SCORE = 0.1
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
JPEG_QUALITY = 95


def find_images(folders: Iterable[str | Path], exclude: Iterable[str] = ()) -> list[Path]:
    """Image files under ``folders`` (recursively, sorted), minus those whose path relative to their folder
    matches a glob of ``exclude`` (e.g. ``intel-sample-videos/classroom_*``)."""
    found = []
    for folder in map(Path, folders):
        if not folder.is_dir():
            raise EdgeposeError(f"image folder {folder} does not exist: pass folders of JPEG/PNG images with --images")
        for path in sorted(folder.rglob("*")):
            rel = path.relative_to(folder).as_posix()
            if path.suffix.lower() in IMAGE_SUFFIXES and not any(fnmatch.fnmatch(rel, g) for g in exclude):
                found.append(path)
    return found


def extract_frames(video: str | Path, stride: int, frames_dir: str | Path) -> list[Path]:
    """Write every ``stride``-th frame of ``video`` (0, stride, 2*stride, ...) as ``<stem>_<index>.jpg`` in
    ``frames_dir``; returns their paths. Files are written under a temporary name then renamed."""
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    video, frames_dir = Path(video), Path(frames_dir)
    cap = cv2.VideoCapture(str(video))
    if not video.is_file() or not cap.isOpened():
        raise EdgeposeError(f"cannot open video {video}: pass an existing video file (mp4, mkv, ...) with --video")
    frames_dir.mkdir(parents=True, exist_ok=True)
    paths, index = [], 0
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            if index % stride == 0:
                path = frames_dir / f"{video.stem}_{index:05d}.jpg"
                ok, data = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
                tmp = path.with_name(f".{path.name}.tmp")
                tmp.write_bytes(data.tobytes())
                os.replace(tmp, path)
                paths.append(path)
            index += 1
    finally:
        cap.release()
    if not paths:
        raise EdgeposeError(f"no frames could be read from {video}: is it a valid video?")
    return paths


def teacher_annotations(poses, boxes: np.ndarray, image_id: int, first_id: int, *,
                        person_score: float = PERSON_SCORE, keypoint_score: float = KEYPOINT_SCORE,
                        ignore_score: float = IGNORE_SCORE) -> list[dict]:
    """COCO annotations of one image from the teacher's people (``Poses`` in image pixels and their boxes);
    ids count up from ``first_id``. See the module docstring for the thresholds."""
    anns = []
    for xy, conf, score, box in zip(poses.xy, poses.conf, poses.score, boxes):
        if score < ignore_score:
            continue
        visible = (conf >= keypoint_score) & (score >= person_score)
        kps = np.where(visible[:, None], np.concatenate([xy, np.full((len(xy), 1), 2.0)], 1), 0.0)
        x0, y0, x1, y1 = (float(v) for v in box)
        w, h = max(x1 - x0, 0.0), max(y1 - y0, 0.0)
        ann = {
            "id": first_id + len(anns), "image_id": int(image_id), "category_id": 1, "iscrowd": 0,
            "keypoints": [round(float(v), 2) for v in kps.reshape(-1)], "num_keypoints": int(visible.sum()),
            "bbox": [round(x0, 2), round(y0, 2), round(w, 2), round(h, 2)], "area": round(w * h, 2),
            "score": round(float(score), 4),
        }
        if ann["num_keypoints"] == 0:  # an ignore region: the box as a polygon
            ann["segmentation"] = [[x0, y0, x1, y0, x1, y1, x0, y1]]
        anns.append(ann)
    return anns


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _real_part(keep_real: Path, real_images: Path | None, real_ids: set[int] | None, skip_ids: set[int],
               root: Path) -> tuple[list[dict], list[dict], list[Path]]:
    """Images and annotations of the real json to keep (file_name rebased onto ``root``) and their paths."""
    try:
        data = json.loads(keep_real.read_text())
        images, annotations = data["images"], data["annotations"]
    except (OSError, ValueError, KeyError) as exc:
        raise EdgeposeError(f"--keep-real {keep_real} is not a COCO json ({type(exc).__name__}: {exc})") from exc
    folder = real_images or keep_real.parent / "images"
    kept = [im for im in images if (real_ids is None or im["id"] in real_ids) and im["id"] not in skip_ids]
    if real_ids is not None and len(kept) != len(real_ids - skip_ids):
        missing = sorted(real_ids - {im["id"] for im in images})
        raise EdgeposeError(f"image ids {missing} are not in {keep_real}: check --real-ids")
    paths, out_images = [], []
    for im in kept:
        path = folder / im["file_name"]
        if not path.is_file():
            raise EdgeposeError(f"{path} (image {im['id']} of {keep_real}) is missing: "
                                "pass the folder of its images with --real-images")
        paths.append(path)
        out_images.append(im | {"file_name": os.path.relpath(path.resolve(), root)})
    ids = {im["id"] for im in kept}
    return out_images, [a for a in annotations if a["image_id"] in ids], paths


def pseudo_label(
    teacher: Callable,
    out: str | Path,
    *,
    images: Iterable[str | Path] = (),
    videos: Iterable[str | Path] = (),
    stride: int = 4,
    frames_dir: str | Path | None = None,
    keep_real: str | Path | None = None,
    real_images: str | Path | None = None,
    real_ids: Iterable[int] | None = None,
    skip_real_ids: Iterable[int] = (),
    exclude: Iterable[str] = (),
    progress: Callable[[Iterable], Iterable] = lambda it: it,
    workers: int = 1,
) -> dict:
    """Write the COCO json ``out`` and return a summary dict (images, people, ignored, real images/annotations).

    ``teacher(image_bgr) -> (Poses, boxes)`` labels each image (``MoveNet(...).multiscale``); with ``workers`` > 1
    it must be a picklable factory of such a callable (e.g. ``functools.partial(make_teacher, "strong", models)``),
    built once in each worker process. ``images`` are
    folders (searched recursively; ``exclude`` globs drop files), ``videos`` are sampled every ``stride``
    frames into ``frames_dir`` (default: ``frames`` beside ``out``). ``keep_real`` adds a real COCO json
    (images in ``real_images``, default its ``images/`` folder), restricted to ``real_ids`` if given and
    without ``skip_real_ids`` (a held-out split).
    """
    out = Path(out)
    root = out.parent.resolve()
    root.mkdir(parents=True, exist_ok=True)
    coco = {"info": {"description": "edgepose pseudo-labels from MoveNet MultiPose (256+512 px, OKS-NMS 0.5)",
                     "person_score": PERSON_SCORE, "keypoint_score": KEYPOINT_SCORE, "ignore_score": IGNORE_SCORE},
            "images": [], "annotations": [],
            "categories": [{"id": 1, "name": "person", "supercategory": "person", "keypoints": list(JOINT_NAMES),
                            "skeleton": [[a + 1, b + 1] for a, b in SKELETON]}]}
    real_hashes: set[str] = set()
    if keep_real is not None:
        ids = None if real_ids is None else {int(i) for i in real_ids}
        real_imgs, real_anns, paths = _real_part(Path(keep_real), real_images and Path(real_images), ids,
                                                 {int(i) for i in skip_real_ids}, root)
        coco["images"] += real_imgs
        coco["annotations"] += real_anns
        real_hashes = {_sha256(p) for p in paths}
    sources = find_images(images, exclude)
    for video in videos:
        sources += extract_frames(video, stride, Path(frames_dir) if frames_dir else root / "frames")
    if not sources and keep_real is None:
        raise EdgeposeError("nothing to label: pass --images folders and/or --video files")

    next_image = max((im["id"] for im in coco["images"]), default=0) + 1
    next_ann = max((a["id"] for a in coco["annotations"]), default=0) + 1
    people = ignored = 0
    todo = [p for p in sources if not (real_hashes and _sha256(p) in real_hashes)]  # real labels take precedence
    shadowed = len(sources) - len(todo)
    for path, (height, width), poses, boxes in progress(_Sized(_labelled(teacher, todo, workers), len(todo))):
        anns = teacher_annotations(poses, boxes, next_image, next_ann)
        coco["images"].append({"id": next_image, "file_name": os.path.relpath(path.resolve(), root),
                               "width": width, "height": height})
        coco["annotations"] += anns
        people += sum(a["num_keypoints"] > 0 for a in anns)
        ignored += sum(a["num_keypoints"] == 0 for a in anns)
        next_image += 1
        next_ann += len(anns)
    write_json_atomic(out, coco)
    real = len(coco["annotations"]) - people - ignored
    return {"images": len(coco["images"]), "pseudo_images": len(sources) - shadowed, "people": people,
            "ignored": ignored, "shadowed": shadowed, "real_annotations": real}


class _Sized:
    """An iterator with a known length, so progress bars show a total."""

    def __init__(self, iterator, length: int):
        self.iterator, self.length = iterator, length

    def __iter__(self):
        return iter(self.iterator)

    def __len__(self) -> int:
        return self.length


_worker_teacher = None


def _start_worker(factory) -> None:
    global _worker_teacher
    _worker_teacher = factory()


def _label_one(path: Path, teacher=None):
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise EdgeposeError(f"cannot read image {path}: remove it or pass --exclude")
    poses, boxes = (teacher or _worker_teacher)(image)
    return path, image.shape[:2], poses, boxes


def _labelled(teacher, paths: list[Path], workers: int):
    """(path, (height, width), Poses, boxes) per image, in order; ``workers`` processes label in parallel."""
    if workers <= 1:
        yield from (_label_one(p, teacher) for p in paths)
        return
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(workers, _start_worker, (teacher,)) as pool:
        yield from pool.imap(_label_one, paths, chunksize=2)


def parse_ids(text: str | None) -> list[int] | None:
    """Comma-separated image ids (``"785,40083"``) as ints; None stays None."""
    if text is None:
        return None
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise EdgeposeError(f"image ids must be comma-separated integers, got {text!r}") from None
