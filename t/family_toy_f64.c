/* Model families from outside src/: a one-layer linear model (token
 * embedding, x W^T + b, cross-entropy at the last position through its own
 * projection with bias), registered from this file alone, checked by
 * finite differences in double precision and trained through the ordinary
 * training step (step.c): proof that a family drops in without touching
 * the generic code. Its twin on vectors (the linear stem with a learned
 * positional table, the cosine loss at every position) checks those
 * pieces the same way. */
#include <stdlib.h>
#include <string.h>

#include "family.h"
#include "head.h"
#include "init.h"
#include "optim.h"
#include "step.h"
#include "stem.h"
#include "tap.h"

typedef struct {
    int vectors;       /* the twin on vectors */
    ach_stem stem;
    ach_head_ce head;
    ach_head_cos cos;
    size_t w, b;       /* linear.weight [D, D], linear.bias [D] */
    real *x, *y, *dy, *dx; /* [R, D] */
} toy_state;

static int toy_validate(const ach_config *c, char *err, size_t errlen)
{
    if (c->n_layer != 1) {
        snprintf(err, errlen, "n_layer: the toy family has one layer, not %d", c->n_layer);
        return -1;
    }
    return 0;
}

enum { VEC_IN = 3, VEC_OUT = 2 }; /* the twin's input and target widths */

static int create(ach_model *m, int vectors)
{
    toy_state *s = calloc(1, sizeof *s);
    if (!(m->fstate = s)) return -1;
    int D = m->cfg.d_model, V = m->cfg.vocab_size;
    s->vectors = vectors;
    if (vectors) ach_stem_vectors(&s->stem, m, "map.weight", "map.bias", VEC_IN, D);
    else ach_stem_tokens(&s->stem, m, "embedding.weight", KIND_EMBEDDING, V, D);
    s->w = ach_model_add_param(m, -1, "linear.weight", KIND_IN_PROJ, 2, D, D, 0);
    s->b = ach_model_add_param(m, -1, "linear.bias", KIND_BIAS, 1, D, 0, 0);
    if (vectors) {
        ach_head_cos_projection(&s->cos, m, "head.weight", "head.bias", D, VEC_OUT);
        ach_stem_learned_positions(&s->stem, m, "pos.weight", m->cfg.pos_max_len);
        return 0;
    }
    ach_head_ce_norm(&s->head, m, NULL, D, m->cfg.norm_eps);
    ach_head_ce_projection(&s->head, m, ACH_NO_PARAM, "head.weight", "head.bias", V);
    return 0;
}

static int toy_create(ach_model *m) { return create(m, 0); }
static int vec_create(ach_model *m) { return create(m, 1); }

static int toy_prepare(ach_model *m, char *err, size_t errlen)
{
    toy_state *s = m->fstate;
    if (ach_stem_prepare(&s->stem, m, m->L, err, errlen)) return -1;
    return s->vectors ? ach_head_cos_prepare(&s->cos, m, err, errlen) : 0;
}

static void toy_destroy(ach_model *m)
{
    toy_state *s = m->fstate;
    if (s) ach_head_cos_free(&s->cos);
    free(m->fstate);
    m->fstate = NULL;
}

static void toy_carve(ach_model *m, ach_carver *cv, int B, int L)
{
    toy_state *s = m->fstate;
    size_t R = (size_t)B * L, D = m->cfg.d_model;
    ach_stem_carve(&s->stem, m, cv, B, L);
    ACH_TAKE(cv, s->x, R * D);
    ACH_TAKE(cv, s->y, R * D);
    ACH_TAKE(cv, s->dy, R * D);
    ACH_TAKE(cv, s->dx, R * D);
    if (s->vectors) ach_head_cos_carve(&s->cos, m, cv, B, L, 1);
    else ach_head_ce_carve(&s->head, m, cv, B);
}

static void toy_forward(ach_model *m)
{
    toy_state *s = m->fstate;
    int R = m->cur_B * m->cur_L, D = m->cfg.d_model;
    ach_stem_forward(&s->stem, m, s->x);
    m->k->matmul_forward(s->y, s->x, D, m->w + s->w, m->w + s->b, R, D, D);
    if (s->vectors) ach_head_cos_forward(&s->cos, m, s->y, m->targets);
    else ach_head_ce_forward(&s->head, m, s->y);
}

static void toy_backward(ach_model *m)
{
    toy_state *s = m->fstate;
    int R = m->cur_B * m->cur_L, D = m->cfg.d_model;
    m->k->zero(s->dy, (size_t)R * D);
    m->k->zero(s->dx, (size_t)R * D);
    if (s->vectors) ach_head_cos_backward(&s->cos, m, s->y, s->dy);
    else ach_head_ce_backward(&s->head, m, s->dy);
    m->k->matmul_backward(s->dx, m->g + s->w, m->g + s->b, s->dy, s->x, D, m->w + s->w, R, D, D);
    ach_stem_backward(&s->stem, m, s->dx);
}

static void toy_init(const ach_config *c, const ach_param *p, double *v, ach_rng *r)
{
    for (size_t i = 0; i < p->numel; i++) v[i] = 0.5 * rng_normal(r);
}

static double toy_flops(const ach_config *c, int B, int L)
{
    return 2.0 * B * L * c->d_model * c->d_model + 2.0 * B * c->d_model * c->vocab_size;
}

static const ach_kernel_need toy_kernels[] = {
    ACH_NEED(embedding_forward), ACH_NEED(embedding_backward), ACH_NEED(matmul_forward), ACH_NEED(matmul_backward),
    ACH_NEED(last_forward),      ACH_NEED(last_backward),      ACH_NEED(crossentropy_forward),
    ACH_NEED(crossentropy_backward), ACH_NEED(posenc_forward), ACH_NEED(posenc_backward), {NULL, 0}};

static const ach_family toy = {
    .name = "toy-linear", .validate = toy_validate, .create = toy_create, .destroy = toy_destroy,
    .carve = toy_carve, .prepare = toy_prepare, .forward = toy_forward, .backward = toy_backward,
    .init_tensor = toy_init, .kernels = toy_kernels, .forward_flops = toy_flops,
};
static const ach_family vec = {
    .name = "toy-vectors", .validate = toy_validate, .create = vec_create, .destroy = toy_destroy,
    .carve = toy_carve, .prepare = toy_prepare, .forward = toy_forward, .backward = toy_backward,
    .init_tensor = toy_init, .kernels = toy_kernels, .forward_flops = toy_flops,
};

enum { B = 3, L = 4, D = 5, V = 7 };

/* Central differences against the analytic gradient, every parameter. */
static void gradcheck(ach_model *m, const ach_batch *b)
{
    const char *what = m->fam->name;
    double loss = ach_model_forward_batch(m, b, 0);
    ach_model_backward(m);
    double *ana = malloc(m->nweights * sizeof *ana);
    memcpy(ana, m->g, m->nweights * sizeof *ana);
    diag("%s: loss %.6f, %zu parameters", what, loss, m->nweights);
    const double h = 1e-5;
    for (int p = 0; p < m->nparams; p++) {
        const ach_param *pr = &m->params[p];
        double maxerr = 0, maxg = 0;
        for (size_t j = 0; j < pr->numel; j++) {
            size_t i = pr->offset + j;
            double w0 = m->w[i];
            m->w[i] = w0 + h;
            double lp = ach_model_forward_batch(m, b, 0);
            m->w[i] = w0 - h;
            double lm = ach_model_forward_batch(m, b, 0);
            m->w[i] = w0;
            double num = (lp - lm) / (2 * h), e = fabs(num - ana[i]);
            maxerr = e > maxerr ? e : maxerr;
            maxg = fabs(num) > maxg ? fabs(num) : maxg;
        }
        double rel = maxerr / (maxg > 1e-3 ? maxg : 1e-3);
        ok(rel < 1e-7 && maxg > 1e-6, "%s: gradient of %s by finite differences (max |g| %.3g, rel err %.2g)",
           what, pr->name, maxg, rel);
    }
    free(ana);
}

int main(void)
{
    char err[256];
    ach_arch arch = ach_family_register(&toy);
    ok(arch != ACH_ARCH_NONE && ach_family_arch("toy-linear") == arch && !strcmp(cfg_arch_name(arch), "toy-linear"),
       "the toy family registers under a new arch id (%d)", (int)arch);
    ok(ach_family_register(&toy) == ACH_ARCH_NONE, "a second family of the same name is refused");

    ach_config cfg;
    cfg_default(&cfg, arch);
    cfg.n_layer = 1, cfg.d_model = D, cfg.vocab_size = V, cfg.seed = 3;
    cfg.init = INIT_REFERENCE;

    ach_model m;
    cfg.n_layer = 2;
    ok(ach_model_create(&m, &cfg, &ach_cpu_kernels, err, sizeof err) < 0 && strstr(err, "n_layer: the toy family"),
       "the family's own validation runs: %s", err);
    cfg.n_layer = 1;
    ach_kernels partial = ach_cpu_kernels;
    partial.crossentropy_backward = NULL;
    ok(ach_model_create(&m, &cfg, &partial, err, sizeof err) < 0 && strstr(err, "crossentropy_backward"),
       "a backend without a kernel the family needs is refused by name: %s", err);

    if (!ok(ach_model_create(&m, &cfg, &ach_cpu_kernels, err, sizeof err) == 0 &&
                ach_model_reserve(&m, B, L, err, sizeof err) == 0 && ach_init_params(&m) == 0,
            "create, reserve and initialise a toy model"))
        diag("%s", err);
    const char *names[] = {"embedding.weight", "linear.weight", "linear.bias", "head.weight", "head.bias"};
    int order = m.nparams == 5;
    for (int i = 0; order && i < 5; i++) order = !strcmp(m.params[i].name, names[i]);
    ok(order, "its parameters, in the order the family added them");

    ach_rng r;
    rng_init(&r, 9, 0);
    int tok[B * L], lab[B];
    for (int i = 0; i < B * L; i++) tok[i] = (int)rng_below(&r, V);
    for (int i = 0; i < B; i++) lab[i] = (int)rng_below(&r, V);
    ach_batch batch = {.B = B, .L = L, .tokens = tok, .labels = lab};
    ach_batch unlabelled = {.B = B, .L = L, .tokens = tok};
    ok(ach_model_set_batch(&m, &unlabelled, err, sizeof err) < 0 && strstr(err, "labels"),
       "a batch without the labels the head takes is refused: %s", err);
    gradcheck(&m, &batch);

    ach_optim o;
    ach_optim_cfg oc;
    ach_optim_defaults(&oc);
    ach_optim_create(&o, &m, &oc);
    double gn, first = ach_train_step_batch(&m, &o, &batch, 0.05, &gn), loss = first;
    for (int s = 1; s < 40; s++) loss = ach_train_step_batch(&m, &o, &batch, 0.05, &gn);
    double after = ach_model_forward_batch(&m, &batch, 0);
    ok(after < 0.5 * first && loss < first, "40 training steps (step.c) fit the batch: loss %.4f -> %.4f", first,
       after);
    ach_optim_free(&o, &m);
    ach_model_free(&m);

    /* the twin on vectors: the linear stem with learned positions, the
     * cosine loss at every position */
    cfg.arch = ach_family_register(&vec);
    cfg.pos_enc = POS_LEARNED, cfg.pos_max_len = L + 1;
    if (!ok(ach_model_create(&m, &cfg, &ach_cpu_kernels, err, sizeof err) == 0 &&
                ach_model_reserve(&m, B, L, err, sizeof err) == 0 && ach_init_params(&m) == 0,
            "create, reserve and initialise a toy model on vectors"))
        diag("%s", err);
    real vin[B * L * VEC_IN], vout[B * L * VEC_OUT];
    for (int i = 0; i < B * L * VEC_IN; i++) vin[i] = rng_normal(&r);
    for (int i = 0; i < B * L * VEC_OUT; i++) vout[i] = rng_normal(&r);
    vout[0] = vout[1] = 0; /* a zero target: cos is 0 there, by the clamped norm */
    ach_batch vb = {.B = B, .L = L, .vectors = vin, .targets = vout};
    ok(ach_model_set_batch(&m, &batch, err, sizeof err) < 0 && strstr(err, "tokens"),
       "a token batch for a model on vectors is refused: %s", err);
    gradcheck(&m, &vb);
    /* the loss by hand at one sequence: mean over positions of 1 - cos */
    ach_head_cos *hc = &((toy_state *)m.fstate)->cos;
    double want = 0;
    for (int i = 0; i < L; i++) {
        const real *p = hc->pred + (size_t)i * VEC_OUT, *t = vout + (size_t)i * VEC_OUT;
        double pt = p[0] * t[0] + p[1] * t[1], np = hypot(p[0], p[1]), nt = hypot(t[0], t[1]);
        want += 1 - pt / (fmax(np, 1e-8) * fmax(nt, 1e-8));
    }
    is_close(m.losses[0], want / L, 1e-12, 1e-12, "toy-vectors: sequence 0's loss is the mean of 1 - cos");
    ach_optim_create(&o, &m, &oc);
    first = ach_train_step_batch(&m, &o, &vb, 0.05, &gn);
    for (int s = 1; s < 60; s++) ach_train_step_batch(&m, &o, &vb, 0.05, &gn);
    after = ach_model_forward_batch(&m, &vb, 0);
    ok(after < 0.5 * first, "60 training steps fit the vectors: loss %.4f -> %.4f", first, after);
    ach_optim_free(&o, &m);
    ach_model_free(&m);
    return done_testing();
}
