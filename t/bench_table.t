#!/bin/sh
# bench/run.sh's table from RESULT lines (TABLE_ONLY): each program's median
# over the runs (Achilles on the task's batch and on uniform tokens), and the
# median and lowest of the runs' ratios, each run against the fastest PyTorch
# variant of the same run (two conv variants; for Mamba-1 also the plain
# selective_scan_ref loop, impl torch-CONV-ref), and which variant that was.
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
    # Mamba-1, two runs with the loop's variants: fastest shifted (600) in the first, conv1d-ref (1000) in
    # the second: ratios 10 and 8, on uniform tokens 8.33 and 6
    res achilles-fast mamba1 2 1 6000 161; res achilles-fast mamba1 2 1 5000 160 uniform
    res torch-conv1d mamba1 2 1 500 300; res torch-conv1d-ref mamba1 2 1 100 2800
    res torch-shifted mamba1 2 1 600 310; res torch-shifted-ref mamba1 2 1 150 2810
    res achilles-fast mamba1 2 1 8000 161; res achilles-fast mamba1 2 1 6000 160 uniform
    res torch-conv1d mamba1 2 1 400 305; res torch-conv1d-ref mamba1 2 1 1000 2801
    res torch-shifted mamba1 2 1 300 320; res torch-shifted-ref mamba1 2 1 200 2811
    # one run, the loop fastest
    res achilles-fast mamba1 5 1 2000 300
    res torch-conv1d mamba1 5 1 50 700; res torch-conv1d-ref mamba1 5 1 80 6000
    res torch-shifted mamba1 5 1 60 710; res torch-shifted-ref mamba1 5 1 70 6100
    # one run, Achilles only
    res achilles-fast mamba1 5 2 5000 306
} > "$tmp/results.txt"
TABLE_ONLY=1 OUT="$tmp/results.txt" sh bench/run.sh > "$tmp/table" 2>&1
rc=$?
check "the table prints" "[ $rc = 0 ] && grep -q '^mixer' '$tmp/table'"
row=$(grep '^mamba2' "$tmp/table")
check "medians: achilles 70000 (a line without tokens= is the task's), uniform 35000, conv1d 3000, shifted 3000, no ref (got: $row)" \
    "echo '$row' | grep -q '| *70000 *35000 *3000 *3000 *- |'"
check "ratio: the median of 20, 10, 30; lowest 10; uniform: the median of 10, 5, 15; 3 runs" \
    "echo '$row' | grep -q '| *20.0x *10.0x *10.0x *3 |'"
check "fastest variant and its peak memory: shifted (2 of 3 runs), the largest over the runs (14 / 950)" \
    "echo '$row' | grep -q '| shifted *| 14 / 950\$'"
row=$(grep '^mamba1  *2  *1 ' "$tmp/table")
check "Mamba-1 medians: achilles 7000, uniform 5500, conv1d 450, shifted 450, ref 575 (the faster conv of each run: 150, 1000) (got: $row)" \
    "echo '$row' | grep -q '| *7000 *5500 *450 *450 *575 |'"
check "Mamba-1 ratio against each run's fastest of four variants: the median of 10 and 8, lowest 8; uniform: of 8.33 and 6" \
    "echo '$row' | grep -q '| *9.0x *8.0x *7.2x *2 |'"
check "Mamba-1: one win each for shifted (median 450) and conv1d-ref (median 550): conv1d-ref, its peak memory" \
    "echo '$row' | grep -q '| conv1d-ref *| 161 / 2801\$'"
row=$(grep '^mamba1  *5  *1 ' "$tmp/table")
check "the loop fastest: the ratio against it (25.0x), named conv1d-ref with its peak memory (got: $row)" \
    "echo '$row' | grep -q '| *2000 *- *50 *60 *80 | *25.0x *25.0x *- *1 | conv1d-ref *| 300 / 6000\$'"
row=$(grep '^mamba1  *5  *2 ' "$tmp/table")
check "without PyTorch: dashes for its figures, the ratio and the variant (got: $row)" \
    "echo '$row' | grep -q '| *5000 *- *- *- *- | *- *- *- *1 | - *| 306 / -\$'"
REPS=two sh bench/run.sh >"$tmp/out" 2>&1
rc=$?
check "REPS not a number: exit status 2, nothing run" "[ $rc = 2 ] && grep -q 'REPS=two: want a whole number' '$tmp/out'"
M1_SCANS='custom loop' sh bench/run.sh >"$tmp/out" 2>&1
rc=$?
check "M1_SCANS naming an unknown scan: exit status 2, nothing run" \
    "[ $rc = 2 ] && grep -q 'M1_SCANS=custom loop: want custom and/or ref' '$tmp/out'"
M1_BLOCK=0 sh bench/run.sh >"$tmp/out" 2>&1
rc=$?
check "M1_BLOCK 0: exit status 2, nothing run" "[ $rc = 2 ] && grep -q 'M1_BLOCK=0: want a whole number' '$tmp/out'"
TABLE_ONLY=1 OUT="$tmp/none.txt" sh bench/run.sh >"$tmp/out" 2>&1
rc=$?
check "TABLE_ONLY without results: exit status 1 naming the file" "[ $rc = 1 ] && grep -q 'none.txt: no results' '$tmp/out'"
done_testing
