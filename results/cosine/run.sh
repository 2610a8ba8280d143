#!/bin/sh
# The appendix's conv cosine similarity: the standard model, 2 layers, gamma 1,
# the paper's recipe (200 epochs), then the K x K tap cosines of each layer at
# epoch 0 beside the end: achilles analyze results/cosine/L2-g1 cosine
# (the model state stays on the machine that trained it: results/.gitignore).
set -eu
cd "$(dirname "$0")/../.."
A=${ACHILLES:-./build/achilles}
if [ -e results/cosine/L2-g1/state.safetensors ]; then
    $A train --quiet --resume results/cosine/L2-g1
else
    $A train --quiet n_layer=2 gamma=1 threads=1 --out results/cosine/L2-g1
fi
$A analyze results/cosine/L2-g1 cosine --ascii | sed -n '/^layer 0/,$p' > results/cosine/cosine.txt
cat results/cosine/cosine.txt
