#!/usr/bin/env bash
# Install and run NVIDIA's perf_analyzer (2.41.0) without a Triton container.
#
# The tritonclient==2.41.0 manylinux1 wheel on PyPI ships the binary at
# tritonclient-2.41.0.data/data/bin/perf_analyzer. It links against libb64.so.0d
# (Debian package libb64-0d) and libcudart.so.12, which the PyPI wheel
# nvidia-cuda-runtime-cu12 provides; the CUDA runtime only has to be loadable, no GPU
# is needed for HTTP/gRPC measurements.
#
# Usage: ci/perf_analyzer.sh install        download + extract into ci/.tools, install libs, verify
#        ci/perf_analyzer.sh run ARGS...    run perf_analyzer ARGS... with the right environment
#        ci/perf_analyzer.sh path           print the binary's path (exit 1 if not installed)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$ROOT/ci/.tools"
VENV="$ROOT/.venv"
TRITONCLIENT_VERSION="2.41.0"
CUDART_VERSION="12.3.101"
WHEEL="tritonclient-${TRITONCLIENT_VERSION}-py3-none-manylinux1_x86_64.whl"
MEMBER="tritonclient-${TRITONCLIENT_VERSION}.data/data/bin/perf_analyzer"
BIN="$TOOLS/bin/perf_analyzer"

log() { echo "[perf_analyzer] $*" >&2; }

cudart_dir() {
    "$VENV/bin/python" - <<'PY'
import importlib.util, pathlib, sys
spec = importlib.util.find_spec("nvidia.cuda_runtime")
if spec is None or not spec.submodule_search_locations:
    sys.exit("nvidia-cuda-runtime-cu12 is not installed in .venv")
lib = pathlib.Path(list(spec.submodule_search_locations)[0]) / "lib"
if not (lib / "libcudart.so.12").is_file():
    sys.exit(f"libcudart.so.12 not found in {lib}")
print(lib)
PY
}

run_pa() {
    local lib
    lib="$(cudart_dir)"
    LD_LIBRARY_PATH="$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$BIN" "$@"
}

have_libb64() {
    ldconfig -p 2>/dev/null | grep 'libb64\.so\.0d' >/dev/null
}

install() {
    if [[ "$(uname -s)-$(uname -m)" != "Linux-x86_64" ]]; then
        log "perf_analyzer from the $WHEEL wheel runs on Linux x86_64 only (this is $(uname -s)-$(uname -m))"
        exit 1
    fi
    mkdir -p "$TOOLS/bin"

    if [[ ! -x "$VENV/bin/python" ]]; then
        log "no .venv yet; running ci/python_env.sh"
        "$ROOT/ci/python_env.sh" >/dev/null
    fi

    if [[ -x "$BIN" ]]; then
        log "binary already extracted: $BIN"
    else
        if [[ ! -f "$TOOLS/$WHEEL" ]]; then
            log "downloading $WHEEL from PyPI into ci/.tools"
            "$VENV/bin/python" -m pip download --quiet --disable-pip-version-check --no-deps \
                --only-binary=:all: --platform manylinux1_x86_64 --python-version 3 \
                "tritonclient==$TRITONCLIENT_VERSION" -d "$TOOLS"
        fi
        log "extracting $MEMBER"
        "$VENV/bin/python" - "$TOOLS/$WHEEL" "$MEMBER" "$BIN" <<'PY'
import shutil, sys, zipfile
wheel, member, target = sys.argv[1:]
with zipfile.ZipFile(wheel) as z, z.open(member) as src, open(target + ".part", "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
        chmod +x "$BIN.part"
        mv "$BIN.part" "$BIN"
    fi

    if have_libb64; then
        log "libb64.so.0d present"
    elif [[ "$(id -u)" == "0" ]] && command -v apt-get >/dev/null 2>&1; then
        log "installing Debian package libb64-0d"
        if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q libb64-0d >&2; then
            log "apt-get install failed; updating the package lists and retrying"
            apt-get update -q >&2
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q libb64-0d >&2
        fi
    else
        log "libb64.so.0d is missing: install the Debian package libb64-0d (needs root)"
        exit 1
    fi

    if cudart_dir >/dev/null 2>&1 && "$VENV/bin/python" -c "
import importlib.metadata as md, sys
sys.exit(md.version('nvidia-cuda-runtime-cu12') != '$CUDART_VERSION')" 2>/dev/null; then
        log "nvidia-cuda-runtime-cu12==$CUDART_VERSION present in .venv"
    else
        log "installing nvidia-cuda-runtime-cu12==$CUDART_VERSION into .venv (provides libcudart.so.12)"
        "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps \
            "nvidia-cuda-runtime-cu12==$CUDART_VERSION"
    fi

    log "verifying that the binary starts"
    local version
    if ! version="$(run_pa --version 2>&1)"; then
        log "perf_analyzer --version failed:"
        echo "$version" >&2
        exit 1
    fi
    # perf_analyzer has no --help flag: it prints its usage and exits 99 for any unknown option.
    local usage
    usage="$(run_pa --help 2>&1 || true)"
    if ! grep -q '^Usage:.*perf_analyzer' <<<"$usage"; then
        log "perf_analyzer --help did not print its usage"
        exit 1
    fi
    log "installed: $BIN ($version)"
}

case "${1:-}" in
    install)
        install
        ;;
    run)
        shift
        if [[ ! -x "$BIN" ]]; then
            log "not installed; run: ci/perf_analyzer.sh install"
            exit 1
        fi
        run_pa "$@"
        ;;
    path)
        [[ -x "$BIN" ]] && cudart_dir >/dev/null 2>&1 && have_libb64 && echo "$BIN"
        ;;
    *)
        echo "usage: $0 install | run ARGS... | path" >&2
        exit 2
        ;;
esac
