#!/bin/sh
# The CUDA backend on a GPU, from `make cuda`: every kernel and whole
# training steps against the CPU engine (build/cuda/cuda_check: t/cuda_emu.c
# run on the device, plus the paper's batch size), a short run through
# achilles-cuda on both backends, and the throughput benchmark. Without a
# GPU (or without the CUDA build) it skips.
cd "$(dirname "$0")/.." || exit 1
B=./build
if [ ! -x $B/cuda/devices ] || [ ! -x $B/cuda/cuda_check ] || [ ! -x $B/achilles-cuda ]; then
    echo "1..0 # SKIP no CUDA build (make cuda)"
    exit 0
fi
if ! $B/cuda/devices >/dev/null 2>&1; then
    echo "1..0 # SKIP no CUDA device"
    exit 0
fi
. t/tap.sh
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
$B/cuda/devices | sed 's/^/# device /'

# 1. kernels and training steps (its own TAP, folded into one line here)
$B/cuda/cuda_check >"$tmp/check.out" 2>&1
rc=$?
pass=$(grep -c '^ok' "$tmp/check.out")
bad=$(grep -c '^not ok' "$tmp/check.out")
grep -e '^not ok' -e '^#' "$tmp/check.out" | sed 's/^#*/#/'
grep -e 'gradient tensors' -e 'weight tensors' "$tmp/check.out" | sed 's/^ok [0-9]* - /# /'
check "cuda_check: every kernel and whole steps match the CPU engine ($pass passed, $bad failed)" \
    "[ $rc = 0 ] && [ $bad = 0 ] && [ $pass -gt 100 ]"

# 2. one epoch of the demo preset on both backends, and the GPU twice
train() { $B/achilles-cuda train --backend "$1" preset=demo epochs=1 batch_size=256 seed=5 --quiet --out "$tmp/$2"; }
check "achilles-cuda train --backend cpu" "train cpu cpu"
check "achilles-cuda train --backend cuda" "train cuda gpu1"
check "achilles-cuda train --backend cuda, again" "train cuda gpu2"
# epoch 1's losses and gradient norm (CSV columns 4, 5, 9): float32 drift
# over 25 steps stays far below 1e-3 relative
cols() { awk -F, 'NR == 3 {print $4, $5, $9}' "$tmp/$1/training_log.csv"; }
check "GPU and CPU runs agree: $(cols gpu1) vs $(cols cpu)" \
    "echo \$(cols gpu1) \$(cols cpu) | awk '{for (i = 1; i <= 3; i++) if (\$i - \$(i+3) > 1e-3 * \$(i+3) || \$(i+3) - \$i > 1e-3 * \$(i+3)) exit 1}'"
# everything but the timing columns (seq_per_s, elapsed_s)
check "two GPU runs are bit-identical (training_log.csv)" \
    "[ \"\$(cut -d, -f1-9,12- $tmp/gpu1/training_log.csv)\" = \"\$(cut -d, -f1-9,12- $tmp/gpu2/training_log.csv)\" ]"
# steps as CUDA graphs (the default) and kernel by kernel: the same bits
check "achilles-cuda train --backend cuda, without graphs" \
    "env ACHILLES_CUDA_GRAPHS=0 $B/achilles-cuda train --backend cuda preset=demo epochs=1 batch_size=256 seed=5 --quiet --out $tmp/nograph"
check "graphs change no bit (training_log.csv)" \
    "[ \"\$(cut -d, -f1-9,12- $tmp/gpu1/training_log.csv)\" = \"\$(cut -d, -f1-9,12- $tmp/nograph/training_log.csv)\" ]"

# 3. throughput (printed; the target is in bench/RESULTS.md and cuda/README.md)
for arch in mamba2 mamba1; do
    $B/achilles-cuda bench --backend cuda --arch $arch --steps 50 >"$tmp/bench.out" 2>&1
    rc=$?
    sed 's/^/# /' "$tmp/bench.out"
    check "achilles-cuda bench --backend cuda --arch $arch" "[ $rc = 0 ]"
    ACHILLES_CUDA_GRAPHS=0 $B/achilles-cuda bench --backend cuda --arch $arch --steps 50 2>&1 | sed 's/^/# without graphs: /'
done
done_testing
