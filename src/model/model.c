/* The language model around the mixers: parameter table, arenas, and the
 * LM forward/backward (embedding, residual blocks, norm_f, tied lm_head,
 * cross-entropy on the last position). */
#include "model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int add_param(ach_model *m, int cap, int layer, const char *suffix, unsigned kind, int ndim, int s0, int s1,
                     int s2, size_t *off)
{
    if (m->nparams >= cap) return -1;
    ach_param *p = &m->params[m->nparams++];
    if (layer >= 0) snprintf(p->name, sizeof p->name, "backbone.layers.%d.%s", layer, suffix);
    else snprintf(p->name, sizeof p->name, "%s", suffix);
    p->ndim = ndim;
    p->shape[0] = s0, p->shape[1] = s1, p->shape[2] = s2;
    p->numel = (size_t)s0 * (ndim > 1 ? s1 : 1) * (ndim > 2 ? s2 : 1);
    p->kind = kind;
    p->layer = layer;
    p->offset = m->nweights;
    m->nweights += p->numel;
    if (off) *off = p->offset;
    return 0;
}

/* The tensors in mamba_ssm's state_dict order. */
static void build_params(ach_model *m, int cap)
{
    const ach_config *c = &m->cfg;
    int D = c->d_model, N = c->d_state, K = c->d_conv, Di = cfg_d_inner(c), Cd = cfg_conv_dim(c);
    add_param(m, cap, -1, "backbone.embedding.weight", KIND_EMBEDDING, 2, c->vocab_size, D, 0, &m->embedding);
    for (int l = 0; l < c->n_layer; l++) {
        ach_layer_params *lp = &m->lp[l];
        add_param(m, cap, l, "mixer.in_proj.weight", KIND_IN_PROJ, 2, cfg_in_proj_dim(c), D, 0, &lp->in_proj);
        add_param(m, cap, l, "mixer.conv1d.weight", KIND_CONV, 3, Cd, 1, K, &lp->conv_w);
        add_param(m, cap, l, "mixer.conv1d.bias", KIND_BIAS, 1, Cd, 0, 0, &lp->conv_b);
        if (c->arch == ARCH_MAMBA1) {
            add_param(m, cap, l, "mixer.x_proj.weight", KIND_X_PROJ, 2, c->dt_rank + 2 * N, Di, 0, &lp->x_proj);
            add_param(m, cap, l, "mixer.dt_proj.weight", KIND_DT_PROJ, 2, Di, c->dt_rank, 0, &lp->dt_proj_w);
            add_param(m, cap, l, "mixer.dt_proj.bias", KIND_DT_BIAS, 1, Di, 0, 0, &lp->dt_proj_b);
            add_param(m, cap, l, "mixer.A_log", KIND_A_LOG, 2, Di, N, 0, &lp->A_log);
            add_param(m, cap, l, "mixer.D", KIND_D, 1, Di, 0, 0, &lp->D);
        } else {
            int H = cfg_nheads(c);
            add_param(m, cap, l, "mixer.dt_bias", KIND_DT_BIAS, 1, H, 0, 0, &lp->dt_bias);
            add_param(m, cap, l, "mixer.A_log", KIND_A_LOG, 1, H, 0, 0, &lp->A_log);
            add_param(m, cap, l, "mixer.D", KIND_D, 1, H, 0, 0, &lp->D);
            add_param(m, cap, l, "mixer.norm.weight", KIND_NORM, 1, Di, 0, 0, &lp->gnorm);
        }
        add_param(m, cap, l, "mixer.out_proj.weight", KIND_OUT_PROJ, 2, D, Di, 0, &lp->out_proj);
        add_param(m, cap, l, "norm.weight", KIND_NORM, 1, D, 0, 0, &lp->norm);
    }
    add_param(m, cap, -1, "backbone.norm_f.weight", KIND_NORM, 1, D, 0, 0, &m->norm_f);
    if (c->pos_max_len)
        add_param(m, cap, -1, "backbone.pos_embedding.weight", KIND_POS, 2, c->pos_max_len, D, 0, &m->pos);
}

int ach_model_create(ach_model *m, const ach_config *cfg, const ach_kernels *k, char *err, size_t errlen)
{
    memset(m, 0, sizeof *m);
    if (cfg_validate(cfg, err, errlen)) return -1;
    m->cfg = *cfg;
    m->k = k;
    m->subst_layer = -1;
    int cap = 3 + 10 * cfg->n_layer;
    m->params = calloc(cap, sizeof *m->params);
    m->lp = calloc(cfg->n_layer, sizeof *m->lp);
    if (!m->params || !m->lp) goto oom;
    build_params(m, cap);
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
    free(m->params);
    free(m->lp);
    free(m->layers);
    memset(m, 0, sizeof *m);
}

const ach_param *ach_model_param(const ach_model *m, const char *name)
{
    for (int i = 0; i < m->nparams; i++)
        if (!strcmp(m->params[i].name, name)) return &m->params[i];
    return NULL;
}

/* Carves the activation arena: called twice, first to count (base NULL). */
static size_t carve(ach_model *m, char *base, int B, int L)
{
    const ach_config *c = &m->cfg;
    size_t R = (size_t)B * L, D = c->d_model, Di = cfg_d_inner(c), Cd = cfg_conv_dim(c), P = cfg_in_proj_dim(c);
    size_t X = c->arch == ARCH_MAMBA1 ? (size_t)c->dt_rank + 2 * c->d_state : 0, V = c->vocab_size;
    size_t off = 0;
#define TAKE(ptr, n, type) do { if (base) ptr = (type *)(base + off); off += (((n) * sizeof(type)) + 63) & ~(size_t)63; } while (0)
    for (int l = 0; l < c->n_layer; l++) {
        ach_layer_acts *a = &m->layers[l];
        TAKE(a->resid, R * D, real);
        TAKE(a->rstd, R, real);
        TAKE(a->xn, R * D, real);
        TAKE(a->proj, R * P, real);
        TAKE(a->conv, R * Cd, real);
        TAKE(a->act, R * Cd, real);
        TAKE(a->xdbl, R * X, real);
        TAKE(a->dt, c->arch == ARCH_MAMBA1 ? R * Di : 0, real);
        TAKE(a->y, R * Di, real);
        TAKE(a->gated, R * Di, real);
        TAKE(a->rstd2, c->arch == ARCH_MAMBA2 ? R : 0, real);
        TAKE(a->normed, c->arch == ARCH_MAMBA2 ? R * Di : 0, real);
    }
    TAKE(m->resid_out, R * D, real);
    TAKE(m->last, B * D, real);
    TAKE(m->rstd_f, B, real);
    TAKE(m->last_n, B * D, real);
    TAKE(m->logits, B * V, real);
    TAKE(m->probs, B * V, real);
    TAKE(m->losses, B, real);
    size_t w1 = mamba1_scan_work(L, c->d_state), w2 = mamba2_ssd_work(L);
    TAKE(m->work, w1 > w2 ? w1 : w2, real);
    TAKE(m->pe_sin, (size_t)L * D, real);
    /* gradient scratch for one layer at a time */
    TAKE(m->d_resid, R * D, real);
    TAKE(m->d_xn, R * D, real);
    TAKE(m->d_proj, R * P, real);
    TAKE(m->d_conv, R * Cd, real);
    TAKE(m->d_act, R * Cd, real);
    TAKE(m->d_xdbl, R * X, real);
    TAKE(m->d_dt, c->arch == ARCH_MAMBA1 ? R * Di : 0, real);
    TAKE(m->d_y, R * Di, real);
    TAKE(m->d_gated, R * Di, real);
    TAKE(m->d_normed, c->arch == ARCH_MAMBA2 ? R * Di : 0, real);
    TAKE(m->d_last, B * D, real);
    TAKE(m->d_last_n, B * D, real);
    TAKE(m->d_logits, B * V, real);
    TAKE(m->tokens, R, int);
    TAKE(m->labels, (size_t)B, int);
    TAKE(m->block_mask, R, unsigned char);
#undef TAKE
    return off;
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
    free(m->layers);
    m->arena = NULL;
    m->layers = calloc(m->cfg.n_layer, sizeof *m->layers);
    size_t bytes = m->layers ? carve(m, NULL, B, L) : 0;
    if (m->layers) m->arena = m->k->alloc(bytes);
    if (!m->arena) {
        snprintf(err, errlen, "out of memory: activations for batch %d x length %d need %zu MiB", B, L, bytes >> 20);
        return -1;
    }
    carve(m, m->arena, B, L);
    m->B = B, m->L = L;
    /* PE[t, 2i] = sin(t w_i), PE[t, 2i+1] = cos(t w_i), w_i = 10000^(-2i/D) */
    int D = m->cfg.d_model;
    real *pe = malloc((size_t)L * D * sizeof *pe);
    if (!pe) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (int t = 0; t < L; t++)
        for (int i = 0; i < D; i++) {
            double w = pow(10000.0, -(double)(i - i % 2) / D);
            pe[(size_t)t * D + i] = (real)(i % 2 ? cos(t * w) : sin(t * w));
        }
    m->k->to_device(m->pe_sin, pe, (size_t)L * D * sizeof *pe);
    free(pe);
    return 0;
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

void ach_model_set_batch(ach_model *m, const int *tokens, const int *labels, int B, int L)
{
    m->cur_B = B, m->cur_L = L;
    m->k->to_device(m->tokens, tokens, (size_t)B * L * sizeof(int));
    m->k->to_device(m->labels, labels, (size_t)B * sizeof(int));
}

/* The embedding and layers [0, nl) of the forward. */
static void forward_layers(ach_model *m, int nl)
{
    const ach_kernels *k = m->k;
    const ach_config *c = &m->cfg;
    int B = m->cur_B, L = m->cur_L, D = c->d_model, R = B * L;
    k->embedding_forward(m->layers[0].resid, m->tokens, m->w + m->embedding, R, D);
    if (c->pos_enc == POS_SINUSOIDAL) k->posenc_forward(m->layers[0].resid, m->pe_sin, B, L, D);
    if (c->pos_enc == POS_LEARNED) k->posenc_forward(m->layers[0].resid, m->w + m->pos, B, L, D);
    for (int l = 0; l < nl; l++) {
        ach_layer_acts *a = &m->layers[l];
        real *next = l + 1 < c->n_layer ? m->layers[l + 1].resid : m->resid_out;
        if (c->arch == ARCH_MAMBA2 && mamba2_fused_forward(m, l, next)) continue;
        k->rmsnorm_forward(a->xn, a->rstd, a->resid, m->w + m->lp[l].norm, R, D, (real)c->norm_eps);
        if (c->arch == ARCH_MAMBA1) mamba1_forward(m, l, next);
        else mamba2_forward(m, l, next);
        k->add_inplace(next, a->resid, (size_t)R * D);
    }
}

void ach_model_launch_forward(ach_model *m, int lean)
{
    const ach_kernels *k = m->k;
    const ach_config *c = &m->cfg;
    int B = m->cur_B, L = m->cur_L, D = c->d_model, V = c->vocab_size;
    m->lean = lean;
    forward_layers(m, c->n_layer);
    k->last_forward(m->last, m->resid_out, B, L, D);
    k->rmsnorm_forward(m->last_n, m->rstd_f, m->last, m->w + m->norm_f, B, D, (real)c->norm_eps);
    k->matmul_forward(m->logits, m->last_n, D, m->w + m->embedding, NULL, B, D, V);
    k->crossentropy_forward(m->losses, m->probs, m->logits, m->labels, B, V);
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

double ach_model_forward(ach_model *m, const int *tokens, const int *labels, int B, int L)
{
    ach_model_set_batch(m, tokens, labels, B, L);
    ach_model_launch_forward(m, 0);
    return ach_model_loss(m);
}

double ach_model_forward_lean(ach_model *m, const int *tokens, const int *labels, int B, int L)
{
    ach_model_set_batch(m, tokens, labels, B, L);
    ach_model_launch_forward(m, 1);
    return ach_model_loss(m);
}

/* Layers from..0 and the embedding of the backward, from d_resid. */
static void backward_layers(ach_model *m, int from)
{
    const ach_kernels *k = m->k;
    const ach_config *c = &m->cfg;
    int B = m->cur_B, L = m->cur_L, D = c->d_model, V = c->vocab_size, R = B * L;
    for (int l = from; l >= 0; l--) {
        ach_layer_acts *a = &m->layers[l];
        if (c->arch == ARCH_MAMBA2 && mamba2_fused_backward(m, l)) continue;
        k->zero(m->d_xn, (size_t)R * D);
        /* the residual passes d_resid through; the mixer's output grad is d_resid too */
        if (c->arch == ARCH_MAMBA1) mamba1_backward(m, l, m->d_resid);
        else mamba2_backward(m, l, m->d_resid);
        k->rmsnorm_backward(m->d_resid, m->g + m->lp[l].norm, m->d_xn, a->resid, m->w + m->lp[l].norm, a->rstd, R, D);
    }
    k->embedding_backward(m->g + m->embedding, m->d_resid, m->tokens, R, D, V);
    if (c->pos_enc == POS_LEARNED) k->posenc_backward(m->g + m->pos, m->d_resid, B, L, D);
}

void ach_model_backward(ach_model *m)
{
    const ach_kernels *k = m->k;
    const ach_config *c = &m->cfg;
    int B = m->cur_B, L = m->cur_L, D = c->d_model, V = c->vocab_size, R = B * L;
    k->zero(m->g, m->nweights);
    k->zero(m->d_logits, (size_t)B * V);
    k->zero(m->d_last_n, (size_t)B * D);
    k->zero(m->d_last, (size_t)B * D);
    k->zero(m->d_resid, (size_t)R * D);
    k->crossentropy_backward(m->d_logits, m->probs, m->labels, B, V, (real)1 / B);
    k->matmul_backward(m->d_last_n, m->g + m->embedding, NULL, m->d_logits, m->last_n, D, m->w + m->embedding, B, D, V);
    k->rmsnorm_backward(m->d_last, m->g + m->norm_f, m->d_last_n, m->last, m->w + m->norm_f, m->rstd_f, B, D);
    k->last_backward(m->d_resid, m->d_last, B, L, D);
    backward_layers(m, c->n_layer - 1);
}

void ach_model_launch_train(ach_model *m)
{
    int first = m->cfg.arch == ARCH_MAMBA2 ? mamba2_train_first(m) : m->cfg.n_layer;
    if (first == m->cfg.n_layer) {
        ach_model_launch_forward(m, 1);
        ach_model_backward(m);
        return;
    }
    m->lean = 1;
    forward_layers(m, first);
    m->lean = 0;
    m->k->zero(m->g, m->nweights);
    mamba2_train(m, first); /* layers first.., the head, the loss, and back: d_resid */
    backward_layers(m, first - 1);
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
