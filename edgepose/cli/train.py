"""`edgepose train`: train EfficientHRNet on COCO-format keypoints (train extra); `edgepose train plot`."""

from __future__ import annotations

import os

import click

from edgepose.errors import EdgeposeError

# Options left unset fall back to TrainConfig's defaults (the official recipe), the one place they live.
CONFIG_OPTIONS = ("variant", "ann", "images", "epochs", "batch", "input_size", "lr", "weight_decay", "milestones",
                  "seed", "workers", "device", "init_weights", "init_backbone", "activation", "val_every", "val_ann", "val_images", "limit_images",
                  "max_rotation", "min_scale", "max_scale", "max_translate", "flip", "mosaic", "bf16")


def _epochs(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split(","))
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a comma-separated list of epochs, e.g. 200,260") from None


@click.group(invoke_without_command=True)
@click.option("--variant", help="H0, H-1, H-2, H-3 or H-4.")
@click.option("--ann", type=click.Path(exists=True, dir_okay=False), help="COCO person-keypoints json.")
@click.option("--images", type=click.Path(exists=True, file_okay=False), help="Folder of the json's images.")
@click.option("--out", type=click.Path(file_okay=False), help="Run folder (checkpoints, CSV logs), e.g. runs/NAME.")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last.pt (its own settings).")
@click.option("--epochs", type=click.IntRange(min=1), help="Epochs [300]; with --resume, the new total.")
@click.option("--batch", type=click.IntRange(min=1), help="Images per step [48].")
@click.option("--input-size", type=click.IntRange(min=32), help="Square input side, multiple of 32 [variant's].")
@click.option("--lr", type=float, help="Adam learning rate [1e-3].")
@click.option("--weight-decay", type=float, help="Adam L2 weight decay [1e-4]; 0 = official code's behaviour.")
@click.option("--milestones", callback=lambda c, p, v: v and _epochs(v),
              help="Epochs where lr is x0.1 [200,260]; with --resume, moves drops not yet reached.")
@click.option("--freeze-backbone", is_flag=True, default=None, help="Do not train the EfficientNet backbone.")
@click.option("--seed", type=int, help="Seed of init, data order and augmentation [0].")
@click.option("--workers", type=click.IntRange(min=0), help="Data loader processes [0].")
@click.option("--device", help="auto, cpu or cuda[:N] [auto].")
@click.option("--bf16", is_flag=True, default=None,
              help="Mixed precision: convolutions in bfloat16, about 1.5x faster on CPUs with AVX-512 BF16 or AMX (slower elsewhere) "
                   "and on Ampere or newer GPUs; weights stay float32.")
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads torch uses [torch's default].")
@click.option("--init-weights", type=click.Path(exists=True, dir_okay=False), help="Start from this checkpoint.")
@click.option("--init-backbone",
              help="Start the backbone from ImageNet: imagenet-lite0 (EfficientNet-Lite0 weights selected down to "
                   "the variant's B-k; the backbone then uses ReLU6), or a best.pt of `edgepose train backbone`.")
@click.option("--activation", type=click.Choice(["swish", "relu6"]),
              help="Backbone activation [that of the starting weights: relu6 from imagenet-lite0, else swish].")
@click.option("--val-every", type=click.IntRange(min=0), help="Validate (COCO AP) every K epochs, 0 = never [10].")
@click.option("--val-ann", type=click.Path(exists=True, dir_okay=False), help="Validation json [--ann].")
@click.option("--val-images", type=click.Path(exists=True, file_okay=False), help="Validation images [--images].")
@click.option("--limit-images", type=click.IntRange(min=1), help="Use only the first N training images.")
@click.option("--max-rotation", type=float, help="Rotation augmentation, degrees [30].")
@click.option("--min-scale", type=float, help="Scale augmentation lower bound [0.75].")
@click.option("--max-scale", type=float, help="Scale augmentation upper bound [1.5].")
@click.option("--max-translate", type=float, help="Shift augmentation, in 200-px box units [40].")
@click.option("--flip", type=float, help="Horizontal flip probability [0.5].")
@click.option("--mosaic", type=float,
              help="Probability of a 2x2 mosaic of four images, so samples hold several people [0].")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@click.pass_context
def train(ctx, out, resume, threads, quiet, **options) -> None:
    """Train EfficientHRNet as the paper does: edgepose train --variant H-4 --ann A.json --images DIR --out runs/NAME"""
    if ctx.invoked_subcommand is not None:
        return
    try:
        from edgepose.train.loop import RESUMABLE, TrainConfig, run_training
    except ImportError as exc:
        raise EdgeposeError(f"training needs the train extra ({exc.name or exc}): pip install 'edgepose[train]'") from exc

    if not out:
        raise EdgeposeError("--out is required: the run folder for checkpoints and logs, e.g. --out runs/h4")
    cfg = None
    if resume:
        fixed = [k for k in CONFIG_OPTIONS if k not in RESUMABLE and options.get(k) is not None]
        if fixed:
            allowed = ", ".join("--" + k for k in RESUMABLE)
            raise EdgeposeError(f"--{fixed[0].replace('_', '-')} cannot change on --resume (only {allowed} can): "
                                f"start a new run with --init-weights {out}/last.pt instead")
    else:
        if not all(options.get(k) for k in ("variant", "ann", "images")):
            raise EdgeposeError("a new run needs --variant, --ann and --images (or --resume to continue --out)")
        try:
            cfg = TrainConfig(**{k: v for k, v in options.items() if v is not None and k in CONFIG_OPTIONS},
                              freeze_backbone=bool(options["freeze_backbone"]))
        except (KeyError, ValueError) as exc:
            raise EdgeposeError(str(exc).strip("'\"")) from exc
    resumed = {k: options[k] for k in RESUMABLE} if resume else {}
    best = run_training(out, cfg, resume=resume, progress=not quiet, threads=threads, **resumed)
    click.echo(f"done: best {best.get('metric')} {best.get('value', float('nan')):.4g} at epoch {best.get('epoch')}; "
               f"weights in {out}/best.pt and {out}/last.pt")


BACKBONE_OPTIONS = ("variant", "data", "epochs", "batch", "resolution", "lr", "warmup_epochs", "warmup_lr",
                    "step_epochs", "gamma", "momentum", "weight_decay", "max_rotation", "min_scale", "max_scale",
                    "min_aspect", "max_aspect", "pca_jitter", "flip", "init", "seed", "workers", "device", "bf16")


@train.command()
@click.option("--variant", help="Backbone: B0, B-1, B-2, B-3 or B-4.")
@click.option("--data", type=click.Path(exists=True, file_okay=False),
              help="ImageFolder: DATA/train/<class>/*.jpg and DATA/val/<class>/*.jpg.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Run folder, e.g. runs/b4.")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last.pt.")
@click.option("--epochs", type=click.IntRange(min=1), help="Epochs [200]; with --resume, the new total.")
@click.option("--batch", type=click.IntRange(min=1), help="Images per step [64].")
@click.option("--resolution", type=click.IntRange(min=16), help="Square input side [ceil(224 * 1.15**phi)].")
@click.option("--lr", type=float, help="SGD learning rate after the warm-up [0.05].")
@click.option("--warmup-epochs", type=click.IntRange(min=0), help="Linear warm-up epochs [5].")
@click.option("--warmup-lr", type=float, help="Learning rate the warm-up starts from [1e-4].")
@click.option("--step-epochs", type=click.IntRange(min=1), help="lr x --gamma every this many epochs [30].")
@click.option("--gamma", type=float, help="Step decay factor [0.1].")
@click.option("--momentum", type=float, help="SGD momentum [0.9].")
@click.option("--weight-decay", type=float, help="Weight decay of conv/linear weights [1e-4].")
@click.option("--max-rotation", type=float, help="Random rotation, degrees [10].")
@click.option("--min-scale", type=float, help="Smallest crop, as a fraction of the image area [0.08].")
@click.option("--max-scale", type=float, help="Largest crop fraction [1].")
@click.option("--min-aspect", type=float, help="Smallest crop aspect ratio [0.75].")
@click.option("--max-aspect", type=float, help="Largest crop aspect ratio [1.333].")
@click.option("--pca-jitter", type=float, help="PCA colour jitter std, 0 = off [0.1].")
@click.option("--flip", type=float, help="Horizontal flip probability [0.5].")
@click.option("--init", type=click.Choice(["xavier", "imagenet-lite0"]),
              help="xavier (the paper's) or imagenet-lite0 (weight selection from EfficientNet-Lite0) [xavier].")
@click.option("--seed", type=int, help="Seed of init, data order and augmentation [0].")
@click.option("--workers", type=click.IntRange(min=0), help="Data loader processes [0].")
@click.option("--device", help="auto, cpu or cuda[:N] [auto].")
@click.option("--bf16", is_flag=True, default=None, help="Mixed precision (bfloat16 convolutions).")
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads torch uses [torch's default].")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def backbone(out, resume, threads, quiet, **options) -> None:
    """Train a compact EfficientNet backbone as an image classifier (the paper's recipe):
    edgepose train backbone --variant B-4 --data DIR --out runs/b4"""
    try:
        from edgepose.train.classify import RESUMABLE, BackboneConfig, train_backbone
    except ImportError as exc:
        raise EdgeposeError(f"training needs the train extra ({exc.name or exc}): pip install 'edgepose[train]'") from exc
    cfg = None
    if resume:
        fixed = [k for k in BACKBONE_OPTIONS if k not in RESUMABLE and options.get(k) is not None]
        if fixed:
            raise EdgeposeError(f"--{fixed[0].replace('_', '-')} cannot change on --resume (only "
                                f"{', '.join('--' + k for k in RESUMABLE)} can): start a new run instead")
    else:
        if not (options.get("variant") and options.get("data")):
            raise EdgeposeError("a new run needs --variant and --data (or --resume to continue --out)")
        try:
            cfg = BackboneConfig(**{k: v for k, v in options.items() if v is not None})
        except ValueError as exc:
            raise EdgeposeError(str(exc)) from exc
    changes = {k: options[k] for k in RESUMABLE} if resume else {}
    best = train_backbone(out, cfg, resume=resume, progress=not quiet, threads=threads, **changes)
    click.echo(f"done: best top-1 {best['value']:.4f} at epoch {best['epoch']}; weights in {out}/best.pt "
               f"(edgepose train --init-backbone {out}/best.pt)")


@train.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--output", type=click.Path(dir_okay=False), help="PNG path [RUN_DIR/curves.png].")
def plot(run_dir, output) -> None:
    """Plot the learning curves of a run (loss terms, lr, validation AP) to a PNG."""
    from edgepose.train.plot import plot_run

    click.echo(f"wrote {plot_run(run_dir, output)}")


@train.command()
@click.argument("checkpoint", type=click.Path(exists=True))
@click.option("--ann", type=click.Path(exists=True, dir_okay=False), help="COCO keypoints json [the run's data].")
@click.option("--images", type=click.Path(exists=True, file_okay=False), help="Its images [the run's].")
@click.option("--input-size", type=click.IntRange(min=32), help="Input size the model was trained at [the run's].")
@click.option("--variant", help="Variant of an official checkpoint [the run's].")
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads torch uses [torch's default].")
def diagnose(checkpoint, ann, images, input_size, variant, threads) -> None:
    """What limits a model's AP: scores CHECKPOINT (or a run folder's best.pt) with its heatmaps or tags
    replaced by the ground truth's."""
    from tqdm import tqdm

    from edgepose.train.diagnose import diagnose_checkpoint

    result = diagnose_checkpoint(checkpoint, ann_file=ann, image_dir=images, input_size=input_size, variant=variant,
                                 threads=threads,
                                 progress=lambda it, total: tqdm(it, total=total, desc="images", leave=False))
    click.echo(result.report())


TEACHER_HELP = ("strong (NanoDet boxes -> MoveNet Thunder, plus MoveNet MultiPose; coco-mini AP 0.45) or multipose "
                "(MoveNet MultiPose at 256 + 512 px; AP 0.36), or the path of a MultiPose IR folder/.xml.")


def _teacher(teacher: str, models: str, bf16: bool, factory: bool = False):
    """The teacher callable, or with ``factory`` a picklable function that builds it (for worker processes)."""
    from functools import partial

    from edgepose.train.teacher import TEACHERS, make_teacher

    if teacher not in TEACHERS:
        if not os.path.exists(teacher):
            raise EdgeposeError(f"--teacher {teacher}: choose strong or multipose, or give a MoveNet MultiPose IR path")
        teacher, models = "multipose", teacher
    build = partial(make_teacher, teacher, models, bf16)
    if factory:
        build()  # fail here, in one line, rather than in every worker
        return build
    return build()


@train.command("pseudo-label")
@click.option("--teacher", default="strong", show_default=True, help=TEACHER_HELP)
@click.option("--teacher-models", default="../shared/models", show_default=True,
              type=click.Path(file_okay=False), help="Folder with nanodet/, movenet-thunder/, movenet-multipose/.")
@click.option("--bf16", is_flag=True, help="Run the teacher in bfloat16 (faster on AVX-512 BF16 CPUs; labels "
                                           "then depend on the CPU).")
@click.option("--images", "image_dirs", multiple=True, type=click.Path(exists=True, file_okay=False),
              help="Folder of images to label (recursive; repeatable).")
@click.option("--video", "videos", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="Video to sample frames from (repeatable).")
@click.option("--stride", type=click.IntRange(min=1), default=4, show_default=True, help="Take every N-th video frame.")
@click.option("--frames-dir", type=click.Path(file_okay=False), help="Where video frames go [OUT's folder/frames].")
@click.option("--keep-real", type=click.Path(exists=True, dir_okay=False), help="Real COCO json kept as it is.")
@click.option("--real-images", type=click.Path(exists=True, file_okay=False), help="Its images [its folder/images].")
@click.option("--real-ids", help="Keep only these image ids of --keep-real (comma-separated).")
@click.option("--skip-real-ids", help="Leave out these image ids of --keep-real (a held-out split).")
@click.option("--exclude", multiple=True, help="Glob of image paths (relative to their --images folder) to skip.")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="COCO json to write.")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Processes labelling in parallel (each loads the teacher).")
def pseudo_label(teacher, teacher_models, bf16, image_dirs, videos, stride, frames_dir, keep_real, real_images,
                 real_ids, skip_real_ids, exclude, out, workers) -> None:
    """Label images and video frames with a pretrained teacher as COCO keypoints (file names relative to OUT)."""
    from tqdm import tqdm

    from edgepose.train.pseudo import parse_ids, pseudo_label as run

    summary = run(_teacher(teacher, teacher_models, bf16, factory=workers > 1), out, workers=workers, images=image_dirs, videos=videos, stride=stride,
                  frames_dir=frames_dir, keep_real=keep_real, real_images=real_images, real_ids=parse_ids(real_ids),
                  skip_real_ids=parse_ids(skip_real_ids) or (), exclude=exclude,
                  progress=lambda it: tqdm(it, desc="labelling", unit="image"))
    click.echo(f"wrote {out}: {summary['images']} images, {summary['people']} pseudo-labelled people "
               f"({summary['ignored']} ignore regions), {summary['real_annotations']} real annotations kept; "
               f"train with --ann {out} --images {os.path.dirname(out) or '.'}")


@train.command("teacher-eval")
@click.option("--teacher", default="strong", show_default=True, help=TEACHER_HELP)
@click.option("--teacher-models", default="../shared/models", show_default=True,
              type=click.Path(file_okay=False), help="Folder with nanodet/, movenet-thunder/, movenet-multipose/.")
@click.option("--bf16", is_flag=True, help="Run the teacher in bfloat16.")
@click.option("--ann", required=True, type=click.Path(exists=True, dir_okay=False), help="COCO keypoints json.")
@click.option("--images", required=True, type=click.Path(exists=True, file_okay=False), help="Its images.")
def teacher_eval(teacher, teacher_models, bf16, ann, images) -> None:
    """COCO keypoint AP of a teacher on labelled images (what its pseudo-labels are worth)."""
    import time

    from tqdm import tqdm

    from edgepose.train.teacher import teacher_ap

    model = _teacher(teacher, teacher_models, bf16)
    t0 = time.perf_counter()
    metrics = teacher_ap(model, ann, images, progress=lambda it: tqdm(it, desc="images", leave=False))
    click.echo("  ".join(f"{k} {v:.3f}" for k, v in metrics.items()) + f"  ({time.perf_counter() - t0:.0f} s)")
