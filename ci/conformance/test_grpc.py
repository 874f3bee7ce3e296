"""The gRPC front end through NVIDIA's tritonclient.grpc: health, metadata, config,
statistics, the repository calls, inference for every data type, requested outputs,
compression, the callback and asyncio APIs, and 100 requests on one stream answered in
order with the right values."""

from __future__ import annotations

import asyncio
import queue
import threading

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.grpc.aio as aiogrpc
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from helpers import ATOL, EXAMPLE_MODELS, KSERVE_TYPES, RTOL, ort_run, workspace_version

STREAM_REQUESTS = 100
FLOAT_BITS = {"FP16": np.uint16, "FP32": np.uint32, "FP64": np.uint64}


def client_address(address: str) -> str:
    """The ready line gives the bound address; 0.0.0.0 is reached on the loopback."""
    host, port = address.rsplit(":", 1)
    return f"127.0.0.1:{port}" if host in ("0.0.0.0", "[::]") else address


@pytest.fixture(scope="module")
def grpc_url(server) -> str:
    if "grpc" not in server.addresses:
        pytest.fail(f"the ready line announces no grpc address: {server.addresses}", pytrace=False)
    return client_address(server.addresses["grpc"])


@pytest.fixture(scope="module")
def grpc(grpc_url):
    c = grpcclient.InferenceServerClient(url=grpc_url)
    yield c
    c.close()


def values() -> dict[str, np.ndarray]:
    """Batch-2 arrays per type with each type's extremes, non-finite floats and non-UTF-8 bytes."""

    def limits(dtype) -> list:
        info = np.iinfo(dtype)
        return [info.min, info.max]

    return {
        "BOOL": np.array([[True, False, True, False], [False, False, True, True]]),
        "UINT8": np.array([[*limits(np.uint8), 1, 2], [7, 8, 9, 10]], dtype=np.uint8),
        "UINT16": np.array([[*limits(np.uint16), 1, 2], [7, 8, 9, 10]], dtype=np.uint16),
        "UINT32": np.array([[*limits(np.uint32), 1, 2], [7, 8, 9, 10]], dtype=np.uint32),
        "UINT64": np.array([[*limits(np.uint64), 1, 2], [7, 2**53 + 1, 9, 10]], dtype=np.uint64),
        "INT8": np.array([[*limits(np.int8), -1, 0], [1, 2, 3, 4]], dtype=np.int8),
        "INT16": np.array([[*limits(np.int16), -1, 0], [1, 2, 3, 4]], dtype=np.int16),
        "INT32": np.array([[*limits(np.int32), -1, 0], [1, 2, 3, 4]], dtype=np.int32),
        "INT64": np.array([[*limits(np.int64), -1, 0], [2**53 + 1, 2, 3, 4]], dtype=np.int64),
        "FP16": np.array([[np.inf, -np.inf, np.nan, -0.0], [0.1, -2.5, 65504, 6e-8]], np.float16),
        "FP32": np.array([[np.inf, -np.inf, np.nan, -0.0], [0.1, 3.14159, -1 / 3, 1e-45]], np.float32),
        "FP64": np.array([[np.inf, -np.inf, np.nan, -0.0], [0.1, np.pi, -1 / 3, 5e-324]], np.float64),
        "BYTES": np.array(
            [[b"", b"a", "h\u00e9llo".encode(), b"\x01\xff\xfe"], [b"x" * 300, b" ", b"\x00", b"end"]],
            dtype=np.object_,
        ),
    }


def assert_same(name: str, expected: np.ndarray, got: np.ndarray) -> None:
    assert got is not None, f"{name}: output missing"
    assert got.shape == expected.shape, f"{name}: shape {got.shape} != {expected.shape}"
    if name == "BYTES":
        assert list(got.ravel()) == list(expected.ravel()), name
    elif name in FLOAT_BITS:
        assert got.dtype == expected.dtype, name
        np.testing.assert_array_equal(got.view(FLOAT_BITS[name]), expected.view(FLOAT_BITS[name]), err_msg=name)
    else:
        assert got.dtype == expected.dtype, f"{name}: dtype {got.dtype} != {expected.dtype}"
        np.testing.assert_array_equal(got, expected, err_msg=name)


def tensor(module, name: str, data: np.ndarray, datatype: str):
    inp = module.InferInput(name, list(data.shape), datatype)
    inp.set_data_from_numpy(data)
    return inp


def simple_inputs(module, a: np.ndarray, b: np.ndarray) -> list:
    return [tensor(module, "INPUT0", a, "INT32"), tensor(module, "INPUT1", b, "INT32")]


def status_of(error: InferenceServerException) -> str:
    return error.status() or ""


# Health, metadata, configuration, repository.


def test_live_ready_and_server_metadata(grpc):
    assert grpc.is_server_live()
    assert grpc.is_server_ready()
    metadata = grpc.get_server_metadata()
    assert metadata.name == "ferrite"
    assert metadata.version == workspace_version()
    assert list(metadata.extensions) == ["binary_tensor_data", "logging", "model_configuration", "model_repository", "schedule_policy", "statistics", "trace"]
    as_json = grpc.get_server_metadata(as_json=True)
    assert as_json["name"] == "ferrite"


def test_model_ready(grpc):
    assert grpc.is_model_ready("simple")
    assert grpc.is_model_ready("cnn", "2")
    assert not grpc.is_model_ready("cnn", "7")
    assert not grpc.is_model_ready("no_such_model")


@pytest.mark.parametrize(
    "name, datatype, shape",
    [("simple", "INT32", [-1, 16]), ("identity_bytes", "BYTES", [-1, -1]), ("identity_fp32", "FP32", [-1, 16])],
)
def test_model_metadata(grpc, name, datatype, shape):
    metadata = grpc.get_model_metadata(name)
    assert metadata.name == name
    assert list(metadata.versions) == ["1"]
    assert metadata.platform == "onnxruntime_onnx"
    assert [i.datatype for i in metadata.inputs] == [datatype] * len(metadata.inputs)
    assert list(metadata.inputs[0].shape) == shape
    assert list(metadata.outputs[0].shape) == shape


def test_model_metadata_matches_http(grpc, client):
    for name in ("all_types", "cnn", "mlp"):
        over_grpc = grpc.get_model_metadata(name, as_json=True)
        over_http = client.get_model_metadata(name)
        assert over_grpc["name"] == over_http["name"]
        assert over_grpc["versions"] == over_http["versions"]
        assert over_grpc["platform"] == over_http["platform"]
        for kind in ("inputs", "outputs"):
            grpc_tensors = [(t["name"], t["datatype"], [int(d) for d in t["shape"]]) for t in over_grpc[kind]]
            http_tensors = [(t["name"], t["datatype"], t["shape"]) for t in over_http[kind]]
            assert grpc_tensors == http_tensors, (name, kind)


def test_model_config(grpc):
    config = grpc.get_model_config("identity_fp32").config
    assert config.name == "identity_fp32"
    assert config.max_batch_size == 64
    assert config.dynamic_batching.max_queue_delay_microseconds == 100
    assert config.input[0].name == "INPUT0"
    assert list(config.input[0].dims) == [16]
    as_json = grpc.get_model_config("simple", as_json=True)["config"]
    assert as_json["name"] == "simple"
    assert [i["data_type"] for i in as_json["input"]] == ["TYPE_INT32", "TYPE_INT32"]


def test_model_config_auto_completed(grpc):
    config = grpc.get_model_config("mlp").config
    assert config.name == "mlp"
    assert config.input and config.output


def test_repository_index(grpc):
    index = grpc.get_model_repository_index().models
    rows = {(m.name, m.version): m.state for m in index}
    assert rows[("simple", "1")] == "READY"
    assert rows[("cnn", "1")] == "READY" and rows[("cnn", "2")] == "READY"


@pytest.mark.parametrize("call", ["load_model", "unload_model"])
def test_model_control_is_off(grpc, call):
    with pytest.raises(InferenceServerException) as caught:
        getattr(grpc, call)("simple")
    assert status_of(caught.value) == "StatusCode.UNAVAILABLE"
    assert "explicit model load / unload is not allowed if polling is enabled" in caught.value.message()


def test_shared_memory_is_unimplemented(grpc):
    with pytest.raises(InferenceServerException) as caught:
        grpc.get_system_shared_memory_status()
    assert status_of(caught.value) == "StatusCode.UNIMPLEMENTED"


# Inference.


def test_every_data_type(grpc):
    data = values()
    inputs = [tensor(grpcclient, f"IN_{t}", data[t], t) for t in KSERVE_TYPES]
    outputs = [grpcclient.InferRequestedOutput(f"OUT_{t}") for t in KSERVE_TYPES]
    result = grpc.infer("all_types", inputs, outputs=outputs)
    response = result.get_response()
    assert [o.name for o in response.outputs] == [f"OUT_{t}" for t in KSERVE_TYPES]
    assert len(response.raw_output_contents) == len(KSERVE_TYPES)
    for out in response.outputs:
        kind = out.name[len("OUT_") :]
        assert out.datatype == kind
        assert list(out.shape) == [2, 4]
        assert_same(kind, data[kind], result.as_numpy(out.name))


def test_simple_with_id_and_requested_output(grpc):
    a = np.arange(32, dtype=np.int32).reshape(2, 16)
    b = np.full((2, 16), 3, dtype=np.int32)
    result = grpc.infer("simple", simple_inputs(grpcclient, a, b), request_id="grpc-1")
    assert result.get_response().id == "grpc-1"
    assert result.get_response().model_version == "1"
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), a + b)
    np.testing.assert_array_equal(result.as_numpy("OUTPUT1"), a - b)
    only = grpc.infer(
        "simple", simple_inputs(grpcclient, a, b), outputs=[grpcclient.InferRequestedOutput("OUTPUT1")]
    )
    assert [o.name for o in only.get_response().outputs] == ["OUTPUT1"]
    assert only.as_numpy("OUTPUT0") is None
    np.testing.assert_array_equal(only.as_numpy("OUTPUT1"), a - b)


def test_bytes_identity(grpc):
    data = np.array([[b"alpha", b"", "\u65e5\u672c".encode()]], dtype=np.object_)
    result = grpc.infer("identity_bytes", [tensor(grpcclient, "INPUT0", data, "BYTES")])
    assert list(result.as_numpy("OUTPUT0").ravel()) == list(data.ravel())


def test_gzip_compression(grpc):
    data = np.linspace(-1, 1, 64 * 16, dtype=np.float32).reshape(64, 16)
    result = grpc.infer(
        "identity_fp32", [tensor(grpcclient, "INPUT0", data, "FP32")], compression_algorithm="gzip"
    )
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), data)


@pytest.mark.parametrize("version", ["1", "2"])
def test_cnn_matches_onnxruntime(grpc, version):
    image = np.random.default_rng(7).standard_normal((3, 3, 32, 32)).astype(np.float32)
    result = grpc.infer("cnn", [tensor(grpcclient, "image", image, "FP32")], model_version=version)
    expected = ort_run(EXAMPLE_MODELS / "cnn" / version / "model.onnx", {"image": image})["logits"]
    np.testing.assert_allclose(result.as_numpy("logits"), expected, rtol=RTOL, atol=ATOL)


def test_errors(grpc):
    with pytest.raises(InferenceServerException) as caught:
        grpc.infer("no_such_model", [tensor(grpcclient, "X", np.zeros((1, 1), np.float32), "FP32")])
    assert status_of(caught.value) == "StatusCode.NOT_FOUND"
    wrong = np.zeros((1, 8), dtype=np.int32)
    with pytest.raises(InferenceServerException) as caught:
        grpc.infer("simple", simple_inputs(grpcclient, wrong, wrong))
    assert status_of(caught.value) == "StatusCode.INVALID_ARGUMENT"
    assert "INPUT0" in caught.value.message()
    floats = np.zeros((1, 16), dtype=np.float32)
    with pytest.raises(InferenceServerException) as caught:
        grpc.infer("simple", [tensor(grpcclient, "INPUT0", floats, "FP32"), tensor(grpcclient, "INPUT1", floats, "FP32")])
    assert status_of(caught.value) == "StatusCode.INVALID_ARGUMENT"


def test_statistics_match_http(grpc, client):
    a = np.ones((1, 16), dtype=np.int32)
    for _ in range(3):
        grpc.infer("simple", simple_inputs(grpcclient, a, a))
    over_grpc = grpc.get_inference_statistics("simple", as_json=True)["model_stats"][0]
    over_http = client.get_inference_statistics("simple")["model_stats"][0]
    assert over_grpc["name"] == "simple" and over_grpc["version"] == "1"
    assert int(over_grpc["inference_count"]) >= 3
    assert int(over_grpc["inference_count"]) == over_http["inference_count"]
    assert int(over_grpc["execution_count"]) == over_http["execution_count"]
    for key in ("success", "fail", "queue", "compute_infer"):
        assert int(over_grpc["inference_stats"][key].get("count", 0)) == over_http["inference_stats"][key]["count"], key
        assert int(over_grpc["inference_stats"][key].get("ns", 0)) == over_http["inference_stats"][key]["ns"], key


# The callback and asyncio APIs, and streaming.


def test_async_infer_callbacks(grpc):
    results: queue.Queue = queue.Queue()
    for i in range(20):
        a = np.full((1, 16), i, dtype=np.int32)
        grpc.async_infer(
            "simple",
            simple_inputs(grpcclient, a, a),
            callback=lambda result, error, i=i: results.put((i, result, error)),
            request_id=f"a{i}",
        )
    seen = set()
    for _ in range(20):
        i, result, error = results.get(timeout=60)
        assert error is None, error
        assert result.get_response().id == f"a{i}"
        np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), np.full((1, 16), 2 * i, dtype=np.int32))
        seen.add(i)
    assert seen == set(range(20))


def test_asyncio_client(grpc_url):
    async def run() -> None:
        async with aiogrpc.InferenceServerClient(url=grpc_url) as aio:
            assert await aio.is_server_ready()
            calls = []
            for i in range(16):
                a = np.full((1, 16), i, dtype=np.int32)
                calls.append(aio.infer("simple", simple_inputs(aiogrpc, a, a), request_id=f"io{i}"))
            results = await asyncio.gather(*calls)
            for i, result in enumerate(results):
                assert result.get_response().id == f"io{i}"
                np.testing.assert_array_equal(result.as_numpy("OUTPUT1"), np.zeros((1, 16), dtype=np.int32))

    asyncio.run(run())


def identity_row(i: int) -> np.ndarray:
    return (np.arange(16, dtype=np.float32) + 16 * i).reshape(1, 16)


def test_stream_of_100_in_order(grpc_url):
    answers: list = []
    done = threading.Event()

    def callback(result, error):
        answers.append((result, error))
        if len(answers) == STREAM_REQUESTS:
            done.set()

    with grpcclient.InferenceServerClient(url=grpc_url) as streaming:
        streaming.start_stream(callback=callback)
        for i in range(STREAM_REQUESTS):
            streaming.async_stream_infer(
                "identity_fp32", [tensor(grpcclient, "INPUT0", identity_row(i), "FP32")], request_id=f"s{i}"
            )
        assert done.wait(120), f"only {len(answers)} of {STREAM_REQUESTS} answers arrived"
        streaming.stop_stream()
    for i, (result, error) in enumerate(answers):
        assert error is None, f"request {i}: {error}"
        assert result.get_response().id == f"s{i}", "answers come in the order of the requests"
        np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), identity_row(i))


def test_stream_error_keeps_the_stream_open(grpc_url):
    answers: queue.Queue = queue.Queue()
    with grpcclient.InferenceServerClient(url=grpc_url) as streaming:
        streaming.start_stream(callback=lambda result, error: answers.put((result, error)))
        wrong = np.zeros((1, 8), dtype=np.float32)
        for i in range(6):
            data = wrong if i == 2 else identity_row(i)
            streaming.async_stream_infer(
                "identity_fp32", [tensor(grpcclient, "INPUT0", data, "FP32")], request_id=f"e{i}"
            )
        got = [answers.get(timeout=60) for _ in range(6)]
        streaming.stop_stream()
    for i, (result, error) in enumerate(got):
        if i == 2:
            assert result is None and error is not None
            assert "INPUT0" in str(error)
        else:
            assert error is None, error
            assert result.get_response().id == f"e{i}"
            np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), identity_row(i))


def test_http_client_still_works_beside_grpc(client):
    a = np.ones((1, 16), dtype=np.int32)
    result = client.infer("simple", simple_inputs(httpclient, a, a))
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), 2 * a)
