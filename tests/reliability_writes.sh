#!/bin/sh
# The tuning database and emitted projects under faults (docs/reliability.md):
#   1. mixc tune killed with SIGKILL at staggered moments: every line of the
#      database reads back (--show warns of nothing) and a finished tune
#      after the kills is picked up by the next compile;
#   2. a database whose last line was cut short (what a writer killed in the
#      middle of its write leaves): --show names that line, the next tune's
#      record stays whole and is the one compiles take;
#   3. mixc emit killed with SIGKILL at staggered moments, also while
#      replacing a project (--force): the folder is absent, the old project or
#      the new one whole, never a mixture; the next emit clears what the
#      killed one left beside it and writes the same project.
# Usage: reliability_writes.sh MIXC MODELS_DIR
set -u

mixc=$1
models=$2
small="--set input.length=12 --set stages[0].width=8"
. "$(dirname "$0")/faults.sh"

# shellcheck disable=SC2086
tune() { "$mixc" tune "$models/mamba-block.json" $small --device cpu --repeats 3 --seed 5 --db "$1"; }

# A database reads back whole: --show succeeds and warns of no line.
db_whole() { "$mixc" tune --show --db "$1" >"$work/show" 2>"$work/show.err" && ! grep -q skipped "$work/show.err"; }

# The tiles of a compile at MIXC_DEBUG=3 came from database $1 (line $2 if given).
# shellcheck disable=SC2086
picked_up() {
    MIXC_TUNE_DB=$1 MIXC_DEBUG=3 "$mixc" run "$models/mamba-block.json" $small --device cpu >/dev/null 2>"$work/pick"
    grep -q "from the tuning database $1:${2:-}" "$work/pick"
}

# 1. SIGKILL while tuning.
db=$work/tune.jsonl
for delay in 0.1 0.3 0.5 0.7 0.9 1.1 1.4; do
    killed "$delay" tune "$db"
    check "database after SIGKILL at ${delay}s reads back" db_whole "$db"
done
check "a tune after the kills" tune "$db" >/dev/null 2>&1
check "the database whole" db_whole "$db"
check "its records picked up" picked_up "$db"

# 2. The last line cut short, then a tune.
head -n 1 "$db" | head -c 200 >"$work/cut.jsonl"
check "the next tune appends" tune "$work/cut.jsonl" >/dev/null 2>&1
"$mixc" tune --show --db "$work/cut.jsonl" >/dev/null 2>"$work/show.err"
check "the cut line named" grep -q "cut.jsonl:1: skipped" "$work/show.err"
check "only it" test "$(grep -c skipped "$work/show.err")" -eq 1
check "the new record taken" picked_up "$work/cut.jsonl" 2

# 3. SIGKILL while emitting (155 MB of weights: the write takes most of a second).
spec=$models/vim2-small.json
check "reference project" "$mixc" emit "$spec" -o "$work/want" --target cpu >/dev/null
check "a second project" "$mixc" emit "$models/vim2-tiny.json" -o "$work/other" --target cpu >/dev/null

same() { diff -r "$1" "$2" >/dev/null; }
leftovers() { ls "$work" | grep -q '^out\.\(tmp\|old\)-'; }
absent_or_whole() { [ ! -e "$work/out" ] || same "$work/out" "$work/want"; }
old_or_new() { same "$work/out" "$work/other" || same "$work/out" "$work/want"; }

left=0 # kills that left a temp folder: the clearing was exercised
for delay in 0.05 0.2 0.4 0.6 0.8 1.0 1.3; do
    rm -rf "$work/out"
    killed "$delay" "$mixc" emit "$spec" -o "$work/out" --target cpu
    check "emit killed at ${delay}s: absent or whole" absent_or_whole
    leftovers && left=$((left + 1))
    rm -rf "$work/out"
    check "the next emit" "$mixc" emit "$spec" -o "$work/out" --target cpu >/dev/null
    check "writes the same project" same "$work/out" "$work/want"
    check "and clears what the killed one left" sh -c "! { ls '$work' | grep -q '^out\.\(tmp\|old\)-'; }"

    rm -rf "$work/out" && cp -r "$work/other" "$work/out"
    killed "$delay" "$mixc" emit "$spec" -o "$work/out" --target cpu --force
    if [ -e "$work/out" ]; then
        check "forced emit killed at ${delay}s: the old project or the new one" old_or_new
    else # killed between moving the old project aside and putting the new one in
        check "forced emit killed at ${delay}s: the old project is kept aside" leftovers
        "$mixc" emit "$spec" -o "$work/out" --target cpu >/dev/null 2>&1
        check "an emit without --force puts it back and refuses" test $? -eq 1
        check "the old project whole" same "$work/out" "$work/other"
    fi
    "$mixc" emit "$spec" -o "$work/out" --target cpu --force >/dev/null 2>"$work/emit.err"
    check "forced emit after the kill" test $? -eq 0
    check "writes the same project" same "$work/out" "$work/want"
    check "and clears what the killed one left" sh -c "! { ls '$work' | grep -q '^out\.\(tmp\|old\)-'; }"
done

check "some kill left a temp folder to clear ($left of 7)" test "$left" -gt 0

summary
