"""The trace extension through NVIDIA's clients: tritonclient.http and tritonclient.grpc
read the global and per-model trace settings, change them, clear a model's override,
and get errors naming a refused setting; a request traced in tritonserver's default
(triton) mode lands in the trace file. Every test leaves the settings as it found them
(the session's server is shared)."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

DEFAULTS: dict = {}


@pytest.fixture(scope="module", autouse=True)
def defaults(server):
    """tritonserver's defaults, in its default (triton) mode with the session's trace file."""
    DEFAULTS.update(
        {
            "trace_level": ["OFF"],
            "trace_rate": "1000",
            "trace_count": "-1",
            "log_frequency": "0",
            "trace_file": str(server.trace_file),
            "trace_mode": "triton",
        }
    )


def grpc_address(address: str) -> str:
    """The ready line gives the bound address; 0.0.0.0 is reached on the loopback."""
    host, port = address.rsplit(":", 1)
    return f"127.0.0.1:{port}" if host in ("0.0.0.0", "[::]") else address


@pytest.fixture(scope="module")
def grpc(server):
    if "grpc" not in server.addresses:
        pytest.fail(f"the ready line announces no grpc address: {server.addresses}", pytrace=False)
    c = grpcclient.InferenceServerClient(url=grpc_address(server.addresses["grpc"]))
    yield c
    c.close()


def grpc_settings(answer: dict) -> dict:
    """A gRPC TraceSettingResponse as JSON, in the HTTP extension's shape."""
    values = {name: setting.get("value", []) for name, setting in answer["settings"].items()}
    return {name: value if name == "trace_level" else value[0] for name, value in values.items()}


def test_server_lists_the_trace_extension(client):
    assert "trace" in client.get_server_metadata()["extensions"]


def test_http_reads_changes_and_clears(client):
    assert client.get_trace_settings() == DEFAULTS
    assert client.get_trace_settings(model_name="simple") == DEFAULTS
    try:
        updated = client.update_trace_settings(
            model_name="simple", settings={"trace_level": ["TIMESTAMPS"], "trace_rate": "10"}
        )
        assert updated == {**DEFAULTS, "trace_level": ["TIMESTAMPS"], "trace_rate": "10"}
        assert client.get_trace_settings() == DEFAULTS, "the global settings are unchanged"
        assert client.get_trace_settings(model_name="identity_fp32") == DEFAULTS

        cleared = client.update_trace_settings(model_name="simple", settings={"trace_rate": None})
        assert cleared == {**DEFAULTS, "trace_level": ["TIMESTAMPS"]}
    finally:
        client.update_trace_settings(model_name="simple", settings={"trace_level": None, "trace_rate": None})
    assert client.get_trace_settings(model_name="simple") == DEFAULTS


def test_http_global_change_shows_through_models(client):
    try:
        assert client.update_trace_settings(settings={"trace_count": "50"})["trace_count"] == "50"
        assert client.get_trace_settings(model_name="simple")["trace_count"] == "50"
    finally:
        client.update_trace_settings(settings={"trace_count": "-1"})
    assert client.get_trace_settings() == DEFAULTS


@pytest.mark.parametrize(
    "settings, named",
    [
        ({"trace_rate": "often"}, "trace_rate"),
        ({"trace_level": ["LOUD"]}, "LOUD"),
        ({"trace_mode": "opentelemetry"}, "trace_mode"),
        ({"trace_file": "/tmp/trace.json"}, "trace_file"),
        ({"trace_volume": "1"}, "trace_volume"),
    ],
)
def test_http_refuses_bad_settings(client, settings, named):
    with pytest.raises(InferenceServerException) as error:
        client.update_trace_settings(settings=settings)
    assert named in error.value.message()
    assert client.get_trace_settings() == DEFAULTS


def test_grpc_reads_changes_and_clears(grpc, client):
    assert grpc_settings(grpc.get_trace_settings(as_json=True)) == DEFAULTS
    try:
        answer = grpc.update_trace_settings(
            model_name="simple", settings={"trace_level": ["TIMESTAMPS"], "trace_count": "5"}, as_json=True
        )
        assert grpc_settings(answer) == {**DEFAULTS, "trace_level": ["TIMESTAMPS"], "trace_count": "5"}
        assert client.get_trace_settings(model_name="simple")["trace_level"] == ["TIMESTAMPS"]
        cleared = grpc.update_trace_settings(model_name="simple", settings={"trace_level": None}, as_json=True)
        assert grpc_settings(cleared) == {**DEFAULTS, "trace_count": "5"}
    finally:
        grpc.update_trace_settings(model_name="simple", settings={"trace_level": None, "trace_count": None})
    assert grpc_settings(grpc.get_trace_settings(model_name="simple", as_json=True)) == DEFAULTS


def test_grpc_refuses_bad_settings(grpc):
    with pytest.raises(InferenceServerException) as error:
        grpc.update_trace_settings(settings={"trace_count": "-7"})
    assert "trace_count" in error.value.message()
    assert "StatusCode.INVALID_ARGUMENT" in error.value.status()
    with pytest.raises(InferenceServerException) as error:
        grpc.get_trace_settings(model_name="no_such_model")
    assert "StatusCode.NOT_FOUND" in error.value.status()


def test_triton_mode_writes_the_trace_file(client, server):
    """A traced request lands in the trace file (written as traces arrive)."""
    try:
        client.update_trace_settings(model_name="simple", settings={"trace_level": ["TIMESTAMPS"], "trace_rate": "1"})
        inputs = []
        for name in ("INPUT0", "INPUT1"):
            tensor = httpclient.InferInput(name, [1, 16], "INT32")
            tensor.set_data_from_numpy(np.arange(16, dtype=np.int32).reshape(1, 16))
            inputs.append(tensor)
        client.infer("simple", inputs, request_id="traced-by-tritonclient")
    finally:
        client.update_trace_settings(model_name="simple", settings={"trace_level": None, "trace_rate": None})
    # The writer thread appends the trace just after the answer is sent.
    deadline = time.monotonic() + 20
    text = ""
    while '"request_id":"traced-by-tritonclient"' not in text and time.monotonic() < deadline:
        time.sleep(0.05)
        text = server.trace_file.read_text() if server.trace_file.exists() else ""
    assert '"request_id":"traced-by-tritonclient"' in text, text
    assert '"name":"COMPUTE_START"' in text


def test_triton_mode_level_tensors_writes_the_tensors(client, server):
    """At level TENSORS each input and output follows its trace in the file, with its data."""
    try:
        client.update_trace_settings(model_name="simple", settings={"trace_level": ["TENSORS"], "trace_rate": "1"})
        assert client.get_trace_settings(model_name="simple")["trace_level"] == ["TENSORS"]
        inputs = []
        for name, values in (("INPUT0", np.arange(16)), ("INPUT1", np.full(16, 2))):
            tensor = httpclient.InferInput(name, [1, 16], "INT32")
            tensor.set_data_from_numpy(values.astype(np.int32).reshape(1, 16))
            inputs.append(tensor)
        client.infer("simple", inputs, request_id="tensors-by-tritonclient")
    finally:
        client.update_trace_settings(model_name="simple", settings={"trace_level": None, "trace_rate": None})
    deadline = time.monotonic() + 20
    traces = []
    while time.monotonic() < deadline:
        text = server.trace_file.read_text() if server.trace_file.exists() else ""
        if '"request_id":"tensors-by-tritonclient"' in text:
            try:
                # The file's array is closed at shutdown; what is written so far parses closed here.
                traces = json.loads(text + "\n]")
                break
            except json.JSONDecodeError:
                pass  # caught in the middle of a write
        time.sleep(0.05)
    (trace,) = [t for t in traces if t.get("request_id") == "tensors-by-tritonclient"]
    tensors = {(t["activity"], t["tensor"]["name"]): t["tensor"] for t in traces if t["id"] == trace["id"] and "activity" in t}
    assert tensors[("TENSOR_QUEUE_INPUT", "INPUT0")] == {
        "name": "INPUT0",
        "data": ",".join(str(v) for v in range(16)),
        "shape": "1,16",
        "dtype": "INT32",
    }
    assert tensors[("TENSOR_BACKEND_OUTPUT", "OUTPUT0")]["data"] == ",".join(str(v + 2) for v in range(16))
    assert tensors[("TENSOR_BACKEND_OUTPUT", "OUTPUT1")]["data"] == ",".join(str(v - 2) for v in range(16))
