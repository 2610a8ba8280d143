/* Model families: the operations that make a model of one kind (Mamba-1,
 * Mamba-2, ...), as a table of function pointers, and the list of
 * families. The generic model (model.c) calls only these; a family keeps
 * its own state (layer offsets, activations, stem and head) behind
 * ach_model.fstate. docs/engine.md, "Model families", says how to add one.
 *
 * A family is named by cfg.arch: the built-in ones have fixed ids
 * (ARCH_MAMBA1, ARCH_MAMBA2); ach_family_register gives a new one the
 * next id, so a family can come from outside src/ (t/family_toy.c). */
#ifndef ACH_FAMILY_H
#define ACH_FAMILY_H
#include <stddef.h>

#include "model.h"
#include "rng.h"
#include "safetensors.h"

/* A kernel a family calls: its name in messages, its slot in ach_kernels. */
typedef struct {
    const char *name;
    size_t offset;
} ach_kernel_need;
#define ACH_NEED(field) {#field, offsetof(ach_kernels, field)}

typedef struct ach_family {
    const char *name; /* arch= and --arch values, cfg_arch_name */
    /* The checks of cfg_validate that concern this family's own fields;
     * the message names the field. */
    int (*validate)(const ach_config *c, char *err, size_t errlen);
    /* Allocates m->fstate and adds the parameters in state_dict order
     * (ach_model_add_param). -1: out of memory. */
    int (*create)(ach_model *m);
    void (*destroy)(ach_model *m); /* frees m->fstate */
    /* Takes every activation for batches of B x L from the carver
     * (ACH_TAKE), the batch buffers and m->losses included, in the same
     * order on both passes (counting, then setting). */
    void (*carve)(ach_model *m, ach_carver *cv, int B, int L);
    /* Optional: after the second pass, fills what depends on the reserved
     * shape alone (a positional table, host staging). -1 with a message. */
    int (*prepare)(ach_model *m, char *err, size_t errlen);
    /* The forward of the batch on the backend (m->cur_B x m->cur_L) into
     * m->losses (and m->logits for a token head). m->lean: analysis will
     * not read the activations. */
    void (*forward)(ach_model *m);
    /* The gradient of mean(losses) into m->g, which the caller has zeroed,
     * after a forward of the same batch. */
    void (*backward)(ach_model *m);
    /* Optional (NULL: forward lean, then backward): a training step's
     * forward and backward as one pass, m->g zeroed by the caller. */
    void (*train)(ach_model *m);
    /* The initial values of tensor p (n = p->numel doubles) under the
     * family's reference initialisation, drawn from r; init.c applies the
     * γ rule itself to the kinds cfg.gamma_kinds selects. */
    void (*init_tensor)(const ach_config *c, const ach_param *p, double *v, ach_rng *r);
    const ach_kernel_need *kernels; /* what forward/backward call, {NULL} ended */
    /* Optional (NULL: the analyses say the family has none): the mixing
     * matrix (docs/science.md §4.6; for Mamba the SSM matrix, for a
     * Transformer its attention): how many units (heads or
     * channels) a layer has, what a unit is called ("head"), how the
     * summary over units is named ("mean over"), and S(t, s), L x L, of
     * sequence 0 of the last full forward in layer l for unit u, or the
     * summary for u = -1 (zero above the diagonal). */
    int (*mixing_units)(const ach_config *c);
    const char *mixing_unit, *mixing_summary;
    void (*mixing_matrix)(const ach_model *m, int l, int u, double *S);
    /* Optional: the per-position states of layer l that substitution replaces
     * (docs/science.md §4.4), [B*L, *width], as the last full forward
     * left them; NULL where the family has none. */
    real *(*subst_states)(const ach_model *m, int l, int *width);
    /* FLOPs of one forward of B x L (achilles bench). */
    double (*forward_flops)(const ach_config *c, int B, int L);
    /* Optional: the config of a checkpoint that has none, from its
     * tensors' names and shapes: 1 when they are this family's (or a
     * sibling's: c->arch says whose), with the sizes it read in note; 0
     * when they are not; -1 when they are but do not determine a config. */
    int (*from_shapes)(ach_config *c, const st_file *f, const char *path, char *note, size_t nnote, char *err,
                       size_t errlen);
} ach_family;

/* The family of an arch id, or NULL. */
const ach_family *ach_family_of(ach_arch a);
/* The family of a name ("mamba2"); ACH_ARCH_NONE if none is named so. */
ach_arch ach_family_arch(const char *name);
/* Adds a family to the list: its arch id, or ACH_ARCH_NONE when the list is
 * full or the name is taken. */
ach_arch ach_family_register(const ach_family *f);
/* "" when backend k has every kernel f needs, else the first one missing. */
const char *ach_family_missing_kernel(const ach_family *f, const ach_kernels *k);
#endif
