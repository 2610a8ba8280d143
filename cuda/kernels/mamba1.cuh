/* Mamba-1 selective scan (kernels.h). The recurrences of different state
 * entries n are independent, so each kernel runs them one n at a time with
 * the state in a register, never storing the L x N states of a channel.
 *
 * The backward's outputs reduce the per-(b, t, d, n) terms along different
 * axes: du and ddt over n, dB and dC over d, dA_log and dD over b and t. One
 * kernel per axis owns its sums (no atomics), each re-running the cheap
 * recurrence it needs:
 *   k_scan1_bwd_d, a thread per (b, d): du, ddt, and per-sequence partials
 *     of dA_log and dD (summed over b by k_reduce_chunks);
 *   k_scan1_bwd_n, a thread per (b, n): dB and dC, d ascending.
 * Every sum runs in the reference's order. delta = softplus(dt) comes
 * precomputed (k_softplus). Blocked rows (docs/science.md §4.3): the input term reaches
 * y at its own step but is not carried. */
#ifndef ACH_CUDA_MAMBA1_CUH
#define ACH_CUDA_MAMBA1_CUH
#include "common.cuh"

/* y = sum_n C_t[n] h_t[n] + D u, accumulated n by n in y itself. */
static __global__ void k_scan1_forward(real *y, const real *u, const real *delta, const real *A_log, const real *Bm,
                                       const real *Cm, int ldbc, const real *D, const unsigned char *block, int B,
                                       int L, int Di, int N)
{
    ACH_FOR(bd, (size_t)B * Di)
    {
        size_t b = bd / Di, d = bd % Di;
        for (int n = 0; n < N; n++) {
            real al = A_log[d * N + n], h = 0;
            for (int t = 0; t < L; t++) {
                size_t row = b * L + t, i = row * Di + d;
                real dl = delta[i], carried = mamba1_decay_r(dl, al) * h;
                real full = carried + dl * Bm[row * ldbc + n] * u[i];
                y[i] = (n ? y[i] : 0) + Cm[row * ldbc + n] * full;
                h = block && block[row] ? carried : full;
            }
        }
        for (int t = 0; t < L; t++) {
            size_t i = (b * L + t) * Di + d;
            y[i] = (N ? y[i] : 0) + D[d] * u[i];
        }
    }
}

/* A thread per (b, d). gu and gd ([B*L, Di] scratch) collect du and the
 * delta gradient over n; hs ([B*L, Di] scratch) holds one n's states; pA
 * [B, Di*N] and pD [B, Di] get this sequence's dA_log and dD sums. */
static __global__ void k_scan1_bwd_d(real *du, real *ddt, real *pA, real *pD, real *gu, real *gd, real *hs,
                                     const real *dy, const real *u, const real *dt, const real *delta,
                                     const real *A_log, const real *Bm, const real *Cm, int ldbc, const real *D,
                                     const unsigned char *block, int B, int L, int Di, int N)
{
    ACH_FOR(bd, (size_t)B * Di)
    {
        size_t b = bd / Di, d = bd % Di;
        real sD = 0;
        for (int t = L - 1; t >= 0; t--) {
            size_t i = (b * L + t) * Di + d;
            gu[i] = dy[i] * D[d];
            gd[i] = 0;
            sD += dy[i] * u[i];
        }
        pD[bd] = sD;
        for (int n = 0; n < N; n++) {
            real al = A_log[d * N + n], A = -r_exp(al), h = 0, gh = 0, gal = 0;
            for (int t = 0; t < L; t++) { /* the carried states */
                size_t row = b * L + t, i = row * Di + d;
                h = mamba1_decay_r(delta[i], al) * h + (block && block[row] ? 0 : delta[i] * Bm[row * ldbc + n] * u[i]);
                hs[i] = h;
            }
            for (int t = L - 1; t >= 0; t--) {
                size_t row = b * L + t, i = row * Di + d;
                real g = dy[i], ut = u[i], dl = delta[i], Bn = Bm[row * ldbc + n], Cn = Cm[row * ldbc + n];
                real dA = mamba1_decay_r(dl, al), prev = t ? hs[i - Di] : 0;
                real ghn = gh + g * Cn, gin = block && block[row] ? g * Cn : ghn;
                gd[i] += ghn * prev * dA * A + gin * Bn * ut;
                gal += ghn * prev * dA * dl * A;
                gu[i] += gin * dl * Bn;
                gh = ghn * dA;
            }
            pA[bd * N + n] = gal; /* (b, d, n): row b of [B, Di*N] */
        }
        for (int t = 0; t < L; t++) {
            size_t i = (b * L + t) * Di + d;
            du[i] += gu[i];
            ddt[i] += gd[i] * softplus_grad_r(dt[i]);
        }
    }
}

/* A thread per (b, n): dC[t, n] += g full, dB[t, n] += gin delta u, d
 * ascending. hs ([B*L, N] scratch) holds one channel's states. */
static __global__ void k_scan1_bwd_n(real *dBm, real *dCm, real *hs, const real *dy, const real *u, const real *delta,
                                     const real *A_log, const real *Bm, const real *Cm, int ldbc,
                                     const unsigned char *block, int B, int L, int Di, int N)
{
    ACH_FOR(bn, (size_t)B * N)
    {
        size_t b = bn / N, n = bn % N;
        for (int d = 0; d < Di; d++) {
            real al = A_log[(size_t)d * N + n], h = 0, gh = 0;
            for (int t = 0; t < L; t++) {
                size_t row = b * L + t, i = row * Di + d;
                h = mamba1_decay_r(delta[i], al) * h + (block && block[row] ? 0 : delta[i] * Bm[row * ldbc + n] * u[i]);
                hs[row * N + n] = h;
            }
            for (int t = L - 1; t >= 0; t--) {
                size_t row = b * L + t, i = row * Di + d;
                real g = dy[i], ut = u[i], dl = delta[i], Bn = Bm[row * ldbc + n], Cn = Cm[row * ldbc + n];
                real dA = mamba1_decay_r(dl, al), prev = t ? hs[(row - 1) * N + n] : 0;
                real full = dA * prev + dl * Bn * ut;
                dCm[row * ldbc + n] += g * full;
                real ghn = gh + g * Cn, gin = block && block[row] ? g * Cn : ghn;
                dBm[row * ldbc + n] += gin * dl * ut;
                gh = ghn * dA;
            }
        }
    }
}
#endif
