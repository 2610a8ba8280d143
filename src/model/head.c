/* Heads (head.h): cross-entropy at the last position, the cosine loss at
 * every position. */
#include "head.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

void ach_head_ce_norm(ach_head_ce *h, ach_model *m, const char *norm_name, int D, double eps)
{
    h->D = D, h->eps = (real)eps;
    h->norm = norm_name ? ach_model_add_param(m, -1, norm_name, KIND_NORM, 1, D, 0, 0) : ACH_NO_PARAM;
}

void ach_head_ce_projection(ach_head_ce *h, ach_model *m, size_t tied_w, const char *w_name, const char *b_name,
                            int V)
{
    h->V = V;
    h->w = tied_w != ACH_NO_PARAM ? tied_w : ach_model_add_param(m, -1, w_name, KIND_EMBEDDING, 2, V, h->D, 0);
    h->b = b_name ? ach_model_add_param(m, -1, b_name, KIND_BIAS, 1, V, 0, 0) : ACH_NO_PARAM;
}

void ach_head_ce_carve(ach_head_ce *h, ach_model *m, ach_carver *cv, int B)
{
    size_t D = h->D, V = h->V;
    ACH_TAKE(cv, h->last, B * D);
    ACH_TAKE(cv, h->rstd, B);
    ACH_TAKE(cv, h->last_n, B * D);
    ACH_TAKE(cv, m->logits, B * V);
    ACH_TAKE(cv, h->probs, B * V);
    ACH_TAKE(cv, m->losses, B);
    ACH_TAKE(cv, h->d_last, B * D);
    ACH_TAKE(cv, h->d_last_n, B * D);
    ACH_TAKE(cv, h->d_logits, B * V);
    ACH_TAKE(cv, m->labels, B);
}

void ach_head_ce_forward(const ach_head_ce *h, ach_model *m, const real *x)
{
    const ach_kernels *k = m->k;
    int B = m->cur_B, D = h->D, V = h->V;
    const real *bias = h->b != ACH_NO_PARAM ? m->w + h->b : NULL;
    k->last_forward(h->last, x, B, m->cur_L, D);
    const real *in = h->last;
    if (h->norm != ACH_NO_PARAM) {
        k->rmsnorm_forward(h->last_n, h->rstd, h->last, m->w + h->norm, B, D, h->eps);
        in = h->last_n;
    }
    k->matmul_forward(m->logits, in, D, m->w + h->w, bias, B, D, V);
    k->crossentropy_forward(m->losses, h->probs, m->logits, m->labels, B, V);
}

void ach_head_ce_backward(const ach_head_ce *h, ach_model *m, real *dx)
{
    const ach_kernels *k = m->k;
    int B = m->cur_B, D = h->D, V = h->V;
    int normed = h->norm != ACH_NO_PARAM;
    real *g_bias = h->b != ACH_NO_PARAM ? m->g + h->b : NULL;
    k->zero(h->d_logits, (size_t)B * V);
    k->zero(h->d_last_n, (size_t)B * D);
    k->zero(h->d_last, (size_t)B * D);
    k->crossentropy_backward(h->d_logits, h->probs, m->labels, B, V, (real)1 / B);
    k->matmul_backward(normed ? h->d_last_n : h->d_last, m->g + h->w, g_bias, h->d_logits,
                       normed ? h->last_n : h->last, D, m->w + h->w, B, D, V);
    if (normed) k->rmsnorm_backward(h->d_last, m->g + h->norm, h->d_last_n, h->last, m->w + h->norm, h->rstd, B, D);
    k->last_backward(dx, h->d_last, B, m->cur_L, D);
}

void ach_head_cos_projection(ach_head_cos *h, ach_model *m, const char *w_name, const char *b_name, int D,
                             int out_dim)
{
    h->D = D, h->out_dim = out_dim;
    h->w = ach_model_add_param(m, -1, w_name, KIND_OUT_PROJ, 2, out_dim, D, 0);
    h->b = b_name ? ach_model_add_param(m, -1, b_name, KIND_BIAS, 1, out_dim, 0, 0) : ACH_NO_PARAM;
}

void ach_head_cos_carve(ach_head_cos *h, ach_model *m, ach_carver *cv, int B, int L, int take_targets)
{
    size_t n = (size_t)B * L * h->out_dim;
    ACH_TAKE(cv, h->pred, n);
    ACH_TAKE(cv, h->d_pred, n);
    ACH_TAKE(cv, m->losses, B);
    if (take_targets) ACH_TAKE(cv, m->targets, n);
    m->out_dim = h->out_dim;
}

int ach_head_cos_prepare(ach_head_cos *h, ach_model *m, char *err, size_t errlen)
{
    size_t n = (size_t)m->B * m->L * h->out_dim, want = 3 * n + m->B;
    if (h->host_n == want) return 0;
    free(h->host);
    h->host = malloc(want * sizeof *h->host);
    h->host_n = h->host ? want : 0;
    if (h->host) return 0;
    snprintf(err, errlen, "out of memory: the cosine loss's host staging needs %zu MiB", want * sizeof(real) >> 20);
    return -1;
}

void ach_head_cos_free(ach_head_cos *h)
{
    free(h->host);
    h->host = NULL, h->host_n = 0;
}

void ach_head_cos_forward(ach_head_cos *h, ach_model *m, const real *x, const real *targets)
{
    const ach_kernels *k = m->k;
    int B = m->cur_B, L = m->cur_L, Do = h->out_dim;
    size_t n = (size_t)B * L * Do;
    const real *bias = h->b != ACH_NO_PARAM ? m->w + h->b : NULL;
    k->matmul_forward(h->pred, x, h->D, m->w + h->w, bias, B * L, h->D, Do);
    real *p = h->host, *t = p + n, *dp = t + n, *losses = dp + n;
    k->to_host(p, h->pred, n * sizeof *p);
    k->to_host(t, targets, n * sizeof *t);
    const double eps = 1e-8, scale = 1.0 / ((double)B * L); /* d mean(losses) / d (1 - cos) */
    for (int b = 0; b < B; b++) {
        double sum = 0;
        for (int i = 0; i < L; i++) {
            size_t r = ((size_t)b * L + i) * Do;
            double pt = 0, pp = 0, tt = 0;
            for (int j = 0; j < Do; j++) pt += (double)p[r + j] * t[r + j], pp += (double)p[r + j] * p[r + j],
                                         tt += (double)t[r + j] * t[r + j];
            double np = sqrt(pp), nt = sqrt(tt), dnp = np > eps ? np : eps, dnt = nt > eps ? nt : eps;
            double c = pt / (dnp * dnt);
            sum += 1 - c;
            for (int j = 0; j < Do; j++) /* -dcos/dp: the norm's term only where it is not clamped */
                dp[r + j] = (real)(-scale * (t[r + j] / (dnp * dnt) - (np > eps ? c * p[r + j] / pp : 0)));
        }
        losses[b] = (real)(sum / L);
    }
    k->to_device(m->losses, losses, B * sizeof *losses);
    k->to_device(h->d_pred, dp, n * sizeof *dp);
}

void ach_head_cos_backward(const ach_head_cos *h, ach_model *m, const real *x, real *dx)
{
    int R = m->cur_B * m->cur_L;
    real *g_bias = h->b != ACH_NO_PARAM ? m->g + h->b : NULL;
    m->k->matmul_backward(dx, m->g + h->w, g_bias, h->d_pred, x, h->D, m->w + h->w, R, h->D, h->out_dim);
}
