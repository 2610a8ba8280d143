/* The Mamba-1 mixer (mamba_ssm's Mamba in mamba_simple.py):
 * x, z = in_proj(h); u = silu(conv1d(x)); dt_r, B, C = x_proj(u);
 * dt = dt_proj(dt_r); y = selective_scan(u, dt, A, B, C, D);
 * out = out_proj(y * silu(z)). */
#include "mamba.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mathfn.h"

static void forward(ach_model *m, int l, real *out)
{
    const ach_kernels *k = m->k;
    const ach_config *c = &m->cfg;
    const mamba_state *st = mamba_of(m);
    const mamba_layer_params *p = &st->lp[l];
    mamba_layer_acts *a = &st->layers[l];
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
                           ach_model_block_for(m, l), B, L, Di, N, st->work);
    k->gate_forward(a->gated, a->y, a->proj + Di, 2 * Di, R, Di);
    k->matmul_forward(out, a->gated, Di, w + p->out_proj, NULL, R, Di, D);
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
    int Rk = c->dt_rank, X = Rk + 2 * N;
    k->zero(st->d_gated, (size_t)R * Di);
    k->zero(st->d_y, (size_t)R * Di);
    k->zero(st->d_proj, (size_t)R * 2 * Di);
    k->zero(st->d_xdbl, (size_t)R * X);
    k->zero(st->d_dt, (size_t)R * Di);
    k->zero(st->d_act, (size_t)R * Di);
    k->zero(st->d_conv, (size_t)R * Di);
    k->matmul_backward(st->d_gated, g + p->out_proj, NULL, dout, a->gated, Di, w + p->out_proj, R, Di, D);
    k->gate_backward(st->d_y, st->d_proj + Di, st->d_gated, a->y, a->proj + Di, 2 * Di, R, Di);
    k->mamba1_scan_backward(st->d_act, st->d_dt, g + p->A_log, st->d_xdbl + Rk, st->d_xdbl + Rk + N, g + p->D, st->d_y,
                            a->act, a->dt, w + p->A_log, a->xdbl + Rk, a->xdbl + Rk + N, X, w + p->D,
                            ach_model_block_for(m, l), B, L, Di, N, st->work);
    k->matmul_backward(st->d_xdbl, g + p->dt_proj_w, g + p->dt_proj_b, st->d_dt, a->xdbl, X, w + p->dt_proj_w, R, Rk,
                       Di);
    k->matmul_backward(st->d_act, g + p->x_proj, NULL, st->d_xdbl, a->act, Di, w + p->x_proj, R, Di, X);
    k->silu_backward(st->d_conv, st->d_act, a->conv, (size_t)R * Di);
    k->conv1d_backward(st->d_proj, g + p->conv_w, g + p->conv_b, st->d_conv, a->proj, 2 * Di, w + p->conv_w, B, L, Di,
                       c->d_conv);
    k->matmul_backward(st->d_xn, g + p->in_proj, NULL, st->d_proj, a->xn, D, w + p->in_proj, R, D, 2 * Di);
}

static void params(ach_model *m, int l, mamba_layer_params *p)
{
    const ach_config *c = &m->cfg;
    int Di = cfg_d_inner(c), N = c->d_state;
    p->x_proj = mamba_layer_param(m, l, "mixer.x_proj.weight", KIND_X_PROJ, 2, c->dt_rank + 2 * N, Di, 0);
    p->dt_proj_w = mamba_layer_param(m, l, "mixer.dt_proj.weight", KIND_DT_PROJ, 2, Di, c->dt_rank, 0);
    p->dt_proj_b = mamba_layer_param(m, l, "mixer.dt_proj.bias", KIND_DT_BIAS, 1, Di, 0, 0);
    p->A_log = mamba_layer_param(m, l, "mixer.A_log", KIND_A_LOG, 2, Di, N, 0);
    p->D = mamba_layer_param(m, l, "mixer.D", KIND_D, 1, Di, 0, 0);
}

static void carve(ach_model *m, ach_carver *cv, mamba_layer_acts *a, size_t R)
{
    const ach_config *c = &m->cfg;
    ACH_TAKE(cv, a->xdbl, R * (c->dt_rank + 2 * c->d_state));
    ACH_TAKE(cv, a->dt, R * cfg_d_inner(c));
}

static void carve_grads(ach_model *m, ach_carver *cv, size_t R)
{
    const ach_config *c = &m->cfg;
    mamba_state *st = mamba_of(m);
    ACH_TAKE(cv, st->d_xdbl, R * (c->dt_rank + 2 * c->d_state));
    ACH_TAKE(cv, st->d_dt, R * cfg_d_inner(c));
}

static size_t work(const ach_config *c, int L) { return mamba1_scan_work(L, c->d_state); }

static double flops(const ach_config *c, int B, int L)
{
    double R = (double)B * L, N = c->d_state, Di = cfg_d_inner(c), X = c->dt_rank + 2 * N;
    return 2 * R * Di * X + 2 * R * c->dt_rank * Di + 7 * R * Di * N + 6 * R * Di;
}

/* S_d(t, s) = sum_n C_t[n] exp(sum_{k=s+1..t} delta_k A[d, n]) delta_s B_s[n]
 * for channel u, or the mean of |S_d| over channels (u = -1). */
void mamba1_mixing_matrix(const ach_model *m, int l, int u, double *S)
{
    const ach_config *c = &m->cfg;
    const mamba_state *st = mamba_of(m);
    const mamba_layer_acts *a = &st->layers[l];
    const mamba_layer_params *p = &st->lp[l];
    int L = m->cur_L, N = c->d_state, Di = cfg_d_inner(c), nh = Di, R = c->dt_rank, X = R + 2 * N;
    memset(S, 0, (size_t)L * L * sizeof *S);
    real *xdbl = mamba_host_copy(m, a->xdbl, (size_t)L * X), *dt = mamba_host_copy(m, a->dt, (size_t)L * Di);
    real *alog = mamba_host_copy(m, m->w + p->A_log, (size_t)Di * N);
    for (int d = u < 0 ? 0 : u; xdbl && dt && alog && d < (u < 0 ? nh : u + 1); d++)
        for (int t = 0; t < L; t++)
            for (int s = 0; s <= t; s++) {
                double acc = 0;
                for (int n = 0; n < N; n++) {
                    double A = -exp((double)alog[(size_t)d * N + n]), seg = 0;
                    for (int k = s + 1; k <= t; k++) seg += softplus_r(dt[(size_t)k * Di + d]) * A;
                    acc += xdbl[(size_t)t * X + R + N + n] * exp(seg) * softplus_r(dt[(size_t)s * Di + d]) *
                           xdbl[(size_t)s * X + R + n];
                }
                S[t * L + s] += u < 0 ? fabs(acc) / nh : acc;
            }
    free(xdbl), free(dt), free(alog);
}

const mamba_mixer mamba1_mixer = {
    .params = params, .carve = carve, .carve_grads = carve_grads, .work = work, .forward = forward,
    .backward = backward, .fused_forward = NULL, .fused_backward = NULL, .flops = flops,
};
