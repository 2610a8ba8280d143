/* Whole-array reductions (sums of squares, the clipping scale) and the embedding
 * gradient, all without atomics: each block reduces a fixed slice through a
 * shared-memory tree in a fixed order, and a second pass combines the
 * blocks' results in block order. */
#ifndef ACH_CUDA_REDUCE_CUH
#define ACH_CUDA_REDUCE_CUH
#include "common.cuh"

#define ACH_CU_SUMSQ_SLICE 8192 /* values per first-pass partial */
#define ACH_CU_MAX_THREADS 1024

/* Tree sum of v over the threads of the block (any blockDim.x <= 1024); the
 * result is returned to thread 0. Ends with a barrier, so red may be reused. */
static __device__ double block_sum_d(double v, double *red)
{
    int tid = (int)threadIdx.x, n = (int)blockDim.x;
    red[tid] = v;
    __syncthreads();
    int half = 1;
    while (half < n) half <<= 1;
    for (half >>= 1; half > 0; half >>= 1) {
        if (tid < half && tid + half < n) red[tid] += red[tid + half];
        __syncthreads();
    }
    double r = red[0];
    __syncthreads();
    return r;
}

/* part[s] = sum of x^2 over slice s (in double); blocks stride over slices. */
static __global__ void k_sumsq_part(double *part, const real *x, size_t n)
{
    __shared__ double red[ACH_CU_MAX_THREADS];
    size_t nslices = (n + ACH_CU_SUMSQ_SLICE - 1) / ACH_CU_SUMSQ_SLICE;
    for (size_t s = blockIdx.x; s < nslices; s += gridDim.x) {
        size_t i0 = s * ACH_CU_SUMSQ_SLICE, i1 = i0 + ACH_CU_SUMSQ_SLICE < n ? i0 + ACH_CU_SUMSQ_SLICE : n;
        double acc = 0;
        for (size_t i = i0 + threadIdx.x; i < i1; i += blockDim.x) acc += (double)x[i] * x[i];
        double tot = block_sum_d(acc, red);
        if (threadIdx.x == 0) part[s] = tot;
    }
}

/* *out = sum of part[0..n): one block */
static __global__ void k_sum_final(double *out, const double *part, size_t n)
{
    __shared__ double red[ACH_CU_MAX_THREADS];
    double acc = 0;
    for (size_t i = threadIdx.x; i < n; i += blockDim.x) acc += part[i];
    double tot = block_sum_d(acc, red);
    if (threadIdx.x == 0) *out = tot;
}

/* The optimizer step's norm, first pass: part[t] = sum of g^2 over tensor t
 * of the plan (in double), 0 for a frozen one; one block per tensor. */
static __global__ void k_sumsq_tensors(double *part, const real *g, const ach_adamw_plan *plan)
{
    __shared__ double red[ACH_CU_MAX_THREADS];
    const ach_adamw_tensor *t = &plan->t[blockIdx.x];
    const real *x = g + t->offset;
    double acc = 0;
    if (!t->frozen)
        for (size_t i = threadIdx.x; i < t->numel; i += blockDim.x) acc += (double)x[i] * x[i];
    double tot = block_sum_d(acc, red);
    if (threadIdx.x == 0) part[blockIdx.x] = tot;
}

/* norm[0] = the global norm (the parts added in table order, as the CPU's
 * optimizer does), norm[1] = clip_grad_norm_'s scale; one thread. */
static __global__ void k_clip_scale(double *norm, const double *part, int n, const ach_adamw_plan *plan)
{
    double ss = 0;
    for (int i = 0; i < n; i++) ss += part[i];
    double nr = sqrt(ss), scale = 1;
    if (plan->clip > 0) {
        scale = plan->clip / (nr + 1e-6);
        if (scale > 1) scale = 1;
    }
    norm[0] = nr;
    norm[1] = scale;
}

/* Embedding gradient, first pass: part[k, v, c] = sum of dout[i, c] over the
 * rows i of chunk k with tokens[i] == v, in row order; part is zeroed first
 * and has V rows (the vocabulary) per chunk. k_reduce_chunks adds the
 * chunks in order into dwte. */
static __global__ void k_embedding_part(real *part, const real *dout, const int *tokens, int n, int D, int V)
{
    int nchunks = (n + ACH_CU_CHUNK - 1) / ACH_CU_CHUNK;
    ACH_FOR(e, (size_t)nchunks * D)
    {
        int k = (int)(e / D), c = (int)(e % D), i1 = (k + 1) * ACH_CU_CHUNK < n ? (k + 1) * ACH_CU_CHUNK : n;
        real *pk = part + (size_t)k * V * D + c;
        for (int i = k * ACH_CU_CHUNK; i < i1; i++) pk[(size_t)tokens[i] * D] += dout[(size_t)i * D + c];
    }
}
#endif
