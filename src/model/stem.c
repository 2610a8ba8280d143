/* Input stems (stem.h): the token embedding, the linear map of vectors, and
 * the positional encodings. */
#include "stem.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

void ach_stem_tokens(ach_stem *s, ach_model *m, const char *name, unsigned kind, int V, int D)
{
    s->wte = ach_model_add_param(m, -1, name, kind, 2, V, D, 0);
    s->V = V, s->D = D;
    s->map_w = s->map_b = s->pos = ACH_NO_PARAM;
}

void ach_stem_vectors(ach_stem *s, ach_model *m, const char *w_name, const char *b_name, int in_dim, int D)
{
    s->map_w = ach_model_add_param(m, -1, w_name, KIND_IN_PROJ, 2, D, in_dim, 0);
    s->map_b = ach_model_add_param(m, -1, b_name, KIND_BIAS, 1, D, 0, 0);
    s->in_dim = in_dim, s->D = D;
    s->wte = s->pos = ACH_NO_PARAM;
}

void ach_stem_learned_positions(ach_stem *s, ach_model *m, const char *name, int max_len)
{
    if (max_len) s->pos = ach_model_add_param(m, -1, name, KIND_POS, 2, max_len, s->D, 0);
}

void ach_stem_carve(ach_stem *s, ach_model *m, ach_carver *cv, int B, int L)
{
    ACH_TAKE(cv, s->pe_sin, (size_t)L * s->D);
    if (s->wte != ACH_NO_PARAM) {
        ACH_TAKE(cv, m->tokens, (size_t)B * L);
        return;
    }
    ACH_TAKE(cv, m->vectors, (size_t)B * L * s->in_dim);
    ACH_TAKE(cv, s->d_in, (size_t)B * L * s->in_dim);
    m->in_dim = s->in_dim;
}

int ach_stem_prepare(ach_stem *s, ach_model *m, int L, char *err, size_t errlen)
{
    /* PE[t, 2i] = sin(t w_i), PE[t, 2i+1] = cos(t w_i), w_i = 10000^(-2i/D) */
    int D = s->D;
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
    m->k->to_device(s->pe_sin, pe, (size_t)L * D * sizeof *pe);
    free(pe);
    return 0;
}

void ach_stem_forward(const ach_stem *s, ach_model *m, real *out)
{
    const ach_kernels *k = m->k;
    int B = m->cur_B, L = m->cur_L, D = s->D;
    if (s->wte != ACH_NO_PARAM) k->embedding_forward(out, m->tokens, m->w + s->wte, B * L, D);
    else k->matmul_forward(out, m->vectors, s->in_dim, m->w + s->map_w, m->w + s->map_b, B * L, s->in_dim, D);
    if (m->cfg.pos_enc == POS_SINUSOIDAL) k->posenc_forward(out, s->pe_sin, B, L, D);
    if (m->cfg.pos_enc == POS_LEARNED) k->posenc_forward(out, m->w + s->pos, B, L, D);
}

void ach_stem_backward(const ach_stem *s, ach_model *m, const real *dout)
{
    const ach_kernels *k = m->k;
    int B = m->cur_B, L = m->cur_L, D = s->D;
    if (s->wte != ACH_NO_PARAM) {
        k->embedding_backward(m->g + s->wte, dout, m->tokens, B * L, D, s->V);
    } else {
        k->zero(s->d_in, (size_t)B * L * s->in_dim);
        k->matmul_backward(s->d_in, m->g + s->map_w, m->g + s->map_b, dout, m->vectors, s->in_dim, m->w + s->map_w,
                           B * L, s->in_dim, D);
    }
    if (m->cfg.pos_enc == POS_LEARNED) k->posenc_backward(m->g + s->pos, dout, B, L, D);
}
