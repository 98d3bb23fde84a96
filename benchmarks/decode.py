"""Grouping speed and results: edgepose's Numba decoder against an efficient NumPy+SciPy reference and against
Intel's Open Model Zoo Python ``AssociativeEmbeddingDecoder``, the same maps into all three.

Cases: perfect maps rendered from the coco-mini ground truth (edgepose/eval/oracle.py); synthetic crowds of 5, 20
and 50 people on 320x320 maps (a 640x640 input at stride 2, network-like noise, 10 % of joints missing); real
outputs of the shipped edgepose-h4 on frames of the sample videos; the maps a random-weight H-2 gives for a
768x432 noise frame (what ``--model auto`` used to time: 30 fragment people, nothing to group) when torch is
installed to export it.

Timing: per case the decoders run interleaved (A B C, B C A, ...) in one process, one thread, so machine noise
lands on all sides; per-frame median and the interquartile range of the thread's CPU time (time.thread_time: time
the thread waits for a shared core is left out, cache and memory contention from its neighbours is not). A fourth
line, "read maps once", times one ``max()`` over the heatmaps and one over the tags, interleaved with the others:
what merely reading the maps from memory costs, the floor under any decoder that looks at every pixel. Intel's
decoder expects the network's NMS-ed map (Intel's IRs end in a max-pool NMS): it gets one made by scipy's
maximum_filter, inside its timing, as a user with an edgepose model would have to.

Poses: ours and the reference must agree exactly (same people, keypoints within 1e-4 px, scores within 1e-6).
Against Intel the counts and matches are printed, then Intel's decoder is rerun with the two settings that make it
differ by design switched off (the 0.1 pose threshold of the OMZ demo, and ``dist_reweight``, its spatial
reweighting of the matching cost) and its positions moved by the +0.5 pixel centre it omits, to show what is left.

Intel's decoder: ``pip install --no-deps openvino-model-api==0.2.5.4`` (benchmarks/requirements.txt). That
package imports ``openvino.runtime``, which OpenVINO 2025 removed, so its two decoder classes are loaded from its
source file without the package's ``__init__``; the code run is Intel's, unchanged.

    .venv/bin/python benchmarks/decode.py [--repeat 9] [--no-intel] [--cold] [--phases]
                                          [--cases coco,synthetic,real,noise]
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import scipy
from scipy.ndimage import maximum_filter
from scipy.optimize import linear_sum_assignment

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "benchmarks"))

from common import SAMPLES, default_model  # noqa: E402
from pose_render import coco_oracle, synthetic_frame  # noqa: E402
from reference_decoder import reference_group  # noqa: E402

from edgepose.decode import GroupingParams, group  # noqa: E402
from edgepose.registry.profiler import cpu_isa, cpu_model  # noqa: E402

COLD = "import time, numpy as np; t = time.perf_counter(); from edgepose.decode import group; " \
       "group(np.zeros((17, 8, 8), np.float32), np.zeros((17, 8, 8), np.float32)); " \
       "print(time.perf_counter() - t)"
POSE_THRESHOLD = 0.1  # the OMZ demo's default --prob_threshold, which becomes the decoder's pose_threshold


def intel_decoder_classes():
    """Intel's ``AssociativeEmbeddingDecoder`` (and the ``Pose`` it uses) from the installed model_api, or None."""
    spec = importlib.util.find_spec("model_api")
    if spec is None or not spec.submodule_search_locations:
        return None
    source = Path(spec.submodule_search_locations[0], "models", "hpe_associative_embedding.py")
    tree = ast.parse(source.read_text())
    tree.body = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name in ("Pose", "AssociativeEmbeddingDecoder")]
    namespace = {"np": np, "linear_sum_assignment": linear_sum_assignment}
    exec(compile(tree, str(source), "exec"), namespace)
    return namespace["AssociativeEmbeddingDecoder"]


def intel_runner(decoder_class, *, pose_threshold=POSE_THRESHOLD, dist_reweight=True):
    """(heatmaps, tags) -> (xy (n, 17, 2), conf (n, 17), score (n,)) as the OMZ demo configures the decoder."""
    decoder = decoder_class(num_joints=17, max_num_people=30, detection_threshold=0.1, use_detection_val=True,
                            ignore_too_much=False, tag_threshold=1, pose_threshold=pose_threshold, adjust=True,
                            refine=True, delta=0.0, dist_reweight=dist_reweight)

    def run(heat, tags):
        nms = heat * (maximum_filter(heat, size=(1, 5, 5), mode="constant", cval=-np.inf) == heat)
        tg = tags if tags.ndim == 4 else tags[..., None]
        poses, scores = decoder(heat[None].copy(), tg[None], nms[None])  # it takes |heatmaps| in place
        poses = np.asarray(poses, np.float32).reshape(-1, 17, poses.shape[-1] if len(poses) else 3 + tg.shape[-1])
        return poses[:, :, :2], poses[:, :, 2], np.asarray(scores, np.float32)

    return run


def ours(heat, tags):
    p = group(heat, tags)
    return p.xy, p.conf, p.score


def reference(heat, tags):
    return reference_group(heat, tags)


def read_once(heat, tags):
    return heat.max(), tags.max()


def interleaved(fns: dict, inputs, repeat: int) -> dict[str, list[float]]:
    """Per-frame ms of each decoder over `repeat` rounds; the order rotates every round."""
    names = list(fns)
    times = {n: [] for n in names}
    for r in range(repeat):
        for name in names[r % len(names):] + names[: r % len(names)]:
            t = time.thread_time()
            for heat, tags in inputs:
                fns[name](heat, tags)
            times[name].append((time.thread_time() - t) / len(inputs) * 1e3)
    return times


def phase_times(inputs, repeat: int) -> dict[str, float]:
    """Median per-frame thread CPU ms of each step of ``grouping.group_arrays``, run one after the other on its own
    intermediate results, and of the whole ``group()`` call; the rest (adjust, scores, wrapper) is the difference.
    Refinement includes the tags' finiteness check, which its tag boxes do on their way."""
    from edgepose.decode import _checked_maps, grouping

    p = GroupingParams()
    order = np.asarray(p.joint_order, np.int64)
    steps = ("candidates", "matching", "refinement")
    times = {k: [] for k in steps + ("group() total",)}
    for _ in range(repeat):
        acc = dict.fromkeys(times, 0.0)
        for heat, tags in inputs:
            hm, tg = _checked_maps(heat, tags)
            t1 = time.thread_time()
            cv, cp, cn, tile_max, _ = grouping._candidates(hm, True, p.nms_kernel // 2, p.top_k, p.detection_threshold)
            t2 = time.thread_time()
            people = grouping._match(tg, cv, cp, cn, order, p.tag_threshold, p.max_people, p.use_detection_val,
                                     p.ignore_too_much)
            t3 = time.thread_time()
            jp, jv, ts, tc = (a[: p.max_people] for a in people)
            xy, conf = np.zeros((len(jp), 17, 2), np.float32), np.zeros((len(jp), 17), np.float32)
            grouping._refine(hm, tg, tile_max, jp, jv, ts, tc, cp, cn, xy, conf)
            t4 = time.thread_time()
            group(heat, tags)
            t5 = time.thread_time()
            for key, dt in zip(times, (t2 - t1, t3 - t2, t4 - t3, t5 - t4)):
                acc[key] += dt
        for key in times:
            times[key].append(acc[key] / len(inputs) * 1e3)
    med = {k: statistics.median(v) for k, v in times.items()}
    med["rest"] = med["group() total"] - sum(med[k] for k in steps)
    return med


def spread(ms: list[float]) -> str:
    q1, med, q3 = np.percentile(ms, [25, 50, 75])
    return f"{med:8.3f} ms [{q1:.3f}-{q3:.3f}]"


def agree(a, b) -> tuple[bool, str]:
    """Same people, keypoints within 1e-4 px, confidences and scores within 1e-6."""
    if len(a[0]) != len(b[0]):
        return False, f"{len(a[0])} vs {len(b[0])} people"
    dxy = float(np.abs(a[0] - b[0]).max(initial=0))
    dconf = float(np.abs(a[1] - b[1]).max(initial=0))
    dscore = float(np.abs(a[2] - b[2]).max(initial=0))
    return dxy <= 1e-4 and dconf <= 1e-6 and dscore <= 1e-6, f"max |dxy| {dxy:.1e}, |dconf| {dconf:.1e}, |dscore| {dscore:.1e}"


def compare(a, b) -> dict:
    """Match people of b to a (mean distance over joints both found, Hungarian) and count equal joints."""
    na, nb = len(a[0]), len(b[0])
    out = dict(people=(na, nb), matched=0, joints=0, equal=0, moved=0, found_one_side=0)
    if na == 0 or nb == 0:
        return out
    both = (a[1][:, None] > 0) & (b[1][None] > 0)  # (na, nb, 17)
    dist = np.linalg.norm(a[0][:, None] - b[0][None], axis=3)
    cost = np.where(both, dist, 0).sum(2) / np.maximum(both.sum(2), 1) + 1e3 * (both.sum(2) == 0)
    rows, cols = linear_sum_assignment(cost)
    for i, k in zip(rows, cols):
        if cost[i, k] > 2.0:
            continue
        out["matched"] += 1
        fa, fb = a[1][i] > 0, b[1][k] > 0
        d = dist[i, k]
        out["joints"] += int((fa | fb).sum())
        out["equal"] += int((fa & fb & (d <= 1e-3)).sum())
        out["moved"] += int((fa & fb & (d > 1e-3)).sum())
        out["found_one_side"] += int((fa ^ fb).sum())
    return out


def shifted(result):
    """Intel's positions moved to HigherHRNet's pixel-centre convention (+0.5, which Intel's decoder omits)."""
    xy, conf, score = result
    return np.where(conf[..., None] > 0, xy + 0.5, xy), conf, score


def describe(inputs, intel_default, intel_aligned) -> None:
    totals = {}
    for heat, tags in inputs:
        ro = ours(heat, tags)
        for name, fn in (("intel", intel_default), ("aligned", intel_aligned)):
            c = compare(ro, shifted(fn(heat, tags)))
            t = totals.setdefault(name, dict.fromkeys(c, 0) | {"people": [0, 0], "weak": 0})
            t["people"][0] += c["people"][0]
            t["people"][1] += c["people"][1]
            for key in ("matched", "joints", "equal", "moved", "found_one_side"):
                t[key] += c[key]
            t["weak"] += int((ro[2] <= POSE_THRESHOLD).sum())
    d, a = totals["intel"], totals["aligned"]
    print(f"  poses vs Intel: ours {d['people'][0]} people, Intel {d['people'][1]}; {d['weak']} of ours score <= "
          f"{POSE_THRESHOLD} (Intel's pose threshold drops those); {d['matched']} matched, of their "
          f"{d['joints']} joints {d['equal']} equal after Intel's +0.5 px, {d['moved']} moved, "
          f"{d['found_one_side']} found by one side only")
    print(f"  Intel without pose threshold and dist_reweight: {a['people'][1]} people, {a['matched']} matched, "
          f"{a['equal']}/{a['joints']} joints equal, {a['moved']} moved, {a['found_one_side']} one side only "
          "(left: edgepose returns at most max_people=30 people as the official code, Intel every one it forms; "
          "Intel's adjust skips the outer two pixels, its refine rounds half up on tag dimension 0, its top-k "
          "breaks value ties in argpartition order; on noise, matching by position means little)")


def real_outputs(tmp: Path, frames_per_video: int = 6):
    """(heatmaps, tags) of the shipped model on frames spread over each sample video, or [] without them."""
    import cv2

    from edgepose.inference import load_model

    videos = sorted(SAMPLES.glob("*.mp4")) if SAMPLES.is_dir() else []
    if not videos:
        return []
    model = load_model(default_model(tmp))
    out = []
    for video in videos:
        cap = cv2.VideoCapture(str(video))
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        for i in range(frames_per_video):
            cap.set(cv2.CAP_PROP_POS_FRAMES, int((i + 0.5) * n / frames_per_video))
            ok, frame = cap.read()
            if ok:
                r = model.infer(frame)
                out.append((r.heatmaps, r.tags))
        cap.release()
    return out


def noise_outputs(tmp: Path):
    """(heatmaps, tags) of a random-weight H-2 on a 768x432 noise frame, or [] without the train extra."""
    try:
        from edgepose.train.export import export_variant
    except ImportError:
        return []
    from edgepose.inference import load_model

    model = load_model(export_variant("H-2", tmp / "h2-random", random_init=True))
    frame = np.random.default_rng(0).integers(0, 255, (432, 768, 3), dtype=np.uint8)
    r = model.infer(frame)
    return [(r.heatmaps, r.tags)]


def cold_start() -> list[float]:
    env = dict(os.environ, NUMBA_CACHE_DIR=str(Path(os.environ.get("TMPDIR", "/tmp")) / f"edgepose-numba-{os.getpid()}"))
    return [float(subprocess.run([sys.executable, "-c", COLD], env=env, capture_output=True, text=True,
                                 check=True).stdout) for _ in range(2)]


def main() -> None:
    import tempfile

    import numba

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=9, help="interleaved rounds per case")
    ap.add_argument("--no-intel", action="store_true", help="leave Intel's decoder out")
    ap.add_argument("--cold", action="store_true", help="also time a fresh process's first group() call")
    ap.add_argument("--phases", action="store_true",
                    help="also time each step of edgepose's grouping (candidates, matching, refinement)")
    ap.add_argument("--cases", default="coco,synthetic,real,noise",
                    help="comma-separated cases to run (default: all): coco, synthetic, real, noise")
    args = ap.parse_args()
    kinds = set(args.cases.split(","))
    load = os.getloadavg()
    print(f"{cpu_model()} ({cpu_isa()}), {os.cpu_count()} cores, load {load[0]:.1f}; python "
          f"{platform.python_version()}, numpy {np.__version__}, scipy {scipy.__version__}, numba {numba.__version__}; "
          "all decoders on one thread, float32 maps, float64 tag arithmetic; times are thread CPU time")
    intel_class = None if args.no_intel else intel_decoder_classes()
    if intel_class is None and not args.no_intel:
        print("Intel's decoder not installed: pip install --no-deps -r benchmarks/requirements.txt")
    fns = {"edgepose": ours, "reference": reference}
    if intel_class is not None:
        fns["intel"] = intel_runner(intel_class)
        aligned = intel_runner(intel_class, pose_threshold=-1.0, dist_reweight=False)
    fns["read maps once"] = read_once

    tmp = Path(tempfile.mkdtemp(prefix="edgepose-bench-"))
    rng = np.random.default_rng(0)
    ann = REPO.parent / "shared/data/coco-mini/person_keypoints.json"
    cases = {}
    if "coco" in kinds and ann.exists():
        cases["coco-mini oracle maps (32 images)"] = [(o.heatmaps, o.tags) for _, o in coco_oracle(ann)]
    for n in (5, 20, 50) if "synthetic" in kinds else ():
        heat, tags, _ = synthetic_frame(rng, n, (320, 320))
        cases[f"synthetic {n} people, 320x320 maps"] = [(heat, tags)]
    real = real_outputs(tmp) if "real" in kinds else []
    if real:
        cases[f"edgepose-h4 on sample videos ({len(real)} frames, {real[0][0].shape[2]}x{real[0][0].shape[1]} maps)"] = real
    noise = noise_outputs(tmp) if "noise" in kinds else []
    if noise:
        cases[f"random-weight H-2, 768x432 frame ({noise[0][0].shape[2]}x{noise[0][0].shape[1]} maps)"] = noise

    params = GroupingParams()
    print(f"grouping: HigherHRNet test settings (top_k {params.top_k}, max_people {params.max_people}, adjust, "
          "refine); times are per frame, median [interquartile range]")
    for label, inputs in cases.items():
        for heat, tags in inputs[:1]:
            group(heat, tags)  # JIT / cache load outside the timing
        times = interleaved(fns, inputs, args.repeat)
        med = {k: statistics.median(v) for k, v in times.items()}
        print(f"{label}")
        for name, ms in times.items():
            ratio = "" if name == "edgepose" else f"  edgepose is {med[name] / med['edgepose']:6.1f}x faster"
            if name == "read maps once":
                ratio = f"  edgepose takes {med['edgepose'] / med[name]:5.1f}x this"
            print(f"  {name:14s} {spread(ms)}{ratio}")
        same = [agree(ours(h, t), reference(h, t)) for h, t in inputs]
        worst = next((why for ok, why in same if not ok), same[0][1])
        print(f"  vs reference: {'same poses' if all(ok for ok, _ in same) else 'DIFFERENT'} on "
              f"{sum(ok for ok, _ in same)}/{len(same)} frames ({worst})")
        if intel_class is not None:
            describe(inputs, fns["intel"], aligned)
        if args.phases:
            med = phase_times(inputs, args.repeat)
            print("  edgepose by step: " + ", ".join(f"{k} {v:.3f}" for k, v in med.items()) + " ms")
    if args.cold:
        first, second = cold_start()
        print(f"fresh process, first group() call incl. import: {first:.2f} s with an empty numba cache, "
              f"{second:.2f} s with the cache on disk")


if __name__ == "__main__":
    main()
