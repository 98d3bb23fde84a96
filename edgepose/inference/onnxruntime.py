"""ONNX Runtime backend: the same models and the same ``NetOutput`` as the OpenVINO backend, for GPUs OpenVINO
does not drive (NVIDIA Jetson: TensorRT or CUDA).

It runs ``edgepose export --format onnx`` models: input ``image`` [1, H, W, 3] u8 BGR with normalisation inside
the graph and dynamic H/W, outputs ``heatmaps`` and ``embeddings``, a ``model.json`` card (format
``edgepose-onnx``) beside ``model.onnx``. Frames are resized and padded exactly as the OpenVINO backend does
(``edgepose.inference.common.Geometry``), so both give the same poses from the same weights.

Execution providers are tried in the order TensorRT -> CUDA -> CPU, keeping those this onnxruntime build has.
TensorRT builds an engine per input shape; its engines and timing cache go to ``cache_dir`` so a restart
skips the (minutes-long, on a Jetson) build.
"""

from __future__ import annotations

import logging
import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Callable

import numpy as np

from edgepose.errors import ModelError
from edgepose.inference.common import (
    OUTPUTS,
    Geometry,
    ModelInfo,
    card_info,
    check_image,
    check_output_size,
    check_outputs,
    model_file,
    read_card,
)
from edgepose.resize import I420Image
from edgepose.types import NetOutput

log = logging.getLogger(__name__)

MODES = ("latency", "throughput")
CARD_FORMAT = "edgepose-onnx"
TENSORRT, CUDA, CPU = "TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"
PROVIDER_ORDER = (TENSORRT, CUDA, CPU)
# device name -> providers wanted, best first (CPU is always the last resort ONNX Runtime falls back to).
DEVICE_PROVIDERS = {
    "AUTO": PROVIDER_ORDER,
    "GPU": PROVIDER_ORDER,
    "TENSORRT": PROVIDER_ORDER,
    "CUDA": (CUDA, CPU),
    "CPU": (CPU,),
}
THROUGHPUT_JOBS = 2  # frames in flight: one runs while the next is resized and the last one decoded


def read_onnx_info(path: str | Path) -> ModelInfo:
    """Identify an edgepose ONNX export (``model.onnx`` or its folder) and read its card."""
    path = model_file(path, ".onnx", "export one with `edgepose export --format onnx`")
    if path.suffix != ".onnx":
        raise ModelError(f"{path} is not an .onnx file: the onnxruntime backend runs `edgepose export --format "
                         "onnx` models; use the openvino backend for IRs")
    card = read_card(path, path, CARD_FORMAT)
    if card is None:
        raise ModelError(f"{path.parent / 'model.json'} is missing: the onnxruntime backend runs models made by "
                         "`edgepose export --format onnx`, which writes it beside model.onnx")
    return card_info(card, path)


def choose_providers(device: str, available: list[str]) -> list[str]:
    """Execution providers for ``device`` (AUTO/GPU/TENSORRT/CUDA/CPU), best first, among ``available``."""
    wanted = DEVICE_PROVIDERS.get(device.upper())
    if wanted is None:
        raise ModelError(f"unknown onnxruntime device {device!r}: use one of {', '.join(DEVICE_PROVIDERS)}")
    chosen = [p for p in wanted if p in available]
    if device.upper() not in ("AUTO", "CPU") and chosen[:1] == [CPU]:
        raise ModelError(f"device {device!r} needs a GPU execution provider, but this onnxruntime has only "
                         f"{', '.join(available)}: install onnxruntime-gpu (see deploy/jetson/README.md) or "
                         "use device AUTO/CPU")
    return chosen


def precision_of(hint: str | None) -> str:
    """f16 or f32 for TensorRT; EDGEPOSE_PRECISION_HINT overrides (the tests force f32), as for OpenVINO."""
    hint = (os.environ.get("EDGEPOSE_PRECISION_HINT") or hint or "auto").lower()
    return "f32" if hint == "f32" else "f16"


class _Frames:
    """Everything bound to one frame size: its geometry and the input buffer of synchronous runs."""

    def __init__(self, geometry: Geometry):
        self.geometry = geometry
        self.buffer = geometry.new_buffer()
        self.lock = threading.Lock()


class OnnxPoseModel:
    """An edgepose ONNX export on ONNX Runtime, with the public surface of ``PoseModel``.

    mode="latency": ``infer`` runs one frame synchronously.
    mode="throughput": ``submit`` keeps ``THROUGHPUT_JOBS`` frames in flight on worker threads (ONNX Runtime
    sessions accept concurrent runs) so capture, inference and decoding overlap.
    """

    def __init__(self, path: str | Path, *, device: str = "AUTO", mode: str = "latency",
                 cache_dir: str | Path | None = None, precision_hint: str | None = None,
                 input_size: int | None = None):
        try:
            import onnxruntime as ort
        except ModuleNotFoundError:
            raise ModelError("onnxruntime is not installed: `pip install edgepose[onnx]` (onnxruntime-gpu on a "
                             "Jetson, see deploy/jetson/README.md) or use the openvino backend") from None
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.info = read_onnx_info(path)
        self.device = device
        self.mode = mode
        self.input_size = input_size or self.info.input_size
        self._precision = precision_of(precision_hint)
        providers = choose_providers(device, ort.get_available_providers())
        options = ort.SessionOptions()
        options.log_severity_level = 3  # ORT's warnings about node placement are noise for users
        try:
            self._session = ort.InferenceSession(
                str(self.info.path), options, providers=[self._provider(p, cache_dir) for p in providers])
        except Exception as exc:  # ORT raises its own exception types (Fail, InvalidGraph, ...)
            raise ModelError(f"ONNX Runtime cannot load {self.info.path}: {str(exc).splitlines()[0]} (corrupt "
                             "or truncated file? export it again)") from None
        check_outputs(self.info, {o.name: tuple(d if isinstance(d, int) else None for d in o.shape)
                                  for o in self._session.get_outputs()})
        self.providers = self._session.get_providers()
        log.info("%s on ONNX Runtime with %s", self.info.name, ", ".join(self.providers))
        self._frames: dict[tuple[int, int], _Frames] = {}
        self._last: _Frames | None = None
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._slots = threading.Semaphore(THROUGHPUT_JOBS)
        self._pending: set[Future] = set()

    def _provider(self, name: str, cache_dir: str | Path | None):
        if name != TENSORRT:
            return name
        options = {"trt_fp16_enable": self._precision == "f16"}
        if cache_dir:
            trt_cache = Path(cache_dir) / "tensorrt"
            trt_cache.mkdir(parents=True, exist_ok=True)
            options.update(trt_engine_cache_enable=True, trt_engine_cache_path=str(trt_cache),
                           trt_timing_cache_enable=True, trt_timing_cache_path=str(trt_cache))
        return name, options

    # -- sizes --------------------------------------------------------------------------------------------
    def prepare(self, width: int, height: int) -> _Frames:
        """Set up frames of width x height (once per size) and run the network once on it, so TensorRT builds
        its engine for this shape now rather than on the first real frame."""
        with self._lock:
            frames = self._frames.get((width, height))
            if frames is None:
                frames = _Frames(Geometry.for_frame(width, height, self.input_size, self.info.divisor))
                with frames.lock:
                    outputs = self._session.run(list(OUTPUTS), {"image": frames.buffer})
                for name, out in zip(OUTPUTS, outputs):
                    check_output_size(self.info, frames.geometry, name, out.shape)
                self._frames[(width, height)] = frames
            self._last = frames
            return frames

    def geometry(self, width: int, height: int) -> Geometry:
        """How frames of width x height enter the network (prepares that size if needed)."""
        return self.prepare(width, height).geometry

    @property
    def network_shape(self) -> tuple[int, int] | None:
        """(width, height) of the network input for the most recently used frame size."""
        return self._last.geometry.net_size if self._last else None

    @property
    def optimal_requests(self) -> int:
        return THROUGHPUT_JOBS if self.mode == "throughput" else 1

    def runtime_precision(self) -> str:
        """The precision the first execution provider runs in: f16 for TensorRT with fp16 on, else f32."""
        return self._precision if self.providers[0] == TENSORRT else "f32"

    # -- running ------------------------------------------------------------------------------------------
    def _run(self, buffer: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        heatmaps, tags = self._session.run(list(OUTPUTS), {"image": buffer})
        return heatmaps[0], tags[0]

    def infer(self, image: np.ndarray | I420Image) -> NetOutput:
        """Run one frame (BGR, or an I420 picture from capture) synchronously (thread-safe; sources sharing the model take turns per size)."""
        check_image(image)
        frames = self.prepare(image.shape[1], image.shape[0])
        with frames.lock:
            heatmaps, tags = self._run(frames.geometry.fill(image, frames.buffer))
        return frames.geometry.output(heatmaps, tags, self.info)

    def submit(self, image: np.ndarray | I420Image, userdata, callback: Callable[[NetOutput, object], None]) -> None:
        """Queue one frame; ``callback(output, userdata)`` runs on a worker thread.

        Blocks only while ``THROUGHPUT_JOBS`` frames are in flight (the back-pressure capture needs). An error
        in an earlier frame is raised here or by ``wait_all``.
        """
        check_image(image)
        geometry = self.prepare(image.shape[1], image.shape[0]).geometry
        # Each frame in flight needs its own input: ONNX Runtime reads the array in place while it runs.
        buffer = geometry.fill(image, geometry.new_buffer())
        self._raise_failed()
        self._slots.acquire()
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(THROUGHPUT_JOBS, thread_name_prefix="edgepose-ort")
            future = self._pool.submit(self._job, geometry, buffer, userdata, callback)
            self._pending.add(future)

    def _job(self, geometry: Geometry, buffer: np.ndarray, userdata, callback) -> None:
        try:
            heatmaps, tags = self._run(buffer)
            callback(geometry.output(heatmaps, tags, self.info), userdata)
        finally:
            self._slots.release()

    def _raise_failed(self) -> None:
        with self._lock:
            done = {f for f in self._pending if f.done()}
            self._pending -= done
        for future in done:
            future.result()  # re-raises the job's exception

    def wait_all(self) -> None:
        """Wait until every submitted frame has been delivered to its callback."""
        with self._lock:
            pending = set(self._pending)
        wait(pending)
        self._raise_failed()
