#!/bin/sh
# Two builds of achilles on the same training step, in turns (A, B, A, B,
# ...): this machine's speed drifts by 10-20% within minutes, so one run of
# each says little; pairs taken back to back do. Prints each pair's
# training sequences/s and B/A, then the means and their ratio.
#
# usage: bench/ab.sh A B [PAIRS] [achilles bench options]
#   A, B   the two achilles binaries (the same one twice measures the noise)
#   PAIRS  runs of each (default 5)
# The options go to both (default: --arch mamba2 --steps 20), e.g.
#   bench/ab.sh /tmp/old/achilles ./build/achilles 6 --layers 5 --threads 1
set -eu
if [ $# -lt 2 ] || [ ! -x "$1" ] || [ ! -x "$2" ]; then
    echo "usage: bench/ab.sh A B [PAIRS] [achilles bench options] (A and B: achilles binaries)" >&2
    exit 2
fi
A=$1 B=$2
shift 2
PAIRS=5
if [ $# -gt 0 ]; then
    case $1 in
    '' | *[!0-9]*) ;;
    *) PAIRS=$1; shift ;;
    esac
fi
[ $# -gt 0 ] || set -- --arch mamba2 --steps 20
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
num() { sed -n 's/^RESULT .*seq_per_s=\([0-9.]*\).*/\1/p'; }
i=0
while [ "$i" -lt "$PAIRS" ]; do
    a=$("$A" bench "$@" | num)
    b=$("$B" bench "$@" | num)
    if [ -z "$a" ] || [ -z "$b" ]; then
        echo "bench/ab.sh: 'achilles bench $*' printed no RESULT line (see its message above)" >&2
        exit 1
    fi
    echo "$a $b" >> "$tmp"
    echo "$a $b" | awk '{ printf("A %10.0f  B %10.0f  B/A %.3f\n", $1, $2, $2 / $1) }'
    i=$((i + 1))
done
awk '{ sa += $1; sb += $2; n++ }
END { if (n) printf("mean A %.0f  B %.0f  B/A %.3f over %d pairs\n", sa / n, sb / n, sb / sa, n) }' "$tmp"
