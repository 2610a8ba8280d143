#!/bin/sh
# Reverse interop: checkpoints written by the C engine load into an
# independent PyTorch reference (mamba_ssm names, load_state_dict strict), and
# `achilles grad` agrees with its float64 loss, logits and gradients.
# Needs Debian's python3-torch; skipped otherwise.
cd "$(dirname "$0")/.." || exit 1
PY=/usr/bin/python3
REF=t/torch_ref.py
ACH=./build/achilles

if ! "$PY" -c 'import torch' >/dev/null 2>&1; then
    echo "1..0 # SKIP python3-torch not installed"
    exit 0
fi
if [ ! -x "$ACH" ]; then
    echo "1..0 # SKIP $ACH not built"
    exit 0
fi

DIR=$(mktemp -d "${TMPDIR:-/tmp}/achilles-interop.XXXXXX") || exit 1
trap 'rm -rf "$DIR"' EXIT INT TERM

n=0
fail=0
# step DESC CMD...: one TAP line; the command's output goes to diagnostics.
step() {
    desc=$1
    shift
    n=$((n + 1))
    if "$@" >"$DIR/out" 2>&1; then
        echo "ok $n - $desc"
        rc=0
    else
        rc=$?
        echo "not ok $n - $desc"
        echo "#   exit $rc: $*"
        fail=$((fail + 1))
    fi
    sed 's/^/# /' "$DIR/out"
    return $rc
}
skip() {
    n=$((n + 1))
    echo "ok $n - $1 # SKIP previous step failed"
}

echo "1..8"
for arch in mamba1 mamba2; do
    d="$DIR/$arch"
    mkdir -p "$d"
    if step "$arch: achilles init" \
            "$ACH" init --arch "$arch" --layers 2 --seed 7 "$d/m.safetensors" &&
       step "$arch: write batch" "$PY" "$REF" batch "$d/batch.safetensors" 4 8 "$d/m.safetensors" 11 &&
       step "$arch: achilles grad" \
            "$ACH" grad "$d/m.safetensors" "$d/batch.safetensors" "$d/g.safetensors"; then
        step "$arch: PyTorch reference agrees (strict load, loss, logits, grads)" \
            "$PY" "$REF" check "$d/m.safetensors" "$d/batch.safetensors" "$d/g.safetensors"
    else
        # skip whatever did not run
        while [ $n -lt 4 ] || { [ "$arch" = mamba2 ] && [ $n -lt 8 ]; }; do
            skip "$arch: not run"
        done
    fi
done
[ $fail -eq 0 ]
