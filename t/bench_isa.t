#!/bin/sh
# achilles bench --isa picks the fast kernels' SIMD instance (named in the
# output and the RESULT line; bad values and the reference kernels are
# usage errors), and a Mamba-1 step with the fast kernels prints its
# derived limit (exp and FMA rates measured, limit above the rate reached).
cd "$(dirname "$0")/.." || exit 1
ACH=${ACHILLES_BIN:-./build/achilles}
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
. t/tap.sh
field() { sed -n "s/^RESULT .* $2=\([^ ]*\).*/\1/p" "$1"; }
"$ACH" bench --batch 16 --steps 1 --threads 1 --tokens uniform --isa generic >"$tmp/gen" 2>&1
rc=$?
check "--isa generic: exit status 0, kernels fast-generic, isa=generic" \
    "[ $rc = 0 ] && grep -q 'kernels fast-generic' '$tmp/gen' && [ '$(field "$tmp/gen" isa)' = generic ]"
check "Mamba-2: no derived limit" "! grep -q 'derived limit' '$tmp/gen' && [ -z '$(field "$tmp/gen" limit_seq_per_s)' ]"
"$ACH" bench --arch mamba1 --batch 64 --steps 1 --threads 1 --tokens uniform >"$tmp/m1" 2>&1
rc=$?
lim=$(field "$tmp/m1" limit_seq_per_s) seq=$(field "$tmp/m1" seq_per_s)
check "Mamba-1: the derived limit (got $lim) above the rate reached (got $seq), rates printed" \
    "[ $rc = 0 ] && awk 'BEGIN { exit !($lim > $seq && $seq > 0) }' &&
     grep -q 'derived limit: [0-9]* sequences/s (per core [0-9.]* G exps/s, [0-9.]* G FMA lanes/s)' '$tmp/m1'"
"$ACH" bench --arch mamba1 --batch 16 --steps 1 --threads 1 --tokens uniform --kernels reference >"$tmp/ref" 2>&1
rc=$?
check "Mamba-1 with the reference kernels: no limit, isa=-" \
    "[ $rc = 0 ] && ! grep -q 'derived limit' '$tmp/ref' && [ '$(field "$tmp/ref" isa)' = - ]"
"$ACH" bench --isa sse9 >"$tmp/out" 2>&1
rc=$?
check "--isa sse9: exit status 2, the value named" "[ $rc = 2 ] && grep -q \"bad value 'sse9' for --isa\" '$tmp/out'"
"$ACH" bench --isa avx2 --kernels reference >"$tmp/out" 2>&1
rc=$?
check "--isa with --kernels reference: exit status 2" "[ $rc = 2 ] && grep -q -- '--isa picks the fast kernels' '$tmp/out'"
done_testing
