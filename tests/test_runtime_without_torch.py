"""The runtime never needs torch (nor NNCF): with both made unimportable, edgepose still imports, describes its
models and runs an exported EfficientHRNet IR; the torch-only commands say what to install instead of a
traceback."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys

import pytest

import edgepose

SCRIPT = r"""
import importlib, json, pkgutil, sys
sys.modules["torch"] = None  # any `import torch` now raises ImportError
sys.modules["nncf"] = None  # nor does it need NNCF (quantisation is the train extra's)
import cv2
import edgepose, edgepose.variants, edgepose.types
from edgepose.cli import main
for name in json.loads(sys.argv[1]):
    importlib.import_module(name)
main(["models", "info", "--json"])
from edgepose.inference import load_model
model = load_model(sys.argv[2])
frame = cv2.resize(cv2.imread(sys.argv[3]), (384, 256))
out = model.infer(frame)
print(json.dumps({"heatmaps": list(out.heatmaps.shape), "tags": list(out.tags.shape), "nms": out.nms_applied}))
main(["export", "--variant", "H-4", "--random-init", "--out", sys.argv[4]])
"""


def runtime_modules() -> list[str]:
    """Every edgepose module outside the train extra."""
    names = [m.name for m in pkgutil.walk_packages(edgepose.__path__, "edgepose.")]
    return [n for n in names if not n.startswith("edgepose.train") and n != "edgepose.__main__"]


@pytest.mark.slow
def test_runtime_without_torch(h4_ir, coco_mini, tmp_path):
    modules = runtime_modules()
    assert "edgepose.inference" in modules and "edgepose.cli.models" in modules
    image = coco_mini / "images" / "000000000785.jpg"
    out_dir = tmp_path / "never"
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps(modules), str(h4_ir), str(image), str(out_dir)],
        capture_output=True, text=True, timeout=240,
    )
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.strip() == "Error: export needs the train extra (torch): pip install 'edgepose[train]'"
    assert not out_dir.exists()
    info, inferred = proc.stdout.strip().rsplit("\n", 1)
    rows = json.loads(info)
    assert [r["variant"] for r in rows] == ["H0", "H-1", "H-2", "H-3", "H-4"]
    assert rows[-1]["params"] == 2_764_706 and rows[-1]["macs"] == 1_807_480_224
    # The runtime resizes the 384x256 frame to H-4's test short side (384), i.e. 576x384, outputs at stride 2.
    assert json.loads(inferred) == {"heatmaps": [17, 192, 288], "tags": [17, 192, 288, 1], "nms": False}
