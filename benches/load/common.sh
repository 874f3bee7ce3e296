# shellcheck shell=bash
# Set-up shared by the load scripts in benches/load. Sourced, not run:
#
#   set -euo pipefail
#   source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
#
# Sourcing sets
#   ROOT         the repository root
#   PYTHON       .venv/bin/python when it exists, else python3
#   SERVER_PID   "" (start_server sets it)
#   CLIENT_PIDS  () (a script adds the processes that load or scrape the server, for
#                stop_server to stop before the server)
#   READY_LINE   "" (start_server sets it)
#   LOG_NAME     the running script's name without .sh, log's prefix
# and defines:
#   log MESSAGE...            MESSAGE on stderr, after "[LOG_NAME]"
#   require_perf_analyzer [--runs]
#                             exits 1 unless perf_analyzer is installed
#                             (ci/perf_analyzer.sh path); with --runs, unless it starts
#                             (ci/perf_analyzer.sh run --version)
#   default_ort_dylib_path    when ORT_DYLIB_PATH is unset or empty, sets and exports it to
#                             the ONNX Runtime library ci/python_env.sh installed, or says
#                             ferrite will use tract
#   make_work_dir             sets WORK to a new temporary folder and traps EXIT to
#                             stop_server and remove WORK
#   build_release [EXAMPLE...]
#                             builds target/release/ferrite and each EXAMPLE of
#                             ferrite-benches (target/release/examples/EXAMPLE) in release
#   start_server NAME COMMAND...
#                             runs COMMAND in the background with its stdout and stderr in
#                             $WORK/NAME.out and $WORK/NAME.err, sets SERVER_PID, and waits
#                             up to 60 s for its ready line ("NAME ready http=ADDR ...",
#                             e.g. `ferrite ready http=ADDR grpc=ADDR metrics=ADDR`), which
#                             it leaves in READY_LINE; exits 1 if COMMAND exits first or
#                             prints none. Pinning is the caller's: COMMAND may begin with
#                             `taskset -c CPU`.
#   ready_address KEY         prints the address READY_LINE gives for KEY (http, grpc,
#                             metrics)
#   stop_server               stops (SIGTERM) and waits for CLIENT_PIDS, then SERVER_PID,
#                             and empties both

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PYTHON="$ROOT/.venv/bin/python"
[[ -x "$PYTHON" ]] || PYTHON=python3
SERVER_PID=""
CLIENT_PIDS=()
READY_LINE=""

LOG_NAME="$(basename "$0" .sh)"
log() { echo "[$LOG_NAME] $*" >&2; }

# shellcheck disable=SC2120 # its arguments are optional
require_perf_analyzer() {
    local check=(path)
    if [[ "${1:-}" == --runs ]]; then
        check=(run --version)
    fi
    if ! bash "$ROOT/ci/perf_analyzer.sh" "${check[@]}" >/dev/null 2>&1; then
        log "perf_analyzer is not installed: run ci/perf_analyzer.sh install"
        exit 1
    fi
}

default_ort_dylib_path() {
    if [[ -z "${ORT_DYLIB_PATH:-}" ]]; then
        if ORT_DYLIB_PATH="$("$ROOT/ci/python_env.sh" --ort-path 2>/dev/null)"; then
            export ORT_DYLIB_PATH
        else
            log "no ONNX Runtime library found; ferrite will use tract"
        fi
    fi
}

make_work_dir() {
    WORK="$(mktemp -d)"
    trap 'stop_server; rm -rf "$WORK"' EXIT
}

# shellcheck disable=SC2120 # its arguments are optional
build_release() {
    local example
    if (($# == 0)); then
        log "building the release binary"
    else
        log "building release binaries"
    fi
    (cd "$ROOT" && cargo build --release --quiet -p ferrite-server --bin ferrite)
    for example in "$@"; do
        (cd "$ROOT" && cargo build --release --quiet -p ferrite-benches --example "$example")
    done
}

start_server() {
    local name="$1"
    shift
    "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" &
    SERVER_PID=$!
    READY_LINE=""
    for _ in $(seq 600); do
        if READY_LINE="$(grep -m1 ' ready ' "$WORK/$name.out" 2>/dev/null)"; then
            return 0
        fi
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            log "$name exited before it was ready:"
            cat "$WORK/$name.err" >&2
            exit 1
        fi
        sleep 0.1
    done
    log "$name printed no ready line within 60 s"
    exit 1
}

ready_address() { tr ' ' '\n' <<<"$READY_LINE" | sed -n "s/^$1=//p"; }

stop_server() {
    local pid
    for pid in "${CLIENT_PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${CLIENT_PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    CLIENT_PIDS=()
    if [[ -n "$SERVER_PID" ]]; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=""
    fi
}
