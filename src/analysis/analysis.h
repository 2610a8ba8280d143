/* The paper's analyses of a model (docs/science.md §4): conv cosine similarity, hidden
 * attention, blocking and substitution. They read the model's weights and
 * run forward passes; none changes the weights. */
#ifndef ACH_ANALYSIS_H
#define ACH_ANALYSIS_H
#include <stddef.h>
#include <stdint.h>

#include "model.h"
#include "task.h"

/* K x K cosine similarities of layer `layer`'s conv taps w[:, 0, k] (one
 * value per channel), row-major into out. 0, or -1 with a message. */
int ach_conv_cosine(const ach_model *m, int layer, double *out, char *err, size_t errlen);

/* The SSM matrix S(t, s) = C_t (prod_{k=s+1..t} exp(delta_k A)) delta_s B_s of
 * one sequence (tokens[L]) in layer `layer`, L x L row-major into S (zero
 * above the diagonal). Mamba-2: head `head` (0..H-1), or -1 for the mean over
 * heads; Mamba-1: channel `head` (0..Di-1), or -1 for the mean over channels
 * of |S_d|. Reserves the model for one sequence if needed. */
int ach_hidden_attention(ach_model *m, const int32_t *tokens, int L, int layer, int head, double *S, char *err,
                         size_t errlen);

/* Which source positions blocking removes, and in which layers. */
typedef struct {
    unsigned roles;          /* BLOCK_KEY | BLOCK_ANCHOR1 | BLOCK_ANCHOR2 */
    uint64_t positions;      /* bit t: position t (by index) */
    uint64_t layers;         /* bit l: layer l; all ones = every layer */
} ach_block_spec;
enum { BLOCK_KEY = 1, BLOCK_ANCHOR1 = 2, BLOCK_ANCHOR2 = 4 };

/* Parses "none", "key", "anchor1", "anchor2", "anchors", indices "3,5" or a
 * comma mix, and layers "all" or "0,1". Messages name the bad item. */
int ach_block_parse(ach_block_spec *b, const char *positions, const char *layers, int seq_len, int n_layer, char *err,
                    size_t errlen);
void ach_block_format(const ach_block_spec *b, char *positions, size_t np, char *layers, size_t nl);
int ach_block_active(const ach_block_spec *b);

/* mask[b*L + t] = 1 where the spec blocks position t of sequence b (roles
 * resolved through info[b]: key at pos, anchors at pos+1, pos+2). */
void ach_block_mask(const ach_block_spec *b, const ach_seq_info *info, int B, int L, unsigned char *mask);
/* Forward of B sequences, blocked by `blk` if it is active (info needed
 * then), the argmax of each into pred; returns the mean loss. lean: the
 * layer activations need not be kept (ach_model_forward_lean). */
double ach_predict(ach_model *m, const int32_t *tokens, const int32_t *labels, int B, int L, int lean,
                   const ach_block_spec *blk, const ach_seq_info *info, int32_t *pred);

/* Per-pair results over the test split (layout order of split TASK_TEST). */
typedef struct {
    int npairs;
    char pair_name[TASK_MAX_PAIRS][12];
    long n[TASK_MAX_PAIRS];
    double value[TASK_MAX_PAIRS]; /* blocking: agreement; substitution: collapse rate */
    double overall;
    long skipped;                 /* substitution: sequences with nothing to substitute */
    /* substitution: the fraction of predictions it leaves as they were; 1
     * with collapse near 0 means the model never reads the replaced states */
    double unchanged[TASK_MAX_PAIRS], unchanged_overall;
} ach_pair_report;

/* Blocking: the fraction of predictions unchanged when the spec's positions
 * are blocked, per pair, over the first `per_pair` test sequences of each pair
 * (0 = all). */
int ach_blocking_eval(ach_model *m, const ach_task *t, uint64_t seed, const ach_block_spec *b, int per_pair,
                      ach_pair_report *out, char *err, size_t errlen);

/* Substitution: for each test sequence of a pair other than (4,3), its twin
 * with anchors (4,3) and all else equal; the post-convolution states (after
 * SiLU) of layer `layer` at the chosen positions are replaced by the twin's.
 * Collapse: the prediction equals the twin's prediction. `from`: "after"
 * (positions after the anchors, the default), "anchors" (the anchors and
 * after) or indices. */
/* One batch: predictions of the twins (pred_twin) and of the sequences with
 * layer `layer`'s post-convolution rows under mask [nb*L] replaced by the
 * twins' (pred_sub). The model must be reserved for nb x L. */
int ach_substitute(ach_model *m, const int32_t *tokens, const int32_t *twins, const unsigned char *mask, int nb,
                   int L, int layer, int32_t *pred_twin, int32_t *pred_sub);

int ach_substitution_eval(ach_model *m, const ach_task *t, uint64_t seed, int layer, const char *from, int per_pair,
                          ach_pair_report *out, char *err, size_t errlen);
#endif
