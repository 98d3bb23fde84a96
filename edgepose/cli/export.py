"""``edgepose export`` and ``edgepose quantize``: EfficientHRNet variants to the OpenVINO IRs the runtime executes (train extra)."""

from __future__ import annotations

import json

import click

from edgepose.errors import EdgeposeError


@click.command()
@click.option("--variant", required=True, help="H0, H-1, H-2, H-3 or H-4.")
@click.option("--weights", type=click.Path(dir_okay=False), help="Checkpoint (.pth/.pth.tar/.pt), official or ours.")
@click.option("--random-init", is_flag=True, help="Seeded random weights (speed profiling and tests only).")
@click.option("--precision", type=click.Choice(["FP32", "FP16", "INT8"], case_sensitive=False), default="FP32",
              show_default=True)
@click.option("--calib", type=click.Path(file_okay=False), help="Folder of real images for INT8 calibration.")
@click.option("--format", "fmt", type=click.Choice(["openvino", "onnx"]), default="openvino", show_default=True,
              help="openvino: IR for the default backend; onnx: model.onnx for ONNX Runtime (FP32 only).")
@click.option("--drop-stride2-tags", is_flag=True,
              help="Checkpoint trained with WITH_AE_LOSS [True, True]: keep final_layers.1's 17 heatmaps only.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of --random-init.")
@click.option("--ann", "ann_file", type=click.Path(dir_okay=False),
              help="COCO person_keypoints JSON: evaluate the export and record its AP in the card "
                   "(what --model auto ranks by; without it a self-trained export ranks last).")
@click.option("--images", "eval_images", type=click.Path(file_okay=False), help="Images of --ann.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Output folder, e.g. models/NAME/.")
def export(variant, weights, random_init, precision, calib, fmt, drop_stride2_tags, seed, ann_file, eval_images,
           out) -> None:
    """Write OUT/model.xml, model.bin and model.json:  edgepose export --variant H-4 --weights W.pth --out DIR

    \b
    With --ann/--images the card records the AP measured on that set:
        edgepose export --variant H-4 --weights runs/h4/best.pt --precision FP16 \\
            --ann coco/person_keypoints.json --images coco/images --out models/site-h4
    """
    from edgepose.variants import get_variant

    if bool(weights) == random_init:
        raise EdgeposeError("give exactly one of --weights CHECKPOINT or --random-init")
    try:
        v = get_variant(variant)
    except ValueError as exc:
        raise EdgeposeError(str(exc)) from None
    if fmt == "onnx" and ann_file:
        raise EdgeposeError("--ann/--images evaluate an OpenVINO export; drop them with --format onnx")
    if fmt == "onnx" and precision.upper() != "FP32":
        raise EdgeposeError("--format onnx writes FP32 only (TensorRT picks FP16/INT8 itself); drop --precision")
    try:
        from edgepose.train.export import export_onnx, export_variant
    except ImportError as exc:
        raise EdgeposeError(f"export needs the train extra ({exc.name or exc}): pip install 'edgepose[train]'") from exc

    if fmt == "onnx":
        path = export_onnx(v, out, weights=weights, random_init=random_init, seed=seed,
                           drop_stride2_tags=drop_stride2_tags)
    else:
        path = export_variant(v, out, weights=weights, random_init=random_init, precision=precision.upper(),
                              calib_images=calib, seed=seed, drop_stride2_tags=drop_stride2_tags,
                              ann_file=ann_file, eval_images=eval_images)
    measured = json.loads((path.parent / "model.json").read_text()).get("eval")
    ap = f", AP {measured['AP']:.3f} on {measured['dataset']}" if measured else ""
    click.echo(f"wrote {path} ({v.name}, {precision.upper()}, {fmt}{ap})")


@click.command()
@click.option("--model", "model_dir", required=True, type=click.Path(),
              help="An edgepose FP32/FP16 export: its folder or model.xml.")
@click.option("--calib", required=True, type=click.Path(),
              help="Folder of real images of people (searched recursively), never the evaluation images.")
@click.option("--calib-images", type=click.IntRange(min=1), default=64, show_default=True,
              help="How many images to calibrate on (spread evenly over the folder).")
@click.option("--ann", "ann_file", type=click.Path(dir_okay=False),
              help="COCO person_keypoints JSON: measure the AP change and record it in the card.")
@click.option("--images", "eval_images", type=click.Path(file_okay=False), help="Images of --ann.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Output folder, e.g. models/NAME-int8/.")
def quantize(model_dir, calib, calib_images, ann_file, eval_images, out) -> None:
    """INT8 copy of an IR by NNCF post-training quantisation, calibrated on real images; with --ann/--images
    the card records the AP change, which `--model auto` needs before it considers the INT8 model.

    \b
    edgepose quantize --model models/edgepose-h4 --calib ../shared/data/unlabeled \\
        --ann coco/person_keypoints.json --images coco/images --out models/edgepose-h4-int8
    """
    try:
        from edgepose.train.export import quantize_ir
    except ImportError as exc:
        raise EdgeposeError(f"quantize needs the train extra ({exc.name or exc}): pip install 'edgepose[train]'") from exc
    path = quantize_ir(model_dir, out, calib, limit=calib_images, ann_file=ann_file, eval_images=eval_images)
    ap = json.loads((path.parent / "model.json").read_text())["int8"].get("ap")
    change = f", AP {ap['reference']:.3f} -> {ap['int8']:.3f} ({ap['change']:+.3f})" if ap else ""
    click.echo(f"wrote {path} (INT8{change})")
