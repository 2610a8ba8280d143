/* Fuzz target: a task preset (data/NAME.json), parsed by task_from_json as
 * `achilles data --preset`, `train preset=` and the workbench's `new` do.
 * A preset that loads must generate well-formed sequences: the first, a
 * middle and the last sequence of each split have every token and the
 * label inside the vocabulary and the pair's anchors after the key. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_text.h"
#include "task.h"

static void check_split(const ach_task *t, int s)
{
    uint64_t n = task_split_size(t, s);
    uint64_t at[3] = {0, n / 2, n - 1};
    int32_t *tok = malloc((size_t)t->seq_len * sizeof *tok), label;
    if (!tok) abort();
    for (int k = 0; k < 3 && n; k++) {
        ach_seq_info in;
        task_sequence(t, 7, s, at[k], tok, &label, &in);
        for (int j = 0; j < t->seq_len; j++)
            if (tok[j] < 0 || tok[j] >= t->vocab_size) abort();
        if (label < 0 || label >= t->vocab_size || in.pos < 0 || in.pos + 2 >= t->seq_len) abort();
        if (tok[in.pos] != in.key || tok[in.pos + 1] != in.a1 || tok[in.pos + 2] != in.a2) abort();
    }
    free(tok);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *json = fuzz_text(data, size), err[1024];
    ach_task t;
    if (!task_from_json(&t, json, "fuzz.json", err, sizeof err)) {
        for (int s = 0; s < TASK_NSPLITS; s++) check_split(&t, s);
        task_free(&t);
    }
    free(json);
    return 0;
}
