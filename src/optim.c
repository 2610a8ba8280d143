/* AdamW + warmup/cosine schedule + global-norm clipping, matching
 * torch.optim.AdamW and torch.nn.utils.clip_grad_norm_. */
#include "optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void ach_optim_defaults(ach_optim_cfg *c)
{
    memset(c, 0, sizeof *c);
    c->lr_min = 1e-5;
    c->lr_max = 2.5e-4;
    c->warmup_epochs = 10;
    c->total_epochs = 200;
    c->beta1 = 0.9;
    c->beta2 = 0.999;
    c->eps = 1e-8;
    c->weight_decay = 0.01;
    c->clip = 1.0;
}

int ach_optim_create(ach_optim *o, const ach_model *m, const ach_optim_cfg *c)
{
    memset(o, 0, sizeof *o);
    o->cfg = *c;
    o->m = m->k->alloc(m->nweights * sizeof(real));
    o->v = m->k->alloc(m->nweights * sizeof(real));
    o->frozen = calloc(m->nparams, 1);
    o->steps = calloc(m->nparams, sizeof *o->steps);
    if (!o->m || !o->v || !o->frozen || !o->steps) {
        ach_optim_free(o, m);
        return -1;
    }
    return 0;
}

void ach_optim_free(ach_optim *o, const ach_model *m)
{
    if (m->k) {
        m->k->release(o->m);
        m->k->release(o->v);
    }
    free(o->frozen);
    free(o->steps);
    memset(o, 0, sizeof *o);
}

double ach_lr_at(const ach_optim_cfg *c, double epoch)
{
    double span = c->lr_max - c->lr_min;
    if (epoch < c->warmup_epochs) return c->lr_min + span * epoch / c->warmup_epochs;
    double len = c->total_epochs - c->warmup_epochs;
    double x = len > 0 ? (epoch - c->warmup_epochs) / len : 1;
    if (x > 1) x = 1;
    return c->lr_min + 0.5 * span * (1 + cos(3.14159265358979323846 * x));
}

double ach_optim_step(ach_optim *o, ach_model *m, double lr)
{
    const ach_kernels *k = m->k;
    const ach_optim_cfg *c = &o->cfg;
    double ss = 0;
    for (int i = 0; i < m->nparams; i++) /* per tensor, in table order: fixed */
        if (!o->frozen[i]) ss += k->sumsq(m->g + m->params[i].offset, m->params[i].numel);
    double norm = sqrt(ss);
    double scale = 1;
    if (c->clip > 0) { /* clip_grad_norm_: coef = max / (norm + 1e-6), clamped at 1 */
        scale = c->clip / (norm + 1e-6);
        if (scale > 1) scale = 1;
    }
    o->step++;
    for (int i = 0; i < m->nparams; i++) {
        const ach_param *p = &m->params[i];
        if (o->frozen[i]) continue;
        long t = ++o->steps[i];
        double step_size = lr / (1 - pow(c->beta1, (double)t));
        double bc2_sqrt = sqrt(1 - pow(c->beta2, (double)t));
        double wd = (p->kind & c->no_decay_kinds) ? 0 : c->weight_decay;
        k->adamw_update(m->w + p->offset, o->m + p->offset, o->v + p->offset, m->g + p->offset, p->numel, (real)scale,
                        (real)lr, (real)wd, (real)c->beta1, (real)c->beta2, (real)c->eps, (real)step_size,
                        (real)bc2_sqrt);
    }
    return norm;
}
