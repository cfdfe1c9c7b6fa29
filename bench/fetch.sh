#!/usr/bin/env bash
# fetch.sh: what bench/run.sh needs from a registry, put in .deps/, for a
# GPU machine that reaches none: cJSON's Debian packages (used when the
# system has no libcjson-dev) and mamba_ssm's source distribution (the
# peer of bench_scan, built by bench/mamba_ssm/build.sh), at a pinned
# version checked against its SHA-256. Run it where apt and PyPI answer;
# then .deps/ travels with the tree to the GPU machine.
#
#   bash bench/fetch.sh
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .deps
MAMBA_SSM=mamba_ssm-2.3.2.post1.tar.gz
MAMBA_SSM_URL=https://files.pythonhosted.org/packages/af/48/aa7bec0efc7453fa0512276c0069c854bf684219050294266534bfef34bb/$MAMBA_SSM
MAMBA_SSM_SHA256=104cc47e9101e5401a675fa2b784f2952b9b037f3b1dd83b5ac544394e95d028

if ! ls .deps/libcjson1_*.deb .deps/libcjson-dev_*.deb >/dev/null 2>&1; then
    # apt's sandbox user may not write here: download in a folder of its own
    tmp=$(mktemp -d) && chmod 755 "$tmp"
    (cd "$tmp" && apt-get download libcjson1 libcjson-dev) && mv "$tmp"/*.deb .deps/
    rm -rf "$tmp"
fi
if ! echo "$MAMBA_SSM_SHA256  .deps/$MAMBA_SSM" | sha256sum -c --status 2>/dev/null; then
    curl -fsSL -o ".deps/$MAMBA_SSM.part" "$MAMBA_SSM_URL"
    echo "$MAMBA_SSM_SHA256  .deps/$MAMBA_SSM.part" | sha256sum -c --status \
        || { rm -f ".deps/$MAMBA_SSM.part"; echo "fetch.sh: $MAMBA_SSM: SHA-256 differs from the pinned one" >&2; exit 1; }
    mv ".deps/$MAMBA_SSM.part" ".deps/$MAMBA_SSM"
fi
ls -l .deps/*.deb ".deps/$MAMBA_SSM"
