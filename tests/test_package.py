"""A real package: the wheel carries the shipped model, the schema and the dashboard, and runs outside the checkout.

The wheel is built from a copy of only what the Dockerfile copies (pyproject, setup.py, the package, the shipped
model), installed without dependencies into a fresh virtualenv that borrows this environment's site-packages for
them (no network), and run from an empty folder: `edgepose run --model auto` on a real video, messages received.
"""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from test_mqtt import Collector

from edgepose.config import MqttConfig

REPO = Path(__file__).resolve().parents[1]
BUILD_INPUTS = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "edgepose", "models/edgepose-h4")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    if not (REPO / "models" / "edgepose-h4" / "model.xml").exists():
        pytest.skip("the shipped model models/edgepose-h4 is not in this checkout")
    src = tmp_path_factory.mktemp("src")
    for name in BUILD_INPUTS:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.png"))
        else:
            shutil.copy2(REPO / name, src / name)
    out = tmp_path_factory.mktemp("wheel")
    res = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                          "--no-index", "-w", str(out), str(src)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    (built,) = out.glob("edgepose-*.whl")
    return built


def test_wheel_carries_model_schema_and_dashboard(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {f"edgepose/models/edgepose-h4/{f}" for f in ("model.xml", "model.bin", "model.json")} <= names
    assert {"edgepose/publish/schema.json", "edgepose/dashboard/static/app.js", "edgepose/registry/manifest.json",
            "edgepose/capture/pipelines/file.pipeline", "edgepose/registry/people/SOURCES.md"} <= names
    assert len([n for n in names if n.startswith("edgepose/registry/people/") and n.endswith(".jpg")]) == 8
    assert not [n for n in names if n.startswith(("tests/", "models/", "benchmarks/"))]


@pytest.mark.slow
def test_installed_wheel_runs_from_any_folder(wheel, tmp_path, mosquitto, video_aisle):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    purelib = Path(subprocess.check_output([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                                           text=True).strip())
    # Dependencies from this environment, after the venv's own site-packages (where the wheel goes): a path
    # line in a .pth adds the folder only, so this environment's editable edgepose is not picked up.
    (purelib / "zz-deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "EDGEPOSE_MODEL_PATH")}
    env.update(XDG_DATA_HOME=str(tmp_path / "data"), XDG_CACHE_HOME=str(tmp_path / "cache"))
    res = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
                          "--no-index", str(wheel)], capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 0, res.stderr
    work = tmp_path / "elsewhere"
    work.mkdir()
    where = subprocess.run([str(python), "-c", "import edgepose, edgepose.registry as r; "
                            "print(edgepose.__file__); print(r.find_local('edgepose-h4'))"],
                           capture_output=True, text=True, cwd=work, env=env, timeout=120)
    assert where.returncode == 0, where.stderr
    package, model = where.stdout.split()
    assert package.startswith(str(purelib)) and model.startswith(str(purelib)), where.stdout + where.stderr
    sub = Collector(MqttConfig(url=mosquitto.url))
    run = subprocess.run([str(venv / "bin" / "edgepose"), "run", "--model", "auto", "--source", str(video_aisle),
                          "--mqtt", mosquitto.url, "--source-id", "aisle"],
                         capture_output=True, text=True, cwd=work, env=env, timeout=600)
    assert run.returncode == 0, run.stderr
    assert "--model auto chose" in run.stderr
    sub.wait(lambda s: s.on("aisle/status")[-1:] == [b"offline"])
    poses = [json.loads(p) for p in sub.on("aisle/poses")]
    assert len(poses) == 67 and poses[0]["model"] == "edgepose-h4"
    assert max(m["count"] for m in poses) >= 1  # the shipped model finds the people in the aisle
    sub.close()
    assert sorted(p.name for p in work.iterdir()) == []  # nothing written into the working folder
