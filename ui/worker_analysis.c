/* The paper's analyses on a run's model, in the worker at a step boundary:
 * conv cosine (epoch 0 from its checkpoint, now from the live model), hidden
 * attention of one test sequence, blocking and substitution per pair. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analysis.h"
#include "checkpoint.h"
#include "worker.h"

/* "  11 1.000  12 1.000 ..." six pairs to a line: 78 columns after the
 * log's time stamp, so the table keeps its columns in an 80-column log. */
static char *report_text(const char *head, const ach_pair_report *rep)
{
    size_t n = 256 + strlen(head) + (size_t)rep->npairs * 24, k = 0;
    char *s = malloc(n);
    if (!s) return NULL;
    k += snprintf(s + k, n - k, "%s: %.3f overall", head, rep->overall);
    if (!isnan(rep->unchanged_overall)) /* substitution: near 1 means the states are not read at all */
        k += snprintf(s + k, n - k, ", %.3f of predictions unchanged", rep->unchanged_overall);
    if (rep->skipped) k += snprintf(s + k, n - k, " (%ld sequences had nothing to substitute)", rep->skipped);
    for (int i = 0; i < rep->npairs; i++) {
        if (i % 6 == 0) k += snprintf(s + k, n - k, "\n ");
        if (isnan(rep->value[i])) k += snprintf(s + k, n - k, " %4s   -- ", rep->pair_name[i]);
        else k += snprintf(s + k, n - k, " %4s %.3f", rep->pair_name[i], rep->value[i]);
    }
    return s;
}

/* The off-diagonal range of a K x K matrix, for the log line. */
static void offdiag(const double *m, int K, double *lo, double *hi)
{
    *lo = INFINITY, *hi = -INFINITY;
    for (int i = 0; i < K; i++)
        for (int j = 0; j < K; j++)
            if (i != j) *lo = fmin(*lo, m[i * K + j]), *hi = fmax(*hi, m[i * K + j]);
}

static int cosine(ach_run *r, const tui_job *j, tui_event *ev)
{
    char err[1024], path[1200];
    int K = r->model.cfg.d_conv, layer = j->layer;
    if (layer < 0 || layer >= r->model.cfg.n_layer) {
        snprintf(ev->text, sizeof ev->text, "run %d has layers 0..%d", j->run, r->model.cfg.n_layer - 1);
        return -1;
    }
    ev->a = malloc((size_t)K * K * sizeof *ev->a);
    ev->b = malloc((size_t)K * K * sizeof *ev->b);
    if (!ev->a || !ev->b) {
        snprintf(ev->text, sizeof ev->text, "out of memory");
        return -1;
    }
    /* epoch 0 from its checkpoint, now from the live model */
    ach_model m0;
    snprintf(path, sizeof path, "%s/ckpt/epoch_0000.safetensors", r->dir);
    if (ach_ckpt_load(&m0, tui_kernels(), path, err, sizeof err)) {
        snprintf(ev->text, sizeof ev->text, "%s", err);
        return -1;
    }
    int rc = ach_conv_cosine(&m0, layer, ev->a, err, sizeof err);
    ach_model_free(&m0);
    if (rc || ach_conv_cosine(&r->model, layer, ev->b, err, sizeof err)) {
        snprintf(ev->text, sizeof ev->text, "%s", err);
        return -1;
    }
    ev->heat_kind = 1;
    ev->rows = ev->cols = K;
    ev->layer = layer;
    double lo0, hi0, lo1, hi1;
    offdiag(ev->a, K, &lo0, &hi0);
    offdiag(ev->b, K, &lo1, &hi1);
    char buf[512];
    snprintf(buf, sizeof buf,
             "run %d conv cosine, layer %d: off-diagonal %.2f..%.2f at epoch 0, %.2f..%.2f at epoch %d", j->run, layer,
             lo0, hi0, lo1, hi1, r->epoch);
    ev->long_text = strdup(buf);
    return 0;
}

static int attention(ach_run *r, const tui_job *j, tui_event *ev)
{
    char err[1024];
    const ach_task *t = &r->task;
    int L = r->L, layer = j->layer;
    if (layer < 0 || layer >= r->model.cfg.n_layer) {
        snprintf(ev->text, sizeof ev->text, "run %d has layers 0..%d", j->run, r->model.cfg.n_layer - 1);
        return -1;
    }
    if (L > 64) {
        snprintf(ev->text, sizeof ev->text, "sequences of %d tokens are too long to show (64 at most)", L);
        return -1;
    }
    uint64_t n = task_split_size(t, TASK_TEST), seq = j->seq >= 0 ? (uint64_t)j->seq : 0;
    if (j->seq < 0) {
        /* the first test sequence of the held-out pair 43, the interesting one */
        const ach_split *sp = &t->split[TASK_TEST];
        int held = task_pair_index(t, 4, 3);
        for (int i = 0; i < sp->npairs; i++)
            if (sp->pairs[i] == held) seq = (uint64_t)i * sp->per_pair;
    }
    if (seq >= n) {
        snprintf(ev->text, sizeof ev->text, "seq=%llu: the test split has %llu sequences", (unsigned long long)seq,
                 (unsigned long long)n);
        return -1;
    }
    int32_t *tok = malloc((size_t)L * sizeof *tok), label;
    ev->a = malloc((size_t)L * L * sizeof *ev->a);
    if (!tok || !ev->a) {
        free(tok);
        snprintf(ev->text, sizeof ev->text, "out of memory");
        return -1;
    }
    ach_seq_info info;
    task_sequence(t, r->cfg.seed, TASK_TEST, seq, tok, &label, &info);
    int rc = ach_hidden_attention(&r->model, tok, L, layer, j->head, ev->a, err, sizeof err);
    if (rc) {
        free(tok);
        snprintf(ev->text, sizeof ev->text, "%s", err);
        return -1;
    }
    for (int i = 0; i < L; i++) {
        /* k: the key, a: an anchor, then the token */
        const char *role = i == info.pos ? "k" : i == info.pos + 1 || i == info.pos + 2 ? "a" : "";
        snprintf(ev->labels[i], sizeof ev->labels[i], "%s%d", role, tok[i]);
    }
    char pair[16], buf[512];
    task_pair_name(t, info.pair, pair, sizeof pair);
    snprintf(buf, sizeof buf, "run %d hidden attention, layer %d, %s, test sequence %llu: pair %s, key %d at %d, label %d",
             j->run, layer, j->head < 0 ? "mean over heads" : "one head", (unsigned long long)seq, pair, info.key,
             info.pos, label);
    ev->long_text = strdup(buf);
    free(tok);
    ev->heat_kind = 2;
    ev->rows = ev->cols = L;
    ev->layer = layer, ev->head = j->head, ev->seq = (int)seq;
    return 0;
}

int tui_worker_analysis(ach_run *r, const tui_job *j, tui_event *ev)
{
    char err[1024], head[512];
    ach_pair_report rep;
    switch (j->kind) {
    case JOB_COSINE: return cosine(r, j, ev);
    case JOB_ATTN: return attention(r, j, ev);
    case JOB_BLOCK: {
        ach_block_spec b;
        if (ach_block_parse(&b, j->arg, j->arg2, r->L, r->model.cfg.n_layer, err, sizeof err) ||
            ach_blocking_eval(&r->model, &r->task, r->cfg.seed, &b, j->per_pair, &rep, err, sizeof err)) {
            snprintf(ev->text, sizeof ev->text, "blocking: %.1000s", err);
            return -1;
        }
        snprintf(head, sizeof head, "run %d blocking %.120s in layers %.120s (epoch %d, %d per pair): agreement", j->run, j->arg,
                 j->arg2, r->epoch, j->per_pair);
        break;
    }
    case JOB_SUBST:
        if (ach_substitution_eval(&r->model, &r->task, r->cfg.seed, j->layer, j->arg, j->per_pair, &rep, err, sizeof err)) {
            snprintf(ev->text, sizeof ev->text, "substitution: %.1000s", err);
            return -1;
        }
        snprintf(head, sizeof head, "run %d substitution from %.120s in layer %d (epoch %d, %d per pair): collapse", j->run,
                 j->arg, j->layer, r->epoch, j->per_pair);
        break;
    default:
        snprintf(ev->text, sizeof ev->text, "not an analysis");
        return -1;
    }
    if (!(ev->long_text = report_text(head, &rep))) {
        snprintf(ev->text, sizeof ev->text, "out of memory");
        return -1;
    }
    return 0;
}
