/* The embedding's gradient, a scatter-add of rows by token (part of
 * kernels_fast.c, once per instruction set). */

#ifndef ISA /* shared by the instances, compiled once before them */
typedef struct {
    float *dw;
    const float *dout;
    const int *tokens;
    int n, D;
} emb_ctx;

#define EMB_COLS 16
#else /* one instance */

/* Split over columns, each task walking every row in order: the same sums as
 * the reference, bit for bit. */
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
#endif
