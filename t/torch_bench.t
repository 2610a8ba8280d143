#!/bin/sh
# bench/torch_bench.py, the PyTorch side of `make bench`: its custom Mamba-1
# scan (an autograd.Function with a hand-written backward) agrees with the
# plain selective_scan_ref loop under autograd in float64 (--check: outputs
# and every gradient to 1e-10 relative, gradcheck, central differences), and
# its RESULT lines name the variant. Needs Debian's python3-torch; skipped
# otherwise.
cd "$(dirname "$0")/.." || exit 1
PY=/usr/bin/python3
if ! "$PY" -c 'import torch' >/dev/null 2>&1; then
    echo "1..0 # SKIP python3-torch not installed"
    exit 0
fi
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
. t/tap.sh
"$PY" bench/torch_bench.py --check >"$tmp/check" 2>&1
rc=$?
sed 's/^/# /' "$tmp/check"
check "--check: the custom scan, a mixer and a 2-layer LM agree with the loop (exit 0, no FAIL)" \
    "[ $rc = 0 ] && grep -q '^check: pass' '$tmp/check' && ! grep -q FAIL '$tmp/check'"
check "--check compared every gradient of the scan, every mixer and LM parameter, and ran gradcheck" \
    "grep -q 'block 2: dA ' '$tmp/check' && grep -q 'd dt_proj.bias ' '$tmp/check' &&
     grep -q 'd mixers.1.A_log ' '$tmp/check' && grep -q 'gradcheck.*: pass' '$tmp/check'"
for scan in custom ref; do
    "$PY" bench/torch_bench.py --arch mamba1 --layers 1 --batch 5 --steps 1 --conv shifted --scan "$scan" --block 2 \
        >"$tmp/$scan" 2>&1
    rc=$?
    want="impl=torch-shifted variant=custom"
    [ $scan = ref ] && want="impl=torch-shifted-ref variant=ref"
    check "a tiny Mamba-1 step, scan $scan: RESULT names it ($want)" \
        "[ $rc = 0 ] && grep -q '^RESULT $want conv=shifted arch=mamba1 ' '$tmp/$scan'"
done
l1=$(sed -n 's/.*loss \([0-9.]*\).*/\1/p' "$tmp/custom")
l2=$(sed -n 's/.*loss \([0-9.]*\).*/\1/p' "$tmp/ref")
check "the two scans train to the same loss in float32, to 1e-4 relative ($l1, $l2)" \
    "[ -n '$l1' ] && [ -n '$l2' ] && awk 'BEGIN { d = $l1 - $l2; exit !(d * d <= 1e-8 * $l2 * $l2) }'"
"$PY" bench/torch_bench.py --arch mamba2 --layers 1 --batch 4 --steps 1 --ssd scan >"$tmp/m2" 2>&1
rc=$?
check "Mamba-2 with its non-default SSD form: impl=torch-conv1d-scan variant=scan" \
    "[ $rc = 0 ] && grep -q '^RESULT impl=torch-conv1d-scan variant=scan conv=conv1d arch=mamba2 ' '$tmp/m2'"
done_testing
