"""Inference through tritonclient.http: every data type end to end as JSON and as
binary tensor data, BYTES edge cases, batching, requested outputs, request ids, and
numeric agreement with ONNX Runtime run in-process."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tritonclient.http as httpclient

from helpers import ATOL, EXAMPLE_MODELS, KSERVE_TYPES, RTOL, ort_run, raw_request

TYPES = KSERVE_TYPES
FLOAT_BITS = {"FP16": np.uint16, "FP32": np.uint32, "FP64": np.uint64}


def _limits(dtype) -> list:
    info = np.iinfo(dtype)
    return [info.min, info.max]


def json_values() -> dict[str, np.ndarray]:
    """Batch-2 arrays per type with each type's extremes; all finite so JSON can carry them."""
    f16, f32, f64 = np.finfo(np.float16), np.finfo(np.float32), np.finfo(np.float64)
    return {
        "BOOL": np.array([[True, False, True, False], [False, False, True, True]]),
        "UINT8": np.array([[0, 1, 254, 255], [7, 8, 9, 10]], dtype=np.uint8),
        "UINT16": np.array([[0, 1, 65534, 65535], [7, 8, 9, 10]], dtype=np.uint16),
        "UINT32": np.array([[0, 1, 2**32 - 2, 2**32 - 1], [7, 8, 9, 10]], dtype=np.uint32),
        "UINT64": np.array([[0, 1, 2**64 - 2, 2**64 - 1], [7, 2**53 + 1, 9, 10]], dtype=np.uint64),
        "INT8": np.array([[*_limits(np.int8), -1, 0], [1, 2, 3, 4]], dtype=np.int8),
        "INT16": np.array([[*_limits(np.int16), -1, 0], [1, 2, 3, 4]], dtype=np.int16),
        "INT32": np.array([[*_limits(np.int32), -1, 0], [1, 2, 3, 4]], dtype=np.int32),
        "INT64": np.array([[*_limits(np.int64), -1, 0], [2**53 + 1, -(2**53) - 1, 3, 4]], dtype=np.int64),
        "FP16": np.array([[f16.max, -f16.max, f16.smallest_subnormal, -0.0], [0.1, -2.5, 1 / 3, f16.tiny]], np.float16),
        "FP32": np.array(
            [[f32.max, -f32.tiny, f32.smallest_subnormal, -0.0], [0.1, 3.14159, -1 / 3, 2**24 + 1]], np.float32
        ),
        "FP64": np.array(
            [[f64.max, -f64.tiny, f64.smallest_subnormal, -0.0], [0.1, np.pi, -1 / 3, 2**53 + 1]], np.float64
        ),
        "BYTES": np.array(
            [
                [b"", b"a", "h\u00e9llo".encode(), "\u65e5\u672c\u8a9e".encode()],
                [b"x" * 300, b" ", "\U0001f680".encode(), b'tab\tnew\nline "quoted" \\'],
            ],
            dtype=np.object_,
        ),
    }


def binary_values() -> dict[str, np.ndarray]:
    """Like json_values, plus what only binary data can carry: non-finite floats, non-UTF-8 bytes."""
    values = json_values()
    for name, dtype in (("FP16", np.float16), ("FP32", np.float32), ("FP64", np.float64)):
        values[name] = values[name].copy()
        values[name][1] = np.array([np.inf, -np.inf, np.nan, 1.5], dtype=dtype)
    values["BYTES"] = values["BYTES"].copy()
    values["BYTES"][1, 1] = b"\x01\xff\xfe\xc3\x28"
    return values


def assert_same(name: str, expected: np.ndarray, got: np.ndarray, from_json: bool = False) -> None:
    assert got is not None, f"{name}: output missing"
    assert got.shape == expected.shape, f"{name}: shape {got.shape} != {expected.shape}"
    if name == "BYTES":
        want = [v.decode() if from_json else v for v in expected.ravel()]
        assert list(got.ravel()) == want, name
    elif name in FLOAT_BITS:
        assert got.dtype == expected.dtype, name
        bits = FLOAT_BITS[name]
        np.testing.assert_array_equal(got.view(bits), expected.view(bits), err_msg=f"{name}: bit patterns differ")
    else:
        assert got.dtype == expected.dtype, f"{name}: dtype {got.dtype} != {expected.dtype}"
        np.testing.assert_array_equal(got, expected, err_msg=name)


def flatten(data) -> list:
    """Tensor JSON data may be flat or nested; returns the elements in row-major order."""
    if isinstance(data, list):
        return [x for item in data for x in flatten(item)]
    return [data]


def assert_json_element_types(name: str, elements: list) -> None:
    """JSON output elements use the JSON type matching the datatype: booleans for BOOL,
    strings for BYTES, integers (never 1.0 or "1") for integer types, numbers for floats."""
    if name == "BOOL":
        expected = (bool,)
    elif name == "BYTES":
        expected = (str,)
    elif name.startswith(("INT", "UINT")):
        expected = (int,)
    else:
        expected = (int, float)
    bad = [v for v in elements if type(v) not in expected]
    assert not bad, f"{name}: JSON elements of the wrong type: {bad[:4]}"


def all_types_inputs(values: dict[str, np.ndarray], binary: bool) -> list[httpclient.InferInput]:
    inputs = []
    for name in TYPES:
        inp = httpclient.InferInput(f"IN_{name}", list(values[name].shape), name)
        inp.set_data_from_numpy(values[name], binary_data=binary)
        inputs.append(inp)
    return inputs


def test_all_types_json_in_json_out(client):
    values = json_values()
    outputs = [httpclient.InferRequestedOutput(f"OUT_{t}", binary_data=False) for t in TYPES]
    result = client.infer("all_types", all_types_inputs(values, binary=False), outputs=outputs)
    response = result.get_response()
    assert [o["name"] for o in response["outputs"]] == [f"OUT_{t}" for t in TYPES]
    for out in response["outputs"]:
        dtype_name = out["name"][len("OUT_") :]
        assert out["datatype"] == dtype_name
        assert out["shape"] == [2, 4]
        assert "binary_data_size" not in out.get("parameters", {}), f"{out['name']} was asked for as JSON"
        assert_json_element_types(dtype_name, flatten(out["data"]))
        assert_same(dtype_name, values[dtype_name], result.as_numpy(out["name"]), from_json=True)


def test_all_types_binary_in_binary_out(client):
    values = binary_values()
    outputs = [httpclient.InferRequestedOutput(f"OUT_{t}", binary_data=True) for t in TYPES]
    result = client.infer("all_types", all_types_inputs(values, binary=True), outputs=outputs)
    for out in result.get_response()["outputs"]:
        dtype_name = out["name"][len("OUT_") :]
        assert out["datatype"] == dtype_name
        assert out["shape"] == [2, 4]
        assert isinstance(out["parameters"]["binary_data_size"], int)
        assert "data" not in out
        assert_same(dtype_name, values[dtype_name], result.as_numpy(out["name"]))


def test_all_types_json_in_binary_out_by_request_parameter(client):
    """With no outputs listed, tritonclient sets binary_data_output=true: all outputs come back binary."""
    values = json_values()
    result = client.infer("all_types", all_types_inputs(values, binary=False))
    response = result.get_response()
    assert sorted(o["name"] for o in response["outputs"]) == sorted(f"OUT_{t}" for t in TYPES)
    for out in response["outputs"]:
        assert "binary_data_size" in out["parameters"], out["name"]
        dtype_name = out["name"][len("OUT_") :]
        assert_same(dtype_name, values[dtype_name], result.as_numpy(out["name"]))


def test_all_types_binary_in_json_out(client):
    values = json_values()
    outputs = [httpclient.InferRequestedOutput(f"OUT_{t}", binary_data=False) for t in TYPES]
    result = client.infer("all_types", all_types_inputs(values, binary=True), outputs=outputs)
    for t in TYPES:
        assert_same(t, values[t], result.as_numpy(f"OUT_{t}"), from_json=True)


def test_binary_response_layout(server):
    """Inspect the wire format: Inference-Header-Content-Length, JSON header, then tensor bytes in order."""
    a = np.arange(16, dtype=np.int32).reshape(1, 16)
    b = np.full((1, 16), 3, dtype=np.int32)
    header = {
        "inputs": [
            {"name": "INPUT0", "shape": [1, 16], "datatype": "INT32", "parameters": {"binary_data_size": 64}},
            {"name": "INPUT1", "shape": [1, 16], "datatype": "INT32", "parameters": {"binary_data_size": 64}},
        ],
        "outputs": [
            {"name": "OUTPUT1", "parameters": {"binary_data": True}},
            {"name": "OUTPUT0", "parameters": {"binary_data": True}},
        ],
    }
    head = json.dumps(header).encode()
    body = head + a.tobytes() + b.tobytes()
    response = raw_request(
        server.http,
        "POST",
        "/v2/models/simple/infer",
        body,
        {"Content-Type": "application/octet-stream", "Inference-Header-Content-Length": str(len(head))},
    )
    assert response.status == 200, response.body[:500]
    json_len = int(response.headers["inference-header-content-length"])
    parsed = json.loads(response.body[:json_len])
    assert [o["name"] for o in parsed["outputs"]] == ["OUTPUT1", "OUTPUT0"], "outputs keep the requested order"
    offset = json_len
    for out, want in zip(parsed["outputs"], (a - b, a + b), strict=True):
        size = out["parameters"]["binary_data_size"]
        assert size == 64
        got = np.frombuffer(response.body[offset : offset + size], dtype="<i4").reshape(out["shape"])
        np.testing.assert_array_equal(got, want)
        offset += size
    assert offset == len(response.body), "nothing may follow the last output's bytes"


def test_bytes_identity_binary_edge_cases(client):
    """Empty elements, control bytes, invalid UTF-8 and long elements pass through unchanged.
    (No NUL bytes: ONNX Runtime string tensors are filled from C strings.)"""
    data = np.array(
        [
            [b"", b"\x01\x02\x7f", b"\xff\xfe\xfd"],
            [b"\xc3\x28 invalid utf-8", "\u00fc\u00f1\u00ee".encode(), b"z" * 1000],
        ],
        dtype=np.object_,
    )
    inp = httpclient.InferInput("INPUT0", [2, 3], "BYTES")
    inp.set_data_from_numpy(data, binary_data=True)
    result = client.infer(
        "identity_bytes", [inp], outputs=[httpclient.InferRequestedOutput("OUTPUT0", binary_data=True)]
    )
    got = result.as_numpy("OUTPUT0")
    assert got.shape == (2, 3)
    assert list(got.ravel()) == list(data.ravel())


def test_bytes_identity_json(client):
    strings = ["", "plain", "caf\u00e9", "\u4f60\u597d", "\U0001f600 emoji", 'quote " backslash \\']
    data = np.array([strings], dtype=np.object_)
    inp = httpclient.InferInput("INPUT0", [1, 6], "BYTES")
    inp.set_data_from_numpy(data, binary_data=False)
    result = client.infer(
        "identity_bytes", [inp], outputs=[httpclient.InferRequestedOutput("OUTPUT0", binary_data=False)]
    )
    response = result.get_response()
    assert response["outputs"][0]["data"] == strings
    assert response["outputs"][0]["datatype"] == "BYTES"


def test_bf16_identity_binary(client):
    # BF16 travels as binary only; tritonclient takes float32 and keeps the upper 16 bits.
    values = np.array([[1.0, -2.5, 3.140625, 0.0], [65280.0, -0.0078125, 1e30, -1e-30]], dtype=np.float32)
    exact = (values.view(np.uint32) & 0xFFFF0000).view(np.float32)
    inp = httpclient.InferInput("INPUT0", [2, 4], "BF16")
    inp.set_data_from_numpy(values, binary_data=True)
    result = client.infer(
        "identity_bf16", [inp], outputs=[httpclient.InferRequestedOutput("OUTPUT0", binary_data=True)]
    )
    out = result.get_response()["outputs"][0]
    assert out["datatype"] == "BF16"
    assert out["parameters"]["binary_data_size"] == 16
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0").view(np.uint32), exact.view(np.uint32))


def _simple_inputs(a: np.ndarray, b: np.ndarray, binary: bool) -> list[httpclient.InferInput]:
    inputs = []
    for name, value in (("INPUT0", a), ("INPUT1", b)):
        inp = httpclient.InferInput(name, list(value.shape), "INT32")
        inp.set_data_from_numpy(value, binary_data=binary)
        inputs.append(inp)
    return inputs


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_simple_sum_and_difference(client, binary):
    a = np.arange(16, dtype=np.int32).reshape(1, 16)
    b = np.full((1, 16), 7, dtype=np.int32) - np.arange(16, dtype=np.int32)
    outputs = [httpclient.InferRequestedOutput(n, binary_data=binary) for n in ("OUTPUT0", "OUTPUT1")]
    result = client.infer("simple", _simple_inputs(a, b, binary), outputs=outputs)
    response = result.get_response()
    assert response["model_name"] == "simple"
    assert response["model_version"] == "1"
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), a + b)
    np.testing.assert_array_equal(result.as_numpy("OUTPUT1"), a - b)
    assert result.as_numpy("OUTPUT0").dtype == np.int32


def test_requested_output_subset(client):
    a = np.arange(16, dtype=np.int32).reshape(1, 16)
    b = np.ones((1, 16), dtype=np.int32)
    result = client.infer(
        "simple", _simple_inputs(a, b, True), outputs=[httpclient.InferRequestedOutput("OUTPUT1", binary_data=True)]
    )
    assert [o["name"] for o in result.get_response()["outputs"]] == ["OUTPUT1"]
    assert result.as_numpy("OUTPUT0") is None
    np.testing.assert_array_equal(result.as_numpy("OUTPUT1"), a - b)


def test_request_id_is_echoed(client):
    a = np.zeros((1, 16), dtype=np.int32)
    result = client.infer("simple", _simple_inputs(a, a, True), request_id="conformance-id-42")
    assert result.get_response()["id"] == "conformance-id-42"
    without = client.infer("simple", _simple_inputs(a, a, True))
    assert "id" not in without.get_response() or without.get_response()["id"] == ""


def test_nested_json_data_is_accepted(server):
    """KServe allows tensor data as nested arrays as well as flattened ones."""
    a = np.arange(32, dtype=np.int32).reshape(2, 16)
    b = np.ones((2, 16), dtype=np.int32)
    body = json.dumps(
        {
            "inputs": [
                {"name": "INPUT0", "shape": [2, 16], "datatype": "INT32", "data": a.tolist()},
                {"name": "INPUT1", "shape": [2, 16], "datatype": "INT32", "data": b.tolist()},
            ],
            "outputs": [{"name": "OUTPUT0"}],
        }
    ).encode()
    response = raw_request(server.http, "POST", "/v2/models/simple/infer", body, {"Content-Type": "application/json"})
    assert response.status == 200, response.body[:500]
    out = response.json()["outputs"][0]
    assert out["name"] == "OUTPUT0" and out["shape"] == [2, 16] and out["datatype"] == "INT32"
    np.testing.assert_array_equal(np.array(out["data"], dtype=np.int32).reshape(2, 16), a + b)


def test_client_side_batch_of_four(client):
    data = np.random.default_rng(3).standard_normal((4, 16)).astype(np.float32)
    inp = httpclient.InferInput("INPUT0", [4, 16], "FP32")
    inp.set_data_from_numpy(data, binary_data=True)
    result = client.infer("identity_fp32", [inp])
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), data)

    a = np.arange(64, dtype=np.int32).reshape(4, 16)
    b = np.arange(64, dtype=np.int32).reshape(4, 16)[::-1].copy()
    result = client.infer("simple", _simple_inputs(a, b, False))
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), a + b)
    np.testing.assert_array_equal(result.as_numpy("OUTPUT1"), a - b)


def test_concurrent_requests_get_their_own_results(server):
    """Many in-flight requests of mixed batch sizes through the dynamic batcher: each
    response must carry exactly its own request's rows."""
    rng = np.random.default_rng(11)
    sizes = [1, 2, 3, 1, 4, 1, 2, 5] * 4
    batched = httpclient.InferenceServerClient(url=server.http, concurrency=16, network_timeout=120.0)
    try:
        pending = []
        for i, size in enumerate(sizes):
            data = (rng.standard_normal((size, 16)) + 100 * i).astype(np.float32)
            inp = httpclient.InferInput("INPUT0", [size, 16], "FP32")
            inp.set_data_from_numpy(data, binary_data=True)
            pending.append((data, batched.async_infer("identity_fp32", [inp], request_id=str(i))))
        for i, (data, request) in enumerate(pending):
            result = request.get_result(timeout=120)
            assert result.get_response()["id"] == str(i)
            np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), data, err_msg=f"request {i}")
    finally:
        batched.close()


def test_mlp_matches_onnxruntime(client):
    x = np.random.default_rng(5).standard_normal((3, 64)).astype(np.float32)
    inp = httpclient.InferInput("input", [3, 64], "FP32")
    inp.set_data_from_numpy(x, binary_data=True)
    got = client.infer("mlp", [inp]).as_numpy("probabilities")
    expected = ort_run(EXAMPLE_MODELS / "mlp" / "1" / "model.onnx", {"input": x})["probabilities"]
    np.testing.assert_allclose(got, expected, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(got.sum(axis=1), np.ones(3), rtol=1e-5)


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_cnn_matches_onnxruntime(client, binary):
    image = np.random.default_rng(9).uniform(-1, 1, (4, 3, 32, 32)).astype(np.float32)
    inp = httpclient.InferInput("image", list(image.shape), "FP32")
    inp.set_data_from_numpy(image, binary_data=binary)
    result = client.infer("cnn", [inp], outputs=[httpclient.InferRequestedOutput("logits", binary_data=binary)])
    expected = ort_run(EXAMPLE_MODELS / "cnn" / "2" / "model.onnx", {"image": image})["logits"]
    np.testing.assert_allclose(result.as_numpy("logits"), expected, rtol=RTOL, atol=ATOL)
