#!/bin/sh
# `make fuzz`: runs each fuzz target (built as OUT/fuzz-NAME) in turn, one
# process at a time, for SECONDS on its committed corpus fuzz/corpus/NAME.
# New inputs go to OUT/corpus/NAME, crashes to OUT/crashes/NAME-*, the full
# output to OUT/NAME.log; prints each target's executions and speed.
# Usage: fuzz/run.sh OUT SECONDS NAME...
out=$1 secs=$2
shift 2
status=0
mkdir -p "$out/crashes"
# session and metrics write each input to a file: on tmpfs, not the disk
if [ -z "$TMPDIR" ] && [ -d /dev/shm ] && [ -w /dev/shm ]; then export TMPDIR=/dev/shm; fi
for n in "$@"; do
    mkdir -p "$out/corpus/$n"
    if ! "$out/fuzz-$n" -max_total_time="$secs" -timeout=10 -print_final_stats=1 \
        -artifact_prefix="$out/crashes/$n-" "$out/corpus/$n" "fuzz/corpus/$n" </dev/null >"$out/$n.log" 2>&1; then
        status=1
        tail -n 40 "$out/$n.log"
        echo "fuzz $n: FAILED (input in $out/crashes/, log in $out/$n.log)"
    fi
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out/$n.log")
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$out/$n.log")
    echo "fuzz $n: ${runs:-0} executions in ${secs}s, ${rate:-0} exec/s"
done
exit $status
