#!/bin/sh
# achilles bench --tokens: the timed batch from the composite task (the
# default, as a paper run's batches) or uniform over the vocabulary; the
# choice shows in the output and the RESULT line, and bad values are errors.
cd "$(dirname "$0")/.." || exit 1
ACH=${ACHILLES_BIN:-./build/achilles}
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
. t/tap.sh
distinct() { sed -n 's/.* \([0-9][0-9]*\) distinct tokens$/\1/p' "$1"; }
"$ACH" bench --batch 256 --steps 1 --threads 1 >"$tmp/task" 2>&1
rc=$?
check "default: exit status 0, the task's batch named, tokens=task" \
    "[ $rc = 0 ] && grep -q \"batch: the composite preset's training sequences\" '$tmp/task' &&
     grep -q '^RESULT .* tokens=task\$' '$tmp/task'"
d=$(distinct "$tmp/task")
# the composite task's tokens: anchors 1-4 and keys and noise in [20, 100)
check "the task's tokens: 84 distinct at most, and more than the 4 anchors (got $d)" "[ '$d' -le 84 ] && [ '$d' -gt 4 ]"
"$ACH" bench --batch 256 --steps 1 --threads 1 --tokens uniform >"$tmp/uni" 2>&1
rc=$?
d=$(distinct "$tmp/uni")
check "--tokens uniform: exit status 0, tokens=uniform, ~200 distinct of 201 in 2048 tokens (got $d)" \
    "[ $rc = 0 ] && grep -q '^RESULT .* tokens=uniform\$' '$tmp/uni' && [ '$d' -gt 180 ]"
"$ACH" bench --batch 16 --steps 1 --threads 1 --tokens uniform --length 5 >"$tmp/out" 2>&1
rc=$?
check "--tokens uniform takes any length" "[ $rc = 0 ] && grep -q '^RESULT .* length=5 .*tokens=uniform\$' '$tmp/out'"
"$ACH" bench --batch 16 --steps 1 --length 5 >"$tmp/out" 2>&1
rc=$?
check "the task's batch at another length: exit status 1 naming both lengths" \
    "[ $rc = 1 ] && grep -q -- '--tokens task: .* have 8 tokens, not --length 5' '$tmp/out' && ! grep -q '^RESULT' '$tmp/out'"
"$ACH" bench --tokens words >"$tmp/out" 2>&1
rc=$?
check "--tokens words: exit status 2, the value named" "[ $rc = 2 ] && grep -q \"bad value 'words' for --tokens\" '$tmp/out'"
done_testing
