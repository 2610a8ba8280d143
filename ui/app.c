/* The workbench's state machine: runs and their states, the one-at-a-time
 * scheduler, worker events, the log, saving and opening sessions. */
#include "tui.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "files.h"
#include "fsutil.h"
#include "session.h"

tui_process tui_proc = {NULL, 0, 0, 0, {-1, -1}};

const char *const tui_state_names[] = {"queued", "running", "paused", "done", "failed"};

/* ---- log --------------------------------------------------------------- */

void tui_logv(tui *app, const char *fmt, va_list ap)
{
    char text[4096], stamp[16];
    vsnprintf(text, sizeof text, fmt, ap);
    time_t t = time(NULL);
    struct tm tm;
    localtime_r(&t, &tm);
    strftime(stamp, sizeof stamp, "[%H:%M:%S] ", &tm);
    int first = 1;
    for (char *line = text; line;) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = 0;
        tui_log_line *slot = &app->log[(app->log_head + app->log_count) % TUI_LOG_LINES];
        if (app->log_count < TUI_LOG_LINES) app->log_count++;
        else app->log_head = (app->log_head + 1) % TUI_LOG_LINES;
        snprintf(slot->line, sizeof slot->line, "%-*.*s%.*s", TUI_LOG_STAMP, TUI_LOG_STAMP, first ? stamp : "",
                 TUI_LOG_WIDTH - TUI_LOG_STAMP - 1, line);
        first = 0;
        line = nl ? nl + 1 : NULL;
        if (line && !*line) break;
    }
    app->view.log_scroll = 0;
    app->dirty = 1;
}

void tui_log(tui *app, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    tui_logv(app, fmt, ap);
    va_end(ap);
}

const char *tui_log_get(const tui *app, int i)
{
    if (i < 0 || i >= app->log_count) return NULL;
    return app->log[(app->log_head + app->log_count - 1 - i) % TUI_LOG_LINES].line;
}

/* ---- wrapping: the log and the help overlay ------------------------------- */

int tui_text_cols(const char *s)
{
    int n = 0;
    for (; *s; s++) n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

static int is_blank(char c) { return c == ' ' || c == '\t'; }

/* The next character (a UTF-8 sequence is one). */
static const char *next_char(const char *p)
{
    for (p++; ((unsigned char)*p & 0xC0) == 0x80; p++) {
    }
    return p;
}

int tui_wrap(const char *line, int width, int margin, tui_row *rows, int max)
{
    const char *s = line, *stop = line + strcspn(line, "\n");
    if (width < 1) width = 1;
    int indent = 0;
    for (const char *p = line; p < stop && (indent < margin || is_blank(*p)); p = next_char(p)) indent++;
    indent += 2;
    if (indent > width / 2) indent = width / 2; /* a narrow pane keeps room for the text */
    int n = 0, ind = 0;
    for (;;) {
        /* as many characters as fit; brk: the first blank after the row's last word */
        const char *q = s, *brk = NULL, *end;
        int cols = 0, word = 0;
        for (; q < stop && cols < width - ind; q = next_char(q), cols++) {
            if (is_blank(*q) && word && !is_blank(q[-1])) brk = q;
            word |= !is_blank(*q);
        }
        if (q == stop || is_blank(*q)) end = q;
        else end = brk ? brk : q; /* a word longer than the row is cut */
        while (end > s && is_blank(end[-1])) end--;
        if (n < max) rows[n] = (tui_row){s, (int)(end - s), ind};
        n++;
        for (s = end; s < stop && is_blank(*s); s++) {
        }
        if (s == stop) return n;
        ind = indent;
    }
}

int tui_log_rows(const tui *app, int width, int back, int n, tui_row *out)
{
    tui_row rows[TUI_LOG_WIDTH]; /* a log line takes at most a row per byte */
    int total = 0;
    for (int k = 0; k < n; k++) out[k] = (tui_row){NULL, 0, 0};
    /* newest first, each line's rows bottom up: total counts rows from the newest */
    for (int i = 0; i < app->log_count; i++) {
        int m = tui_wrap(tui_log_get(app, i), width, TUI_LOG_STAMP, rows, TUI_LOG_WIDTH);
        for (int j = (m < TUI_LOG_WIDTH ? m : TUI_LOG_WIDTH) - 1; j >= 0; j--, total++) {
            int k = n - 1 - (total - back);
            if (total >= back && k >= 0) out[k] = rows[j];
        }
    }
    return total;
}

void tui_page_open(tui *app, const char *title)
{
    tui_strlcpy(app->page.title, title, sizeof app->page.title);
    app->page.text[0] = 0;
    app->page.len = 0;
    app->page.scroll = 0;
    app->view.help_shown = 1;
    app->view.runs_full = 0;
    app->dirty = 1;
}

void tui_page_add(tui *app, const char *fmt, ...)
{
    tui_page *p = &app->page;
    size_t room = sizeof p->text - p->len;
    if (room < 2) return;
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(p->text + p->len, room - 1, fmt, ap);
    va_end(ap);
    if (k < 0) return;
    /* a text too long loses its end, never its line structure */
    p->len += (size_t)k < room - 2 ? (size_t)k : room - 2;
    p->text[p->len++] = '\n';
    p->text[p->len] = 0;
}

int tui_page_rows(const tui *app, int width, int top, int n, tui_row *out)
{
    enum { MAXROWS = 512 };
    tui_row rows[MAXROWS];
    int total = 0;
    for (int k = 0; k < n; k++) out[k] = (tui_row){NULL, 0, 0};
    for (const char *line = app->page.text; *line;) {
        int m = tui_wrap(line, width, 0, rows, MAXROWS);
        for (int j = 0; j < m && j < MAXROWS; j++, total++)
            if (total >= top && total - top < n) out[total - top] = rows[j];
        line += strcspn(line, "\n");
        if (*line) line++;
    }
    return total;
}

void tui_strlcpy(char *dst, const char *src, size_t n)
{
    size_t k = strlen(src);
    if (!n) return;
    if (k >= n) k = n - 1;
    memcpy(dst, src, k);
    dst[k] = 0;
}

/* ---- runs -------------------------------------------------------------- */

tui_run *tui_run_find(tui *app, int id)
{
    for (int i = 0; i < app->nruns; i++)
        if (app->runs[i].id == id) return &app->runs[i];
    return NULL;
}

tui_run *tui_focus(tui *app)
{
    tui_run *r = app->view.focus ? tui_run_find(app, app->view.focus) : NULL;
    if (r) return r;
    for (int i = 0; i < app->nruns; i++)
        if (app->runs[i].state == RS_RUNNING) return &app->runs[i];
    return app->nruns ? &app->runs[app->nruns - 1] : NULL;
}

/* The text value of a run setting, or "" when this library has no such key. */
static void cfg_value(const ach_runcfg *c, const char *key, char *buf, size_t n)
{
    int i = runcfg_key_find(key);
    if (i >= 0) runcfg_get(c, i, buf, n);
    else buf[0] = 0;
}

void tui_run_summary(const tui *app, const tui_run *r, char *buf, size_t n) { tui_run_summary_at(app, r, 2, buf, n); }

void tui_run_summary_at(const tui *app, const tui_run *r, int detail, char *buf, size_t n)
{
    char v[300], g[32];
    const ach_runcfg *c = &r->cfg;
    snprintf(g, sizeof g, "%g", c->model.gamma);
    size_t k = snprintf(buf, n, "L%d %s%s%s%s", c->model.n_layer, app->utf8 ? "\xce\xb3" : "g", g,
                        detail > 0 ? " " : "", detail > 0 ? cfg_arch_name(c->model.arch) : "");
    cfg_value(c, "all_one_conv", v, sizeof v);
    k += snprintf(buf + k, k < n ? n - k : 0, " %s", !strcmp(v, "on") ? "all-one" : "std");
    cfg_value(c, "pos_enc", v, sizeof v);
    if (v[0] && strcmp(v, "none")) k += snprintf(buf + k, k < n ? n - k : 0, " pe:%.3s", v);
    cfg_value(c, "block", v, sizeof v);
    if (v[0] && strcmp(v, "none")) k += snprintf(buf + k, k < n ? n - k : 0, " block:%s", v);
    const char *p = c->preset, *slash = strrchr(p, '/');
    char pname[64];
    tui_strlcpy(pname, slash ? slash + 1 : p, sizeof pname);
    size_t pl = strlen(pname);
    if (pl > 5 && !strcmp(pname + pl - 5, ".json")) pname[pl - 5] = 0;
    if (detail > 1 && strcmp(pname, "composite")) snprintf(buf + k, k < n ? n - k : 0, " %s", pname);
}

static int last_epoch(const tui_run *r) { return r->nhist ? r->hist[r->nhist - 1].epoch : 0; }

double tui_run_eta(const tui_run *r)
{
    if (r->state != RS_RUNNING && r->state != RS_QUEUED && r->state != RS_PAUSED) return -1;
    double per = r->epoch_wall;
    if (per <= 0 && r->rate > 0 && r->nbatches) per = (double)r->nbatches * r->cfg.batch_size / r->rate;
    if (per <= 0) return -1;
    double left = r->cfg.epochs - last_epoch(r) - (r->nbatches ? (double)r->batch / r->nbatches : 0);
    return left < 0 ? 0 : left * per;
}

void tui_fmt_duration(double s, char *buf, size_t n)
{
    if (s < 0 || s != s) snprintf(buf, n, "?");
    else if (s < 60) snprintf(buf, n, "%.0fs", s);
    else if (s < 600) snprintf(buf, n, "%dm%02ds", (int)s / 60, (int)s % 60);
    else if (s < 3600) snprintf(buf, n, "%.0fm", s / 60);
    else if (s < 36000) snprintf(buf, n, "%dh%02dm", (int)(s / 3600), (int)(s / 60) % 60);
    else if (s < 86400 * 3) snprintf(buf, n, "%.0fh", s / 3600);
    else snprintf(buf, n, "%.0fd", s / 86400);
}

void tui_fmt_rate(double r, char *buf, size_t n)
{
    if (!(r > 0)) snprintf(buf, n, "-");
    else if (r >= 1e6) snprintf(buf, n, "%.1fM", r / 1e6);
    else if (r >= 1e4) snprintf(buf, n, "%.1fk", r / 1e3);
    else if (r >= 1e3) snprintf(buf, n, "%.2fk", r / 1e3);
    else snprintf(buf, n, "%.0f", r);
}

int tui_run_add_point(tui_run *r, const ach_metrics *m)
{
    /* the workbench's curves are the composite's: loss, pair 43, seen pairs */
    const ach_named_metrics *e = &m->eval;
    tui_point p = {m->epoch,
                   m->train_loss,
                   task_metric(e, TASK_METRIC_TEST_LOSS),
                   task_metric(e, TASK_METRIC_ACC43_COMP),
                   task_metric(e, TASK_METRIC_ACC43_SYM),
                   task_metric(e, TASK_METRIC_ACC_SEEN),
                   m->seq_per_s};
    /* a record for an epoch we have (a resumed run re-records it) replaces it and what follows */
    int i = r->nhist;
    while (i > 0 && r->hist[i - 1].epoch >= p.epoch) i--;
    if (i == r->cap) {
        int cap = r->cap ? 2 * r->cap : 64;
        tui_point *h = realloc(r->hist, cap * sizeof *h);
        if (!h) return -1;
        r->hist = h, r->cap = cap;
    }
    r->hist[i] = p;
    r->nhist = i + 1;
    return 0;
}

void tui_run_sync_live(tui_run *r, const ach_metrics *m)
{
    char err[256];
    if (!m->pos_enc[0]) return; /* a record from before interventions existed */
    runcfg_set(&r->cfg, "all_one_conv", m->all_one_conv ? "on" : "off", "record", err, sizeof err);
    runcfg_set(&r->cfg, "pos_enc", m->pos_enc, "record", err, sizeof err);
    runcfg_set(&r->cfg, "block", m->block[0] ? m->block : "none", "record", err, sizeof err);
    runcfg_set(&r->cfg, "block_layers", m->block_layers[0] ? m->block_layers : "all", "record", err, sizeof err);
    runcfg_set(&r->cfg, "block_train", m->block_train ? "on" : "off", "record", err, sizeof err);
}

long tui_send(tui *app, tui_run *r, tui_job *job)
{
    if (!job) return 0;
    long req = job->req = ++app->next_req;
    if (r) {
        job->run = r->id;
        snprintf(job->dir, sizeof job->dir, "%s", r->dir);
    }
    if (!app->worker) { /* an app made without one (the REPL fuzzer): commands parse, jobs go nowhere */
        tui_job_free(job);
        return req;
    }
    tui_worker_send(app->worker, job); /* the worker owns (and may free) it from here */
    return req;
}

static tui_job *job(tui_job_kind kind) { return tui_job_new(kind); }

int tui_new_run(tui *app, const ach_runcfg *cfg, const char *name, char *err, size_t errlen)
{
    if (app->nruns >= TUI_MAX_RUNS) {
        snprintf(err, errlen, "a session holds at most %d runs; delete one first", TUI_MAX_RUNS);
        return -1;
    }
    if (runcfg_validate(cfg, err, errlen)) return -1;
    /* the preset is read here too, so a bad one (or one no model can train on) is reported now */
    ach_task t;
    if (task_load_with(&t, cfg->preset, cfg->seq_len, cfg->key_offset, NULL, err, errlen)) return -1;
    int untrainable = task_trainable(&t, err, errlen);
    task_free(&t);
    if (untrainable) return -1;
    tui_run *r = &app->runs[app->nruns];
    memset(r, 0, sizeof *r);
    /* a directory left by a run the session no longer lists is not ours to reuse */
    do {
        r->id = app->next_id++;
        snprintf(r->dir, sizeof r->dir, "%.990s/runs/%d", app->session_dir, r->id);
    } while (tui_exists(r->dir));
    r->cfg = *cfg;
    r->state = RS_QUEUED;
    r->queue_pos = app->next_queue_pos++;
    snprintf(r->name, sizeof r->name, "%s", name ? name : "");
    tui_job *j = job(JOB_CREATE);
    if (!j) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    j->cfg = *cfg;
    app->nruns++;
    tui_send(app, r, j);
    app->dirty = 1;
    return 0;
}

/* Created: its run directory holds at least epoch 0. */
static int created(const tui_run *r) { return r->nhist > 0; }

void tui_schedule(tui *app)
{
    tui_run *next = NULL;
    for (int i = 0; i < app->nruns; i++) {
        tui_run *r = &app->runs[i];
        if (r->state == RS_RUNNING) return;
        if (r->state == RS_QUEUED && created(r) && (!next || r->queue_pos < next->queue_pos)) next = r;
    }
    if (!next) return;
    next->state = RS_RUNNING;
    tui_send(app, next, job(JOB_TRAIN));
    app->dirty = 1;
}

static tui_run *running_run(tui *app)
{
    for (int i = 0; i < app->nruns; i++)
        if (app->runs[i].state == RS_RUNNING) return &app->runs[i];
    return NULL;
}

static int finished(const tui_run *r) { return r->nhist && last_epoch(r) >= r->cfg.epochs; }

int tui_start_run(tui *app, tui_run *r, char *err, size_t errlen)
{
    if (r->state == RS_RUNNING) {
        snprintf(err, errlen, "run %d is already running", r->id);
        return -1;
    }
    if (r->state == RS_FAILED || finished(r)) {
        snprintf(err, errlen, "run %d is %s; 'new %d' makes a fresh run with its settings", r->id,
                 r->state == RS_FAILED ? "failed" : "finished", r->id);
        return -1;
    }
    tui_run *cur = running_run(app);
    int min_pos = r->queue_pos;
    for (int i = 0; i < app->nruns; i++)
        if (app->runs[i].queue_pos < min_pos) min_pos = app->runs[i].queue_pos;
    if (cur) {
        /* preempted: it goes back to the head of the queue */
        tui_send(app, cur, job(JOB_HOLD));
        cur->state = RS_QUEUED;
        cur->queue_pos = min_pos - 1;
        tui_log(app, "run %d goes back to the queue", cur->id);
    }
    r->state = RS_QUEUED;
    r->queue_pos = min_pos - 2;
    if (created(r)) {
        r->state = RS_RUNNING;
        tui_send(app, r, job(JOB_TRAIN));
    }
    app->dirty = 1;
    return 0;
}

int tui_pause_run(tui *app, tui_run *r, char *err, size_t errlen)
{
    if (r->state != RS_RUNNING && r->state != RS_QUEUED) {
        snprintf(err, errlen, "run %d is %s, not running or queued", r->id, tui_state_names[r->state]);
        return -1;
    }
    if (r->state == RS_RUNNING) tui_send(app, r, job(JOB_HOLD));
    r->state = RS_PAUSED;
    tui_schedule(app);
    app->dirty = 1;
    return 0;
}

int tui_resume_run(tui *app, tui_run *r, char *err, size_t errlen)
{
    if (r->state != RS_PAUSED && !(r->state == RS_DONE && !finished(r))) {
        snprintf(err, errlen, "run %d is %s%s", r->id, tui_state_names[r->state],
                 r->state == RS_DONE ? " (finished)" : r->state == RS_FAILED ? "; it cannot go on" : ", not paused");
        return -1;
    }
    r->state = RS_QUEUED;
    r->queue_pos = app->next_queue_pos++;
    r->note[0] = 0;
    tui_schedule(app);
    app->dirty = 1;
    return 0;
}

int tui_stop_run(tui *app, tui_run *r, char *err, size_t errlen)
{
    if (r->state == RS_DONE || r->state == RS_FAILED) {
        snprintf(err, errlen, "run %d is already %s", r->id, tui_state_names[r->state]);
        return -1;
    }
    if (r->state == RS_RUNNING) tui_send(app, r, job(JOB_HOLD));
    r->state = RS_DONE;
    snprintf(r->note, sizeof r->note, "stopped at epoch %d", last_epoch(r));
    tui_schedule(app);
    app->dirty = 1;
    return 0;
}

int tui_delete_run(tui *app, tui_run *r, char *err, size_t errlen)
{
    tui_job *j = job(JOB_FORGET);
    if (!j) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    /* the worker removes the directory: it is the only writer of run files */
    snprintf(j->arg, sizeof j->arg, "remove");
    tui_send(app, r, j);
    int id = r->id;
    free(r->hist);
    int i = (int)(r - app->runs);
    memmove(&app->runs[i], &app->runs[i + 1], (app->nruns - i - 1) * sizeof *r);
    app->nruns--;
    tui_view *v = &app->view;
    if (v->focus == id) v->focus = 0;
    for (int k = 0; k < v->noverlay; k++)
        if (v->overlay[k] == id) memmove(&v->overlay[k], &v->overlay[k + 1], (--v->noverlay - k) * sizeof(int)), k--;
    if (app->heat.run == id) app->heat.kind = HEAT_NONE;
    tui_schedule(app);
    app->dirty = 1;
    return 0;
}

/* The cosine heatmap of the focused run follows its training: a quiet
 * request per epoch, unless someone asked for another heatmap. */
static void refresh_heat(tui *app, tui_run *r)
{
    if (!app->view.heat_shown || app->heat_pending || !r->nhist) return;
    const tui_heat *h = &app->heat;
    if (!(h->kind == HEAT_NONE || h->automatic || (h->kind == HEAT_COSINE && h->run == r->id))) return;
    tui_job *hj = job(JOB_COSINE);
    if (!hj) return;
    hj->layer = app->view.layer < r->cfg.model.n_layer ? app->view.layer : 0;
    hj->quiet = 1;
    app->heat_pending = 1;
    tui_send(app, r, hj);
}

/* ---- saving ---------------------------------------------------------- */

static int same_dir(const char *a, const char *b)
{
    char ra[PATH_MAX], rb[PATH_MAX];
    if (!realpath(a, ra) || !realpath(b, rb)) return !strcmp(a, b);
    return !strcmp(ra, rb);
}

int tui_save(tui *app, const char *dest, int wait, char *err, size_t errlen)
{
    if (app->save_req) {
        snprintf(err, errlen, "a save is already in progress");
        return -1;
    }
    char dir[TUI_PATH], name[128], stage[TUI_PATH] = "";
    int in_place = 1;
    if (dest) {
        if (session_resolve(app->sessions_root, dest, dir, sizeof dir, name, sizeof name, err, errlen)) return -1;
        in_place = same_dir(dir, app->session_dir);
    }
    tui_job *j;
    if (in_place) {
        snprintf(dir, sizeof dir, "%s", app->session_dir);
        snprintf(name, sizeof name, "%s", app->session_name);
        j = job(JOB_SAVE);
    } else {
        /* a snapshot inside this session or around it would copy itself */
        char rd[PATH_MAX], rs[PATH_MAX];
        if (!realpath(dir, rd)) snprintf(rd, sizeof rd, "%s", dir);
        if (realpath(app->session_dir, rs) &&
            ((!strncmp(rd, rs, strlen(rs)) && (rd[strlen(rs)] == '/' || !rd[strlen(rs)])) ||
             (!strncmp(rs, rd, strlen(rd)) && rs[strlen(rd)] == '/'))) {
            snprintf(err, errlen, "%s: a snapshot cannot be inside this session's directory or contain it", dir);
            return -1;
        }
        char sj[TUI_PATH + 32];
        snprintf(sj, sizeof sj, "%s/session.json", dir);
        if (tui_exists(dir)) {
            if (!tui_exists(sj)) {
                snprintf(err, errlen, "%s exists and is not a session snapshot; choose another name", dir);
                return -1;
            }
            tui_log(app, "replacing the snapshot in %s", dir);
        }
        /* written beside it, then swapped in whole: a crash keeps the old one */
        tui_staging_dir(dir, stage, sizeof stage);
        if (tui_remove_tree(stage, err, errlen)) return -1; /* from a save that died */
        j = job(JOB_COPY);
        if (j) {
            int n = app->nruns ? app->nruns : 1;
            j->copy_src = calloc(n, sizeof *j->copy_src);
            j->copy_id = calloc(n, sizeof *j->copy_id);
            if (!j->copy_src || !j->copy_id) tui_job_free(j), j = NULL;
        }
        if (j) {
            for (int i = 0; i < app->nruns; i++) {
                snprintf(j->copy_src[i], sizeof j->copy_src[i], "%s", app->runs[i].dir);
                j->copy_id[i] = app->runs[i].id;
            }
            j->ncopy = app->nruns;
            snprintf(j->dst, sizeof j->dst, "%s", stage);
        }
    }
    if (!j) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    snprintf(app->save_dest, sizeof app->save_dest, "%s", dir);
    snprintf(app->save_name, sizeof app->save_name, "%s", name);
    snprintf(app->save_stage, sizeof app->save_stage, "%s", stage);
    app->save_error[0] = 0;
    app->save_req = tui_send(app, NULL, j);
    if (!wait) return 0;
    while (app->save_req) tui_pump(app, 1000);
    if (app->save_error[0]) {
        snprintf(err, errlen, "%s", app->save_error);
        return -1;
    }
    return 0;
}

/* ---- worker events ----------------------------------------------------- */

static void on_event(tui *app, tui_event *e)
{
    tui_run *r = e->run ? tui_run_find(app, e->run) : NULL;
    char err[1024];
    switch (e->kind) {
    case EV_RECORD:
        if (!r) break;
        if (tui_run_add_point(r, &e->m)) tui_log(app, "run %d: out of memory for its history", r->id);
        tui_run_sync_live(r, &e->m);
        if (e->epoch_wall > 0) r->epoch_wall = e->epoch_wall;
        if (e->rate > 0) r->rate = e->rate;
        if (e->nbatches) r->nbatches = e->nbatches;
        r->batch = 0;
        if (r == tui_focus(app)) refresh_heat(app, r);
        if (e->m.epoch == 0) {
            char sum[160];
            tui_run_summary(app, r, sum, sizeof sum);
            tui_log(app, "run %d created: %s, epoch 0 test loss %.3f", r->id, sum, task_metric(&e->m.eval, TASK_METRIC_TEST_LOSS));
        }
        tui_schedule(app);
        break;
    case EV_PROGRESS:
        if (!r) break;
        r->batch = e->batch, r->nbatches = e->nbatches;
        if (e->rate > 0) r->rate = e->rate;
        break;
    case EV_DONE:
        if (!r) break;
        if (r->state != RS_DONE) tui_log(app, "run %d done: %s", r->id, e->text);
        r->state = RS_DONE;
        tui_strlcpy(r->note, e->text, sizeof r->note);
        tui_schedule(app);
        break;
    case EV_FAILED:
        if (!r) {
            tui_log(app, "error: %s", e->text);
            break;
        }
        if (r->state != RS_FAILED) tui_log(app, "run %d failed: %s", r->id, e->text);
        r->state = RS_FAILED;
        tui_strlcpy(r->note, e->text, sizeof r->note);
        tui_schedule(app);
        break;
    case EV_HELD:
        if (!r) break;
        if (!e->ok) tui_log(app, "run %d: could not save its state: %s", r->id, e->text);
        else if (e->epoch >= 0) {
            r->batch = e->batch;
            tui_log(app, "run %d holds at epoch %d, step %d/%d (%s)", r->id, e->epoch, e->batch, e->nbatches,
                    r->state == RS_QUEUED ? "queued" : tui_state_names[r->state]);
        }
        break;
    case EV_SET:
        if (!r) break;
        if (!e->ok) {
            tui_log(app, "run %d: %s", r->id, e->text);
            break;
        }
        if (runcfg_set(&r->cfg, e->key, e->text, "live", err, sizeof err)) tui_log(app, "run %d: %s", r->id, err);
        tui_log(app, "run %d: %s %s from epoch %d step %d", r->id, e->key, e->text, e->epoch, e->batch);
        break;
    case EV_SAVED:
        if (e->req != app->save_req) break;
        app->save_req = 0;
        const char *stage = app->save_stage;
        if (!e->ok || session_write(app, *stage ? stage : app->save_dest, app->save_name, err, sizeof err) ||
            (*stage && tui_replace_tree(stage, app->save_dest, err, sizeof err))) {
            tui_strlcpy(app->save_error, e->ok ? err : e->text, sizeof app->save_error);
            tui_log(app, "save failed: %s", app->save_error);
            if (*stage) tui_remove_tree(stage, err, sizeof err);
            break;
        }
        if (!strcmp(app->save_dest, app->session_dir)) tui_log(app, "session saved to %s", app->save_dest);
        else tui_log(app, "snapshot '%s' saved to %s (this session goes on in %s)", app->save_name, app->save_dest,
                     app->session_dir);
        break;
    case EV_HEAT:
        if (e->quiet) app->heat_pending = 0;
        if (!e->ok) {
            if (!e->quiet) tui_log(app, "heatmap: %s", e->text);
            break;
        }
        if (e->quiet && !(app->heat.kind == HEAT_NONE || app->heat.automatic ||
                          (app->heat.kind == HEAT_COSINE && app->heat.run == e->run)))
            break; /* a heatmap someone asked for came first: keep it */
        free(app->heat.a);
        free(app->heat.b);
        memset(&app->heat, 0, sizeof app->heat);
        app->heat.kind = e->heat_kind == HEAT_ATTENTION ? HEAT_ATTENTION : HEAT_COSINE;
        app->heat.automatic = e->quiet;
        app->heat.run = e->run, app->heat.layer = e->layer, app->heat.head = e->head, app->heat.seq = e->seq;
        app->heat.epoch = e->epoch;
        app->heat.rows = e->rows, app->heat.cols = e->cols;
        app->heat.a = e->a, app->heat.b = e->b;
        e->a = e->b = NULL;
        memcpy(app->heat.labels, e->labels, sizeof app->heat.labels);
        if (!e->quiet) {
            app->view.heat_shown = 1;
            app->heat_serial++;
            if (e->long_text) tui_log(app, "%s", e->long_text);
        }
        break;
    case EV_REPORT:
        tui_log(app, "%s", e->ok && e->long_text ? e->long_text : e->text);
        break;
    }
    app->dirty = 1;
}

int tui_handle_events(tui *app)
{
    int n = 0;
    tui_event *e = tui_worker_take(app->worker);
    while (e) {
        tui_event *next = e->next;
        e->next = NULL;
        on_event(app, e);
        tui_event_free(e);
        e = next;
        n++;
    }
    return n;
}

int tui_pump(tui *app, int timeout_ms)
{
    struct pollfd p = {tui_worker_wake_fd(app->worker), POLLIN, 0};
    if (poll(&p, 1, timeout_ms) < 0 && errno != EINTR) return -1;
    return tui_handle_events(app);
}

/* ---- lifecycle --------------------------------------------------------- */

void tui_demo_config(ach_runcfg *c)
{
    char err[256];
    /* the paper's model on a reduced task (data/demo.json): an epoch is
     * about a second on two cores, so the curves move at once */
    static const char *const settings[] = {"preset=demo", "n_layer=2", "gamma=1", "epochs=40", "batch_size=200",
                                           "lr_max=1e-2", "lr_min=1e-4", "warmup_epochs=2", "ckpt_every=10"};
    runcfg_defaults(c);
    for (size_t i = 0; i < sizeof settings / sizeof *settings; i++) runcfg_assign(c, settings[i], err, sizeof err);
}

int tui_make_demo(tui *app, char *err, size_t errlen)
{
    ach_runcfg c;
    tui_demo_config(&c);
    if (tui_new_run(app, &c, "std", err, errlen)) return -1;
    /* the paper's Fig. 4b pair: the same model with the all-one conv */
    char e2[256];
    const char *name = "all-one";
    if (runcfg_assign(&c, "all_one_conv=on", e2, sizeof e2)) {
        runcfg_assign(&c, "gamma=0.5", e2, sizeof e2);
        name = "gamma0.5";
    }
    return tui_new_run(app, &c, name, err, errlen);
}

int tui_init(tui *app, const tui_opts *o, char *err, size_t errlen)
{
    memset(app, 0, sizeof *app);
    app->log = calloc(TUI_LOG_LINES, sizeof *app->log);
    if (!app->log) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    snprintf(app->sessions_root, sizeof app->sessions_root, "%s", o && o->sessions_root ? o->sessions_root : "sessions");
    app->utf8 = o ? o->utf8 : 0;
    app->color = o ? o->color : 0;
    app->next_id = 1;
    app->next_queue_pos = 1;
    app->view.overlay_all = 1;
    app->view.heat_shown = 1;
    app->worker = tui_worker_start(err, errlen);
    if (!app->worker) {
        free(app->log);
        app->log = NULL;
        return -1;
    }
    return 0;
}

static int dir_is_empty(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return 0;
    struct dirent *e;
    int empty = 1;
    while (empty && (e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) empty = 0;
    closedir(d);
    return empty;
}

int tui_open(tui *app, const char *session, char *err, size_t errlen)
{
    char dir[TUI_PATH], name[128], sj[TUI_PATH + 32];
    if (session_resolve(app->sessions_root, session, dir, sizeof dir, name, sizeof name, err, errlen)) return -1;
    snprintf(sj, sizeof sj, "%s/session.json", dir);
    snprintf(app->session_dir, sizeof app->session_dir, "%s", dir);
    snprintf(app->session_name, sizeof app->session_name, "%s", name);
    if (tui_exists(sj)) {
        if (session_read(app, dir, err, errlen)) return -1;
        int n[RS_FAILED + 1] = {0};
        for (int i = 0; i < app->nruns; i++) n[app->runs[i].state]++;
        tui_log(app, "session '%s' loaded from %s: %d run%s (%d queued, %d paused, %d done, %d failed)", name, dir,
                app->nruns, app->nruns == 1 ? "" : "s", n[RS_QUEUED], n[RS_PAUSED], n[RS_DONE], n[RS_FAILED]);
        tui_schedule(app);
        tui_run *f = tui_focus(app);
        if (f && f->state != RS_FAILED) refresh_heat(app, f);
        return 0;
    }
    if (tui_exists(dir) && !dir_is_empty(dir)) {
        snprintf(err, errlen, "%s exists but holds no session.json: not a session (give another name or path)", dir);
        return -1;
    }
    if (make_dirs(dir, err, errlen)) return -1;
    int demo = !session || !strcmp(session, "default");
    if (demo) {
        if (tui_make_demo(app, err, errlen)) return -1;
        tui_log(app, "new session '%s' in %s: the built-in demo, a reduced task so the curves move at once.", name, dir);
        tui_log(app, "'paper' adds a run with the paper's preset and recipe; 'help' lists the commands.");
    } else
        tui_log(app, "new session '%s' in %s: 'new demo' or 'paper' adds a run; 'help' lists the commands.", name, dir);
    if (session_write(app, dir, name, err, errlen)) return -1;
    tui_schedule(app);
    return 0;
}

int tui_shutdown(tui *app, char *err, size_t errlen)
{
    int rc = 0;
    if (!app->worker) return 0;
    if (app->session_dir[0]) {
        while (app->save_req) tui_pump(app, 1000); /* a save in flight finishes first */
        rc = tui_save(app, NULL, 1, err, errlen);
    }
    tui_worker_stop(app->worker);
    app->worker = NULL;
    return rc;
}

void tui_free(tui *app)
{
    if (app->worker) tui_worker_stop(app->worker);
    app->worker = NULL;
    for (int i = 0; i < app->nruns; i++) free(app->runs[i].hist);
    app->nruns = 0;
    free(app->heat.a);
    free(app->heat.b);
    app->heat.a = app->heat.b = NULL;
    free(app->log);
    app->log = NULL;
}
