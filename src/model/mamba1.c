/* The Mamba-1 mixer (mamba_ssm's Mamba in mamba_simple.py):
 * x, z = in_proj(h); u = silu(conv1d(x)); dt_r, B, C = x_proj(u);
 * dt = dt_proj(dt_r); y = selective_scan(u, dt, A, B, C, D);
 * out = out_proj(y * silu(z)). */
#include "model.h"

void mamba1_forward(ach_model *m, int l, real *out)
{
    const ach_kernels *k = m->k;
    const ach_config *c = &m->cfg;
    const ach_layer_params *p = &m->lp[l];
    ach_layer_acts *a = &m->layers[l];
    const real *w = m->w;
    int B = m->cur_B, L = m->cur_L, R = B * L, D = c->d_model, Di = cfg_d_inner(c), N = c->d_state;
    int Rk = c->dt_rank, X = Rk + 2 * N;
    k->matmul_forward(a->proj, a->xn, D, w + p->in_proj, NULL, R, D, 2 * Di);
    k->conv1d_forward(a->conv, a->proj, 2 * Di, w + p->conv_w, w + p->conv_b, B, L, Di, c->d_conv);
    k->silu_forward(a->act, a->conv, (size_t)R * Di);
    if (m->subst_layer == l) k->rows_replace(a->act, m->subst_src, m->subst_mask, R, Di);
    k->matmul_forward(a->xdbl, a->act, Di, w + p->x_proj, NULL, R, Di, X);
    k->matmul_forward(a->dt, a->xdbl, X, w + p->dt_proj_w, w + p->dt_proj_b, R, Rk, Di);
    k->mamba1_scan_forward(a->y, a->act, a->dt, w + p->A_log, a->xdbl + Rk, a->xdbl + Rk + N, X, w + p->D,
                           ach_model_block_for(m, l), B, L, Di, N, m->work);
    k->gate_forward(a->gated, a->y, a->proj + Di, 2 * Di, R, Di);
    k->matmul_forward(out, a->gated, Di, w + p->out_proj, NULL, R, Di, D);
}

void mamba1_backward(ach_model *m, int l, const real *dout)
{
    const ach_kernels *k = m->k;
    const ach_config *c = &m->cfg;
    const ach_layer_params *p = &m->lp[l];
    const ach_layer_acts *a = &m->layers[l];
    const real *w = m->w;
    real *g = m->g;
    int B = m->cur_B, L = m->cur_L, R = B * L, D = c->d_model, Di = cfg_d_inner(c), N = c->d_state;
    int Rk = c->dt_rank, X = Rk + 2 * N;
    k->zero(m->d_gated, (size_t)R * Di);
    k->zero(m->d_y, (size_t)R * Di);
    k->zero(m->d_proj, (size_t)R * 2 * Di);
    k->zero(m->d_xdbl, (size_t)R * X);
    k->zero(m->d_dt, (size_t)R * Di);
    k->zero(m->d_act, (size_t)R * Di);
    k->zero(m->d_conv, (size_t)R * Di);
    k->matmul_backward(m->d_gated, g + p->out_proj, NULL, dout, a->gated, Di, w + p->out_proj, R, Di, D);
    k->gate_backward(m->d_y, m->d_proj + Di, m->d_gated, a->y, a->proj + Di, 2 * Di, R, Di);
    k->mamba1_scan_backward(m->d_act, m->d_dt, g + p->A_log, m->d_xdbl + Rk, m->d_xdbl + Rk + N, g + p->D, m->d_y,
                            a->act, a->dt, w + p->A_log, a->xdbl + Rk, a->xdbl + Rk + N, X, w + p->D,
                            ach_model_block_for(m, l), B, L, Di, N, m->work);
    k->matmul_backward(m->d_xdbl, g + p->dt_proj_w, g + p->dt_proj_b, m->d_dt, a->xdbl, X, w + p->dt_proj_w, R, Rk,
                       Di);
    k->matmul_backward(m->d_act, g + p->x_proj, NULL, m->d_xdbl, a->act, Di, w + p->x_proj, R, Di, X);
    k->silu_backward(m->d_conv, m->d_act, a->conv, (size_t)R * Di);
    k->conv1d_backward(m->d_proj, g + p->conv_w, g + p->conv_b, m->d_conv, a->proj, 2 * Di, w + p->conv_w, B, L, Di,
                       c->d_conv);
    k->matmul_backward(m->d_xn, g + p->in_proj, NULL, m->d_proj, a->xn, D, w + p->in_proj, R, D, 2 * Di);
}
