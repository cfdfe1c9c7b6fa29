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
#   (no GPU needed to build), with make and with CMake (whose cache must
#   record the target's architecture, 90 for sm_90). With a GPU, both
#   examples' checksums must be `mixc run --device cuda`'s (within 1e-3
#   relative: the same kernels and cuBLASLt products, possibly other
#   algorithms); without one they must stop with the CUDA runtime's reason,
#   not crash or miss a library. The emit and the run both take the default
#   tiles (MIXC_NO_TUNE=1): `mixc run` would take the tuning database's
#   winners for the GPU it runs on, which need not be the target's.
set -eu
mixc=$1
target=$2
spec=$3
shift 3
dir=$(mktemp -d "${TMPDIR:-/tmp}/mixc-emit-build-XXXXXX")
trap 'rm -rf "$dir"' EXIT
if [ "$target" != cpu ]; then
    export MIXC_NO_TUNE=1
fi
"$mixc" emit "$spec" "$@" -o "$dir/project" --target "$target" --seed 1
make -s -C "$dir/project" >"$dir/make.log" 2>&1 || { cat "$dir/make.log"; exit 1; }

# same_checksums A B TOLERANCE: the checksums printed in files A and B agree
same_checksums() {
    grep -o 'checksum=[^ ]*' "$1" | cut -d= -f2 >"$dir/a"
    grep -o 'checksum=[^ ]*' "$2" | cut -d= -f2 >"$dir/b"
    # (set -e does not stop at a failure before the last command of an && list)
    { test -s "$dir/a" && test "$(wc -l <"$dir/a")" -eq "$(wc -l <"$dir/b")"; } ||
        { echo "$(wc -l <"$dir/a") checksums, mixc run printed $(wc -l <"$dir/b")"; return 1; }
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

if command -v cmake >/dev/null; then
    # CMake looks for nvcc on PATH (or CUDACXX); make's default is /usr/local/cuda's
    nvcc=
    if [ -z "${CUDACXX:-}" ] && ! command -v nvcc >/dev/null && [ -x /usr/local/cuda/bin/nvcc ]; then
        nvcc=/usr/local/cuda/bin/nvcc
    fi
    cmake -S "$dir/project" -B "$dir/build" ${nvcc:+"-DCMAKE_CUDA_COMPILER=$nvcc"} >"$dir/cmake.log" 2>&1 &&
        cmake --build "$dir/build" >>"$dir/cmake.log" 2>&1 || { cat "$dir/cmake.log"; exit 1; }
    # the target's architecture (the Makefile's ARCH, sm_NN), not the compiler's default
    arch=$(sed -n 's/^ARCH ?= sm_//p' "$dir/project/Makefile")
    grep -q "^CMAKE_CUDA_ARCHITECTURES:STRING=$arch\$" "$dir/build/CMakeCache.txt" || {
        grep CMAKE_CUDA_ARCHITECTURES "$dir/build/CMakeCache.txt"
        echo "CMake builds for another architecture than sm_$arch"
        exit 1
    }
fi
# both examples find the toolkit's libraries by their run path, not ld.so.conf
if command -v readelf >/dev/null; then
    for example in project/example build/example; do
        test ! -e "$dir/$example" || readelf -d "$dir/$example" | grep -q 'R.*PATH.*/lib' ||
            { readelf -d "$dir/$example"; echo "$example: no run path to the toolkit's libraries"; exit 1; }
    done
fi

gpu=1
"$mixc" run "$spec" "$@" --device cuda --seed 1 >"$dir/run.txt" 2>"$dir/run.err" || gpu=0
if [ "$gpu" = 0 ] && [ -n "${MIXC_REQUIRE_GPU:-}" ] && [ "$MIXC_REQUIRE_GPU" != 0 ]; then
    cat "$dir/run.err"
    echo "mixc run --device cuda failed and MIXC_REQUIRE_GPU is set: failing"
    exit 1
fi
for example in project/example build/example; do # make's, CMake's
    test -x "$dir/$example" || continue
    status=0
    (cd "$dir/project" && "$dir/$example" 1 weights.safetensors) >"$dir/example.txt" 2>"$dir/example.err" ||
        status=$?
    if [ "$gpu" = 0 ]; then
        # no GPU here: the example must have said why it could not start (exit 1; not a
        # missing library, 127, nor a crash)
        cat "$dir/example.err"
        { test "$status" -eq 1 && grep -q -i "cuda\|device\|driver" "$dir/example.err"; } ||
            { echo "$example: exit $status, not 1 with the CUDA runtime's reason"; exit 1; }
        echo "$example: built; no GPU to run on"
        continue
    fi
    test "$status" -eq 0 || { cat "$dir/example.err"; exit 1; }
    cat "$dir/example.txt"
    same_checksums "$dir/example.txt" "$dir/run.txt" 1e-3
    echo "$example: checksums equal mixc run --device cuda's"
done
