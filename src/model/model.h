/* A model: its parameter table (names and shapes in state_dict order), flat
 * arenas for weights, gradients and activations, the batch on the backend,
 * and the forward and backward passes, which its family (family.h: Mamba-1,
 * Mamba-2, ...) supplies. This file knows no family: what a layer holds
 * lives in the family's private state (fstate).
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
#define ACH_NO_PARAM ((size_t)-1) /* an offset of a tensor a model does not have */

struct ach_family;

typedef struct {
    char name[ACH_NAME_MAX]; /* e.g. backbone.layers.0.mixer.in_proj.weight */
    int ndim;
    int shape[3];
    size_t offset, numel;    /* into the weight and gradient arenas */
    unsigned kind;           /* KIND_* */
    int layer;               /* -1 outside the layers */
} ach_param;

/* One batch of B sequences of L positions, on the host. A model reads the
 * inputs and targets its stem and head take (stem.h, head.h): tokens [B, L]
 * or vectors [B, L, in_dim]; labels [B] (a class per sequence) or target
 * vectors [B, L, out_dim]. The others are NULL. */
typedef struct {
    int B, L;
    const int *tokens;
    const real *vectors;
    const int *labels;
    const real *targets;
} ach_batch;

typedef struct ach_model {
    ach_config cfg;
    const struct ach_family *fam;
    void *fstate;         /* the family's own state (its layers, stem, head) */
    const ach_kernels *k;
    ach_param *params;
    int nparams, cap;     /* cap -1: a parameter could not be added (out of memory) */
    size_t nweights;
    real *w, *g;          /* weight and gradient arenas (backend memory) */
    /* activations, sized by ach_model_reserve */
    int B, L;
    void *arena;          /* one allocation holding everything below */
    /* the batch on the backend: what the family's stem and head carve
     * (NULL where they take none) */
    int *tokens, *labels; /* [B, L], [B] */
    real *vectors, *targets; /* [B, L, in_dim], [B, L, out_dim] */
    int in_dim, out_dim;
    real *losses;         /* [B] each sequence's loss */
    real *logits;         /* [B, V] of a token head (NULL otherwise) */
    unsigned char *block_mask; /* [B, L]: 1 = source position blocked in the mixing */
    uint64_t block_layers;     /* bit l: blocking applies to layer l; 0 = off */
    /* substitution: in layer subst_layer, the family's substitutable states
     * (ach_family.subst_states) of rows with subst_mask set are replaced
     * by subst_src [B*L, width] */
    int subst_layer;           /* -1 = off */
    const real *subst_src;
    const unsigned char *subst_mask;
    int cur_B, cur_L;     /* shape of the last forward */
    int lean;             /* the forward in progress need not keep what analysis reads */
} ach_model;

/* Creates the model of cfg's family; an error names the config field, or
 * the kernel the family needs that backend k lacks. */
int ach_model_create(ach_model *m, const ach_config *cfg, const ach_kernels *k, char *err, size_t errlen);
void ach_model_free(ach_model *m);
/* Allocates activations for batches up to B sequences of exactly L tokens. */
int ach_model_reserve(ach_model *m, int B, int L, char *err, size_t errlen);
const ach_param *ach_model_param(const ach_model *m, const char *name);
/* The first parameter of layer `layer` (-1: outside the layers) of the kind. */
const ach_param *ach_model_param_of(const ach_model *m, int layer, unsigned kind);
/* Writes `value` into n entries of a backend arena (weights, moments...). */
int ach_model_fill(const ach_model *m, real *dst, size_t n, real value);

/* For families (family.h). Appends a parameter of this name and shape
 * (ndim 1..3) to the table, in layer `layer` (-1: outside the layers).
 * Returns its offset into the arenas. */
size_t ach_model_add_param(ach_model *m, int layer, const char *name, unsigned kind, int ndim, int s0, int s1,
                           int s2);
/* Carving the activation arena: ach_model_reserve calls the family's carve
 * twice, first to count (base NULL), then to set the pointers. */
typedef struct {
    char *base;
    size_t off;
} ach_carver;
void *ach_carve(ach_carver *cv, size_t bytes);
#define ACH_TAKE(cv, ptr, n) ((ptr) = ach_carve((cv), (size_t)(n) * sizeof *(ptr)))

/* Forward on host tokens [B, L] and labels [B] (B <= reserved). Returns the
 * mean cross-entropy at the last position; logits stay in m->logits. */
double ach_model_forward(ach_model *m, const int *tokens, const int *labels, int B, int L);
/* The same, but the backend may skip keeping the layer activations that
 * analysis reads (ach_model_backward then recomputes them): for training
 * steps and evaluation. */
double ach_model_forward_lean(ach_model *m, const int *tokens, const int *labels, int B, int L);
/* The forward of any batch (lean as above): the mean of the sequences'
 * losses; NaN for a batch without what the model takes (ach_model_set_batch). */
double ach_model_forward_batch(ach_model *m, const ach_batch *b, int lean);
/* The three parts of a forward, for a step that must not wait on the
 * device between its kernels (step.c): copy the batch to the backend
 * (-1 with a message naming the missing or unexpected tensor); queue the
 * forward's kernels (lean as above); the mean loss, which waits for them. */
int ach_model_set_batch(ach_model *m, const ach_batch *b, char *err, size_t errlen);
void ach_model_launch_forward(ach_model *m, int lean);
double ach_model_loss(const ach_model *m);
/* Blocking (docs/science.md §4.3) for the following passes: mask [B*L] on the host, 1
 * where a source position's contribution to later positions is removed, in
 * the layers of the bit set. mask NULL or layers 0 turns it off. */
void ach_model_set_block(ach_model *m, const unsigned char *mask, int B, int L, uint64_t layers);
/* The mask to hand layer l's mixing kernel: NULL when l is not blocked. */
const unsigned char *ach_model_block_for(const ach_model *m, int l);

/* Gradients of that loss into m->g (overwritten). */
void ach_model_backward(ach_model *m);
/* A training step's forward (lean) and backward, after set_batch: the
 * losses and m->g as the two calls above give them, by the family's fused
 * training pass where it has one (the head's activations, such as the
 * logits, may then not be kept). */
void ach_model_launch_train(ach_model *m);
#endif
