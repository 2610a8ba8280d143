/* The interventions on runs (all-one conv, positional encoding, blocking
 * settings) from the start and switched on a live run, and the conv cosine
 * analysis. Runs use t/data/small.json with a tiny model. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "analysis.h"
#include "mamba.h"
#include "run.h"
#include "tap.h"

static char root[] = "/tmp/achilles-interv-XXXXXX";

static void small_cfg(ach_runcfg *c, int layers)
{
    runcfg_defaults(c);
    snprintf(c->preset, sizeof c->preset, "t/data/small.json");
    c->model.n_layer = layers, c->model.d_model = 16, c->model.d_state = 8, c->model.headdim = 8;
    c->epochs = 3, c->batch_size = 500;
    c->optim.lr_max = 1e-2, c->optim.warmup_epochs = 1;
}

static int create(ach_run *r, ach_runcfg *c, const char *name)
{
    char dir[256], err[512];
    snprintf(dir, sizeof dir, "%s/%s", root, name);
    if (ach_run_create(r, c, dir, &ach_cpu_kernels, err, sizeof err)) {
        diag("%s", err);
        return -1;
    }
    return 0;
}

static void steps(ach_run *r, int n)
{
    char err[512];
    for (int i = 0; i < n; i++)
        if (ach_run_advance(r, err, sizeof err) == RUN_ERROR) diag("advance: %s", err);
}

/* conv weights of layer l all 1 and biases all 0? */
static int conv_is_all_one(const ach_run *r, int l)
{
    const ach_model *m = &r->model;
    int C = cfg_conv_dim(&m->cfg), K = m->cfg.d_conv;
    for (int i = 0; i < C * K; i++)
        if (m->w[mamba_of(m)->lp[l].conv_w + i] != 1) return 0;
    for (int i = 0; i < C; i++)
        if (m->w[mamba_of(m)->lp[l].conv_b + i] != 0) return 0;
    return 1;
}

static int count_lines(const char *path)
{
    FILE *f = fopen(path, "r");
    int n = 0, ch;
    if (!f) return -1;
    while ((ch = fgetc(f)) != EOF) n += ch == '\n';
    fclose(f);
    return n;
}

static void test_all_one_from_start(void)
{
    ach_runcfg c;
    ach_run r;
    small_cfg(&c, 2);
    c.all_one_conv = 1;
    if (!ok(create(&r, &c, "allone") == 0, "all_one_conv=on: run created")) return;
    ok(conv_is_all_one(&r, 0) && conv_is_all_one(&r, 1), "all_one_conv=on: conv weights 1, biases 0 before training");
    real w0 = r.model.w[mamba_of(&r.model)->lp[0].in_proj];
    steps(&r, 5);
    ok(conv_is_all_one(&r, 0) && conv_is_all_one(&r, 1), "all_one_conv=on: still 1 and 0 after 5 steps (frozen)");
    ok(r.model.w[mamba_of(&r.model)->lp[0].in_proj] != w0, "all_one_conv=on: other weights train");
    ok(r.last.all_one_conv == 1, "the epoch-0 record says all_one_conv");
    double cs[16];
    char err[256];
    ach_conv_cosine(&r.model, 1, cs, err, sizeof err);
    int ones = 1;
    for (int i = 0; i < 16; i++) ones &= fabs(cs[i] - 1) < 1e-12;
    ok(ones, "all-one conv: the cosine matrix is all ones");
    ach_run_close(&r);
}

static void test_live_toggle(void)
{
    ach_runcfg c;
    ach_run r;
    char err[512], path[300];
    small_cfg(&c, 2);
    if (!ok(create(&r, &c, "toggle") == 0, "live toggle: run created")) return;
    steps(&r, 3);
    ok(!conv_is_all_one(&r, 0), "conv weights are ordinary before the switch");
    ok(ach_run_set(&r, "all_one_conv", "on", err, sizeof err) == 0, "set all_one_conv on at step 3");
    ok(conv_is_all_one(&r, 0) && conv_is_all_one(&r, 1), "takes effect for the next step: weights are 1 and 0");
    steps(&r, 2);
    ok(conv_is_all_one(&r, 0), "and stay so while on");
    ok(ach_run_set(&r, "all_one_conv", "off", err, sizeof err) == 0, "set all_one_conv off at step 5");
    steps(&r, 1);
    ok(!conv_is_all_one(&r, 0), "off: the conv trains again at the next step");
    snprintf(path, sizeof path, "%s/toggle/interventions.jsonl", root);
    ok(count_lines(path) == 2, "interventions.jsonl records both switches");
    ok(ach_run_set(&r, "all_one_conv", "on", err, sizeof err) == 0, "on again");
    steps(&r, r.nbatches - 6);
    ok(r.last.epoch == 1 && r.last.all_one_conv == 1, "the epoch-1 record shows all_one_conv on");

    /* positional encoding: sinusoidal changes the function; learned starts at zero */
    int tok[6] = {30, 31, 1, 2, 33, 34}, lab = 36;
    double before = ach_model_forward(&r.model, tok, &lab, 1, 6);
    ok(ach_run_set(&r, "pos_enc", "learned", err, sizeof err) == 0, "set pos_enc learned");
    ok(ach_model_param(&r.model, "backbone.pos_embedding.weight") != NULL, "the model gained a positional table");
    double after = ach_model_forward(&r.model, tok, &lab, 1, 6);
    ok(before == after, "a new learned table is zero: the function is unchanged (%.9g)", after);
    steps(&r, 2);
    const ach_param *pt = ach_model_param(&r.model, "backbone.pos_embedding.weight");
    ok(pt && r.model.w[pt->offset] != 0, "the learned table trains");
    ok(ach_run_set(&r, "pos_enc", "sinusoidal", err, sizeof err) == 0, "set pos_enc sinusoidal");
    double with_sin = ach_model_forward(&r.model, tok, &lab, 1, 6);
    ok(ach_run_set(&r, "pos_enc", "none", err, sizeof err) == 0, "set pos_enc none");
    double without = ach_model_forward(&r.model, tok, &lab, 1, 6);
    ok(with_sin != without, "sinusoidal encoding changes the output (%.6g vs %.6g)", with_sin, without);

    /* invalid requests */
    ok(ach_run_set(&r, "gamma", "1", err, sizeof err) == -1 && strstr(err, "cannot change on a live run"),
       "a non-live key is refused: %s", err);
    ok(ach_run_set(&r, "block", "9", err, sizeof err) == -1 && strstr(err, "beyond the sequence"),
       "blocking a position beyond the sequence is refused: %s", err);
    ok(ach_run_set(&r, "block_layers", "0,2", err, sizeof err) == -1 && strstr(err, "2 is beyond the model's layers"),
       "blocking a layer that does not exist is refused: %s", err);
    ok(ach_run_set(&r, "pos_enc", "rotary", err, sizeof err) == -1 && strstr(err, "none|sinusoidal|learned"),
       "a bad value is refused: %s", err);
    ok(ach_run_set(&r, "block", "key,anchors", err, sizeof err) == 0, "block key,anchors accepted");

    /* the key table's LIVE flag decides: exactly these keys change on a
     * running run, every other is refused with a message that names them */
    const char *want = "all_one_conv, pos_enc, block, block_layers, block_train";
    char live[256] = "", want_err[512];
    int nother = 0, refused = 0;
    for (int i = 0; i < runcfg_nkeys(); i++) {
        const char *key = runcfg_key_name(i);
        char v[300];
        runcfg_get(&r.cfg, i, v, sizeof v);
        int rc = ach_run_set(&r, key, v, err, sizeof err);
        snprintf(want_err, sizeof want_err, "'%s' cannot change on a live run; live settings: %s", key, want);
        if (runcfg_key_live(i)) {
            ok(rc == 0, "live key %s=%s is accepted on a running run", key, v);
            snprintf(live + strlen(live), sizeof live - strlen(live), "%s%s", live[0] ? ", " : "", key);
        } else
            nother++, refused += rc == -1 && !strcmp(err, want_err);
    }
    ok(!strcmp(live, want), "the live keys: %s", live);
    ok(nother > 30 && refused == nother, "each of the %d other keys is refused (%d), naming the live ones", nother,
       refused);
    ok(ach_run_set(&r, "frob", "1", err, sizeof err) == -1 && strstr(err, "'frob' is not a setting; live settings: "),
       "an unknown key is named as such: %s", err);
    ach_run_close(&r);
}

/* A live switch survives stop + resume: same numbers as never stopping. */
static void test_resume_after_switch(void)
{
    ach_runcfg c;
    ach_run a, b;
    char err[512], dir[256];
    small_cfg(&c, 2);
    if (create(&a, &c, "straight") || create(&b, &c, "stopped")) return;
    for (ach_run *r = &a; r; r = r == &a ? &b : NULL) {
        steps(r, 4);
        ach_run_set(r, "all_one_conv", "on", err, sizeof err);
        ach_run_set(r, "pos_enc", "learned", err, sizeof err);
        steps(r, 3);
    }
    ok(ach_run_save_state(&b, err, sizeof err) == 0, "state saved after the switches");
    ach_run_close(&b);
    snprintf(dir, sizeof dir, "%s/stopped", root);
    if (!ok(ach_run_resume(&b, dir, &ach_cpu_kernels, err, sizeof err) == 0, "resumed")) {
        diag("%s", err);
        ach_run_close(&a);
        return;
    }
    ok(b.cfg.all_one_conv == 1 && b.model.cfg.pos_enc == POS_LEARNED, "the live settings come back");
    steps(&a, 20);
    steps(&b, 20);
    ok(a.model.nweights == b.model.nweights &&
           !memcmp(a.model.w, b.model.w, a.model.nweights * sizeof(real)) &&
           !memcmp(a.opt.m, b.opt.m, a.model.nweights * sizeof(real)),
       "after resume: bit-identical weights and moments 20 steps on");
    ach_run_close(&a);
    ach_run_close(&b);
}

static void test_cosine(void)
{
    ach_runcfg c;
    ach_run r;
    char err[256];
    small_cfg(&c, 2);
    if (create(&r, &c, "cosine")) return;
    const ach_model *m = &r.model;
    int K = m->cfg.d_conv, C = cfg_conv_dim(&m->cfg);
    double cs[16];
    ok(ach_conv_cosine(m, 1, cs, err, sizeof err) == 0, "cosine of layer 1");
    int diag_one = 1, sym = 1;
    for (int i = 0; i < K; i++) {
        diag_one &= fabs(cs[i * K + i] - 1) < 1e-12;
        for (int j = 0; j < K; j++) sym &= cs[i * K + j] == cs[j * K + i];
    }
    ok(diag_one, "unit diagonal");
    ok(sym, "symmetric");
    /* direct: taps 0 and 3 */
    const real *w = m->w + mamba_of(m)->lp[1].conv_w;
    double dot = 0, n0 = 0, n3 = 0;
    for (int ch = 0; ch < C; ch++) {
        dot += (double)w[ch * K] * w[ch * K + 3];
        n0 += (double)w[ch * K] * w[ch * K];
        n3 += (double)w[ch * K + 3] * w[ch * K + 3];
    }
    is_close(cs[3], dot / sqrt(n0 * n3), 1e-12, 0, "entry (0, 3) matches a direct computation");
    ok(fabs(cs[1]) < 0.5, "random taps are nearly orthogonal (%.3f)", cs[1]);
    ok(ach_conv_cosine(m, 2, cs, err, sizeof err) == -1 && strstr(err, "layer 2 does not exist"),
       "a layer that does not exist: %s", err);
    ach_run_close(&r);
}

int main(void)
{
    if (!mkdtemp(root)) return 1;
    test_all_one_from_start();
    test_live_toggle();
    test_resume_after_switch();
    test_cosine();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", root);
    if (system(cmd)) diag("could not remove %s", root);
    return done_testing();
}
