"""EfficientHRNet H0..H-4 in torch against the official implementation's measured facts.

The manifests (../shared/docs/official/H*.state_dict.tsv) list the official model's state_dict keys and shapes;
the true params/MACs in edgepose.variants were measured on the official code (summary.md).
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from conftest import shared_path  # noqa: E402

from edgepose.train import build_model, count_params_macs, load_official_state_dict  # noqa: E402
from edgepose.train.model import same_padding  # noqa: E402
from edgepose.variants import VARIANTS, get_variant  # noqa: E402

NAMES = list(VARIANTS)

# summary.md, section 1: the split of the true MACs and the backbone's params.
OFFICIAL_SPLIT = {  # variant: (Conv2d MACs, ConvTranspose2d MACs, backbone params)
    "H0": (23_404_638_720, 553_648_128, 3_595_388),
    "H-1": (12_770_576_048, 359_424_000, 3_050_752),
    "H-2": (6_798_143_800, 231_813_120, 2_125_854),
    "H-3": (3_608_944_417, 150_039_552, 1_602_678),
    "H-4": (1_708_389_792, 99_090_432, 993_186),
}


def manifest(name: str) -> list[tuple[str, tuple[int, ...]]]:
    path = shared_path("docs", "official", f"{name}.state_dict.tsv")
    rows = []
    for line in path.read_text().splitlines():
        key, shape = line.split("\t")
        rows.append((key, tuple(int(d) for d in shape.split(",")) if shape else ()))
    return rows


def meta_model(name: str):
    with torch.device("meta"):
        return build_model(name)


@pytest.mark.parametrize("name", NAMES)
def test_true_params_and_macs_match_official(name):
    v = get_variant(name)
    counts = count_params_macs(v)
    conv, deconv, backbone = OFFICIAL_SPLIT[name]
    assert counts.input_hw == (v.input_size, v.input_size)
    assert counts.params == v.true_params  # exact, well inside the 0.5 % the issue allows
    assert counts.macs == v.true_macs
    assert (counts.conv_macs, counts.deconv_macs, counts.linear_macs) == (conv, deconv, 0)
    assert counts.params_by_part["backbone"] == backbone
    # The paper's figures are the summary tool's inflated ones: larger than the truth by 6-26 %.
    assert v.paper.params > counts.params * 1.15 and v.paper.flops > counts.macs * 1.06


def test_counting_a_real_module_matches_meta_and_restores_its_mode():
    model = build_model("H-4").train()
    counts = count_params_macs(model, (128, 192))
    assert model.training
    assert counts == count_params_macs("H-4", (128, 192))
    # The head's MACs scale with the pixel count exactly; the SE convs (on pooled 1x1 maps) do not.
    square = count_params_macs("H-4", (384, 384))
    assert counts.macs_by_part["head"] * 384 * 384 == square.macs_by_part["head"] * 128 * 192
    assert counts.macs * 384 * 384 > square.macs * 128 * 192


def test_counting_a_plain_module_needs_an_input_size():
    with pytest.raises(ValueError, match="input_hw is required"):
        count_params_macs(torch.nn.Conv2d(3, 8, 3))
    lin = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.Flatten(), torch.nn.Linear(4 * 2 * 2, 5))
    counts = count_params_macs(lin, (2, 2))
    assert (counts.conv_macs, counts.linear_macs, counts.params) == (4 * 3 * 4, 16 * 5, 16 + 85)


@pytest.mark.parametrize("name", NAMES)
def test_state_dict_matches_official_manifest_in_order(name):
    ours = [(k, tuple(t.shape)) for k, t in meta_model(name).state_dict().items()]
    assert ours == manifest(name)


def synthetic_checkpoint(name: str) -> dict[str, torch.Tensor]:
    """Random tensors of every manifest shape, as an official checkpoint would hold them."""
    gen = torch.Generator().manual_seed(7)
    return {
        key: torch.randint(0, 1000, shape, generator=gen) if key.endswith("num_batches_tracked") and not shape
        else torch.randn(shape, generator=gen)
        for key, shape in manifest(name)
    }


@pytest.mark.parametrize("name", NAMES)
def test_official_state_dict_lands_bit_identical(name):
    given = synthetic_checkpoint(name)
    model = build_model(name)
    with torch.no_grad():  # poison every tensor, so an unset one cannot pass by chance
        for t in model.state_dict().values():
            t.fill_(-12345)
    load_official_state_dict(model, given)
    loaded = model.state_dict()
    assert loaded.keys() == given.keys()
    for key, tensor in given.items():
        assert torch.equal(loaded[key], tensor), key
    assert loaded["final_layers.1.bias"].shape == (17,)


@pytest.mark.parametrize("wrap", ["plain", "module_prefix", "ddp_checkpoint", "best_state_dict"])
def test_official_checkpoint_layouts(wrap):
    given = synthetic_checkpoint("H-4")
    prefixed = {f"module.{k}": v for k, v in given.items()}
    obj = {
        "plain": given,
        "module_prefix": prefixed,
        "ddp_checkpoint": {"epoch": 3, "perf": 0.1, "state_dict": prefixed, "optimizer": {}},
        "best_state_dict": {"epoch": 3, "state_dict": {k: v + 1 for k, v in prefixed.items()}, "best_state_dict": given},
    }[wrap]
    model = build_model("H-4")
    load_official_state_dict(model, obj)
    assert torch.equal(model.state_dict()["deconv_layers.0.0.0.weight"], given["deconv_layers.0.0.0.weight"])


def load_error(given, **kw) -> str:
    model = build_model("H-4")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError) as err:
        load_official_state_dict(model, given, **kw)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items()), "a failed load changed the model"
    return str(err.value)


def test_missing_unexpected_and_mismatched_keys_are_named():
    given = synthetic_checkpoint("H-4")
    del given["stage4.1.fuse_layers.0.3.0.weight"]
    given["stage4.2.branches.0.0.conv1.weight"] = torch.zeros(14, 14, 3, 3)
    given["trans1_branch1.0.weight"] = torch.zeros(20, 16, 3, 3)
    msg = load_error(given)
    assert msg.startswith("checkpoint does not fit H-4")
    assert "1 missing keys: stage4.1.fuse_layers.0.3.0.weight" in msg
    assert "1 unexpected keys: stage4.2.branches.0.0.conv1.weight" in msg
    assert "trans1_branch1.0.weight [20, 16, 3, 3] (ours [14, 16, 3, 3])" in msg
    assert msg.endswith("Check that the checkpoint is an EfficientHRNet of the same variant.")


def test_wrong_variant_lists_a_bounded_number_of_keys():
    msg = load_error(synthetic_checkpoint("H-3"))
    assert "unexpected keys" in msg and "shape mismatches" in msg and "more)" in msg
    assert msg.endswith("The checkpoint is an EfficientHRNet H-3: use variant H-3.")
    assert len(msg) < 2500


def test_non_tensor_entries_are_refused():
    assert "not a tensor" in load_error({"epoch": 3, "model": "higher_hrnet"})


def test_stride2_tag_head_needs_the_flag():
    given = synthetic_checkpoint("H-4")
    given["final_layers.1.weight"] = torch.randn(34, 14, 1, 1)
    given["final_layers.1.bias"] = torch.randn(34)
    assert "drop_stride2_tags=True" in load_error(given)
    model = build_model("H-4")
    load_official_state_dict(model, given, drop_stride2_tags=True)
    assert torch.equal(model.final_layers[1].weight, given["final_layers.1.weight"][:17])
    assert torch.equal(model.final_layers[1].bias, given["final_layers.1.bias"][:17])


@pytest.mark.parametrize("name", NAMES)
def test_non_square_output_shapes(name):
    v = get_variant(name)
    model = build_model(v).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 64, 128))
    assert [tuple(o.shape) for o in out] == [tuple(s) for s in v.output_shapes(64, 128)]
    assert [tuple(s) for s in v.output_shapes(64, 128)] == [(1, 34, 16, 32), (1, 17, 32, 64)]
    # The nominal size on the meta device (no arithmetic): summary.md's official output shapes.
    with torch.no_grad():
        meta = meta_model(name)(torch.zeros(1, 3, v.input_size, v.input_size, device="meta"))
    assert [tuple(o.shape) for o in meta] == [tuple(s) for s in v.output_shapes()]


def test_asymmetric_same_padding():
    assert same_padding(3, 2) == (0, 1, 0, 1)
    assert same_padding(3, 1) == (1, 1, 1, 1)
    assert same_padding(5, 2) == (1, 2, 1, 2)
    assert same_padding(5, 1) == (2, 2, 2, 2)
    assert same_padding(1, 1) == (0, 0, 0, 0)


def test_training_step_uses_drop_connect_and_reaches_every_parameter():
    torch.manual_seed(0)
    model = build_model("H-4").train()
    x = torch.randn(2, 3, 64, 64)
    out0, out1 = model(x)
    (out0.square().mean() + out1.square().mean()).backward()
    assert all(p.grad is not None for p in model.parameters())
    # Drop-connect makes training forwards stochastic; eval is deterministic.
    with torch.no_grad():
        again = model(x)[0]
        model.eval()
        a, b = model(x)[0], model(x)[0]
    assert not torch.equal(again, out0.detach()) and torch.equal(a, b)


def test_model_cards_are_rendered_from_the_verified_numbers():
    """models/*.md are generated (python -m edgepose.train.cards models); regenerate after changing the table."""
    from conftest import REPO

    from edgepose.train.cards import render_cards

    for rel, text in render_cards().items():
        path = REPO / "models" / rel
        assert path.read_text() == text, f"{path} is stale: run python -m edgepose.train.cards models"
    family = (REPO / "models" / "README.md").read_text()
    assert "19,725,359" in family and "2,764,706" in family and "get_model_summary" in family
