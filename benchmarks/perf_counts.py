#!/usr/bin/env python3
"""Variant scaling: where EfficientHRNet H-4 loses efficiency against H0, from OpenVINO's per-layer counters.

Both FP16 IRs run on the CPU with the runtime's compile config (latency hint) plus ``PERF_COUNT``. Input size
policy: each variant at its own test size, square (H-4 384x384, H0 512x512), the sizes its true MACs
(13.2x apart) are counted at; ``--same-size N`` runs both at NxN instead. Rounds alternate H-4 and H0; wall
time is measured on a second compiled copy without counters, so the counters cost nothing to the ratio.

Per model, every executed layer's real time is grouped by layer type (convolutions split into 1x1,
depthwise and dense kxk; reorders, eltwise, ...) and by network part (backbone stem and stages, HRNet
transitions, branches per stride, fuse layers, deconv head, pre/post-processing), with the MACs of the
convolutions in each group; then H0/H-4 ratios of time beside ratios of MACs, and the GMAC/s each part
reaches. A part whose time ratio falls far below its MAC ratio is where the small model loses efficiency.

    python benchmarks/perf_counts.py [--h4 DIR] [--h0 DIR] [--rounds 15] [--same-size 384] [--threads N]
                                     [--set KEY=VALUE ...]
Without --h4/--h0, both are exported with random weights (FP16; speed does not depend on the weights).
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CONV_TYPES = ("Convolution", "GroupConvolution", "ConvolutionBackpropData")


def conv_macs(op) -> int:
    """Multiply-accumulates of one convolution of a model with static shapes."""
    w = list(op.input(1).get_shape())
    out = list(op.output(0).get_shape())
    if op.get_type_name() == "ConvolutionBackpropData":  # weights [Cin, Cout, kh, kw], each input pixel scattered
        inp = list(op.input(0).get_shape())
        return int(np.prod(inp[2:]) * np.prod(w))
    if op.get_type_name() == "GroupConvolution":  # weights [G, Cout/G, Cin/G, kh, kw]
        return int(np.prod(out[2:]) * np.prod(w))
    return int(np.prod(out[1:]) * np.prod(w[1:]))


def module_of(op) -> str | None:
    """The torch module path an IR node came from: its own name, or (for BN-folded convolutions, renamed
    Multiply_N) that of the batch norm it feeds."""
    for candidate in [op, *(t.get_node() for t in op.output(0).get_target_inputs())]:
        m = re.search(r"__module\.net\.([^/]+)", candidate.get_friendly_name())
        if m:
            return m.group(1)
    return None


def part_of(module: str | None, stage_of_block: dict[int, int]) -> str:
    if module is None:
        return "pre/post (normalise, aggregate)"
    if module.startswith("features."):
        block = int(module.split(".")[1])
        return "backbone stem" if block == 0 else f"backbone stage {stage_of_block[block]}"
    if module.startswith("trans"):
        return "HR transitions"
    m = re.match(r"stage\d\.\d+\.branches\.(\d)", module)
    if m:
        return f"HR branch stride {4 << int(m.group(1))}"
    if ".fuse_layers." in module:
        return "HR fuse layers"
    return "head (final + deconv)"


class Layers:
    """Original IR nodes -> (part, MACs, conv kind), so executed layers can be attributed by name."""

    def __init__(self, model, variant):
        stage_of_block, block = {}, 1
        for s, st in enumerate(variant.backbone, 1):
            for _ in range(st.repeats):
                stage_of_block[block] = s
                block += 1
        self.part, self.macs, self.kind = {}, {}, {}
        for op in model.get_ordered_ops():
            name = op.get_friendly_name()
            mod = module_of(op) if op.get_type_name() in CONV_TYPES or "__module." in name else None
            self.part[name] = part_of(mod, stage_of_block)
            if op.get_type_name() in CONV_TYPES:
                self.macs[name] = conv_macs(op)
                self.kind[name] = conv_kind(op)
        self.by_length = sorted(self.part, key=len, reverse=True)

    def attribute(self, exec_name: str, originals: list[str]) -> tuple[str, int, str | None]:
        """(part, MACs, conv kind) of an executed layer from the original nodes fused into it."""
        names = [n for n in originals if n in self.part] or [n for n in self.by_length if exec_name.endswith(n)][:1]
        if not names:
            return "pre/post (normalise, aggregate)", 0, None
        kinds = [self.kind[n] for n in names if n in self.kind]
        return self.part[names[0]], sum(self.macs.get(n, 0) for n in names), kinds[0] if kinds else None


def conv_kind(op) -> str:
    w = list(op.input(1).get_shape())
    if op.get_type_name() == "ConvolutionBackpropData":
        return "deconv"
    if op.get_type_name() == "GroupConvolution":
        return "depthwise" if w[1] == 1 and w[2] == 1 else "grouped"
    kernel = "1x1" if w[2:] == [1, 1] else "kxk"
    return f"{kernel} conv" + (" (<= 32 ch out)" if w[0] <= 32 else "")


def prepare(xml: Path, size: int):
    import openvino as ov

    model = ov.Core().read_model(xml)
    model.reshape({model.input(0).get_any_name(): [1, size, size, 3]})
    return model


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--h4", help="H-4 FP16 export (folder); default: exported with random weights")
    ap.add_argument("--h0", help="H0 FP16 export (folder); default: exported with random weights")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--same-size", type=int, help="run both at this square size instead of their own")
    ap.add_argument("--threads", type=int, help="INFERENCE_NUM_THREADS (default: OpenVINO's choice)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="another CPU compile property for both models, e.g. CPU_DENORMALS_OPTIMIZATION=YES")
    args = ap.parse_args()
    os.environ.setdefault("OPENVINO_TELEMETRY", "0")

    import openvino as ov

    from edgepose.registry.profiler import cpu_isa, cpu_model
    from edgepose.variants import get_variant

    tmp = Path(tempfile.mkdtemp(prefix="edgepose-perf-"))
    paths = {}
    for name, given in (("H-4", args.h4), ("H0", args.h0)):
        if given:
            paths[name] = Path(given) / "model.xml" if Path(given).is_dir() else Path(given)
        else:
            from edgepose.train.export import export_variant

            paths[name] = export_variant(name, tmp / name, random_init=True, precision="FP16")
    core = ov.Core()
    config = {"PERFORMANCE_HINT": "LATENCY"}
    if args.threads:
        config["INFERENCE_NUM_THREADS"] = args.threads
    config.update(item.split("=", 1) for item in args.set)
    runs = {}
    for name, xml in paths.items():
        variant = get_variant(name)
        size = args.same_size or variant.test_short_side
        model = prepare(xml, size)
        layers = Layers(model, variant)
        counted = core.compile_model(model, "CPU", {**config, "PERF_COUNT": "YES"})
        plain = core.compile_model(model, "CPU", config)
        originals = {op.get_friendly_name(): op.get_rt_info()["originalLayersNames"].astype(str).split(",")
                     for op in counted.get_runtime_model().get_ordered_ops()}
        frame = np.random.default_rng(0).integers(0, 256, (1, size, size, 3), dtype=np.uint8)
        runs[name] = dict(size=size, layers=layers, originals=originals, frame=frame,
                          counted=counted.create_infer_request(), plain=plain.create_infer_request(),
                          precision=plain.get_property("INFERENCE_PRECISION_HINT").to_string(),
                          threads=plain.get_property("INFERENCE_NUM_THREADS"),
                          macs=sum(layers.macs.values()), wall=[], parts=[], types=[])
    for r in runs.values():
        for _ in range(3):
            r["plain"].infer({0: r["frame"]})
            r["counted"].infer({0: r["frame"]})
    for _ in range(args.rounds):
        for r in runs.values():
            t0 = time.perf_counter()
            r["plain"].infer({0: r["frame"]})
            r["wall"].append((time.perf_counter() - t0) * 1e3)
            r["counted"].infer({0: r["frame"]})
            parts, types = collections.Counter(), collections.Counter()
            for info in r["counted"].get_profiling_info():
                if info.status != info.Status.EXECUTED:
                    continue
                ms = info.real_time.total_seconds() * 1e3
                part, macs, kind = r["layers"].attribute(info.node_name, r["originals"].get(info.node_name, []))
                kind = kind or info.node_type
                parts[part] += ms
                types[kind] += ms
                if _ == 0:  # MACs are the same every round
                    r.setdefault("part_macs", collections.Counter())[part] += macs
                    r.setdefault("type_macs", collections.Counter())[kind] += macs
            r["parts"].append(parts)
            r["types"].append(types)

    h4, h0 = runs["H-4"], runs["H0"]
    print(f"CPU {cpu_model()} ({cpu_isa()}), {os.cpu_count()} cores, OpenVINO {ov.get_version()}, "
          f"{args.rounds} interleaved rounds, config {config}")
    for name, r in runs.items():
        w = np.array(r["wall"])
        print(f"{name}: {r['size']}x{r['size']}, {r['macs'] / 1e9:.2f} GMAC, precision {r['precision']}, "
              f"{r['threads']} threads: {np.median(w):.1f} ms median (p10-p90 {np.percentile(w, 10):.1f}-"
              f"{np.percentile(w, 90):.1f}), {r['macs'] / 1e6 / np.median(w):.1f} GMAC/s")
    ratios = np.array(h0["wall"]) / np.array(h4["wall"])
    print(f"H-4 vs H0: {np.median(ratios):.2f}x faster (per-round p10-p90 {np.percentile(ratios, 10):.2f}-"
          f"{np.percentile(ratios, 90):.2f}); MACs say {h0['macs'] / h4['macs']:.2f}x")
    for title, key in (("network part", "parts"), ("layer type", "types")):
        print_table(title, key, h4, h0)
    return 0


def median_counter(counters: list[collections.Counter]) -> dict[str, float]:
    keys = set().union(*counters)
    return {k: float(np.median([c.get(k, 0.0) for c in counters])) for k in keys}


def print_table(title: str, key: str, h4: dict, h0: dict) -> None:
    """Time and MACs per group: ms, share of the total, GMAC/s, and the H0/H-4 ratios of time and of MACs."""
    t4, t0 = median_counter(h4[key]), median_counter(h0[key])
    m4, m0 = h4[f"{key[:-1]}_macs"], h0[f"{key[:-1]}_macs"]
    total4, total0 = sum(t4.values()), sum(t0.values())
    print(f"\nby {title} (median ms per inference from PERF_COUNT; GMAC/s = conv MACs / time)")
    print(f"{title:<34} {'H-4 ms':>7} {'%':>5} {'GMAC/s':>7} {'H0 ms':>7} {'%':>5} {'GMAC/s':>7} "
          f"{'t ratio':>7} {'MAC ratio':>9}")
    for k in sorted(set(t4) | set(t0), key=lambda k: -t4.get(k, 0)):
        a, b = t4.get(k, 0.0), t0.get(k, 0.0)
        ma, mb = m4.get(k, 0), m0.get(k, 0)
        gs = lambda m, t: f"{m / 1e6 / t:7.1f}" if m and t > 0 else f"{'-':>7}"  # noqa: E731
        tr = f"{b / a:7.2f}" if a > 0 else f"{'-':>7}"
        mr = f"{mb / ma:9.2f}" if ma else f"{'-':>9}"
        print(f"{k:<34} {a:7.2f} {100 * a / total4:5.1f} {gs(ma, a)} {b:7.2f} {100 * b / total0:5.1f} "
              f"{gs(mb, b)} {tr} {mr}")
    print(f"{'sum of layers':<34} {total4:7.2f} {'':>5} {'':>7} {total0:7.2f} {'':>5} {'':>7} {total0 / total4:7.2f}")
    # The bound: H-4's convolutions as efficient (GMAC/s) as H0's in the same group, everything else as measured.
    ideal4 = sum(m4[k] * t0[k] / m0[k] if m4.get(k) and m0.get(k) and t0.get(k) else t for k, t in t4.items())
    print(f"if H-4's convolutions ran at H0's GMAC/s per {title}: H-4 {ideal4:.1f} ms, ratio {total0 / ideal4:.2f}x")


if __name__ == "__main__":
    sys.exit(main())
