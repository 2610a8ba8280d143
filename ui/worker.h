/* The training thread. It owns every open ach_run: it trains the active run
 * one step (ach_run_advance) at a time and, between two steps, applies the
 * jobs the UI thread queued, in order. Results go back as events; each new
 * event writes a byte to wake_fd so the UI's poll() wakes up.
 *
 * Only the active run and one other stay open (a paper-size run holds a few
 * hundred MB); the others live in their run directories and are resumed
 * exactly (ach_run_resume) when needed.
 *
 * Ownership: tui_worker_send takes the job; tui_worker_take hands the caller
 * a list of events to free with tui_event_free. */
#ifndef TUI_WORKER_H
#define TUI_WORKER_H
#include <stddef.h>

#include "run.h"
#include "task.h"

typedef enum {
    JOB_CREATE,   /* dir, cfg: a new run (epoch 0 evaluated and recorded) */
    JOB_TRAIN,    /* run, dir: make it the active run */
    JOB_HOLD,     /* run: stop training it; its state is saved */
    JOB_FORGET,   /* run: close it without saving (it is being deleted) */
    JOB_SET,      /* run, dir, key, value: a live setting, at a step boundary */
    JOB_SAVE,     /* every open run saves its state */
    JOB_COPY,     /* save, then copy the listed run directories under dst */
    JOB_COSINE,   /* run, dir, layer: conv cosine at epoch 0 and now */
    JOB_ATTN,     /* run, dir, layer, head, seq: hidden attention */
    JOB_BLOCK,    /* run, dir, arg (positions), arg2 (layers), per_pair */
    JOB_SUBST     /* run, dir, layer, arg (from), per_pair */
} tui_job_kind;

typedef struct tui_job {
    tui_job_kind kind;
    int run;
    long req;
    char dir[1024];
    ach_runcfg cfg;
    char key[64], arg[256], arg2[256];
    int layer, head, seq, per_pair;
    int quiet;                /* a refresh nobody typed: no log line */
    /* JOB_COPY: directories to copy and the names they get under dst/runs/ */
    char dst[1024];
    int ncopy;
    char (*copy_src)[1024];
    int *copy_id;
    struct tui_job *next;
} tui_job;

typedef enum {
    EV_RECORD,    /* an epoch record (m); epoch 0 after JOB_CREATE */
    EV_PROGRESS,  /* epoch, batch, nbatches, rate */
    EV_DONE,      /* the run finished: text = reason */
    EV_FAILED,    /* the run cannot go on: text = message */
    EV_HELD,      /* JOB_HOLD done: epoch, batch */
    EV_SET,       /* JOB_SET: ok, key, text = value or message */
    EV_SAVED,     /* JOB_SAVE / JOB_COPY: ok, text = message */
    EV_HEAT,      /* JOB_COSINE / JOB_ATTN: ok, matrices or text = message */
    EV_REPORT,    /* JOB_BLOCK / JOB_SUBST: ok, long_text = table or text = message */
} tui_event_kind;

typedef struct tui_event {
    tui_event_kind kind;
    int run;
    long req;
    int ok, quiet;
    ach_metrics m;
    int epoch, batch, nbatches;
    double rate, epoch_wall;
    char key[64];
    char text[1024];
    char *long_text;          /* owned */
    /* EV_HEAT */
    int heat_kind;            /* 1 cosine, 2 attention (tui_heat_kind) */
    int rows, cols, layer, head, seq;
    double *a, *b;            /* owned */
    char labels[64][8];
    struct tui_event *next;
} tui_event;

typedef struct tui_worker tui_worker;

tui_worker *tui_worker_start(char *err, size_t errlen);
int tui_worker_wake_fd(const tui_worker *w);
void tui_worker_send(tui_worker *w, tui_job *job);
/* Every pending event, oldest first (NULL if none); drains wake_fd. */
tui_event *tui_worker_take(tui_worker *w);
void tui_event_free(tui_event *e);
/* Lets the jobs queued so far finish, saves every open run's state, joins
 * the thread and frees everything. */
void tui_worker_stop(tui_worker *w);
/* A zeroed job of that kind (malloc'd), or NULL when out of memory. */
tui_job *tui_job_new(tui_job_kind kind);
void tui_job_free(tui_job *j);

/* The kernels the workbench trains with. */
const ach_kernels *tui_kernels(void);

/* The analyses (worker_analysis.c), in the worker at a step boundary with
 * the run open: 0 with the result in ev, or -1 with a message in ev->text. */
int tui_worker_analysis(ach_run *r, const tui_job *j, tui_event *ev);
#endif
