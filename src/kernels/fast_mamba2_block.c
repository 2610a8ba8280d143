/* The fused Mamba-2 block (part of kernels_fast.c, once per instruction set).
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

#ifndef ISA /* shared by the instances, compiled once before them */
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
#else /* one instance */

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

/* fast_loss.c's, which kernels_fast.c includes after this file */
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
#endif
