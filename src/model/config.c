/* Model configuration: defaults, validation, MambaConfig-style JSON. */
#include "config.h"
#include "family.h"
#include "kernels.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cfg_d_inner(const ach_config *c) { return c->expand * c->d_model; }
int cfg_nheads(const ach_config *c)
{
    return c->arch == ARCH_MAMBA2 ? cfg_d_inner(c) / c->headdim : 0;
}
int cfg_conv_dim(const ach_config *c)
{
    int di = cfg_d_inner(c);
    return c->arch == ARCH_MAMBA2 ? di + 2 * c->ngroups * c->d_state : di;
}
int cfg_in_proj_dim(const ach_config *c)
{
    int di = cfg_d_inner(c);
    if (c->arch == ARCH_MAMBA2) return 2 * di + 2 * c->ngroups * c->d_state + cfg_nheads(c);
    return 2 * di;
}

void cfg_default(ach_config *c, ach_arch arch)
{
    memset(c, 0, sizeof *c);
    c->arch = arch;
    c->n_layer = 2;
    c->d_model = 32;
    c->d_state = 128;
    c->d_conv = 4;
    c->expand = 2;
    c->headdim = 64;
    c->ngroups = 1;
    c->dt_rank = (c->d_model + 15) / 16;
    c->vocab_size = 201;
    c->norm_eps = 1e-5;
    c->init = INIT_GAMMA;
    c->gamma = 0.5;
    c->gamma_kinds = GAMMA_DEFAULT_KINDS;
    c->fan_rule = FAN_IN;
    c->dt_min = 0.001;
    c->dt_max = 0.1;
    c->dt_init_floor = 1e-4;
    c->seed = 0;
}

void cfg_mamba_ssm_default(ach_config *c, ach_arch arch)
{
    cfg_default(c, arch);
    c->n_layer = 64;
    c->d_model = 2560;
    c->vocab_size = 50277;
    c->d_state = arch == ARCH_MAMBA1 ? 16 : 128;
    c->dt_rank = (c->d_model + 15) / 16;
    c->init = INIT_REFERENCE;
}

const char *cfg_arch_name(ach_arch a)
{
    const ach_family *f = ach_family_of(a);
    return f ? f->name : "?";
}

#define FAIL(...) do { snprintf(err, errlen, __VA_ARGS__); return -1; } while (0)

int cfg_validate(const ach_config *c, char *err, size_t errlen)
{
    struct { const char *name; int v, lo, hi; } r[] = {
        {"n_layer", c->n_layer, 1, ACH_MAX_LAYERS}, {"d_model", c->d_model, 1, 8192},
        {"vocab_size", c->vocab_size, 2, 1 << 20},
    };
    for (size_t i = 0; i < sizeof r / sizeof r[0]; i++)
        if (r[i].v < r[i].lo || r[i].v > r[i].hi)
            FAIL("%s: %d is out of range [%d, %d]", r[i].name, r[i].v, r[i].lo, r[i].hi);
    const ach_family *f = ach_family_of(c->arch);
    if (!f) FAIL("arch: %d is not a model family (mamba1, mamba2, or one registered)", (int)c->arch);
    if (c->pos_max_len < 0 || c->pos_max_len > 65536) FAIL("pos_max_len: %d is out of range [0, 65536]", c->pos_max_len);
    if (c->pos_enc == POS_LEARNED && !c->pos_max_len) FAIL("pos_enc: learned needs pos_max_len > 0");
    if (!(c->norm_eps > 0 && c->norm_eps < 1)) FAIL("norm_epsilon: %g is not in (0, 1)", c->norm_eps);
    if (!(c->gamma >= 0 && c->gamma <= 10)) FAIL("gamma: %g is not in [0, 10]", c->gamma);
    return f->validate(c, err, errlen);
}

static const struct { const char *name; unsigned kind; } kind_names[] = {
    {"embedding", KIND_EMBEDDING}, {"in_proj", KIND_IN_PROJ}, {"conv", KIND_CONV},
    {"x_proj", KIND_X_PROJ},       {"dt_proj", KIND_DT_PROJ}, {"out_proj", KIND_OUT_PROJ},
};

int cfg_parse_kinds(const char *s, unsigned *mask)
{
    unsigned m = 0;
    if (!strcmp(s, "all")) { *mask = GAMMA_DEFAULT_KINDS; return 0; }
    if (!strcmp(s, "none")) { *mask = 0; return 0; }
    while (*s) {
        size_t n = strcspn(s, ",");
        size_t i;
        for (i = 0; i < sizeof kind_names / sizeof kind_names[0]; i++)
            if (strlen(kind_names[i].name) == n && !strncmp(s, kind_names[i].name, n)) break;
        if (i == sizeof kind_names / sizeof kind_names[0]) return -1;
        m |= kind_names[i].kind;
        s += n;
        if (*s == ',') s++;
    }
    *mask = m;
    return 0;
}

static void kinds_to_string(unsigned mask, char *buf, size_t n)
{
    buf[0] = 0;
    for (size_t i = 0; i < sizeof kind_names / sizeof kind_names[0]; i++)
        if (mask & kind_names[i].kind) {
            if (buf[0]) strncat(buf, ",", n - strlen(buf) - 1);
            strncat(buf, kind_names[i].name, n - strlen(buf) - 1);
        }
    if (!buf[0]) snprintf(buf, n, "none");
}

char *cfg_to_json(const ach_config *c)
{
    cJSON *o = cJSON_CreateObject(), *ssm = cJSON_CreateObject(), *init = cJSON_CreateObject();
    char kinds[128], seed[32];
    cJSON_AddNumberToObject(o, "d_model", c->d_model);
    cJSON_AddNumberToObject(o, "d_intermediate", 0);
    cJSON_AddNumberToObject(o, "n_layer", c->n_layer);
    cJSON_AddNumberToObject(o, "vocab_size", c->vocab_size);
    cJSON_AddStringToObject(ssm, "layer", c->arch == ARCH_MAMBA1 ? "Mamba1" : "Mamba2");
    cJSON_AddNumberToObject(ssm, "d_state", c->d_state);
    cJSON_AddNumberToObject(ssm, "d_conv", c->d_conv);
    cJSON_AddNumberToObject(ssm, "expand", c->expand);
    if (c->arch == ARCH_MAMBA2) {
        cJSON_AddNumberToObject(ssm, "headdim", c->headdim);
        cJSON_AddNumberToObject(ssm, "ngroups", c->ngroups);
    } else {
        cJSON_AddNumberToObject(ssm, "dt_rank", c->dt_rank);
    }
    cJSON_AddNumberToObject(ssm, "dt_min", c->dt_min);
    cJSON_AddNumberToObject(ssm, "dt_max", c->dt_max);
    cJSON_AddNumberToObject(ssm, "dt_init_floor", c->dt_init_floor);
    cJSON_AddItemToObject(o, "ssm_cfg", ssm);
    cJSON_AddTrueToObject(o, "rms_norm");
    cJSON_AddTrueToObject(o, "residual_in_fp32");
    cJSON_AddTrueToObject(o, "tie_embeddings");
    cJSON_AddNumberToObject(o, "pad_vocab_size_multiple", 1);
    cJSON_AddNumberToObject(o, "norm_epsilon", c->norm_eps);
    if (c->pos_enc != POS_NONE || c->pos_max_len) {
        static const char *pe[] = {"none", "sinusoidal", "learned"};
        cJSON_AddStringToObject(o, "achilles_pos_enc", pe[c->pos_enc]);
        cJSON_AddNumberToObject(o, "achilles_pos_max_len", c->pos_max_len);
    }
    /* Our initialisation settings: provenance, not needed to load. */
    cJSON_AddStringToObject(init, "mode", c->init == INIT_GAMMA ? "gamma" : "reference");
    cJSON_AddNumberToObject(init, "gamma", c->gamma);
    kinds_to_string(c->gamma_kinds, kinds, sizeof kinds);
    cJSON_AddStringToObject(init, "gamma_tensors", kinds);
    static const char *const fans[] = {"in", "out", "shape0"};
    cJSON_AddStringToObject(init, "fan", fans[c->fan_rule]);
    if (c->dt_bias_zero) cJSON_AddStringToObject(init, "dt_bias", "zero");
    snprintf(seed, sizeof seed, "%" PRIu64, c->seed);
    cJSON_AddStringToObject(init, "seed", seed);
    cJSON_AddItemToObject(o, "achilles_init", init);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

/* A field's name as its message gives it: "d_model", "ssm_cfg.d_state" (a
 * nested object's own key is in its `string`). */
static const char *field(const cJSON *o, const char *key, char *buf, size_t n)
{
    snprintf(buf, n, "%s%s%s", o->string ? o->string : "", o->string ? "." : "", key);
    return buf;
}

/* Reads an integer field if present; -1 with a message on a bad value. */
static int get_int(const cJSON *o, const char *key, int *out, const char *where, char *err, size_t errlen)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    char f[64];
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsNumber(v)) FAIL("%s: config field '%s' must be an integer", where, field(o, key, f, sizeof f));
    /* range first: converting a double outside int's range is undefined */
    if (!(v->valuedouble >= INT_MIN && v->valuedouble <= INT_MAX))
        FAIL("%s: config field '%s': %g is out of range", where, field(o, key, f, sizeof f), v->valuedouble);
    if (v->valuedouble != (double)(int)v->valuedouble)
        FAIL("%s: config field '%s' must be an integer", where, field(o, key, f, sizeof f));
    *out = (int)v->valuedouble;
    return 0;
}

static int get_num(const cJSON *o, const char *key, double *out, const char *where, char *err, size_t errlen)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    char f[64];
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsNumber(v)) FAIL("%s: config field '%s' must be a number", where, field(o, key, f, sizeof f));
    *out = v->valuedouble;
    return 0;
}

/* A boolean field, if present, must have the one value this engine runs. */
static int want_bool(const cJSON *o, const char *key, int want, const char *where, char *err, size_t errlen)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    char f[64];
    if (v && !(want ? cJSON_IsTrue(v) : cJSON_IsFalse(v)))
        FAIL("%s: config field '%s' must be %s (the only form this engine runs)", where, field(o, key, f, sizeof f),
             want ? "true" : "false");
    return 0;
}

/* mamba_ssm options that change the model this engine would run: each must
 * be absent or have its default. (residual_in_fp32 and fused_add_norm only
 * change how it is computed.) */
static int check_unsupported(const cJSON *o, const cJSON *ssm, const ach_config *c, const char *where, char *err,
                             size_t errlen)
{
    static const struct { const char *key; int want; } flags[] = {
        {"bias", 0}, {"conv_bias", 1}, {"rmsnorm", 1}, {"norm_before_gate", 0}, {"D_has_hdim", 0},
    };
    if (want_bool(o, "rms_norm", 1, where, err, errlen) || want_bool(o, "tie_embeddings", 1, where, err, errlen))
        return -1;
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++)
        if (want_bool(ssm, flags[i].key, flags[i].want, where, err, errlen)) return -1;
    const cJSON *attn = cJSON_GetObjectItemCaseSensitive(o, "attn_layer_idx");
    if (attn && !cJSON_IsNull(attn) && !(cJSON_IsArray(attn) && !cJSON_GetArraySize(attn)))
        FAIL("%s: config field 'attn_layer_idx' must be empty (this engine has no attention layers)", where);
    if (c->ngroups != 1) FAIL("%s: config field 'ssm_cfg.ngroups' is %d; only 1 is supported", where, c->ngroups);
    const cJSON *ds = cJSON_GetObjectItemCaseSensitive(ssm, "d_ssm");
    if (ds && !cJSON_IsNull(ds)) {
        int d_ssm;
        long long di = (long long)c->expand * c->d_model; /* not yet validated: no int overflow */
        if (get_int(ssm, "d_ssm", &d_ssm, where, err, errlen)) return -1;
        if (d_ssm != di)
            FAIL("%s: config field 'ssm_cfg.d_ssm' is %d; only d_inner = expand * d_model = %lld (the SSM on every "
                 "channel) is supported", where, d_ssm, di);
    }
    if (cJSON_GetObjectItemCaseSensitive(ssm, "dt_limit"))
        FAIL("%s: config field 'ssm_cfg.dt_limit' is not supported (this engine does not clamp dt)", where);
    return 0;
}

static int from_json(ach_config *c, const char *json, int mamba_ssm, const char *where, char *err, size_t errlen)
{
    cJSON *o = cJSON_Parse(json);
    int rc = -1;
    if (!o || !cJSON_IsObject(o)) { snprintf(err, errlen, "%s: config is not a JSON object", where); goto out; }
    const cJSON *ssm = cJSON_GetObjectItemCaseSensitive(o, "ssm_cfg");
    /* mamba_ssm's ssm_cfg defaults to {}; ours always has the layer */
    if (mamba_ssm && cJSON_IsNull(ssm)) ssm = NULL;
    if (ssm ? !cJSON_IsObject(ssm) : !mamba_ssm) {
        snprintf(err, errlen, "%s: config field 'ssm_cfg' missing or not an object", where);
        goto out;
    }
    const cJSON *layer = cJSON_GetObjectItemCaseSensitive(ssm, "layer");
    const char *lname = mamba_ssm && !layer ? "Mamba1" : cJSON_IsString(layer) ? layer->valuestring : NULL;
    if (!lname) { snprintf(err, errlen, "%s: config field 'ssm_cfg.layer' missing (Mamba1 or Mamba2)", where); goto out; }
    ach_arch arch;
    if (!strcmp(lname, "Mamba1")) arch = ARCH_MAMBA1;
    else if (!strcmp(lname, "Mamba2")) arch = ARCH_MAMBA2;
    else { snprintf(err, errlen, "%s: config field 'ssm_cfg.layer' is '%s', not Mamba1 or Mamba2", where, lname); goto out; }
    if (mamba_ssm) cfg_mamba_ssm_default(c, arch);
    c->arch = arch;
    int d_int = 0, pad = mamba_ssm ? 8 : 1;
    if (get_int(o, "d_model", &c->d_model, where, err, errlen) || get_int(o, "n_layer", &c->n_layer, where, err, errlen) ||
        get_int(o, "vocab_size", &c->vocab_size, where, err, errlen) || get_int(o, "d_intermediate", &d_int, where, err, errlen) ||
        get_int(o, "pad_vocab_size_multiple", &pad, where, err, errlen) ||
        get_num(o, "norm_epsilon", &c->norm_eps, where, err, errlen) ||
        get_int(ssm, "d_state", &c->d_state, where, err, errlen) || get_int(ssm, "d_conv", &c->d_conv, where, err, errlen) ||
        get_int(ssm, "expand", &c->expand, where, err, errlen) || get_int(ssm, "headdim", &c->headdim, where, err, errlen) ||
        get_int(ssm, "ngroups", &c->ngroups, where, err, errlen) ||
        get_num(ssm, "dt_min", &c->dt_min, where, err, errlen) || get_num(ssm, "dt_max", &c->dt_max, where, err, errlen) ||
        get_num(ssm, "dt_init_floor", &c->dt_init_floor, where, err, errlen) ||
        check_unsupported(o, ssm, c, where, err, errlen))
        goto out;
    /* dt_rank "auto" (mamba_ssm's default) means ceil(d_model / 16). */
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(ssm, "dt_rank");
    if (!r || (cJSON_IsString(r) && !strcmp(r->valuestring, "auto"))) c->dt_rank = (c->d_model + 15) / 16;
    else if (get_int(ssm, "dt_rank", &c->dt_rank, where, err, errlen)) goto out;
    if (d_int != 0) { snprintf(err, errlen, "%s: config field 'd_intermediate' is %d; only 0 (no MLP) is supported", where, d_int); goto out; }
    /* mamba_ssm rounds the vocabulary up to a multiple of this: the embedding
     * and the logits have the rounded size. */
    if (pad < 1) { snprintf(err, errlen, "%s: config field 'pad_vocab_size_multiple' is %d; it must be at least 1", where, pad); goto out; }
    if (c->vocab_size > 0 && c->vocab_size % pad) {
        long long v = ((long long)c->vocab_size / pad + 1) * pad;
        c->vocab_size = v > INT_MAX ? INT_MAX : (int)v; /* cfg_validate refuses it */
    }
    const cJSON *pe = cJSON_GetObjectItemCaseSensitive(o, "achilles_pos_enc");
    if (pe) {
        if (!cJSON_IsString(pe) || (strcmp(pe->valuestring, "none") && strcmp(pe->valuestring, "sinusoidal") &&
                                    strcmp(pe->valuestring, "learned"))) {
            snprintf(err, errlen, "%s: config field 'achilles_pos_enc' must be none, sinusoidal or learned", where);
            goto out;
        }
        c->pos_enc = !strcmp(pe->valuestring, "none") ? POS_NONE : !strcmp(pe->valuestring, "sinusoidal") ? POS_SINUSOIDAL : POS_LEARNED;
    }
    if (get_int(o, "achilles_pos_max_len", &c->pos_max_len, where, err, errlen)) goto out;
    const cJSON *init = cJSON_GetObjectItemCaseSensitive(o, "achilles_init");
    if (cJSON_IsObject(init)) {
        const cJSON *v;
        if (get_num(init, "gamma", &c->gamma, where, err, errlen)) goto out;
        v = cJSON_GetObjectItemCaseSensitive(init, "mode");
        if (cJSON_IsString(v)) c->init = strcmp(v->valuestring, "reference") ? INIT_GAMMA : INIT_REFERENCE;
        v = cJSON_GetObjectItemCaseSensitive(init, "gamma_tensors");
        if (cJSON_IsString(v) && cfg_parse_kinds(v->valuestring, &c->gamma_kinds)) {
            snprintf(err, errlen, "%s: config field 'achilles_init.gamma_tensors': unknown tensor kind in '%s'", where, v->valuestring);
            goto out;
        }
        v = cJSON_GetObjectItemCaseSensitive(init, "fan");
        if (cJSON_IsString(v))
            c->fan_rule = !strcmp(v->valuestring, "out") ? FAN_OUT : !strcmp(v->valuestring, "shape0") ? FAN_SHAPE0 : FAN_IN;
        v = cJSON_GetObjectItemCaseSensitive(init, "dt_bias");
        c->dt_bias_zero = cJSON_IsString(v) && !strcmp(v->valuestring, "zero");
        v = cJSON_GetObjectItemCaseSensitive(init, "seed");
        if (cJSON_IsString(v)) c->seed = strtoull(v->valuestring, NULL, 10);
    }
    char why[200];
    if (cfg_validate(c, why, sizeof why)) { snprintf(err, errlen, "%s: config: %s", where, why); goto out; }
    rc = 0;
out:
    cJSON_Delete(o);
    return rc;
}

int cfg_from_json(ach_config *c, const char *json, const char *where, char *err, size_t errlen)
{
    return from_json(c, json, 0, where, err, errlen);
}

int cfg_from_mamba_json(ach_config *c, const char *json, const char *where, char *err, size_t errlen)
{
    return from_json(c, json, 1, where, err, errlen);
}
