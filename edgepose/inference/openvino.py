"""OpenVINO runtime for bottom-up pose networks.

Two kinds of IR are understood:
  * edgepose exports (``model.json`` beside the ``.xml``): u8 BGR NHWC input with normalisation embedded by
    PrePostProcessor, outputs ``heatmaps`` (1,17,h,w) and ``embeddings`` (1,17,h,w,1) at stride 2, no NMS;
  * Intel Open Model Zoo human-pose-estimation-0005/6/7: f32 BGR NCHW input (normalisation folded into the
    graph), the same two outputs at stride 2, with max-pool NMS already applied.

Frames are resized keeping their aspect ratio (short side to the model size, long side to the next multiple of
the network's divisor) and padded right/bottom, as the official test code and Intel's demo do. The model is
reshaped once per frame size and compiled with a cache dir, so a restart skips compilation.
"""

from __future__ import annotations

import logging
import os
import threading
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


def read_model_info(xml: str | Path) -> ModelInfo:
    """Identify a pose IR and read its card, without compiling it."""
    xml = model_file(xml, ".xml", "pass an .xml path, a model name or 'auto'; see `edgepose models list`")
    if xml.suffix != ".xml":
        raise ModelError(f"{xml} is not an OpenVINO IR .xml file")
    if not xml.with_suffix(".bin").exists():
        raise ModelError(f"weights missing: {xml.with_suffix('.bin')} must sit beside {xml.name}")
    card = read_card(xml, xml.with_suffix(".bin"), "edgepose-ir")
    if card is not None:
        return card_info(card, xml)
    head = xml.read_text(errors="replace")[:4000]
    if "human-pose-estimation" in xml.stem or 'name="image"' in head:
        size = _omz_input_size(xml)
        return ModelInfo(name=xml.stem, kind="omz", path=xml, input_size=size, divisor=32, stride=2,
                         nms_in_graph=True)
    raise ModelError(f"{xml} is neither an edgepose export (no model.json beside it) nor an Intel OMZ "
                     "human-pose-estimation model")


def _omz_input_size(xml: Path) -> int:
    import openvino as ov

    model = ov.Core().read_model(xml)
    shape = model.input(0).get_partial_shape()
    return int(shape[2].get_length())


def _shapes(ports) -> dict[str, tuple]:
    """name -> shape (None for dynamic dims) of every output port, under each of its names."""
    shapes = {}
    for port in ports:
        shape = tuple(d.get_length() if d.is_static else None for d in port.get_partial_shape())
        for name in port.get_names():
            shapes[name] = shape
    return shapes


def precision_config(hint: str | None) -> dict:
    """OpenVINO config for an inference precision hint; EDGEPOSE_PRECISION_HINT overrides (tests force f32)."""
    hint = os.environ.get("EDGEPOSE_PRECISION_HINT") or hint
    return {"INFERENCE_PRECISION_HINT": hint} if hint else {}


class _Session:
    """Everything bound to one frame size: the compiled model, its request(s) and the input buffer."""

    def __init__(self, compiled, geometry: Geometry):
        self.compiled = compiled
        self.geometry = geometry
        self.net_size = geometry.net_size
        self.request = compiled.create_infer_request()
        self.buffer = geometry.new_buffer()
        self.queue = None
        self.lock = threading.Lock()


class PoseModel:
    """A pose IR that feeds raw frames (BGR, or I420 from capture) and returns ``NetOutput``.

    It is compiled once per frame size (so several sources of different sizes can share one model) with the
    OpenVINO cache dir, so restarts skip compilation.
    mode="latency": one synchronous request (fastest for one stream on few cores).
    mode="throughput": an ``AsyncInferQueue`` so capture, inference and decoding overlap (``submit``).
    """

    def __init__(self, xml: str | Path, *, device: str = "CPU", mode: str = "latency",
                 cache_dir: str | Path | None = None, precision_hint: str | None = None,
                 input_size: int | None = None):
        import openvino as ov

        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.info = read_model_info(xml)
        self.device = device
        self.mode = mode
        self.input_size = input_size or self.info.input_size
        self._core = ov.Core()
        if cache_dir:
            Path(cache_dir).mkdir(parents=True, exist_ok=True)
            self._core.set_property({"CACHE_DIR": str(cache_dir)})
        available = self._core.available_devices
        base = device.split(":")[0].split(".")[0]
        if base not in ("AUTO", "MULTI", "HETERO") and not any(d.startswith(base) for d in available):
            raise ModelError(f"OpenVINO device {device!r} is not available here (found: {', '.join(available)})")
        self._config = {"PERFORMANCE_HINT": mode.upper(), **precision_config(precision_hint)}
        try:
            self._model = self._core.read_model(self.info.path)
        except RuntimeError as exc:
            raise ModelError(f"cannot read {self.info.path}: {str(exc).splitlines()[0]} (corrupt or "
                             "truncated file? re-export or pull it again)") from None
        check_outputs(self.info, _shapes(self._model.outputs))
        self._input_name = self._model.input(0).get_any_name()
        self._failure: BaseException | None = None  # raised in a completion callback, re-raised to the caller
        self._sessions: dict[tuple[int, int], _Session] = {}
        self._compiled: dict[tuple[int, int], object] = {}
        self._last: _Session | None = None
        self._lock = threading.Lock()

    # -- compilation --------------------------------------------------------------------------------------
    def prepare(self, width: int, height: int) -> _Session:
        """Compile for frames of width x height (once per size; later calls return the same session)."""
        with self._lock:
            session = self._sessions.get((width, height))
            if session is None:
                geometry = Geometry.for_frame(width, height, self.input_size, self.info.divisor)
                compiled = self._compiled.get(geometry.net_size)
                if compiled is None:
                    compiled = self._compile(*geometry.net_size)
                    shapes = _shapes(compiled.outputs)
                    for name in OUTPUTS:
                        check_output_size(self.info, geometry, name, shapes[name])
                self._compiled[geometry.net_size] = compiled
                session = _Session(compiled, geometry)
                self._sessions[(width, height)] = session
            self._last = session
            return session

    def geometry(self, width: int, height: int) -> Geometry:
        """How frames of width x height enter the network (compiles for that size if needed)."""
        return self.prepare(width, height).geometry

    def _compile(self, net_w: int, net_h: int):
        import openvino as ov

        model = self._model.clone()
        if self.info.kind == "omz":
            model.reshape({self._input_name: [1, 3, net_h, net_w]})
            # Feed u8 NHWC frames to OMZ models too; its normalisation is folded into the graph.
            ppp = ov.preprocess.PrePostProcessor(model)
            ppp.input().tensor().set_element_type(ov.Type.u8).set_layout(ov.Layout("NHWC"))
            ppp.input().model().set_layout(ov.Layout("NCHW"))
            model = ppp.build()
        else:
            model.reshape({self._input_name: [1, net_h, net_w, 3]})
        try:
            compiled = self._core.compile_model(model, self.device, self._config)
        except RuntimeError as exc:
            raise ModelError(f"OpenVINO cannot compile {self.info.name} for {self.device} at {net_w}x{net_h}: "
                             f"{str(exc).splitlines()[0]}") from None
        log.info("compiled %s for %s at %dx%d (%s)", self.info.name, self.device, net_w, net_h, self.mode)
        return compiled

    @property
    def network_shape(self) -> tuple[int, int] | None:
        """(width, height) of the network input for the most recently used frame size."""
        return self._last.net_size if self._last else None

    @property
    def optimal_requests(self) -> int:
        if self._last is None:
            return 1
        return int(self._last.compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))

    def runtime_precision(self) -> str:
        """The precision the device really executes in (bf16/f32/...), for benchmarks and profiles."""
        if self._last is None:
            return "unknown"
        try:
            value = self._last.compiled.get_property("INFERENCE_PRECISION_HINT")
        except RuntimeError:  # not every device reports it
            return "unknown"
        return value.to_string() if hasattr(value, "to_string") else str(value)

    def runtime_properties(self) -> dict:
        """What the device compiled for the most recent frame size: precision, threads, streams, requests."""
        if self._last is None:
            return {}
        props = {"precision": self.runtime_precision()}
        for key, name in (("threads", "INFERENCE_NUM_THREADS"), ("streams", "NUM_STREAMS"),
                          ("requests", "OPTIMAL_NUMBER_OF_INFER_REQUESTS")):
            try:
                props[key] = int(self._last.compiled.get_property(name))
            except (RuntimeError, TypeError, ValueError):  # not every device reports every property
                props[key] = None
        return props

    # -- running ------------------------------------------------------------------------------------------
    def _fill(self, session: _Session, image: np.ndarray) -> np.ndarray:
        # One buffer per size is enough: OpenVINO copies inputs into the request (share_inputs defaults to
        # False), and the padding outside the resized area stays zero.
        return session.geometry.fill(image, session.buffer)

    def _output(self, session: _Session, request) -> NetOutput:
        # Geometry.output copies: the request's buffers are reused by the next inference.
        return session.geometry.output(request.get_tensor("heatmaps").data[0],
                                       request.get_tensor("embeddings").data[0], self.info)

    def infer(self, image: np.ndarray | I420Image) -> NetOutput:
        """Run one frame (BGR, or an I420 picture from capture) synchronously (thread-safe; sources sharing the model take turns)."""
        check_image(image)
        session = self.prepare(image.shape[1], image.shape[0])
        with session.lock:
            session.request.infer({self._input_name: self._fill(session, image)})
            return self._output(session, session.request)

    def submit(self, image: np.ndarray | I420Image, userdata, callback: Callable[[NetOutput, object], None]) -> None:
        """Queue one frame on the async queue; ``callback(output, userdata)`` runs on an OpenVINO thread.

        Blocks only while every request is busy, which is the back-pressure capture needs. An exception raised
        while completing an earlier frame (its output or ``callback``) is raised here, and by ``wait_all``.
        """
        import openvino as ov

        check_image(image)
        self._raise_failure()
        session = self.prepare(image.shape[1], image.shape[0])
        with session.lock:
            if session.queue is None:
                jobs = int(session.compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
                session.queue = ov.AsyncInferQueue(session.compiled, jobs)
                session.queue.set_callback(lambda request, data: self._complete(session, request, data))
            session.queue.start_async({self._input_name: self._fill(session, image)}, (userdata, callback))

    def _complete(self, session: _Session, request, data) -> None:
        # An exception must not reach OpenVINO: it would come back from the next start_async, and wait_all
        # would then end the process in std::terminate. Keep the first one for the caller instead.
        if self._failure is not None:
            return
        try:
            data[1](self._output(session, request), data[0])
        except BaseException as exc:  # noqa: BLE001 - re-raised on the caller's thread
            self._failure = exc

    def _raise_failure(self) -> None:
        if self._failure is not None:
            failure, self._failure = self._failure, None
            raise failure

    def wait_all(self) -> None:
        """Wait for every submitted frame; raise the first exception of their completions, if any."""
        for session in list(self._sessions.values()):
            if session.queue is not None:
                session.queue.wait_all()
        self._raise_failure()
