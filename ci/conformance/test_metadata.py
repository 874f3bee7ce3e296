"""Health, server metadata, model metadata, model readiness and model configuration
(KServe v2 required API plus Triton's model_configuration extension)."""

from __future__ import annotations

import re

import numpy as np
import pytest
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from helpers import ATOL, EXAMPLE_MODELS, KSERVE_TYPES, RTOL, ort_run, raw_request, workspace_version

ALL_TYPE_NAMES = KSERVE_TYPES
CONFIG_TYPE = {name: f"TYPE_{name}" for name in ALL_TYPE_NAMES} | {"BYTES": "TYPE_STRING", "BF16": "TYPE_BF16"}

# name -> (versions, inputs, outputs) as model metadata must report them:
# (tensor name, KServe datatype, full shape with -1 for the batch dimension).
EXPECTED_METADATA = {
    "identity_fp32": (["1"], [("INPUT0", "FP32", [-1, 16])], [("OUTPUT0", "FP32", [-1, 16])]),
    "simple": (
        ["1"],
        [("INPUT0", "INT32", [-1, 16]), ("INPUT1", "INT32", [-1, 16])],
        [("OUTPUT0", "INT32", [-1, 16]), ("OUTPUT1", "INT32", [-1, 16])],
    ),
    "identity_bytes": (["1"], [("INPUT0", "BYTES", [-1, -1])], [("OUTPUT0", "BYTES", [-1, -1])]),
    "mlp": (["1"], [("input", "FP32", [-1, 64])], [("probabilities", "FP32", [-1, 10])]),
    "cnn": (["1", "2"], [("image", "FP32", [-1, 3, 32, 32])], [("logits", "FP32", [-1, 10])]),
    "all_types": (
        ["1"],
        [(f"IN_{t}", t, [-1, 4]) for t in ALL_TYPE_NAMES],
        [(f"OUT_{t}", t, [-1, 4]) for t in ALL_TYPE_NAMES],
    ),
    "identity_bf16": (["1"], [("INPUT0", "BF16", [-1, 4])], [("OUTPUT0", "BF16", [-1, 4])]),
    "ragged_sum": (["1"], [("INPUT", "FP32", [-1, -1])], [("SUM", "FP32", [-1, 1]), ("DOUBLED", "FP32", [-1, -1])]),
}

# Keys whose values are maps with user-chosen keys in Triton's ModelConfig.
CONFIG_MAP_FIELDS = {"parameters", "cc_model_filenames", "metric_tags", "input_map", "output_map"}


def test_health_live_and_ready(client, server):
    assert client.is_server_live() is True
    assert client.is_server_ready() is True
    for path in ("/v2/health/live", "/v2/health/ready"):
        assert raw_request(server.http, "GET", path).status == 200, path


def test_ready_line_is_the_only_stdout_line(server):
    assert len(server.stdout_lines) == 1, f"stdout must hold only the ready line, got {server.stdout_lines!r}"
    assert server.stdout_lines[0].startswith("ferrite ready http=")
    names = [part.split("=", 1)[0] for part in server.stdout_lines[0].split()[2:]]
    assert names == ["http", "grpc", "metrics"], "all three endpoints were enabled on port 0"
    for name, address in server.addresses.items():
        assert re.fullmatch(r"127\.0\.0\.1:[1-9][0-9]*", address), f"{name}={address}"


def test_server_metadata(client):
    metadata = client.get_server_metadata()
    assert metadata["name"] == "ferrite"
    assert metadata["version"] == workspace_version()
    extensions = metadata["extensions"]
    assert isinstance(extensions, list) and all(isinstance(e, str) for e in extensions)
    assert len(set(extensions)) == len(extensions), f"duplicate extensions: {extensions}"
    # The extensions this suite exercises must be announced, exactly as Triton names them.
    assert {"binary_tensor_data", "model_configuration", "statistics"} <= set(extensions), extensions


@pytest.mark.parametrize("name", sorted(EXPECTED_METADATA))
def test_model_metadata(client, name):
    versions, inputs, outputs = EXPECTED_METADATA[name]
    metadata = client.get_model_metadata(name)
    assert metadata["name"] == name
    assert metadata["platform"] == "onnxruntime_onnx"
    assert metadata["versions"] == versions
    assert [(t["name"], t["datatype"], t["shape"]) for t in metadata["inputs"]] == inputs
    assert [(t["name"], t["datatype"], t["shape"]) for t in metadata["outputs"]] == outputs


def test_model_metadata_for_a_version(client):
    for version in ("1", "2"):
        metadata = client.get_model_metadata("cnn", model_version=version)
        assert metadata["name"] == "cnn"
        assert [(t["name"], t["shape"]) for t in metadata["inputs"]] == [("image", [-1, 3, 32, 32])]


def test_model_ready(client):
    for name, (versions, _, _) in EXPECTED_METADATA.items():
        assert client.is_model_ready(name) is True, name
        for version in versions:
            assert client.is_model_ready(name, version) is True, f"{name} version {version}"
    assert client.is_model_ready("cnn", "3") is False
    assert client.is_model_ready("no_such_model") is False


def _assert_snake_case_keys(value, path="config"):
    """Triton's config JSON keeps the proto field names (no lowerCamelCase)."""
    if isinstance(value, dict):
        for key, item in value.items():
            assert re.fullmatch(r"[a-z][a-z0-9_]*", key), f"{path}.{key} is not a proto field name"
            if key not in CONFIG_MAP_FIELDS:
                _assert_snake_case_keys(item, f"{path}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _assert_snake_case_keys(item, f"{path}[{i}]")


def _io(entries):
    return [(e["name"], e["data_type"], e["dims"]) for e in entries]


def _assert_dims_are_integers(config):
    for entry in config["input"] + config["output"]:
        assert all(type(d) is int for d in entry["dims"]), f"{entry['name']} dims must be JSON numbers: {entry['dims']}"


def test_model_config_simple(client):
    config = client.get_model_config("simple")
    _assert_snake_case_keys(config)
    assert config["name"] == "simple"
    assert config["platform"] == "onnxruntime_onnx"
    assert config["backend"] == "onnxruntime"
    assert type(config["max_batch_size"]) is int and config["max_batch_size"] == 8
    assert _io(config["input"]) == [("INPUT0", "TYPE_INT32", [16]), ("INPUT1", "TYPE_INT32", [16])]
    assert _io(config["output"]) == [("OUTPUT0", "TYPE_INT32", [16]), ("OUTPUT1", "TYPE_INT32", [16])]
    _assert_dims_are_integers(config)
    # Triton's default version policy is the latest single version.
    assert config["version_policy"] == {"latest": {"num_versions": 1}}
    assert "dynamic_batching" not in config, "simple's config has no scheduler; Triton adds none for it"


def test_model_config_dynamic_batching_numbers(client):
    config = client.get_model_config("identity_fp32")
    _assert_snake_case_keys(config)
    assert config["backend"] == "onnxruntime"
    assert config["platform"] == "onnxruntime_onnx"
    assert config["max_batch_size"] == 64
    delay = config["dynamic_batching"]["max_queue_delay_microseconds"]
    assert type(delay) is int and delay == 100, "uint64 fields are JSON numbers in Triton's config JSON"


def test_model_config_versions_and_instance_group(client):
    config = client.get_model_config("cnn")
    _assert_snake_case_keys(config)
    assert config["max_batch_size"] == 32
    assert config["version_policy"] == {"all": {}}
    assert _io(config["input"]) == [("image", "TYPE_FP32", [3, 32, 32])]
    assert _io(config["output"]) == [("logits", "TYPE_FP32", [10])]
    groups = config["instance_group"]
    assert [(g["kind"], g["count"]) for g in groups] == [("KIND_CPU", 1)], groups


def test_model_config_all_types_names_every_type(client):
    config = client.get_model_config("all_types")
    _assert_snake_case_keys(config)
    assert _io(config["input"]) == [(f"IN_{t}", CONFIG_TYPE[t], [4]) for t in ALL_TYPE_NAMES]
    assert _io(config["output"]) == [(f"OUT_{t}", CONFIG_TYPE[t], [4]) for t in ALL_TYPE_NAMES]
    bf16 = client.get_model_config("identity_bf16")
    assert _io(bf16["input"]) == [("INPUT0", "TYPE_BF16", [4])]


def test_model_config_auto_completed(client):
    assert not (EXAMPLE_MODELS / "mlp" / "config.pbtxt").exists()
    config = client.get_model_config("mlp")
    _assert_snake_case_keys(config)
    assert config["name"] == "mlp"
    assert config["platform"] == "onnxruntime_onnx"
    assert config["backend"] == "onnxruntime"
    # Triton's auto-complete gives batchable ONNX models default-max-batch-size (4) and
    # turns on the dynamic batcher when no scheduler is configured.
    assert config["max_batch_size"] == 4
    assert isinstance(config["dynamic_batching"], dict)
    assert _io(config["input"]) == [("input", "TYPE_FP32", [64])]
    assert _io(config["output"]) == [("probabilities", "TYPE_FP32", [10])]
    _assert_dims_are_integers(config)


def test_cnn_versions_infer_separately(client):
    rng = np.random.default_rng(7)
    image = rng.standard_normal((2, 3, 32, 32)).astype(np.float32)
    results = {}
    for version in ("1", "2"):
        inp = httpclient.InferInput("image", list(image.shape), "FP32")
        inp.set_data_from_numpy(image, binary_data=True)
        result = client.infer(
            "cnn", [inp], model_version=version, outputs=[httpclient.InferRequestedOutput("logits", binary_data=True)]
        )
        assert result.get_response()["model_version"] == version
        got = result.as_numpy("logits")
        expected = ort_run(EXAMPLE_MODELS / "cnn" / version / "model.onnx", {"image": image})["logits"]
        np.testing.assert_allclose(got, expected, rtol=RTOL, atol=ATOL, err_msg=f"cnn version {version}")
        results[version] = got
    assert not np.allclose(results["1"], results["2"]), "versions 1 and 2 have different weights"

    inp = httpclient.InferInput("image", list(image.shape), "FP32")
    inp.set_data_from_numpy(image, binary_data=True)
    latest = client.infer("cnn", [inp])
    assert latest.get_response()["model_version"] == "2", "an unversioned request goes to the highest version"
    np.testing.assert_allclose(latest.as_numpy("logits"), results["2"], rtol=RTOL, atol=ATOL)


def test_unknown_version_is_not_found(client):
    with pytest.raises(InferenceServerException) as info:
        client.get_model_metadata("cnn", model_version="9")
    assert info.value.status() == "404"
    assert "cnn" in info.value.message()
