"""Device profiler and ``--model auto``: measure each local model on this device, pick the most accurate one
that keeps up with the target frame rate (or latency), explain the choice, and remember the measurements.

Each model is measured as it will run: in the configured inference mode (one synchronous request, or the async
queue), with the configured precision hint, shared by the configured number of sources, and with the grouping
cost measured on frames with people (``people_frames``: stills of two standing and four seated people, shipped
with the package, so a user's machine measures what this one does). A profile is cached under the user cache dir,
keyed by device name, CPU model, OpenVINO version, the model's topology and weights checksums, the frame size,
mode, sources, precision hint and the set of people frames; any change re-profiles. Selection rule:
  * effective fps (per source): latency mode 1000 / ((latency p50 + overhead_ms) * sources), as the sources take
    turns on one request; throughput mode 1000 / (1000 / throughput_fps + overhead_ms) / sources; overhead =
    measured grouping;
  * with ``max_latency_ms``: the model's p90 latency + overhead must be <= max_latency_ms, otherwise
    effective fps must be >= target_fps;
  * among models that meet it, the highest expected AP wins (ties: faster); if none meets it, the fastest
    model is chosen and a warning says by how much it falls short. Expected AP (``expected_ap``): what the model's
    own card measured, else what the manifest publishes for those weights; an edgepose export is never ranked by
    the paper's figure (its weights are not the paper's), and an untrained one ranks last.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from edgepose.inference import PoseModel
from edgepose.inference.common import file_sha256
from edgepose.registry.catalog import ModelEntry, catalog, find_local, read_card_json, untrained
from edgepose.resize import resize

DEFAULT_SIZE = (640, 480)
PEOPLE = Path(__file__).with_name("people")  # frames with people for the grouping cost (SOURCES.md there)


def people_frames() -> list[np.ndarray]:
    """The shipped frames with people (BGR), in file-name order."""
    import cv2

    return [cv2.imread(str(p)) for p in sorted(PEOPLE.glob("*.jpg"))]


@dataclass(frozen=True)
class Profile:
    model: str
    device: str
    frame_size: tuple[int, int]
    network_size: tuple[int, int]
    precision: str
    latency_ms_p50: float
    latency_ms_p90: float
    throughput_fps: float
    overhead_ms: float
    measured_at: float
    mode: str = "throughput"  # the inference mode measured
    sources: int = 1  # sources sharing the model; effective_fps is per source

    @property
    def effective_fps(self) -> float:
        if self.mode == "latency":
            return 1000.0 / ((self.latency_ms_p50 + self.overhead_ms) * self.sources)
        return 1000.0 / (1000.0 / max(self.throughput_fps, 1e-6) + self.overhead_ms) / self.sources

    @property
    def effective_latency_ms(self) -> float:
        return self.latency_ms_p90 + self.overhead_ms


@dataclass(frozen=True)
class Choice:
    name: str
    profile: Profile
    meets_target: bool
    reason: str


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_isa() -> str:
    """The widest vector ISA this CPU offers, as benchmarks report it."""
    try:
        flags = set(next(line for line in Path("/proc/cpuinfo").read_text().splitlines()
                         if line.startswith("flags")).split(":", 1)[1].split())
    except (OSError, StopIteration):
        return platform.machine()
    parts = [isa for isa in ("avx512_bf16", "amx_bf16", "avx512_vnni", "avx512f", "avx2") if isa in flags]
    return "+".join(parts) or platform.machine()


def device_name(device: str) -> str:
    import openvino as ov

    try:
        return str(ov.Core().get_property(device, "FULL_DEVICE_NAME"))
    except RuntimeError:
        return device


def available_devices() -> list[str]:
    import openvino as ov

    return list(ov.Core().available_devices)


def cache_file() -> Path:
    import platformdirs

    return Path(os.environ.get("EDGEPOSE_CACHE_DIR") or platformdirs.user_cache_dir("edgepose")) / "profiles.json"


def profile_key(xml: Path, device: str, frame_size: tuple[int, int], *, mode: str = "throughput", sources: int = 1,
                precision_hint: str | None = None) -> str:
    import openvino as ov

    # Both files: Intel's 0005/0006/0007 share one weight layout, only the topology (input size) differs.
    parts = [device_name(device), cpu_model(), ov.get_version(), file_sha256(Path(xml)),
             file_sha256(Path(xml).with_suffix(".bin")),
             f"{frame_size[0]}x{frame_size[1]}", os.environ.get("EDGEPOSE_PRECISION_HINT", ""),
             mode, str(sources), precision_hint or "", ",".join(p.name for p in sorted(PEOPLE.glob("*.jpg")))]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:24]


class ProfileCache:
    def __init__(self, path: Path | None = None):
        self.path = path or cache_file()
        try:
            self._data = json.loads(self.path.read_text())
        except (OSError, json.JSONDecodeError):
            self._data = {}

    def get(self, key: str) -> Profile | None:
        raw = self._data.get(key)
        if not raw:
            return None
        raw = dict(raw, frame_size=tuple(raw["frame_size"]), network_size=tuple(raw["network_size"]))
        return Profile(**raw)

    def put(self, key: str, profile: Profile) -> None:
        self._data[key] = asdict(profile)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self._data, indent=1))
        os.replace(tmp, self.path)


def measure(xml: Path, name: str, *, device: str = "CPU", frame_size: tuple[int, int] = DEFAULT_SIZE,
            warmup: int = 2, iterations: int = 10, cache_dir: str | Path | None = None,
            postprocess: Callable | None = None, mode: str = "throughput", sources: int = 1,
            precision_hint: str | None = None) -> Profile:
    """Warm up, then time ``mode`` as the service runs it and the per-frame overhead.

    latency: synchronous requests one after the other (median and p90 latency); throughput: the async queue kept
    full (frames per second, and each frame's submit-to-result latency). ``postprocess(NetOutput)`` is what the
    pipeline does after inference (grouping), timed on the outputs of ``people_frames`` resized to ``frame_size``;
    the service passes the decoder so this module stays independent of it.
    """
    w, h = frame_size
    images = [f if f.shape[1::-1] == (w, h) else resize(f, (w, h)) for f in people_frames()]
    model = PoseModel(xml, device=device, mode=mode, cache_dir=cache_dir, precision_hint=precision_hint)
    model.prepare(w, h)
    for i in range(warmup):
        model.infer(images[i % len(images)])
    outputs, latencies = [], []
    if mode == "latency":
        for i in range(iterations):
            t0 = time.perf_counter()
            outputs.append(model.infer(images[i % len(images)]))
            latencies.append((time.perf_counter() - t0) * 1e3)
        throughput = 1000.0 / float(np.median(latencies))
    else:
        started: dict[int, float] = {}

        def done(out, i: int) -> None:
            latencies.append((time.perf_counter() - started[i]) * 1e3)
            outputs.append(out)

        n = max(iterations, 2 * model.optimal_requests)
        t0 = time.perf_counter()
        for i in range(n):
            started[i] = time.perf_counter()
            model.submit(images[i % len(images)], i, done)
        model.wait_all()
        throughput = n / (time.perf_counter() - t0)
    overhead = [0.0]
    if postprocess is not None:
        postprocess(outputs[0])  # compiles the decoder (Numba) outside the timing
        overhead = []
        for out in outputs:
            t0 = time.perf_counter()
            postprocess(out)
            overhead.append((time.perf_counter() - t0) * 1e3)
    return Profile(
        model=name, device=device, frame_size=(w, h), network_size=model.network_shape,
        precision=model.runtime_precision(),
        latency_ms_p50=round(float(np.median(latencies)), 3), latency_ms_p90=round(float(np.percentile(latencies, 90)), 3),
        throughput_fps=round(throughput, 3), overhead_ms=round(float(np.median(overhead)), 3), measured_at=time.time(),
        mode=mode, sources=sources,
    )


def profile_models(models: dict[str, Path], *, device: str = "CPU", frame_size: tuple[int, int] = DEFAULT_SIZE,
                   reprofile: bool = False, iterations: int = 10, cache: ProfileCache | None = None,
                   progress: Callable | None = None, cache_dir: str | Path | None = None,
                   postprocess: Callable | None = None, mode: str = "throughput", sources: int = 1,
                   precision_hint: str | None = None) -> dict[str, Profile]:
    """Profiles of ``models`` (name -> .xml), from the cache where still valid, measured otherwise (see measure)."""
    cache = cache or ProfileCache()
    out = {}
    for name, xml in models.items():
        key = profile_key(xml, device, frame_size, mode=mode, sources=sources, precision_hint=precision_hint)
        profile = None if reprofile else cache.get(key)
        if profile is None:
            profile = measure(xml, name, device=device, frame_size=frame_size, iterations=iterations,
                              cache_dir=cache_dir, postprocess=postprocess, mode=mode, sources=sources,
                              precision_hint=precision_hint)
            cache.put(key, profile)
        out[name] = profile
        if progress:
            progress(name)
    return out


def expected_ap(name: str, entries: dict[str, ModelEntry] | None = None) -> float:
    """Expected COCO AP (%) for ranking: the ``ap`` its card (``model.json``) measured, else the manifest's figure
    for published weights. An edgepose export without a measured AP ranks last, like an untrained one: the
    paper's Table 3 figure is for the paper's weights, never for a self-trained export of the same variant."""
    entry = (entries or catalog()).get(name)
    local = find_local(name)
    card = read_card_json(local) if local is not None else None
    if card is not None:
        if untrained(local):
            return -1.0
        if card.get("ap") is not None:
            return float(card["ap"])
    if entry is None or entry.ap is None or (card is not None and entry.family == "efficienthrnet"):
        return -1.0
    return entry.ap


def select(profiles: dict[str, Profile], *, target_fps: float = 15.0, max_latency_ms: float | None = None,
           accuracy: Callable[[str], float] = expected_ap) -> Choice:
    """Apply the selection rule (module docstring) to measured profiles."""
    if not profiles:
        raise ValueError("no profiled models to choose from")

    def meets(p: Profile) -> bool:
        if max_latency_ms is not None:
            return p.effective_latency_ms <= max_latency_ms
        return p.effective_fps >= target_fps

    goal = f"p90 latency <= {max_latency_ms:g} ms" if max_latency_ms is not None else f">= {target_fps:g} fps"
    ok = [p for p in profiles.values() if meets(p)]
    if ok:
        best = max(ok, key=lambda p: (accuracy(p.model), p.effective_fps))
        return Choice(best.model, best, True,
                      f"{best.model}: most accurate model meeting {goal} "
                      f"({best.effective_fps:.1f} fps, {best.effective_latency_ms:.1f} ms p90 with decoding)")
    fastest = max(profiles.values(), key=lambda p: p.effective_fps)
    if max_latency_ms is not None:
        short = f"{fastest.effective_latency_ms - max_latency_ms:.1f} ms over the latency budget"
    else:
        short = f"{target_fps - fastest.effective_fps:.1f} fps short of the target"
    return Choice(fastest.model, fastest, False,
                  f"no model meets {goal} on this device; using the fastest, {fastest.model}, "
                  f"at {fastest.effective_fps:.1f} fps ({short})")


def format_table(profiles: dict[str, Profile], accuracy: Callable[[str], float] = expected_ap) -> str:
    """Profiles as an aligned text table, most accurate first."""
    head = f"{'model':<28} {'AP':>5} {'net size':>9} {'prec':>5} {'p50 ms':>7} {'p90 ms':>7} {'fps':>6} {'eff fps':>7}"
    lines = [head, "-" * len(head)]
    for p in sorted(profiles.values(), key=lambda p: -accuracy(p.model)):
        ap = accuracy(p.model)
        lines.append(f"{p.model:<28} {ap if ap >= 0 else float('nan'):>5.1f} {p.network_size[0]:>4}x{p.network_size[1]:<4} "
                     f"{p.precision:>5} {p.latency_ms_p50:>7.1f} {p.latency_ms_p90:>7.1f} {p.throughput_fps:>6.1f} "
                     f"{p.effective_fps:>7.1f}")
    return "\n".join(lines)
