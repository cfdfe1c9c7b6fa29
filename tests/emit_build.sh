#!/bin/sh
# emit_build.sh MIXC SPEC [--set PATH=VALUE ...]: the project `mixc emit`
# writes for SPEC builds with its own Makefile (nvcc and the host compiler:
# no GPU needed to build), and its example runs. With a GPU, the example's
# checksums must be `mixc run --device cuda`'s (within 1e-3 relative: the
# same kernels and cuBLASLt products, possibly other algorithms); without
# one it must stop with the CUDA runtime's reason, not crash.
set -eu
mixc=$1
spec=$2
shift 2
dir=$(mktemp -d "${TMPDIR:-/tmp}/mixc-emit-build-XXXXXX")
trap 'rm -rf "$dir"' EXIT
"$mixc" emit "$spec" "$@" -o "$dir/project" --target sm_90 --seed 1
make -s -C "$dir/project" >"$dir/make.log" 2>&1 || { cat "$dir/make.log"; exit 1; }
status=0
(cd "$dir/project" && ./example 1 weights.safetensors) >"$dir/example.txt" 2>"$dir/example.err" || status=$?
if ! "$mixc" run "$spec" "$@" --device cuda --seed 1 >"$dir/run.txt" 2>"$dir/run.err"; then
    # no GPU here: the example must have said why it could not start
    cat "$dir/example.err"
    test "$status" -eq 1 && grep -q -i "cuda\|device\|driver" "$dir/example.err"
    echo "built; no GPU to run on (example: $(cat "$dir/example.err"))"
    exit 0
fi
test "$status" -eq 0 || { cat "$dir/example.err"; exit 1; }
cat "$dir/example.txt"
# the checksums of each output, side by side
grep -o 'checksum=[^ ]*' "$dir/example.txt" | cut -d= -f2 >"$dir/a"
grep -o 'checksum=[^ ]*' "$dir/run.txt" | cut -d= -f2 >"$dir/b"
test -s "$dir/a" && test "$(wc -l <"$dir/a")" -eq "$(wc -l <"$dir/b")"
paste "$dir/a" "$dir/b" | awk '{ d = $1 - $2; if (d < 0) d = -d; s = $2 < 0 ? -$2 : $2;
    if (s < 1) s = 1; if (d / s > 1e-3) { print "checksum " $1 " != mixc run " $2; bad = 1 } }
    END { exit bad }'
