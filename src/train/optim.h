/* The paper's optimizer (docs/science.md §3): AdamW with linear warmup then cosine
 * decay of the learning rate, and clipping at a global gradient norm. The
 * moments live in backend arenas beside the weights. */
#ifndef ACH_OPTIM_H
#define ACH_OPTIM_H
#include "model.h"

typedef struct {
    double lr_min, lr_max;         /* 1e-5 -> 2.5e-4 -> 1e-5 */
    double warmup_epochs;          /* 10 */
    double total_epochs;           /* 200: where the cosine reaches lr_min */
    double beta1, beta2, eps;      /* 0.9, 0.999, 1e-8 */
    double weight_decay;           /* 0.01 */
    unsigned no_decay_kinds;       /* KIND_* mask exempt from weight decay (default none) */
    double clip;                   /* global norm; <= 0 disables */
} ach_optim_cfg;

#define ACH_OPTIM_MAX_PINS 128 /* a conv weight and bias in each of up to 64 layers */

typedef struct {
    ach_optim_cfg cfg;
    real *m, *v;                   /* [nweights] each */
    long step;                     /* optimizer steps taken */
    long *steps;                   /* [nparams]: steps each tensor took (torch
                                      keeps one per parameter: a frozen tensor
                                      does not advance its bias correction) */
    unsigned char *frozen;         /* [nparams]: 1 = no update, no decay, not in the norm */
    /* the step being taken: the plan (host copy, and backend copies when
     * the backend has adamw_step) or, without it, the norm found */
    double norm;
    ach_adamw_plan *plan, *plan_dev;
    double *norm_dev;              /* [2] norm, gradient scale */
    /* Pinned ranges of the arenas: frozen entries inside a tensor that
     * trains (the all-one conv on some channels only). Their gradient is
     * zeroed before the norm, and ach_optim_repin writes their value back
     * after the step, undoing weight decay: the same as a frozen tensor. */
    int npin;
    struct { size_t offset, n; real value; } pin[ACH_OPTIM_MAX_PINS];
} ach_optim;

void ach_optim_defaults(ach_optim_cfg *c);
int ach_optim_create(ach_optim *o, const ach_model *m, const ach_optim_cfg *c);
void ach_optim_free(ach_optim *o, const ach_model *m);
/* Learning rate at a (possibly fractional) epoch position. */
double ach_lr_at(const ach_optim_cfg *c, double epoch);
/* Clips m->g to the global norm, then one AdamW step at learning rate lr.
 * Returns the gradient norm before clipping (NaN/Inf pass through). */
double ach_optim_step(ach_optim *o, ach_model *m, double lr);
/* The same in three parts, for a step that must not wait on the device
 * between its kernels (step.c): count the step and write its plan to the
 * backend; queue its kernels; the norm, which waits for them. */
void ach_optim_prepare(ach_optim *o, const ach_model *m, double lr);
void ach_optim_launch(ach_optim *o, ach_model *m);
double ach_optim_norm(const ach_optim *o, const ach_model *m);
/* Pins n entries at `offset` (into the arenas) to `value`: sets them and
 * their moments now. -1 when ACH_OPTIM_MAX_PINS are taken. */
int ach_optim_pin(ach_optim *o, const ach_model *m, size_t offset, size_t n, real value);
/* Writes the pinned values back (after a step; not inside a recorded graph). */
void ach_optim_repin(const ach_optim *o, const ach_model *m);
#endif
