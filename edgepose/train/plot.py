"""Learning curves of a training run as one PNG (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path

from edgepose.errors import EdgeposeError
from edgepose.train.loop import read_csv


def _column(rows: list[dict[str, str]], name: str) -> list[float]:
    return [float(r[name]) if r.get(name) not in (None, "") else float("nan") for r in rows]


def plot_run(run_dir: str | Path, output: str | Path | None = None) -> Path:
    """Write the curves of the run in ``run_dir`` (its steps.csv and epochs.csv) to ``output``
    (default ``run_dir/curves.png``) and return the path: loss terms per step and per epoch (log scale),
    the learning rate, and validation AP / AP50 when the run measured them."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    run = Path(run_dir)
    steps, epochs = read_csv(run / "steps.csv"), read_csv(run / "epochs.csv")
    if not steps:
        raise EdgeposeError(f"{run} has no steps.csv rows: is it a run folder of `edgepose train`, and has it run a step?")
    output = Path(output) if output else run / "curves.png"
    if "heatmap4" not in steps[0]:
        fig = _classification_figure(plt, steps, epochs)
    else:
        fig = _pose_figure(plt, steps, epochs)
    fig.suptitle(run.name, fontsize=10)
    fig.tight_layout()
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(output)
    return output


def _classification_figure(plt, steps, epochs):
    """A backbone run (`edgepose train backbone`): loss with the lr, and validation top-1/top-5."""
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(9, 3.6), dpi=80)
    ax_loss.plot(_column(steps, "step"), _column(steps, "loss"), lw=0.8, label="cross-entropy (step)")
    ax_loss.set(xlabel="step", title="training loss")
    ax_loss.legend(fontsize=7)
    lr_axis = ax_loss.twinx()
    lr_axis.plot(_column(steps, "step"), _column(steps, "lr"), "g--", lw=0.8)
    lr_axis.set_ylabel("lr", color="g")
    for name in ("top1", "top5"):
        ax_acc.plot(_column(epochs, "epoch"), _column(epochs, name), "o-", ms=3, label=name)
    ax_acc.set(xlabel="epoch", title="validation accuracy", ylim=(0, 1))
    ax_acc.legend(fontsize=7)
    return fig


def _pose_figure(plt, steps, epochs):
    fig, (ax_loss, ax_ae, ax_ap) = plt.subplots(1, 3, figsize=(13, 3.6), dpi=80)
    step = _column(steps, "step")
    ax_loss.plot(step, _column(steps, "loss"), lw=0.8, alpha=0.5, label="loss (step)")
    for name in ("heatmap4", "heatmap2"):
        ax_loss.plot(step, _column(steps, name), lw=0.8, label=f"{name} (step)")
    if epochs:
        # Epoch means drawn at the epoch's last step, so both series share the x axis.
        last_step = {}
        for r in steps:
            last_step[r["epoch"]] = float(r["step"])
        ax_loss.plot([last_step.get(r["epoch"], float("nan")) for r in epochs], _column(epochs, "loss"), "k.-",
                     label="loss (epoch mean)")
    ax_loss.set(yscale="log", xlabel="step", title="heatmap loss")
    ax_loss.legend(fontsize=7)

    for name in ("push", "pull"):
        ax_ae.plot(step, _column(steps, name), lw=0.8, label=f"{name} (x factor)")
    ax_ae.set(yscale="log", xlabel="step", title="associative embedding")
    ax_ae.legend(fontsize=7)
    lr_axis = ax_ae.twinx()
    lr_axis.plot(step, _column(steps, "lr"), "g--", lw=0.8)
    lr_axis.set_ylabel("lr", color="g")

    ap_epochs = [r for r in epochs if r.get("ap")]
    if ap_epochs:
        ax_ap.plot(_column(ap_epochs, "epoch"), _column(ap_epochs, "ap"), "o-", label="AP")
        ax_ap.plot(_column(ap_epochs, "epoch"), _column(ap_epochs, "ap50"), "s--", label="AP50")
        ax_ap.legend(fontsize=7)
    else:
        ax_ap.text(0.5, 0.5, "no validation yet", ha="center", va="center", transform=ax_ap.transAxes)
    ax_ap.set(xlabel="epoch", title="validation (COCO OKS)", ylim=(0, 1))
    return fig
