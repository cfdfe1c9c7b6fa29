#!/bin/sh
# Installs the Debian packages mixc builds with, when they are missing.
# The CUDA toolkit (/usr/local/cuda) is expected to be there already.
set -eu

need=""
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
# g++ compiles generated CUDA for the host emulation at run time; LLVM 19
# and OpenBLAS make the CPU backend; clang and its libFuzzer runtime build
# the fuzz targets of make test.
for pkg in cmake make gcc g++ libcjson-dev llvm-19-dev libopenblas-dev clang libclang-rt-dev; do
    have_pkg "$pkg" || need="$need $pkg"
done
# The Python package's tests need NumPy (python/).
if command -v python3 >/dev/null 2>&1 && ! python3 -c "import numpy" 2>/dev/null; then
    python3 -m pip install -q numpy 2>/dev/null || need="$need python3-numpy"
fi
[ -z "$need" ] && exit 0

echo "mixc: installing missing Debian packages:$need"
if [ "$(id -u)" -eq 0 ]; then
    sudo=""
elif command -v sudo >/dev/null 2>&1; then
    sudo="sudo"
else
    echo "mixc: not root and no sudo; please install:$need" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# shellcheck disable=SC2086
$sudo apt-get install -y -qq $need
