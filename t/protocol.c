/* The protocol settings of the reproduction search (docs/reproduction.md):
 * the gamma rule's d1 (fan), the dt bias under gamma, the all-one conv's
 * mode, channels and bias, and the task overrides seq_len and key_offset.
 * Each is checked for what it does, against values computed here. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "init.h"
#include "mamba.h"
#include "run.h"
#include "tap.h"

static char root[] = "/tmp/achilles-protocol-XXXXXX";

/* Mean and standard deviation of a tensor. */
static void stats(const ach_model *m, const char *name, double *mean, double *sd, size_t *n)
{
    const ach_param *p = ach_model_param(m, name);
    double s = 0, ss = 0;
    *n = p->numel;
    for (size_t i = 0; i < p->numel; i++) s += m->w[p->offset + i];
    *mean = s / p->numel;
    for (size_t i = 0; i < p->numel; i++) ss += pow(m->w[p->offset + i] - *mean, 2);
    *sd = sqrt(ss / (p->numel - 1));
}

static int make_model(ach_model *m, ach_arch arch, ach_fan_rule fan, int dt_zero)
{
    ach_config c;
    char err[256];
    cfg_default(&c, arch);
    c.gamma = 1, c.fan_rule = fan, c.dt_bias_zero = dt_zero, c.seed = 3;
    if (ach_model_create(m, &c, &ach_cpu_kernels, err, sizeof err) || ach_init_params(m)) {
        diag("%s", err);
        return -1;
    }
    return 0;
}

/* std = d1^-gamma (gamma 1) for the paper's Mamba-2, under each fan rule. */
static void test_fan(void)
{
    static const struct { const char *tensor; double d1[3]; } want[] = {
        /* in, out, shape0; in_proj [385, 32], conv [320, 1, 4], out_proj [32, 64], embedding [201, 32] */
        {"backbone.layers.0.mixer.in_proj.weight", {32, 385, 385}},
        {"backbone.layers.1.mixer.conv1d.weight", {4, 1280, 320}},
        {"backbone.layers.0.mixer.out_proj.weight", {64, 32, 32}},
        {"backbone.embedding.weight", {32, 201, 201}},
    };
    static const char *rule[] = {"in", "out", "shape0"};
    for (int f = 0; f < 3; f++) {
        ach_model m;
        if (make_model(&m, ARCH_MAMBA2, (ach_fan_rule)f, 0)) {
            ok(0, "fan %s: model", rule[f]);
            continue;
        }
        for (size_t t = 0; t < sizeof want / sizeof *want; t++) {
            double mean, sd, target = 1 / want[t].d1[f];
            size_t n;
            stats(&m, want[t].tensor, &mean, &sd, &n);
            /* sampling error of the std: about 1/sqrt(2n) relative */
            char what[200];
            snprintf(what, sizeof what, "fan %s: %s std = 1/%g (n %zu)", rule[f], want[t].tensor, want[t].d1[f], n);
            is_close(sd, target, 0, 5 / sqrt(2.0 * n), what);
            ok(fabs(mean) < 5 * target / sqrt((double)n), "fan %s: %s mean near 0 (%.3g)", rule[f], want[t].tensor, mean);
        }
        ach_model_free(&m);
    }
}

/* gamma_bias: the dt bias zero, or softplus^-1 of dt in [dt_min, dt_max]. */
static void test_dt_bias(void)
{
    static const char *name[] = {"backbone.layers.1.mixer.dt_proj.bias", "backbone.layers.1.mixer.dt_bias"};
    for (int a = 0; a < 2; a++)
        for (int zero = 0; zero < 2; zero++) {
            ach_model m;
            if (make_model(&m, a ? ARCH_MAMBA2 : ARCH_MAMBA1, FAN_IN, zero)) {
                ok(0, "model");
                continue;
            }
            const ach_param *p = ach_model_param(&m, name[a]);
            int all = 1;
            double lo = log(expm1(1e-3)) - 1e-5, hi = log(expm1(0.1)) + 1e-5;
            for (size_t i = 0; i < p->numel; i++) {
                double v = m.w[p->offset + i];
                all &= zero ? v == 0 : v >= lo && v <= hi;
            }
            ok(all, "gamma_bias=%s: %s %s (%zu values)", zero ? "zero" : "reference", name[a],
               zero ? "all 0" : "in [softplus^-1(0.001), softplus^-1(0.1)]", p->numel);
            /* the conv bias is 0 under gamma either way */
            p = ach_model_param(&m, "backbone.layers.0.mixer.conv1d.bias");
            int z = 1;
            for (size_t i = 0; i < p->numel; i++) z &= m.w[p->offset + i] == 0;
            ok(z, "gamma_bias=%s (%s): conv1d.bias all 0", zero ? "zero" : "reference", a ? "mamba2" : "mamba1");
            ach_model_free(&m);
        }
}

static void small_cfg(ach_runcfg *c)
{
    runcfg_defaults(c);
    snprintf(c->preset, sizeof c->preset, "t/data/small.json");
    c->model.n_layer = 2, c->model.d_model = 16, c->model.d_state = 8, c->model.headdim = 8;
    c->epochs = 3, c->batch_size = 500;
    c->optim.lr_max = 1e-2, c->optim.warmup_epochs = 1;
}

/* Counts, in layer l's conv weight (rows [r0, r1)) and bias, the entries
 * equal to the all-one values. */
static void conv_counts(const ach_run *r, int l, int r0, int r1, int *w_one, int *b_zero, int *n_w, int *n_b)
{
    const ach_model *m = &r->model;
    int K = m->cfg.d_conv;
    *w_one = *b_zero = 0;
    *n_w = (r1 - r0) * K, *n_b = r1 - r0;
    for (int i = r0 * K; i < r1 * K; i++) *w_one += m->w[mamba_of(m)->lp[l].conv_w + i] == 1;
    for (int i = r0; i < r1; i++) *b_zero += m->w[mamba_of(m)->lp[l].conv_b + i] == 0;
}

/* After 12 steps: which conv entries still hold 1 (weights) and 0 (bias),
 * in the x channels and in B, C. */
static void test_all_one(void)
{
    static const struct {
        int mode, channels, bias;
        int x_w, x_b, bc_w, bc_b; /* 1: every entry still 1 / 0; 0: none is */
    } cases[] = {
        {0, 0, 0, 1, 1, 1, 1}, /* frozen, all channels: the tensors frozen */
        {1, 0, 0, 0, 1, 0, 1}, /* trained weights, frozen bias */
        {0, 0, 1, 1, 0, 1, 0}, /* frozen weights, trained bias */
        {1, 0, 1, 0, 0, 0, 0}, /* both trained from 1 and 0 */
        {0, 1, 0, 1, 1, 0, 0}, /* x channels only, frozen: pinned inside a trained tensor */
        {1, 1, 1, 0, 0, 0, 0},
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        ach_runcfg cfg;
        ach_run r;
        char dir[300], err[512];
        small_cfg(&cfg);
        cfg.all_one_conv = 1, cfg.all_one_mode = cases[c].mode, cfg.all_one_channels = cases[c].channels;
        cfg.all_one_bias = cases[c].bias;
        snprintf(dir, sizeof dir, "%s/aone%zu", root, c);
        char what[160];
        snprintf(what, sizeof what, "all_one_mode=%s all_one_channels=%s all_one_bias=%s",
                 cases[c].mode ? "trained" : "frozen", cases[c].channels ? "x" : "all",
                 cases[c].bias ? "trained" : "frozen");
        if (ach_run_create(&r, &cfg, dir, &ach_cpu_kernels, err, sizeof err)) {
            ok(0, "%s: run: %s", what, err);
            continue;
        }
        int Di = cfg_d_inner(&r.model.cfg), C = cfg_conv_dim(&r.model.cfg), w, b, nw, nb;
        conv_counts(&r, 1, 0, cases[c].channels ? Di : C, &w, &b, &nw, &nb);
        ok(w == nw && b == nb, "%s: the covered conv weights 1 and bias 0 at the start (%d/%d, %d/%d)", what, w, nw,
           b, nb);
        if (cases[c].channels) {
            conv_counts(&r, 1, Di, C, &w, &b, &nw, &nb);
            ok(w == 0, "%s: B, C weights as initialised at the start (%d of %d are 1)", what, w, nw);
        }
        for (int i = 0; i < 12; i++)
            if (ach_run_advance(&r, err, sizeof err) == RUN_ERROR) diag("advance: %s", err);
        for (int l = 0; l < 2; l++) {
            conv_counts(&r, l, 0, Di, &w, &b, &nw, &nb);
            ok(cases[c].x_w ? w == nw : w == 0, "%s: layer %d: x channels' weights %s (%d of %d are 1)", what, l,
               cases[c].x_w ? "still 1" : "trained", w, nw);
            ok(cases[c].x_b ? b == nb : b == 0, "%s: layer %d: x channels' bias %s (%d of %d are 0)", what, l,
               cases[c].x_b ? "still 0" : "trained", b, nb);
            conv_counts(&r, l, Di, C, &w, &b, &nw, &nb);
            ok(cases[c].bc_w ? w == nw : w == 0, "%s: layer %d: B, C channels' weights %s (%d of %d are 1)", what,
               l, cases[c].bc_w ? "still 1" : "trained", w, nw);
            ok(cases[c].bc_b ? b == nb : b == 0, "%s: layer %d: B, C channels' bias %s (%d of %d are 0)", what, l,
               cases[c].bc_b ? "still 0" : "trained", b, nb);
        }
        /* pinned entries: no moments either, so switching off trains them like fresh ones */
        if (cases[c].channels && !cases[c].mode) {
            int zero = 1;
            for (int i = 0; i < Di * r.model.cfg.d_conv; i++)
                zero &= r.opt.m[mamba_of(&r.model)->lp[0].conv_w + i] == 0 && r.opt.v[mamba_of(&r.model)->lp[0].conv_w + i] == 0;
            ok(zero, "%s: the pinned entries' AdamW moments are 0", what);
        }
        /* resuming keeps trained weights where they are (no second set to 1) */
        if (cases[c].mode) {
            real before = r.model.w[mamba_of(&r.model)->lp[0].conv_w];
            if (ach_run_save_state(&r, err, sizeof err)) diag("save: %s", err);
            ach_run_close(&r);
            if (ach_run_resume(&r, dir, &ach_cpu_kernels, err, sizeof err)) {
                ok(0, "%s: resume: %s", what, err);
                continue;
            }
            ok(r.model.w[mamba_of(&r.model)->lp[0].conv_w] == before && before != 1,
               "%s: after resume the trained weight stays %.6g (not set to 1 again)", what, (double)before);
        }
        ach_run_close(&r);
    }
}

/* key_offset and seq_len on whole splits of the composite preset. */
static void test_task_overrides(void)
{
    for (int off = 0; off <= 1; off++)
        for (int len = 8; len <= 9; len++) {
            ach_task t;
            char err[512], *text = NULL;
            if (task_load_with(&t, "composite", len == 8 ? 0 : len, off ? 1 : -1, &text, err, sizeof err)) {
                ok(0, "composite seq_len %d key_offset %d: %s", len, off, err);
                continue;
            }
            ok(t.seq_len == len && t.key_offset == off, "seq_len=%d key_offset=%d: the task has L %d, offset %d",
               len, off, t.seq_len, t.key_offset);
            ok(text && strstr(text, "\"position_offset\"") != NULL, "the task's JSON text comes back");
            int32_t tok[16], label;
            ach_seq_info in;
            for (int s = 0; s < TASK_NSPLITS; s++) {
                uint64_t n = task_split_size(&t, s), bad = 0, last_noise = 0;
                for (uint64_t i = 0; i < n; i++) {
                    task_sequence(&t, 0, s, i, tok, &label, &in);
                    int same = in.key % 8 == (in.pos + off) % 8;
                    bad += s == TASK_TRAIN ? same : !same;
                    last_noise += in.pos + 2 < len - 1 || len == 8;
                    if (len == 9) bad += tok[8] < 20 || tok[8] >= 100 || in.pos > 5;
                }
                ok(!bad, "seq_len=%d key_offset=%d %s: all %llu sequences follow key mod 8 %s (p + %d) mod 8", len,
                   off, s ? "test" : "train", (unsigned long long)n, s ? "==" : "!=", off);
                if (len == 9) ok(last_noise == n, "seq_len 9 %s: a noise token always follows the anchors", s ? "test" : "train");
            }
            free(text);
            task_free(&t);
        }
    ach_task t;
    char err[512];
    ok(task_load_with(&t, "composite", 7, -1, NULL, err, sizeof err) == -1 && strstr(err, "key_positions"),
       "seq_len 7 with key positions up to 5: an error naming key_positions (%s)", err);
}

int main(void)
{
    if (!mkdtemp(root)) return 1;
    test_fan();
    test_dt_bias();
    test_all_one();
    test_task_overrides();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", root);
    if (system(cmd)) diag("could not remove %s", root);
    return done_testing();
}
