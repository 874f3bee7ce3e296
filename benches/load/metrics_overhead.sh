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
# shellcheck source=SCRIPTDIR/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

ROUNDS="${ROUNDS:-3}"
CONCURRENCY="${CONCURRENCY:-8}"
SERVER_CPU="${SERVER_CPU:-0}"
CLIENT_CPU="${CLIENT_CPU:-1}"
INTERVAL_MS="${INTERVAL_MS:-5000}"
RUN_TIMEOUT_S="${RUN_TIMEOUT_S:-300}"
MODEL=identity_fp32

require_perf_analyzer
default_ort_dylib_path
make_work_dir
build_release

mkdir -p "$WORK/models"
cp -r "$ROOT/examples/models/$MODEL" "$WORK/models/"

# Starts ferrite with extra flags "$@", pinned; sets HTTP and METRICS from its ready line.
start_ferrite() {
    start_server ferrite taskset -c "$SERVER_CPU" "$ROOT/target/release/ferrite" \
        --model-repository "$WORK/models" --http-port 0 --http-address 127.0.0.1 --allow-grpc=false \
        --metrics-port 0 --metrics-address 127.0.0.1 "$@"
    HTTP="$(ready_address http)"
    METRICS="$(ready_address metrics)"
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
        start_ferrite
        (while curl -sf "http://$METRICS/metrics" >/dev/null; do sleep 1; done) &
        CLIENT_PIDS+=($!)
    else
        start_ferrite --allow-metrics=false --metrics-config histogram_latencies=false
    fi
    local throughput
    throughput="$(measure)"
    stop_server
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
