/* The run configuration as a table of typed keys: parsing, validation and
 * JSON round-trip all walk the same table, so a key exists everywhere or
 * nowhere. */
#include "runcfg.h"

#include "fsutil.h"
#include "strbuf.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { T_INT, T_DBL, T_U64, T_STR, T_ENUM, T_KINDS } key_type;

typedef struct {
    const char *name;
    key_type type;
    size_t off, size;      /* field offset; string capacity for T_STR */
    double lo, hi;         /* numeric range */
    const char *choices;   /* T_ENUM: "a|b|c", value = index */
    const char *help;
    unsigned flags;        /* LIVE, FAMILY(...) */
} key_def;

/* A live key may change on a running run (ach_run_set, the workbench's set).
 * FAMILY(arch) bits name the model families a key applies to; a key with
 * none applies to every family. */
#define LIVE 1u
#define FAMILY(arch) (1u << (4 + (arch)))
#define FAMILY_BITS (~0u << 4)

#define F(field) offsetof(ach_runcfg, field)
static const key_def keys[] = {
    {"preset", T_STR, F(preset), sizeof(((ach_runcfg *)0)->preset), 0, 0, NULL, "task preset: a name in data/ or a path to a JSON file", 0},
    {"seq_len", T_INT, F(seq_len), 0, 0, 4096, NULL, "sequence length; 0 = the preset's", 0},
    {"key_offset", T_INT, F(key_offset), 0, -1, 4096, NULL, "key rule's position offset: key mod M vs (p + offset) mod M; -1 = the preset's", 0},
    {"arch", T_ENUM, F(model.arch), 0, 0, 0, "|mamba1|mamba2", "mixer: mamba1 or mamba2", 0},
    {"n_layer", T_INT, F(model.n_layer), 0, 1, 64, NULL, "residual blocks", 0},
    {"d_model", T_INT, F(model.d_model), 0, 1, 8192, NULL, "model width D", 0},
    {"d_state", T_INT, F(model.d_state), 0, 1, 4096, NULL, "SSM state size N", 0},
    {"d_conv", T_INT, F(model.d_conv), 0, 1, 64, NULL, "conv1d taps K", 0},
    {"expand", T_INT, F(model.expand), 0, 1, 16, NULL, "inner width = expand * d_model", 0},
    {"headdim", T_INT, F(model.headdim), 0, 1, 8192, NULL, "head size P", FAMILY(ARCH_MAMBA2)},
    {"dt_rank", T_INT, F(model.dt_rank), 0, 0, 8192, NULL, "dt rank; 0 = ceil(d_model/16)", FAMILY(ARCH_MAMBA1)},
    {"init", T_ENUM, F(model.init), 0, 0, 0, "gamma|reference", "initialisation: the paper's gamma rule or mamba_ssm's defaults", 0},
    {"gamma", T_DBL, F(model.gamma), 0, 0, 10, NULL, "initialisation rate: weights ~ N(0, (fan^-gamma)^2)", 0},
    {"gamma_tensors", T_KINDS, F(model.gamma_kinds), 0, 0, 0, NULL, "tensors gamma touches: all, none or embedding,in_proj,conv,x_proj,dt_proj,out_proj", 0},
    {"fan", T_ENUM, F(model.fan_rule), 0, 0, 0, "in|out|shape0", "d1 of the gamma rule: torch's fan-in or fan-out, or weight.shape[0] without the receptive field", 0},
    {"gamma_bias", T_ENUM, F(model.dt_bias_zero), 0, 0, 0, "reference|zero", "under gamma: the dt bias as the reference inits it, or zero like every other bias", 0},
    {"seed", T_U64, F(seed), 0, 0, 0, NULL, "random seed of the whole run (init, data, shuffling)", 0},
    {"epochs", T_INT, F(epochs), 0, 0, 1000000, NULL, "training epochs", 0},
    {"batch_size", T_INT, F(batch_size), 0, 1, 1 << 20, NULL, "sequences per step", 0},
    {"lr_min", T_DBL, F(optim.lr_min), 0, 0, 1, NULL, "learning rate at the start and the end", 0},
    {"lr_max", T_DBL, F(optim.lr_max), 0, 0, 1, NULL, "learning rate after warmup", 0},
    {"warmup_epochs", T_DBL, F(optim.warmup_epochs), 0, 0, 1e6, NULL, "linear warmup length in epochs", 0},
    {"lr_schedule", T_ENUM, F(lr_schedule), 0, 0, 0, "epoch|step", "learning rate changes once per epoch or every step", 0},
    {"beta1", T_DBL, F(optim.beta1), 0, 0, 0.999999, NULL, "AdamW beta1", 0},
    {"beta2", T_DBL, F(optim.beta2), 0, 0, 0.999999, NULL, "AdamW beta2", 0},
    {"eps", T_DBL, F(optim.eps), 0, 0, 1, NULL, "AdamW epsilon", 0},
    {"weight_decay", T_DBL, F(optim.weight_decay), 0, 0, 10, NULL, "AdamW decoupled weight decay", 0},
    {"no_decay", T_KINDS, F(optim.no_decay_kinds), 0, 0, 0, NULL, "tensor kinds without weight decay: none (default) or a list as gamma_tensors, plus bias,dt_bias,A_log,D,norm", 0},
    {"clip", T_DBL, F(optim.clip), 0, 0, 1e6, NULL, "gradient clipping at this global norm; 0 = off", 0},
    {"ckpt_every", T_INT, F(ckpt_every), 0, 0, 1000000, NULL, "epochs between checkpoints (0: epoch 0 and the end only)", 0},
    {"patience", T_INT, F(patience), 0, 0, 1000000, NULL, "stop after this many epochs without improvement; 0 = off", 0},
    {"patience_metric", T_ENUM, F(patience_metric), 0, 0, 0, "test_loss|acc_seen|acc43_comp|acc43_sym", "what early stopping watches", 0},
    {"threads", T_INT, F(threads), 0, 0, 1024, NULL, "CPU threads; 0 = all online CPUs (results do not depend on it)", 0},
    {"all_one_conv", T_ENUM, F(all_one_conv), 0, 0, 0, "off|on", "conv1d weights set to 1, bias to 0, as all_one_* say", LIVE},
    {"all_one_mode", T_ENUM, F(all_one_mode), 0, 0, 0, "frozen|trained", "all-one weights frozen, or set to 1 when switched on and then trained", 0},
    {"all_one_channels", T_ENUM, F(all_one_channels), 0, 0, 0, "all|x", "all-one on every conv channel (x, B, C) or the x channels only", 0},
    {"all_one_bias", T_ENUM, F(all_one_bias), 0, 0, 0, "frozen|trained", "the conv bias of all-one channels: 0 and frozen, or set to 0 and trained", 0},
    {"pos_enc", T_ENUM, F(model.pos_enc), 0, 0, 0, "none|sinusoidal|learned", "positional encoding added to the embeddings", LIVE},
    {"block", T_STR, F(block), sizeof(((ach_runcfg *)0)->block), 0, 0, NULL, "source positions blocked in the SSM: none, key, anchor1, anchor2, anchors or indices", LIVE},
    {"block_layers", T_STR, F(block_layers), sizeof(((ach_runcfg *)0)->block_layers), 0, 0, NULL, "layers blocking applies to: all or a list", LIVE},
    {"block_train", T_ENUM, F(block_train), 0, 0, 0, "off|on", "block while training too, not only in evaluation", LIVE},
};
#define NKEYS (int)(sizeof keys / sizeof keys[0])

int runcfg_nkeys(void) { return NKEYS; }
const char *runcfg_key_name(int i) { return keys[i].name; }
const char *runcfg_key_help(int i) { return keys[i].help; }
const char *runcfg_key_choices(int i) { return keys[i].type == T_ENUM ? keys[i].choices : NULL; }
int runcfg_key_live(int i) { return i >= 0 && (keys[i].flags & LIVE); }

int runcfg_key_applies(int i, ach_arch arch)
{
    return !(keys[i].flags & FAMILY_BITS) || (keys[i].flags & FAMILY(arch));
}

int runcfg_key_find(const char *name)
{
    for (int i = 0; i < NKEYS; i++)
        if (!strcmp(keys[i].name, name)) return i;
    return -1;
}

void runcfg_key_describe(int i, char *buf, size_t n)
{
    size_t len = snprintf(buf, n, "%s%s", keys[i].help, keys[i].flags & LIVE ? " (live)" : "");
    if (!(keys[i].flags & FAMILY_BITS)) return;
    const char *sep = " (";
    for (ach_arch a = ARCH_MAMBA1; a <= ARCH_MAMBA2 && len < n; a++)
        if (runcfg_key_applies(i, a)) len += snprintf(buf + len, n - len, "%s%s", sep, cfg_arch_name(a)), sep = ", ";
    if (len < n) snprintf(buf + len, n - len, " only)");
}

int runcfg_live_check(const char *key, char *err, size_t errlen)
{
    if (runcfg_key_live(runcfg_key_find(key))) return 0;
    size_t len = snprintf(err, errlen, "'%s' %s; live settings:", key,
                          runcfg_key_find(key) < 0 ? "is not a setting" : "cannot change on a live run");
    const char *sep = " ";
    for (int i = 0; i < NKEYS && len < errlen; i++)
        if (keys[i].flags & LIVE) len += snprintf(err + len, errlen - len, "%s%s", sep, keys[i].name), sep = ", ";
    return -1;
}

void runcfg_defaults(ach_runcfg *c)
{
    memset(c, 0, sizeof *c);
    cfg_default(&c->model, ARCH_MAMBA2);
    c->model.dt_rank = 0; /* auto */
    ach_optim_defaults(&c->optim);
    snprintf(c->preset, sizeof c->preset, "composite");
    c->epochs = 200;
    c->batch_size = 2048;
    c->lr_schedule = SCHED_EPOCH;
    c->ckpt_every = 10;
    snprintf(c->patience_metric, sizeof c->patience_metric, "test_loss");
    snprintf(c->block, sizeof c->block, "none");
    snprintf(c->block_layers, sizeof c->block_layers, "all");
    c->key_offset = -1;
}

/* Index of `v` in "a|b|c", or -1. */
static int choice_index(const char *choices, const char *v)
{
    int idx = 0;
    for (const char *s = choices;; idx++) {
        size_t n = strcspn(s, "|");
        if (n == strlen(v) && !strncmp(s, v, n)) return idx;
        if (!s[n]) return -1;
        s += n + 1;
    }
}

static void choice_name(const char *choices, int idx, char *buf, size_t n)
{
    const char *s = choices;
    for (int i = 0; i < idx && strchr(s, '|'); i++) s = strchr(s, '|') + 1;
    size_t len = strcspn(s, "|");
    snprintf(buf, n, "%.*s", (int)len, s);
}

static const struct { const char *name; unsigned kind; } extra_kinds[] = {
    {"bias", KIND_BIAS}, {"dt_bias", KIND_DT_BIAS}, {"A_log", KIND_A_LOG}, {"D", KIND_D}, {"norm", KIND_NORM},
};

/* The gamma kinds plus the non-matrix kinds (for no_decay). */
static int parse_kinds(const char *v, unsigned *out)
{
    char buf[256], *save = NULL;
    unsigned mask = 0, part;
    if (!cfg_parse_kinds(v, out)) return 0;
    snprintf(buf, sizeof buf, "%s", v);
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        size_t i;
        for (i = 0; i < sizeof extra_kinds / sizeof extra_kinds[0]; i++)
            if (!strcmp(tok, extra_kinds[i].name)) break;
        if (i < sizeof extra_kinds / sizeof extra_kinds[0]) mask |= extra_kinds[i].kind;
        else if (!cfg_parse_kinds(tok, &part)) mask |= part;
        else return -1;
    }
    *out = mask;
    return 0;
}

static void kinds_name(unsigned mask, char *buf, size_t n)
{
    static const struct { const char *name; unsigned kind; } all[] = {
        {"embedding", KIND_EMBEDDING}, {"in_proj", KIND_IN_PROJ}, {"conv", KIND_CONV}, {"x_proj", KIND_X_PROJ},
        {"dt_proj", KIND_DT_PROJ}, {"out_proj", KIND_OUT_PROJ}, {"bias", KIND_BIAS}, {"dt_bias", KIND_DT_BIAS},
        {"A_log", KIND_A_LOG}, {"D", KIND_D}, {"norm", KIND_NORM},
    };
    buf[0] = 0;
    if (!mask) snprintf(buf, n, "none");
    else if (mask == GAMMA_DEFAULT_KINDS) snprintf(buf, n, "all");
    else
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
            if (mask & all[i].kind) {
                size_t len = strlen(buf);
                snprintf(buf + len, n - len, "%s%s", len ? "," : "", all[i].name);
            }
}

int runcfg_set(ach_runcfg *c, const char *key, const char *v, const char *where, char *err, size_t errlen)
{
    int i = runcfg_key_find(key);
    if (i < 0) {
        snprintf(err, errlen, "%s: unknown key '%s' (see 'achilles train --help' for the keys)", where, key);
        return -1;
    }
    const key_def *k = &keys[i];
    char *p = (char *)c + k->off, *end;
    errno = 0;
    switch (k->type) {
    case T_INT: {
        long x = strtol(v, &end, 10);
        if (errno || *end || end == v) goto bad_type;
        if (x < k->lo || x > k->hi) goto bad_range;
        *(int *)p = (int)x;
        break;
    }
    case T_DBL: {
        double x = strtod(v, &end);
        if (errno || *end || end == v || !isfinite(x)) goto bad_type;
        if (x < k->lo || x > k->hi) goto bad_range;
        *(double *)p = x;
        break;
    }
    case T_U64: {
        unsigned long long x = strtoull(v, &end, 10);
        if (errno || *end || end == v || v[0] == '-') goto bad_type;
        *(uint64_t *)p = x;
        break;
    }
    case T_STR:
        if (!*v || strlen(v) >= k->size) {
            snprintf(err, errlen, "%s: key '%s': value must be 1 to %zu characters", where, key, k->size - 1);
            return -1;
        }
        snprintf(p, k->size, "%s", v);
        break;
    case T_ENUM: {
        int idx = choice_index(k->choices, v);
        if (idx < 0 || !*v) {
            snprintf(err, errlen, "%s: key '%s': '%s' is not one of %s", where, key, v,
                     k->choices[0] == '|' ? k->choices + 1 : k->choices);
            return -1;
        }
        if (!strcmp(key, "patience_metric")) snprintf(p, sizeof c->patience_metric, "%s", v);
        else *(int *)p = idx; /* enums are int-sized */
        break;
    }
    case T_KINDS:
        if (parse_kinds(v, (unsigned *)p)) {
            snprintf(err, errlen, "%s: key '%s': unknown tensor kind in '%s'", where, key, v);
            return -1;
        }
        break;
    }
    return 0;
bad_type:
    snprintf(err, errlen, "%s: key '%s': '%s' is not %s", where, key, v,
             k->type == T_INT ? "an integer" : k->type == T_U64 ? "a non-negative integer" : "a number");
    return -1;
bad_range:
    snprintf(err, errlen, "%s: key '%s': %s is out of range [%g, %g]", where, key, v, k->lo, k->hi);
    return -1;
}

int runcfg_assign(ach_runcfg *c, const char *kv, char *err, size_t errlen)
{
    const char *eq = strchr(kv, '=');
    char key[64];
    if (!eq || eq == kv || (size_t)(eq - kv) >= sizeof key) {
        snprintf(err, errlen, "'%s': expected key=value", kv);
        return -1;
    }
    snprintf(key, sizeof key, "%.*s", (int)(eq - kv), kv);
    return runcfg_set(c, key, eq + 1, "argument", err, errlen);
}

int runcfg_validate(const ach_runcfg *c, char *err, size_t errlen)
{
    ach_config m = c->model;
    char why[256];
    if (!m.dt_rank) m.dt_rank = (m.d_model + 15) / 16;
    if (m.pos_enc == POS_LEARNED && !m.pos_max_len) m.pos_max_len = 1; /* the run sizes it from the task */
    if (cfg_validate(&m, why, sizeof why)) {
        snprintf(err, errlen, "config: %s", why);
        return -1;
    }
    if (c->optim.lr_min > c->optim.lr_max) {
        snprintf(err, errlen, "config: lr_min %g is above lr_max %g", c->optim.lr_min, c->optim.lr_max);
        return -1;
    }
    return 0;
}

void runcfg_get(const ach_runcfg *c, int i, char *buf, size_t n)
{
    const key_def *k = &keys[i];
    const char *p = (const char *)c + k->off;
    switch (k->type) {
    case T_INT: snprintf(buf, n, "%d", *(const int *)p); break;
    case T_DBL: snprintf(buf, n, "%.17g", *(const double *)p); break;
    case T_U64: snprintf(buf, n, "%" PRIu64, *(const uint64_t *)p); break;
    case T_STR: snprintf(buf, n, "%s", p); break;
    case T_ENUM:
        if (!strcmp(k->name, "patience_metric")) snprintf(buf, n, "%s", p);
        else choice_name(k->choices, *(const int *)p, buf, n);
        break;
    case T_KINDS: kinds_name(*(const unsigned *)p, buf, n); break;
    }
    if (k->type == T_DBL) fmt_double_exact(buf, n, *(const double *)p);
}

char *runcfg_to_json(const ach_runcfg *c)
{
    cJSON *o = cJSON_CreateObject();
    char buf[300];
    for (int i = 0; i < NKEYS; i++) {
        runcfg_get(c, i, buf, sizeof buf);
        if (keys[i].type == T_INT) cJSON_AddNumberToObject(o, keys[i].name, *(const int *)((const char *)c + keys[i].off));
        else if (keys[i].type == T_DBL) cJSON_AddItemToObject(o, keys[i].name, cJSON_CreateRaw(buf));
        else cJSON_AddStringToObject(o, keys[i].name, buf); /* seeds as strings: exact */
    }
    char *s = cJSON_Print(o);
    cJSON_Delete(o);
    return s;
}

int runcfg_from_json(ach_runcfg *c, const char *json, const char *where, char *err, size_t errlen)
{
    cJSON *o = cJSON_Parse(json);
    if (!cJSON_IsObject(o)) {
        snprintf(err, errlen, "%s: not a JSON object", where);
        cJSON_Delete(o);
        return -1;
    }
    for (const cJSON *it = o->child; it; it = it->next) {
        char text[300];
        if (cJSON_IsString(it)) snprintf(text, sizeof text, "%s", it->valuestring);
        else if (cJSON_IsNumber(it)) snprintf(text, sizeof text, "%.17g", it->valuedouble);
        else {
            snprintf(err, errlen, "%s: key '%s': expected a number or a string", where, it->string);
            cJSON_Delete(o);
            return -1;
        }
        if (runcfg_set(c, it->string, text, where, err, errlen)) {
            cJSON_Delete(o);
            return -1;
        }
    }
    cJSON_Delete(o);
    return 0;
}

int runcfg_load_file(ach_runcfg *c, const char *path, char *err, size_t errlen)
{
    char *buf = read_file(path, 1 << 20, NULL, err, errlen);
    if (!buf) return -1;
    int rc = runcfg_from_json(c, buf, path, err, errlen);
    free(buf);
    return rc;
}
