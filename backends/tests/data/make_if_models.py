"""Writes two ONNX models whose `If` branches disagree, which tract refuses.

* if_shape_mismatch.onnx: the then-branch returns INPUT0 ([n, 4]), the
  else-branch INPUT0 concatenated with itself ([n, 8]). tract's analysis
  fails whatever the input shapes are.
* if_squeeze.onnx: the then-branch squeezes axis 1 of INPUT0 and restores
  it, which only works when that axis has size 1; the else-branch returns
  INPUT0 unchanged. tract analyses both branches, so it fails as soon as the
  second dimension is known (the pattern of Silero VAD, whose branches serve
  different sample rates), while the analysis passes when that dimension is
  left open.

ONNX Runtime runs both, evaluating only the branch taken. Run with a Python
that has the `onnx` package:

    python3 backends/tests/data/make_if_models.py
"""

import os

import onnx
from onnx import TensorProto, helper

HERE = os.path.dirname(os.path.abspath(__file__))


def save(graph: onnx.GraphProto, name: str) -> None:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path = os.path.join(HERE, name)
    onnx.save(model, path)
    print(f"wrote {path}")


def shape_mismatch() -> None:
    then_graph = helper.make_graph(
        [helper.make_node("Identity", ["INPUT0"], ["then_out"])],
        "then_branch",
        [],
        [helper.make_tensor_value_info("then_out", TensorProto.FLOAT, ["n", 4])],
    )
    else_graph = helper.make_graph(
        [helper.make_node("Concat", ["INPUT0", "INPUT0"], ["else_out"], axis=1)],
        "else_branch",
        [],
        [helper.make_tensor_value_info("else_out", TensorProto.FLOAT, ["n", 8])],
    )
    graph = helper.make_graph(
        [helper.make_node("If", ["COND"], ["OUTPUT0"], then_branch=then_graph, else_branch=else_graph)],
        "if_shape_mismatch",
        [
            helper.make_tensor_value_info("COND", TensorProto.BOOL, [1]),
            helper.make_tensor_value_info("INPUT0", TensorProto.FLOAT, ["n", 4]),
        ],
        [helper.make_tensor_value_info("OUTPUT0", TensorProto.FLOAT, ["n", "width"])],
    )
    save(graph, "if_shape_mismatch.onnx")


def squeeze() -> None:
    axes = helper.make_tensor("axes", TensorProto.INT64, [1], [1])
    then_graph = helper.make_graph(
        [
            helper.make_node("Constant", [], ["then_axes"], value=axes),
            helper.make_node("Squeeze", ["INPUT0", "then_axes"], ["squeezed"]),
            helper.make_node("Unsqueeze", ["squeezed", "then_axes"], ["then_out"]),
        ],
        "then_branch",
        [],
        [helper.make_tensor_value_info("then_out", TensorProto.FLOAT, ["n", 1])],
    )
    else_graph = helper.make_graph(
        [helper.make_node("Identity", ["INPUT0"], ["else_out"])],
        "else_branch",
        [],
        [helper.make_tensor_value_info("else_out", TensorProto.FLOAT, ["n", "m"])],
    )
    graph = helper.make_graph(
        [helper.make_node("If", ["COND"], ["OUTPUT0"], then_branch=then_graph, else_branch=else_graph)],
        "if_squeeze",
        [
            helper.make_tensor_value_info("COND", TensorProto.BOOL, [1]),
            helper.make_tensor_value_info("INPUT0", TensorProto.FLOAT, ["n", "m"]),
        ],
        [helper.make_tensor_value_info("OUTPUT0", TensorProto.FLOAT, ["n", "m"])],
    )
    save(graph, "if_squeeze.onnx")


if __name__ == "__main__":
    shape_mismatch()
    squeeze()
