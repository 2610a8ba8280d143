#!/usr/bin/python3
"""The exp polynomials of the fast kernels, fitted.

Default: the sigmoid's (src/kernels/fast_simd.c, vsigmoid):
exp(r) ~ 1 + r + r^2 (c2 + c3 r + c4 r^2 + c5 r^3) on |r| <= ln 2 / 2.

--exp2: the Mamba-1 scan's decay (src/kernels/fast_scan1.c, vexp2_neg):
2^f ~ 1 + f (c1 + c2 f + c3 f^2 + c4 f^3 + c5 f^4), on [0, 1) (AVX-512:
f = x - floor(x)) and on [-1/2, 1/2] (AVX2 and portable: f = x - round(x)),
evaluated by Horner's scheme.

Each is near-minimax in relative error by Lawson's iteration (weighted
least squares, the weights multiplied by the error each round), in double.
Prints the coefficients as float32 and the fit's relative error; then the
polynomial evaluated as the kernel does (float32 FMAs) against the exact
function in double, in float32 ulps. Needs numpy (Debian's python3-numpy).

usage: bench/exp_poly_fit.py [--exp2]
"""
import sys

import numpy as np


def lawson(x, A, b):
    w = np.ones_like(x)
    for _ in range(300):
        W = np.sqrt(w)
        c, *_ = np.linalg.lstsq(A * W[:, None], b * W, rcond=None)
        w = w * np.abs(A @ c - b)
        w /= w.sum()
    return c


def fma(x, y, z):
    return np.float32(np.float64(x) * np.float64(y) + np.float64(z))


def ulps(got, want):
    got = np.asarray(got, dtype=np.float64)
    return np.max(np.abs(got - want) / np.spacing(got.astype(np.float32)).astype(np.float64))


def sigmoid_exp():
    A_MAX = np.log(2) / 2 * 1.0001
    r = np.cos(np.linspace(0, np.pi, 4001)) * A_MAX  # Chebyshev-spaced points
    target = np.exp(r)
    A = np.stack([r**2, r**3, r**4, r**5], 1) / target[:, None]
    b = (target - 1 - r) / target
    c = lawson(r, A, b)
    c32 = [np.float32(x) for x in c]
    print("c2..c5 (float32):", ", ".join(repr(float(x)) for x in c32))
    print("relative error of the fit (double): %.3g" % np.max(np.abs(A @ c - b)))

    def kernel_exp(x):  # Estrin, as the kernel
        x = np.float32(x)
        s2 = np.float32(x * x)
        q0 = fma(c32[1], x, c32[0])
        q1 = fma(c32[3], x, c32[2])
        p = fma(q1, s2, q0)
        return np.float32(fma(p, s2, x) + np.float32(1))

    xs = np.linspace(-A_MAX, A_MAX, 4001).astype(np.float32)
    got = [kernel_exp(x) for x in xs]
    print("evaluated in float32: %.2f ulp at worst" % ulps(got, np.exp(xs.astype(np.float64))))


def exp2(lo, hi, degree=5):
    f = (lo + hi) / 2 + np.cos(np.linspace(0, np.pi, 6001)) * (hi - lo) / 2
    target = np.exp2(f)
    A = np.stack([f**k for k in range(1, degree + 1)], 1) / target[:, None]
    b = (target - 1) / target
    c = lawson(f, A, b)
    c32 = [np.float32(x) for x in c]
    print("2^f on [%g, %g]: c1..c%d (float32):" % (lo, hi, degree), ", ".join(repr(float(x)) for x in c32))
    print("  relative error of the fit (double): %.3g" % np.max(np.abs(A @ c - b)))

    def kernel_exp2(x):  # Horner, as the kernel
        p = c32[-1]
        for ck in reversed(c32[:-1]):
            p = fma(p, x, ck)
        return fma(p, x, np.float32(1))

    xs = np.linspace(lo, hi, 20001, endpoint=lo == -hi).astype(np.float32)
    got = [kernel_exp2(x) for x in xs]
    print("  evaluated in float32: %.2f ulp at worst" % ulps(got, np.exp2(xs.astype(np.float64))))


if sys.argv[1:] == ["--exp2"]:
    exp2(0.0, 1.0)
    exp2(-0.5, 0.5)
elif sys.argv[1:]:
    sys.exit(__doc__.split("\n\n")[-1].strip())
else:
    sigmoid_exp()
