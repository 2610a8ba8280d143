/* Checkpoint save/load: the bridge between the model's parameter table and
 * safetensors files. */
#include "checkpoint.h"
#include "fsutil.h"

#include <ctype.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void ach_tensor_to_real(const st_file *f, const st_tensor *t, real *out)
{
    const unsigned char *src = st_data(f, t);
    for (size_t j = 0; j < st_numel(t); j++) {
        float v;
        memcpy(&v, src + 4 * j, 4);
        out[j] = v;
    }
}

void ach_param_to_f32(const ach_model *m, const ach_param *p, float *out)
{
    real *host = malloc(p->numel * sizeof *host);
    if (!host) return;
    m->k->to_host(host, m->w + p->offset, p->numel * sizeof(real));
    for (size_t i = 0; i < p->numel; i++) out[i] = (float)host[i];
    free(host);
}

int ach_ckpt_save(const ach_model *m, const char *path, const st_entry *extra, int nextra,
                  const char *const *meta_keys, const char *const *meta_vals, int nmeta, char *err, size_t errlen)
{
    int n = m->nparams + 1 + nextra, nm = 2 + nmeta, rc = -1;
    const char **keys = calloc(nm, sizeof *keys), **vals = calloc(nm, sizeof *vals);
    st_entry *e = calloc(n, sizeof *e);
    float *buf = malloc(m->nweights * sizeof *buf);
    char *cfg = cfg_to_json(&m->cfg);
    if (!e || !buf || !cfg || !keys || !vals) {
        snprintf(err, errlen, "%s: out of memory", path);
        goto out;
    }
    for (int i = 0; i < m->nparams; i++) {
        const ach_param *p = &m->params[i];
        ach_param_to_f32(m, p, buf + p->offset);
        e[i].name = p->name;
        e[i].dtype = ST_F32;
        e[i].ndim = p->ndim;
        for (int d = 0; d < p->ndim; d++) e[i].shape[d] = p->shape[d];
        e[i].data = buf + p->offset;
    }
    e[m->nparams] = e[0]; /* the tied lm_head, as mamba_ssm's state_dict has it */
    e[m->nparams].name = "lm_head.weight";
    for (int i = 0; i < nextra; i++) e[m->nparams + 1 + i] = extra[i];
    keys[0] = "format", vals[0] = "pt";
    keys[1] = "config", vals[1] = cfg;
    for (int i = 0; i < nmeta; i++) keys[2 + i] = meta_keys[i], vals[2 + i] = meta_vals[i];
    rc = st_save(path, e, n, keys, vals, nm, err, errlen);
out:
    free(keys);
    free(vals);
    free(e);
    free(buf);
    free(cfg);
    return rc;
}

static void shape_str(char *s, size_t n, int ndim, const int64_t *shape)
{
    size_t k = snprintf(s, n, "[");
    for (int d = 0; d < ndim && k < n; d++) k += snprintf(s + k, n - k, d ? ", %lld" : "%lld", (long long)shape[d]);
    if (k < n) snprintf(s + k, n - k, "]");
}

/* Checks one file tensor against the expected parameter. */
static int check_tensor(const char *path, const st_tensor *t, const ach_param *p, char *err, size_t errlen)
{
    int64_t want[3] = {p->shape[0], p->shape[1], p->shape[2]};
    char got_s[96], want_s[96];
    if (t->dtype != ST_F32) {
        snprintf(err, errlen, "%s: tensor '%s': dtype %s, expected F32", path, t->name, t->dtype_name);
        return -1;
    }
    int same = t->ndim == p->ndim;
    for (int d = 0; same && d < p->ndim; d++) same = t->shape[d] == want[d];
    if (!same) {
        shape_str(got_s, sizeof got_s, t->ndim, t->shape);
        shape_str(want_s, sizeof want_s, p->ndim, want);
        snprintf(err, errlen, "%s: tensor '%s': shape %s, expected %s from the config", path, t->name, got_s, want_s);
        return -1;
    }
    return 0;
}

int ach_ckpt_load(ach_model *m, const ach_kernels *k, const char *path, char *err, size_t errlen)
{
    st_file f;
    if (st_load(path, &f, err, errlen)) return -1;
    int rc = ach_ckpt_load_st(m, k, &f, path, err, errlen);
    st_free(&f);
    return rc;
}

/* Bytes of F32 data any file with this config holds at least: the
 * embedding and every layer's in_proj and out_proj. */
static uint64_t min_data_bytes(const ach_config *c)
{
    uint64_t D = (uint64_t)c->d_model, proj = (uint64_t)cfg_in_proj_dim(c) + (uint64_t)cfg_d_inner(c);
    return 4 * D * ((uint64_t)c->vocab_size + (uint64_t)c->n_layer * proj);
}

#define NO_CONFIG "%s: no config in the metadata and no config.json beside it, and the shapes do not determine one: "

/* Size of tensor NAME along axis a; -1 with a message if the tensor is
 * absent or not of rank ndim. Clamped to INT_MAX: cfg_validate refuses it. */
static int dim_of(const st_file *f, const char *name, int ndim, int a, const char *path, char *err, size_t errlen)
{
    const st_tensor *t = st_find(f, name);
    if (!t) snprintf(err, errlen, NO_CONFIG "missing tensor '%s'", path, name);
    else if (t->ndim != ndim)
        snprintf(err, errlen, NO_CONFIG "tensor '%s' has rank %d, expected %d", path, name, t->ndim, ndim);
    else return t->shape[a] > INT_MAX ? INT_MAX : (int)t->shape[a];
    return -1;
}

static const char *layer0(char name[ACH_NAME_MAX], const char *suffix)
{
    snprintf(name, ACH_NAME_MAX, "backbone.layers.0.mixer.%s", suffix);
    return name;
}

/* The config from mamba_ssm's tensor names and shapes: the embedding gives
 * the vocabulary and d_model, the layer indices n_layer, layer 0 the rest
 * (every layer is checked against it when the tensors load). Mamba-1 has
 * A_log [d_inner, d_state], Mamba-2 A_log [nheads]. Only Mamba-2's ngroups
 * is not determined (ngroups * d_state is): 1 is assumed, the only value
 * this engine runs. */
static int infer_config(ach_config *c, const st_file *f, const char *path, char *err, size_t errlen)
{
    const char *pre = "backbone.layers.";
    char name[ACH_NAME_MAX];
    long n_layer = 0;
    for (int i = 0; i < f->n; i++) {
        const char *s = f->tensors[i].name;
        char *end;
        if (strncmp(s, pre, strlen(pre)) || !isdigit((unsigned char)s[strlen(pre)])) continue;
        long l = strtol(s + strlen(pre), &end, 10);
        if (*end == '.' && l >= n_layer) n_layer = l < INT_MAX ? l + 1 : INT_MAX;
    }
    if (!n_layer) {
        snprintf(err, errlen, NO_CONFIG "no layer tensors (backbone.layers.0.*)", path);
        return -1;
    }
    const st_tensor *a_log = st_find(f, layer0(name, "A_log"));
    if (!a_log || (a_log->ndim != 1 && a_log->ndim != 2)) {
        snprintf(err, errlen, NO_CONFIG "%s tensor '%s' (Mamba-1: [d_inner, d_state], Mamba-2: [nheads])", path,
                 a_log ? "a rank-1 or rank-2" : "missing", name);
        return -1;
    }
    ach_arch arch = a_log->ndim == 2 ? ARCH_MAMBA1 : ARCH_MAMBA2;
    int V = dim_of(f, "backbone.embedding.weight", 2, 0, path, err, errlen);
    int D = V < 0 ? -1 : dim_of(f, "backbone.embedding.weight", 2, 1, path, err, errlen);
    int K = D < 0 ? -1 : dim_of(f, layer0(name, "conv1d.weight"), 3, 2, path, err, errlen);
    if (K < 0) return -1;
    cfg_mamba_ssm_default(c, arch);
    int Di;
    if (arch == ARCH_MAMBA1) {
        Di = dim_of(f, layer0(name, "A_log"), 2, 0, path, err, errlen);
        c->d_state = dim_of(f, layer0(name, "A_log"), 2, 1, path, err, errlen);
        c->dt_rank = dim_of(f, layer0(name, "dt_proj.weight"), 2, 1, path, err, errlen);
        if (c->dt_rank < 0) return -1;
    } else {
        int H = dim_of(f, layer0(name, "A_log"), 1, 0, path, err, errlen);
        Di = dim_of(f, layer0(name, "norm.weight"), 1, 0, path, err, errlen);
        int Cd = Di < 0 ? -1 : dim_of(f, layer0(name, "conv1d.weight"), 3, 0, path, err, errlen);
        if (Cd < 0) return -1;
        if (Cd <= Di || (Cd - Di) % 2) {
            snprintf(err, errlen, NO_CONFIG "layer 0's conv1d has %d channels, not d_inner %d (mixer.norm.weight) + "
                     "2 * d_state", path, Cd, Di);
            return -1;
        }
        if (!H || Di % H) {
            snprintf(err, errlen, NO_CONFIG "layer 0's d_inner %d (mixer.norm.weight) is not a multiple of its %d "
                     "heads (mixer.A_log)", path, Di, H);
            return -1;
        }
        c->d_state = (Cd - Di) / 2, c->headdim = Di / H, c->ngroups = 1;
    }
    if (!D || Di % D) {
        snprintf(err, errlen, NO_CONFIG "layer 0's d_inner %d is not a multiple of d_model %d", path, Di, D);
        return -1;
    }
    c->n_layer = (int)n_layer, c->vocab_size = V, c->d_model = D, c->d_conv = K, c->expand = Di / D;
    char why[200];
    if (cfg_validate(c, why, sizeof why)) {
        snprintf(err, errlen, "%s: the config inferred from the shapes: %s", path, why);
        return -1;
    }
    return 0;
}

/* The file's config: our metadata's, else mamba_ssm's config.json beside
 * the file, else one inferred from the shapes (with a note on stderr for
 * the last two, so that the source is never silent). */
static int file_config(ach_config *c, const st_file *f, const char *path, char *err, size_t errlen)
{
    const char *json = st_meta(f, "config");
    if (json) {
        cfg_default(c, ARCH_MAMBA2);
        return cfg_from_json(c, json, path, err, errlen);
    }
    char cj[4200];
    const char *slash = strrchr(path, '/');
    if (snprintf(cj, sizeof cj, "%.*sconfig.json", slash ? (int)(slash - path + 1) : 0, path) >= (int)sizeof cj) {
        snprintf(err, errlen, "%s: path too long", path);
        return -1;
    }
    if (!access(cj, F_OK)) {
        size_t len;
        char *text = read_file(cj, 1 << 20, &len, err, errlen);
        int rc = text ? cfg_from_mamba_json(c, text, cj, err, errlen) : -1;
        free(text);
        if (!rc) fprintf(stderr, "achilles: note: %s: no config in the metadata; read %s\n", path, cj);
        return rc;
    }
    if (infer_config(c, f, path, err, errlen)) return -1;
    char extra[64] = "";
    if (c->arch == ARCH_MAMBA1) snprintf(extra, sizeof extra, ", dt_rank %d", c->dt_rank);
    else snprintf(extra, sizeof extra, ", headdim %d (assumed ngroups 1)", c->headdim);
    fprintf(stderr, "achilles: note: %s: no config in the metadata and no config.json; inferred from the shapes: %s, "
            "n_layer %d, d_model %d, vocab_size %d, d_state %d, d_conv %d, expand %d%s\n", path,
            cfg_arch_name(c->arch), c->n_layer, c->d_model, c->vocab_size, c->d_state, c->d_conv, c->expand, extra);
    return 0;
}

int ach_ckpt_load_st(ach_model *m, const ach_kernels *k, const st_file *fp, const char *path, char *err,
                     size_t errlen)
{
    const st_file f = *fp;
    ach_config cfg;
    if (file_config(&cfg, &f, path, err, errlen)) return -1;
    /* A small file whose config claims a huge model is refused here, before
     * the model's arenas are allocated for it. */
    if (min_data_bytes(&cfg) > f.data_len) {
        snprintf(err, errlen, "%s: its config describes a model of at least %llu bytes of tensors, but the file "
                 "holds %zu", path, (unsigned long long)min_data_bytes(&cfg), f.data_len);
        return -1;
    }
    if (ach_model_create(m, &cfg, k, err, errlen)) return -1;
    /* every file tensor must be a model tensor (or the tied lm_head) */
    const st_tensor *head = NULL;
    for (int i = 0; i < f.n; i++) {
        const st_tensor *t = &f.tensors[i];
        if (!strcmp(t->name, "lm_head.weight")) head = t;
        else if (!strncmp(t->name, ACH_OPTIM_PREFIX, strlen(ACH_OPTIM_PREFIX))) continue;
        else if (!ach_model_param(m, t->name)) {
            snprintf(err, errlen, "%s: unknown tensor '%s' (not in a %s model with this config)", path, t->name,
                     cfg_arch_name(cfg.arch));
            goto fail;
        }
    }
    real *stage = malloc(m->nweights * sizeof *stage);
    if (!stage) {
        snprintf(err, errlen, "%s: out of memory", path);
        goto fail;
    }
    for (int i = 0; i < m->nparams; i++) {
        const ach_param *p = &m->params[i];
        const st_tensor *t = st_find(&f, p->name);
        if (!t) {
            snprintf(err, errlen, "%s: missing tensor '%s'", path, p->name);
            free(stage);
            goto fail;
        }
        if (check_tensor(path, t, p, err, errlen)) {
            free(stage);
            goto fail;
        }
        ach_tensor_to_real(&f, t, stage + p->offset);
    }
    if (head) { /* tied: must be the embedding, value for value */
        const ach_param *emb = &m->params[0];
        if (check_tensor(path, head, emb, err, errlen)) {
            free(stage);
            goto fail;
        }
        const unsigned char *src = st_data(&f, head);
        for (size_t j = 0; j < emb->numel; j++) {
            float v;
            memcpy(&v, src + 4 * j, 4);
            float e = (float)stage[emb->offset + j];
            if (memcmp(&v, &e, 4)) { /* bitwise: NaN ties to the same NaN */
                snprintf(err, errlen, "%s: tensor 'lm_head.weight' differs from 'backbone.embedding.weight' at element %zu; "
                         "this engine ties them", path, j);
                free(stage);
                goto fail;
            }
        }
    }
    k->to_device(m->w, stage, m->nweights * sizeof(real));
    free(stage);
    return 0;
fail:
    ach_model_free(m);
    return -1;
}
