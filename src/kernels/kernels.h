/* The kernel interface: every array operation the model performs. The model
 * code calls only these, so a backend (CPU here, CUDA in cuda/) implements
 * this table and nothing else. Arrays live where the backend says (alloc).
 *
 * Conventions (as in llm.c): activations are row-major [rows = B*L, C];
 * `ld*` is a row stride when a kernel reads a slice of a wider row. Forward
 * kernels overwrite their outputs; backward kernels ACCUMULATE (+=) into
 * every gradient they write, so callers zero buffers once. Outputs first,
 * then inputs, then sizes. */
#ifndef ACH_KERNELS_H
#define ACH_KERNELS_H
#include <stddef.h>

#include "real.h"

/* What the kernels take; config.c rejects models beyond. Layers also index
 * the model's 64-bit layer masks (blocking, fused layers). */
#define ACH_MAX_LAYERS 64
#define ACH_MAX_CONV 64 /* d_conv */

/* One Mamba-2 residual block (model.c, mamba2.c) for the fused entries
 * below: sizes, weights, their gradients and the input (rows R = B*L). */
typedef struct {
    int B, L, d_model, nheads, headdim, d_state, d_conv;
    real eps; /* of both RMSNorms */
    const real *norm, *in_proj, *conv_w, *conv_b, *dt_bias, *A_log, *D, *gnorm, *out_proj;
    real *g_norm, *g_in_proj, *g_conv_w, *g_conv_b, *g_dt_bias, *g_A_log, *g_D, *g_gnorm, *g_out_proj;
    const real *resid; /* [R, d_model] the block's input */
    /* NULL, or [R] when resid's rows are the embedding rows of these tokens
     * in h->wte (equal tokens, equal rows): mamba2_train then runs its first
     * block's pre-norm and in_proj once per distinct token, forward and
     * backward (see there) */
    const int *tokens;
} ach_mamba2_block;

/* The LM head (model.c) for mamba2_train: on each sequence's last
 * position, norm_f, logits against the tied embedding, cross-entropy. */
typedef struct {
    int vocab;     /* the embedding's rows */
    real scale;    /* each sequence's weight in the loss: 1 / B */
    const real *norm_f, *wte;
    real *g_norm_f, *g_wte;
    const int *labels; /* [B] */
    real *losses;      /* [B] written */
} ach_lm_head;

/* The optimizer step of adamw_step below, in backend memory: the caller
 * writes it (to_device) before each step, so a recorded step replays with
 * the current learning rate and bias corrections. */
typedef struct {
    size_t offset, numel; /* into the weight, moment and gradient arenas */
    real wd;              /* weight decay of this tensor */
    real step_size, bc2_sqrt;
    int frozen;           /* 1: not updated, not in the norm */
} ach_adamw_tensor;
typedef struct {
    double clip;          /* global norm; <= 0: no clipping */
    real lr, b1, b2, eps;
    ach_adamw_tensor t[]; /* in parameter-table order */
} ach_adamw_plan;

typedef struct ach_kernels {
    const char *name;
    void *(*alloc)(size_t bytes); /* zero-filled */
    void (*release)(void *p);
    void (*to_device)(void *dst, const void *src, size_t bytes);
    void (*to_host)(void *dst, const void *src, size_t bytes);
    void (*zero)(real *p, size_t n);

    /* out[i] = wte[tokens[i]]; backward dwte[tokens[i]] += dout[i]. Every
     * token is below V (the vocabulary: dwte has V rows). */
    void (*embedding_forward)(real *out, const int *tokens, const real *wte, int n, int D);
    void (*embedding_backward)(real *dwte, const real *dout, const int *tokens, int n, int D, int V);

    /* out = inp * rsqrt(mean(inp^2) + eps) * w, per row; rstd saved. */
    void (*rmsnorm_forward)(real *out, real *rstd, const real *inp, const real *w, int rows, int C, real eps);
    void (*rmsnorm_backward)(real *dinp, real *dw, const real *dout, const real *inp, const real *w,
                             const real *rstd, int rows, int C);

    /* out[m, n] = sum_k inp[m*ldi + k] * w[n*K + k] (+ bias[n]); w is [N, K]
     * like torch.nn.Linear. out has row stride N. bias may be NULL. */
    void (*matmul_forward)(real *out, const real *inp, int ldi, const real *w, const real *bias,
                           int M, int K, int N);
    /* dinp (row stride ldi) += dout w; dw += dout^T inp; dbias += colsum(dout).
     * dbias may be NULL. */
    void (*matmul_backward)(real *dinp, real *dw, real *dbias, const real *dout, const real *inp,
                            int ldi, const real *w, int M, int K, int N);

    /* Causal depthwise conv over time: out[b,t,c] = bias[c] +
     * sum_j w[c*K + j] * inp[b, t-K+1+j, c] (zero before t = 0); inp has
     * row stride ldi, out is [B*L, C]. */
    void (*conv1d_forward)(real *out, const real *inp, int ldi, const real *w, const real *bias,
                           int B, int L, int C, int K);
    void (*conv1d_backward)(real *dinp, real *dw, real *dbias, const real *dout, const real *inp,
                            int ldi, const real *w, int B, int L, int C, int K);

    /* Elementwise SiLU over n values. */
    void (*silu_forward)(real *out, const real *inp, size_t n);
    void (*silu_backward)(real *dinp, const real *dout, const real *inp, size_t n);

    /* out = y * silu(z); y and out are [rows, C], z has row stride ldz. */
    void (*gate_forward)(real *out, const real *y, const real *z, int ldz, int rows, int C);
    void (*gate_backward)(real *dy, real *dz, const real *dout, const real *y, const real *z, int ldz,
                          int rows, int C);

    /* x += y over n values. */
    void (*add_inplace)(real *x, const real *y, size_t n);

    /* Mamba-1 selective scan, per batch b and channel d:
     *   delta = softplus(dt[b,t,d]), A = -exp(A_log[d, :]),
     *   h_t = exp(delta A) h_{t-1} + delta B_t u_t,  y_t = C_t . h_t + D[d] u_t.
     * u, dt, y are [B*L, Di]; Bm, Cm are [B*L, N] slices with row stride ldbc.
     * block (NULL = none): [B*L], 1 where a source position's input term
     * reaches y at its own step but not later steps (blocking, docs/science.md §4.3).
     * work: mamba1_scan_work(L, N) reals of scratch. */
    void (*mamba1_scan_forward)(real *y, const real *u, const real *dt, const real *A_log,
                                const real *Bm, const real *Cm, int ldbc, const real *D,
                                const unsigned char *block, int B, int L, int Di, int N, real *work);
    void (*mamba1_scan_backward)(real *du, real *ddt, real *dA_log, real *dBm, real *dCm, real *dD,
                                 const real *dy, const real *u, const real *dt, const real *A_log,
                                 const real *Bm, const real *Cm, int ldbc, const real *D,
                                 const unsigned char *block, int B, int L, int Di, int N, real *work);

    /* Mamba-2 SSD (one group), per batch b and head h, in its quadratic form
     *   y_t = sum_{s<=t} (C_t . B_s) exp(sum_{k=s+1..t} delta_k A) delta_s x_s + D x_t,
     * delta = softplus(dt[b,t,h] + dt_bias[h]), A = -exp(A_log[h]); x (head
     * h is channels h*P..h*P+P-1), Bm, Cm share row stride ldx; dt has row
     * stride ldt; y is [B*L, H*P]. block (NULL = none): [B*L], 1 where the
     * entries (t, s), t > s, of source s are zero. work: mamba2_ssd_work(L). */
    void (*mamba2_ssd_forward)(real *y, const real *x, const real *Bm, const real *Cm, int ldx,
                               const real *dt, int ldt, const real *dt_bias, const real *A_log,
                               const real *D, const unsigned char *block, int B, int L, int H, int P,
                               int N, real *work);
    void (*mamba2_ssd_backward)(real *dx, real *dBm, real *dCm, real *ddt, real *ddt_bias,
                                real *dA_log, real *dD, const real *dy, const real *x, const real *Bm,
                                const real *Cm, int ldx, const real *dt, int ldt, const real *dt_bias,
                                const real *A_log, const real *D, const unsigned char *block, int B,
                                int L, int H, int P, int N, real *work);

    /* Positional encoding: x[b,t,:] += pe[t,:]; backward dpe[t,:] += sum_b dx[b,t,:]. */
    void (*posenc_forward)(real *x, const real *pe, int B, int L, int D);
    void (*posenc_backward)(real *dpe, const real *dx, int B, int L, int D);

    /* dst[r, :] = src[r, :] for every row r with mask[r] set (C columns). */
    void (*rows_replace)(real *dst, const real *src, const unsigned char *mask, int rows, int C);

    /* Rows t = L-1 of each sequence: out[b] = inp[b*L + L-1]; backward adds. */
    void (*last_forward)(real *out, const real *inp, int B, int L, int C);
    void (*last_backward)(real *dinp, const real *dout, int B, int L, int C);

    /* Softmax cross-entropy per row: losses[b], probs [B, V] kept for backward. */
    void (*crossentropy_forward)(real *losses, real *probs, const real *logits, const int *labels,
                                 int B, int V);
    /* dlogits += scale * (probs - onehot(labels)) */
    void (*crossentropy_backward)(real *dlogits, const real *probs, const int *labels, int B, int V,
                                  real scale);

    /* sum of squares of n values, accumulated in double in a fixed order */
    double (*sumsq)(const real *x, size_t n);
    /* One AdamW step as torch.optim.AdamW computes it, on n values, the
     * gradient scaled by gscale first (clipping): w *= 1 - lr wd;
     * m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
     * w -= step_size m / (sqrt(v) / bc2_sqrt + eps), where
     * step_size = lr / (1 - b1^t) and bc2_sqrt = sqrt(1 - b2^t). */
    void (*adamw_update)(real *w, real *m, real *v, const real *g, size_t n, real gscale, real lr, real wd,
                         real b1, real b2, real eps, real step_size, real bc2_sqrt);

    /* Optional (NULL: the model composes the kernels above): a whole Mamba-2
     * residual block, out = resid + mixer(rmsnorm(resid)), in one pass, so a
     * backend can keep each block of rows in cache. Forward writes out
     * [R, d_model] only, none of the layer's activations; backward
     * recomputes what it needs from resid, turns dresid from the gradient
     * of out into that of resid (in place) and adds the parameter
     * gradients. Used for training steps only (the activations are what
     * analysis reads), never with blocking or substitution. */
    void (*mamba2_block_forward)(const ach_mamba2_block *b, real *out);
    void (*mamba2_block_backward)(const ach_mamba2_block *b, real *dresid);
    /* Optional (NULL: the model runs the blocks and the head forward, then
     * backward): a training step's last n blocks (1 <= n <= ACH_MAX_LAYERS,
     * in order; blocks[0].resid is their input, the others' resid is not read) and
     * the head in one pass per block of sequences, forward through all of
     * them, the head (losses written), then backward, so that a backend can
     * keep every block's activations in cache and compute no forward
     * twice. dresid [R, d_model] is overwritten with the gradient of
     * blocks[0]'s input; the blocks', norm_f's and the embedding's
     * gradients are added to. With blocks[0].tokens set (and n > 1), the
     * part of that input gradient through blocks[0]'s pre-norm is added to
     * h->g_wte per token instead, and dresid holds the rest (what the
     * embedding's backward needs: the sum per token is the same). Same
     * conditions as mamba2_block_backward. */
    void (*mamba2_train)(const ach_mamba2_block *blocks, int n, const ach_lm_head *h, real *dresid);

    /* Optional (NULL: optim.c calls sumsq and adamw_update per tensor and
     * reads each norm back): the whole optimizer step without waiting for
     * the device. norm (2 doubles of backend memory) receives the global
     * gradient norm of the tensors not frozen (each tensor's sum of squares
     * in double, added in table order), then the gradient scale
     * min(1, clip / (norm + 1e-6)) (1 when clip <= 0); every tensor not
     * frozen then gets adamw_update with that scale and its plan entry. */
    void (*adamw_step)(real *w, real *m, real *v, const real *g, const ach_adamw_plan *plan, int ntensors,
                       double *norm);

    /* Optional (NULL: the caller runs body itself): runs body(ctx), a
     * training step's kernels, as a graph recorded on the first call with
     * this key (key bytes) and replayed on later ones, so the device runs
     * it without a launch per kernel. body must not copy to or from the
     * host, and what it launches (shapes, pointers, scalar arguments) must
     * be a function of the key; data that changes from step to step goes
     * through backend memory written before the call. Freeing backend
     * memory (release, a scratch buffer growing) drops the recorded graphs. */
    void (*graph_run)(const void *key, size_t keylen, void (*body)(void *ctx), void *ctx);
} ach_kernels;

size_t mamba1_scan_work(int L, int N);
size_t mamba2_ssd_work(int L);

extern const ach_kernels ach_cpu_kernels;
/* SIMD + thread-pool kernels (kernels_fast.c), bit-identical at any thread count. */
const ach_kernels *ach_fast_kernels(void);
/* The fast kernels' instance for "avx512", "avx2" or "generic", or NULL if
 * this CPU cannot run it (tests, `achilles bench --isa`). */
const ach_kernels *ach_fast_kernels_isa(const char *isa);
/* For `achilles bench`'s Mamba-1 limit: on one core, the rate of the fast
 * instance k's Mamba-1 decay exp (exps/s) and of its FMAs (vector lanes/s),
 * each timed over 50 ms of the calling thread's CPU time on data in L1;
 * both 0 when k is not a fast instance (the float64 build, the reference). */
void ach_fast_rates(const ach_kernels *k, double *exps_per_s, double *fmas_per_s);
#endif
