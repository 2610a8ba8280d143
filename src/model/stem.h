/* Input stems: what turns a batch's inputs into the first residual stream
 * [B*L, D] (rows R = B*L), and its backward. A family holds one in its
 * state and calls these; each adds its own parameters, under the names the
 * family gives, where the family's state_dict order has them.
 *
 * Tokens: out = wte[tokens] (+ a positional encoding). Vectors: out =
 * vectors W^T + b, a linear map of [B, L, D_in] inputs (a continuous
 * model's). Positional encodings (docs/science.md §4.2), for either:
 * sinusoidal (a fixed table) or learned (a parameter table, max_len rows),
 * chosen by cfg.pos_enc at each forward, so a run can switch it. */
#ifndef ACH_STEM_H
#define ACH_STEM_H
#include "model.h"

typedef struct {
    size_t wte;    /* tokens: the embedding [V, D], or ACH_NO_PARAM */
    size_t map_w, map_b; /* vectors: [D, D_in] and [D] */
    size_t pos;    /* the learned table [max_len, D], or ACH_NO_PARAM */
    int D, V, in_dim;
    real *pe_sin;  /* [L, D] the sinusoidal table */
    real *d_in;    /* vectors: [R, D_in], the input's gradient (unused) */
} ach_stem;

/* The token embedding, parameter `name` [V, D]. */
void ach_stem_tokens(ach_stem *s, ach_model *m, const char *name, unsigned kind, int V, int D);
/* The linear map of in_dim-vectors to D: parameters w_name [D, in_dim] and
 * b_name [D]. */
void ach_stem_vectors(ach_stem *s, ach_model *m, const char *w_name, const char *b_name, int in_dim, int D);
/* The learned positional table `name` [max_len, D] (when max_len > 0). */
void ach_stem_learned_positions(ach_stem *s, ach_model *m, const char *name, int max_len);
/* The stem's activations and the batch's inputs (m->tokens or m->vectors). */
void ach_stem_carve(ach_stem *s, ach_model *m, ach_carver *cv, int B, int L);
/* The sinusoidal table for length L, after the carving. */
int ach_stem_prepare(ach_stem *s, ach_model *m, int L, char *err, size_t errlen);
/* out [R, D] from the batch on the backend. */
void ach_stem_forward(const ach_stem *s, ach_model *m, real *out);
/* Parameter gradients from dout [R, D] (added to m->g). */
void ach_stem_backward(const ach_stem *s, ach_model *m, const real *dout);
#endif
