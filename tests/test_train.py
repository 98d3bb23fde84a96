"""Training pipeline: targets, losses, augmentation, learning on real COCO images, exact resume, CLI, export."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.usefixtures("one_torch_thread")

from click.testing import CliRunner  # noqa: E402

from edgepose.cli import cli  # noqa: E402
from edgepose.train.data import Augment, KeypointDataset  # noqa: E402
from edgepose.train.losses import ae_loss, efficienthrnet_loss, heatmap_loss  # noqa: E402
from edgepose.train.loop import Trainer, TrainConfig  # noqa: E402
from edgepose.train.targets import heatmaps, joint_indices  # noqa: E402
from edgepose.types import FLIP_INDEX, NUM_JOINTS  # noqa: E402

SINGLE_PERSON = 785  # coco-mini image with one person, all 17 joints labelled
CROWDED = 129648  # a crowd region and several people annotated without keypoints




@pytest.fixture(scope="module")
def mini(coco_mini):
    return coco_mini / "person_keypoints.json", coco_mini / "images"


def person(*points: tuple[float, float, int]) -> np.ndarray:
    joints = np.zeros((1, NUM_JOINTS, 3), np.float32)
    for j, (x, y, v) in enumerate(points):
        joints[0, j] = (x, y, v)
    return joints


# -- targets ------------------------------------------------------------------------------------------------
def test_heatmap_peak_at_truncated_pixel_with_sigma_2():
    hm = heatmaps(person((10.7, 20.2, 2), (3.0, 3.0, 0)), res=64, sigma=2.0)
    assert hm.shape == (NUM_JOINTS, 64, 64) and hm.dtype == np.float32
    assert np.unravel_index(hm[0].argmax(), hm[0].shape) == (20, 10)
    assert hm[0, 20, 10] == pytest.approx(1.0)
    assert hm[0, 20, 12] == pytest.approx(math.exp(-4 / 8), rel=1e-6)  # 2 px away: exp(-d^2 / (2 sigma^2))
    assert hm[0, 23, 13] == pytest.approx(math.exp(-18 / 8), rel=1e-6)
    assert hm[0, 20, 18] == 0 and hm[0, 28, 10] == 0  # cut beyond 3 sigma + 1
    assert not hm[1:].any()  # the unlabelled joint and every other joint: empty


def test_heatmaps_keep_the_max_of_overlapping_people_and_skip_joints_off_the_map():
    two = np.concatenate([person((10, 10, 2)), person((12, 10, 1)), person((64.5, 5, 2)), person((-1, 5, 2))])
    hm = heatmaps(two, res=64)
    assert hm[0, 10, 10] == pytest.approx(1.0) and hm[0, 10, 12] == pytest.approx(1.0)
    assert hm[0, 10, 11] == pytest.approx(math.exp(-1 / 8), rel=1e-6)
    assert hm[0, :, 40:].max() == 0 and hm[0, 5, 0] < 1e-3  # the two off-map joints draw nothing


def test_joint_indices_flat_index_and_packing():
    joints = np.concatenate([person((5, 6, 2), (0, 0, 0), (7.9, 1.2, 1)), person((70, 1, 2), (2, 3, 2))])
    idx = joint_indices(joints, res=16, max_people=30)
    assert idx.shape == (30, NUM_JOINTS, 2)
    assert idx[0, :2].tolist() == [[0 * 256 + 6 * 16 + 5, 1], [2 * 256 + 1 * 16 + 7, 1]]
    assert idx[0, 2:, 1].sum() == 0
    assert idx[1, 0].tolist() == [1 * 256 + 3 * 16 + 2, 1] and idx[1, 1:, 1].sum() == 0  # off-map joint dropped
    assert joint_indices(np.repeat(joints, 20, axis=0), res=16, max_people=30)[:, 0, 1].sum() == 30


# -- losses -------------------------------------------------------------------------------------------------
def official_ae(tags_flat: np.ndarray, joints: np.ndarray) -> tuple[float, float]:
    """The official singleTagLoss ("exp") written as its loops, for one image."""
    means, pull = [], 0.0
    for per_person in joints:
        tmp = [tags_flat[i] for i, v in per_person if v > 0]
        if not tmp:
            continue
        means.append(np.mean(tmp))
        pull += np.mean((np.array(tmp) - means[-1]) ** 2)
    n = len(means)
    if n < 2:
        return 0.0, (pull / n if n else 0.0)
    m = np.array(means)
    push = (np.exp(-((m[:, None] - m[None, :]) ** 2)).sum() - n) / ((n - 1) * n) * 0.5
    return push, pull / n


def two_people_joints(res: int) -> torch.Tensor:
    joints = np.concatenate([person((1, 1, 2), (2, 1, 2), (3, 1, 2)), person((1, 5, 2), (2, 5, 2))])
    return torch.from_numpy(joint_indices(joints, res))[None]


def test_push_is_high_for_equal_tags_and_low_for_separated_ones():
    res = 8
    joints = two_people_joints(res)
    same = torch.zeros(1, NUM_JOINTS, res, res)
    push_same, pull_same = ae_loss(same, joints)
    assert push_same.item() == pytest.approx(0.5) and pull_same.item() == 0  # (4 - 2) / (2 * 1) / 2
    apart = same.clone()
    apart[:, :, 5, :] = 5.0  # the second person's row of pixels gets tag 5, the first keeps 0
    push_apart, pull_apart = ae_loss(apart, joints)
    assert push_apart.item() == pytest.approx(0.5 * math.exp(-25), abs=1e-9) and pull_apart.item() == 0
    spread = apart.clone()
    spread[0, 2, 1, 3] = 1.0  # one joint of person 1 strays from its mean: pull grows
    assert ae_loss(spread, joints)[1].item() > 0.05


def test_ae_loss_matches_the_official_loops_on_random_tags():
    rng = np.random.default_rng(3)
    res = 8
    joints = np.zeros((3, NUM_JOINTS, 3), np.float32)
    joints[..., :2] = rng.uniform(0, res, (3, NUM_JOINTS, 2))
    joints[..., 2] = rng.integers(0, 2, (3, NUM_JOINTS))
    idx = joint_indices(joints, res)
    tags = rng.normal(size=(NUM_JOINTS, res, res)).astype(np.float32)
    push, pull = ae_loss(torch.from_numpy(tags)[None], torch.from_numpy(idx)[None])
    ref_push, ref_pull = official_ae(tags.reshape(-1), idx)
    assert push.item() == pytest.approx(ref_push, rel=1e-5) and pull.item() == pytest.approx(ref_pull, rel=1e-5)
    one = np.zeros_like(idx)
    one[0] = idx[0]
    push1, pull1 = ae_loss(torch.from_numpy(tags)[None], torch.from_numpy(one)[None])
    assert push1.item() == 0 and pull1.item() == pytest.approx(official_ae(tags.reshape(-1), one)[1], rel=1e-5)


def test_loss_is_zero_for_a_perfect_prediction_and_positive_otherwise():
    rng = np.random.default_rng(0)
    joints = np.zeros((2, NUM_JOINTS, 3), np.float32)
    joints[..., :2] = rng.uniform(0, 16, (2, NUM_JOINTS, 2))
    joints[..., 2] = 2
    hm4 = torch.from_numpy(heatmaps(joints, 16))[None]
    hm2 = torch.from_numpy(heatmaps(joints * [2, 2, 1], 32))[None]
    idx = torch.from_numpy(joint_indices(joints, 16))[None]
    tags = torch.zeros(1, NUM_JOINTS, 16, 16)
    for p, tag in enumerate((-3.0, 3.0)):  # each person's joints share one tag, people far apart
        flat = idx[0, p, :, 0][idx[0, p, :, 1] > 0]
        tags.view(-1)[flat] = tag
    mask4, mask2 = torch.ones(1, 16, 16), torch.ones(1, 32, 32)
    perfect = efficienthrnet_loss([torch.cat([hm4, tags], 1), hm2], hm4, hm2, mask4, mask2, idx)
    assert perfect.heatmap4.item() == 0 and perfect.heatmap2.item() == 0 and perfect.pull.item() == 0
    assert perfect.total.item() == pytest.approx(0.0, abs=1e-3 * 1e-15)  # push exp(-36) * 1e-3
    worse = efficienthrnet_loss([torch.cat([hm4 * 0.5, tags], 1), hm2], hm4, hm2, mask4, mask2, idx)
    assert worse.heatmap4.item() > 0 and worse.total.item() > perfect.total.item()


def test_masked_pixels_do_not_count():
    target = torch.zeros(1, NUM_JOINTS, 4, 4)
    pred = target.clone()
    pred[..., 0, 0] = 1.0
    mask = torch.ones(1, 4, 4)
    assert heatmap_loss(pred, target, mask).item() == pytest.approx(1 / 16)
    mask[0, 0, 0] = 0
    assert heatmap_loss(pred, target, mask).item() == 0


# -- data -----------------------------------------------------------------------------------------------------
def test_crowds_and_people_without_keypoints_are_masked(mini):
    ds = KeypointDataset(*mini, 128)
    joints, mask = ds.annotations(CROWDED)
    anns = ds.coco.loadAnns(ds.coco.getAnnIds(imgIds=CROWDED))
    ignored = [a for a in anns if a["iscrowd"] or a["num_keypoints"] == 0]
    labelled = [a for a in anns if not a["iscrowd"] and a["num_keypoints"] > 0]
    assert len(joints) == len(labelled) and any(a["iscrowd"] for a in ignored)
    for ann in ignored:
        assert mask[ds.coco.annToMask(ann) > 0].max() == 0
    for ann in labelled:  # labelled people are learned from, at least where no ignore region covers them
        assert mask[ds.coco.annToMask(ann) > 0].mean() > 0.5
    assert 0.02 < 1 - mask.mean() < 0.5


def test_flip_mirrors_the_targets_and_swaps_left_and_right(mini):
    plain = KeypointDataset(*mini, 128, augment=Augment.off(), image_ids=[SINGLE_PERSON])[0]
    flipped = KeypointDataset(*mini, 128, augment=Augment(0, 1, 1, 0, flip=1.0), image_ids=[SINGLE_PERSON])[0]
    for name in ("heatmaps4", "heatmaps2"):
        res = plain[name].shape[-1]
        for j in range(NUM_JOINTS):
            y, x = np.unravel_index(flipped[name][j].argmax(), (res, res))
            y0, x0 = np.unravel_index(plain[name][FLIP_INDEX[j]].argmax(), (res, res))
            assert y == y0 and abs(x - (res - 1 - x0)) <= 1, (name, j)
    # The picture itself is mirrored too (up to the sub-pixel shift of the flip's pixel-centre convention).
    mirrored = flipped["image"][:, :, ::-1]
    assert np.abs(mirrored - plain["image"]).mean() < 0.2 < np.abs(flipped["image"] - plain["image"]).mean()


def test_augmentation_is_seeded_by_seed_epoch_and_index(mini):
    ds = KeypointDataset(*mini, 64, seed=1, image_ids=[SINGLE_PERSON])
    a, b = ds[0], ds[0]
    ds.set_epoch(1)
    c = ds[0]
    assert np.array_equal(a["image"], b["image"]) and not np.array_equal(a["image"], c["image"])


def test_mosaic_keeps_targets_masks_and_people_inside_their_own_quadrant(mini):
    ds = KeypointDataset(*mini, 128, augment=Augment(mosaic=1.0), seed=3)
    plain = KeypointDataset(*mini, 128, augment=Augment(), seed=3)
    people_seen = 0
    for index in range(6):
        sample = ds[index]
        res = 32
        joints = sample["joints"]
        for person in joints[joints[..., 1].any(-1)]:
            flat = person[person[:, 1] > 0, 0]
            j, yx = flat // (res * res), flat % (res * res)
            ys, xs = yx // res, yx % res
            # every joint of one person sits in one quadrant (the tags' person never spans two pictures) ...
            assert len(set(zip((xs >= res // 2).tolist(), (ys >= res // 2).tolist()))) == 1
            # ... on its own heatmap's peak
            assert np.allclose(sample["heatmaps4"][j, ys, xs], 1.0)
            people_seen += 1
        # the loss mask is 0 only where a picture says so: black mosaic borders outside a warped picture are 0 too
        assert set(np.unique(sample["mask4"])) <= {0.0, 1.0} and sample["mask4"].mean() > 0.3
        assert sample["image"].shape == plain[index]["image"].shape
    assert people_seen > 6  # four pictures a sample: more people than one image gives
    # mosaic off draws nothing extra: the plain pipeline's samples are unchanged
    assert np.array_equal(KeypointDataset(*mini, 128, augment=Augment(mosaic=0.0), seed=3)[2]["image"], plain[2]["image"])


def test_training_refuses_validation_images_in_the_training_set(mini, tmp_path):
    from edgepose.errors import EdgeposeError

    with pytest.raises(EdgeposeError, match="validation images are also in the training set"):
        Trainer(TrainConfig("H-4", *mini, input_size=64, val_ann=str(mini[0]), val_images=str(mini[1])), tmp_path)


# -- learning and resume ----------------------------------------------------------------------------------
@pytest.mark.slow
def test_loss_falls_on_four_real_images(mini, tmp_path):
    cfg = TrainConfig("H-4", str(mini[0]), str(mini[1]), batch=4, input_size=128, limit_images=4, val_every=0,
                      max_rotation=0, min_scale=1, max_scale=1, max_translate=0, flip=0)
    trainer = Trainer(cfg, tmp_path)
    batch = next(iter(trainer.loader(0)))
    losses = [trainer.train_step(batch)["loss"] for _ in range(20)]
    assert all(np.isfinite(losses))
    assert np.mean(losses[-3:]) < 0.7 * np.mean(losses[:3]), losses


@pytest.mark.slow
def test_bf16_steps_match_float32_closely_and_keep_float32_weights(mini, tmp_path):
    cfg = dict(variant="H-4", ann=str(mini[0]), images=str(mini[1]), batch=2, input_size=64, limit_images=2,
               val_every=0, max_rotation=0, min_scale=1, max_scale=1, max_translate=0, flip=0)
    runs = {}
    for bf16 in (False, True):
        trainer = Trainer(TrainConfig(**cfg, bf16=bf16), tmp_path / str(bf16))  # same seed: same init, same drops
        batch = next(iter(trainer.loader(0)))
        runs[bf16] = [trainer.train_step(batch)["loss"] for _ in range(3)]
        assert all(p.dtype == torch.float32 for p in trainer.model.parameters())
    # Autocast really ran (bfloat16 rounding moves the loss) and stayed close to the float32 step.
    assert runs[True][0] != runs[False][0]
    assert runs[True][0] == pytest.approx(runs[False][0], rel=0.02)
    assert runs[True][-1] < runs[True][0]


def read_rows(path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_resume_reproduces_the_uninterrupted_run(mini, tmp_path):
    # Official augmentation and drop-connect on: resume must restore data order, augmentation and RNG.
    cfg = dict(variant="H-4", ann=str(mini[0]), images=str(mini[1]), batch=2, input_size=64, limit_images=4,
               val_every=0, epochs=2)
    whole = Trainer(TrainConfig(**cfg), tmp_path / "whole")
    whole.fit(progress=False)
    first = Trainer(TrainConfig(**{**cfg, "epochs": 1}), tmp_path / "split")
    first.fit(progress=False)
    resumed = Trainer.resume(tmp_path / "split", epochs=2)
    assert resumed.epoch == 1 and resumed.step == 2
    resumed.fit(progress=False, resumed=True)

    a, b = read_rows(tmp_path / "whole" / "steps.csv"), read_rows(tmp_path / "split" / "steps.csv")
    assert [r["step"] for r in b] == ["1", "2", "3", "4"]
    assert [(r["loss"], r["lr"]) for r in a] == [(r["loss"], r["lr"]) for r in b]
    wa, wb = whole.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


# -- command line and export ----------------------------------------------------------------------------------
@pytest.mark.slow
def test_cli_trains_plots_and_the_checkpoint_exports(mini, tmp_path):
    from edgepose.train.export import export_variant

    run = tmp_path / "runs" / "tiny"
    args = ["train", "--variant", "H-4", "--ann", str(mini[0]), "--images", str(mini[1]), "--out", str(run),
            "--epochs", "1", "--batch", "2", "--input-size", "64", "--limit-images", "2", "--val-every", "1",
            "--threads", "1", "--quiet"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "best AP" in result.output
    for name in ("config.json", "steps.csv", "epochs.csv", "last.pt", "best.pt"):
        assert (run / name).is_file(), name
    epochs = read_rows(run / "epochs.csv")
    assert len(epochs) == 1 and 0 <= float(epochs[0]["ap"]) <= 1
    assert len(read_rows(run / "steps.csv")) == 1

    again = CliRunner().invoke(cli, args)
    assert again.exit_code != 0 and "--resume" in str(again.exception)

    # Resume may extend the run and move lr drops it has not reached, nothing else.
    resume = ["train", "--resume", "--out", str(run), "--epochs", "2", "--threads", "1", "--quiet"]
    refused = CliRunner().invoke(cli, resume + ["--milestones", "0"])
    assert refused.exit_code != 0 and "only milestones after epoch 1 can move" in str(refused.exception)
    refused = CliRunner().invoke(cli, resume + ["--lr", "0.1"])
    assert refused.exit_code != 0 and "--lr cannot change on --resume" in str(refused.exception)
    result = CliRunner().invoke(cli, resume + ["--milestones", "1"])
    assert result.exit_code == 0, result.output
    assert [float(r["lr"]) for r in read_rows(run / "epochs.csv")] == [1e-3, 1e-4]
    saved = json.loads((run / "config.json").read_text())
    assert saved["epochs"] == 2 and saved["milestones"] == [1]

    result = CliRunner().invoke(cli, ["train", "diagnose", str(run), "--threads", "1"])
    assert result.exit_code == 0, result.output
    assert " 2 images, " in result.output and "ground-truth tags" in result.output  # the run's 2 images

    result = CliRunner().invoke(cli, ["train", "plot", str(run)])
    assert result.exit_code == 0, result.output
    png = (run / "curves.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000

    xml = export_variant("H-4", tmp_path / "ir", weights=run / "best.pt")
    card = json.loads((tmp_path / "ir" / "model.json").read_text())
    assert xml.is_file() and card["weights"].startswith("checkpoint:best.pt")
    assert card["input_size"] == 64 and card["test_short_side"] == 64  # the runtime tests at the trained size


def test_cli_new_run_needs_data_options(tmp_path):
    result = CliRunner().invoke(cli, ["train", "--variant", "H-4", "--out", str(tmp_path / "r")])
    assert result.exit_code != 0 and "--ann" in str(result.exception)


# -- diagnosis ------------------------------------------------------------------------------------------------
class SilentNetwork(torch.nn.Module):
    """Outputs of EfficientHRNet's shapes, all zero: no joint found, every tag equal."""

    def forward(self, x):
        n, _, h, w = x.shape
        return x.new_zeros(n, 2 * NUM_JOINTS, h // 4, w // 4), x.new_zeros(n, NUM_JOINTS, h // 2, w // 2)


@pytest.mark.slow
def test_diagnosis_swaps_in_ground_truth_heatmaps_and_tags_separately(mini):
    from edgepose.train.diagnose import diagnose

    result = diagnose(SilentNetwork(), mini[0], mini[1], short=256)
    assert result.images == 32 and result.people == 98
    ap = {case: m["AP"] for case, m in result.ap.items()}
    assert ap["both ground truth"] >= 0.95  # the decoder's ceiling at this input size
    assert ap["network as is"] == 0 and ap["ground-truth tags"] == 0  # nothing to group without heatmaps
    # Perfect joints with one tag for everybody: people in the same image merge, so only part of AP is left.
    assert 0 < ap["ground-truth heatmaps"] < ap["both ground truth"] - 0.2
    assert result.peak_median == 0 and result.detected == 0 and result.tag_gap_median == 0
    assert "both ground truth" in result.report()
