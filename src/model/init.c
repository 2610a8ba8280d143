/* Initialisation, following mamba_ssm (Mamba/Mamba2 __init__ and
 * MixerModel._init_weights) and the paper's γ rule. */
#include "init.h"

#include <math.h>
#include <stdlib.h>

#include "rng.h"

/* torch's fan convention: fan_in = shape[1] * receptive field,
 * fan_out = shape[0] * receptive field; FAN_SHAPE0 is shape[0] alone, as
 * seed 003's reproduction computes d1 (docs/science.md §2.5). */
static double fan(const ach_param *p, ach_fan_rule rule)
{
    double rf = p->ndim > 2 ? p->shape[2] : 1;
    if (rule == FAN_SHAPE0) return p->shape[0];
    return (rule == FAN_IN ? p->shape[1] : p->shape[0]) * rf;
}

static double inv_softplus(double x) { return x + log(-expm1(-x)); }

static void init_tensor(const ach_config *c, const ach_param *p, double *v, ach_rng *r)
{
    size_t n = p->numel;
    double kaiming = 1.0 / sqrt(fan(p, FAN_IN)); /* torch Linear/Conv default bound */
    if ((p->kind & c->gamma_kinds) && c->init == INIT_GAMMA) {
        double sd = pow(fan(p, c->fan_rule), -c->gamma);
        for (size_t i = 0; i < n; i++) v[i] = sd * rng_normal(r);
        return;
    }
    switch (p->kind) {
    case KIND_EMBEDDING: /* MixerModel._init_weights: initializer_range 0.02 */
        for (size_t i = 0; i < n; i++) v[i] = 0.02 * rng_normal(r);
        break;
    case KIND_OUT_PROJ: /* kaiming, rescaled by 1/sqrt(n_layer) (prenorm residual) */
        kaiming /= sqrt((double)c->n_layer);
        /* fall through */
    case KIND_IN_PROJ:
    case KIND_X_PROJ:
    case KIND_CONV:
        for (size_t i = 0; i < n; i++) v[i] = kaiming * (2 * rng_uniform(r) - 1);
        break;
    case KIND_DT_PROJ: { /* dt_init "random": U(-dt_rank^-0.5, dt_rank^-0.5) */
        double b = 1.0 / sqrt((double)c->dt_rank);
        for (size_t i = 0; i < n; i++) v[i] = b * (2 * rng_uniform(r) - 1);
        break;
    }
    case KIND_BIAS: /* conv1d.bias: torch's default under the reference, 0 under γ */
        for (size_t i = 0; i < n; i++) v[i] = c->init == INIT_REFERENCE ? kaiming * (2 * rng_uniform(r) - 1) : 0;
        break;
    case KIND_DT_BIAS: /* softplus^-1(dt), dt log-uniform in [dt_min, dt_max], floored */
        if (c->init == INIT_GAMMA && c->dt_bias_zero) {
            for (size_t i = 0; i < n; i++) v[i] = 0;
            break;
        }
        for (size_t i = 0; i < n; i++) {
            double dt = exp(rng_uniform(r) * (log(c->dt_max) - log(c->dt_min)) + log(c->dt_min));
            v[i] = inv_softplus(dt < c->dt_init_floor ? c->dt_init_floor : dt);
        }
        break;
    case KIND_A_LOG: /* Mamba-1: log(1..N) per channel; Mamba-2: log(U(1, 16)) per head */
        for (size_t i = 0; i < n; i++)
            v[i] = c->arch == ARCH_MAMBA1 ? log((double)(i % c->d_state + 1)) : log(1 + 15 * rng_uniform(r));
        break;
    case KIND_POS: /* zero, so switching it on changes nothing until it trains */
        for (size_t i = 0; i < n; i++) v[i] = 0;
        break;
    case KIND_D:
    case KIND_NORM:
        for (size_t i = 0; i < n; i++) v[i] = 1;
        break;
    }
}

int ach_init_params(ach_model *m)
{
    size_t maxn = 0;
    for (int i = 0; i < m->nparams; i++) maxn = m->params[i].numel > maxn ? m->params[i].numel : maxn;
    double *v = malloc(maxn * sizeof *v);
    real *stage = malloc(maxn * sizeof *stage);
    if (!v || !stage) {
        free(v);
        free(stage);
        return -1;
    }
    for (int i = 0; i < m->nparams; i++) {
        const ach_param *p = &m->params[i];
        ach_rng r;
        rng_init(&r, m->cfg.seed, (uint64_t)i + 1);
        init_tensor(&m->cfg, p, v, &r);
        for (size_t j = 0; j < p->numel; j++) stage[j] = (real)v[j];
        m->k->to_device(m->w + p->offset, stage, p->numel * sizeof(real));
    }
    free(v);
    free(stage);
    return 0;
}
