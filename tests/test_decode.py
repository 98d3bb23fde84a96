"""The Numba decoder against the NumPy/scipy reference, plus aggregation, flip merge, OMZ adapter and input errors."""

from __future__ import annotations

import numpy as np
import pytest
from pose_render import synthetic_frame
from reference_decoder import reference_group
from scipy.ndimage import maximum_filter
from scipy.optimize import linear_sum_assignment as scipy_lsa

from edgepose.decode import (
    GroupingParams,
    aggregate_outputs,
    decode,
    flip_back,
    flip_merge,
    from_omz,
    group,
    resize_bilinear,
)
from edgepose.assignment import linear_sum_assignment
from edgepose.types import FLIP_INDEX, NetOutput

# GroupingParams field -> reference_group keyword
_REF_NAMES = {"adjust": "adjust_on", "refine": "refine_on", "top_k": "top_k_count"}


def assert_same(heatmaps, tags, **params):
    poses = group(heatmaps, tags, **params)
    xy, conf, score = reference_group(heatmaps, tags, **{_REF_NAMES.get(k, k): v for k, v in params.items()})
    assert len(poses) == len(xy), f"{len(poses)} people vs reference {len(xy)}"
    np.testing.assert_allclose(poses.xy, xy, atol=1e-4)
    np.testing.assert_allclose(poses.conf, conf, atol=1e-6)
    np.testing.assert_allclose(poses.score, score, rtol=1e-6, atol=1e-7)
    return poses


def _random_case(rng, case):
    """Inputs that stress different parts: dense random peaks, quantised values (ties), network-like frames."""
    dims = 1 + case % 3
    if case % 3 == 0:
        h, w = rng.integers(1, 40, 2)
        return rng.random((17, h, w), dtype=np.float32), rng.random((17, h, w, dims), dtype=np.float32) * 3
    if case % 3 == 1:
        h, w = rng.integers(2, 30, 2)
        heat = rng.integers(0, 3, (17, h, w)).astype(np.float32) / 2
        return heat, rng.integers(0, 4, (17, h, w, dims)).astype(np.float32)
    heat, tags, _ = synthetic_frame(rng, int(rng.integers(1, 25)), (72, 56), tag_dims=dims)
    return heat, tags


@pytest.mark.parametrize("seed", range(6))
def test_matches_reference_on_random_inputs(seed):
    rng = np.random.default_rng(seed)
    for case in range(30):
        heat, tags = _random_case(rng, case)
        assert_same(heat, tags)


@pytest.mark.parametrize("seed", range(3))
def test_refinement_ties_across_segments_match_reference(seed):
    """Maps several row segments wide with quantised heatmaps (dense, and sparse: mostly exact zeros) and
    half-integer tags, so refinement meets equal scores in different segments and rounding ties (distance k + 0.5):
    the first pixel in row-major order must win, as np.argmax, whatever order the map is searched in."""
    rng = np.random.default_rng(100 + seed)
    for case in range(6):
        h, w = rng.integers(20, 90, 2)
        heat = rng.integers(0, 3, (17, h, w)).astype(np.float32) / 2
        if case % 2:
            heat *= rng.random(heat.shape) < 0.02
        tags = rng.integers(0, 7, (17, h, w, 1 + case % 3)).astype(np.float32) / 2
        assert_same(heat, tags)


@pytest.mark.parametrize(
    "params",
    [
        {"adjust": False},
        {"refine": False},
        {"use_detection_val": False},
        {"max_people": 3},
        {"max_people": 4, "ignore_too_much": True},
        {"top_k": 5, "detection_threshold": 0.3},
        {"nms_kernel": 3, "tag_threshold": 0.5},
        {"nms_kernel": 1, "joint_order": tuple(range(17))},
    ],
)
def test_matches_reference_with_parameters(params):
    rng = np.random.default_rng(7)
    for case in range(12):
        heat, tags = _random_case(rng, case)
        assert_same(heat, tags, **params)


def test_three_dimensional_tags_equal_one_dimensional():
    rng = np.random.default_rng(3)
    heat, tags, _ = synthetic_frame(rng, 6, (64, 48))
    a = group(heat, tags[..., 0])
    b = group(heat, tags)
    np.testing.assert_array_equal(a.xy, b.xy)
    np.testing.assert_array_equal(a.score, b.score)


def test_well_separated_people_are_recovered():
    rng = np.random.default_rng(11)
    heat, tags, joints = synthetic_frame(rng, 1, (96, 80), missing=0.0, noise=0.0)
    poses = group(heat, tags)
    assert len(poses) == 1
    assert (poses.conf[0] > 0.5).all()
    np.testing.assert_allclose(poses.xy[0], joints[0, :, :2], atol=0.5)


def test_linear_sum_assignment_is_optimal_and_matches_scipy():
    rng = np.random.default_rng(0)
    for case in range(400):
        nr, nc = rng.integers(1, 12, 2)
        if case % 3 == 0:  # the decoder's cost: many exact ties
            cost = np.rint(rng.random((nr, nc)) * 3) * 100 - rng.random((nr, 1))
        elif case % 3 == 1:
            cost = rng.integers(0, 3, (nr, nc)).astype(float)
        else:  # 1-D tag distances: different optimal matchings whose totals differ only by rounding
            cost = np.abs(rng.random((nr, 1)) * 3 - rng.random((1, nc)) * 3)
        rows, cols = scipy_lsa(cost)
        got = linear_sum_assignment(cost)
        assert (got >= 0).sum() == min(nr, nc)
        assert cost[np.flatnonzero(got >= 0), got[got >= 0]].sum() == pytest.approx(cost[rows, cols].sum())
        expected = np.full(nr, -1)
        expected[rows] = cols
        np.testing.assert_array_equal(got, expected)


def test_decode_scales_to_frame_pixels():
    rng = np.random.default_rng(5)
    heat, tags, _ = synthetic_frame(rng, 4, (60, 80))
    poses = group(heat, tags)
    framed = decode(NetOutput(heat, tags, scale=(4.0, 3.0)))
    np.testing.assert_allclose(framed.xy, poses.xy * np.array([4.0, 3.0], np.float32))
    np.testing.assert_array_equal(framed.score, poses.score)


def test_omz_adapter_decodes_like_raw_heatmaps():
    rng = np.random.default_rng(9)
    heat, tags, _ = synthetic_frame(rng, 8, (72, 72))
    peak = heat == maximum_filter(heat, size=(1, 5, 5), mode="constant", cval=-np.inf)
    omz = from_omz(np.where(peak, heat, -heat)[None], tags[None], scale=(2.0, 2.0))
    assert omz.nms_applied and omz.tags.shape == (17, 72, 72, 1)
    got = decode(omz)
    want = group(heat, tags).scaled(2.0, 2.0)
    np.testing.assert_array_equal(got.xy, want.xy)
    np.testing.assert_array_equal(got.conf, want.conf)


@pytest.mark.slow
def test_omz_ir_output_is_peak_preserving_nms(omz_model):
    """The real OMZ topology's heatmaps keep 5x5 maxima and negate the rest, as the adapter assumes."""
    ov = pytest.importorskip("openvino")
    compiled = ov.Core().compile_model(str(omz_model), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    image = np.random.default_rng(0).integers(0, 255, (1, 3, 288, 288)).astype(np.float32)
    result = compiled(image)
    heat = result[compiled.output("heatmaps")]
    emb = result[compiled.output("embeddings")]
    out = from_omz(heat, emb)
    restored = np.abs(out.heatmaps)
    is_max = restored >= maximum_filter(restored, size=(1, 5, 5), mode="constant", cval=-np.inf)
    positive = out.heatmaps > 0
    assert positive.any()
    assert not (positive & ~is_max).any(), "a positive pixel that is not a 5x5 maximum"
    decode(out)  # decodes without error


@pytest.mark.parametrize(
    ("heatmaps", "tags", "message"),
    [
        (np.zeros((16, 8, 8)), np.zeros((16, 8, 8)), "heatmaps must have shape"),
        (np.zeros((17, 8)), np.zeros((17, 8)), "heatmaps must have shape"),
        (np.zeros((17, 8, 8)), np.zeros((17, 8, 9)), "tags must have shape"),
        (np.zeros((17, 8, 8)), np.zeros((17, 8, 8, 1, 1)), "tags must have shape"),
        (np.full((17, 8, 8), np.nan), np.zeros((17, 8, 8)), "heatmaps contain NaN"),
        (np.zeros((17, 8, 8)), np.full((17, 8, 8), np.inf), "tags contain NaN"),
        (np.zeros((17, 0, 8)), np.zeros((17, 0, 8)), "must not be empty"),
    ],
)
def test_bad_input_raises_value_error(heatmaps, tags, message):
    with pytest.raises(ValueError, match=message):
        group(heatmaps, tags)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("nms_applied", [False, True])
def test_one_non_finite_heatmap_value_anywhere_raises(bad, nms_applied):
    """The heatmaps' finiteness is checked by the candidate scan: one bad value in the last joint's last row,
    past every peak and in a tile below the threshold, must still be found, with the network's NMS or without."""
    heat, tags, _ = synthetic_frame(np.random.default_rng(7), 3, (40, 70))
    heat[16, 39, 69] = bad
    out = NetOutput(np.where(heat > 0.9, heat, -heat) if nms_applied else heat, tags, nms_applied=nms_applied)
    with pytest.raises(ValueError, match="heatmaps contain NaN or infinite values"):
        decode(out)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
@pytest.mark.parametrize("where", ["joint nobody has", "joint everybody has", "at a peak"])
@pytest.mark.parametrize("refine", [True, False])
@pytest.mark.parametrize("dims", [1, 2])
def test_one_non_finite_tag_value_anywhere_raises(bad, where, refine, dims):
    """The tags' finiteness is checked by whichever pass reads them whole: refinement's tag boxes for a joint
    someone lacks, a plain pass for the other joints and without refinement, and before matching at the peaks.
    One bad value in the last pixel of a map (or on a peak) must be found on every path."""
    heat, tags, _ = synthetic_frame(np.random.default_rng(3), 3, (40, 70), missing=0.0, noise=0.0, tag_dims=dims)
    heat[5] *= 0.05  # below the detection threshold: every person lacks joint 5, refinement fills it
    complete = group(heat, tags)
    assert len(complete) == 3 and (complete.conf[:, 0] > 0.1).all() and (complete.conf[:, 5] < 0.1).all()
    if where == "at a peak":
        tags[3].reshape(-1, dims)[np.argmax(heat[3])] = bad
    else:
        tags[5 if where == "joint nobody has" else 0, 39, 69] = bad
    with pytest.raises(ValueError, match="tags contain NaN or infinite values"):
        group(heat, tags, refine=refine)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"nms_kernel": 4}, "nms_kernel"),
        ({"top_k": 0}, "top_k"),
        ({"detection_threshold": -0.1}, "detection_threshold"),
        ({"tag_threshold": float("nan")}, "tag_threshold"),
        ({"joint_order": (0,) * 17}, "joint_order"),
        ({"colour": 1}, "unknown grouping parameter"),
    ],
)
def test_bad_parameters_raise(overrides, message):
    with pytest.raises(ValueError, match=message):
        group(np.zeros((17, 4, 4)), np.zeros((17, 4, 4)), **overrides)


def test_default_parameters_are_the_official_test_settings():
    p = GroupingParams()
    assert (p.nms_kernel, p.top_k, p.detection_threshold, p.tag_threshold, p.max_people) == (5, 30, 0.1, 1.0, 30)
    assert (p.use_detection_val, p.ignore_too_much, p.adjust, p.refine) == (True, False, True, True)
    assert p.joint_order == (0, 1, 2, 3, 4, 5, 6, 11, 12, 7, 8, 9, 10, 13, 14, 15, 16)


def test_resize_bilinear_matches_torch_interpolate():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    maps = rng.random((17, 13, 19), dtype=np.float32)
    for size in [(26, 38), (40, 31), (7, 9)]:
        want = torch.nn.functional.interpolate(
            torch.from_numpy(maps)[None], size=size, mode="bilinear", align_corners=False
        )[0].numpy()
        np.testing.assert_allclose(resize_bilinear(maps, size), want, atol=1e-5)


def test_aggregate_outputs_averages_resolutions():
    rng = np.random.default_rng(1)
    coarse = rng.random((17, 8, 10), dtype=np.float32)
    fine = rng.random((17, 16, 20), dtype=np.float32)
    tags = rng.random((17, 8, 10), dtype=np.float32)
    heat, tags_up = aggregate_outputs([coarse, fine], tags)
    assert heat.shape == (17, 16, 20) and tags_up.shape == (17, 16, 20, 1)
    np.testing.assert_allclose(heat, (resize_bilinear(coarse, (16, 20)) + fine) / 2, atol=1e-6)
    np.testing.assert_allclose(tags_up[..., 0], resize_bilinear(tags, (16, 20)), atol=1e-6)
    with pytest.raises(ValueError, match="at least one"):
        aggregate_outputs([], tags)


def test_flip_merge_of_mirrored_outputs():
    """A mirror-symmetric input: the flipped network output, flipped back, equals the plain one."""
    rng = np.random.default_rng(2)
    heat, tags, _ = synthetic_frame(rng, 3, (40, 48))
    out = NetOutput(heat, tags, scale=(2.0, 2.0))
    mirrored = NetOutput(
        np.ascontiguousarray(heat[list(FLIP_INDEX), :, ::-1]), np.ascontiguousarray(tags[list(FLIP_INDEX), :, ::-1])
    )
    np.testing.assert_array_equal(flip_back(mirrored).heatmaps, heat)
    merged = flip_merge(out, mirrored)
    np.testing.assert_allclose(merged.heatmaps, heat, atol=1e-6)
    assert merged.tags.shape == (17, 40, 48, 2) and merged.scale == (2.0, 2.0)
    np.testing.assert_array_equal(merged.tags[..., 1], tags[..., 0])
    # Two identical tag dimensions are the same grouping as one, at sqrt(2) times the distance: still close.
    assert len(decode(merged)) == len(decode(out))
    with pytest.raises(ValueError, match="equal shapes"):
        flip_merge(out, NetOutput(heat[:, :20], tags[:, :20]))
    with pytest.raises(ValueError, match="raw heatmaps"):
        flip_merge(out, NetOutput(heat, tags, nms_applied=True))
