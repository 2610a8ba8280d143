#!/bin/sh
# Fig. 4c: positional encoding (none, sinusoidal, learned), 2 layers, gamma 0.5,
# the paper's recipe run to epoch 210 (10 warmup epochs, then the cosine over
# 200). One sweep; rerun or continue it with: sh results/fig4c/run.sh
set -eu
cd "$(dirname "$0")/../.."
A=${ACHILLES:-./build/achilles}
$A sweep pos_enc=none,sinusoidal,learned n_layer=2 gamma=0.5 epochs=210 --out results/fig4c/sweep --workers "${WORKERS:-3}"
