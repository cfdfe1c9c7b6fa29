#!/bin/sh
# llvm_fault.sh MIXC FAKE_LLVM SPEC [--set ...]: LLVM failing while the cpu
# device compiles the kernels (tests/fake_llvm.c, preloaded: the module does
# not verify, the optimiser fails, code generation fails) makes
# `mixc run --device cpu` exit 1 with a message that names the model and
# carries LLVM's words, leaves nothing in the object cache, and the next run
# without the fault compiles and gives what a run that never faulted gave.
set -eu
mixc=$1
fake=$2
spec=$3
shift 3
dir=$(mktemp -d "${TMPDIR:-/tmp}/mixc-llvm-fault-XXXXXX")
trap 'rm -rf "$dir"' EXIT
# Under AddressSanitizer the preloaded library comes before its runtime: allowed here.
asan="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0"
MIXC_CACHE_DIR="$dir/cache" "$mixc" run "$spec" "$@" --device cpu >"$dir/want" 2>&1
for fault in verify optimise emit; do
    export MIXC_CACHE_DIR="$dir/cache-$fault"
    status=0
    LD_PRELOAD="$fake" ASAN_OPTIONS="$asan" FAKE_LLVM_FAULT=$fault \
        "$mixc" run "$spec" "$@" --device cpu >"$dir/out" 2>"$dir/err" || status=$?
    cat "$dir/err"
    test "$status" -eq 1 || { echo "$fault: exit status $status, expected 1"; exit 1; }
    grep -q "injected LLVM fault" "$dir/err" || { echo "$fault: LLVM's words are not in the message"; exit 1; }
    grep -q "compiling its kernels for the CPU" "$dir/err" || { echo "$fault: the message names no model"; exit 1; }
    ! grep -q checksum "$dir/out" || { echo "$fault: printed outputs"; exit 1; }
    MIXC_DEBUG=1 "$mixc" run "$spec" "$@" --device cpu >"$dir/out" 2>"$dir/err"
    grep -q "compiled (LLVM" "$dir/err" || { echo "$fault: the failed compile left an object in the cache"; exit 1; }
    test "$(grep checksum "$dir/out" | sed 's/ *min=.*//')" = "$(grep checksum "$dir/want" | sed 's/ *min=.*//')" ||
        { echo "$fault: the next run's outputs differ from an unfaulted run's"; cat "$dir/out" "$dir/want"; exit 1; }
    echo "$fault: reported, nothing cached, the next run right"
done
