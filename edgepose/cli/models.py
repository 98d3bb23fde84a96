"""``edgepose models``: list, inspect, download and profile models."""

from __future__ import annotations

import json

import click


@click.group()
def models():
    """List, inspect, download and profile models."""


@models.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def list_cmd(as_json):
    """Known models: expected accuracy, size, whether present here, last profile on this machine."""
    from edgepose.registry.listing import model_rows

    rows = model_rows()
    if as_json:
        click.echo(json.dumps(rows, indent=1))
        return
    def num(value, fmt):
        return format(value, fmt) if value is not None else "-"

    click.echo(f"{'name':<30} {'family':<15} {'input':>5} {'AP %':>5} {'GMACs':>6}  {'local':<5} last profile")
    for r in rows:
        prof = f"{r['profile_fps']:.1f} fps at {r['profile_size']}" if r.get("profile_fps") else "-"
        click.echo(f"{r['name']:<30} {r['family']:<15} {num(r['input_size'], 'd'):>5} {num(r['ap'], '.1f'):>5} "
                   f"{num(r['gmacs'], '.2f'):>6}  {'yes' if r['path'] else 'no':<5} {prof}")


@models.command()
@click.argument("name")
@click.option("--force", is_flag=True, help="Download again even if present.")
def pull(name, force):
    """Download a model (progress bar, SHA-256 check, atomic install)."""
    from edgepose.registry.pull import pull as do_pull

    click.echo(str(do_pull(name, force=force)))


@models.command()
@click.option("--variant", help="Only this variant (H0..H-4).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--measure", is_flag=True, help="Build the torch models and count params/MACs (needs the train extra).")
@click.option("--backbones", is_flag=True, help="The compact EfficientNets B0..B-4 beside the paper's Table 2.")
def info(variant, as_json, measure, backbones):
    """EfficientHRNet variants: input size, true params and MACs, output shapes, the paper's Table 3 beside ours."""
    from edgepose.registry.listing import backbone_rows, variant_rows

    if backbones:
        _print_backbones(backbone_rows(), as_json)
        return
    rows = variant_rows(variant, measure=measure)
    if as_json:
        click.echo(json.dumps(rows, indent=1))
        return
    click.echo(f"{'variant':<7} {'input':>5} {'params':>12} {'MACs (G)':>9} {'paper params':>12} {'paper FLOPs':>11} "
               f"{'AP':>5} {'AP ms':>5}  outputs")
    for r in rows:
        shapes = " ".join("x".join(map(str, s[1:])) for s in r["output_shapes"])
        click.echo(f"{r['variant']:<7} {r['input_size']:>5} {r['params']:>12,} {r['macs'] / 1e9:>9.3f} "
                   f"{r['paper']['params'] / 1e6:>11.1f}M {r['paper']['flops'] / 1e9:>10.1f}B "
                   f"{r['paper']['ap']:>5.1f} {r['paper']['ap_multi']:>5.1f}  {shapes}")


def _print_backbones(rows: list[dict], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(rows, indent=1))
        return
    click.echo(f"{'':<5} {'ours':>40}   {'paper Table 2':>37}")
    click.echo(f"{'model':<5} {'input':>5} {'params (1000)':>13} {'GMACs':>6} {'params (100)':>12}   "
               f"{'input':>5} {'params':>7} {'FLOPS':>6} {'top-1':>5} {'CIFAR':>6} {'top-1':>5}")
    for r in rows:
        p = r["paper"]
        click.echo(f"{r['backbone']:<5} {r['resolution']:>5} {r['params_imagenet']:>13,} {r['macs_imagenet'] / 1e9:>6.3f} "
                   f"{r['params_cifar']:>12,}   {p['input_size']:>5} {p['imagenet_params'] / 1e6:>6.1f}M "
                   f"{p['imagenet_flops'] / 1e9:>5.2f}B {p['imagenet_top1']:>5.1f} {p['cifar_params'] / 1e6:>5.1f}M "
                   f"{p['cifar_top1']:>5.1f}")
    click.echo("ours: counted from the table (conv/linear MACs, BN in params) at ceil(224 * 1.15**phi), equal to the "
               "torch counter. The paper's B-3/B-4 inputs (145, 128) depart from its own rule, its B-4 ImageNet params "
               "repeat the CIFAR figure, and its MACs assume TensorFlow padding at odd sizes: see models/README.md.")


@models.command()
@click.option("--device", default=None, help="OpenVINO device(s), comma separated [default: every available one].")
@click.option("--size", default="640x480", show_default=True, help="Frame size WxH to profile at.")
@click.option("--iterations", default=10, show_default=True, type=click.IntRange(min=2), help="Timed runs per model.")
@click.option("--reprofile", is_flag=True, help="Ignore cached profiles.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--plot", type=click.Path(dir_okay=False), help="Write a PNG of accuracy against speed.")
def profile(device, size, iterations, reprofile, as_json, plot):
    """Measure every local model on this device: latency (median, p90), throughput, decoding overhead."""
    from edgepose.service.profiling import profile_local

    try:
        w, h = (int(v) for v in size.lower().split("x"))
    except ValueError:
        raise click.BadParameter(f"expected WIDTHxHEIGHT like 640x480, got {size!r}", param_hint="--size") from None
    table, profiles = profile_local(device, (w, h), iterations=iterations, reprofile=reprofile, plot=plot)
    click.echo(json.dumps(profiles, indent=1) if as_json else table)
