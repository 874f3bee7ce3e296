"""The committed example models (no server needed): they are exactly what
examples/generate_models.py writes, they meet the format constraints, and ONNX Runtime
runs each one with the expected results."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from helpers import EXAMPLE_MODELS, ROOT

MODEL_FILES = sorted(EXAMPLE_MODELS.glob("*/*/model.onnx"))


def _tree(folder: pathlib.Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_committed_models_match_the_generator(tmp_path):
    subprocess.run(
        [sys.executable, str(ROOT / "examples" / "generate_models.py"), "--out", str(tmp_path)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    generated, committed = _tree(tmp_path), _tree(EXAMPLE_MODELS)
    assert sorted(generated) == sorted(committed), "file sets differ: rerun examples/generate_models.py"
    stale = [name for name in generated if generated[name] != committed[name]]
    assert not stale, f"out of date, rerun examples/generate_models.py: {stale}"


def test_expected_models_exist():
    names = {p.parent.parent.name for p in MODEL_FILES}
    assert names == {"identity_fp32", "simple", "identity_bytes", "mlp", "cnn", "all_types", "identity_bf16", "ragged_sum"}
    assert sorted(p.parent.name for p in (EXAMPLE_MODELS / "cnn").glob("*/model.onnx")) == ["1", "2"]
    assert not (EXAMPLE_MODELS / "mlp" / "config.pbtxt").exists(), "mlp exercises auto-complete"


@pytest.mark.parametrize("path", MODEL_FILES, ids=lambda p: f"{p.parent.parent.name}/{p.parent.name}")
def test_model_format(path):
    assert path.stat().st_size < 1 << 20
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    assert model.ir_version == 8
    assert [(o.domain, o.version) for o in model.opset_import] == [("", 17)]


def _session(name: str, version: str = "1") -> ort.InferenceSession:
    return ort.InferenceSession(str(EXAMPLE_MODELS / name / version / "model.onnx"), providers=["CPUExecutionProvider"])


def test_identities_run_in_onnxruntime():
    data = np.arange(32, dtype=np.float32).reshape(2, 16)
    np.testing.assert_array_equal(_session("identity_fp32").run(None, {"INPUT0": data})[0], data)
    strings = np.array([["a", "", "\u00e9"]], dtype=object)
    assert _session("identity_bytes").run(None, {"INPUT0": strings})[0].tolist() == strings.tolist()


def test_all_types_runs_in_onnxruntime():
    session = _session("all_types")
    feeds = {}
    for i in session.get_inputs():
        if i.type == "tensor(string)":
            feeds[i.name] = np.array([["w", "x", "y", "z"]], dtype=object)
        elif i.type == "tensor(bool)":
            feeds[i.name] = np.array([[True, False, True, False]])
        else:
            numpy_type = {"float": np.float32, "double": np.float64}.get(i.type[7:-1], i.type[7:-1])
            feeds[i.name] = np.array([[1, 2, 3, 4]], dtype=numpy_type)
    outputs = session.run(None, feeds)
    assert len(outputs) == 13
    for i, out in zip(session.get_inputs(), outputs, strict=True):
        assert out.tolist() == feeds[i.name].tolist() and out.dtype == feeds[i.name].dtype, i.name


def test_bf16_identity_runs_in_onnxruntime():
    # numpy has no bfloat16: bind raw 16-bit patterns as ONNX BFLOAT16 tensors.
    session = _session("identity_bf16")
    bits = np.array([[0x3F80, 0xC020, 0x4049, 0x7F80]], dtype=np.uint16)
    out = np.zeros_like(bits)
    binding = session.io_binding()
    binding.bind_ortvalue_input(
        "INPUT0", ort.OrtValue.ortvalue_from_numpy_with_onnx_type(bits, onnx.TensorProto.BFLOAT16)
    )
    binding.bind_ortvalue_output(
        "OUTPUT0", ort.OrtValue.ortvalue_from_numpy_with_onnx_type(out, onnx.TensorProto.BFLOAT16)
    )
    session.run_with_iobinding(binding)
    np.testing.assert_array_equal(out, bits)


def test_simple_runs_in_onnxruntime():
    a = np.arange(32, dtype=np.int32).reshape(2, 16)
    b = np.full((2, 16), 5, dtype=np.int32)
    total, difference = _session("simple").run(["OUTPUT0", "OUTPUT1"], {"INPUT0": a, "INPUT1": b})
    np.testing.assert_array_equal(total, a + b)
    np.testing.assert_array_equal(difference, a - b)


def test_mlp_and_cnn_run_in_onnxruntime():
    x = np.random.default_rng(0).standard_normal((3, 64)).astype(np.float32)
    probabilities = _session("mlp").run(None, {"input": x})[0]
    assert probabilities.shape == (3, 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), np.ones(3), rtol=1e-5)
    assert probabilities.max() < 0.99, "weights keep the softmax away from saturation"

    image = np.random.default_rng(1).standard_normal((2, 3, 32, 32)).astype(np.float32)
    logits = [_session("cnn", v).run(None, {"image": image})[0] for v in ("1", "2")]
    assert all(out.shape == (2, 10) for out in logits)
    assert not np.allclose(logits[0], logits[1]), "the two cnn versions differ"


def test_ragged_sum_runs_in_onnxruntime():
    flat = np.array([1, 2, 3, 4, 5, 6], dtype=np.float32)
    bounds = np.array([0, 1, 3, 6], dtype=np.int64)
    sums, doubled = _session("ragged_sum").run(None, {"INPUT": flat, "BOUNDS": bounds})
    np.testing.assert_array_equal(sums, [[1.0], [5.0], [15.0]])
    np.testing.assert_array_equal(doubled, flat * 2)
