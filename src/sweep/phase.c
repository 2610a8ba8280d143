/* Phase diagrams over layers x gamma (phase.h). */
#include "phase.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsutil.h"
#include "strbuf.h"
#include "svg.h"
#include "task.h"
#include "textplot.h"

/* --- the paper's figure ---------------------------------------------------- */

void phase_paper_free(phase_paper *p)
{
    free(p->layers), free(p->gammas), free(p->comp), free(p->sym);
    memset(p, 0, sizeof *p);
}

static int bad(char *err, size_t errlen, const char *path, const char *field, const char *what)
{
    snprintf(err, errlen, "%s: field '%s': %s", path, field, what);
    return -1;
}

static int unit_number(const cJSON *v) { return cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble <= 1; }

static int find_row(const phase_paper *p, int n_layer)
{
    for (int i = 0; i < p->nlayers; i++)
        if (p->layers[i] == n_layer) return i;
    return -1;
}

static int find_col(const phase_paper *p, double gamma)
{
    for (int j = 0; j < p->ngammas; j++)
        if (fabs(p->gammas[j] - gamma) < 1e-9) return j;
    return -1;
}

int phase_paper_load(phase_paper *p, const char *path, char *err, size_t errlen)
{
    memset(p, 0, sizeof *p);
    if (path) snprintf(p->path, sizeof p->path, "%.4100s", path);
    else snprintf(p->path, sizeof p->path, "%.4000s/paper_fig3.json", task_data_dir());
    const char *f = p->path;
    char *text = read_file(f, 1 << 20, NULL, err, errlen);
    if (!text) return -1;
    cJSON *o = cJSON_Parse(text);
    free(text);
    int rc = -1;
    if (!cJSON_IsObject(o)) {
        snprintf(err, errlen, "%s: not a JSON object", f);
        goto out;
    }
    const cJSON *src = cJSON_GetObjectItemCaseSensitive(o, "source");
    snprintf(p->source, sizeof p->source, "%s", cJSON_IsString(src) ? src->valuestring : "the paper");
    const cJSON *L = cJSON_GetObjectItemCaseSensitive(o, "layers"), *G = cJSON_GetObjectItemCaseSensitive(o, "gamma");
    if (!cJSON_IsArray(L) || !cJSON_GetArraySize(L)) {
        bad(err, errlen, f, "layers", "missing or not a list of layer counts");
        goto out;
    }
    if (!cJSON_IsArray(G) || !cJSON_GetArraySize(G)) {
        bad(err, errlen, f, "gamma", "missing or not a list of numbers");
        goto out;
    }
    p->nlayers = cJSON_GetArraySize(L), p->ngammas = cJSON_GetArraySize(G);
    p->layers = calloc(p->nlayers, sizeof *p->layers);
    p->gammas = calloc(p->ngammas, sizeof *p->gammas);
    p->comp = calloc((size_t)p->nlayers * p->ngammas, sizeof *p->comp);
    p->sym = calloc((size_t)p->nlayers * p->ngammas, sizeof *p->sym);
    if (!p->layers || !p->gammas || !p->comp || !p->sym) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    for (int i = 0; i < p->nlayers; i++) {
        const cJSON *v = cJSON_GetArrayItem(L, i);
        if (!cJSON_IsNumber(v) || v->valuedouble < 1 || v->valuedouble != floor(v->valuedouble)) {
            bad(err, errlen, f, "layers", "every entry must be a positive integer");
            goto out;
        }
        p->layers[i] = (int)v->valuedouble;
    }
    for (int j = 0; j < p->ngammas; j++) {
        const cJSON *v = cJSON_GetArrayItem(G, j);
        if (!cJSON_IsNumber(v)) {
            bad(err, errlen, f, "gamma", "every entry must be a number");
            goto out;
        }
        p->gammas[j] = v->valuedouble;
    }
    const cJSON *comp = cJSON_GetObjectItemCaseSensitive(o, "composite");
    const cJSON *rows = cJSON_GetObjectItemCaseSensitive(comp, "values");
    if (!cJSON_IsArray(rows) || cJSON_GetArraySize(rows) != p->nlayers) {
        bad(err, errlen, f, "composite.values", "must be a list with one row per entry of 'layers'");
        goto out;
    }
    for (int i = 0; i < p->nlayers; i++) {
        const cJSON *row = cJSON_GetArrayItem(rows, i);
        if (!cJSON_IsArray(row) || cJSON_GetArraySize(row) != p->ngammas) {
            char fld[64];
            snprintf(fld, sizeof fld, "composite.values[%d]", i);
            bad(err, errlen, f, fld, "must hold one accuracy per entry of 'gamma'");
            goto out;
        }
        for (int j = 0; j < p->ngammas; j++) {
            const cJSON *v = cJSON_GetArrayItem(row, j);
            if (!unit_number(v)) {
                char fld[64];
                snprintf(fld, sizeof fld, "composite.values[%d][%d]", i, j);
                bad(err, errlen, f, fld, "must be an accuracy in [0, 1]");
                goto out;
            }
            p->comp[i * p->ngammas + j] = v->valuedouble;
            p->sym[i * p->ngammas + j] = NAN;
        }
    }
    const cJSON *sym = cJSON_GetObjectItemCaseSensitive(o, "symmetric");
    const cJSON *range = cJSON_GetObjectItemCaseSensitive(sym, "range");
    if (!cJSON_IsArray(range) || cJSON_GetArraySize(range) != 2 || !unit_number(cJSON_GetArrayItem(range, 0)) ||
        !unit_number(cJSON_GetArrayItem(range, 1)) ||
        cJSON_GetArrayItem(range, 0)->valuedouble > cJSON_GetArrayItem(range, 1)->valuedouble) {
        bad(err, errlen, f, "symmetric.range", "must be [low, high], accuracies with low <= high");
        goto out;
    }
    p->sym_lo = cJSON_GetArrayItem(range, 0)->valuedouble, p->sym_hi = cJSON_GetArrayItem(range, 1)->valuedouble;
    const cJSON *ex = cJSON_GetObjectItemCaseSensitive(sym, "exceptions");
    if (ex && !cJSON_IsArray(ex)) {
        bad(err, errlen, f, "symmetric.exceptions", "must be a list");
        goto out;
    }
    int k = 0;
    for (const cJSON *e = ex ? ex->child : NULL; e; e = e->next, k++) {
        const cJSON *nl = cJSON_GetObjectItemCaseSensitive(e, "n_layer"), *g = cJSON_GetObjectItemCaseSensitive(e, "gamma"),
                    *v = cJSON_GetObjectItemCaseSensitive(e, "value");
        int i = cJSON_IsNumber(nl) ? find_row(p, (int)nl->valuedouble) : -1;
        int j = cJSON_IsNumber(g) ? find_col(p, g->valuedouble) : -1;
        if (i < 0 || j < 0 || !unit_number(v)) {
            char fld[64];
            snprintf(fld, sizeof fld, "symmetric.exceptions[%d]", k);
            bad(err, errlen, f, fld, "needs n_layer and gamma of a cell of the figure and a value in [0, 1]");
            goto out;
        }
        p->sym[i * p->ngammas + j] = v->valuedouble;
    }
    rc = 0;
out:
    cJSON_Delete(o);
    if (rc) phase_paper_free(p);
    return rc;
}

int phase_paper_cell(const phase_paper *p, int which, int n_layer, double gamma, double *lo, double *hi)
{
    *lo = *hi = NAN;
    int i = p ? find_row(p, n_layer) : -1, j = p ? find_col(p, gamma) : -1;
    if (i < 0 || j < 0) return -1;
    double v = (which == PHASE_COMP ? p->comp : p->sym)[i * p->ngammas + j];
    if (isnan(v)) {
        *lo = p->sym_lo, *hi = p->sym_hi;
        return 0;
    }
    *lo = *hi = v;
    return 1;
}

/* --- our runs --------------------------------------------------------------- */

void phase_free(phase_table *t)
{
    for (int g = 0; g < t->ngroups; g++) {
        free(t->groups[g].layers), free(t->groups[g].gammas);
        free(t->groups[g].cell[0]), free(t->groups[g].cell[1]);
    }
    free(t->groups);
    memset(t, 0, sizeof *t);
}

static int is_axis_key(const char *k)
{
    return !strcmp(k, "n_layer") || !strcmp(k, "gamma") || !strcmp(k, "seed") || !strcmp(k, "threads");
}

/* A setting's value for grouping. A preset is known by its file's name:
 * the same preset given by different paths (relative in one run, absolute
 * in a sweep) is one experiment. */
static void key_value(const sweep_run *r, int i, char *buf, size_t n)
{
    runcfg_get(&r->cfg, i, buf, n);
    if (strcmp(runcfg_key_name(i), "preset")) return;
    const char *b = strrchr(buf, '/');
    memmove(buf, b ? b + 1 : buf, strlen(b ? b + 1 : buf) + 1);
    size_t len = strlen(buf);
    if (len > 5 && !strcmp(buf + len - 5, ".json")) buf[len - 5] = 0;
}

/* The group of a run: the values of the keys (other than the diagram's
 * axes) that vary among the finished runs. Computed from the resolved
 * configurations, so runs from different sweeps group the same way. */
static void group_label(const sweep_run *r, const unsigned char *varies, char *buf, size_t n)
{
    size_t k = 0;
    buf[0] = 0;
    for (int i = 0; i < runcfg_nkeys() && k < n; i++)
        if (varies[i]) {
            char v[300];
            key_value(r, i, v, sizeof v);
            k += snprintf(buf + k, n - k, "%s%s=%s", k ? " " : "", runcfg_key_name(i), v);
        }
}

static void varying_keys(const ach_sweep *s, unsigned char *varies)
{
    const sweep_run *first = NULL;
    for (int i = 0; i < runcfg_nkeys(); i++) varies[i] = 0;
    for (int j = 0; j < s->nruns; j++) {
        const sweep_run *r = &s->runs[j];
        if (r->state != SWEEP_DONE) continue;
        if (!first) {
            first = r;
            continue;
        }
        for (int i = 0; i < runcfg_nkeys(); i++) {
            char a[300], b[300];
            if (varies[i] || is_axis_key(runcfg_key_name(i))) continue;
            key_value(first, i, a, sizeof a);
            key_value(r, i, b, sizeof b);
            varies[i] = strcmp(a, b) != 0;
        }
    }
}

static int cmp_int_desc(const void *a, const void *b) { return *(const int *)b - *(const int *)a; }
static int cmp_dbl(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The run's two values: the final record's, or each answer's best epoch. */
static int run_values(const sweep_run *r, int best, double v[2], char *err, size_t errlen)
{
    v[0] = r->have_last ? task_metric(&r->last.eval, TASK_METRIC_ACC43_COMP) : NAN;
    v[1] = r->have_last ? task_metric(&r->last.eval, TASK_METRIC_ACC43_SYM) : NAN;
    if (!best) return 0;
    ach_metrics *h;
    int n;
    if (sweep_run_history(r, &h, &n, err, errlen)) return -1;
    v[0] = v[1] = NAN;
    for (int i = 0; i < n; i++) {
        double comp = task_metric(&h[i].eval, TASK_METRIC_ACC43_COMP), sym = task_metric(&h[i].eval, TASK_METRIC_ACC43_SYM);
        if (!isnan(comp) && !(comp <= v[0])) v[0] = comp;
        if (!isnan(sym) && !(sym <= v[1])) v[1] = sym;
    }
    free(h);
    return 0;
}

int phase_build(phase_table *t, ach_sweep *s, int best, char *err, size_t errlen)
{
    memset(t, 0, sizeof *t);
    t->best = best;
    sweep_refresh(s);
    int nr = s->nruns;
    int *grp = malloc((nr ? nr : 1) * sizeof *grp);
    double *val = malloc((nr ? nr : 1) * 2 * sizeof *val);
    char(*labels)[512] = calloc(nr ? nr : 1, sizeof *labels);
    unsigned char *varies = calloc(runcfg_nkeys(), 1);
    t->groups = calloc(nr ? nr : 1, sizeof *t->groups);
    int rc = -1;
    if (!grp || !val || !labels || !varies || !t->groups) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    varying_keys(s, varies);
    for (int i = 0; i < nr; i++) {
        sweep_run *r = &s->runs[i];
        grp[i] = -1;
        if (r->state != SWEEP_DONE) {
            t->nunfinished++;
            continue;
        }
        if (run_values(r, best, &val[2 * i], err, errlen)) goto out;
        group_label(r, varies, labels[i], sizeof labels[i]);
        int g;
        for (g = 0; g < t->ngroups && strcmp(t->groups[g].label, labels[i]); g++) continue;
        if (g == t->ngroups) snprintf(t->groups[t->ngroups++].label, sizeof t->groups[0].label, "%s", labels[i]);
        grp[i] = g;
        t->groups[g].nruns++;
    }
    for (int g = 0; g < t->ngroups; g++) {
        phase_group *G = &t->groups[g];
        G->layers = malloc(G->nruns * sizeof *G->layers);
        G->gammas = malloc(G->nruns * sizeof *G->gammas);
        if (!G->layers || !G->gammas) {
            snprintf(err, errlen, "out of memory");
            goto out;
        }
        for (int i = 0; i < nr; i++) {
            if (grp[i] != g) continue;
            int L = s->runs[i].cfg.model.n_layer, have = 0;
            double gm = s->runs[i].cfg.model.gamma;
            for (int k = 0; k < G->nrows; k++) have |= G->layers[k] == L;
            if (!have) G->layers[G->nrows++] = L;
            have = 0;
            for (int k = 0; k < G->ncols; k++) have |= G->gammas[k] == gm;
            if (!have) G->gammas[G->ncols++] = gm;
        }
        qsort(G->layers, G->nrows, sizeof *G->layers, cmp_int_desc);
        qsort(G->gammas, G->ncols, sizeof *G->gammas, cmp_dbl);
        for (int w = 0; w < 2; w++) {
            G->cell[w] = calloc((size_t)G->nrows * G->ncols, sizeof *G->cell[w]);
            if (!G->cell[w]) {
                snprintf(err, errlen, "out of memory");
                goto out;
            }
        }
        /* two passes: sum, min and max; then squares around the mean */
        for (int pass = 0; pass < 2; pass++) {
            for (int i = 0; i < nr; i++) {
                if (grp[i] != g) continue;
                int row = 0, col = 0;
                while (G->layers[row] != s->runs[i].cfg.model.n_layer) row++;
                while (G->gammas[col] != s->runs[i].cfg.model.gamma) col++;
                for (int w = 0; w < 2; w++) {
                    double v = val[2 * i + w];
                    phase_stat *c = &G->cell[w][row * G->ncols + col];
                    if (isnan(v)) continue; /* a preset without pair 43 */
                    if (pass == 1) c->std += (v - c->mean) * (v - c->mean);
                    else {
                        c->min = c->n ? fmin(c->min, v) : v;
                        c->max = c->n ? fmax(c->max, v) : v;
                        c->n++, c->mean += v;
                    }
                }
            }
            for (int w = 0; w < 2; w++)
                for (int k = 0; k < G->nrows * G->ncols; k++) {
                    phase_stat *c = &G->cell[w][k];
                    if (!c->n) c->mean = c->min = c->max = c->std = NAN;
                    else if (pass == 0) c->mean /= c->n;
                    else c->std = c->n > 1 ? sqrt(c->std / (c->n - 1)) : 0;
                }
        }
    }
    rc = 0;
out:
    free(grp), free(val), free(labels), free(varies);
    if (rc) phase_free(t);
    return rc;
}

/* --- outputs ---------------------------------------------------------------- */

static const char *const which_name[2] = {"composite", "symmetric"};

static void fmt_gamma(double g, char *buf, size_t n) { snprintf(buf, n, "%g", g); }

/* One text heatmap on the fixed scale 0..1, labels L<n> and gamma. */
static char *heatmap(const double *M, const phase_group *G, int utf8)
{
    char(*rl)[16] = calloc(G->nrows, sizeof *rl), (*cl)[32] = calloc(G->ncols, sizeof *cl);
    const char **rp = calloc(G->nrows, sizeof *rp), **cp = calloc(G->ncols, sizeof *cp);
    char *out = NULL;
    if (rl && cl && rp && cp) {
        for (int i = 0; i < G->nrows; i++) snprintf(rl[i], sizeof rl[i], "L%d", G->layers[i]), rp[i] = rl[i];
        for (int j = 0; j < G->ncols; j++) fmt_gamma(G->gammas[j], cl[j], sizeof cl[j]), cp[j] = cl[j];
        tp_heatmap_opts o = {.row_labels = rp, .col_labels = cp, .lo = 0, .hi = 1, .utf8 = utf8, .cell = 4};
        size_t n = tp_heatmap(NULL, 0, M, G->nrows, G->ncols, &o) + 1;
        out = malloc(n);
        if (out) tp_heatmap(out, n, M, G->nrows, G->ncols, &o);
    }
    free(rl), free(cl), free(rp), free(cp);
    return out;
}

static void paper_text(const phase_paper *p, int w, int L, double g, char *buf, size_t n)
{
    double lo, hi;
    int k = phase_paper_cell(p, w, L, g, &lo, &hi);
    if (k < 0) snprintf(buf, n, "-");
    else if (k == 1) snprintf(buf, n, "%.2f", lo);
    else snprintf(buf, n, "%.2f-%.2f", lo, hi);
}

char *phase_text(const phase_table *t, const phase_paper *p, const char *title, int utf8)
{
    strbuf b = {0};
    sb_printf(&b, "%s: pair-43 accuracy at the %s epoch, mean over seeds", title, t->best ? "best" : "final");
    sb_printf(&b, "; paper: %s\n", p ? p->path : "(not loaded)");
    if (t->nunfinished)
        sb_printf(&b, "%d run%s not finished yet, left out\n", t->nunfinished, t->nunfinished == 1 ? " has" : "s have");
    if (!t->ngroups) sb_printf(&b, "no finished runs yet\n");
    for (int g = 0; g < t->ngroups; g++) {
        const phase_group *G = &t->groups[g];
        size_t nc = (size_t)G->nrows * G->ncols;
        double *ours = malloc(nc * sizeof *ours), *theirs = malloc(nc * sizeof *theirs);
        if (!ours || !theirs) {
            free(ours), free(theirs), sb_free(&b);
            return NULL;
        }
        if (G->label[0]) sb_printf(&b, "\n== %s (%d runs)\n", G->label, G->nruns);
        for (int w = 0; w < 2; w++) {
            for (int i = 0; i < G->nrows; i++)
                for (int j = 0; j < G->ncols; j++) {
                    double lo, hi;
                    ours[i * G->ncols + j] = G->cell[w][i * G->ncols + j].mean;
                    /* a range is shaded at its middle */
                    theirs[i * G->ncols + j] =
                        phase_paper_cell(p, w, G->layers[i], G->gammas[j], &lo, &hi) < 0 ? NAN : (lo + hi) / 2;
                }
            char *a = heatmap(ours, G, utf8), *c = heatmap(theirs, G, utf8);
            if (!a || !c) {
                free(a), free(c), free(ours), free(theirs), sb_free(&b);
                return NULL;
            }
            /* titles above each block; the paper's block starts where the widest line of ours ends */
            strbuf l = {0}, r = {0};
            sb_printf(&l, "ours\n%s", a);
            sb_printf(&r, "paper (Fig. 3)%s\n%s", w == PHASE_SYM ? ": outside the exceptions a range, shaded at its middle" : "", c);
            char *lt = sb_take(&l), *rt = sb_take(&r);
            int width = 0;
            for (const char *q = lt; q && *q; q = strchr(q, '\n') ? strchr(q, '\n') + 1 : q + strlen(q))
                if (tp_width(q) > width) width = tp_width(q);
            sb_printf(&b, "\n%s answer\n", which_name[w]);
            size_t n = lt && rt ? tp_side_by_side(NULL, 0, lt, rt, width, 4) + 1 : 0;
            char *sbs = n ? malloc(n) : NULL;
            if (sbs) tp_side_by_side(sbs, n, lt, rt, width, 4), sb_puts(&b, sbs);
            free(lt), free(rt);
            free(sbs), free(a), free(c);
        }
        free(ours), free(theirs);
        sb_printf(&b, "\n%6s %6s %4s | %9s  %-13s  %5s  %-9s | %9s  %-13s  %5s  %s\n", "layers", "gamma", "runs",
                  "composite", "(min-max)", "std", "paper", "symmetric", "(min-max)", "std", "paper");
        for (int i = 0; i < G->nrows; i++)
            for (int j = 0; j < G->ncols; j++) {
                const phase_stat *st[2] = {&G->cell[0][i * G->ncols + j], &G->cell[1][i * G->ncols + j]};
                char gm[32], pt[2][32], mm[2][48];
                int n = st[0]->n > st[1]->n ? st[0]->n : st[1]->n;
                if (!n) continue;
                fmt_gamma(G->gammas[j], gm, sizeof gm);
                for (int w = 0; w < 2; w++) {
                    paper_text(p, w, G->layers[i], G->gammas[j], pt[w], sizeof pt[w]);
                    snprintf(mm[w], sizeof mm[w], "(%.3f-%.3f)", st[w]->min, st[w]->max);
                }
                sb_printf(&b, "%6d %6s %4d | %9.3f  %-13s  %5.3f  %-9s | %9.3f  %-13s  %5.3f  %s\n", G->layers[i], gm, n,
                          st[0]->mean, mm[0], st[0]->std, pt[0], st[1]->mean, mm[1], st[1]->std, pt[1]);
            }
    }
    return sb_take(&b);
}

static void csv_num(strbuf *b, double v)
{
    if (isnan(v)) sb_puts(b, ",");
    else sb_printf(b, ",%.6g", v);
}

char *phase_csv(const phase_table *t, const phase_paper *p)
{
    strbuf b = {0};
    sb_puts(&b, "group,n_layer,gamma,runs,comp_mean,comp_min,comp_max,comp_std,sym_mean,sym_min,sym_max,sym_std,"
                "paper_comp,paper_sym_lo,paper_sym_hi\n");
    for (int g = 0; g < t->ngroups; g++) {
        const phase_group *G = &t->groups[g];
        for (int i = 0; i < G->nrows; i++)
            for (int j = 0; j < G->ncols; j++) {
                const phase_stat *c = &G->cell[0][i * G->ncols + j], *y = &G->cell[1][i * G->ncols + j];
                int n = c->n > y->n ? c->n : y->n;
                if (!n) continue;
                sb_puts(&b, "\"");
                for (const char *q = G->label; *q; q++) sb_puts(&b, *q == '"' ? "\"\"" : (char[]){*q, 0});
                sb_printf(&b, "\",%d,%g,%d", G->layers[i], G->gammas[j], n);
                const phase_stat *st[2] = {c, y};
                for (int w = 0; w < 2; w++) {
                    csv_num(&b, st[w]->mean), csv_num(&b, st[w]->min);
                    csv_num(&b, st[w]->max), csv_num(&b, st[w]->std);
                }
                double lo, hi;
                phase_paper_cell(p, 0, G->layers[i], G->gammas[j], &lo, &hi);
                csv_num(&b, lo);
                phase_paper_cell(p, 1, G->layers[i], G->gammas[j], &lo, &hi);
                csv_num(&b, lo), csv_num(&b, hi);
                sb_puts(&b, "\n");
            }
    }
    return sb_take(&b);
}

char *phase_svg(const phase_table *t, const phase_paper *p, const char *title)
{
    const double cw = 86, ch = 58, gap = 24, top = 58, bar = 80;
    double W = 0, H = top + 40;
    /* each group: one row of two panels and a colour bar */
    for (int g = 0; g < t->ngroups; g++) {
        svg_heatmap h = {.rows = t->groups[g].nrows, .cols = t->groups[g].ncols};
        double w, hh;
        svg_heatmap_size(&h, cw, ch, &w, &hh);
        if (2 * w + gap + bar + 20 > W) W = 2 * w + gap + bar + 20;
        H += hh + 16;
    }
    if (W < 640) W = 640;
    strbuf b = {0};
    char sub[512];
    svg_begin(&b, (int)W, (int)H, title);
    svg_text(&b, 20, 24, 16, "start", "bold", title);
    snprintf(sub, sizeof sub, "Pair-43 accuracy at the %s epoch. Big: mean over seeds; small: min-max (runs), and the "
             "paper's Fig. 3.", t->best ? "best" : "final");
    svg_text(&b, 20, 44, 11, "start", NULL, sub);
    if (!t->ngroups) svg_text(&b, 20, 80, 13, "start", NULL, "No finished runs yet.");
    double y = top;
    for (int g = 0; g < t->ngroups; g++) {
        const phase_group *G = &t->groups[g];
        size_t nc = (size_t)G->nrows * G->ncols;
        char(*rl)[16] = calloc(G->nrows, sizeof *rl), (*cl)[32] = calloc(G->ncols, sizeof *cl);
        const char **rp = calloc(G->nrows, sizeof *rp), **cp = calloc(G->ncols, sizeof *cp);
        char(*l2)[48] = calloc(nc, sizeof *l2), (*l3)[48] = calloc(nc, sizeof *l3);
        const char **p2 = calloc(nc, sizeof *p2), **p3 = calloc(nc, sizeof *p3);
        double *v = calloc(nc, sizeof *v);
        int ok = rl && cl && rp && cp && l2 && l3 && p2 && p3 && v;
        double w = 0, hh = 0;
        for (int i = 0; ok && i < G->nrows; i++) snprintf(rl[i], sizeof rl[i], "L%d", G->layers[i]), rp[i] = rl[i];
        for (int j = 0; ok && j < G->ncols; j++) fmt_gamma(G->gammas[j], cl[j], sizeof cl[j]), cp[j] = cl[j];
        for (int k = 0; ok && k < 2; k++) {
            for (size_t c = 0; c < nc; c++) {
                const phase_stat *st = &G->cell[k][c];
                int i = (int)(c / G->ncols), j = (int)(c % G->ncols);
                char pp[32];
                v[c] = st->mean;
                if (st->n) snprintf(l2[c], sizeof l2[c], "%.2f-%.2f (%d)", st->min, st->max, st->n);
                else l2[c][0] = 0;
                paper_text(p, k, G->layers[i], G->gammas[j], pp, sizeof pp);
                if (strcmp(pp, "-")) snprintf(l3[c], sizeof l3[c], "paper %s", pp);
                else l3[c][0] = 0;
                p2[c] = l2[c], p3[c] = l3[c];
            }
            char ptitle[700];
            snprintf(ptitle, sizeof ptitle, "%s answer%s%s", which_name[k], G->label[0] ? ", " : "", G->label);
            svg_heatmap h = {.title = ptitle, .xlabel = "gamma (initialisation rate)", .ylabel = "layers",
                             .rows = G->nrows, .cols = G->ncols, .row_labels = rp, .col_labels = cp, .value = v,
                             .line2 = p2, .line3 = p3, .lo = 0, .hi = 1};
            svg_heatmap_size(&h, cw, ch, &w, &hh);
            svg_heatmap_panel(&b, 10 + k * (w + gap), y, cw, ch, &h);
        }
        if (ok) svg_colorbar(&b, 10 + 2 * (w + gap), y + 30, 14, hh - 74, 0, 1, "accuracy on pair 43");
        free(rl), free(cl), free(rp), free(cp), free(l2), free(l3), free(p2), free(p3), free(v);
        if (!ok) {
            sb_free(&b);
            return NULL;
        }
        y += hh + 16;
    }
    if (p) {
        char foot[300];
        const char *base = strrchr(p->path, '/');
        snprintf(foot, sizeof foot, "Paper: %.200s, Fig. 3 of \"Achilles' Heel of Mamba\" (NeurIPS 2025).",
                 base ? base + 1 : p->path);
        svg_text(&b, 20, H - 26, 9, "start", NULL, foot);
        snprintf(foot, sizeof foot, "Its symmetric cells are exact at five exceptions only; elsewhere the paper gives "
                 "the range %.2f-%.2f.", p->sym_lo, p->sym_hi);
        svg_text(&b, 20, H - 13, 9, "start", NULL, foot);
    }
    svg_end(&b);
    return sb_take(&b);
}
