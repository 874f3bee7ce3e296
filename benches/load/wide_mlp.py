#!/usr/bin/env python3
"""Write `wide_mlp`, a model that does real work per row, for the batching sweep.

FP32 [-1, 64] -> Gemm 64x2048, Relu -> Gemm 2048x2048, Relu -> Gemm 2048x10 -> `logits`:
about 4.3 million multiply-adds a row, against some 9000 for the example `mlp`, so the
served / in-process ratio shows what the serving path costs when execution is not
negligible. Fixed seed, opset 17, IR version 8 (as examples/generate_models.py).

Usage: wide_mlp.py OUT_DIR   (writes OUT_DIR/1/model.onnx)
"""

from __future__ import annotations

import pathlib
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def main(out: pathlib.Path) -> None:
    rng = np.random.default_rng(64)
    sizes = [64, 2048, 2048, 10]
    nodes, weights = [], []
    previous = "input"
    for layer, (rows, cols) in enumerate(zip(sizes, sizes[1:])):
        w, b = f"w{layer}", f"b{layer}"
        weights.append(numpy_helper.from_array((rng.standard_normal((rows, cols)) / np.sqrt(rows)).astype(np.float32), w))
        weights.append(numpy_helper.from_array(np.zeros(cols, np.float32), b))
        last = layer == len(sizes) - 2
        gemm = "logits" if last else f"gemm{layer}"
        nodes.append(helper.make_node("Gemm", [previous, w, b], [gemm], name=f"gemm{layer}"))
        if not last:
            nodes.append(helper.make_node("Relu", [gemm], [f"relu{layer}"], name=f"relu{layer}"))
            previous = f"relu{layer}"
    graph = helper.make_graph(
        nodes,
        "wide_mlp",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 64])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])],
        initializer=weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="ferrite-benches")
    model.ir_version = 8
    onnx.checker.check_model(model)
    (out / "1").mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(out / "1" / "model.onnx"))


if __name__ == "__main__":
    main(pathlib.Path(sys.argv[1]))
