"""Inference stage: pose IRs on OpenVINO, raw frames in, ``NetOutput`` (heatmaps + tags) out."""

from edgepose.inference.openvino import MODES, ModelInfo, PoseModel, network_size, read_model_info


def load_model(path, *, device: str = "CPU", mode: str = "latency", cache_dir=None, precision_hint=None,
               input_size: int | None = None) -> PoseModel:
    """Open a pose IR (.xml path or its folder) for ``device``; compiles lazily on the first frame size."""
    return PoseModel(path, device=device, mode=mode, cache_dir=cache_dir, precision_hint=precision_hint,
                     input_size=input_size)


__all__ = ["MODES", "ModelInfo", "PoseModel", "load_model", "network_size", "read_model_info"]
