/* The causal depthwise conv1d, forward and backward (part of kernels_fast.c,
 * once per instruction set): columns in vectors, the K taps and a window of
 * rows in registers; the fused Mamba-2 block runs its tasks directly. */

#ifndef ISA /* shared by the instances, compiled once before them */
#define CONV_LMAX 16    /* sequence lengths the conv backward may keep in registers */

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
#else /* one instance */

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
#endif
