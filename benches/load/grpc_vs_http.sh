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
# shellcheck source=SCRIPTDIR/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

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

require_perf_analyzer --runs
default_ort_dylib_path
make_work_dir
build_release bare_hyper

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

start_server ferrite taskset -c "$SERVER_CPU" "$ROOT/target/release/ferrite" \
    --model-repository "$WORK/models" --http-port 0 --http-address 127.0.0.1 \
    --grpc-port 0 --grpc-address 127.0.0.1 --allow-metrics=false
log "$READY_LINE"
http="$(ready_address http)"
grpc="$(ready_address grpc)"

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

start_server bare taskset -c "$SERVER_CPU" "$ROOT/target/release/examples/bare_hyper" \
    127.0.0.1:0 "$WORK/answers"
log "$READY_LINE"
measure bare http "$(ready_address http)"
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
