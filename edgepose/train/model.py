"""EfficientHRNet H0..H-4 in torch, built from one row of ``edgepose.variants``.

Module names reproduce the official implementation's (TeCSAR-UNCC/EfficientHRNet) so that its
``state_dict`` keys map 1:1 onto ours: ``features.*`` (EfficientNet backbone in the style of
narumiruna/efficientnet-pytorch), ``trans{K}_branch{J}``, ``stage2..4`` (HRNet modules with fuse layers),
``final_layers`` and ``deconv_layers`` (HigherHRNet head). The structure facts we follow are written down in
models/README.md.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from edgepose.variants import NUM_JOINTS, SE_RATIO, Backbone, Variant, get_variant

DROP_CONNECT_RATE = 0.2  # the official code uses one constant rate for every MBConv block


class Swish(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(x)


# Backbone activations: Swish as in EfficientNet-B0 and the official EfficientHRNet; ReLU6 as in
# EfficientNet-Lite, whose ImageNet weights (``--init-backbone imagenet-lite0``) were trained with it.
ACTIVATIONS = {"swish": Swish, "relu6": nn.ReLU6}


def activation(name: str) -> nn.Module:
    try:
        return ACTIVATIONS[name]()
    except KeyError:
        raise ValueError(f"unknown activation {name!r}: choose one of {', '.join(ACTIVATIONS)}") from None


def same_padding(kernel: int, stride: int) -> tuple[int, int, int, int]:
    """TensorFlow-style "same" padding as (left, right, top, bottom): the extra pixel goes right/bottom."""
    p = max(kernel - stride, 0)
    return (p // 2, p - p // 2, p // 2, p - p // 2)


class ConvBNReLU(nn.Sequential):
    """Pad, conv (no bias), BN, activation. Named after the official class (its activation is Swish, not ReLU)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1, act: str = "swish"):
        super().__init__(
            nn.ZeroPad2d(same_padding(kernel, stride)),
            nn.Conv2d(cin, cout, kernel, stride, padding=0, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
            activation(act),
        )


class SqueezeExcitation(nn.Module):
    def __init__(self, channels: int, reduced: int, act: str = "swish"):
        super().__init__()
        self.se = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(channels, reduced, 1),
            activation(act),
            nn.Conv2d(reduced, channels, 1),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.se(x)


class MBConvBlock(nn.Module):
    """Inverted residual with SE; the SE width comes from the block's *input* channels, as in the official code."""

    def __init__(self, cin: int, cout: int, expand: int, kernel: int, stride: int, act: str = "swish"):
        super().__init__()
        hidden = cin * expand
        reduced = max(1, int(cin * SE_RATIO))
        self.use_residual = cin == cout and stride == 1
        layers: list[nn.Module] = [ConvBNReLU(cin, hidden, 1, act=act)] if hidden != cin else []
        layers += [
            ConvBNReLU(hidden, hidden, kernel, stride=stride, groups=hidden, act=act),
            SqueezeExcitation(hidden, reduced, act),
            nn.Conv2d(hidden, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.use_residual:
            return self.conv(x)
        y = self.conv(x)
        if self.training:
            # Drop-connect: drop the whole residual branch per sample, rescale the kept ones.
            keep = 1.0 - DROP_CONNECT_RATE
            mask = torch.floor(keep + torch.rand(x.shape[0], 1, 1, 1, dtype=y.dtype, device=y.device))
            y = y / keep * mask
        return x + y


class BasicBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(y)) + x)


class HighResolutionModule(nn.Module):
    """Parallel branches of BasicBlocks, then every output branch sums all inputs resampled to its resolution."""

    def __init__(self, widths: tuple[int, ...], blocks: int, multi_scale_output: bool = True):
        super().__init__()
        self.branches = nn.ModuleList(nn.Sequential(*(BasicBlock(c) for _ in range(blocks))) for c in widths)
        n = len(widths)
        self.fuse_layers = nn.ModuleList(
            nn.ModuleList(self._fuse(widths, i, j) for j in range(n)) for i in range(n if multi_scale_output else 1)
        )
        self.relu = nn.ReLU(inplace=True)

    @staticmethod
    def _fuse(widths: tuple[int, ...], i: int, j: int) -> nn.Module | None:
        """The path from branch j to branch i: 1x1 conv + nearest upsample, or a chain of stride-2 3x3 convs."""
        if j == i:
            return None
        if j > i:
            return nn.Sequential(
                nn.Conv2d(widths[j], widths[i], 1, 1, 0, bias=False),
                nn.BatchNorm2d(widths[i]),
                nn.Upsample(scale_factor=2 ** (j - i), mode="nearest"),
            )
        steps: list[nn.Module] = []
        for k in range(i - j):
            last = k == i - j - 1
            cout = widths[i] if last else widths[j]
            layers = [nn.Conv2d(widths[j], cout, 3, 2, 1, bias=False), nn.BatchNorm2d(cout)]
            steps.append(nn.Sequential(*layers) if last else nn.Sequential(*layers, nn.ReLU(inplace=True)))
        return nn.Sequential(*steps)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        xs = [branch(x) for branch, x in zip(self.branches, xs)]
        out = []
        for i, fuse in enumerate(self.fuse_layers):
            y = xs[i]
            for j, x in enumerate(xs):
                if j != i:
                    y = y + fuse[j](x)
            out.append(self.relu(y))
        return out


def build_features(backbone: Backbone, act: str = "swish") -> nn.Sequential:
    """The EfficientNet feature extractor (stem + MBConv blocks) of a backbone row: ``features`` of both the
    pose model and the backbone classifier, so a trained backbone's ``features.*`` load into either."""
    layers: list[nn.Module] = [ConvBNReLU(3, backbone.stem_channels, 3, stride=2, act=act)]
    for cin, cout, expand, kernel, stride in backbone.blocks():
        layers.append(MBConvBlock(cin, cout, expand, kernel, stride, act))
    return nn.Sequential(*layers)


def _transition(cin: int, cout: int) -> nn.Sequential:
    # Unlike HRNet's strided transitions: a stride-1 3x3 conv *with* bias between stages (official code).
    return nn.Sequential(nn.Conv2d(cin, cout, 3, 1, 1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def _stage(widths: tuple[int, ...], modules: int, blocks: int, multi_scale_output: bool = True) -> nn.Sequential:
    return nn.Sequential(
        *(
            HighResolutionModule(widths, blocks, multi_scale_output or i < modules - 1)
            for i in range(modules)
        )
    )


class EfficientHRNet(nn.Module):
    """EfficientHRNet for one variant.

    forward(x: (N,3,H,W) normalised RGB, H and W multiples of 32) returns
    [out0 (N,34,H/4,W/4): 17 heatmaps + 17 tag maps, out1 (N,17,H/2,W/2): 17 heatmaps].
    """

    def __init__(self, variant: Variant, act: str = "swish"):
        super().__init__()
        self.variant = variant
        self.activation = act
        self.features = build_features(variant.backbone_net, act)
        self.taps = variant.tap_indices

        c = variant.branch_widths
        t = variant.tap_channels
        blocks = variant.blocks_per_branch
        m2, m3, m4 = variant.stage_modules
        self.trans1_branch1 = _transition(t[0], c[0])
        self.trans1_branch2 = _transition(t[1], c[1])
        self.stage2 = _stage(c[:2], m2, blocks)
        self.trans2_branch1 = _transition(c[0], c[0])
        self.trans2_branch2 = _transition(c[1], c[1])
        self.trans2_branch3 = _transition(t[2], c[2])
        self.stage3 = _stage(c[:3], m3, blocks)
        self.trans3_branch1 = _transition(c[0], c[0])
        self.trans3_branch2 = _transition(c[1], c[1])
        self.trans3_branch3 = _transition(c[2], c[2])
        self.trans3_branch4 = _transition(t[3], c[3])
        self.stage4 = _stage(c, m4, blocks, multi_scale_output=False)

        head = variant.head_width
        # final_layers is registered before deconv_layers: the official state_dict lists it first.
        self.final_layers = nn.ModuleList([nn.Conv2d(c[0], 2 * NUM_JOINTS, 1), nn.Conv2d(head, NUM_JOINTS, 1)])
        k = variant.deconv_kernel
        self.deconv_layers = nn.ModuleList(
            [
                nn.Sequential(
                    nn.Sequential(
                        nn.ConvTranspose2d(c[0] + 2 * NUM_JOINTS, head, k, stride=2, padding=1, output_padding=0, bias=False),
                        nn.BatchNorm2d(head),
                        nn.ReLU(inplace=True),
                    ),
                    *(nn.Sequential(BasicBlock(head)) for _ in range(variant.head_blocks)),
                )
            ]
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        taps = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.taps:
                taps.append(x)
        x1, x2, x3, x4 = taps
        ys = self.stage2([self.trans1_branch1(x1), self.trans1_branch2(x2)])
        ys = self.stage3([self.trans2_branch1(ys[0]), self.trans2_branch2(ys[1]), self.trans2_branch3(x3)])
        ys = self.stage4(
            [self.trans3_branch1(ys[0]), self.trans3_branch2(ys[1]), self.trans3_branch3(ys[2]), self.trans3_branch4(x4)]
        )
        feat = ys[0]
        out0 = self.final_layers[0](feat)
        feat = self.deconv_layers[0](torch.cat((feat, out0), 1))
        return [out0, self.final_layers[1](feat)]


def build_model(variant: Variant | str, activation: str = "swish") -> EfficientHRNet:
    """Build the torch model of one variant (a ``Variant`` row or its name, e.g. "H-4"); ``activation`` is the
    backbone's ("swish", the official model, or "relu6" for EfficientNet-Lite ImageNet weights).

    Weights are PyTorch's default initialisation; call ``init_official_weights`` for the official training
    init, ``randomize`` for a seeded model with non-trivial outputs, or ``load_official_state_dict`` for a
    trained checkpoint.
    """
    return EfficientHRNet(get_variant(variant) if isinstance(variant, str) else variant, activation)


def init_official_weights(model: nn.Module) -> None:
    """The official training init: every conv and deconv N(0, 0.001) with zero bias, BN weight 1 and bias 0."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, std=0.001)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


@torch.no_grad()
def randomize(model: nn.Module, seed: int = 0) -> None:
    """Seeded random weights *and* BN statistics, so every op (BN folding included) shapes the outputs.

    Used for random-init exports and parity tests. The default init leaves BN an identity in eval mode and
    the official init makes every output nearly zero, which would hide conversion errors; He init (gain 2)
    lets activations grow with depth into the hundreds, which would swamp them. Gain 1 keeps H0..H-4 outputs
    of order 1 (std 0.3 to 3 on a real image).
    """
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            fan_in = m.weight[0].numel() if isinstance(m, nn.Conv2d) else m.weight.shape[0] * m.weight[0, 0].numel()
            m.weight.copy_(torch.randn(m.weight.shape, generator=gen) / fan_in**0.5)
            if m.bias is not None:
                m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * 0.1)
        elif isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.weight.copy_(0.5 + 0.5 * torch.rand(n, generator=gen))
            m.bias.copy_(torch.randn(n, generator=gen) * 0.1)
            m.running_mean.copy_(torch.randn(n, generator=gen) * 0.1)
            m.running_var.copy_(0.5 + torch.rand(n, generator=gen))


class InferenceHead(nn.Module):
    """The network plus the official single-scale test-time aggregation, as exported to OpenVINO.

    Output 0 is upsampled bilinearly (align_corners=False) to output 1's resolution; the two heatmap sets are
    averaged; the tags come from output 0 only. Returns heatmaps (N,17,H/2,W/2) and embeddings
    (N,17,H/2,W/2,1), the layout of Intel's OMZ human-pose-estimation-000x models, without their NMS.
    """

    def __init__(self, net: EfficientHRNet):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out0, out1 = self.net(x)
        # The stride-2 deconvolution makes out1 exactly twice out0's size; a scale factor (not a size) keeps
        # H and W dynamic in the exported graph.
        # Split before upsampling (bilinear works per channel, so the result is the same): a 34-channel split
        # at H/2 runs in OpenVINO's slow reference kernel on AVX2 (17 is no multiple of its 8-channel blocks).
        heat0, tags0 = out0[:, :NUM_JOINTS], out0[:, NUM_JOINTS:]

        def up(t: torch.Tensor) -> torch.Tensor:
            return F.interpolate(t, scale_factor=2.0, mode="bilinear", align_corners=False)

        return (up(heat0) + out1) / 2.0, up(tags0).unsqueeze(-1)
