#!/usr/bin/env bash
# The project's full test run (the README's test command):
#   1. Python tools in .venv (ci/python_env.sh), perf_analyzer (ci/perf_analyzer.sh install),
#      the real-model repository (ci/fetch_real_models.sh)
#   2. cargo test --workspace, with ORT_DYLIB_PATH pointing at the venv's ONNX Runtime,
#      then the fuzz targets of fuzz/ for FUZZ_RUNS executions each (ci/fuzz.sh)
#   3. cargo build of the ferrite binary, then the conformance suite against it
#      (pytest ci/conformance with NVIDIA's tritonclient and perf_analyzer)
#   4. the deployment checks (ci/deploy_check.sh: hadolint, kustomize renderings validated
#      against the Kubernetes schemas, pytest ci/deploy against the same binary)
# Set-up failures stop the run at once; every test phase runs (the conformance suite and
# the deployment checks only if the binary builds), and the script exits non-zero if
# anything failed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

step() { printf '\n==> %s\n' "$*"; }

step "disk"
df -h "$ROOT"

step "Python environment (ci/python_env.sh)"
bash ci/python_env.sh
ORT_DYLIB_PATH="$(bash ci/python_env.sh --ort-path)"
export ORT_DYLIB_PATH
echo "ORT_DYLIB_PATH=$ORT_DYLIB_PATH"

step "perf_analyzer (ci/perf_analyzer.sh install)"
bash ci/perf_analyzer.sh install

step "real models (ci/fetch_real_models.sh)"
bash ci/fetch_real_models.sh

failed=()

step "cargo test --workspace"
if ! cargo test --workspace; then
    failed+=("cargo test --workspace")
fi

finish() {
    if ((${#failed[@]})); then
        step "FAILED: ${failed[*]}"
        exit 1
    fi
    step "all tests passed"
}

step "fuzzing (ci/fuzz.sh ${FUZZ_RUNS:=100000} runs per target)"
if ! bash ci/fuzz.sh "$FUZZ_RUNS"; then
    failed+=("ci/fuzz.sh")
fi
# The sanitizer build is several GiB and nothing later uses it; on CI, free the disk.
if [[ -n "${CI:-}" ]]; then
    rm -rf fuzz/target
fi

step "cargo build --bin ferrite"
if ! cargo build -p ferrite-server --bin ferrite; then
    failed+=("cargo build --bin ferrite (conformance suite not run)")
    finish
fi
export FERRITE_BIN="$ROOT/target/debug/ferrite"
echo "FERRITE_BIN=$FERRITE_BIN"

step "conformance suite (pytest ci/conformance)"
if ! .venv/bin/python -m pytest ci/conformance -v; then
    failed+=("pytest ci/conformance")
fi

step "deployment checks (ci/deploy_check.sh)"
if ! bash ci/deploy_check.sh; then
    failed+=("ci/deploy_check.sh")
fi

finish
