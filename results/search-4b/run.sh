#!/bin/sh
# The protocol search at Fig. 4b's setting (docs/reproduction.md): one row a
# sweep over the all-one twin (and the standard twin where the row can change
# it), 5 layers, gamma 1, the paper's 200-epoch recipe looked at up to epoch
# 30. Rerun a row: sh results/search-4b/run.sh ROW; all rows: no argument.
# Finished rows are skipped and stopped ones resume (achilles sweep). A row
# that varies only an all-one key is its all-one run alone (a SPEC.json with a
# one-value grid, under specs/): its standard twin is r00-default's.
set -eu
cd "$(dirname "$0")/../.."
A=${ACHILLES:-./build/achilles}
EPOCHS=${EPOCHS:-30}
row() {
    name=$1; shift
    [ -z "${ONLY:-}" ] || [ "$ONLY" = "$name" ] || return 0
    $A sweep "$@" n_layer=5 gamma=1 --out results/search-4b/"$name" --until-epoch "$EPOCHS" --workers "${WORKERS:-2}"
}
ONLY=${1:-}
row r00-default        all_one_conv=off,on
row r01-len9           all_one_conv=off,on seq_len=9
row r02-offset1        all_one_conv=off,on key_offset=1
row r03-dtbias-zero    all_one_conv=off,on gamma_bias=zero
row r04-fan-shape0     all_one_conv=off,on fan=shape0
row r05-aone-trained   results/search-4b/specs/r05-aone-trained.json
row r06-aone-x         results/search-4b/specs/r06-aone-x.json
row r07-aone-bias      results/search-4b/specs/r07-aone-bias.json
row r08-fan-out        all_one_conv=off,on fan=out
row r09-mamba1         all_one_conv=off,on arch=mamba1
# Seed variance: the defaults' twins with seed 1 (r00 is seed 0)
row r10-seed1          all_one_conv=off,on seed=1
row r11-seed2          all_one_conv=off,on seed=2
