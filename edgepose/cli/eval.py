"""`edgepose eval`: COCO keypoint AP of a model over an annotated image folder."""

from __future__ import annotations

import click


@click.command("eval")
@click.option("--ann", "ann_file", required=True, type=click.Path(exists=True, dir_okay=False),
              help="COCO person_keypoints JSON.")
@click.option("--images", "images_dir", required=True, type=click.Path(exists=True, file_okay=False),
              help="Folder with the annotated images.")
@click.option("--model", "model_spec", required=True, metavar="M", help="IR .xml, model folder, name or variant (H-4).")
@click.option("--flip", is_flag=True, help="Flip test: also run the mirrored image and merge.")
@click.option("--device", default="CPU", show_default=True, help="OpenVINO device.")
@click.option("--out", "out_file", type=click.Path(dir_okay=False), default="results.json", show_default=True,
              help="Where to write the COCO results JSON.")
@click.option("--max-images", type=click.IntRange(min=1), help="Evaluate only the first N images (by id).")
def eval_cmd(ann_file, images_dir, model_spec, flip, device, out_file, max_images) -> None:
    """Run a model over COCO-annotated images, write COCO results and print keypoint AP/AR."""
    from edgepose import registry
    from edgepose.eval.coco import image_list
    from edgepose.inference import load_model
    from edgepose.service.predict import evaluate_model

    images = image_list(ann_file, images_dir, max_images)
    model = load_model(registry.resolve(model_spec), device=device, mode="latency")
    metrics, people = evaluate_model(model, ann_file, images, flip=flip, results_file=out_file, progress=True)
    click.echo(f"{people} people in {len(images)} images -> {out_file}")
    click.echo("  ".join(f"{name:>6}" for name in metrics))
    click.echo("  ".join(f"{value:6.3f}" for value in metrics.values()))
