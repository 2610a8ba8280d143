/* The Mamba-2 mixer (mamba_ssm's Mamba2, one group, the paper's model):
 * z, xBC, dt = in_proj(h); xBC = silu(conv1d(xBC)); x, B, C = xBC;
 * y = ssd(x, dt + dt_bias, A, B, C, D); y = rmsnorm(y * silu(z)) * w;
 * out = out_proj(y). */
#include "mamba.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mathfn.h"

static ach_mamba2_block block_args(ach_model *m, int l)
{
    const ach_config *c = &m->cfg;
    const mamba_state *st = mamba_of(m);
    const mamba_layer_params *p = &st->lp[l];
    const real *w = m->w;
    real *g = m->g;
    return (ach_mamba2_block){
        .B = m->cur_B, .L = m->cur_L, .d_model = c->d_model, .nheads = cfg_nheads(c), .headdim = c->headdim,
        .d_state = c->d_state, .d_conv = c->d_conv, .eps = (real)c->norm_eps,
        .norm = w + p->norm, .in_proj = w + p->in_proj, .conv_w = w + p->conv_w, .conv_b = w + p->conv_b,
        .dt_bias = w + p->dt_bias, .A_log = w + p->A_log, .D = w + p->D, .gnorm = w + p->gnorm,
        .out_proj = w + p->out_proj, .g_norm = g + p->norm, .g_in_proj = g + p->in_proj, .g_conv_w = g + p->conv_w,
        .g_conv_b = g + p->conv_b, .g_dt_bias = g + p->dt_bias, .g_A_log = g + p->A_log, .g_D = g + p->D,
        .g_gnorm = g + p->gnorm, .g_out_proj = g + p->out_proj, .resid = st->layers[l].resid};
}

static int fused_forward(ach_model *m, int l, real *out)
{
    mamba_state *st = mamba_of(m);
    st->fused_layers &= ~((uint64_t)1 << l);
    if (!m->k->mamba2_block_forward || !m->lean || ach_model_block_for(m, l) || m->subst_layer == l) return 0;
    ach_mamba2_block b = block_args(m, l);
    m->k->mamba2_block_forward(&b, out);
    st->fused_layers |= (uint64_t)1 << l;
    return 1;
}

static int fused_backward(ach_model *m, int l)
{
    const mamba_state *st = mamba_of(m);
    if (!(st->fused_layers >> l & 1)) return 0; /* the forward kept the activations the composed path needs */
    ach_mamba2_block b = block_args(m, l);
    m->k->mamba2_block_backward(&b, st->d_resid);
    return 1;
}

int mamba2_train_first(const ach_model *m)
{
    int f = m->cfg.n_layer;
    if (!m->k->mamba2_train) return f;
    while (f > 0 && !ach_model_block_for(m, f - 1) && m->subst_layer != f - 1) f--;
    return f;
}

void mamba2_train(ach_model *m, int first)
{
    const ach_config *c = &m->cfg;
    const mamba_state *st = mamba_of(m);
    ach_mamba2_block b[ACH_MAX_LAYERS];
    for (int l = first; l < c->n_layer; l++) b[l - first] = block_args(m, l);
    if (first == 0 && c->pos_enc == POS_NONE) b[0].tokens = m->tokens; /* layer 0's input: the embedding alone */
    const ach_head_ce *hd = &st->head;
    ach_lm_head h = {.vocab = c->vocab_size, .scale = (real)1 / m->cur_B, .norm_f = m->w + hd->norm,
                     .wte = m->w + hd->w, .g_norm_f = m->g + hd->norm, .g_wte = m->g + hd->w,
                     .labels = m->labels, .losses = m->losses};
    m->k->mamba2_train(b, c->n_layer - first, &h, st->d_resid);
}

static void forward(ach_model *m, int l, real *out)
{
    const ach_kernels *k = m->k;
    const ach_config *c = &m->cfg;
    const mamba_state *st = mamba_of(m);
    const mamba_layer_params *p = &st->lp[l];
    mamba_layer_acts *a = &st->layers[l];
    const real *w = m->w;
    int B = m->cur_B, L = m->cur_L, R = B * L, D = c->d_model, Di = cfg_d_inner(c), N = c->d_state;
    int Cd = cfg_conv_dim(c), Pj = cfg_in_proj_dim(c), H = cfg_nheads(c);
    k->matmul_forward(a->proj, a->xn, D, w + p->in_proj, NULL, R, D, Pj);
    k->conv1d_forward(a->conv, a->proj + Di, Pj, w + p->conv_w, w + p->conv_b, B, L, Cd, c->d_conv);
    k->silu_forward(a->act, a->conv, (size_t)R * Cd);
    if (m->subst_layer == l) k->rows_replace(a->act, m->subst_src, m->subst_mask, R, Cd);
    k->mamba2_ssd_forward(a->y, a->act, a->act + Di, a->act + Di + N, Cd, a->proj + Di + Cd, Pj, w + p->dt_bias,
                          w + p->A_log, w + p->D, ach_model_block_for(m, l), B, L, H, c->headdim, N, st->work);
    k->gate_forward(a->gated, a->y, a->proj, Pj, R, Di);
    k->rmsnorm_forward(a->normed, a->rstd2, a->gated, w + p->gnorm, R, Di, (real)c->norm_eps);
    k->matmul_forward(out, a->normed, Di, w + p->out_proj, NULL, R, Di, D);
}

static void backward(ach_model *m, int l, const real *dout)
{
    const ach_kernels *k = m->k;
    const ach_config *c = &m->cfg;
    const mamba_state *st = mamba_of(m);
    const mamba_layer_params *p = &st->lp[l];
    const mamba_layer_acts *a = &st->layers[l];
    const real *w = m->w;
    real *g = m->g;
    int B = m->cur_B, L = m->cur_L, R = B * L, D = c->d_model, Di = cfg_d_inner(c), N = c->d_state;
    int Cd = cfg_conv_dim(c), Pj = cfg_in_proj_dim(c), H = cfg_nheads(c);
    k->zero(st->d_normed, (size_t)R * Di);
    k->zero(st->d_gated, (size_t)R * Di);
    k->zero(st->d_y, (size_t)R * Di);
    k->zero(st->d_proj, (size_t)R * Pj);
    k->zero(st->d_act, (size_t)R * Cd);
    k->zero(st->d_conv, (size_t)R * Cd);
    k->matmul_backward(st->d_normed, g + p->out_proj, NULL, dout, a->normed, Di, w + p->out_proj, R, Di, D);
    k->rmsnorm_backward(st->d_gated, g + p->gnorm, st->d_normed, a->gated, w + p->gnorm, a->rstd2, R, Di);
    k->gate_backward(st->d_y, st->d_proj, st->d_gated, a->y, a->proj, Pj, R, Di);
    k->mamba2_ssd_backward(st->d_act, st->d_act + Di, st->d_act + Di + N, st->d_proj + Di + Cd, g + p->dt_bias,
                           g + p->A_log, g + p->D, st->d_y, a->act, a->act + Di, a->act + Di + N, Cd,
                           a->proj + Di + Cd, Pj, w + p->dt_bias, w + p->A_log, w + p->D, ach_model_block_for(m, l),
                           B, L, H, c->headdim, N, st->work);
    k->silu_backward(st->d_conv, st->d_act, a->conv, (size_t)R * Cd);
    k->conv1d_backward(st->d_proj + Di, g + p->conv_w, g + p->conv_b, st->d_conv, a->proj + Di, Pj, w + p->conv_w, B,
                       L, Cd, c->d_conv);
    k->matmul_backward(st->d_xn, g + p->in_proj, NULL, st->d_proj, a->xn, D, w + p->in_proj, R, D, Pj);
}

static void params(ach_model *m, int l, mamba_layer_params *p)
{
    const ach_config *c = &m->cfg;
    int H = cfg_nheads(c);
    p->dt_bias = mamba_layer_param(m, l, "mixer.dt_bias", KIND_DT_BIAS, 1, H, 0, 0);
    p->A_log = mamba_layer_param(m, l, "mixer.A_log", KIND_A_LOG, 1, H, 0, 0);
    p->D = mamba_layer_param(m, l, "mixer.D", KIND_D, 1, H, 0, 0);
    p->gnorm = mamba_layer_param(m, l, "mixer.norm.weight", KIND_NORM, 1, cfg_d_inner(c), 0, 0);
}

static void carve(ach_model *m, ach_carver *cv, mamba_layer_acts *a, size_t R)
{
    ACH_TAKE(cv, a->rstd2, R);
    ACH_TAKE(cv, a->normed, R * cfg_d_inner(&m->cfg));
}

static void carve_grads(ach_model *m, ach_carver *cv, size_t R)
{
    ACH_TAKE(cv, mamba_of(m)->d_normed, R * cfg_d_inner(&m->cfg));
}

static size_t work(const ach_config *c, int L) { return mamba2_ssd_work(L); }

static double flops(const ach_config *c, int B, int L)
{
    double R = (double)B * L, N = c->d_state, Di = cfg_d_inner(c), H = cfg_nheads(c), P = c->headdim;
    return B * (N * L * (L + 1) + H * P * L * (L + 1) + 2 * H * L * P) + 4 * R * Di; /* + gated norm */
}

/* S(t, s) = (C_t . B_s) exp(sum_{k=s+1..t} delta_k A) delta_s for head u,
 * or the mean over heads (u = -1). */
void mamba2_mixing_matrix(const ach_model *m, int l, int u, double *S)
{
    const ach_config *c = &m->cfg;
    const mamba_state *st = mamba_of(m);
    const mamba_layer_acts *a = &st->layers[l];
    const mamba_layer_params *p = &st->lp[l];
    int L = m->cur_L, N = c->d_state, Di = cfg_d_inner(c), nh = cfg_nheads(c);
    int Cd = cfg_conv_dim(c), Pj = cfg_in_proj_dim(c);
    memset(S, 0, (size_t)L * L * sizeof *S);
    real *act = mamba_host_copy(m, a->act, (size_t)L * Cd), *proj = mamba_host_copy(m, a->proj, (size_t)L * Pj);
    real *bias = mamba_host_copy(m, m->w + p->dt_bias, nh), *alog = mamba_host_copy(m, m->w + p->A_log, nh);
    for (int hh = u < 0 ? 0 : u; act && proj && bias && alog && hh < (u < 0 ? nh : u + 1); hh++) {
        double A = -exp((double)alog[hh]);
        for (int t = 0; t < L; t++) {
            double seg = 0;
            for (int s = t; s >= 0; s--) {
                double delta_s = softplus_r(proj[(size_t)s * Pj + Di + Cd + hh] + bias[hh]);
                double g = 0;
                for (int n = 0; n < N; n++) g += (double)act[(size_t)t * Cd + Di + N + n] * act[(size_t)s * Cd + Di + n];
                S[t * L + s] += g * exp(seg) * delta_s / (u < 0 ? nh : 1);
                seg += delta_s * A;
            }
        }
    }
    free(act), free(proj), free(bias), free(alog);
}

const mamba_mixer mamba2_mixer = {
    .params = params, .carve = carve, .carve_grads = carve_grads, .work = work, .forward = forward,
    .backward = backward, .fused_forward = fused_forward, .fused_backward = fused_backward, .flops = flops,
};
