#!/usr/bin/env bash
# build.sh: builds peer_scan, mamba_ssm's forward scan behind a small
# harness (peer_scan.cu), from the package's source distribution, with nvcc
# alone: no PyTorch, no Python build. The package's csrc/selective_scan is
# unpacked from the sdist; c10_shim.h stands in for the PyTorch headers it
# includes. The nvcc flags are the package's own (its setup.py) for one
# architecture. The two storage types compile at once. Also builds
# libpeer_scan.so, the same kernel behind peer.h's C call, for
# torch_ref.py --peer-lib.
#
#   bash bench/mamba_ssm/build.sh SDIST.tar.gz OUTDIR [ARCH]
#
# ARCH: an nvcc -arch value, by default "native" (the GPU of this machine;
# without one, name it: sm_90). Writes OUTDIR/peer_scan and
# OUTDIR/libpeer_scan.so.
set -euo pipefail
[ $# -ge 2 ] && [ $# -le 3 ] || { echo "usage: bash bench/mamba_ssm/build.sh SDIST.tar.gz OUTDIR [ARCH]" >&2; exit 2; }
sdist=$1 out=$2 arch=${3:-native}
[ -f "$sdist" ] || { echo "build.sh: no source distribution at $sdist (bench/mamba_ssm/fetch.sh gets it)" >&2; exit 1; }
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
rm -rf "$out/src" && mkdir -p "$out/src"
tar xzf "$sdist" -C "$out/src" --wildcards '*/csrc/selective_scan/*' --strip-components=3
flags=(-O3 -std=c++17 -U__CUDA_NO_HALF_OPERATORS__ -U__CUDA_NO_HALF_CONVERSIONS__
       -U__CUDA_NO_BFLOAT16_OPERATORS__ -U__CUDA_NO_BFLOAT16_CONVERSIONS__
       -U__CUDA_NO_BFLOAT162_OPERATORS__ -U__CUDA_NO_BFLOAT162_CONVERSIONS__
       --expt-relaxed-constexpr --expt-extended-lambda --use_fast_math
       -arch="$arch" -I"$here" -I"$out/src")
# Position-independent objects: libpeer_scan.so is loaded by torch_ref.py.
flags+=(-Xcompiler -fPIC)
nvcc "${flags[@]}" -DPEER_INPUT_T=float -c "$here/kernels.cu" -o "$out/kernels_f32.o" &
f32=$!
nvcc "${flags[@]}" -DPEER_INPUT_T=__nv_bfloat16 -c "$here/kernels.cu" -o "$out/kernels_bf16.o" &
bf16=$!
nvcc "${flags[@]}" -c "$here/peer.cu" -o "$out/peer.o"
nvcc "${flags[@]}" -c "$here/peer_scan.cu" -o "$out/peer_scan.o"
wait $f32
wait $bf16
objects=("$out/peer.o" "$out/kernels_f32.o" "$out/kernels_bf16.o")
nvcc -arch="$arch" "$out/peer_scan.o" "${objects[@]}" -o "$out/peer_scan"
nvcc -arch="$arch" -shared "${objects[@]}" -o "$out/libpeer_scan.so"
echo "build.sh: $out/peer_scan and $out/libpeer_scan.so ($(basename "$sdist"), -arch=$arch)"
