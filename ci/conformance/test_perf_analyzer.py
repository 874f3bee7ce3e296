"""NVIDIA perf_analyzer 2.41.0 (installed by ci/perf_analyzer.sh) against the server over
HTTP. perf_analyzer reads the server and model metadata and the model config JSON before
it sends load, so these runs also check that those answers are what it expects."""

from __future__ import annotations

import re
import subprocess

import pytest

from helpers import PERF_ANALYZER_SH, perf_analyzer_installed

PERF_TIMEOUT_S = 300
# Short windows on a small shared machine: accept any stable-enough measurement rather
# than abort; perf_analyzer still exits non-zero on any request error.
COMMON_FLAGS = [
    "-i", "http",
    "--concurrency-range", "1:2",
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
    command = ["bash", str(perf_analyzer), "run", *extra, "-u", server.http, *COMMON_FLAGS]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=PERF_TIMEOUT_S, check=False)
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, f"{' '.join(command)} exited {completed.returncode}:\n{output}"
    summary = {int(c): float(t) for c, t, _ in SUMMARY.findall(output)}
    assert sorted(summary) == [1, 2], f"no throughput for concurrency 1 and 2:\n{output}"
    assert all(t > 0 for t in summary.values()), summary
    assert re.search(r"Throughput: [0-9.]+ infer/sec", output), output
    return output


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_identity_fp32(perf_analyzer, server, mode):
    _run(perf_analyzer, server, "-m", "identity_fp32", f"--{mode}")


def test_simple(perf_analyzer, server):
    _run(perf_analyzer, server, "-m", "simple")


def test_auto_completed_mlp(perf_analyzer, server):
    _run(perf_analyzer, server, "-m", "mlp", "-b", "2")


def test_bytes_model(perf_analyzer, server):
    _run(perf_analyzer, server, "-m", "identity_bytes", "--shape", "INPUT0:8", "--string-length", "16")


def test_collect_metrics(perf_analyzer, server, tmp_path):
    """perf_analyzer scrapes the metrics endpoint while it measures (GPU metrics are
    absent on a host without a GPU; it reports them empty)."""
    report = tmp_path / "report.csv"
    metrics_url = f"{server.addresses['metrics']}/metrics"
    output = _run(
        perf_analyzer, server, "-m", "identity_fp32", "--collect-metrics", "--metrics-url", metrics_url,
        "--metrics-interval", "200", "-f", str(report), "--verbose-csv",
    )  # fmt: skip
    assert "Server Prometheus Metrics:" in output, output
    assert "Unable to connect to Metrics endpoint" not in output, output
    header = report.read_text().splitlines()[0].split(",")
    assert "Avg GPU Utilization" in header, header
