"""Session fixtures for the conformance suite.

The `server` fixture starts the real `ferrite` binary once per session on free ports
(`--http-port 0 --grpc-port 0 --metrics-port 0`) with `examples/models` and, when
present, the real-model repository built by `ci/fetch_real_models.sh`. It waits for the
one ready line on stdout (`ferrite ready http=ADDR ...`), hands the addresses to the
tests, and stops the server with SIGTERM at the end, failing if it does not exit cleanly.

Environment:
    FERRITE_BIN          server binary (default: target/debug/ferrite)
    FERRITE_REAL_MODELS  real-model repository (default: examples/real_models)
    ORT_DYLIB_PATH       ONNX Runtime library for the server (default: the one in the
                         onnxruntime Python package the tests use)
"""

from __future__ import annotations

import os
import pathlib
import re
import signal
import subprocess
import threading

import pytest
import tritonclient.http as httpclient

from helpers import EXAMPLE_MODELS, REAL_MODELS, ROOT, Server, ort_library, real_models_present

READY_TIMEOUT_S = 120.0
SHUTDOWN_TIMEOUT_S = 30.0
READY_LINE = re.compile(r"^ferrite ready((?: [a-z]+=\S+)+)$")


def _read_stdout(stream, lines: list[str], ready: threading.Event, addresses: dict[str, str]) -> None:
    """Collect every stdout line; parse the first ready line into `addresses`."""
    for raw in stream:
        line = raw.rstrip("\n")
        lines.append(line)
        match = READY_LINE.match(line)
        if match and not ready.is_set():
            addresses.update(part.split("=", 1) for part in match.group(1).split())
            ready.set()
    ready.set()


@pytest.fixture(scope="session")
def server(tmp_path_factory) -> Server:
    binary = pathlib.Path(os.environ.get("FERRITE_BIN", ROOT / "target" / "debug" / "ferrite"))
    if not binary.is_absolute():
        binary = ROOT / binary
    if not binary.is_file():
        pytest.fail(f"server binary {binary} does not exist: build it (cargo build) or set FERRITE_BIN", pytrace=False)

    args = [str(binary), "--model-repository", str(EXAMPLE_MODELS)]
    if real_models_present():
        args += ["--model-repository", str(REAL_MODELS)]
    args += ["--http-port", "0", "--grpc-port", "0", "--metrics-port", "0"]
    args += ["--http-address", "127.0.0.1", "--grpc-address", "127.0.0.1", "--metrics-address", "127.0.0.1"]
    trace_file = tmp_path_factory.mktemp("traces") / "trace.json"
    args += ["--trace-config", f"triton,file={trace_file}"]

    env = dict(os.environ)
    env.setdefault("ORT_DYLIB_PATH", ort_library())
    stderr_path = tmp_path_factory.mktemp("ferrite") / "stderr.log"
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
    instance = Server(process, addresses, lines, stderr_path, trace_file)

    if "http" not in addresses:
        process.kill()
        process.wait()
        pytest.fail(
            f"ferrite printed no ready line with an http address within {READY_TIMEOUT_S:.0f} s "
            f"(exit code {process.returncode}).\ncommand: {' '.join(args)}\nstdout:\n"
            + "\n".join(lines)
            + f"\nstderr:\n{instance.stderr()}",
            pytrace=False,
        )

    yield instance

    process.send_signal(signal.SIGTERM)
    try:
        code = process.wait(SHUTDOWN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        pytest.fail(f"ferrite did not exit within {SHUTDOWN_TIMEOUT_S:.0f} s of SIGTERM\nstderr:\n{instance.stderr()}")
    reader.join(5)
    if code != 0:
        pytest.fail(f"ferrite exited with code {code} after SIGTERM\nstderr:\n{instance.stderr()}")


@pytest.fixture(scope="session")
def client(server: Server):
    c = httpclient.InferenceServerClient(url=server.http, connection_timeout=60.0, network_timeout=120.0)
    yield c
    c.close()


@pytest.fixture(scope="session")
def real_models() -> pathlib.Path:
    if not real_models_present():
        pytest.skip(f"{REAL_MODELS} is absent: run ci/fetch_real_models.sh to test real published models")
    return REAL_MODELS
