"""The models edgepose knows: where they come from, how accurate they are, where they are on this machine.

Known models are our EfficientHRNet exports (efficienthrnet-h0 .. efficienthrnet-h-4, made locally with
``edgepose export``), the shipped ``edgepose-h4`` when present, and Intel's Open Model Zoo
human-pose-estimation-0005/6/7 (``edgepose models pull``). A model is *local* when its IR sits in one of
the model directories (``model_dirs()``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from edgepose.errors import ModelError
from edgepose.variants import VARIANTS, get_variant

REPO_MODELS = Path(__file__).resolve().parents[2] / "models"
# Models shipped inside an installed (non-editable) package; setup.py copies them there from models/.
PACKAGE_MODELS = Path(__file__).resolve().parents[1] / "models"


@dataclass(frozen=True)
class RemoteFile:
    """One file of a downloadable model, with the size and checksum its publisher gives (Open Model Zoo's
    model.yml: sha256, or sha384 for newer models)."""

    path: str
    url: str
    sha256: str | None = None
    sha384: str | None = None
    size: int | None = None

    @property
    def checksum(self) -> tuple[str, str] | None:
        """(hashlib algorithm, hex digest) to verify against, or None when nothing was published."""
        if self.sha256:
            return "sha256", self.sha256
        if self.sha384:
            return "sha384", self.sha384
        return None


def verify_local(name: str, xml: Path) -> None:
    """ModelError unless the files of registry model ``name`` beside ``xml`` match their published checksums
    (models that are not downloadable, and files without a published checksum, pass)."""
    from edgepose.inference.common import file_digest

    entry = catalog().get(name)
    for f in entry.files if entry is not None else ():
        path = xml.parent / f.path
        if f.checksum is None or not path.exists():
            continue
        algorithm, expected = f.checksum
        if (f.size is not None and path.stat().st_size != f.size) or file_digest(path, algorithm) != expected:
            raise ModelError(f"{path} does not match the {algorithm} Open Model Zoo publishes for {name}: it is "
                             f"corrupt or was replaced; pull it again (edgepose models pull {name} --force), or "
                             "load your own copy by its .xml path")


@dataclass(frozen=True)
class ModelEntry:
    name: str
    family: str  # "efficienthrnet" | "edgepose" | "omz"
    description: str
    input_size: int
    ap: float | None  # expected COCO val AP in %, as published (see ap_source)
    ap_source: str
    precision: str
    files: tuple[RemoteFile, ...] = ()
    variant: str | None = None
    gflops_published: float | None = None
    license: str = "Apache-2.0"


def variant_model_name(variant: str) -> str:
    return "efficienthrnet-" + get_variant(variant).name.lower()


def _variant_entries() -> list[ModelEntry]:
    return [
        ModelEntry(
            name=variant_model_name(v.name), family="efficienthrnet",
            description=f"EfficientHRNet {v.name} (phi={v.phi}), export with `edgepose export --variant {v.name}`",
            input_size=v.input_size, ap=v.paper.ap, ap_source="paper Table 3 (trained weights; single scale)",
            precision="FP32", variant=v.name,
        )
        for v in VARIANTS.values()
    ]


def _manifest_entries() -> list[ModelEntry]:
    data = json.loads(resources.files("edgepose.registry").joinpath("manifest.json").read_text())
    out = []
    for m in data["models"]:
        files = tuple(RemoteFile(**f) for f in m.pop("files", []))
        out.append(ModelEntry(files=files, **m))
    return out


def catalog() -> dict[str, ModelEntry]:
    """Every known model by name (manifest + the variant table)."""
    return {e.name: e for e in _manifest_entries() + _variant_entries()}


def model_dirs() -> list[Path]:
    """Where local models are looked for, in order: $EDGEPOSE_MODEL_PATH, the user data dir, the models shipped in
    the installed package, the checkout's models/."""
    import platformdirs

    dirs = [Path(p) for p in os.environ.get("EDGEPOSE_MODEL_PATH", "").split(os.pathsep) if p]
    dirs.append(Path(platformdirs.user_data_dir("edgepose")) / "models")
    dirs += [d for d in (PACKAGE_MODELS, REPO_MODELS) if d.is_dir()]
    return dirs


def download_dir() -> Path:
    """Where ``models pull`` writes: the first model directory."""
    return model_dirs()[0]


def find_local(name: str) -> Path | None:
    """The .xml of model ``name`` in the model directories, or None."""
    for d in model_dirs():
        base = d / name
        for candidate in (base / "model.xml", base / f"{name}.xml", base / "FP16" / f"{name}.xml",
                          base / "FP32" / f"{name}.xml"):
            if candidate.exists() and candidate.with_suffix(".bin").exists():
                return candidate
    return None


def read_card_json(xml: Path) -> dict | None:
    """The ``model.json`` card beside an edgepose export, or None (no card, or not readable)."""
    try:
        return json.loads((xml.parent / "model.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None


def untrained(xml: Path) -> bool:
    """True for an export whose card says its weights are random (wiring and speed tests, not accuracy)."""
    return str((read_card_json(xml) or {}).get("weights", "")).startswith("random-init")


# COCO AP (0..1) an INT8 model may lose against the model it was quantised from and still be picked by auto.
MAX_INT8_AP_LOSS = 0.01


def auto_eligible(xml: Path) -> bool:
    """Whether ``--model auto`` may pick this model: not an INT8 export unless its card records a measured AP
    change (``edgepose quantize --ann``) losing at most MAX_INT8_AP_LOSS. Other models are eligible."""
    card = read_card_json(xml) or {}
    if str(card.get("precision", "")).upper() != "INT8":
        return True
    change = (card.get("int8") or {}).get("ap", {}).get("change")
    return isinstance(change, (int, float)) and change >= -MAX_INT8_AP_LOSS


def local_models() -> dict[str, Path]:
    """Known models present on this machine, plus any other model folder found in the model directories."""
    found = {name: p for name in catalog() if (p := find_local(name))}
    for d in model_dirs():
        if d.is_dir():
            for sub in sorted(d.iterdir()):
                if sub.name not in found and (sub / "model.xml").exists() and (sub / "model.bin").exists():
                    found[sub.name] = sub / "model.xml"
    return found


def resolve(spec: str) -> Path:
    """Turn ``--model`` (an .xml path, a folder, a model name or a variant like H-4) into an .xml path.

    ``auto`` is not handled here: the service asks the profiler (``edgepose.registry.select``).
    """
    path = Path(spec).expanduser()
    if spec.endswith(".xml") or path.exists():
        if path.is_dir():
            xml = path / "model.xml"
            if not xml.exists():
                xmls = sorted(path.glob("*.xml"))
                if len(xmls) != 1:
                    raise ModelError(f"{path} has no single .xml model in it")
                xml = xmls[0]
            path = xml
        if not path.exists():
            raise ModelError(f"model file not found: {path}")
        return path
    name = spec
    try:
        name = variant_model_name(spec)
    except ValueError:
        pass
    entries = catalog()
    local = find_local(name)
    if local:
        return local
    if name in local_models():
        return local_models()[name]
    if name not in entries:
        raise ModelError(f"unknown model {spec!r}: give an .xml path, 'auto', a variant (H0..H-4) or one of "
                         f"{', '.join(entries)} (see `edgepose models list`)")
    entry = entries[name]
    if entry.family == "efficienthrnet":
        hint = (f"export it first: edgepose export --variant {entry.variant} --weights CHECKPOINT "
                f"--out {download_dir()}/{name}")
    else:
        hint = f"download it first: edgepose models pull {name}"
    raise ModelError(f"model {name} is not on this machine; {hint}")
