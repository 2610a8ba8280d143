/* What `achilles report` measures on a finished run's model state
 * (blocking, substitution, conv cosine), kept beside the run in
 * analyses.json. results/ commits a run's summaries but not its model, so
 * the report reads these numbers back from a clean clone and regenerates
 * byte for byte. */
#ifndef ACH_REPORT_ANALYSES_H
#define ACH_REPORT_ANALYSES_H
#include "sweep.h"

typedef struct {
    int have;                /* 1: computed now or read from analyses.json */
    int from_state;          /* 1: computed now from state.safetensors */
    int epoch, per_pair;     /* the state's epoch; test sequences per pair */
    char err[512];           /* why there are none, when a state was there */
    /* blocking key and anchors in every layer: predictions unchanged */
    double block43, block_lo, block_hi, block_all;
    /* substitution (layer 0, positions after the anchors): collapse rate */
    int subst_pairs;
    double subst_lo, subst_hi, subst_mean, subst_unchanged;
    /* conv taps' cosine similarity, off-diagonal range over all layers;
     * epoch 0 needs ckpt/epoch_0000.safetensors (NaN without it) */
    double cos0_lo, cos0_hi, cos_lo, cos_hi;
} run_analyses;

#define RUN_ANALYSES_FILE "analyses.json"

/* The analyses of a finished run: computed from its state.safetensors when
 * present (and then saved to analyses.json, rewritten only if it changes),
 * else read from analyses.json when it was made with the same per_pair.
 * a->have is 0 when neither is there. Returns -1 only when analyses.json
 * cannot be written or read (message in err). */
int run_analyses_get(const sweep_run *r, int per_pair, run_analyses *a, char *err, size_t errlen);
#endif
