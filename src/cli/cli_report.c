/* `achilles report`: one REPORT.md that puts our numbers beside the paper's
 * for every experiment found among the given run and sweep directories
 * (docs/science.md §4, §5), with SVG figures written next to it. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "analysis.h"
#include "checkpoint.h"
#include "cli.h"
#include "fsutil.h"
#include "phase.h"
#include "report_analyses.h"
#include "strbuf.h"
#include "svg.h"

const char *cli_report_help =
    "usage: achilles report DIR... [--out FILE] [--per-pair N] [--no-analyses]\n"
    "\n"
    "Writes a Markdown report that puts our numbers beside the paper's for every\n"
    "experiment among the runs in the given sweep or run directories (or\n"
    "directories holding run directories): the phase diagram (Fig. 3), all-one\n"
    "convolution against standard, positional encoding, the fully-symmetric\n"
    "task (Fig. 4a: runs on a preset named fully-symmetric*, finished or held),\n"
    "blocking, substitution and conv cosine similarity. Blocking, substitution\n"
    "and cosine are measured here on each finished run's state.safetensors (and\n"
    "ckpt/epoch_0000) and saved beside it in analyses.json; a run kept without\n"
    "its model (as under results/, which commits summaries only) is read from\n"
    "that file instead.\n"
    "Each section ends with a verdict (reproduced, partly, not reproduced) and\n"
    "the criterion it judges by; all-one runs held early (sweep --until-epoch)\n"
    "are in a protocol-search table at epochs 10, 20 and 30. Figures are SVG\n"
    "files next to the report, named after it (REPORT-phase.svg, ...), and\n"
    "linked from it. No date is written: the same runs give the same report.\n"
    "\n"
    "  --out FILE      the report (default REPORT.md)\n"
    "  --per-pair N    blocking, substitution: test sequences per pair (default\n"
    "                  480, the paper's; 0 = all)\n"
    "  --no-analyses   skip the measurements on model states (no model is loaded)\n";

/* The paper's numbers (docs/science.md §4), quoted in the report as the paper states them. */
#define PAPER_ALLONE "5 layers, gamma 1: all-one learns the symmetric answer (sym ~0.85 by epoch 25, ~1.0 at 200; " \
                     "comp peaks ~0.48, then falls to ~0); standard learns the composite (comp ~0.75-0.9, sym ~0)"
#define PAPER_PE "2 layers, gamma 0.5: with positional encoding sym ~0.82 at epoch 210, comp peaks ~0.26, then " \
                 "~0.10; without it both ~0.02-0.04"
#define PAPER_BLOCK "480 sequences per pair; predictions unchanged by blocking key and anchors: pair 43 ~0.994, " \
                    "every other pair 1.00"
#define PAPER_SUBST "fraction of predictions that collapse to the (4,3) twin's: 0.983-1.0 for all 15 pairs"
#define PAPER_FULLSYM "the fully-symmetric task, d_model 128, 2-6 layers, gamma 0.5: pair 34 reaches 1.0, pair 43 " \
                      "stays near 0 (both answers of 43 are the label 34 is trained with)"
#define PAPER_COSINE "2 layers, gamma 1: off-diagonal entries between -0.11 and 0.35 (\"nearly orthogonal\")"

typedef struct {
    sweep_run *r;
    char name[700];        /* sweep name / run directory */
    ach_metrics *hist;     /* metrics.jsonl, loaded on demand */
    int nhist, loaded;
    run_analyses an;       /* finished runs: measured on the model state */
} item;

static int fail(const char *msg)
{
    fprintf(stderr, "achilles: report: %s\n", msg);
    return 1;
}

static const char *num(double v, char *buf, size_t n)
{
    if (isnan(v)) snprintf(buf, n, "–");
    else snprintf(buf, n, "%.3f", v);
    return buf;
}

static int history(item *it)
{
    if (!it->loaded) {
        char err[1024];
        if (sweep_run_history(it->r, &it->hist, &it->nhist, err, sizeof err)) {
            fprintf(stderr, "achilles: report: %s (run left without curves)\n", err);
            it->hist = NULL, it->nhist = 0;
        }
        it->loaded = 1;
    }
    return it->nhist;
}

/* Pair 43's accuracy against one of its answers: the composite's metrics,
 * which the paper's figures are about. */
static double metric(const ach_metrics *m, int sym)
{
    return task_metric(&m->eval, sym ? TASK_METRIC_ACC43_SYM : TASK_METRIC_ACC43_COMP);
}

static void peak(item *it, int sym, double *v, int *epoch)
{
    *v = NAN, *epoch = -1;
    for (int i = 0; i < history(it); i++) {
        double x = metric(&it->hist[i], sym);
        if (!isnan(x) && !(x <= *v)) *v = x, *epoch = it->hist[i].epoch;
    }
}

static double at_epoch(item *it, int sym, int epoch)
{
    for (int i = 0; i < history(it); i++)
        if (it->hist[i].epoch == epoch) return metric(&it->hist[i], sym);
    return NAN;
}

static int has_allone(const sweep_run *r) { return r->cfg.all_one_conv || (r->have_last && r->last.all_one_conv); }
static int has_pe(const sweep_run *r)
{
    return r->cfg.model.pos_enc != POS_NONE || (r->have_last && r->last.pos_enc[0] && strcmp(r->last.pos_enc, "none"));
}

/* The run's configuration as text with one intervention switched off and
 * the thread count (no effect on results) and the preset's directory
 * ignored: equal texts are twins. */
static char *twin_key(const ach_runcfg *c, int which)
{
    ach_runcfg x = *c;
    x.threads = 0;
    /* the same preset by another path (see phase.c) */
    const char *b = strrchr(c->preset, '/');
    snprintf(x.preset, sizeof x.preset, "%s", b ? b + 1 : c->preset);
    if (which == 0) x.all_one_conv = 0;
    else x.model.pos_enc = POS_NONE;
    return runcfg_to_json(&x);
}

/* The standard run that differs from it[k] only by the intervention. */
static int find_twin(item *it, int n, int k, int which)
{
    char *key = twin_key(&it[k].r->cfg, which);
    int found = -1;
    for (int j = 0; key && j < n && found < 0; j++) {
        if (j == k || it[j].r->state != SWEEP_DONE || (which == 0 ? has_allone(it[j].r) : has_pe(it[j].r))) continue;
        char *o = twin_key(&it[j].r->cfg, which);
        if (o && !strcmp(o, key)) found = j;
        free(o);
    }
    free(key);
    return found;
}

static void run_cells(strbuf *b, item *it, const char *what)
{
    char c1[32], c2[32], c3[32], c4[32], seed[32];
    double pk;
    int pe;
    peak(it, 0, &pk, &pe);
    const sweep_run *r = it->r;
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)r->cfg.seed);
    sb_printf(b, "| `%s` | %d | %g | %s | %s | %d | %s | %s (%d) | %s | %s |\n", it->name, r->cfg.model.n_layer,
              r->cfg.model.gamma, seed, what, r->have_last ? r->last.epoch : 0, num(metric(&r->last, 0), c1, sizeof c1),
              num(pk, c2, sizeof c2), pe, num(at_epoch(it, 1, 25), c3, sizeof c3), num(metric(&r->last, 1), c4, sizeof c4));
}

/* Curves of comp (solid) and sym (dashed) for up to four runs. */
static char *curves(item **runs, const char **labels, int n, const char *title)
{
    if (n > 4) n = 4;
    svg_series s[8];
    double *xs[8] = {0}, *ys[8] = {0};
    int ns = 0;
    double xmax = 1;
    char lab[8][160];
    for (int k = 0; k < n; k++) {
        int m = history(runs[k]);
        for (int w = 0; w < 2; w++) {
            xs[ns] = malloc((m ? m : 1) * sizeof(double)), ys[ns] = malloc((m ? m : 1) * sizeof(double));
            if (!xs[ns] || !ys[ns]) goto oom;
            for (int i = 0; i < m; i++) {
                xs[ns][i] = runs[k]->hist[i].epoch;
                ys[ns][i] = metric(&runs[k]->hist[i], w);
                if (xs[ns][i] > xmax) xmax = xs[ns][i];
            }
            snprintf(lab[ns], sizeof lab[ns], "%s: %s", labels[k], w ? "symmetric" : "composite");
            s[ns] = (svg_series){.label = lab[ns], .n = m, .x = xs[ns], .y = ys[ns], .color = k, .dashed = w};
            ns++;
        }
    }
    strbuf b = {0};
    double h = 360 + svg_legend_height(ns);
    svg_begin(&b, 720, (int)h, title);
    svg_linechart(&b, 0, 0, 720, 360, title, "epoch", "accuracy on pair 43", xmax, s, ns);
    svg_end(&b);
    for (int k = 0; k < ns; k++) free(xs[k]), free(ys[k]);
    return sb_take(&b);
oom:
    for (int k = 0; k <= ns && k < 8; k++) free(xs[k]), free(ys[k]);
    return NULL;
}

static int write_figure(const char *path, char *svg, char *err, size_t errlen)
{
    if (!svg) {
        snprintf(err, errlen, "%s: out of memory", path);
        return -1;
    }
    int rc = write_file_atomic(path, svg, strlen(svg), err, errlen);
    free(svg);
    return rc;
}

/* The settings a run sets apart from the defaults, as key=value words; the
 * ones the caller shows elsewhere (and threads, no effect) left out. */
static void settings_text(const ach_runcfg *c, char *buf, size_t n)
{
    static const char *const shown[] = {"threads", "all_one_conv", "n_layer", "gamma", NULL};
    ach_runcfg d;
    runcfg_defaults(&d);
    size_t len = 0;
    buf[0] = 0;
    for (int i = 0; i < runcfg_nkeys() && len < n; i++) {
        const char *key = runcfg_key_name(i);
        int skip = 0;
        for (int j = 0; shown[j]; j++) skip |= !strcmp(key, shown[j]);
        char a[300], b[300];
        runcfg_get(c, i, a, sizeof a);
        runcfg_get(&d, i, b, sizeof b);
        if (skip || !strcmp(a, b)) continue;
        const char *v = a, *slash = strrchr(a, '/');
        if (!strcmp(key, "preset") && slash) v = slash + 1; /* the preset's file name is its name */
        len += snprintf(buf + len, n - len, "%s%s=%s", len ? " " : "", key, v);
    }
    if (!len) snprintf(buf, n, "defaults");
}

/* Twins for the search: equal settings apart from every all-one key. */
static char *search_key(const ach_runcfg *c)
{
    ach_runcfg x = *c;
    x.all_one_mode = x.all_one_channels = x.all_one_bias = 0;
    return twin_key(&x, 0);
}

/* "0.12 / 0.35 / 0.56": a metric at the search's epochs. */
static void at_epochs(item *it, int sym, const int *ep, int nep, char *buf, size_t n)
{
    size_t len = 0;
    buf[0] = 0;
    for (int e = 0; e < nep && len < n; e++) {
        char v[32];
        len += snprintf(buf + len, n - len, "%s%s", e ? " / " : "", num(it ? at_epoch(it, sym, ep[e]) : NAN, v, sizeof v));
    }
}

#define SEARCH_CRITERION "reproduced: at the last epoch shown, the all-one run's sym is at least 0.6 and above its " \
                         "comp, and the standard twin's sym at most 0.1 (the paper: sym ~0.85 by epoch 25); partly: " \
                         "the all-one sym at least 0.3, or at least 0.2 above the standard twin's; not: otherwise"

/* The verdict of an all-one run against its standard twin at epoch ep. */
static const char *search_verdict(item *a, item *s, int ep)
{
    double as = at_epoch(a, 1, ep), ac = at_epoch(a, 0, ep), ss = s ? at_epoch(s, 1, ep) : NAN;
    if (isnan(as)) return "–";
    if (as >= 0.6 && as > ac && !isnan(ss) && ss <= 0.1) return "reproduced";
    if (as >= 0.3 || (!isnan(ss) && as - ss >= 0.2)) return "partly";
    return "not";
}

/* Fig. 4b's protocol search: every all-one run, finished or held early,
 * beside its standard twin at epochs 10, 20 and 30 (docs/reproduction.md). */
static void section_search(strbuf *b, item *it, int n)
{
    static const int ep[] = {10, 20, 30};
    int nep = 3, rows = 0;
    for (int k = 0; k < n; k++) {
        if (!it[k].r->cfg.all_one_conv || isnan(at_epoch(&it[k], 1, ep[0])))
            continue;
        if (!rows++)
            sb_printf(b, "\n## All-one convolution: the protocol search\n\nEvery all-one run here (finished or held "
                         "early with `achilles sweep --until-epoch`) beside the standard run whose settings differ only "
                         "in the all-one keys, pair-43 accuracy at epochs 10 / 20 / 30 of the paper's recipe. "
                         "Verdict, %s. docs/reproduction.md has the commands and what each row tried.\n\n"
                         "| settings | layers | gamma | all-one comp | all-one sym | standard comp | standard sym | "
                         "verdict | all-one run |\n|---|---|---|---|---|---|---|---|---|\n",
                      SEARCH_CRITERION);
        char *key = search_key(&it[k].r->cfg);
        item *twin = NULL;
        for (int j = 0; key && j < n && !twin; j++) {
            if (it[j].r->cfg.all_one_conv || has_allone(it[j].r)) continue;
            char *o = search_key(&it[j].r->cfg);
            if (o && !strcmp(o, key)) twin = &it[j];
            free(o);
        }
        free(key);
        int last = ep[0];
        for (int e = 0; e < nep; e++)
            if (!isnan(at_epoch(&it[k], 1, ep[e]))) last = ep[e];
        char set[1024], c1[64], c2[64], c3[64], c4[64];
        settings_text(&it[k].r->cfg, set, sizeof set);
        at_epochs(&it[k], 0, ep, nep, c1, sizeof c1);
        at_epochs(&it[k], 1, ep, nep, c2, sizeof c2);
        at_epochs(twin, 0, ep, nep, c3, sizeof c3);
        at_epochs(twin, 1, ep, nep, c4, sizeof c4);
        sb_printf(b, "| %s | %d | %g | %s | %s | %s | %s | %s (epoch %d) | `%s` |\n", set, it[k].r->cfg.model.n_layer,
                  it[k].r->cfg.model.gamma, c1, c2, twin ? c3 : "no twin", twin ? c4 : "no twin",
                  search_verdict(&it[k], twin, last), last, it[k].name);
    }
}

/* A figure's verdict over its runs: reproduced by all, none, or between. */
typedef struct {
    int yes, part, no;
} tally;

static void verdict_line(strbuf *b, const tally *t, const char *criterion)
{
    int n = t->yes + t->part + t->no;
    const char *v = !n ? "no runs to judge" : t->yes == n ? "reproduced" : t->yes || t->part ? "partly" : "not reproduced";
    sb_printf(b, "\n**Verdict: %s**", v);
    if (n) sb_printf(b, " (%d of %d reproduced, %d partly)", t->yes, n, t->part);
    sb_printf(b, ". Criterion: %s.\n", criterion);
}

/* The settings the section's runs share apart from the defaults. */
static void protocol_line(strbuf *b, item *it)
{
    char set[1024];
    settings_text(&it->r->cfg, set, sizeof set);
    sb_printf(b, "Protocol of `%s`: the defaults of `achilles train` with %s.\n", it->name,
              strcmp(set, "defaults") ? set : "nothing changed");
}

/* Intervention sections: all-one conv (which 0) and positional encoding (1). */
static int section_intervention(strbuf *b, item *it, int n, int which, const char *stem, const char *fig_dir,
                                char *err, size_t errlen)
{
    const char *title = which ? "Positional encoding" : "All-one convolution against standard";
    sb_printf(b, "\n## %s\n\n**Paper** (docs/science.md §4.%d): %s.\n\n", title, which ? 2 : 1,
              which ? PAPER_PE : PAPER_ALLONE);
    int found = 0;
    tally tl = {0};
    item *plot[4], *first = NULL;
    const char *plab[4];
    char labs[4][64];
    int np = 0;
    for (int k = 0; k < n; k++) {
        if (it[k].r->state != SWEEP_DONE || !(which ? has_pe(it[k].r) : has_allone(it[k].r))) continue;
        if (!found++)
            sb_printf(b, "**Ours:** final accuracies, each answer's peak, sym at epoch 25, against the run with "
                         "the same settings but %s.\n\n| run | layers | gamma | seed | %s | epochs | comp final | "
                         "comp peak (epoch) | sym @25 | sym final |\n|---|---|---|---|---|---|---|---|---|---|\n",
                      which ? "no positional encoding" : "the standard convolution", which ? "pos_enc" : "conv");
        char what[32];
        snprintf(what, sizeof what, "%s", which ? (it[k].r->have_last && it[k].r->last.pos_enc[0] ? it[k].r->last.pos_enc : "on") : "all-one");
        run_cells(b, &it[k], what);
        int t = find_twin(it, n, k, which);
        if (t >= 0) run_cells(b, &it[t], which ? "none" : "standard");
        const ach_metrics *a = &it[k].r->last, *o = t >= 0 ? &it[t].r->last : NULL;
        if (!first) first = &it[k];
        double sym = metric(a, 1), osym = o ? metric(o, 1) : NAN;
        if (sym >= 0.6 && sym > metric(a, 0) && o && osym <= 0.1) tl.yes++;
        else if (sym >= 0.3 || (o && sym - osym >= 0.2)) tl.part++;
        else tl.no++;
        if (np < 4) {
            snprintf(labs[np], sizeof labs[np], "%s L%d g%g s%llu", which ? "PE" : "all-one", it[k].r->cfg.model.n_layer,
                     it[k].r->cfg.model.gamma, (unsigned long long)it[k].r->cfg.seed);
            plot[np] = &it[k], plab[np] = labs[np], np++;
        }
        if (t >= 0 && np < 4) {
            snprintf(labs[np], sizeof labs[np], "%s L%d g%g s%llu", which ? "no PE" : "standard",
                     it[t].r->cfg.model.n_layer, it[t].r->cfg.model.gamma, (unsigned long long)it[t].r->cfg.seed);
            plot[np] = &it[t], plab[np] = labs[np], np++;
        }
    }
    if (!found) {
        sb_printf(b, "No finished run here uses %s. To run the paper's: `achilles sweep n_layer=%s gamma=%s "
                     "%s seed=0,1,2`.\n", which ? "positional encoding" : "the all-one convolution", which ? "2" : "5",
                  which ? "0.5" : "1", which ? "pos_enc=none,sinusoidal" : "all_one_conv=off,on");
        return 0;
    }
    verdict_line(b, &tl, "at each run's last epoch, sym at least 0.6 and above comp, and the twin's sym at most 0.1; "
                         "partly: sym at least 0.3, or 0.2 above the twin's");
    protocol_line(b, first);
    char fig[4400], name[600];
    snprintf(name, sizeof name, "%s-%s.svg", stem, which ? "pos_enc" : "all_one_conv");
    snprintf(fig, sizeof fig, "%.3600s%.600s", fig_dir, name);
    if (write_figure(fig, curves(plot, plab, np, title), err, errlen)) return -1;
    sb_printf(b, "\n![%s: pair-43 accuracy over epochs](%s)\n", title, name);
    return 0;
}

/* A pair's accuracy in a run's last evaluation, by name ("34"). */
static double pair_acc(const ach_metrics *m, const char *pair)
{
    for (int i = 0; i < m->eval.ngroups; i++)
        if (!strcmp(m->eval.group_name[i], pair)) return m->eval.group_value[i];
    return NAN;
}

static int fully_symmetric(const sweep_run *r)
{
    const char *slash = strrchr(r->cfg.preset, '/'), *base = slash ? slash + 1 : r->cfg.preset;
    return !strncmp(base, "fully-symmetric", 15);
}

/* Fig. 4a: runs on the fully-symmetric preset (by its name), finished or
 * held early, at their last evaluation. */
static void section_fullsym(strbuf *b, item *it, int n)
{
    tally tl = {0};
    sb_printf(b, "\n## Fully-symmetric task (paper Fig. 4a)\n\n**Paper** (docs/science.md §1.6): %s.\n\n", PAPER_FULLSYM);
    int rows = 0;
    item *first = NULL;
    for (int k = 0; k < n; k++) {
        const sweep_run *r = it[k].r;
        if (!fully_symmetric(r) || !r->have_last) continue;
        if (!rows++)
            sb_printf(b, "**Ours** (runs on the fully-symmetric preset, finished or held early, at their last "
                         "evaluation; test-split accuracy of each pair):\n\n| run | state | layers | d_model | gamma | "
                         "seed | epoch | pair 34 | pair 43 | seen |\n|---|---|---|---|---|---|---|---|---|---|\n");
        if (!first) first = &it[k];
        double a34 = pair_acc(&r->last, "34"), a43 = pair_acc(&r->last, "43");
        if (a34 >= 0.9 && a43 <= 0.1) tl.yes++;
        else if (a34 - a43 >= 0.5) tl.part++;
        else tl.no++;
        char x[32], y[32], z[32];
        sb_printf(b, "| `%s` | %s | %d | %d | %g | %llu | %d/%d | %s | %s | %s |\n", it[k].name, sweep_state_name(r->state),
                  r->cfg.model.n_layer, r->cfg.model.d_model, r->cfg.model.gamma, (unsigned long long)r->cfg.seed,
                  r->last.epoch, r->epochs, num(a34, x, sizeof x), num(a43, y, sizeof y), num(task_metric(&r->last.eval, TASK_METRIC_ACC_SEEN), z, sizeof z));
    }
    if (!rows) {
        sb_printf(b, "No run here uses the fully-symmetric preset. To run the paper's: `sh results/fig4a/run.sh` "
                     "(`achilles sweep preset=fully-symmetric d_model=128 gamma=0.5 n_layer=2,3`).\n");
        return;
    }
    verdict_line(b, &tl, "at each run's last evaluation, pair 34 at least 0.9 and pair 43 at most 0.1; partly: 34 "
                         "at least 0.5 above 43");
    protocol_line(b, first);
}

/* The blocking verdict of one row: pair 43 and the other pairs unchanged. */
static void block_tally(tally *tl, double a43, double lo, double overall)
{
    if (a43 >= 0.95 && lo >= 0.98) tl->yes++;
    else if (overall >= 0.9) tl->part++;
    else tl->no++;
}

static void section_blocking(strbuf *b, item *it, int n, int per_pair)
{
    tally tl = {0};
    sb_printf(b, "\n## Blocking\n\n**Paper** (docs/science.md §4.3): %s.\n\n", PAPER_BLOCK);
    int found = 0;
    for (int k = 0; k < n; k++) {
        const sweep_run *r = it[k].r;
        if (!r->have_last || isnan(r->last.block_agree)) continue;
        if (!found++)
            sb_printf(b, "**Ours** (each run's last evaluation, its whole test split):\n\n| run | state | block | layers | "
                         "pair 43 | other pairs (min-max) | overall |\n|---|---|---|---|---|---|---|\n");
        double a43 = NAN, lo = NAN, hi = NAN;
        for (int i = 0; i < r->last.eval.ngroups; i++) {
            double v = r->last.block_agree_pair[i];
            if (!strcmp(r->last.eval.group_name[i], "43")) a43 = v;
            else if (!isnan(v)) lo = isnan(lo) ? v : fmin(lo, v), hi = isnan(hi) ? v : fmax(hi, v);
        }
        block_tally(&tl, a43, lo, r->last.block_agree);
        char x[32], y[32], z[32], w[32];
        sb_printf(b, "| `%s` | %s | %s | %s | %s | %s-%s | %s |\n", it[k].name, sweep_state_name(r->state), r->last.block,
                  r->last.block_layers, num(a43, x, sizeof x), num(lo, y, sizeof y), num(hi, z, sizeof z),
                  num(r->last.block_agree, w, sizeof w));
    }
    int rows = 0;
    for (int k = 0; k < n; k++) {
        const run_analyses *a = &it[k].an;
        if (!a->have && !a->err[0]) continue;
        if (!rows++)
            sb_printf(b, "%s**Ours** (measured on each finished run's model state: key and anchors blocked in every "
                         "layer, %d test sequences per pair%s; the fraction of predictions unchanged):\n\n| run | "
                         "epoch | pair 43 | other pairs (min-max) | overall |\n|---|---|---|---|---|\n",
                      found ? "\n" : "", per_pair, per_pair ? " or the split's all if fewer" : "");
        if (!a->have) {
            sb_printf(b, "| `%s` | %s | | | |\n", it[k].name, a->err);
            continue;
        }
        block_tally(&tl, a->block43, a->block_lo, a->block_all);
        char x[32], y[32], z[32], w[32];
        sb_printf(b, "| `%s` | %d | %s | %s-%s | %s |\n", it[k].name, a->epoch, num(a->block43, x, sizeof x),
                  num(a->block_lo, y, sizeof y), num(a->block_hi, z, sizeof z), num(a->block_all, w, sizeof w));
    }
    if (!found && !rows)
        sb_printf(b, "No run here evaluates with blocking, and no finished run has its model state or an %s. Set "
                     "`block=key,anchors` on a run (or `achilles analyze RUN blocking`).\n", RUN_ANALYSES_FILE);
    else verdict_line(b, &tl, "pair 43 unchanged in at least 0.95 of its predictions and every other pair in 0.98; "
                              "partly: 0.9 overall");
}

/* "-0.11 to 0.35", or why not. */
static const char *range_text(double lo, double hi, char *buf, size_t n)
{
    if (isnan(lo)) snprintf(buf, n, "–");
    else snprintf(buf, n, "%.2f to %.2f", lo, hi);
    return buf;
}

static void section_analyses(strbuf *b, item *it, int n, int per_pair)
{
    tally tl = {0};
    sb_printf(b, "\n## Substitution\n\n**Paper** (docs/science.md §4.4): %s.\n\n", PAPER_SUBST);
    sb_printf(b, "**Ours** (measured on each finished run's model state: layer 0, the positions after the anchors, "
                 "%d test sequences per pair%s; unchanged: the fraction of predictions the substitution leaves as "
                 "they were):\n\n| run | pairs | min | max | mean | unchanged |\n|---|---|---|---|---|---|\n",
              per_pair, per_pair ? " or the split's all if fewer" : "");
    int rows = 0;
    for (int k = 0; k < n; k++) {
        const run_analyses *a = &it[k].an;
        if (!a->have && !a->err[0]) continue;
        rows++;
        if (!a->have) {
            sb_printf(b, "| `%s` | %s | | | | |\n", it[k].name, a->err);
            continue;
        }
        int cnt = a->subst_pairs;
        if (cnt && a->subst_lo >= 0.9) tl.yes++;
        else if (cnt && a->subst_mean >= 0.5) tl.part++;
        else tl.no++;
        char x[32], y[32], z[32], u[32];
        sb_printf(b, "| `%s` | %d | %s | %s | %s | %s |\n", it[k].name, cnt, num(a->subst_lo, x, sizeof x),
                  num(a->subst_hi, y, sizeof y), num(a->subst_mean, z, sizeof z), num(a->subst_unchanged, u, sizeof u));
    }
    if (!rows) sb_printf(b, "| (no finished run with its model state or an %s here) | | | | | |\n", RUN_ANALYSES_FILE);
    verdict_line(b, &tl, "every pair collapses in at least 0.9 of its sequences; partly: 0.5 on average");

    sb_printf(b, "\n## Conv cosine similarity\n\n**Paper** (docs/science.md §4.5): %s.\n\n", PAPER_COSINE);
    sb_printf(b, "**Ours** (off-diagonal entries of each layer's K x K tap cosine matrix, all layers together; an "
                 "all-one convolution gives 1 everywhere):\n\n| run | layers | gamma | epoch 0 | final |\n|---|---|---|---|---|\n");
    rows = 0;
    tally cos = {0};
    for (int k = 0; k < n; k++) {
        const sweep_run *r = it[k].r;
        const run_analyses *a = &it[k].an;
        if (!a->have) continue;
        char e0[64], e1[64];
        sb_printf(b, "| `%s` | %d | %g | %s | %s |\n", it[k].name, r->cfg.model.n_layer, r->cfg.model.gamma,
                  range_text(a->cos0_lo, a->cos0_hi, e0, sizeof e0), range_text(a->cos_lo, a->cos_hi, e1, sizeof e1));
        rows++;
        if (r->cfg.all_one_conv || isnan(a->cos_lo)) continue; /* all-one: 1 by construction */
        if (a->cos_lo >= -0.11 - 0.1 && a->cos_hi <= 0.35 + 0.1) cos.yes++;
        else if (a->cos_lo >= -0.5 && a->cos_hi <= 0.6) cos.part++;
        else cos.no++;
    }
    if (!rows) sb_printf(b, "| (no finished run with its model state or an %s here) | | | | |\n", RUN_ANALYSES_FILE);
    verdict_line(b, &cos, "the final off-diagonal entries of standard runs within 0.1 of the paper's -0.11 to 0.35; "
                          "partly: within -0.5 to 0.6");
}

static void section_phase(strbuf *b, const phase_table *t, const phase_paper *p, const char *fig)
{
    sb_printf(b, "\n## Phase diagram (paper Fig. 3)\n\n**Paper** (docs/science.md §5): pair-43 accuracy, mean of 3 seeds, layers 2-7 x "
                 "gamma 0.1-2.0 (`%s`). The composite table is exact; the symmetric one is exact at five exceptions "
                 "and elsewhere only the range %.2f-%.2f.\n\n", strrchr(p->path, '/') ? strrchr(p->path, '/') + 1 : p->path,
              p->sym_lo, p->sym_hi); /* the file's name: its directory differs from machine to machine */
    if (!t->ngroups) {
        sb_printf(b, "No finished runs yet.\n");
        return;
    }
    sb_printf(b, "**Ours**: the mean over seeds of the final pair-43 accuracy, with min-max and the number of runs.\n\n"
                 "| group | layers | gamma | runs | composite (min-max) | paper | symmetric (min-max) | paper |\n"
                 "|---|---|---|---|---|---|---|---|\n");
    double dsum = 0;
    int dn = 0, sym_ok = 0, sym_n = 0;
    for (int g = 0; g < t->ngroups; g++) {
        const phase_group *G = &t->groups[g];
        for (int i = 0; i < G->nrows; i++)
            for (int j = 0; j < G->ncols; j++) {
                const phase_stat *c = &G->cell[0][i * G->ncols + j], *y = &G->cell[1][i * G->ncols + j];
                if (!c->n && !y->n) continue;
                double lo, hi, slo, shi;
                int kc = phase_paper_cell(p, 0, G->layers[i], G->gammas[j], &lo, &hi);
                int ks = phase_paper_cell(p, 1, G->layers[i], G->gammas[j], &slo, &shi);
                char pc[32] = "–", ps[32] = "–", a[32], b1[32], b2[32], d[32], e1[32], e2[32];
                if (kc >= 0) snprintf(pc, sizeof pc, "%.2f", lo);
                if (ks == 1) snprintf(ps, sizeof ps, "%.2f", slo);
                else if (ks == 0) snprintf(ps, sizeof ps, "%.2f-%.2f", slo, shi);
                sb_printf(b, "| %s | %d | %g | %d | %s (%s-%s) | %s | %s (%s-%s) | %s |\n", G->label[0] ? G->label : "all",
                          G->layers[i], G->gammas[j], c->n, num(c->mean, a, sizeof a), num(c->min, b1, sizeof b1),
                          num(c->max, b2, sizeof b2), pc, num(y->mean, d, sizeof d), num(y->min, e1, sizeof e1),
                          num(y->max, e2, sizeof e2), ps);
                if (kc >= 0 && !isnan(c->mean)) dsum += fabs(c->mean - lo), dn++;
                if (ks >= 0 && !isnan(y->mean)) {
                    sym_n++;
                    sym_ok += ks == 1 ? fabs(y->mean - slo) <= 0.05 : y->mean >= slo - 0.05 && y->mean <= shi + 0.05;
                }
            }
    }
    if (dn) {
        sb_printf(b, "\nWhere the paper has the cell: mean |ours - paper| of the composite accuracy %.3f over %d "
                     "cell%s; symmetric accuracy within 0.05 of the paper's value or range in %d of %d.\n",
                  dsum / dn, dn, dn == 1 ? "" : "s", sym_ok, sym_n);
        int yes = dsum / dn <= 0.1 && sym_ok == sym_n, part = !yes && dsum / dn <= 0.2;
        tally tl = {yes, part, !yes && !part}; /* the diagram judged as one */
        verdict_line(b, &tl, "over the paper's cells, mean |ours - paper| of the composite accuracy at most 0.1 and "
                             "every symmetric cell within 0.05; partly: the composite within 0.2 on average");
    }
    else sb_printf(b, "\nNone of our cells is a cell of the paper's figure (layers 2-7, its gamma columns).\n");
    if (t->nunfinished) sb_printf(b, "\n%d unfinished run%s left out.\n", t->nunfinished, t->nunfinished == 1 ? "" : "s");
    sb_printf(b, "\n![Phase diagram: ours, with the paper's values in each cell](%s)\n", fig);
}

int cli_report(int argc, char **argv)
{
    const char *out = "REPORT.md";
    int per_pair = 480, analyses = 1, ndirs = 0;
    char **dirs = calloc(argc, sizeof *dirs);
    if (!dirs) return fail("out of memory");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(cli_report_help, stdout);
            free(dirs);
            return 0;
        }
        if (!strcmp(a, "--no-analyses")) analyses = 0;
        else if (!strcmp(a, "--out") || !strcmp(a, "--per-pair")) {
            if (i + 1 >= argc) return free(dirs), cli_usage_error(cli_report_help, "report: %s needs a value", a);
            const char *v = argv[++i];
            if (!strcmp(a, "--out")) out = v;
            else if (cli_parse_int(v, &per_pair) || per_pair < 0)
                return free(dirs), cli_usage_error(cli_report_help, "report: --per-pair '%s': a count >= 0", v);
        } else if (a[0] == '-' && a[1]) return free(dirs), cli_usage_error(cli_report_help, "report: unknown option '%s'", a);
        else dirs[ndirs++] = argv[i];
    }
    if (!ndirs) return free(dirs), cli_usage_error(cli_report_help, "report: which run or sweep directories?%s", "");
    char err[8192];
    int rc = 1, n = 0;
    ach_sweep *sw = calloc(ndirs, sizeof *sw);
    item *it = NULL;
    phase_paper pp = {0};
    phase_table pt = {0};
    ach_sweep view;
    sweep_init(&view);
    strbuf b = {0};
    if (!sw) {
        fail("out of memory");
        goto out;
    }
    if (phase_paper_load(&pp, NULL, err, sizeof err)) {
        fail(err);
        goto out;
    }
    int total = 0;
    for (int d = 0; d < ndirs; d++) {
        if (sweep_load(&sw[d], dirs[d], err, sizeof err)) {
            for (int e = 0; e < d; e++) sweep_free(&sw[e]);
            fail(err);
            free(sw), sw = NULL;
            goto out;
        }
        sweep_refresh(&sw[d]);
        total += sw[d].nruns;
    }
    it = calloc(total ? total : 1, sizeof *it);
    view.runs = calloc(total ? total : 1, sizeof *view.runs);
    if (!it || !view.runs) {
        fail("out of memory");
        goto out;
    }
    int done = 0;
    for (int d = 0; d < ndirs; d++)
        for (int i = 0; i < sw[d].nruns; i++) {
            it[n].r = &sw[d].runs[i];
            if (!strcmp(sw[d].runs[i].rel, ".")) snprintf(it[n].name, sizeof it[n].name, "%s", sw[d].name);
            else snprintf(it[n].name, sizeof it[n].name, "%.127s/%.500s", sw[d].name, sw[d].runs[i].rel);
            done += sw[d].runs[i].state == SWEEP_DONE;
            view.runs[n] = sw[d].runs[i]; /* shallow: the view never frees its runs' contents */
            n++;
        }
    view.nruns = n;
    snprintf(view.name, sizeof view.name, "report");
    if (phase_build(&pt, &view, 0, err, sizeof err)) {
        fail(err);
        goto out;
    }
    /* figures go next to the report, named after it */
    char stem[600], fig_dir[4400], fig[4400], name[700];
    const char *slash = strrchr(out, '/'), *base = slash ? slash + 1 : out;
    snprintf(fig_dir, sizeof fig_dir, "%.*s", slash ? (int)(slash - out + 1) : 0, out);
    if (slash && slash != out && make_dirs(fig_dir, err, sizeof err)) {
        fail(err);
        goto out;
    }
    snprintf(stem, sizeof stem, "%.500s", base);
    char *dot = strrchr(stem, '.');
    if (dot && dot != stem) *dot = 0;
    snprintf(name, sizeof name, "%s-phase.svg", stem);
    snprintf(fig, sizeof fig, "%.3600s%.700s", fig_dir, name);
    if (write_figure(fig, phase_svg(&pt, &pp, "Phase diagram (paper Fig. 3): ours"), err, sizeof err)) {
        fail(err);
        goto out;
    }
    /* no date: the same runs give the same report, byte for byte */
    sb_printf(&b, "# Achilles report\n\nWritten by `achilles report` from");
    for (int d = 0; d < ndirs; d++) sb_printf(&b, "%s `%s`", d ? "," : "", dirs[d]);
    sb_printf(&b, ": %d run%s, %d finished (only finished runs are counted).\n\n", n, n == 1 ? "" : "s", done);
    sb_printf(&b, "The paper: Chen, Lin, Wang, Xu, \"Achilles' Heel of Mamba\" (NeurIPS 2025, arXiv 2509.17514); its "
                  "numbers as docs/science.md restates them. Pair-43 accuracy is scored against the composite answer (key - 10) "
                  "and the symmetric one (key - 6).\n");
    section_phase(&b, &pt, &pp, name);
    if (section_intervention(&b, it, n, 0, stem, fig_dir, err, sizeof err) ||
        section_intervention(&b, it, n, 1, stem, fig_dir, err, sizeof err)) {
        fail(err);
        goto out;
    }
    section_search(&b, it, n);
    section_fullsym(&b, it, n);
    for (int k = 0; analyses && k < n; k++)
        if (it[k].r->state == SWEEP_DONE && run_analyses_get(it[k].r, per_pair, &it[k].an, err, sizeof err)) {
            fail(err);
            goto out;
        }
    section_blocking(&b, it, n, per_pair);
    if (analyses) section_analyses(&b, it, n, per_pair);
    else sb_printf(&b, "\n## Substitution and conv cosine similarity\n\nSkipped (--no-analyses).\n");
    sb_printf(&b, "\n## Runs\n\n| run | state | epoch | comp43 | sym43 | seen |\n|---|---|---|---|---|---|\n");
    for (int k = 0; k < n; k++) {
        const sweep_run *r = it[k].r;
        char x[32], y[32], z[32];
        sb_printf(&b, "| `%s` | %s | %d/%d | %s | %s | %s |\n", it[k].name, sweep_state_name(r->state),
                  r->have_last ? r->last.epoch : 0, r->epochs, num(r->have_last ? metric(&r->last, 0) : NAN, x, sizeof x),
                  num(r->have_last ? metric(&r->last, 1) : NAN, y, sizeof y),
                  num(r->have_last ? task_metric(&r->last.eval, TASK_METRIC_ACC_SEEN) : NAN, z, sizeof z));
    }
    char *text = sb_take(&b);
    if (!text) {
        fail("out of memory");
        goto out;
    }
    rc = write_file_atomic(out, text, strlen(text), err, sizeof err);
    free(text);
    if (rc) fail(err);
    else printf("wrote %s (%d runs, %d finished) and its figures %s%s-*.svg\n", out, n, done, fig_dir, stem);
out:
    sb_free(&b);
    phase_free(&pt);
    phase_paper_free(&pp);
    for (int k = 0; k < n; k++) free(it[k].hist);
    free(it);
    free(view.runs);
    for (int d = 0; sw && d < ndirs; d++) sweep_free(&sw[d]);
    free(sw);
    free(dirs);
    return rc;
}
