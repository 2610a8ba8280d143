/* RMSNorm forward and backward (part of kernels_fast.c, once per
 * instruction set); norm_rows and normb_rows also serve the fused Mamba-2
 * block. */

#ifndef ISA /* shared by the instances, compiled once before them */
typedef struct {
    float *out, *rstd, *dinp, *dw, *part;
    const float *inp, *w, *dout, *rs;
    int rows, C, Cpad, nchunks;
    float eps;
} norm_ctx;
#else /* one instance */

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
#endif
