"""Fixtures shared by the whole suite: ../shared data, a real Mosquitto broker, OMZ models with stand-in weights.

Nothing here reaches the network. Tests that need ../shared skip with a reason when it is absent.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("EDGEPOSE_SHARED", REPO.parent / "shared"))

os.environ.setdefault("OPENVINO_TELEMETRY", "0")
# Parity and equality tests need f32 arithmetic even on CPUs where OpenVINO would pick bf16.
os.environ.setdefault("EDGEPOSE_PRECISION_HINT", "f32")


def shared_path(*parts: str) -> Path:
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} not present (../shared is only beside the repository on the team's machines)")
    return path


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    return shared_path()


@pytest.fixture(scope="session")
def coco_mini() -> Path:
    return shared_path("data", "coco-mini")


@pytest.fixture(scope="session")
def video_one_by_one() -> Path:
    return shared_path("data", "video", "one-by-one-person-detection.mp4")


@pytest.fixture(scope="session")
def video_aisle() -> Path:
    return shared_path("data", "video", "store-aisle-detection.mp4")


@pytest.fixture(scope="session")
def video_classroom() -> Path:
    return shared_path("data", "video", "classroom.mp4")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


class Mosquitto:
    """A real Mosquitto broker on 127.0.0.1, run in the foreground as a child process."""

    def __init__(self, workdir: Path, port: int | None = None, extra_conf: str = "", ws_port: int | None = None):
        self.exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(self.exe).exists():
            pytest.skip("mosquitto is not installed (make install brings it)")
        self.workdir = workdir
        self.port = port or free_port()
        self.ws_port = ws_port
        self.extra_conf = extra_conf
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> Mosquitto:
        conf = self.workdir / f"mosquitto-{self.port}.conf"
        lines = [f"listener {self.port} 127.0.0.1", "allow_anonymous true", "persistence false", "log_dest stderr"]
        if self.ws_port:
            lines += [f"listener {self.ws_port} 127.0.0.1", "protocol websockets"]
        conf.write_text("\n".join(lines) + "\n" + self.extra_conf)
        self.log = open(self.workdir / f"mosquitto-{self.port}.log", "ab")
        self.proc = subprocess.Popen([self.exe, "-c", str(conf)], stdout=self.log, stderr=subprocess.STDOUT)
        wait_port(self.port)
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


@pytest.fixture()
def mosquitto(tmp_path):
    broker = Mosquitto(tmp_path).start()
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def omz_model(tmp_path_factory) -> Path:
    """Intel's human-pose-estimation-0005 FP16 topology with seeded stand-in weights (outputs meaningless)."""
    src = shared_path("models", "omz", "human-pose-estimation-0005", "FP16", "human-pose-estimation-0005.xml")
    out = tmp_path_factory.mktemp("omz") / "human-pose-estimation-0005.xml"
    shutil.copy(src, out)
    tool = shared_path("tools", "make_standin_weights.py")
    subprocess.run([sys.executable, str(tool), str(out), "--seed", "0"], check=True, capture_output=True)
    return out


@pytest.fixture(scope="session")
def h4_ir(tmp_path_factory) -> Path:
    """EfficientHRNet H-4 exported once per session (seeded random weights, FP32); returns model.xml.

    Input ``image`` [1,H,W,3] u8 BGR (H, W multiples of 64), outputs ``heatmaps`` [1,17,H/2,W/2] and
    ``embeddings`` [1,17,H/2,W/2,1]; ``model.json`` beside it. Outputs are meaningful in shape only.
    """
    pytest.importorskip("torch", reason="exporting needs the train extra (torch)")
    from edgepose.train.export import export_variant

    return export_variant("H-4", tmp_path_factory.mktemp("h4") / "efficienthrnet-h-4", random_init=True, seed=0)


@pytest.fixture
def one_torch_thread():
    """Torch on one thread: on a shared, busy CPU, multi-threaded small convs are several times slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
