#!/bin/sh
# Achilles vs PyTorch training-step throughput (`make bench`).
# Runs `achilles bench` (fast kernels) and bench/torch_bench.py (Debian's
# python3-torch, both conv variants) on both mixers at 2 and 5 layers, 1 and
# 2 threads, batch 2048 x 8, and prints a table of training sequences/s with
# the ratio to the faster PyTorch variant. Raw RESULT lines go to
# build/bench-results.txt.
#
# Environment: STEPS (achilles timed steps, default 10), TORCH_STEPS (default
# 3 for Mamba-2, 1 for Mamba-1, whose PyTorch step takes ~10-30 s),
# LAYERS (default "2 5"), THREADS (default "1 2"), ARCHS (default
# "mamba2 mamba1"), TABLE_ONLY=1 (re-print the last run's table). Timings
# are noisy when other jobs share the machine.
set -eu
cd "$(dirname "$0")/.."
ACH=./build/achilles
PY=/usr/bin/python3
STEPS=${STEPS:-10}
LAYERS=${LAYERS:-2 5}
THREADS=${THREADS:-1 2}
ARCHS=${ARCHS:-mamba2 mamba1}
out=build/bench-results.txt
mkdir -p build
if [ "${TABLE_ONLY:-0}" = 1 ]; then ARCHS=; fi  # re-print the table of the last run
[ "${TABLE_ONLY:-0}" = 1 ] || : > "$out"
have_torch=0
if [ -x "$PY" ] && "$PY" -c 'import torch' 2>/dev/null; then have_torch=1; else
    echo "bench: /usr/bin/python3 with torch not found: Achilles only" >&2
fi
for arch in $ARCHS; do
    if [ "$arch" = mamba1 ]; then ts=${TORCH_STEPS:-1}; else ts=${TORCH_STEPS:-3}; fi
    for layers in $LAYERS; do
        for t in $THREADS; do
            echo "bench: $arch, $layers layers, $t thread(s)" >&2
            "$ACH" bench --arch "$arch" --layers "$layers" --threads "$t" --steps "$STEPS" | grep '^RESULT' >> "$out"
            if [ $have_torch = 1 ]; then
                for conv in conv1d shifted; do
                    "$PY" bench/torch_bench.py --arch "$arch" --layers "$layers" --threads "$t" --steps "$ts" \
                        --conv "$conv" | grep '^RESULT' >> "$out"
                done
            fi
        done
    done
done
awk '
function kv(s,   i, n, a, p) { delete r; n = split(s, a, " "); for (i = 2; i <= n; i++) { p = index(a[i], "="); r[substr(a[i], 1, p - 1)] = substr(a[i], p + 1) } }
{
    kv($0); key = r["arch"] " " r["layers"] " " r["threads"]
    if (!(key in seen)) { seen[key] = 1; order[++nk] = key }
    v[key, r["impl"]] = r["seq_per_s"]; mem[key, r["impl"]] = r["maxrss_mib"]
}
END {
    printf("%-7s %6s %7s | %12s %12s %12s | %8s | %s\n", "mixer", "layers", "threads", "achilles", "torch conv1d", "torch shift", "ratio", "achilles / torch peak MiB")
    for (i = 1; i <= nk; i++) {
        k = order[i]; split(k, f, " ")
        a = v[k, "achilles-fast"]; t1 = v[k, "torch-conv1d"]; t2 = v[k, "torch-shifted"]
        best = (t1 + 0 > t2 + 0) ? t1 : t2
        s1 = (t1 == "") ? "-" : sprintf("%.0f", t1)
        s2 = (t2 == "") ? "-" : sprintf("%.0f", t2)
        ratio = (best + 0 > 0) ? sprintf("%.1fx", a / best) : "-"
        m1 = mem[k, "torch-conv1d"]; m2 = mem[k, "torch-shifted"]
        tm = (m1 + 0 > m2 + 0) ? m1 : m2
        printf("%-7s %6s %7s | %12.0f %12s %12s | %8s | %s / %s\n", f[1], f[2], f[3], a, s1, s2, ratio,
               mem[k, "achilles-fast"], tm)
    }
    print "(training sequences/s, batch 2048 x 8; ratio = achilles / the faster torch variant)"
}' "$out"
