"""Inference stage: pose models in, raw frames in, ``NetOutput`` (heatmaps + tags) out.

Two backends with one public surface (``info``, ``prepare``, ``infer``, ``submit``, ``wait_all``,
``network_shape``, ``mode``, ``runtime_precision``): OpenVINO (``PoseModel``, IRs; the default, for Intel
CPU/iGPU/NPU) and ONNX Runtime (``OnnxPoseModel``, ONNX exports; TensorRT/CUDA on NVIDIA Jetson).
"""

from edgepose.inference.common import ModelInfo, network_size
from edgepose.inference.openvino import MODES, PoseModel, read_model_info

BACKENDS = ("openvino", "onnxruntime")


def load_model(path, *, device: str = "CPU", mode: str = "latency", cache_dir=None, precision_hint=None,
               input_size: int | None = None, backend: str = "openvino"):
    """Open a pose model for ``device``; compiles lazily on the first frame size.

    backend="openvino": an IR (.xml path or its folder); device CPU, GPU, NPU, AUTO...
    backend="onnxruntime": an ONNX export (.onnx path or its folder); device AUTO/GPU (TensorRT -> CUDA ->
    CPU, those present), CUDA or CPU.
    """
    if backend == "openvino":
        cls = PoseModel
    elif backend == "onnxruntime":
        from edgepose.inference.onnxruntime import OnnxPoseModel as cls  # onnxruntime is an optional extra
    else:
        raise ValueError(f"unknown inference backend {backend!r}: choose one of {', '.join(BACKENDS)}")
    return cls(path, device=device, mode=mode, cache_dir=cache_dir, precision_hint=precision_hint,
               input_size=input_size)


__all__ = ["BACKENDS", "MODES", "ModelInfo", "PoseModel", "load_model", "network_size", "read_model_info"]
