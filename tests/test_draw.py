"""Skeleton drawing: limb/joint placement on real COCO people, track colours, confidence as opacity, in place."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from edgepose.draw import PALETTE, color_index, draw_poses, opacity
from edgepose.types import JOINT_NAMES, Poses

L_SHOULDER, R_SHOULDER = JOINT_NAMES.index("left_shoulder"), JOINT_NAMES.index("right_shoulder")
GREY = 100


def _bgr(hex_color: str) -> np.ndarray:
    return np.array([int(hex_color[i : i + 2], 16) for i in (5, 3, 1)], np.float64)


def _shoulders(x0: float, x1: float, y: float, conf: float, track_id: int = -1, n: int = 1) -> Poses:
    """People with only their two shoulders found (one limb, two joints), stacked 40 px apart vertically."""
    xy = np.zeros((n, 17, 2), np.float32)
    c = np.zeros((n, 17), np.float32)
    for p in range(n):
        xy[p, L_SHOULDER] = (x0, y + 40 * p)
        xy[p, R_SHOULDER] = (x1, y + 40 * p)
        c[p, [L_SHOULDER, R_SHOULDER]] = conf
    ids = np.full(n, track_id) if track_id < 0 else np.arange(track_id, track_id + n)
    return Poses(xy, c, c.mean(axis=1), ids)


def test_limb_midpoint_has_track_colour_blended_by_confidence():
    img = np.full((120, 200, 3), GREY, np.uint8)
    for conf in (1.0, 0.5, 0.15):
        out = draw_poses(img, _shoulders(20, 180, 60, conf, track_id=3))
        expected = GREY * (1 - opacity(conf)) + _bgr(PALETTE[3]) * opacity(conf)
        np.testing.assert_allclose(out[60, 100], expected, atol=2)
    np.testing.assert_array_equal(img, GREY)  # copy=True leaves the input alone
    # Away from the limb nothing changes.
    assert (out[:50] == GREY).all() and (out[71:] == GREY).all()


def test_colours_follow_track_ids_then_list_position():
    img = np.zeros((200, 200, 3), np.uint8)
    tracked = draw_poses(img, _shoulders(20, 180, 40, 1.0, track_id=7, n=3))
    untracked = draw_poses(img, _shoulders(20, 180, 40, 1.0, n=3))
    for p in range(3):
        np.testing.assert_allclose(tracked[40 + 40 * p, 100], _bgr(PALETTE[(7 + p) % len(PALETTE)]), atol=2)
        np.testing.assert_allclose(untracked[40 + 40 * p, 100], _bgr(PALETTE[p]), atol=2)
    assert color_index(12, 0) == 2 and color_index(-1, 4) == 4


def test_joints_below_min_conf_and_off_image_are_skipped():
    img = np.full((100, 100, 3), GREY, np.uint8)
    assert (draw_poses(img, _shoulders(20, 80, 50, 0.05)) == GREY).all()  # below default min_conf 0.1
    assert (draw_poses(img, _shoulders(20, 80, 50, 0.05), min_conf=0.01) != GREY).any()
    assert (draw_poses(img, _shoulders(-500, -300, 50, 1.0)) == GREY).all()  # off the image
    assert (draw_poses(img, _shoulders(-1e7, 1e7, 50, 1.0)) != GREY).any()  # crossing it: the visible part
    assert (draw_poses(img, Poses.empty()) == GREY).all()


def test_in_place_drawing_returns_the_same_array():
    img = np.full((100, 100, 3), GREY, np.uint8)
    out = draw_poses(img, _shoulders(20, 80, 50, 1.0), copy=False)
    assert out is img and (img != GREY).any()


@pytest.mark.parametrize("bad", [np.zeros((10, 10), np.uint8), np.zeros((10, 10, 3), np.float32), "img"])
def test_rejects_what_is_not_a_bgr_image(bad):
    with pytest.raises(ValueError, match=r"\(H, W, 3\) uint8 BGR"):
        draw_poses(bad, Poses.empty())


def test_real_coco_people_are_drawn_at_their_annotated_joints(coco_mini):
    ann = json.loads((coco_mini / "person_keypoints.json").read_text())
    files = {i["id"]: i["file_name"] for i in ann["images"]}
    checked = 0
    for image_id in sorted({a["image_id"] for a in ann["annotations"] if a["num_keypoints"] >= 5})[:4]:
        kps = np.stack([np.asarray(a["keypoints"], np.float32).reshape(17, 3) for a in ann["annotations"]
                        if a["image_id"] == image_id and a["num_keypoints"] > 0])
        conf = (kps[:, :, 2] > 0).astype(np.float32)
        poses = Poses(kps[:, :, :2], conf, conf.mean(axis=1), np.arange(len(kps)))
        img = cv2.imread(str(coco_mini / "images" / files[image_id]))
        out = draw_poses(img, poses)
        drawn = np.abs(out.astype(int) - img.astype(int)).sum(axis=2) > 0
        for p, j in zip(*np.nonzero(conf)):
            x, y = np.round(poses.xy[p, j]).astype(int)
            if 0 <= x < img.shape[1] and 0 <= y < img.shape[0]:
                # The joint dot is opaque in its person's colour (unless another person's dot covers it).
                assert drawn[y, x]
                checked += 1
        # Nothing far from every person changes.
        boxes = poses.boxes(min_conf=0.5)
        far = np.ones_like(drawn)
        for x0, y0, x1, y1 in boxes.astype(int):
            far[max(y0 - 20, 0) : y1 + 20, max(x0 - 20, 0) : x1 + 20] = False
        assert not (drawn & far).any()
    assert checked > 20
