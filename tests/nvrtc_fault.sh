#!/bin/sh
# nvrtc_fault.sh MIXC FAKE_NVRTC_DIR SPEC [--set ...]: NVRTC failing to
# compile a kernel (tests/fake_nvrtc.c, loaded by soname from
# FAKE_NVRTC_DIR) makes `mixc compile --cubin` fail with exit 1, a message
# that names the kernel the error is in and carries NVRTC's log, and no
# cubin written. No cache is read: the compile must reach NVRTC.
set -eu
mixc=$1
fake=$2
spec=$3
shift 3
dir=$(mktemp -d "${TMPDIR:-/tmp}/mixc-nvrtc-fault-XXXXXX")
trap 'rm -rf "$dir"' EXIT
status=0
LD_LIBRARY_PATH="$fake${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" MIXC_NO_CACHE=1 FAKE_NVRTC_REPORT="$dir/faulted" \
    "$mixc" compile "$spec" "$@" --cubin "$dir/out.cubin" >"$dir/out" 2>"$dir/err" || status=$?
cat "$dir/err"
test "$status" -eq 1 || { echo "exit status $status, expected 1"; exit 1; }
test -s "$dir/faulted" || { echo "the fake NVRTC was not used"; exit 1; }
grep -q "NVRTC_ERROR_COMPILATION" "$dir/err"
grep -q 'identifier "mx_injected_fault" is undefined' "$dir/err"
# one of the kernels the fake NVRTC faulted is the one mixc names
named=$(grep -o 'in kernel [A-Za-z0-9_]*' "$dir/err" | head -1 | cut -d' ' -f3)
test -n "$named" || { echo "the message names no kernel"; exit 1; }
grep -qx "$named" "$dir/faulted" || { echo "mixc names $named; the fault was in: $(cat "$dir/faulted")"; exit 1; }
test ! -e "$dir/out.cubin" && test ! -e "$dir/out.cubin.tmp"
echo "NVRTC's failure reported in kernel $named"
