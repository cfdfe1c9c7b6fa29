#!/bin/sh
# emit_build.sh MIXC TARGET SPEC [--set PATH=VALUE ...]: the project `mixc
# emit --target TARGET` writes for SPEC builds with its own Makefile, and its
# example runs.
#   TARGET cpu: the CPU project (kernels.*.o, the objects the cpu device runs,
#   and C around it), built with make alone (plain C products) and with
#   CMake (CBLAS products when a CBLAS is found); both examples' checksums
#   must be `mixc run --device cpu`'s within 1e-4 relative: the same machine
#   code for the kernels, products possibly summed in another order.
#   TARGET sm_90: the CUDA project, built with nvcc and the host compiler
#   (no GPU needed to build). With a GPU, the example's checksums must be
#   `mixc run --device cuda`'s (within 1e-3 relative: the same kernels and
#   cuBLASLt products, possibly other algorithms); without one it must stop
#   with the CUDA runtime's reason, not crash.
set -eu
mixc=$1
target=$2
spec=$3
shift 3
dir=$(mktemp -d "${TMPDIR:-/tmp}/mixc-emit-build-XXXXXX")
trap 'rm -rf "$dir"' EXIT
"$mixc" emit "$spec" "$@" -o "$dir/project" --target "$target" --seed 1
make -s -C "$dir/project" >"$dir/make.log" 2>&1 || { cat "$dir/make.log"; exit 1; }

# same_checksums A B TOLERANCE: the checksums printed in files A and B agree
same_checksums() {
    grep -o 'checksum=[^ ]*' "$1" | cut -d= -f2 >"$dir/a"
    grep -o 'checksum=[^ ]*' "$2" | cut -d= -f2 >"$dir/b"
    test -s "$dir/a" && test "$(wc -l <"$dir/a")" -eq "$(wc -l <"$dir/b")"
    paste "$dir/a" "$dir/b" | awk -v tol="$3" '{ d = $1 - $2; if (d < 0) d = -d; s = $2 < 0 ? -$2 : $2;
        if (s < 1) s = 1; if (d / s > tol) { print "checksum " $1 " != mixc run " $2; bad = 1 } }
        END { exit bad }'
}

if [ "$target" = cpu ]; then
    "$mixc" run "$spec" "$@" --device cpu --seed 1 >"$dir/run.txt"
    (cd "$dir/project" && ./example 1 weights.safetensors) >"$dir/example.txt"
    cat "$dir/example.txt"
    same_checksums "$dir/example.txt" "$dir/run.txt" 1e-4
    if command -v cmake >/dev/null; then
        cmake -S "$dir/project" -B "$dir/build" >"$dir/cmake.log" 2>&1 &&
            cmake --build "$dir/build" >>"$dir/cmake.log" 2>&1 || { cat "$dir/cmake.log"; exit 1; }
        (cd "$dir/project" && "$dir/build/example" 1 weights.safetensors) >"$dir/cmake.txt"
        same_checksums "$dir/cmake.txt" "$dir/run.txt" 1e-4
    fi
    # make built the static library, lib<the model's C prefix>.a
    test -s "$dir/project/lib$(sed -n 's/^typedef struct \([A-Za-z0-9_]*\)_model .*/\1/p' "$dir/project/model.h").a"
    echo "checksums equal mixc run --device cpu's"
    exit 0
fi

status=0
(cd "$dir/project" && ./example 1 weights.safetensors) >"$dir/example.txt" 2>"$dir/example.err" || status=$?
if ! "$mixc" run "$spec" "$@" --device cuda --seed 1 >"$dir/run.txt" 2>"$dir/run.err"; then
    # no GPU here: the example must have said why it could not start
    cat "$dir/example.err"
    if [ -n "${MIXC_REQUIRE_GPU:-}" ] && [ "$MIXC_REQUIRE_GPU" != 0 ]; then
        cat "$dir/run.err"
        echo "mixc run --device cuda failed and MIXC_REQUIRE_GPU is set: failing"
        exit 1
    fi
    test "$status" -eq 1 && grep -q -i "cuda\|device\|driver" "$dir/example.err"
    echo "built; no GPU to run on (example: $(cat "$dir/example.err"))"
    exit 0
fi
test "$status" -eq 0 || { cat "$dir/example.err"; exit 1; }
cat "$dir/example.txt"
same_checksums "$dir/example.txt" "$dir/run.txt" 1e-3
