#!/usr/bin/env bash
# Cost of metrics and latency histograms under perf_analyzer load.
#
# ferrite (release build, identity_fp32 only) is pinned to one core and perf_analyzer to
# another. Two configurations are measured in the same run, alternating round by round so
# that drift of a shared machine falls on both alike:
#   on   defaults: metrics served, latency histograms recorded, the endpoint scraped every
#        second while perf_analyzer measures (as a Prometheus server would)
#   off  --allow-metrics=false --metrics-config histogram_latencies=false
# It prints each round's throughput and the ratio of the mean throughputs (on / off).
#
# Usage: benches/load/metrics_overhead.sh
# Environment:
#   ROUNDS           rounds of on + off (default: 3)
#   CONCURRENCY      perf_analyzer concurrency (default: 8)
#   SERVER_CPU       core of the server (default: 0)
#   CLIENT_CPU       core of perf_analyzer (default: 1)
#   INTERVAL_MS      perf_analyzer measurement window (default: 5000)
#   RUN_TIMEOUT_S    limit of one perf_analyzer run (default: 300)
#   ORT_DYLIB_PATH   ONNX Runtime library (default: the one ci/python_env.sh installed)
# Needs: perf_analyzer (ci/perf_analyzer.sh install), taskset, curl, python3.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
ROUNDS="${ROUNDS:-3}"
CONCURRENCY="${CONCURRENCY:-8}"
SERVER_CPU="${SERVER_CPU:-0}"
CLIENT_CPU="${CLIENT_CPU:-1}"
INTERVAL_MS="${INTERVAL_MS:-5000}"
RUN_TIMEOUT_S="${RUN_TIMEOUT_S:-300}"
MODEL=identity_fp32

log() { echo "[metrics_overhead] $*" >&2; }

if ! bash "$ROOT/ci/perf_analyzer.sh" path >/dev/null; then
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
SCRAPER_PID=""
stop_all() {
    for pid in "$SCRAPER_PID" "$SERVER_PID"; do
        if [[ -n "$pid" ]]; then
            kill -TERM "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
        fi
    done
    SCRAPER_PID=""
    SERVER_PID=""
}
trap 'stop_all; rm -rf "$WORK"' EXIT

log "building the release binary"
(cd "$ROOT" && cargo build --release --quiet -p ferrite-server --bin ferrite)

mkdir -p "$WORK/models"
cp -r "$ROOT/examples/models/$MODEL" "$WORK/models/"

# Starts ferrite with extra flags "$@", pinned; sets HTTP and METRICS from its ready line.
start_server() {
    taskset -c "$SERVER_CPU" "$ROOT/target/release/ferrite" --model-repository "$WORK/models" \
        --http-port 0 --http-address 127.0.0.1 --allow-grpc=false \
        --metrics-port 0 --metrics-address 127.0.0.1 "$@" >"$WORK/server.out" 2>"$WORK/server.err" &
    SERVER_PID=$!
    for _ in $(seq 600); do
        if grep -q '^ferrite ready ' "$WORK/server.out" 2>/dev/null; then
            local line
            line="$(grep -m1 '^ferrite ready ' "$WORK/server.out")"
            HTTP="$(sed -n 's/.* http=\([^ ]*\).*/\1/p' <<<"$line")"
            METRICS="$(sed -n 's/.* metrics=\([^ ]*\).*/\1/p' <<<"$line")"
            return 0
        fi
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            log "ferrite exited before it was ready:"
            cat "$WORK/server.err" >&2
            exit 1
        fi
        sleep 0.1
    done
    log "ferrite was not ready within 60 s"
    exit 1
}

# Measures throughput (infer/sec) against HTTP; prints it.
measure() {
    local output
    output="$(timeout "$RUN_TIMEOUT_S" taskset -c "$CLIENT_CPU" bash "$ROOT/ci/perf_analyzer.sh" run \
        -m "$MODEL" -u "$HTTP" -i http --async --concurrency-range "$CONCURRENCY" \
        --measurement-interval "$INTERVAL_MS" --stability-percentage 100 --max-trials 10 2>&1)" || {
        log "perf_analyzer failed:"
        echo "$output" >&2
        exit 1
    }
    sed -n 's/^Concurrency: [0-9]*, throughput: \([0-9.]*\) infer\/sec.*/\1/p' <<<"$output" | tail -n 1
}

run_config() {
    local config="$1"
    if [[ "$config" == on ]]; then
        start_server
        (while curl -sf "http://$METRICS/metrics" >/dev/null; do sleep 1; done) &
        SCRAPER_PID=$!
    else
        start_server --allow-metrics=false --metrics-config histogram_latencies=false
    fi
    local throughput
    throughput="$(measure)"
    stop_all
    [[ -n "$throughput" ]] || { log "no throughput for $config"; exit 1; }
    echo "$config $throughput" >>"$WORK/results"
    log "round $round $config: $throughput infer/sec"
}

for round in $(seq "$ROUNDS"); do
    run_config on
    run_config off
done

python3 - "$WORK/results" "$CONCURRENCY" <<'PY'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
on = [float(t) for c, t in rows if c == "on"]
off = [float(t) for c, t in rows if c == "off"]
print(f"concurrency {sys.argv[2]}, {len(on)} rounds each")
print(f"metrics on : mean {statistics.mean(on):.1f} infer/sec  {on}")
print(f"metrics off: mean {statistics.mean(off):.1f} infer/sec  {off}")
print(f"ratio on/off: {statistics.mean(on) / statistics.mean(off):.4f} (means), "
      f"{statistics.median(on) / statistics.median(off):.4f} (medians)")
PY
