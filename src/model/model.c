/* The generic model (model.h): the parameter table, the arenas, the batch
 * on the backend, and the passes, which the model's family supplies
 * (family.h). */
#include "model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "family.h"

size_t ach_model_add_param(ach_model *m, int layer, const char *name, unsigned kind, int ndim, int s0, int s1,
                           int s2)
{
    if (m->cap < 0) return 0; /* out of memory before: ach_model_create fails */
    if (m->nparams == m->cap) {
        int cap = m->cap ? 2 * m->cap : 16;
        ach_param *p = realloc(m->params, cap * sizeof *p);
        if (!p) {
            m->cap = -1;
            return 0;
        }
        m->params = p, m->cap = cap;
    }
    ach_param *p = &m->params[m->nparams++];
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", name);
    p->ndim = ndim;
    p->shape[0] = s0, p->shape[1] = s1, p->shape[2] = s2;
    p->numel = (size_t)s0 * (ndim > 1 ? s1 : 1) * (ndim > 2 ? s2 : 1);
    p->kind = kind;
    p->layer = layer;
    p->offset = m->nweights;
    m->nweights += p->numel;
    return p->offset;
}

int ach_model_create(ach_model *m, const ach_config *cfg, const ach_kernels *k, char *err, size_t errlen)
{
    memset(m, 0, sizeof *m);
    if (cfg_validate(cfg, err, errlen)) return -1;
    const ach_family *f = ach_family_of(cfg->arch);
    const char *missing = ach_family_missing_kernel(f, k);
    if (*missing) {
        snprintf(err, errlen, "arch: the %s backend has no kernel %s, which the %s family needs", k->name, missing,
                 f->name);
        return -1;
    }
    m->cfg = *cfg;
    m->fam = f;
    m->k = k;
    m->subst_layer = -1;
    if (f->create(m) || m->cap < 0) goto oom;
    m->w = k->alloc(m->nweights * sizeof(real));
    m->g = k->alloc(m->nweights * sizeof(real));
    if (!m->w || !m->g) goto oom;
    return 0;
oom:
    snprintf(err, errlen, "out of memory creating the model");
    ach_model_free(m);
    return -1;
}

void ach_model_free(ach_model *m)
{
    if (m->k) {
        m->k->release(m->w);
        m->k->release(m->g);
        m->k->release(m->arena);
    }
    if (m->fam) m->fam->destroy(m);
    free(m->params);
    memset(m, 0, sizeof *m);
}

const ach_param *ach_model_param(const ach_model *m, const char *name)
{
    for (int i = 0; i < m->nparams; i++)
        if (!strcmp(m->params[i].name, name)) return &m->params[i];
    return NULL;
}

const ach_param *ach_model_param_of(const ach_model *m, int layer, unsigned kind)
{
    for (int i = 0; i < m->nparams; i++)
        if (m->params[i].layer == layer && m->params[i].kind == kind) return &m->params[i];
    return NULL;
}

void *ach_carve(ach_carver *cv, size_t bytes)
{
    void *p = cv->base ? cv->base + cv->off : NULL;
    cv->off += (bytes + 63) & ~(size_t)63;
    return p;
}

/* The activation arena's layout: the family's part, then the blocking mask. */
static size_t carve(ach_model *m, char *base, int B, int L)
{
    ach_carver cv = {base, 0};
    m->fam->carve(m, &cv, B, L);
    ACH_TAKE(&cv, m->block_mask, (size_t)B * L);
    return cv.off;
}

int ach_model_reserve(ach_model *m, int B, int L, char *err, size_t errlen)
{
    if (B < 1 || L < 1) {
        snprintf(err, errlen, "batch %d x length %d: both must be at least 1", B, L);
        return -1;
    }
    if (m->cfg.pos_max_len && L > m->cfg.pos_max_len) {
        snprintf(err, errlen, "sequence length %d exceeds the learned positional table's %d rows", L, m->cfg.pos_max_len);
        return -1;
    }
    m->k->release(m->arena);
    size_t bytes = carve(m, NULL, B, L);
    m->arena = m->k->alloc(bytes);
    if (!m->arena) {
        snprintf(err, errlen, "out of memory: activations for batch %d x length %d need %zu MiB", B, L, bytes >> 20);
        return -1;
    }
    carve(m, m->arena, B, L);
    m->B = B, m->L = L;
    return m->fam->prepare ? m->fam->prepare(m, err, errlen) : 0;
}

void ach_model_set_block(ach_model *m, const unsigned char *mask, int B, int L, uint64_t layers)
{
    m->block_layers = mask ? layers : 0;
    if (mask && layers) m->k->to_device(m->block_mask, mask, (size_t)B * L);
}

const unsigned char *ach_model_block_for(const ach_model *m, int l)
{
    return m->block_layers >> l & 1 ? m->block_mask : NULL;
}

int ach_model_set_batch(ach_model *m, const ach_batch *b, char *err, size_t errlen)
{
    struct { const char *name; const void *host; void *dev; size_t bytes; } parts[] = {
        {"tokens", b->tokens, m->tokens, (size_t)b->B * b->L * sizeof(int)},
        {"vectors", b->vectors, m->vectors, (size_t)b->B * b->L * m->in_dim * sizeof(real)},
        {"labels", b->labels, m->labels, (size_t)b->B * sizeof(int)},
        {"targets", b->targets, m->targets, (size_t)b->B * b->L * m->out_dim * sizeof(real)},
    };
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
        if (!parts[i].host != !parts[i].dev) {
            snprintf(err, errlen, "batch: %s %s", parts[i].name,
                     parts[i].dev ? "missing (the model takes them)" : "given, but the model takes none");
            return -1;
        }
    m->cur_B = b->B, m->cur_L = b->L;
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
        if (parts[i].dev) m->k->to_device(parts[i].dev, parts[i].host, parts[i].bytes);
    return 0;
}

void ach_model_launch_forward(ach_model *m, int lean)
{
    m->lean = lean;
    m->fam->forward(m);
    m->lean = 0;
}

double ach_model_loss(const ach_model *m)
{
    const ach_kernels *k = m->k;
    int B = m->cur_B;
    real host[256];
    double sum = 0;
    for (int b0 = 0; b0 < B; b0 += 256) { /* summed on the host in a fixed order */
        int n = B - b0 < 256 ? B - b0 : 256;
        k->to_host(host, m->losses + b0, n * sizeof(real));
        for (int i = 0; i < n; i++) sum += host[i];
    }
    return sum / B;
}

double ach_model_forward_batch(ach_model *m, const ach_batch *b, int lean)
{
    char err[128];
    if (ach_model_set_batch(m, b, err, sizeof err)) return NAN;
    ach_model_launch_forward(m, lean);
    return ach_model_loss(m);
}

double ach_model_forward(ach_model *m, const int *tokens, const int *labels, int B, int L)
{
    ach_batch b = {.B = B, .L = L, .tokens = tokens, .labels = labels};
    return ach_model_forward_batch(m, &b, 0);
}

double ach_model_forward_lean(ach_model *m, const int *tokens, const int *labels, int B, int L)
{
    ach_batch b = {.B = B, .L = L, .tokens = tokens, .labels = labels};
    return ach_model_forward_batch(m, &b, 1);
}

void ach_model_backward(ach_model *m)
{
    m->k->zero(m->g, m->nweights);
    m->fam->backward(m);
}

void ach_model_launch_train(ach_model *m)
{
    if (!m->fam->train) {
        ach_model_launch_forward(m, 1);
        ach_model_backward(m);
        return;
    }
    m->k->zero(m->g, m->nweights);
    m->fam->train(m);
}

int ach_model_fill(const ach_model *m, real *dst, size_t n, real value)
{
    real *v = malloc(n * sizeof *v);
    if (!v) return -1;
    for (size_t j = 0; j < n; j++) v[j] = value;
    m->k->to_device(dst, v, n * sizeof *v);
    free(v);
    return 0;
}
