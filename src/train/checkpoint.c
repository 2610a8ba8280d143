/* Checkpoint save/load: the bridge between the model's parameter table and
 * safetensors files. */
#include "checkpoint.h"
#include "family.h"
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

/* The config of the first family that recognises the tensors' names and
 * shapes (ach_family.from_shapes); its description goes to *note. */
static int infer_config(ach_config *c, const st_file *f, const char *path, char *note, size_t nnote, char *err,
                        size_t errlen)
{
    for (int a = 1; ach_family_of((ach_arch)a); a++) {
        const ach_family *fam = ach_family_of((ach_arch)a);
        int rc = fam->from_shapes ? fam->from_shapes(c, f, path, note, nnote, err, errlen) : 0;
        if (rc < 0) return -1;
        if (!rc) continue;
        char why[200];
        if (cfg_validate(c, why, sizeof why)) {
            snprintf(err, errlen, "%s: the config inferred from the shapes: %s", path, why);
            return -1;
        }
        return 0;
    }
    snprintf(err, errlen, "%s: no config in the metadata and no config.json beside it, and no model family "
             "recognises its tensors (Mamba's: backbone.layers.0.*)", path);
    return -1;
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
    char note[300];
    if (infer_config(c, f, path, note, sizeof note, err, errlen)) return -1;
    fprintf(stderr, "achilles: note: %s: no config in the metadata and no config.json; inferred from the shapes: %s\n",
            path, note);
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
