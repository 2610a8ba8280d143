/* The composite-function task (docs/science.md §1), the first task kind
 * (kind.h): presets loaded from JSON (the schema is in data/README.md) and a
 * deterministic sequence generator.
 *
 * A sequence holds a key at position p, two anchor tokens at p+1 and p+2 and
 * noise elsewhere; its label is key + shift (mod label_modulus, if set).
 *
 * Layout of a split: its pairs in order, per_pair sequences each, so
 * sequence i has pair split.pairs[i / per_pair].
 * Randomness: sequence i of split s under seed k draws from rng stream
 * TASK_STREAM(s, i) = 2^63 + s * 2^56 + i, in this order: p, key (the key
 * rule by rejection, or directly when it pins the residue), then one noise
 * token per position 0..L-1 (positions p..p+2 are then overwritten). So the
 * sequence depends only on (preset, seed, split, i), never on thread count
 * or on which other sequences were made. (Model init uses small streams.)
 *
 * Ownership: task_load fills a caller-owned ach_task; task_free releases
 * what it allocated. A loaded task is read-only and safe to share between
 * threads. */
#ifndef ACH_TASK_H
#define ACH_TASK_H
#include <stddef.h>
#include <stdint.h>

#define TASK_TRAIN 0
#define TASK_TEST 1
#define TASK_NSPLITS 2
#define TASK_MAX_ANCHORS 16
#define TASK_MAX_PAIRS (TASK_MAX_ANCHORS * TASK_MAX_ANCHORS)
#define TASK_STREAM(split, i) ((1ULL << 63) + ((uint64_t)(split) << 56) + (uint64_t)(i))

/* How a split's key relates to its position p: key mod M vs (p + offset) mod M. */
typedef enum { KEY_ANY = 0, KEY_DIFFERS = 1, KEY_EQUALS = 2 } ach_key_rule;

typedef struct {
    int a1, a2;      /* anchor tokens, in sequence order */
    int shift;       /* label = key + shift: the trained rule, or for a
                        held-out pair the answer its test label uses */
    int comp_shift;  /* shift(a1) + shift(a2): the compositional answer */
    int sym_shift;   /* the shift (a2, a1) is trained with: the symmetric answer */
    int special;     /* trained with a special_pairs shift, not comp_shift */
    int held_out;    /* listed under held_out: never in the train split */
    int in_split[TASK_NSPLITS];
} ach_pair;

typedef struct {
    int npairs;
    int pairs[TASK_MAX_PAIRS];  /* indices into ach_task.pairs, layout order */
    uint64_t per_pair;
    ach_key_rule key_rule;
} ach_split;

typedef struct {
    const struct ach_task_kind *kind; /* what kind of task (kind.h) */
    char name[64];
    char *description;     /* malloc'd */
    char path[1024];       /* the file it came from */
    int seq_len, vocab_size;
    int vec_dim;           /* D of a vector kind's [seq_len, D] examples; 0 for token kinds */
    void *kind_data;       /* a kind's own state, one malloc'd block (task_free frees it) */
    int label_modulus;     /* 0: none */
    int key_lo, key_hi;    /* key tokens in [key_lo, key_hi) */
    int noise_lo, noise_hi;
    int pos_lo, pos_hi;    /* key position p in [pos_lo, pos_hi) */
    int key_mod, key_offset;
    int nanchors;
    int anchor[TASK_MAX_ANCHORS], anchor_shift[TASK_MAX_ANCHORS];
    int npairs;            /* nanchors^2: every ordered pair, a1-major */
    ach_pair pairs[TASK_MAX_PAIRS];
    ach_split split[TASK_NSPLITS];
} ach_task;

/* The composite kind's metrics (its table in task.c): the names records
 * use, for the callers that study this task itself (phase diagrams, the
 * report's figures) and read them with task_metric (kind.h). */
#define TASK_METRIC_TEST_LOSS "test_loss"
#define TASK_METRIC_ACC43_COMP "acc43_comp"
#define TASK_METRIC_ACC43_SYM "acc43_sym"
#define TASK_METRIC_ACC_SEEN "acc_seen"

/* What a generated sequence is, for evaluation and display. */
typedef struct {
    int pair;             /* index into ach_task.pairs */
    int key, pos;         /* the key token and its position p */
    int a1, a2;
    int32_t label;        /* the sequence's label (as returned) */
    int32_t label_comp;   /* key + comp_shift (mod m) */
    int32_t label_sym;    /* key + sym_shift (mod m) */
} ach_seq_info;

/* Loads a preset: a bare name (no '/', not ending in .json) is read from
 * $ACHILLES_DATA or else the build's data directory (ACH_DATADIR) as
 * NAME.json; anything else is a path. 0, or -1 with a message naming the
 * file, the field and the problem. */
int task_load(ach_task *t, const char *name_or_path, char *err, size_t errlen);
/* The same with a run's overrides: seq_len (> 0) and the key rule's
 * position_offset (>= 0) replace the preset's; 0 and -1 keep them. *text,
 * if not NULL, receives the JSON the task was made from (malloc'd). */
int task_load_with(ach_task *t, const char *name_or_path, int seq_len, int key_offset, char **text, char *err,
                   size_t errlen);
/* Same from JSON text; `where` names the source in messages. The preset's
 * "kind" field picks the parser (kind.h); without one it is composite. */
int task_from_json(ach_task *t, const char *json, const char *where, char *err, size_t errlen);
void task_free(ach_task *t);
/* The directory bare names are looked up in. */
const char *task_data_dir(void);

uint64_t task_split_size(const ach_task *t, int split);
int task_npairs(const ach_task *t, int split);  /* pairs in the split */
/* Index into t->pairs of (a1, a2), or -1 if they are not both anchors. */
int task_pair_index(const ach_task *t, int a1, int a2);
int task_split_has_pair(const ach_task *t, int split, int a1, int a2);
/* Whether the test split holds (a1, a2): e.g. task_has_pair(t, 4, 3). */
int task_has_pair(const ach_task *t, int a1, int a2);
/* "43" when both anchors are single digits, else "(12,3)". */
void task_pair_name(const ach_task *t, int pair, char *buf, size_t n);
/* key + shift, reduced mod label_modulus when the preset has one. */
int32_t task_label(const ach_task *t, int key, int shift);

/* Sequence i (< task_split_size) of a split: tokens[seq_len], *label, and
 * *info if not NULL. Pure: depends only on (t, seed, split, i). */
void task_sequence(const ach_task *t, uint64_t seed, int split, uint64_t i, int32_t *tokens, int32_t *label,
                   ach_seq_info *info);
#endif
