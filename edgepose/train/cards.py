"""Model cards (markdown) for the EfficientHRNet family, rendered from ``edgepose.variants`` and our counter.

``python -m edgepose.train.cards models/`` rewrites models/README.md and models/efficienthrnet-<v>/README.md;
a test checks the committed cards equal what this renders, so the numbers in them cannot drift.
"""

from __future__ import annotations

import os
import sys
from functools import lru_cache
from pathlib import Path

from edgepose.train import counting
from edgepose.variants import BACKBONES, VARIANTS, Variant

count_params_macs = lru_cache(maxsize=None)(counting.count_params_macs)  # each variant is counted once

PARTS = ("backbone", "transitions", "stage2", "stage3", "stage4", "head")
LICENCE = (
    "The edgepose code, these cards and the model definitions are Apache-2.0. Weights you train with "
    "`edgepose train` are yours to license. The official checkpoints are published by the paper's authors "
    "(TeCSAR-UNCC/EfficientHRNet) under their terms; edgepose loads them but does not redistribute them."
)
INFLATION = (
    "**Why the paper's params and FLOPs are larger than ours.** The paper's Table 3 (and the official README) "
    "print what the official repository's `get_model_summary` reports, and that tool has two bugs. It adds the "
    "parameters of every module whose class name contains \"Conv\", so the container `MBConvBlock` counts all "
    "its parameters a second time on top of its inner convolutions and BNs: the whole backbone except the stem "
    "is counted twice. And it counts a convolution as weights x *output* pixels, which for the one stride-2 "
    "transposed convolution (output 4x the input area) is 4x too much. These two effects explain the "
    "difference to the unit for every variant. The figures below are the true ones: parameters are the unique "
    "parameters (BN running statistics excluded); MACs are multiply-accumulates of the Conv2d layers (output "
    "elements x input channels per group x kernel area) and the ConvTranspose2d (input elements x output "
    "channels x kernel area) at the nominal square input; BN, activations, pooling, upsampling, additions and "
    "SE multiplies are not counted (a \"FLOPs\" figure would be about 2x the MACs). Our counter "
    "(`edgepose.train.count_params_macs`) reproduces the official implementation's true figures exactly."
)
DIFFERENCES = """\
Where the paper and the official code differ, edgepose follows the code:

- **HRNet branch widths** use ceil(c x 1.2455^phi), not the paper's 1.25^phi; 1.2455 gives the widths of the
  paper's own Table 1.
- **"Blocks per stage"** (the paper's M_s2, M_s3, M_s4) are HRNet *modules* in the code; every module has
  2 BasicBlocks per branch, then fuse layers. The last module of stage 4 outputs only the stride-4 branch.
- **Transitions** between stages are stride-1 3x3 convolutions *with* bias + BN + ReLU on every branch; each
  new, lower-resolution branch comes from the backbone (stride 8, 16, 32 taps), not from a strided conv.
- **Backbone**: EfficientNet without its 1280-channel head; "same" padding is asymmetric (the extra pixel
  right/bottom); the SE width is a quarter of the block's *input* channels; drop-connect 0.2 in every block.
  The width multipliers are 1.1^phi rounded to three decimals (0.909, 0.826, 0.751, 0.684) and the depth
  multipliers 1.2^phi likewise (0.833, 0.694, 0.578, 0.483); channels round to multiples of 8, repeats up.
- **Outputs**: 17 heatmaps + 17 tags at stride 4 and 17 heatmaps at stride 2 (the Example Configs train no
  tags at stride 2). At test time output 0 is bilinearly upsampled to stride 2, the two heatmap sets are
  averaged and tags come from output 0; the exported IR does exactly this in the graph.
- **Test size**: the short side goes to ceil(input/64) x 64, so H-1 is tested at 512 and H-3 at 448.
- **Training** (official code): the backbone is always frozen (set in code), Adam lr 1e-3 with no weight
  decay (the configured 1e-4 is ignored), steps at epochs 200 and 260 of 300, sigma 2, AE "exp" push loss.
"""


def _m(n: int) -> str:
    return f"{n / 1e6:.2f} M"


def _g(n: int) -> str:
    return f"{n / 1e9:.3f} G"


BACKBONE_NOTES = (
    "Counted as above, at ceil(224 x 1.15^phi) with the classifier (1x1 head conv, 1000- or 100-class FC). B0 is "
    "EfficientNet-B0 (5,288,548 parameters, the well-known figure); the parameters of B-1..B-3 and of every CIFAR "
    "column agree with Table 2 to its printed precision. Differences: the paper's B-3/B-4 inputs (145, 128) depart "
    "from its own rule (ceil gives 148, 129); its B-4 ImageNet parameters (1.3 M) repeat the CIFAR figure (with a "
    "1000-class FC, 0.87 M of it, B-4 has 2.06 M); and our MACs are lower at the odd sizes these inputs produce, "
    "because the official model pads a fixed max(k - s, 0) pixels where TensorFlow's \"same\" padding keeps "
    "ceil(H / s) rows (with that padding B-1..B-4 count 0.302, 0.177, 0.107, 0.058 G, Table 2's figures). `edgepose train backbone` trains any of them on an ImageFolder "
    "with the paper's recipe; `--init imagenet-lite0` (and `edgepose train --init-backbone imagenet-lite0` for the "
    "pose models) starts them from EfficientNet-Lite0's ImageNet weights by weight selection: per stage its first "
    "blocks, per tensor the leading channels, squeeze-excite neutral, ReLU6 as Lite0 (details in "
    "`edgepose/train/backbone.py`)."
)


def backbone_table() -> str:
    rows = []
    for b in BACKBONES.values():
        (pi, mi), (pc, _), t = b.count(1000), b.count(100), b.paper
        rows.append(f"| {b.name} | {b.phi} | {b.width_mult} / {b.depth_mult} | {b.resolution} ({t.input_size}) | "
                    f"{', '.join(f'{s.channels}x{s.repeats}' for s in b.stages)} | {pi:,} ({t.imagenet_params / 1e6:.1f} M) "
                    f"| {_g(mi)} ({t.imagenet_flops / 1e9:.2f} B) | {pc:,} ({t.cifar_params / 1e6:.1f} M) | "
                    f"{t.imagenet_top1} / {t.cifar_top1} |")
    return "\n".join(rows)


def family_card() -> str:
    """models/README.md."""
    rows = []
    for v in VARIANTS.values():
        c = count_params_macs(v)
        p = v.paper
        rows.append(
            f"| [{v.name}](efficienthrnet-{v.name.lower()}/README.md) | {v.phi} | {v.input_size} | "
            f"{v.test_short_side} | {', '.join(map(str, v.branch_widths))} | "
            f"{', '.join(map(str, v.stage_modules))} | {c.params:,} | {_g(c.macs)} | "
            f"{p.params / 1e6:.1f} M / {p.flops / 1e9:.1f} B | {p.ap} / {p.ap_multi} |"
        )
    return f"""# EfficientHRNet models

EfficientHRNet (C. Neff, A. Sheth, S. Furgurson, H. Tabkhi, "EfficientHRNet: Efficient Scaling for Lightweight
High-Resolution Multi-Person Pose Estimation", UNC Charlotte) joins an EfficientNet backbone scaled *below* B0 with HigherHRNet's
high-resolution branches and its multi-resolution head, and scales all of them together with one coefficient
phi. Persons are found bottom-up: 17 COCO keypoint heatmaps plus one associative-embedding tag per joint, which
edgepose's decoder groups into skeletons. edgepose builds all five variants from one table
(`edgepose/variants.py`) with one builder (`edgepose.train.build_model`); the module layout matches the official
implementation (TeCSAR-UNCC/EfficientHRNet) key for key, so its checkpoints load unchanged.

| variant | phi | input | test short side | HRNet widths | HR modules (stages 2-4) | true params | true MACs | paper params / FLOPs | paper AP / multi-scale AP |
|---|---|---|---|---|---|---|---|---|---|
{chr(10).join(rows)}

AP is the paper's Table 3 (COCO val2017, %). True MACs are at the nominal square input.

{INFLATION}

## Backbones B0..B-4 (paper Table 2)

| backbone | phi | width / depth | input (paper) | stages (channels x blocks) | params, ImageNet head (paper) | MACs (paper FLOPs) | params, CIFAR-100 head (paper) | paper top-1 ImageNet / CIFAR |
|---|---|---|---|---|---|---|---|---|
{backbone_table()}

{BACKBONE_NOTES}

## Use

```bash
edgepose models info                      # this table, no torch needed (--measure recounts with torch)
edgepose models info --backbones          # B0..B-4 beside the paper's Table 2
pip install 'edgepose[train]'             # torch, nncf: training and export
edgepose train --variant H-4 --ann person_keypoints_train2017.json --images train2017/ --out runs/h4
edgepose export --variant H-4 --weights runs/h4/best.pt --out models/efficienthrnet-h-4/
edgepose export --variant H-4 --weights model_best.pth.tar --precision INT8 --calib images/ --out models/h4-int8/
edgepose run --model models/efficienthrnet-h-4/ --source rtsp://camera/stream
```

`--weights` takes an official checkpoint (`model_best.pth.tar`, `final_state*.pth.tar`, or `checkpoint.pth.tar`
with its `best_state_dict`) or one written by `edgepose train`. In Python, `load_official_state_dict(model,
state_dict)` copies every tensor exactly once and names any missing, unexpected or mis-shaped key. Checkpoints
trained with `LOSS.WITH_AE_LOSS: [True, True]` carry 34 channels in `final_layers.1`; pass
`--drop-stride2-tags` (`drop_stride2_tags=True`) to keep its 17 heatmaps. `--random-init` exports seeded random weights for speed tests.

## What an export contains

`model.xml`/`model.bin` (OpenVINO IR, FP32, FP16 or INT8 via NNCF post-training quantisation) and `model.json`.
Input `image`: [1, H, W, 3] u8 BGR, H and W any multiples of 64; colour conversion and ImageNet mean/std
normalisation are inside the IR. Outputs `heatmaps` [1, 17, H/2, W/2] and `embeddings` [1, 17, H/2, W/2, 1]
(the official test-time aggregation, no NMS in the graph). The card records the variant, sizes, output strides,
normalisation, joint order, precision, the source of the weights and the SHA-256 of `model.bin`.

## Paper and official code

{DIFFERENCES}
## Licence

{LICENCE}
"""


def variant_card(v: Variant) -> str:
    """models/efficienthrnet-<v>/README.md."""
    c = count_params_macs(v)
    p = v.paper
    stages = "\n".join(
        f"| {i + 1} | {s.expand} | {s.kernel}x{s.kernel} | {s.stride} | {s.channels} | {s.repeats} |"
        for i, s in enumerate(v.backbone)
    )
    parts = "\n".join(f"| {part} | {c.params_by_part[part]:,} | {_g(c.macs_by_part[part])} |" for part in PARTS)
    w = v.branch_widths
    taps = ", ".join(f"block {i} ({ch} ch)" for i, ch in zip(v.tap_indices, v.tap_channels))
    s0, s1 = v.output_shapes()
    name = v.name.lower()
    return f"""# EfficientHRNet {v.name} (phi = {v.phi})

Bottom-up multi-person pose estimation (COCO-17 keypoints + associative-embedding tags). Part of the
[EfficientHRNet family](../README.md); built by `edgepose.train.build_model("{v.name}")`.

## Numbers

| | ours (true) | paper Table 3 |
|---|---|---|
| params | {c.params:,} ({_m(c.params)}) | {p.params / 1e6:.1f} M |
| MACs at {v.input_size}x{v.input_size} | {c.macs:,} ({_g(c.macs)}) | {p.flops / 1e9:.1f} B "FLOPs" |
| of which Conv2d / ConvTranspose2d | {c.conv_macs:,} / {c.deconv_macs:,} | |
| COCO val2017 AP / AP50 / AP75 | (no trained weights shipped) | {p.ap} / {p.ap50} / {p.ap75} |
| multi-scale AP / AP50 / AP75 | | {p.ap_multi} / {p.ap50_multi} / {p.ap75_multi} |

Our params and MACs equal the official implementation's true figures exactly; the paper's are inflated by its
summary tool (double-counted MBConv parameters, a 4x-counted transposed convolution): see
[the family card](../README.md).

| part | params | MACs |
|---|---|---|
{parts}

## Architecture

Input {v.input_size}x{v.input_size} nominal (tested with the short side at {v.test_short_side}; any multiple of 64
works, non-square included). Outputs {list(s0)} (17 heatmaps + 17 tags, stride 4) and {list(s1)} (17 heatmaps,
stride 2).

**Backbone** (`features`): EfficientNet-B0 scaled by width {v.width_mult} and depth {v.depth_mult}; stem 3x3
stride 2 with {v.stem_channels} channels, then MBConv blocks with squeeze-and-excitation and Swish:

| stage | expand | kernel | first stride | channels | repeats |
|---|---|---|---|---|---|
{stages}

**Taps** to the HRNet branches (strides 4, 8, 16, 32): {taps}.

**High-resolution network**: branch widths {', '.join(map(str, w))}; stages 2, 3, 4 have
{', '.join(map(str, v.stage_modules))} HRNet module(s) with 2, 3, 4 branches, {v.blocks_per_branch} BasicBlocks per
branch and fuse layers; the last module outputs the stride-4 branch only. Transitions are 3x3 convs with bias
+ BN + ReLU.

**Head**: 1x1 conv {w[0]} -> 34 (output 0); concatenate with the features; 4x4 stride-2 transposed conv
{w[0] + 34} -> {v.head_width} + BN + ReLU; {v.head_blocks} BasicBlocks; 1x1 conv {v.head_width} -> 17 (output 1).

## Train and export

```bash
edgepose train --variant {v.name} --ann person_keypoints_train2017.json --images train2017/ --out runs/{name}
edgepose export --variant {v.name} --weights runs/{name}/best.pt --out models/efficienthrnet-{name}/
edgepose export --variant {v.name} --weights model_best.pth.tar --precision FP16 --out models/efficienthrnet-{name}-fp16/
edgepose export --variant {v.name} --weights model_best.pth.tar --precision INT8 --calib images/ --out models/efficienthrnet-{name}-int8/
```

The IR takes raw BGR frames [1, H, W, 3] u8 and returns `heatmaps` [1, 17, H/2, W/2] and `embeddings`
[1, 17, H/2, W/2, 1]; `model.json` describes it. FP32 exports match torch within 1e-4 (tests/test_export.py).

## Paper and official code

{DIFFERENCES}
## Licence

{LICENCE}
"""


def render_cards() -> dict[str, str]:
    """Relative path under models/ -> markdown."""
    cards = {"README.md": family_card()}
    for v in VARIANTS.values():
        cards[f"efficienthrnet-{v.name.lower()}/README.md"] = variant_card(v)
    return cards


def write_cards(models_dir: str | Path) -> list[Path]:
    """Write every card under ``models_dir`` (each file replaced atomically)."""
    written = []
    for rel, text in render_cards().items():
        path = Path(models_dir) / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
        written.append(path)
    return written


if __name__ == "__main__":
    for p in write_cards(sys.argv[1] if len(sys.argv) > 1 else "models"):
        print(p)
