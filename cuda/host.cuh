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

template <class T> T *scratch(int slot, size_t n)
{
    scratch_buf *s = &scratch_bufs[slot];
    size_t bytes = n * sizeof(T);
    if (bytes > s->bytes) {
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
void cu_release(void *p) { plat_free(p); }
void cu_to_device(void *dst, const void *src, size_t bytes)
{
    if (bytes) plat_h2d(dst, src, bytes);
}
void cu_to_host(void *dst, const void *src, size_t bytes)
{
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

/* The partials need one row per token id, and the interface does not pass
 * the vocabulary: the largest token is found on the device and read back
 * (one small copy per backward pass). */
void embedding_backward(real *dwte, const real *dout, const int *tokens, int n, int D)
{
    if (!n || !D) return;
    unsigned g = grid_for(n);
    int *mx = scratch<int>(S_RED, g + 1), V;
    ACH_LAUNCH(k_max_part, g, shape.threads, 0, mx, tokens, (size_t)n);
    ACH_LAUNCH(k_max_part, 1, shape.threads, 0, mx + g, mx, (size_t)g);
    plat_d2h(&V, mx + g, sizeof V);
    if (V < 0) return;
    V += 1;
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
}
} // namespace
