/* The fast backend's Mamba-1 selective scan (kernels.h's
 * mamba1_scan_forward and mamba1_scan_backward), and the throughput probe
 * behind `achilles bench`'s derived limit for it. Part of kernels_fast.c,
 * once per instruction set (V, VL, F() and the primitives are the
 * instance's).
 *
 * The scan is the bulk of a Mamba-1 step: per token, layer and state
 * element (Di x N = 8,192 at the paper's sizes) an exp and a few FMAs
 * forward, the same again to recompute the states backward (storing them
 * would take 8 KiB per token and layer), and the reverse walk's FMAs.
 * So the work is arranged around op counts (bench/RESULTS.md counts 2
 * exps and 15 FMAs per element as the limit):
 * - the decay exp(delta A) = 2^(delta A log2 e) with A log2 e stored, by
 *   vexp2_neg below: 8 vector ops with AVX-512 (7 without its clamp), 12
 *   with AVX2, against 18 and 20 for the general vexp;
 * - a channel's state is walked over a sequence's steps a chunk of up to
 *   SCAN_CV vectors at a time, the chunk in registers, on B and C copied
 *   per sequence and padded to whole chunks (aligned, no tails); dB and
 *   dC are summed over the channels in L1 and added to memory once per
 *   sequence;
 * - the backward recomputes a chunk's L steps into small buffers in L1
 *   (e_t, e_t h_{t-1}, h_t) and walks them back with gh and dA's sums in
 *   registers: 8 FMAs or multiplies per state vector (dA's sum is kept
 *   without its factor A, applied once per element in the reduction, and
 *   ddelta's B u term comes from du's sum), and two horizontal sums per
 *   token and channel;
 * - tasks are sequences (ch_seqs), so everything a task touches but the
 *   A_log gradient's partial sums stays in L1 and L2.
 * Bit-identity at any thread count: each task writes its own rows and its
 * own slot of the dA_log and D partials, summed in task order. */
#ifndef ISA /* shared by the instances, compiled once before them */
typedef struct {
    float *y, *du, *ddt, *dBm, *dCm, *part, *dA_log, *dD;
    const float *u, *dt, *A, *A2, *A2min, *Bm, *Cm, *D, *dy; /* A2: A log2 e, A2min: its least per channel */
    int ldbc, B, L, Di, N, Npad, nchunks;
} scan_ctx;
#else /* one instance */

/* 2^x for x <= 0 (the scan's decays: x = delta A log2 e, delta >= 0 > A):
 * 2^n times a degree-5 polynomial in the rest, near-minimax in relative
 * error (bench/exp_poly_fit.py --exp2 derives both sets): 2.1 ulp on
 * [0, 1) (AVX-512: n = floor(x) by vreduceps and vscalefps) and 2.0 ulp on
 * [-1/2, 1/2] (n = round(x) by the 1.5 * 2^23 trick, 2^n built in the
 * exponent bits). With clamp, x is clamped at -125 (2^-125, 2.4e-38,
 * stays a normal number: a denormal result costs a microcode assist),
 * which is exact enough for a decay: e^-86.6 is already below float's
 * smallest normal; callers whose x are all >= -125 skip it (one op of
 * nine). NaN stays NaN (max returns its second operand on a NaN; the
 * product carries it). */
AI V F(vexp2_neg)(V x, const int clamp)
{
#if VL == 16
    V xc = clamp ? (V)_mm512_max_ps(F(bc)(-125.0f), x) : x;
    V f = _mm512_reduce_ps(xc, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC); /* x - floor(x) */
    V p = F(fma)(F(bc)(0.0018671303987503052f), f, F(bc)(0.009017029777169228f));
    p = F(fma)(p, f, F(bc)(0.05579991266131401f));
    p = F(fma)(p, f, F(bc)(0.24016444385051727f));
    p = F(fma)(p, f, F(bc)(0.6931512951850891f));
    p = F(fma)(p, f, F(bc)(1.0f));
    return _mm512_scalef_ps(p, xc); /* p 2^floor(x) */
#else
    const V magic = F(bc)(12582912.0f);
    V xc = clamp ? F(vmax)(F(bc)(-125.0f), x) : x;
    V t = xc + magic, f = xc - (t - magic); /* t's low bits hold n = round(x) */
    V p = F(fma)(F(bc)(0.001326472731307149f), f, F(bc)(0.009671512991189957f));
    p = F(fma)(p, f, F(bc)(0.05550733581185341f));
    p = F(fma)(p, f, F(bc)(0.24022242426872253f));
    p = F(fma)(p, f, F(bc)(0.6931470036506653f));
    p = F(fma)(p, f, F(bc)(1.0f));
    return p * (V)(((VI)t << 23) + (VI)F(bc)(1.0f)); /* 2^n: n in the exponent field */
#endif
}

/* A = -exp(A_log) and A log2 e, rows of Npad (zero past N: the padding
 * lanes' decay is 1, and with B and C read as zero there their state
 * stays 0), and each row's least A log2 e (whether a channel's decays
 * need vexp2_neg's clamp) */
static void F(scan_A)(scan_ctx *c, const float *A_log)
{
    int Di = c->Di, N = c->N, Np = c->Npad;
    float *A = sbuf(S_MISC, 2 * (size_t)Di * Np + Di), *A2 = A + (size_t)Di * Np, *A2min = A2 + (size_t)Di * Np;
    for (int d = 0; d < Di; d++) {
        A2min[d] = 0;
        for (int n = 0; n < Np; n++) {
            float a = n < N ? -r_exp(A_log[(size_t)d * N + n]) : 0;
            A[(size_t)d * Np + n] = a;
            A2[(size_t)d * Np + n] = a * 1.44269504088896341f;
            A2min[d] = A2[(size_t)d * Np + n] < A2min[d] ? A2[(size_t)d * Np + n] : A2min[d];
        }
    }
    c->A = A, c->A2 = A2, c->A2min = A2min;
}

/* softplus(dt) (and sigmoid(dt), its derivative, when sig) over n values */
static void F(scan_delta)(float *delta, float *sig, const float *dt, size_t n)
{
    for (size_t i = 0; i < n; i += VL) {
        int nl = n - i < VL ? (int)(n - i) : VL;
        V x = F(ldk)(dt + i, nl);
        F(stk)(delta + i, F(vsoftplus)(x), nl);
        if (sig) F(stk)(sig + i, F(sel)(x > F(bc)(20.0f), F(bc)(1.0f), F(vsigmoid)(x)), nl);
    }
}

/* State vectors a channel's walk keeps in registers (SCAN_CV at most):
 * the state is walked in chunks of cv vectors, Npad = N rounded up to
 * whole chunks */
#define SCAN_CV (VL == 16 ? 8 : 4)
static int F(scan_cv)(int N)
{
    int nv = ceil_div(N, VL), cv = 1;
    while (cv < SCAN_CV && 2 * cv <= nv) cv *= 2;
    return cv;
}

/* CHUNK(CV, CLAMP) with both as constants: the chunk functions' instances */
#if SCAN_CV == 8
#define SCAN_DISPATCH_8(CHUNK, clamp) \
    case 8: \
        if (clamp) CHUNK(8, 1); \
        else CHUNK(8, 0); \
        break;
#else
#define SCAN_DISPATCH_8(CHUNK, clamp)
#endif
#define SCAN_DISPATCH(cv, clamp, CHUNK) \
    switch (cv) { \
    case 1: \
        if (clamp) CHUNK(1, 1); \
        else CHUNK(1, 0); \
        break; \
    case 2: \
        if (clamp) CHUNK(2, 1); \
        else CHUNK(2, 0); \
        break; \
    case 4: \
        if (clamp) CHUNK(4, 1); \
        else CHUNK(4, 0); \
        break; \
        SCAN_DISPATCH_8(CHUNK, clamp) \
    }

/* The task's sequences [b0, b1) */
static void F(scan_task_seqs)(const scan_ctx *c, int task, int *b0, int *b1)
{
    int ns = ch_seqs(c->L);
    *b0 = task * ns;
    *b1 = *b0 + ns < c->B ? *b0 + ns : c->B;
}

/* Sequence b's B and C rows, each padded with zeros to Npad */
static void F(scan_bc)(const scan_ctx *c, int b, float *Bs, float *Cs)
{
    int L = c->L, N = c->N, Np = c->Npad;
    for (int t = 0; t < L; t++) {
        size_t row = (size_t)b * L + t;
        memcpy(Bs + (size_t)t * Np, c->Bm + row * c->ldbc, N * sizeof *Bs);
        memcpy(Cs + (size_t)t * Np, c->Cm + row * c->ldbc, N * sizeof *Cs);
        memset(Bs + (size_t)t * Np + N, 0, (Np - N) * sizeof *Bs);
        memset(Cs + (size_t)t * Np + N, 0, (Np - N) * sizeof *Cs);
    }
}

/* Per-step scalars of one channel of a sequence: delta, delta u */
typedef struct {
    float dl, du;
} F(scan_step);

/* One chunk of CV state vectors (from n0) through the sequence's L steps:
 * h_t = e_t h_{t-1} + delta_t u_t B_t, y_t's partial C_t . h_t added to
 * acc[t] */
AI void F(scanf_chunk)(V *acc, const F(scan_step) *st, const float *a2, const float *Bs, const float *Cs, int L,
                       int Np, const int CV, const int clamp)
{
    V h[SCAN_CV];
#pragma GCC unroll 8
    for (int k = 0; k < CV; k++) h[k] = (V){0};
    for (int t = 0; t < L; t++) {
        V dlv = F(bc)(st[t].dl), duv = F(bc)(st[t].du), s = (V){0};
        const float *Bt = Bs + (size_t)t * Np, *Ct = Cs + (size_t)t * Np;
#pragma GCC unroll 8
        for (int k = 0; k < CV; k++) {
            V e = F(vexp2_neg)(dlv * F(ld)(a2 + k * VL), clamp);
            h[k] = F(fma)(duv, F(ld)(Bt + k * VL), e * h[k]);
            s = F(fma)(F(ld)(Ct + k * VL), h[k], s);
        }
        acc[t] += s;
    }
}

static void F(scanf_task)(void *vc, int task)
{
    const scan_ctx *c = vc;
    int L = c->L, Di = c->Di, Np = c->Npad, cv = F(scan_cv)(c->N), b0, b1;
    F(scan_task_seqs)(c, task, &b0, &b1);
    size_t rows = (size_t)(b1 - b0) * L, R0 = (size_t)b0 * L;
    float *delta = tbuf(T_W1, rows * Di), *Bs = tbuf(T_W2, 2 * (size_t)L * Np), *Cs = Bs + (size_t)L * Np;
    V *acc = (V *)tbuf(T_W3, (size_t)L * VL);
    F(scan_step) *st = (F(scan_step) *)tbuf(T_W4, 2 * (size_t)L);
    F(scan_delta)(delta, NULL, c->dt + R0 * Di, rows * Di);
    for (int b = b0; b < b1; b++) {
        F(scan_bc)(c, b, Bs, Cs);
        for (int d = 0; d < Di; d++) {
            const float *a2 = c->A2 + (size_t)d * Np;
            float dlmax = 0;
            for (int t = 0; t < L; t++) {
                size_t row = (size_t)b * L + t;
                st[t].dl = delta[(row - R0) * Di + d];
                st[t].du = st[t].dl * c->u[row * Di + d];
                dlmax = st[t].dl > dlmax ? st[t].dl : dlmax;
                acc[t] = (V){0};
            }
            int clamp = !(dlmax * c->A2min[d] >= -125.0f); /* NaN: clamped */
            for (int n0 = 0; n0 < Np; n0 += cv * VL) {
                const float *a2n = a2 + n0, *Bn = Bs + n0, *Cn = Cs + n0;
#define SCANF_CHUNK(CV, CLAMP) F(scanf_chunk)(acc, st, a2n, Bn, Cn, L, Np, CV, CLAMP)
                SCAN_DISPATCH(cv, clamp, SCANF_CHUNK);
#undef SCANF_CHUNK
            }
            for (int t = 0; t < L; t++) {
                size_t i = ((size_t)b * L + t) * Di + d;
                c->y[i] = F(hsum)(acc[t]) + c->D[d] * c->u[i];
            }
        }
    }
}

static void F(mamba1_scan_forward)(real *y, const real *u, const real *dt, const real *A_log, const real *Bm,
                                   const real *Cm, int ldbc, const real *D, const unsigned char *block, int B, int L,
                                   int Di, int N, real *work)
{
    if (block) {
        ach_cpu_kernels.mamba1_scan_forward(y, u, dt, A_log, Bm, Cm, ldbc, D, block, B, L, Di, N, work);
        return;
    }
    enter();
    scan_ctx c = {.y = y, .u = u, .dt = dt, .Bm = Bm, .Cm = Cm, .ldbc = ldbc, .D = D, .B = B, .L = L, .Di = Di,
                  .N = N, .Npad = round_up(N, F(scan_cv)(N) * VL)};
    F(scan_A)(&c, A_log);
    ach_parallel_for(ceil_div(B, ch_seqs(L)), F(scanf_task), &c);
    leave();
}

/* The task's slot of the partial sums: dA (without its factor A) [Di,
 * Npad], then dD [Di rounded up to whole vectors] */
static size_t F(scanb_part_size)(const scan_ctx *c) { return (size_t)c->Di * c->Npad + round_up(c->Di, VL); }

/* One chunk of CV state vectors (from n0) of one channel: its L steps
 * recomputed into es (e_t), then e_t h_{t-1}, then h_t, [L][CV] vectors
 * each, in L1,
 * then back from t = L-1 with gh = dL/dh_t in registers:
 *   ghn = gh + dy_t C_t;  dC_t += dy_t h_t;  dB_t += ghn delta_t u_t;
 *   dA += delta_t ghn e_t h_{t-1};  gh = ghn e_t;
 *   and per step the partial sums gu[t] += ghn . B_t (du's and ddelta's)
 *   and gd[t] += A . (ghn e_t h_{t-1}) (ddelta's). */
AI void F(scanb_chunk)(V *gu, V *gd, float *gal, V *es, const F(scan_step) *st, const float *g, const float *a,
                       const float *a2, const float *Bs, const float *Cs, float *dBs, float *dCs, int L, int Np,
                       const int CV, const int clamp)
{
    V h[SCAN_CV], gh[SCAN_CV], ga[SCAN_CV], *ps = es + (size_t)L * CV, *hs = ps + (size_t)L * CV;
#pragma GCC unroll 8
    for (int k = 0; k < CV; k++) h[k] = gh[k] = ga[k] = (V){0};
    for (int t = 0; t < L; t++) {
        V dlv = F(bc)(st[t].dl), duv = F(bc)(st[t].du);
        const float *Bt = Bs + (size_t)t * Np;
#pragma GCC unroll 8
        for (int k = 0; k < CV; k++) {
            V e = F(vexp2_neg)(dlv * F(ld)(a2 + k * VL), clamp), pe = e * h[k];
            h[k] = F(fma)(duv, F(ld)(Bt + k * VL), pe);
            es[t * CV + k] = e;
            ps[t * CV + k] = pe;
            hs[t * CV + k] = h[k];
        }
    }
    for (int t = L - 1; t >= 0; t--) {
        V gv = F(bc)(g[t]), dlv = F(bc)(st[t].dl), duv = F(bc)(st[t].du), su = (V){0}, sd = (V){0};
        size_t o = (size_t)t * Np;
#pragma GCC unroll 8
        for (int k = 0; k < CV; k++) {
            V Bv = F(ld)(Bs + o + k * VL), pe = ps[t * CV + k];
            V ghn = F(fma)(gv, F(ld)(Cs + o + k * VL), gh[k]);
            F(st)(dCs + o + k * VL, F(fma)(gv, hs[t * CV + k], F(ld)(dCs + o + k * VL)));
            F(st)(dBs + o + k * VL, F(fma)(ghn, duv, F(ld)(dBs + o + k * VL)));
            su = F(fma)(ghn, Bv, su);
            V q = ghn * pe;
            sd = F(fma)(q, F(ld)(a + k * VL), sd);
            ga[k] = F(fma)(q, dlv, ga[k]);
            gh[k] = ghn * es[t * CV + k];
        }
        gu[t] += su;
        gd[t] += sd;
    }
#pragma GCC unroll 8
    for (int k = 0; k < CV; k++) F(st)(gal + k * VL, F(ld)(gal + k * VL) + ga[k]);
}

/* Per sequence: B and C copied padded, dB and dC summed over the
 * channels in dBs and dCs and added to the rows after; per channel the
 * chunks (scanb_chunk), then du and ddt from the per-step sums:
 *   du_t += delta_t gu_t + dy_t D;  ddt_t += (gd_t + u_t gu_t) sigmoid(dt_t). */
static void F(scanb_task)(void *vc, int task)
{
    const scan_ctx *c = vc;
    int L = c->L, Di = c->Di, N = c->N, Np = c->Npad, cv = F(scan_cv)(N), b0, b1;
    F(scan_task_seqs)(c, task, &b0, &b1);
    size_t rows = (size_t)(b1 - b0) * L, R0 = (size_t)b0 * L, LN = (size_t)L * Np;
    float *delta = tbuf(T_W1, 2 * rows * Di), *sig = delta + rows * Di;
    float *Bs = tbuf(T_W2, 4 * LN), *Cs = Bs + LN, *dBs = Cs + LN, *dCs = dBs + LN;
    V *es = (V *)tbuf(T_W3, (size_t)(3 * cv + 2) * L * VL), *gu = es + (size_t)3 * cv * L, *gd = gu + L;
    F(scan_step) *st = (F(scan_step) *)tbuf(T_W4, 3 * (size_t)L);
    float *g = (float *)(st + L);
    float *pal = c->part + (size_t)task * F(scanb_part_size)(c), *pD = pal + (size_t)Di * Np;
    memset(pal, 0, F(scanb_part_size)(c) * sizeof *pal);
    F(scan_delta)(delta, sig, c->dt + R0 * Di, rows * Di);
    for (int b = b0; b < b1; b++) {
        F(scan_bc)(c, b, Bs, Cs);
        memset(dBs, 0, 2 * LN * sizeof *dBs);
        for (int d = 0; d < Di; d++) {
            const float *a = c->A + (size_t)d * Np, *a2 = c->A2 + (size_t)d * Np;
            float dlmax = 0;
            for (int t = 0; t < L; t++) {
                size_t row = (size_t)b * L + t, i = row * Di + d;
                st[t].dl = delta[(row - R0) * Di + d];
                st[t].du = st[t].dl * c->u[i];
                dlmax = st[t].dl > dlmax ? st[t].dl : dlmax;
                g[t] = c->dy[i];
                gu[t] = gd[t] = (V){0};
                pD[d] += g[t] * c->u[i];
            }
            int clamp = !(dlmax * c->A2min[d] >= -125.0f);
            for (int n0 = 0; n0 < Np; n0 += cv * VL) {
                float *gal = pal + (size_t)d * Np + n0;
                const float *an = a + n0, *a2n = a2 + n0, *Bn = Bs + n0, *Cn = Cs + n0;
#define SCANB_CHUNK(CV, CLAMP) F(scanb_chunk)(gu, gd, gal, es, st, g, an, a2n, Bn, Cn, dBs + n0, dCs + n0, L, Np, CV, CLAMP)
                SCAN_DISPATCH(cv, clamp, SCANB_CHUNK);
#undef SCANB_CHUNK
            }
            for (int t = 0; t < L; t++) {
                size_t row = (size_t)b * L + t, i = row * Di + d, li = (row - R0) * Di + d;
                float su = F(hsum)(gu[t]);
                c->du[i] += g[t] * c->D[d] + st[t].dl * su;
                c->ddt[i] += (F(hsum)(gd[t]) + c->u[i] * su) * sig[li];
            }
        }
        for (int t = 0; t < L; t++) {
            size_t row = (size_t)b * L + t;
            F(add_to)(c->dBm + row * c->ldbc, dBs + (size_t)t * Np, N);
            F(add_to)(c->dCm + row * c->ldbc, dCs + (size_t)t * Np, N);
        }
    }
}

/* dA_log = A * (the tasks' dA sums, in task order); dD likewise */
static void F(scanb_reduce)(void *vc, int t)
{
    const scan_ctx *c = vc;
    int Np = c->Npad, Di = c->Di, N = c->N;
    size_t stride = F(scanb_part_size)(c);
    int d0 = t * 8, d1 = d0 + 8 < Di ? d0 + 8 : Di;
    for (int d = d0; d < d1; d++) {
        for (int n = 0; n < N; n += VL) {
            int nl = N - n < VL ? N - n : VL;
            V s = F(ld)(c->part + (size_t)d * Np + n);
            for (int k = 1; k < c->nchunks; k++) s += F(ld)(c->part + k * stride + (size_t)d * Np + n);
            float *dst = c->dA_log + (size_t)d * N + n;
            F(stk)(dst, F(fma)(s, F(ld)(c->A + (size_t)d * Np + n), F(ldk)(dst, nl)), nl);
        }
        float s = c->part[(size_t)Di * Np + d];
        for (int k = 1; k < c->nchunks; k++) s += c->part[k * stride + (size_t)Di * Np + d];
        c->dD[d] += s;
    }
}

static void F(mamba1_scan_backward)(real *du, real *ddt, real *dA_log, real *dBm, real *dCm, real *dD,
                                    const real *dy, const real *u, const real *dt, const real *A_log,
                                    const real *Bm, const real *Cm, int ldbc, const real *D,
                                    const unsigned char *block, int B, int L, int Di, int N, real *work)
{
    if (block) {
        ach_cpu_kernels.mamba1_scan_backward(du, ddt, dA_log, dBm, dCm, dD, dy, u, dt, A_log, Bm, Cm, ldbc, D, block,
                                             B, L, Di, N, work);
        return;
    }
    if (B <= 0 || L <= 0) return; /* no rows: nothing to add (the partials would be unset) */
    enter();
    scan_ctx c = {.du = du, .ddt = ddt, .dBm = dBm, .dCm = dCm, .dy = dy, .u = u, .dt = dt, .Bm = Bm, .Cm = Cm,
                  .ldbc = ldbc, .D = D, .B = B, .L = L, .Di = Di, .N = N, .Npad = round_up(N, F(scan_cv)(N) * VL)};
    F(scan_A)(&c, A_log);
    c.nchunks = ceil_div(B, ch_seqs(L));
    c.part = sbuf(S_PART, (size_t)c.nchunks * F(scanb_part_size)(&c));
    ach_parallel_for(c.nchunks, F(scanb_task), &c);
    c.dA_log = dA_log, c.dD = dD;
    ach_parallel_for(ceil_div(Di, 8), F(scanb_reduce), &c);
    leave();
}

/* ---- the throughput probe (ach_fast_rates) ---- */
static double F(thread_seconds)(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

/* Decay exps per second: vexp2_neg over 4,096 arguments in [-12, 0] (an
 * L1-resident array, results stored), for about `seconds` of this
 * thread's CPU time */
static double F(exp_rate)(double seconds)
{
    enum { n = 4096 };
    static float x[n] __attribute__((aligned(64))), y[n] __attribute__((aligned(64)));
    for (int i = 0; i < n; i++) x[i] = -12.0f * (float)i / n;
    long done = 0;
    double t0 = F(thread_seconds)(), t;
    do {
        for (int r = 0; r < 64; r++) {
            for (int i = 0; i < n; i += VL) F(st)(y + i, F(vexp2_neg)(F(ld)(x + i), 1));
            __asm__ volatile("" : : "r"(x), "r"(y) : "memory"); /* each pass is done */
        }
        done += 64L * n;
        t = F(thread_seconds)() - t0;
    } while (t < seconds);
    return done / t;
}

/* FMA lanes per second: 12 independent vector chains (enough to fill two
 * FMA pipes of latency 4 to 6), for about `seconds` */
static double F(fma_rate)(double seconds)
{
    V acc[12], m = F(bc)(0.999999f), a = F(bc)(1e-6f);
    for (int k = 0; k < 12; k++) acc[k] = F(bc)((float)k);
    long done = 0;
    double t0 = F(thread_seconds)(), t;
    do {
        for (int r = 0; r < 100000; r++)
#pragma GCC unroll 12
            for (int k = 0; k < 12; k++) acc[k] = F(fma)(acc[k], m, a);
        done += 100000L * 12 * VL;
        for (int k = 0; k < 12; k++) __asm__ volatile("" : "+x"(acc[k])); /* each chain is live */
        t = F(thread_seconds)() - t0;
    } while (t < seconds);
    return done / t;
}

static void F(rates)(double *exps_per_s, double *fmas_per_s)
{
    *exps_per_s = F(exp_rate)(0.05);
    *fmas_per_s = F(fma_rate)(0.05);
}

#undef SCAN_CV
#undef SCAN_DISPATCH_8
#undef SCAN_DISPATCH
#endif
