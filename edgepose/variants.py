"""EfficientHRNet H0..H-4 and their compact EfficientNet backbones B0..B-4 as data.

One frozen row per variant and per backbone; the torch builder in ``edgepose.train.model`` reads a row and nothing else.
No torch here: the runtime, the registry and ``edgepose models info`` use this table without the train extra.

Numbers follow the official implementation (TeCSAR-UNCC/EfficientHRNet, see models/README.md):
  * backbone: EfficientNet-B0's stage table scaled by the configs' WIDTH_MULT / DEPTH_MULT, rounded as that
    code rounds (``round_channels`` / ``round_repeats`` below);
  * HRNet branch widths: ceil(c * 1.2455**phi) for c = 32, 64, 128, 256 (the paper writes 1.25**phi, the
    configs use 1.2455, which gives the paper's Table 1 widths);
  * "true" params/MACs are what the official model measures with hooks over Conv2d/ConvTranspose2d; the
    paper's Table 3 figures come from a summary tool that double counts (see ``paper_params``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# EfficientNet-B0 stages: (expand ratio t, channels c, repeats n, first stride s, kernel k).
B0_STAGES: tuple[tuple[int, int, int, int, int], ...] = (
    (1, 16, 1, 1, 3),
    (6, 24, 2, 2, 3),
    (6, 40, 2, 2, 5),
    (6, 80, 3, 2, 3),
    (6, 112, 3, 1, 5),
    (6, 192, 4, 2, 5),
    (6, 320, 1, 1, 3),
)
B0_STEM = 32
B0_HEAD = 1280  # the classifier's 1x1 conv before pooling (backbone training only; pose models stop before it)
B0_RESOLUTION = 224
SE_RATIO = 0.25  # squeeze-excite width: a quarter of the block's *input* channels (official code)
# Backbone stages whose last block feeds HRNet branches 1..4 (strides 4, 8, 16, 32).
TAP_STAGES = (1, 2, 4, 6)
BRANCH_BASE = (32, 64, 128, 256)
BRANCH_SCALE = 1.2455
NUM_JOINTS = 17


def round_channels(c: int, width_mult: float, divisor: int = 8) -> int:
    """Scale a channel count and round it to a multiple of ``divisor`` without losing more than 10 %."""
    if width_mult == 1.0:
        return c
    scaled = c * width_mult
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * scaled:
        rounded += divisor
    return rounded


def round_repeats(n: int, depth_mult: float) -> int:
    return n if depth_mult == 1.0 else int(math.ceil(n * depth_mult))


@dataclass(frozen=True)
class BackboneStage:
    expand: int
    channels: int
    repeats: int
    stride: int
    kernel: int


def _padded_output(size: int, kernel: int, stride: int) -> int:
    """Output side of a conv with the models' fixed padding of max(kernel - stride, 0) pixels (official code)."""
    return (size + max(kernel - stride, 0) - kernel) // stride + 1


@dataclass(frozen=True)
class Table2Figures:
    """Table 2 of the paper: compact EfficientNets on ImageNet and CIFAR-100 (Top-1 in %, sizes as printed)."""

    input_size: int
    imagenet_params: float
    imagenet_flops: float
    imagenet_top1: float
    cifar_params: float
    cifar_flops: float
    cifar_top1: float


@dataclass(frozen=True)
class Backbone:
    """A compact EfficientNet B{phi}: B0 scaled by d = 1.2**phi, w = 1.1**phi, r = 1.15**phi (paper eq. 4).

    ``width_mult``/``depth_mult`` are the official configs' rounded constants (0.909, 0.833, ...), so that B-k is
    exactly the backbone of H-k and its weights load into it; a test checks them against 1.1**phi / 1.2**phi.
    """

    name: str
    phi: int
    width_mult: float
    depth_mult: float
    paper: Table2Figures

    @property
    def resolution(self) -> int:
        """ceil(224 * 1.15**phi), the paper's rule (its Table 2 prints 145 and 128 for B-3 and B-4 instead)."""
        return int(math.ceil(B0_RESOLUTION * 1.15**self.phi - 1e-9))

    @property
    def stem_channels(self) -> int:
        return round_channels(B0_STEM, self.width_mult)

    @property
    def head_channels(self) -> int:
        return round_channels(B0_HEAD, self.width_mult)

    @property
    def stages(self) -> tuple[BackboneStage, ...]:
        return tuple(
            BackboneStage(t, round_channels(c, self.width_mult), round_repeats(n, self.depth_mult), s, k)
            for t, c, n, s, k in B0_STAGES
        )

    def blocks(self) -> list[tuple[int, int, int, int, int]]:
        """Every MBConv block as (input channels, output channels, expand, kernel, stride), in order."""
        out, cin = [], self.stem_channels
        for st in self.stages:
            for r in range(st.repeats):
                out.append((cin, st.channels, st.expand, st.kernel, st.stride if r == 0 else 1))
                cin = st.channels
        return out

    def count(self, num_classes: int = 1000, resolution: int | None = None) -> tuple[int, int]:
        """(params, MACs) of the classifier (stem, blocks, head conv, FC) at a square ``resolution``, counted
        as ``edgepose.train.counting`` counts (BN weights and biases are params; only conv/linear MACs)."""
        side = _padded_output(resolution or self.resolution, 3, 2)
        c0 = self.stem_channels
        params, macs = 27 * c0 + 2 * c0, side * side * 27 * c0
        for cin, cout, t, k, s in self.blocks():
            hidden, se = cin * t, max(1, int(cin * SE_RATIO))
            if t != 1:
                params += cin * hidden + 2 * hidden
                macs += side * side * cin * hidden
            side = _padded_output(side, k, s)
            params += k * k * hidden + 2 * hidden  # depthwise + BN
            params += (hidden * se + se) + (se * hidden + hidden)  # squeeze-excite convs with bias
            params += hidden * cout + 2 * cout  # projection + BN
            macs += side * side * (k * k * hidden + hidden * cout) + 2 * hidden * se
        head = self.head_channels
        params += self.blocks()[-1][1] * head + 2 * head + head * num_classes + num_classes
        macs += side * side * self.blocks()[-1][1] * head + head * num_classes
        return params, macs


@dataclass(frozen=True)
class PaperFigures:
    """Table 3 of the paper (COCO val2017, AP in %), and its (inflated) size figures."""

    ap: float
    ap50: float
    ap75: float
    ap_multi: float
    ap50_multi: float
    ap75_multi: float
    params: float  # as printed, e.g. 23.3e6
    flops: float  # as printed, e.g. 25.6e9 (a multiply-add count)


@dataclass(frozen=True)
class Variant:
    name: str
    phi: int
    input_size: int
    stage_modules: tuple[int, int, int]  # HR modules in stages 2, 3, 4
    paper: PaperFigures
    true_params: int  # official implementation, sum of parameter numel
    true_macs: int  # official implementation, Conv2d + ConvTranspose2d multiply-adds at input_size
    blocks_per_branch: int = 2
    head_blocks: int = 2  # BasicBlocks after the deconvolution
    deconv_kernel: int = 4
    output_strides: tuple[int, int] = (4, 2)  # output 0: heatmaps + tags, output 1: heatmaps

    @property
    def backbone_net(self) -> Backbone:
        """The compact EfficientNet this variant is built on (B-k for H-k)."""
        return BACKBONES[f"B{self.phi}"]

    @property
    def width_mult(self) -> float:
        return self.backbone_net.width_mult

    @property
    def depth_mult(self) -> float:
        return self.backbone_net.depth_mult

    @property
    def stem_channels(self) -> int:
        return self.backbone_net.stem_channels

    @property
    def backbone(self) -> tuple[BackboneStage, ...]:
        return self.backbone_net.stages

    @property
    def tap_indices(self) -> tuple[int, ...]:
        """Indices into the backbone's block list (stem = 0) whose outputs feed the four branches."""
        ends, i = [], 0
        for stage in self.backbone:
            i += stage.repeats
            ends.append(i)
        return tuple(ends[s] for s in TAP_STAGES)

    @property
    def tap_channels(self) -> tuple[int, ...]:
        return tuple(self.backbone[s].channels for s in TAP_STAGES)

    @property
    def branch_widths(self) -> tuple[int, int, int, int]:
        return tuple(int(math.ceil(c * BRANCH_SCALE**self.phi)) for c in BRANCH_BASE)  # type: ignore[return-value]

    @property
    def head_width(self) -> int:
        return self.branch_widths[0]

    @property
    def test_short_side(self) -> int:
        """Short side at test time: the official code rounds the input size up to a multiple of 64."""
        return int(math.ceil(self.input_size / 64) * 64)

    def output_shapes(self, height: int | None = None, width: int | None = None) -> tuple[tuple[int, ...], ...]:
        """Network output shapes (N, C, H, W) for an input of height x width (default: square input_size)."""
        h = height or self.input_size
        w = width or self.input_size
        s0, s1 = self.output_strides
        return (1, 2 * NUM_JOINTS, h // s0, w // s0), (1, NUM_JOINTS, h // s1, w // s1)


def _paper(ap, ap50, ap75, apm, apm50, apm75, params, flops) -> PaperFigures:
    return PaperFigures(ap, ap50, ap75, apm, apm50, apm75, params, flops)


BACKBONES: dict[str, Backbone] = {
    b.name: b
    for b in (
        Backbone("B0", 0, 1.0, 1.0, Table2Figures(224, 5.3e6, 0.4e9, 75.0, 4.1e6, 0.4e9, 81.9)),
        Backbone("B-1", -1, 0.909, 0.833, Table2Figures(195, 4.5e6, 0.3e9, 73.8, 3.5e6, 0.3e9, 81.4)),
        Backbone("B-2", -2, 0.826, 0.694, Table2Figures(170, 3.4e6, 0.2e9, 71.3, 2.5e6, 0.2e9, 79.8)),
        Backbone("B-3", -3, 0.751, 0.578, Table2Figures(145, 2.8e6, 0.1e9, 68.5, 1.9e6, 0.1e9, 78.2)),
        Backbone("B-4", -4, 0.684, 0.483, Table2Figures(128, 1.3e6, 0.05e9, 65.6, 1.3e6, 0.05e9, 74.3)),
    )
}


def get_backbone(name: str) -> Backbone:
    """Look a backbone up by name; accepts 'B-4', 'b-4', 'B4' and 'b4' alike."""
    key = name.strip().upper()
    if key.startswith("B") and key[1:].isdigit() and key != "B0":
        key = "B-" + key[1:]
    try:
        return BACKBONES[key]
    except KeyError:
        raise ValueError(f"unknown backbone {name!r}: choose one of {', '.join(BACKBONES)}") from None


VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant("H0", 0, 512, (1, 4, 3), _paper(64.8, 85.3, 70.7, 68.1, 87.0, 74.1, 23.3e6, 25.6e9),
                19_725_359, 23_958_286_848),
        Variant("H-1", -1, 480, (1, 3, 3), _paper(59.2, 82.6, 64.0, 63.2, 84.3, 68.6, 16.0e6, 14.2e9),
                13_004_446, 13_130_000_048),
        Variant("H-2", -2, 448, (1, 2, 3), _paper(52.9, 80.5, 59.1, 56.4, 82.2, 63.4, 10.3e6, 7.7e9),
                8_263_495, 7_029_956_920),
        Variant("H-3", -3, 416, (1, 1, 3), _paper(44.8, 76.7, 48.2, 46.4, 76.6, 50.8, 6.9e6, 4.2e9),
                5_360_390, 3_758_983_969),
        Variant("H-4", -4, 384, (1, 1, 2), _paper(35.7, 69.6, 33.7, 40.3, 73.0, 41.9, 3.7e6, 2.1e9),
                2_764_706, 1_807_480_224),
    )
}


def get_variant(name: str) -> Variant:
    """Look a variant up by name; accepts 'H-4', 'h-4', 'H4' and 'h4' alike."""
    key = name.strip().upper()
    if key.startswith("H") and key[1:].isdigit() and key != "H0":
        key = "H-" + key[1:]
    try:
        return VARIANTS[key]
    except KeyError:
        raise ValueError(f"unknown variant {name!r}: choose one of {', '.join(VARIANTS)}") from None
