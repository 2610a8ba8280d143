/* Heads (head.h): cross-entropy at the last position. */
#include "head.h"

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
