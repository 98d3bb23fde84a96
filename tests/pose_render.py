"""Perfect (and noisy synthetic) network outputs for decoder tests and benchmarks.

``edgepose.eval.oracle.render_maps`` draws what an ideal associative-embedding network would output for known
people; ``coco_oracle`` does it for the ground truth of a COCO annotation file, at stride 2 of the input
size HigherHRNet's test resize gives (short side ceil(512/64)*64, long side rounded up to a multiple of 64).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from edgepose.decode import resize_bilinear
from edgepose.eval.oracle import person_tags, render_maps
from edgepose.types import NUM_JOINTS, NetOutput


def official_input_size(width: int, height: int, input_size: int = 512) -> tuple[int, int]:
    """(w, h) of HigherHRNet's test-time resize for one scale."""
    short = int((input_size + 63) // 64 * 64)
    if width < height:
        return short, int((short / width * height + 63) // 64 * 64)
    return int((short / height * width + 63) // 64 * 64), short


def coco_oracle(ann_file, input_size=512, stride=2, tag_dims=1):
    """[(image_id, NetOutput)] rendering each image's ground truth as perfect network outputs.

    The image is scaled by (short side of the input) / (short side of the image) and anchored top-left, so
    heatmap pixel x maps to image pixel x * stride / that scale, as NetOutput.scale says.
    """
    data = json.loads(Path(ann_file).read_text())
    by_image = {}
    for ann in data["annotations"]:
        if ann.get("num_keypoints", 0) > 0 and not ann.get("iscrowd", 0):
            by_image.setdefault(ann["image_id"], []).append(ann)
    rng = np.random.default_rng(0)
    out = []
    for img in sorted(data["images"], key=lambda im: im["id"]):
        in_w, in_h = official_input_size(img["width"], img["height"], input_size)
        resize = min(in_w, in_h) / min(img["width"], img["height"])
        map_scale = resize / stride
        anns = by_image.get(img["id"], [])
        joints = np.array([a["keypoints"] for a in anns], np.float64).reshape(-1, NUM_JOINTS, 3)
        joints[:, :, :2] *= map_scale
        tag_values = person_tags(len(anns), rng, tag_dims)
        heat, tags = render_maps(joints, (in_h // stride, in_w // stride), tag_values)
        out.append((img["id"], NetOutput(heat, tags, scale=(1 / map_scale, 1 / map_scale))))
    return out


# A standing person, joint offsets in units of the person's height, hip centre at (0, 0).
_TEMPLATE = np.array(
    [[0, -0.42], [-0.03, -0.45], [0.03, -0.45], [-0.07, -0.43], [0.07, -0.43], [-0.12, -0.3], [0.12, -0.3],
     [-0.16, -0.15], [0.16, -0.15], [-0.17, 0.0], [0.17, 0.0], [-0.07, 0.0], [0.07, 0.0], [-0.08, 0.25],
     [0.08, 0.25], [-0.08, 0.48], [0.08, 0.48]]
)


def synthetic_frame(rng, n_people, shape, missing=0.1, noise=0.05, tag_noise=0.1, tag_dims=1):
    """Network-like heatmaps and tags for n random people on a (H, W) map.

    Joints jitter around a standing pose; a fraction ``missing`` of joints is invisible; the heatmaps get uniform
    background noise below ``noise``; away from the people the tags are a smooth random field (as a network's tag
    maps are), and every tag pixel gets Gaussian noise of ``tag_noise``.
    Returns heatmaps, tags, joints (n, 17, 3).
    """
    h, w = shape
    heights = rng.uniform(0.2, 0.6, n_people) * h
    centres = np.stack([rng.uniform(0.1 * w, 0.9 * w, n_people), rng.uniform(0.3 * h, 0.7 * h, n_people)], 1)
    xy = centres[:, None] + _TEMPLATE[None] * heights[:, None, None]
    xy += rng.normal(0, 0.02, xy.shape) * heights[:, None, None]
    vis = (rng.random((n_people, NUM_JOINTS)) > missing).astype(np.float64)
    joints = np.concatenate([xy, vis[..., None]], axis=2)
    tag_values = rng.permutation(n_people)[:, None] * 1.5 + rng.normal(0, 0.05, (n_people, tag_dims))
    heat, tags = render_maps(joints, shape, tag_values, background_tag=np.nan)
    heat += rng.uniform(0, noise, heat.shape).astype(np.float32)
    background = np.isnan(tags)
    field = rng.uniform(0, 1.5 * n_people, (NUM_JOINTS, h // 32 + 2, w // 32 + 2, tag_dims))
    tags[background] = resize_bilinear(field, (h, w))[background]
    tags += rng.normal(0, tag_noise, tags.shape).astype(np.float32)
    return heat, tags, joints
