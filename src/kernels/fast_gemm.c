/* The fast backend's GEMM (part of kernels_fast.c, once per instruction
 * set): the register-tile micro-kernel, the row-block products built on it
 * (gemm_rows, gemm_atb, which the fused Mamba-2 block calls too), and
 * matmul_forward/backward with per-task weight-gradient partials. */

#ifndef ISA /* shared by the instances, compiled once before them */
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

#define RED_ROWS 16 /* rows of dW per reduction task */
#else /* one instance */

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

#undef NBMAX
#undef MR1
#undef MR2
#undef MR3
#undef MR4
#endif
