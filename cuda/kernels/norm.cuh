/* RMSNorm: one thread per row for the row's own sums (the reference's
 * summation order, so forward values match it up to the last bit where the
 * compiler does not fuse multiply-adds); the weight gradient, a sum over
 * rows, is chunked (common.cuh). */
#ifndef ACH_CUDA_NORM_CUH
#define ACH_CUDA_NORM_CUH
#include "common.cuh"

static __global__ void k_rmsnorm_forward(real *out, real *rstd, const real *inp, const real *w, int rows, int C,
                                         real eps)
{
    ACH_FOR(r, rows)
    {
        const real *x = inp + r * C;
        real *o = out + r * C;
        real ss = 0;
        for (int c = 0; c < C; c++) ss += x[c] * x[c];
        real s = (real)1 / r_sqrt(ss / C + eps);
        for (int c = 0; c < C; c++) o[c] = x[c] * s * w[c];
        rstd[r] = s;
    }
}

/* dx = s (w dy) - x s^3 / C * sum(w dy x), per row */
static __global__ void k_rmsnorm_backward_dx(real *dinp, const real *dout, const real *inp, const real *w,
                                             const real *rstd, int rows, int C)
{
    ACH_FOR(r, rows)
    {
        const real *x = inp + r * C, *g = dout + r * C;
        real *dx = dinp + r * C;
        real s = rstd[r], dot = 0;
        for (int c = 0; c < C; c++) dot += g[c] * w[c] * x[c];
        real k = dot * s * s * s / C;
        for (int c = 0; c < C; c++) dx[c] += s * w[c] * g[c] - k * x[c];
    }
}

/* part[k, c] = sum over the rows of chunk k of dout * x * rstd */
static __global__ void k_rmsnorm_dw_part(real *part, const real *dout, const real *inp, const real *rstd, int rows,
                                         int C)
{
    int nchunks = (rows + ACH_CU_CHUNK - 1) / ACH_CU_CHUNK;
    ACH_FOR(e, (size_t)nchunks * C)
    {
        int k = (int)(e / C), c = (int)(e % C), r1 = (k + 1) * ACH_CU_CHUNK < rows ? (k + 1) * ACH_CU_CHUNK : rows;
        real acc = 0;
        for (int r = k * ACH_CU_CHUNK; r < r1; r++) acc += dout[(size_t)r * C + c] * inp[(size_t)r * C + c] * rstd[r];
        part[e] = acc;
    }
}
#endif
