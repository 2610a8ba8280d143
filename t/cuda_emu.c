/* The CUDA backend against the reference kernels (ach_cpu_kernels).
 *
 * Built twice from this one source: build/t/cuda_emu runs the backend on the
 * host emulator (cuda/emu.h, every block and thread of every launch, barriers
 * honoured) and is part of `make check`; build/t/cuda_check (ACH_CUDA_DEVICE,
 * `make cuda`) runs it on a GPU for t/cuda_device.t.
 *
 * 1. Every kernel at small awkward sizes (rows not multiples of the block
 *    size, strided inputs and outputs as the mixers use them, block masks,
 *    the SSD's shared-memory and global-memory paths). Each output is
 *    compared with the reference; then the outputs must be bit-identical run
 *    to run, under four launch shapes (blocks of 256, 32, 96 and 1024
 *    threads, grids capped at 8192, 2, 5 and 1 blocks, SSD blocks of 128,
 *    32, 48 and 1024 threads) and, on the emulator, with the threads of a
 *    block resumed after each barrier in thread order, reversed and
 *    shuffled: every reduction is chunked by a constant, not by the launch,
 *    and a missing barrier would change the bits. (sumsq's double-precision
 *    tree depends on the block size and is compared within tolerance.)
 * 2. Whole models, both mixers (and Mamba-2 with a learned positional table
 *    and blocking, Mamba-1 with blocking): loss, every gradient tensor and
 *    the weights after two AdamW steps against the CPU engine; the same run
 *    twice is bit-identical.
 * 3. Graphs of training steps (kernels.h graph_run): runs of several steps
 *    through ach_train_step whose batch size and blocking change between
 *    steps, with graphs and without: bit-identical losses, norms and weights,
 *    graphs recorded and replayed as expected, and no host copy or free while
 *    one is being recorded; the recording catches such a copy; a free retires
 *    the recorded graphs.
 *
 * Tolerances, |got - want| <= tol * max|want| per tensor (normwise, as in
 * t/kernels_fast.c): the emulated kernels add in the reference's order with
 * the same libm, so most agree exactly; the differences allowed are those of
 * a GPU (fused multiply-adds, CUDA's expf within 2 ulp, cuBLAS's and the
 * chunked reductions' orders):
 *   TOL_EW  2e-6  elementwise kernels,
 *   TOL_SUM 3e-5  kernels summing up to a few hundred terms,
 *   TOL_MODEL 2e-4  whole-model gradients and weights after two steps,
 *   1e-5 relative for the loss, 1e-4 for the gradient norm, 1e-12 for
 *   sumsq (double).
 * Measured on the emulator: model gradients within 1.2e-6, weights after two
 * steps within 3e-5 (AdamW's first steps magnify relative differences of
 * tiny gradients). */
#include <stdlib.h>
#include <string.h>

#include "../cuda/cuda_backend.h"
#include "init.h"
#include "model.h"
#include "optim.h"
#include "rng.h"
#include "step.h"
#include "tap.h"

#define TOL_EW 2e-6
#define TOL_SUM 3e-5
#define TOL_MODEL 2e-4

#ifdef ACH_CUDA_DEVICE
#define BACKEND() ach_cuda_kernels()
#define SET_SHAPE ach_cuda_set_shape
static int backend_errors(char *msg, size_t n) /* the device reports errors itself (exit 1) */
{
    if (n) msg[0] = 0;
    return 0;
}
#define SET_ORDER(o) ((void)(o))
#else
#define SET_ORDER ach_emu_set_order
#define BACKEND() ach_cuda_emu_kernels()
#define SET_SHAPE ach_cuda_emu_set_shape
#define backend_errors ach_emu_errors
#endif
#ifdef ACH_CUDA_DEVICE
#define SET_GRAPHS ach_cuda_set_graphs
#define GRAPH_STATS ach_cuda_graph_stats
#else
#define SET_GRAPHS ach_cuda_emu_set_graphs
#define GRAPH_STATS ach_cuda_emu_graph_stats
#endif

static const ach_kernels *bk;
static ach_rng rng;

#define NSHAPES 4
static const int shapes[NSHAPES][3] = {{256, 8192, 128}, {32, 2, 32}, {96, 5, 48}, {1024, 1, 1024}};
static void set_shape(int s) { SET_SHAPE(shapes[s][0], shapes[s][1], shapes[s][2]); }
#define NORDERS 3 /* emulator: threads resumed in order, reversed, shuffled */

static float *rnd(size_t n, double lo, double hi)
{
    float *p = malloc((n ? n : 1) * sizeof *p);
    for (size_t i = 0; i < n; i++) p[i] = (float)(lo + (hi - lo) * rng_uniform(&rng));
    return p;
}

static int *rnd_int(size_t n, int below)
{
    int *p = malloc((n ? n : 1) * sizeof *p);
    for (size_t i = 0; i < n; i++) p[i] = (int)rng_below(&rng, (uint64_t)below);
    return p;
}

static unsigned char *rnd_mask(size_t n)
{
    unsigned char *p = malloc(n ? n : 1);
    for (size_t i = 0; i < n; i++) p[i] = rng_below(&rng, 3) == 0;
    return p;
}

/* ---- the harness: a case has outputs (with initial contents, since
 * backward kernels accumulate), inputs, and a run function calling one
 * kernel on pointers in the backend's memory ---- */
#define MAXOUT 6
#define MAXIN 8
typedef struct tcase tcase;
struct tcase {
    char name[160];
    int nout;
    const char *oname[MAXOUT];
    float *init[MAXOUT];
    size_t n[MAXOUT];
    float *in[MAXIN];
    size_t nin[MAXIN];
    int *iin[2];
    size_t niin[2];
    unsigned char *mask;
    size_t nmask;
    double tol;
    void (*run)(const ach_kernels *k, tcase *c, float **o, float **i, int **ii, unsigned char *mask);
    int s[12];
    float fs[2];
};

static void add_out(tcase *c, const char *name, size_t n, int random_init)
{
    int i = c->nout++;
    c->oname[i] = name;
    c->n[i] = n;
    c->init[i] = random_init ? rnd(n, -1, 1) : calloc(n ? n : 1, sizeof(float));
}

static void set_in(tcase *c, int i, size_t n, double lo, double hi)
{
    c->in[i] = rnd(n, lo, hi);
    c->nin[i] = n;
}

static void set_iin(tcase *c, int i, size_t n, int below)
{
    c->iin[i] = rnd_int(n, below);
    c->niin[i] = n;
}

static void *upload(const ach_kernels *k, const void *src, size_t bytes)
{
    void *d = k->alloc(bytes);
    if (src && bytes) k->to_device(d, src, bytes);
    return d;
}

/* Runs the case on k; save[i] gets output i (malloc'd). */
static void run_on(const ach_kernels *k, tcase *c, float **save)
{
    float *o[MAXOUT] = {0}, *in[MAXIN] = {0};
    int *ii[2] = {0};
    unsigned char *mask = c->mask ? upload(k, c->mask, c->nmask) : NULL;
    for (int i = 0; i < c->nout; i++) o[i] = upload(k, c->init[i], c->n[i] * sizeof(float));
    for (int i = 0; i < MAXIN; i++)
        if (c->in[i]) in[i] = upload(k, c->in[i], c->nin[i] * sizeof(float));
    for (int i = 0; i < 2; i++)
        if (c->iin[i]) ii[i] = upload(k, c->iin[i], c->niin[i] * sizeof(int));
    c->run(k, c, o, in, ii, mask);
    for (int i = 0; i < c->nout; i++) {
        save[i] = malloc((c->n[i] ? c->n[i] : 1) * sizeof(float));
        k->to_host(save[i], o[i], c->n[i] * sizeof(float));
        k->release(o[i]);
    }
    for (int i = 0; i < MAXIN; i++) k->release(in[i]);
    for (int i = 0; i < 2; i++) k->release(ii[i]);
    k->release(mask);
}

static void free_saved(tcase *c, float **s)
{
    for (int i = 0; i < c->nout; i++) free(s[i]);
}

/* error of got against want, relative to max|want| */
static double rel_err(const float *got, const float *want, size_t n, double *scale_out, size_t *worst)
{
    double scale = 0, err = 0;
    *worst = 0;
    for (size_t j = 0; j < n; j++) {
        double w = want[j], d = (double)got[j] - w;
        if (fabs(w) > scale) scale = fabs(w);
        if (!(fabs(d) <= err)) err = fabs(d), *worst = j; /* NaN counts as worst */
    }
    *scale_out = scale;
    return scale > 0 ? err / scale : err;
}

static void check(tcase *c)
{
    float *ref[MAXOUT], *first[MAXOUT], *again[MAXOUT];
    char msg[512];
    run_on(&ach_cpu_kernels, c, ref);
    set_shape(0);
    run_on(bk, c, first);
    for (int i = 0; i < c->nout; i++) {
        double scale;
        size_t w;
        double e = rel_err(first[i], ref[i], c->n[i], &scale, &w);
        int good = e <= c->tol || (scale == 0 && e == 0);
        ok(good, "%s %s: error %.2g of max %.3g (tol %.0e)", c->name, c->oname[i], e, scale, c->tol);
        if (!good) diag("   at %zu: got %.9g want %.9g", w, first[i][w], ref[i][w]);
    }
    int same = 1;
    for (int s = 0; s < NSHAPES; s++)
        for (int o = 0; o < NORDERS; o++) {
            set_shape(s);
            SET_ORDER(o);
            run_on(bk, c, again);
            for (int i = 0; i < c->nout; i++) same &= !memcmp(first[i], again[i], c->n[i] * sizeof(float));
            free_saved(c, again);
        }
    set_shape(0);
    SET_ORDER(0);
    ok(same, "%s: bit-identical run to run, under %d launch shapes and %d thread orders", c->name, NSHAPES,
       NORDERS);
    int ne = backend_errors(msg, sizeof msg);
    ok(ne == 0, "%s: no emulator errors%s%s", c->name, ne ? ": " : "", msg);
    free_saved(c, ref);
    free_saved(c, first);
    for (int i = 0; i < c->nout; i++) free(c->init[i]);
    for (int i = 0; i < MAXIN; i++) free(c->in[i]);
    for (int i = 0; i < 2; i++) free(c->iin[i]);
    free(c->mask);
}

/* ---- matmul ---- */
enum { MM_M, MM_K, MM_N, MM_LDI, MM_BIAS };
static void run_mmf(const ach_kernels *k, tcase *c, float **o, float **in, int **ii, unsigned char *m)
{
    k->matmul_forward(o[0], in[0], c->s[MM_LDI], in[1], c->s[MM_BIAS] ? in[2] : NULL, c->s[MM_M], c->s[MM_K],
                      c->s[MM_N]);
}
static void run_mmb(const ach_kernels *k, tcase *c, float **o, float **in, int **ii, unsigned char *m)
{
    k->matmul_backward(o[0], o[1], c->s[MM_BIAS] ? o[2] : NULL, in[3], in[0], c->s[MM_LDI], in[1], c->s[MM_M],
                       c->s[MM_K], c->s[MM_N]);
}

static void matmul_case(int M, int K, int N, int ldi, int bias)
{
    tcase f = {.tol = TOL_SUM, .run = run_mmf, .s = {M, K, N, ldi, bias}};
    snprintf(f.name, sizeof f.name, "matmul_forward M %d K %d N %d ldi %d%s", M, K, N, ldi, bias ? " bias" : "");
    set_in(&f, 0, (size_t)M * ldi, -1, 1), set_in(&f, 1, (size_t)N * K, -1, 1), set_in(&f, 2, N, -1, 1);
    add_out(&f, "out", (size_t)M * N, 1);
    check(&f);
    tcase b = {.tol = TOL_SUM, .run = run_mmb, .s = {M, K, N, ldi, bias}};
    snprintf(b.name, sizeof b.name, "matmul_backward M %d K %d N %d ldi %d%s", M, K, N, ldi, bias ? " dbias" : "");
    set_in(&b, 0, (size_t)M * ldi, -1, 1), set_in(&b, 1, (size_t)N * K, -1, 1), set_in(&b, 3, (size_t)M * N, -1, 1);
    add_out(&b, "dinp", (size_t)M * ldi, 1);
    add_out(&b, "dw", (size_t)N * K, 1);
    add_out(&b, "dbias", bias ? (size_t)N : 0, 1);
    check(&b);
}

/* ---- conv1d ---- */
enum { CV_B, CV_L, CV_C, CV_K, CV_LDI };
static void run_convf(const ach_kernels *k, tcase *c, float **o, float **in, int **ii, unsigned char *m)
{
    k->conv1d_forward(o[0], in[0], c->s[CV_LDI], in[1], in[2], c->s[CV_B], c->s[CV_L], c->s[CV_C], c->s[CV_K]);
}
static void run_convb(const ach_kernels *k, tcase *c, float **o, float **in, int **ii, unsigned char *m)
{
    k->conv1d_backward(o[0], o[1], o[2], in[3], in[0], c->s[CV_LDI], in[1], c->s[CV_B], c->s[CV_L], c->s[CV_C],
                       c->s[CV_K]);
}

static void conv_case(int B, int L, int C, int K, int ldi)
{
    size_t R = (size_t)B * L;
    tcase f = {.tol = TOL_SUM, .run = run_convf, .s = {B, L, C, K, ldi}};
    snprintf(f.name, sizeof f.name, "conv1d_forward B %d L %d C %d K %d ldi %d", B, L, C, K, ldi);
    set_in(&f, 0, R * ldi, -1, 1), set_in(&f, 1, (size_t)C * K, -1, 1), set_in(&f, 2, C, -1, 1);
    add_out(&f, "out", R * C, 1);
    check(&f);
    tcase b = {.tol = TOL_SUM, .run = run_convb, .s = {B, L, C, K, ldi}};
    snprintf(b.name, sizeof b.name, "conv1d_backward B %d L %d C %d K %d ldi %d", B, L, C, K, ldi);
    set_in(&b, 0, R * ldi, -1, 1), set_in(&b, 1, (size_t)C * K, -1, 1), set_in(&b, 3, R * C, -1, 1);
    add_out(&b, "dinp", R * ldi, 1);
    add_out(&b, "dw", (size_t)C * K, 1);
    add_out(&b, "dbias", C, 1);
    check(&b);
}

/* ---- elementwise ---- */
static void run_siluf(const ach_kernels *k, tcase *c, float **o, float **in, int **ii, unsigned char *m)
{
    k->silu_forward(o[0], in[0], (size_t)c->s[0]);
}
static void run_silub(const ach_kernels *k, tcase *c, float **o, float **in, int **ii, unsigned char *m)
{
    k->silu_backward(o[0], in[1], in[0], (size_t)c->s[0]);
}
static void run_add(const ach_kernels *k, tcase *c, float **o, float **in, int **ii, unsigned char *m)
{
    k->add_inplace(o[0], in[0], (size_t)c->s[0]);
}
static void run_zero(const ach_kernels *k, tcase *c, float **o, float **in, int **ii, unsigned char *m)
{
    k->zero(o[0], (size_t)c->s[0]);
}
static void run_adamw(const ach_kernels *k, tcase *c, float **o, float **in, int **ii, unsigned char *m)
{
    k->adamw_update(o[0], o[1], o[2], in[0], (size_t)c->s[0], 0.7f, 2.5e-4f, 0.01f, 0.9f, 0.999f, 1e-8f, 2.5e-3f,
                    0.0447f);
}

static void wide_inputs(tcase *c, int i, size_t n)
{
    static const float special[] = {0.0f, -0.0f, 20.5f, -20.5f, 87.0f, -87.0f, 95.0f, -95.0f, 1e-30f, -1e-30f};
    set_in(c, i, n, -8, 8);
    for (size_t j = 0; j < n && j < sizeof special / sizeof *special; j++) c->in[i][j * 7 % n] = special[j];
}

static void elementwise_cases(int n)
{
    tcase f = {.tol = TOL_EW, .run = run_siluf, .s = {n}};
    snprintf(f.name, sizeof f.name, "silu_forward n %d", n);
    wide_inputs(&f, 0, n);
    add_out(&f, "out", n, 1);
    check(&f);
    tcase b = {.tol = TOL_EW, .run = run_silub, .s = {n}};
    snprintf(b.name, sizeof b.name, "silu_backward n %d", n);
    wide_inputs(&b, 0, n), set_in(&b, 1, n, -1, 1);
    add_out(&b, "dinp", n, 1);
    check(&b);
    tcase a = {.tol = 0, .run = run_add, .s = {n}};
    snprintf(a.name, sizeof a.name, "add_inplace n %d (exact)", n);
    set_in(&a, 0, n, -1, 1);
    add_out(&a, "x", n, 1);
    check(&a);
    tcase z = {.tol = 0, .run = run_zero, .s = {n}};
    snprintf(z.name, sizeof z.name, "zero n %d (exact)", n);
    add_out(&z, "x", n, 1);
    check(&z);
    tcase w = {.tol = TOL_EW, .run = run_adamw, .s = {n}};
    snprintf(w.name, sizeof w.name, "adamw_update n %d", n);
    set_in(&w, 0, n, -1, 1);
    add_out(&w, "w", n, 1);
    add_out(&w, "m", n, 1);
    add_out(&w, "v", n, 0);
    for (int i = 0; i < n; i++) w.init[2][i] = (float)(1e-4 * rng_uniform(&rng));
    check(&w);
}

static void run_gatef(const ach_kernels *k, tcase *c, float **o, float **in, int **ii, unsigned char *m)
{
    k->gate_forward(o[0], in[0], in[1], c->s[2], c->s[0], c->s[1]);
}
static void run_gateb(const ach_kernels *k, tcase *c, float **o, float **in, int **ii, unsigned char *m)
{
    k->gate_backward(o[0], o[1], in[2], in[0], in[1], c->s[2], c->s[0], c->s[1]);
}

static void gate_case(int rows, int C, int ldz)
{
    tcase f = {.tol = TOL_EW, .run = run_gatef, .s = {rows, C, ldz}};
    snprintf(f.name, sizeof f.name, "gate_forward rows %d C %d ldz %d", rows, C, ldz);
    set_in(&f, 0, (size_t)rows * C, -2, 2), wide_inputs(&f, 1, (size_t)rows * ldz);
    add_out(&f, "out", (size_t)rows * C, 1);
    check(&f);
    tcase b = {.tol = TOL_EW, .run = run_gateb, .s = {rows, C, ldz}};
    snprintf(b.name, sizeof b.name, "gate_backward rows %d C %d ldz %d", rows, C, ldz);
    set_in(&b, 0, (size_t)rows * C, -2, 2), wide_inputs(&b, 1, (size_t)rows * ldz);
    set_in(&b, 2, (size_t)rows * C, -1, 1);
    add_out(&b, "dy", (size_t)rows * C, 1);
    add_out(&b, "dz", (size_t)rows * ldz, 1);
    check(&b);
}

/* ---- RMSNorm ---- */
static void run_normf(const ach_kernels *k, tcase *c, float **o, float **in, int **ii, unsigned char *m)
{
    k->rmsnorm_forward(o[0], o[1], in[0], in[1], c->s[0], c->s[1], 1e-5f);
}
static void run_normb(const ach_kernels *k, tcase *c, float **o, float **in, int **ii, unsigned char *m)
{
    k->rmsnorm_backward(o[0], o[1], in[2], in[0], in[1], in[3], c->s[0], c->s[1]);
}

static void norm_case(int rows, int C)
{
    tcase f = {.tol = TOL_SUM, .run = run_normf, .s = {rows, C}};
    snprintf(f.name, sizeof f.name, "rmsnorm_forward rows %d C %d", rows, C);
    set_in(&f, 0, (size_t)rows * C, -2, 2), set_in(&f, 1, C, 0.5, 1.5);
    add_out(&f, "out", (size_t)rows * C, 1);
    add_out(&f, "rstd", rows, 1);
    check(&f);
    tcase b = {.tol = TOL_SUM, .run = run_normb, .s = {rows, C}};
    snprintf(b.name, sizeof b.name, "rmsnorm_backward rows %d C %d", rows, C);
    set_in(&b, 0, (size_t)rows * C, -2, 2), set_in(&b, 1, C, 0.5, 1.5), set_in(&b, 2, (size_t)rows * C, -1, 1);
    set_in(&b, 3, rows, 0.5, 2);
    add_out(&b, "dinp", (size_t)rows * C, 1);
    add_out(&b, "dw", C, 1);
    check(&b);
}

/* ---- Mamba-2 SSD, laid out as mamba2.c does: x | B | C in one buffer of
 * row stride ldx, dt a column of a wider buffer ---- */
enum { SB, SL, SH, SP, SN, SLDX, SLDT, SMASK };
static void run_ssdf(const ach_kernels *k, tcase *c, float **o, float **in, int **ii, unsigned char *m)
{
    int Di = c->s[SH] * c->s[SP], N = c->s[SN];
    k->mamba2_ssd_forward(o[0], in[0], in[0] + Di, in[0] + Di + N, c->s[SLDX], in[1] + 3, c->s[SLDT], in[2], in[3],
                          in[4], m, c->s[SB], c->s[SL], c->s[SH], c->s[SP], N, in[5]);
}
static void run_ssdb(const ach_kernels *k, tcase *c, float **o, float **in, int **ii, unsigned char *m)
{
    int Di = c->s[SH] * c->s[SP], N = c->s[SN];
    k->mamba2_ssd_backward(o[0], o[0] + Di, o[0] + Di + N, o[1] + 3, o[2], o[3], o[4], in[6], in[0], in[0] + Di,
                           in[0] + Di + N, c->s[SLDX], in[1] + 3, c->s[SLDT], in[2], in[3], in[4], m, c->s[SB],
                           c->s[SL], c->s[SH], c->s[SP], N, in[5]);
}

static void ssd_inputs(tcase *c)
{
    int B = c->s[SB], L = c->s[SL], H = c->s[SH];
    size_t R = (size_t)B * L;
    set_in(c, 0, R * c->s[SLDX], -1, 1);
    set_in(c, 1, R * c->s[SLDT], -4, 1);
    if (R) c->in[1][3] = 25; /* one delta past softplus's threshold */
    set_in(c, 2, H, -1, 1);
    set_in(c, 3, H, 0, 2.7);
    set_in(c, 4, H, 0.5, 1.5);
    set_in(c, 5, mamba2_ssd_work(L), 0, 0);
    if (c->s[SMASK]) c->mask = rnd_mask(R), c->nmask = R;
}

static void ssd_case(int B, int L, int H, int P, int N, int mask)
{
    int ldx = H * P + 2 * N + 3, ldt = H + 5;
    size_t R = (size_t)B * L;
    const char *how = 2 * (size_t)L * L + L > 12288 ? " (global memory)" : "";
    tcase f = {.tol = TOL_SUM, .run = run_ssdf, .s = {B, L, H, P, N, ldx, ldt, mask}};
    snprintf(f.name, sizeof f.name, "mamba2_ssd_forward B %d L %d H %d P %d N %d%s%s", B, L, H, P, N,
             mask ? " blocked" : "", how);
    ssd_inputs(&f);
    add_out(&f, "y", R * H * P, 1);
    check(&f);
    how = 5 * (size_t)L * L + 4 * L > 12288 ? " (global memory)" : "";
    tcase b = {.tol = TOL_SUM, .run = run_ssdb, .s = {B, L, H, P, N, ldx, ldt, mask}};
    snprintf(b.name, sizeof b.name, "mamba2_ssd_backward B %d L %d H %d P %d N %d%s%s", B, L, H, P, N,
             mask ? " blocked" : "", how);
    ssd_inputs(&b);
    set_in(&b, 6, R * H * P, -1, 1);
    add_out(&b, "dx|dB|dC", R * ldx, 1);
    add_out(&b, "ddt", R * ldt, 1);
    add_out(&b, "ddt_bias", H, 1);
    add_out(&b, "dA_log", H, 1);
    add_out(&b, "dD", H, 1);
    check(&b);
}

/* ---- Mamba-1 scan: dt_r | B | C in one buffer of row stride X ---- */
enum { MB, ML, MDI, MN, MX, MMASK };
static void run_scanf(const ach_kernels *k, tcase *c, float **o, float **in, int **ii, unsigned char *m)
{
    int N = c->s[MN];
    k->mamba1_scan_forward(o[0], in[0], in[1], in[2], in[3] + 2, in[3] + 2 + N, c->s[MX], in[4], m, c->s[MB],
                           c->s[ML], c->s[MDI], N, in[5]);
}
static void run_scanb(const ach_kernels *k, tcase *c, float **o, float **in, int **ii, unsigned char *m)
{
    int N = c->s[MN];
    k->mamba1_scan_backward(o[0], o[1], o[2], o[3] + 2, o[3] + 2 + N, o[4], in[6], in[0], in[1], in[2], in[3] + 2,
                            in[3] + 2 + N, c->s[MX], in[4], m, c->s[MB], c->s[ML], c->s[MDI], N, in[5]);
}

static void scan_inputs(tcase *c)
{
    int B = c->s[MB], L = c->s[ML], Di = c->s[MDI], N = c->s[MN];
    size_t R = (size_t)B * L;
    set_in(c, 0, R * Di, -1, 1);
    set_in(c, 1, R * Di, -5, 1);
    if (R * Di > 1) c->in[1][1] = 22;
    set_in(c, 2, (size_t)Di * N, 0, 2.7);
    set_in(c, 3, R * c->s[MX], -1, 1);
    set_in(c, 4, Di, 0.5, 1.5);
    set_in(c, 5, mamba1_scan_work(L, N), 0, 0);
    if (c->s[MMASK]) c->mask = rnd_mask(R), c->nmask = R;
}

static void scan_case(int B, int L, int Di, int N, int mask)
{
    int X = 2 + 2 * N + 1;
    size_t R = (size_t)B * L;
    tcase f = {.tol = TOL_SUM, .run = run_scanf, .s = {B, L, Di, N, X, mask}};
    snprintf(f.name, sizeof f.name, "mamba1_scan_forward B %d L %d Di %d N %d%s", B, L, Di, N, mask ? " blocked" : "");
    scan_inputs(&f);
    add_out(&f, "y", R * Di, 1);
    check(&f);
    tcase b = {.tol = TOL_SUM, .run = run_scanb, .s = {B, L, Di, N, X, mask}};
    snprintf(b.name, sizeof b.name, "mamba1_scan_backward B %d L %d Di %d N %d%s", B, L, Di, N, mask ? " blocked" : "");
    scan_inputs(&b);
    set_in(&b, 6, R * Di, -1, 1);
    add_out(&b, "du", R * Di, 1);
    add_out(&b, "ddt", R * Di, 1);
    add_out(&b, "dA_log", (size_t)Di * N, 1);
    add_out(&b, "dxdbl", R * X, 1);
    add_out(&b, "dD", Di, 1);
    check(&b);
}

/* ---- head, embedding, positional encoding, substitution ---- */
static void run_cef(const ach_kernels *k, tcase *c, float **o, float **in, int **ii, unsigned char *m)
{
    k->crossentropy_forward(o[0], o[1], in[0], ii[0], c->s[0], c->s[1]);
}
static void run_ceb(const ach_kernels *k, tcase *c, float **o, float **in, int **ii, unsigned char *m)
{
    k->crossentropy_backward(o[0], in[0], ii[0], c->s[0], c->s[1], 1.0f / c->s[0]);
}
static void run_embf(const ach_kernels *k, tcase *c, float **o, float **in, int **ii, unsigned char *m)
{
    k->embedding_forward(o[0], ii[0], in[0], c->s[0], c->s[1]);
}
static void run_embb(const ach_kernels *k, tcase *c, float **o, float **in, int **ii, unsigned char *m)
{
    k->embedding_backward(o[0], in[0], ii[0], c->s[0], c->s[1], c->s[2]);
}
static void run_lastf(const ach_kernels *k, tcase *c, float **o, float **in, int **ii, unsigned char *m)
{
    k->last_forward(o[0], in[0], c->s[0], c->s[1], c->s[2]);
}
static void run_lastb(const ach_kernels *k, tcase *c, float **o, float **in, int **ii, unsigned char *m)
{
    k->last_backward(o[0], in[0], c->s[0], c->s[1], c->s[2]);
}
static void run_pef(const ach_kernels *k, tcase *c, float **o, float **in, int **ii, unsigned char *m)
{
    k->posenc_forward(o[0], in[0], c->s[0], c->s[1], c->s[2]);
}
static void run_peb(const ach_kernels *k, tcase *c, float **o, float **in, int **ii, unsigned char *m)
{
    k->posenc_backward(o[0], in[0], c->s[0], c->s[1], c->s[2]);
}
static void run_rows(const ach_kernels *k, tcase *c, float **o, float **in, int **ii, unsigned char *m)
{
    k->rows_replace(o[0], in[0], m, c->s[0], c->s[1]);
}

static void head_cases(int B, int V)
{
    tcase f = {.tol = TOL_EW * 10, .run = run_cef, .s = {B, V}};
    snprintf(f.name, sizeof f.name, "crossentropy_forward B %d V %d", B, V);
    set_in(&f, 0, (size_t)B * V, -30, -5);
    set_iin(&f, 0, B, V);
    add_out(&f, "losses", B, 1);
    add_out(&f, "probs", (size_t)B * V, 1);
    check(&f);
    tcase b = {.tol = 0, .run = run_ceb, .s = {B, V}};
    snprintf(b.name, sizeof b.name, "crossentropy_backward B %d V %d (exact)", B, V);
    set_in(&b, 0, (size_t)B * V, 0, 1);
    set_iin(&b, 0, B, V);
    add_out(&b, "dlogits", (size_t)B * V, 1);
    check(&b);
}

static void embedding_cases(int n, int D, int V)
{
    tcase f = {.tol = 0, .run = run_embf, .s = {n, D}};
    snprintf(f.name, sizeof f.name, "embedding_forward n %d D %d (exact)", n, D);
    set_in(&f, 0, (size_t)V * D, -1, 1);
    set_iin(&f, 0, n, V);
    add_out(&f, "out", (size_t)n * D, 1);
    check(&f);
    /* few distinct tokens, so rows collide within and across chunks */
    tcase b = {.tol = TOL_SUM, .run = run_embb, .s = {n, D, V}};
    snprintf(b.name, sizeof b.name, "embedding_backward n %d D %d V %d", n, D, V);
    set_in(&b, 0, (size_t)n * D, -1, 1);
    set_iin(&b, 0, n, V);
    add_out(&b, "dwte", (size_t)V * D, 1);
    check(&b);
}

static void layout_cases(int B, int L, int C)
{
    size_t R = (size_t)B * L;
    tcase lf = {.tol = 0, .run = run_lastf, .s = {B, L, C}};
    snprintf(lf.name, sizeof lf.name, "last_forward B %d L %d C %d (exact)", B, L, C);
    set_in(&lf, 0, R * C, -1, 1);
    add_out(&lf, "out", (size_t)B * C, 1);
    check(&lf);
    tcase lb = {.tol = 0, .run = run_lastb, .s = {B, L, C}};
    snprintf(lb.name, sizeof lb.name, "last_backward B %d L %d C %d (exact)", B, L, C);
    set_in(&lb, 0, (size_t)B * C, -1, 1);
    add_out(&lb, "dinp", R * C, 1);
    check(&lb);
    tcase pf = {.tol = 0, .run = run_pef, .s = {B, L, C}};
    snprintf(pf.name, sizeof pf.name, "posenc_forward B %d L %d D %d (exact)", B, L, C);
    set_in(&pf, 0, (size_t)L * C, -1, 1);
    add_out(&pf, "x", R * C, 1);
    check(&pf);
    tcase pb = {.tol = TOL_SUM, .run = run_peb, .s = {B, L, C}};
    snprintf(pb.name, sizeof pb.name, "posenc_backward B %d L %d D %d", B, L, C);
    set_in(&pb, 0, R * C, -1, 1);
    add_out(&pb, "dpe", (size_t)L * C, 1);
    check(&pb);
    tcase rr = {.tol = 0, .run = run_rows, .s = {(int)R, C}};
    snprintf(rr.name, sizeof rr.name, "rows_replace rows %zu C %d (exact)", R, C);
    set_in(&rr, 0, R * C, -1, 1);
    rr.mask = rnd_mask(R), rr.nmask = R;
    add_out(&rr, "dst", R * C, 1);
    check(&rr);
}

static void sumsq_case(size_t n)
{
    float *x = rnd(n, -2, 2);
    double want = ach_cpu_kernels.sumsq(x, n), got[NSHAPES];
    float *d = upload(bk, x, n * sizeof *x);
    for (int s = 0; s < NSHAPES; s++) {
        set_shape(s);
        got[s] = bk->sumsq(d, n);
    }
    set_shape(0);
    int det = bk->sumsq(d, n) == got[0];
    ok(fabs(got[0] - want) <= 1e-12 * fabs(want) && fabs(got[1] - want) <= 1e-12 * fabs(want) &&
           fabs(got[3] - want) <= 1e-12 * fabs(want),
       "sumsq n %zu: %.17g, reference %.17g (tol 1e-12, every shape)", n, got[0], want);
    ok(det, "sumsq n %zu: bit-identical run to run", n);
    bk->release(d);
    free(x);
}

/* ---- whole models ---- */
typedef struct {
    double loss[2], norm[2];
    float *w, *g;
    size_t n;
} step_result;

typedef struct {
    ach_arch arch;
    int layers, B, L, pos, block;
} model_spec;

static step_result train(const ach_kernels *k, const model_spec *ms, ach_model *out_model)
{
    ach_config cfg;
    ach_model m;
    ach_optim o;
    ach_optim_cfg oc;
    char err[256];
    step_result r = {{0}, {0}, NULL, NULL, 0};
    int B = ms->B, L = ms->L;
    cfg_default(&cfg, ms->arch);
    cfg.n_layer = ms->layers;
    cfg.seed = 3;
    cfg.gamma = 0.5;
    if (ms->pos) cfg.pos_enc = POS_LEARNED, cfg.pos_max_len = L + 2;
    if (ach_model_create(&m, &cfg, k, err, sizeof err) || ach_model_reserve(&m, B, L, err, sizeof err)) {
        diag("%s", err);
        return r;
    }
    ach_init_params(&m);
    ach_optim_defaults(&oc);
    ach_optim_create(&o, &m, &oc);
    ach_rng tr;
    rng_init(&tr, 99, 1);
    int *tok = malloc((size_t)B * L * sizeof *tok), *lab = malloc((size_t)B * sizeof *lab);
    unsigned char *mask = malloc((size_t)B * L);
    for (int i = 0; i < B * L; i++) mask[i] = rng_below(&tr, 4) == 0;
    if (ms->block) ach_model_set_block(&m, mask, B, L, 1); /* layer 0 */
    r.n = m.nweights;
    r.g = malloc(r.n * sizeof *r.g);
    r.w = malloc(r.n * sizeof *r.w);
    for (int s = 0; s < 2; s++) {
        for (int i = 0; i < B * L; i++) tok[i] = (int)rng_below(&tr, cfg.vocab_size);
        for (int b = 0; b < B; b++) lab[b] = (int)rng_below(&tr, cfg.vocab_size);
        r.loss[s] = ach_model_forward(&m, tok, lab, B, L);
        ach_model_backward(&m);
        if (s == 1) k->to_host(r.g, m.g, r.n * sizeof *r.g); /* the second step's gradients */
        r.norm[s] = ach_optim_step(&o, &m, 1e-3);
    }
    k->to_host(r.w, m.w, r.n * sizeof *r.w);
    free(tok), free(lab), free(mask);
    ach_optim_free(&o, &m);
    if (out_model) *out_model = m; /* the caller frees it (it wants the parameter table) */
    else ach_model_free(&m);
    return r;
}

static void model_case(const model_spec *ms)
{
    char what[160];
    char msg[512];
    snprintf(what, sizeof what, "%s %d layers B %d L %d%s%s", ms->arch == ARCH_MAMBA1 ? "mamba1" : "mamba2",
             ms->layers, ms->B, ms->L, ms->pos ? " learned positions" : "", ms->block ? " blocking" : "");
    ach_model m;
    step_result ref = train(&ach_cpu_kernels, ms, &m);
    step_result got = train(bk, ms, NULL);
    if (!ref.w || !got.w) {
        ok(0, "%s: the model runs", what);
        return;
    }
    is_close(got.loss[0], ref.loss[0], 0, 1e-5, "loss of step 1 vs the CPU engine");
    is_close(got.loss[1], ref.loss[1], 0, 1e-5, "loss of step 2 vs the CPU engine");
    is_close(got.norm[1], ref.norm[1], 0, 1e-4, "gradient norm of step 2 vs the CPU engine");
    double gworst = 0, wworst = 0;
    const char *gname = "", *wname = "";
    int gbad = 0, wbad = 0;
    for (int p = 0; p < m.nparams; p++) {
        const ach_param *pr = &m.params[p];
        double scale;
        size_t at;
        double eg = rel_err(got.g + pr->offset, ref.g + pr->offset, pr->numel, &scale, &at);
        if (!(eg <= gworst)) gworst = eg, gname = pr->name;
        if (!(eg <= TOL_MODEL)) gbad++, diag("  %s: gradient error %.3g of max %.3g", pr->name, eg, scale);
        double ew = rel_err(got.w + pr->offset, ref.w + pr->offset, pr->numel, &scale, &at);
        if (!(ew <= wworst)) wworst = ew, wname = pr->name;
        if (!(ew <= TOL_MODEL)) wbad++, diag("  %s: weight error %.3g of max %.3g", pr->name, ew, scale);
    }
    ok(!gbad, "%s: all %d gradient tensors within %.0e (worst %.2g, %s)", what, m.nparams, TOL_MODEL, gworst, gname);
    ok(!wbad, "%s: all %d weight tensors after 2 AdamW steps within %.0e (worst %.2g, %s)", what, m.nparams,
       TOL_MODEL, wworst, wname);
    SET_ORDER(2); /* sumsq's tree, and so the clipping, depend on the launch shape: keep it */
    step_result again = train(bk, ms, NULL);
    SET_ORDER(0);
    ok(again.w && again.loss[0] == got.loss[0] && again.loss[1] == got.loss[1] && again.norm[1] == got.norm[1] &&
           !memcmp(again.g, got.g, got.n * sizeof(float)) && !memcmp(again.w, got.w, got.n * sizeof(float)),
       "%s: losses, gradients and weights bit-identical run to run (and with shuffled threads)", what);
    int ne = backend_errors(msg, sizeof msg);
    ok(ne == 0, "%s: no emulator errors%s%s", what, ne ? ": " : "", msg);
    free(ref.w), free(ref.g), free(got.w), free(got.g), free(again.w), free(again.g);
    ach_model_free(&m);
}

/* ---- graphs of training steps ---- */
#define GSTEPS 7
typedef struct {
    double loss[GSTEPS], norm[GSTEPS];
    float *w;
    size_t n;
} run_result;

/* GSTEPS steps of ach_train_step; batch sizes and blocking change between
 * them, so graphs are recorded for several keys and retired by nothing. */
static run_result train_run(const ach_kernels *k, ach_arch arch)
{
    static const int Bs[GSTEPS] = {6, 6, 4, 6, 4, 6, 6}, blocked[GSTEPS] = {0, 0, 0, 0, 0, 1, 1};
    const int L = 8, Bmax = 6;
    ach_config cfg;
    ach_model m;
    ach_optim o;
    ach_optim_cfg oc;
    char err[256];
    run_result r = {{0}, {0}, NULL, 0};
    cfg_default(&cfg, arch);
    cfg.n_layer = 2;
    cfg.seed = 5;
    if (ach_model_create(&m, &cfg, k, err, sizeof err) || ach_model_reserve(&m, Bmax, L, err, sizeof err)) {
        diag("%s", err);
        return r;
    }
    ach_init_params(&m);
    ach_optim_defaults(&oc);
    oc.clip = 0.05; /* small enough that clipping scales every step */
    ach_optim_create(&o, &m, &oc);
    o.frozen[1] = 1; /* one tensor out of the norm and the update */
    ach_rng tr;
    rng_init(&tr, 17, 1);
    int tok[6 * 8], lab[6];
    unsigned char mask[6 * 8];
    for (int s = 0; s < GSTEPS; s++) {
        int B = Bs[s];
        for (int i = 0; i < B * L; i++) tok[i] = (int)rng_below(&tr, cfg.vocab_size), mask[i] = rng_below(&tr, 3) == 0;
        for (int b = 0; b < B; b++) lab[b] = (int)rng_below(&tr, cfg.vocab_size);
        ach_model_set_block(&m, blocked[s] ? mask : NULL, B, L, 1);
        r.loss[s] = ach_train_step(&m, &o, tok, lab, B, L, 1e-3 * (s + 1), &r.norm[s]);
    }
    r.n = m.nweights;
    r.w = malloc(r.n * sizeof *r.w);
    k->to_host(r.w, m.w, r.n * sizeof *r.w);
    ach_optim_free(&o, &m);
    ach_model_free(&m);
    return r;
}

static void graph_case(ach_arch arch)
{
    const char *what = arch == ARCH_MAMBA1 ? "mamba1" : "mamba2";
    char msg[512];
    unsigned long rec0, rep0, rec1, rep1;
    run_result ref = train_run(&ach_cpu_kernels, arch);
    SET_GRAPHS(0);
    run_result plain = train_run(bk, arch);
    SET_GRAPHS(1);
    GRAPH_STATS(&rec0, &rep0);
    run_result graph = train_run(bk, arch);
    GRAPH_STATS(&rec1, &rep1);
    int ne = backend_errors(msg, sizeof msg);
    if (!ref.w || !plain.w || !graph.w) {
        ok(0, "%s: the runs run", what);
        return;
    }
    /* keys: B 6, B 4, B 6 blocked. B 6 runs, records, replays (steps 1, 2,
     * 4), B 4 runs then records (3, 5), blocked runs then records (6, 7) */
    ok(rec1 - rec0 == 3 && rep1 - rep0 == 4, "%s: %lu graphs recorded (want 3), %lu replays (want 4)", what,
       rec1 - rec0, rep1 - rep0);
    ok(ne == 0, "%s: no host copy, free or scratch growth while recording%s%s", what, ne ? ": " : "", msg);
    int same = !memcmp(plain.w, graph.w, plain.n * sizeof(float));
    for (int s = 0; s < GSTEPS; s++) same &= plain.loss[s] == graph.loss[s] && plain.norm[s] == graph.norm[s];
    ok(same, "%s: %d steps with graphs and without: losses, norms and weights bit-identical", what, GSTEPS);
    double worst = 0;
    for (int s = 0; s < GSTEPS; s++) {
        double e = fabs(graph.loss[s] - ref.loss[s]) / fabs(ref.loss[s]);
        if (!(e <= worst)) worst = e;
    }
    ok(worst <= 1e-5, "%s: the %d losses match the CPU engine's (worst relative error %.2g, tol 1e-5)", what, GSTEPS,
       worst);
    double scale, werr = rel_err(graph.w, ref.w, ref.n, &scale, &(size_t){0});
    ok(werr <= TOL_MODEL, "%s: weights after %d steps vs the CPU engine: error %.2g of max %.2g (tol %.0e)", what,
       GSTEPS, werr, scale, TOL_MODEL);
    free(ref.w), free(plain.w), free(graph.w);
}

#ifndef ACH_CUDA_DEVICE /* the device build exits on such a copy */
/* A body that breaks the rule: it reads the device back. */
typedef struct {
    float *dev;
    float host;
} copy_body_ctx;
static void copy_body(void *p)
{
    copy_body_ctx *c = p;
    bk->zero(c->dev, 1);
    bk->to_host(&c->host, c->dev, sizeof c->host);
}

static void graph_rules(void)
{
    char msg[512];
    unsigned long rec0, rep0, rec1, rep1;
    copy_body_ctx c = {bk->alloc(sizeof(float)), 0};
    int key = 12345;
    GRAPH_STATS(&rec0, &rep0);
    bk->graph_run(&key, sizeof key, copy_body, &c); /* first call: runs directly */
    int ne1 = backend_errors(msg, sizeof msg);
    bk->graph_run(&key, sizeof key, copy_body, &c); /* second: recorded */
    int ne2 = backend_errors(msg, sizeof msg);
    ok(ne1 == 0 && ne2 == 1 && strstr(msg, "a copy to the host while recording a graph"),
       "a body that copies to the host runs directly, then is caught when recorded: %s", msg);
    bk->graph_run(&key, sizeof key, copy_body, &c); /* replayed */
    bk->release(bk->alloc(4));                      /* retires it */
    bk->graph_run(&key, sizeof key, copy_body, &c); /* runs directly again */
    GRAPH_STATS(&rec1, &rep1);
    ne1 = backend_errors(msg, sizeof msg);
    ok(rec1 - rec0 == 1 && rep1 - rep0 == 2 && ne1 == 0,
       "a release retires recorded graphs: %lu recorded (want 1), %lu replays (want 2: the recording's, one more)",
       rec1 - rec0, rep1 - rep0);
    bk->release(c.dev);
}
#endif

int main(void)
{
    bk = BACKEND();
#ifdef ACH_CUDA_DEVICE
    if (!bk) {
        printf("1..0 # SKIP no CUDA device: %s\n", ach_cuda_error());
        return 0;
    }
#endif
    ok(bk != NULL, "backend %s", bk ? bk->name : "(none)");
    rng_init(&rng, 2024, 0);

    /* the mixers' products (in_proj, x_proj, dt_proj with its strided input
     * and bias, out_proj, lm_head) at small sizes, then odd ones */
    matmul_case(70, 32, 65, 32, 0);
    matmul_case(65, 2, 64, 70, 1);
    matmul_case(37, 17, 33, 20, 1);
    matmul_case(13, 5, 3, 7, 0);
    matmul_case(1, 1, 1, 1, 0);
    matmul_case(0, 8, 9, 8, 1);

    conv_case(3, 8, 64, 4, 130);
    conv_case(5, 3, 19, 4, 23);
    conv_case(40, 1, 21, 2, 21);
    conv_case(2, 70, 20, 4, 24);
    conv_case(0, 8, 20, 4, 20);

    elementwise_cases(1);
    elementwise_cases(17);
    elementwise_cases(3001);

    gate_case(65, 64, 130);
    gate_case(7, 13, 20);

    norm_case(130, 32);
    norm_case(5, 13);
    norm_case(0, 32);

    ssd_case(4, 8, 1, 64, 32, 0);
    ssd_case(4, 8, 1, 64, 32, 1);
    ssd_case(5, 3, 2, 8, 5, 0);
    ssd_case(3, 17, 3, 20, 33, 1);
    ssd_case(6, 1, 1, 16, 16, 0);
    ssd_case(1, 60, 2, 4, 3, 1);  /* backward's matrices in global memory */
    ssd_case(1, 120, 1, 3, 2, 0); /* forward's too */

    scan_case(3, 8, 64, 16, 0);
    scan_case(3, 8, 64, 16, 1);
    scan_case(5, 5, 7, 13, 1);
    scan_case(2, 30, 3, 4, 0);
    scan_case(4, 1, 16, 17, 0);

    head_cases(40, 201);
    head_cases(5, 16);
    head_cases(3, 17);

    embedding_cases(150, 32, 7);
    embedding_cases(37, 5, 201);
    embedding_cases(1, 3, 1);

    layout_cases(5, 8, 32);
    layout_cases(70, 3, 7);

    sumsq_case(1);
    sumsq_case(20000);
    sumsq_case(70001);

    static const model_spec models[] = {
        {ARCH_MAMBA2, 2, 6, 8, 0, 0},
        {ARCH_MAMBA1, 2, 4, 8, 0, 0},
        {ARCH_MAMBA2, 1, 5, 8, 1, 1},
        {ARCH_MAMBA1, 1, 3, 6, 0, 1},
    };
    for (size_t i = 0; i < sizeof models / sizeof *models; i++) model_case(&models[i]);
    graph_case(ARCH_MAMBA2);
    graph_case(ARCH_MAMBA1);
#ifndef ACH_CUDA_DEVICE
    graph_rules();
#endif
#ifdef ACH_CUDA_DEVICE
    /* the paper's batch: long sums over rows (cuBLAS, the chunked reductions) */
    static const model_spec paper[] = {{ARCH_MAMBA2, 2, 2048, 8, 0, 0}, {ARCH_MAMBA1, 2, 512, 8, 0, 1}};
    for (size_t i = 0; i < sizeof paper / sizeof *paper; i++) model_case(&paper[i]);
#endif
    return done_testing();
}
