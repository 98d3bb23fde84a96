"""Oracle decoding: perfect network outputs rendered from real COCO ground truth must decode to AP >= 0.95.

Heatmaps (Gaussians, sigma 2) and per-person constant tags are drawn at stride 2 of the input size HigherHRNet's
test resize gives each coco-mini image; the decoder's people, scaled back to image pixels, are scored by
pycocotools. The NumPy reference decoder must score the same within 0.005.
"""

from __future__ import annotations

import pytest
from pose_render import coco_oracle
from reference_decoder import reference_group

from edgepose.decode import decode
from edgepose.eval import evaluate, poses_to_coco
from edgepose.types import Poses


@pytest.fixture(scope="module")
def oracle(coco_mini):
    ann = coco_mini / "person_keypoints.json"
    return ann, coco_oracle(ann)


def _reference_poses(out) -> Poses:
    xy, conf, score = reference_group(out.heatmaps, out.tags)
    return Poses(xy, conf, score).scaled(*out.scale)


@pytest.mark.slow
def test_oracle_ap_numba_and_reference(oracle):
    ann, outputs = oracle
    ours = [r for image_id, out in outputs for r in poses_to_coco(image_id, decode(out))]
    ref = [r for image_id, out in outputs for r in poses_to_coco(image_id, _reference_poses(out))]
    ap_ours = evaluate(ann, ours)["AP"]
    ap_ref = evaluate(ann, ref)["AP"]
    print(f"oracle AP numba {ap_ours:.4f} reference {ap_ref:.4f}")
    assert ap_ours >= 0.95
    assert abs(ap_ours - ap_ref) <= 0.005
