"""The model repository extension through tritonclient (HTTP and gRPC) against a server in
explicit model-control mode over a temporary copy of examples/models: index, load, load
with a config override, unload, reload; the error a server in none mode answers; and the
logging extension."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import signal
import subprocess
import threading

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from conftest import READY_TIMEOUT_S, SHUTDOWN_TIMEOUT_S, _read_stdout
from helpers import EXAMPLE_MODELS, ROOT, ort_library

MODULES = {"http": httpclient, "grpc": grpcclient}


@pytest.fixture(scope="module")
def explicit_server(tmp_path_factory) -> dict[str, str]:
    """A ferrite process in explicit mode that loads only `simple` at start-up."""
    binary = pathlib.Path(os.environ.get("FERRITE_BIN", ROOT / "target" / "debug" / "ferrite"))
    if not binary.is_absolute():
        binary = ROOT / binary
    if not binary.is_file():
        pytest.fail(f"server binary {binary} does not exist: build it (cargo build) or set FERRITE_BIN", pytrace=False)
    base = tmp_path_factory.mktemp("explicit")
    repository = base / "models"
    shutil.copytree(EXAMPLE_MODELS, repository)
    args = [str(binary), "--model-repository", str(repository), "--model-control-mode=explicit", "--load-model=simple"]
    for endpoint in ("http", "grpc", "metrics"):
        args += [f"--{endpoint}-port=0", f"--{endpoint}-address=127.0.0.1"]
    env = dict(os.environ)
    env.setdefault("ORT_DYLIB_PATH", ort_library())
    stderr_path = base / "stderr.log"
    with open(stderr_path, "wb") as stderr_file:
        process = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=stderr_file, stdin=subprocess.DEVNULL, text=True, env=env, cwd=ROOT
        )
    lines: list[str] = []
    addresses: dict[str, str] = {}
    ready = threading.Event()
    reader = threading.Thread(target=_read_stdout, args=(process.stdout, lines, ready, addresses), daemon=True)
    reader.start()
    ready.wait(READY_TIMEOUT_S)
    if "http" not in addresses or "grpc" not in addresses:
        process.kill()
        process.wait()
        pytest.fail(f"no ready line with http and grpc addresses\nstderr:\n{stderr_path.read_text()}", pytrace=False)

    yield addresses

    process.send_signal(signal.SIGTERM)
    try:
        code = process.wait(SHUTDOWN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        pytest.fail(f"ferrite did not exit within {SHUTDOWN_TIMEOUT_S:.0f} s of SIGTERM")
    reader.join(5)
    assert code == 0, f"ferrite exited with code {code}\nstderr:\n{stderr_path.read_text()}"


def connect(protocol: str, addresses: dict[str, str]):
    address = addresses[protocol].replace("0.0.0.0", "127.0.0.1")
    return MODULES[protocol].InferenceServerClient(url=address)


@pytest.fixture(params=["http", "grpc"])
def protocol(request) -> str:
    return request.param


def index_rows(client, protocol: str) -> dict[str, dict]:
    """The repository index as name -> {version, state} for either client."""
    if protocol == "http":
        rows = client.get_model_repository_index()
    else:
        rows = [
            {"name": m.name, "version": m.version, "state": m.state}
            for m in client.get_model_repository_index().models
        ]
    return {row["name"]: row for row in rows}


def identity_fp32(client, protocol: str, rows: int) -> np.ndarray:
    module = MODULES[protocol]
    data = np.arange(rows * 16, dtype=np.float32).reshape(rows, 16)
    tensor = module.InferInput("INPUT0", list(data.shape), "FP32")
    tensor.set_data_from_numpy(data)
    result = client.infer("identity_fp32", [tensor])
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), data)
    return data


def test_index_load_unload_and_reload(explicit_server, protocol):
    client = connect(protocol, explicit_server)
    rows = index_rows(client, protocol)
    assert rows["simple"]["state"] == "READY"
    # Models never loaded are listed without a state.
    assert not rows["mlp"].get("state") and not rows["mlp"].get("version")
    assert not client.is_model_ready("identity_fp32")

    client.load_model("identity_fp32")
    assert client.is_model_ready("identity_fp32")
    assert index_rows(client, protocol)["identity_fp32"]["state"] == "READY"
    identity_fp32(client, protocol, 2)

    client.unload_model("identity_fp32")
    assert not client.is_model_ready("identity_fp32")
    assert index_rows(client, protocol)["identity_fp32"]["state"] == "UNAVAILABLE"
    with pytest.raises(InferenceServerException):
        identity_fp32(client, protocol, 1)

    client.load_model("identity_fp32")
    assert client.is_model_ready("identity_fp32")
    identity_fp32(client, protocol, 1)
    client.unload_model("identity_fp32")
    client.close()


def test_load_with_a_config_override(explicit_server, protocol):
    client = connect(protocol, explicit_server)
    config = {
        "name": "identity_fp32",
        "backend": "onnxruntime",
        "max_batch_size": 4,
        "input": [{"name": "INPUT0", "data_type": "TYPE_FP32", "dims": [16]}],
        "output": [{"name": "OUTPUT0", "data_type": "TYPE_FP32", "dims": [16]}],
    }
    client.load_model("identity_fp32", config=json.dumps(config))
    if protocol == "http":
        served = client.get_model_config("identity_fp32")
    else:
        served = client.get_model_config("identity_fp32", as_json=True)["config"]
    assert int(served["max_batch_size"]) == 4
    identity_fp32(client, protocol, 4)
    with pytest.raises(InferenceServerException) as caught:
        identity_fp32(client, protocol, 5)
    assert "batch-size must be <= 4" in caught.value.message()

    client.load_model("identity_fp32")
    if protocol == "http":
        served = client.get_model_config("identity_fp32")
    else:
        served = client.get_model_config("identity_fp32", as_json=True)["config"]
    assert int(served["max_batch_size"]) == 64
    client.unload_model("identity_fp32")
    client.close()


def test_loading_an_unknown_model_names_it(explicit_server, protocol):
    client = connect(protocol, explicit_server)
    with pytest.raises(InferenceServerException) as caught:
        client.load_model("no_such_model")
    assert "no_such_model" in caught.value.message()
    client.close()


def test_model_control_is_refused_in_none_mode(server, protocol):
    client = connect(protocol, server.addresses)
    for call in (client.load_model, client.unload_model):
        with pytest.raises(InferenceServerException) as caught:
            call("simple")
        assert "explicit model load / unload is not allowed if polling is enabled" in caught.value.message()
    assert client.is_model_ready("simple")
    client.close()


def test_log_settings(explicit_server, protocol):
    client = connect(protocol, explicit_server)
    settings = client.get_log_settings()
    if protocol == "grpc":
        settings = {k: getattr(v, v.WhichOneof("parameter_choice")) for k, v in settings.settings.items()}
    assert set(settings) == {"log_file", "log_info", "log_warning", "log_error", "log_verbose_level", "log_format"}
    assert settings["log_format"] == "default" and settings["log_file"] == ""

    changed = client.update_log_settings({"log_verbose_level": 1, "log_format": "ISO8601"})
    if protocol == "grpc":
        changed = {k: getattr(v, v.WhichOneof("parameter_choice")) for k, v in changed.settings.items()}
    assert changed["log_verbose_level"] == 1 and changed["log_format"] == "ISO8601"
    with pytest.raises(InferenceServerException) as caught:
        client.update_log_settings({"log_file": "/tmp/elsewhere.log"})
    assert "log_file" in caught.value.message()
    client.update_log_settings({"log_verbose_level": settings["log_verbose_level"], "log_format": "default"})
    client.close()
