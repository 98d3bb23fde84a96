"""setuptools hook: the shipped model goes into wheels as package data, so `pip install .` users have it.

The model lives in the repository's models/ (beside the other model cards), outside the package; a non-editable
build copies its IR, card and README to edgepose/models/<name>/, where ``edgepose.registry`` looks for installed
models. Editable installs find the checkout's models/ directly. Everything else is in pyproject.toml.
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

SHIPPED_MODELS = ("edgepose-h4",)
MODEL_FILES = ("model.xml", "model.bin", "model.json", "README.md")


class BuildWithModels(build_py):
    def run(self):
        super().run()
        if self.editable_mode:
            return
        for name in SHIPPED_MODELS:
            source = Path(__file__).parent / "models" / name
            if not (source / "model.xml").is_file():
                raise SystemExit(f"models/{name}/model.xml is missing; the package ships that model")
            target = Path(self.build_lib) / "edgepose" / "models" / name
            self.mkpath(str(target))
            for file in MODEL_FILES:
                self.copy_file(str(source / file), str(target / file))


setup(cmdclass={"build_py": BuildWithModels})
