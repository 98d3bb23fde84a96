"""Data behind ``edgepose models list/info/profile`` (kept out of the CLI so commands stay thin)."""

from __future__ import annotations

from dataclasses import asdict

from edgepose.registry.catalog import catalog, local_models
from edgepose.variants import BACKBONES, VARIANTS, get_variant


def model_rows() -> list[dict]:
    from edgepose.registry.profiler import ProfileCache

    cached = ProfileCache()
    latest = {}
    for raw in cached._data.values():
        if raw["model"] not in latest or raw["measured_at"] > latest[raw["model"]]["measured_at"]:
            latest[raw["model"]] = raw
    local = local_models()
    rows = []
    names = list(catalog()) + [n for n in local if n not in catalog()]
    entries = catalog()
    for name in names:
        e = entries.get(name)
        p = latest.get(name)
        rows.append({
            "name": name, "family": e.family if e else "local", "input_size": e.input_size if e else None,
            "gmacs": _gmacs(e),
            "ap": e.ap if e else None, "ap_source": e.ap_source if e else None,
            "path": str(local[name]) if name in local else None,
            "profile_fps": p["throughput_fps"] if p else None,
            "profile_size": "x".join(map(str, p["frame_size"])) if p else None,
        })
    return rows


def variant_rows(variant: str | None = None, *, measure: bool = False) -> list[dict]:
    """One row per variant with the official true params/MACs (or our own count with ``measure``)."""
    chosen = [get_variant(variant)] if variant else list(VARIANTS.values())
    rows = []
    for v in chosen:
        params, macs, source = v.true_params, v.true_macs, "official implementation (measured)"
        if measure:
            from edgepose.train.counting import count_params_macs

            counted = count_params_macs(v)
            params, macs, source = counted.params, counted.macs, "edgepose counter on our torch model"
        rows.append({
            "variant": v.name, "phi": v.phi, "input_size": v.input_size, "test_short_side": v.test_short_side,
            "params": int(params), "macs": int(macs), "counted_by": source,
            "output_shapes": [list(s) for s in v.output_shapes()],
            "branch_widths": list(v.branch_widths), "stage_modules": list(v.stage_modules),
            "paper": asdict(v.paper),
        })
    return rows


def backbone_rows() -> list[dict]:
    """B0..B-4 as classifiers: our counts (ImageNet 1000 and CIFAR-100 heads) beside the paper's Table 2."""
    rows = []
    for b in BACKBONES.values():
        imagenet, cifar = b.count(1000), b.count(100)
        rows.append({
            "backbone": b.name, "phi": b.phi, "width_mult": b.width_mult, "depth_mult": b.depth_mult,
            "resolution": b.resolution, "stem": b.stem_channels, "head": b.head_channels,
            "stages": [[s.channels, s.repeats] for s in b.stages],
            "params_imagenet": imagenet[0], "macs_imagenet": imagenet[1],
            "params_cifar": cifar[0], "macs_cifar": cifar[1], "paper": asdict(b.paper),
        })
    return rows


def _gmacs(entry) -> float | None:
    """MACs in G at the model's input size: the official count for our variants; half the published GFLOPs
    for Intel's models (their cards count a multiply-add as two operations)."""
    if entry is None:
        return None
    if entry.variant:
        return round(get_variant(entry.variant).true_macs / 1e9, 3)
    return round(entry.gflops_published / 2, 3) if entry.gflops_published else None
