/* Heads: from the last residual stream [B*L, D] (rows R = B*L) to each
 * sequence's loss in m->losses [B], and back. A family holds one in its
 * state and calls these; each adds its own parameters, under the names the
 * family gives.
 *
 * Cross-entropy at the last position: the last row of each sequence, an
 * optional RMSNorm, logits = x W^T (+ b) against labels [B]; W may be tied
 * to the token embedding. Logits [B, V] stay in m->logits.
 */
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
#endif
