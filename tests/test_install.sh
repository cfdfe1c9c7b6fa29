#!/bin/sh
# The installed library, header and binary, away from the source tree:
# cmake --install into a temp prefix; the installed binary and library carry
# no path of the source tree in their data; examples/run_model.c, built
# against the installed header with pkg-config, feeds its own input and gets
# the checksum `mixc run --inputs` gives for the same numbers; the installed
# mixc compiles its cubins from a folder holding nothing but the spec.
# usage: test_install.sh BUILD_DIR SOURCE_DIR [CFLAGS]
set -eu
build=$1
src=$2
cflags=${3:-}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "test_install: $*" >&2; echo "0 passed, 1 failed"; exit 1; }

cmake --install "$build" --prefix "$tmp/prefix" > "$tmp/install.log" || fail "cmake --install failed"
lib=$(ls "$tmp"/prefix/lib*/libmixc.so | head -1)
# Sanitizer builds keep each source file's name for their reports, whatever
# -ffile-prefix-map says; any other use of the tree's path is a dependency.
for f in "$tmp/prefix/bin/mixc" "$lib"; do
    if readelf -p .rodata "$f" 2>/dev/null | grep "$src" | grep -vqE "$src/[A-Za-z0-9_/.-]+\.[ch]\$"; then
        fail "$f has the source tree's path in its data"
    fi
done
[ -f "$tmp/prefix/include/mixc.h" ] || fail "no installed mixc.h"
pc=$(dirname "$lib")/pkgconfig
[ -f "$pc/mixc.pc" ] || fail "no pkg-config file"
[ -f "$(dirname "$lib")/cmake/mixc/mixcConfig.cmake" ] || fail "no CMake package config"

mkdir "$tmp/work"
cp "$src/models/mamba-block.json" "$tmp/work/"
cd "$tmp/work"
export PKG_CONFIG_PATH="$pc"
cc -std=c11 $cflags -o run_model "$src/examples/run_model.c" $(pkg-config --cflags --libs mixc) -lm ||
    fail "examples/run_model.c does not build against the installed library"
LD_LIBRARY_PATH=$(dirname "$lib") ./run_model mamba-block.json emu > prog.txt || fail "run_model failed"

# The same input for mixc run: sin(0.37 i) as f32, in a .npy file.
python3 - <<'PY'
import json, math, struct
spec = json.load(open("mamba-block.json"))
shape = (spec.get("batch", 1), spec["input"]["length"], spec["stages"][0]["width"])
n = shape[0] * shape[1] * shape[2]
head = "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d, %d), }" % shape
head += " " * (63 - (10 + len(head)) % 64) + "\n"
with open("x.npy", "wb") as f:
    f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(head)) + head.encode())
    f.write(struct.pack("<%df" % n, *(math.sin(0.37 * i) for i in range(n))))
PY
"$tmp/prefix/bin/mixc" run mamba-block.json --device emu --inputs x.npy > cli.txt || fail "mixc run --inputs failed"
want=$(grep -o 'checksum=[^ ]*' cli.txt)
got=$(grep -o 'checksum=[^ ]*' prog.txt)
[ -n "$want" ] && [ "$want" = "$got" ] || fail "checksums differ: mixc run $want, run_model $got"

"$tmp/prefix/bin/mixc" compile mamba-block.json --target sm_90 --cubin out.cubin > cubin.txt ||
    fail "the installed mixc cannot compile a cubin away from the source tree"
# one cubin per NVRTC program: out.0.cubin, out.1.cubin, ... (out.cubin when one)
[ -s out.0.cubin ] || [ -s out.cubin ] || fail "no cubin written"
grep -q registers cubin.txt || fail "no resource report"
set -- out*.cubin
echo "install: $want from both; cubins $(cat "$@" | wc -c) bytes in $# files"
echo "6 passed, 0 failed"
