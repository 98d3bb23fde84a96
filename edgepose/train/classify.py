"""Backbone training: a compact EfficientNet B0..B-4 as an image classifier, with the paper's recipe (§4.1).

Data: an ImageFolder, ``DIR/train/<class>/*.jpg`` and ``DIR/val/<class>/*.jpg`` (classes are the sorted folder
names of ``train``; ``val`` must use the same names).

Recipe (``BackboneConfig`` defaults): SGD (momentum 0.9) with weight decay 1e-4, Xavier init, 5 warm-up epochs
with the lr rising linearly from 1e-4 to 0.05, then x0.1 every 30 epochs, 200 epochs; random rotation, random
scale and aspect-ratio crops to the backbone's resolution, PCA colour jitter (AlexNet's ImageNet eigenvectors),
horizontal flip, per-channel mean/std. Validation: the centre crop of the image resized to resolution / 0.875,
top-1 and top-5 every epoch.

The run folder is laid out like a pose run's (``config.json``, ``steps.csv``, ``epochs.csv``, ``last.pt``,
``best.pt``, ``curves.png``) and resumes exactly: the lr is a function of (epoch, step), augmentation is seeded
by (seed, epoch, index), and optimiser and torch RNG states are saved. ``best.pt``'s ``features.*`` tensors
are what ``edgepose train --init-backbone`` loads into an EfficientHRNet of the same phi.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from edgepose.errors import EdgeposeError
from edgepose.train.backbone import IMAGENET_LITE0, LITE0_ACTIVATION, build_classifier, select_from_lite0, xavier_init
from edgepose.train.data import normalize
from edgepose.train.loop import CsvLog, pick_device, save_torch, start_run_folder, warn_slow_bf16
from edgepose.variants import get_backbone

CHECKPOINT_FORMAT = "edgepose-backbone"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
STEP_FIELDS = ("epoch", "step", "lr", "loss", "seconds")
EPOCH_FIELDS = ("epoch", "lr", "loss", "top1", "top5", "seconds")
VAL_CROP = 0.875  # centre crop of the image resized to resolution / 0.875, the usual ImageNet evaluation
# AlexNet's PCA of ImageNet RGB pixels (values in [0, 1]): colour jitter along these axes.
PCA_EIGVAL = np.array([0.2175, 0.0188, 0.0045], dtype=np.float32)
PCA_EIGVEC = np.array([[-0.5675, 0.7192, 0.4009], [-0.5808, -0.0045, -0.8140], [-0.5836, -0.6948, 0.4203]],
                      dtype=np.float32)
RESUMABLE = ("epochs", "device", "workers")


@dataclass
class BackboneConfig:
    variant: str
    data: str
    epochs: int = 200
    batch: int = 64
    resolution: int | None = None  # default: the backbone's, ceil(224 * 1.15**phi)
    lr: float = 0.05
    warmup_epochs: int = 5
    warmup_lr: float = 1e-4
    step_epochs: int = 30  # lr x gamma every this many epochs after the warm-up
    gamma: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    max_rotation: float = 10.0
    min_scale: float = 0.08  # crop area as a fraction of the image
    max_scale: float = 1.0
    min_aspect: float = 3 / 4
    max_aspect: float = 4 / 3
    pca_jitter: float = 0.1  # std of the PCA colour noise; 0 = off
    flip: float = 0.5
    init: str = "xavier"  # or "imagenet-lite0" (weight selection from EfficientNet-Lite0)
    seed: int = 0
    workers: int = 0
    device: str = "auto"
    bf16: bool = False
    activation: str | None = None  # swish (B0's); relu6 with imagenet-lite0

    def __post_init__(self) -> None:
        self.variant = get_backbone(self.variant).name
        self.data = str(Path(self.data).resolve())
        if self.resolution is None:
            self.resolution = get_backbone(self.variant).resolution
        if self.init not in ("xavier", IMAGENET_LITE0):
            raise ValueError(f"init must be xavier or {IMAGENET_LITE0}, got {self.init!r}")
        if self.activation is None:
            self.activation = LITE0_ACTIVATION if self.init == IMAGENET_LITE0 else "swish"
        if not 0 < self.min_scale <= self.max_scale <= 1:
            raise ValueError(f"need 0 < min_scale <= max_scale <= 1, got {self.min_scale} and {self.max_scale}")
        if not 0 < self.min_aspect <= self.max_aspect:
            raise ValueError(f"need 0 < min_aspect <= max_aspect, got {self.min_aspect} and {self.max_aspect}")
        for name in ("epochs", "batch", "resolution"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

    def lr_at(self, epoch: int, fraction: float = 0.0) -> float:
        """The lr at ``fraction`` (0..1) of 0-based ``epoch``: linear warm-up, then step decay."""
        if epoch < self.warmup_epochs:
            t = (epoch + fraction) / self.warmup_epochs
            return self.warmup_lr + t * (self.lr - self.warmup_lr)
        return self.lr * self.gamma ** ((epoch - self.warmup_epochs) // self.step_epochs)

    @classmethod
    def from_dict(cls, data: dict) -> BackboneConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def image_folder(root: Path, classes: list[str] | None = None) -> tuple[list[str], list[tuple[str, int]]]:
    """(class names, [(image path, class index)]) of one split of an ImageFolder."""
    if not root.is_dir():
        raise EdgeposeError(f"{root} is missing: the data folder needs train/<class>/*.jpg and val/<class>/*.jpg")
    names = sorted(p.name for p in root.iterdir() if p.is_dir())
    if classes is None:
        classes = names
    elif set(names) - set(classes):
        raise EdgeposeError(f"{root} has classes that train/ does not: {', '.join(sorted(set(names) - set(classes)))}")
    samples = [(str(f), i) for i, c in enumerate(classes) if (root / c).is_dir()
               for f in sorted((root / c).iterdir()) if f.suffix.lower() in IMAGE_SUFFIXES]
    if len(classes) < 2 or not samples:
        raise EdgeposeError(f"{root} needs at least two class folders with images, found {len(classes)} and "
                            f"{len(samples)} images")
    return classes, samples


def read_rgb(path: str) -> np.ndarray:
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise EdgeposeError(f"cannot read image {path}: remove it or convert it to JPEG/PNG")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


class FolderDataset(Dataset):
    """Samples of an ImageFolder split: augmented training crops or validation centre crops."""

    def __init__(self, samples: list[tuple[str, int]], cfg: BackboneConfig, train: bool):
        self.samples, self.cfg, self.train, self.epoch = samples, cfg, train, 0

    def __len__(self) -> int:
        return len(self.samples)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __getitem__(self, index: int) -> tuple[np.ndarray, int]:
        path, label = self.samples[index]
        rgb = read_rgb(path)
        res = self.cfg.resolution
        if not self.train:
            h, w = rgb.shape[:2]
            side = min(h, w) * VAL_CROP
            matrix = crop_to(np.array([w / 2, h / 2]), side, side, 0.0, res)
            return normalize(cv2.warpAffine(rgb, matrix, (res, res), flags=cv2.INTER_LINEAR)), label
        rng = np.random.default_rng((self.cfg.seed, self.epoch, index))
        return self.augment(rgb, rng), label

    def augment(self, rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        c, (h, w), res = self.cfg, rgb.shape[:2], self.cfg.resolution
        area = h * w * rng.uniform(c.min_scale, c.max_scale)
        aspect = math.exp(rng.uniform(math.log(c.min_aspect), math.log(c.max_aspect)))
        cw, ch = min(w, math.sqrt(area * aspect)), min(h, math.sqrt(area / aspect))
        center = np.array([rng.uniform(cw / 2, w - cw / 2), rng.uniform(ch / 2, h - ch / 2)])
        matrix = crop_to(center, cw, ch, rng.uniform(-c.max_rotation, c.max_rotation), res)
        out = cv2.warpAffine(rgb, matrix, (res, res), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
        if rng.random() < c.flip:
            out = out[:, ::-1]
        if c.pca_jitter:
            shift = PCA_EIGVEC @ (rng.normal(0, c.pca_jitter, 3).astype(np.float32) * PCA_EIGVAL)
            out = np.clip(out.astype(np.float32) + 255.0 * shift, 0, 255).astype(np.uint8)
        return normalize(out)


def crop_to(center: np.ndarray, width: float, height: float, rotation: float, res: int) -> np.ndarray:
    """2x3 affine matrix taking the ``width`` x ``height`` box around ``center``, rotated by ``rotation``
    degrees, onto a ``res``-square output."""
    r = math.radians(rotation)
    cos, sin = math.cos(r), math.sin(r)
    sx, sy = res / width, res / height
    # out = S R (p - center) + res / 2
    a = np.array([[sx * cos, sx * sin], [-sy * sin, sy * cos]])
    return np.hstack([a, (res / 2 - a @ center)[:, None]]).astype(np.float32)


def topk_correct(logits: torch.Tensor, labels: torch.Tensor, k: int) -> int:
    k = min(k, logits.shape[1])
    return int((logits.topk(k, dim=1).indices == labels[:, None]).any(dim=1).sum())


class BackboneTrainer:
    """One classification run in ``out_dir`` (``fit`` trains, ``resume`` continues, ``train_step`` is one step)."""

    def __init__(self, cfg: BackboneConfig, out_dir: str | Path, log=tqdm.write):
        self.cfg, self.out = cfg, Path(out_dir)
        self.device = pick_device(cfg.device)
        warn_slow_bf16(cfg.bf16, self.device, log)
        data = Path(cfg.data)
        self.classes, train = image_folder(data / "train")
        _, val = image_folder(data / "val", self.classes)
        self.train_set, self.val_set = FolderDataset(train, cfg, True), FolderDataset(val, cfg, False)
        torch.manual_seed(cfg.seed)
        self.model = build_classifier(cfg.variant, len(self.classes), cfg.activation)
        xavier_init(self.model)
        if cfg.init == IMAGENET_LITE0:
            log(select_from_lite0(self.model).report())
        self.model.to(self.device).train()
        decay = [p for n, p in self.model.named_parameters() if p.dim() > 1]
        no_decay = [p for n, p in self.model.named_parameters() if p.dim() <= 1]  # BN and biases, as usual
        self.optimizer = torch.optim.SGD([{"params": decay, "weight_decay": cfg.weight_decay},
                                          {"params": no_decay, "weight_decay": 0.0}], lr=cfg.warmup_lr,
                                         momentum=cfg.momentum)
        self.epoch = self.step = 0
        self.best: dict = {}
        self.steps_log = CsvLog(self.out / "steps.csv", STEP_FIELDS)
        self.epochs_log = CsvLog(self.out / "epochs.csv", EPOCH_FIELDS)

    @classmethod
    def resume(cls, out_dir: str | Path, **changes) -> BackboneTrainer:
        last = Path(out_dir) / "last.pt"
        if not last.is_file():
            raise EdgeposeError(f"nothing to resume in {out_dir}: {last.name} is missing")
        ckpt = torch.load(last, map_location="cpu", weights_only=True)
        if ckpt.get("format") != CHECKPOINT_FORMAT:
            raise EdgeposeError(f"{last} is not a checkpoint of `edgepose train backbone`")
        cfg = BackboneConfig.from_dict({**ckpt["config"], **{k: v for k, v in changes.items() if v is not None}})
        trainer = cls(cfg, out_dir, log=lambda _: None)
        trainer.model.load_state_dict(ckpt["state_dict"])
        trainer.optimizer.load_state_dict(ckpt["optimizer"])
        trainer.epoch, trainer.step, trainer.best = ckpt["epoch"], ckpt["step"], dict(ckpt["best"])
        torch.set_rng_state(ckpt["rng"])
        return trainer

    def train_step(self, images: torch.Tensor, labels: torch.Tensor, lr: float) -> float:
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        images, labels = images.to(self.device), labels.to(self.device)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.cfg.bf16):
            logits = self.model(images)
        loss = F.cross_entropy(logits.float(), labels)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.step += 1
        return float(loss.detach())

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        self.model.eval()
        top1 = top5 = 0
        try:
            for images, labels in DataLoader(self.val_set, batch_size=self.cfg.batch, num_workers=self.cfg.workers):
                with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.cfg.bf16):
                    logits = self.model(images.to(self.device)).float()
                labels = labels.to(self.device)
                top1 += topk_correct(logits, labels, 1)
                top5 += topk_correct(logits, labels, 5)
        finally:
            self.model.train()
        n = len(self.val_set)
        return {"top1": top1 / n, "top5": top5 / n}

    def train_epoch(self, progress: bool) -> dict[str, float]:
        self.train_set.set_epoch(self.epoch)
        order = np.random.default_rng((self.cfg.seed, self.epoch, 1)).permutation(len(self.train_set)).tolist()
        loader = DataLoader(self.train_set, batch_size=self.cfg.batch, sampler=order, num_workers=self.cfg.workers)
        total, n = 0.0, len(loader)
        bar = tqdm(loader, desc=f"epoch {self.epoch + 1}/{self.cfg.epochs}", disable=not progress, unit="step",
                   dynamic_ncols=True)
        for i, (images, labels) in enumerate(bar):
            t0 = time.perf_counter()
            lr = self.cfg.lr_at(self.epoch, i / n)
            loss = self.train_step(images, labels, lr)
            if not math.isfinite(loss):
                raise EdgeposeError(f"loss became {loss} at step {self.step}: lower --lr")
            self.steps_log.append({"epoch": self.epoch + 1, "step": self.step, "lr": lr, "loss": loss,
                                   "seconds": time.perf_counter() - t0})
            total += loss
            bar.set_postfix(loss=f"{loss:.3g}")
        return {"loss": total / max(n, 1), "lr": self.cfg.lr_at(self.epoch)}

    def checkpoint(self) -> dict:
        return {"format": CHECKPOINT_FORMAT, "variant": self.cfg.variant, "config": asdict(self.cfg),
                "classes": self.classes, "epoch": self.epoch, "step": self.step, "best": self.best,
                "state_dict": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
                "optimizer": self.optimizer.state_dict(), "rng": torch.get_rng_state()}

    def fit(self, progress: bool = True, resumed: bool = False) -> dict:
        start_run_folder(self, resumed)
        while self.epoch < self.cfg.epochs:
            t0 = time.perf_counter()
            row = self.train_epoch(progress)
            self.epoch += 1
            row |= self.validate()
            self.epochs_log.append({"epoch": self.epoch, **row, "seconds": time.perf_counter() - t0})
            state = self.checkpoint()
            if not self.best or row["top1"] >= self.best["value"]:  # on a tie, the more trained weights
                self.best = {"metric": "top1", "value": row["top1"], "epoch": self.epoch}
                state["best"] = self.best
                save_torch({k: state[k] for k in ("format", "variant", "config", "classes", "epoch", "best",
                                                  "state_dict")}, self.out / "best.pt")
            save_torch(state, self.out / "last.pt")
            if progress:
                tqdm.write(f"epoch {self.epoch}: loss {row['loss']:.4g}, top-1 {row['top1']:.3f}, "
                           f"top-5 {row['top5']:.3f}")
        return self.best


def train_backbone(out_dir: str | Path, cfg: BackboneConfig | None = None, *, resume: bool = False,
                   progress: bool = True, threads: int | None = None, **changes) -> dict:
    """Start a backbone run in ``out_dir`` or continue it (``resume``, with ``RESUMABLE`` changes); writes
    curves.png at the end. Returns the best record ({"metric": "top1", "value", "epoch"})."""
    if threads:
        torch.set_num_threads(threads)
    if resume:
        trainer = BackboneTrainer.resume(out_dir, **changes)
    elif cfg is None:
        raise ValueError("a new run needs a BackboneConfig")
    else:
        trainer = BackboneTrainer(cfg, out_dir)
    best = trainer.fit(progress, resumed=resume)
    from edgepose.train.plot import plot_run

    plot_run(out_dir)
    return best
