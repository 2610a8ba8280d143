#!/bin/sh
# Fig. 4a: the fully-symmetric task (data/fully-symmetric.json, the appendix's
# construction), d_model 128, gamma 0.5, 2 and 3 layers, the paper's recipe
# (200 epochs). The paper: pair 34 reaches 1.0, pair 43 stays near 0. One
# sweep; rerun or continue it with: sh results/fig4a/run.sh (EPOCHS=N holds
# the runs at epoch N, to be continued later).
set -eu
cd "$(dirname "$0")/../.."
A=${ACHILLES:-./build/achilles}
$A sweep preset=fully-symmetric d_model=128 gamma=0.5 n_layer=2,3 --out results/fig4a/sweep \
    --until-epoch "${EPOCHS:-200}" --workers "${WORKERS:-2}"
