/* The training run: batches in a per-epoch shuffled order, the paper's
 * optimizer, evaluation every epoch, records and checkpoints in the run
 * directory, and exact resumption from state.safetensors. */
#include "run.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "checkpoint.h"
#include "fsutil.h"
#include "init.h"
#include "rng.h"
#include "step.h"
#include "strbuf.h"
#include "threads.h"

#define SHUFFLE_STREAM 0x5348554646ULL /* "SHUFF": one stream per epoch */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void path_in(const ach_run *r, char *buf, size_t n, const char *name)
{
    snprintf(buf, n, "%s/%s", r->dir, name);
}

/* Fisher-Yates under (seed, epoch): the order is a pure function of both. */
static void shuffle(ach_run *r)
{
    ach_rng g;
    rng_init(&g, r->cfg.seed, SHUFFLE_STREAM + (uint64_t)r->epoch);
    for (uint64_t i = 0; i < r->ntrain; i++) r->perm[i] = (uint32_t)i;
    for (uint64_t i = r->ntrain - 1; i > 0; i--) {
        uint64_t j = rng_below(&g, i + 1);
        uint32_t t = r->perm[i];
        r->perm[i] = r->perm[j];
        r->perm[j] = t;
    }
}

/* The cosine reaches lr_min at the run's last epoch. */
static void sync_schedule(ach_runcfg *c) { c->optim.total_epochs = c->epochs; }

/* Model config from the run config and the task (vocabulary). */
static void model_config(const ach_runcfg *c, const ach_task *t, ach_config *m)
{
    *m = c->model;
    if (!m->dt_rank) m->dt_rank = (m->d_model + 15) / 16;
    m->vocab_size = t->vocab_size;
    m->seed = c->seed;
    m->pos_max_len = m->pos_enc == POS_LEARNED ? t->seq_len : 0;
}

/* The current values of the live keys, as a JSON object text (malloc'd). */
static char *live_json(const ach_runcfg *c)
{
    cJSON *o = cJSON_CreateObject();
    for (int k = 0; k < runcfg_nkeys(); k++)
        if (runcfg_key_live(k)) {
            char v[300];
            runcfg_get(c, k, v, sizeof v);
            cJSON_AddStringToObject(o, runcfg_key_name(k), v);
        }
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

/* Host copy of tensor p of model `from` into the same-named tensor of `to`. */
static void copy_tensor(const ach_model *from, const real *src_arena, const ach_model *to, real *dst_arena,
                        const ach_param *p, real *stage)
{
    const ach_param *q = ach_model_param(to, p->name);
    if (!q || q->numel != p->numel) return;
    from->k->to_host(stage, src_arena + p->offset, p->numel * sizeof(real));
    to->k->to_device(dst_arena + q->offset, stage, p->numel * sizeof(real));
}

/* Rebuilds the model with a learned positional table (zero, so the function
 * is unchanged), carrying weights and optimizer state over by name. */
static int add_pos_table(ach_run *r, char *err, size_t errlen)
{
    ach_model nm;
    ach_optim no;
    ach_config nc = r->model.cfg;
    nc.pos_enc = POS_LEARNED;
    nc.pos_max_len = r->L;
    if (ach_model_create(&nm, &nc, r->model.k, err, errlen)) return -1;
    if (ach_model_reserve(&nm, r->cfg.batch_size, r->L, err, errlen) || ach_optim_create(&no, &nm, &r->opt.cfg)) {
        if (!err[0]) snprintf(err, errlen, "out of memory");
        ach_model_free(&nm);
        return -1;
    }
    real *stage = malloc(r->model.nweights * sizeof *stage);
    if (!stage) {
        snprintf(err, errlen, "out of memory");
        ach_optim_free(&no, &nm);
        ach_model_free(&nm);
        return -1;
    }
    for (int i = 0; i < r->model.nparams; i++) {
        const ach_param *p = &r->model.params[i];
        copy_tensor(&r->model, r->model.w, &nm, nm.w, p, stage);
        copy_tensor(&r->model, r->opt.m, &nm, no.m, p, stage);
        copy_tensor(&r->model, r->opt.v, &nm, no.v, p, stage);
        const ach_param *q = ach_model_param(&nm, p->name);
        no.steps[q - nm.params] = r->opt.steps[i];
        no.frozen[q - nm.params] = r->opt.frozen[i];
    }
    no.step = r->opt.step;
    free(stage);
    ach_optim_free(&r->opt, &r->model);
    ach_model_free(&r->model);
    r->model = nm;
    r->opt = no;
    return 0;
}

/* Brings model and optimizer in line with the run's intervention settings.
 * switched_on: the all-one conv has just been switched on (or the run starts
 * with it), so its values are set now; frozen entries keep them anyway. */
static int apply_interventions(ach_run *r, int switched_on, char *err, size_t errlen)
{
    ach_model *m = &r->model;
    if (ach_block_parse(&r->block, r->cfg.block, r->cfg.block_layers, r->L, m->cfg.n_layer, err, errlen)) return -1;
    if (r->cfg.model.pos_enc == POS_LEARNED && !m->cfg.pos_max_len && add_pos_table(r, err, errlen)) return -1;
    m->cfg.pos_enc = r->cfg.model.pos_enc;
    r->opt.npin = 0;
    for (int i = 0; i < m->nparams; i++) {
        const ach_param *p = &m->params[i];
        if (p->kind == KIND_POS) r->opt.frozen[i] = m->cfg.pos_enc != POS_LEARNED;
        if (p->kind != KIND_CONV && p->kind != KIND_BIAS) continue; /* conv1d weight and bias */
        int on = r->cfg.all_one_conv, weight = p->kind == KIND_CONV;
        int hold = on && !(weight ? r->cfg.all_one_mode : r->cfg.all_one_bias);
        /* the x channels are the first d_inner rows (Mamba-2's xBC conv) */
        size_t rows = r->cfg.all_one_channels ? (size_t)cfg_d_inner(&m->cfg) : (size_t)p->shape[0];
        size_t n = rows * (p->numel / p->shape[0]);
        real value = weight ? 1 : 0;
        r->opt.frozen[i] = hold && n == p->numel;
        if (hold && n < p->numel) {
            if (ach_optim_pin(&r->opt, m, p->offset, n, value)) {
                snprintf(err, errlen, "out of memory");
                return -1;
            }
        } else if (on && switched_on && ach_model_fill(m, m->w + p->offset, n, value)) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
    }
    return 0;
}

/* Allocations and sizes shared by create and resume; model and optimizer
 * are already made. */
static int setup(ach_run *r, char *err, size_t errlen)
{
    ach_threads_set(r->cfg.threads); /* 0: the default; results do not depend on it */
    r->L = r->task.seq_len;
    r->ntrain = task_nexamples(&r->task, TASK_TRAIN);
    r->ntest = task_nexamples(&r->task, TASK_TEST);
    if (task_metric_index(r->task.kind, r->cfg.patience_metric) < 0) {
        char names[200];
        task_metric_names(r->task.kind, names, sizeof names);
        snprintf(err, errlen, "key 'patience_metric': '%s' is not a metric of %s's kind, %s (%s)", r->cfg.patience_metric,
                 r->task.path, r->task.kind->name, names);
        return -1;
    }
    if (r->ntrain == 0 || r->ntrain > UINT32_MAX) {
        snprintf(err, errlen, "%s: train split has %" PRIu64 " sequences; need 1 to 2^32-1", r->task.path, r->ntrain);
        return -1;
    }
    int B = r->cfg.batch_size;
    r->nbatches = (int)((r->ntrain + B - 1) / B);
    r->perm = malloc(r->ntrain * sizeof *r->perm);
    r->tokens = malloc((size_t)B * r->L * sizeof *r->tokens);
    r->labels = malloc((size_t)B * sizeof *r->labels);
    r->pred = malloc((size_t)B * sizeof *r->pred);
    r->pred_blocked = malloc((size_t)B * sizeof *r->pred_blocked);
    r->info = malloc((size_t)B * sizeof *r->info);
    r->mask = malloc((size_t)B * r->L);
    if (!r->perm || !r->tokens || !r->labels || !r->pred || !r->pred_blocked || !r->info || !r->mask) {
        snprintf(err, errlen, "out of memory for a run of %" PRIu64 " sequences", r->ntrain);
        return -1;
    }
    if (ach_model_reserve(&r->model, B, r->L, err, errlen)) return -1;
    if (r->epoch < r->cfg.epochs || r->batch) shuffle(r);
    return 0;
}

/* Forward over n sequences of a split given by index: the summed loss, the
 * kind's scorer (score: NULL for none) and, when blocking is set, how many
 * predictions blocking leaves unchanged per pair (blocking works on the
 * composite's key and anchor positions). */
typedef struct {
    double loss;
    long n;
    long agree[TASK_MAX_PAIRS], count[TASK_MAX_PAIRS];
} eval_acc;

static void eval_indices(ach_run *r, int split, uint64_t start, uint64_t stride, uint64_t n, eval_acc *acc,
                         void *score)
{
    const ach_task *t = &r->task;
    int B = r->cfg.batch_size, blocking = ach_block_active(&r->block);
    /* the ordinary metrics see blocking only if the run trains under it */
    const ach_block_spec *train_blk = blocking && r->cfg.block_train ? &r->block : NULL;
    for (uint64_t b0 = 0; b0 < n; b0 += B) {
        int nb = (int)(n - b0 < (uint64_t)B ? n - b0 : (uint64_t)B);
        for (int b = 0; b < nb; b++)
            task_example(t, r->cfg.seed, split, start + (b0 + b) * stride, r->tokens + (size_t)b * r->L, &r->labels[b],
                         &r->info[b]);
        double loss = ach_predict(&r->model, r->tokens, r->labels, nb, r->L, 1, train_blk, r->info, r->pred) * nb;
        acc->loss += loss;
        acc->n += nb;
        if (score) t->kind->score_add(t, score, r->labels, r->info, r->pred, nb, loss);
        if (!blocking) continue;
        ach_predict(&r->model, r->tokens, r->labels, nb, r->L, 1, train_blk ? NULL : &r->block, r->info,
                    r->pred_blocked);
        for (int b = 0; b < nb; b++) {
            acc->count[r->info[b].pair]++;
            acc->agree[r->info[b].pair] += r->pred[b] == r->pred_blocked[b];
        }
    }
}

void ach_run_evaluate(ach_run *r, ach_metrics *out)
{
    const ach_task *t = &r->task;
    eval_acc *acc = calloc(1, sizeof *acc);
    void *score = calloc(1, t->kind->score_size);
    if (!acc || !score) {
        free(acc);
        free(score);
        return;
    }
    eval_indices(r, TASK_TEST, 0, 1, r->ntest, acc, score);
    t->kind->score_end(t, TASK_TEST, score, &out->eval);
    const ach_split *sp = &t->split[TASK_TEST];
    long agree = 0;
    int blocking = ach_block_active(&r->block);
    for (int i = 0; i < sp->npairs; i++) {
        int p = sp->pairs[i];
        out->block_agree_pair[i] = blocking && acc->count[p] ? (double)acc->agree[p] / acc->count[p] : NAN;
        agree += acc->agree[p];
    }
    out->block_agree = blocking && acc->n ? (double)agree / acc->n : NAN;
    out->all_one_conv = r->cfg.all_one_conv;
    out->block_train = r->cfg.block_train;
    static const char *pe[] = {"none", "sinusoidal", "learned"};
    snprintf(out->pos_enc, sizeof out->pos_enc, "%s", pe[r->model.cfg.pos_enc]);
    ach_block_format(&r->block, out->block, sizeof out->block, out->block_layers, sizeof out->block_layers);
    free(acc);
    free(score);
}

/* JSON numbers, with NaN and Inf spelled out as strings: explicit, where
 * cJSON would write null and a reader could not tell them apart. */
static cJSON *num_item(double v)
{
    if (isnan(v)) return cJSON_CreateString("NaN");
    if (isinf(v)) return cJSON_CreateString(v > 0 ? "Inf" : "-Inf");
    char buf[32]; /* the record reads back to the same double */
    fmt_double_exact(buf, sizeof buf, v);
    return cJSON_CreateRaw(buf);
}

char *ach_metrics_json(const ach_metrics *m)
{
    const ach_named_metrics *e = &m->eval;
    const ach_task_kind *k = e->kind;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "epoch", m->epoch);
    cJSON_AddNumberToObject(o, "step", (double)m->step);
    cJSON_AddItemToObject(o, "lr", num_item(m->lr));
    cJSON_AddItemToObject(o, "train_loss", num_item(m->train_loss));
    for (int i = 0; k && i < k->nmetrics; i++) cJSON_AddItemToObject(o, k->metrics[i].name, num_item(e->value[i]));
    cJSON_AddItemToObject(o, "grad_norm", num_item(m->grad_norm));
    cJSON_AddItemToObject(o, "seq_per_s", num_item(m->seq_per_s));
    cJSON_AddItemToObject(o, "elapsed_s", num_item(m->elapsed_s));
    if (k && k->group_key) {
        cJSON *groups = cJSON_CreateObject();
        for (int i = 0; i < e->ngroups; i++) cJSON_AddItemToObject(groups, e->group_name[i], num_item(e->group_value[i]));
        cJSON_AddItemToObject(o, k->group_key, groups);
    }
    cJSON_AddBoolToObject(o, "all_one_conv", m->all_one_conv);
    cJSON_AddStringToObject(o, "pos_enc", m->pos_enc);
    cJSON_AddStringToObject(o, "block", m->block);
    cJSON_AddStringToObject(o, "block_layers", m->block_layers);
    cJSON_AddBoolToObject(o, "block_train", m->block_train);
    cJSON_AddItemToObject(o, "block_agree", num_item(m->block_agree));
    if (!isnan(m->block_agree)) {
        cJSON *ag = cJSON_CreateObject();
        for (int i = 0; i < e->ngroups; i++) cJSON_AddItemToObject(ag, e->group_name[i], num_item(m->block_agree_pair[i]));
        cJSON_AddItemToObject(o, "block_agree_pair", ag);
    }
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

#define CSV_LEAD "epoch,step,lr,train_loss"
#define CSV_TAIL "grad_norm,seq_per_s,elapsed_s,all_one_conv,pos_enc,block,block_layers,block_train,block_agree"

char *ach_metrics_csv_header(const ach_metrics *m)
{
    const ach_task_kind *k = m->eval.kind;
    size_t n = sizeof CSV_LEAD + sizeof CSV_TAIL + (size_t)(m->eval.ngroups + TASK_MAX_METRICS) * 40;
    char *s = malloc(n);
    if (!s) return NULL;
    size_t len = snprintf(s, n, "%s", CSV_LEAD);
    for (int i = 0; k && i < k->nmetrics; i++) len += snprintf(s + len, n - len, ",%s", k->metrics[i].name);
    len += snprintf(s + len, n - len, ",%s", CSV_TAIL);
    for (int i = 0; k && i < m->eval.ngroups; i++)
        len += snprintf(s + len, n - len, ",%s%s", k->group_column, m->eval.group_name[i]);
    return s;
}

char *ach_metrics_csv_row(const ach_metrics *m)
{
    const ach_task_kind *k = m->eval.kind;
    size_t n = 512 + 64 * (12 + TASK_MAX_METRICS + (size_t)m->eval.ngroups);
    char *s = malloc(n);
    if (!s) return NULL;
    size_t len = snprintf(s, n, "%d,%ld,%.9g,%.9g", m->epoch, m->step, m->lr, m->train_loss);
    for (int i = 0; k && i < k->nmetrics; i++)
        len += snprintf(s + len, n - len, ",%.*g", k->metrics[i].csv_digits, m->eval.value[i]);
    /* block lists hold commas: quoted */
    len += snprintf(s + len, n - len, ",%.6g,%.6g,%.3f,%d,%s,\"%s\",\"%s\",%d,%.6g", m->grad_norm, m->seq_per_s,
                    m->elapsed_s, m->all_one_conv, m->pos_enc, m->block, m->block_layers, m->block_train,
                    m->block_agree);
    for (int i = 0; k && i < m->eval.ngroups; i++) len += snprintf(s + len, n - len, ",%.6g", m->eval.group_value[i]);
    return s;
}

double ach_json_number(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (cJSON_IsNumber(v)) return v->valuedouble;
    if (cJSON_IsString(v)) { /* "NaN", "Inf", or an exact number as text */
        char *end;
        double d = strtod(v->valuestring, &end);
        return *end ? NAN : d;
    }
    return NAN;
}

void ach_json_string(const cJSON *o, const char *key, char *buf, size_t n)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    snprintf(buf, n, "%s", cJSON_IsString(v) ? v->valuestring : "");
}

void ach_metrics_from_json(const cJSON *o, const ach_task_kind *k, ach_metrics *m)
{
    ach_named_metrics *e = &m->eval;
    memset(m, 0, sizeof *m);
    double ep = ach_json_number(o, "epoch"), st = ach_json_number(o, "step");
    m->epoch = isnan(ep) ? -1 : (int)ep;
    m->step = isnan(st) ? 0 : (long)st;
    m->lr = ach_json_number(o, "lr");
    m->train_loss = ach_json_number(o, "train_loss");
    e->kind = k;
    for (int i = 0; i < TASK_MAX_METRICS; i++) e->value[i] = k && i < k->nmetrics ? ach_json_number(o, k->metrics[i].name) : NAN;
    m->grad_norm = ach_json_number(o, "grad_norm");
    m->seq_per_s = ach_json_number(o, "seq_per_s");
    m->elapsed_s = ach_json_number(o, "elapsed_s");
    m->block_agree = ach_json_number(o, "block_agree");
    const cJSON *groups = k && k->group_key ? cJSON_GetObjectItemCaseSensitive(o, k->group_key) : NULL;
    const cJSON *agree = cJSON_GetObjectItemCaseSensitive(o, "block_agree_pair");
    for (const cJSON *g = cJSON_IsObject(groups) ? groups->child : NULL; g && e->ngroups < TASK_MAX_GROUPS; g = g->next) {
        int i = e->ngroups++;
        snprintf(e->group_name[i], sizeof e->group_name[i], "%s", g->string);
        e->group_value[i] = ach_json_number(groups, g->string);
        m->block_agree_pair[i] = agree ? ach_json_number(agree, g->string) : NAN;
    }
    m->all_one_conv = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "all_one_conv"));
    m->block_train = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "block_train"));
    ach_json_string(o, "pos_enc", m->pos_enc, sizeof m->pos_enc);
    ach_json_string(o, "block", m->block, sizeof m->block);
    ach_json_string(o, "block_layers", m->block_layers, sizeof m->block_layers);
}

const ach_task_kind *ach_run_dir_kind(const char *dir)
{
    char path[1200], ignore[256];
    size_t len;
    snprintf(path, sizeof path, "%s/preset.json", dir);
    char *text = read_file(path, 1 << 20, &len, ignore, sizeof ignore);
    cJSON *o = text ? cJSON_Parse(text) : NULL;
    const ach_task_kind *k = cJSON_IsObject(o) ? task_kind_of(o, path, ignore, sizeof ignore) : NULL;
    cJSON_Delete(o);
    free(text);
    return k ? k : &task_kind_composite;
}

/* summary.json: best and final values, rewritten atomically each epoch. */
static int write_summary(ach_run *r, char *err, size_t errlen)
{
    cJSON *o = cJSON_CreateObject();
    char path[1200];
    cJSON_AddStringToObject(o, "status", r->failed ? "failed" : r->done ? "done" : "running");
    if (r->stop_reason[0]) cJSON_AddStringToObject(o, "stop_reason", r->stop_reason);
    cJSON_AddNumberToObject(o, "epochs_done", r->epoch);
    cJSON_AddNumberToObject(o, "epochs", r->cfg.epochs);
    cJSON_AddStringToObject(o, "best_metric", r->cfg.patience_metric);
    cJSON_AddItemToObject(o, "best_value", num_item(r->best));
    cJSON_AddNumberToObject(o, "best_epoch", r->best_epoch);
    cJSON_AddItemToObject(o, "wall_time_s", num_item(r->elapsed));
    char *last = ach_metrics_json(&r->last);
    cJSON_AddItemToObject(o, "final", cJSON_Parse(last));
    free(last);
    char *s = cJSON_Print(o);
    cJSON_Delete(o);
    path_in(r, path, sizeof path, "summary.json");
    int rc = write_file_atomic(path, s, strlen(s), err, errlen);
    free(s);
    return rc;
}

/* Appends the latest record to metrics.jsonl and training_log.csv. */
static int write_record(ach_run *r, char *err, size_t errlen)
{
    char path[1200];
    char *js = ach_metrics_json(&r->last), *row = ach_metrics_csv_row(&r->last);
    int rc = -1;
    if (!js || !row) goto out;
    path_in(r, path, sizeof path, "metrics.jsonl");
    if (append_line(path, js, err, errlen)) goto out;
    path_in(r, path, sizeof path, "training_log.csv");
    struct stat st;
    if (stat(path, &st)) {
        char *hdr = ach_metrics_csv_header(&r->last);
        int bad = !hdr || append_line(path, hdr, err, errlen);
        free(hdr);
        if (bad) goto out;
    }
    rc = append_line(path, row, err, errlen);
out:
    free(js);
    free(row);
    return rc;
}

/* The run's position as metadata text; doubles with %.17g round-trip. */
static char *position_json(const ach_run *r)
{
    char buf[1024];
    snprintf(buf, sizeof buf,
             "{\"epoch\":\"%d\",\"batch\":\"%d\",\"step\":\"%ld\",\"loss_sum\":\"%.17g\",\"loss_n\":\"%ld\","
             "\"gnorm_sum\":\"%.17g\",\"gnorm_n\":\"%ld\",\"best\":\"%.17g\",\"best_epoch\":\"%d\","
             "\"bad_epochs\":\"%d\",\"elapsed\":\"%.17g\",\"done\":\"%d\",\"stop_reason\":\"%s\"}",
             r->epoch, r->batch, r->opt.step, r->loss_sum, r->loss_n, r->gnorm_sum, r->gnorm_n, r->best,
             r->best_epoch, r->bad_epochs, r->elapsed, r->done, r->stop_reason);
    return strdup(buf);
}

/* Model + optimizer moments + position, to one file. */
static int save_checkpoint(ach_run *r, const char *path, char *err, size_t errlen)
{
    ach_model *m = &r->model;
    int n = 2 * m->nparams + 1, rc = -1;
    st_entry *e = calloc(n, sizeof *e);
    char(*names)[ACH_NAME_MAX + 24] = calloc(n, sizeof *names);
    float *host = malloc(2 * m->nweights * sizeof *host);
    real *stage = malloc(2 * m->nweights * sizeof *stage);
    char *pos = position_json(r), *cfg = runcfg_to_json(&r->cfg);
    if (!e || !names || !host || !stage || !pos || !cfg) {
        snprintf(err, errlen, "%s: out of memory", path);
        goto out;
    }
    m->k->to_host(stage, r->opt.m, m->nweights * sizeof(real));
    m->k->to_host(stage + m->nweights, r->opt.v, m->nweights * sizeof(real));
    for (size_t i = 0; i < 2 * m->nweights; i++) host[i] = (float)stage[i];
    for (int i = 0; i < m->nparams; i++) {
        const ach_param *p = &m->params[i];
        for (int which = 0; which < 2; which++) {
            int j = 2 * i + which;
            snprintf(names[j], sizeof names[j], ACH_OPTIM_PREFIX "%s.%s", which ? "exp_avg_sq" : "exp_avg", p->name);
            e[j] = (st_entry){.name = names[j], .dtype = ST_F32, .ndim = p->ndim,
                              .data = host + which * m->nweights + p->offset};
            for (int d = 0; d < p->ndim; d++) e[j].shape[d] = p->shape[d];
        }
    }
    int64_t *steps = malloc(m->nparams * sizeof *steps);
    char *live = live_json(&r->cfg);
    if (!steps || !live) {
        snprintf(err, errlen, "%s: out of memory", path);
        free(steps);
        free(live);
        goto out;
    }
    for (int i = 0; i < m->nparams; i++) steps[i] = r->opt.steps[i];
    e[n - 1] = (st_entry){.name = ACH_OPTIM_PREFIX "steps", .dtype = ST_I64, .ndim = 1, .shape = {m->nparams}, .data = steps};
    const char *keys[] = {"run_position", "run_config", "run_live"}, *vals[] = {pos, cfg, live};
    rc = ach_ckpt_save(m, path, e, n, keys, vals, 3, err, errlen);
    free(steps);
    free(live);
out:
    free(e);
    free(names);
    free(host);
    free(stage);
    free(pos);
    free(cfg);
    return rc;
}

int ach_run_save_state(ach_run *r, char *err, size_t errlen)
{
    char path[1200];
    path_in(r, path, sizeof path, "state.safetensors");
    return save_checkpoint(r, path, err, errlen);
}

static int save_epoch_checkpoint(ach_run *r, char *err, size_t errlen)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/ckpt/epoch_%04d.safetensors", r->dir, r->epoch);
    return save_checkpoint(r, path, err, errlen);
}

/* After evaluation: record, summary, patience, checkpoints, state. */
static int finish_epoch(ach_run *r, char *err, size_t errlen)
{
    const ach_task_kind *k = r->task.kind;
    int i = task_metric_index(k, r->cfg.patience_metric); /* checked when the run was made */
    double v = r->last.eval.value[i];
    int higher_better = k->metrics[i].higher_better;
    if (!isnan(v) && (isnan(r->best) || (higher_better ? v > r->best : v < r->best))) {
        r->best = v, r->best_epoch = r->epoch, r->bad_epochs = 0;
    } else if (r->epoch > 0) {
        r->bad_epochs++;
    }
    if (r->epoch >= r->cfg.epochs) {
        r->done = 1;
        snprintf(r->stop_reason, sizeof r->stop_reason, "finished %d epochs", r->cfg.epochs);
    } else if (r->cfg.patience > 0 && r->bad_epochs >= r->cfg.patience) {
        r->done = 1;
        snprintf(r->stop_reason, sizeof r->stop_reason, "early stop: %s not improved for %d epochs (best %.6g at epoch %d)",
                 r->cfg.patience_metric, r->bad_epochs, r->best, r->best_epoch);
    }
    if (write_record(r, err, errlen) || write_summary(r, err, errlen)) return -1;
    int periodic = r->cfg.ckpt_every > 0 && r->epoch % r->cfg.ckpt_every == 0;
    if ((r->epoch == 0 || periodic || r->done) && save_epoch_checkpoint(r, err, errlen)) return -1;
    return ach_run_save_state(r, err, errlen);
}

static void fill_train_fields(ach_run *r, double lr)
{
    ach_metrics *m = &r->last;
    m->epoch = r->epoch;
    m->step = r->opt.step;
    m->lr = lr;
    m->train_loss = r->loss_n ? r->loss_sum / r->loss_n : NAN;
    m->grad_norm = r->gnorm_n ? r->gnorm_sum / r->gnorm_n : NAN;
    m->seq_per_s = r->epoch_train_s > 0 ? r->epoch_seqs / r->epoch_train_s : NAN;
    m->elapsed_s = r->elapsed;
}

static int write_json_file(const char *path, const char *json, char *err, size_t errlen)
{
    return write_file_atomic(path, json, strlen(json), err, errlen);
}

int ach_run_create(ach_run *r, const ach_runcfg *cfg, const char *dir, const ach_kernels *k, char *err, size_t errlen)
{
    char path[1200];
    struct stat st;
    memset(r, 0, sizeof *r);
    r->cfg = *cfg;
    sync_schedule(&r->cfg);
    r->best = NAN;
    snprintf(r->dir, sizeof r->dir, "%s", dir);
    char *preset = NULL;
    if (runcfg_validate(cfg, err, errlen) ||
        task_load_with(&r->task, cfg->preset, cfg->seq_len, cfg->key_offset, &preset, err, errlen))
        return -1;
    if (task_trainable(&r->task, err, errlen)) return task_free(&r->task), free(preset), -1;
    path_in(r, path, sizeof path, "config.json");
    if (!stat(path, &st)) {
        snprintf(err, errlen, "%s: already holds a run (config.json); resume it with 'achilles train --resume %s' or "
                 "choose another out=", dir, dir);
        task_free(&r->task);
        free(preset);
        return -1;
    }
    ach_config mc;
    model_config(cfg, &r->task, &mc);
    if (make_dirs(dir, err, errlen) || ach_model_create(&r->model, &mc, k, err, errlen)) {
        task_free(&r->task);
        free(preset);
        return -1;
    }
    if (ach_init_params(&r->model) || ach_optim_create(&r->opt, &r->model, &r->cfg.optim) || setup(r, err, errlen) ||
        apply_interventions(r, r->cfg.all_one_conv, err, errlen)) {
        if (!err[0]) snprintf(err, errlen, "out of memory");
        ach_run_close(r);
        free(preset);
        return -1;
    }
    /* config.json, the preset copy (with seq_len and key_offset in it), then epoch 0 */
    char *js = runcfg_to_json(cfg);
    snprintf(path, sizeof path, "%s/ckpt", dir);
    int bad = !js || !preset || make_dirs(path, err, errlen);
    if (!bad) {
        path_in(r, path, sizeof path, "preset.json");
        bad = write_json_file(path, preset, err, errlen);
    }
    if (!bad) {
        path_in(r, path, sizeof path, "config.json");
        bad = write_json_file(path, js, err, errlen);
    }
    free(js);
    free(preset);
    if (bad) {
        ach_run_close(r);
        return -1;
    }
    ach_run_evaluate(r, &r->last);
    /* epoch 0's train loss: every k-th training sequence, as many as the test split */
    eval_acc *acc = calloc(1, sizeof *acc);
    if (acc) {
        uint64_t stride = r->ntrain > r->ntest ? r->ntrain / r->ntest : 1;
        eval_indices(r, TASK_TRAIN, 0, stride, r->ntrain / stride, acc, NULL);
        r->loss_sum = acc->loss, r->loss_n = acc->n;
        free(acc);
    }
    fill_train_fields(r, ach_lr_at(&r->cfg.optim, 0));
    r->loss_sum = 0, r->loss_n = 0;
    if (finish_epoch(r, err, errlen)) {
        ach_run_close(r);
        return -1;
    }
    return 0;
}

ach_run_status ach_run_advance(ach_run *r, char *err, size_t errlen)
{
    if (r->done) return RUN_DONE;
    int B = r->cfg.batch_size;
    if (r->batch == 0) r->epoch_train_s = 0, r->epoch_seqs = 0;
    double t0 = now_s();
    uint64_t first = (uint64_t)r->batch * B;
    int nb = (int)(r->ntrain - first < (uint64_t)B ? r->ntrain - first : (uint64_t)B);
    for (int b = 0; b < nb; b++)
        task_example(&r->task, r->cfg.seed, TASK_TRAIN, r->perm[first + b], r->tokens + (size_t)b * r->L,
                      &r->labels[b], &r->info[b]);
    double pos = r->cfg.lr_schedule == SCHED_STEP ? r->epoch + (double)r->batch / r->nbatches : r->epoch;
    double lr = ach_lr_at(&r->cfg.optim, pos);
    int blocked = r->cfg.block_train && ach_block_active(&r->block);
    if (blocked) {
        ach_block_mask(&r->block, r->info, nb, r->L, r->mask);
        ach_model_set_block(&r->model, r->mask, nb, r->L, r->block.layers);
    }
    double gn, loss = ach_train_step(&r->model, &r->opt, r->tokens, r->labels, nb, r->L, lr, &gn);
    if (blocked) ach_model_set_block(&r->model, NULL, nb, r->L, 0);
    r->loss_sum += loss * nb, r->loss_n += nb;
    r->gnorm_sum += gn, r->gnorm_n++;
    r->batch++;
    double dt = now_s() - t0;
    r->epoch_train_s += dt;
    r->epoch_seqs += nb;
    r->elapsed += dt;
    if (!isfinite(loss) || !isfinite(gn)) {
        r->done = r->failed = 1;
        snprintf(r->stop_reason, sizeof r->stop_reason, "diverged at epoch %d step %ld: loss %g, gradient norm %g",
                 r->epoch, r->opt.step, loss, gn);
        char ignore[256];
        write_summary(r, ignore, sizeof ignore);
        snprintf(err, errlen, "%s", r->stop_reason);
        return RUN_ERROR; /* the last good state.safetensors is kept */
    }
    if (r->batch < r->nbatches) return RUN_STEP;
    /* end of epoch */
    r->epoch++;
    r->batch = 0;
    ach_run_evaluate(r, &r->last);
    fill_train_fields(r, lr);
    r->loss_sum = r->gnorm_sum = 0, r->loss_n = r->gnorm_n = 0;
    if (finish_epoch(r, err, errlen)) return RUN_ERROR;
    if (!r->done) shuffle(r);
    return r->done ? RUN_DONE : RUN_EPOCH;
}

/* Reads a string-valued number field of the position JSON. */
static int pos_field(const cJSON *o, const char *key, double *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsString(v)) return -1;
    char *end;
    *out = strtod(v->valuestring, &end);
    return *end ? -1 : 0;
}

/* Keeps only the records of epochs <= last in metrics.jsonl and the CSV:
 * a crash between appending a record and saving the state leaves one more. */
static int trim_records(ach_run *r, char *err, size_t errlen)
{
    const char *files[] = {"metrics.jsonl", "training_log.csv"};
    for (int f = 0; f < 2; f++) {
        char path[1200];
        path_in(r, path, sizeof path, files[f]);
        size_t len;
        char *text = read_file(path, 1 << 30, &len, err, errlen);
        if (!text) return -1;
        /* records are one per line, epochs 0..; the CSV has a header line */
        long keep = r->epoch + 1 + f, line = 0;
        size_t cut = 0;
        for (size_t i = 0; i < len && line < keep; i++)
            if (text[i] == '\n') line++, cut = i + 1;
        if (line < keep) {
            snprintf(err, errlen, "%s: %ld records, but state.safetensors is at epoch %d", path, line - f, r->epoch);
            free(text);
            return -1;
        }
        int rc = cut == len ? 0 : write_file_atomic(path, text, cut, err, errlen);
        free(text);
        if (rc) return -1;
    }
    return 0;
}

int ach_run_resume(ach_run *r, const char *dir, const ach_kernels *k, char *err, size_t errlen)
{
    char path[1200], preset[1200];
    st_file f;
    memset(r, 0, sizeof *r);
    snprintf(r->dir, sizeof r->dir, "%s", dir);
    runcfg_defaults(&r->cfg);
    path_in(r, path, sizeof path, "config.json");
    if (runcfg_load_file(&r->cfg, path, err, errlen) || runcfg_validate(&r->cfg, err, errlen)) return -1;
    sync_schedule(&r->cfg);
    path_in(r, preset, sizeof preset, "preset.json");
    if (task_load(&r->task, preset, err, errlen)) return -1;
    path_in(r, path, sizeof path, "state.safetensors");
    if (st_load(path, &f, err, errlen)) {
        task_free(&r->task);
        return -1;
    }
    int rc = -1;
    cJSON *pos = NULL, *live = NULL;
    /* the live settings in force when the state was saved */
    const char *ltext = st_meta(&f, "run_live");
    live = ltext ? cJSON_Parse(ltext) : NULL;
    if (!cJSON_IsObject(live)) {
        snprintf(err, errlen, "%s: run_live metadata missing or not a JSON object", path);
        goto out;
    }
    for (const cJSON *it = live->child; it; it = it->next)
        if (!runcfg_key_live(runcfg_key_find(it->string)) || !cJSON_IsString(it) ||
            runcfg_set(&r->cfg, it->string, it->valuestring, path, err, errlen)) {
            if (!runcfg_key_live(runcfg_key_find(it->string)) || !cJSON_IsString(it))
                snprintf(err, errlen, "%s: run_live: '%s' is not a live setting", path, it->string);
            goto out;
        }
    if (ach_ckpt_load_st(&r->model, k, &f, path, err, errlen)) goto out;
    ach_config want;
    model_config(&r->cfg, &r->task, &want);
    /* a learned table, once added, stays even if pos_enc moved on */
    want.pos_max_len = r->model.cfg.pos_max_len;
    char *a = cfg_to_json(&want), *b = cfg_to_json(&r->model.cfg);
    int same = a && b && !strcmp(a, b);
    free(a);
    free(b);
    if (!same) {
        snprintf(err, errlen, "%s: the model in it does not match %s/config.json (a foreign or edited run?)", path, dir);
        goto out;
    }
    if (ach_optim_create(&r->opt, &r->model, &r->cfg.optim)) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    /* optimizer moments */
    real *stage = malloc(r->model.nweights * sizeof *stage);
    for (int which = 0; stage && which < 2; which++) {
        for (int i = 0; i < r->model.nparams; i++) {
            const ach_param *p = &r->model.params[i];
            char name[ACH_NAME_MAX + 24];
            snprintf(name, sizeof name, ACH_OPTIM_PREFIX "%s.%s", which ? "exp_avg_sq" : "exp_avg", p->name);
            const st_tensor *t = st_find(&f, name);
            if (!t || t->dtype != ST_F32 || st_numel(t) != p->numel) {
                snprintf(err, errlen, "%s: tensor '%s' %s", path, name, t ? "has the wrong dtype or size" : "missing");
                free(stage);
                goto out;
            }
            ach_tensor_to_real(&f, t, stage + p->offset);
        }
        k->to_device(which ? r->opt.v : r->opt.m, stage, r->model.nweights * sizeof(real));
    }
    free(stage);
    const st_tensor *st = st_find(&f, ACH_OPTIM_PREFIX "steps");
    if (!st || st->dtype != ST_I64 || st_numel(st) != (size_t)r->model.nparams) {
        snprintf(err, errlen, "%s: tensor '" ACH_OPTIM_PREFIX "steps' %s", path, st ? "has the wrong dtype or size" : "missing");
        goto out;
    }
    for (int i = 0; i < r->model.nparams; i++) {
        int64_t v;
        memcpy(&v, (const char *)st_data(&f, st) + 8 * i, 8);
        r->opt.steps[i] = (long)v;
    }
    /* position */
    const char *ptext = st_meta(&f, "run_position");
    pos = ptext ? cJSON_Parse(ptext) : NULL;
    double v[12];
    const char *fields[] = {"epoch", "batch", "step", "loss_sum", "loss_n", "gnorm_sum", "gnorm_n", "best",
                            "best_epoch", "bad_epochs", "elapsed", "done"};
    for (int i = 0; i < 12; i++)
        if (!pos || pos_field(pos, fields[i], &v[i])) {
            snprintf(err, errlen, "%s: run_position metadata %s '%s'", path, pos ? "lacks a valid" : "missing; no", fields[i]);
            goto out;
        }
    r->epoch = (int)v[0], r->batch = (int)v[1], r->opt.step = (long)v[2];
    r->loss_sum = v[3], r->loss_n = (long)v[4], r->gnorm_sum = v[5], r->gnorm_n = (long)v[6];
    r->best = v[7], r->best_epoch = (int)v[8], r->bad_epochs = (int)v[9], r->elapsed = v[10], r->done = (int)v[11];
    const cJSON *why = cJSON_GetObjectItemCaseSensitive(pos, "stop_reason");
    if (cJSON_IsString(why)) snprintf(r->stop_reason, sizeof r->stop_reason, "%s", why->valuestring);
    if (setup(r, err, errlen) || r->batch >= r->nbatches || trim_records(r, err, errlen) ||
        apply_interventions(r, 0, err, errlen)) {
        if (r->batch >= r->nbatches) snprintf(err, errlen, "%s: batch %d beyond the epoch's %d", path, r->batch, r->nbatches);
        goto out;
    }
    r->last.epoch = r->epoch;
    rc = 0;
out:
    cJSON_Delete(pos);
    cJSON_Delete(live);
    st_free(&f);
    if (rc) ach_run_close(r);
    return rc;
}

int ach_run_set(ach_run *r, const char *key, const char *value, char *err, size_t errlen)
{
    if (runcfg_live_check(key, err, errlen)) return -1;
    ach_runcfg old = r->cfg;
    ach_block_spec probe;
    if (runcfg_set(&r->cfg, key, value, "set", err, errlen) ||
        ach_block_parse(&probe, r->cfg.block, r->cfg.block_layers, r->L, r->model.cfg.n_layer, err, errlen) ||
        apply_interventions(r, !old.all_one_conv && r->cfg.all_one_conv, err, errlen)) {
        r->cfg = old;
        return -1;
    }
    /* the timeline: when, what, to what */
    char path[1200], line[512], ignore[256];
    char v[300];
    runcfg_get(&r->cfg, runcfg_key_find(key), v, sizeof v);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "epoch", r->epoch);
    cJSON_AddNumberToObject(o, "batch", r->batch);
    cJSON_AddNumberToObject(o, "step", (double)r->opt.step);
    cJSON_AddStringToObject(o, "key", key);
    cJSON_AddStringToObject(o, "value", v);
    char *js = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    snprintf(line, sizeof line, "%s", js ? js : "");
    free(js);
    path_in(r, path, sizeof path, "interventions.jsonl");
    if (append_line(path, line, ignore, sizeof ignore)) {
        snprintf(err, errlen, "%s (the setting took effect)", ignore);
        return -1;
    }
    return 0;
}

void ach_run_close(ach_run *r)
{
    if (r->model.k) ach_optim_free(&r->opt, &r->model);
    ach_model_free(&r->model);
    task_free(&r->task);
    free(r->perm);
    free(r->tokens);
    free(r->labels);
    free(r->pred);
    free(r->pred_blocked);
    free(r->info);
    free(r->mask);
    memset(r, 0, sizeof *r);
}
