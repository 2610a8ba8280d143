/* Analyses of a trained model: conv cosine similarity, the SSM matrix
 * (hidden attention), blocking specs. They read weights and activations
 * through the backend's copy functions, so they work on any backend. */
#include "analysis.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "family.h"

int ach_conv_cosine(const ach_model *m, int layer, double *out, char *err, size_t errlen)
{
    const ach_config *c = &m->cfg;
    if (layer < 0 || layer >= c->n_layer) {
        snprintf(err, errlen, "layer %d does not exist (the model has layers 0..%d)", layer, c->n_layer - 1);
        return -1;
    }
    const ach_param *p = ach_model_param_of(m, layer, KIND_CONV);
    if (!p || p->ndim != 3) {
        snprintf(err, errlen, "layer %d has no depthwise convolution (a %s model)", layer, cfg_arch_name(c->arch));
        return -1;
    }
    int C = p->shape[0], K = p->shape[2];
    real *w = malloc(p->numel * sizeof *w); /* [C, 1, K] */
    if (!w) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    m->k->to_host(w, m->w + p->offset, p->numel * sizeof *w);
    for (int i = 0; i < K; i++)
        for (int j = 0; j < K; j++) {
            double dot = 0, ni = 0, nj = 0;
            for (int ch = 0; ch < C; ch++) {
                double a = w[(size_t)ch * K + i], b = w[(size_t)ch * K + j];
                dot += a * b, ni += a * a, nj += b * b;
            }
            out[i * K + j] = ni > 0 && nj > 0 ? dot / sqrt(ni * nj) : NAN;
        }
    free(w);
    return 0;
}

int ach_hidden_attention(ach_model *m, const int32_t *tokens, int L, int layer, int head, double *S, char *err,
                         size_t errlen)
{
    const ach_config *c = &m->cfg;
    if (layer < 0 || layer >= c->n_layer) {
        snprintf(err, errlen, "layer %d does not exist (the model has layers 0..%d)", layer, c->n_layer - 1);
        return -1;
    }
    for (int t = 0; t < L; t++)
        if (tokens[t] < 0 || tokens[t] >= c->vocab_size) {
            snprintf(err, errlen, "token %d at position %d is outside the vocabulary [0, %d)", tokens[t], t,
                     c->vocab_size);
            return -1;
        }
    if (!m->fam->mixing_matrix) {
        snprintf(err, errlen, "a %s model has no mixing matrix", m->fam->name);
        return -1;
    }
    int nu = m->fam->mixing_units(c);
    if (head < -1 || head >= nu) {
        snprintf(err, errlen, "%s %d does not exist (0..%d, or -1 for the summary)", m->fam->mixing_unit, head, nu - 1);
        return -1;
    }
    if ((m->B < 1 || m->L != L) && ach_model_reserve(m, 1, L, err, errlen)) return -1;
    int label = 0;
    ach_model_forward(m, tokens, &label, 1, L);
    m->fam->mixing_matrix(m, layer, head, S);
    return 0;
}

static int parse_list(const char *s, int limit, uint64_t *bits, unsigned *roles, const char *what, char *err,
                      size_t errlen)
{
    char buf[256], *save = NULL;
    snprintf(buf, sizeof buf, "%s", s);
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *end;
        if (roles && !strcmp(tok, "key")) *roles |= BLOCK_KEY;
        else if (roles && !strcmp(tok, "anchor1")) *roles |= BLOCK_ANCHOR1;
        else if (roles && !strcmp(tok, "anchor2")) *roles |= BLOCK_ANCHOR2;
        else if (roles && !strcmp(tok, "anchors")) *roles |= BLOCK_ANCHOR1 | BLOCK_ANCHOR2;
        else {
            long v = strtol(tok, &end, 10);
            if (*end || end == tok) {
                snprintf(err, errlen, "%s: '%s' is not %s", what, tok,
                         roles ? "key, anchor1, anchor2, anchors or a position" : "a layer number or 'all'");
                return -1;
            }
            if (v < 0 || v >= limit || v >= 64) {
                snprintf(err, errlen, "%s: %ld is beyond the %s (0..%d)", what, v, roles ? "sequence" : "model's layers",
                         limit - 1);
                return -1;
            }
            *bits |= 1ULL << v;
        }
    }
    return 0;
}

int ach_block_parse(ach_block_spec *b, const char *positions, const char *layers, int seq_len, int n_layer, char *err,
                    size_t errlen)
{
    ach_block_spec nb = {0, 0, 0};
    if (strcmp(positions, "none") && strcmp(positions, "") &&
        parse_list(positions, seq_len, &nb.positions, &nb.roles, "block", err, errlen))
        return -1;
    if (!layers || !strcmp(layers, "all")) nb.layers = ~0ULL;
    else if (parse_list(layers, n_layer, &nb.layers, NULL, "block_layers", err, errlen)) return -1;
    *b = nb;
    return 0;
}

void ach_block_format(const ach_block_spec *b, char *positions, size_t np, char *layers, size_t nl)
{
    static const char *names[] = {"key", "anchor1", "anchor2"};
    size_t k = 0;
    positions[0] = 0;
    if ((b->roles & (BLOCK_ANCHOR1 | BLOCK_ANCHOR2)) == (BLOCK_ANCHOR1 | BLOCK_ANCHOR2)) {
        if (b->roles & BLOCK_KEY) k += snprintf(positions + k, np - k, "key,");
        k += snprintf(positions + k, np - k, "anchors,");
    } else
        for (int i = 0; i < 3; i++)
            if (b->roles & (1u << i)) k += snprintf(positions + k, np - k, "%s,", names[i]);
    for (int t = 0; t < 64 && k < np; t++)
        if (b->positions >> t & 1) k += snprintf(positions + k, np - k, "%d,", t);
    if (k && k < np) positions[k - 1] = 0;
    else if (!k) snprintf(positions, np, "none");
    if (b->layers == ~0ULL) snprintf(layers, nl, "all");
    else {
        k = 0;
        layers[0] = 0;
        for (int l = 0; l < 64 && k < nl; l++)
            if (b->layers >> l & 1) k += snprintf(layers + k, nl - k, "%s%d", k ? "," : "", l);
        if (!k) snprintf(layers, nl, "none");
    }
}

int ach_block_active(const ach_block_spec *b) { return b && (b->roles || b->positions) && b->layers; }

void ach_block_mask(const ach_block_spec *b, const ach_seq_info *info, int B, int L, unsigned char *mask)
{
    for (int s = 0; s < B; s++) {
        unsigned char *row = mask + (size_t)s * L;
        for (int t = 0; t < L; t++) row[t] = t < 64 && (b->positions >> t & 1);
        int p = info ? info[s].pos : -10;
        if ((b->roles & BLOCK_KEY) && p >= 0 && p < L) row[p] = 1;
        if ((b->roles & BLOCK_ANCHOR1) && p + 1 >= 0 && p + 1 < L) row[p + 1] = 1;
        if ((b->roles & BLOCK_ANCHOR2) && p + 2 >= 0 && p + 2 < L) row[p + 2] = 1;
    }
}

double ach_predict(ach_model *m, const int32_t *tokens, const int32_t *labels, int B, int L, int lean,
                   const ach_block_spec *blk, const ach_seq_info *info, int32_t *pred)
{
    int V = m->cfg.vocab_size;
    real *z = malloc((size_t)B * V * sizeof *z);
    unsigned char *mask = NULL;
    if (ach_block_active(blk) && (mask = malloc((size_t)B * L))) {
        ach_block_mask(blk, info, B, L, mask);
        ach_model_set_block(m, mask, B, L, blk->layers);
    }
    double loss = lean ? ach_model_forward_lean(m, tokens, labels, B, L) : ach_model_forward(m, tokens, labels, B, L);
    ach_model_set_block(m, NULL, B, L, 0);
    free(mask);
    if (!z) return NAN;
    m->k->to_host(z, m->logits, (size_t)B * V * sizeof(real));
    for (int b = 0; b < B; b++) {
        const real *row = z + (size_t)b * V;
        int arg = 0;
        for (int v = 1; v < V; v++)
            if (row[v] > row[arg]) arg = v;
        pred[b] = arg;
    }
    free(z);
    return loss;
}

/* Reserves the model for batches of the task's length if it is not. */
static int ensure_reserved(ach_model *m, int L, char *err, size_t errlen)
{
    if (m->B >= 1 && m->L == L) return 0;
    return ach_model_reserve(m, 512, L, err, errlen);
}

static void report_init(ach_pair_report *out, const ach_task *t)
{
    memset(out, 0, sizeof *out);
    out->npairs = t->split[TASK_TEST].npairs;
    for (int i = 0; i < out->npairs; i++) {
        task_pair_name(t, t->split[TASK_TEST].pairs[i], out->pair_name[i], sizeof out->pair_name[i]);
        out->value[i] = out->unchanged[i] = NAN;
    }
    out->unchanged_overall = NAN;
}

int ach_blocking_eval(ach_model *m, const ach_task *t, uint64_t seed, const ach_block_spec *b, int per_pair,
                      ach_pair_report *out, char *err, size_t errlen)
{
    int L = t->seq_len;
    if (!ach_block_active(b)) {
        snprintf(err, errlen, "blocking: no positions or no layers chosen");
        return -1;
    }
    if (b->layers != ~0ULL && b->layers >> m->cfg.n_layer) {
        snprintf(err, errlen, "blocking: the model has layers 0..%d only", m->cfg.n_layer - 1);
        return -1;
    }
    if (ensure_reserved(m, L, err, errlen)) return -1;
    const ach_split *sp = &t->split[TASK_TEST];
    uint64_t n = per_pair > 0 && (uint64_t)per_pair < sp->per_pair ? (uint64_t)per_pair : sp->per_pair;
    int B = m->B;
    int32_t *tok = malloc((size_t)B * L * sizeof *tok), *lab = malloc((size_t)B * sizeof *lab);
    int32_t *p0 = malloc((size_t)B * sizeof *p0), *p1 = malloc((size_t)B * sizeof *p1);
    ach_seq_info *info = malloc((size_t)B * sizeof *info);
    if (!tok || !lab || !p0 || !p1 || !info) {
        snprintf(err, errlen, "out of memory");
        free(tok), free(lab), free(p0), free(p1), free(info);
        return -1;
    }
    report_init(out, t);
    long agree_all = 0, n_all = 0;
    for (int i = 0; i < sp->npairs; i++) {
        long agree = 0;
        for (uint64_t j0 = 0; j0 < n; j0 += B) {
            int nb = (int)(n - j0 < (uint64_t)B ? n - j0 : (uint64_t)B);
            for (int s = 0; s < nb; s++)
                task_sequence(t, seed, TASK_TEST, i * sp->per_pair + j0 + s, tok + (size_t)s * L, &lab[s], &info[s]);
            ach_predict(m, tok, lab, nb, L, 1, NULL, info, p0);
            ach_predict(m, tok, lab, nb, L, 1, b, info, p1);
            for (int s = 0; s < nb; s++) agree += p0[s] == p1[s];
        }
        out->n[i] = (long)n;
        out->value[i] = n ? (double)agree / n : NAN;
        agree_all += agree, n_all += (long)n;
    }
    out->overall = n_all ? (double)agree_all / n_all : NAN;
    free(tok), free(lab), free(p0), free(p1), free(info);
    return 0;
}

/* Positions substituted for one sequence: "after" the anchors, from the
 * "anchors" on, or a fixed index list. */
static int subst_positions(const char *from, int L, uint64_t *fixed, int *mode, char *err, size_t errlen)
{
    *fixed = 0;
    if (!from || !strcmp(from, "after")) *mode = 3;
    else if (!strcmp(from, "anchors")) *mode = 1;
    else {
        *mode = -1;
        if (parse_list(from, L, fixed, NULL, "substitution positions", err, errlen)) return -1;
    }
    return 0;
}

int ach_substitute(ach_model *m, const int32_t *tokens, const int32_t *twins, const unsigned char *mask, int nb,
                   int L, int layer, int32_t *pred_twin, int32_t *pred_sub)
{
    int Cd = 0;
    if (!m->fam->subst_states || !m->fam->subst_states(m, layer, &Cd)) return -1;
    size_t n = (size_t)nb * L * Cd;
    real *host = malloc(n * sizeof *host), *src = m->k->alloc(n * sizeof(real));
    int32_t *lab = calloc(nb, sizeof *lab);
    unsigned char *dmask = m->k->alloc((size_t)nb * L);
    int rc = -1;
    if (host && src && lab && dmask) {
        ach_predict(m, twins, lab, nb, L, 0, NULL, NULL, pred_twin); /* its activations are the source */
        m->k->to_host(host, m->fam->subst_states(m, layer, &Cd), n * sizeof(real));
        m->k->to_device(src, host, n * sizeof(real));
        m->k->to_device(dmask, mask, (size_t)nb * L);
        m->subst_layer = layer, m->subst_src = src, m->subst_mask = dmask;
        ach_predict(m, tokens, lab, nb, L, 1, NULL, NULL, pred_sub);
        m->subst_layer = -1, m->subst_src = NULL, m->subst_mask = NULL;
        rc = 0;
    }
    free(host);
    free(lab);
    m->k->release(src);
    m->k->release(dmask);
    return rc;
}

int ach_substitution_eval(ach_model *m, const ach_task *t, uint64_t seed, int layer, const char *from, int per_pair,
                          ach_pair_report *out, char *err, size_t errlen)
{
    int L = t->seq_len, held = task_pair_index(t, 4, 3), mode;
    uint64_t fixed;
    if (held < 0) {
        snprintf(err, errlen, "substitution: the twin has anchors (4,3), but preset '%s' has no anchors 4 and 3",
                 t->name);
        return -1;
    }
    if (layer < 0 || layer >= m->cfg.n_layer) {
        snprintf(err, errlen, "substitution: layer %d does not exist (the model has layers 0..%d)", layer,
                 m->cfg.n_layer - 1);
        return -1;
    }
    if (!m->fam->subst_states) {
        snprintf(err, errlen, "substitution: a %s model has no states to substitute", m->fam->name);
        return -1;
    }
    if (subst_positions(from, L, &fixed, &mode, err, errlen) || ensure_reserved(m, L, err, errlen)) return -1;
    const ach_split *sp = &t->split[TASK_TEST];
    uint64_t n = per_pair > 0 && (uint64_t)per_pair < sp->per_pair ? (uint64_t)per_pair : sp->per_pair;
    int B = m->B;
    size_t rows = (size_t)B * L;
    int32_t *tok = malloc(rows * sizeof *tok), *twin = malloc(rows * sizeof *twin), *lab = malloc(B * sizeof *lab);
    int32_t *pt = malloc(B * sizeof *pt), *ps = malloc(B * sizeof *ps), *po = malloc(B * sizeof *po);
    unsigned char *mask = malloc(rows);
    ach_seq_info *info = malloc(B * sizeof *info);
    int rc = -1;
    if (!tok || !twin || !lab || !pt || !ps || !po || !mask || !info) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    report_init(out, t);
    long coll_all = 0, same_all = 0, n_all = 0;
    for (int i = 0; i < sp->npairs; i++) {
        if (sp->pairs[i] == held) continue;
        long coll = 0, same = 0, counted = 0;
        for (uint64_t j0 = 0; j0 < n; j0 += B) {
            int nb = (int)(n - j0 < (uint64_t)B ? n - j0 : (uint64_t)B);
            for (int s = 0; s < nb; s++) {
                int32_t *row = tok + (size_t)s * L, *trow = twin + (size_t)s * L;
                task_sequence(t, seed, TASK_TEST, i * sp->per_pair + j0 + s, row, &lab[s], &info[s]);
                memcpy(trow, row, L * sizeof *row);
                trow[info[s].pos + 1] = t->pairs[held].a1, trow[info[s].pos + 2] = t->pairs[held].a2;
                for (int u = 0; u < L; u++)
                    mask[(size_t)s * L + u] = mode < 0 ? (u < 64 && (fixed >> u & 1)) : u >= info[s].pos + mode;
            }
            ach_predict(m, tok, lab, nb, L, 1, NULL, NULL, po);
            if (ach_substitute(m, tok, twin, mask, nb, L, layer, pt, ps)) {
                snprintf(err, errlen, "out of memory");
                goto out;
            }
            for (int s = 0; s < nb; s++) {
                int any = 0;
                for (int u = 0; u < L; u++) any |= mask[(size_t)s * L + u];
                if (!any) {
                    out->skipped++;
                    continue;
                }
                counted++;
                coll += ps[s] == pt[s];
                same += ps[s] == po[s];
            }
        }
        out->n[i] = counted;
        out->value[i] = counted ? (double)coll / counted : NAN;
        out->unchanged[i] = counted ? (double)same / counted : NAN;
        coll_all += coll, same_all += same, n_all += counted;
    }
    out->overall = n_all ? (double)coll_all / n_all : NAN;
    out->unchanged_overall = n_all ? (double)same_all / n_all : NAN;
    rc = 0;
out:
    free(tok), free(twin), free(lab), free(pt), free(ps), free(po), free(mask), free(info);
    return rc;
}
