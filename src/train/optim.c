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

static size_t plan_bytes(const ach_model *m)
{
    return sizeof(ach_adamw_plan) + (size_t)m->nparams * sizeof(ach_adamw_tensor);
}

int ach_optim_create(ach_optim *o, const ach_model *m, const ach_optim_cfg *c)
{
    memset(o, 0, sizeof *o);
    o->cfg = *c;
    o->m = m->k->alloc(m->nweights * sizeof(real));
    o->v = m->k->alloc(m->nweights * sizeof(real));
    o->frozen = calloc(m->nparams, 1);
    o->steps = calloc(m->nparams, sizeof *o->steps);
    o->plan = calloc(1, plan_bytes(m));
    if (m->k->adamw_step) { /* the step plan and the norm live in backend memory too */
        o->plan_dev = m->k->alloc(plan_bytes(m));
        o->norm_dev = m->k->alloc(2 * sizeof(double));
    }
    if (!o->m || !o->v || !o->frozen || !o->steps || !o->plan ||
        (m->k->adamw_step && (!o->plan_dev || !o->norm_dev))) {
        ach_optim_free(o, m);
        return -1;
    }
    for (int i = 0; i < m->nparams; i++) /* the arena layout: fixed for the model's life */
        o->plan->t[i].offset = m->params[i].offset, o->plan->t[i].numel = m->params[i].numel;
    return 0;
}

void ach_optim_free(ach_optim *o, const ach_model *m)
{
    if (m->k) {
        m->k->release(o->m);
        m->k->release(o->v);
        m->k->release(o->plan_dev);
        m->k->release(o->norm_dev);
    }
    free(o->frozen);
    free(o->steps);
    free(o->plan);
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

void ach_optim_prepare(ach_optim *o, const ach_model *m, double lr)
{
    const ach_optim_cfg *c = &o->cfg;
    ach_adamw_plan *p = o->plan;
    p->clip = c->clip;
    p->lr = (real)lr, p->b1 = (real)c->beta1, p->b2 = (real)c->beta2, p->eps = (real)c->eps;
    o->step++;
    for (int i = 0; i < m->nparams; i++) {
        ach_adamw_tensor *t = &p->t[i];
        t->frozen = o->frozen[i];
        if (t->frozen) continue;
        long n = ++o->steps[i];
        t->wd = (real)((m->params[i].kind & c->no_decay_kinds) ? 0 : c->weight_decay);
        t->step_size = (real)(lr / (1 - pow(c->beta1, (double)n)));
        t->bc2_sqrt = (real)sqrt(1 - pow(c->beta2, (double)n));
    }
    if (o->plan_dev) m->k->to_device(o->plan_dev, p, plan_bytes(m));
}

void ach_optim_launch(ach_optim *o, ach_model *m)
{
    const ach_kernels *k = m->k;
    const ach_adamw_plan *p = o->plan;
    for (int i = 0; i < o->npin; i++) k->zero(m->g + o->pin[i].offset, o->pin[i].n);
    if (k->adamw_step) {
        k->adamw_step(m->w, o->m, o->v, m->g, o->plan_dev, m->nparams, o->norm_dev);
        return;
    }
    double ss = 0;
    for (int i = 0; i < m->nparams; i++) /* per tensor, in table order: fixed */
        if (!p->t[i].frozen) ss += k->sumsq(m->g + p->t[i].offset, p->t[i].numel);
    o->norm = sqrt(ss);
    double scale = 1;
    if (p->clip > 0) { /* clip_grad_norm_: coef = max / (norm + 1e-6), clamped at 1 */
        scale = p->clip / (o->norm + 1e-6);
        if (scale > 1) scale = 1;
    }
    for (int i = 0; i < m->nparams; i++) {
        const ach_adamw_tensor *t = &p->t[i];
        if (t->frozen) continue;
        k->adamw_update(m->w + t->offset, o->m + t->offset, o->v + t->offset, m->g + t->offset, t->numel,
                        (real)scale, p->lr, t->wd, p->b1, p->b2, p->eps, t->step_size, t->bc2_sqrt);
    }
}

double ach_optim_norm(const ach_optim *o, const ach_model *m)
{
    if (!o->norm_dev) return o->norm;
    double norm;
    m->k->to_host(&norm, o->norm_dev, sizeof norm);
    return norm;
}

double ach_optim_step(ach_optim *o, ach_model *m, double lr)
{
    ach_optim_prepare(o, m, lr);
    ach_optim_launch(o, m);
    ach_optim_repin(o, m);
    return ach_optim_norm(o, m);
}

int ach_optim_pin(ach_optim *o, const ach_model *m, size_t offset, size_t n, real value)
{
    if (o->npin == ACH_OPTIM_MAX_PINS) return -1;
    /* zero moments: the entries' AdamW update stays 0, as their gradient will */
    if (ach_model_fill(m, m->w + offset, n, value) || ach_model_fill(m, o->m + offset, n, 0) ||
        ach_model_fill(m, o->v + offset, n, 0))
        return -1;
    o->pin[o->npin].offset = offset, o->pin[o->npin].n = n, o->pin[o->npin].value = value;
    o->npin++;
    return 0;
}

void ach_optim_repin(const ach_optim *o, const ach_model *m)
{
    for (int i = 0; i < o->npin; i++) ach_model_fill(m, m->w + o->pin[i].offset, o->pin[i].n, o->pin[i].value);
}
