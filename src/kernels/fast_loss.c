/* Softmax cross-entropy, forward and backward (part of kernels_fast.c, once
 * per instruction set), a task per CE_ROWS rows; ce_row and ceb_row also
 * serve the fused Mamba-2 stack's head. */

#ifndef ISA /* shared by the instances, compiled once before them */
typedef struct {
    float *losses, *probs, *dlogits;
    const float *logits, *cprobs;
    const int *labels;
    int B, nvocab;
    float scale;
} ce_ctx;

#define CE_ROWS 64
#else /* one instance */

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
#endif
