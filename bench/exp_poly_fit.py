#!/usr/bin/python3
"""The sigmoid's exp polynomial in src/kernels/kernels_fast.c (vsigmoid).

exp(r) ~ 1 + r + r^2 (c2 + c3 r + c4 r^2 + c5 r^3) on |r| <= ln 2 / 2,
near-minimax in relative error by Lawson's iteration (weighted least
squares, the weights multiplied by the error each round), in double.
Prints the coefficients as float32 and the fit's relative error; then the
polynomial evaluated as the kernel does (float32 FMAs, Estrin) against
exp in double, in float32 ulps. Needs numpy (Debian's python3-numpy).

usage: bench/exp_poly_fit.py
"""
import numpy as np

A_MAX = np.log(2) / 2 * 1.0001
r = np.cos(np.linspace(0, np.pi, 4001)) * A_MAX  # Chebyshev-spaced points
target = np.exp(r)
A = np.stack([r**2, r**3, r**4, r**5], 1) / target[:, None]
b = (target - 1 - r) / target
w = np.ones_like(r)
for _ in range(300):
    W = np.sqrt(w)
    c, *_ = np.linalg.lstsq(A * W[:, None], b * W, rcond=None)
    w = w * np.abs(A @ c - b)
    w /= w.sum()
c32 = [np.float32(x) for x in c]
print("c2..c5 (float32):", ", ".join(repr(float(x)) for x in c32))
print("relative error of the fit (double): %.3g" % np.max(np.abs(A @ c - b)))


def fma(x, y, z):
    return np.float32(np.float64(x) * np.float64(y) + np.float64(z))


def kernel_exp(x):
    x = np.float32(x)
    s2 = np.float32(x * x)
    q0 = fma(c32[1], x, c32[0])
    q1 = fma(c32[3], x, c32[2])
    p = fma(q1, s2, q0)
    return np.float32(fma(p, s2, x) + np.float32(1))


xs = np.linspace(-A_MAX, A_MAX, 4001).astype(np.float32)
got = np.array([kernel_exp(x) for x in xs]).astype(np.float64)
ulps = np.abs(got - np.exp(xs.astype(np.float64))) / np.spacing(got.astype(np.float32)).astype(np.float64)
print("evaluated in float32: %.2f ulp at worst" % ulps.max())
