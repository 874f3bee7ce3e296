#!/usr/bin/env python3
"""Write the example model repository (`examples/models/`).

Every model is built with the `onnx` helper API from fixed seeds, so running
this script twice produces byte-identical files. All models use opset 17 and
IR version 8, which both ONNX Runtime 1.22 and tract load.

Usage:
    python examples/generate_models.py [--out DIR]

Models written (see examples/README.md for what each one exercises):
    identity_fp32   FP32 [-1, 16] identity, dynamic batching
    simple          INT32 sum and difference, Triton's `simple` layout
    identity_bytes  STRING [-1, -1] identity
    mlp             FP32 [-1, 64] -> 10-way softmax, no config.pbtxt
    cnn             FP32 [-1, 3, 32, 32] -> 10 logits, versions 1 and 2
    all_types       one identity per KServe data type except BF16
    identity_bf16   BF16 [-1, 4] identity
    ragged_sum      ragged FP32 input -> per-request sum and the input doubled
"""

from __future__ import annotations

import argparse
import pathlib
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 8
PRODUCER = "ferrite-examples"
BATCH = "batch"

DEFAULT_OUT = pathlib.Path(__file__).resolve().parent / "models"

# KServe datatype name -> (ONNX element type, Triton config type).
ALL_TYPES = [
    ("BOOL", TensorProto.BOOL, "TYPE_BOOL"),
    ("UINT8", TensorProto.UINT8, "TYPE_UINT8"),
    ("UINT16", TensorProto.UINT16, "TYPE_UINT16"),
    ("UINT32", TensorProto.UINT32, "TYPE_UINT32"),
    ("UINT64", TensorProto.UINT64, "TYPE_UINT64"),
    ("INT8", TensorProto.INT8, "TYPE_INT8"),
    ("INT16", TensorProto.INT16, "TYPE_INT16"),
    ("INT32", TensorProto.INT32, "TYPE_INT32"),
    ("INT64", TensorProto.INT64, "TYPE_INT64"),
    ("FP16", TensorProto.FLOAT16, "TYPE_FP16"),
    ("FP32", TensorProto.FLOAT, "TYPE_FP32"),
    ("FP64", TensorProto.DOUBLE, "TYPE_FP64"),
    ("BYTES", TensorProto.STRING, "TYPE_STRING"),
]


def finish(graph: onnx.GraphProto) -> onnx.ModelProto:
    """Wrap a graph into a checked model with the fixed opset and IR version."""
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name=PRODUCER,
    )
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    return model


def tensor(name: str, elem_type: int, shape: list) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem_type, shape)


def weights(rng: np.random.Generator, name: str, shape: tuple, scale: float) -> onnx.TensorProto:
    values = (rng.standard_normal(shape) * scale).astype(np.float32)
    return numpy_helper.from_array(values, name)


def identity_model(name: str, pairs: list[tuple[str, str, int, list]]) -> onnx.ModelProto:
    """One Identity node per (input, output, element type, shape) entry."""
    nodes = [helper.make_node("Identity", [i], [o], name=f"identity_{i}") for i, o, _, _ in pairs]
    inputs = [tensor(i, t, shape) for i, _, t, shape in pairs]
    outputs = [tensor(o, t, shape) for _, o, t, shape in pairs]
    return finish(helper.make_graph(nodes, name, inputs, outputs))


def simple_model() -> onnx.ModelProto:
    shape = [BATCH, 16]
    nodes = [
        helper.make_node("Add", ["INPUT0", "INPUT1"], ["OUTPUT0"], name="sum"),
        helper.make_node("Sub", ["INPUT0", "INPUT1"], ["OUTPUT1"], name="difference"),
    ]
    graph = helper.make_graph(
        nodes,
        "simple",
        [tensor("INPUT0", TensorProto.INT32, shape), tensor("INPUT1", TensorProto.INT32, shape)],
        [tensor("OUTPUT0", TensorProto.INT32, shape), tensor("OUTPUT1", TensorProto.INT32, shape)],
    )
    return finish(graph)


def mlp_model() -> onnx.ModelProto:
    rng = np.random.default_rng(1001)
    inits = [
        weights(rng, "fc1.weight", (64, 128), 1.0 / 8.0),
        weights(rng, "fc1.bias", (128,), 0.1),
        weights(rng, "fc2.weight", (128, 10), 1.0 / 11.3),
        weights(rng, "fc2.bias", (10,), 0.1),
    ]
    nodes = [
        helper.make_node("Gemm", ["input", "fc1.weight", "fc1.bias"], ["fc1"], name="fc1"),
        helper.make_node("Relu", ["fc1"], ["relu1"], name="relu1"),
        helper.make_node("Gemm", ["relu1", "fc2.weight", "fc2.bias"], ["logits"], name="fc2"),
        helper.make_node("Softmax", ["logits"], ["probabilities"], name="softmax", axis=-1),
    ]
    graph = helper.make_graph(
        nodes,
        "mlp",
        [tensor("input", TensorProto.FLOAT, [BATCH, 64])],
        [tensor("probabilities", TensorProto.FLOAT, [BATCH, 10])],
        initializer=inits,
    )
    return finish(graph)


def cnn_model(seed: int) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    inits = [
        weights(rng, "conv1.weight", (8, 3, 3, 3), 1.0 / 5.2),
        weights(rng, "conv1.bias", (8,), 0.1),
        weights(rng, "conv2.weight", (16, 8, 3, 3), 1.0 / 8.5),
        weights(rng, "conv2.bias", (16,), 0.1),
        weights(rng, "fc.weight", (16, 10), 1.0 / 4.0),
        weights(rng, "fc.bias", (10,), 0.1),
    ]
    conv = {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}
    nodes = [
        helper.make_node("Conv", ["image", "conv1.weight", "conv1.bias"], ["c1"], name="conv1", **conv),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("MaxPool", ["r1"], ["p1"], name="pool1", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p1", "conv2.weight", "conv2.bias"], ["c2"], name="conv2", **conv),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        helper.make_node("GlobalAveragePool", ["r2"], ["gap"], name="gap"),
        helper.make_node("Flatten", ["gap"], ["flat"], name="flatten", axis=1),
        helper.make_node("Gemm", ["flat", "fc.weight", "fc.bias"], ["logits"], name="fc"),
    ]
    graph = helper.make_graph(
        nodes,
        "cnn",
        [tensor("image", TensorProto.FLOAT, [BATCH, 3, 32, 32])],
        [tensor("logits", TensorProto.FLOAT, [BATCH, 10])],
        initializer=inits,
    )
    return finish(graph)


def ragged_sum_model() -> onnx.ModelProto:
    """Per-request sums over a ragged batch.

    INPUT is every request's elements concatenated; BOUNDS (the
    BATCH_ACCUMULATED_ELEMENT_COUNT_WITH_ZERO batch input) says where each
    request starts and ends. SUM[i] = cumsum[BOUNDS[i+1]] - cumsum[BOUNDS[i]]
    over the cumulative sum with a leading zero; DOUBLED is INPUT * 2, which
    the server scatters back in each request's input shape.
    """
    constants = [
        numpy_helper.from_array(np.zeros(1, np.float32), "zero"),
        numpy_helper.from_array(np.array(0, np.int64), "axis"),
        numpy_helper.from_array(np.array([0], np.int64), "axes"),
        numpy_helper.from_array(np.array([1], np.int64), "one"),
        numpy_helper.from_array(np.array([-1], np.int64), "minus_one"),
        numpy_helper.from_array(np.array([np.iinfo(np.int64).max], np.int64), "end"),
        numpy_helper.from_array(np.array([1], np.int64), "column"),
        numpy_helper.from_array(np.array(2.0, np.float32), "two"),
    ]
    nodes = [
        helper.make_node("Concat", ["zero", "INPUT"], ["padded"], axis=0, name="pad"),
        helper.make_node("CumSum", ["padded", "axis"], ["running"], name="running_sum"),
        helper.make_node("Gather", ["running", "BOUNDS"], ["at_bounds"], axis=0, name="at_bounds"),
        helper.make_node("Slice", ["at_bounds", "one", "end", "axes"], ["ends"], name="ends"),
        helper.make_node("Slice", ["at_bounds", "axes", "minus_one", "axes"], ["starts"], name="starts"),
        helper.make_node("Sub", ["ends", "starts"], ["sums"], name="sums"),
        helper.make_node("Unsqueeze", ["sums", "column"], ["SUM"], name="to_rows"),
        helper.make_node("Mul", ["INPUT", "two"], ["DOUBLED"], name="double"),
    ]
    graph = helper.make_graph(
        nodes,
        "ragged_sum",
        [tensor("INPUT", TensorProto.FLOAT, ["elements"]), tensor("BOUNDS", TensorProto.INT64, ["bounds"])],
        [tensor("SUM", TensorProto.FLOAT, [BATCH, 1]), tensor("DOUBLED", TensorProto.FLOAT, ["elements"])],
        initializer=constants,
    )
    return finish(graph)


def tensor_config(name: str, data_type: str, dims: list[int]) -> str:
    """One entry of an `input [...]` or `output [...]` list, Triton's layout."""
    dims_text = ", ".join(str(d) for d in dims)
    return f'  {{\n    name: "{name}"\n    data_type: {data_type}\n    dims: [ {dims_text} ]\n  }}'


def io_block(kind: str, entries: list[tuple[str, str, list[int]]]) -> str:
    body = ",\n".join(tensor_config(n, t, d) for n, t, d in entries)
    return f"{kind} [\n{body}\n]\n"


def identity_fp32_config() -> str:
    return (
        'name: "identity_fp32"\n'
        'backend: "onnxruntime"\n'
        "max_batch_size: 64\n"
        + io_block("input", [("INPUT0", "TYPE_FP32", [16])])
        + io_block("output", [("OUTPUT0", "TYPE_FP32", [16])])
        + "dynamic_batching {\n  max_queue_delay_microseconds: 100\n}\n"
    )


def simple_config() -> str:
    return (
        'name: "simple"\n'
        'platform: "onnxruntime_onnx"\n'
        "max_batch_size: 8\n"
        + io_block("input", [("INPUT0", "TYPE_INT32", [16]), ("INPUT1", "TYPE_INT32", [16])])
        + io_block("output", [("OUTPUT0", "TYPE_INT32", [16]), ("OUTPUT1", "TYPE_INT32", [16])])
    )


def identity_bytes_config() -> str:
    return (
        'name: "identity_bytes"\n'
        'backend: "onnxruntime"\n'
        "max_batch_size: 8\n"
        + io_block("input", [("INPUT0", "TYPE_STRING", [-1])])
        + io_block("output", [("OUTPUT0", "TYPE_STRING", [-1])])
    )


def cnn_config() -> str:
    return (
        'name: "cnn"\n'
        'platform: "onnxruntime_onnx"\n'
        "max_batch_size: 32\n"
        "version_policy: { all: {} }\n"
        + io_block("input", [("image", "TYPE_FP32", [3, 32, 32])])
        + io_block("output", [("logits", "TYPE_FP32", [10])])
        + "instance_group [\n  {\n    count: 1\n    kind: KIND_CPU\n  }\n]\n"
    )


def all_types_config() -> str:
    return (
        'name: "all_types"\n'
        'backend: "onnxruntime"\n'
        "max_batch_size: 8\n"
        + io_block("input", [(f"IN_{k}", t, [4]) for k, _, t in ALL_TYPES])
        + io_block("output", [(f"OUT_{k}", t, [4]) for k, _, t in ALL_TYPES])
    )


def identity_bf16_config() -> str:
    return (
        'name: "identity_bf16"\n'
        'backend: "onnxruntime"\n'
        "max_batch_size: 8\n"
        + io_block("input", [("INPUT0", "TYPE_BF16", [4])])
        + io_block("output", [("OUTPUT0", "TYPE_BF16", [4])])
    )


def ragged_sum_config() -> str:
    return (
        'name: "ragged_sum"\n'
        'backend: "onnxruntime"\n'
        "max_batch_size: 16\n"
        'input [\n  {\n    name: "INPUT"\n    data_type: TYPE_FP32\n    dims: [ -1 ]\n'
        "    allow_ragged_batch: true\n  }\n]\n"
        + io_block("output", [("SUM", "TYPE_FP32", [1]), ("DOUBLED", "TYPE_FP32", [-1])])
        + "batch_input [\n  {\n    kind: BATCH_ACCUMULATED_ELEMENT_COUNT_WITH_ZERO\n"
        '    target_name: "BOUNDS"\n    data_type: TYPE_INT64\n    source_input: "INPUT"\n  }\n]\n'
        + "batch_output [\n  {\n    kind: BATCH_SCATTER_WITH_INPUT_SHAPE\n"
        '    target_name: "DOUBLED"\n    source_input: "INPUT"\n  }\n]\n'
        + "dynamic_batching {\n  max_queue_delay_microseconds: 2000\n}\n"
    )


def repository() -> dict[str, tuple[str | None, dict[int, onnx.ModelProto]]]:
    """Model name -> (config.pbtxt text or None, {version: model})."""
    all_types = identity_model(
        "all_types",
        [(f"IN_{k}", f"OUT_{k}", t, [BATCH, 4]) for k, t, _ in ALL_TYPES],
    )
    return {
        "identity_fp32": (
            identity_fp32_config(),
            {1: identity_model("identity_fp32", [("INPUT0", "OUTPUT0", TensorProto.FLOAT, [BATCH, 16])])},
        ),
        "simple": (simple_config(), {1: simple_model()}),
        "identity_bytes": (
            identity_bytes_config(),
            {1: identity_model("identity_bytes", [("INPUT0", "OUTPUT0", TensorProto.STRING, [BATCH, "length"])])},
        ),
        "mlp": (None, {1: mlp_model()}),
        "cnn": (cnn_config(), {1: cnn_model(2001), 2: cnn_model(2002)}),
        "all_types": (all_types_config(), {1: all_types}),
        "identity_bf16": (
            identity_bf16_config(),
            {1: identity_model("identity_bf16", [("INPUT0", "OUTPUT0", TensorProto.BFLOAT16, [BATCH, 4])])},
        ),
        "ragged_sum": (ragged_sum_config(), {1: ragged_sum_model()}),
    }


def write(out: pathlib.Path) -> list[pathlib.Path]:
    """Write every model under `out`; returns the files written."""
    written = []
    for name, (config, versions) in repository().items():
        model_dir = out / name
        model_dir.mkdir(parents=True, exist_ok=True)
        config_path = model_dir / "config.pbtxt"
        if config is not None:
            config_path.write_text(config)
            written.append(config_path)
        elif config_path.exists():
            config_path.unlink()
        for version, model in versions.items():
            version_dir = model_dir / str(version)
            version_dir.mkdir(exist_ok=True)
            path = version_dir / "model.onnx"
            data = model.SerializeToString(deterministic=True)
            if len(data) >= 1 << 20:
                raise SystemExit(f"{path}: {len(data)} bytes, over the 1 MiB limit for example models")
            path.write_bytes(data)
            written.append(path)
    return written


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=pathlib.Path, default=DEFAULT_OUT, help="repository folder to write")
    args = parser.parse_args(argv)
    for path in write(args.out):
        print(f"wrote {path} ({path.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
