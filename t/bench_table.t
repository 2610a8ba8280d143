#!/bin/sh
# bench/run.sh's table from RESULT lines (TABLE_ONLY): each program's median
# over the runs (Achilles on the task's batch and on uniform tokens), and the
# median and lowest of the runs' ratios, each run against the faster PyTorch
# variant of the same run.
cd "$(dirname "$0")/.." || exit 1
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
. t/tap.sh
res() { # impl arch layers threads seq_per_s maxrss [tokens]
    echo "RESULT impl=$1 arch=$2 layers=$3 batch=2048 length=8 threads=$4 step_ms=1 seq_per_s=$5 gflops=1" \
        "maxrss_mib=$6${7:+ tokens=$7}"
}
{   # three runs of one configuration: ratios 20 (vs conv1d), 10 (vs shifted), 30 (vs shifted);
    # on uniform tokens 10, 5, 15
    res achilles-fast mamba2 2 1 60000 13 task; res achilles-fast mamba2 2 1 30000 12 uniform
    res torch-conv1d mamba2 2 1 3000 900; res torch-shifted mamba2 2 1 2000 950
    res achilles-fast mamba2 2 1 70000 14 task; res achilles-fast mamba2 2 1 35000 12 uniform
    res torch-conv1d mamba2 2 1 3500 901; res torch-shifted mamba2 2 1 7000 940
    res achilles-fast mamba2 2 1 90000 13; res achilles-fast mamba2 2 1 45000 12 uniform
    res torch-conv1d mamba2 2 1 1000 902; res torch-shifted mamba2 2 1 3000 930
    # one run, Achilles only
    res achilles-fast mamba1 5 2 5000 306
} > "$tmp/results.txt"
TABLE_ONLY=1 OUT="$tmp/results.txt" sh bench/run.sh > "$tmp/table" 2>&1
rc=$?
check "the table prints" "[ $rc = 0 ] && grep -q '^mixer' '$tmp/table'"
row=$(grep '^mamba2' "$tmp/table")
check "medians: achilles 70000 (a line without tokens= is the task's), uniform 35000, conv1d 3000, shifted 3000 (got: $row)" \
    "echo '$row' | grep -q '| *70000 *35000 *3000 *3000 |'"
check "ratio: the median of 20, 10, 30; lowest 10; uniform: the median of 10, 5, 15; 3 runs" \
    "echo '$row' | grep -q '| *20.0x *10.0x *10.0x *3 |'"
check "peak memory: the largest over the runs (14 / 950)" "echo '$row' | grep -q '| 14 / 950\$'"
row=$(grep '^mamba1' "$tmp/table")
check "without PyTorch: dashes for its figures and the ratio (got: $row)" \
    "echo '$row' | grep -q '| *5000 *- *- *- | *- *- *- *1 | 306 / -\$'"
REPS=two sh bench/run.sh >"$tmp/out" 2>&1
rc=$?
check "REPS not a number: exit status 2, nothing run" "[ $rc = 2 ] && grep -q 'REPS=two: want a whole number' '$tmp/out'"
TABLE_ONLY=1 OUT="$tmp/none.txt" sh bench/run.sh >"$tmp/out" 2>&1
rc=$?
check "TABLE_ONLY without results: exit status 1 naming the file" "[ $rc = 1 ] && grep -q 'none.txt: no results' '$tmp/out'"
done_testing
