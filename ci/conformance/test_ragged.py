"""Ragged batching through NVIDIA's clients: requests of different lengths sent
concurrently to the example `ragged_sum` model (an `allow_ragged_batch` input, a
BATCH_ACCUMULATED_ELEMENT_COUNT_WITH_ZERO batch input and a scattered output) each
get their own sum and their own slice, matching ONNX Runtime run in-process on the
concatenated batch."""

from __future__ import annotations

import threading

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient

from helpers import EXAMPLE_MODELS, ort_run

MODEL = EXAMPLE_MODELS / "ragged_sum" / "1" / "model.onnx"


def _rows() -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    return [rng.integers(-50, 50, size=(1, n)).astype(np.float32) for n in (1, 5, 2, 9, 3, 4)]


def _reference(rows: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    flat = np.concatenate([r.reshape(-1) for r in rows])
    bounds = np.cumsum([0] + [r.size for r in rows]).astype(np.int64)
    out = ort_run(MODEL, {"INPUT": flat, "BOUNDS": bounds})
    return out["SUM"], out["DOUBLED"]


def _check(rows, answers):
    sums, doubled = _reference(rows)
    offset = 0
    for i, (row, answer) in enumerate(zip(rows, answers, strict=True)):
        np.testing.assert_array_equal(answer.as_numpy("SUM"), sums[i : i + 1])
        got = answer.as_numpy("DOUBLED")
        assert got.shape == row.shape
        np.testing.assert_array_equal(got.reshape(-1), doubled[offset : offset + row.size])
        offset += row.size


def test_ragged_requests_over_http(server):
    rows = _rows()
    client = httpclient.InferenceServerClient(url=server.http, concurrency=len(rows))
    try:
        pending = []
        for row in rows:
            inp = httpclient.InferInput("INPUT", list(row.shape), "FP32")
            inp.set_data_from_numpy(row, binary_data=True)
            pending.append(client.async_infer("ragged_sum", [inp]))
        _check(rows, [p.get_result() for p in pending])
    finally:
        client.close()


def test_ragged_requests_over_grpc(server):
    rows = _rows()
    client = grpcclient.InferenceServerClient(url=server.addresses["grpc"])
    try:
        results: list = [None] * len(rows)
        remaining = threading.Semaphore(0)

        def callback(index):
            def record(result, error):
                results[index] = error or result
                remaining.release()

            return record

        for index, row in enumerate(rows):
            inp = grpcclient.InferInput("INPUT", list(row.shape), "FP32")
            inp.set_data_from_numpy(row)
            client.async_infer("ragged_sum", [inp], callback(index), client_timeout=60)
        for _ in rows:
            assert remaining.acquire(timeout=60), "an answer did not arrive"
        errors = [r for r in results if isinstance(r, Exception)]
        assert not errors, errors
        _check(rows, results)
    finally:
        client.close()


def test_ragged_config_is_reported(client):
    config = client.get_model_config("ragged_sum")
    assert config["input"][0]["allow_ragged_batch"] is True
    assert config["batch_input"][0]["kind"] == "BATCH_ACCUMULATED_ELEMENT_COUNT_WITH_ZERO"
    assert config["batch_input"][0]["target_name"] == ["BOUNDS"]
    assert config["batch_output"][0]["kind"] == "BATCH_SCATTER_WITH_INPUT_SHAPE"
    metadata = client.get_model_metadata("ragged_sum")
    assert [i["name"] for i in metadata["inputs"]] == ["INPUT"], "batch inputs are not request inputs"
