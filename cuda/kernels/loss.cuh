/* Softmax cross-entropy, one thread per row, in the reference's order. */
#ifndef ACH_CUDA_LOSS_CUH
#define ACH_CUDA_LOSS_CUH
#include <math.h>

#include "common.cuh"

static __global__ void k_crossentropy_forward(real *losses, real *probs, const real *logits, const int *labels, int B,
                                              int V)
{
    ACH_FOR(b, B)
    {
        const real *z = logits + b * V;
        real *p = probs + b * V;
        real mx = z[0], sum = 0;
        for (int v = 1; v < V; v++) mx = z[v] > mx ? z[v] : mx;
        for (int v = 0; v < V; v++) sum += (p[v] = r_exp(z[v] - mx));
        for (int v = 0; v < V; v++) p[v] /= sum;
        losses[b] = (real)(log((double)sum) + mx - z[labels[b]]); /* in double, as the reference */
    }
}
#endif
