#!/bin/sh
# Regenerates results/REPORT.md as a clean clone makes it. First the report
# runs with the model states present, so each finished run's analyses.json
# is current; then again with the states and checkpoints moved aside (a run
# without its model reads "partial", not "stopped", and a clone has none),
# and they are put back. Refuses while a run under results/ is training.
# Usage: sh results/report.sh
set -eu
cd "$(dirname "$0")/.."
A=${ACHILLES:-./build/achilles}
$A report results/ --out results/REPORT.md >/dev/null
if grep -q '^| `[^`]*` | running |' results/REPORT.md; then
    echo "results/report.sh: a run under results/ is training (REPORT.md lists it as running): stop it first" >&2
    exit 1
fi
aside=$(mktemp -d)
restore() {
    (cd "$aside" && find results -name state.safetensors -o -type d -name ckpt -prune) | while read -r p; do
        mv "$aside/$p" "$p"
    done
    rm -rf "$aside"
}
trap restore EXIT
find results -name state.safetensors -o -type d -name ckpt -prune | while read -r p; do
    mkdir -p "$aside/$(dirname "$p")"
    mv "$p" "$aside/$p"
done
$A report results/ --out results/REPORT.md
