"""COCO keypoint evaluation of decoded poses (pycocotools)."""

from edgepose.eval.coco import METRICS, evaluate, poses_to_coco

__all__ = ["METRICS", "evaluate", "poses_to_coco"]
