"""NVIDIA perf_analyzer 2.41.0 (installed by ci/perf_analyzer.sh) against the server over
gRPC (`-i grpc`): synchronous, asynchronous and streaming requests. perf_analyzer reads
the server and model metadata and the model config over gRPC before it sends load, and
exits non-zero on any request error."""

from __future__ import annotations

import re
import subprocess

import pytest

from helpers import PERF_ANALYZER_SH, perf_analyzer_installed
from test_grpc import client_address

PERF_TIMEOUT_S = 300
# Short windows on a small shared machine: accept any stable-enough measurement.
COMMON_FLAGS = [
    "-i", "grpc",
    "--concurrency-range", "1:4:3",
    "--measurement-interval", "1000",
    "--stability-percentage", "100",
    "--max-trials", "20",
]  # fmt: skip
SUMMARY = re.compile(r"^Concurrency: (\d+), throughput: ([0-9.]+) infer/sec, latency (\d+) usec$", re.MULTILINE)


@pytest.fixture(scope="module")
def perf_analyzer():
    if not perf_analyzer_installed():
        pytest.skip("perf_analyzer is not installed: run ci/perf_analyzer.sh install")
    return PERF_ANALYZER_SH


def _run(perf_analyzer, server, *extra: str) -> str:
    url = client_address(server.addresses["grpc"])
    command = ["bash", str(perf_analyzer), "run", *extra, "-u", url, *COMMON_FLAGS]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=PERF_TIMEOUT_S, check=False)
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, f"{' '.join(command)} exited {completed.returncode}:\n{output}"
    summary = {int(c): float(t) for c, t, _ in SUMMARY.findall(output)}
    assert sorted(summary) == [1, 4], f"no throughput for concurrency 1 and 4:\n{output}"
    assert all(t > 0 for t in summary.values()), summary
    return output


@pytest.mark.parametrize("mode", ["--sync", "--async", "--streaming"])
def test_identity_fp32(perf_analyzer, server, mode):
    _run(perf_analyzer, server, "-m", "identity_fp32", mode)


def test_simple_streaming(perf_analyzer, server):
    _run(perf_analyzer, server, "-m", "simple", "--streaming", "-b", "2")


def test_bytes_model(perf_analyzer, server):
    _run(perf_analyzer, server, "-m", "identity_bytes", "--shape", "INPUT0:8", "--string-length", "16")
