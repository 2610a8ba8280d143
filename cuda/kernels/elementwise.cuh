/* Kernels with one independent output element per loop index: each computes
 * exactly what the reference loop computes for that element (kernels_cpu.c),
 * with the per-element math of mathfn.h. */
#ifndef ACH_CUDA_ELEMENTWISE_CUH
#define ACH_CUDA_ELEMENTWISE_CUH
#include "common.cuh"

static __global__ void k_embedding_forward(real *out, const int *tokens, const real *wte, int n, int D)
{
    ACH_FOR(e, (size_t)n * D) out[e] = wte[(size_t)tokens[e / D] * D + e % D];
}

static __global__ void k_silu_forward(real *out, const real *inp, size_t n)
{
    ACH_FOR(i, n) out[i] = silu_r(inp[i]);
}

static __global__ void k_silu_backward(real *dinp, const real *dout, const real *inp, size_t n)
{
    ACH_FOR(i, n) dinp[i] += dout[i] * silu_grad_r(inp[i]);
}

static __global__ void k_gate_forward(real *out, const real *y, const real *z, int ldz, int rows, int C)
{
    ACH_FOR(e, (size_t)rows * C) out[e] = y[e] * silu_r(z[e / C * ldz + e % C]);
}

static __global__ void k_gate_backward(real *dy, real *dz, const real *dout, const real *y, const real *z, int ldz,
                                       int rows, int C)
{
    ACH_FOR(e, (size_t)rows * C)
    {
        size_t iz = e / C * ldz + e % C;
        dy[e] += dout[e] * silu_r(z[iz]);
        dz[iz] += dout[e] * y[e] * silu_grad_r(z[iz]);
    }
}

static __global__ void k_add_inplace(real *x, const real *y, size_t n)
{
    ACH_FOR(i, n) x[i] += y[i];
}

/* x[b, t, :] += pe[t, :], with period = L * D */
static __global__ void k_posenc_forward(real *x, const real *pe, size_t n, size_t period)
{
    ACH_FOR(i, n) x[i] += pe[i % period];
}

static __global__ void k_rows_replace(real *dst, const real *src, const unsigned char *mask, int rows, int C)
{
    ACH_FOR(e, (size_t)rows * C) if (mask[e / C]) dst[e] = src[e];
}

static __global__ void k_last_forward(real *out, const real *inp, int B, int L, int C)
{
    ACH_FOR(e, (size_t)B * C) out[e] = inp[((e / C) * L + L - 1) * C + e % C];
}

static __global__ void k_last_backward(real *dinp, const real *dout, int B, int L, int C)
{
    ACH_FOR(e, (size_t)B * C) dinp[((e / C) * L + L - 1) * C + e % C] += dout[e];
}

/* out[m, :] = bias: the matmul's C before a GEMM with beta = 1 */
static __global__ void k_fill_rows(real *out, const real *bias, int M, int N)
{
    ACH_FOR(e, (size_t)M * N) out[e] = bias[e % N];
}

/* As the reference: add scale p everywhere, then subtract scale at the label. */
static __global__ void k_crossentropy_backward(real *dlogits, const real *probs, const int *labels, int B, int V,
                                               real scale)
{
    ACH_FOR(e, (size_t)B * V)
    {
        real x = dlogits[e] + scale * probs[e];
        if ((int)(e % V) == labels[e / V]) x -= scale;
        dlogits[e] = x;
    }
}

static __global__ void k_adamw(real *w, real *m, real *v, const real *g, size_t n, real gscale, real decay, real b1,
                               real b2, real eps, real step_size, real bc2_sqrt)
{
    ACH_FOR(i, n) adamw_elem_r(&w[i], &m[i], &v[i], g[i] * gscale, decay, b1, b2, eps, step_size, bc2_sqrt);
}

/* AdamW over every tensor of the plan not frozen (grid row y = tensor y),
 * the gradient scaled by norm[1]: adamw_update's arithmetic, per tensor. */
static __global__ void k_adamw_tensors(real *w, real *m, real *v, const real *g, const ach_adamw_plan *plan,
                                       const double *norm)
{
    const ach_adamw_tensor *t = &plan->t[blockIdx.y];
    if (t->frozen) return;
    real gscale = (real)norm[1], decay = 1 - plan->lr * t->wd;
    size_t o = t->offset;
    ACH_FOR(i, t->numel)
    adamw_elem_r(&w[o + i], &m[o + i], &v[o + i], g[o + i] * gscale, decay, plan->b1, plan->b2, plan->eps,
                 t->step_size, t->bc2_sqrt);
}

/* delta = softplus(dt): the Mamba-1 scan kernels read it many times */
static __global__ void k_softplus(real *out, const real *inp, size_t n)
{
    ACH_FOR(i, n) out[i] = softplus_r(inp[i]);
}
#endif
