/* A Mamba language model: the parameter table (mamba_ssm names and shapes),
 * flat arenas for weights, gradients and activations, and the forward and
 * backward passes of the whole LM. Layers are written against the kernel
 * interface only (kernels.h).
 *
 * Ownership: ach_model_create allocates everything; ach_model_free frees it.
 * Nothing is allocated inside forward or backward. */
#ifndef ACH_MODEL_H
#define ACH_MODEL_H
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "kernels.h"

#define ACH_NAME_MAX 80

typedef struct {
    char name[ACH_NAME_MAX]; /* e.g. backbone.layers.0.mixer.in_proj.weight */
    int ndim;
    int shape[3];
    size_t offset, numel;    /* into the weight and gradient arenas */
    unsigned kind;           /* KIND_* */
    int layer;               /* -1 outside the layers */
} ach_param;

/* Per-layer activation pointers into the activation arena (rows R = B*L). */
typedef struct {
    real *resid;   /* [R, D] input of this layer's residual block */
    real *rstd;    /* [R] */
    real *xn;      /* [R, D] RMSNorm(resid) */
    real *proj;    /* [R, in_proj_dim] in_proj output */
    real *conv;    /* [R, conv_dim] conv output before SiLU */
    real *act;     /* [R, conv_dim] SiLU(conv) */
    real *xdbl;    /* Mamba-1: [R, dt_rank + 2N] x_proj output */
    real *dt;      /* Mamba-1: [R, Di] dt_proj output (pre-softplus) */
    real *y;       /* [R, Di] SSM output */
    real *gated;   /* [R, Di] y * silu(z) */
    real *rstd2;   /* Mamba-2: [R] gated RMSNorm */
    real *normed;  /* Mamba-2: [R, Di] */
} ach_layer_acts;

/* Offsets of one layer's tensors in the arenas (unused ones stay 0). */
typedef struct {
    size_t norm, in_proj, conv_w, conv_b, x_proj, dt_proj_w, dt_proj_b, dt_bias, A_log, D, gnorm, out_proj;
} ach_layer_params;

typedef struct ach_model {
    ach_config cfg;
    const ach_kernels *k;
    ach_param *params;
    int nparams;
    size_t nweights;
    size_t embedding, norm_f, pos;  /* offsets (pos: learned table, if any) */
    ach_layer_params *lp;
    real *w, *g;          /* weight and gradient arenas (backend memory) */
    /* activations, sized by ach_model_reserve */
    int B, L;
    void *arena;          /* one allocation holding everything below */
    ach_layer_acts *layers;
    real *resid_out;      /* [R, D] residual after the last layer */
    real *last, *rstd_f, *last_n, *logits, *probs, *losses; /* final head, [B, ...] */
    real *work;           /* scan scratch */
    real *pe_sin;         /* [L, D] sinusoidal table */
    real *d_resid, *d_xn, *d_proj, *d_conv, *d_act, *d_xdbl, *d_dt, *d_y, *d_gated, *d_normed;
    real *d_last, *d_last_n, *d_logits;
    int *tokens, *labels; /* [B, L], [B] */
    unsigned char *block_mask; /* [B, L]: 1 = source position blocked in the SSM */
    uint64_t block_layers;     /* bit l: blocking applies to layer l; 0 = off */
    /* substitution: in layer subst_layer, the post-convolution (after SiLU)
     * rows with subst_mask set are replaced by subst_src [B*L, conv_dim] */
    int subst_layer;           /* -1 = off */
    const real *subst_src;
    const unsigned char *subst_mask;
    int cur_B, cur_L;     /* shape of the last forward */
    int lean;             /* the forward in progress is ach_model_forward_lean's */
    uint64_t fused_layers; /* bit l: layer l's last forward was the backend's fused block */
} ach_model;

int ach_model_create(ach_model *m, const ach_config *cfg, const ach_kernels *k, char *err, size_t errlen);
void ach_model_free(ach_model *m);
/* Allocates activations for batches up to B sequences of exactly L tokens. */
int ach_model_reserve(ach_model *m, int B, int L, char *err, size_t errlen);
const ach_param *ach_model_param(const ach_model *m, const char *name);
/* Writes `value` into n entries of a backend arena (weights, moments...). */
int ach_model_fill(const ach_model *m, real *dst, size_t n, real value);

/* Forward on host tokens [B, L] and labels [B] (B <= reserved). Returns the
 * mean cross-entropy at the last position; logits stay in m->logits. */
double ach_model_forward(ach_model *m, const int *tokens, const int *labels, int B, int L);
/* The same, but the backend may skip keeping the layer activations
 * (m->layers) that analysis reads (ach_model_backward then recomputes
 * them): for training steps and evaluation. */
double ach_model_forward_lean(ach_model *m, const int *tokens, const int *labels, int B, int L);
/* The three parts of a forward, for a step that must not wait on the
 * device between its kernels (step.c): copy the batch to the backend;
 * queue the forward's kernels (lean as above); the mean loss, which waits
 * for them. */
void ach_model_set_batch(ach_model *m, const int *tokens, const int *labels, int B, int L);
void ach_model_launch_forward(ach_model *m, int lean);
double ach_model_loss(const ach_model *m);
/* Blocking (docs/science.md §4.3) for the following passes: mask [B*L] on the host, 1
 * where a source position's contribution to later positions is removed, in
 * the layers of the bit set. mask NULL or layers 0 turns it off. */
void ach_model_set_block(ach_model *m, const unsigned char *mask, int B, int L, uint64_t layers);
/* The mask to hand layer l's SSM kernel: NULL when l is not blocked. */
const unsigned char *ach_model_block_for(const ach_model *m, int l);

/* Gradients of that loss into m->g (overwritten). */
void ach_model_backward(ach_model *m);
/* A training step's forward (lean) and backward, after set_batch: the
 * losses and m->g as the two calls above give them. When the backend has
 * mamba2_train, the last layers (all of them unless some are blocked or
 * substituted) and the head run forward and backward in one pass, and the
 * head's activations (logits, probs) are not kept. */
void ach_model_launch_train(ach_model *m);

/* The mixers (mamba1.c, mamba2.c): out [R, D] = mixer(layer acts xn);
 * backward accumulates into m->d_xn and the parameter gradients. */
void mamba1_forward(ach_model *m, int l, real *out);
void mamba1_backward(ach_model *m, int l, const real *dout);
void mamba2_forward(ach_model *m, int l, real *out);
void mamba2_backward(ach_model *m, int l, const real *dout);
/* Layer l's whole residual block by the backend's fused kernels, when it
 * has them and the pass allows (a training forward, no blocking or
 * substitution): returns 1 if done, 0 to take the composed path. */
int mamba2_fused_forward(ach_model *m, int l, real *out);
int mamba2_fused_backward(ach_model *m, int l);
/* The first of the last layers that can run with the head as one
 * training pass (the backend's mamba2_train; none blocked or substituted),
 * n_layer if none; mamba2_train runs layers first.. that way, d_resid
 * receiving the gradient of layer first's input. */
int mamba2_train_first(const ach_model *m);
void mamba2_train(ach_model *m, int first);
#endif
