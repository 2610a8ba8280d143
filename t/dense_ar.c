/* The dense_ar task kind (src/task/dense_ar.c): the generator recomputed
 * from its definition (docs/science.md §8) in double precision from the
 * matrices and the noise it drew, the matrices against the QR of their
 * Gaussian draws, the split sign rules on whole splits, unit norms, the
 * examples' purity under call order and threads, the block shuffle, the
 * scorer and the training run's refusal. */
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dense_ar.h"
#include "kind.h"
#include "rng.h"
#include "tap.h"

/* A preset small enough to generate whole splits, with gain and alpha set
 * so that their terms are checked too. */
static const char *tiny_json =
    "{\"kind\": \"dense_ar\", \"name\": \"tiny\", \"description\": \"t\", \"dim\": 6, \"seq_len\": 12,"
    " \"matrices\": 3, \"sigma\": 0.1, \"gain\": 2, \"alpha\": 0.3, \"chunks\": 3, \"seed\": 77,"
    " \"splits\": {\"train\": {\"size\": 4000, \"x0_sign\": \"positive\"},"
    " \"val\": {\"size\": 1000, \"x0_sign\": \"negative\"}, \"test\": {\"size\": 1000, \"x0_sign\": \"negative\"}}}";

static int load(ach_task *t, const char *name)
{
    char err[600];
    if (task_load(t, name, err, sizeof err)) {
        ok(0, "load %s: %s", name, err);
        exit(done_testing());
    }
    return 0;
}

/* QᵀQ = I, and R = QᵀG is upper triangular with a positive diagonal for the
 * Gaussian G of the matrix's stream: Q is G's QR with the sign fix. */
static void check_matrices(const ach_task *t)
{
    const ach_dense_ar *d = dense_ar_of(t);
    int D = d->dim;
    double orth = 0, lower = 0, diag_min = INFINITY;
    double *g = malloc((size_t)D * D * sizeof *g);
    for (int m = 0; m < d->nmat; m++) {
        const double *q = d->q + (size_t)m * D * D;
        ach_rng r;
        rng_init(&r, d->seed, (1ULL << 62) + (uint64_t)m);
        for (int k = 0; k < D * D; k++) g[k] = rng_normal(&r);
        for (int a = 0; a < D; a++)
            for (int b = 0; b < D; b++) {
                double qq = 0, rab = 0;
                for (int k = 0; k < D; k++) qq += q[k * D + a] * q[k * D + b], rab += q[k * D + a] * g[k * D + b];
                orth = fmax(orth, fabs(qq - (a == b)));
                if (a > b) lower = fmax(lower, fabs(rab));
                if (a == b) diag_min = fmin(diag_min, rab);
            }
    }
    free(g);
    ok(orth < 1e-6, "%s: the %d matrices are orthogonal: max |QᵀQ - I| = %.2g", t->name, d->nmat, orth);
    ok(lower < 1e-9, "%s: QᵀG is upper triangular: max below the diagonal %.2g", t->name, lower);
    ok(diag_min > 0, "%s: R's diagonal is positive (the sign fix): min %.3g", t->name, diag_min);
}

/* Sequence (split, i) recomputed step by step from the definition, with
 * A_m = Q_m / sqrt(M) and the sum over i = 1..t taken term by term: the
 * largest difference from the generator's x_t, and whether the noise is the
 * split's stream, x_0 is ±g/|g| with the split's sign and the float
 * example is the double one rounded. */
static double recompute(const ach_task *t, int split, uint64_t i, int *noise_ok, int *x0_ok, int *float_ok)
{
    const ach_dense_ar *d = dense_ar_of(t);
    int D = d->dim, L = d->len, M = d->nmat;
    size_t n = (size_t)L * D;
    double *x = malloc(n * sizeof *x), *e = malloc(n * sizeof *e), *u = malloc(D * sizeof *u), diff = 0;
    float *f = malloc(n * sizeof *f);
    dense_ar_draw(t, split, i, x, e);
    ach_rng r;
    rng_init(&r, d->seed, TASK_STREAM(split, i));
    *noise_ok = 1;
    for (size_t k = 0; k < n; k++) *noise_ok &= e[k] == rng_normal(&r);
    double gn = 0;
    for (int k = 0; k < D; k++) gn += e[k] * e[k];
    gn = sqrt(gn);
    double s = (e[0] > 0) == (d->sign[split] > 0) ? 1 : -1;
    *x0_ok = x[0] * d->sign[split] > 0;
    for (int k = 0; k < D; k++) diff = fmax(diff, fabs(x[k] - s * e[k] / gn));
    for (int ts = 1; ts < L; ts++) {
        for (int k = 0; k < D; k++) u[k] = 0;
        for (int j = 1; j <= ts; j++) {
            const double *q = d->q + (size_t)((j - 1) % M) * D * D, *xp = x + (size_t)(ts - j) * D;
            for (int a = 0; a < D; a++)
                for (int b = 0; b < D; b++) u[a] += q[a * D + b] / sqrt((double)M) * xp[b];
        }
        double v[1024], nv = 0;
        for (int k = 0; k < D; k++) {
            u[k] *= sqrt((double)M) / sqrt((double)ts);
            v[k] = tanh(d->gain * (u[k] + d->alpha * x[k])) + d->sigma * e[(size_t)ts * D + k];
            nv += v[k] * v[k];
        }
        for (int k = 0; k < D; k++) diff = fmax(diff, fabs(x[(size_t)ts * D + k] - v[k] / sqrt(nv)));
    }
    task_vectors(t, 0, split, i, f);
    *float_ok = 1;
    for (size_t k = 0; k < n; k++) *float_ok &= f[k] == (float)x[k];
    free(x), free(e), free(u), free(f);
    return diff;
}

static void check_recompute(const ach_task *t)
{
    for (int s = 0; s < 3; s++) {
        uint64_t n = task_nexamples(t, s), at[3] = {0, n / 2 + 1, n - 1};
        for (int k = 0; k < 3; k++) {
            int nz, x0, fl;
            double diff = recompute(t, s, at[k], &nz, &x0, &fl);
            ok(diff < 1e-12, "%s %s #%llu: every x_t recomputed from its predecessors, the matrices and the noise, max "
               "diff %.2g", t->name, task_split_name(t, s), (unsigned long long)at[k], diff);
            ok(nz && x0 && fl, "%s %s #%llu: the noise is the split's stream (%d), x_0's sign the split's (%d), the "
               "example is the float of it (%d)", t->name, task_split_name(t, s), (unsigned long long)at[k], nz, x0, fl);
        }
    }
}

/* Every vector of a whole split has unit norm and x_0 the split's sign. */
static void check_whole_splits(const ach_task *t)
{
    const ach_dense_ar *d = dense_ar_of(t);
    size_t n = (size_t)d->len * d->dim;
    float *x = malloc(n * sizeof *x);
    for (int s = 0; s < 3; s++) {
        uint64_t wrong = 0, N = task_nexamples(t, s);
        double worst = 0;
        for (uint64_t i = 0; i < N; i++) {
            task_vectors(t, 0, s, i, x);
            wrong += !(x[0] * d->sign[s] > 0);
            for (int ts = 0; ts < d->len; ts++) {
                double nn = 0;
                for (int k = 0; k < d->dim; k++) nn += (double)x[(size_t)ts * d->dim + k] * x[(size_t)ts * d->dim + k];
                worst = fmax(worst, fabs(sqrt(nn) - 1));
            }
        }
        ok(wrong == 0, "%s %s: x_0's first coordinate is %s in all %llu sequences (%llu wrong)", t->name,
           task_split_name(t, s), d->sign[s] > 0 ? "> 0" : "< 0", (unsigned long long)N, (unsigned long long)wrong);
        ok(worst < 1e-6, "%s %s: every vector has unit norm (max | |x| - 1 | = %.2g)", t->name, task_split_name(t, s),
           worst);
    }
    free(x);
}

/* Purity: the same (split, i) under any run seed, call order or thread. */
typedef struct {
    const ach_task *t;
    int split, first, stride, n;
    float *out;
} job;

static void *run_job(void *p)
{
    job *j = p;
    size_t len = (size_t)j->t->seq_len * j->t->vec_dim;
    for (int i = j->first; i < j->n; i += j->stride) task_vectors(j->t, 0, j->split, (uint64_t)i, j->out + i * len);
    return NULL;
}

static void check_purity(const ach_task *t)
{
    enum { N = 24, T = 4 };
    size_t len = (size_t)t->seq_len * t->vec_dim;
    float *a = malloc(N * len * sizeof *a), *b = malloc(N * len * sizeof *b), *c = malloc(len * sizeof *c);
    for (int i = 0; i < N; i++) task_vectors(t, 0, 1, (uint64_t)i, a + i * len);
    pthread_t th[T];
    job jobs[T];
    for (int k = 0; k < T; k++) {
        jobs[k] = (job){t, 1, k, T, N, b};
        pthread_create(&th[k], NULL, run_job, &jobs[k]);
    }
    for (int k = 0; k < T; k++) pthread_join(th[k], NULL);
    ok(!memcmp(a, b, N * len * sizeof *a), "%s: %d sequences made on %d threads are the serial ones, bit for bit",
       t->name, N, T);
    int same = 1;
    for (int i = N - 1; i >= 0; i--) {
        task_vectors(t, 12345, 1, (uint64_t)i, c);
        same &= !memcmp(c, a + i * len, len * sizeof *c);
    }
    ok(same, "%s: made in reverse order under another run seed, the same sequences", t->name);
    task_vectors(t, 0, 2, 0, c);
    ok(memcmp(c, a, len * sizeof *c) != 0, "%s: test #0 differs from val #0 (a split's own streams)", t->name);
    free(a), free(b), free(c);
}

/* perm is a permutation of whole chunks kept in order inside; returns the
 * chunk order as a number in base C (or -1 when it is not one). */
static long chunk_order(const int *perm, int L, int C)
{
    int w = L / C, seen[DENSE_AR_MAX_LEN] = {0};
    long code = 0;
    for (int p = 0; p < L; p++) {
        if (perm[p] < 0 || perm[p] >= L || seen[perm[p]]++) return -1;
        if (p % w ? perm[p] != perm[p - 1] + 1 : perm[p] % w) return -1;
    }
    for (int c = 0; c < C; c++) code = code * C + perm[c * w] / w;
    return code;
}

static void check_shuffle(const ach_task *t)
{
    const ach_dense_ar *d = dense_ar_of(t);
    int L = d->len, C = d->chunks, perm[DENSE_AR_MAX_LEN], again[DENSE_AR_MAX_LEN];
    long count[256] = {0};
    int bad = 0, det = 1, nsteps = 0;
    const int n = 2400;
    for (int i = 0; i < n; i++) {
        dense_ar_shuffle(t, 42, 7, (uint64_t)i, perm);
        dense_ar_shuffle(t, 42, 7, (uint64_t)i, again);
        det &= !memcmp(perm, again, L * sizeof *perm);
        long code = chunk_order(perm, L, C);
        if (code < 0) bad++;
        else count[code]++;
        dense_ar_shuffle(t, 42, 8, (uint64_t)i, again);
        nsteps += !!memcmp(perm, again, L * sizeof *perm);
    }
    ok(!bad, "%s: %d shuffles each permute whole chunks of %d and keep the order inside (%d not)", t->name, n, L / C,
       bad);
    ok(det, "%s: the same (seed, step, i) gives the same shuffle", t->name);
    ok(nsteps > n * 9 / 10, "%s: another step gives another shuffle (%d of %d differ)", t->name, nsteps, n);
    /* C = 4 chunks: 24 orders, 100 expected each; allow 5 sigma */
    long lo = n, hi = 0, orders = 0;
    for (int k = 0; k < 256; k++)
        if (count[k]) orders++, lo = count[k] < lo ? count[k] : lo, hi = count[k] > hi ? count[k] : hi;
    ok(C != 4 || (orders == 24 && lo >= 50 && hi <= 150), "%s: all %ld chunk orders drawn, %ld to %ld times each of %d",
       t->name, orders, lo, hi, n);
}

static uint64_t fnv_bytes(const void *p, size_t n, uint64_t h)
{
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++) h = (h ^ c[i]) * 1099511628211ULL;
    return h;
}

/* Digests of the presets' sequences (the float bits of `count` spread over
 * each split), captured when the kind landed: if they change, every
 * experiment's data has changed. libm's log, cos and tanh enter the bits,
 * so another C library than glibc may differ here in the last place. */
static void check_digests(const ach_task *t, int count, const uint64_t *want)
{
    size_t n = (size_t)t->seq_len * t->vec_dim;
    float *x = malloc(n * sizeof *x);
    for (int s = 0; s < 3; s++) {
        uint64_t h = 1469598103934665603ULL, N = task_nexamples(t, s);
        for (int j = 0; j < count; j++) {
            task_vectors(t, 0, s, (uint64_t)j * (N / (uint64_t)count), x);
            h = fnv_bytes(x, n * sizeof *x, h);
        }
        ok(h == want[s], "%s %s: %d sequences hash as when the kind landed (0x%016llx)", t->name,
           task_split_name(t, s), count, (unsigned long long)h);
    }
    free(x);
}

static void check_scorer(const ach_task *t)
{
    const ach_task_kind *k = t->kind;
    void *acc = calloc(1, k->score_size);
    ach_named_metrics m;
    k->score_add(t, acc, NULL, NULL, NULL, 3, 0.6);
    k->score_add(t, acc, NULL, NULL, NULL, 1, 0.2);
    k->score_end(t, 1, acc, &m);
    ok(m.kind == k && m.ngroups == 0, "scorer: its own kind, no groups");
    is_close(task_metric(&m, "cos_loss"), 0.2, 1e-15, 0, "scorer: cos_loss is the mean loss, (0.6 + 0.2) / 4");
    is_close(task_metric(&m, "cos_sim"), 0.8, 1e-15, 0, "scorer: cos_sim = 1 - cos_loss");
    free(acc);
}

int main(void)
{
    ach_task small, full, tiny, comp;
    char err[600];
    load(&small, "dense-ar-small");
    load(&full, "dense-ar");
    const ach_dense_ar *f = dense_ar_of(&full), *s = dense_ar_of(&small);
    ok(small.kind == &task_kind_dense_ar && small.kind->shape == EXAMPLE_VECTORS && !small.kind->example,
       "dense-ar-small: kind dense_ar, vector examples, no token op");
    ok(f->dim == 256 && f->len == 128 && f->nmat == 8 && f->sigma == 0.05 && f->gain == 1 && f->alpha == 0 &&
           f->chunks == 8,
       "dense-ar: seed 004's D 256, L 128, M 8, sigma 0.05, gain 1, alpha 0, 8 chunks");
    ok(task_nexamples(&full, 0) == 500000 && task_nexamples(&full, 1) == 10000 && task_nexamples(&full, 2) == 10000,
       "dense-ar: 500,000 / 10,000 / 10,000");
    ok(f->sign[0] == 1 && f->sign[1] == -1 && f->sign[2] == -1, "dense-ar: x_0 > 0 in train, < 0 in val and test");
    ok(s->dim == 64 && s->len == 32 && s->chunks == 4 && full.seq_len == 128 && full.vec_dim == 256,
       "dense-ar-small: D 64, L 32, 4 chunks; the task's seq_len and vec_dim are L and D");
    ok(!strcmp(task_split_name(&small, 0), "train") && !strcmp(task_split_name(&small, 1), "val") &&
           !strcmp(task_split_name(&small, 2), "test"),
       "splits: train, val (split 1, evaluated during training), test");
    if (task_from_json(&tiny, tiny_json, "tiny.json", err, sizeof err)) {
        ok(0, "tiny preset: %s", err);
        return done_testing();
    }
    check_matrices(&tiny);
    check_matrices(&small);
    check_matrices(&full);
    ach_task again;
    load(&again, "dense-ar-small");
    ok(!memcmp(dense_ar_of(&again)->q, s->q, sizeof(double) * s->nmat * s->dim * s->dim),
       "the matrices are the same on every load");
    task_free(&again);
    check_recompute(&tiny);
    check_recompute(&small);
    check_whole_splits(&tiny);
    check_digests(&small, 50, (const uint64_t[]){0xf6906cf06cc2d056ULL, 0x41b925f9df1f4651ULL, 0x8df4a271666a7d7bULL});
    check_digests(&full, 2, (const uint64_t[]){0xea13f864819aa721ULL, 0xbd280c504ab4af7fULL, 0x1964725249b972f4ULL});
    check_purity(&small);
    check_shuffle(&small);
    check_scorer(&small);
    load(&comp, "composite");
    ok(!task_trainable(&comp, err, sizeof err), "the composite is trainable");
    ok(task_trainable(&small, err, sizeof err) && strstr(err, "task kind dense_ar needs a model family that takes vectors"),
       "dense_ar is not trainable yet, and says why: %s", err);
    task_free(&comp), task_free(&tiny), task_free(&small), task_free(&full);
    return done_testing();
}
