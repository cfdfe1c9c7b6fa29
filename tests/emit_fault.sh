#!/bin/sh
# emit_fault.sh MIXC FAKE_LLVM SPEC [--set ...]: LLVM failing while `mixc
# emit --target cpu` compiles its kernels (tests/fake_llvm.c, preloaded: the
# module does not verify, the optimiser fails, code generation fails) exits
# 1 with the message the cpu device gives (the model named, LLVM's words)
# and leaves no folder, not even a temp one beside it.
set -eu
mixc=$1
fake=$2
spec=$3
shift 3
dir=$(mktemp -d "${TMPDIR:-/tmp}/mixc-emit-fault-XXXXXX")
trap 'rm -rf "$dir"' EXIT
# Under AddressSanitizer the preloaded library comes before its runtime: allowed here.
asan="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0"
for fault in verify optimise emit; do
    status=0
    LD_PRELOAD="$fake" ASAN_OPTIONS="$asan" FAKE_LLVM_FAULT=$fault MIXC_NO_CACHE=1 \
        "$mixc" emit "$spec" "$@" -o "$dir/project" --target cpu >"$dir/out" 2>"$dir/err" || status=$?
    cat "$dir/err"
    test "$status" -eq 1 || { echo "$fault: exit status $status, expected 1"; exit 1; }
    grep -q "compiling its kernels for the CPU.*injected LLVM fault" "$dir/err" ||
        { echo "$fault: the message names no model or lacks LLVM's words"; exit 1; }
    test "$(ls "$dir")" = "$(printf 'err\nout')" || { echo "$fault: left behind: $(ls "$dir")"; exit 1; }
    echo "$fault: reported, nothing written"
done
