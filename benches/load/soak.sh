#!/usr/bin/env bash
# Soak test: mixed HTTP and gRPC load on identity_fp32 for a fixed time, watching the
# server's memory and file descriptors.
#
# One ferrite release binary serves identity_fp32; two perf_analyzer processes load it
# at once, one over HTTP and one over gRPC, each for DURATION_SECS (three measurement
# windows of a third of the duration each). Every 5 s the server's resident set
# (VmRSS in /proc/PID/status) and open descriptors (/proc/PID/fd) are sampled to
# $WORK/samples.tsv. The report gives the start and end RSS and their difference, the
# largest RSS and descriptor counts, each protocol's throughput and p99 latency, the
# errors perf_analyzer reported and the failures the server counted.
#
# Usage: benches/load/soak.sh DURATION_SECS
# Environment:
#   CONCURRENCY      concurrent requests of each perf_analyzer (default: 16)
#   FERRITE_BIN      server binary (default: target/release/ferrite, built first)
#   ORT_DYLIB_PATH   ONNX Runtime library (default: the one ci/python_env.sh installed)
# Needs: perf_analyzer (ci/perf_analyzer.sh install), python3.
set -euo pipefail
# shellcheck source=SCRIPTDIR/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

DURATION="${1:?usage: benches/load/soak.sh DURATION_SECS}"
CONCURRENCY="${CONCURRENCY:-16}"
MODEL=identity_fp32
SAMPLE_S=5

if ! [[ "$DURATION" =~ ^[0-9]+$ ]] || ((DURATION < 15)); then
    log "DURATION_SECS must be a whole number of seconds, at least 15"
    exit 1
fi
require_perf_analyzer
default_ort_dylib_path
if [[ -z "${FERRITE_BIN:-}" ]]; then
    build_release
    FERRITE_BIN="$ROOT/target/release/ferrite"
fi

make_work_dir
mkdir -p "$WORK/models"
cp -r "$ROOT/examples/models/$MODEL" "$WORK/models/"
start_server ferrite "$FERRITE_BIN" --model-repository "$WORK/models" \
    --http-port 0 --http-address 127.0.0.1 --grpc-port 0 --grpc-address 127.0.0.1 \
    --metrics-port 0 --metrics-address 127.0.0.1
log "$READY_LINE"

sample() {
    local rss fds
    rss="$(awk '/^VmRSS:/ {print $2}' "/proc/$SERVER_PID/status")"
    fds="$(find "/proc/$SERVER_PID/fd" -mindepth 1 -maxdepth 1 | wc -l)"
    printf '%s\t%s\t%s\n' "$(date +%s)" "$rss" "$fds" >>"$WORK/samples.tsv"
}
printf 'time\trss_kib\tfds\n' >"$WORK/samples.tsv"
sample

INTERVAL_MS=$((DURATION * 1000 / 3))
for protocol in http grpc; do
    bash "$ROOT/ci/perf_analyzer.sh" run -m "$MODEL" -i "$protocol" -u "$(ready_address "$protocol")" \
        --concurrency-range "$CONCURRENCY:$CONCURRENCY" --measurement-interval "$INTERVAL_MS" \
        --stability-percentage 1000 --max-trials 3 \
        -f "$WORK/$protocol.csv" >"$WORK/$protocol.log" 2>&1 &
    CLIENT_PIDS+=($!)
done
log "loading for ${DURATION}s: HTTP and gRPC, concurrency $CONCURRENCY each"

status=0
while true; do
    running=0
    for pid in "${CLIENT_PIDS[@]}"; do
        if kill -0 "$pid" 2>/dev/null; then running=1; fi
    done
    ((running)) || break
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        log "ferrite exited during the load"
        status=1
        break
    fi
    sample
    sleep "$SAMPLE_S"
done
for i in "${!CLIENT_PIDS[@]}"; do
    if ! wait "${CLIENT_PIDS[$i]}"; then
        log "perf_analyzer ($([[ $i == 0 ]] && echo http || echo grpc)) failed"
        status=1
    fi
done
CLIENT_PIDS=()
sample
curl -s "http://$(ready_address metrics)/metrics" >"$WORK/metrics.txt" || true

python3 - "$WORK" "$DURATION" "$CONCURRENCY" <<'PY'
import csv, pathlib, re, sys
work, duration, concurrency = pathlib.Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
rows = [line.split("\t") for line in (work / "samples.tsv").read_text().splitlines()[1:]]
rss = [int(r[1]) for r in rows]
fds = [int(r[2]) for r in rows]
print(f"duration {duration} s, concurrency {concurrency} per protocol, {len(rows)} samples")
print(f"RSS start {rss[0] / 1024:.1f} MiB, end {rss[-1] / 1024:.1f} MiB, "
      f"growth {(rss[-1] - rss[0]) / 1024:+.1f} MiB, max {max(rss) / 1024:.1f} MiB")
print(f"open fds start {fds[0]}, end {fds[-1]}, max {max(fds)}")
for protocol in ("http", "grpc"):
    log = (work / f"{protocol}.log").read_text(errors="replace")
    errors = len(re.findall(r"error", log, re.IGNORECASE))
    path = work / f"{protocol}.csv"
    if path.exists():
        with open(path, newline="") as f:
            r = next(csv.DictReader(f))
        print(f"{protocol}: {float(r['Inferences/Second']):.0f} infer/s, "
              f"p50 {int(r['p50 latency'])} us, p99 {int(r['p99 latency'])} us, "
              f"error lines in perf_analyzer output: {errors}")
    else:
        print(f"{protocol}: no result; perf_analyzer output:\n{log[-2000:]}")
metrics = (work / "metrics.txt").read_text() if (work / "metrics.txt").exists() else ""
failures = sum(float(m) for m in re.findall(r'^nv_inference_request_failure\{[^}]*\} (\S+)', metrics, re.M))
print(f"server-counted request failures: {failures:.0f}")
PY
exit "$status"
