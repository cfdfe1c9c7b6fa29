#!/bin/sh
# mixc explore whose every variant fails (a misspelt --vary path) exits 1
# and says so on stderr. Usage: explore_all_failed.sh MIXC SPEC
mixc=$1 spec=$2
err=$("$mixc" explore "$spec" --vary 'stages[0].token_mixr.d_state=4,8' --runs 1 2>&1 >/dev/null)
rc=$?
echo "$err"
[ "$rc" -eq 1 ] || { echo "explore_all_failed: exit status $rc, expected 1"; exit 1; }
case $err in
*"every variant failed (2 of 2"*) ;;
*) echo "explore_all_failed: stderr does not count the failed variants"; exit 1 ;;
esac
