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
#endif
