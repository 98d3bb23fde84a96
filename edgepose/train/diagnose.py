"""What limits a trained model's AP: its heatmaps, its tags, or the input size.

The model runs on annotated images exactly as validation does (``validate.network_output``); then its
heatmaps, its tags or both are swapped for the ideal ones drawn from the ground truth
(``edgepose.eval.oracle``) before grouping, and each combination is scored with pycocotools:

* network as is: the model's AP;
* ground-truth tags: what the model's heatmaps would give with perfect grouping;
* ground-truth heatmaps: what its tags would give with perfect joints;
* both ground truth: the ceiling of this input size and the decoder.

Joint and tag statistics say why: the heatmap peak near each labelled joint (the decoder keeps peaks above
``detection_threshold``) and its distance from the joint, and how far apart the tags of different people are
compared with the spread within one person (the decoder merges tags closer than ``tag_threshold``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from edgepose import decode
from edgepose.decode import GroupingParams
from edgepose.errors import EdgeposeError
from edgepose.eval.coco import evaluate, poses_to_coco
from edgepose.eval.oracle import person_tags, render_maps
from edgepose.train.data import person_category
from edgepose.train.model import build_model
from edgepose.train.official import load_official_state_dict, read_checkpoint_and_config
from edgepose.train.validate import annotated_images, network_output, test_short_side
from edgepose.types import NUM_JOINTS, NetOutput
from edgepose.variants import get_variant

# (heatmaps from the ground truth, tags from the ground truth) for each row of the report
CASES = {
    "network as is": (False, False),
    "ground-truth tags": (False, True),
    "ground-truth heatmaps": (True, False),
    "both ground truth": (True, True),
}
WINDOW = 3  # map pixels around a labelled joint searched for the network's peak


@dataclass(frozen=True)
class Diagnosis:
    images: int
    people: int
    ap: dict[str, dict[str, float]]  # CASES key -> pycocotools metrics
    joints: int  # labelled joints on the maps
    peak_median: float  # heatmap maximum within WINDOW of a labelled joint
    detected: float  # share of labelled joints whose peak passes the detection threshold
    error_median: float  # distance of that maximum from the joint, in map pixels
    tag_spread: float  # mean over people of the std of their joints' tags
    tag_gap_median: float  # per person: distance of its mean tag to the nearest other person's in the image
    tag_gap_p10: float
    params: GroupingParams

    def report(self) -> str:
        rows = [f"{self.images} images, {self.people} people", f"{'':24s}{'AP':>7s}{'AP50':>7s}{'AR':>7s}"]
        rows += [f"{case:24s}{m['AP']:7.3f}{m['AP50']:7.3f}{m['AR']:7.3f}" for case, m in self.ap.items()]
        rows.append(
            f"heatmaps: peak at labelled joints median {self.peak_median:.2f}, {100 * self.detected:.0f}% above "
            f"the detection threshold {self.params.detection_threshold:g}; peak {self.error_median:.1f} map px "
            f"from the joint (median)"
        )
        rows.append(
            f"tags: spread within a person {self.tag_spread:.2f}; gap to the nearest other person median "
            f"{self.tag_gap_median:.2f} (10% below {self.tag_gap_p10:.2f}); grouping merges people closer than "
            f"the tag threshold {self.params.tag_threshold:g}"
        )
        return "\n".join(rows)


def _labelled_people(coco, image_id: int) -> np.ndarray:
    """(n, 17, 3) keypoints of the non-crowd people with keypoints, in image pixels."""
    anns = coco.loadAnns(coco.getAnnIds(imgIds=image_id, catIds=[person_category(coco)], iscrowd=False))
    keypoints = [a["keypoints"] for a in anns if a.get("num_keypoints", 0) > 0]
    return np.asarray(keypoints, np.float64).reshape(-1, NUM_JOINTS, 3)


def _peaks(out: NetOutput, joints: np.ndarray):
    """For each labelled joint on the map: (person, peak value, distance to the joint, tag at the peak)."""
    _, h, w = out.heatmaps.shape
    for p, person in enumerate(joints):
        for j, (x, y, vis) in enumerate(person):
            cx, cy = int(x), int(y)
            if vis <= 0 or not (0 <= cx < w and 0 <= cy < h):
                continue
            y0, x0 = max(cy - WINDOW, 0), max(cx - WINDOW, 0)
            patch = out.heatmaps[j, y0 : cy + WINDOW + 1, x0 : cx + WINDOW + 1]
            py, px = np.unravel_index(int(patch.argmax()), patch.shape)
            yield p, float(patch[py, px]), float(np.hypot(py + y0 - cy, px + x0 - cx)), out.tags[j, py + y0, px + x0]


def _tag_stats(tags_by_person: list[list[np.ndarray]]) -> tuple[float, list[float]]:
    """(mean within-person std, per-person distance to the nearest other person's mean tag) for one image."""
    people = [np.asarray(t) for t in tags_by_person if t]
    spread = [float(np.sqrt(((t - t.mean(0)) ** 2).sum(1).mean())) for t in people if len(t) > 1]
    means = np.array([t.mean(0) for t in people])
    gaps = []
    for i in range(len(means)):
        others = np.delete(means, i, axis=0)
        if len(others):
            gaps.append(float(np.linalg.norm(others - means[i], axis=1).min()))
    return spread, gaps


@torch.no_grad()
def diagnose(
    net: torch.nn.Module,
    ann_file: str | Path,
    image_dir: str | Path,
    short: int,
    *,
    device: torch.device | str = "cpu",
    params: GroupingParams | None = None,
    image_ids: list[int] | None = None,
    progress=lambda it, total: it,
) -> Diagnosis:
    """Score ``net`` on the annotated images of ``ann_file`` (or ``image_ids``) with its heatmaps and tags
    swapped for the ground truth's in turn (see the module docstring). ``short``: the test-time short side."""
    params = params or GroupingParams()
    coco, ids, images = annotated_images(ann_file, image_dir, image_ids)
    net.eval()
    results: dict[str, list[dict]] = {case: [] for case in CASES}
    peaks, errors, spreads, gaps, people = [], [], [], [], 0
    for image_id, image in progress(images, len(ids)):
        out = network_output(net, image, short, torch.device(device))
        joints = _labelled_people(coco, image_id)
        joints[..., :2] /= out.scale[0]  # image pixels -> map pixels
        people += len(joints)
        heat, tags = render_maps(joints, out.heatmaps.shape[1:], person_tags(len(joints), dims=out.tags.shape[-1]))
        for case, (gt_heat, gt_tags) in CASES.items():
            mixed = NetOutput(heat if gt_heat else out.heatmaps, tags if gt_tags else out.tags,
                              nms_applied=False, scale=out.scale)
            results[case] += poses_to_coco(image_id, decode.decode(mixed, params))
        by_person: list[list[np.ndarray]] = [[] for _ in range(len(joints))]
        for person, peak, error, tag in _peaks(out, joints):
            peaks.append(peak)
            errors.append(error)
            by_person[person].append(tag)
        spread, gap = _tag_stats(by_person)
        spreads += spread
        gaps += gap
    ap = {case: evaluate(ann_file, r, image_ids=ids) for case, r in results.items()}
    peaks_a = np.asarray(peaks) if peaks else np.zeros(1)
    gaps_a = np.asarray(gaps) if gaps else np.full(1, np.nan)
    return Diagnosis(
        images=len(ids), people=people, ap=ap, joints=len(peaks),
        peak_median=float(np.median(peaks_a)), detected=float((peaks_a > params.detection_threshold).mean()),
        error_median=float(np.median(errors)) if errors else float("nan"),
        tag_spread=float(np.mean(spreads)) if spreads else float("nan"),
        tag_gap_median=float(np.median(gaps_a)), tag_gap_p10=float(np.percentile(gaps_a, 10)), params=params,
    )


def diagnose_checkpoint(
    checkpoint: str | Path,
    *,
    ann_file: str | Path | None = None,
    image_dir: str | Path | None = None,
    input_size: int | None = None,
    variant: str | None = None,
    threads: int | None = None,
    progress=lambda it, total: it,
) -> Diagnosis:
    """``diagnose`` for a checkpoint file or a run folder (its ``best.pt``), on ``threads`` CPU threads.

    An ``edgepose train`` checkpoint supplies the variant, input size and data of its run (the images it
    validated on); the arguments override them, and must be given for official checkpoints."""
    if threads:
        torch.set_num_threads(threads)
    path = Path(checkpoint)
    if path.is_dir():
        path = path / "best.pt"
    state, config = read_checkpoint_and_config(path)
    variant = variant or config.get("variant")
    image_ids = None
    if ann_file is None and not config.get("val_ann") and config.get("limit_images"):
        # The run trained (and validated) on its first N images only: diagnose those.
        _, ids, _ = annotated_images(config["ann"], config["images"])
        image_ids = ids[: config["limit_images"]]
    ann_file = ann_file or config.get("val_ann") or config.get("ann")
    image_dir = image_dir or config.get("val_images") or config.get("images")
    if not (variant and ann_file and image_dir):
        raise EdgeposeError(f"{path} is not an edgepose training checkpoint: give --variant, --ann and --images")
    net = build_model(variant, config.get("activation") or "swish")
    try:
        load_official_state_dict(net, state)
    except ValueError as exc:
        raise EdgeposeError(f"{path}: {exc}") from exc
    size = input_size or config.get("input_size") or get_variant(variant).input_size
    return diagnose(net, ann_file, image_dir, test_short_side(size), image_ids=image_ids, progress=progress)
