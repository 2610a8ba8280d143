/* Causal depthwise conv1d over time. Forward and the input gradient have one
 * output element per thread, summed in the reference's order; the weight and
 * bias gradients are chunked sums over rows (common.cuh). */
#ifndef ACH_CUDA_CONV_CUH
#define ACH_CUDA_CONV_CUH
#include "common.cuh"

static __global__ void k_conv1d_forward(real *out, const real *inp, int ldi, const real *w, const real *bias, int B,
                                        int L, int C, int K)
{
    ACH_FOR(e, (size_t)B * L * C)
    {
        size_t row = e / C;
        int c = (int)(e % C), t = (int)(row % L);
        real o = bias[c];
        for (int j = 0; j < K; j++) {
            int ts = t - K + 1 + j;
            if (ts >= 0) o += w[(size_t)c * K + j] * inp[(row - (t - ts)) * ldi + c];
        }
        out[e] = o;
    }
}

/* dinp[s, c] += sum over the outputs t = s..s+K-1 that read it, t ascending
 * (the reference adds them in that order too). */
static __global__ void k_conv1d_backward_dx(real *dinp, const real *dout, int ldi, const real *w, int B, int L, int C,
                                            int K)
{
    ACH_FOR(e, (size_t)B * L * C)
    {
        size_t row = e / C;
        int c = (int)(e % C), s = (int)(row % L);
        real *dx = dinp + row * ldi + c, acc = *dx;
        for (int t = s; t < L && t < s + K; t++) acc += w[(size_t)c * K + (s - t + K - 1)] * dout[(row + (t - s)) * C + c];
        *dx = acc;
    }
}

/* pw[k, c*K + j] and pb[k, c]: chunk k's sums of x[t-K+1+j, c] * dout[t, c]
 * and of dout[t, c]. Threads e < C*K do weights, the next C do biases. */
static __global__ void k_conv1d_dw_part(real *pw, real *pb, const real *dout, const real *inp, int ldi, int B, int L,
                                        int C, int K)
{
    int rows = B * L, nchunks = (rows + ACH_CU_CHUNK - 1) / ACH_CU_CHUNK;
    size_t per = (size_t)C * K + C;
    ACH_FOR(e, nchunks * per)
    {
        int k = (int)(e / per), q = (int)(e % per), r1 = (k + 1) * ACH_CU_CHUNK < rows ? (k + 1) * ACH_CU_CHUNK : rows;
        real acc = 0;
        if (q < C * K) {
            int c = q / K, j = q % K;
            for (int r = k * ACH_CU_CHUNK; r < r1; r++) {
                int ts = r % L - K + 1 + j;
                if (ts >= 0) acc += inp[(size_t)(r - (K - 1 - j)) * ldi + c] * dout[(size_t)r * C + c];
            }
            pw[(size_t)k * C * K + q] = acc;
        } else {
            int c = q - C * K;
            for (int r = k * ACH_CU_CHUNK; r < r1; r++) acc += dout[(size_t)r * C + c];
            pb[(size_t)k * C + c] = acc;
        }
    }
}
#endif
