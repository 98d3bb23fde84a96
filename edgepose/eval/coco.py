"""COCO keypoint results and evaluation.

The numbers come from pycocotools' own ``COCOeval`` (iouType "keypoints", OKS), never re-implemented here.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from edgepose.errors import EdgeposeError
from edgepose.types import Poses

# COCOeval.stats order for keypoints.
METRICS: tuple[str, ...] = ("AP", "AP50", "AP75", "APM", "APL", "AR", "AR50", "AR75", "ARM", "ARL")
PERSON_CATEGORY = 1


def poses_to_coco(image_id: int, poses: Poses) -> list[dict]:
    """COCO results entries for the people of one image (frame pixels): keypoints [x, y, conf] * 17, score."""
    out = []
    for xy, conf, score in zip(poses.xy, poses.conf, poses.score):
        keypoints = np.concatenate([xy, conf[:, None]], axis=1).reshape(-1)
        out.append(
            {
                "image_id": int(image_id),
                "category_id": PERSON_CATEGORY,
                "keypoints": [round(float(v), 3) for v in keypoints],
                "score": float(score),
            }
        )
    return out


def image_list(ann_file: str | os.PathLike, images_dir: str | os.PathLike,
               max_images: int | None = None) -> list[tuple[int, Path]]:
    """(image id, path) of the images in a COCO annotation file, sorted by id, checked to exist in images_dir."""
    ann_file, images_dir = Path(ann_file), Path(images_dir)
    try:
        images = json.loads(ann_file.read_text())["images"]
        entries = sorted((int(im["id"]), images_dir / im["file_name"]) for im in images)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise EdgeposeError(
            f"{ann_file} is not a COCO annotation file ({type(exc).__name__}: {exc}); pass person_keypoints_*.json"
        ) from exc
    entries = entries[:max_images] if max_images else entries
    missing = [str(path) for _, path in entries if not path.is_file()]
    if missing:
        raise EdgeposeError(
            f"{len(missing)} image(s) of {ann_file.name} not found, e.g. {missing[0]}; pass the folder that holds "
            f"them with --images"
        )
    return entries


def write_json_atomic(path: str | os.PathLike, data) -> None:
    """Write JSON to a temporary file beside ``path`` and rename it over, so readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def evaluate(
    ann_file: str | os.PathLike,
    results: list[dict],
    *,
    image_ids: Iterable[int] | None = None,
    results_file: str | os.PathLike | None = None,
) -> dict[str, float]:
    """COCO keypoint metrics (METRICS names -> value) of ``results`` against the annotations in ``ann_file``.

    image_ids: evaluate only these images (e.g. the ones a partial run covered); default all annotated images.
    results_file: also write the results there (JSON, atomically). No results gives all metrics 0.
    pycocotools' console output is captured, not printed.
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    if results_file is not None:
        write_json_atomic(results_file, results)
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(ann_file))
        if not results:
            # loadRes refuses an empty list; with no detections every precision and recall is 0.
            return dict.fromkeys(METRICS, 0.0)
        dt = gt.loadRes(copy.deepcopy(results))  # loadRes adds bbox/area/id to the dicts it is given
        ev = COCOeval(gt, dt, iouType="keypoints")
        if image_ids is not None:
            ev.params.imgIds = sorted(int(i) for i in image_ids)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    # COCOeval reports -1 where a bucket has no ground truth (e.g. no medium people); keep that, it is not 0.
    return {name: float(value) for name, value in zip(METRICS, ev.stats)}
