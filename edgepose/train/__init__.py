"""Training-side extra: the torch EfficientHRNet family, counting, official checkpoints and export.

Importing this package imports torch; the runtime (everything outside ``edgepose.train``) never does.
"""

from edgepose.train.counting import Counts, count_params_macs
from edgepose.train.export import export_variant
from edgepose.train.model import EfficientHRNet, InferenceHead, build_model, init_official_weights, randomize
from edgepose.train.official import load_official_state_dict

__all__ = [
    "Counts",
    "EfficientHRNet",
    "InferenceHead",
    "build_model",
    "count_params_macs",
    "export_variant",
    "init_official_weights",
    "load_official_state_dict",
    "randomize",
]
