"""Utilities shared by the conformance tests: repository paths, a raw HTTP client for
hand-made (malformed) bodies, and ONNX Runtime reference sessions."""

from __future__ import annotations

import dataclasses
import functools
import http.client
import json
import os
import pathlib
import subprocess
import tomllib

import numpy as np
import onnxruntime as ort

ROOT = pathlib.Path(__file__).resolve().parents[2]
EXAMPLE_MODELS = ROOT / "examples" / "models"
REAL_MODELS = pathlib.Path(os.environ.get("FERRITE_REAL_MODELS", ROOT / "examples" / "real_models"))
REAL_MODEL_NAMES = ("silero_vad", "ppocr_cls", "ppocr_det")
PERF_ANALYZER_SH = ROOT / "ci" / "perf_analyzer.sh"

# Every KServe datatype except BF16, in the order of the all_types model's inputs.
KSERVE_TYPES = [
    "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16",
    "INT32", "INT64", "FP16", "FP32", "FP64", "BYTES",
]  # fmt: skip

# Tolerances for comparing server outputs with ONNX Runtime run in-process.
RTOL = 1e-4
ATOL = 1e-5


def ort_library() -> str:
    """Path of the ONNX Runtime shared library shipped in the onnxruntime wheel."""
    capi = pathlib.Path(ort.__file__).parent / "capi"
    libs = sorted(capi.glob(f"libonnxruntime.so.{ort.__version__}"))
    if not libs:
        raise RuntimeError(f"no libonnxruntime.so.{ort.__version__} in {capi}")
    return str(libs[0])


def real_models_present() -> bool:
    return all((REAL_MODELS / name / "1" / "model.onnx").is_file() for name in REAL_MODEL_NAMES)


def workspace_version() -> str:
    """The version in the root Cargo.toml's [workspace.package], which the server reports."""
    with open(ROOT / "Cargo.toml", "rb") as f:
        return tomllib.load(f)["workspace"]["package"]["version"]


@functools.cache
def ort_session(path: pathlib.Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def ort_run(path: pathlib.Path, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run a model file with ONNX Runtime in this process; returns every output by name."""
    session = ort_session(path)
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feeds), strict=True))


@dataclasses.dataclass
class Server:
    """A running ferrite process and the endpoints it announced on its ready line."""

    process: subprocess.Popen
    addresses: dict[str, str]
    stdout_lines: list[str]
    stderr_path: pathlib.Path
    # Triton's trace file (tritonserver's default trace mode); traces only
    # once a test turns the trace level on.
    trace_file: pathlib.Path

    @property
    def http(self) -> str:
        return self.addresses["http"]

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")


@dataclasses.dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self):
        return json.loads(self.body)


def raw_request(
    address: str, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> RawResponse:
    """One HTTP/1.1 request with exactly the given body and headers (no client-side checks)."""
    host, port = address.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        data = response.read()
        return RawResponse(response.status, {k.lower(): v for k, v in response.getheaders()}, data)
    finally:
        conn.close()


def binary_infer_body(header: dict, *chunks: bytes) -> tuple[bytes, dict[str, str]]:
    """A binary-tensor-extension request body: JSON header then raw tensor bytes."""
    head = json.dumps(header).encode()
    headers = {
        "Content-Type": "application/octet-stream",
        "Inference-Header-Content-Length": str(len(head)),
    }
    return head + b"".join(chunks), headers


def perf_analyzer_installed() -> bool:
    """True when ci/perf_analyzer.sh install has put a runnable perf_analyzer in place."""
    result = subprocess.run(
        ["bash", str(PERF_ANALYZER_SH), "path"], capture_output=True, text=True, timeout=60, check=False
    )
    return result.returncode == 0 and bool(result.stdout.strip())
