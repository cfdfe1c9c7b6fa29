# Shared by the fault scripts (sourced): a work folder removed on exit,
# a kernel cache inside it, counted checks and SIGKILL at a chosen moment.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export MIXC_CACHE_DIR="$work/cache"
failed=0
passed=0

check() { # check DESCRIPTION COMMAND...
    what=$1
    shift
    if "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAILED: $what" >&2; fi
}

# killed DELAY COMMAND...: runs the command, SIGKILLs it after DELAY seconds.
killed() {
    delay=$1
    shift
    "$@" >/dev/null 2>&1 &
    pid=$!
    sleep "$delay"
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    return 0
}

# summary: the counts, and the script's exit status.
summary() {
    echo "$passed passed, $failed failed"
    [ "$failed" -eq 0 ]
}
