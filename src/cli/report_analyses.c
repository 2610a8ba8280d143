/* The report's measurements on a run's model state, and their analyses.json. */
#include "report_analyses.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "analysis.h"
#include "checkpoint.h"
#include "fsutil.h"

static int file_exists(const char *path)
{
    struct stat st;
    return !stat(path, &st);
}

static void offdiag(const double *M, int K, double *lo, double *hi)
{
    for (int i = 0; i < K; i++)
        for (int j = 0; j < K; j++)
            if (i != j && !isnan(M[i * K + j])) *lo = fmin(*lo, M[i * K + j]), *hi = fmax(*hi, M[i * K + j]);
}

/* Off-diagonal range of the conv taps' cosine similarities over all layers. */
static int cosine_range(const char *path, double *lo, double *hi, char *err, size_t errlen)
{
    ach_model m;
    *lo = INFINITY, *hi = -INFINITY;
    if (ach_ckpt_load(&m, &ach_cpu_kernels, path, err, errlen)) return -1;
    int K = m.cfg.d_conv, rc = 0;
    double *M = malloc((size_t)K * K * sizeof *M);
    for (int l = 0; M && l < m.cfg.n_layer && !rc; l++) {
        rc = ach_conv_cosine(&m, l, M, err, errlen);
        if (!rc) offdiag(M, K, lo, hi);
    }
    if (!M) snprintf(err, errlen, "out of memory"), rc = -1;
    free(M);
    ach_model_free(&m);
    if (!(*lo <= *hi)) *lo = *hi = NAN;
    return rc;
}

/* Pair 43 and the range of the other pairs (blocking: p43 given), or the
 * range and mean over every pair (substitution: p43 NULL). */
static void summarise(const ach_pair_report *rep, double *p43, double *lo, double *hi, double *mean, int *count)
{
    double sum = 0;
    int cnt = 0;
    *lo = *hi = NAN;
    if (p43) *p43 = NAN;
    for (int i = 0; i < rep->npairs; i++) {
        double v = rep->value[i];
        if (rep->n[i] <= 0 || isnan(v)) continue;
        if (p43 && !strcmp(rep->pair_name[i], "43")) {
            *p43 = v;
            continue;
        }
        *lo = isnan(*lo) ? v : fmin(*lo, v), *hi = isnan(*hi) ? v : fmax(*hi, v);
        sum += v, cnt++;
    }
    if (mean) *mean = cnt ? sum / cnt : NAN;
    if (count) *count = cnt;
}

static int compute(const sweep_run *r, int per_pair, run_analyses *a, char *err, size_t errlen)
{
    char path[4400];
    ach_model m;
    ach_task t;
    ach_pair_report rep;
    ach_block_spec blk;
    snprintf(path, sizeof path, "%.4000s/state.safetensors", r->dir);
    if (ach_ckpt_load(&m, &ach_cpu_kernels, path, err, errlen)) return -1;
    snprintf(path, sizeof path, "%.4000s/preset.json", r->dir);
    if (task_load(&t, path, err, errlen)) {
        ach_model_free(&m);
        return -1;
    }
    int rc = ach_block_parse(&blk, "key,anchors", "all", t.seq_len, m.cfg.n_layer, err, errlen);
    if (!rc) rc = ach_blocking_eval(&m, &t, r->cfg.seed, &blk, per_pair, &rep, err, errlen);
    if (!rc) {
        summarise(&rep, &a->block43, &a->block_lo, &a->block_hi, NULL, NULL);
        a->block_all = rep.overall;
        rc = ach_substitution_eval(&m, &t, r->cfg.seed, 0, "after", per_pair, &rep, err, errlen);
    }
    if (!rc) {
        summarise(&rep, NULL, &a->subst_lo, &a->subst_hi, &a->subst_mean, &a->subst_pairs);
        a->subst_unchanged = rep.unchanged_overall;
    }
    task_free(&t);
    ach_model_free(&m);
    if (rc) return -1;
    a->cos0_lo = a->cos0_hi = NAN;
    snprintf(path, sizeof path, "%.4000s/ckpt/epoch_0000.safetensors", r->dir);
    if (file_exists(path) && cosine_range(path, &a->cos0_lo, &a->cos0_hi, err, errlen)) return -1;
    snprintf(path, sizeof path, "%.4000s/state.safetensors", r->dir);
    return cosine_range(path, &a->cos_lo, &a->cos_hi, err, errlen);
}

static void add_pair(cJSON *o, const char *name, double lo, double hi)
{
    cJSON *arr = cJSON_AddArrayToObject(o, name);
    cJSON_AddItemToArray(arr, cJSON_CreateNumber(lo));
    cJSON_AddItemToArray(arr, cJSON_CreateNumber(hi));
}

/* NaN goes out as null (cJSON) and comes back as NaN. */
static char *to_json(const run_analyses *a)
{
    cJSON *o = cJSON_CreateObject(), *b, *s, *c;
    cJSON_AddNumberToObject(o, "epoch", a->epoch);
    cJSON_AddNumberToObject(o, "per_pair", a->per_pair);
    cJSON_AddItemToObject(o, "blocking", b = cJSON_CreateObject());
    cJSON_AddStringToObject(b, "positions", "key,anchors");
    cJSON_AddStringToObject(b, "layers", "all");
    cJSON_AddNumberToObject(b, "pair43", a->block43);
    cJSON_AddNumberToObject(b, "others_min", a->block_lo);
    cJSON_AddNumberToObject(b, "others_max", a->block_hi);
    cJSON_AddNumberToObject(b, "overall", a->block_all);
    cJSON_AddItemToObject(o, "substitution", s = cJSON_CreateObject());
    cJSON_AddNumberToObject(s, "layer", 0);
    cJSON_AddStringToObject(s, "from", "after");
    cJSON_AddNumberToObject(s, "pairs", a->subst_pairs);
    cJSON_AddNumberToObject(s, "min", a->subst_lo);
    cJSON_AddNumberToObject(s, "max", a->subst_hi);
    cJSON_AddNumberToObject(s, "mean", a->subst_mean);
    cJSON_AddNumberToObject(s, "unchanged", a->subst_unchanged);
    cJSON_AddItemToObject(o, "cosine", c = cJSON_CreateObject());
    add_pair(c, "epoch0", a->cos0_lo, a->cos0_hi);
    add_pair(c, "final", a->cos_lo, a->cos_hi);
    char *text = cJSON_Print(o);
    cJSON_Delete(o);
    return text;
}

static double number(const cJSON *v) { return cJSON_IsNumber(v) ? v->valuedouble : NAN; }
static double field(const cJSON *o, const char *name) { return number(cJSON_GetObjectItemCaseSensitive(o, name)); }

static void range(const cJSON *o, const char *name, double *lo, double *hi)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    *lo = number(cJSON_GetArrayItem(v, 0)), *hi = number(cJSON_GetArrayItem(v, 1));
}

static int from_json(run_analyses *a, const char *text, const char *where, char *err, size_t errlen)
{
    cJSON *o = cJSON_Parse(text);
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(o, "blocking"), *s = cJSON_GetObjectItemCaseSensitive(o, "substitution"),
                *c = cJSON_GetObjectItemCaseSensitive(o, "cosine");
    if (!cJSON_IsObject(b) || !cJSON_IsObject(s) || !cJSON_IsObject(c) || isnan(field(o, "per_pair"))) {
        snprintf(err, errlen, "%s: not an analyses file (needs per_pair, blocking, substitution and cosine)", where);
        cJSON_Delete(o);
        return -1;
    }
    a->epoch = (int)field(o, "epoch"), a->per_pair = (int)field(o, "per_pair");
    a->block43 = field(b, "pair43"), a->block_lo = field(b, "others_min"), a->block_hi = field(b, "others_max");
    a->block_all = field(b, "overall");
    double np = field(s, "pairs");
    a->subst_pairs = isnan(np) ? 0 : (int)np;
    a->subst_lo = field(s, "min"), a->subst_hi = field(s, "max"), a->subst_mean = field(s, "mean");
    a->subst_unchanged = field(s, "unchanged");
    range(c, "epoch0", &a->cos0_lo, &a->cos0_hi);
    range(c, "final", &a->cos_lo, &a->cos_hi);
    cJSON_Delete(o);
    return 0;
}

int run_analyses_get(const sweep_run *r, int per_pair, run_analyses *a, char *err, size_t errlen)
{
    char path[4400], state[4400];
    memset(a, 0, sizeof *a);
    snprintf(path, sizeof path, "%.4000s/%s", r->dir, RUN_ANALYSES_FILE);
    snprintf(state, sizeof state, "%.4000s/state.safetensors", r->dir);
    size_t len;
    char *old = file_exists(path) ? read_file(path, 1 << 20, &len, err, errlen) : NULL;
    if (file_exists(path) && !old) return -1;
    int rc = 0;
    if (file_exists(state)) {
        a->epoch = r->have_last ? r->last.epoch : 0, a->per_pair = per_pair;
        if (compute(r, per_pair, a, a->err, sizeof a->err)) goto out; /* shown in the report's row */
        a->have = a->from_state = 1;
        char *text = to_json(a);
        if (!text) {
            snprintf(err, errlen, "%s: out of memory", path);
            rc = -1;
        } else if (!old || strcmp(old, text)) rc = write_file_atomic(path, text, strlen(text), err, errlen);
        free(text);
    } else if (old) {
        rc = from_json(a, old, path, err, errlen);
        a->have = !rc && a->per_pair == per_pair;
    }
out:
    free(old);
    return rc;
}
