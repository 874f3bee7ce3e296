#!/usr/bin/env bash
# Served throughput under dynamic batching against the engine's own in-process throughput.
#
# ferrite (release build) serves the example MLP and CNN, both with dynamic batching
# (QUEUE_DELAY_US queue delay, one instance), from a temporary repository, pinned to one core;
# perf_analyzer, pinned to another, sweeps the concurrency over HTTP and gRPC. After each
# run the average batch the scheduler formed is read from /v2/models/M/stats (the change
# in inference_count over the change in execution_count). `inprocess`
# (benches/examples/inprocess.rs) then loads the same model with the same config through
# ferrite_backends::create_instance on the server's core and times `execute` at that
# batch size (rounded). The table gives both throughputs and their ratio: what the
# serving path (sockets, codecs, queueing) costs at the batch sizes it actually forms.
#
# Usage: benches/load/batching_sweep.sh
# Environment:
#   CONCURRENCY        concurrencies to measure (default: "1 2 4 8 16 32 64")
#   MODELS             models to measure (default: "mlp cnn"; "wide_mlp" adds a model
#                      of ~4.3M multiply-adds a row, written by benches/load/wide_mlp.py)
#   PROTOCOLS          protocols to measure (default: "http grpc")
#   QUEUE_DELAY_US     max_queue_delay_microseconds of every model (default: 0: an idle
#                      instance takes what is queued at once, and requests that arrive while
#                      it executes form the next batch; a delay makes each batch wait for
#                      more requests, which at low concurrency costs the delay itself)
#   SERVER_CPU         core of the server and of inprocess (default: 0)
#   CLIENT_CPU         core of perf_analyzer (default: 1)
#   INTERVAL_MS        perf_analyzer measurement window (default: 1000)
#   INPROCESS_ROWS     inferences inprocess times per measurement (default: 4000)
#   RUN_TIMEOUT_S      limit of one perf_analyzer run (default: 120)
#   ORT_DYLIB_PATH     ONNX Runtime library (default: the one ci/python_env.sh installed)
# Needs: perf_analyzer (ci/perf_analyzer.sh install), taskset, python3.
set -euo pipefail
# shellcheck source=SCRIPTDIR/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

CONCURRENCY="${CONCURRENCY:-1 2 4 8 16 32 64}"
MODELS="${MODELS:-mlp cnn}"
PROTOCOLS="${PROTOCOLS:-http grpc}"
SERVER_CPU="${SERVER_CPU:-0}"
CLIENT_CPU="${CLIENT_CPU:-1}"
INTERVAL_MS="${INTERVAL_MS:-1000}"
INPROCESS_ROWS="${INPROCESS_ROWS:-4000}"
RUN_TIMEOUT_S="${RUN_TIMEOUT_S:-120}"
QUEUE_DELAY_US="${QUEUE_DELAY_US:-0}"

require_perf_analyzer
default_ort_dylib_path
make_work_dir
build_release inprocess

# The repository: both models with dynamic batching and one CPU instance.
REPO="$WORK/models"
mkdir -p "$REPO"
cp -r "$ROOT/examples/models/mlp" "$ROOT/examples/models/cnn" "$REPO/"
cat >"$REPO/mlp/config.pbtxt" <<'EOF'
name: "mlp"
platform: "onnxruntime_onnx"
max_batch_size: 64
input [ { name: "input" data_type: TYPE_FP32 dims: [ 64 ] } ]
output [ { name: "probabilities" data_type: TYPE_FP32 dims: [ 10 ] } ]
instance_group [ { count: 1 kind: KIND_CPU } ]
dynamic_batching { max_queue_delay_microseconds: QUEUE_DELAY_US }
EOF
cat >"$REPO/cnn/config.pbtxt" <<'EOF'
name: "cnn"
platform: "onnxruntime_onnx"
max_batch_size: 32
input [ { name: "image" data_type: TYPE_FP32 dims: [ 3, 32, 32 ] } ]
output [ { name: "logits" data_type: TYPE_FP32 dims: [ 10 ] } ]
instance_group [ { count: 1 kind: KIND_CPU } ]
dynamic_batching { max_queue_delay_microseconds: QUEUE_DELAY_US }
EOF
if [[ " $MODELS " == *" wide_mlp "* ]]; then
    "$PYTHON" "$ROOT/benches/load/wide_mlp.py" "$REPO/wide_mlp"
    cat >"$REPO/wide_mlp/config.pbtxt" <<'EOF'
name: "wide_mlp"
platform: "onnxruntime_onnx"
max_batch_size: 64
input [ { name: "input" data_type: TYPE_FP32 dims: [ 64 ] } ]
output [ { name: "logits" data_type: TYPE_FP32 dims: [ 10 ] } ]
instance_group [ { count: 1 kind: KIND_CPU } ]
dynamic_batching { max_queue_delay_microseconds: QUEUE_DELAY_US }
EOF
fi

sed -i "s/QUEUE_DELAY_US/$QUEUE_DELAY_US/" "$REPO"/*/config.pbtxt

start_server ferrite taskset -c "$SERVER_CPU" "$ROOT/target/release/ferrite" \
    --model-repository "$REPO" --http-port 0 --http-address 127.0.0.1 \
    --grpc-port 0 --grpc-address 127.0.0.1 --allow-metrics=false
log "$READY_LINE"
HTTP="$(ready_address http)"
GRPC="$(ready_address grpc)"

# Prints "inference_count execution_count" of model $1.
counts() {
    "$PYTHON" - "$HTTP" "$1" <<'PY'
import json, sys, urllib.request
with urllib.request.urlopen(f"http://{sys.argv[1]}/v2/models/{sys.argv[2]}/stats") as r:
    stats = json.load(r)["model_stats"][0]
print(stats["inference_count"], stats["execution_count"])
PY
}

# One line per measurement in $WORK/results: model protocol concurrency served avg_batch.
# A run perf_analyzer cannot stabilise (a busy machine) is reported and left out.
touch "$WORK/results"
for model in $MODELS; do
    for protocol in $PROTOCOLS; do
        url="$HTTP"
        [[ "$protocol" == grpc ]] && url="$GRPC"
        for c in $CONCURRENCY; do
            log "$model over $protocol: concurrency $c"
            read -r inferences_before executions_before <<<"$(counts "$model")"
            csv="$WORK/$model-$protocol-$c.csv"
            timeout "$RUN_TIMEOUT_S" taskset -c "$CLIENT_CPU" bash "$ROOT/ci/perf_analyzer.sh" run \
                -m "$model" -i "$protocol" -u "$url" \
                --async --concurrency-range "$c:$c" --measurement-interval "$INTERVAL_MS" \
                --stability-percentage 50 --max-trials 8 \
                -f "$csv" >"$WORK/$model-$protocol-$c.log" 2>&1 || {
                log "perf_analyzer failed for $model over $protocol at concurrency $c" \
                    "(left out of the table):"
                grep -v CURLMsg "$WORK/$model-$protocol-$c.log" | tail -n 3 >&2
                continue
            }
            read -r inferences_after executions_after <<<"$(counts "$model")"
            "$PYTHON" - "$csv" "$model" "$protocol" "$c" \
                "$((inferences_after - inferences_before))" \
                "$((executions_after - executions_before))" >>"$WORK/results" <<'PY'
import csv, sys
path, model, protocol, c, inferences, executions = sys.argv[1:]
with open(path, newline="") as f:
    served = float(next(csv.DictReader(f))["Inferences/Second"])
print(model, protocol, c, served, int(inferences) / max(int(executions), 1))
PY
        done
    done
done
stop_server

# In-process throughput at each rounded average batch, measured once per model and batch.
declare -A INPROCESS
while read -r model _ _ _ average; do
    batch="$("$PYTHON" -c "print(max(1, round($average)))")"
    key="$model-$batch"
    [[ -n "${INPROCESS[$key]:-}" ]] && continue
    iterations=$(((INPROCESS_ROWS + batch - 1) / batch))
    line="$(taskset -c "$SERVER_CPU" "$ROOT/target/release/examples/inprocess" "$REPO" "$model" "$batch" "$iterations")"
    log "$line"
    INPROCESS[$key]="$(tr ' ' '\n' <<<"$line" | sed -n 's/^inferences_per_s=//p')"
done <"$WORK/results"

echo "| model | protocol | concurrency | served infer/s | average batch | in-process infer/s at that batch | served / in-process |"
echo "| --- | --- | ---: | ---: | ---: | ---: | ---: |"
while read -r model protocol c served average; do
    batch="$("$PYTHON" -c "print(max(1, round($average)))")"
    "$PYTHON" - "$model" "$protocol" "$c" "$served" "$average" "$batch" "${INPROCESS[$model-$batch]}" <<'PY'
import sys
model, protocol, c, served, average, batch, inprocess = sys.argv[1:]
served, inprocess = float(served), float(inprocess)
print(f"| {model} | {protocol} | {c} | {served:.0f} | {float(average):.2f} | {inprocess:.0f} (batch {batch}) "
      f"| {served / inprocess:.2f} |")
PY
done <"$WORK/results"
