/* The dense_ar task kind (kind.h; docs/science.md §8, issue 21): sequences
 * of L unit vectors in D dimensions from the "dense AR process", the data of
 * the continuous any-order study. Its examples are EXAMPLE_VECTORS; its
 * splits are train, val (evaluated during training) and test (at the end).
 *
 * The process: M orthogonal D x D matrices Q_m (the QR of a Gaussian
 * matrix with R's diagonal made positive), A_m = Q_m / sqrt(M), shared by
 * all splits. x_0 = g / |g| for Gaussian g, negated when its first
 * coordinate has the wrong sign for the split; for t >= 1
 *   u_t = (sqrt(M) / sqrt(t)) sum_{i=1..t} A_{(i-1) mod M} x_{t-i},
 *   x_t = normalise(tanh(gain (u_t + alpha x_0)) + sigma e_t), e_t Gaussian.
 *
 * Randomness, all under the preset's data seed (never the run's: every run
 * on a preset sees the same data): Q_m's Gaussian matrix is stream 2^62 + m,
 * row by row; sequence i of split s is stream TASK_STREAM(s, i), drawing g
 * and then e_1 .. e_{L-1}, D numbers each. Computed in double, stored as
 * float. The block shuffle of training draws from the run's seed instead.
 *
 * This header is the kind's own API, for `achilles data`, the tests and
 * (later) the trainer; everything else goes through kind.h. */
#ifndef ACH_DENSE_AR_H
#define ACH_DENSE_AR_H
#include <stdint.h>

#include "task.h"

#define DENSE_AR_NSPLITS 3
#define DENSE_AR_MAX_LEN 1024

typedef struct {
    int dim, len, nmat, chunks; /* D, L, M and the block shuffle's chunks (they divide L) */
    double sigma, gain, alpha;
    uint64_t seed;              /* the data seed */
    uint64_t size[DENSE_AR_NSPLITS];
    int sign[DENSE_AR_NSPLITS]; /* +1: x_0's first coordinate > 0; -1: < 0 */
    const double *q;            /* Q_m at q + m D D, row-major */
} ach_dense_ar;

/* The parameters and matrices of a dense_ar task, or NULL for another kind. */
const ach_dense_ar *dense_ar_of(const ach_task *t);
/* Sequence i of a split in double: x[L * D] and the Gaussian draws it was
 * made from, noise[L * D] (row 0: g; row t: e_t). */
void dense_ar_draw(const ach_task *t, int split, uint64_t i, double *x, double *noise);
/* The block shuffle of the sequence trained on as example i of a step:
 * position p of the shuffled sequence holds position perm[p] of the
 * original, perm[L] permuting whole chunks of L / chunks positions and
 * keeping the order inside each. A pure function of (run seed, step, i). */
void dense_ar_shuffle(const ach_task *t, uint64_t seed, uint64_t step, uint64_t i, int *perm);
#endif
