/* One training step (step.h): the batch and the optimizer's plan go to the
 * backend first, then the kernels of the whole step, then the loss and the
 * norm come back. */
#include "step.h"

#include <math.h>
#include <string.h>

typedef struct {
    ach_model *m;
    ach_optim *o;
} step_ctx;

static void step_body(void *p)
{
    step_ctx *c = p;
    ach_model_launch_train(c->m);
    ach_optim_launch(c->o, c->m);
}

/* What decides which kernels the body launches, with which pointers and
 * shapes: a graph recorded for one key is replayed for the same key only. */
typedef struct {
    const ach_model *m;
    const ach_optim *o;
    int B, L, pos_enc, subst_layer, npin;
    uint64_t block_layers;
} step_key;

double ach_train_step_batch(ach_model *m, ach_optim *o, const ach_batch *b, double lr, double *gnorm)
{
    char err[128];
    int B = b->B, L = b->L;
    if (ach_model_set_batch(m, b, err, sizeof err)) return *gnorm = NAN;
    ach_optim_prepare(o, m, lr);
    step_ctx c = {m, o};
    if (m->k->graph_run) {
        step_key key;
        memset(&key, 0, sizeof key); /* padding too: the key is compared bytewise */
        key.m = m, key.o = o, key.B = B, key.L = L, key.pos_enc = m->cfg.pos_enc, key.subst_layer = m->subst_layer;
        key.block_layers = m->block_layers, key.npin = o->npin;
        m->k->graph_run(&key, sizeof key, step_body, &c);
    } else {
        step_body(&c);
    }
    *gnorm = ach_optim_norm(o, m);
    ach_optim_repin(o, m);
    return ach_model_loss(m);
}

double ach_train_step(ach_model *m, ach_optim *o, const int *tokens, const int *labels, int B, int L, double lr,
                      double *gnorm)
{
    ach_batch b = {.B = B, .L = L, .tokens = tokens, .labels = labels};
    return ach_train_step_batch(m, o, &b, lr, gnorm);
}
