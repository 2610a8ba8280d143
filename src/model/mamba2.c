/* The Mamba-2 mixer (mamba_ssm's Mamba2, one group, the paper's model):
 * z, xBC, dt = in_proj(h); xBC = silu(conv1d(xBC)); x, B, C = xBC;
 * y = ssd(x, dt + dt_bias, A, B, C, D); y = rmsnorm(y * silu(z)) * w;
 * out = out_proj(y). */
#include "model.h"

static ach_mamba2_block block_args(ach_model *m, int l)
{
    const ach_config *c = &m->cfg;
    const ach_layer_params *p = &m->lp[l];
    const real *w = m->w;
    real *g = m->g;
    return (ach_mamba2_block){
        .B = m->cur_B, .L = m->cur_L, .d_model = c->d_model, .nheads = cfg_nheads(c), .headdim = c->headdim,
        .d_state = c->d_state, .d_conv = c->d_conv, .eps = (real)c->norm_eps,
        .norm = w + p->norm, .in_proj = w + p->in_proj, .conv_w = w + p->conv_w, .conv_b = w + p->conv_b,
        .dt_bias = w + p->dt_bias, .A_log = w + p->A_log, .D = w + p->D, .gnorm = w + p->gnorm,
        .out_proj = w + p->out_proj, .g_norm = g + p->norm, .g_in_proj = g + p->in_proj, .g_conv_w = g + p->conv_w,
        .g_conv_b = g + p->conv_b, .g_dt_bias = g + p->dt_bias, .g_A_log = g + p->A_log, .g_D = g + p->D,
        .g_gnorm = g + p->gnorm, .g_out_proj = g + p->out_proj, .resid = m->layers[l].resid};
}

int mamba2_fused_forward(ach_model *m, int l, real *out)
{
    m->fused_layers &= ~((uint64_t)1 << l);
    if (!m->k->mamba2_block_forward || !m->lean || ach_model_block_for(m, l) || m->subst_layer == l) return 0;
    ach_mamba2_block b = block_args(m, l);
    m->k->mamba2_block_forward(&b, out);
    m->fused_layers |= (uint64_t)1 << l;
    return 1;
}

int mamba2_fused_backward(ach_model *m, int l)
{
    if (!(m->fused_layers >> l & 1)) return 0; /* the forward kept the activations the composed path needs */
    ach_mamba2_block b = block_args(m, l);
    m->k->mamba2_block_backward(&b, m->d_resid);
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
    ach_mamba2_block b[ACH_MAX_LAYERS];
    for (int l = first; l < c->n_layer; l++) b[l - first] = block_args(m, l);
    if (first == 0 && c->pos_enc == POS_NONE) b[0].tokens = m->tokens; /* layer 0's input: the embedding alone */
    ach_lm_head h = {.vocab = c->vocab_size, .scale = (real)1 / m->cur_B, .norm_f = m->w + m->norm_f,
                     .wte = m->w + m->embedding, .g_norm_f = m->g + m->norm_f, .g_wte = m->g + m->embedding,
                     .labels = m->labels, .losses = m->losses};
    m->k->mamba2_train(b, c->n_layer - first, &h, m->d_resid);
}

void mamba2_forward(ach_model *m, int l, real *out)
{
    const ach_kernels *k = m->k;
    const ach_config *c = &m->cfg;
    const ach_layer_params *p = &m->lp[l];
    ach_layer_acts *a = &m->layers[l];
    const real *w = m->w;
    int B = m->cur_B, L = m->cur_L, R = B * L, D = c->d_model, Di = cfg_d_inner(c), N = c->d_state;
    int Cd = cfg_conv_dim(c), Pj = cfg_in_proj_dim(c), H = cfg_nheads(c);
    k->matmul_forward(a->proj, a->xn, D, w + p->in_proj, NULL, R, D, Pj);
    k->conv1d_forward(a->conv, a->proj + Di, Pj, w + p->conv_w, w + p->conv_b, B, L, Cd, c->d_conv);
    k->silu_forward(a->act, a->conv, (size_t)R * Cd);
    if (m->subst_layer == l) k->rows_replace(a->act, m->subst_src, m->subst_mask, R, Cd);
    k->mamba2_ssd_forward(a->y, a->act, a->act + Di, a->act + Di + N, Cd, a->proj + Di + Cd, Pj, w + p->dt_bias,
                          w + p->A_log, w + p->D, ach_model_block_for(m, l), B, L, H, c->headdim, N, m->work);
    k->gate_forward(a->gated, a->y, a->proj, Pj, R, Di);
    k->rmsnorm_forward(a->normed, a->rstd2, a->gated, w + p->gnorm, R, Di, (real)c->norm_eps);
    k->matmul_forward(out, a->normed, Di, w + p->out_proj, NULL, R, Di, D);
}

void mamba2_backward(ach_model *m, int l, const real *dout)
{
    const ach_kernels *k = m->k;
    const ach_config *c = &m->cfg;
    const ach_layer_params *p = &m->lp[l];
    const ach_layer_acts *a = &m->layers[l];
    const real *w = m->w;
    real *g = m->g;
    int B = m->cur_B, L = m->cur_L, R = B * L, D = c->d_model, Di = cfg_d_inner(c), N = c->d_state;
    int Cd = cfg_conv_dim(c), Pj = cfg_in_proj_dim(c), H = cfg_nheads(c);
    k->zero(m->d_normed, (size_t)R * Di);
    k->zero(m->d_gated, (size_t)R * Di);
    k->zero(m->d_y, (size_t)R * Di);
    k->zero(m->d_proj, (size_t)R * Pj);
    k->zero(m->d_act, (size_t)R * Cd);
    k->zero(m->d_conv, (size_t)R * Cd);
    k->matmul_backward(m->d_normed, g + p->out_proj, NULL, dout, a->normed, Di, w + p->out_proj, R, Di, D);
    k->rmsnorm_backward(m->d_gated, g + p->gnorm, m->d_normed, a->gated, w + p->gnorm, a->rstd2, R, Di);
    k->gate_backward(m->d_y, m->d_proj, m->d_gated, a->y, a->proj, Pj, R, Di);
    k->mamba2_ssd_backward(m->d_act, m->d_act + Di, m->d_act + Di + N, m->d_proj + Di + Cd, g + p->dt_bias,
                           g + p->A_log, g + p->D, m->d_y, a->act, a->act + Di, a->act + Di + N, Cd,
                           a->proj + Di + Cd, Pj, w + p->dt_bias, w + p->A_log, w + p->D, ach_model_block_for(m, l),
                           B, L, H, c->headdim, N, m->work);
    k->silu_backward(m->d_conv, m->d_act, a->conv, (size_t)R * Cd);
    k->conv1d_backward(m->d_proj + Di, g + p->conv_w, g + p->conv_b, m->d_conv, a->proj + Di, Pj, w + p->conv_w, B,
                       L, Cd, c->d_conv);
    k->matmul_backward(m->d_xn, g + p->in_proj, NULL, m->d_proj, a->xn, D, w + p->in_proj, R, D, Pj);
}
