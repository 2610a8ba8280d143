/* Finite differences in double precision against the analytic gradient of
 * every parameter tensor, both mixers, several tiny shapes. This is the
 * engine's own code compiled with real = double (-DACH_F64). */
#include <stdlib.h>
#include <string.h>

#include "init.h"
#include "mamba.h"
#include "model.h"
#include "rng.h"
#include "tap.h"

typedef struct {
    const char *what;
    ach_arch arch;
    int layers, D, N, K, expand, headdim, V, B, L;
    ach_pos_enc pos;
    int all_one; /* conv weights 1, bias 0: the all-one conv intervention's point */
    int block;   /* block positions 1 and 3 of every sequence in layer 0 (training under blocking) */
} gc_case;

static double loss_at(ach_model *m, const int *tok, const int *lab, int B, int L)
{
    return ach_model_forward(m, tok, lab, B, L);
}

static void run_case(const gc_case *c)
{
    ach_config cfg;
    ach_model m;
    char err[256];
    cfg_default(&cfg, c->arch);
    cfg.n_layer = c->layers, cfg.d_model = c->D, cfg.d_state = c->N, cfg.d_conv = c->K;
    cfg.expand = c->expand, cfg.headdim = c->headdim, cfg.vocab_size = c->V;
    cfg.dt_rank = (c->D + 15) / 16;
    cfg.gamma = 0.3;
    cfg.pos_enc = c->pos;
    cfg.pos_max_len = c->pos == POS_LEARNED ? c->L + 2 : 0;
    cfg.seed = 11;
    if (!ok(ach_model_create(&m, &cfg, &ach_cpu_kernels, err, sizeof err) == 0, "%s: create", c->what) ||
        !ok(ach_model_reserve(&m, c->B, c->L, err, sizeof err) == 0, "%s: reserve", c->what)) {
        diag("%s", err);
        return;
    }
    ach_init_params(&m);
    /* Move every parameter off its special init value (norms 1, D 1, biases
     * 0) so that no gradient term is trivially zero. */
    ach_rng r;
    rng_init(&r, 5, 0);
    for (size_t i = 0; i < m.nweights; i++) m.w[i] += 0.2 * rng_normal(&r);
    for (int l = 0; c->all_one && l < c->layers; l++)
        for (int i = 0; i < cfg_conv_dim(&cfg); i++) {
            m.w[mamba_of(&m)->lp[l].conv_b + i] = 0;
            for (int j = 0; j < c->K; j++) m.w[mamba_of(&m)->lp[l].conv_w + (size_t)i * c->K + j] = 1;
        }
    int tok[64], lab[8];
    for (int i = 0; i < c->B * c->L; i++) tok[i] = (int)rng_below(&r, c->V);
    for (int b = 0; b < c->B; b++) lab[b] = (int)rng_below(&r, c->V);

    unsigned char mask[64] = {0};
    for (int b = 0; c->block && b < c->B; b++) mask[b * c->L + 1] = mask[b * c->L + 3] = 1;
    if (c->block) ach_model_set_block(&m, mask, c->B, c->L, 1);
    double loss = loss_at(&m, tok, lab, c->B, c->L);
    ach_model_backward(&m);
    double *ana = malloc(m.nweights * sizeof *ana);
    for (size_t i = 0; i < m.nweights; i++) ana[i] = m.g[i];
    diag("%s: loss %.6f, %zu parameters", c->what, loss, m.nweights);

    const double h = 1e-5;
    for (int p = 0; p < m.nparams; p++) {
        const ach_param *pr = &m.params[p];
        double maxerr = 0, maxg = 0;
        for (size_t j = 0; j < pr->numel; j++) {
            size_t i = pr->offset + j;
            double w0 = m.w[i];
            m.w[i] = w0 + h;
            double lp = loss_at(&m, tok, lab, c->B, c->L);
            m.w[i] = w0 - h;
            double lm = loss_at(&m, tok, lab, c->B, c->L);
            m.w[i] = w0;
            double num = (lp - lm) / (2 * h);
            double e = fabs(num - ana[i]);
            maxerr = e > maxerr ? e : maxerr;
            maxg = fabs(num) > maxg ? fabs(num) : maxg;
        }
        /* relative to the tensor's largest gradient; double-precision FD
         * with h = 1e-5 is good to ~1e-9 here */
        double rel = maxerr / (maxg > 1e-3 ? maxg : 1e-3);
        /* With L = 1 the state never decays, so A_log's gradient is exactly 0. */
        int zero_ok = c->L == 1 && pr->kind == KIND_A_LOG;
        if (!ok(rel < 1e-6 && (maxg > 1e-8 || (zero_ok && maxerr == 0)), "%s: %s (max |g| %.3g, rel err %.2g)",
                c->what, pr->name, maxg, rel))
            diag("max abs err %.3g", maxerr);
    }
    free(ana);
    ach_model_free(&m);
}

int main(void)
{
    const gc_case cases[] = {
        {"mamba1 L>K", ARCH_MAMBA1, 1, 4, 3, 3, 2, 64, 7, 2, 5, POS_NONE, 0, 0},
        {"mamba1 L=1 N=1 3 layers", ARCH_MAMBA1, 3, 4, 1, 4, 2, 64, 7, 2, 1, POS_NONE, 0, 0},
        {"mamba1 dt_rank 2", ARCH_MAMBA1, 2, 20, 2, 2, 1, 64, 5, 1, 4, POS_NONE, 0, 0},
        {"mamba2 4 heads L>K", ARCH_MAMBA2, 1, 4, 3, 3, 2, 2, 7, 2, 5, POS_NONE, 0, 0},
        {"mamba2 L=1 N=1 3 layers", ARCH_MAMBA2, 3, 4, 1, 4, 2, 4, 7, 2, 1, POS_NONE, 0, 0},
        {"mamba2 1 head K=2 L=6", ARCH_MAMBA2, 2, 4, 2, 2, 2, 8, 6, 2, 6, POS_NONE, 0, 0},
        {"mamba1 sinusoidal PE, all-one conv", ARCH_MAMBA1, 2, 4, 3, 3, 2, 64, 7, 2, 5, POS_SINUSOIDAL, 1, 0},
        {"mamba2 learned PE, all-one conv", ARCH_MAMBA2, 2, 4, 3, 3, 2, 2, 7, 2, 5, POS_LEARNED, 1, 0},
        {"mamba2 learned PE", ARCH_MAMBA2, 1, 4, 2, 3, 2, 4, 7, 2, 4, POS_LEARNED, 0, 0},
        {"mamba1 blocked", ARCH_MAMBA1, 2, 4, 3, 3, 2, 64, 7, 2, 5, POS_NONE, 0, 1},
        {"mamba2 blocked", ARCH_MAMBA2, 2, 4, 3, 3, 2, 2, 7, 2, 5, POS_NONE, 0, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_case(&cases[i]);
    return done_testing();
}
