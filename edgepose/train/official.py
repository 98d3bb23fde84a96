"""Load checkpoints of the official EfficientHRNet code (TeCSAR-UNCC/EfficientHRNet) into our models.

Our module names reproduce the official ones, so the mapping is the identity on keys; what this module adds
is checking: every checkpoint tensor is used exactly once, every tensor of ours is set, shapes agree, and a
failure names the keys and shapes involved.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from edgepose.errors import ModelError
from edgepose.variants import NUM_JOINTS, VARIANTS

# What the official training scripts save: plain state_dicts (final_state*.pth.tar, model_best.pth.tar) or a
# resumable checkpoint whose "best_state_dict" (no prefix) / "state_dict" (DDP, "module." prefix) hold weights.
CHECKPOINT_KEYS = ("best_state_dict", "state_dict")
STRIDE2_HEAD = "final_layers.1."
MAX_LISTED = 8


def unwrap_state_dict(obj: Mapping) -> dict[str, torch.Tensor]:
    """The tensors of a plain state_dict or an official training checkpoint, with any "module." prefix removed."""
    if not isinstance(obj, Mapping):
        raise ValueError(f"expected a state_dict or a checkpoint dict, got {type(obj).__name__}")
    for key in CHECKPOINT_KEYS:
        if isinstance(obj.get(key), Mapping):
            obj = obj[key]
            break
    out = {}
    for key, value in obj.items():
        if not isinstance(value, torch.Tensor):
            raise ValueError(
                f"entry {key!r} is a {type(value).__name__}, not a tensor: this is not a model state_dict "
                f"(a training checkpoint should hold one of {', '.join(CHECKPOINT_KEYS)})"
            )
        out[key.removeprefix("module.")] = value
    return out


def _listing(keys, what: str) -> str:
    keys = sorted(keys)
    more = f" (and {len(keys) - MAX_LISTED} more)" if len(keys) > MAX_LISTED else ""
    return f"{len(keys)} {what}: {', '.join(keys[:MAX_LISTED])}{more}"


def fitting_variant(state_dict: Mapping[str, torch.Tensor]) -> str | None:
    """The variant whose keys and shapes ``state_dict`` matches exactly, if any (built on the meta device)."""
    from edgepose.train.model import build_model

    shapes = {k: tuple(v.shape) for k, v in state_dict.items()}
    for name in VARIANTS:
        with torch.device("meta"):
            ours = build_model(name).state_dict()
        if shapes == {k: tuple(v.shape) for k, v in ours.items()}:
            return name
    return None


def load_official_state_dict(model: nn.Module, state_dict: Mapping, *, drop_stride2_tags: bool = False) -> None:
    """Copy an official checkpoint's tensors into ``model`` (from ``build_model``), all or nothing.

    ``state_dict`` is a plain state_dict or an official checkpoint dict (``best_state_dict`` preferred over the
    DDP ``state_dict``); a ``module.`` prefix is stripped. Raises ValueError naming the missing, unexpected and
    mis-shaped keys. Models trained with ``LOSS.WITH_AE_LOSS: [True, True]`` have 34 channels in
    ``final_layers.1`` (heatmaps + stride-2 tags); the runtime uses tags from output 0 only, so
    ``drop_stride2_tags=True`` keeps the 17 heatmap channels and drops the rest.
    """
    given = unwrap_state_dict(state_dict)
    ours = model.state_dict()
    if drop_stride2_tags:
        for key in (STRIDE2_HEAD + "weight", STRIDE2_HEAD + "bias"):
            if key in given and given[key].shape[0] == 2 * NUM_JOINTS:
                given[key] = given[key][:NUM_JOINTS]

    missing = ours.keys() - given.keys()
    unexpected = given.keys() - ours.keys()
    mismatched = [
        f"{k} {list(given[k].shape)} (ours {list(ours[k].shape)})"
        for k in ours.keys() & given.keys()
        if given[k].shape != ours[k].shape
    ]
    if missing or unexpected or mismatched:
        problems = []
        if missing:
            problems.append(_listing(missing, "missing keys"))
        if unexpected:
            problems.append(_listing(unexpected, "unexpected keys"))
        if mismatched:
            problems.append(_listing(mismatched, "shape mismatches"))
        hint = ""
        if any(m.startswith(STRIDE2_HEAD) and f"[{2 * NUM_JOINTS}," in m for m in mismatched):
            hint = (" final_layers.1 has 34 channels: the checkpoint was trained with LOSS.WITH_AE_LOSS[1]; "
                    "pass drop_stride2_tags=True (edgepose export --drop-stride2-tags) to keep its 17 heatmap channels.")
        variant = getattr(getattr(model, "variant", None), "name", "this model")
        fits = fitting_variant(given)
        advice = (f" The checkpoint is an EfficientHRNet {fits}: use variant {fits}." if fits
                  else " Check that the checkpoint is an EfficientHRNet of the same variant.")
        raise ValueError(f"checkpoint does not fit {variant}: " + "; ".join(problems) + "." + hint + advice)
    model.load_state_dict(given, strict=True)


def read_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a checkpoint file safely (tensors and plain containers only); ModelError when it cannot be read."""
    return read_checkpoint_and_config(path)[0]


def read_checkpoint_and_config(path: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    """``read_checkpoint`` plus the run settings an ``edgepose train`` checkpoint carries ({} for others)."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"checkpoint {path} does not exist: give the path of a .pth/.pth.tar file")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt or foreign files
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(
            f"cannot read checkpoint {path} ({reason[:200]}): expected a PyTorch state_dict saved with torch.save"
        ) from exc
    try:
        state = unwrap_state_dict(obj)
    except ValueError as exc:
        raise ModelError(f"checkpoint {path}: {exc}") from exc
    config = obj.get("config") if isinstance(obj, Mapping) else None
    return state, config if isinstance(config, Mapping) else {}
