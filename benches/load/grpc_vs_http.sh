#!/usr/bin/env bash
# gRPC against HTTP under perf_analyzer, with a bare hyper baseline measured in the same run.
#
# The server (ferrite, release build, identity_fp32 only) is pinned to one core and
# perf_analyzer to another. perf_analyzer runs in --async mode with one worker thread: on one
# core, its 2.41.0 HTTP client stalls at 32 concurrent requests in sync mode and crashes
# ("received CURLMsg=...", then SIGSEGV) with several async workers, against ferrite and
# the bare server alike. For each concurrency, perf_analyzer measures ferrite over gRPC,
# ferrite over HTTP, and `bare_hyper` (benches/examples/bare_hyper.rs: a hyper server that
# answers the same KServe requests with fixed bodies, captured from ferrite, doing no
# inference), pinned like ferrite. The table gives throughput and p50/p99 latency of each,
# and each ferrite throughput as a share of the bare baseline.
#
# Usage: benches/load/grpc_vs_http.sh
# Environment:
#   CONCURRENCY      concurrencies to measure (default: "1 8 32")
#   SERVER_CPU       core of the servers (default: 0)
#   CLIENT_CPU       core of perf_analyzer (default: 1)
#   INTERVAL_MS      perf_analyzer measurement window (default: 5000)
#   RUN_TIMEOUT_S    limit of one perf_analyzer run (default: 120)
#   ATTEMPTS         tries of each perf_analyzer run (default: 3)
#   STABILITY        perf_analyzer --stability-percentage (default: 100, i.e. the mean of
#                    three windows is taken as it comes; lower it on a quiet machine)
#   ORT_DYLIB_PATH   ONNX Runtime library (default: the one ci/python_env.sh installed)
# Needs: perf_analyzer (ci/perf_analyzer.sh install), taskset, python3.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CONCURRENCY="${CONCURRENCY:-1 8 32}"
SERVER_CPU="${SERVER_CPU:-0}"
CLIENT_CPU="${CLIENT_CPU:-1}"
INTERVAL_MS="${INTERVAL_MS:-5000}"
RUN_TIMEOUT_S="${RUN_TIMEOUT_S:-120}"
STABILITY="${STABILITY:-100}"
ATTEMPTS="${ATTEMPTS:-3}"
MODEL=identity_fp32
# The version is named: perf_analyzer 2.41.0 finds no server statistics for the bare
# server when it has to pick the latest version itself.
VERSION=1
PYTHON="$ROOT/.venv/bin/python"
[[ -x "$PYTHON" ]] || PYTHON=python3

log() { echo "[grpc_vs_http] $*" >&2; }

if ! bash "$ROOT/ci/perf_analyzer.sh" run --version >/dev/null 2>&1; then
    log "perf_analyzer is not installed: run ci/perf_analyzer.sh install"
    exit 1
fi
if [[ -z "${ORT_DYLIB_PATH:-}" ]]; then
    if ORT_DYLIB_PATH="$("$ROOT/ci/python_env.sh" --ort-path 2>/dev/null)"; then
        export ORT_DYLIB_PATH
    else
        log "no ONNX Runtime library found; ferrite will use tract"
    fi
fi

WORK="$(mktemp -d)"
SERVER_PID=""
stop_server() {
    if [[ -n "$SERVER_PID" ]]; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=""
    fi
}
trap 'stop_server; rm -rf "$WORK"' EXIT

log "building release binaries"
(cd "$ROOT" && cargo build --release --quiet -p ferrite-server --bin ferrite)
(cd "$ROOT" && cargo build --release --quiet -p ferrite-benches --example bare_hyper)

# Starts "$@" pinned to SERVER_CPU and waits for its ready line, which it leaves in
# READY_LINE.
READY_LINE=""
start_server() {
    local name="$1"
    shift
    taskset -c "$SERVER_CPU" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" &
    SERVER_PID=$!
    for _ in $(seq 600); do
        if grep -q ' ready ' "$WORK/$name.out" 2>/dev/null; then
            READY_LINE="$(head -n 1 "$WORK/$name.out")"
            log "$READY_LINE"
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

address_of() { tr ' ' '\n' <<<"$1" | sed -n "s/^$2=//p"; }

# Runs perf_analyzer pinned to CLIENT_CPU; writes its CSV to $WORK/$label-$c.csv. A run that
# fails is tried again (up to ATTEMPTS in all): perf_analyzer 2.41.0's HTTP client at times
# stalls or crashes at 32 concurrent requests on one core, whatever the server.
measure() {
    local label="$1" protocol="$2" url="$3" c attempt
    for c in $CONCURRENCY; do
        for attempt in $(seq "$ATTEMPTS"); do
            log "$label: concurrency $c (attempt $attempt)"
            if timeout "$RUN_TIMEOUT_S" taskset -c "$CLIENT_CPU" bash "$ROOT/ci/perf_analyzer.sh" run \
                -m "$MODEL" -x "$VERSION" -i "$protocol" -u "$url" \
                --async --max-threads 1 --concurrency-range "$c:$c" --measurement-interval "$INTERVAL_MS" \
                --stability-percentage "$STABILITY" --max-trials 10 \
                -f "$WORK/$label-$c.csv" >"$WORK/$label-$c.log" 2>&1; then
                continue 2
            fi
            log "perf_analyzer failed for $label at concurrency $c:"
            tail -n 5 "$WORK/$label-$c.log" >&2
        done
        log "giving up on $label at concurrency $c after $ATTEMPTS attempts"
        exit 1
    done
}

mkdir -p "$WORK/models" "$WORK/answers"
cp -r "$ROOT/examples/models/$MODEL" "$WORK/models/"

start_server ferrite "$ROOT/target/release/ferrite" --model-repository "$WORK/models" \
    --http-port 0 --http-address 127.0.0.1 --grpc-port 0 --grpc-address 127.0.0.1 --allow-metrics=false
http="$(address_of "$READY_LINE" http)"
grpc="$(address_of "$READY_LINE" grpc)"

# Capture ferrite's answers for the bare baseline.
"$PYTHON" - "$http" "$MODEL" "$WORK/answers" <<'PY'
import json, pathlib, sys, urllib.request
base, model, out = f"http://{sys.argv[1]}", sys.argv[2], pathlib.Path(sys.argv[3])
def get(path):
    with urllib.request.urlopen(base + path) as r:
        return r.read()
(out / "server.json").write_bytes(get("/v2"))
(out / "metadata.json").write_bytes(get(f"/v2/models/{model}"))
(out / "config.json").write_bytes(get(f"/v2/models/{model}/config"))
meta = json.loads(get(f"/v2/models/{model}"))
inp = meta["inputs"][0]
shape = [1] + [d for d in inp["shape"][1:]]
count = 1
for d in shape:
    count *= d
body = json.dumps({
    "inputs": [{"name": inp["name"], "datatype": inp["datatype"], "shape": shape, "data": [0] * count}],
    "outputs": [{"name": o["name"], "parameters": {"binary_data": True}} for o in meta["outputs"]],
}).encode()
request = urllib.request.Request(base + f"/v2/models/{model}/infer", data=body, headers={"Content-Type": "application/json"})
with urllib.request.urlopen(request) as r:
    length = int(r.headers["Inference-Header-Content-Length"])
    data = r.read()
(out / "infer_header.json").write_bytes(data[:length])
(out / "infer_tail.bin").write_bytes(data[length:])
PY

measure grpc grpc "$grpc"
measure http http "$http"
stop_server

start_server bare "$ROOT/target/release/examples/bare_hyper" 127.0.0.1:0 "$WORK/answers"
measure bare http "$(address_of "$READY_LINE" http)"
stop_server

"$PYTHON" - "$WORK" "$CONCURRENCY" <<'PY'
import csv, pathlib, sys
work, levels = pathlib.Path(sys.argv[1]), [int(c) for c in sys.argv[2].split()]
def row(label, c):
    with open(work / f"{label}-{c}.csv", newline="") as f:
        r = next(csv.DictReader(f))
    return float(r["Inferences/Second"]), int(r["p50 latency"]), int(r["p99 latency"])
print("| concurrency | gRPC infer/s | gRPC p50/p99 (us) | HTTP infer/s | HTTP p50/p99 (us) | bare infer/s | bare p50/p99 (us) | gRPC/bare | HTTP/bare |")
print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for c in levels:
    g, h, b = row("grpc", c), row("http", c), row("bare", c)
    print(f"| {c} | {g[0]:.0f} | {g[1]} / {g[2]} | {h[0]:.0f} | {h[1]} / {h[2]} | {b[0]:.0f} | {b[1]} / {b[2]} "
          f"| {g[0] / b[0]:.2f} | {h[0] / b[0]:.2f} |")
PY
