#!/bin/sh
# Achilles vs PyTorch training-step throughput (`make bench`).
# Runs `achilles bench` (fast kernels; on a batch of the composite task, as
# a paper run's, and on uniform random tokens, the first block's per-token
# path at its slowest) and bench/torch_bench.py (Debian's python3-torch,
# both conv variants, and for Mamba-1 both selective scans: the custom
# autograd.Function and the plain selective_scan_ref loop; its speed does
# not depend on the tokens; OpenBLAS, where it is the BLAS, held to the
# same threads) on both mixers at 2 and 5 layers, 1 and 2
# threads, batch 2048 x 8, and prints a table of training sequences/s with
# the ratios to the fastest PyTorch variant of the same run. Raw RESULT
# lines go to build/bench-results.txt.
#
# Environment: STEPS (achilles timed steps, default 10), TORCH_STEPS (default
# 3, and 1 for Mamba-1's loop, whose PyTorch step takes ~10-30 s),
# M1_SCANS (Mamba-1's PyTorch scans, default "custom ref"), M1_BLOCK (the
# custom scan's sequences per block; default torch_bench.py's),
# LAYERS (default "2 5"), THREADS (default "1 2"), ARCHS (default
# "mamba2 mamba1"), REPS (default 1: runs of each configuration, Achilles
# and PyTorch taking turns; the table then shows each program's median and
# the median and lowest of the runs' ratios: PyTorch's step here has two
# speeds from one process to the next), TABLE_ONLY=1 (re-print the last
# run's table), OUT (the RESULT lines' file). Timings are noisy when other
# jobs share the machine.
set -eu
cd "$(dirname "$0")/.."
ACH=./build/achilles
PY=/usr/bin/python3
STEPS=${STEPS:-10}
LAYERS=${LAYERS:-2 5}
THREADS=${THREADS:-1 2}
ARCHS=${ARCHS:-mamba2 mamba1}
REPS=${REPS:-1}
M1_SCANS=${M1_SCANS:-custom ref}
out=${OUT:-build/bench-results.txt}
case $REPS in
'' | *[!0-9]* | 0) echo "bench/run.sh: REPS=$REPS: want a whole number of runs, 1 or more" >&2; exit 2 ;;
esac
for v in $M1_SCANS; do
    case $v in
    custom | ref) ;;
    *) echo "bench/run.sh: M1_SCANS=$M1_SCANS: want custom and/or ref" >&2; exit 2 ;;
    esac
done
case ${M1_BLOCK:-16} in
'' | *[!0-9]* | 0) echo "bench/run.sh: M1_BLOCK=$M1_BLOCK: want a whole number of sequences, 1 or more" >&2; exit 2 ;;
esac
mkdir -p "$(dirname "$out")"
if [ "${TABLE_ONLY:-0}" = 1 ]; then # re-print the table of the last run
    ARCHS=
    if [ ! -r "$out" ]; then
        echo "bench/run.sh: $out: no results to print (run it without TABLE_ONLY first)" >&2
        exit 1
    fi
else
    : > "$out"
fi
have_torch=0
if [ -z "$ARCHS" ]; then :; elif [ -x "$PY" ] && "$PY" -c 'import torch' 2>/dev/null; then have_torch=1; else
    echo "bench: /usr/bin/python3 with torch not found: Achilles only" >&2
fi
for arch in $ARCHS; do
    if [ "$arch" = mamba1 ]; then variants=$M1_SCANS; else variants=default; fi
    for layers in $LAYERS; do
        for t in $THREADS; do
            rep=1
            while [ "$rep" -le "$REPS" ]; do
                echo "bench: $arch, $layers layers, $t thread(s), run $rep of $REPS" >&2
                for tokens in task uniform; do
                    "$ACH" bench --arch "$arch" --layers "$layers" --threads "$t" --steps "$STEPS" --tokens "$tokens" |
                        grep '^RESULT' >> "$out"
                done
                if [ $have_torch = 1 ]; then
                    for conv in conv1d shifted; do
                        for v in $variants; do
                            case $v in
                            default) set -- ; ts=${TORCH_STEPS:-3} ;;
                            custom) set -- --scan custom ${M1_BLOCK:+--block "$M1_BLOCK"}; ts=${TORCH_STEPS:-3} ;;
                            ref) set -- --scan ref; ts=${TORCH_STEPS:-1} ;;
                            esac
                            OPENBLAS_NUM_THREADS=$t "$PY" bench/torch_bench.py --arch "$arch" --layers "$layers" --threads "$t" --steps "$ts" \
                                --conv "$conv" "$@" | grep '^RESULT' >> "$out"
                        done
                    done
                fi
                rep=$((rep + 1))
            done
        done
    done
done
awk '
function kv(s,   i, n, a, p) { delete r; n = split(s, a, " "); for (i = 2; i <= n; i++) { p = index(a[i], "="); r[substr(a[i], 1, p - 1)] = substr(a[i], p + 1) } }
function median(n,   i, j, t) { # of x[1..n]
    for (i = 2; i <= n; i++) { t = x[i]; for (j = i - 1; j >= 1 && x[j] > t; j--) x[j + 1] = x[j]; x[j + 1] = t }
    return n % 2 ? x[(n + 1) / 2] : (x[n / 2] + x[n / 2 + 1]) / 2
}
function med(k, impl,   i, n) { n = cnt[k, impl]; for (i = 1; i <= n; i++) x[i] = v[k, impl, i]; return n ? median(n) : "" }
function fmt(s) { return (s == "") ? "-" : sprintf("%.0f", s) }
{
    kv($0); key = r["arch"] " " r["layers"] " " r["threads"]
    if (!(key in seen)) { seen[key] = 1; order[++nk] = key }
    impl = r["impl"]; if (r["tokens"] == "uniform") impl = impl "-uniform"
    # every PyTorch variant of a configuration: torch-CONV (the default: Mamba-2 quadratic, Mamba-1 custom
    # scan) and torch-CONV-VARIANT (e.g. torch-shifted-ref: Mamba-1 on the selective_scan_ref loop)
    if (impl ~ /^torch-/ && !((key, impl) in istorch)) { istorch[key, impl] = 1; tl[key, ++ntl[key]] = impl }
    n = ++cnt[key, impl]; v[key, impl, n] = r["seq_per_s"]
    if (r["maxrss_mib"] + 0 > mem[key, impl] + 0) mem[key, impl] = r["maxrss_mib"]
}
END {
    printf("%-7s %6s %7s | %12s %12s %12s %12s %12s | %7s %7s %7s %4s | %-11s | %s\n", "mixer", "layers", "threads",
           "achilles", "uniform", "torch conv1d", "torch shift", "torch ref", "ratio", "lowest", "uniform", "runs",
           "vs torch", "achilles / torch peak MiB")
    for (i = 1; i <= nk; i++) {
        k = order[i]; split(k, f, " ")
        a = med(k, "achilles-fast"); u = med(k, "achilles-fast-uniform"); t1 = med(k, "torch-conv1d"); t2 = med(k, "torch-shifted")
        # each run against the fastest PyTorch variant of the same run
        nr = 0; nu = 0; nf = 0; delete wins
        for (j = 1; j <= cnt[k, "achilles-fast"]; j++) {
            best = ""; bi = ""
            for (m = 1; m <= ntl[k]; m++) {
                b = v[k, tl[k, m], j]
                if (b != "" && (best == "" || b + 0 > best + 0)) { best = b; bi = tl[k, m] }
            }
            if (bi != "") wins[bi]++
            if (best + 0 > 0) x[++nr] = v[k, "achilles-fast", j] / best
            if (best + 0 > 0 && v[k, "achilles-fast-uniform", j] != "") y[++nu] = v[k, "achilles-fast-uniform", j] / best
            b1 = v[k, "torch-conv1d-ref", j]; b2 = v[k, "torch-shifted-ref", j]
            if (b1 != "" || b2 != "") z[++nf] = (b1 + 0 > b2 + 0) ? b1 : b2
        }
        lo = ""; for (j = 1; j <= nr; j++) if (lo == "" || x[j] < lo) lo = x[j]
        ratio = nr ? sprintf("%.1fx", median(nr)) : "-"; low = nr ? sprintf("%.1fx", lo) : "-"
        for (j = 1; j <= nu; j++) x[j] = y[j]
        runi = nu ? sprintf("%.1fx", median(nu)) : "-"
        for (j = 1; j <= nf; j++) x[j] = z[j]
        tr = nf ? median(nf) : ""
        # the variant fastest in the most runs (on a tie, the one with the higher median), and its peak memory
        fi = ""; fm = 0
        for (m = 1; m <= ntl[k]; m++) {
            w = wins[tl[k, m]] + 0; if (w == 0) continue
            tmed = med(k, tl[k, m])
            if (fi == "" || w > wins[fi] || (w == wins[fi] && tmed + 0 > fm + 0)) { fi = tl[k, m]; fm = tmed }
        }
        vs = (fi == "") ? "-" : substr(fi, 7); tm = (fi == "" || mem[k, fi] == "") ? "-" : mem[k, fi]
        printf("%-7s %6s %7s | %12.0f %12s %12s %12s %12s | %7s %7s %7s %4d | %-11s | %s / %s\n", f[1], f[2], f[3], a,
               fmt(u), fmt(t1), fmt(t2), fmt(tr), ratio, low, runi, cnt[k, "achilles-fast"], vs, mem[k, "achilles-fast"], tm)
    }
    print "(training sequences/s, batch 2048 x 8, medians over the runs; achilles: on a batch of the composite"
    print " task, uniform: on uniform random tokens; torch conv1d / shift: the default PyTorch variants (Mamba-2:"
    print " quadratic SSD; Mamba-1: the custom autograd.Function scan), torch ref: Mamba-1 on the plain"
    print " selective_scan_ref loop, the faster conv of each run; ratio: the median over the runs of achilles / the"
    print " fastest torch variant of the same run, lowest: the lowest of those, uniform: the median ratio on uniform"
    print " tokens; vs torch: the variant fastest in the most runs (a tie: the higher median), its peak memory shown)"
}' "$out"
