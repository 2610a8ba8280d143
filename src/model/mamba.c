/* The Mamba families: mamba_ssm's MixerModel (embedding, residual blocks
 * h += mixer(rmsnorm(h)), norm_f, the tied lm_head) with cross-entropy on
 * the last position; the residual loop, the choice of the backend's fused
 * paths, the reference initialisation and the reading of a checkpoint's
 * shapes are here, the mixers in mamba1.c and mamba2.c. */
#include "mamba.h"

#include <ctype.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "init.h"

real *mamba_host_copy(const ach_model *m, const real *src, size_t n)
{
    real *h = malloc((n ? n : 1) * sizeof *h);
    if (h) m->k->to_host(h, src, n * sizeof(real));
    return h;
}

size_t mamba_layer_param(ach_model *m, int l, const char *suffix, unsigned kind, int ndim, int s0, int s1, int s2)
{
    char name[ACH_NAME_MAX];
    snprintf(name, sizeof name, "backbone.layers.%d.%s", l, suffix);
    return ach_model_add_param(m, l, name, kind, ndim, s0, s1, s2);
}

/* The tensors in mamba_ssm's state_dict order. */
static int create(ach_model *m, const mamba_mixer *mix)
{
    const ach_config *c = &m->cfg;
    int D = c->d_model, K = c->d_conv, Di = cfg_d_inner(c), Cd = cfg_conv_dim(c);
    mamba_state *st = calloc(1, sizeof *st);
    if (!st) return -1;
    m->fstate = st;
    st->mix = mix;
    st->lp = calloc(c->n_layer, sizeof *st->lp);
    st->layers = calloc(c->n_layer, sizeof *st->layers);
    if (!st->lp || !st->layers) return -1;
    ach_stem_tokens(&st->stem, m, "backbone.embedding.weight", KIND_EMBEDDING, c->vocab_size, D);
    for (int l = 0; l < c->n_layer; l++) {
        mamba_layer_params *lp = &st->lp[l];
        lp->in_proj = mamba_layer_param(m, l, "mixer.in_proj.weight", KIND_IN_PROJ, 2, cfg_in_proj_dim(c), D, 0);
        lp->conv_w = mamba_layer_param(m, l, "mixer.conv1d.weight", KIND_CONV, 3, Cd, 1, K);
        lp->conv_b = mamba_layer_param(m, l, "mixer.conv1d.bias", KIND_BIAS, 1, Cd, 0, 0);
        mix->params(m, l, lp);
        lp->out_proj = mamba_layer_param(m, l, "mixer.out_proj.weight", KIND_OUT_PROJ, 2, D, Di, 0);
        lp->norm = mamba_layer_param(m, l, "norm.weight", KIND_NORM, 1, D, 0, 0);
    }
    ach_head_ce_norm(&st->head, m, "backbone.norm_f.weight", D, c->norm_eps);
    ach_head_ce_projection(&st->head, m, st->stem.wte, NULL, NULL, c->vocab_size);
    ach_stem_learned_positions(&st->stem, m, "backbone.pos_embedding.weight", c->pos_max_len);
    return 0;
}

static int create_mamba1(ach_model *m) { return create(m, &mamba1_mixer); }
static int create_mamba2(ach_model *m) { return create(m, &mamba2_mixer); }

static void destroy(ach_model *m)
{
    mamba_state *st = mamba_of(m);
    if (!st) return;
    free(st->lp);
    free(st->layers);
    free(st);
    m->fstate = NULL;
}

static void carve(ach_model *m, ach_carver *cv, int B, int L)
{
    const ach_config *c = &m->cfg;
    mamba_state *st = mamba_of(m);
    size_t R = (size_t)B * L, D = c->d_model, Di = cfg_d_inner(c), Cd = cfg_conv_dim(c), P = cfg_in_proj_dim(c);
    for (int l = 0; l < c->n_layer; l++) {
        mamba_layer_acts *a = &st->layers[l];
        ACH_TAKE(cv, a->resid, R * D);
        ACH_TAKE(cv, a->rstd, R);
        ACH_TAKE(cv, a->xn, R * D);
        ACH_TAKE(cv, a->proj, R * P);
        ACH_TAKE(cv, a->conv, R * Cd);
        ACH_TAKE(cv, a->act, R * Cd);
        ACH_TAKE(cv, a->y, R * Di);
        ACH_TAKE(cv, a->gated, R * Di);
        st->mix->carve(m, cv, a, R);
    }
    ACH_TAKE(cv, st->resid_out, R * D);
    ach_head_ce_carve(&st->head, m, cv, B);
    ACH_TAKE(cv, st->work, st->mix->work(c, L));
    ach_stem_carve(&st->stem, m, cv, B, L);
    /* gradient scratch for one layer at a time */
    ACH_TAKE(cv, st->d_resid, R * D);
    ACH_TAKE(cv, st->d_xn, R * D);
    ACH_TAKE(cv, st->d_proj, R * P);
    ACH_TAKE(cv, st->d_conv, R * Cd);
    ACH_TAKE(cv, st->d_act, R * Cd);
    ACH_TAKE(cv, st->d_y, R * Di);
    ACH_TAKE(cv, st->d_gated, R * Di);
    st->mix->carve_grads(m, cv, R);
}

static int prepare(ach_model *m, char *err, size_t errlen)
{
    return ach_stem_prepare(&mamba_of(m)->stem, m, m->L, err, errlen);
}

/* The stem and layers [0, nl) of the forward. */
static void forward_layers(ach_model *m, int nl)
{
    const ach_kernels *k = m->k;
    const ach_config *c = &m->cfg;
    mamba_state *st = mamba_of(m);
    int R = m->cur_B * m->cur_L, D = c->d_model;
    ach_stem_forward(&st->stem, m, st->layers[0].resid);
    for (int l = 0; l < nl; l++) {
        mamba_layer_acts *a = &st->layers[l];
        real *next = l + 1 < c->n_layer ? st->layers[l + 1].resid : st->resid_out;
        if (st->mix->fused_forward && st->mix->fused_forward(m, l, next)) continue;
        k->rmsnorm_forward(a->xn, a->rstd, a->resid, m->w + st->lp[l].norm, R, D, (real)c->norm_eps);
        st->mix->forward(m, l, next);
        k->add_inplace(next, a->resid, (size_t)R * D);
    }
}

static void forward(ach_model *m)
{
    mamba_state *st = mamba_of(m);
    forward_layers(m, m->cfg.n_layer);
    ach_head_ce_forward(&st->head, m, st->resid_out);
}

/* Layers from..0 and the stem of the backward, from d_resid. */
static void backward_layers(ach_model *m, int from)
{
    const ach_kernels *k = m->k;
    mamba_state *st = mamba_of(m);
    int R = m->cur_B * m->cur_L, D = m->cfg.d_model;
    for (int l = from; l >= 0; l--) {
        mamba_layer_acts *a = &st->layers[l];
        if (st->mix->fused_backward && st->mix->fused_backward(m, l)) continue;
        k->zero(st->d_xn, (size_t)R * D);
        /* the residual passes d_resid through; the mixer's output grad is d_resid too */
        st->mix->backward(m, l, st->d_resid);
        k->rmsnorm_backward(st->d_resid, m->g + st->lp[l].norm, st->d_xn, a->resid, m->w + st->lp[l].norm, a->rstd,
                            R, D);
    }
    ach_stem_backward(&st->stem, m, st->d_resid);
}

static void backward(ach_model *m)
{
    mamba_state *st = mamba_of(m);
    m->k->zero(st->d_resid, (size_t)m->cur_B * m->cur_L * m->cfg.d_model);
    ach_head_ce_backward(&st->head, m, st->d_resid);
    backward_layers(m, m->cfg.n_layer - 1);
}

/* Mamba-2's training step: the last layers and the head by the backend's
 * mamba2_train where it can, the layers before composed. */
static void train_mamba2(ach_model *m)
{
    int first = mamba2_train_first(m);
    m->lean = 1;
    if (first == m->cfg.n_layer) {
        forward(m);
        m->lean = 0;
        backward(m);
        return;
    }
    forward_layers(m, first);
    m->lean = 0;
    mamba2_train(m, first); /* layers first.., the head, the loss, and back: d_resid */
    backward_layers(m, first - 1);
}

#define NO_CONFIG "%s: no config in the metadata and no config.json beside it, and the shapes do not determine one: "

/* Size of tensor NAME along axis a; -1 with a message if the tensor is
 * absent or not of rank ndim. Clamped to INT_MAX: cfg_validate refuses it. */
static int dim_of(const st_file *f, const char *name, int ndim, int a, const char *path, char *err, size_t errlen)
{
    const st_tensor *t = st_find(f, name);
    if (!t) snprintf(err, errlen, NO_CONFIG "missing tensor '%s'", path, name);
    else if (t->ndim != ndim)
        snprintf(err, errlen, NO_CONFIG "tensor '%s' has rank %d, expected %d", path, name, t->ndim, ndim);
    else return t->shape[a] > INT_MAX ? INT_MAX : (int)t->shape[a];
    return -1;
}

static const char *layer0(char name[ACH_NAME_MAX], const char *suffix)
{
    snprintf(name, ACH_NAME_MAX, "backbone.layers.0.mixer.%s", suffix);
    return name;
}

/* The config from mamba_ssm's tensor names and shapes: the embedding gives
 * the vocabulary and d_model, the layer indices n_layer, layer 0 the rest
 * (every layer is checked against it when the tensors load). Mamba-1 has
 * A_log [d_inner, d_state], Mamba-2 A_log [nheads]. Only Mamba-2's ngroups
 * is not determined (ngroups * d_state is): 1 is assumed, the only value
 * this engine runs. 0 when the file has no Mamba layers. Both Mamba
 * families read a file this way; A_log's rank says whose it is. */
static int from_shapes(ach_config *c, const st_file *f, const char *path, char *note, size_t nnote, char *err,
                       size_t errlen)
{
    const char *pre = "backbone.layers.";
    char name[ACH_NAME_MAX];
    long n_layer = 0;
    for (int i = 0; i < f->n; i++) {
        const char *s = f->tensors[i].name;
        char *end;
        if (strncmp(s, pre, strlen(pre)) || !isdigit((unsigned char)s[strlen(pre)])) continue;
        long l = strtol(s + strlen(pre), &end, 10);
        if (*end == '.' && l >= n_layer) n_layer = l < INT_MAX ? l + 1 : INT_MAX;
    }
    if (!n_layer) return 0; /* not a Mamba checkpoint */
    const st_tensor *a_log = st_find(f, layer0(name, "A_log"));
    if (!a_log || (a_log->ndim != 1 && a_log->ndim != 2)) {
        snprintf(err, errlen, NO_CONFIG "%s tensor '%s' (Mamba-1: [d_inner, d_state], Mamba-2: [nheads])", path,
                 a_log ? "a rank-1 or rank-2" : "missing", name);
        return -1;
    }
    ach_arch arch = a_log->ndim == 2 ? ARCH_MAMBA1 : ARCH_MAMBA2;
    int V = dim_of(f, "backbone.embedding.weight", 2, 0, path, err, errlen);
    int D = V < 0 ? -1 : dim_of(f, "backbone.embedding.weight", 2, 1, path, err, errlen);
    int K = D < 0 ? -1 : dim_of(f, layer0(name, "conv1d.weight"), 3, 2, path, err, errlen);
    if (K < 0) return -1;
    cfg_mamba_ssm_default(c, arch);
    int Di;
    if (arch == ARCH_MAMBA1) {
        Di = dim_of(f, layer0(name, "A_log"), 2, 0, path, err, errlen);
        c->d_state = dim_of(f, layer0(name, "A_log"), 2, 1, path, err, errlen);
        c->dt_rank = dim_of(f, layer0(name, "dt_proj.weight"), 2, 1, path, err, errlen);
        if (c->dt_rank < 0) return -1;
    } else {
        int H = dim_of(f, layer0(name, "A_log"), 1, 0, path, err, errlen);
        Di = dim_of(f, layer0(name, "norm.weight"), 1, 0, path, err, errlen);
        int Cd = Di < 0 ? -1 : dim_of(f, layer0(name, "conv1d.weight"), 3, 0, path, err, errlen);
        if (Cd < 0) return -1;
        if (Cd <= Di || (Cd - Di) % 2) {
            snprintf(err, errlen, NO_CONFIG "layer 0's conv1d has %d channels, not d_inner %d (mixer.norm.weight) + "
                     "2 * d_state", path, Cd, Di);
            return -1;
        }
        if (!H || Di % H) {
            snprintf(err, errlen, NO_CONFIG "layer 0's d_inner %d (mixer.norm.weight) is not a multiple of its %d "
                     "heads (mixer.A_log)", path, Di, H);
            return -1;
        }
        c->d_state = (Cd - Di) / 2, c->headdim = Di / H, c->ngroups = 1;
    }
    if (!D || Di % D) {
        snprintf(err, errlen, NO_CONFIG "layer 0's d_inner %d is not a multiple of d_model %d", path, Di, D);
        return -1;
    }
    c->n_layer = (int)n_layer, c->vocab_size = V, c->d_model = D, c->d_conv = K, c->expand = Di / D;
    char extra[64];
    if (arch == ARCH_MAMBA1) snprintf(extra, sizeof extra, ", dt_rank %d", c->dt_rank);
    else snprintf(extra, sizeof extra, ", headdim %d (assumed ngroups 1)", c->headdim);
    snprintf(note, nnote, "%s, n_layer %d, d_model %d, vocab_size %d, d_state %d, d_conv %d, expand %d%s",
             cfg_arch_name(arch), c->n_layer, c->d_model, c->vocab_size, c->d_state, c->d_conv, c->expand, extra);
    return 1;
}

static double kaiming_bound(const ach_param *p) { return 1.0 / sqrt(ach_init_fan(p, FAN_IN)); }

void mamba_init_tensor(const ach_config *c, const ach_param *p, double *v, ach_rng *r)
{
    size_t n = p->numel;
    double kaiming = kaiming_bound(p); /* torch Linear/Conv default bound */
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
            dt = dt < c->dt_init_floor ? c->dt_init_floor : dt;
            v[i] = dt + log(-expm1(-dt)); /* softplus^-1 */
        }
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

/* A_log: Mamba-1 log(1..N) per channel; Mamba-2 log(U(1, 16)) per head. */
static void init_mamba1(const ach_config *c, const ach_param *p, double *v, ach_rng *r)
{
    if (p->kind != KIND_A_LOG) return mamba_init_tensor(c, p, v, r);
    for (size_t i = 0; i < p->numel; i++) v[i] = log((double)(i % c->d_state + 1));
}

static void init_mamba2(const ach_config *c, const ach_param *p, double *v, ach_rng *r)
{
    if (p->kind != KIND_A_LOG) return mamba_init_tensor(c, p, v, r);
    for (size_t i = 0; i < p->numel; i++) v[i] = log(1 + 15 * rng_uniform(r));
}

#define FAIL(...) do { snprintf(err, errlen, __VA_ARGS__); return -1; } while (0)

static int validate(const ach_config *c, char *err, size_t errlen)
{
    struct { const char *name; int v, lo, hi; } r[] = {
        {"d_state", c->d_state, 1, 4096}, {"d_conv", c->d_conv, 1, ACH_MAX_CONV}, {"expand", c->expand, 1, 16},
        {"headdim", c->headdim, 1, 8192}, {"ngroups", c->ngroups, 1, 1},          {"dt_rank", c->dt_rank, 1, 8192},
    };
    for (size_t i = 0; i < sizeof r / sizeof r[0]; i++)
        if (r[i].v < r[i].lo || r[i].v > r[i].hi)
            FAIL("%s: %d is out of range [%d, %d]", r[i].name, r[i].v, r[i].lo, r[i].hi);
    if (!(c->dt_min > 0 && c->dt_min <= c->dt_max && c->dt_max < 10))
        FAIL("dt_min/dt_max: need 0 < dt_min <= dt_max < 10 (got %g, %g)", c->dt_min, c->dt_max);
    if (!(c->dt_init_floor > 0)) FAIL("dt_init_floor: %g must be > 0", c->dt_init_floor);
    return 0;
}

static int validate_mamba2(const ach_config *c, char *err, size_t errlen)
{
    if (validate(c, err, errlen)) return -1;
    if (cfg_d_inner(c) % c->headdim)
        FAIL("headdim: %d does not divide d_inner = expand * d_model = %d", c->headdim, cfg_d_inner(c));
    return 0;
}

static int units_mamba1(const ach_config *c) { return cfg_d_inner(c); }
static int units_mamba2(const ach_config *c) { return cfg_nheads(c); }

static real *subst_states(const ach_model *m, int l, int *width)
{
    *width = cfg_conv_dim(&m->cfg);
    return mamba_of(m)->layers[l].act;
}

/* Forward FLOPs of one step (see achilles bench's help): the layers' shared
 * part and the mixer's, then the head's. */
static double forward_flops(const ach_config *c, int B, int L, const mamba_mixer *mix)
{
    double R = (double)B * L, D = c->d_model, K = c->d_conv, V = c->vocab_size;
    double Di = cfg_d_inner(c), Cd = cfg_conv_dim(c), Pj = cfg_in_proj_dim(c);
    double layer = 4 * R * D + 2 * R * D * Pj + 2 * R * Cd * K + 4 * R * Cd + 5 * R * Di + 2 * R * Di * D + R * D;
    return c->n_layer * (layer + mix->flops(c, B, L)) + 2 * B * D * V + 4 * B * D + 3 * B * V;
}

static double flops_mamba1(const ach_config *c, int B, int L) { return forward_flops(c, B, L, &mamba1_mixer); }
static double flops_mamba2(const ach_config *c, int B, int L) { return forward_flops(c, B, L, &mamba2_mixer); }

/* The kernels of the composed path (the fused ones are optional). */
#define MAMBA_KERNELS                                                                                             \
    ACH_NEED(embedding_forward), ACH_NEED(embedding_backward), ACH_NEED(posenc_forward), ACH_NEED(posenc_backward), \
        ACH_NEED(rmsnorm_forward), ACH_NEED(rmsnorm_backward), ACH_NEED(matmul_forward), ACH_NEED(matmul_backward), \
        ACH_NEED(conv1d_forward), ACH_NEED(conv1d_backward), ACH_NEED(silu_forward), ACH_NEED(silu_backward),     \
        ACH_NEED(gate_forward), ACH_NEED(gate_backward), ACH_NEED(add_inplace), ACH_NEED(rows_replace),           \
        ACH_NEED(last_forward), ACH_NEED(last_backward), ACH_NEED(crossentropy_forward),                          \
        ACH_NEED(crossentropy_backward)
static const ach_kernel_need kernels_mamba1[] = {MAMBA_KERNELS, ACH_NEED(mamba1_scan_forward),
                                                 ACH_NEED(mamba1_scan_backward), {NULL, 0}};
static const ach_kernel_need kernels_mamba2[] = {MAMBA_KERNELS, ACH_NEED(mamba2_ssd_forward),
                                                 ACH_NEED(mamba2_ssd_backward), {NULL, 0}};

const ach_family ach_family_mamba1 = {
    .name = "mamba1", .validate = validate, .create = create_mamba1, .destroy = destroy, .carve = carve,
    .prepare = prepare, .forward = forward, .backward = backward, .train = NULL, .init_tensor = init_mamba1,
    .kernels = kernels_mamba1, .mixing_units = units_mamba1, .mixing_unit = "channel",
    .mixing_summary = "mean |S| over", .mixing_matrix = mamba1_mixing_matrix, .subst_states = subst_states,
    .forward_flops = flops_mamba1, .from_shapes = from_shapes,
};

const ach_family ach_family_mamba2 = {
    .name = "mamba2", .validate = validate_mamba2, .create = create_mamba2, .destroy = destroy, .carve = carve,
    .prepare = prepare, .forward = forward, .backward = backward, .train = train_mamba2, .init_tensor = init_mamba2,
    .kernels = kernels_mamba2, .mixing_units = units_mamba2, .mixing_unit = "head", .mixing_summary = "mean over",
    .mixing_matrix = mamba2_mixing_matrix, .subst_states = subst_states, .forward_flops = flops_mamba2,
    .from_shapes = from_shapes,
};
