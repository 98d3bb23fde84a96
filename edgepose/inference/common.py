"""What every inference backend shares: the contract (``PoseBackend``), the model card, frame geometry
(resize + pad) and the output checks.

Backends (OpenVINO in ``openvino.py``, ONNX Runtime in ``onnxruntime.py``) differ only in how they run the
network; how a frame is scaled into the network input and how the outputs map back to frame pixels must be
identical, or the same model would give different poses on a NUC and on a Jetson. Both check a model's outputs
when it is loaded and again when it is prepared for a frame size, so a wrong model fails before the service
says ``online``, never on the first frame.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol

import numpy as np

from edgepose.errors import ModelError
from edgepose.resize import I420Image, resize
from edgepose.types import NUM_JOINTS, NetOutput

CARD_NAME = "model.json"
OUTPUTS = ("heatmaps", "embeddings")  # what every pose model must produce, 17 channels each
# The card's "format" -> the backend that runs it, for errors that say what to do instead.
CARD_BACKENDS = {"edgepose-ir": "openvino", "edgepose-onnx": "onnxruntime"}


@dataclass(frozen=True)
class ModelInfo:
    """What the runtime needs to know about a model file."""

    name: str
    kind: str  # "edgepose" | "omz"
    path: Path  # the file the backend loads: an IR .xml or an .onnx
    input_size: int  # short side of the network input
    divisor: int  # network input sides must be multiples of this
    stride: int  # heatmap pixels -> network input pixels
    nms_in_graph: bool
    card: dict = field(default_factory=dict, compare=False)

    @property
    def xml(self) -> Path:
        """The IR's .xml (OpenVINO models)."""
        return self.path

    @property
    def bin(self) -> Path:
        """The IR's weights file beside the .xml (OpenVINO models)."""
        return self.path.with_suffix(".bin")


def file_sha256(path: Path) -> str:
    return file_digest(path, "sha256")


def file_digest(path: Path, algorithm: str) -> str:
    """Hex digest of a file with a hashlib ``algorithm``, read in 1 MiB chunks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def model_file(path: str | Path, suffix: str, missing_hint: str) -> Path:
    """The ``suffix`` model file a user named by itself or by its folder (which must hold exactly one)."""
    path = Path(path)
    if path.is_dir():
        candidates = sorted(path.glob(f"*{suffix}"))
        if len(candidates) != 1:
            raise ModelError(f"{path} holds {len(candidates)} {suffix} files; pass the model's {suffix} path")
        path = candidates[0]
    if not path.exists():
        raise ModelError(f"model file not found: {path} ({missing_hint})")
    return path


def read_card(model_file: Path, weights: Path, card_format: str) -> dict | None:
    """The ``model.json`` beside ``model_file`` (None if there is none), checked against ``weights``.

    Raises ModelError when the card is not JSON, describes another format (an ONNX card beside an IR, say) or
    its checksum does not match the weights.
    """
    card_path = model_file.parent / CARD_NAME
    if not card_path.exists():
        return None
    try:
        card = json.loads(card_path.read_text())
    except json.JSONDecodeError as exc:
        raise ModelError(f"{card_path} is not valid JSON ({exc}); re-export the model") from None
    found = card.get("format", card_format)
    if found != card_format:
        hint = CARD_BACKENDS.get(found)
        raise ModelError(f"{card_path} describes an {found!r} model, not {card_format!r}"
                         + (f": run it with backend {hint!r}" if hint else "; re-export the model"))
    expected = card.get("sha256")
    if expected and file_sha256(weights) != expected:
        raise ModelError(f"{weights} does not match the checksum in {card_path.name}: the weights are corrupt "
                         "or were replaced; re-export or re-install the model")
    return card


def card_info(card: dict, path: Path) -> ModelInfo:
    """ModelInfo of an edgepose export from its card."""
    return ModelInfo(
        name=card.get("name", path.parent.name), kind="edgepose", path=path,
        input_size=int(card.get("test_short_side", card.get("input_size", 384))),
        divisor=int(card.get("multiple_of", 64)), stride=int(card["outputs"]["heatmaps"]["stride"]),
        nms_in_graph=bool(card.get("nms_in_graph", False)), card=card,
    )


def network_size(width: int, height: int, short: int, divisor: int) -> tuple[int, int, float]:
    """(net_w, net_h, s): the frame is scaled by s so its short side is ``short``; sides round up to ``divisor``."""
    s = short / min(width, height)
    net_w = int(math.ceil(round(width * s) / divisor) * divisor)
    net_h = int(math.ceil(round(height * s) / divisor) * divisor)
    return net_w, net_h, s


@dataclass(frozen=True)
class Geometry:
    """How frames of one size enter the network: scaled by ``scale`` to ``resized``, padded right/bottom to
    ``net_size`` (width, height), as the official test code and Intel's demo do.

    ``resized`` is rounded per side, so the x and y scales differ slightly; ``frame_scale`` and ``offset`` are
    the exact per-axis mapping from network pixels back to frame pixels (x_frame = x_net * sx + ox).
    """

    net_size: tuple[int, int]
    scale: float
    resized: tuple[int, int]
    frame_size: tuple[int, int] | None = None

    @classmethod
    def for_frame(cls, width: int, height: int, short: int, divisor: int) -> Geometry:
        net_w, net_h, s = network_size(width, height, short, divisor)
        return cls((net_w, net_h), s, (max(1, round(width * s)), max(1, round(height * s))), (width, height))

    @property
    def frame_scale(self) -> tuple[float, float]:
        """(sx, sy): frame pixels per network-input pixel, per axis."""
        if self.frame_size is None:
            return 1 / self.scale, 1 / self.scale
        return self.frame_size[0] / self.resized[0], self.frame_size[1] / self.resized[1]

    @property
    def offset(self) -> tuple[float, float]:
        """(ox, oy) of the image inside the network input: (0, 0), as padding goes right and bottom only."""
        return 0.0, 0.0

    def output_shape(self, stride: int) -> tuple[int, int]:
        """(height, width) the outputs must have for this input at ``stride``."""
        return self.net_size[1] // stride, self.net_size[0] // stride

    def new_buffer(self) -> np.ndarray:
        """A zeroed u8 NHWC network input; the padding stays zero because ``fill`` only writes the image area."""
        return np.zeros((1, self.net_size[1], self.net_size[0], 3), np.uint8)

    def fill(self, image: np.ndarray | I420Image, buffer: np.ndarray) -> np.ndarray:
        """Resize ``image`` (BGR, or I420 which comes out BGR) into the top-left of ``buffer`` (from
        ``new_buffer``); returns ``buffer``."""
        rw, rh = self.resized
        resize(image, (rw, rh), dst=buffer[0, :rh, :rw])
        return buffer

    def output(self, heatmaps: np.ndarray, tags: np.ndarray, info: ModelInfo) -> NetOutput:
        """NetOutput from one image's raw outputs (17,h,w) and (17,h,w[,L]); copies, as backends reuse buffers."""
        if heatmaps.shape[0] != NUM_JOINTS:
            raise ModelError(f"{info.name}: expected {NUM_JOINTS} heatmaps, got {heatmaps.shape[0]}")
        if tags.ndim == 3:
            tags = tags[..., None]
        sx, sy = self.frame_scale
        return NetOutput(np.array(heatmaps, np.float32), np.array(tags, np.float32),
                         nms_applied=info.nms_in_graph, scale=(info.stride * sx, info.stride * sy))


class PoseBackend(Protocol):
    """The contract every inference backend implements; the service, the profiler and the tests use only this.

    Construction loads and validates the model (``check_outputs``); ``prepare`` compiles for one frame size and
    checks the output sizes against the stride (``check_output_size``); ``infer`` runs one frame, ``submit``
    queues one (throughput mode) and ``wait_all`` waits for them. An exception inside a backend's completion
    callback never escapes into the runtime's thread: it is raised by the next ``submit`` or by ``wait_all``.
    """

    info: ModelInfo
    mode: str

    def prepare(self, width: int, height: int) -> object: ...
    def geometry(self, width: int, height: int) -> Geometry: ...
    def infer(self, image: np.ndarray | I420Image) -> NetOutput: ...
    def submit(self, image: np.ndarray | I420Image, userdata, callback: Callable[[NetOutput, object], None]) -> None: ...
    def wait_all(self) -> None: ...


def check_outputs(info: ModelInfo, outputs: dict[str, tuple]) -> None:
    """ModelError naming what was expected unless ``outputs`` (name -> shape, None for a dynamic dim) holds
    ``heatmaps`` and ``embeddings`` with 17 channels each, batch first."""
    found = ", ".join(f"{name} {list(shape)}" for name, shape in outputs.items()) or "none"
    expected = (f"expected outputs heatmaps [1, {NUM_JOINTS}, h, w] and embeddings [1, {NUM_JOINTS}, h, w(, 1)]")
    missing = [name for name in OUTPUTS if name not in outputs]
    if missing:
        combined = [n for n, shape in outputs.items() if len(shape) > 1 and shape[1] == 2 * NUM_JOINTS]
        hint = (f"; {combined[0]} has {2 * NUM_JOINTS} channels (heatmaps and tags in one tensor): export them "
                "as two outputs" if combined else "; is this a bottom-up associative-embedding pose model?")
        raise ModelError(f"{info.path}: {expected}, found {found}{hint}")
    for name in OUTPUTS:
        shape = outputs[name]
        if len(shape) < 4 or shape[1] not in (NUM_JOINTS, None):
            raise ModelError(f"{info.path}: {expected}, found {found}; {name} must have {NUM_JOINTS} channels "
                             "(COCO-17 keypoints)")


def check_output_size(info: ModelInfo, geometry: Geometry, name: str, shape: tuple) -> None:
    """ModelError unless output ``name`` of shape (1, 17, h, w, ...) matches the input size at ``info.stride``."""
    expected = geometry.output_shape(info.stride)
    if tuple(shape[2:4]) != expected:
        net_w, net_h = geometry.net_size
        raise ModelError(f"{info.path}: output {name} is {shape[3]}x{shape[2]} for a {net_w}x{net_h} input, "
                         f"expected {expected[1]}x{expected[0]} (stride {info.stride}); the model card's stride "
                         "does not match the network")


def check_image(image: np.ndarray | I420Image) -> None:
    """ValueError unless ``image`` is a BGR uint8 (H, W, 3) array or a decoder's I420 picture."""
    if isinstance(image, I420Image):
        return
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        desc = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise ValueError(f"expected a BGR uint8 image of shape (H, W, 3), got {desc}")
