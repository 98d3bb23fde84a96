"""Model registry: the known models, where they are, downloading them, and choosing one for this device."""

from edgepose.registry.catalog import (
    ModelEntry,
    auto_eligible,
    catalog,
    download_dir,
    find_local,
    local_models,
    model_dirs,
    resolve,
    variant_model_name,
    verify_local,
)

__all__ = ["ModelEntry", "auto_eligible", "catalog", "download_dir", "find_local", "local_models", "model_dirs", "resolve",
           "variant_model_name", "verify_local"]
