"""Inference speed of the two backends on the same weights: OpenVINO (IR) against ONNX Runtime (ONNX).

    .venv/bin/python benchmarks/backends.py [--variant H-4] [--iterations 30] [--image ../shared/data/coco-mini/images/...]

Exports the variant with seeded random weights to both formats (the train extra is needed), then times
synchronous ``infer`` calls on one real image on the CPU, alternating the backends in rounds so machine load
hits both alike. Prints median latency per backend, the ratio, the ISA and the precision each ran with. On a
Jetson the ONNX Runtime side runs on TensorRT/CUDA when present (--device AUTO).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path

import cv2

from edgepose.inference import load_model

DEFAULT_IMAGE = Path(__file__).resolve().parents[1].parent / "shared/data/coco-mini/images/000000000785.jpg"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variant", default="H-4")
    ap.add_argument("--iterations", type=int, default=30)
    ap.add_argument("--image", type=Path, default=DEFAULT_IMAGE)
    ap.add_argument("--ort-device", default="AUTO", help="onnxruntime device: AUTO, GPU, CUDA or CPU")
    args = ap.parse_args()
    from edgepose.train.export import export_onnx, export_variant

    image = cv2.imread(str(args.image))
    if image is None:
        raise SystemExit(f"cannot read {args.image}")
    with tempfile.TemporaryDirectory() as tmp:
        models = {
            "openvino": load_model(export_variant(args.variant, Path(tmp) / "ir", random_init=True)),
            "onnxruntime": load_model(export_onnx(args.variant, Path(tmp) / "onnx", random_init=True),
                                      backend="onnxruntime", device=args.ort_device),
        }
        times: dict[str, list[float]] = {name: [] for name in models}
        for model in models.values():
            model.infer(image)  # compile / warm up
        for _ in range(args.iterations):
            for name, model in models.items():
                t = time.perf_counter()
                model.infer(image)
                times[name].append((time.perf_counter() - t) * 1000)
        import openvino

        print(f"{args.variant} on {platform.processor() or platform.machine()}, image {image.shape[1]}x{image.shape[0]}, "
              f"network {models['openvino'].network_shape}, OpenVINO {openvino.get_version()}, "
              f"CPU ISA {openvino.Core().get_property('CPU', 'OPTIMIZATION_CAPABILITIES')}")
        for name, model in models.items():
            extra = f" providers {model.providers}" if name == "onnxruntime" else ""
            print(f"  {name:12s} median {statistics.median(times[name]):7.1f} ms  "
                  f"precision {model.runtime_precision()}{extra}")
        ratio = statistics.median(times["onnxruntime"]) / statistics.median(times["openvino"])
        print(f"  onnxruntime / openvino latency: {ratio:.2f}")


if __name__ == "__main__":
    main()
