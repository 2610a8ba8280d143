/* For t/data_export.t: checks an `achilles data --export` safetensors file
 * against the generator, every tensor of every sequence bit for bit, and its
 * metadata against the loaded preset. Reads it with the library's reader.
 *
 *   data_export PRESET SPLIT SEED FILE.safetensors
 *
 * A dense_ar preset's file holds one tensor, vectors [N, L, D], checked
 * against task_vectors; SEED is then the preset's data seed.
 *
 * Prints "checked N sequences" and exits 0, or prints each problem (the
 * first few mismatches of each tensor) and exits 1. */
#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dense_ar.h"
#include "kind.h"
#include "safetensors.h"

static int problems;

__attribute__((format(printf, 1, 2))) static void problem(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("problem: ");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    problems++;
}

/* The int32 [n] (or [n, len] if len) tensor NAME, or NULL after a problem. */
static const int32_t *column(const st_file *f, const char *name, uint64_t n, int len)
{
    const st_tensor *t = st_find(f, name);
    if (!t) {
        problem("no tensor '%s'", name);
        return NULL;
    }
    int ndim = len ? 2 : 1;
    if (t->dtype != ST_I32 || t->ndim != ndim || t->shape[0] != (int64_t)n || (len && t->shape[1] != len)) {
        problem("tensor '%s' is %s with %d dims, not int32 [%llu%s]", name, t->dtype_name, t->ndim,
                (unsigned long long)n, len ? ", L" : "");
        return NULL;
    }
    /* st_load's buffer is malloc-aligned and every tensor here is int32. */
    return st_data(f, t);
}

/* The metadata value KEY is exactly WANT. */
static void meta_is(const st_file *f, const char *key, const char *want)
{
    const char *v = st_meta(f, key);
    if (!v || strcmp(v, want)) {
        problem("metadata '%s' is %s, not %s", key, v ? v : "missing", want);
    }
}

/* A JSON array of the pairs' names, in index order (held-out ones only if held_only). */
static char *names_json(const ach_task *t, int held_only)
{
    cJSON *a = cJSON_CreateArray();
    for (int k = 0; k < t->npairs; k++) {
        char name[32];
        task_pair_name(t, k, name, sizeof name);
        if (!held_only || t->pairs[k].held_out) cJSON_AddItemToArray(a, cJSON_CreateString(name));
    }
    char *s = cJSON_PrintUnformatted(a);
    cJSON_Delete(a);
    return s;
}

/* The vectors [n, L, D] of a dense_ar split, bit for bit. */
static void check_vectors(const ach_task *t, int split, const st_file *f, const char *seed)
{
    uint64_t n = task_nexamples(t, split);
    size_t len = (size_t)t->seq_len * t->vec_dim;
    const st_tensor *v = st_find(f, "vectors");
    if (f->n != 1) problem("%d tensors, not 1", f->n);
    if (!v || v->dtype != ST_F32 || v->ndim != 3 || v->shape[0] != (int64_t)n || v->shape[1] != t->seq_len ||
        v->shape[2] != t->vec_dim) {
        problem("no float32 tensor 'vectors' [%llu, %d, %d]", (unsigned long long)n, t->seq_len, t->vec_dim);
        return;
    }
    meta_is(f, "preset", t->name);
    meta_is(f, "kind", "dense_ar");
    meta_is(f, "split", task_split_name(t, split));
    meta_is(f, "seed", seed);
    if (f->nmeta != 4) problem("%d metadata entries, not 4", f->nmeta);
    const float *got = st_data(f, v);
    float *want = malloc(len * sizeof *want);
    long long bad = 0;
    for (uint64_t i = 0; want && i < n; i++) {
        task_vectors(t, 0, split, i, want);
        if (memcmp(got + i * len, want, len * sizeof *want) && bad++ < 3)
            problem("vectors differ from the generator at sequence %llu", (unsigned long long)i);
    }
    free(want);
    if (!problems) printf("checked %llu sequences\n", (unsigned long long)n);
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: data_export PRESET SPLIT SEED FILE.safetensors\n");
        return 2;
    }
    uint64_t seed = strtoull(argv[3], NULL, 10);
    ach_task t;
    st_file f;
    char err[600];
    if (task_load(&t, argv[1], err, sizeof err) || st_load(argv[4], &f, err, sizeof err)) {
        printf("problem: %s\n", err);
        return 1;
    }
    int split = 0;
    while (split < t.kind->nsplits && strcmp(task_split_name(&t, split), argv[2])) split++;
    if (split == t.kind->nsplits) {
        printf("problem: %s has no split %s\n", t.name, argv[2]);
        return 1;
    }
    if (t.kind->shape == EXAMPLE_VECTORS) {
        check_vectors(&t, split, &f, argv[3]);
        st_free(&f);
        task_free(&t);
        return problems ? 1 : 0;
    }
    uint64_t n = task_split_size(&t, split);
    int len = t.seq_len;
    if (f.n != 6) problem("%d tensors, not 6", f.n);
    const int32_t *tok = column(&f, "tokens", n, len), *label = column(&f, "labels", n, 0),
                  *pair = column(&f, "pair", n, 0), *pos = column(&f, "key_pos", n, 0),
                  *comp = column(&f, "label_comp", n, 0), *sym = column(&f, "label_sym", n, 0);
    char *names = names_json(&t, 0), *held = names_json(&t, 1), vocab[16];
    snprintf(vocab, sizeof vocab, "%d", t.vocab_size);
    meta_is(&f, "preset", t.name);
    meta_is(&f, "split", argv[2]);
    meta_is(&f, "seed", argv[3]);
    meta_is(&f, "vocab_size", vocab);
    meta_is(&f, "pair_names", names);
    meta_is(&f, "held_out", held);
    if (f.nmeta != 6) problem("%d metadata entries, not 6", f.nmeta);
    free(names);
    free(held);

    int32_t *want = malloc((size_t)len * sizeof *want);
    const char *what[] = {"tokens", "labels", "pair", "key_pos", "label_comp", "label_sym"};
    long long bad[6] = {0};
    for (uint64_t i = 0; want && tok && label && pair && pos && comp && sym && i < n; i++) {
        int32_t lab;
        ach_seq_info in;
        task_sequence(&t, seed, split, i, want, &lab, &in);
        int miss[6] = {memcmp(tok + i * (size_t)len, want, (size_t)len * sizeof *want) != 0,
                       label[i] != lab,
                       pair[i] != in.pair,
                       pos[i] != in.pos,
                       comp[i] != in.label_comp,
                       sym[i] != in.label_sym};
        for (int c = 0; c < 6; c++)
            if (miss[c] && bad[c]++ < 3)
                problem("tensor '%s' differs from the generator at sequence %llu", what[c], (unsigned long long)i);
    }
    for (int c = 0; c < 6; c++)
        if (bad[c] > 3) printf("  ('%s': %lld sequences differ in all)\n", what[c], bad[c]);
    if (!problems) printf("checked %llu sequences\n", (unsigned long long)n);
    free(want);
    st_free(&f);
    task_free(&t);
    return problems ? 1 : 0;
}
