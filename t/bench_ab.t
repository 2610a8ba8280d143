#!/bin/sh
# bench/ab.sh: two achilles builds in turns, each pair's rates and ratio,
# then the means; bad usage and a failing bench are errors.
cd "$(dirname "$0")/.." || exit 1
ACH=${ACHILLES_BIN:-./build/achilles}
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
. t/tap.sh
sh bench/ab.sh "$ACH" >"$tmp/out" 2>"$tmp/err"
rc=$?
check "one binary only: exit status 2 and the usage" "[ $rc = 2 ] && grep -q '^usage: bench/ab.sh A B' '$tmp/err'"
sh bench/ab.sh "$ACH" "$ACH" 3 --batch 32 --steps 1 --layers 1 --threads 1 >"$tmp/out" 2>"$tmp/err"
rc=$?
check "a run: exit status 0" "[ $rc = 0 ]"
check "one line per pair: both rates and B/A" \
    "[ \$(grep -c '^A  *[0-9][0-9]*  B  *[0-9][0-9]*  B/A [0-9][0-9]*\\.[0-9][0-9][0-9]\$' '$tmp/out') = 3 ]"
check "then the means and their ratio" "tail -1 '$tmp/out' | grep -q '^mean A [0-9]*  B [0-9]*  B/A [0-9.]* over 3 pairs\$'"
sh bench/ab.sh "$ACH" "$ACH" 1 --layers 99 >"$tmp/out" 2>"$tmp/err"
rc=$?
check "a bench that fails: exit status 1, its message, then ours" \
    "[ $rc = 1 ] && grep -q 'n_layer' '$tmp/err' && grep -q 'printed no RESULT line' '$tmp/err'"
done_testing
