/* Task kinds: what the trainer needs to know about a kind of data, as a
 * table of operations (one per kind) and the list of kinds. A preset names
 * its kind in the field "kind"; a preset without one is a composite task
 * (task.h), so every preset and run directory written before kinds existed
 * loads unchanged. docs/engine.md, "Task kinds", says how to add one.
 *
 * The contract, for every kind:
 * - splits have names; split 0 ("train") is the one trained on and split 1
 *   the one evaluated during training (task.h's TASK_TRAIN, TASK_TEST: the
 *   composite's "test", dense_ar's "val"); a split 2, where a kind has one,
 *   is evaluated once at the end (dense_ar's "test");
 * - example i of split s under seed k is a pure function of (preset, k, s, i):
 *   no other sequence, thread count or call order changes it;
 * - its scorer turns a split's predictions into named metric values (below).
 *
 * Ownership: the tables are static and read-only. */
#ifndef ACH_KIND_H
#define ACH_KIND_H
#include <stddef.h>
#include <stdint.h>

#include "task.h"

struct cJSON;

/* What one example is; a trainer tells kinds apart by their table's shape.
 * EXAMPLE_TOKENS: tokens[seq_len] and one integer label, from `example`.
 * EXAMPLE_VECTORS: an [L, D] float sequence (L = seq_len, D = vec_dim of
 * the ach_task), from `vectors`; it has no label: the targets of the AR and
 * MDM losses are the sequence itself. A kind fills the op of its shape and
 * leaves the other NULL. */
typedef enum { EXAMPLE_TOKENS = 0, EXAMPLE_VECTORS = 1 } ach_example_shape;

typedef struct {
    const char *name;        /* the key in metrics.jsonl, summary.json, training_log.csv */
    const char *label;       /* short, for progress lines and the workbench */
    const char *description; /* one line for people */
    int higher_better;       /* 1: accuracy-like; 0: loss-like */
    int csv_digits;          /* significant digits in training_log.csv */
    int decimals;            /* decimals in progress lines */
} ach_metric_def;

#define TASK_MAX_METRICS 8
#define TASK_MAX_GROUPS TASK_MAX_PAIRS

/* A scorer's output: one value per metric of the kind, in its table's
 * order, and a per-group map (the composite's accuracy per pair) for the
 * kinds that have groups. A value that cannot be measured is NaN. */
typedef struct {
    const struct ach_task_kind *kind; /* whose table names the values; NULL: none */
    double value[TASK_MAX_METRICS];
    int ngroups;
    char group_name[TASK_MAX_GROUPS][12];
    double group_value[TASK_MAX_GROUPS];
} ach_named_metrics;

typedef struct ach_task_kind {
    const char *name;        /* the preset's "kind" */
    const char *summary;     /* one line for people */
    ach_example_shape shape;
    int nsplits;
    const char *const *split_names; /* "train", "test", then any others */
    /* Fills *t from a preset's JSON object (whose "kind" names this kind);
     * -1 with "<where>: field '<field>': <problem>" in err. */
    int (*parse)(ach_task *t, const struct cJSON *preset, const char *where, char *err, size_t errlen);
    uint64_t (*split_size)(const ach_task *t, int split);
    /* Example i of a split: tokens[seq_len], *label, and *info if not NULL. */
    void (*example)(const ach_task *t, uint64_t seed, int split, uint64_t i, int32_t *tokens, int32_t *label,
                    ach_seq_info *info);
    /* Example i of a split as x[seq_len * vec_dim], row-major [L, D]. */
    void (*vectors)(const ach_task *t, uint64_t seed, int split, uint64_t i, float *x);
    /* The scorer. Its metrics, in the order records write them; group_key
     * names the per-group map in JSON records (NULL: none) and group_column
     * prefixes its CSV columns. */
    int nmetrics;
    const ach_metric_def *metrics;
    const char *group_key, *group_column;
    /* A zeroed accumulator of score_size bytes takes batches: n examples'
     * labels and info as example() made them, the predictions, and the
     * batch's summed loss (a vector kind's labels, info and pred are NULL);
     * score_end fills every field of *out from it, kind included. */
    size_t score_size;
    void (*score_add)(const ach_task *t, void *acc, const int32_t *labels, const ach_seq_info *info,
                      const int32_t *pred, int n, double loss_sum);
    void (*score_end)(const ach_task *t, int split, const void *acc, ach_named_metrics *out);
} ach_task_kind;

extern const ach_task_kind task_kind_composite, task_kind_dense_ar;
/* Every kind, NULL-terminated. */
extern const ach_task_kind *const task_kinds[];

/* The kind called name, or NULL. */
const ach_task_kind *task_kind_find(const char *name);
/* The kind a preset's JSON object names: its "kind" field, the composite when
 * it has none. NULL, with "<where>: field 'kind': <problem>", when the field
 * is not a string or names no kind. */
const ach_task_kind *task_kind_of(const struct cJSON *preset, const char *where, char *err, size_t errlen);
/* The index of a metric in the kind's table, or -1. */
int task_metric_index(const ach_task_kind *k, const char *name);
/* "a|b|c": the kind's metric names, for messages and settings' choices. */
void task_metric_names(const ach_task_kind *k, char *buf, size_t n);

/* The generic ops on a loaded task, through its kind. */
uint64_t task_nexamples(const ach_task *t, int split);
const char *task_split_name(const ach_task *t, int split);
void task_example(const ach_task *t, uint64_t seed, int split, uint64_t i, int32_t *tokens, int32_t *label,
                  ach_seq_info *info);
void task_vectors(const ach_task *t, uint64_t seed, int split, uint64_t i, float *x);
/* 0 when the training run can train on t, else -1 with a message: it
 * trains token kinds only, until a model family takes vectors. */
int task_trainable(const ach_task *t, char *err, size_t errlen);

/* The named value of m, NaN when m's kind has no metric of that name. */
double task_metric(const ach_named_metrics *m, const char *name);
#endif
