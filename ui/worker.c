/* The training thread: jobs in, events out, one ach_run_advance at a time.
 * Jobs are applied only between two steps, so every change to a run (a live
 * setting, a saved state, an analysis on its weights) happens at a step
 * boundary. */
#include "worker.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "files.h"

#define WSLOTS 2                 /* open runs: the active one and one more */
#define PROGRESS_EVERY 0.25      /* seconds between progress events */

typedef struct {
    int id;                      /* 0: free */
    ach_run r;
    int dirty;                   /* stepped or changed since its state was saved */
    unsigned long used;          /* for least-recently-used eviction */
} wslot;

struct tui_worker {
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    tui_job *jobs, *jobs_tail;
    tui_event *evs, *evs_tail;
    int quit;                    /* set by tui_worker_stop */
    int wake[2];
    /* below: the worker thread's own */
    wslot slot[WSLOTS];
    int active;                  /* run id being trained, 0 if none */
    unsigned long tick;
    double last_progress, epoch_t0;
};

/* the same kernels as achilles train, so either continues the other exactly */
const ach_kernels *tui_kernels(void) { return ach_fast_kernels(); }

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

tui_job *tui_job_new(tui_job_kind kind)
{
    tui_job *j = calloc(1, sizeof *j);
    if (j) j->kind = kind;
    return j;
}

void tui_job_free(tui_job *j)
{
    if (!j) return;
    free(j->copy_src);
    free(j->copy_id);
    free(j);
}

void tui_event_free(tui_event *e)
{
    while (e) {
        tui_event *next = e->next;
        free(e->long_text);
        free(e->a);
        free(e->b);
        free(e);
        e = next;
    }
}

static tui_event *ev_new(tui_event_kind kind, int run, long req)
{
    tui_event *e = calloc(1, sizeof *e);
    if (e) e->kind = kind, e->run = run, e->req = req;
    return e;
}

static void post(tui_worker *w, tui_event *e)
{
    if (!e) return;
    pthread_mutex_lock(&w->mu);
    if (w->evs_tail) w->evs_tail->next = e;
    else w->evs = e;
    w->evs_tail = e;
    pthread_mutex_unlock(&w->mu);
    /* a full pipe already means "wake up": EAGAIN is fine */
    ssize_t ignored = write(w->wake[1], "e", 1);
    (void)ignored;
}

static void post_text(tui_worker *w, tui_event_kind kind, int run, long req, int ok, const char *text)
{
    tui_event *e = ev_new(kind, run, req);
    if (!e) return;
    e->ok = ok;
    snprintf(e->text, sizeof e->text, "%s", text);
    post(w, e);
}

static wslot *find_slot(tui_worker *w, int id)
{
    for (int i = 0; i < WSLOTS; i++)
        if (w->slot[i].id == id) return &w->slot[i];
    return NULL;
}

static int save_slot(wslot *s, char *err, size_t errlen)
{
    if (!s->dirty) return 0;
    if (ach_run_save_state(&s->r, err, errlen)) return -1;
    s->dirty = 0;
    return 0;
}

static void close_slot(wslot *s)
{
    ach_run_close(&s->r);
    s->id = 0;
    s->dirty = 0;
}

/* A free slot, evicting the least recently used run that is not active
 * (its state saved first). NULL with a message if that save fails. */
static wslot *free_slot(tui_worker *w, char *err, size_t errlen)
{
    wslot *victim = NULL;
    for (int i = 0; i < WSLOTS; i++) {
        wslot *s = &w->slot[i];
        if (!s->id) return s;
        if (s->id != w->active && (!victim || s->used < victim->used)) victim = s;
    }
    if (!victim) {
        snprintf(err, errlen, "no free run slot");
        return NULL;
    }
    if (save_slot(victim, err, errlen)) return NULL;
    close_slot(victim);
    return victim;
}

/* The open run `id`, resumed from dir if it is not open. */
static ach_run *open_run(tui_worker *w, int id, const char *dir, char *err, size_t errlen)
{
    wslot *s = find_slot(w, id);
    if (!s) {
        if (!(s = free_slot(w, err, errlen))) return NULL;
        if (ach_run_resume(&s->r, dir, tui_kernels(), err, errlen)) return NULL;
        s->id = id;
        s->dirty = 0;
    }
    s->used = ++w->tick;
    return &s->r;
}

static void do_create(tui_worker *w, tui_job *j)
{
    char err[1024] = "";
    wslot *s = find_slot(w, j->run);
    if (s) close_slot(s); /* a reused id: the old run is gone */
    if (!(s = free_slot(w, err, sizeof err)) || ach_run_create(&s->r, &j->cfg, j->dir, tui_kernels(), err, sizeof err)) {
        post_text(w, EV_FAILED, j->run, j->req, 0, err);
        return;
    }
    s->id = j->run;
    s->dirty = 0;
    s->used = ++w->tick;
    tui_event *e = ev_new(EV_RECORD, j->run, j->req);
    if (e) {
        e->ok = 1;
        e->m = s->r.last;
        e->nbatches = s->r.nbatches;
        post(w, e);
    }
}

static void do_train(tui_worker *w, tui_job *j)
{
    char err[1024] = "";
    ach_run *r = open_run(w, j->run, j->dir, err, sizeof err);
    if (!r) {
        post_text(w, EV_FAILED, j->run, j->req, 0, err);
        return;
    }
    if (r->done) {
        post_text(w, EV_DONE, j->run, j->req, 1, r->stop_reason[0] ? r->stop_reason : "finished");
        return;
    }
    if (w->active && w->active != j->run) {
        wslot *prev = find_slot(w, w->active);
        if (prev && save_slot(prev, err, sizeof err)) post_text(w, EV_FAILED, w->active, 0, 0, err);
    }
    w->active = j->run;
    w->epoch_t0 = now_s();
    w->last_progress = 0;
}

static void do_hold(tui_worker *w, tui_job *j)
{
    char err[1024] = "";
    if (w->active == j->run) w->active = 0;
    wslot *s = find_slot(w, j->run);
    tui_event *e = ev_new(EV_HELD, j->run, j->req);
    if (!e) return;
    e->ok = 1;
    if (s) {
        if (save_slot(s, err, sizeof err)) e->ok = 0, snprintf(e->text, sizeof e->text, "%s", err);
        e->epoch = s->r.epoch, e->batch = s->r.batch, e->nbatches = s->r.nbatches;
    } else e->epoch = -1;
    post(w, e);
}

static void do_save(tui_worker *w, tui_job *j)
{
    char err[1024] = "";
    int ok = 1;
    for (int i = 0; i < WSLOTS && ok; i++)
        if (w->slot[i].id && save_slot(&w->slot[i], err, sizeof err)) ok = 0;
    for (int i = 0; ok && j->kind == JOB_COPY && i < j->ncopy; i++) {
        char dst[1200];
        snprintf(dst, sizeof dst, "%s/runs/%d", j->dst, j->copy_id[i]);
        if (tui_copy_tree(j->copy_src[i], dst, err, sizeof err)) ok = 0;
    }
    post_text(w, EV_SAVED, 0, j->req, ok, ok ? "" : err);
}

static void do_run_job(tui_worker *w, tui_job *j)
{
    char err[1024] = "";
    ach_run *r = open_run(w, j->run, j->dir, err, sizeof err);
    tui_event_kind kind = j->kind == JOB_SET ? EV_SET : j->kind == JOB_COSINE || j->kind == JOB_ATTN ? EV_HEAT : EV_REPORT;
    if (!r) {
        post_text(w, kind, j->run, j->req, 0, err);
        return;
    }
    tui_event *e = ev_new(kind, j->run, j->req);
    if (!e) return;
    snprintf(e->key, sizeof e->key, "%s", j->key);
    e->quiet = j->quiet;
    if (j->kind == JOB_SET) {
        e->ok = ach_run_set(r, j->key, j->arg, err, sizeof err) == 0;
        if (e->ok) {
            find_slot(w, j->run)->dirty = 1;
            /* the value as the library spells it ("on", "key,anchor1") */
            runcfg_get(&r->cfg, runcfg_key_find(j->key), e->text, sizeof e->text);
        } else snprintf(e->text, sizeof e->text, "%s", err);
    } else e->ok = tui_worker_analysis(r, j, e) == 0;
    e->epoch = r->epoch, e->batch = r->batch, e->nbatches = r->nbatches;
    post(w, e);
}

static void step(tui_worker *w)
{
    char err[1024] = "";
    wslot *s = find_slot(w, w->active);
    if (!s) {
        w->active = 0;
        return;
    }
    ach_run *r = &s->r;
    int epoch_before = r->epoch;
    ach_run_status st = ach_run_advance(r, err, sizeof err);
    double t = now_s();
    if (st == RUN_ERROR) {
        /* no save: the last good state on disk stays */
        post_text(w, EV_FAILED, s->id, 0, 0, err);
        close_slot(s);
        w->active = 0;
        return;
    }
    if (st == RUN_STEP) {
        s->dirty = 1;
        if (t - w->last_progress >= PROGRESS_EVERY) {
            w->last_progress = t;
            tui_event *e = ev_new(EV_PROGRESS, s->id, 0);
            if (e) {
                e->epoch = r->epoch, e->batch = r->batch, e->nbatches = r->nbatches;
                e->rate = r->epoch_train_s > 0 ? r->epoch_seqs / r->epoch_train_s : 0;
                post(w, e);
            }
        }
        return;
    }
    s->dirty = 0; /* finish_epoch saved the state */
    if (r->epoch != epoch_before) {
        tui_event *e = ev_new(EV_RECORD, s->id, 0);
        if (e) {
            e->ok = 1;
            e->m = r->last;
            e->epoch = r->epoch, e->nbatches = r->nbatches;
            e->rate = r->last.seq_per_s;
            e->epoch_wall = t - w->epoch_t0;
            post(w, e);
        }
        w->epoch_t0 = t;
    }
    if (st == RUN_DONE) {
        post_text(w, EV_DONE, s->id, 0, 1, r->stop_reason[0] ? r->stop_reason : "finished");
        w->active = 0;
    }
}

static void *worker_main(void *arg)
{
    tui_worker *w = arg;
    for (;;) {
        pthread_mutex_lock(&w->mu);
        while (!w->jobs && !w->active && !w->quit) pthread_cond_wait(&w->cv, &w->mu);
        tui_job *jobs = w->jobs;
        w->jobs = w->jobs_tail = NULL;
        int quit = w->quit;
        pthread_mutex_unlock(&w->mu);
        while (jobs) {
            tui_job *j = jobs;
            jobs = j->next;
            switch (j->kind) {
            case JOB_CREATE: do_create(w, j); break;
            case JOB_TRAIN: do_train(w, j); break;
            case JOB_HOLD: do_hold(w, j); break;
            case JOB_FORGET: {
                wslot *s = find_slot(w, j->run);
                if (s) close_slot(s);
                if (w->active == j->run) w->active = 0;
                char err[1024];
                if (!strcmp(j->arg, "remove") && j->dir[0] && tui_remove_tree(j->dir, err, sizeof err))
                    post_text(w, EV_FAILED, 0, j->req, 0, err);
                break;
            }
            case JOB_SAVE:
            case JOB_COPY: do_save(w, j); break;
            case JOB_SET:
            case JOB_COSINE:
            case JOB_ATTN:
            case JOB_BLOCK:
            case JOB_SUBST: do_run_job(w, j); break;
            }
            tui_job_free(j);
        }
        if (quit) break;
        if (w->active) step(w);
    }
    char err[1024];
    for (int i = 0; i < WSLOTS; i++)
        if (w->slot[i].id) {
            if (save_slot(&w->slot[i], err, sizeof err)) post_text(w, EV_FAILED, w->slot[i].id, 0, 0, err);
            close_slot(&w->slot[i]);
        }
    return NULL;
}

tui_worker *tui_worker_start(char *err, size_t errlen)
{
    tui_worker *w = calloc(1, sizeof *w);
    if (!w) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (pipe(w->wake)) {
        snprintf(err, errlen, "pipe: %s", strerror(errno));
        free(w);
        return NULL;
    }
    for (int i = 0; i < 2; i++) {
        fcntl(w->wake[i], F_SETFL, fcntl(w->wake[i], F_GETFL) | O_NONBLOCK);
        fcntl(w->wake[i], F_SETFD, FD_CLOEXEC);
    }
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    if (pthread_create(&w->th, NULL, worker_main, w)) {
        snprintf(err, errlen, "cannot start the training thread");
        close(w->wake[0]);
        close(w->wake[1]);
        free(w);
        return NULL;
    }
    return w;
}

int tui_worker_wake_fd(const tui_worker *w) { return w->wake[0]; }

void tui_worker_send(tui_worker *w, tui_job *job)
{
    if (!job) return;
    job->next = NULL;
    pthread_mutex_lock(&w->mu);
    if (w->jobs_tail) w->jobs_tail->next = job;
    else w->jobs = job;
    w->jobs_tail = job;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

tui_event *tui_worker_take(tui_worker *w)
{
    char buf[256];
    while (read(w->wake[0], buf, sizeof buf) > 0) {
    }
    pthread_mutex_lock(&w->mu);
    tui_event *e = w->evs;
    w->evs = w->evs_tail = NULL;
    pthread_mutex_unlock(&w->mu);
    return e;
}

void tui_worker_stop(tui_worker *w)
{
    if (!w) return;
    pthread_mutex_lock(&w->mu);
    w->quit = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->th, NULL);
    tui_job *j = w->jobs;
    while (j) {
        tui_job *next = j->next;
        tui_job_free(j);
        j = next;
    }
    tui_event_free(w->evs);
    close(w->wake[0]);
    close(w->wake[1]);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    free(w);
}
