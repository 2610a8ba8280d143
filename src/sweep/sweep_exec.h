/* Running a sweep's runs: local worker processes, each `achilles train`
 * (the same binary) on one run directory, under that run's lock:
 *   - done (summary.json says so): skipped;
 *   - stopped (state.safetensors): `train --resume RUN`;
 *   - new, or partial (killed while starting): `train --out RUN key=value...`
 *     after clearing what the aborted start left;
 *   - held by another process: waited for (or, for a single run, left to it).
 * With until_epoch, a worker trains its run up to that epoch of the run's
 * schedule and saves it; a run already there is held, not started. Running
 * the sweep again with a later epoch, or without one, goes on from there.
 * A stop request (the caller's signal handler sets *stop to the signal) is
 * forwarded to every worker, which saves its state; the call then waits for
 * them and returns. Running the sweep again finishes each run exactly once. */
#ifndef ACH_SWEEP_EXEC_H
#define ACH_SWEEP_EXEC_H
#include <signal.h>
#include <stdio.h>

#include "sweep.h"

typedef struct {
    int workers;                 /* training processes at once (>= 1) */
    const char *exe;             /* the achilles binary */
    int only;                    /* -1: every run; else only this index (no waiting on others' locks) */
    int threads;                 /* threads= given to new runs that do not set it; 0: none */
    int until_epoch;             /* > 0: train each run up to this epoch, then leave it stopped */
    volatile sig_atomic_t *stop; /* nonzero (a signal number): forward it, wait, return */
    FILE *out;                   /* progress lines */
} sweep_exec_opts;

typedef struct {
    int done;        /* runs finished (now or before) */
    int failed;      /* exited with an error this time */
    int stopped;     /* saved and stopped by a forwarded signal */
    int elsewhere;   /* left to another process that holds the lock */
    int started;     /* training processes started */
    int held;        /* stopped at until_epoch (now or before) */
} sweep_exec_result;

/* 0 when every requested run is done; 1 otherwise (see *res). */
int sweep_execute(ach_sweep *s, const sweep_exec_opts *o, sweep_exec_result *res);

/* The running executable's path (/proc/self/exe, else argv0), into buf. */
void sweep_self_exe(const char *argv0, char *buf, size_t n);
/* CPUs this process may run on (its affinity mask; Slurm sets it). */
int sweep_cpu_count(void);
/* "1h02m", "4m10s", "12s"; "?" for unknown. */
void sweep_fmt_duration(double s, char *buf, size_t n);
#endif
