/* The sweep library (src/sweep/sweep.h) that the CLI and the workbench share:
 * grid parsing and expansion, manifests, loading a sweep directory, run
 * states and metrics; and the phase table on the committed fixture. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "phase.h"
#include "sweep.h"
#include "tap.h"

static const char *setting(const sweep_run *r, const char *key)
{
    for (int i = 0; i < r->nset; i++)
        if (!strcmp(r->set[i].key, key)) return r->set[i].val;
    return NULL;
}

static int arg_fails(const char *arg, const char *want)
{
    ach_sweep s;
    char err[1024] = "";
    sweep_init(&s);
    int rc = sweep_parse_arg(&s, arg, err, sizeof err);
    sweep_free(&s);
    int good = rc != 0 && strstr(err, want) != NULL;
    if (!good) diag("%s: rc %d, message '%s'", arg, rc, err);
    return good;
}

int main(void)
{
    char err[4096];
    ach_sweep s;

    /* --- command-line words ------------------------------------------- */
    sweep_init(&s);
    snprintf(s.dir, sizeof s.dir, "/tmp/x");
    ok(!sweep_parse_arg(&s, "n_layer=2,3", err, sizeof err), "n_layer=2,3 parses");
    ok(!sweep_parse_arg(&s, "gamma=0.5,1.0,2", err, sizeof err), "gamma=0.5,1.0,2 parses");
    ok(!sweep_parse_arg(&s, "seed=7", err, sizeof err), "seed=7 parses");
    ok(!sweep_parse_arg(&s, "block=key,anchors", err, sizeof err), "block=key,anchors is one value");
    ok(!sweep_parse_arg(&s, "block_layers=0;1", err, sizeof err), "block_layers=0;1 is a list");
    ok(s.naxes == 3 && s.nbase == 2, "3 axes (n_layer, gamma, block_layers), 2 fixed (seed, block)");
    ok(!strcmp(s.base[1].val, "key,anchors"), "the comma list is kept whole");
    if (!ok(!sweep_expand(&s, err, sizeof err), "expands")) diag("%s", err);
    ok(s.nruns == 12, "2 x 3 x 2 = 12 runs");
    /* the first key varies slowest, the last fastest */
    ok(!strcmp(setting(&s.runs[0], "n_layer"), "2") && !strcmp(setting(&s.runs[0], "gamma"), "0.5") &&
           !strcmp(setting(&s.runs[0], "block_layers"), "0"), "run 0: first values");
    ok(!strcmp(setting(&s.runs[1], "block_layers"), "1") && !strcmp(setting(&s.runs[1], "gamma"), "0.5"),
       "run 1: the last key moved");
    ok(!strcmp(setting(&s.runs[7], "n_layer"), "3") && !strcmp(setting(&s.runs[7], "gamma"), "0.5") &&
           !strcmp(setting(&s.runs[7], "block_layers"), "1"), "run 7: n_layer=3 gamma=0.5 block_layers=1");
    ok(s.runs[11].cfg.model.n_layer == 3 && s.runs[11].cfg.model.gamma == 2 && s.runs[11].cfg.seed == 7 &&
           !strcmp(s.runs[11].cfg.block, "key,anchors"), "run 11's resolved configuration");
    ok(!strcmp(s.runs[5].rel, "runs/0005-L2-g2-block_layers=1"), "run directory names: %s", s.runs[5].rel);
    ok(!strcmp(s.runs[5].dir, "/tmp/x/runs/0005-L2-g2-block_layers=1"), "paths under the sweep directory");
    char *m = sweep_manifest_json(&s);
    ok(m && strstr(m, "\"nruns\":\t12") && strstr(m, "\"block\":\t\"key,anchors\""), "manifest text");
    free(m);
    sweep_free(&s);

    ok(arg_fails("bogus=1,2", "unknown key 'bogus'"), "unknown key");
    ok(arg_fails("gamma=0.5,abc", "key 'gamma': 'abc' is not a number"), "bad value in a list");
    ok(arg_fails("gamma=20", "out of range"), "value out of range");
    ok(arg_fails("gamma=0.5,,1", "empty value"), "empty item");
    ok(arg_fails("n_layer=2,2", "listed twice"), "repeated value");
    ok(arg_fails("=2", "expected key=value"), "no key");

    /* --- SPEC.json ---------------------------------------------------------- */
    sweep_init(&s);
    snprintf(s.dir, sizeof s.dir, "d");
    int rc = sweep_parse_spec(&s, "{\"name\": \"t\", \"base\": {\"epochs\": 3, \"all_one_conv\": true},"
                                  " \"grid\": {\"gamma\": [0.1, 0.3, 1], \"preset\": [\"composite\", \"t/data/small.json\"]}}",
                              "spec.json", err, sizeof err);
    if (!ok(!rc, "a spec parses")) diag("%s", err);
    ok(s.naxes == 2 && !strcmp(s.axes[0].vals[0], "0.1") && !strcmp(s.axes[0].vals[1], "0.3") &&
           !strcmp(s.axes[0].vals[2], "1"), "JSON numbers keep their shortest form (0.1, 0.3, 1)");
    ok(!strcmp(s.base[0].val, "3") && !strcmp(s.base[1].val, "on"), "numbers and booleans in base");
    ok(!sweep_expand(&s, err, sizeof err) && s.nruns == 6, "6 runs");
    ok(!strcmp(s.runs[1].rel, "runs/0001-g0.1-preset=small"), "a preset path is named by its file: %s", s.runs[1].rel);
    ok(s.axes[1].vals[1][0] == '/' && strstr(s.axes[1].vals[1], "/t/data/small.json"),
       "a relative preset path is kept absolute: %s", s.axes[1].vals[1]);
    ok(!strcmp(s.axes[1].vals[0], "composite"), "a preset name stays a name");
    ach_sweep s2;
    sweep_init(&s2);
    snprintf(s2.dir, sizeof s2.dir, "d");
    sweep_parse_spec(&s2, "{\"name\": \"t\", \"base\": {\"epochs\": \"3\", \"all_one_conv\": \"on\"},"
                          " \"grid\": {\"gamma\": [\"0.1\", \"0.3\", \"1\"], \"preset\": [\"composite\", \"t/data/small.json\"]}}",
                     "spec2", err, sizeof err);
    sweep_expand(&s2, err, sizeof err);
    ok(sweep_same_plan(&s, &s2), "the same plan written with strings");
    sweep_free(&s2);
    sweep_init(&s2);
    snprintf(s2.dir, sizeof s2.dir, "d");
    sweep_parse_spec(&s2, "{\"name\": \"t\", \"grid\": {\"gamma\": [0.1]}}", "spec3", err, sizeof err);
    sweep_expand(&s2, err, sizeof err);
    ok(!sweep_same_plan(&s, &s2), "a different plan differs");
    sweep_free(&s2);
    sweep_free(&s);

    static const struct { const char *json, *want; } bad[] = {
        {"[1]", "not a JSON object"},
        {"{\"grid\": {\"gamma\": []}}", "key 'gamma': the list of values is empty"},
        {"{\"grid\": {\"gamma\": 0.5}}", "grid.gamma: must be a list"},
        {"{\"grid\": {\"gamma\": [null]}}", "grid.gamma[0]: must be a string"},
        {"{\"grid\": {\"nope\": [1]}}", "unknown key 'nope'"},
        {"{\"base\": {\"gamma\": 1}, \"grid\": {\"gamma\": [1]}}", "key 'gamma' is given twice"},
        {"{\"grid\": {\"gamma\": [1]}, \"extra\": 1}", "unknown field 'extra'"},
        {"{\"base\": {}}", "field 'grid': missing"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sweep_init(&s);
        err[0] = 0;
        rc = sweep_parse_spec(&s, bad[i].json, "spec.json", err, sizeof err);
        ok(rc && strstr(err, bad[i].want) && !strncmp(err, "spec.json", 9), "spec %s: %s", bad[i].json, err);
        sweep_free(&s);
    }
    /* a configuration that only fails as a whole names the run */
    sweep_init(&s);
    snprintf(s.dir, sizeof s.dir, "d");
    sweep_parse_arg(&s, "headdim=5,8", err, sizeof err);
    sweep_parse_arg(&s, "preset=t/data/small.json", err, sizeof err); /* loads quickly */
    rc = sweep_expand(&s, err, sizeof err);
    ok(rc && strstr(err, "run 0 (headdim=5)") && strstr(err, "headdim"), "whole-config check names the run: %s", err);
    sweep_free(&s);

    /* --- the committed fixture: load, states, metrics, history ---------------- */
    rc = sweep_load(&s, "t/data/sweep-fixture", err, sizeof err);
    if (!ok(!rc, "the fixture loads")) diag("%s", err);
    ok(s.has_manifest && s.nruns == 8 && !strcmp(s.name, "fixture"), "8 runs from its manifest");
    sweep_refresh(&s);
    int done = 0;
    for (int i = 0; i < s.nruns; i++) done += s.runs[i].state == SWEEP_DONE;
    ok(done == 8, "every run is done");
    ok(s.runs[3].have_last && s.runs[3].last.epoch == 2 && fabs(task_metric(&s.runs[3].last.eval, "acc43_comp") - 0.64) < 1e-12 &&
           fabs(task_metric(&s.runs[3].last.eval, "acc43_sym") - 0.36) < 1e-12, "run 3's latest metrics");
    ok(!strcmp(setting(&s.runs[3], "gamma"), "1.0") && s.runs[3].cfg.model.n_layer == 2 && s.runs[3].cfg.seed == 1,
       "run 3's settings");
    ach_metrics *h;
    int n;
    ok(!sweep_run_history(&s.runs[3], &h, &n, err, sizeof err) && n == 3 && h[1].epoch == 1 &&
           fabs(task_metric(&h[1].eval, "acc43_comp") - 0.74) < 1e-12 && isnan(h[1].block_agree), "run 3's history: 3 records");
    free(h);
    phase_table t;
    ok(!phase_build(&t, &s, 0, err, sizeof err) && t.ngroups == 1 && t.groups[0].nrows == 2 &&
           t.groups[0].ncols == 2, "phase table: one group, 2 x 2");
    /* rows are layers descending: L3 first; columns gamma ascending */
    const phase_stat *c = &t.groups[0].cell[PHASE_COMP][1 * 2 + 1]; /* L2, gamma 1.0: 0.60, 0.64 */
    ok(c->n == 2 && fabs(c->mean - 0.62) < 1e-12 && c->min == 0.60 && c->max == 0.64 &&
           fabs(c->std - sqrt(0.0008)) < 1e-12, "L2 gamma 1.0 composite: mean 0.62, 0.60-0.64, std 0.0283");
    phase_free(&t);
    sweep_free(&s);

    phase_paper p;
    rc = phase_paper_load(&p, "data/paper_fig3.json", err, sizeof err);
    if (!ok(!rc, "the paper's figure loads")) diag("%s", err);
    double lo, hi;
    ok(phase_paper_cell(&p, PHASE_COMP, 7, 1.0, &lo, &hi) == 1 && lo == 0.98, "paper: L7 gamma 1.0 composite .98");
    ok(phase_paper_cell(&p, PHASE_SYM, 2, 1.5, &lo, &hi) == 1 && lo == 0.95, "paper: L2 gamma 1.5 symmetric .95");
    ok(phase_paper_cell(&p, PHASE_SYM, 4, 0.3, &lo, &hi) == 0 && lo == 0.04 && hi == 0.13,
       "paper: other symmetric cells are the range .04-.13");
    ok(phase_paper_cell(&p, PHASE_COMP, 8, 1.0, &lo, &hi) < 0, "paper: no 8-layer row");
    phase_paper_free(&p);
    return done_testing();
}
