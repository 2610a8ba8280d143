/* The Mamba families (mamba.c): mamba_ssm's MixerModel, a token stem, n
 * residual blocks h += mixer(rmsnorm(h)), and cross-entropy at the last
 * position through norm_f and the tied embedding. Mamba-1 and Mamba-2
 * share all but the mixer (mamba1.c, mamba2.c), which this header
 * declares for them. */
#ifndef ACH_MAMBA_H
#define ACH_MAMBA_H
#include "family.h"
#include "head.h"
#include "stem.h"

/* Offsets of one layer's tensors in the arenas (unused ones stay 0). */
typedef struct {
    size_t norm, in_proj, conv_w, conv_b, x_proj, dt_proj_w, dt_proj_b, dt_bias, A_log, D, gnorm, out_proj;
} mamba_layer_params;

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
} mamba_layer_acts;

/* What differs between Mamba-1 and Mamba-2: the mixer (mamba1.c, mamba2.c). */
typedef struct {
    /* layer l's mixer tensors between conv1d.bias and out_proj */
    void (*params)(ach_model *m, int l, mamba_layer_params *p);
    /* the mixer's own activations of a layer, and its gradient scratch */
    void (*carve)(ach_model *m, ach_carver *cv, mamba_layer_acts *a, size_t R);
    void (*carve_grads)(ach_model *m, ach_carver *cv, size_t R);
    size_t (*work)(const ach_config *c, int L); /* scan scratch, reals */
    void (*forward)(ach_model *m, int l, real *out);
    void (*backward)(ach_model *m, int l, const real *dout);
    /* Optional: layer l's whole residual block by the backend's fused
     * kernels, when it has them and the pass allows (a training forward,
     * no blocking or substitution): 1 if done, 0 to take the composed path. */
    int (*fused_forward)(ach_model *m, int l, real *out);
    int (*fused_backward)(ach_model *m, int l);
    /* forward FLOPs of one layer beyond the part both mixers share */
    double (*flops)(const ach_config *c, int B, int L);
} mamba_mixer;
extern const mamba_mixer mamba1_mixer, mamba2_mixer;

/* A Mamba model's state (ach_model.fstate). */
typedef struct {
    const mamba_mixer *mix;
    ach_stem stem;
    ach_head_ce head;
    mamba_layer_params *lp;
    mamba_layer_acts *layers;
    real *resid_out;      /* [R, D] residual after the last layer */
    real *work;           /* scan scratch */
    real *d_resid, *d_xn, *d_proj, *d_conv, *d_act, *d_xdbl, *d_dt, *d_y, *d_gated, *d_normed;
    uint64_t fused_layers; /* bit l: layer l's last forward was the backend's fused block */
} mamba_state;

static inline mamba_state *mamba_of(const ach_model *m) { return (mamba_state *)m->fstate; }

/* The mixers' forward writes out [R, D] = mixer(layer l's xn); backward
 * accumulates into d_xn and the parameter gradients. */
/* The first of the last layers that can run with the head as one
 * training pass (the backend's mamba2_train; none blocked or substituted),
 * n_layer if none; mamba2_train runs layers first.. that way, d_resid
 * receiving the gradient of layer first's input. */
int mamba2_train_first(const ach_model *m);
void mamba2_train(ach_model *m, int first);
/* The SSM matrix of each mixer (ach_family.mixing_matrix). */
void mamba1_mixing_matrix(const ach_model *m, int l, int u, double *S);
void mamba2_mixing_matrix(const ach_model *m, int l, int u, double *S);
/* Adds layer l's tensor backbone.layers.<l>.<suffix> (ach_model_add_param). */
size_t mamba_layer_param(ach_model *m, int l, const char *suffix, unsigned kind, int ndim, int s0, int s1, int s2);
/* n reals of backend memory copied to a malloc'd host array (NULL: out of memory). */
real *mamba_host_copy(const ach_model *m, const real *src, size_t n);
/* The parts of the reference initialisation both mixers share. */
void mamba_init_tensor(const ach_config *c, const ach_param *p, double *v, ach_rng *r);
#endif
