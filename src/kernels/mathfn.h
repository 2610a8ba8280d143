/* Per-element math shared by every backend (CPU and CUDA include this), so
 * the definitions cannot drift apart. */
#ifndef ACH_MATHFN_H
#define ACH_MATHFN_H
#include <math.h>

#include "real.h"

#ifdef ACH_F64
#define r_exp exp
#define r_log1p log1p
#define r_sqrt sqrt
#else
#define r_exp expf
#define r_log1p log1pf
#define r_sqrt sqrtf
#endif

#ifdef __CUDACC__
#define ACH_FN static inline __host__ __device__
#else
#define ACH_FN static inline
#endif

ACH_FN real sigmoid_r(real x) { return (real)1 / ((real)1 + r_exp(-x)); }
ACH_FN real silu_r(real x) { return x * sigmoid_r(x); }
/* d/dx silu(x) = s (1 + x (1 - s)) with s = sigmoid(x) */
ACH_FN real silu_grad_r(real x)
{
    real s = sigmoid_r(x);
    return s * ((real)1 + x * ((real)1 - s));
}
/* softplus with mamba_ssm's threshold: identity above 20. */
ACH_FN real softplus_r(real x) { return x <= (real)20 ? r_log1p(r_exp(x)) : x; }
ACH_FN real softplus_grad_r(real x) { return x <= (real)20 ? sigmoid_r(x) : (real)1; }
/* The Mamba-1 scan's per-step decay exp(delta A) with A = -exp(a_log). */
ACH_FN real mamba1_decay_r(real delta, real a_log) { return r_exp(-delta * r_exp(a_log)); }
/* One AdamW element as torch.optim.AdamW computes it (g already scaled by
 * clipping; decay = 1 - lr wd): see adamw_update in kernels.h. */
ACH_FN void adamw_elem_r(real *w, real *m, real *v, real g, real decay, real b1, real b2, real eps, real step_size,
                         real bc2_sqrt)
{
    real wi = *w * decay, mi = b1 * *m + (1 - b1) * g, vi = b2 * *v + (1 - b2) * g * g;
    *m = mi;
    *v = vi;
    *w = wi - step_size * mi / (r_sqrt(vi) / bc2_sqrt + eps);
}
#endif
