#!/bin/sh
# Every graph given, on the cpu device against the reference, with host
# features left out (MIXC_CPU_DISABLE=FEATURES, docs/cpu.md): the lowering
# for narrower vectors than the host's (AVX2's 8 lanes, SSE's 4 on an
# AVX-512 machine), which the rest of the suite only runs on such a host.
# Usage: check_narrow.sh MIXC FEATURES GRAPH...
set -u
mixc=$1
off=$2
shift 2
err=$(mktemp)
trap 'rm -f "$err"' EXIT
failed=0
for g in "$@"; do
    if ! MIXC_CPU_DISABLE=$off "$mixc" check "$g" --devices ref,cpu >"$err" 2>&1; then
        echo "FAILED with MIXC_CPU_DISABLE=$off: $g"
        cat "$err"
        failed=$((failed + 1))
    fi
done
echo "$# graphs with MIXC_CPU_DISABLE=$off, $failed failed"
[ "$failed" -eq 0 ]
