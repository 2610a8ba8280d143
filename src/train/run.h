/* A training run: the paper's recipe over a task preset, one batch at a
 * time, with its run directory:
 *   config.json      the full resolved configuration
 *   preset.json      a copy of the task preset (the run reads this one)
 *   metrics.jsonl    one record per epoch (epoch 0 = before training)
 *   training_log.csv the same, as a table
 *   summary.json     best and final values, wall time (rewritten each epoch)
 *   state.safetensors the latest model + optimizer + position: --resume
 *   ckpt/epoch_NNNN.safetensors  epoch 0, every ckpt_every, and the end
 * The workbench drives the same object from its worker thread.
 *
 * Ownership: ach_run_create / ach_run_resume fill a caller-owned ach_run;
 * ach_run_close frees it. Nothing is allocated per step. */
#ifndef ACH_RUN_H
#define ACH_RUN_H
#include <stddef.h>
#include <stdint.h>

#include "analysis.h"
#include "model.h"
#include "optim.h"
#include "runcfg.h"
#include "kind.h"
#include "task.h"

typedef struct {
    int epoch;               /* epochs completed (0 = before training) */
    long step;               /* optimizer steps taken */
    double lr;               /* learning rate of the epoch's last step */
    double train_loss;       /* mean loss of the epoch's batches (epoch 0: a fixed sample) */
    ach_named_metrics eval;  /* the task kind's scorer over the test split (composite:
                                test_loss, acc43_comp, acc43_sym, acc_seen, acc_pair) */
    double grad_norm;        /* mean pre-clipping gradient norm of the epoch */
    double seq_per_s;        /* training throughput of the epoch */
    double elapsed_s;        /* training wall time so far */
    /* interventions in force at the epoch's end */
    int all_one_conv, block_train;
    char pos_enc[16], block[128], block_layers[128];
    double block_agree;              /* predictions unchanged by blocking (NaN: no blocking) */
    double block_agree_pair[TASK_MAX_GROUPS]; /* per group of eval (the composite's pairs) */
} ach_metrics;

typedef enum { RUN_STEP = 0, RUN_EPOCH = 1, RUN_DONE = 2, RUN_ERROR = -1 } ach_run_status;

typedef struct ach_run {
    ach_runcfg cfg;
    ach_task task;
    ach_model model;
    ach_optim opt;
    char dir[1024];
    int L, nbatches;
    uint64_t ntrain, ntest;
    /* position: everything the next step depends on besides the weights */
    int epoch, batch;
    double loss_sum, gnorm_sum;
    long loss_n, gnorm_n;
    double best;             /* best value of patience_metric so far */
    int best_epoch, bad_epochs;
    double elapsed;          /* training seconds, across resumes */
    int done;
    int failed;              /* stopped by divergence (NaN/Inf): stop_reason says where */
    char stop_reason[128];
    ach_metrics last;        /* the latest epoch record */
    ach_block_spec block;    /* parsed from cfg.block / cfg.block_layers */
    /* buffers */
    uint32_t *perm;          /* this epoch's order of the train split */
    int32_t *tokens, *labels, *pred, *pred_blocked;
    ach_seq_info *info;
    unsigned char *mask;
    double epoch_t0;         /* wall clock at the epoch's first step */
    double epoch_train_s;    /* training time spent in this epoch (this process) */
    long epoch_seqs;         /* sequences trained in that time */
} ach_run;

/* A new run in DIR (created; must not already hold a run). Evaluates and
 * records epoch 0 and writes its checkpoint. */
int ach_run_create(ach_run *r, const ach_runcfg *cfg, const char *dir, const ach_kernels *k, char *err,
                   size_t errlen);
/* Continues the run in DIR exactly where its state.safetensors stopped. */
int ach_run_resume(ach_run *r, const char *dir, const ach_kernels *k, char *err, size_t errlen);
/* One training step; at the end of an epoch also evaluates, records and
 * checkpoints (RUN_EPOCH, metrics in r->last). RUN_DONE when the run has
 * finished (epochs reached or early stopping: r->stop_reason). */
ach_run_status ach_run_advance(ach_run *r, char *err, size_t errlen);
/* Live settings (the keys runcfg_key_live marks), applied from the next
 * step on and recorded in DIR/interventions.jsonl and in every later metrics
 * record. Other keys cannot change on a live run (-1 with a message). */
int ach_run_set(ach_run *r, const char *key, const char *value, char *err, size_t errlen);

/* Writes state.safetensors (the run can resume from here, even mid-epoch). */
int ach_run_save_state(ach_run *r, char *err, size_t errlen);
void ach_run_close(ach_run *r);

/* Evaluation of the current weights on the test split (and the epoch-0
 * train sample); fills everything in *out but the training fields. */
void ach_run_evaluate(ach_run *r, ach_metrics *out);
/* The record as one JSON line / CSV header and row (malloc'd). Keys and
 * columns: the training fields, then the kind's metrics in its table's
 * order, then its per-group map (composite: the records' keys since the
 * first runs). */
char *ach_metrics_json(const ach_metrics *m);
char *ach_metrics_csv_header(const ach_metrics *m);
char *ach_metrics_csv_row(const ach_metrics *m);
/* The record back from a JSON object (a metrics.jsonl line, summary.json's
 * "final"), its metrics named by kind k; absent numbers read NaN. */
void ach_metrics_from_json(const struct cJSON *o, const ach_task_kind *k, ach_metrics *m);
/* A record's number: a JSON number, or "NaN", "Inf", "-Inf" or an exact
 * number as a string; NaN when absent. A string field, "" when absent. */
double ach_json_number(const struct cJSON *o, const char *key);
void ach_json_string(const struct cJSON *o, const char *key, char *buf, size_t n);
/* The task kind of the run in DIR, from its preset.json; the composite when
 * that cannot be read (runs written before kinds are all composite). */
const ach_task_kind *ach_run_dir_kind(const char *dir);
#endif
