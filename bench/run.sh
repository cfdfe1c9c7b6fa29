#!/usr/bin/env bash
# run.sh: everything GPU-side in one command, on a machine with a GPU:
# build (Release, no sanitizers: ASan and the CUDA driver do not mix), the
# ctest label "gpu" (MIXC_REQUIRE_GPU=1: a missing GPU fails, not skips),
# bench_scan, its peer mamba_ssm at the same shapes (bench/scan_peer.py; the
# peer built from .deps/ while mixc builds), bench_model (MIXC_DEBUG=2:
# every group's time and % of floor), bench/torch_ref.py for both models,
# and last, as the budget allows, tuned against default. Results:
# bench/results/*.json, logs under bench/results/logs/ (run.log: all the
# output); when $OUT is set, after every step the results this run wrote
# and the logs go there as bench.tgz, with run.log beside it, so that a run
# cut short still leaves what it measured. Each step has a time limit, and all of them
# together a budget (MIXC_BENCH_BUDGET seconds from the start, default 570:
# a lent GPU machine runs one command for at most 10 minutes); a step that
# fails or runs out of time is logged, the others still run (while the
# budget lasts), and the exit status is 1 if any failed.
#
#   bash bench/run.sh            (from anywhere; it works in the repository)
#   bash bench/run.sh --smoke    the same steps without a GPU: the benchmarks
#                                on the host emulation at small sizes
#                                (--smoke), the peer built for sm_90 but not
#                                run, torch_ref.py on the CPU against them,
#                                results in build-bench/bench-smoke; checks
#                                this script, measures nothing
#
# From a registry (bench/fetch.sh, run where one answers, fills .deps/):
# cJSON, used from the system when installed, else from .deps/*.deb,
# unpacked into .deps/root; mamba_ssm's source distribution for the peer.
#   bash bench/run.sh --only bench_scan_tune,bench_model_tune
#                                those steps alone (a second call on a warm
#                                machine, after the budget cut the first)
set -euo pipefail
smoke=0
only=
usage="usage: bash bench/run.sh [--smoke] [--only STEP,...]  (bench/README.md)"
while [ $# -gt 0 ]; do
    case "$1" in
        --smoke) smoke=1 ;;
        --only) [ $# -ge 2 ] || { echo "$usage" >&2; exit 2; }; only=",$2,"; shift ;;
        *) echo "$usage" >&2; exit 2 ;;
    esac
    shift
done
STEPS=",ctest-gpu,bench_scan,peer_scan,bench_model,torch_tsm2,torch_vim2,bench_scan_tune,bench_model_tune,"
for name in $(echo "${only//,/ }"); do
    case "$STEPS" in *",$name,"*) ;; *) echo "run.sh: no step '$name': the steps are ${STEPS:1:-1}" >&2; exit 2 ;; esac
done
# wanted NAME: the step is to run (no --only, or named there)
wanted() { [ -z "$only" ] || [[ "$only" == *",$1,"* ]]; }
START=$SECONDS
BUDGET=${MIXC_BENCH_BUDGET:-570}
cd "$(dirname "$0")/.."
ROOT=$(pwd)
LOGS=bench/results/logs
rm -rf "$LOGS" && mkdir -p "$LOGS"
touch "$LOGS/.start" # what this run wrote is newer
status=0
# Everything the script and its steps print goes to run.log too: a caller
# that keeps only the end of the output still gets every step's outcome.
exec > >(tee -a "$LOGS/run.log") 2>&1
export PYTHONUNBUFFERED=1

say() { printf '== %s: %s\n' "$(date -u +%H:%M:%S)" "$*"; }

# The results so far into $OUT (when set), as one archive, bench.tgz: the
# result files this run wrote (results/) and the logs. A lent machine
# returns a handful of files, so not one per result; run.log beside it.
save_results() {
    [ -n "${OUT:-}" ] || return 0
    mkdir -p "$LOGS/results"
    find "${RESULTS:-bench/results}" -maxdepth 1 \( -name '*.json' -o -name '*.jsonl' \) -newer "$LOGS/.start" \
        -exec cp {} "$LOGS/results/" \; 2>/dev/null || true
    tar czf "$OUT/bench.tgz.part" -C bench/results logs 2>/dev/null && mv "$OUT/bench.tgz.part" "$OUT/bench.tgz" || true
    cp "$LOGS/run.log" "$OUT/run.log" 2>/dev/null || true
}

# The seconds of the budget a step may still take (15 kept for the end).
budget_left() { echo $((BUDGET - (SECONDS - START) - 15)); }

# step NAME LIMIT_S COMMAND...: runs COMMAND with a time limit (cut to what
# is left of the budget), its output shown and logged to $LOGS/NAME.log; a
# failure is remembered, not fatal.
step() {
    local name=$1 limit=$2
    shift 2
    wanted "$name" || return 0
    local left
    left=$(budget_left)
    if [ "$left" -lt 10 ]; then
        say "$name: skipped, the budget of ${BUDGET} s is spent"
        status=1
        return
    fi
    [ "$limit" -le "$left" ] || limit=$left
    say "$name (at most ${limit} s)"
    local rc=0
    timeout --kill-after=10 "$limit" "$@" 2>&1 | tee "$LOGS/$name.log" || rc=$?
    if [ "$rc" -eq 124 ]; then
        say "$name: out of time after ${limit} s"
    elif [ "$rc" -ne 0 ]; then
        say "$name: failed (exit $rc)"
    else
        say "$name: passed"
    fi
    [ "$rc" -eq 0 ] || status=1
    save_results
}

cmake_args=(-DCMAKE_BUILD_TYPE=Release)
command -v make >/dev/null || cmake_args+=(-G Ninja) # CMake's default generator needs make
if ! ls /usr/lib/*/cmake/cJSON/cJSONConfig.cmake >/dev/null 2>&1; then
    debs=(.deps/libcjson*.deb)
    [ -e "${debs[0]}" ] || { echo "run.sh: no cJSON: install libcjson-dev or put its .debs in .deps/" >&2; exit 1; }
    rm -rf .deps/root && mkdir -p .deps/root
    for f in "${debs[@]}"; do dpkg -x "$f" .deps/root; done
    # The package's CMake files name /usr: point them at the unpacked tree.
    sed -i "s#\"/usr#\"$ROOT/.deps/root/usr#g" .deps/root/usr/lib/*/cmake/cJSON/*.cmake
    cmake_args+=(-DCMAKE_PREFIX_PATH="$ROOT/.deps/root/usr")
    libdirs=$(printf '%s:' "$ROOT"/.deps/root/usr/lib/*)
    export LD_LIBRARY_PATH="${libdirs}${LD_LIBRARY_PATH:-}"
fi

# The peer compiles (nvcc, about 20 s) while mixc builds.
MAMBA_SSM=.deps/mamba_ssm-2.3.2.post1.tar.gz
NVCC_BIN=$(command -v nvcc || ls /usr/local/cuda/bin/nvcc /usr/local/cuda-*/bin/nvcc 2>/dev/null | head -1 || true)
peer_pid=
if ! wanted peer_scan && ! wanted torch_tsm2 && ! wanted torch_vim2; then
    :
elif [ -f "$MAMBA_SSM" ] && [ -n "$NVCC_BIN" ]; then
    # the GPU's architecture (9.0 -> sm_90); sm_90 without one (--smoke)
    arch=sm_$( (nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null || true) | head -1 | tr -d ' .')
    [ "$smoke" -eq 0 ] && [ "$arch" != sm_ ] || arch=sm_90
    say "build the mamba_ssm peer for $arch (build-bench/mamba_ssm/, log $LOGS/peer_build.log)"
    PATH="$(dirname "$NVCC_BIN"):$PATH" timeout 150 bash bench/mamba_ssm/build.sh "$MAMBA_SSM" build-bench/mamba_ssm "$arch" \
        >"$LOGS/peer_build.log" 2>&1 &
    peer_pid=$!
else
    say "mamba_ssm peer: not built (needs $MAMBA_SSM from bench/fetch.sh, and nvcc)"
    status=1
fi

say "build (Release, build-bench/)"
cmake -S . -B build-bench "${cmake_args[@]}" >"$LOGS/cmake.log" 2>&1 \
    || { tail -40 "$LOGS/cmake.log"; save_results; exit 1; }
cmake --build build-bench -j"$(nproc)" --target mixc test_gpu bench_scan bench_model >"$LOGS/build.log" 2>&1 \
    || { tail -40 "$LOGS/build.log"; save_results; exit 1; }

export MIXC_CACHE_DIR="$ROOT/build-bench/kernel-cache"
bench_flags=()
torch_flags=()
if [ "$smoke" -eq 1 ]; then
    export MIXC_BENCH_RESULTS="$ROOT/build-bench/bench-smoke"
    mkdir -p "$MIXC_BENCH_RESULTS"
    bench_flags=(--smoke)
    torch_flags=(--device cpu --no-compile)
else
    export MIXC_REQUIRE_GPU=1
fi
RESULTS=${MIXC_BENCH_RESULTS:-bench/results}
torch_flags+=(--results "$RESULTS")
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,clocks.max.sm,temperature.gpu --format=csv \
    >"$LOGS/nvidia-smi.csv" 2>&1 || true
build-bench/mixc --version >"$LOGS/version.log" 2>&1 || true

step ctest-gpu 150 ctest --test-dir build-bench -L gpu --output-on-failure
step bench_scan 90 build-bench/bench/bench_scan "${bench_flags[@]}"
if [ -n "$peer_pid" ]; then
    if wait "$peer_pid"; then
        if [ "$smoke" -eq 0 ]; then
            step peer_scan 120 python3 bench/scan_peer.py --peer build-bench/mamba_ssm/peer_scan \
                --results "$RESULTS" --after "$LOGS/.start" --sdist "$(basename "$MAMBA_SSM")"
            # the PyTorch models' scan: mamba_ssm's kernel, as its users run it
            torch_flags+=(--peer-lib build-bench/mamba_ssm/libpeer_scan.so)
        else
            say "mamba_ssm peer built; not run (--smoke: no GPU)"
        fi
    else
        say "mamba_ssm peer: the build failed:"
        tail -20 "$LOGS/peer_build.log"
        status=1
    fi
fi
step bench_model 150 env MIXC_DEBUG=2 build-bench/bench/bench_model "${bench_flags[@]}"
# torch_ref.py builds each model with the overrides bench_model recorded in
# its -io file, and loads bench_model's weights strictly: a name or shape
# that differs from mixc's fails there.
if ! wanted torch_tsm2 && ! wanted torch_vim2; then
    :
elif [ -f "$RESULTS/vim2-tiny-io.safetensors" ]; then
    step torch_tsm2 120 python3 bench/torch_ref.py --model tsm2-etth1 "${torch_flags[@]}"
    step torch_vim2 180 python3 bench/torch_ref.py --model vim2-tiny "${torch_flags[@]}"
else
    say "torch_ref.py: skipped (bench_model wrote no outputs to compare with)"
    status=1
fi
# Tuning (docs/tune.md): each scan shape's and model's kernels searched on
# this GPU, then default against tuned; a database of their own, kept with
# the results. Last: the lowest priority within the budget.
export MIXC_TUNE_DB="$ROOT/$RESULTS/tune_db.jsonl"
[ "${RESULTS:0:1}" != / ] || MIXC_TUNE_DB="$RESULTS/tune_db.jsonl"
tune_scan=25 tune_model=60
[ "$smoke" -eq 0 ] || tune_scan=4 tune_model=8
# A tuning step needs its searches (4 shapes, 2 models) and their compiles
# and timing; one the budget cannot hold is left for a call of its own
# (--only), not started to be cut off, and not counted as a failure.
tune_step() {
    local name=$1 need=$2
    shift 2
    wanted "$name" || return 0
    local left
    left=$(budget_left)
    if [ "$left" -lt "$need" ]; then
        say "$name: not started: it needs about ${need} s, ${left} s are left (bash bench/run.sh --only $name)"
        return 0
    fi
    step "$name" "$need" "$@"
}
tune_step bench_scan_tune $((4 * tune_scan + 60)) build-bench/bench/bench_scan "${bench_flags[@]}" --tune $tune_scan
tune_step bench_model_tune $((2 * tune_model + 80)) build-bench/bench/bench_model "${bench_flags[@]}" --tune $tune_model

say "done in $((SECONDS - START)) s, exit $status"
find "$RESULTS" -maxdepth 1 -name '*.json*' -newer "$LOGS/.start" | sort | sed 's/^/wrote /'
save_results
exit $status
