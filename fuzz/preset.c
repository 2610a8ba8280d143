/* Fuzz target: a task preset (data/NAME.json), parsed by task_from_json as
 * `achilles data --preset`, `train preset=` and the workbench's `new` do.
 * A preset that loads must generate well-formed examples, checked on the
 * first, a middle and the last of each split: a token kind's tokens and
 * label lie inside the vocabulary with the pair's anchors after the key; a
 * dense_ar task's vectors have unit norm and x_0 the split's sign. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dense_ar.h"
#include "fuzz_text.h"
#include "kind.h"

static void check_tokens(const ach_task *t, int s, uint64_t i)
{
    int32_t *tok = malloc((size_t)t->seq_len * sizeof *tok), label;
    ach_seq_info in;
    if (!tok) abort();
    task_example(t, 7, s, i, tok, &label, &in);
    for (int j = 0; j < t->seq_len; j++)
        if (tok[j] < 0 || tok[j] >= t->vocab_size) abort();
    if (label < 0 || label >= t->vocab_size || in.pos < 0 || in.pos + 2 >= t->seq_len) abort();
    if (tok[in.pos] != in.key || tok[in.pos + 1] != in.a1 || tok[in.pos + 2] != in.a2) abort();
    free(tok);
}

static void check_vectors(const ach_task *t, int s, uint64_t i)
{
    const ach_dense_ar *d = dense_ar_of(t);
    int D = t->vec_dim;
    float *x = malloc((size_t)t->seq_len * D * sizeof *x);
    if (!x) abort();
    task_vectors(t, 7, s, i, x);
    if (!(x[0] * d->sign[s] > 0)) abort();
    for (int p = 0; p < t->seq_len; p++) {
        double n = 0;
        for (int k = 0; k < D; k++) n += (double)x[(size_t)p * D + k] * x[(size_t)p * D + k];
        if (!(fabs(n - 1) < 1e-5)) abort();
    }
    free(x);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *json = fuzz_text(data, size), err[1024];
    ach_task t;
    if (!task_from_json(&t, json, "fuzz.json", err, sizeof err)) {
        for (int s = 0; s < t.kind->nsplits; s++) {
            uint64_t n = task_nexamples(&t, s), at[3] = {0, n / 2, n - 1};
            for (int k = 0; k < 3 && n; k++) {
                if (t.kind->shape == EXAMPLE_VECTORS) check_vectors(&t, s, at[k]);
                else check_tokens(&t, s, at[k]);
            }
        }
        task_free(&t);
    }
    free(json);
    return 0;
}
