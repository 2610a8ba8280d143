/* The fast kernels (kernels_fast.c) against the reference ach_cpu_kernels,
 * kernel by kernel on random inputs at awkward sizes (rows not a multiple of
 * the 256-row task, widths not multiples of the SIMD width, strided inputs
 * and outputs as the mixers use them), for every SIMD instance this CPU can
 * run; then whole training steps (forward + backward + AdamW) against the
 * reference, which for Mamba-2 exercises the fused residual block
 * (mamba2_block_*: paper shape, odd widths, partial blocks, L > 256), and
 * their bit-identity at 1, 2 and 3 threads.
 *
 * Tolerances. The fast kernels compute the same sums as the reference in
 * another order (FMA, vector partial sums, per-task partial sums) and use a
 * polynomial exp (about 2 ulp). float32 rounding is 2^-24 = 6e-8 per
 * operation; a sum of n terms reassociated moves by at most ~n eps of the
 * sum of |terms| and typically sqrt(n) eps. We compare every output tensor
 * against the reference with |got - want| <= tol * max|want| (a normwise
 * bound, so cancellation in single elements does not fail the test):
 *   TOL_EW  = 2e-6 for elementwise kernels (a few roundings plus exp's ulps),
 *   TOL_SUM = 3e-5 for kernels that sum up to a few thousand terms
 *             (matmuls, conv, norms, scans: n eps with n ~ 500 is 3e-5;
 *             row reductions of up to 1000 rows stay well inside it as the
 *             error grows like sqrt(n)),
 *   TOL_MODEL = 2e-4 for whole-model gradients (errors compound through
 *             2 layers and the chain rule; measured <= 6e-6).
 * Bit-identity across thread counts is exact (memcmp). */
#include <stdlib.h>
#include <string.h>

#include "init.h"
#include "model.h"
#include "optim.h"
#include "rng.h"
#include "step.h"
#include "tap.h"
#include "threads.h"

#define TOL_EW 2e-6
#define TOL_SUM 3e-5
#define TOL_MODEL 2e-4


static ach_rng rng;

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

/* ---- the harness: a case has outputs (with initial contents, since
 * backward kernels accumulate) and a run function calling one kernel ---- */
#define MAXOUT 8
typedef struct tcase tcase;
struct tcase {
    char name[160];
    int nout;
    const char *oname[MAXOUT];
    float *out[MAXOUT], *init[MAXOUT];
    size_t n[MAXOUT];
    double tol;
    void (*run)(const ach_kernels *k, tcase *c);
    /* inputs and sizes, used by run */
    float *in[8];
    int *iin[2];
    int s[10];
};

static void add_out(tcase *c, const char *name, size_t n, int random_init)
{
    int i = c->nout++;
    c->oname[i] = name;
    c->n[i] = n;
    c->init[i] = random_init ? rnd(n, -1, 1) : calloc(n ? n : 1, sizeof(float));
    c->out[i] = malloc((n ? n : 1) * sizeof(float));
}

static void run_into(const ach_kernels *k, tcase *c, float **save)
{
    for (int i = 0; i < c->nout; i++) memcpy(c->out[i], c->init[i], c->n[i] * sizeof(float));
    c->run(k, c);
    for (int i = 0; i < c->nout; i++) {
        save[i] = malloc((c->n[i] ? c->n[i] : 1) * sizeof(float));
        memcpy(save[i], c->out[i], c->n[i] * sizeof(float));
    }
}

static void free_saved(tcase *c, float **s)
{
    for (int i = 0; i < c->nout; i++) free(s[i]);
}

static int n_isas;
static const char *isas[3];
static const ach_kernels *isa_k[3];

static void check(tcase *c)
{
    float *ref[MAXOUT];
    ach_threads_set(1);
    run_into(&ach_cpu_kernels, c, ref);
    for (int is = 0; is < n_isas; is++) {
        float *one[MAXOUT], *more[MAXOUT];
        ach_threads_set(1);
        run_into(isa_k[is], c, one);
        for (int i = 0; i < c->nout; i++) {
            double scale = 0, err = 0;
            size_t worst = 0;
            for (size_t j = 0; j < c->n[i]; j++) {
                double w = ref[i][j], d = (double)one[i][j] - w;
                if (fabs(w) > scale) scale = fabs(w);
                if (!(fabs(d) <= err)) err = fabs(d), worst = j; /* NaN counts as worst */
            }
            int good = err <= c->tol * (scale > 0 ? scale : 1e-30) || (scale == 0 && err == 0);
            ok(good, "%s [%s] %s: error %.2g of max %.3g (tol %.0e)", c->name, isas[is], c->oname[i],
               scale > 0 ? err / scale : err, scale, c->tol);
            if (!good) diag("   at %zu: got %.9g want %.9g", worst, one[i][worst], ref[i][worst]);
        }
        int same = 1;
        for (int nt = 2; nt <= 3; nt++) {
            ach_threads_set(nt);
            run_into(isa_k[is], c, more);
            for (int i = 0; i < c->nout; i++) same &= !memcmp(one[i], more[i], c->n[i] * sizeof(float));
            free_saved(c, more);
        }
        ok(same, "%s [%s]: bit-identical at 1, 2 and 3 threads", c->name, isas[is]);
        free_saved(c, one);
    }
    free_saved(c, ref);
    for (int i = 0; i < c->nout; i++) free(c->out[i]), free(c->init[i]);
    for (int i = 0; i < 8; i++) free(c->in[i]);
    for (int i = 0; i < 2; i++) free(c->iin[i]);
}

/* ---- matmul ---- */
static void run_mmf(const ach_kernels *k, tcase *c)
{
    k->matmul_forward(c->out[0], c->in[0], c->s[3], c->in[1], c->in[2], c->s[0], c->s[1], c->s[2]);
}
static void run_mmb(const ach_kernels *k, tcase *c)
{
    k->matmul_backward(c->out[0], c->out[1], c->s[4] ? c->out[2] : NULL, c->in[3], c->in[0], c->s[3], c->in[1],
                       c->s[0], c->s[1], c->s[2]);
}

static void matmul_case(int M, int K, int N, int ldi, int bias)
{
    tcase c = {.tol = TOL_SUM, .run = run_mmf, .s = {M, K, N, ldi, bias}};
    snprintf(c.name, sizeof c.name, "matmul_forward M %d K %d N %d ldi %d%s", M, K, N, ldi, bias ? " bias" : "");
    c.in[0] = rnd((size_t)M * ldi, -1, 1), c.in[1] = rnd((size_t)N * K, -1, 1);
    c.in[2] = bias ? rnd(N, -1, 1) : NULL;
    add_out(&c, "out", (size_t)M * N, 1);
    check(&c);

    tcase b = {.tol = TOL_SUM, .run = run_mmb, .s = {M, K, N, ldi, bias}};
    snprintf(b.name, sizeof b.name, "matmul_backward M %d K %d N %d ldi %d%s", M, K, N, ldi, bias ? " dbias" : "");
    b.in[0] = rnd((size_t)M * ldi, -1, 1), b.in[1] = rnd((size_t)N * K, -1, 1), b.in[3] = rnd((size_t)M * N, -1, 1);
    add_out(&b, "dinp", (size_t)M * ldi, 1);
    add_out(&b, "dw", (size_t)N * K, 1);
    add_out(&b, "dbias", bias ? (size_t)N : 0, 1);
    check(&b);
}

/* ---- conv1d ---- */
static void run_convf(const ach_kernels *k, tcase *c)
{
    k->conv1d_forward(c->out[0], c->in[0], c->s[4], c->in[1], c->in[2], c->s[0], c->s[1], c->s[2], c->s[3]);
}
static void run_convb(const ach_kernels *k, tcase *c)
{
    k->conv1d_backward(c->out[0], c->out[1], c->out[2], c->in[3], c->in[0], c->s[4], c->in[1], c->s[0], c->s[1],
                       c->s[2], c->s[3]);
}

static void conv_case(int B, int L, int C, int K, int ldi)
{
    size_t R = (size_t)B * L;
    tcase f = {.tol = TOL_SUM, .run = run_convf, .s = {B, L, C, K, ldi}};
    snprintf(f.name, sizeof f.name, "conv1d_forward B %d L %d C %d K %d ldi %d", B, L, C, K, ldi);
    f.in[0] = rnd(R * ldi, -1, 1), f.in[1] = rnd((size_t)C * K, -1, 1), f.in[2] = rnd(C, -1, 1);
    add_out(&f, "out", R * C, 1);
    check(&f);
    tcase b = {.tol = TOL_SUM, .run = run_convb, .s = {B, L, C, K, ldi}};
    snprintf(b.name, sizeof b.name, "conv1d_backward B %d L %d C %d K %d ldi %d", B, L, C, K, ldi);
    b.in[0] = rnd(R * ldi, -1, 1), b.in[1] = rnd((size_t)C * K, -1, 1), b.in[3] = rnd(R * C, -1, 1);
    add_out(&b, "dinp", R * ldi, 1);
    add_out(&b, "dw", (size_t)C * K, 1);
    add_out(&b, "dbias", C, 1);
    check(&b);
}

/* ---- elementwise ---- */
static void run_siluf(const ach_kernels *k, tcase *c) { k->silu_forward(c->out[0], c->in[0], (size_t)c->s[0]); }
static void run_silub(const ach_kernels *k, tcase *c)
{
    k->silu_backward(c->out[0], c->in[1], c->in[0], (size_t)c->s[0]);
}
static void run_add(const ach_kernels *k, tcase *c) { k->add_inplace(c->out[0], c->in[0], (size_t)c->s[0]); }
static void run_zero(const ach_kernels *k, tcase *c) { k->zero(c->out[0], (size_t)c->s[0]); }

static float *wide_inputs(size_t n)
{
    float *x = rnd(n, -8, 8);
    static const float special[] = {0.0f, -0.0f, 20.5f, -20.5f, 87.0f, -87.0f, 95.0f, -95.0f, 1e-30f, -1e-30f};
    for (size_t i = 0; i < n && i < sizeof special / sizeof *special; i++) x[i * 7 % n] = special[i];
    return x;
}

static void elementwise_cases(int n)
{
    tcase f = {.tol = TOL_EW, .run = run_siluf, .s = {n}};
    snprintf(f.name, sizeof f.name, "silu_forward n %d", n);
    f.in[0] = wide_inputs(n);
    add_out(&f, "out", n, 1);
    check(&f);
    tcase b = {.tol = TOL_EW, .run = run_silub, .s = {n}};
    snprintf(b.name, sizeof b.name, "silu_backward n %d", n);
    b.in[0] = wide_inputs(n), b.in[1] = rnd(n, -1, 1);
    add_out(&b, "dinp", n, 1);
    check(&b);
    tcase a = {.tol = 0, .run = run_add, .s = {n}};
    snprintf(a.name, sizeof a.name, "add_inplace n %d", n);
    a.in[0] = rnd(n, -1, 1);
    add_out(&a, "x", n, 1);
    check(&a);
    tcase z = {.tol = 0, .run = run_zero, .s = {n}};
    snprintf(z.name, sizeof z.name, "zero n %d", n);
    add_out(&z, "x", n, 1);
    check(&z);
}

static void run_gatef(const ach_kernels *k, tcase *c)
{
    k->gate_forward(c->out[0], c->in[0], c->in[1], c->s[2], c->s[0], c->s[1]);
}
static void run_gateb(const ach_kernels *k, tcase *c)
{
    k->gate_backward(c->out[0], c->out[1], c->in[2], c->in[0], c->in[1], c->s[2], c->s[0], c->s[1]);
}

static void gate_case(int rows, int C, int ldz)
{
    tcase f = {.tol = TOL_EW, .run = run_gatef, .s = {rows, C, ldz}};
    snprintf(f.name, sizeof f.name, "gate_forward rows %d C %d ldz %d", rows, C, ldz);
    f.in[0] = rnd((size_t)rows * C, -2, 2), f.in[1] = wide_inputs((size_t)rows * ldz);
    add_out(&f, "out", (size_t)rows * C, 1);
    check(&f);
    tcase b = {.tol = TOL_EW, .run = run_gateb, .s = {rows, C, ldz}};
    snprintf(b.name, sizeof b.name, "gate_backward rows %d C %d ldz %d", rows, C, ldz);
    b.in[0] = rnd((size_t)rows * C, -2, 2), b.in[1] = wide_inputs((size_t)rows * ldz);
    b.in[2] = rnd((size_t)rows * C, -1, 1);
    add_out(&b, "dy", (size_t)rows * C, 1);
    add_out(&b, "dz", (size_t)rows * ldz, 1);
    check(&b);
}

/* ---- RMSNorm ---- */
static void run_normf(const ach_kernels *k, tcase *c)
{
    k->rmsnorm_forward(c->out[0], c->out[1], c->in[0], c->in[1], c->s[0], c->s[1], 1e-5f);
}
static void run_normb(const ach_kernels *k, tcase *c)
{
    k->rmsnorm_backward(c->out[0], c->out[1], c->in[2], c->in[0], c->in[1], c->in[3], c->s[0], c->s[1]);
}

static void norm_case(int rows, int C)
{
    tcase f = {.tol = TOL_SUM, .run = run_normf, .s = {rows, C}};
    snprintf(f.name, sizeof f.name, "rmsnorm_forward rows %d C %d", rows, C);
    f.in[0] = rnd((size_t)rows * C, -2, 2), f.in[1] = rnd(C, 0.5, 1.5);
    add_out(&f, "out", (size_t)rows * C, 1);
    add_out(&f, "rstd", rows, 1);
    check(&f);
    tcase b = {.tol = TOL_SUM, .run = run_normb, .s = {rows, C}};
    snprintf(b.name, sizeof b.name, "rmsnorm_backward rows %d C %d", rows, C);
    b.in[0] = rnd((size_t)rows * C, -2, 2), b.in[1] = rnd(C, 0.5, 1.5), b.in[2] = rnd((size_t)rows * C, -1, 1);
    b.in[3] = rnd(rows, 0.5, 2);
    add_out(&b, "dinp", (size_t)rows * C, 1);
    add_out(&b, "dw", C, 1);
    check(&b);
}

/* ---- Mamba-2 SSD, laid out as mamba2.c does: x | B | C in one buffer of
 * row stride ldx, dt a column of a wider buffer ---- */
enum { SB, SL, SH, SP, SN, SLDX, SLDT };
static void run_ssdf(const ach_kernels *k, tcase *c)
{
    int Di = c->s[SH] * c->s[SP], N = c->s[SN];
    float *xbc = c->in[0];
    k->mamba2_ssd_forward(c->out[0], xbc, xbc + Di, xbc + Di + N, c->s[SLDX], c->in[1] + 3, c->s[SLDT], c->in[2],
                          c->in[3], c->in[4], NULL, c->s[SB], c->s[SL], c->s[SH], c->s[SP], N, c->in[5]);
}
static void run_ssdb(const ach_kernels *k, tcase *c)
{
    int Di = c->s[SH] * c->s[SP], N = c->s[SN];
    float *xbc = c->in[0], *dxbc = c->out[0];
    k->mamba2_ssd_backward(dxbc, dxbc + Di, dxbc + Di + N, c->out[1] + 3, c->out[2], c->out[3], c->out[4], c->in[6],
                           xbc, xbc + Di, xbc + Di + N, c->s[SLDX], c->in[1] + 3, c->s[SLDT], c->in[2], c->in[3],
                           c->in[4], NULL, c->s[SB], c->s[SL], c->s[SH], c->s[SP], N, c->in[5]);
}

static void ssd_inputs(tcase *c)
{
    int B = c->s[SB], L = c->s[SL], H = c->s[SH];
    size_t R = (size_t)B * L;
    c->in[0] = rnd(R * c->s[SLDX], -1, 1);
    c->in[1] = rnd(R * c->s[SLDT], -4, 1);
    c->in[1][3] = 25; /* one delta past softplus's threshold */
    c->in[2] = rnd(H, -1, 1);
    c->in[3] = rnd(H, 0, 2.7);
    c->in[4] = rnd(H, 0.5, 1.5);
    c->in[5] = calloc(mamba2_ssd_work(L), sizeof(float));
}

static void ssd_case(int B, int L, int H, int P, int N)
{
    int ldx = H * P + 2 * N + 3, ldt = H + 5;
    size_t R = (size_t)B * L;
    tcase f = {.tol = TOL_SUM, .run = run_ssdf, .s = {B, L, H, P, N, ldx, ldt}};
    snprintf(f.name, sizeof f.name, "mamba2_ssd_forward B %d L %d H %d P %d N %d", B, L, H, P, N);
    ssd_inputs(&f);
    add_out(&f, "y", R * H * P, 1);
    check(&f);
    tcase b = {.tol = TOL_SUM, .run = run_ssdb, .s = {B, L, H, P, N, ldx, ldt}};
    snprintf(b.name, sizeof b.name, "mamba2_ssd_backward B %d L %d H %d P %d N %d", B, L, H, P, N);
    ssd_inputs(&b);
    b.in[6] = rnd(R * H * P, -1, 1);
    add_out(&b, "dx|dB|dC", R * ldx, 1);
    add_out(&b, "ddt", R * ldt, 1);
    add_out(&b, "ddt_bias", H, 1);
    add_out(&b, "dA_log", H, 1);
    add_out(&b, "dD", H, 1);
    check(&b);
}

/* ---- Mamba-1 scan: dt_r | B | C in one buffer of row stride X ---- */
enum { MB, ML, MDI, MN, MX };
static void run_scanf(const ach_kernels *k, tcase *c)
{
    int N = c->s[MN];
    k->mamba1_scan_forward(c->out[0], c->in[0], c->in[1], c->in[2], c->in[3] + 2, c->in[3] + 2 + N, c->s[MX],
                           c->in[4], NULL, c->s[MB], c->s[ML], c->s[MDI], N, c->in[5]);
}
static void run_scanb(const ach_kernels *k, tcase *c)
{
    int N = c->s[MN];
    k->mamba1_scan_backward(c->out[0], c->out[1], c->out[2], c->out[3] + 2, c->out[3] + 2 + N, c->out[4], c->in[6],
                            c->in[0], c->in[1], c->in[2], c->in[3] + 2, c->in[3] + 2 + N, c->s[MX], c->in[4],
                            NULL, c->s[MB], c->s[ML], c->s[MDI], N, c->in[5]);
}

static void scan_inputs(tcase *c)
{
    int B = c->s[MB], L = c->s[ML], Di = c->s[MDI], N = c->s[MN];
    size_t R = (size_t)B * L;
    c->in[0] = rnd(R * Di, -1, 1);
    c->in[1] = rnd(R * Di, -5, 1);
    c->in[1][1] = 22;
    c->in[2] = rnd((size_t)Di * N, 0, 2.7);
    c->in[3] = rnd(R * c->s[MX], -1, 1);
    c->in[4] = rnd(Di, 0.5, 1.5);
    c->in[5] = calloc(mamba1_scan_work(L, N), sizeof(float));
}

static void scan_case(int B, int L, int Di, int N)
{
    int X = 2 + 2 * N + 1;
    size_t R = (size_t)B * L;
    tcase f = {.tol = TOL_SUM, .run = run_scanf, .s = {B, L, Di, N, X}};
    snprintf(f.name, sizeof f.name, "mamba1_scan_forward B %d L %d Di %d N %d", B, L, Di, N);
    scan_inputs(&f);
    add_out(&f, "y", R * Di, 1);
    check(&f);
    tcase b = {.tol = TOL_SUM, .run = run_scanb, .s = {B, L, Di, N, X}};
    snprintf(b.name, sizeof b.name, "mamba1_scan_backward B %d L %d Di %d N %d", B, L, Di, N);
    scan_inputs(&b);
    b.in[6] = rnd(R * Di, -1, 1);
    add_out(&b, "du", R * Di, 1);
    add_out(&b, "ddt", R * Di, 1);
    add_out(&b, "dA_log", (size_t)Di * N, 1);
    add_out(&b, "dxdbl", R * X, 1);
    add_out(&b, "dD", Di, 1);
    check(&b);
}

/* ---- cross-entropy, embedding, AdamW ---- */
static void run_cef(const ach_kernels *k, tcase *c)
{
    k->crossentropy_forward(c->out[0], c->out[1], c->in[0], c->iin[0], c->s[0], c->s[1]);
}
static void run_ceb(const ach_kernels *k, tcase *c)
{
    k->crossentropy_backward(c->out[0], c->in[0], c->iin[0], c->s[0], c->s[1], 1.0f / c->s[0]);
}
static void run_embb(const ach_kernels *k, tcase *c)
{
    k->embedding_backward(c->out[0], c->in[0], c->iin[0], c->s[0], c->s[1], c->s[2]);
}
static void run_adamw(const ach_kernels *k, tcase *c)
{
    k->adamw_update(c->out[0], c->out[1], c->out[2], c->in[0], (size_t)c->s[0], 0.7f, 2.5e-4f, 0.01f, 0.9f, 0.999f,
                    1e-8f, 2.5e-3f, 0.0447f);
}

static void misc_cases(int B, int V)
{
    tcase f = {.tol = TOL_EW * 10, .run = run_cef, .s = {B, V}};
    snprintf(f.name, sizeof f.name, "crossentropy_forward B %d V %d", B, V);
    f.in[0] = rnd((size_t)B * V, -30, -5); /* all negative: padding lanes must not win the max */
    f.iin[0] = rnd_int(B, V);
    add_out(&f, "losses", B, 1);
    add_out(&f, "probs", (size_t)B * V, 1);
    check(&f);
    tcase b = {.tol = 0, .run = run_ceb, .s = {B, V}};
    snprintf(b.name, sizeof b.name, "crossentropy_backward B %d V %d (exact)", B, V);
    b.in[0] = rnd((size_t)B * V, 0, 1);
    b.iin[0] = rnd_int(B, V);
    add_out(&b, "dlogits", (size_t)B * V, 1);
    check(&b);
    tcase e = {.tol = 0, .run = run_embb, .s = {B * 8, 20 + V % 17, V}};
    snprintf(e.name, sizeof e.name, "embedding_backward n %d D %d (exact)", B * 8, e.s[1]);
    e.in[0] = rnd((size_t)e.s[0] * e.s[1], -1, 1);
    e.iin[0] = rnd_int(e.s[0], V);
    add_out(&e, "dwte", (size_t)V * e.s[1], 1);
    check(&e);
    tcase a = {.tol = 0, .run = run_adamw, .s = {B * 3 + 1}};
    snprintf(a.name, sizeof a.name, "adamw_update n %d (exact)", a.s[0]);
    a.in[0] = rnd(a.s[0], -1, 1);
    add_out(&a, "w", a.s[0], 1);
    add_out(&a, "m", a.s[0], 1);
    add_out(&a, "v", a.s[0], 0);
    for (int i = 0; i < a.s[0]; i++) a.init[2][i] = (float)(1e-4 * rng_uniform(&rng));
    check(&a);
}

/* ---- whole training steps ---- */
typedef struct {
    double loss[2], norm[2];
    float *w, *g;
    size_t n;
} step_result;

/* model shape: the paper's (D 0), else d_model D, headdim P, d_state N,
 * d_conv 3 and 23 tokens: a small odd one that hits every SIMD tail, or
 * whole vectors (the fused stack's last block then skips what the loss
 * does not read, as at the paper's shape) */
static struct {
    int D, P, N;
} shape;
/* layers blocked (docs/science.md §4.3) in every step, at every third position: the
 * fast kernels then run only the layers above the last blocked one fused */
static uint64_t block_layers;
/* the positional encoding: with none, the fused pass runs its first block's
 * pre-norm and in_proj once per distinct token (m2_keys); with one, per row */
static ach_pos_enc pos_enc;

/* Two training steps; via_step: by ach_train_step (with the fast kernels,
 * Mamba-2's last block and head in one pass), else a lean forward, the
 * backward and the optimizer called one after the other. */
static step_result train(const ach_kernels *k, ach_arch arch, int layers, int B, int L, int threads, int via_step)
{
    ach_config cfg;
    ach_model m;
    ach_optim o;
    ach_optim_cfg oc;
    char err[256];
    step_result r = {{0}, {0}, NULL, NULL, 0};
    cfg_default(&cfg, arch);
    cfg.n_layer = layers;
    cfg.seed = 3;
    cfg.gamma = 0.5;
    cfg.pos_enc = pos_enc;
    if (pos_enc == POS_LEARNED) cfg.pos_max_len = L;
    if (shape.D)
        cfg.d_model = shape.D, cfg.headdim = shape.P, cfg.d_state = shape.N, cfg.d_conv = 3, cfg.vocab_size = 23;
    ach_threads_set(threads);
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
    for (int i = 0; i < B * L; i++) mask[i] = i % 3 == 1;
    if (block_layers) ach_model_set_block(&m, mask, B, L, block_layers);
    for (int s = 0; s < 2; s++) {
        for (int i = 0; i < B * L; i++) tok[i] = (int)rng_below(&tr, cfg.vocab_size);
        for (int b = 0; b < B; b++) lab[b] = (int)rng_below(&tr, cfg.vocab_size);
        if (via_step) {
            r.loss[s] = ach_train_step(&m, &o, tok, lab, B, L, 1e-3, &r.norm[s]);
        } else {
            r.loss[s] = ach_model_forward_lean(&m, tok, lab, B, L);
            ach_model_backward(&m);
            r.norm[s] = ach_optim_step(&o, &m, 1e-3);
        }
        if (s == 1) { /* the second step's gradients (the update leaves them) */
            r.g = malloc(m.nweights * sizeof *r.g);
            memcpy(r.g, m.g, m.nweights * sizeof *r.g);
        }
    }
    r.n = m.nweights;
    r.w = malloc(m.nweights * sizeof *r.w);
    memcpy(r.w, m.w, m.nweights * sizeof *r.w);
    free(tok);
    free(lab);
    free(mask);
    ach_optim_free(&o, &m);
    ach_model_free(&m);
    return r;
}

static void model_case(ach_arch arch, int layers, int B, int L)
{
    static const char *how[] = {"forward, backward, optimizer", "ach_train_step"};
    const char *an = arch == ARCH_MAMBA1 ? "mamba1" : "mamba2";
    step_result ref = train(&ach_cpu_kernels, arch, layers, B, L, 1, 0);
    if (!ref.w) {
        ok(0, "%s: model runs", an);
        return;
    }
    for (int is = 0; is < n_isas; is++)
        for (int via = 0; via < 2; via++) {
            step_result one = train(isa_k[is], arch, layers, B, L, 1, via);
            size_t n = ref.n;
            is_close(one.loss[0], ref.loss[0], 0, 1e-5, "train step loss vs reference");
            is_close(one.loss[1], ref.loss[1], 0, 1e-5, "second step's loss vs reference");
            double gmax = 0, gerr = 0, wmax = 0, werr = 0;
            for (size_t i = 0; i < n; i++) {
                gmax = fmax(gmax, fabs(ref.g[i])), gerr = fmax(gerr, fabs((double)one.g[i] - ref.g[i]));
                wmax = fmax(wmax, fabs(ref.w[i])), werr = fmax(werr, fabs((double)one.w[i] - ref.w[i]));
            }
            ok(gerr <= TOL_MODEL * gmax && werr <= TOL_MODEL * wmax,
               "%s D %d %d layers%s%s B %d L %d [%s, %s]: gradients within %.1g (of max %.3g), weights after 2 "
               "AdamW steps within %.1g of the reference",
               an, shape.D ? shape.D : 32, layers, block_layers ? " (layer 0 blocked)" : "",
               pos_enc ? " (learned positions)" : "", B, L, isas[is], how[via],
               gmax > 0 ? gerr / gmax : gerr, gmax,
               wmax > 0 ? werr / wmax : werr);
            int same = 1;
            for (int nt = 2; nt <= 3; nt++) {
                step_result more = train(isa_k[is], arch, layers, B, L, nt, via);
                same &= more.w && more.loss[0] == one.loss[0] && more.loss[1] == one.loss[1] &&
                        more.norm[1] == one.norm[1] && !memcmp(more.g, one.g, n * sizeof(float)) &&
                        !memcmp(more.w, one.w, n * sizeof(float));
                free(more.w), free(more.g);
            }
            ok(same, "%s %d layers [%s, %s]: losses, gradients and weights bit-identical at 1, 2 and 3 threads", an,
               layers, isas[is], how[via]);
            free(one.w), free(one.g);
        }
    free(ref.w), free(ref.g);
}

int main(void)
{
    static const char *all[] = {"avx512", "avx2", "generic"};
    for (int i = 0; i < 3; i++) {
        const ach_kernels *k = ach_fast_kernels_isa(all[i]);
        if (k) isas[n_isas] = all[i], isa_k[n_isas++] = k;
        else diag("SIMD instance %s: not supported by this CPU, skipped", all[i]);
    }
    ok(ach_fast_kernels() == isa_k[0], "ach_fast_kernels() is the best instance (%s)", ach_fast_kernels()->name);
    rng_init(&rng, 2024, 0);

    /* the paper's shapes (in_proj, out_proj, lm_head, x_proj, dt_proj) at
     * row counts off the 256-row task, then odd sizes */
    matmul_case(600, 32, 385, 32, 0);
    matmul_case(531, 64, 32, 64, 0);
    matmul_case(300, 32, 201, 32, 0);
    matmul_case(517, 64, 258, 64, 0);
    matmul_case(517, 2, 64, 258, 1);
    matmul_case(37, 17, 33, 20, 1);
    matmul_case(13, 5, 3, 7, 1);
    matmul_case(1, 1, 1, 1, 0);
    matmul_case(0, 8, 9, 8, 1);
    matmul_case(260, 100, 70, 101, 1);

    conv_case(70, 8, 320, 4, 385);
    conv_case(33, 8, 64, 4, 128);
    conv_case(37, 8, 21, 4, 27); /* the paper's L and K, a width with a tail */
    conv_case(5, 3, 19, 4, 23);
    conv_case(40, 1, 21, 2, 21);
    conv_case(2, 300, 20, 4, 24);
    conv_case(0, 8, 20, 4, 20);

    elementwise_cases(1);
    elementwise_cases(17);
    elementwise_cases(200003);

    gate_case(600, 64, 385);
    gate_case(7, 13, 20);

    norm_case(700, 32);
    norm_case(300, 64);
    norm_case(5, 13);
    norm_case(0, 32);

    ssd_case(70, 8, 1, 64, 128);
    ssd_case(5, 3, 2, 8, 5);
    ssd_case(3, 17, 3, 20, 33);
    ssd_case(40, 1, 1, 16, 16);
    ssd_case(2, 300, 1, 4, 3);

    scan_case(36, 8, 64, 128);
    scan_case(5, 5, 7, 13);
    scan_case(2, 300, 3, 4);
    scan_case(40, 1, 16, 17);

    misc_cases(300, 201);
    misc_cases(5, 16);
    misc_cases(3, 17);

    model_case(ARCH_MAMBA2, 2, 300, 8);
    model_case(ARCH_MAMBA2, 1, 150, 8); /* one block: the last, in 128-row sub-blocks */
    model_case(ARCH_MAMBA1, 2, 100, 8);
    block_layers = 1; /* layer 0 composed, layers 1 and 2 fused */
    model_case(ARCH_MAMBA2, 3, 100, 8);
    block_layers = 0;
    pos_enc = POS_LEARNED; /* layer 0's input rows differ by position: no keys */
    model_case(ARCH_MAMBA2, 2, 100, 8);
    pos_enc = POS_NONE;
    /* the fused Mamba-2 mixer at odd widths, blocks of 15 sequences (L 17)
     * with a partial last block, and sequences longer than a block (L 300) */
    shape.D = 12, shape.P = 8, shape.N = 5;
    model_case(ARCH_MAMBA2, 2, 40, 17);
    model_case(ARCH_MAMBA2, 1, 3, 300);
    /* whole vectors, 2 heads, d_conv 3: sequences longer and shorter than
     * the conv window, and of one token */
    shape.D = 16, shape.P = 16, shape.N = 16;
    model_case(ARCH_MAMBA2, 2, 37, 5);
    model_case(ARCH_MAMBA2, 2, 20, 2);
    model_case(ARCH_MAMBA2, 2, 9, 1);
    return done_testing();
}
