#!/usr/bin/env bash
# Fuzzes the request decoders and the configuration parser with cargo-fuzz
# (libFuzzer, AddressSanitizer):
#   ci/fuzz.sh [RUNS] [TARGET...]
# builds every target of fuzz/ (or the named ones) and runs each for RUNS
# executions (default 20000; raise it for a longer campaign), starting from
# the seeds in fuzz/seeds/<target> and the corpus kept in fuzz/corpus/<target>
# (the pbtxt target's corpus also gets the example models' configurations).
# A target that does not build, or a crash, fails the script; libFuzzer writes
# the input that crashed under fuzz/artifacts/<target>/. Every crash becomes a
# regression test twice over: the input goes into fuzz/seeds/<target>/ (every
# run replays the seeds first) and a unit test beside the code that failed.
# cargo-fuzz needs nightly flags: RUSTC_BOOTSTRAP=1 lets the stable
# toolchain accept them.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RUNS="${1:-20000}"
shift || true

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
export RUSTC_BOOTSTRAP=1

cd "$ROOT/fuzz"
if (($#)); then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
fi

mkdir -p corpus/pbtxt
for config in "$ROOT"/examples/models/*/config.pbtxt; do
    cp "$config" "corpus/pbtxt/$(basename "$(dirname "$config")").pbtxt"
done

printf '\n==> cargo fuzz build (%s)\n' "${targets[*]}"
for target in "${targets[@]}"; do
    if ! cargo fuzz build -O "$target"; then
        printf '\n==> fuzzing FAILED: the fuzz target %s does not build\n' "$target"
        exit 1
    fi
done

failed=()
for target in "${targets[@]}"; do
    printf '\n==> fuzz %s (%s runs)\n' "$target" "$RUNS"
    corpus="corpus/$target"
    mkdir -p "$corpus" "seeds/$target"
    if ! cargo fuzz run -O "$target" "$corpus" "seeds/$target" -- \
        -runs="$RUNS" -max_len=65536 -rss_limit_mb=4096 -print_final_stats=1; then
        failed+=("$target")
    fi
done

if ((${#failed[@]})); then
    printf '\n==> fuzzing FAILED: %s (crashing inputs under fuzz/artifacts/)\n' "${failed[*]}"
    exit 1
fi
printf '\n==> fuzzing passed: %s\n' "${targets[*]}"
