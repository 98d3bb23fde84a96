"""COCO evaluation through pycocotools, and the `edgepose eval` command's input errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from edgepose.cli import cli
from edgepose.errors import EdgeposeError
from edgepose.eval import METRICS, evaluate, poses_to_coco
from edgepose.types import Poses


def _ground_truth_results(ann_file):
    """Every annotated person as a detection with its own keypoints (conf 1 where labelled)."""
    data = json.loads(ann_file.read_text())
    results = []
    for ann in data["annotations"]:
        if ann["num_keypoints"] == 0 or ann.get("iscrowd", 0):
            continue
        kp = np.array(ann["keypoints"], np.float32).reshape(17, 3)
        poses = Poses(kp[None, :, :2], (kp[None, :, 2] > 0).astype(np.float32), np.ones(1, np.float32))
        results += poses_to_coco(ann["image_id"], poses)
    return results


def test_ground_truth_scores_ap_one(coco_mini, tmp_path):
    ann = coco_mini / "person_keypoints.json"
    results = _ground_truth_results(ann)
    out = tmp_path / "sub" / "results.json"
    metrics = evaluate(ann, results, results_file=out)
    assert set(metrics) == set(METRICS)
    assert metrics["AP"] == pytest.approx(1.0, abs=1e-6)
    assert metrics["AR"] == pytest.approx(1.0, abs=1e-6)
    assert json.loads(out.read_text()) == results
    assert [p.name for p in out.parent.iterdir()] == ["results.json"]  # no temporary left behind


def test_shifted_keypoints_lower_ap(coco_mini):
    ann = coco_mini / "person_keypoints.json"
    results = _ground_truth_results(ann)
    for r in results:
        r["keypoints"] = [v + 8.0 if i % 3 == 0 else v for i, v in enumerate(r["keypoints"])]
    assert evaluate(ann, results)["AP"] < 0.9


def test_subset_of_images(coco_mini):
    ann = coco_mini / "person_keypoints.json"
    results = _ground_truth_results(ann)
    first = results[0]["image_id"]
    only_first = [r for r in results if r["image_id"] == first]
    assert evaluate(ann, only_first, image_ids=[first])["AP"] == pytest.approx(1.0, abs=1e-6)
    assert evaluate(ann, only_first)["AP"] < 0.5


def test_empty_results_are_zero(coco_mini, tmp_path):
    metrics = evaluate(coco_mini / "person_keypoints.json", [], results_file=tmp_path / "r.json")
    assert metrics == dict.fromkeys(METRICS, 0.0)
    assert json.loads((tmp_path / "r.json").read_text()) == []


def test_poses_to_coco_format():
    xy = np.arange(34, dtype=np.float32).reshape(1, 17, 2)
    entries = poses_to_coco(7, Poses(xy, np.full((1, 17), 0.5, np.float32), np.array([0.9], np.float32)))
    assert entries[0]["image_id"] == 7 and entries[0]["category_id"] == 1
    assert entries[0]["keypoints"][:6] == [0.0, 1.0, 0.5, 2.0, 3.0, 0.5]
    assert len(entries[0]["keypoints"]) == 51 and entries[0]["score"] == pytest.approx(0.9)
    assert poses_to_coco(7, Poses.empty()) == []


def test_cli_eval_missing_annotation_file(tmp_path):
    result = CliRunner().invoke(cli, ["eval", "--ann", str(tmp_path / "nope.json"), "--images", str(tmp_path),
                                      "--model", "H-4"])
    assert result.exit_code == 2
    assert "nope.json" in result.output and "does not exist" in result.output


def test_cli_eval_bad_annotation_file(tmp_path):
    bad = tmp_path / "ann.json"
    bad.write_text("{not json")
    result = CliRunner().invoke(cli, ["eval", "--ann", str(bad), "--images", str(tmp_path), "--model", "H-4"])
    assert result.exit_code == 1
    assert isinstance(result.exception, EdgeposeError) and "ann.json is not a COCO annotation" in str(result.exception)


def test_cli_eval_missing_image(coco_mini, tmp_path):
    result = CliRunner().invoke(
        cli, ["eval", "--ann", str(coco_mini / "person_keypoints.json"), "--images", str(tmp_path), "--model", "H-4"]
    )
    assert result.exit_code == 1
    assert isinstance(result.exception, EdgeposeError) and "not found" in str(result.exception)


@pytest.mark.slow
def test_cli_eval_runs_a_real_model(coco_mini, omz_model, tmp_path):
    """End to end on real images with OMZ hpe-0005 (stand-in weights: the wiring is tested, not the accuracy)."""
    out = tmp_path / "results.json"
    result = CliRunner().invoke(cli, ["eval", "--ann", str(coco_mini / "person_keypoints.json"), "--images",
                                      str(coco_mini / "images"), "--model", str(omz_model), "--max-images", "2",
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "AP50" in result.output and "in 2 images" in result.output
    results = json.loads(out.read_text())
    assert all(len(r["keypoints"]) == 51 for r in results)
    assert len({r["image_id"] for r in results}) <= 2
