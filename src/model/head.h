/* Heads: from the last residual stream [B*L, D] (rows R = B*L) to each
 * sequence's loss in m->losses [B], and back. A family holds one in its
 * state and calls these; each adds its own parameters, under the names the
 * family gives.
 *
 * Cross-entropy at the last position: the last row of each sequence, an
 * optional RMSNorm, logits = x W^T (+ b) against labels [B]; W may be tied
 * to the token embedding. Logits [B, V] stay in m->logits.
 *
 * Cosine loss at every position: predictions p = x W^T (+ b) [R, D_out]
 * against target vectors [R, D_out]; a sequence's loss is the mean over
 * its positions of 1 - cos(p, target), cos = p.t / (max(|p|, 1e-8)
 * max(|t|, 1e-8)) as torch's cosine_similarity. The loss is computed on
 * the host (no backend kernel yet), so a step with it copies between
 * kernels (no recorded graph on the GPU). Predictions stay in h->pred. */
#ifndef ACH_HEAD_H
#define ACH_HEAD_H
#include "model.h"

typedef struct {
    size_t norm;   /* the final RMSNorm's weight [D], or ACH_NO_PARAM */
    size_t w, b;   /* [V, D], [V] or ACH_NO_PARAM */
    int D, V;
    real eps;
    real *last, *rstd, *last_n, *probs, *d_last, *d_last_n, *d_logits;
} ach_head_ce;

/* The final norm `norm_name` [D] (NULL: none) and the projection: tied to
 * the parameter at offset tied_w (ACH_NO_PARAM: its own, w_name [V, D],
 * and b_name [V] unless NULL). Parameters are added in that order; a
 * family whose state_dict puts them apart calls the two separately. */
void ach_head_ce_norm(ach_head_ce *h, ach_model *m, const char *norm_name, int D, double eps);
void ach_head_ce_projection(ach_head_ce *h, ach_model *m, size_t tied_w, const char *w_name, const char *b_name,
                            int V);
void ach_head_ce_carve(ach_head_ce *h, ach_model *m, ach_carver *cv, int B);
void ach_head_ce_forward(const ach_head_ce *h, ach_model *m, const real *x);
/* dx [R, D] += the gradient of mean(losses) (only the last rows get any). */
void ach_head_ce_backward(const ach_head_ce *h, ach_model *m, real *dx);
typedef struct {
    size_t w, b;   /* [D_out, D], [D_out] or ACH_NO_PARAM */
    int D, out_dim;
    real *pred, *d_pred;  /* [R, D_out] backend */
    real *host;           /* host: predictions, targets, their gradient [R, D_out] each; losses [B] */
    size_t host_n;
} ach_head_cos;

/* The projection w_name [D_out, D] and b_name [D_out] (NULL: no bias). */
void ach_head_cos_projection(ach_head_cos *h, ach_model *m, const char *w_name, const char *b_name, int D,
                             int out_dim);
/* Its activations, and the batch's target vectors (m->targets) when
 * take_targets (a family that derives its targets passes them to forward
 * itself); then, from the family's prepare, its host staging for the
 * reserved shape (-1: out of memory), which ach_head_cos_free frees. */
void ach_head_cos_carve(ach_head_cos *h, ach_model *m, ach_carver *cv, int B, int L, int take_targets);
int ach_head_cos_prepare(ach_head_cos *h, ach_model *m, char *err, size_t errlen);
void ach_head_cos_free(ach_head_cos *h);
/* x [R, D] against targets [R, D_out] (backend memory); losses and the
 * gradient of their mean, kept for the backward. */
void ach_head_cos_forward(ach_head_cos *h, ach_model *m, const real *x, const real *targets);
/* dx [R, D] += the gradient of mean(losses). */
void ach_head_cos_backward(const ach_head_cos *h, ach_model *m, const real *x, real *dx);
#endif
