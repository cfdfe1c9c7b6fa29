#!/bin/sh
# Builds the fuzz targets with clang (libFuzzer, ASan, UBSan) in BUILD and
# runs each for SECONDS (as many at once as there are cores), from its corpus (kept in BUILD/corpus/<name>) and
# its seeds. A crash, hang or sanitizer report stops with the input saved
# under BUILD/findings/ and a non-zero exit; fix it, then add the input to
# tests/fuzz-regressions/<name>/ so that the normal build replays it.
# Usage: fuzz/run.sh [BUILD [SECONDS [TARGET...]]]   (docs/reliability.md)
set -eu

build=${1:-build-fuzz}
seconds=${2:-60}
[ $# -gt 0 ] && shift
[ $# -gt 0 ] && shift
cc=${FUZZ_CC:-$(command -v clang-19 || command -v clang-14 || command -v clang || true)}
if [ -z "$cc" ]; then
    echo "fuzz/run.sh: no clang (libFuzzer needs it): apt-get install clang libclang-rt-dev, or set FUZZ_CC" >&2
    exit 1
fi
root=$(cd "$(dirname "$0")/.." && pwd)

cmake -S "$root" -B "$build" -DCMAKE_C_COMPILER="$cc" -DMIXC_FUZZ=ON >/dev/null
cmake --build "$build" --target fuzzers -j"$(nproc)" >/dev/null

# The seeds of each target: inputs the tests already hold.
seeds() {
    case $1 in
    spec | codegen) echo "$root/models $root/fuzz/seeds/spec" ;;
    ir) echo "$root/tests/ir $root/tests/bad $root/tests/passes" ;;
    tensorfile) echo "$root/fuzz/seeds/tensorfile $root/fuzz/seeds/safetensors" ;;
    *) [ -d "$root/fuzz/seeds/$1" ] && echo "$root/fuzz/seeds/$1" ;;
    esac
}

# run_one TARGET: fuzzes it for SECONDS; prints one line; fails on a finding.
run_one() {
    t=$1
    corpus="$build/corpus/$t"
    mkdir -p "$corpus"
    dict=""
    [ -f "$root/fuzz/$t.dict" ] && dict="-dict=$root/fuzz/$t.dict"
    log="$build/findings/$t.log"
    # shellcheck disable=SC2046,SC2086
    if "$build/fuzz/fuzz_$t" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=4096 \
        -print_final_stats=1 -artifact_prefix="$build/findings/$t-" $dict \
        "$corpus" $(seeds "$t") >"$log" 2>&1; then
        execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
        echo "fuzz $t: ${seconds} s, $execs runs, corpus $(ls "$corpus" | wc -l) inputs, no finding"
    else
        echo "fuzz $t: FINDING (log: $log)"
        grep -E "^(==[0-9]+==ERROR|SUMMARY|fuzz:|artifact_prefix|Test unit written)" "$log" | head -8
        return 1
    fi
}

# As many targets at once as there are cores (FUZZ_JOBS), each on its own core.
targets=${*:-$(cd "$build/fuzz" && ls fuzz_* | sed 's/^fuzz_//')}
jobs=${FUZZ_JOBS:-$(nproc)}
mkdir -p "$build/findings"
running=0
for t in $targets; do
    { run_one "$t" >"$build/findings/$t.summary" 2>&1; echo $? >"$build/findings/$t.status"; } &
    running=$((running + 1))
    if [ "$running" -ge "$jobs" ]; then
        wait
        running=0
    fi
done
wait
status=0
for t in $targets; do
    cat "$build/findings/$t.summary"
    [ "$(cat "$build/findings/$t.status")" = 0 ] || status=1
done
exit $status
