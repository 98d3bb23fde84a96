"""The strong teacher (NanoDet boxes -> MoveNet Thunder, plus MultiPose, OKS-NMS) on real images, and the
rule that coco-mini stays out of every training set of the documented recipe."""

from __future__ import annotations

import hashlib
import json

import cv2
import numpy as np
import pytest

from conftest import shared_path
from edgepose.types import Poses

COCO_SINGLE = 785  # coco-mini image with one person, all 17 joints labelled
# The documented recipe's data (models/edgepose-h4/README.md): these folders and the three videos.
RECIPE_FOLDERS = (("data", "unlabeled"), ("data", "unlabeled-2"))


@pytest.fixture(scope="module")
def strong():
    from edgepose.train.teacher import StrongTeacher

    return StrongTeacher(shared_path("models"))


def test_strong_teacher_finds_the_person_of_a_real_image_where_coco_labels_them(strong, coco_mini):
    data = json.loads((coco_mini / "person_keypoints.json").read_text())
    info = next(i for i in data["images"] if i["id"] == COCO_SINGLE)
    image = cv2.imread(str(coco_mini / "images" / info["file_name"]))
    poses, boxes = strong(image)
    assert isinstance(poses, Poses) and len(poses) == len(boxes) >= 1
    assert np.all((poses.conf >= 0) & (poses.conf <= 1)) and np.all((poses.score >= 0) & (poses.score <= 1))
    best = poses[int(np.argmax(poses.score))]
    h, w = image.shape[:2]
    confident = best.conf[0] > 0.3
    assert confident.sum() >= 12
    assert np.all((best.xy[0][confident] >= -1) & (best.xy[0][confident] <= [w + 1, h + 1]))
    gt = next(a for a in data["annotations"] if a["image_id"] == COCO_SINGLE and a["num_keypoints"] == 17)
    truth = np.asarray(gt["keypoints"], np.float32).reshape(17, 3)[:, :2]
    # within 5 % of the person's box height on average: a real pose, not a plausible-looking guess
    assert np.linalg.norm(best.xy[0] - truth, axis=1).mean() < 0.05 * gt["bbox"][3]


def test_strong_teacher_sees_several_people_in_a_crowded_frame(strong, video_aisle):
    cap = cv2.VideoCapture(str(video_aisle))
    ok, frame = cap.read()
    cap.release()
    assert ok
    poses, _ = strong(frame)
    assert (poses.score >= 0.2).sum() >= 2  # the two people in the aisle (small, from a GIF: scores ~0.25-0.4)


def test_no_coco_mini_image_is_in_the_recipes_training_folders(coco_mini):
    def digest(path):
        return hashlib.sha256(path.read_bytes()).hexdigest()

    held_out = {digest(p) for p in (coco_mini / "images").iterdir()}
    seen = 0
    for parts in RECIPE_FOLDERS:
        for path in shared_path(*parts).rglob("*"):
            if path.suffix.lower() in (".jpg", ".jpeg", ".png"):
                assert digest(path) not in held_out, path
                seen += 1
    assert seen > 400


def test_pseudo_label_cli_with_the_strong_teacher_on_real_images(tmp_path):
    from click.testing import CliRunner

    from edgepose.cli import cli

    folder = shared_path("data", "unlabeled", "darknet")
    out = tmp_path / "labels" / "train.json"
    result = CliRunner().invoke(cli, ["train", "pseudo-label", "--teacher", "strong", "--teacher-models",
                                      str(shared_path("models")), "--images", str(folder), "--out", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert len(data["images"]) == 2 and sum(a["num_keypoints"] > 0 for a in data["annotations"]) >= 2
    bad = CliRunner().invoke(cli, ["train", "pseudo-label", "--teacher", "strong", "--teacher-models", str(tmp_path),
                                   "--images", str(folder), "--out", str(out)])
    assert bad.exit_code != 0 and "nanodet" in str(bad.exception)
