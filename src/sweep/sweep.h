/* Sweeps: a grid over run-configuration keys, expanded into run
 * directories under one sweep directory, with a manifest:
 *
 *   DIR/manifest.json   {"format": 1, "name", "base": {key: value},
 *                        "grid": {key: [values]}, "runs": [{"index",
 *                        "dir" (relative to DIR), "settings": {key: value}}]}
 *   DIR/runs/NNNN-.../  one run directory each (see run.h), plus
 *                       sweep.lock (held while a process runs it) and
 *                       train.log (the training process's output)
 *
 * Values are kept as text, exactly as given (JSON numbers in their shortest
 * round-trip form), so a manifest reproduces the command lines that made
 * its runs. The grid's first key varies slowest.
 *
 * This header is the library side the CLI (achilles sweep / phase / report)
 * and the workbench share: build or load a sweep, then sweep_refresh to
 * learn each run's state and latest metrics from its files.
 *
 * Ownership: an ach_sweep owns everything it points to; sweep_free frees
 * it. Nothing here keeps global state. */
#ifndef ACH_SWEEP_H
#define ACH_SWEEP_H
#include <stddef.h>

#include "run.h"
#include "runcfg.h"

#define SWEEP_MANIFEST "manifest.json"
#define SWEEP_LOCK "sweep.lock"
#define SWEEP_LOG "train.log"

typedef struct {
    char *key, *val;
} sweep_kv;

typedef struct {
    char *key;
    int nvals;
    char **vals;
} sweep_axis;

typedef enum {
    SWEEP_NEW,      /* nothing trained yet */
    SWEEP_PARTIAL,  /* config.json but no state: stopped while starting; starts over */
    SWEEP_STOPPED,  /* state.safetensors, not finished: resumes */
    SWEEP_RUNNING,  /* its lock is held by a live process */
    SWEEP_DONE      /* summary.json says done */
} sweep_state;

typedef struct {
    int index;
    char rel[512];          /* run directory relative to the sweep directory */
    char dir[4096];         /* the path to open (sweep directory + rel) */
    int nset;
    sweep_kv *set;          /* this run's grid values, in grid key order */
    ach_runcfg cfg;         /* defaults + base + this run's grid values */
    /* from the files, by sweep_refresh */
    sweep_state state;
    long lock_pid;          /* RUNNING: the pid recorded in the lock (0: unknown) */
    char lock_host[64];
    int have_last;          /* a metrics record was found */
    ach_metrics last;       /* the latest record (summary.json's final) */
    int epochs;             /* planned epochs */
    double wall_s;          /* training time so far (summary.json) */
    char stop_reason[128];
} sweep_run;

typedef struct {
    char dir[4096];
    char name[128];
    int has_manifest;       /* 0: the runs were found by scanning directories */
    int nbase;
    sweep_kv *base;         /* settings fixed for every run */
    int naxes;
    sweep_axis *axes;
    int nruns;
    sweep_run *runs;
} ach_sweep;

void sweep_init(ach_sweep *s);
void sweep_free(ach_sweep *s);

/* Building a plan. Keys are run-configuration keys (runcfg.h); every value
 * is checked against its key on the spot. `where` prefixes messages. */
int sweep_add_base(ach_sweep *s, const char *key, const char *val, const char *where, char *err, size_t errlen);
int sweep_add_axis(ach_sweep *s, const char *key, char *const *vals, int n, const char *where, char *err,
                   size_t errlen);
/* A SPEC.json text: {"name": ..., "base": {key: value}, "grid": {key: [values]}}
 * with values strings, numbers or booleans (on/off). */
int sweep_parse_spec(ach_sweep *s, const char *json, const char *where, char *err, size_t errlen);
/* One command-line word "key=value" or "key=v1,v2,...": a list makes an
 * axis. Values of the keys that take comma lists themselves (block,
 * block_layers, gamma_tensors, no_decay) are split on ';' instead; any
 * value with a ';' is a list. */
int sweep_parse_arg(ach_sweep *s, const char *kv, char *err, size_t errlen);
/* Expands the plan into runs (directories under dir, which must be set),
 * checking each run's whole configuration. At least one run. */
int sweep_expand(ach_sweep *s, char *err, size_t errlen);

/* The manifest as JSON text (malloc'd) / written atomically to DIR. */
char *sweep_manifest_json(const ach_sweep *s);
int sweep_write_manifest(const ach_sweep *s, char *err, size_t errlen);
/* Whether two plans have the same name, base, grid and runs. */
int sweep_same_plan(const ach_sweep *a, const ach_sweep *b);

/* Opens DIR: its manifest.json if there is one; else DIR itself if it is a
 * run directory (config.json); else every run directory found one or two
 * levels below it. Scanned runs get as settings the keys whose values differ
 * among them. States are not read yet: call sweep_refresh. */
int sweep_load(ach_sweep *s, const char *dir, char *err, size_t errlen);
/* Re-reads each run's state and latest metrics from its files. */
void sweep_refresh(ach_sweep *s);
void sweep_run_refresh(sweep_run *r);
/* The same without looking at the lock: for the process that holds it (its
 * own lock would otherwise read as RUNNING) or whose worker held it and has
 * exited (another process may be holding it for a moment to look). */
void sweep_run_refresh_locked(sweep_run *r);
const char *sweep_state_name(sweep_state st);
/* "n_layer=2 gamma=0.5" (the run's settings), into buf. */
void sweep_run_label(const sweep_run *r, char *buf, size_t n);

/* Every record of the run's metrics.jsonl, oldest first (*recs malloc'd,
 * NULL when there are none). 0, or -1 with a message naming file and line. */
int sweep_run_history(const sweep_run *r, ach_metrics **recs, int *n, char *err, size_t errlen);

/* The run's lock: 0 and *fd (O_CLOEXEC) when taken, 1 when another process
 * holds it, -1 with a message. Closing every copy of fd releases it. The
 * holder's pid and host are recorded in the file with sweep_lock_note. */
int sweep_run_lock(const sweep_run *r, int *fd, char *err, size_t errlen);
void sweep_lock_note(int fd, long pid);
#endif
