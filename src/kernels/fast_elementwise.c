/* Kernels of one output element per input element (part of kernels_fast.c,
 * once per instruction set): silu, the gate, add, zero, in fixed-size
 * tasks. */

#ifndef ISA /* shared by the instances, compiled once before them */
typedef struct {
    float *out, *dx;
    const float *a, *b, *c;
    size_t n;
    int ld, rows, C;
} ew_ctx;

#define EW_RANGE(c, t, i0, i1) \
    size_t i0 = (size_t)(t) * CH_ELEMS, i1 = i0 + CH_ELEMS < (c)->n ? i0 + CH_ELEMS : (c)->n
#else /* one instance */

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
#endif
