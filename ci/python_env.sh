#!/usr/bin/env bash
# Create or update the Python virtual environment at .venv/ (repository root) with the
# pinned tools from ci/requirements.txt and ci/requirements-nodeps.txt, then print the
# path of the ONNX Runtime shared library it contains (for ORT_DYLIB_PATH).
#
# Usage: ci/python_env.sh            create/update .venv, print the library path
#        ci/python_env.sh --ort-path  print only the library path (no install)
#
# Environment: PYTHON  interpreter used to create the venv (default: python3.11, else python3)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
REQ="$ROOT/ci/requirements.txt"
REQ_NODEPS="$ROOT/ci/requirements-nodeps.txt"
STAMP="$VENV/.ferrite-requirements.sha256"

log() { echo "[python_env] $*" >&2; }

ort_path() {
    local lib
    lib="$("$VENV/bin/python" - <<'PY'
import pathlib, sys
import onnxruntime
capi = pathlib.Path(onnxruntime.__file__).parent / "capi"
libs = sorted(capi.glob(f"libonnxruntime.so.{onnxruntime.__version__}"))
if not libs:
    sys.exit(f"no libonnxruntime.so.{onnxruntime.__version__} in {capi}")
print(libs[0])
PY
)"
    echo "$lib"
}

if [[ "${1:-}" == "--ort-path" ]]; then
    ort_path
    exit 0
fi

if [[ -z "${PYTHON:-}" ]]; then
    if command -v python3.11 >/dev/null 2>&1; then PYTHON=python3.11; else PYTHON=python3; fi
fi

if [[ ! -x "$VENV/bin/python" ]]; then
    log "creating virtual environment $VENV with $PYTHON ($("$PYTHON" --version 2>&1))"
    "$PYTHON" -m venv "$VENV"
else
    log "using existing virtual environment $VENV ($("$VENV/bin/python" --version 2>&1))"
fi

wanted="$(cat "$REQ" "$REQ_NODEPS" | sha256sum | cut -d' ' -f1)"
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$wanted" ]]; then
    log "pinned packages already installed (ci/requirements*.txt unchanged)"
else
    log "upgrading pip"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
    log "installing pinned packages from ci/requirements.txt"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-warn-conflicts -r "$REQ"
    log "installing model packages without their dependencies from ci/requirements-nodeps.txt"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -r "$REQ_NODEPS"
    echo "$wanted" > "$STAMP"
fi

log "checking the installed versions"
"$VENV/bin/python" - <<'PY' >&2
import importlib.metadata as md
for name in ["onnxruntime", "onnx", "numpy", "pytest", "tritonclient", "silero-vad", "rapidocr-onnxruntime"]:
    print(f"[python_env]   {name}=={md.version(name)}")
import onnxruntime, tritonclient.http, tritonclient.grpc  # noqa: F401  (import check)
PY

lib="$(ort_path)"
log "ONNX Runtime shared library:"
echo "$lib"
