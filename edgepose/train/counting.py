"""True parameter and multiply-accumulate counts.

What is counted (the definition the official figures in models/README.md use):
  * params: the sum of ``numel`` over the model's unique parameters (BN running statistics are buffers and
    are not counted);
  * MACs: one per multiply-add of the convolutions and linear layers, from forward hooks:
      - ``nn.Conv2d``:          output elements x in_channels/groups x kh x kw
      - ``nn.ConvTranspose2d``: *input* elements x out_channels/groups x kh x kw (each input pixel is
                                scattered once through the kernel; counting by output elements, as the
                                paper's summary tool did, counts a stride-2 deconvolution 4x)
      - ``nn.Linear``:          output elements x in_features
    BN, activations, pooling, upsampling, additions, SE multiplies and concatenations are not counted.

Counting runs on PyTorch's "meta" device when given a variant, so no arithmetic is done and H0 at 512x512
is counted in well under a second.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from edgepose.variants import Variant, get_variant

# Top-level module name -> part of the network, as the official summary groups them.
PARTS = {"features": "backbone", "stage2": "stage2", "stage3": "stage3", "stage4": "stage4",
         "final_layers": "head", "deconv_layers": "head"}


def part_of(name: str) -> str:
    top = name.split(".", 1)[0]
    return "transitions" if top.startswith("trans") else PARTS.get(top, top)


@dataclass(frozen=True)
class Counts:
    params: int
    macs: int
    conv_macs: int
    deconv_macs: int
    linear_macs: int
    input_hw: tuple[int, int]
    params_by_part: dict[str, int] = field(default_factory=dict)
    macs_by_part: dict[str, int] = field(default_factory=dict)


def _macs(module: nn.Module, inp: torch.Tensor, out: torch.Tensor) -> int:
    if isinstance(module, nn.ConvTranspose2d):
        kh, kw = module.kernel_size
        return inp.numel() * module.out_channels // module.groups * kh * kw
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        return out.numel() * module.in_channels // module.groups * kh * kw
    return out.numel() * module.in_features  # nn.Linear


def count_params_macs(model: nn.Module | Variant | str, input_hw: tuple[int, int] | None = None) -> Counts:
    """Count true params and MACs of ``model`` for one (1, 3, H, W) input.

    ``model`` is a module or a variant (row or name); a variant is built on the meta device (no memory, no
    arithmetic). ``input_hw`` defaults to the variant's nominal square input size.
    """
    if isinstance(model, (Variant, str)):
        from edgepose.train.model import build_model

        variant = get_variant(model) if isinstance(model, str) else model
        with torch.device("meta"):
            model = build_model(variant)
    if input_hw is None:
        variant = getattr(model, "variant", None)
        if variant is None:
            raise ValueError("input_hw is required for a module that is not an EfficientHRNet")
        input_hw = (variant.input_size, variant.input_size)

    params_by_part: dict[str, int] = {}
    seen: set[int] = set()
    for name, p in model.named_parameters():  # named_parameters() already skips shared parameters
        if id(p) not in seen:
            seen.add(id(p))
            params_by_part[part_of(name)] = params_by_part.get(part_of(name), 0) + p.numel()

    totals = {"conv": 0, "deconv": 0, "linear": 0}
    macs_by_part: dict[str, int] = {}
    handles = []
    for name, module in model.named_modules():
        kind = ("deconv" if isinstance(module, nn.ConvTranspose2d) else "conv" if isinstance(module, nn.Conv2d)
                else "linear" if isinstance(module, nn.Linear) else None)
        if kind is None:
            continue

        def hook(mod, args, out, kind=kind, part=part_of(name)):
            n = _macs(mod, args[0], out)
            totals[kind] += n
            macs_by_part[part] = macs_by_part.get(part, 0) + n

        handles.append(module.register_forward_hook(hook))

    param = next(model.parameters())
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, *input_hw, dtype=param.dtype, device=param.device))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return Counts(
        params=sum(params_by_part.values()),
        macs=sum(totals.values()),
        conv_macs=totals["conv"],
        deconv_macs=totals["deconv"],
        linear_macs=totals["linear"],
        input_hw=tuple(input_hw),
        params_by_part=params_by_part,
        macs_by_part=macs_by_part,
    )
