/* Mamba-2 SSD in its quadratic form (kernels.h), one block per sequence (and
 * head, forward), its L x L matrices in shared memory: the paper's L is 8.
 * When they do not fit (smem == NULL is passed as a global scratch slice per
 * block instead) the same code runs on global memory.
 *
 * Matrices, as in kernels_cpu.c: G[t,s] = C_t . B_s, Lm[t,s] =
 * exp(sum_{k=s+1..t} delta_k A), M = G Lm delta_s (0 where blocked). Each
 * entry or output element has one thread summing in the reference's order.
 * The backward block loops over the heads, accumulating gG in shared memory
 * (G is shared by the heads), and writes per-sequence partials of dD,
 * dt_bias and A_log gradients ([B, H], summed over b by k_reduce_chunks). */
#ifndef ACH_CUDA_MAMBA2_CUH
#define ACH_CUDA_MAMBA2_CUH
#include "common.cuh"

/* Floats of matrix storage per block. */
static __host__ __device__ inline size_t ssd_fwd_floats(int L) { return 2 * (size_t)L * L + L; }
static __host__ __device__ inline size_t ssd_bwd_floats(int L) { return 5 * (size_t)L * L + 4 * (size_t)L; }

/* The block's storage: dynamic shared memory, or its slice of gscratch. */
static __device__ inline real *ssd_storage(real *gscratch, size_t per)
{
    ACH_DYN_SHARED(real, smem);
    return gscratch ? gscratch + blockIdx.x * per : smem;
}

/* G[t, s] = C_t . B_s for s <= t; the caller synchronises. */
static __device__ void ssd_gram(real *G, const real *Bm, const real *Cm, int ldx, int L, int N)
{
    ACH_FOR_BLOCK(e, L * L)
    {
        int t = e / L, s = e % L;
        if (s > t) continue;
        real acc = 0;
        for (int n = 0; n < N; n++) acc += Cm[(size_t)t * ldx + n] * Bm[(size_t)s * ldx + n];
        G[e] = acc;
    }
}

static __device__ void ssd_delta(real *delta, const real *dt, int ldt, real dt_bias, int L)
{
    ACH_FOR_BLOCK(t, L) delta[t] = softplus_r(dt[(size_t)t * ldt] + dt_bias);
}

/* Lm (when asked) and M, one row t per thread; the caller synchronises. */
static __device__ void ssd_decay(real *Lm, real *M, const real *G, const real *delta, real A, const unsigned char *blk,
                                 int L)
{
    ACH_FOR_BLOCK(t, L)
    {
        real seg = 0;
        for (int s = t; s >= 0; s--) {
            real lm = r_exp(seg);
            if (Lm) Lm[t * L + s] = lm;
            M[t * L + s] = s < t && blk && blk[s] ? 0 : G[t * L + s] * lm * delta[s];
            seg += delta[s] * A;
        }
    }
}

/* Grid: blocks stride over the B*H (sequence, head) pairs. */
static __global__ void k_ssd_forward(real *y, const real *x, const real *Bm, const real *Cm, int ldx, const real *dt,
                                     int ldt, const real *dt_bias, const real *A_log, const real *D,
                                     const unsigned char *block, int B, int L, int H, int P, int N, real *gscratch)
{
    real *G = ssd_storage(gscratch, ssd_fwd_floats(L)), *M = G + L * L, *delta = M + L * L;
    int Di = H * P;
    for (int bh = blockIdx.x; bh < B * H; bh += gridDim.x) {
        int b = bh / H, h = bh % H;
        size_t r0 = (size_t)b * L;
        ssd_gram(G, Bm + r0 * ldx, Cm + r0 * ldx, ldx, L, N);
        ssd_delta(delta, dt + r0 * ldt + h, ldt, dt_bias[h], L);
        __syncthreads();
        ssd_decay(NULL, M, G, delta, -r_exp(A_log[h]), block ? block + r0 : NULL, L);
        __syncthreads();
        ACH_FOR_BLOCK(e, L * P)
        {
            int t = e / P, p = e % P;
            const real *xs = x + r0 * ldx + h * P + p;
            real acc = D[h] * xs[(size_t)t * ldx];
            for (int s = 0; s <= t; s++) acc += M[t * L + s] * xs[(size_t)s * ldx];
            y[(r0 + t) * Di + h * P + p] = acc;
        }
        /* no barrier: this phase reads only M, which the next pair writes
         * after its first barrier */
    }
}

/* Grid: blocks stride over the B sequences. pD, pbias, pA: [B, H]. */
static __global__ void k_ssd_backward(real *dx, real *dBm, real *dCm, real *ddt, real *pbias, real *pA, real *pD,
                                      const real *dy, const real *x, const real *Bm, const real *Cm, int ldx,
                                      const real *dt, int ldt, const real *dt_bias, const real *A_log, const real *D,
                                      const unsigned char *block, int B, int L, int H, int P, int N, real *gscratch)
{
    real *G = ssd_storage(gscratch, ssd_bwd_floats(L)), *Lm = G + L * L, *M = Lm + L * L, *gG = M + L * L;
    real *gM = gG + L * L, *delta = gM + L * L, *ga = delta + L, *gdt = ga + L, *gk = gdt + L;
    int Di = H * P;
    for (int b = blockIdx.x; b < B; b += gridDim.x) {
        size_t r0 = (size_t)b * L;
        const unsigned char *blk = block ? block + r0 : NULL;
        const real *xb = x + r0 * ldx, *gyb = dy + r0 * Di;
        ACH_FOR_BLOCK(e, L * L) gG[e] = 0;
        ssd_gram(G, Bm + r0 * ldx, Cm + r0 * ldx, ldx, L, N); /* shared by the heads */
        for (int h = 0; h < H; h++) {
            real A = -r_exp(A_log[h]);
            ssd_delta(delta, dt + r0 * ldt + h, ldt, dt_bias[h], L);
            __syncthreads();
            ssd_decay(Lm, M, G, delta, A, blk, L);
            /* gM[t,s] = gy_t . x_s (0 where blocked: the entry is a constant);
             * gdt[t] = gy_t . x_t for dD */
            ACH_FOR_BLOCK(e, L * L)
            {
                int t = e / L, s = e % L;
                if (s > t) continue;
                real acc = 0;
                for (int p = 0; p < P; p++) acc += gyb[(size_t)t * Di + h * P + p] * xb[(size_t)s * ldx + h * P + p];
                gM[e] = s < t && blk && blk[s] ? 0 : acc;
            }
            ACH_FOR_BLOCK(t, L)
            {
                real acc = 0;
                for (int p = 0; p < P; p++) acc += gyb[(size_t)t * Di + h * P + p] * xb[(size_t)t * ldx + h * P + p];
                gdt[t] = acc;
            }
            __syncthreads();
            /* dx[s, p] += D gy_s + sum_{t >= s} M[t,s] gy_t, t ascending */
            ACH_FOR_BLOCK(e, L * P)
            {
                int s = e / P, p = e % P;
                real *d = dx + (r0 + s) * ldx + h * P + p, acc = *d + D[h] * gyb[(size_t)s * Di + h * P + p];
                for (int t = s; t < L; t++) acc += M[t * L + s] * gyb[(size_t)t * Di + h * P + p];
                *d = acc;
            }
            ACH_FOR_BLOCK(e, L * L)
            {
                int t = e / L, s = e % L;
                if (s <= t) gG[e] += gM[e] * Lm[e] * delta[s];
            }
            /* delta_k's gradient: from M's delta_s factor (s = k), and ga[k],
             * the sum over t >= k of the q[t, s] with s < k (the segment sums
             * that contain delta_k) */
            ACH_FOR_BLOCK(k, L)
            {
                real gdelta = 0, a = 0;
                for (int t = k; t < L; t++) gdelta += gM[t * L + k] * G[t * L + k] * Lm[t * L + k];
                for (int t = k; t < L && k > 0; t++) {
                    real run = 0;
                    for (int s = 0; s < k; s++) run += gM[t * L + s] * G[t * L + s] * delta[s] * Lm[t * L + s];
                    a += run;
                }
                real g = (gdelta + a * A) * softplus_grad_r(dt[(r0 + k) * ldt + h] + dt_bias[h]);
                ddt[(r0 + k) * ldt + h] += g;
                ga[k] = a;
                gk[k] = g;
            }
            __syncthreads();
            if (threadIdx.x == 0) { /* this sequence's shares, in k order */
                real gA = 0, gb = 0, gd = 0;
                for (int k = 0; k < L; k++) {
                    gA += ga[k] * delta[k];
                    gb += gk[k];
                    gd += gdt[k];
                }
                pA[(size_t)b * H + h] = gA * A;
                pbias[(size_t)b * H + h] = gb;
                pD[(size_t)b * H + h] = gd;
            }
            __syncthreads(); /* before the next head overwrites the matrices */
        }
        /* dC[t] += sum_{s <= t} gG[t,s] B_s; dB[s] += sum_{t >= s} gG[t,s] C_t */
        ACH_FOR_BLOCK(e, L * N)
        {
            int t = e / N, n = e % N;
            real *d = dCm + (r0 + t) * ldx + n, acc = *d;
            for (int s = 0; s <= t; s++) acc += gG[t * L + s] * Bm[(r0 + s) * ldx + n];
            *d = acc;
        }
        ACH_FOR_BLOCK(e, L * N)
        {
            int s = e / N, n = e % N;
            real *d = dBm + (r0 + s) * ldx + n, acc = *d;
            for (int t = s; t < L; t++) acc += gG[t * L + s] * Cm[(r0 + t) * ldx + n];
            *d = acc;
        }
        __syncthreads(); /* before the next sequence overwrites gG */
    }
}
#endif
