"""Triton's statistics extension (GET v2/models[/NAME[/versions/V]]/stats): counts
grow by exactly what the test sent, every documented field is present, and every count
and duration is a non-negative JSON integer."""

from __future__ import annotations

import time

import numpy as np
import tritonclient.http as httpclient

INFERENCE_FIELDS = (
    "success",
    "fail",
    "queue",
    "compute_input",
    "compute_infer",
    "compute_output",
    "cache_hit",
    "cache_miss",
)
BATCH_FIELDS = ("compute_input", "compute_infer", "compute_output")


def _assert_integers(value, path: str) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _assert_integers(item, f"{path}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _assert_integers(item, f"{path}[{i}]")
    elif not isinstance(value, str):
        assert type(value) is int and value >= 0, f"{path} = {value!r} is not a non-negative integer"


def _model_stat(client, name: str, version: str = "") -> dict:
    stats = client.get_inference_statistics(name, model_version=version)
    entries = stats["model_stats"]
    assert len(entries) == 1, (
        f"expected one entry for {name} {version!r}, got {[(e['name'], e['version']) for e in entries]}"
    )
    entry = entries[0]
    assert entry["name"] == name
    for field in ("last_inference", "inference_count", "execution_count", "inference_stats", "batch_stats"):
        assert field in entry, f"{name}: field {field} missing"
    for field in INFERENCE_FIELDS:
        assert set(entry["inference_stats"][field]) >= {"count", "ns"}, f"{name}: inference_stats.{field}"
    for batch in entry["batch_stats"]:
        assert "batch_size" in batch
        for field in BATCH_FIELDS:
            assert set(batch[field]) >= {"count", "ns"}, f"{name}: batch_stats.{field}"
    _assert_integers({k: v for k, v in entry.items() if k not in ("name", "version")}, name)
    return entry


def _count(entry: dict, field: str) -> int:
    return entry["inference_stats"][field]["count"]


def _ns(entry: dict, field: str) -> int:
    return entry["inference_stats"][field]["ns"]


def _batch_counts(entry: dict) -> dict[int, int]:
    return {b["batch_size"]: b["compute_infer"]["count"] for b in entry["batch_stats"]}


def _simple_request(client, batch: int) -> None:
    a = np.arange(16 * batch, dtype=np.int32).reshape(batch, 16)
    inputs = []
    for name in ("INPUT0", "INPUT1"):
        inp = httpclient.InferInput(name, [batch, 16], "INT32")
        inp.set_data_from_numpy(a, binary_data=True)
        inputs.append(inp)
    result = client.infer("simple", inputs)
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), 2 * a)


def test_statistics_count_exactly_without_dynamic_batching(client):
    """`simple` has no dynamic batcher: every request is its own execution."""
    before = _model_stat(client, "simple")
    for _ in range(5):
        _simple_request(client, 1)
    _simple_request(client, 3)
    after = _model_stat(client, "simple")

    assert after["version"] == "1"
    assert after["inference_count"] - before["inference_count"] == 5 + 3, "inference_count counts batch elements"
    assert after["execution_count"] - before["execution_count"] == 6
    for field in ("success", "queue", "compute_input", "compute_infer", "compute_output"):
        assert _count(after, field) - _count(before, field) == 6, field
    for field in ("success", "compute_infer"):
        assert _ns(after, field) > _ns(before, field), f"{field}.ns must grow"
    assert _count(after, "fail") == _count(before, "fail")
    # No response cache is configured: no hits, no misses.
    assert _count(after, "cache_hit") == 0 and _count(after, "cache_miss") == 0

    counts_before, counts_after = _batch_counts(before), _batch_counts(after)
    assert counts_after.get(1, 0) - counts_before.get(1, 0) == 5
    assert counts_after.get(3, 0) - counts_before.get(3, 0) == 1
    for size in set(counts_after) - {1, 3}:
        assert counts_after[size] == counts_before.get(size, 0), f"batch size {size} did not run"

    now_ms = time.time() * 1000
    assert abs(now_ms - after["last_inference"]) < 60_000, "last_inference is milliseconds since the epoch"


def test_statistics_with_dynamic_batching(server, client):
    before = _model_stat(client, "identity_fp32")
    requests = 16
    concurrent = httpclient.InferenceServerClient(url=server.http, concurrency=requests, network_timeout=120.0)
    try:
        pending = []
        for i in range(requests):
            inp = httpclient.InferInput("INPUT0", [1, 16], "FP32")
            inp.set_data_from_numpy(np.full((1, 16), i, dtype=np.float32), binary_data=True)
            pending.append(concurrent.async_infer("identity_fp32", [inp]))
        for request in pending:
            request.get_result(timeout=120)
    finally:
        concurrent.close()
    after = _model_stat(client, "identity_fp32")

    inferences = after["inference_count"] - before["inference_count"]
    executions = after["execution_count"] - before["execution_count"]
    assert inferences == requests
    assert 1 <= executions <= requests
    assert _count(after, "success") - _count(before, "success") == requests
    # batch_stats count executions per batch size: they add up to both totals.
    counts_before, counts_after = _batch_counts(before), _batch_counts(after)
    delta = {size: counts_after[size] - counts_before.get(size, 0) for size in counts_after}
    assert sum(delta.values()) == executions
    assert sum(size * n for size, n in delta.items()) == inferences
    assert all(size <= 64 for size in delta), "no batch exceeds max_batch_size"


def test_statistics_per_version(client):
    for version in ("1", "2"):
        entry = _model_stat(client, "cnn", version)
        assert entry["version"] == version
    both = client.get_inference_statistics("cnn")["model_stats"]
    assert sorted(e["version"] for e in both) == ["1", "2"]


def test_statistics_for_all_models(client):
    stats = client.get_inference_statistics()
    entries = {(e["name"], e["version"]) for e in stats["model_stats"]}
    for name in ("identity_fp32", "simple", "identity_bytes", "mlp", "all_types", "identity_bf16"):
        assert (name, "1") in entries, name
    assert {("cnn", "1"), ("cnn", "2")} <= entries
