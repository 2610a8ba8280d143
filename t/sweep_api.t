#!/bin/sh
# The sweep library: grids, manifests, states, the phase table (t/sweep_api.c).
cd "$(dirname "$0")/.." || exit 1
exec ./build/t/sweep_api
