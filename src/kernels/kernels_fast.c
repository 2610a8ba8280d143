/* The fast CPU backend: ach_fast_kernels() is ach_cpu_kernels with the
 * expensive kernels replaced by SIMD, multi-threaded versions (float32
 * only; the float64 build returns the reference table), plus the fused
 * Mamba-2 residual block (mamba2_block_*), which runs a whole layer per
 * block of rows in cache and recomputes its activations in the backward
 * pass instead of storing them (see "the fused Mamba-2 block" below).
 *
 * Determinism. Results are bit-identical for any number of threads:
 * - work is split into tasks by fixed sizes that depend only on the shapes
 *   (CH_ROWS rows, ch_seqs(L) sequences, CH_ELEMS elements), never on the
 *   thread count; which thread runs a task does not matter;
 * - every reduction over rows (weight, bias, conv, norm, A_log, D, dt_bias
 *   gradients) is computed per task into that task's own slot of a partial
 *   buffer, then the partials are summed in task order;
 * - each output element is computed by the same instruction sequence
 *   wherever it falls (tails use masked vector loads and stores, or a padded
 *   copy run through the same micro-kernel), so block boundaries do not
 *   change the arithmetic.
 * They differ from the reference kernels by float32 reassociation (FMA,
 * vector partial sums) and by a polynomial exp (about 2 ulp): see
 * t/kernels_fast.c for the tolerances.
 *
 * SIMD. The kernel bodies are written once (the second half of this file,
 * included three times by the first half) with GCC vector extensions of VL
 * floats and a few per-ISA helpers: AVX-512 (VL 16), AVX2+FMA (VL 8) and
 * portable (VL 4, plain C, any GCC target). The instance is chosen at run
 * time with __builtin_cpu_supports, so the default build needs no -march.
 *
 * Scratch. Packed weights, partial sums and per-thread temporaries live in
 * process-wide buffers that grow on first use of a larger shape and are
 * reused after (no allocation in a steady training loop). Kernels take a
 * process-wide lock, so the table may be used from several host threads
 * (their kernels then run one at a time). */
#include "kernels.h"

#ifdef ACH_F64
const ach_kernels *ach_fast_kernels(void) { return &ach_cpu_kernels; }
const ach_kernels *ach_fast_kernels_isa(const char *isa) { return NULL; }
void ach_fast_rates(const ach_kernels *k, double *exps_per_s, double *fmas_per_s) { *exps_per_s = *fmas_per_s = 0; }
#elif !defined(ACH_FAST_BODY)

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mathfn.h"
#include "threads.h"

#if defined(__x86_64__) || defined(__i386__)
#define ACH_X86 1
#include <immintrin.h>
#endif

#define CONV_LMAX 16    /* sequence lengths the conv backward may keep in registers */
#define CH_ROWS 256     /* rows per task (matmuls, norms, gates) */
#define CH_ELEMS 65536  /* elements per task (elementwise kernels) */
static int ch_seqs(int L) { return L >= CH_ROWS ? 1 : CH_ROWS / L; } /* sequences per task */
static int ceil_div(long a, long b) { return (int)((a + b - 1) / b); }
static int round_up(int a, int b) { return (a + b - 1) / b * b; }

/* ---- scratch ---- */
typedef struct {
    float *p;
    size_t n;
} fbuf;
/* per call; a kernel working on several layers at once uses layer l's
 * slots from l * S_COUNT */
enum { S_PACK, S_BIAS, S_PACK2, S_PACK3, S_PACK4, S_PACK5, S_PART, S_PART2, S_PART3, S_PART4, S_PART5, S_PART6,
       S_MISC, S_COUNT };
enum { T_Y, T_W1, T_W2, T_W3, T_W4, T_F, T_H, T_G, T_KEYS, T_PART, T_COUNT }; /* per thread */
static pthread_mutex_t fast_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t order_mu = PTHREAD_MUTEX_INITIALIZER; /* m2_task_done's merge order */
static fbuf *shared_bufs;
static int nshared_bufs;
static fbuf (*thread_bufs)[T_COUNT];
static int nthread_bufs;

static float *grow(fbuf *b, size_t n)
{
    if (n > b->n) {
        size_t bytes = (n * sizeof(float) + 64 + 63) & ~(size_t)63; /* +64: vector over-reads stay inside */
        free(b->p);
        b->p = aligned_alloc(64, bytes);
        if (!b->p) {
            fprintf(stderr, "achilles: out of memory for kernel scratch (%zu bytes)\n", bytes);
            abort();
        }
        b->n = n;
    }
    return b->p;
}
static float *sbuf(int slot, size_t n)
{
    if (slot >= nshared_bufs) {
        int m = slot + 1 > 2 * nshared_bufs ? slot + 1 : 2 * nshared_bufs;
        fbuf *nb = realloc(shared_bufs, (size_t)m * sizeof *nb);
        if (!nb) {
            fprintf(stderr, "achilles: out of memory for kernel scratch\n");
            abort();
        }
        memset(nb + nshared_bufs, 0, (size_t)(m - nshared_bufs) * sizeof *nb);
        shared_bufs = nb, nshared_bufs = m;
    }
    return grow(&shared_bufs[slot], n);
}
static float *tbuf(int slot, size_t n) { return grow(&thread_bufs[ach_thread_index()][slot], n); }

/* Takes the lock and makes sure every pool thread has its scratch slots. */
static void enter(void)
{
    pthread_mutex_lock(&fast_mu);
    int n = ach_threads_count();
    if (n > nthread_bufs) {
        fbuf(*nb)[T_COUNT] = realloc(thread_bufs, (size_t)n * sizeof *nb);
        if (!nb) {
            fprintf(stderr, "achilles: out of memory for kernel scratch\n");
            abort();
        }
        memset(nb + nthread_bufs, 0, (size_t)(n - nthread_bufs) * sizeof *nb);
        thread_bufs = nb;
        nthread_bufs = n;
    }
}
static void leave(void) { pthread_mutex_unlock(&fast_mu); }

/* ---- task contexts (shared by the ISA instances) ---- */
typedef struct {
    float *C;
    const float *A, *B, *init;
    int ldc, lda, ldb, I, J, M, add;
} gemm_ctx;

typedef struct {
    float *dinp, *dw, *dbias;
    const float *dout, *inp, *wp;
    float *part, *bpart;
    int ldi, ldd, ldwp, M, K, N, nchunks, over_k, ldp, pstride; /* ldd: dout's row stride */
} mmb_ctx;

/* conv1d_forward's outputs: out = conv; out = silu(conv); out = silu(conv)
 * and out2 = silu'(conv) */
enum { CONV_OUT, CONV_SILU, CONV_SILU_GRAD };
typedef struct {
    float *out, *out2, *dinp, *dw, *dbias, *part;
    const float *inp, *dout, *wt, *bias;
    const float *gscale; /* backward: NULL, or dout's factor (the fused block's silu') */
    int ldi, B, L, C, K, Cpad, nchunks, mode;
    /* > 0: channels [c_last, C) at each sequence's last row only (the
     * fused stack's last block, whose loss reads C there alone) */
    int c_last;
    int set;  /* backward: dinp overwritten, not added to */
    int padd; /* backward: the task's partials added to, not set (the fused block's later sub-blocks) */
    /* NULL, or the input's row r is inp's row rk[r] (a keyed block's rows,
     * m2_keys: never with c_last) */
    const int *rk;
} conv_ctx;

typedef struct {
    float *out, *dx;
    const float *a, *b, *c;
    size_t n;
    int ld, rows, C;
} ew_ctx;

typedef struct {
    float *out, *rstd, *dinp, *dw, *part;
    const float *inp, *w, *dout, *rs;
    int rows, C, Cpad, nchunks;
    float eps;
} norm_ctx;

typedef struct {
    float *y, *dx, *dBm, *dCm, *ddt, *part;
    const float *x, *Bm, *Cm, *dt, *dt_bias, *A, *D, *dy;
    int ldx, ldt, B, L, H, P, N, nchunks;
    int set;  /* backward: dx, dBm, dCm, ddt overwritten, not added to */
    int padd; /* backward: the task's partials added to, not set (the fused block's later sub-blocks) */
    /* NULL, or per sequence of a task the forward's setup (ssd_kept),
     * written by ssdf_task and reused by ssdb_task instead of recomputed */
    float *keep;
    int y_last;  /* forward: y at each sequence's last row only (its others are not read) */
    int dy_last; /* backward: dy is zero but at each sequence's last row */
} ssd_ctx;

typedef struct {
    float *y, *du, *ddt, *dBm, *dCm, *part, *dA_log, *dD;
    const float *u, *dt, *A, *A2, *A2min, *Bm, *Cm, *D, *dy; /* A2: A log2 e, A2min: its least per channel */
    int ldbc, B, L, Di, N, Npad, nchunks;
} scan_ctx; /* the Mamba-1 scan (fast_scan1.c) */

typedef struct {
    const ach_mamba2_block *mx;
    float *out, *dresid;
    const float *win_t, *wout_t; /* forward: weights packed transposed */
    mmb_ctx in, outp;            /* backward: in_proj, out_proj */
    conv_ctx conv;
    ssd_ctx ssd;
    norm_ctx norm, gnorm;        /* backward: the pre-norm's and the gated norm's partials */
    int Di, Cd, Pj, nseq, nchunks;
    int ldpj; /* proj's row stride: Pj rounded up to whole vectors, so its rows start aligned */
    int sub; /* sequences per sub-block (see m2_setup) */
    /* as the last block of mamba2_train, in_proj and the conv skip what the
     * loss does not read (m2_inproj_last); needs whole vectors of z, x, B,
     * C and d_model */
    int sparse_last;
    int last_k0; /* there, C's in_proj rows in each sequence: [last_k0, L) */
    /* NULL, or for the first block of mamba2_train when its input rows are
     * the embedding rows of tokens, those tokens (m2_keys) */
    struct m2_keys *keys;
} m2_ctx;

/* The distinct tokens (keys) of mamba2_train's batch, for its first block:
 * the pre-norm and in_proj forward once per key; each task sums its rows'
 * d_proj per key in its thread's scratch (m2_keysum), and the tasks' sums
 * are added in task order (m2_task_done); then in_proj's and the
 * pre-norm's backward run once per key. */
typedef struct m2_keys {
    int n;                       /* keys */
    int *tok;                    /* each key's token */
    int *rowkey;                 /* each row's key */
    float *x, *xn, *rstd, *proj; /* per key: the input row, its norm, in_proj's output */
    float *sum, *dxn, *dx;       /* per key: d_proj summed over the batch, d_xn, d_x */
    unsigned char *has;          /* per key: sum set (by an earlier task) */
    /* a task that ends before the one ahead of it is merged leaves its
     * sums in its own slot of stash (m2_keysum layout, stride floats) */
    float *stash;
    size_t stride;
} m2_keys;

/* One task's per-key sums of d_proj: the keys it has, in order of their
 * first row (list, *count of them), and which it has (seen). */
typedef struct {
    float *sum;
    int *count, *list;
    unsigned char *seen;
} m2_keysum;

#define M2_MAX_PARTS (6 * ACH_MAX_LAYERS + 2)
/* The order in which mamba2_train's tasks are merged (m2_task_done) */
typedef struct {
    unsigned char *stashed; /* per task: its results wait in its stash slots */
    int merged;             /* the tasks before this one are merged */
} m2_order;

typedef struct {
    m2_ctx *c; /* [n] the blocks, input first */
    int n;
    const ach_lm_head *head;
    const float *wte_t; /* the embedding packed transposed, for the logits */
    mmb_ctx hmm;        /* the logits' backward */
    norm_ctx hnorm;     /* norm_f's backward */
    float *dresid;
    /* the weight-gradient partials a task writes (m2_parts): the shared
     * buffers, whose slot 0 is the sum of the merged tasks' and slot t task
     * t's stash; per-task floats; count; their total */
    float *part[M2_MAX_PARTS];
    size_t part_n[M2_MAX_PARTS];
    int nparts;
    size_t parts_total;
    m2_order *order;
} m2s_ctx; /* mamba2_train: a stack of blocks and the head */

typedef struct {
    float *xn, *rstdx; /* the pre-norm's output and rstd */
    float *proj, *act, *y, *gated, *normed, *rstd;
    float *sg;   /* silu'(conv), kept when a backward follows */
    float *keep; /* the SSD's setup (ssd_ctx.keep), idem */
    float *sz;   /* sigmoid(z) of the gate, idem */
} m2_acts; /* one block's activations (or their gradients) in scratch */

/* The last block of mamba2_train at its sequences' last rows, where alone
 * the loss reads its output: the SSD output y there, the gated norm's
 * results and gradients, the output's gradient d_last (scratch, [ns, ...]). */
typedef struct {
    float *y, *gated, *normed, *sz, *rstd, *dnormed, *dgated, *dy, *d_last;
} m2_last;

typedef struct {
    float *losses, *probs, *dlogits;
    const float *logits, *cprobs;
    const int *labels;
    int B, nvocab;
    float scale;
} ce_ctx;

typedef struct {
    float *dw;
    const float *dout;
    const int *tokens;
    int n, D;
} emb_ctx;

/* Where sequence b (of the task's first b0) keeps its Gram matrix G and,
 * per head h, delta, Lm and M: in c->keep, else in the scratch buf. */
static size_t ssd_keep_size(int L, int H) { return (size_t)L * L + (size_t)H * (L + 2 * L * L); }
static void ssd_kept(const ssd_ctx *c, float *buf, int b, int b0, int h, float **G, float **delta, float **Lm,
                     float **M)
{
    int L = c->L;
    float *p = c->keep ? c->keep + (size_t)(b - b0) * ssd_keep_size(L, c->H) : buf;
    *G = p;
    *delta = p + (size_t)L * L + (size_t)h * (L + 2 * L * L), *Lm = *delta + L, *M = *Lm + L * L;
}

/* ---- the ISA instances ---- */
#define CAT_(a, b) a##_##b
#define CAT(a, b) CAT_(a, b)
#define F(name) CAT(name, ISA)
#define AI static inline __attribute__((always_inline))

#define ACH_FAST_BODY 1
#ifdef ACH_X86
#define ISA avx512
#define VL 16
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,bmi,bmi2")
#include "kernels_fast.c"
#pragma GCC pop_options
#undef ISA
#undef VL

#define ISA avx2
#define VL 8
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#include "kernels_fast.c"
#pragma GCC pop_options
#undef ISA
#undef VL
#endif

#define ISA generic
#define VL 4
#include "kernels_fast.c"
#undef ISA
#undef VL

/* ---- the tables ---- */
static ach_kernels table_generic;
#ifdef ACH_X86
static ach_kernels table_avx512, table_avx2;
#endif
static const ach_kernels *table_best;

/* An instance's fill function is compiled for its ISA (it may use those
 * instructions itself), so it runs only where the CPU has them. */
static void build_tables(void)
{
    table_generic = ach_cpu_kernels;
    table_generic.name = "fast-generic";
    fill_generic(&table_generic);
    table_best = &table_generic;
#ifdef ACH_X86
    __builtin_cpu_init();
    int has_avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    int has_avx512 = has_avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                     __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
    if (has_avx2) {
        table_avx2 = ach_cpu_kernels;
        table_avx2.name = "fast-avx2";
        fill_avx2(&table_avx2);
        table_best = &table_avx2;
    }
    if (has_avx512) {
        table_avx512 = ach_cpu_kernels;
        table_avx512.name = "fast-avx512";
        fill_avx512(&table_avx512);
        table_best = &table_avx512;
    }
#endif
}

static pthread_once_t tables_once = PTHREAD_ONCE_INIT;

const ach_kernels *ach_fast_kernels(void)
{
    pthread_once(&tables_once, build_tables);
    return table_best;
}

void ach_fast_rates(const ach_kernels *k, double *exps_per_s, double *fmas_per_s)
{
    pthread_once(&tables_once, build_tables);
#ifdef ACH_X86
    if (k == &table_avx512) return rates_avx512(exps_per_s, fmas_per_s);
    if (k == &table_avx2) return rates_avx2(exps_per_s, fmas_per_s);
#endif
    if (k == &table_generic) return rates_generic(exps_per_s, fmas_per_s);
    *exps_per_s = *fmas_per_s = 0;
}

const ach_kernels *ach_fast_kernels_isa(const char *isa)
{
    pthread_once(&tables_once, build_tables);
    if (!strcmp(isa, "generic")) return &table_generic;
#ifdef ACH_X86
    if (!strcmp(isa, "avx2")) return table_best == &table_generic ? NULL : &table_avx2;
    if (!strcmp(isa, "avx512")) return table_best == &table_avx512 ? &table_avx512 : NULL;
#endif
    return NULL;
}

#else /* ACH_FAST_BODY: one ISA instance, VL floats per vector */

typedef float F(vf) __attribute__((vector_size(VL * 4)));
typedef int F(vi) __attribute__((vector_size(VL * 4)));
typedef float F(vfu) __attribute__((vector_size(VL * 4), aligned(4), __may_alias__));
#define V F(vf)
#define VI F(vi)
#define VU F(vfu)

/* Register tiles: rows per tile for a tile NB vectors wide. */
#if VL == 16
#define NBMAX 4
#define MR1 12
#define MR2 12
#define MR3 8
#define MR4 6
#else
#define NBMAX 2
#define MR1 12
#define MR2 6
#define MR3 4
#define MR4 3
#endif

/* ---- per-ISA primitives ---- */
AI V F(ld)(const float *p) { return *(const VU *)p; }
AI void F(st)(float *p, V v) { *(VU *)p = v; }
AI V F(sel)(VI m, V a, V b) { return (V)((m & (VI)a) | (~m & (VI)b)); } /* m ? a : b */

#if VL == 16
AI V F(bc)(float x) { return _mm512_set1_ps(x); }
AI __mmask16 F(mask)(int n) { return (__mmask16)((1u << n) - 1); }
AI V F(ldn)(const float *p, int n) { return _mm512_maskz_loadu_ps(F(mask)(n), p); }
AI void F(stn)(float *p, V v, int n) { _mm512_mask_storeu_ps(p, F(mask)(n), v); }
AI V F(fma)(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
AI float F(hsum)(V v) { return _mm512_reduce_add_ps(v); }
AI float F(hmax)(V v) { return _mm512_reduce_max_ps(v); }
AI V F(vmax)(V a, V b) { return _mm512_max_ps(a, b); }
AI V F(vmin)(V a, V b) { return _mm512_min_ps(a, b); }
#elif VL == 8
AI V F(bc)(float x) { return _mm256_set1_ps(x); }
AI __m256i F(mask)(int n) { return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)); }
AI V F(ldn)(const float *p, int n) { return _mm256_maskload_ps(p, F(mask)(n)); }
AI void F(stn)(float *p, V v, int n) { _mm256_maskstore_ps(p, F(mask)(n), v); }
AI V F(fma)(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
AI float F(hsum)(V v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}
AI float F(hmax)(V v)
{
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}
AI V F(vmax)(V a, V b) { return _mm256_max_ps(a, b); }
AI V F(vmin)(V a, V b) { return _mm256_min_ps(a, b); }
#else
AI V F(bc)(float x) { return (V){x, x, x, x}; }
AI V F(ldn)(const float *p, int n)
{
    V r = {0};
    memcpy(&r, p, (size_t)n * sizeof(float));
    return r;
}
AI void F(stn)(float *p, V v, int n) { memcpy(p, &v, (size_t)n * sizeof(float)); }
AI V F(fma)(V a, V b, V c) { return a * b + c; }
AI float F(hsum)(V v)
{
    float s = v[0];
    for (int i = 1; i < VL; i++) s += v[i];
    return s;
}
AI float F(hmax)(V v)
{
    float s = v[0];
    for (int i = 1; i < VL; i++) s = v[i] > s ? v[i] : s;
    return s;
}
AI V F(vmax)(V a, V b) { return F(sel)(a > b, a, b); }
AI V F(vmin)(V a, V b) { return F(sel)(a < b, a, b); }
#endif

/* Load or store the first n (1..VL) lanes. */
AI V F(ldk)(const float *p, int n) { return n == VL ? F(ld)(p) : F(ldn)(p, n); }
AI void F(stk)(float *p, V v, int n)
{
    if (n == VL) F(st)(p, v);
    else F(stn)(p, v, n);
}
/* d[0, n) += g[0, n) */
AI void F(add_to)(float *d, const float *g, size_t n)
{
    for (size_t i = 0; i < n; i += VL) {
        int nl = n - i < VL ? (int)(n - i) : VL;
        F(stk)(d + i, F(ldk)(d + i, nl) + F(ldk)(g + i, nl), nl);
    }
}

/* exp(x): Cephes' expf (range reduction by ln 2 in two parts, degree-6
 * polynomial), about 2 ulp on [-86, 88]; 0 below -86 (no denormals: they
 * cost a microcode assist each), exp(88) above 88, NaN in -> NaN out.
 * AVX-512 scales by 2^n with vscalefps, the others build 2^n in the
 * exponent bits. */
AI V F(vexp)(V x)
{
#if VL == 16
    /* max/min return their second operand when one is NaN: x stays NaN */
    V xc = _mm512_min_ps(F(bc)(88.0f), _mm512_max_ps(F(bc)(-86.0f), x));
    V n = _mm512_roundscale_ps(xc * F(bc)(1.44269504088896341f), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
#else
    const V magic = F(bc)(12582912.0f); /* 1.5 * 2^23: adding it rounds to an integer */
    V xc = F(vmin)(F(vmax)(x, F(bc)(-86.0f)), F(bc)(88.0f));
    V t = F(fma)(xc, F(bc)(1.44269504088896341f), magic);
    V n = t - magic;
#endif
    V r = F(fma)(n, F(bc)(-0.693359375f), xc);
    r = F(fma)(n, F(bc)(2.12194440e-4f), r);
    /* the polynomial by Estrin's scheme: a shorter dependency chain than
     * Horner's lets more vectors be in flight */
    V r2 = r * r;
    V q0 = F(fma)(F(bc)(1.6666665459e-1f), r, F(bc)(5.0000001201e-1f));
    V q1 = F(fma)(F(bc)(8.3334519073e-3f), r, F(bc)(4.1665795894e-2f));
    V q2 = F(fma)(F(bc)(1.9875691500e-4f), r, F(bc)(1.3981999507e-3f));
    V p = F(fma)(F(fma)(q2, r2, q1), r2, q0);
    V y = F(fma)(p, r2, r) + F(bc)(1.0f);
#if VL == 16
    return _mm512_mask_mov_ps(_mm512_scalef_ps(y, n), _mm512_cmp_ps_mask(x, F(bc)(-86.0f), _CMP_LT_OQ), (V){0});
#else
    y = (V)((VI)y + (((VI)t - (VI)magic) << 23));
    y = F(sel)(x < F(bc)(-86.0f), (V){0}, y);
    return F(sel)(x != x, x, y);
#endif
}

/* log(1 + e) for e in [0, 1]: 2 atanh(s), s = e / (2 + e) <= 1/3, by its
 * series to s^15 (relative error below 1e-8). */
AI V F(vlog1p01)(V e)
{
    V s = e / (F(bc)(2.0f) + e), s2 = s * s;
    V p = F(bc)(1.0f / 15);
    p = F(fma)(p, s2, F(bc)(1.0f / 13));
    p = F(fma)(p, s2, F(bc)(1.0f / 11));
    p = F(fma)(p, s2, F(bc)(1.0f / 9));
    p = F(fma)(p, s2, F(bc)(1.0f / 7));
    p = F(fma)(p, s2, F(bc)(1.0f / 5));
    p = F(fma)(p, s2, F(bc)(1.0f / 3));
    p = F(fma)(p, s2, F(bc)(1.0f));
    return (s + s) * p;
}

/* softplus with mamba_ssm's threshold (identity above 20), as
 * max(x, 0) + log1p(exp(-|x|)). */
AI V F(vsoftplus)(V x)
{
    V ax = (V)((VI)x & ((VI){0} + 0x7fffffff));
    V r = F(vmax)(x, (V){0}) + F(vlog1p01)(F(vexp)(-ax));
    return F(sel)(x > F(bc)(20.0f), x, r);
}
/* 1/d: the hardware estimate refined by Newton steps to about 1 ulp (a
 * vector division costs several times more) */
AI V F(vrcp)(V d)
{
#if VL == 16
    V r = _mm512_rcp14_ps(d);
#elif VL == 8
    V r = _mm256_rcp_ps(d); /* 12 bits: two steps */
    r = F(fma)(r, F(fma)(-d, r, F(bc)(1.0f)), r);
#else
    return F(bc)(1.0f) / d;
#endif
#if VL > 4
    return F(fma)(r, F(fma)(-d, r, F(bc)(1.0f)), r);
#endif
}
/* sigmoid(x) = 1/(1 + exp(-x)), exp as in vexp but with a degree-5
 * polynomial, 1 + r + r^2 P3(r), near-minimax on |r| <= ln 2 / 2 (1.05e-7
 * relative; bench/exp_poly_fit.py derives it): vexp's degree 7 is finer
 * than the final reciprocal needs. The sigmoid is within 3.1 ulp (2.3e-7
 * relative) over [-80, 80], against 2.5 with degree 7, and two FMAs
 * cheaper where the conv and the gate are bound by it. And a cheaper
 * reduction of -x: x clamped to [-86, 86] first (exp(-x) then stays a
 * normal number: no underflow mask, and 1 + exp(-x) is 1 beyond 86),
 * n = round(-x log2 e) by the 1.5 * 2^23 trick (an FMA and a subtraction
 * instead of a multiply and a two-uop round), and s = x + n ln 2 = -r
 * used directly, with the odd coefficients' signs flipped. AVX-512 clamps
 * in one vrangeps (the smaller magnitude of x and 86, with x's sign),
 * which takes a NaN to +-86: a NaN in x still reaches every caller's
 * result (silu, silu' and the gate multiply by x; softplus' sits beside
 * softplus(x), NaN itself). The others keep it NaN (max and min return
 * their second operand then). */
AI V F(vsigmoid)(V x)
{
    const V magic = F(bc)(12582912.0f);
#if VL == 16
    V xc = _mm512_range_ps(x, F(bc)(86.0f), 2); /* imm 2: the smaller |.|, sign of x */
#else
    V xc = F(vmin)(F(bc)(86.0f), F(vmax)(F(bc)(-86.0f), x));
#endif
    V t = F(fma)(xc, F(bc)(-1.44269504088896341f), magic);
    V n = t - magic;
    V s = F(fma)(n, F(bc)(0.693359375f), xc);
    s = F(fma)(n, F(bc)(-2.12194440e-4f), s);
    V s2 = s * s;
    V q0 = F(fma)(F(bc)(-0.16667114198207855f), s, F(bc)(0.499992311000824f));
    V q1 = F(fma)(F(bc)(-0.008312520571053028f), s, F(bc)(0.041890159249305725f));
    V p = F(fma)(q1, s2, q0);
    V y = F(fma)(p, s2, -s) + F(bc)(1.0f); /* exp(-s) / 2^n */
#if VL == 16
    y = _mm512_scalef_ps(y, n);
#else
    y = (V)((VI)y + (((VI)t - (VI)magic) << 23));
#endif
    return F(vrcp)(F(bc)(1.0f) + y);
}
AI V F(vsilu)(V x) { return x * F(vsigmoid)(x); }
/* silu'(x) = s (1 + x (1 - s)) = s + silu(x) (1 - s), from s = sigmoid(x)
 * and silu(x) = x s when the caller has both: one FMA and a subtraction */
AI V F(silu_grad_of)(V s, V silu) { return F(fma)(silu, F(bc)(1.0f) - s, s); }
AI V F(vsilu_grad)(V x)
{
    V s = F(vsigmoid)(x);
    return F(silu_grad_of)(s, x * s);
}

/* ---- the GEMM micro-kernel ----
 * For r < MR, j < NB: acc = init[j] (or 0) + sum_{s < ns} A[r*ars + s*aks] *
 * B[s*ldb + j*VL .. +VL]; then C[r*ldc + j*VL ..] = acc, or X[that] + acc
 * when X (C itself, or another matrix of C's row stride) is set.
 * The last vector stores only jlast lanes. Every output lane is one FMA
 * chain in s order, whatever the tile shape or position. */
AI void F(tile)(float *C, long ldc, const float *A, long ars, long aks, const float *B, long ldb, int ns,
                const float *init, const float *X, int jlast, const int MR, const int NB)
{
    V acc[12][4];
#pragma GCC unroll 12
    for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
        for (int j = 0; j < NB; j++) acc[r][j] = init ? F(ld)(init + j * VL) : (V){0};
    for (int s = 0; s < ns; s++) {
        V b[4];
        const float *bs = B + s * ldb, *as = A + s * aks;
#pragma GCC unroll 4
        for (int j = 0; j < NB; j++) b[j] = F(ld)(bs + j * VL);
#pragma GCC unroll 12
        for (int r = 0; r < MR; r++) {
            V a = F(bc)(as[r * ars]);
#pragma GCC unroll 4
            for (int j = 0; j < NB; j++) acc[r][j] = F(fma)(a, b[j], acc[r][j]);
        }
    }
#pragma GCC unroll 12
    for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
        for (int j = 0; j < NB; j++) {
            float *c = C + r * ldc + j * VL;
            int n = j == NB - 1 ? jlast : VL;
            V v = acc[r][j];
            if (X) v += F(ldk)(X + r * ldc + j * VL, n);
            F(stk)(c, v, n);
        }
}

static int F(mr_for)(int nb) { return nb == 1 ? MR1 : nb == 2 ? MR2 : nb == 3 ? MR3 : MR4; }

static void F(tile_nb)(float *C, long ldc, const float *A, long ars, long aks, const float *B, long ldb, int ns,
                       const float *init, const float *X, int jlast, int nb)
{
    switch (nb) {
    case 1: F(tile)(C, ldc, A, ars, aks, B, ldb, ns, init, X, jlast, MR1, 1); break;
    case 2: F(tile)(C, ldc, A, ars, aks, B, ldb, ns, init, X, jlast, MR2, 2); break;
#if NBMAX > 2
    case 3: F(tile)(C, ldc, A, ars, aks, B, ldb, ns, init, X, jlast, MR3, 3); break;
    case 4: F(tile)(C, ldc, A, ars, aks, B, ldb, ns, init, X, jlast, MR4, 4); break;
#endif
    }
}

/* The last rows (fewer than a full tile) of a block, or a whole block the
 * usual tile height does not divide: tiles of 8 (at most 2 vectors wide),
 * 4, 2 and 1 rows on the data in place. Each output lane is the same FMA
 * chain as in a full tile, so the results do not depend on where a row
 * falls. */
static void F(tile_tail)(float *C, long ldc, const float *A, long ars, long aks, const float *B, long ldb, int ns,
                         const float *init, const float *X, int jlast, int nb, int rows)
{
    for (int r = 0; r < rows;) {
        int mr = rows - r >= 8 && nb <= 2 ? 8 : rows - r >= 4 ? 4 : rows - r >= 2 ? 2 : 1;
        float *c = C + r * ldc;
        const float *a = A + r * ars, *x = X ? X + r * ldc : NULL;
    /* (8 rows only up to 2 vectors: 8 x 3 or 8 x 4 sums would not fit the registers) */
#define TAIL_NB(NB)                                                                                 \
    if (NB <= 2 && mr == 8) F(tile)(c, ldc, a, ars, aks, B, ldb, ns, init, x, jlast, NB <= 2 ? 8 : 4, NB); \
    else if (mr == 4) F(tile)(c, ldc, a, ars, aks, B, ldb, ns, init, x, jlast, 4, NB);            \
    else if (mr == 2) F(tile)(c, ldc, a, ars, aks, B, ldb, ns, init, x, jlast, 2, NB);            \
    else F(tile)(c, ldc, a, ars, aks, B, ldb, ns, init, x, jlast, 1, NB);
        switch (nb) {
        case 1: TAIL_NB(1) break;
        case 2: TAIL_NB(2) break;
#if NBMAX > 2
        case 3: TAIL_NB(3) break;
        case 4: TAIL_NB(4) break;
#endif
        }
#undef TAIL_NB
        r += mr;
    }
}

/* Splits nvec vectors into blocks of at most NBMAX, as even as possible (a
 * 25-vector row is 4,4,4,4,3,3,3 rather than six 4s and a lone 1). */
static int F(block_nb)(int nvec, int jb)
{
    int nblocks = ceil_div(nvec, NBMAX), base = nvec / nblocks, extra = nvec % nblocks;
    /* blocks [0, extra) have base + 1 vectors */
    int blk = jb < extra * (base + 1) ? jb / (base + 1) : extra + (jb - extra * (base + 1)) / base;
    return blk < extra ? base + 1 : base;
}

/* Rows [m0, m1) of C (ldc) = X + init + A (lda) . Bp, X NULL (none), C
 * itself or another matrix of C's row stride. Bp is [I][ldb] with J valid
 * columns and zero padding to whole vectors; init (NULL or padded to whole
 * vectors) is added first. */
static void F(gemm_rows_x)(float *C, int ldc, const float *X, const float *A, int lda, const float *Bp, int ldb, int I,
                           int J, const float *init, int m0, int m1)
{
    int nvec = ceil_div(J, VL);
    for (int jb = 0; jb < nvec;) {
        int nb = F(block_nb)(nvec, jb), mr = F(mr_for)(nb);
        int jlast = jb + nb == nvec ? J - (nvec - 1) * VL : VL;
        const float *Bj = Bp + jb * VL, *ij = init ? init + jb * VL : NULL;
        int m = m0;
#define AT(P) ((P) + (size_t)m * ldc + jb * VL)
        if ((m1 - m0) % mr && (m1 - m0) % 4 == 0) /* whole smaller tiles rather than a tail of 4 */
            F(tile_tail)(AT(C), ldc, A + (size_t)m * lda, lda, 1, Bj, ldb, I, ij, X ? AT(X) : NULL, jlast, nb,
                         m1 - m0), m = m1;
        for (; m + mr <= m1; m += mr)
            F(tile_nb)(AT(C), ldc, A + (size_t)m * lda, lda, 1, Bj, ldb, I, ij, X ? AT(X) : NULL, jlast, nb);
        if (m < m1) /* row tail */
            F(tile_tail)(AT(C), ldc, A + (size_t)m * lda, lda, 1, Bj, ldb, I, ij, X ? AT(X) : NULL, jlast, nb,
                         m1 - m);
#undef AT
        jb += nb;
    }
}
/* gemm_rows_x: C = init + A . Bp, or C += A . Bp when add */
static void F(gemm_rows)(float *C, int ldc, const float *A, int lda, const float *Bp, int ldb, int I, int J,
                         const float *init, int add, int m0, int m1)
{
    F(gemm_rows_x)(C, ldc, add ? C : NULL, A, lda, Bp, ldb, I, J, init, m0, m1);
}

/* P[i][j] = (P[i][j] if add) + sum_{m < nrows} X[m*ldx + i] Y[m*ldy + j]
 * for i < I, j < whole vectors of J. P has ldp >= ceil(J/VL)*VL columns; Y
 * must be readable in whole vectors. */
static void F(gemm_atb)(float *P, int ldp, const float *X, int ldx, const float *Y, int ldy, int I, int J, int nrows,
                        int add)
{
    int nvec = ceil_div(J, VL);
    for (int jb = 0; jb < nvec;) {
        int nb = F(block_nb)(nvec, jb), mr = F(mr_for)(nb);
        int i = 0;
        for (; i + mr <= I; i += mr) {
            float *p = P + (size_t)i * ldp + jb * VL;
            F(tile_nb)(p, ldp, X + i, 1, ldx, Y + jb * VL, ldy, nrows, NULL, add ? p : NULL, VL, nb);
        }
        if (i < I) {
            float *p = P + (size_t)i * ldp + jb * VL;
            F(tile_tail)(p, ldp, X + i, 1, ldx, Y + jb * VL, ldy, nrows, NULL, add ? p : NULL, VL, nb, I - i);
        }
        jb += nb;
    }
}

/* ---- matmul ---- */
static void F(mmf_task)(void *vc, int t)
{
    const gemm_ctx *c = vc;
    int m0 = t * CH_ROWS, m1 = m0 + CH_ROWS < c->M ? m0 + CH_ROWS : c->M;
    F(gemm_rows)(c->C, c->ldc, c->A, c->lda, c->B, c->ldb, c->I, c->J, c->init, c->add, m0, m1);
}

/* w [N][K] transposed into scratch slot as [K][round_up(N, VL)], zero-padded */
static float *F(pack_t)(int slot, const float *w, int N, int K)
{
    int Np = round_up(N, VL);
    float *wt = sbuf(slot, (size_t)K * Np);
    for (int k = 0; k < K; k++) {
        for (int n = 0; n < N; n++) wt[(size_t)k * Np + n] = w[(size_t)n * K + k];
        for (int n = N; n < Np; n++) wt[(size_t)k * Np + n] = 0;
    }
    return wt;
}

static void F(matmul_forward)(real *out, const real *inp, int ldi, const real *w, const real *bias, int M, int K,
                              int N)
{
    enter();
    int Np = round_up(N, VL);
    float *wt = F(pack_t)(S_PACK, w, N, K), *bp = sbuf(S_BIAS, Np);
    for (int n = 0; n < Np; n++) bp[n] = bias && n < N ? bias[n] : 0;
    gemm_ctx c = {.C = out, .A = inp, .B = wt, .init = bp, .ldc = N, .lda = ldi, .ldb = Np, .I = K, .J = N, .M = M};
    ach_parallel_for(ceil_div(M, CH_ROWS), F(mmf_task), &c);
    leave();
}

/* One block of rows: dinp (NULL: skipped) += dout w (= when not add), this
 * block's weight gradient into part (added to it when padd), its bias
 * gradient into bpart (NULL: skipped). */
static void F(mmb_rows)(const mmb_ctx *c, float *dinp, int add, const float *dout, const float *inp, int rows,
                        float *part, int padd, float *bpart)
{
    int K = c->K, N = c->N;
    if (dinp) F(gemm_rows)(dinp, c->ldi, dout, c->ldd, c->wp, c->ldwp, N, K, NULL, add, 0, rows);
    /* dW partial: vectorised over K (X = dout, Y = inp) or over N */
    const float *X = c->over_k ? dout : inp, *Y = c->over_k ? inp : dout;
    int ldx = c->over_k ? c->ldd : c->ldi, ldy = c->over_k ? c->ldi : c->ldd;
    int I = c->over_k ? N : K, J = c->over_k ? K : N;
    if (J % VL) { /* whole vectors must be readable: padded copy */
        int Jp = round_up(J, VL);
        float *ty = tbuf(T_Y, (size_t)rows * Jp);
        for (int m = 0; m < rows; m++) {
            memcpy(ty + (size_t)m * Jp, Y + (size_t)m * ldy, J * sizeof *ty);
            memset(ty + (size_t)m * Jp + J, 0, (Jp - J) * sizeof *ty);
        }
        Y = ty, ldy = Jp;
    }
    F(gemm_atb)(part, c->ldp, X, ldx, Y, ldy, I, J, rows, padd);
    if (bpart) {
        float *pb = bpart;
        for (int n = 0; n < N; n++) pb[n] = 0;
        for (int m = 0; m < rows; m++) {
            const float *g = dout + (size_t)m * c->ldd;
            for (int n = 0; n < N; n++) pb[n] += g[n];
        }
    }
}

static void F(mmb_task)(void *vc, int t)
{
    const mmb_ctx *c = vc;
    int m0 = t * CH_ROWS, rows = (m0 + CH_ROWS < c->M ? m0 + CH_ROWS : c->M) - m0;
    F(mmb_rows)(c, c->dinp ? c->dinp + (size_t)m0 * c->ldi : NULL, 1, c->dout + (size_t)m0 * c->ldd,
                c->inp + (size_t)m0 * c->ldi, rows, c->part + (size_t)t * c->pstride, 0,
                c->dbias ? c->bpart + (size_t)t * round_up(c->N, VL) : NULL);
}

/* c's K, N set: packs w for dinp (into slot pack if padding is needed),
 * chooses the weight-gradient layout, and takes nchunks partials from slot part. */
static void F(mmb_setup)(mmb_ctx *c, const float *w, int pack, int part, int nchunks)
{
    int K = c->K, N = c->N, Kp = round_up(K, VL), Np = round_up(N, VL);
    if (K % VL) { /* dinp needs w in whole vectors: [N][Kp] zero-padded */
        float *wp = sbuf(pack, (size_t)N * Kp);
        for (int n = 0; n < N; n++) {
            memcpy(wp + (size_t)n * Kp, w + (size_t)n * K, K * sizeof *wp);
            memset(wp + (size_t)n * Kp + K, 0, (Kp - K) * sizeof *wp);
        }
        c->wp = wp, c->ldwp = Kp;
    } else c->wp = w, c->ldwp = K;
    /* vectorise the weight gradient over whichever side wastes fewer lanes */
    c->over_k = (long)N * Kp <= (long)K * Np;
    c->ldp = c->over_k ? Kp : Np;
    c->pstride = (c->over_k ? N : K) * c->ldp;
    c->nchunks = nchunks;
    c->part = sbuf(part, (size_t)nchunks * c->pstride);
}

#define RED_ROWS 16 /* rows of dW per reduction task */
static void F(mmb_reduce)(void *vc, int t)
{
    const mmb_ctx *c = vc;
    int n0 = t * RED_ROWS, n1 = n0 + RED_ROWS < c->N ? n0 + RED_ROWS : c->N, K = c->K;
    if (c->over_k) {
        for (int n = n0; n < n1; n++)
            for (int k = 0; k < K; k += VL) {
                int nl = K - k < VL ? K - k : VL;
                V s = F(ldk)(c->part + (size_t)n * c->ldp + k, nl);
                for (int ch = 1; ch < c->nchunks; ch++)
                    s += F(ldk)(c->part + (size_t)ch * c->pstride + (size_t)n * c->ldp + k, nl);
                float *d = c->dw + (size_t)n * K + k;
                F(stk)(d, F(ldk)(d, nl) + s, nl);
            }
    } else {
        for (int n = n0; n < n1; n++)
            for (int k = 0; k < K; k++) {
                float s = c->part[(size_t)k * c->ldp + n];
                for (int ch = 1; ch < c->nchunks; ch++) s += c->part[(size_t)ch * c->pstride + (size_t)k * c->ldp + n];
                c->dw[(size_t)n * K + k] += s;
            }
    }
    if (c->dbias) {
        int Np = round_up(c->N, VL);
        for (int n = n0; n < n1; n++) {
            float s = c->bpart[n];
            for (int ch = 1; ch < c->nchunks; ch++) s += c->bpart[(size_t)ch * Np + n];
            c->dbias[n] += s;
        }
    }
}

static void F(matmul_backward)(real *dinp, real *dw, real *dbias, const real *dout, const real *inp, int ldi,
                               const real *w, int M, int K, int N)
{
    if (M <= 0) return; /* no rows: nothing to add (the partials would be unset) */
    enter();
    mmb_ctx c = {.dinp = dinp, .dw = dw, .dbias = dbias, .dout = dout, .inp = inp, .ldi = ldi, .ldd = N, .M = M, .K = K,
                 .N = N};
    F(mmb_setup)(&c, w, S_PACK, S_PART, ceil_div(M, CH_ROWS));
    c.bpart = dbias ? sbuf(S_PART2, (size_t)c.nchunks * round_up(N, VL)) : NULL;
    ach_parallel_for(c.nchunks, F(mmb_task), &c);
    ach_parallel_for(ceil_div(N, RED_ROWS), F(mmb_reduce), &c);
    leave();
}

/* ---- conv1d ---- */

/* The conv input's row r */
AI const float *F(conv_in)(const conv_ctx *c, size_t r) { return c->inp + (c->rk ? (size_t)c->rk[r] : r) * c->ldi; }

/* One conv output vector acc at element i, as mode asks (CONV_*). */
AI void F(conv_store)(const conv_ctx *c, size_t i, V acc, int nl, const int mode)
{
    if (mode == CONV_OUT) F(stk)(c->out + i, acc, nl);
    else {
        V sg = F(vsigmoid)(acc), a = acc * sg;
        F(stk)(c->out + i, a, nl);
        if (mode == CONV_SILU_GRAD) F(stk)(c->out2 + i, F(silu_grad_of)(sg, a), nl);
    }
}

/* Columns [cv, cv + nl) of sequences [b0, b1). The K weights (loaded once
 * for all the sequences) and a window of the last K input rows are
 * fixed-size arrays, so with a constant K they stay in registers and each
 * input row is loaded once; the window starts each sequence as zeros,
 * which add exactly nothing (fma(w, 0, acc) = acc) where the reference
 * skips the taps before t = 0. K and mode are constants where inlined. */
AI void F(conv_cols)(const conv_ctx *c, int b0, int b1, int cv, int nl, const int K, const int mode)
{
    int L = c->L, C = c->C;
    V w[ACH_MAX_CONV], win[ACH_MAX_CONV], bias = F(ld)(c->bias + cv);
    for (int j = 0; j < K; j++) w[j] = F(ld)(c->wt + (size_t)j * c->Cpad + cv);
    for (int b = b0; b < b1; b++) {
        size_t r0 = (size_t)b * L;
        for (int j = 0; j < K; j++) win[j] = (V){0};
        for (int tt = 0; tt < L; tt++) {
#pragma GCC unroll 8
            for (int j = 0; j < K - 1; j++) win[j] = win[j + 1];
            win[K - 1] = F(ldk)(F(conv_in)(c, r0 + tt) + cv, nl);
            V acc = bias;
#pragma GCC unroll 8
            for (int j = 0; j < K; j++) acc = F(fma)(w[j], win[j], acc);
            F(conv_store)(c, (r0 + tt) * C + cv, acc, nl, mode);
        }
    }
}

/* conv_cols at each sequence's last row only: the same FMA chain without
 * the taps before t = 0 (which add exactly nothing there). */
AI void F(conv_last_cols)(const conv_ctx *c, int b0, int b1, int cv, int nl, const int K, const int mode)
{
    int L = c->L, C = c->C;
    size_t ldi = c->ldi;
    V w[ACH_MAX_CONV], bias = F(ld)(c->bias + cv);
    for (int j = 0; j < K; j++) w[j] = F(ld)(c->wt + (size_t)j * c->Cpad + cv);
    for (int b = b0; b < b1; b++) {
        size_t r = (size_t)b * L + L - 1; /* tap j reads row r - (K - 1 - j) */
        V acc = bias;
#pragma GCC unroll 8
        for (int j = 0; j < K; j++)
            if (L - K + j >= 0) acc = F(fma)(w[j], F(ldk)(c->inp + (r - (K - 1 - j)) * ldi + cv, nl), acc);
        F(conv_store)(c, r * C + cv, acc, nl, mode);
    }
}

/* One column block of convf_task: the common cases with constant K and mode */
AI void F(convf_block)(const conv_ctx *c, int b0, int b1, int cv, int nl)
{
    if (c->c_last && cv >= c->c_last) {
        if (c->K == 4) F(conv_last_cols)(c, b0, b1, cv, nl, 4, c->mode);
        else F(conv_last_cols)(c, b0, b1, cv, nl, c->K, c->mode);
    } else if (c->K != 4) F(conv_cols)(c, b0, b1, cv, nl, c->K, c->mode);
    else if (c->mode == CONV_SILU) F(conv_cols)(c, b0, b1, cv, nl, 4, CONV_SILU); /* the paper's */
    else if (c->mode == CONV_SILU_GRAD) F(conv_cols)(c, b0, b1, cv, nl, 4, CONV_SILU_GRAD);
    else F(conv_cols)(c, b0, b1, cv, nl, 4, CONV_OUT);
}

static void F(convf_task)(void *vc, int t)
{
    const conv_ctx *c = vc;
    int ns = ch_seqs(c->L), b0 = t * ns, b1 = b0 + ns < c->B ? b0 + ns : c->B;
    for (int cv = 0; cv < c->C; cv += VL) {
        int nl = c->C - cv < VL ? c->C - cv : VL;
        /* a whole vector's width as a constant: ldk and stk lose their
         * branch, which took issue slots from the vector work */
        if (nl == VL) F(convf_block)(c, b0, b1, cv, VL);
        else F(convf_block)(c, b0, b1, cv, nl);
    }
}

/* wt = w transposed to [K][Cpad], bias padded; both zero beyond C */
static void F(conv_pack)(conv_ctx *c, const float *w, const float *bias, int base)
{
    int C = c->C, K = c->K;
    if (K > ACH_MAX_CONV) {
        fprintf(stderr, "achilles: d_conv %d above the fast kernels' %d\n", K, ACH_MAX_CONV);
        abort();
    }
    c->Cpad = round_up(C, VL);
    float *wt = sbuf(base + S_PACK, (size_t)K * c->Cpad), *bp = sbuf(base + S_BIAS, c->Cpad);
    for (int j = 0; j < K; j++)
        for (int ch = 0; ch < c->Cpad; ch++) wt[(size_t)j * c->Cpad + ch] = ch < C ? w[(size_t)ch * K + j] : 0;
    for (int ch = 0; ch < c->Cpad; ch++) bp[ch] = bias && ch < C ? bias[ch] : 0;
    c->wt = wt, c->bias = bp;
}

static void F(conv1d_forward)(real *out, const real *inp, int ldi, const real *w, const real *bias, int B, int L,
                              int C, int K)
{
    enter();
    conv_ctx c = {.out = out, .inp = inp, .ldi = ldi, .B = B, .L = L, .C = C, .K = K};
    F(conv_pack)(&c, w, bias, 0);
    ach_parallel_for(ceil_div(B, ch_seqs(L)), F(convf_task), &c);
    leave();
}

/* A column block's weight and bias gradients gw [K], gb into the task's
 * partials pw [K][Cpad] and pb (set when first, else added to). */
AI void F(convb_partials)(const conv_ctx *c, int first, int cv, float *pw, float *pb, const V *gw, V gb, const int K)
{
#pragma GCC unroll 8
    for (int j = 0; j < K; j++) {
        float *p = pw + (size_t)j * c->Cpad + cv;
        F(st)(p, first ? gw[j] : F(ld)(p) + gw[j]);
    }
    F(st)(pb + cv, first ? gb : F(ld)(pb + cv) + gb);
}

/* Columns [cv, cv + nl) of sequences [b0, b1): dinp += the transposed
 * conv of dout (times gscale first, when set); the weight and bias
 * gradients summed in registers over all those sequences, then added to the
 * task's partials pw [K][Cpad] and pb (set instead when first). As in
 * conv_cols, windows of the last K input and gradient rows (zeros before the
 * start and past the end of each sequence) stay in registers: each row is
 * loaded once, and step tt finishes dinp's row tt - K + 1. */
AI void F(convb_cols)(const conv_ctx *c, int b0, int b1, int first, int cv, int nl, float *pw, float *pb, const int K)
{
    int C = c->C, L = c->L;
    size_t ldi = c->ldi;
    V w[ACH_MAX_CONV], gw[ACH_MAX_CONV], xw[ACH_MAX_CONV], gwin[ACH_MAX_CONV], gb = (V){0};
    for (int j = 0; j < K; j++) w[j] = F(ld)(c->wt + (size_t)j * c->Cpad + cv), gw[j] = (V){0};
    for (int b = b0; b < b1; b++) {
        for (int j = 0; j < K; j++) xw[j] = gwin[j] = (V){0};
        const float *g = c->dout + (size_t)b * L * C + cv;
        const float *gs = c->gscale ? c->gscale + (size_t)b * L * C + cv : NULL;
        float *dx = c->dinp + (size_t)b * L * ldi + cv; /* advanced a row per row finished */
        for (int tt = 0; tt < L + K - 1; tt++) {
            V gt = (V){0}, xt = (V){0};
            if (tt < L) {
                gt = F(ldk)(g + (size_t)tt * C, nl), xt = F(ldk)(F(conv_in)(c, (size_t)b * L + tt) + cv, nl);
                if (gs) gt *= F(ldk)(gs + (size_t)tt * C, nl);
            }
#pragma GCC unroll 8
            for (int j = 0; j < K - 1; j++) xw[j] = xw[j + 1], gwin[j] = gwin[j + 1];
            xw[K - 1] = xt, gwin[K - 1] = gt;
            gb += gt;
            V acc = (V){0};
#pragma GCC unroll 8
            for (int j = 0; j < K; j++) gw[j] = F(fma)(xw[j], gt, gw[j]), acc = F(fma)(w[j], gwin[K - 1 - j], acc);
            if (tt >= K - 1) {
                F(stk)(dx, c->set ? acc : F(ldk)(dx, nl) + acc, nl);
                dx += ldi;
            }
        }
    }
    F(convb_partials)(c, first, cv, pw, pb, gw, gb, K);
}

/* convb_cols where dout is zero but at each sequence's last row (r): the
 * weight gradients sum that row's terms alone, and dinp gets the K rows it
 * reads (the others are not written); the same values as convb_cols,
 * whose other terms add exactly zero. */
AI void F(convb_last_cols)(const conv_ctx *c, int b0, int b1, int first, int cv, int nl, float *pw, float *pb,
                           const int K)
{
    int C = c->C, L = c->L;
    size_t ldi = c->ldi;
    V w[ACH_MAX_CONV], gw[ACH_MAX_CONV], gb = (V){0};
    for (int j = 0; j < K; j++) w[j] = F(ld)(c->wt + (size_t)j * c->Cpad + cv), gw[j] = (V){0};
    for (int b = b0; b < b1; b++) {
        size_t r = (size_t)b * L + L - 1;
        V gt = F(ldk)(c->dout + r * C + cv, nl);
        if (c->gscale) gt *= F(ldk)(c->gscale + r * C + cv, nl);
        gb += gt;
#pragma GCC unroll 8
        for (int j = 0; j < K; j++) {
            if (L - K + j < 0) continue;
            size_t i = (r - (K - 1 - j)) * ldi + cv; /* the row tap j reads */
            gw[j] = F(fma)(F(ldk)(c->inp + i, nl), gt, gw[j]);
            F(stk)(c->dinp + i, c->set ? w[j] * gt : F(ldk)(c->dinp + i, nl) + w[j] * gt, nl);
        }
    }
    F(convb_partials)(c, first, cv, pw, pb, gw, gb, K);
}

/* convb_cols for one sequence (rows from r0) of a constant length L (at
 * most CONV_LMAX), its weight and bias gradients added to the running sums
 * gacc [K + 1][Cpad]: the sequence's scaled gradient rows stay in registers
 * and every index is fixed, so no window is shifted and no zero tap
 * multiplied; the same FMA chains in the same order (the skipped terms add
 * exactly zero). scaled: c->gscale is set, as a constant. */
AI void F(convb_seq)(const conv_ctx *c, size_t r0, int cv, int nl, float *gacc, const int K, const int L,
                     const int scaled)
{
    int C = c->C, Cp = c->Cpad;
    size_t ldi = c->ldi;
    V w[ACH_MAX_CONV], gw[ACH_MAX_CONV], gt[CONV_LMAX], gb = F(ld)(gacc + (size_t)K * Cp + cv);
    for (int j = 0; j < K; j++) w[j] = F(ld)(c->wt + (size_t)j * Cp + cv), gw[j] = F(ld)(gacc + (size_t)j * Cp + cv);
#pragma GCC unroll 16
    for (int t = 0; t < L; t++) {
        gt[t] = F(ldk)(c->dout + (r0 + t) * C + cv, nl);
        if (scaled) gt[t] *= F(ldk)(c->gscale + (r0 + t) * C + cv, nl);
        gb += gt[t];
    }
#pragma GCC unroll 16
    for (int s = 0; s < L; s++) { /* input row s: tap j reads it for output row s + K - 1 - j */
        V xs = F(ldk)(F(conv_in)(c, r0 + s) + cv, nl), acc = (V){0};
#pragma GCC unroll 8
        for (int j = 0; j < K; j++)
            if (s + K - 1 - j < L)
                gw[j] = F(fma)(xs, gt[s + K - 1 - j], gw[j]), acc = F(fma)(w[j], gt[s + K - 1 - j], acc);
        float *dx = c->dinp + (r0 + s) * ldi + cv;
        F(stk)(dx, c->set ? acc : F(ldk)(dx, nl) + acc, nl);
    }
    for (int j = 0; j < K; j++) F(st)(gacc + (size_t)j * Cp + cv, gw[j]);
    F(st)(gacc + (size_t)K * Cp + cv, gb);
}

/* Columns [0, ce) of sequences [b0, b1) by convb_seq, a sequence at a time
 * across the columns (rows in memory order: the cold inputs stream, where
 * a column block down all the rows touched a new line per row); the
 * gradients' running sums in gacc, then into the partials as convb_cols. */
AI void F(convb_rows)(const conv_ctx *c, int b0, int b1, int first, int ce, float *pw, float *pb, const int K,
                      const int L, const int scaled)
{
    int Cp = c->Cpad;
    float *gacc = tbuf(T_Y, (size_t)(K + 1) * Cp);
    memset(gacc, 0, (size_t)(K + 1) * Cp * sizeof *gacc);
    for (int b = b0; b < b1; b++) {
        size_t r0 = (size_t)b * L;
        int cv = 0;
        for (; cv + VL <= ce; cv += VL) F(convb_seq)(c, r0, cv, VL, gacc, K, L, scaled);
        if (cv < ce) F(convb_seq)(c, r0, cv, ce - cv, gacc, K, L, scaled);
    }
    for (int cv = 0; cv < ce; cv += VL) {
        V gw[ACH_MAX_CONV];
        for (int j = 0; j < K; j++) gw[j] = F(ld)(gacc + (size_t)j * Cp + cv);
        F(convb_partials)(c, first, cv, pw, pb, gw, F(ld)(gacc + (size_t)K * Cp + cv), K);
    }
}

/* One column block of convb_task: the common cases with constant K, L and
 * (in the fused block's paper shape) a scaled gradient */
AI void F(convb_block)(const conv_ctx *c, int b0, int b1, int cv, int nl, float *pw, float *pb)
{
    if (c->c_last && cv >= c->c_last) {
        if (c->K == 4) F(convb_last_cols)(c, b0, b1, !c->padd, cv, nl, pw, pb, 4);
        else F(convb_last_cols)(c, b0, b1, !c->padd, cv, nl, pw, pb, c->K);
    } else if (c->K == 4) F(convb_cols)(c, b0, b1, !c->padd, cv, nl, pw, pb, 4);
    else F(convb_cols)(c, b0, b1, !c->padd, cv, nl, pw, pb, c->K);
}

static void F(convb_task)(void *vc, int t)
{
    const conv_ctx *c = vc;
    int ns = ch_seqs(c->L), b0 = t * ns, b1 = b0 + ns < c->B ? b0 + ns : c->B;
    float *pw = c->part + (size_t)t * (c->K + 1) * c->Cpad, *pb = pw + (size_t)c->K * c->Cpad;
    int cv = 0;
    if (c->K == 4 && c->L == 8) { /* the paper's: all columns, or those before c_last (a multiple of VL) */
        cv = c->c_last ? c->c_last : c->C;
        if (c->gscale) F(convb_rows)(c, b0, b1, !c->padd, cv, pw, pb, 4, 8, 1);
        else F(convb_rows)(c, b0, b1, !c->padd, cv, pw, pb, 4, 8, 0);
    }
    for (; cv < c->C; cv += VL) {
        int nl = c->C - cv < VL ? c->C - cv : VL;
        if (nl == VL) F(convb_block)(c, b0, b1, cv, VL, pw, pb); /* as in convf_task */
        else F(convb_block)(c, b0, b1, cv, nl, pw, pb);
    }
}

static void F(convb_reduce)(void *vc, int t)
{
    const conv_ctx *c = vc;
    int K = c->K, Cp = c->Cpad, c0 = t * 64, c1 = c0 + 64 < c->C ? c0 + 64 : c->C;
    size_t stride = (size_t)(K + 1) * Cp;
    for (int ch = c0; ch < c1; ch++) {
        for (int j = 0; j <= K; j++) {
            float s = c->part[(size_t)j * Cp + ch];
            for (int k = 1; k < c->nchunks; k++) s += c->part[k * stride + (size_t)j * Cp + ch];
            if (j < K) c->dw[(size_t)ch * K + j] += s;
            else c->dbias[ch] += s;
        }
    }
}

static void F(conv1d_backward)(real *dinp, real *dw, real *dbias, const real *dout, const real *inp, int ldi,
                               const real *w, int B, int L, int C, int K)
{
    if (B <= 0 || L <= 0) return; /* no rows: nothing to add (the partials would be unset) */
    enter();
    conv_ctx c = {.dinp = dinp, .dw = dw, .dbias = dbias, .dout = dout, .inp = inp, .ldi = ldi, .B = B, .L = L,
                  .C = C, .K = K};
    F(conv_pack)(&c, w, NULL, 0);
    c.nchunks = ceil_div(B, ch_seqs(L));
    c.part = sbuf(S_PART, (size_t)c.nchunks * (K + 1) * c.Cpad);
    ach_parallel_for(c.nchunks, F(convb_task), &c);
    ach_parallel_for(ceil_div(C, 64), F(convb_reduce), &c);
    leave();
}

/* ---- elementwise ---- */
#define EW_RANGE(c, t, i0, i1) \
    size_t i0 = (size_t)(t) * CH_ELEMS, i1 = i0 + CH_ELEMS < (c)->n ? i0 + CH_ELEMS : (c)->n

static void F(silu_f_task)(void *vc, int t)
{
    const ew_ctx *c = vc;
    EW_RANGE(c, t, i0, i1);
    for (size_t i = i0; i < i1; i += VL) {
        int nl = i1 - i < VL ? (int)(i1 - i) : VL;
        F(stk)(c->out + i, F(vsilu)(F(ldk)(c->a + i, nl)), nl);
    }
}

static void F(silu_forward)(real *out, const real *inp, size_t n)
{
    ew_ctx c = {.out = out, .a = inp, .n = n};
    ach_parallel_for(ceil_div((long)n, CH_ELEMS), F(silu_f_task), &c);
}

static void F(silu_b_task)(void *vc, int t)
{
    const ew_ctx *c = vc;
    EW_RANGE(c, t, i0, i1);
    for (size_t i = i0; i < i1; i += VL) {
        int nl = i1 - i < VL ? (int)(i1 - i) : VL;
        V g = F(ldk)(c->b + i, nl) * F(vsilu_grad)(F(ldk)(c->a + i, nl));
        F(stk)(c->out + i, F(ldk)(c->out + i, nl) + g, nl);
    }
}

static void F(silu_backward)(real *dinp, const real *dout, const real *inp, size_t n)
{
    ew_ctx c = {.out = dinp, .a = inp, .b = dout, .n = n};
    ach_parallel_for(ceil_div((long)n, CH_ELEMS), F(silu_b_task), &c);
}

static void F(add_task)(void *vc, int t)
{
    const ew_ctx *c = vc;
    EW_RANGE(c, t, i0, i1);
    F(add_to)(c->out + i0, c->a + i0, i1 - i0);
}

static void F(add_inplace)(real *x, const real *y, size_t n)
{
    ew_ctx c = {.out = x, .a = y, .n = n};
    ach_parallel_for(ceil_div((long)n, CH_ELEMS), F(add_task), &c);
}

static void F(zero_task)(void *vc, int t)
{
    const ew_ctx *c = vc;
    EW_RANGE(c, t, i0, i1);
    memset(c->out + i0, 0, (i1 - i0) * sizeof(float));
}

static void F(zero)(real *p, size_t n)
{
    ew_ctx c = {.out = p, .n = n};
    ach_parallel_for(ceil_div((long)n, CH_ELEMS), F(zero_task), &c);
}

/* gate: rows x C, z with row stride ld */
static void F(gate_f_task)(void *vc, int t)
{
    const ew_ctx *c = vc;
    int r0 = t * CH_ROWS, r1 = r0 + CH_ROWS < c->rows ? r0 + CH_ROWS : c->rows, C = c->C;
    for (int r = r0; r < r1; r++)
        for (int k = 0; k < C; k += VL) {
            int nl = C - k < VL ? C - k : VL;
            V z = F(ldk)(c->b + (size_t)r * c->ld + k, nl);
            F(stk)(c->out + (size_t)r * C + k, F(ldk)(c->a + (size_t)r * C + k, nl) * F(vsilu)(z), nl);
        }
}

static void F(gate_forward)(real *out, const real *y, const real *z, int ldz, int rows, int C)
{
    ew_ctx c = {.out = out, .a = y, .b = z, .ld = ldz, .rows = rows, .C = C};
    ach_parallel_for(ceil_div(rows, CH_ROWS), F(gate_f_task), &c);
}

static void F(gate_b_task)(void *vc, int t)
{
    const ew_ctx *c = vc;
    int r0 = t * CH_ROWS, r1 = r0 + CH_ROWS < c->rows ? r0 + CH_ROWS : c->rows, C = c->C;
    for (int r = r0; r < r1; r++)
        for (int k = 0; k < C; k += VL) {
            int nl = C - k < VL ? C - k : VL;
            size_t i = (size_t)r * C + k, iz = (size_t)r * c->ld + k;
            V z = F(ldk)(c->b + iz, nl), g = F(ldk)(c->c + i, nl), y = F(ldk)(c->a + i, nl);
            V s = F(vsigmoid)(z), zs = z * s;
            V dy = g * zs, dz = g * y * F(silu_grad_of)(s, zs);
            F(stk)(c->out + i, F(ldk)(c->out + i, nl) + dy, nl);
            F(stk)(c->dx + iz, F(ldk)(c->dx + iz, nl) + dz, nl);
        }
}

static void F(gate_backward)(real *dy, real *dz, const real *dout, const real *y, const real *z, int ldz, int rows,
                             int C)
{
    ew_ctx c = {.out = dy, .dx = dz, .a = y, .b = z, .c = dout, .ld = ldz, .rows = rows, .C = C};
    ach_parallel_for(ceil_div(rows, CH_ROWS), F(gate_b_task), &c);
}

/* ---- RMSNorm ---- */
/* Rows [0, rows) of out = inp * rstd * w, rstd = 1/sqrt(mean(inp^2) + eps) */
static void F(norm_rows)(float *out, float *rstd, const float *inp, const float *w, int rows, int C, float eps)
{
    for (int r = 0; r < rows; r++) {
        const float *x = inp + (size_t)r * C;
        float *o = out + (size_t)r * C;
        V ss = (V){0};
        for (int k = 0; k < C; k += VL) {
            V xv = F(ldk)(x + k, C - k < VL ? C - k : VL);
            ss = F(fma)(xv, xv, ss);
        }
        float s = 1.0f / sqrtf(F(hsum)(ss) / C + eps);
        for (int k = 0; k < C; k += VL) {
            int nl = C - k < VL ? C - k : VL;
            F(stk)(o + k, F(ldk)(x + k, nl) * F(bc)(s) * F(ldk)(w + k, nl), nl);
        }
        rstd[r] = s;
    }
}

static void F(normf_task)(void *vc, int t)
{
    const norm_ctx *c = vc;
    int r0 = t * CH_ROWS, r1 = r0 + CH_ROWS < c->rows ? r0 + CH_ROWS : c->rows, C = c->C;
    F(norm_rows)(c->out + (size_t)r0 * C, c->rstd + r0, c->inp + (size_t)r0 * C, c->w, r1 - r0, C, c->eps);
}

static void F(rmsnorm_forward)(real *out, real *rstd, const real *inp, const real *w, int rows, int C, real eps)
{
    norm_ctx c = {.out = out, .rstd = rstd, .inp = inp, .w = w, .rows = rows, .C = C, .eps = eps};
    ach_parallel_for(ceil_div(rows, CH_ROWS), F(normf_task), &c);
}

/* Rows [0, rows): dinp += (or = when not add) the RMSNorm backward of
 * dout; the weight's gradient into the partial pw [Cpad] (overwritten, or
 * added to when padd). */
static void F(normb_rows)(float *dinp, int add, float *pw, int padd, const float *dout, const float *inp,
                          const float *w, const float *rstd, int rows, int C, int Cpad)
{
    if (!padd) memset(pw, 0, Cpad * sizeof *pw);
    for (int r = 0; r < rows; r++) {
        const float *x = inp + (size_t)r * C, *g = dout + (size_t)r * C;
        float *dx = dinp + (size_t)r * C, s = rstd[r];
        V dot = (V){0};
        for (int k = 0; k < C; k += VL) {
            int nl = C - k < VL ? C - k : VL;
            dot = F(fma)(F(ldk)(g + k, nl) * F(ldk)(w + k, nl), F(ldk)(x + k, nl), dot);
        }
        float kk = F(hsum)(dot) * s * s * s / C;
        for (int k = 0; k < C; k += VL) {
            int nl = C - k < VL ? C - k : VL;
            V xv = F(ldk)(x + k, nl), gv = F(ldk)(g + k, nl);
            V d = F(fma)(F(bc)(-kk), xv, F(bc)(s) * F(ldk)(w + k, nl) * gv);
            F(stk)(dx + k, add ? F(ldk)(dx + k, nl) + d : d, nl);
            F(st)(pw + k, F(fma)(gv * xv, F(bc)(s), F(ld)(pw + k)));
        }
    }
}

static void F(normb_task)(void *vc, int t)
{
    const norm_ctx *c = vc;
    int r0 = t * CH_ROWS, r1 = r0 + CH_ROWS < c->rows ? r0 + CH_ROWS : c->rows, C = c->C;
    F(normb_rows)(c->dinp + (size_t)r0 * C, 1, c->part + (size_t)t * c->Cpad, 0, c->dout + (size_t)r0 * C,
                  c->inp + (size_t)r0 * C, c->w, c->rs + r0, r1 - r0, C, c->Cpad);
}

static void F(normb_reduce)(void *vc, int t)
{
    const norm_ctx *c = vc;
    for (int k = t * VL; k < c->C && k < (t + 1) * VL; k++) {
        float s = c->part[k];
        for (int ch = 1; ch < c->nchunks; ch++) s += c->part[(size_t)ch * c->Cpad + k];
        c->dw[k] += s;
    }
}

static void F(rmsnorm_backward)(real *dinp, real *dw, const real *dout, const real *inp, const real *w,
                                const real *rstd, int rows, int C)
{
    if (rows <= 0) return;
    enter();
    norm_ctx c = {.dinp = dinp, .dw = dw, .dout = dout, .inp = inp, .w = w, .rs = rstd, .rows = rows, .C = C};
    c.Cpad = round_up(C, VL);
    c.nchunks = ceil_div(rows, CH_ROWS);
    c.part = sbuf(S_PART, (size_t)c.nchunks * c.Cpad);
    ach_parallel_for(c.nchunks, F(normb_task), &c);
    for (int t = 0; t < ceil_div(C, VL); t++) F(normb_reduce)(&c, t);
    leave();
}

/* ---- Mamba-2 SSD ---- */
/* Up to 8 vectors of out[0, n) = (out if add) + iw init + sum_{s in [s0, s1)}
 * w[s * ws] src[s * lds ..]: a short weighted sum of rows, the NV vectors
 * in registers so each broadcast weight feeds NV independent FMAs. */
AI void F(combo_nv)(float *out, int add, const float *w, long ws, const float *src, long lds, int s0, int s1,
                    const float *init, float iw, int n, const int NV)
{
    V acc[8];
#pragma GCC unroll 8
    for (int v = 0; v < NV; v++) {
        int nl = n - v * VL < VL ? n - v * VL : VL;
        acc[v] = init ? F(bc)(iw) * F(ldk)(init + v * VL, nl) : (V){0};
    }
    for (int s = s0; s < s1; s++) {
        V wv = F(bc)(w[s * ws]);
        const float *row = src + s * lds;
#pragma GCC unroll 8
        for (int v = 0; v < NV; v++) acc[v] = F(fma)(wv, F(ldk)(row + v * VL, n - v * VL < VL ? n - v * VL : VL), acc[v]);
    }
#pragma GCC unroll 8
    for (int v = 0; v < NV; v++) {
        int nl = n - v * VL < VL ? n - v * VL : VL;
        F(stk)(out + v * VL, add ? F(ldk)(out + v * VL, nl) + acc[v] : acc[v], nl);
    }
}

/* The rows i0 <= i < L of a triangular mixing: out[i * ldo ..] = combo_nv's
 * sum over s in [0, i] (lower) or [i, L) (upper), but not below s0 (the
 * rows of src before s0 are zero), of w[i * wi + s * ws] src[s * lds ..],
 * plus iw init[i * lds ..] when init is set, over n floats. One call per
 * sequence and head (L is small): the dispatch on the width is paid once,
 * not per row. */
AI void F(trimix_nv)(float *out, long ldo, int add, const float *w, long wi, long ws, const float *src, long lds,
                     const float *init, float iw, int i0, int s0, int L, int upper, int n, const int NV)
{
    for (int i = i0; i < L; i++) {
        int lo = upper ? i : 0;
        F(combo_nv)(out + i * ldo, add, w + i * wi, ws, src, lds, lo > s0 ? lo : s0, upper ? L : i + 1,
                    init ? init + i * lds : NULL, iw, n, NV);
    }
}

static void F(trimix)(float *out, long ldo, int add, const float *w, long wi, long ws, const float *src, long lds,
                      const float *init, float iw, int i0, int s0, int L, int upper, int n)
{
    for (int k = 0; k < n; k += 8 * VL) {
        int m = n - k < 8 * VL ? n - k : 8 * VL, nv = ceil_div(m, VL);
        float *o = out + k;
        const float *sr = src + k, *in = init ? init + k : NULL;
        switch (nv) {
        case 8: F(trimix_nv)(o, ldo, add, w, wi, ws, sr, lds, in, iw, i0, s0, L, upper, m, 8); break;
        case 4: F(trimix_nv)(o, ldo, add, w, wi, ws, sr, lds, in, iw, i0, s0, L, upper, m, 4); break;
        case 2: F(trimix_nv)(o, ldo, add, w, wi, ws, sr, lds, in, iw, i0, s0, L, upper, m, 2); break;
        default:
            for (int v = 0; v < nv; v++)
                F(trimix_nv)(o + v * VL, ldo, add, w, wi, ws, sr + v * VL, lds, in ? in + v * VL : NULL, iw, i0, s0, L,
                             upper, m - v * VL < VL ? m - v * VL : VL, 1);
        }
    }
}
/* out[s] = the lane sum of a[s], s < m <= 8 */
AI void F(hsum8)(float *out, V a[8], int m)
{
#if VL == 16
    /* three halvings, two vectors folded into one each time */
    V x[4], y[2], z[2]; /* (the loops unrolled, so these stay in registers) */
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++) /* lanes 0-7: a[2i] folded to 8 partial sums, 8-15: a[2i+1] */
        x[i] = _mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], 0x44) + _mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], 0xEE);
#pragma GCC unroll 2
    for (int i = 0; i < 2; i++) /* 128-bit quarters: 4 partial sums each of a[4i..4i+3] */
        y[i] = _mm512_shuffle_f32x4(x[2 * i], x[2 * i + 1], 0x88) + _mm512_shuffle_f32x4(x[2 * i], x[2 * i + 1], 0xDD);
#pragma GCC unroll 2
    for (int i = 0; i < 2; i++) { /* every lane of a quarter: its sum */
        z[i] = y[i] + _mm512_permute_ps(y[i], 0x4E);
        z[i] = z[i] + _mm512_permute_ps(z[i], 0xB1);
    }
    V r = _mm512_permutex2var_ps(z[0], _mm512_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28, 0, 0, 0, 0, 0, 0, 0, 0), z[1]);
    F(stn)(out, r, m);
#else
    for (int i = 0; i < m; i++) out[i] = F(hsum)(a[i]);
#endif
}

/* out[s] = a . b[s * ldb ..] over n floats, for s < ns: eight dot products
 * at a time, summed across lanes together. */
static void F(dots)(float *out, const float *a, const float *b, long ldb, int ns, int n)
{
    for (int s0 = 0; s0 < ns; s0 += 8) {
        int m = ns - s0 < 8 ? ns - s0 : 8;
        V acc[8];
#pragma GCC unroll 8
        for (int s = 0; s < 8; s++) acc[s] = (V){0};
        for (int k = 0; k < n; k += VL) {
            int nl = n - k < VL ? n - k : VL;
            V av = F(ldk)(a + k, nl);
#pragma GCC unroll 8
            for (int s = 0; s < 8; s++)
                if (s < m) acc[s] = F(fma)(av, F(ldk)(b + (s0 + s) * ldb + k, nl), acc[s]);
        }
        F(hsum8)(out + s0, acc, m);
    }
}

/* G[(t1 + r) * L + s1 + c] = A_{t1+r} . B_{s1+c} over n floats for r, c < 4
 * (c <= r only when diag): each chunk of the 8 rows is loaded once for 16
 * (or 10) products; each product is the same chain and lane sum as in dots. */
AI void F(dots4x4)(float *G, int L, const float *A, long lda, const float *B, long ldb, int n, int t1, int s1,
                   const int diag)
{
    V acc[4][4], v[16];
    float out[16];
#pragma GCC unroll 4
    for (int r = 0; r < 4; r++)
#pragma GCC unroll 4
        for (int c = 0; c < 4; c++) acc[r][c] = (V){0};
    for (int k = 0; k < n; k += VL) {
        int nl = n - k < VL ? n - k : VL;
        V av[4], bv[4];
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++) av[r] = F(ldk)(A + (t1 + r) * lda + k, nl), bv[r] = F(ldk)(B + (s1 + r) * ldb + k, nl);
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++)
#pragma GCC unroll 4
            for (int c = 0; c < 4; c++)
                if (!diag || c <= r) acc[r][c] = F(fma)(av[r], bv[c], acc[r][c]);
    }
    int m = 0;
#pragma GCC unroll 4
    for (int r = 0; r < 4; r++)
#pragma GCC unroll 4
        for (int c = 0; c < 4; c++)
            if (!diag || c <= r) v[m++] = acc[r][c];
    for (int i = m; i < 16; i++) v[i] = (V){0};
    F(hsum8)(out, v, 8);
    F(hsum8)(out + 8, v + 8, m - 8);
    m = 0;
#pragma GCC unroll 4
    for (int r = 0; r < 4; r++)
#pragma GCC unroll 4
        for (int c = 0; c < 4; c++)
            if (!diag || c <= r) G[(t1 + r) * L + s1 + c] = out[m++];
}

/* G[t * L + s] = A_t . B_s for s <= t, rows t0 <= t < L: 4 x 4 blocks of the
 * lower triangle (from a row t0 that is a multiple of 4), then row by row. */
static void F(tri_dots)(float *G, int L, const float *A, long lda, const float *B, long ldb, int n, int t0)
{
    int t = t0;
    if (t0 % 4 == 0)
        for (; t + 4 <= L; t += 4) {
            for (int s1 = 0; s1 < t; s1 += 4) F(dots4x4)(G, L, A, lda, B, ldb, n, t, s1, 0);
            F(dots4x4)(G, L, A, lda, B, ldb, n, t, t, 1);
        }
    for (; t < L; t++) F(dots)(G + t * L, A + t * lda, B, ldb, t + 1, n);
}

/* G[t,s] = C_t . B_s for s <= t, from row t0 on; zeros above it (y and
 * its gradient at the last row only: the other rows are not read) */
static void F(ssd_gram)(float *G, const float *Bm, const float *Cm, int ldx, int L, int N, int t0)
{
    for (int t = 0; t < t0; t++) memset(G + t * L, 0, (size_t)(t + 1) * sizeof *G);
    F(tri_dots)(G, L, Cm, ldx, Bm, ldx, N, t0);
}

/* softplus(dt + dt_bias) for the rows of sequences [b0, b1), every head,
 * as [row][H] (and its derivative when dsg), vectorised over the chunk. */
static float *F(ssd_delta)(const ssd_ctx *c, int b0, int b1, float **dsg)
{
    int H = c->H;
    size_t n = (size_t)(b1 - b0) * c->L * H, r0 = (size_t)b0 * c->L;
    float *x = tbuf(T_W2, n), *sp = tbuf(T_W3, n), *sg = dsg ? tbuf(T_W4, n) : NULL;
    for (size_t r = 0; r < n / H; r++) /* (no division per element) */
        for (int h = 0; h < H; h++) x[r * H + h] = c->dt[(r0 + r) * c->ldt + h] + c->dt_bias[h];
    for (size_t i = 0; i < n; i += VL) {
        int nl = n - i < VL ? (int)(n - i) : VL;
        V v = F(ldk)(x + i, nl);
        F(stk)(sp + i, F(vsoftplus)(v), nl);
        if (sg) F(stk)(sg + i, F(sel)(v > F(bc)(20.0f), F(bc)(1.0f), F(vsigmoid)(v)), nl);
    }
    if (dsg) *dsg = sg;
    return sp;
}

/* delta[t] = dsp[t * stride], Lm[t,s] = exp(sum_{k=s+1..t} delta_k A) for
 * s <= t (0 above the diagonal), M = G Lm delta_s. seg is L*L scratch. */
static void F(ssd_setup)(float *delta, float *Lm, float *M, float *seg, const float *G, const float *dsp, int stride,
                         float A, int L)
{
    for (int t = 0; t < L; t++) delta[t] = dsp[(size_t)t * stride];
    for (int t = 0; t < L; t++) {
        float sg = 0;
        for (int s = t; s >= 0; s--) {
            seg[t * L + s] = sg;
            sg += delta[s] * A;
        }
        for (int s = t + 1; s < L; s++) seg[t * L + s] = -1e30f;
    }
    for (int i = 0; i < L * L; i += VL) {
        int nl = L * L - i < VL ? L * L - i : VL;
        F(stk)(Lm + i, F(vexp)(F(ldk)(seg + i, nl)), nl);
    }
    for (int t = 0; t < L; t++)
        for (int s = 0; s <= t; s++) M[t * L + s] = G[t * L + s] * Lm[t * L + s] * delta[s];
}

static void F(ssdf_task)(void *vc, int task)
{
    const ssd_ctx *c = vc;
    int L = c->L, P = c->P, Di = c->H * c->P, ns = ch_seqs(L), b0 = task * ns;
    int b1 = b0 + ns < c->B ? b0 + ns : c->B;
    float *buf = tbuf(T_W1, ssd_keep_size(L, c->H) + (size_t)L * L), *seg = buf + ssd_keep_size(L, c->H);
    float *G, *delta, *Lm, *M;
    float *dsp = F(ssd_delta)(c, b0, b1, NULL);
    for (int b = b0; b < b1; b++) {
        size_t r0 = (size_t)b * L;
        ssd_kept(c, buf, b, b0, 0, &G, &delta, &Lm, &M);
        F(ssd_gram)(G, c->Bm + r0 * c->ldx, c->Cm + r0 * c->ldx, c->ldx, L, c->N, c->y_last ? L - 1 : 0);
        for (int h = 0; h < c->H; h++) {
            ssd_kept(c, buf, b, b0, h, &G, &delta, &Lm, &M);
            F(ssd_setup)(delta, Lm, M, seg, G, dsp + (r0 - (size_t)b0 * L) * c->H + h, c->H, c->A[h], L);
            const float *x = c->x + r0 * c->ldx + h * P;
            /* y_t = D x_t + sum_{s<=t} M[t,s] x_s */
            F(trimix)(c->y + r0 * Di + h * P, Di, 0, M, L, 1, x, c->ldx, x, c->D[h], c->y_last ? L - 1 : 0, 0, L, 0, P);
        }
    }
}

static float *F(ssd_A)(const float *A_log, int H, int base)
{
    float *A = sbuf(base + S_MISC, H);
    for (int h = 0; h < H; h++) A[h] = -r_exp(A_log[h]);
    return A;
}

/* Blocking (block != NULL) is an analysis probe: it takes the reference path. */
static void F(mamba2_ssd_forward)(real *y, const real *x, const real *Bm, const real *Cm, int ldx, const real *dt,
                                  int ldt, const real *dt_bias, const real *A_log, const real *D,
                                  const unsigned char *block, int B, int L, int H, int P, int N, real *work)
{
    if (block) {
        ach_cpu_kernels.mamba2_ssd_forward(y, x, Bm, Cm, ldx, dt, ldt, dt_bias, A_log, D, block, B, L, H, P, N, work);
        return;
    }
    enter();
    ssd_ctx c = {.y = y, .x = x, .Bm = Bm, .Cm = Cm, .ldx = ldx, .dt = dt, .ldt = ldt, .dt_bias = dt_bias,
                 .D = D, .B = B, .L = L, .H = H, .P = P, .N = N};
    c.A = F(ssd_A)(A_log, H, 0);
    ach_parallel_for(ceil_div(B, ch_seqs(L)), F(ssdf_task), &c);
    leave();
}

static void F(ssdb_task)(void *vc, int task)
{
    const ssd_ctx *c = vc;
    int L = c->L, P = c->P, N = c->N, H = c->H, Di = H * P, ns = ch_seqs(L), b0 = task * ns;
    int b1 = b0 + ns < c->B ? b0 + ns : c->B;
    size_t ldx = c->ldx;
    float *buf = tbuf(T_W1, ssd_keep_size(L, H) + (size_t)3 * L * L + 2 * L), *seg = buf + ssd_keep_size(L, H);
    float *gG = seg + L * L, *gM = gG + L * L, *gdelta = gM + L * L, *ga = gdelta + L;
    float *G, *delta, *Lm, *M;
    float *pD = c->part + (size_t)task * 3 * H, *pdtb = pD + H, *pAl = pdtb + H;
    if (!c->padd)
        for (int h = 0; h < 3 * H; h++) pD[h] = 0;
    float *dsg, *dsp = F(ssd_delta)(c, b0, b1, &dsg);
    int t0 = c->dy_last ? L - 1 : 0; /* dy's rows before t0 are zero, and so are gM's, gG's and dC's */
    for (int b = b0; b < b1; b++) {
        size_t r0 = (size_t)b * L, l0 = (r0 - (size_t)b0 * L) * H;
        const float *Bm = c->Bm + r0 * ldx, *Cm = c->Cm + r0 * ldx;
        ssd_kept(c, buf, b, b0, 0, &G, &delta, &Lm, &M);
        if (!c->keep) F(ssd_gram)(G, Bm, Cm, c->ldx, L, N, t0);
        for (int i = 0; i < L * L; i++) gG[i] = 0;
        for (int h = 0; h < H; h++) {
            float A = c->A[h], gA = 0;
            ssd_kept(c, buf, b, b0, h, &G, &delta, &Lm, &M);
            if (!c->keep) F(ssd_setup)(delta, Lm, M, seg, G, dsp + l0 + h, H, A, L);
            const float *x = c->x + r0 * ldx + h * P, *gy = c->dy + r0 * Di + h * P;
            float *dx = c->dx + r0 * ldx + h * P;
            /* gM[t,s] = gy_t . x_s */
            F(tri_dots)(gM, L, gy, Di, x, ldx, P, t0);
            /* dx_s += D gy_s + sum_{t >= s} M[t,s] gy_t */
            F(trimix)(dx, ldx, !c->set, M, 1, L, gy, Di, gy, c->D[h], 0, t0, L, 1, P);
            for (int t = 0; t < L; t++) gdelta[t] = ga[t] = 0;
            for (int t = t0; t < L; t++) {
                float run = 0;
                pD[h] += gM[t * L + t];
                for (int s = 0; s <= t; s++) {
                    float g = gM[t * L + s], lm = Lm[t * L + s], gg = G[t * L + s];
                    gG[t * L + s] += g * lm * delta[s];
                    gdelta[s] += g * gg * lm;
                    float q = g * gg * delta[s] * lm;
                    if (s > 0) ga[s] += run;
                    run += q;
                }
            }
            for (int k = 0; k < L; k++) {
                gdelta[k] += ga[k] * A;
                gA += ga[k] * delta[k];
                size_t i = (r0 + k) * c->ldt + h;
                float g = gdelta[k] * dsg[l0 + (size_t)k * H + h];
                c->ddt[i] = c->set ? g : c->ddt[i] + g;
                pdtb[h] += g;
            }
            pAl[h] += gA * A;
        }
        /* dC_t += sum_{s<=t} gG[t,s] B_s; dB_s += sum_{t>=s} gG[t,s] C_t */
        if (c->set)
            for (int t = 0; t < t0; t++) memset(c->dCm + (r0 + t) * ldx, 0, N * sizeof(float));
        F(trimix)(c->dCm + r0 * ldx, ldx, !c->set, gG, L, 1, Bm, ldx, NULL, 0, t0, 0, L, 0, N);
        F(trimix)(c->dBm + r0 * ldx, ldx, !c->set, gG, 1, L, Cm, ldx, NULL, 0, 0, t0, L, 1, N);
    }
}

/* Adds the per-task partials of ssdb_task, in task order. */
static void F(ssd_reduce)(const ssd_ctx *c, float *dD, float *ddt_bias, float *dA_log)
{
    int H = c->H;
    for (int h = 0; h < H; h++) {
        float sD = 0, sdtb = 0, sAl = 0;
        for (int k = 0; k < c->nchunks; k++) {
            const float *p = c->part + (size_t)k * 3 * H;
            sD += p[h], sdtb += p[H + h], sAl += p[2 * H + h];
        }
        dD[h] += sD, ddt_bias[h] += sdtb, dA_log[h] += sAl;
    }
}

static void F(mamba2_ssd_backward)(real *dx, real *dBm, real *dCm, real *ddt, real *ddt_bias, real *dA_log,
                                   real *dD, const real *dy, const real *x, const real *Bm, const real *Cm, int ldx,
                                   const real *dt, int ldt, const real *dt_bias, const real *A_log, const real *D,
                                   const unsigned char *block, int B, int L, int H, int P, int N, real *work)
{
    if (block) {
        ach_cpu_kernels.mamba2_ssd_backward(dx, dBm, dCm, ddt, ddt_bias, dA_log, dD, dy, x, Bm, Cm, ldx, dt, ldt,
                                            dt_bias, A_log, D, block, B, L, H, P, N, work);
        return;
    }
    if (B <= 0 || L <= 0) return; /* no rows: nothing to add (the partials would be unset) */
    enter();
    ssd_ctx c = {.dx = dx, .dBm = dBm, .dCm = dCm, .ddt = ddt, .dy = dy, .x = x, .Bm = Bm, .Cm = Cm, .ldx = ldx,
                 .dt = dt, .ldt = ldt, .dt_bias = dt_bias, .D = D, .B = B, .L = L, .H = H, .P = P, .N = N};
    c.A = F(ssd_A)(A_log, H, 0);
    c.nchunks = ceil_div(B, ch_seqs(L));
    c.part = sbuf(S_PART, (size_t)c.nchunks * 3 * H);
    ach_parallel_for(c.nchunks, F(ssdb_task), &c);
    F(ssd_reduce)(&c, dD, ddt_bias, dA_log);
    leave();
}

/* ---- the fused Mamba-2 block ----
 * One task per block of sequences (4 sub-blocks, see m2_setup) runs the
 * whole residual block (pre-norm, mixer, residual add) on one sub-block's
 * rows after another, so the intermediates (xn, proj, act, y, gated,
 * normed and their gradients) stay in this core's cache instead of round
 * trips to memory. Nothing but the output is written: a backward on its own
 * recomputes the forward from the block's input (about a third more
 * arithmetic, but a layer then moves ~10 MB through memory per step
 * instead of ~150 MB). A training step does better (mamba2_train): each
 * sub-block goes forward through every block, keeping each one's
 * activations, through the head (the loss depends on a sequence's last
 * position only, so a sub-block's loss gradient is known at once; the last
 * block's SSD output, gated norm and out_proj are needed at those rows
 * only), and back through every block: no forward twice, nothing but the
 * input's gradient written. The weight gradients go to per-task partials
 * summed in task order, as in the single kernels, so results do not depend
 * on the thread count. */

/* gated = y silu(z) (sigmoid(z) kept in sz unless NULL), then normed =
 * rmsnorm(gated) w, for each row; y, gated, normed, sz are [rows, C]. */
static void F(gatenorm_rows)(float *normed, float *gated, float *rstd, float *sz, const float *y, const float *z,
                             int ldz, const float *w, int rows, int C, float eps)
{
    for (int r = 0; r < rows; r++)
        for (int k = 0; k < C; k += VL) {
            int nl = C - k < VL ? C - k : VL;
            size_t i = (size_t)r * C + k;
            V zv = F(ldk)(z + (size_t)r * ldz + k, nl), sg = F(vsigmoid)(zv);
            if (sz) F(stk)(sz + i, sg, nl);
            F(stk)(gated + i, F(ldk)(y + i, nl) * (zv * sg), nl);
        }
    F(norm_rows)(normed, rstd, gated, w, rows, C, eps);
}

/* Backward of gatenorm_rows (sz its sigmoid(z)): dy and dz (row stride ldz)
 * overwritten from dnormed; the norm weight's gradient into the partial pw
 * [Cpad] (added to when padd); dgated is [rows, C] scratch. */
static void F(gatenorm_back_rows)(float *dy, float *dz, float *pw, int padd, float *dgated, const float *dnormed,
                                  const float *gated, const float *rstd, const float *sz, const float *y,
                                  const float *z, int ldz, const float *w, int rows, int C, int Cpad)
{
    F(normb_rows)(dgated, 0, pw, padd, dnormed, gated, w, rstd, rows, C, Cpad);
    for (int r = 0; r < rows; r++)
        for (int k = 0; k < C; k += VL) {
            int nl = C - k < VL ? C - k : VL;
            size_t i = (size_t)r * C + k;
            V dg = F(ldk)(dgated + i, nl), zv = F(ldk)(z + (size_t)r * ldz + k, nl), sg = F(ldk)(sz + i, nl);
            V zs = zv * sg;
            F(stk)(dy + i, dg * zs, nl);
            F(stk)(dz + (size_t)r * ldz + k, dg * F(ldk)(y + i, nl) * F(silu_grad_of)(sg, zs), nl);
        }
}

/* The sequences of task t: its first row *r0, sequence count *nb. */
static void F(m2_block)(const m2_ctx *c, int t, size_t *r0, int *nb)
{
    int B = c->mx->B, b0 = t * c->nseq;
    *nb = b0 + c->nseq < B ? c->nseq : B - b0;
    *r0 = (size_t)b0 * c->mx->L;
}

/* Carves this thread's block scratch for rows rows: na activation sets a[],
 * each (when g) with what a backward reuses (sg, keep, sz), then g, the
 * gradients; then (xs, when nxs) nxs blocks of rows of d_model floats. */
static void F(m2_scratch)(const m2_ctx *c, int rows, m2_acts *a, int na, m2_acts *g, float **xs, int nxs)
{
    size_t nx = round_up(rows * c->mx->d_model, VL), np = (size_t)rows * c->ldpj;
    size_t nc = round_up(rows * c->Cd, VL), ni = round_up(rows * c->Di, VL), nr = round_up(rows, VL);
    size_t fwd = nx + np + nc + 3 * ni + 2 * nr;
    size_t nk = round_up((int)(c->sub * ssd_keep_size(c->mx->L, c->mx->nheads)), VL), kept = g ? nc + nk + ni : 0;
    float *p = tbuf(T_F, na * (fwd + kept) + (g ? fwd : 0) + (size_t)nxs * nx);
    for (int i = 0; i <= na; i++) {
        m2_acts *s = i < na ? &a[i] : g;
        if (!s) break;
        s->xn = p, s->rstdx = p + nx, s->proj = s->rstdx + nr, s->act = s->proj + np, s->y = s->act + nc;
        s->gated = s->y + ni, s->normed = s->gated + ni, s->rstd = s->normed + ni, p = s->rstd + nr;
        s->sg = s->keep = s->sz = NULL;
        if (g && i < na) s->sg = p, s->keep = p + nc, s->sz = s->keep + nk, p = s->sz + ni;
    }
    if (xs) *xs = p;
}

/* in_proj for the last block of mamba2_train (c->sparse_last), whose loss
 * reads each sequence's last row only: z there, C at the rows that row's
 * conv reads (the last d_conv), x, B and dt at every row. The other
 * entries of proj are neither written nor read; each one written is the
 * same FMA chain as in the whole product. */
static void F(m2_inproj_last)(const m2_ctx *c, const m2_acts *a, int ns)
{
    const ach_mamba2_block *mx = c->mx;
    int D = mx->d_model, L = mx->L, Di = c->Di, N = mx->d_state, ld = c->ldpj, ldb = round_up(c->Pj, VL);
    int cdt = Di + c->Cd, cC = cdt - N, k0 = c->last_k0; /* dt's and C's columns */
    F(gemm_rows)(a->proj + Di, ld, a->xn, D, c->win_t + Di, ldb, D, Di + N, NULL, 0, 0, ns * L);
    F(gemm_rows)(a->proj + cdt, ld, a->xn, D, c->win_t + cdt, ldb, D, mx->nheads, NULL, 0, 0, ns * L);
    F(gemm_rows)(a->proj + (size_t)(L - 1) * ld, L * ld, a->xn + (size_t)(L - 1) * D, L * D, c->win_t, ldb, D, Di,
                 NULL, 0, 0, ns);
    for (int q = 0; q < ns; q++)
        F(gemm_rows)(a->proj + cC, ld, a->xn, D, c->win_t + cC, ldb, D, N, NULL, 0, q * L + k0, (q + 1) * L);
}

/* in_proj's backward after m2_inproj_last: d_proj is zero (and unwritten)
 * where proj was skipped. The weight gradient's entries are the same FMA
 * chains as the whole product's (C's rows gathered in order); d_xn sums the
 * parts one after the other. */
static void F(m2_inproj_back_last)(const m2_ctx *c, int t, int ns, int padd, const m2_acts *a, const m2_acts *g)
{
    const ach_mamba2_block *mx = c->mx;
    const mmb_ctx *in = &c->in; /* over_k, its weight unpadded: D is whole vectors */
    int D = mx->d_model, L = mx->L, Di = c->Di, N = mx->d_state, H = mx->nheads, ld = c->ldpj, ldw = in->ldwp;
    int cdt = Di + c->Cd, cC = cdt - N, k0 = c->last_k0, nk = L - k0, rows = ns * L;
    const float *W = in->wp;
    F(gemm_rows)(g->xn, D, g->proj + Di, ld, W + (size_t)Di * ldw, ldw, Di + N, D, NULL, 0, 0, rows);
    F(gemm_rows)(g->xn, D, g->proj + cdt, ld, W + (size_t)cdt * ldw, ldw, H, D, NULL, 1, 0, rows);
    for (int q = 0; q < ns; q++)
        F(gemm_rows)(g->xn, D, g->proj + cC, ld, W + (size_t)cC * ldw, ldw, N, D, NULL, 1, q * L + k0, (q + 1) * L);
    F(gemm_rows)(g->xn + (size_t)(L - 1) * D, L * D, g->proj + (size_t)(L - 1) * ld, L * ld, W, ldw, Di, D, NULL, 1,
                 0, ns);
    float *P = in->part + (size_t)t * in->pstride;
    int ldp = in->ldp;
    F(gemm_atb)(P + (size_t)Di * ldp, ldp, g->proj + Di, ld, a->xn, D, Di + N, D, rows, padd);
    F(gemm_atb)(P + (size_t)cdt * ldp, ldp, g->proj + cdt, ld, a->xn, D, H, D, rows, padd);
    F(gemm_atb)(P, ldp, g->proj + (size_t)(L - 1) * ld, L * ld, a->xn + (size_t)(L - 1) * D, L * D, Di, D, ns, padd);
    float *gc = tbuf(T_Y, (size_t)ns * nk * (N + D)), *xc = gc + (size_t)ns * nk * N;
    for (int q = 0; q < ns; q++)
        for (int r = 0; r < nk; r++) {
            size_t m = (size_t)q * L + k0 + r, i = (size_t)q * nk + r;
            memcpy(gc + i * N, g->proj + m * ld + cC, N * sizeof *gc);
            memcpy(xc + i * D, a->xn + m * D, D * sizeof *xc);
        }
    F(gemm_atb)(P + (size_t)cC * ldp, ldp, gc, N, xc, D, N, D, ns * nk, padd);
}

/* The block's forward up to the out_proj input, for the rows of nb
 * sequences whose input is x, into scratch; with last_only, up to the SSD,
 * whose output y is then computed at each sequence's last row only (the
 * caller gates those: m2_gate_last). rk: NULL, or the rows' keys (c->keys;
 * xn and rstdx are then not written). */
static void F(m2_forward_rows)(const m2_ctx *c, const float *x, int nb, int rows, const m2_acts *a, int last_only,
                               const int *rk)
{
    const ach_mamba2_block *mx = c->mx;
    int D = mx->d_model, Di = c->Di, Cd = c->Cd, Pj = c->Pj, sparse = last_only && c->sparse_last;
    if (rk) /* keyed (m2_keys): in_proj's rows as computed per key, the same values; the
             * conv reads its part from the keys' rows, z and dt are copied */
        for (int r = 0; r < rows; r++) {
            const float *kp = c->keys->proj + (size_t)rk[r] * c->ldpj;
            float *pr = a->proj + (size_t)r * c->ldpj;
            memcpy(pr, kp, Di * sizeof(float));
            memcpy(pr + Di + Cd, kp + Di + Cd, (Pj - Di - Cd) * sizeof(float));
        }
    else {
        F(norm_rows)(a->xn, a->rstdx, x, mx->norm, rows, D, mx->eps);
        if (sparse) F(m2_inproj_last)(c, a, nb);
        else F(gemm_rows)(a->proj, c->ldpj, a->xn, D, c->win_t, round_up(Pj, VL), D, Pj, NULL, 0, 0, rows);
    }
    conv_ctx cv = c->conv;
    cv.out = a->act, cv.out2 = a->sg, cv.inp = (rk ? c->keys->proj : a->proj) + Di, cv.rk = rk, cv.B = nb;
    cv.mode = a->sg ? CONV_SILU_GRAD : CONV_SILU;
    cv.c_last = sparse ? Di + mx->d_state : 0; /* C at the last row only */
    F(convf_task)(&cv, 0);
    ssd_ctx sd = c->ssd;
    sd.y = a->y, sd.x = a->act, sd.Bm = a->act + Di, sd.Cm = a->act + Di + mx->d_state, sd.dt = a->proj + Di + Cd;
    sd.B = nb, sd.keep = a->keep, sd.y_last = last_only;
    F(ssdf_task)(&sd, 0);
    if (!last_only)
        F(gatenorm_rows)(a->normed, a->gated, a->rstd, a->sz, a->y, a->proj, c->ldpj, mx->gnorm, rows, Di, mx->eps);
}

/* out = x + out_proj(normed), the block's output rows */
static void F(m2_out_rows)(const m2_ctx *c, float *out, const float *x, const m2_acts *a, int rows)
{
    int D = c->mx->d_model;
    F(gemm_rows_x)(out, D, x, a->normed, c->Di, c->wout_t, round_up(D, VL), c->Di, D, NULL, 0, rows);
}

static void F(m2f_task)(void *vc, int t)
{
    const m2_ctx *c = vc;
    size_t r0;
    int nb, D = c->mx->d_model, L = c->mx->L;
    F(m2_block)(c, t, &r0, &nb);
    m2_acts a;
    F(m2_scratch)(c, c->sub * L, &a, 1, NULL, NULL, 0);
    for (int s0 = 0; s0 < nb; s0 += c->sub) {
        int ns = nb - s0 < c->sub ? nb - s0 : c->sub, rows = ns * L;
        size_t r = r0 + (size_t)s0 * L;
        F(m2_forward_rows)(c, c->mx->resid + r * D, ns, rows, &a, 0, NULL);
        F(m2_out_rows)(c, c->out + r * D, c->mx->resid + r * D, &a, rows);
    }
}

/* Packs the forward's weights; the partials and packs of a backward come
 * from m2_back_setup. Shared buffers from slot base on. */
static void F(m2_setup)(m2_ctx *c, const ach_mamba2_block *mx, int base)
{
    c->mx = mx;
    c->Di = mx->nheads * mx->headdim, c->Cd = c->Di + 2 * mx->d_state, c->Pj = 2 * c->Di + 2 * mx->d_state + mx->nheads;
    c->ldpj = round_up(c->Pj, VL);
    c->sparse_last = c->Di % VL == 0 && mx->d_state % VL == 0 && mx->d_model % VL == 0;
    c->last_k0 = mx->L > mx->d_conv ? mx->L - mx->d_conv : 0;
    /* A task runs its rows as four sub-blocks of half the usual task
     * (128 rows at the paper's shape): the backward's scratch for 256 rows
     * (activations and their gradients, ~2.3 MB) would overflow a 2 MB L2.
     * The weight-gradient partials are one per task, the later sub-blocks
     * adding to them: a quarter of the partials to write and reduce. */
    c->sub = (ch_seqs(mx->L) + 1) / 2;
    c->nseq = 4 * c->sub, c->nchunks = ceil_div(mx->B, c->nseq);
    c->conv = (conv_ctx){.ldi = c->ldpj, .L = mx->L, .C = c->Cd, .K = mx->d_conv, .nchunks = c->nchunks, .set = 1};
    F(conv_pack)(&c->conv, mx->conv_w, mx->conv_b, base);
    c->ssd = (ssd_ctx){.ldx = c->Cd, .ldt = c->ldpj, .dt_bias = mx->dt_bias, .D = mx->D, .L = mx->L, .H = mx->nheads,
                       .P = mx->headdim, .N = mx->d_state, .nchunks = c->nchunks, .set = 1};
    c->ssd.A = F(ssd_A)(mx->A_log, mx->nheads, base);
    c->win_t = F(pack_t)(base + S_PACK2, mx->in_proj, c->Pj, mx->d_model);
}

static void F(mamba2_block_forward)(const ach_mamba2_block *mx, real *out)
{
    enter();
    m2_ctx c = {.out = out};
    F(m2_setup)(&c, mx, 0);
    c.wout_t = F(pack_t)(S_PACK3, mx->out_proj, mx->d_model, c.Di);
    ach_parallel_for(c.nchunks, F(m2f_task), &c);
    leave();
}

/* The backward's packed weights and per-task partials (slots from base). */
static void F(m2_back_setup)(m2_ctx *c, int base)
{
    const ach_mamba2_block *mx = c->mx;
    int D = mx->d_model;
    c->in = (mmb_ctx){.dw = mx->g_in_proj, .ldi = D, .ldd = c->ldpj, .K = D, .N = c->Pj};
    F(mmb_setup)(&c->in, mx->in_proj, base + S_PACK4, base + S_PART, c->nchunks);
    c->outp = (mmb_ctx){.dw = mx->g_out_proj, .ldi = c->Di, .ldd = D, .K = c->Di, .N = D};
    F(mmb_setup)(&c->outp, mx->out_proj, base + S_PACK3, base + S_PART2, c->nchunks);
    c->conv.dw = mx->g_conv_w, c->conv.dbias = mx->g_conv_b;
    c->conv.part = sbuf(base + S_PART3, (size_t)c->nchunks * (mx->d_conv + 1) * c->conv.Cpad);
    c->gnorm = (norm_ctx){.dw = mx->g_gnorm, .C = c->Di, .Cpad = round_up(c->Di, VL), .nchunks = c->nchunks};
    c->gnorm.part = sbuf(base + S_PART4, (size_t)c->nchunks * c->gnorm.Cpad);
    c->norm = (norm_ctx){.dw = mx->g_norm, .C = D, .Cpad = round_up(D, VL), .nchunks = c->nchunks};
    c->norm.part = sbuf(base + S_PART6, (size_t)c->nchunks * c->norm.Cpad);
    c->ssd.part = sbuf(base + S_PART5, (size_t)c->nchunks * 3 * mx->nheads);
}

/* The partials of every task, in task order, added to the gradients. */
static void F(m2_reduce)(m2_ctx *c)
{
    const ach_mamba2_block *mx = c->mx;
    int D = mx->d_model;
    ach_parallel_for(ceil_div(c->Pj, RED_ROWS), F(mmb_reduce), &c->in);
    ach_parallel_for(ceil_div(D, RED_ROWS), F(mmb_reduce), &c->outp);
    ach_parallel_for(ceil_div(c->Cd, 64), F(convb_reduce), &c->conv);
    for (int t = 0; t < ceil_div(c->Di, VL); t++) F(normb_reduce)(&c->gnorm, t);
    for (int t = 0; t < ceil_div(D, VL); t++) F(normb_reduce)(&c->norm, t);
    F(ssd_reduce)(&c->ssd, mx->g_D, mx->g_dt_bias, mx->g_A_log);
}

/* A m2_keysum's layout from p (m2_keysum_size floats) */
static m2_keysum F(m2_keysum_at)(float *p, int n, int ld)
{
    m2_keysum s = {.sum = p, .count = (int *)(p + (size_t)n * ld)};
    s.list = s.count + 1, s.seen = (unsigned char *)(s.list + n);
    return s;
}
static size_t F(m2_keysum_size)(int n, int ld) { return (size_t)n * ld + n + 1 + (n + 3) / 4; }
static m2_keysum F(m2_keysum_mine)(const m2_ctx *c)
{
    int n = c->keys->n, ld = c->ldpj;
    return F(m2_keysum_at)(tbuf(T_KEYS, F(m2_keysum_size)(n, ld)), n, ld);
}

/* d += g over ld floats, or d = g when *has is 0 (then set): 1 when set */
AI int F(sum_row)(float *d, const float *g, int ld, unsigned char *has)
{
    if (*has) {
        F(add_to)(d, g, ld);
        return 0;
    }
    memcpy(d, g, ld * sizeof *d), *has = 1;
    return 1;
}

/* A task's d_proj rows added to its per-key sums (in this thread's
 * scratch), in row order; a key's first row in the task sets its sum (padd
 * is 0 on the task's first sub-block). */
static void F(m2_keys_add)(const m2_ctx *c, int padd, const float *dproj, const int *rk, int rows)
{
    int ld = c->ldpj;
    m2_keysum s = F(m2_keysum_mine)(c);
    if (!padd) memset(s.seen, 0, (size_t)c->keys->n), *s.count = 0;
    for (int r = 0; r < rows; r++) {
        int j = rk[r];
        if (F(sum_row)(s.sum + (size_t)j * ld, dproj + (size_t)r * ld, ld, &s.seen[j])) s.list[(*s.count)++] = j;
    }
}

/* A task's sums added to the batch's: a key's first task sets it */
static void F(m2_keys_merge)(m2_keys *k, m2_keysum s, int ld)
{
    for (int i = 0; i < *s.count; i++) {
        int j = s.list[i];
        F(sum_row)(k->sum + (size_t)j * ld, s.sum + (size_t)j * ld, ld, &k->has[j]);
    }
}

/* The partials a task of mamba2_train writes, in a fixed order: pointers
 * to their part fields in s's contexts and their per-task floats (n);
 * returns the count. The keyed block's in_proj and pre-norm partials come
 * from m2_keys_back, not from the tasks. */
static int F(m2_parts)(m2s_ctx *s, float **field[M2_MAX_PARTS], size_t n[M2_MAX_PARTS])
{
    int k = 0;
    for (int l = 0; l < s->n; l++) {
        m2_ctx *c = &s->c[l];
        if (!c->keys) {
            field[k] = &c->in.part, n[k++] = c->in.pstride;
            field[k] = &c->norm.part, n[k++] = c->norm.Cpad;
        }
        field[k] = &c->outp.part, n[k++] = c->outp.pstride;
        field[k] = &c->conv.part, n[k++] = (size_t)(c->conv.K + 1) * c->conv.Cpad;
        field[k] = &c->gnorm.part, n[k++] = c->gnorm.Cpad;
        field[k] = &c->ssd.part, n[k++] = (size_t)3 * c->mx->nheads;
    }
    field[k] = &s->hmm.part, n[k++] = s->hmm.pstride;
    field[k] = &s->hnorm.part, n[k++] = s->hnorm.Cpad;
    return k;
}

/* Task t's results merged: its partials (from src, laid out as m2_parts,
 * or from its stash slots when src is NULL) set slot 0 (task 0) or are
 * added to it, elementwise as the reductions add the tasks' partials; its
 * per-key sums (from this thread's, or its stash slot) go into the batch's. */
static void F(m2_merge_task)(const m2s_ctx *s, int t, const float *src)
{
    for (int i = 0; i < s->nparts; i++) {
        size_t n = s->part_n[i];
        float *d = s->part[i];
        const float *p = src ? src : s->part[i] + (size_t)t * n;
        if (src) src += n;
        if (t == 0) memcpy(d, p, n * sizeof *d);
        else F(add_to)(d, p, n);
    }
    const m2_ctx *c = &s->c[0];
    if (c->keys) {
        m2_keys *k = c->keys;
        m2_keysum ks = src ? F(m2_keysum_mine)(c) : F(m2_keysum_at)(k->stash + (size_t)t * k->stride, k->n, c->ldpj);
        F(m2_keys_merge)(k, ks, c->ldpj);
    }
}

/* Task t's results (partials in mine, per-key sums in this thread's
 * table) copied to its stash slots. */
static void F(m2_stash_task)(const m2s_ctx *s, int t, const float *mine)
{
    for (int i = 0; i < s->nparts; i++) {
        size_t n = s->part_n[i];
        memcpy(s->part[i] + (size_t)t * n, mine, n * sizeof *mine);
        mine += n;
    }
    const m2_ctx *c = &s->c[0];
    if (c->keys) {
        m2_keys *k = c->keys;
        int ld = c->ldpj;
        m2_keysum m = F(m2_keysum_mine)(c), d = F(m2_keysum_at)(k->stash + (size_t)t * k->stride, k->n, ld);
        *d.count = *m.count;
        for (int i = 0; i < *m.count; i++) {
            int j = d.list[i] = m.list[i];
            memcpy(d.sum + (size_t)j * ld, m.sum + (size_t)j * ld, ld * sizeof(float));
        }
    }
}

/* At the end of task t: its results (partials in mine, per-key sums in
 * this thread's table) are merged in task order, whatever thread ran which
 * task (so any thread count gives the same bits). A task that ends before
 * those ahead of it are merged stashes its results instead, and whoever
 * merges the task ahead merges it too; one thread merges each task as it
 * ends, with no copy, and its partials stay in one warm table instead of
 * a fresh slot per task. */
static void F(m2_task_done)(const m2s_ctx *s, int t, const float *mine)
{
    m2_order *o = s->order;
    int nch = s->c[0].nchunks;
    pthread_mutex_lock(&order_mu);
    if (o->merged == t) F(m2_merge_task)(s, t, mine), o->merged++;
    else {
        pthread_mutex_unlock(&order_mu);
        F(m2_stash_task)(s, t, mine);
        pthread_mutex_lock(&order_mu);
        o->stashed[t] = 1;
    }
    while (o->merged < nch && o->stashed[o->merged]) F(m2_merge_task)(s, o->merged, NULL), o->merged++;
    pthread_mutex_unlock(&order_mu);
}

/* The block's backward below the gated norm, from g->y (d_y) and the
 * gate's d_z in g->proj: see m2_back_rows. */
static void F(m2_back_mixer)(const m2_ctx *c, int t, int ns, int rows, int padd, const float *x, const m2_acts *a,
                             const m2_acts *g, float *dout, int dy_last, const int *rk)
{
    const ach_mamba2_block *mx = c->mx;
    int D = mx->d_model, Di = c->Di, Cd = c->Cd, N = mx->d_state;
    ssd_ctx sd = c->ssd;
    sd.dx = g->act, sd.dBm = g->act + Di, sd.dCm = g->act + Di + N, sd.ddt = g->proj + Di + Cd, sd.dy = g->y;
    sd.x = a->act, sd.Bm = a->act + Di, sd.Cm = a->act + Di + N, sd.dt = a->proj + Di + Cd, sd.B = ns;
    sd.keep = a->keep, sd.padd = padd, sd.dy_last = dy_last;
    sd.part = c->ssd.part + (size_t)t * 3 * mx->nheads;
    F(ssdb_task)(&sd, 0);
    conv_ctx cv = c->conv; /* d_conv = d_act silu'(conv) */
    cv.inp = (rk ? c->keys->proj : a->proj) + Di, cv.rk = rk, cv.B = ns, cv.dinp = g->proj + Di, cv.dout = g->act;
    cv.gscale = a->sg, cv.padd = padd;
    cv.part = c->conv.part + (size_t)t * (mx->d_conv + 1) * c->conv.Cpad;
    int sparse = dy_last && c->sparse_last;
    cv.c_last = sparse ? Di + N : 0;
    F(convb_task)(&cv, 0);
    if (rk) { /* keyed: d_proj summed per key; in_proj's and the pre-norm's backward in m2_keys_back */
        F(m2_keys_add)(c, padd, g->proj, rk, rows);
        return;
    }
    if (sparse) F(m2_inproj_back_last)(c, t, ns, padd, a, g);
    else F(mmb_rows)(&c->in, g->xn, 0, g->proj, a->xn, rows, c->in.part + (size_t)t * c->in.pstride, padd, NULL);
    /* the residual passes dout through; the pre-norm's backward adds to it */
    F(normb_rows)(dout, 1, c->norm.part + (size_t)t * c->norm.Cpad, padd, g->xn, x, mx->norm, a->rstdx, rows, D,
                  c->norm.Cpad);
}

/* The block's backward for the rows of ns sequences (input x, forward
 * activations a, gradient scratch g): dout, the gradient of the block's
 * output, becomes that of x (in place); the weight gradients go to task
 * t's partials (added to when padd). rk: as in m2_forward_rows. */
static void F(m2_back_rows)(const m2_ctx *c, int t, int ns, int rows, int padd, const float *x, const m2_acts *a,
                            const m2_acts *g, float *dout, const int *rk)
{
    /* every gradient below is written once (set), so no zeroing; g.xn is
     * d_xn, g.act d_act, g.y d_y, g.gated d_gated, g.normed d_normed */
    F(mmb_rows)(&c->outp, g->normed, 0, dout, a->normed, rows, c->outp.part + (size_t)t * c->outp.pstride, padd, NULL);
    F(gatenorm_back_rows)(g->y, g->proj, c->gnorm.part + (size_t)t * c->gnorm.Cpad, padd, g->gated, g->normed,
                          a->gated, a->rstd, a->sz, a->y, a->proj, c->ldpj, c->mx->gnorm, rows, c->Di, c->gnorm.Cpad);
    F(m2_back_mixer)(c, t, ns, rows, padd, x, a, g, dout, 0, rk);
}

static void F(m2b_task)(void *vc, int t)
{
    const m2_ctx *c = vc;
    size_t r0;
    int nb, D = c->mx->d_model, L = c->mx->L;
    F(m2_block)(c, t, &r0, &nb);
    m2_acts a, g;
    F(m2_scratch)(c, c->sub * L, &a, 1, &g, NULL, 0);
    for (int s0 = 0; s0 < nb; s0 += c->sub) {
        int ns = nb - s0 < c->sub ? nb - s0 : c->sub, rows = ns * L;
        size_t r = r0 + (size_t)s0 * L;
        const float *x = c->mx->resid + r * D;
        F(m2_forward_rows)(c, x, ns, rows, &a, 0, NULL);
        F(m2_back_rows)(c, t, ns, rows, s0 > 0, x, &a, &g, c->dresid + r * D, NULL);
    }
}

static void F(mamba2_block_backward)(const ach_mamba2_block *mx, real *dresid)
{
    if (mx->B <= 0 || mx->L <= 0) return; /* no rows: nothing to add */
    enter();
    m2_ctx c = {.dresid = dresid};
    F(m2_setup)(&c, mx, 0);
    F(m2_back_setup)(&c, 0);
    ach_parallel_for(c.nchunks, F(m2b_task), &c);
    F(m2_reduce)(&c);
    leave();
}

static void F(ce_row)(float *loss, float *p, const float *z, int label, int V_);
static void F(ceb_row)(float *d, const float *p, int label, int V_, float scale);

/* The head on the last positions of the ns sequences from row r, whose
 * last block's input is x and gated-norm output there normed [ns, Di]: out
 * there (x + out_proj, as the forward computes it), norm_f, logits against
 * the tied embedding, cross-entropy into the losses; then back: d_last
 * [ns, D] set to out's gradient there and dout [ns * L, D] to all of it
 * (zero but at the last positions), the head's weight gradients into task
 * t's partials (added to when padd). */
static void F(m2_head_rows)(const m2s_ctx *s, int t, size_t r, int ns, int padd, const float *x, const float *normed,
                            float *d_last, float *dout)
{
    const m2_ctx *c = &s->c[s->n - 1];
    const ach_mamba2_block *mx = c->mx;
    const ach_lm_head *h = s->head;
    int D = mx->d_model, L = mx->L, Di = c->Di, V_ = h->vocab, Vp = round_up(V_, VL);
    size_t b0 = r / L, nD = round_up(ns * D, VL), nV = (size_t)ns * Vp;
    float *last = tbuf(T_H, 3 * nD + 3 * nV + ns), *last_n = last + nD, *d_last_n = last_n + nD;
    float *logits = d_last_n + nD, *probs = logits + nV, *dlogits = probs + nV;
    float *rstd = dlogits + nV;
    for (int q = 0; q < ns; q++)
        memcpy(last + (size_t)q * D, x + ((size_t)q * L + L - 1) * D, D * sizeof *last);
    F(gemm_rows)(last, D, normed, Di, c->wout_t, round_up(D, VL), Di, D, NULL, 1, 0, ns);
    F(norm_rows)(last_n, rstd, last, h->norm_f, ns, D, mx->eps);
    F(gemm_rows)(logits, Vp, last_n, D, s->wte_t, Vp, D, V_, NULL, 0, 0, ns);
    memset(dlogits, 0, nV * sizeof *dlogits);
    for (int q = 0; q < ns; q++) {
        F(ce_row)(h->losses + b0 + q, probs + (size_t)q * Vp, logits + (size_t)q * Vp, h->labels[b0 + q], V_);
        F(ceb_row)(dlogits + (size_t)q * Vp, probs + (size_t)q * Vp, h->labels[b0 + q], V_, h->scale);
    }
    F(mmb_rows)(&s->hmm, d_last_n, 0, dlogits, last_n, ns, s->hmm.part + (size_t)t * s->hmm.pstride, padd, NULL);
    F(normb_rows)(d_last, 0, s->hnorm.part + (size_t)t * s->hnorm.Cpad, padd, d_last_n, last, h->norm_f, rstd, ns, D,
                  s->hnorm.Cpad);
    memset(dout, 0, (size_t)ns * L * D * sizeof *dout);
    for (int q = 0; q < ns; q++)
        memcpy(dout + ((size_t)q * L + L - 1) * D, d_last + (size_t)q * D, D * sizeof *dout);
}

/* Carves this thread's m2_last for ns sequences. */
static void F(m2_last_scratch)(const m2_ctx *c, int ns, m2_last *lr)
{
    size_t ni = round_up(ns * c->Di, VL), nD = round_up(ns * c->mx->d_model, VL);
    float *p = tbuf(T_G, 7 * ni + nD + round_up(ns, VL));
    lr->y = p, lr->gated = p + ni, lr->normed = lr->gated + ni, lr->sz = lr->normed + ni, lr->dnormed = lr->sz + ni;
    lr->dgated = lr->dnormed + ni, lr->dy = lr->dgated + ni, lr->d_last = lr->dy + ni, lr->rstd = lr->d_last + nD;
}

/* The gate and gated norm of the last rows (m2_forward_rows with last_only). */
static void F(m2_gate_last)(const m2_ctx *c, int ns, const m2_acts *a, const m2_last *lr)
{
    const ach_mamba2_block *mx = c->mx;
    int L = mx->L, Di = c->Di;
    for (int q = 0; q < ns; q++)
        memcpy(lr->y + (size_t)q * Di, a->y + ((size_t)q * L + L - 1) * Di, Di * sizeof(float));
    F(gatenorm_rows)(lr->normed, lr->gated, lr->rstd, lr->sz, lr->y, a->proj + (size_t)(L - 1) * c->ldpj, L * c->ldpj,
                     mx->gnorm, ns, Di, mx->eps);
}

/* m2_back_rows for the last block, whose output's gradient (dout) is zero
 * but at the last rows (d_last): out_proj's and the gate's backward there
 * only, d_y and the gate's d_z zero elsewhere. */
static void F(m2_back_last)(const m2_ctx *c, int t, int ns, int rows, int padd, const float *x, const m2_acts *a,
                            const m2_acts *g, const m2_last *lr, float *dout)
{
    int L = c->mx->L, Di = c->Di;
    F(mmb_rows)(&c->outp, lr->dnormed, 0, lr->d_last, lr->normed, ns, c->outp.part + (size_t)t * c->outp.pstride, padd,
                NULL);
    if (!c->sparse_last) /* d_z is zero but at the last rows (read there only when sparse) */
        for (int r = 0; r < rows; r++) memset(g->proj + (size_t)r * c->ldpj, 0, Di * sizeof(float));
    F(gatenorm_back_rows)(lr->dy, g->proj + (size_t)(L - 1) * c->ldpj, c->gnorm.part + (size_t)t * c->gnorm.Cpad, padd,
                          lr->dgated, lr->dnormed, lr->gated, lr->rstd, lr->sz, lr->y,
                          a->proj + (size_t)(L - 1) * c->ldpj, L * c->ldpj, c->mx->gnorm, ns, Di, c->gnorm.Cpad);
    memset(g->y, 0, (size_t)rows * Di * sizeof(float));
    for (int q = 0; q < ns; q++)
        memcpy(g->y + ((size_t)q * L + L - 1) * Di, lr->dy + (size_t)q * Di, Di * sizeof(float));
    F(m2_back_mixer)(c, t, ns, rows, padd, x, a, g, dout, 1, NULL);
}

/* One task of mamba2_train: per sub-block, the forward through every
 * block (each block's activations kept in scratch, its output the next
 * one's input), the head, then the backward through every block from
 * those activations: no forward is computed twice. The weight-gradient
 * partials go to this thread's table (slot 0 of copies of the contexts),
 * merged in task order at the end (m2_task_done). */
static void F(m2s_task)(void *vc, int t)
{
    const m2s_ctx *shared = vc;
    m2_ctx lc[ACH_MAX_LAYERS];
    m2s_ctx ls = *shared, *s = &ls;
    memcpy(lc, shared->c, (size_t)shared->n * sizeof *lc);
    ls.c = lc;
    float **field[M2_MAX_PARTS], *mine = tbuf(T_PART, shared->parts_total), *p = mine;
    size_t pn[M2_MAX_PARTS];
    int np = F(m2_parts)(s, field, pn);
    for (int i = 0; i < np; i++) *field[i] = p, p += pn[i];
    const m2_ctx *c0 = &s->c[0];
    size_t r0;
    int nb, n = s->n, D = c0->mx->d_model, L = c0->mx->L;
    F(m2_block)(c0, t, &r0, &nb);
    m2_acts a[ACH_MAX_LAYERS], g;
    m2_last lr;
    float *xs;
    size_t nx = round_up(c0->sub * L * D, VL);
    F(m2_scratch)(c0, c0->sub * L, a, n, &g, &xs, n - 1);
    F(m2_last_scratch)(c0, c0->sub, &lr);
    for (int s0 = 0; s0 < nb; s0 += c0->sub) {
        int ns = nb - s0 < c0->sub ? nb - s0 : c0->sub, rows = ns * L, padd = s0 > 0;
        size_t r = r0 + (size_t)s0 * L;
        const float *x[ACH_MAX_LAYERS];
        x[0] = c0->mx->resid + r * D;
        const int *rk[ACH_MAX_LAYERS]; /* the sub-block's row keys in a keyed block (the first only) */
        for (int l = 0; l < n; l++) rk[l] = s->c[l].keys ? s->c[l].keys->rowkey + r : NULL;
        for (int l = 0; l < n; l++) {
            F(m2_forward_rows)(&s->c[l], x[l], ns, rows, &a[l], l == n - 1, rk[l]);
            if (l + 1 < n) {
                F(m2_out_rows)(&s->c[l], xs + l * nx, x[l], &a[l], rows);
                x[l + 1] = xs + l * nx;
            }
        }
        F(m2_gate_last)(&s->c[n - 1], ns, &a[n - 1], &lr);
        float *dout = s->dresid + r * D;
        F(m2_head_rows)(s, 0, r, ns, padd, x[n - 1], lr.normed, lr.d_last, dout);
        F(m2_back_last)(&s->c[n - 1], 0, ns, rows, padd, x[n - 1], &a[n - 1], &g, &lr, dout);
        for (int l = n - 2; l >= 0; l--)
            F(m2_back_rows)(&s->c[l], 0, ns, rows, padd, x[l], &a[l], &g, dout, rk[l]);
    }
    F(m2_task_done)(shared, t, mine);
}

/* The first block's keys (its mx->tokens set): each row's key, a distinct
 * token numbered in order of first appearance; per key the input row, its
 * pre-norm and in_proj by the forward's own kernels, so each row's in_proj
 * output is exactly the one the unkeyed forward computes (c->keys then
 * set; not when the batch has too many distinct tokens). Scratch from slot
 * on (three slots). */
static void F(m2_keys_setup)(m2_ctx *c, m2_keys *k, int V_, int slot)
{
    const ach_mamba2_block *mx = c->mx;
    size_t R = (size_t)mx->B * mx->L;
    int D = mx->d_model, ld = c->ldpj, nD = round_up(V_ * D, VL), nV = round_up(V_, VL);
    int *key_of = (int *)sbuf(slot, 2 * (size_t)V_ + R);
    float *p = sbuf(slot + 1, 4 * (size_t)nD + nV + 2 * (size_t)V_ * ld);
    k->rowkey = key_of + V_, k->tok = k->rowkey + R;
    k->x = p, k->xn = p + nD, k->dxn = k->xn + nD, k->dx = k->dxn + nD, k->rstd = k->dx + nD;
    k->proj = k->rstd + nV, k->sum = k->proj + (size_t)V_ * ld;
    for (int v = 0; v < V_; v++) key_of[v] = -1;
    k->n = 0;
    for (size_t r = 0; r < R; r++) {
        int v = mx->tokens[r];
        if (v < 0 || v >= V_) {
            fprintf(stderr, "achilles: mamba2_train: token %d outside the vocabulary of %d\n", v, V_);
            abort();
        }
        if (key_of[v] < 0) {
            key_of[v] = k->n, k->tok[k->n] = v;
            memcpy(k->x + (size_t)k->n++ * D, mx->resid + r * D, D * sizeof(float));
        }
        k->rowkey[r] = key_of[v];
    }
    /* the keys' work and the tasks' sums (up to tasks x keys rows, in the
     * stash) must be well under the rows', or they save nothing (a large
     * vocabulary): rows then */
    if ((size_t)k->n * c->nchunks * 2 > R) return;
    F(norm_rows)(k->xn, k->rstd, k->x, mx->norm, k->n, D, mx->eps);
    F(gemm_rows)(k->proj, ld, k->xn, D, c->win_t, round_up(c->Pj, VL), D, c->Pj, NULL, 0, 0, k->n);
    /* the stash slots are touched only by tasks that end out of order */
    k->stride = F(m2_keysum_size)(k->n, ld);
    k->stash = sbuf(slot + 2, (size_t)c->nchunks * k->stride + (V_ + 3) / 4);
    k->has = (unsigned char *)(k->stash + (size_t)c->nchunks * k->stride);
    memset(k->has, 0, (size_t)k->n);
    c->keys = k;
}

/* After the keyed first block's tasks: in_proj's backward and the
 * pre-norm's on the keys' summed d_proj (their weight gradients as the one
 * partial each reduces); the input gradient's part through the pre-norm,
 * known per key only, goes straight into the embedding's gradient g_wte
 * (the rows' part through the residual stays in d_resid, for the
 * embedding's backward). */
static void F(m2_keys_back)(m2_ctx *c, float *g_wte)
{
    m2_keys *k = c->keys;
    int D = c->mx->d_model;
    F(mmb_rows)(&c->in, k->dxn, 0, k->sum, k->xn, k->n, c->in.part, 0, NULL);
    F(normb_rows)(k->dx, 0, c->norm.part, 0, k->dxn, k->x, c->mx->norm, k->rstd, k->n, D, c->norm.Cpad);
    for (int j = 0; j < k->n; j++) F(add_to)(g_wte + (size_t)k->tok[j] * D, k->dx + (size_t)j * D, D);
}

static void F(mamba2_train)(const ach_mamba2_block *blocks, int n, const ach_lm_head *head, real *dresid)
{
    if (n < 1 || n > ACH_MAX_LAYERS) {
        fprintf(stderr, "achilles: mamba2_train of %d blocks (1 to %d)\n", n, ACH_MAX_LAYERS);
        abort();
    }
    if (blocks[0].B <= 0 || blocks[0].L <= 0) return; /* no rows: nothing to add */
    enter();
    m2_ctx c[ACH_MAX_LAYERS];
    m2s_ctx s = {.c = c, .n = n, .head = head, .dresid = dresid};
    for (int l = 0; l < n; l++) {
        c[l] = (m2_ctx){0};
        F(m2_setup)(&c[l], &blocks[l], l * S_COUNT);
        F(m2_back_setup)(&c[l], l * S_COUNT);
        c[l].wout_t = F(pack_t)(l * S_COUNT + S_PACK5, blocks[l].out_proj, blocks[l].d_model, c[l].Di);
        /* quarter-size sub-blocks (32 rows at the paper's shape) when
         * there are several blocks: every block's activations for the
         * backward stay in scratch, ~170 KB a block at 32 rows, so more of
         * them, the weights and the thread's partials stay in a 2 MB L2
         * (alternating runs against 64 rows: 5 blocks 1.033x, 2 blocks
         * 1.031x on one thread; 24 and 48 rows ran like 32) */
        if (n > 1) c[l].sub = (c[l].sub + 3) / 4;
    }
    int D = blocks[0].d_model, V_ = head->vocab, hb = n * S_COUNT, nch = c[0].nchunks;
    m2_keys keys;
    if (blocks[0].tokens && n > 1) /* (a lone block is the last, whose in_proj is sparse) */
        F(m2_keys_setup)(&c[0], &keys, V_, hb + S_PART3);
    s.wte_t = F(pack_t)(hb + S_PACK, head->wte, V_, D);
    s.hmm = (mmb_ctx){.dw = head->g_wte, .ldi = D, .ldd = round_up(V_, VL), .K = D, .N = V_};
    F(mmb_setup)(&s.hmm, head->wte, hb + S_PACK2, hb + S_PART, nch);
    s.hnorm = (norm_ctx){.dw = head->g_norm_f, .C = D, .Cpad = round_up(D, VL), .nchunks = nch};
    s.hnorm.part = sbuf(hb + S_PART2, (size_t)nch * s.hnorm.Cpad);
    float **field[M2_MAX_PARTS];
    s.nparts = F(m2_parts)(&s, field, s.part_n);
    for (int i = 0; i < s.nparts; i++) s.part[i] = *field[i], s.parts_total += s.part_n[i];
    m2_order order = {.stashed = (unsigned char *)sbuf(hb + S_MISC, (nch + 3) / 4)};
    memset(order.stashed, 0, (size_t)nch);
    s.order = &order;
    ach_parallel_for(nch, F(m2s_task), &s);
    /* every task's partials are summed in slot 0 */
    for (int l = 0; l < n; l++)
        c[l].in.nchunks = c[l].outp.nchunks = c[l].conv.nchunks = c[l].gnorm.nchunks = c[l].norm.nchunks =
            c[l].ssd.nchunks = 1;
    s.hmm.nchunks = s.hnorm.nchunks = 1;
    if (c[0].keys) F(m2_keys_back)(&c[0], head->g_wte);
    for (int l = 0; l < n; l++) F(m2_reduce)(&c[l]);
    ach_parallel_for(ceil_div(V_, RED_ROWS), F(mmb_reduce), &s.hmm);
    for (int t = 0; t < ceil_div(D, VL); t++) F(normb_reduce)(&s.hnorm, t);
    leave();
}

/* ---- Mamba-1 selective scan ---- */
#include "fast_scan1.c"

/* ---- cross-entropy, embedding, AdamW ---- */
#define CE_ROWS 64
/* One row: probs p = softmax(z) and loss = -log p[label] */
static void F(ce_row)(float *loss, float *p, const float *z, int label, int V_)
{
    /* max is exact: whole vectors, then the tail one by one */
    V mv = F(bc)(z[0]);
    int v = 0;
    for (; v + VL <= V_; v += VL) mv = F(vmax)(mv, F(ld)(z + v));
    float mx = F(hmax)(mv);
    for (; v < V_; v++) mx = z[v] > mx ? z[v] : mx;
    v = 0;
    V sv = (V){0};
    for (; v < V_; v += VL) {
        int nl = V_ - v < VL ? V_ - v : VL;
        V e = F(vexp)(F(ldk)(z + v, nl) - F(bc)(mx));
        if (nl < VL) e = F(ldn)((const float *)&e, nl); /* clear the padding lanes */
        F(stk)(p + v, e, nl);
        sv += e;
    }
    float sum = F(hsum)(sv);
    for (v = 0; v < V_; v += VL) {
        int nl = V_ - v < VL ? V_ - v : VL;
        F(stk)(p + v, F(ldk)(p + v, nl) / F(bc)(sum), nl);
    }
    *loss = log(sum) + mx - z[label];
}

static void F(cef_task)(void *vc, int t)
{
    const ce_ctx *c = vc;
    int b0 = t * CE_ROWS, b1 = b0 + CE_ROWS < c->B ? b0 + CE_ROWS : c->B, V_ = c->nvocab;
    for (int b = b0; b < b1; b++)
        F(ce_row)(c->losses + b, c->probs + (size_t)b * V_, c->logits + (size_t)b * V_, c->labels[b], V_);
}

static void F(crossentropy_forward)(real *losses, real *probs, const real *logits, const int *labels, int B, int V_)
{
    ce_ctx c = {.losses = losses, .probs = probs, .logits = logits, .labels = labels, .B = B, .nvocab = V_};
    ach_parallel_for(ceil_div(B, CE_ROWS), F(cef_task), &c);
}

/* One row: d += scale (p - onehot(label)), the reference's arithmetic
 * exactly (one multiply, one add per element) */
static void F(ceb_row)(float *d, const float *p, int label, int V_, float scale)
{
    V sc = F(bc)(scale);
    for (int v = 0; v < V_; v += VL) {
        int nl = V_ - v < VL ? V_ - v : VL;
        F(stk)(d + v, F(ldk)(d + v, nl) + sc * F(ldk)(p + v, nl), nl);
    }
    d[label] -= scale;
}

static void F(ceb_task)(void *vc, int t)
{
    const ce_ctx *c = vc;
    int b0 = t * CE_ROWS, b1 = b0 + CE_ROWS < c->B ? b0 + CE_ROWS : c->B, V_ = c->nvocab;
    for (int b = b0; b < b1; b++)
        F(ceb_row)(c->dlogits + (size_t)b * V_, c->cprobs + (size_t)b * V_, c->labels[b], V_, c->scale);
}

static void F(crossentropy_backward)(real *dlogits, const real *probs, const int *labels, int B, int V_, real scale)
{
    ce_ctx c = {.dlogits = dlogits, .cprobs = probs, .labels = labels, .B = B, .nvocab = V_, .scale = scale};
    ach_parallel_for(ceil_div(B, CE_ROWS), F(ceb_task), &c);
}

/* Split over columns, each task walking every row in order: the same sums as
 * the reference, bit for bit. */
#define EMB_COLS 16
static void F(embb_task)(void *vc, int t)
{
    const emb_ctx *c = vc;
    int c0 = t * EMB_COLS, nl = c->D - c0 < EMB_COLS ? c->D - c0 : EMB_COLS;
    for (int i = 0; i < c->n; i++) {
        float *dw = c->dw + (size_t)c->tokens[i] * c->D + c0;
        F(add_to)(dw, c->dout + (size_t)i * c->D + c0, nl);
    }
}

static void F(embedding_backward)(real *dwte, const real *dout, const int *tokens, int n, int D, int vocab)
{
    (void)vocab; /* the tasks split columns, not rows */
    emb_ctx c = {.dw = dwte, .dout = dout, .tokens = tokens, .n = n, .D = D};
    ach_parallel_for(ceil_div(D, EMB_COLS), F(embb_task), &c);
}

/* The reference's operations in the same order (no FMA): bit-identical. */
static void F(adamw_update)(real *w, real *m, real *v, const real *g, size_t n, real gscale, real lr, real wd,
                            real b1, real b2, real eps, real step_size, real bc2_sqrt)
{
    float decay = 1 - lr * wd;
    V gs = F(bc)(gscale), dc = F(bc)(decay), vb1 = F(bc)(b1), vb2 = F(bc)(b2), c1 = F(bc)(1 - b1),
      c2 = F(bc)(1 - b2), ss = F(bc)(step_size), bc2 = F(bc)(bc2_sqrt), ve = F(bc)(eps);
    for (size_t i = 0; i < n; i += VL) {
        int nl = n - i < VL ? (int)(n - i) : VL;
        V gi = F(ldk)(g + i, nl) * gs;
        V wi = F(ldk)(w + i, nl) * dc;
        V mi = vb1 * F(ldk)(m + i, nl) + c1 * gi;
        V vi = vb2 * F(ldk)(v + i, nl) + c2 * gi * gi;
        V sq;
#if VL == 16
        sq = _mm512_sqrt_ps(vi);
#elif VL == 8
        sq = _mm256_sqrt_ps(vi);
#else
        for (int k = 0; k < VL; k++) sq[k] = sqrtf(vi[k]);
#endif
        wi -= ss * mi / (sq / bc2 + ve);
        F(stk)(w + i, wi, nl);
        F(stk)(m + i, mi, nl);
        F(stk)(v + i, vi, nl);
    }
}

static void F(fill)(ach_kernels *k)
{
    k->zero = F(zero);
    k->embedding_backward = F(embedding_backward);
    k->rmsnorm_forward = F(rmsnorm_forward);
    k->rmsnorm_backward = F(rmsnorm_backward);
    k->matmul_forward = F(matmul_forward);
    k->matmul_backward = F(matmul_backward);
    k->conv1d_forward = F(conv1d_forward);
    k->conv1d_backward = F(conv1d_backward);
    k->silu_forward = F(silu_forward);
    k->silu_backward = F(silu_backward);
    k->gate_forward = F(gate_forward);
    k->gate_backward = F(gate_backward);
    k->add_inplace = F(add_inplace);
    k->mamba1_scan_forward = F(mamba1_scan_forward);
    k->mamba1_scan_backward = F(mamba1_scan_backward);
    k->mamba2_ssd_forward = F(mamba2_ssd_forward);
    k->mamba2_ssd_backward = F(mamba2_ssd_backward);
    k->crossentropy_forward = F(crossentropy_forward);
    k->crossentropy_backward = F(crossentropy_backward);
    k->adamw_update = F(adamw_update);
    k->mamba2_block_forward = F(mamba2_block_forward);
    k->mamba2_block_backward = F(mamba2_block_backward);
    k->mamba2_train = F(mamba2_train);
}

#undef V
#undef VI
#undef VU
#undef NBMAX
#undef MR1
#undef MR2
#undef MR3
#undef MR4
#undef EW_RANGE
#undef RED_ROWS
#undef CE_ROWS
#undef EMB_COLS
#endif
