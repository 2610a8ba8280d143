/* The dense_ar task kind: its preset, matrices, sequence generator, block
 * shuffle and scorer (dense_ar.h says what the process is). */
#include "dense_ar.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kind.h"
#include "preset_json.h"
#include "rng.h"

#define MATRIX_STREAM(m) ((1ULL << 62) + (uint64_t)(m))
#define SHUFFLE_STREAM 0x424c4f434bULL /* "BLOCK": with the step, keys the shuffles' streams */
#define MAX_DIM 1024
#define MAX_MATRICES 64
/* Noise keeps every tanh(...) + sigma e_t away from the zero vector, which
 * has no direction (noiseless steps can cancel exactly); its squares must
 * not underflow. */
#define MIN_SIGMA 1e-6
#define MAX_SIZE 1000000000000LL /* 1e12, far below TASK_STREAM's 2^56 per split */
/* Work limits, so a preset cannot stall a load or a sequence: the QR costs
 * about D^3 M, a sequence L M D^2 multiply-adds (the dense-ar preset: 2^27
 * and 2^27). */
#define MAX_QR_WORK (1LL << 28)
#define MAX_SEQ_WORK (1LL << 30)

static const char *const split_names[DENSE_AR_NSPLITS] = {"train", "val", "test"};

const ach_dense_ar *dense_ar_of(const ach_task *t) { return t->kind == &task_kind_dense_ar ? t->kind_data : NULL; }

static double dot(const double *a, const double *b, int n)
{
    double s = 0;
    for (int k = 0; k < n; k++) s += a[k] * b[k];
    return s;
}

static void normalise(double *v, int n)
{
    double s = 1 / sqrt(dot(v, v, n));
    for (int k = 0; k < n; k++) v[k] *= s;
}

/* u += q v for a D x D row-major q: four rows at a time, for four
 * independent sums in flight; each row's sum keeps dot's order, so the bits
 * are dot's. */
static void matvec_add(const double *q, const double *v, int D, double *u)
{
    int row = 0;
    for (; row + 4 <= D; row += 4) {
        const double *a = q + (size_t)row * D, *b = a + D, *c = b + D, *e = c + D;
        double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        for (int k = 0; k < D; k++) s0 += a[k] * v[k], s1 += b[k] * v[k], s2 += c[k] * v[k], s3 += e[k] * v[k];
        u[row] += s0, u[row + 1] += s1, u[row + 2] += s2, u[row + 3] += s3;
    }
    for (; row < D; row++) u[row] += dot(q + (size_t)row * D, v, D);
}

/* Q of G = QR with diag(R) > 0, for the Gaussian G of stream MATRIX_STREAM(m):
 * Gram-Schmidt on G's columns gives exactly that Q (the sign-fixed QR), and
 * a second pass keeps its columns orthogonal to rounding. w holds D * D. */
static void make_matrix(const ach_dense_ar *d, int m, double *q, double *w)
{
    int D = d->dim;
    ach_rng r;
    rng_init(&r, d->seed, MATRIX_STREAM(m));
    /* w's row j is G's column j */
    for (int row = 0; row < D; row++)
        for (int col = 0; col < D; col++) w[(size_t)col * D + row] = rng_normal(&r);
    for (int j = 0; j < D; j++) {
        double *v = w + (size_t)j * D;
        for (int pass = 0; pass < 2; pass++)
            for (int k = 0; k < j; k++) {
                const double *e = w + (size_t)k * D;
                double c = dot(e, v, D);
                for (int x = 0; x < D; x++) v[x] -= c * e[x];
            }
        normalise(v, D);
    }
    for (int row = 0; row < D; row++)
        for (int col = 0; col < D; col++) q[(size_t)row * D + col] = w[(size_t)col * D + row];
}

static int parse_split(preset_ctx *c, ach_dense_ar *d, const cJSON *o, int s)
{
    static const char *const keys[] = {"size", "x0_sign", NULL};
    static const char *const signs[] = {"positive", "negative", NULL};
    char f[64], fs[64], fx[64];
    long long n;
    int neg;
    snprintf(f, sizeof f, "splits.%s", split_names[s]);
    snprintf(fs, sizeof fs, "splits.%s.size", split_names[s]);
    snprintf(fx, sizeof fx, "splits.%s.x0_sign", split_names[s]);
    if (preset_object(c, o, f) || preset_keys(c, o, f, keys) || preset_ll(c, preset_member(o, "size"), fs, 0, MAX_SIZE, &n) ||
        preset_enum(c, preset_member(o, "x0_sign"), fx, signs, &neg))
        return -1;
    d->size[s] = (uint64_t)n;
    d->sign[s] = neg ? -1 : 1;
    return 0;
}

static int dense_parse(ach_task *t, const cJSON *o, const char *where, char *err, size_t errlen)
{
    static const char *const keys[] = {"kind", "name",   "description", "dim",  "seq_len", "matrices", "sigma",
                                       "gain", "alpha", "chunks",      "seed", "splits",  NULL};
    static const char *const split_keys[] = {"train", "val", "test", NULL};
    preset_ctx c = {where, err, errlen};
    ach_dense_ar d = {.gain = 1, .alpha = 0};
    long long seed;
    if (preset_keys(&c, o, "", keys) || preset_name_description(&c, t, o) ||
        preset_int(&c, preset_member(o, "dim"), "dim", 1, MAX_DIM, &d.dim) ||
        preset_int(&c, preset_member(o, "seq_len"), "seq_len", 1, DENSE_AR_MAX_LEN, &d.len) ||
        preset_int(&c, preset_member(o, "matrices"), "matrices", 1, MAX_MATRICES, &d.nmat) ||
        preset_double(&c, preset_member(o, "sigma"), "sigma", MIN_SIGMA, 1e6, &d.sigma) ||
        (preset_member(o, "gain") && preset_double(&c, preset_member(o, "gain"), "gain", -1e6, 1e6, &d.gain)) ||
        (preset_member(o, "alpha") && preset_double(&c, preset_member(o, "alpha"), "alpha", -1e6, 1e6, &d.alpha)) ||
        preset_int(&c, preset_member(o, "chunks"), "chunks", 1, DENSE_AR_MAX_LEN, &d.chunks) ||
        preset_ll(&c, preset_member(o, "seed"), "seed", 0, 1LL << 53, &seed))
        return -1;
    d.seed = (uint64_t)seed;
    if (d.len % d.chunks)
        return preset_fail(&c, "chunks", "%d does not divide seq_len %d: the block shuffle moves equal chunks", d.chunks,
                           d.len);
    long long D = d.dim;
    if (D * D * D * d.nmat > MAX_QR_WORK)
        return preset_fail(&c, "matrices", "%d matrices of dim %d take %lld steps to generate, over the limit 2^28",
                           d.nmat, d.dim, D * D * D * d.nmat);
    if ((long long)d.len * d.nmat * D * D > MAX_SEQ_WORK)
        return preset_fail(&c, "seq_len", "%d steps with %d matrices of dim %d take %lld steps per sequence, over the "
                           "limit 2^30", d.len, d.nmat, d.dim, (long long)d.len * d.nmat * D * D);
    const cJSON *sp = preset_member(o, "splits");
    if (preset_object(&c, sp, "splits") || preset_keys(&c, sp, "splits", split_keys)) return -1;
    for (int s = 0; s < DENSE_AR_NSPLITS; s++)
        if (parse_split(&c, &d, preset_member(sp, split_names[s]), s)) return -1;
    size_t nq = (size_t)d.nmat * d.dim * d.dim;
    ach_dense_ar *block = malloc(sizeof *block + nq * sizeof(double));
    double *w = malloc((size_t)d.dim * d.dim * sizeof *w);
    if (!block || !w) {
        free(block);
        free(w);
        return preset_fail(&c, "matrices", "out of memory");
    }
    double *q = (double *)(block + 1);
    for (int m = 0; m < d.nmat; m++) make_matrix(&d, m, q + (size_t)m * d.dim * d.dim, w);
    free(w);
    d.q = q;
    *block = d;
    t->kind_data = block;
    t->seq_len = d.len;
    t->vec_dim = d.dim;
    return 0;
}

static uint64_t dense_split_size(const ach_task *t, int split) { return dense_ar_of(t)->size[split]; }

void dense_ar_draw(const ach_task *t, int split, uint64_t i, double *x, double *noise)
{
    const ach_dense_ar *d = dense_ar_of(t);
    int D = d->dim, L = d->len, M = d->nmat;
    ach_rng r;
    rng_init(&r, d->seed, TASK_STREAM(split, i));
    for (size_t k = 0; k < (size_t)L * D; k++) noise[k] = rng_normal(&r);
    /* g[0] is 0 only when a draw is exactly 1 - 0 (odds 2^-53); else the sign is the split's */
    double flip = (noise[0] > 0 ? 1 : -1) * d->sign[split];
    for (int k = 0; k < D; k++) x[k] = flip * noise[k];
    normalise(x, D);
    /* sums[r] = the sum of x_j, j < t, j = r mod M: then the term of Q_m in
     * u_t sums x_{t-i} over i - 1 = m mod M, that is sums[(t - 1 - m) mod M] */
    double *sums = calloc((size_t)M * D + D, sizeof *sums), *u = sums + (size_t)M * D;
    if (!sums) {
        fputs("achilles: dense_ar: out of memory generating a sequence\n", stderr);
        abort();
    }
    for (int s = 1; s < L; s++) {
        double *acc = sums + (size_t)((s - 1) % M) * D, *xs = x + (size_t)s * D;
        const double *prev = x + (size_t)(s - 1) * D, *e = noise + (size_t)s * D;
        for (int k = 0; k < D; k++) acc[k] += prev[k], u[k] = 0;
        for (int m = 0; m < M && m < s; m++)
            matvec_add(d->q + (size_t)m * D * D, sums + (size_t)((s - 1 - m) % M) * D, D, u);
        /* sqrt(M) A_m = Q_m */
        double scale = 1 / sqrt((double)s);
        for (int k = 0; k < D; k++) xs[k] = tanh(d->gain * (scale * u[k] + d->alpha * x[k])) + d->sigma * e[k];
        normalise(xs, D);
    }
    free(sums);
}

/* The run seed does not enter: the data are the preset's (dense_ar.h). */
static void dense_vectors(const ach_task *t, uint64_t seed, int split, uint64_t i, float *out)
{
    (void)seed;
    const ach_dense_ar *d = dense_ar_of(t);
    size_t n = (size_t)d->len * d->dim;
    double *x = malloc(2 * n * sizeof *x);
    if (!x) {
        fputs("achilles: dense_ar: out of memory generating a sequence\n", stderr);
        abort();
    }
    dense_ar_draw(t, split, i, x, x + n);
    for (size_t k = 0; k < n; k++) out[k] = (float)x[k];
    free(x);
}

void dense_ar_shuffle(const ach_task *t, uint64_t seed, uint64_t step, uint64_t i, int *perm)
{
    const ach_dense_ar *d = dense_ar_of(t);
    int C = d->chunks, w = d->len / C, order[DENSE_AR_MAX_LEN];
    ach_rng r;
    rng_init(&r, rng_hash(seed, SHUFFLE_STREAM, step), i);
    for (int c = 0; c < C; c++) order[c] = c;
    for (int c = C - 1; c > 0; c--) {
        int j = (int)rng_below(&r, (uint64_t)c + 1), o = order[c];
        order[c] = order[j], order[j] = o;
    }
    for (int c = 0; c < C; c++)
        for (int k = 0; k < w; k++) perm[c * w + k] = order[c] * w + k;
}

/* The scorer: the mean of the model's per-sequence cosine loss (1 - cos
 * between predicted and true vectors, averaged over a sequence's predicted
 * positions) over the split, and 1 - that. */
enum { M_COS_LOSS, M_COS_SIM, M_COUNT };
static const ach_metric_def dense_metrics[M_COUNT] = {
    {"cos_loss", "loss", "mean cosine loss (1 - cos) of the predicted vectors, AR order", 0, 6, 4},
    {"cos_sim", "cos", "mean cosine similarity of the predicted vectors (1 - cos_loss)", 1, 6, 4},
};

typedef struct {
    double loss;
    long n;
} dense_acc;

static void dense_score_add(const ach_task *t, void *accp, const int32_t *labels, const ach_seq_info *info,
                            const int32_t *pred, int n, double loss_sum)
{
    (void)t, (void)labels, (void)info, (void)pred;
    dense_acc *acc = accp;
    acc->loss += loss_sum;
    acc->n += n;
}

static void dense_score_end(const ach_task *t, int split, const void *accp, ach_named_metrics *out)
{
    (void)t, (void)split;
    const dense_acc *acc = accp;
    out->kind = &task_kind_dense_ar;
    for (int i = 0; i < TASK_MAX_METRICS; i++) out->value[i] = NAN;
    out->value[M_COS_LOSS] = acc->n ? acc->loss / acc->n : NAN;
    out->value[M_COS_SIM] = 1 - out->value[M_COS_LOSS];
    out->ngroups = 0;
}

const ach_task_kind task_kind_dense_ar = {
    .name = "dense_ar",
    .summary = "sequences of unit vectors from a dense autoregressive process (docs/science.md §8)",
    .shape = EXAMPLE_VECTORS,
    .nsplits = DENSE_AR_NSPLITS,
    .split_names = split_names,
    .parse = dense_parse,
    .split_size = dense_split_size,
    .vectors = dense_vectors,
    .nmetrics = M_COUNT,
    .metrics = dense_metrics,
    .score_size = sizeof(dense_acc),
    .score_add = dense_score_add,
    .score_end = dense_score_end,
};
