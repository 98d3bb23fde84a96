"""Multiply-accumulate count of an OpenVINO IR, read from the graph itself.

Counts what the torch counter in ``edgepose.train`` counts, so figures are comparable across our exports and
Intel's IRs: Convolution and GroupConvolution (output elements x input channels per group x kernel area),
ConvolutionBackpropData (input elements x output channels x kernel area) and MatMul. Normalisation,
activations, resizes and element-wise ops are not counted.
"""

from __future__ import annotations

import math
from pathlib import Path


def ir_macs(xml: str | Path, height: int, width: int) -> int:
    """MACs of the IR at input height x width (the model is reshaped to that size; spatial dims must be legal)."""
    import openvino as ov

    model = ov.Core().read_model(str(xml))
    shape = list(model.input(0).get_partial_shape())
    layout_nhwc = len(shape) == 4 and shape[3].is_static and shape[3].get_length() == 3
    model.reshape({model.input(0).get_any_name(): [1, height, width, 3] if layout_nhwc else [1, 3, height, width]})
    total = 0
    for op in model.get_ordered_ops():
        kind = op.get_type_name()
        if kind in ("Convolution", "GroupConvolution"):
            out = op.get_output_shape(0)
            w = op.input_value(1).get_shape()
            # Convolution weights: [O, I, k...]; GroupConvolution: [G, O/G, I/G, k...]
            per_out = (w[2] if kind == "GroupConvolution" else w[1]) * math.prod(w[-2:])
            total += math.prod(out) * per_out
        elif kind == "ConvolutionBackpropData":
            inp = op.input_value(0).get_shape()
            w = op.input_value(1).get_shape()  # [I, O, k...]
            total += math.prod(inp) * w[1] * math.prod(w[-2:])
        elif kind == "MatMul":
            a = op.input_value(0).get_shape()
            out = op.get_output_shape(0)
            total += math.prod(out) * (a[-2] if op.get_transpose_a() else a[-1])
    return int(total)
