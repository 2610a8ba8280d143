/* A run's configuration: the model, the task preset, the training recipe
 * (docs/science.md §3 defaults) and the run's bookkeeping, as one table of named keys.
 * The same names serve key=value arguments, config.json, the man page and
 * the workbench's completion. */
#ifndef ACH_RUNCFG_H
#define ACH_RUNCFG_H
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "optim.h"

typedef enum { SCHED_EPOCH = 0, SCHED_STEP = 1 } ach_sched_unit;

typedef struct {
    ach_config model;
    ach_optim_cfg optim;
    char preset[256];        /* preset name in data/ or a path */
    int seq_len;             /* 0: the preset's */
    int key_offset;          /* the key rule's position offset; -1: the preset's */
    uint64_t seed;           /* init, shuffling: the whole run */
    int epochs;              /* 200 */
    int batch_size;          /* 2048 */
    ach_sched_unit lr_schedule;
    int ckpt_every;          /* epochs between checkpoints; 0 = only first/last */
    int patience;            /* epochs without improvement before stopping; 0 = off */
    char patience_metric[32];/* test_loss, acc_seen, acc43_comp, acc43_sym */
    int threads;             /* 0 = all online CPUs */
    /* interventions (docs/science.md §4); these may also change on a live run */
    int all_one_conv;        /* conv1d weights 1, bias 0 (set when switched on) */
    int all_one_mode;        /* 0: frozen; 1: trained after being set */
    int all_one_channels;    /* 0: every conv channel; 1: the x channels only */
    int all_one_bias;        /* 0: frozen at 0; 1: trained after being set */
    char block[128];         /* source positions blocked: none, key, anchors, ... */
    char block_layers[128];  /* all or a layer list */
    int block_train;         /* also block while training (default: evaluation only) */
} ach_runcfg;

void runcfg_defaults(ach_runcfg *c);
/* Sets one key from text ("gamma", "1.0"). `where` prefixes messages. */
int runcfg_set(ach_runcfg *c, const char *key, const char *value, const char *where, char *err, size_t errlen);
/* Applies "key=value". */
int runcfg_assign(ach_runcfg *c, const char *kv, char *err, size_t errlen);
/* Cross-field checks (model sizes, ranges that depend on each other). */
int runcfg_validate(const ach_runcfg *c, char *err, size_t errlen);
/* The full resolved config as a JSON object text (malloc'd). */
char *runcfg_to_json(const ach_runcfg *c);
/* Reads keys from a JSON object text; unknown keys and bad values are
 * errors naming `where` and the key. Keys absent keep their values. */
int runcfg_from_json(ach_runcfg *c, const char *json, const char *where, char *err, size_t errlen);
int runcfg_load_file(ach_runcfg *c, const char *path, char *err, size_t errlen);

/* The key table, for help and completion: name, kind and a one-line help. */
int runcfg_nkeys(void);
const char *runcfg_key_name(int i);
const char *runcfg_key_help(int i);
/* An enumerated key's values as "a|b|c"; NULL for other keys. */
const char *runcfg_key_choices(int i);
/* Index of the key called `name`, or -1. */
int runcfg_key_find(const char *name);
/* Key i may change on a running run (ach_run_set, the workbench's set); 0
 * for i = -1, so runcfg_key_live(runcfg_key_find(name)) asks by name. */
int runcfg_key_live(int i);
/* Key i means something to this model family (headdim: mamba2, dt_rank:
 * mamba1). A key of another family is accepted and ignored, so one sweep
 * grid or config.json serves both architectures. */
int runcfg_key_applies(int i, ach_arch arch);
/* Key i's help with its flags: "... (live)", "... (mamba2 only)". */
void runcfg_key_describe(int i, char *buf, size_t n);
/* 0 when `key` is live; else -1 and a message naming the live keys. */
int runcfg_live_check(const char *key, char *err, size_t errlen);
/* The current value of key i as text (buf of n bytes). */
void runcfg_get(const ach_runcfg *c, int i, char *buf, size_t n);
#endif
