"""The EfficientHRNet training loss: masked multi-resolution heatmap MSE plus associative-embedding push/pull.

Matches the official ``MultiLossFactory`` with the Example Configs' settings: heatmap loss at both
resolutions with factor 1, AE loss ("exp" push) only on the stride-4 output's tag channels with push and pull
factors 1e-3. Every term is computed per image and then averaged over the batch, as the official trainer does.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from edgepose.types import NUM_JOINTS

PUSH_FACTOR = 1e-3
PULL_FACTOR = 1e-3


def heatmap_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-image masked MSE, (N,): mean over joints and pixels of (pred - target)^2 * mask.

    pred, target: (N, 17, H, W); mask: (N, H, W), 0 where crowds and unannotated people are (and outside
    the image), so the network is neither rewarded nor punished for the people nobody labelled.
    """
    return ((pred - target) ** 2 * mask[:, None]).mean(dim=(1, 2, 3))


def ae_loss(tags: torch.Tensor, joints: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image associative-embedding push and pull losses, each (N,), "exp" type as the official code.

    tags: (N, 17, H, W) one tag map per joint. joints: (N, P, 17, 2) int64 from ``targets.joint_indices``:
    flat index into the tag maps and a 0/1 visibility. Pull: the mean over people of the mean squared
    deviation of a person's joint tags from the person's mean tag. Push: over all ordered pairs of people
    (a, b), diagonal included, (sum exp(-(m_a - m_b)^2) - n) / (n (n - 1)) / 2, zero for fewer than two people.
    """
    n_img = tags.shape[0]
    flat = tags.reshape(n_img, -1)
    index, vis = joints[..., 0], joints[..., 1].to(tags.dtype)
    values = torch.gather(flat, 1, index.reshape(n_img, -1)).reshape(index.shape)  # (N, P, 17)
    count = vis.sum(-1)  # joints per person
    person = (count > 0).to(tags.dtype)
    safe = count.clamp(min=1)
    mean = (values * vis).sum(-1) / safe  # (N, P)
    pull_person = (((values - mean[..., None]) ** 2) * vis).sum(-1) / safe
    n = person.sum(-1)
    pull = (pull_person * person).sum(-1) / n.clamp(min=1)

    pair = person[:, :, None] * person[:, None, :]
    similarity = torch.exp(-((mean[:, :, None] - mean[:, None, :]) ** 2)) * pair
    push = (similarity.sum((1, 2)) - n) / (n * (n - 1)).clamp(min=1) * 0.5
    push = torch.where(n >= 2, push, torch.zeros_like(push))
    return push, pull


@dataclass(frozen=True)
class LossParts:
    """Batch means of each term; ``total`` is what is back-propagated."""

    total: torch.Tensor
    heatmap4: torch.Tensor
    heatmap2: torch.Tensor
    push: torch.Tensor
    pull: torch.Tensor

    def floats(self) -> dict[str, float]:
        return {name: float(getattr(self, name).detach()) for name in ("total", "heatmap4", "heatmap2", "push", "pull")}


def efficienthrnet_loss(
    outputs: list[torch.Tensor],
    heatmaps4: torch.Tensor,
    heatmaps2: torch.Tensor,
    mask4: torch.Tensor,
    mask2: torch.Tensor,
    joints: torch.Tensor,
    push_factor: float = PUSH_FACTOR,
    pull_factor: float = PULL_FACTOR,
) -> LossParts:
    """The full loss for the model's [out0 (N,34,H/4,W/4), out1 (N,17,H/2,W/2)] and the batch's targets."""
    out0, out1 = outputs
    hm4 = heatmap_loss(out0[:, :NUM_JOINTS], heatmaps4, mask4).mean()
    hm2 = heatmap_loss(out1[:, :NUM_JOINTS], heatmaps2, mask2).mean()
    push, pull = ae_loss(out0[:, NUM_JOINTS : 2 * NUM_JOINTS], joints)
    push = push.mean() * push_factor
    pull = pull.mean() * pull_factor
    return LossParts(hm4 + hm2 + push + pull, hm4, hm2, push, pull)
