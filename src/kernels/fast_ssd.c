/* Mamba-2's SSD in its quadratic form, forward and backward (part of
 * kernels_fast.c, once per instruction set): per sequence and head, the
 * Gram matrix, the decay mask and their triangular mixes of rows; the
 * fused Mamba-2 block runs its tasks directly. */

#ifndef ISA /* shared by the instances, compiled once before them */
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
#else /* one instance */

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
#endif
