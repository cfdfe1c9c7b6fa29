#!/bin/sh
# The kernel cache and output files under faults (docs/reliability.md):
#   1. mixc compile --cubin and mixc save-weights killed with SIGKILL at
#      staggered moments: the outputs (one cubin per NVRTC program: S.0.cubin,
#      S.1.cubin, ... for --cubin S.cubin) are absent or whole, the cache
#      holds only whole entries, and the next run succeeds with the same
#      result;
#   2. a FIFO, then a truncated file, at an entry's path: the compile neither
#      blocks nor fails; MIXC_DEBUG=1 names the entry and what is wrong;
#   3. 8 processes at once (4 compiles, 4 runs under emulation) on one cache
#      directory: identical results and a cache whose entries all read back.
# Usage: reliability_cache.sh MIXC MODELS_DIR
set -u

mixc=$1
model=$2/mamba-block.json
small="--set input.length=12 --set stages[0].width=8"
. "$(dirname "$0")/faults.sh"

# compile STEM: --cubin $work/STEM.cubin, which writes $work/STEM.Q.cubin per program Q.
# shellcheck disable=SC2086
compile() { timeout 120 "$mixc" compile "$model" $small --cubin "$work/$1.cubin" >/dev/null 2>"$work/stderr"; }

# The reference cubins, and the cache they leave.
check "cold compile" compile want
check "one cubin per program" test -s "$work/want.0.cubin"
for entry in "$MIXC_CACHE_DIR"/*.cubin; do break; done # one of the entries

# whole STEM [absent]: every program's cubin of STEM equals the reference's
# (with "absent": or does not exist).
whole() {
    for want in "$work"/want.*.cubin; do
        got="$work/$1.${want#"$work/want."}"
        [ "${2:-}" = absent ] && [ ! -e "$got" ] && continue
        cmp -s "$got" "$want" || return 1
    done
}

debug_compile() { (MIXC_DEBUG=1 && export MIXC_DEBUG && compile "$1"); }

# Every entry reads back: a compile at MIXC_DEBUG=1 reports no cache problem.
cache_clean() {
    debug_compile again && ! grep -q "kernel cache" "$work/stderr" && whole again
}

# 1. SIGKILL while compiling (NVRTC), storing the entry and writing the output.
for delay in 0.05 0.2 0.4 0.6 0.8 1.0 1.3; do
    rm -rf "$MIXC_CACHE_DIR" "$work"/out.*
    # shellcheck disable=SC2086
    killed "$delay" "$mixc" compile "$model" $small --cubin "$work/out.cubin"
    check "outputs after SIGKILL at ${delay}s are absent or whole" whole out absent
    check "cache after SIGKILL at ${delay}s" cache_clean
done

# ... and while writing an output file (154 MB of weights: the write takes a
# good part of the 0.4 s). A leftover temporary file must not trip the next run.
weights=$2/vim2-small.json
check "weights written" "$mixc" save-weights "$weights" "$work/want.safetensors" >/dev/null
for delay in 0.1 0.2 0.3; do
    rm -f "$work/out.safetensors"
    killed "$delay" "$mixc" save-weights "$weights" "$work/out.safetensors"
    check "weights after SIGKILL at ${delay}s are absent or whole" \
        sh -c "[ ! -e '$work/out.safetensors' ] || cmp -s '$work/out.safetensors' '$work/want.safetensors'"
done
check "weights written again after the kills" "$mixc" save-weights "$weights" "$work/out.safetensors" >/dev/null
check "and whole" cmp -s "$work/out.safetensors" "$work/want.safetensors"
rm -f "$work"/*.safetensors*

# 2. A FIFO at the entry's path must not block; a truncated entry is rebuilt.
rm -f "$entry"
mkfifo "$entry"
check "FIFO at a cache entry: no hang" debug_compile f
check "FIFO at a cache entry: reported" grep -q "not a regular file" "$work/stderr"
check "FIFO replaced by an entry" cache_clean
# (read only a regular file: a FIFO left by a failed replacement would block)
[ -f "$entry" ] && [ ! -p "$entry" ] && head -c 100 "$entry" >"$work/part" && mv "$work/part" "$entry"
check "truncated entry: compiled again" debug_compile t
check "truncated entry: reported" grep -q "compiling again" "$work/stderr"
check "truncated entry: rebuilt" cache_clean

# 3. Eight processes on one fresh cache directory.
rm -rf "$MIXC_CACHE_DIR"
for i in 1 2 3 4; do
    # shellcheck disable=SC2086
    timeout 300 "$mixc" compile "$model" $small --cubin "$work/p$i.cubin" >/dev/null 2>"$work/c$i.err" &
    # shellcheck disable=SC2086
    timeout 300 "$mixc" run "$model" $small --device emu >"$work/r$i.out" 2>"$work/r$i.err" &
done
wait
for i in 1 2 3 4; do
    check "parallel compile $i" whole "p$i"
    check "parallel run $i" cmp -s "$work/r$i.out" "$work/r1.out"
done
check "parallel runs printed a result" grep -q checksum "$work/r1.out"
check "parallel: no temporary files left" sh -c "! ls '$MIXC_CACHE_DIR' | grep -q tmp"
check "parallel: cache consistent" cache_clean

summary
