#!/usr/bin/env bash
# run.sh: everything GPU-side in one command, on a machine with a GPU:
# build (Release, no sanitizers: ASan and the CUDA driver do not mix), the
# ctest label "gpu" (MIXC_REQUIRE_GPU=1: a missing GPU fails, not skips),
# bench_scan, bench_model (MIXC_DEBUG=2: every group's time and % of floor)
# and bench/torch_ref.py for both models. Results: bench/results/*.json, and
# logs under bench/results/logs/; copied to $OUT (the JSON, logs.tgz) when
# that is set.
#
#   bash bench/run.sh            (from the repository root)
#
# cJSON: used from the system when installed; else from .deps/*.deb
# (libcjson1, libcjson-dev: `apt-get download` them into .deps/ on a machine
# with a registry), unpacked into .deps/root.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
LOGS=bench/results/logs
mkdir -p "$LOGS"
status=0

cmake_args=(-DCMAKE_BUILD_TYPE=Release)
if ! ls /usr/lib/*/cmake/cJSON/cJSONConfig.cmake >/dev/null 2>&1; then
    debs=(.deps/libcjson*.deb)
    [ -e "${debs[0]}" ] || { echo "run.sh: no cJSON: install libcjson-dev or put its .debs in .deps/" >&2; exit 1; }
    rm -rf .deps/root && mkdir -p .deps/root
    for f in "${debs[@]}"; do dpkg -x "$f" .deps/root; done
    # The package's CMake files name /usr: point them at the unpacked tree.
    sed -i "s#\"/usr#\"$ROOT/.deps/root/usr#g" .deps/root/usr/lib/*/cmake/cJSON/*.cmake
    cmake_args+=(-DCMAKE_PREFIX_PATH="$ROOT/.deps/root/usr")
    export LD_LIBRARY_PATH="$(echo "$ROOT"/.deps/root/usr/lib/*):${LD_LIBRARY_PATH:-}"
fi

cmake -S . -B build-bench "${cmake_args[@]}" >"$LOGS/cmake.log"
cmake --build build-bench -j"$(nproc)" --target mixclib test_gemm test_gpu bench_scan bench_model >"$LOGS/build.log" 2>&1 \
    || { tail -40 "$LOGS/build.log"; exit 1; }

export MIXC_REQUIRE_GPU=1 MIXC_CACHE_DIR="$ROOT/build-bench/kernel-cache"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu --format=csv >"$LOGS/nvidia-smi.csv" 2>&1 || true
ctest --test-dir build-bench -L gpu --output-on-failure 2>&1 | tee "$LOGS/ctest-gpu.log" || status=1
build-bench/bench/bench_scan 2>&1 | tee "$LOGS/bench_scan.log" || status=1
MIXC_DEBUG=2 build-bench/bench/bench_model 2>&1 | tee "$LOGS/bench_model.log" || status=1
if [ -f bench/results/vim2-tiny-io.safetensors ]; then
    PYTHONUNBUFFERED=1 python3 bench/torch_ref.py --check-names models/vim2-tiny.json --set batch=64 \
        --weights bench/results/vim2-tiny.safetensors 2>&1 | tee "$LOGS/torch_names.log" || status=1
    PYTHONUNBUFFERED=1 python3 bench/torch_ref.py --model tsm2-etth1 --set batch=32 2>&1 | tee "$LOGS/torch_tsm2.log" || status=1
    PYTHONUNBUFFERED=1 python3 bench/torch_ref.py --model vim2-tiny --set batch=64 --set input.image_size=224 \
        2>&1 | tee "$LOGS/torch_vim2.log" || status=1
fi

if [ -n "${OUT:-}" ]; then
    cp bench/results/*.json "$OUT"/ 2>/dev/null || true
    tar czf "$OUT/logs.tgz" -C bench/results logs || true
fi
ls -l bench/results/*.json 2>/dev/null || true
exit $status
