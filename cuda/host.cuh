/* The host side of the CUDA backend: the ach_kernels entry points, their
 * launch shapes, scratch buffers, and the mapping of the row-major matmuls
 * onto column-major GEMMs. Shared word for word by the device build
 * (backend_cuda.cu) and the emulated one (backend_emu.cc); each defines,
 * before including this file:
 *   ACH_LAUNCH(kernel, grid, block, shmem, args...)   a kernel launch
 *   plat_alloc (zero-filled, NULL when out of memory), plat_free,
 *   plat_h2d, plat_d2h, plat_memset0                   device memory
 *   plat_gemm(ta, tb, m, n, k, A, lda, B, ldb, beta, C, ldc)
 *       C = op(A) op(B) + beta C, column-major, as cublasSgemm with alpha 1
 *   plat_fatal(fmt, ...)                               report and exit
 *   plat_graph, plat_capture_begin(), plat_capture_end() -> plat_graph,
 *   plat_graph_launch(g), plat_graph_destroy(g)        stream capture
 *   plat_capture_misuse(what)                          what a graph cannot hold
 *   ACH_CU_NAME                                        the table's name
 * Everything here has internal linkage, so both builds may share a binary. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern "C" {
#include "kernels.h"
}
#include "kernels/common.cuh"
#include "kernels/conv.cuh"
#include "kernels/elementwise.cuh"
#include "kernels/loss.cuh"
#include "kernels/mamba1.cuh"
#include "kernels/mamba2.cuh"
#include "kernels/norm.cuh"
#include "kernels/reduce.cuh"

static_assert(sizeof(real) == sizeof(float), "the CUDA backend is float32 (cuBLAS Sgemm)");

namespace {

/* Launch shapes. Results do not depend on them (common.cuh) except for the
 * order of sumsq's double-precision tree; tests vary them. */
struct cu_shape {
    int threads;     /* threads per block, 1-D kernels */
    int max_blocks;  /* grid cap of the grid-stride kernels */
    int seq_threads; /* threads per block of the per-sequence SSD kernels */
};
cu_shape shape = {256, 8192, 128};
const size_t SMEM_MAX = 48 << 10; /* dynamic shared memory without opting in */

unsigned grid_for(size_t n)
{
    size_t b = (n + shape.threads - 1) / shape.threads;
    return (unsigned)(b < 1 ? 1 : b > (size_t)shape.max_blocks ? shape.max_blocks : b);
}
unsigned grid_cap(size_t n) { return (unsigned)(n < 1 ? 1 : n > (size_t)shape.max_blocks ? shape.max_blocks : n); }
int nchunks_of(int rows) { return (rows + ACH_CU_CHUNK - 1) / ACH_CU_CHUNK; }

/* Scratch: device buffers that grow on first use of a larger shape and are
 * reused after, so a steady training loop allocates nothing. Kernels of one
 * call use distinct slots; calls run in stream order, so reuse is safe, and
 * plat_free waits for the device before releasing a buffer. */
enum { S_PART, S_PART2, S_PART3, S_DELTA, S_GU, S_GD, S_HS, S_HS2, S_SSD, S_RED, S_COUNT };
struct scratch_buf {
    void *p;
    size_t bytes;
};
scratch_buf scratch_bufs[S_COUNT];

/* Graphs hold device pointers: every free bumps mem_gen, which retires the
 * graphs recorded before it. capturing: a graph is being recorded. */
unsigned long mem_gen;
int capturing;

template <class T> T *scratch(int slot, size_t n)
{
    scratch_buf *s = &scratch_bufs[slot];
    size_t bytes = n * sizeof(T);
    if (bytes > s->bytes) {
        if (capturing) plat_capture_misuse("a scratch buffer growing");
        mem_gen++;
        plat_free(s->p);
        s->p = plat_alloc(bytes);
        if (!s->p) plat_fatal("out of device memory for %zu bytes of kernel scratch", bytes);
        s->bytes = bytes;
    }
    return static_cast<T *>(s->p);
}

/* out[c] += sum of the nchunks partials part[k, c] */
void reduce_chunks(real *out, const real *part, int nchunks, size_t C)
{
    if (C) ACH_LAUNCH(k_reduce_chunks, grid_for(C), shape.threads, 0, out, part, nchunks, C);
}

/* out[c] += sum over rows of in[r * ld + c] */
void colsum_add(real *out, const real *in, int rows, int C, int ld)
{
    if (!rows || !C) return;
    int nc = nchunks_of(rows);
    real *part = scratch<real>(S_PART3, (size_t)nc * C);
    ACH_LAUNCH(k_colsum_part, grid_for((size_t)nc * C), shape.threads, 0, part, in, rows, C, ld);
    reduce_chunks(out, part, nc, C);
}

void *cu_alloc(size_t bytes) { return plat_alloc(bytes ? bytes : 1); }
void cu_release(void *p)
{
    if (!p) return;
    if (capturing) plat_capture_misuse("release");
    mem_gen++;
    plat_free(p);
}
void cu_to_device(void *dst, const void *src, size_t bytes)
{
    if (capturing) plat_capture_misuse("a copy to the device");
    if (bytes) plat_h2d(dst, src, bytes);
}
void cu_to_host(void *dst, const void *src, size_t bytes)
{
    if (capturing) plat_capture_misuse("a copy to the host");
    if (bytes) plat_d2h(dst, src, bytes);
}
void cu_zero(real *p, size_t n)
{
    if (n) plat_memset0(p, n * sizeof *p);
}

void embedding_forward(real *out, const int *tokens, const real *wte, int n, int D)
{
    if (n > 0 && D > 0) ACH_LAUNCH(k_embedding_forward, grid_for((size_t)n * D), shape.threads, 0, out, tokens, wte, n, D);
}

/* Partials of V rows (one per token id) per chunk of rows. */
void embedding_backward(real *dwte, const real *dout, const int *tokens, int n, int D, int V)
{
    if (!n || !D || V <= 0) return;
    int nc = nchunks_of(n);
    real *part = scratch<real>(S_PART, (size_t)nc * V * D);
    plat_memset0(part, (size_t)nc * V * D * sizeof *part);
    ACH_LAUNCH(k_embedding_part, grid_for((size_t)nc * D), shape.threads, 0, part, dout, tokens, n, D, V);
    reduce_chunks(dwte, part, nc, (size_t)V * D);
}

void rmsnorm_forward(real *out, real *rstd, const real *inp, const real *w, int rows, int C, real eps)
{
    if (rows) ACH_LAUNCH(k_rmsnorm_forward, grid_for(rows), shape.threads, 0, out, rstd, inp, w, rows, C, eps);
}

void rmsnorm_backward(real *dinp, real *dw, const real *dout, const real *inp, const real *w, const real *rstd,
                      int rows, int C)
{
    if (!rows || !C) return;
    ACH_LAUNCH(k_rmsnorm_backward_dx, grid_for(rows), shape.threads, 0, dinp, dout, inp, w, rstd, rows, C);
    int nc = nchunks_of(rows);
    real *part = scratch<real>(S_PART, (size_t)nc * C);
    ACH_LAUNCH(k_rmsnorm_dw_part, grid_for((size_t)nc * C), shape.threads, 0, part, dout, inp, rstd, rows, C);
    reduce_chunks(dw, part, nc, C);
}

/* A row-major [rows, cols] array with row stride ld is, to a column-major
 * GEMM, the matrix [cols, rows] with leading dimension ld: its transpose.
 * So, writing X' for what cuBLAS sees of array X (w is [N, K], row-major):
 *   out = inp w^T    is  out' [N, M]  = T(w' [K, N]) inp' [K, M]
 *   dinp += dout w   is  dinp' [K, M] += w' [K, N] dout' [N, M]
 *   dw += dout^T inp is  dw' [K, N]   += inp' [K, M] T(dout' [N, M]) */
void matmul_forward(real *out, const real *inp, int ldi, const real *w, const real *bias, int M, int K, int N)
{
    if (!M || !N) return;
    if (bias) ACH_LAUNCH(k_fill_rows, grid_for((size_t)M * N), shape.threads, 0, out, bias, M, N);
    if (!K) {
        if (!bias) plat_memset0(out, (size_t)M * N * sizeof *out);
        return;
    }
    plat_gemm(1, 0, N, M, K, w, K, inp, ldi, bias ? 1.0f : 0.0f, out, N);
}

void matmul_backward(real *dinp, real *dw, real *dbias, const real *dout, const real *inp, int ldi, const real *w,
                     int M, int K, int N)
{
    if (!M || !N) return;
    if (K) {
        plat_gemm(0, 0, K, M, N, w, K, dout, N, 1.0f, dinp, ldi);
        plat_gemm(0, 1, K, N, M, inp, ldi, dout, N, 1.0f, dw, K);
    }
    if (dbias) colsum_add(dbias, dout, M, N, N);
}

void conv1d_forward(real *out, const real *inp, int ldi, const real *w, const real *bias, int B, int L, int C, int K)
{
    size_t n = (size_t)B * L * C;
    if (n) ACH_LAUNCH(k_conv1d_forward, grid_for(n), shape.threads, 0, out, inp, ldi, w, bias, B, L, C, K);
}

void conv1d_backward(real *dinp, real *dw, real *dbias, const real *dout, const real *inp, int ldi, const real *w,
                     int B, int L, int C, int K)
{
    size_t n = (size_t)B * L * C;
    if (!n) return;
    ACH_LAUNCH(k_conv1d_backward_dx, grid_for(n), shape.threads, 0, dinp, dout, ldi, w, B, L, C, K);
    int nc = nchunks_of(B * L);
    real *pw = scratch<real>(S_PART, (size_t)nc * C * K), *pb = scratch<real>(S_PART2, (size_t)nc * C);
    ACH_LAUNCH(k_conv1d_dw_part, grid_for((size_t)nc * (C * K + C)), shape.threads, 0, pw, pb, dout, inp, ldi, B, L,
               C, K);
    reduce_chunks(dw, pw, nc, (size_t)C * K);
    reduce_chunks(dbias, pb, nc, C);
}

void silu_forward(real *out, const real *inp, size_t n)
{
    if (n) ACH_LAUNCH(k_silu_forward, grid_for(n), shape.threads, 0, out, inp, n);
}

void silu_backward(real *dinp, const real *dout, const real *inp, size_t n)
{
    if (n) ACH_LAUNCH(k_silu_backward, grid_for(n), shape.threads, 0, dinp, dout, inp, n);
}

void gate_forward(real *out, const real *y, const real *z, int ldz, int rows, int C)
{
    size_t n = (size_t)rows * C;
    if (n) ACH_LAUNCH(k_gate_forward, grid_for(n), shape.threads, 0, out, y, z, ldz, rows, C);
}

void gate_backward(real *dy, real *dz, const real *dout, const real *y, const real *z, int ldz, int rows, int C)
{
    size_t n = (size_t)rows * C;
    if (n) ACH_LAUNCH(k_gate_backward, grid_for(n), shape.threads, 0, dy, dz, dout, y, z, ldz, rows, C);
}

void add_inplace(real *x, const real *y, size_t n)
{
    if (n) ACH_LAUNCH(k_add_inplace, grid_for(n), shape.threads, 0, x, y, n);
}

/* The model's `work` is sized for the reference algorithm; these kernels use
 * their own scratch instead. */
void mamba1_scan_forward(real *y, const real *u, const real *dt, const real *A_log, const real *Bm, const real *Cm,
                         int ldbc, const real *D, const unsigned char *block, int B, int L, int Di, int N, real *work)
{
    size_t n = (size_t)B * L * Di;
    if (!n) return;
    real *delta = scratch<real>(S_DELTA, n);
    ACH_LAUNCH(k_softplus, grid_for(n), shape.threads, 0, delta, dt, n);
    ACH_LAUNCH(k_scan1_forward, grid_for((size_t)B * Di), shape.threads, 0, y, u, delta, A_log, Bm, Cm, ldbc, D, block,
               B, L, Di, N);
}

void mamba1_scan_backward(real *du, real *ddt, real *dA_log, real *dBm, real *dCm, real *dD, const real *dy,
                          const real *u, const real *dt, const real *A_log, const real *Bm, const real *Cm, int ldbc,
                          const real *D, const unsigned char *block, int B, int L, int Di, int N, real *work)
{
    size_t n = (size_t)B * L * Di;
    if (!n) return;
    real *delta = scratch<real>(S_DELTA, n), *gu = scratch<real>(S_GU, n), *gd = scratch<real>(S_GD, n);
    real *hs = scratch<real>(S_HS, n), *hs2 = scratch<real>(S_HS2, (size_t)B * L * N);
    real *pA = scratch<real>(S_PART, (size_t)B * Di * N), *pD = scratch<real>(S_PART2, (size_t)B * Di);
    ACH_LAUNCH(k_softplus, grid_for(n), shape.threads, 0, delta, dt, n);
    ACH_LAUNCH(k_scan1_bwd_d, grid_for((size_t)B * Di), shape.threads, 0, du, ddt, pA, pD, gu, gd, hs, dy, u, dt, delta,
               A_log, Bm, Cm, ldbc, D, block, B, L, Di, N);
    if (N)
        ACH_LAUNCH(k_scan1_bwd_n, grid_for((size_t)B * N), shape.threads, 0, dBm, dCm, hs2, dy, u, delta, A_log, Bm, Cm,
                   ldbc, block, B, L, Di, N);
    reduce_chunks(dA_log, pA, B, (size_t)Di * N);
    reduce_chunks(dD, pD, B, Di);
}

/* Shared memory when the block's matrices fit, else a global slice each. */
real *ssd_scratch(size_t per, unsigned grid, size_t *shmem)
{
    *shmem = per * sizeof(real);
    if (*shmem <= SMEM_MAX) return NULL;
    *shmem = 0;
    return scratch<real>(S_SSD, per * grid);
}

void mamba2_ssd_forward(real *y, const real *x, const real *Bm, const real *Cm, int ldx, const real *dt, int ldt,
                        const real *dt_bias, const real *A_log, const real *D, const unsigned char *block, int B, int L,
                        int H, int P, int N, real *work)
{
    if (!B || !H) return;
    unsigned g = grid_cap((size_t)B * H);
    size_t shmem;
    real *gs = ssd_scratch(ssd_fwd_floats(L), g, &shmem);
    ACH_LAUNCH(k_ssd_forward, g, shape.seq_threads, shmem, y, x, Bm, Cm, ldx, dt, ldt, dt_bias, A_log, D, block, B, L,
               H, P, N, gs);
}

void mamba2_ssd_backward(real *dx, real *dBm, real *dCm, real *ddt, real *ddt_bias, real *dA_log, real *dD,
                         const real *dy, const real *x, const real *Bm, const real *Cm, int ldx, const real *dt,
                         int ldt, const real *dt_bias, const real *A_log, const real *D, const unsigned char *block,
                         int B, int L, int H, int P, int N, real *work)
{
    if (!B || !H) return;
    unsigned g = grid_cap(B);
    size_t shmem, bh = (size_t)B * H;
    real *gs = ssd_scratch(ssd_bwd_floats(L), g, &shmem);
    real *part = scratch<real>(S_PART, 3 * bh), *pbias = part, *pA = part + bh, *pD = part + 2 * bh;
    ACH_LAUNCH(k_ssd_backward, g, shape.seq_threads, shmem, dx, dBm, dCm, ddt, pbias, pA, pD, dy, x, Bm, Cm, ldx, dt,
               ldt, dt_bias, A_log, D, block, B, L, H, P, N, gs);
    reduce_chunks(ddt_bias, pbias, B, H);
    reduce_chunks(dA_log, pA, B, H);
    reduce_chunks(dD, pD, B, H);
}

void posenc_forward(real *x, const real *pe, int B, int L, int D)
{
    size_t n = (size_t)B * L * D;
    if (n) ACH_LAUNCH(k_posenc_forward, grid_for(n), shape.threads, 0, x, pe, n, (size_t)L * D);
}

void posenc_backward(real *dpe, const real *dx, int B, int L, int D) { colsum_add(dpe, dx, B, L * D, L * D); }

void rows_replace(real *dst, const real *src, const unsigned char *mask, int rows, int C)
{
    size_t n = (size_t)rows * C;
    if (n) ACH_LAUNCH(k_rows_replace, grid_for(n), shape.threads, 0, dst, src, mask, rows, C);
}

void last_forward(real *out, const real *inp, int B, int L, int C)
{
    size_t n = (size_t)B * C;
    if (n) ACH_LAUNCH(k_last_forward, grid_for(n), shape.threads, 0, out, inp, B, L, C);
}

void last_backward(real *dinp, const real *dout, int B, int L, int C)
{
    size_t n = (size_t)B * C;
    if (n) ACH_LAUNCH(k_last_backward, grid_for(n), shape.threads, 0, dinp, dout, B, L, C);
}

void crossentropy_forward(real *losses, real *probs, const real *logits, const int *labels, int B, int V)
{
    if (B) ACH_LAUNCH(k_crossentropy_forward, grid_for(B), shape.threads, 0, losses, probs, logits, labels, B, V);
}

void crossentropy_backward(real *dlogits, const real *probs, const int *labels, int B, int V, real scale)
{
    size_t n = (size_t)B * V;
    if (n) ACH_LAUNCH(k_crossentropy_backward, grid_for(n), shape.threads, 0, dlogits, probs, labels, B, V, scale);
}

/* Two passes, fixed slices: deterministic for a given launch shape. The
 * double comes back to the host (the optimizer needs the norm to clip). */
double sumsq(const real *x, size_t n)
{
    if (!n) return 0;
    size_t ns = (n + ACH_CU_SUMSQ_SLICE - 1) / ACH_CU_SUMSQ_SLICE;
    double *part = scratch<double>(S_RED, ns + 1), r;
    ACH_LAUNCH(k_sumsq_part, grid_cap(ns), shape.threads, 0, part, x, n);
    ACH_LAUNCH(k_sum_final, 1, shape.threads, 0, part + ns, part, ns);
    plat_d2h(&r, part + ns, sizeof r);
    return r;
}

void adamw_update(real *w, real *m, real *v, const real *g, size_t n, real gscale, real lr, real wd, real b1, real b2,
                  real eps, real step_size, real bc2_sqrt)
{
    real decay = 1 - lr * wd;
    if (n)
        ACH_LAUNCH(k_adamw, grid_for(n), shape.threads, 0, w, m, v, g, n, gscale, decay, b1, b2, eps, step_size,
                   bc2_sqrt);
}

/* The optimizer step in three launches, no host wait: sums of squares per
 * tensor, the norm and scale (one thread, table order), AdamW over every
 * tensor (one grid row per tensor). */
const unsigned ADAMW_BLOCKS = 32; /* per tensor; the loop strides over the rest */

void adamw_step(real *w, real *m, real *v, const real *g, const ach_adamw_plan *plan, int ntensors, double *norm)
{
    if (ntensors <= 0) return;
    double *part = scratch<double>(S_RED, ntensors);
    ACH_LAUNCH(k_sumsq_tensors, ntensors, shape.threads, 0, part, g, plan);
    ACH_LAUNCH(k_clip_scale, 1, 1, 0, norm, part, ntensors, plan);
    ACH_LAUNCH(k_adamw_tensors, dim3(ADAMW_BLOCKS, ntensors), shape.threads, 0, w, m, v, g, plan, norm);
}

/* Graphs (kernels.h graph_run). A key's first call runs body directly, so
 * scratch buffers grow to its shapes; the second records it; later ones
 * replay the recording. A few keys are kept (a run's full and last partial
 * batch, evaluation shapes), the least recently used one goes first. */
const int GRAPH_SLOTS = 8;
enum { SLOT_FREE, SLOT_RAN, SLOT_RECORDED }; /* RAN: run directly once, not recorded yet */
const size_t GRAPH_KEY_MAX = 128;
struct graph_slot {
    unsigned char key[GRAPH_KEY_MAX];
    size_t keylen;
    int state; /* SLOT_* */
    unsigned long gen, used;
    plat_graph g;
};
graph_slot graph_slots[GRAPH_SLOTS];
unsigned long graph_clock, graphs_recorded, graphs_replayed;
int graphs_off; /* ACHILLES_CUDA_GRAPHS=0 */

void graph_drop(graph_slot *s)
{
    if (s->state == SLOT_RECORDED) plat_graph_destroy(s->g);
    s->state = SLOT_FREE;
}

void graph_run(const void *key, size_t keylen, void (*body)(void *), void *ctx)
{
    if (graphs_off || keylen > GRAPH_KEY_MAX) {
        body(ctx);
        return;
    }
    graph_slot *s = NULL, *victim = &graph_slots[0];
    for (graph_slot *t = graph_slots; t < graph_slots + GRAPH_SLOTS; t++) {
        if (t->state && t->gen != mem_gen) graph_drop(t); /* its pointers may be gone */
        if (t->state && t->keylen == keylen && !memcmp(t->key, key, keylen)) s = t;
        if (victim->state && (!t->state || t->used < victim->used)) victim = t; /* free, else oldest */
    }
    if (!s) {
        s = victim;
        graph_drop(s);
        memcpy(s->key, key, keylen);
        s->keylen = keylen;
        body(ctx);
        s->state = SLOT_RAN, s->gen = mem_gen, s->used = ++graph_clock;
        return;
    }
    if (s->state == SLOT_RAN) {
        capturing = 1;
        plat_capture_begin();
        body(ctx);
        s->g = plat_capture_end();
        capturing = 0;
        s->state = SLOT_RECORDED;
        graphs_recorded++;
    }
    s->used = ++graph_clock;
    graphs_replayed++;
    plat_graph_launch(s->g);
}

void graph_stats(unsigned long *recorded, unsigned long *replayed)
{
    *recorded = graphs_recorded, *replayed = graphs_replayed;
}

void set_shape(int threads, int max_blocks, int seq_threads)
{
    if (threads > 0 && threads <= ACH_CU_MAX_THREADS) shape.threads = threads;
    if (max_blocks > 0) shape.max_blocks = max_blocks;
    if (seq_threads > 0 && seq_threads <= ACH_CU_MAX_THREADS) shape.seq_threads = seq_threads;
}

void fill_table(ach_kernels *k)
{
    k->name = ACH_CU_NAME;
    k->alloc = cu_alloc;
    k->release = cu_release;
    k->to_device = cu_to_device;
    k->to_host = cu_to_host;
    k->zero = cu_zero;
    k->embedding_forward = embedding_forward;
    k->embedding_backward = embedding_backward;
    k->rmsnorm_forward = rmsnorm_forward;
    k->rmsnorm_backward = rmsnorm_backward;
    k->matmul_forward = matmul_forward;
    k->matmul_backward = matmul_backward;
    k->conv1d_forward = conv1d_forward;
    k->conv1d_backward = conv1d_backward;
    k->silu_forward = silu_forward;
    k->silu_backward = silu_backward;
    k->gate_forward = gate_forward;
    k->gate_backward = gate_backward;
    k->add_inplace = add_inplace;
    k->mamba1_scan_forward = mamba1_scan_forward;
    k->mamba1_scan_backward = mamba1_scan_backward;
    k->mamba2_ssd_forward = mamba2_ssd_forward;
    k->mamba2_ssd_backward = mamba2_ssd_backward;
    k->posenc_forward = posenc_forward;
    k->posenc_backward = posenc_backward;
    k->rows_replace = rows_replace;
    k->last_forward = last_forward;
    k->last_backward = last_backward;
    k->crossentropy_forward = crossentropy_forward;
    k->crossentropy_backward = crossentropy_backward;
    k->sumsq = sumsq;
    k->adamw_update = adamw_update;
    k->adamw_step = adamw_step;
    k->graph_run = graph_run;
    const char *env = getenv("ACHILLES_CUDA_GRAPHS");
    graphs_off = env && !strcmp(env, "0");
}

/* on 0: steps run kernel by kernel (as with ACHILLES_CUDA_GRAPHS=0) */
void set_graphs(int on)
{
    graphs_off = !on;
    for (graph_slot *t = graph_slots; t < graph_slots + GRAPH_SLOTS; t++) graph_drop(t);
}
} // namespace
