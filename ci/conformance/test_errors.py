"""Bad requests: each gets Triton's HTTP status and a JSON `{"error": "..."}` body whose
message names what is wrong. Malformed bodies are sent raw, bypassing client checks."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from helpers import binary_infer_body, raw_request


def _fp32_input(name: str, shape: list[int]) -> httpclient.InferInput:
    inp = httpclient.InferInput(name, shape, "FP32")
    inp.set_data_from_numpy(np.zeros(shape, dtype=np.float32), binary_data=True)
    return inp


def _int32_input(name: str, shape: list[int]) -> httpclient.InferInput:
    inp = httpclient.InferInput(name, shape, "INT32")
    inp.set_data_from_numpy(np.zeros(shape, dtype=np.int32), binary_data=False)
    return inp


def _infer_error(client, model: str, inputs, **kwargs) -> InferenceServerException:
    with pytest.raises(InferenceServerException) as info:
        client.infer(model, inputs, **kwargs)
    return info.value


def _assert_error_body(response, status: int, *words: str) -> str:
    assert response.status == status, f"HTTP {response.status}: {response.body[:500]!r}"
    body = response.json()
    assert isinstance(body, dict) and isinstance(body.get("error"), str) and body["error"], body
    for word in words:
        assert word.lower() in body["error"].lower(), f"{word!r} not in error message {body['error']!r}"
    return body["error"]


def test_unknown_model_metadata_is_404(client):
    with pytest.raises(InferenceServerException) as info:
        client.get_model_metadata("no_such_model")
    assert info.value.status() == "404"
    assert "no_such_model" in info.value.message()


def test_unknown_model_infer_is_404(client):
    error = _infer_error(client, "no_such_model", [_fp32_input("INPUT0", [1, 16])])
    assert error.status() == "404"
    assert "no_such_model" in error.message()


def test_unknown_model_config_and_stats_are_404(client):
    for call in (client.get_model_config, client.get_inference_statistics):
        with pytest.raises(InferenceServerException) as info:
            call("no_such_model")
        assert info.value.status() == "404", call.__name__
        assert "no_such_model" in info.value.message()


def test_wrong_datatype_is_400(client):
    inputs = [_fp32_input("INPUT0", [1, 16]), _fp32_input("INPUT1", [1, 16])]
    error = _infer_error(client, "simple", inputs)
    assert error.status() == "400"
    assert "INPUT0" in error.message()
    assert "FP32" in error.message() or "TYPE_FP32" in error.message()


def test_wrong_shape_is_400(client):
    error = _infer_error(client, "identity_fp32", [_fp32_input("INPUT0", [1, 15])])
    assert error.status() == "400"
    assert "INPUT0" in error.message()


def test_missing_batch_dimension_is_400(client):
    error = _infer_error(client, "identity_fp32", [_fp32_input("INPUT0", [16])])
    assert error.status() == "400"
    assert "INPUT0" in error.message()


def test_batch_larger_than_max_batch_size_is_400(client):
    inputs = [_int32_input("INPUT0", [9, 16]), _int32_input("INPUT1", [9, 16])]
    error = _infer_error(client, "simple", inputs)
    assert error.status() == "400"
    assert "batch" in error.message().lower()
    assert "8" in error.message(), "the message gives the model's max_batch_size"


def test_missing_input_is_400(client):
    error = _infer_error(client, "simple", [_int32_input("INPUT0", [1, 16])])
    assert error.status() == "400"
    assert "INPUT1" in error.message()


def test_unknown_input_is_400(client):
    inputs = [_int32_input("INPUT0", [1, 16]), _int32_input("INPUT1", [1, 16]), _int32_input("EXTRA", [1, 16])]
    error = _infer_error(client, "simple", inputs)
    assert error.status() == "400"
    assert "EXTRA" in error.message()


def test_unknown_requested_output_is_400(client):
    inputs = [_int32_input("INPUT0", [1, 16]), _int32_input("INPUT1", [1, 16])]
    error = _infer_error(client, "simple", inputs, outputs=[httpclient.InferRequestedOutput("OUTPUT9")])
    assert error.status() == "400"
    assert "OUTPUT9" in error.message()


def test_malformed_json_is_400(server):
    response = raw_request(
        server.http,
        "POST",
        "/v2/models/simple/infer",
        b'{"inputs": [{"name": "INPUT0",',
        {"Content-Type": "application/json"},
    )
    message = _assert_error_body(response, 400)
    assert "json" in message.lower() or "parse" in message.lower(), message


def test_json_data_count_mismatch_is_400(server):
    body = json.dumps(
        {
            "inputs": [
                {"name": "INPUT0", "shape": [1, 16], "datatype": "INT32", "data": list(range(15))},
                {"name": "INPUT1", "shape": [1, 16], "datatype": "INT32", "data": list(range(16))},
            ]
        }
    ).encode()
    response = raw_request(server.http, "POST", "/v2/models/simple/infer", body, {"Content-Type": "application/json"})
    _assert_error_body(response, 400, "INPUT0")


def test_json_data_of_wrong_type_is_400(server):
    body = json.dumps(
        {
            "inputs": [
                {"name": "INPUT0", "shape": [1, 16], "datatype": "INT32", "data": ["x"] * 16},
                {"name": "INPUT1", "shape": [1, 16], "datatype": "INT32", "data": list(range(16))},
            ]
        }
    ).encode()
    response = raw_request(server.http, "POST", "/v2/models/simple/infer", body, {"Content-Type": "application/json"})
    _assert_error_body(response, 400, "INPUT0")


def _identity_header(binary_data_size: int) -> dict:
    return {
        "inputs": [
            {
                "name": "INPUT0",
                "shape": [1, 16],
                "datatype": "FP32",
                "parameters": {"binary_data_size": binary_data_size},
            }
        ]
    }


def test_binary_size_disagreeing_with_shape_is_400(server):
    # 60 bytes announced and sent, but [1, 16] FP32 needs 64.
    body, headers = binary_infer_body(_identity_header(60), bytes(60))
    response = raw_request(server.http, "POST", "/v2/models/identity_fp32/infer", body, headers)
    _assert_error_body(response, 400, "INPUT0")


def test_binary_body_shorter_than_announced_is_400(server):
    body, headers = binary_infer_body(_identity_header(64), bytes(32))
    response = raw_request(server.http, "POST", "/v2/models/identity_fp32/infer", body, headers)
    _assert_error_body(response, 400)


def test_header_length_beyond_body_is_400(server):
    body, headers = binary_infer_body(_identity_header(64), bytes(64))
    headers["Inference-Header-Content-Length"] = str(len(body) + 100)
    response = raw_request(server.http, "POST", "/v2/models/identity_fp32/infer", body, headers)
    _assert_error_body(response, 400)


def test_truncated_bytes_element_is_400(server):
    # One BYTES element claims 100 bytes but only 5 follow its length prefix.
    chunk = (100).to_bytes(4, "little") + b"hello"
    header = {
        "inputs": [
            {"name": "INPUT0", "shape": [1, 1], "datatype": "BYTES", "parameters": {"binary_data_size": len(chunk)}}
        ]
    }
    body, headers = binary_infer_body(header, chunk)
    response = raw_request(server.http, "POST", "/v2/models/identity_bytes/infer", body, headers)
    _assert_error_body(response, 400, "INPUT0")


def test_bytes_element_count_disagreeing_with_shape_is_400(server):
    # Shape [1, 3] but only two length-prefixed elements.
    chunk = b"".join(len(s).to_bytes(4, "little") + s for s in (b"ab", b"cd"))
    header = {
        "inputs": [
            {"name": "INPUT0", "shape": [1, 3], "datatype": "BYTES", "parameters": {"binary_data_size": len(chunk)}}
        ]
    }
    body, headers = binary_infer_body(header, chunk)
    response = raw_request(server.http, "POST", "/v2/models/identity_bytes/infer", body, headers)
    _assert_error_body(response, 400, "INPUT0")


def test_server_still_serves_after_errors(client):
    a = np.arange(16, dtype=np.int32).reshape(1, 16)
    inputs = [httpclient.InferInput("INPUT0", [1, 16], "INT32"), httpclient.InferInput("INPUT1", [1, 16], "INT32")]
    inputs[0].set_data_from_numpy(a)
    inputs[1].set_data_from_numpy(a)
    result = client.infer("simple", inputs)
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), 2 * a)
    assert client.is_server_ready()
