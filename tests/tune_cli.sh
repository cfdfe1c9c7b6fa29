#!/bin/sh
# mixc tune end to end (docs/tune.md): a database on a read-only path is an
# error before any tuning; a short real tune on the CPU; a compile then says
# (MIXC_DEBUG=3) that its tiles came from the database, and MIXC_NO_TUNE=1
# that they did not; --show reports a corrupt line with file:line and goes
# on; --merge; a winner stands only with a whole-forward ratio of 0.98 or
# less; usage errors.
# Usage: tune_cli.sh MIXC GRAPH.mxir
set -u
mixc=$1
graph=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export MIXC_CACHE_DIR="$work/cache"
failed=0
passed=0
check() { # check NAME COMMAND...: the command must succeed
    name=$1
    shift
    if "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAILED: $name" >&2; fi
}

"$mixc" tune "$graph" --device cpu --db /proc/mixc/tune.jsonl >"$work/out" 2>"$work/err"
check "read-only database: exit 1" test $? -eq 1
check "read-only database: says so before tuning" \
    sh -c "grep -q 'cannot write' '$work/err' && ! grep -q 'round' '$work/err'"

"$mixc" tune "$graph" --device cpu --db "$work/a.jsonl" --seed 3 --repeats 3 --budget 20 --jobs 2 >"$work/out" 2>"$work/err"
check "tune on cpu: exit 0" test $? -eq 0
check "tune on cpu: the winner is the default, or the whole forward pass was 2% faster with it" \
    sh -c "grep -q '\"winner\":0,' '$work/a.jsonl' || sed 's/.*\"forward\":\([0-9.e-]*\).*/\1/' '$work/a.jsonl' | awk '{ exit !(\$1 > 0 && \$1 <= 0.98) }'"
check "tune on cpu: summary" grep -q 'tuned 1 kernel' "$work/out"
check "tune on cpu: progress lines" grep -q 'round 1 of' "$work/err"

MIXC_TUNE_DB="$work/a.jsonl" MIXC_DEBUG=3 "$mixc" run "$graph" --device cpu >"$work/run" 2>"$work/err"
check "compile takes the database" grep -q "(scan): tiles .* from the tuning database $work/a.jsonl:1 (measured" "$work/err"
MIXC_NO_TUNE=1 MIXC_TUNE_DB="$work/a.jsonl" MIXC_DEBUG=3 "$mixc" run "$graph" --device cpu >"$work/run0" 2>"$work/err"
check "MIXC_NO_TUNE: the defaults" grep -q "(scan): tiles defaults (MIXC_NO_TUNE)" "$work/err"
# the same outputs within f32 rounding: a winner of another vector width
# takes another exp2 (AVX-512's or the exponent bits')
check "same outputs tuned and not" sh -c "paste '$work/run' '$work/run0' | sed -n 's/.*checksum=\([^ ]*\) .*checksum=\([^ ]*\) .*/\1 \2/p' | awk '{ d = \$1 - \$2; if (d < 0) d = -d; m = \$2 < 0 ? -\$2 : \$2; n++; if (d > 1e-5 * (m > 1 ? m : 1)) bad++ } END { exit !(n > 0 && !bad) }'"

printf '{"kernel": "0123\n' >"$work/b.jsonl"
cat "$work/a.jsonl" >>"$work/b.jsonl"
"$mixc" tune --show --db "$work/b.jsonl" >"$work/show" 2>"$work/err"
check "--show: exit 0" test $? -eq 0
check "--show: the corrupt line named" grep -q "b.jsonl:1: skipped" "$work/err"
check "--show: the record" grep -q "measured" "$work/show"
"$mixc" tune --merge "$work/a.jsonl" --merge "$work/b.jsonl" -o "$work/m.jsonl" 2>"$work/err"
check "--merge: one record" test "$(wc -l <"$work/m.jsonl")" -eq 1

"$mixc" tune >/dev/null 2>&1
check "no model: usage error" test $? -eq 2
"$mixc" tune "$graph" --budget soon >/dev/null 2>&1
check "bad --budget: usage error" test $? -eq 2
"$mixc" tune "$graph" --jobs 0 >/dev/null 2>&1
check "bad --jobs: usage error" test $? -eq 2

echo "$passed passed, $failed failed"
test "$failed" -eq 0
