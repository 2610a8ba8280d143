/* Initialisation: the paper's γ rule, else the family's reference
 * (ach_family.init_tensor). */
#include "init.h"

#include <math.h>
#include <stdlib.h>

#include "family.h"
#include "rng.h"

/* FAN_SHAPE0 is how seed 003's reproduction computes d1 (docs/science.md §2.5). */
double ach_init_fan(const ach_param *p, ach_fan_rule rule)
{
    double rf = p->ndim > 2 ? p->shape[2] : 1;
    if (rule == FAN_SHAPE0) return p->shape[0];
    return (rule == FAN_IN ? p->shape[1] : p->shape[0]) * rf;
}

/* The γ rule where it applies, else the family's own initialisation. */
static void init_tensor(const ach_model *m, const ach_param *p, double *v, ach_rng *r)
{
    const ach_config *c = &m->cfg;
    if ((p->kind & c->gamma_kinds) && c->init == INIT_GAMMA) {
        double sd = pow(ach_init_fan(p, c->fan_rule), -c->gamma);
        for (size_t i = 0; i < p->numel; i++) v[i] = sd * rng_normal(r);
        return;
    }
    m->fam->init_tensor(c, p, v, r);
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
        init_tensor(m, p, v, &r);
        for (size_t j = 0; j < p->numel; j++) stage[j] = (real)v[j];
        m->k->to_device(m->w + p->offset, stage, p->numel * sizeof(real));
    }
    free(v);
    free(stage);
    return 0;
}
