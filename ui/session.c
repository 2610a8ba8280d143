/* session.json in and out, and the curves' history from metrics.jsonl. */
#include "session.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "files.h"
#include "fsutil.h"

static const char *const loss_names[] = {"both", "train", "test"};
static const char *const acc_names[] = {"both", "comp", "sym", "seen"};

static void add_int_str(cJSON *o, const char *key, long v)
{
    char b[32];
    snprintf(b, sizeof b, "%ld", v);
    cJSON_AddStringToObject(o, key, b);
}

int session_write(const tui *app, const char *dir, const char *name, char *err, size_t errlen)
{
    cJSON *o = cJSON_CreateObject(), *runs = cJSON_CreateArray(), *panes = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "format", SESSION_FORMAT);
    cJSON_AddStringToObject(o, "version", SESSION_VERSION);
    cJSON_AddStringToObject(o, "name", name);
    add_int_str(o, "next_id", app->next_id);
    for (int i = 0; i < app->nruns; i++) {
        const tui_run *r = &app->runs[i];
        cJSON *e = cJSON_CreateObject();
        char rel[64];
        add_int_str(e, "id", r->id);
        cJSON_AddStringToObject(e, "name", r->name);
        cJSON_AddStringToObject(e, "state", tui_state_names[r->state]);
        add_int_str(e, "queue_pos", r->queue_pos);
        snprintf(rel, sizeof rel, "runs/%d", r->id);
        cJSON_AddStringToObject(e, "dir", rel);
        cJSON_AddStringToObject(e, "note", r->note);
        cJSON_AddItemToArray(runs, e);
    }
    cJSON_AddItemToObject(o, "runs", runs);
    const tui_view *v = &app->view;
    add_int_str(panes, "focus", v->focus);
    if (v->overlay_all) cJSON_AddStringToObject(panes, "overlay", "all");
    else {
        char list[TUI_MAX_RUNS * 8] = "";
        size_t k = 0;
        for (int i = 0; i < v->noverlay; i++) k += snprintf(list + k, sizeof list - k, "%s%d", i ? "," : "", v->overlay[i]);
        cJSON_AddStringToObject(panes, "overlay", v->noverlay ? list : "none");
    }
    cJSON_AddStringToObject(panes, "loss", loss_names[v->loss]);
    cJSON_AddStringToObject(panes, "acc", acc_names[v->acc]);
    add_int_str(panes, "layer", v->layer);
    cJSON_AddStringToObject(panes, "heatmap", v->heat_shown ? "on" : "off");
    cJSON_AddItemToObject(o, "panes", panes);
    char *text = cJSON_Print(o);
    cJSON_Delete(o);
    if (!text) {
        snprintf(err, errlen, "%s/session.json: out of memory", dir);
        return -1;
    }
    char path[TUI_PATH + 32];
    snprintf(path, sizeof path, "%s/session.json", dir);
    size_t len = strlen(text);
    int rc = make_dirs(dir, err, errlen) ? -1 : 0;
    if (!rc) {
        /* a trailing newline, as text files have */
        char *t = realloc(text, len + 2);
        if (t) text = t, text[len++] = '\n', text[len] = 0;
        rc = write_file_atomic(path, text, len, err, errlen);
    }
    free(text);
    return rc;
}

/* A string field holding a decimal integer in [lo, hi]. */
static int get_int(const cJSON *o, const char *key, long lo, long hi, long *out, const char *where, char *err,
                   size_t errlen)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v) {
        snprintf(err, errlen, "%s: field '%s' is missing", where, key);
        return -1;
    }
    if (!cJSON_IsString(v)) {
        snprintf(err, errlen, "%s: field '%s' must be a string holding an integer", where, key);
        return -1;
    }
    char *end;
    errno = 0;
    long x = strtol(v->valuestring, &end, 10);
    if (!v->valuestring[0] || *end || errno || x < lo || x > hi) {
        snprintf(err, errlen, "%s: field '%s': '%.40s' is not an integer in [%ld, %ld]", where, key, v->valuestring, lo,
                 hi);
        return -1;
    }
    *out = x;
    return 0;
}

static const char *get_str(const cJSON *o, const char *key, int required, const char *where, char *err, size_t errlen)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v && !required) return "";
    if (!cJSON_IsString(v)) {
        snprintf(err, errlen, "%s: field '%s' %s", where, key, v ? "must be a string" : "is missing");
        return NULL;
    }
    return v->valuestring;
}

static int pick(const char *s, const char *const *names, int n)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(s, names[i])) return i;
    return -1;
}

/* Parses "all", "none" or "1,2,3" into the view's overlay. */
static int parse_overlay(tui_view *v, const char *s)
{
    v->noverlay = 0;
    v->overlay_all = !strcmp(s, "all");
    if (v->overlay_all || !strcmp(s, "none")) return 0;
    const char *p = s;
    while (*p) {
        char *end;
        long id = strtol(p, &end, 10);
        if (end == p || id < 1 || id > INT_MAX || v->noverlay >= TUI_MAX_RUNS) return -1;
        v->overlay[v->noverlay++] = (int)id;
        p = end;
        if (*p == ',') p++;
        else if (*p) return -1;
    }
    return 0;
}

int session_read_history(tui_run *r, char *err, size_t errlen)
{
    char path[TUI_PATH + 32];
    snprintf(path, sizeof path, "%s/metrics.jsonl", r->dir);
    size_t len;
    char *text = read_file(path, 1 << 30, &len, err, errlen);
    if (!text) return -1;
    r->nhist = 0;
    int lineno = 0, rc = 0;
    const ach_task_kind *kind = ach_run_dir_kind(r->dir);
    for (char *line = text; *line && !rc;) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = 0;
        lineno++;
        if (*line) {
            cJSON *o = cJSON_Parse(line);
            const cJSON *ep = o ? cJSON_GetObjectItemCaseSensitive(o, "epoch") : NULL;
            if (!cJSON_IsNumber(ep) || ep->valuedouble < 0 || ep->valuedouble > 1e7) {
                snprintf(err, errlen, "%s: line %d: %s", path, lineno, o ? "no valid 'epoch'" : "not a JSON object");
                rc = -1;
            } else {
                ach_metrics m;
                ach_metrics_from_json(o, kind, &m);
                const cJSON *pe = cJSON_GetObjectItemCaseSensitive(o, "pos_enc");
                if (cJSON_IsString(pe)) {
                    const cJSON *b = cJSON_GetObjectItemCaseSensitive(o, "block"),
                                *bl = cJSON_GetObjectItemCaseSensitive(o, "block_layers");
                    m.all_one_conv = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "all_one_conv"));
                    m.block_train = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "block_train"));
                    tui_strlcpy(m.pos_enc, pe->valuestring, sizeof m.pos_enc);
                    tui_strlcpy(m.block, cJSON_IsString(b) ? b->valuestring : "none", sizeof m.block);
                    tui_strlcpy(m.block_layers, cJSON_IsString(bl) ? bl->valuestring : "all", sizeof m.block_layers);
                    tui_run_sync_live(r, &m);
                }
                if (tui_run_add_point(r, &m)) {
                    snprintf(err, errlen, "%s: out of memory", path);
                    rc = -1;
                }
            }
            cJSON_Delete(o);
        }
        if (!nl) break;
        line = nl + 1;
    }
    free(text);
    return rc;
}

int session_resolve(const char *root, const char *arg, char *dir, size_t ndir, char *name, size_t nname, char *err,
                    size_t errlen)
{
    if (!arg || !*arg) arg = "default";
    size_t n = strlen(arg);
    while (n > 1 && arg[n - 1] == '/') n--; /* "sessions/demo/" */
    if (n >= ndir - 1 || n >= TUI_PATH - 64) {
        snprintf(err, errlen, "session path too long: %.60s...", arg);
        return -1;
    }
    if (!memchr(arg, '/', n)) {
        if (!strcmp(arg, ".") || !strcmp(arg, "..")) {
            snprintf(err, errlen, "'%s' is not a session name", arg);
            return -1;
        }
        snprintf(dir, ndir, "%s/%.*s", root, (int)n, arg);
        snprintf(name, nname, "%.*s", (int)n, arg);
        return 0;
    }
    snprintf(dir, ndir, "%.*s", (int)n, arg);
    const char *base = dir + strlen(dir);
    while (base > dir && base[-1] != '/') base--;
    snprintf(name, nname, "%s", *base ? base : "session");
    return 0;
}

/* A run's directory as written in session.json: relative, inside the session. */
static int safe_rel_dir(const char *d)
{
    if (!*d || d[0] == '/') return 0;
    for (const char *p = d; *p; p++)
        if (p[0] == '.' && p[1] == '.' && (p == d || p[-1] == '/') && (p[2] == '/' || !p[2])) return 0;
    return 1;
}

int session_read(tui *app, const char *dir, char *err, size_t errlen)
{
    char path[TUI_PATH + 32];
    snprintf(path, sizeof path, "%s/session.json", dir);
    char *text = read_file(path, 16 << 20, NULL, err, errlen);
    if (!text) return -1;
    cJSON *o = cJSON_Parse(text);
    free(text);
    int rc = -1;
    const char *s;
    long v;
    if (!cJSON_IsObject(o)) {
        snprintf(err, errlen, "%s: not a JSON object", path);
        goto out;
    }
    if (!(s = get_str(o, "format", 1, path, err, errlen))) goto out;
    if (strcmp(s, SESSION_FORMAT)) {
        snprintf(err, errlen, "%s: field 'format' is '%.40s', not '" SESSION_FORMAT "'", path, s);
        goto out;
    }
    if (!(s = get_str(o, "version", 1, path, err, errlen))) goto out;
    if (strcmp(s, SESSION_VERSION)) {
        snprintf(err, errlen, "%s: field 'version' is '%.20s'; this achilles-tui reads version " SESSION_VERSION, path, s);
        goto out;
    }
    if (get_int(o, "next_id", 1, 1000000000, &v, path, err, errlen)) goto out;
    app->next_id = (int)v;
    const cJSON *runs = cJSON_GetObjectItemCaseSensitive(o, "runs");
    if (!cJSON_IsArray(runs)) {
        snprintf(err, errlen, "%s: field 'runs' %s", path, runs ? "must be an array" : "is missing");
        goto out;
    }
    if (cJSON_GetArraySize(runs) > TUI_MAX_RUNS) {
        snprintf(err, errlen, "%s: field 'runs' has %d entries; at most %d", path, cJSON_GetArraySize(runs), TUI_MAX_RUNS);
        goto out;
    }
    int i = 0, min_pos = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, runs) {
        char where[TUI_PATH + 64];
        snprintf(where, sizeof where, "%s: runs[%d]", path, i++);
        if (!cJSON_IsObject(e)) {
            snprintf(err, errlen, "%s: not an object", where);
            goto out;
        }
        tui_run *r = &app->runs[app->nruns];
        memset(r, 0, sizeof *r);
        if (get_int(e, "id", 1, 1000000000, &v, where, err, errlen)) goto out;
        r->id = (int)v;
        if (tui_run_find(app, r->id)) {
            snprintf(err, errlen, "%s: field 'id': run %d appears twice", where, r->id);
            goto out;
        }
        if (r->id >= app->next_id) app->next_id = r->id + 1;
        if (!(s = get_str(e, "name", 0, where, err, errlen))) goto out;
        snprintf(r->name, sizeof r->name, "%s", s);
        if (!(s = get_str(e, "state", 1, where, err, errlen))) goto out;
        int st = pick(s, tui_state_names, RS_FAILED + 1);
        if (st < 0) {
            snprintf(err, errlen, "%s: field 'state': '%.20s' is not one of queued|running|paused|done|failed", where, s);
            goto out;
        }
        r->state = (tui_run_state)st;
        if (get_int(e, "queue_pos", -1000000000, 1000000000, &v, where, err, errlen)) goto out;
        r->queue_pos = (int)v;
        if (!(s = get_str(e, "dir", 1, where, err, errlen))) goto out;
        if (!safe_rel_dir(s) || strlen(s) > 200) {
            snprintf(err, errlen, "%s: field 'dir': '%.60s' must be a path inside the session (relative, no '..')", where, s);
            goto out;
        }
        snprintf(r->dir, sizeof r->dir, "%s/%s", dir, s);
        if (!(s = get_str(e, "note", 0, where, err, errlen))) goto out;
        snprintf(r->note, sizeof r->note, "%s", s);
        app->nruns++;
        /* the run's own files: a missing or broken run fails alone */
        char cfgpath[TUI_PATH + 32], rerr[1024];
        snprintf(cfgpath, sizeof cfgpath, "%s/config.json", r->dir);
        runcfg_defaults(&r->cfg);
        if (runcfg_load_file(&r->cfg, cfgpath, rerr, sizeof rerr) || session_read_history(r, rerr, sizeof rerr)) {
            r->state = RS_FAILED;
            tui_strlcpy(r->note, rerr, sizeof r->note);
            tui_log(app, "run %d cannot be loaded: %s", r->id, rerr);
        }
        if (r->queue_pos >= app->next_queue_pos) app->next_queue_pos = r->queue_pos + 1;
        if (r->queue_pos < min_pos) min_pos = r->queue_pos;
    }
    /* the run that was training goes first when the scheduler restarts it */
    for (int k = 0; k < app->nruns; k++)
        if (app->runs[k].state == RS_RUNNING) app->runs[k].state = RS_QUEUED, app->runs[k].queue_pos = min_pos - 1;
    const cJSON *panes = cJSON_GetObjectItemCaseSensitive(o, "panes");
    if (panes) {
        char where[TUI_PATH + 64];
        snprintf(where, sizeof where, "%s: panes", path);
        tui_view *vw = &app->view;
        if (!cJSON_IsObject(panes)) {
            snprintf(err, errlen, "%s: not an object", where);
            goto out;
        }
        if (get_int(panes, "focus", 0, 1000000000, &v, where, err, errlen)) goto out;
        vw->focus = (int)v;
        if (get_int(panes, "layer", 0, 1000, &v, where, err, errlen)) goto out;
        vw->layer = (int)v;
        if (!(s = get_str(panes, "overlay", 1, where, err, errlen))) goto out;
        if (parse_overlay(vw, s)) {
            snprintf(err, errlen, "%s: field 'overlay': '%.40s' is not all, none or a list of run ids", where, s);
            goto out;
        }
        int k;
        if (!(s = get_str(panes, "loss", 1, where, err, errlen))) goto out;
        if ((k = pick(s, loss_names, 3)) < 0) {
            snprintf(err, errlen, "%s: field 'loss': '%.20s' is not one of both|train|test", where, s);
            goto out;
        }
        vw->loss = (tui_loss_mode)k;
        if (!(s = get_str(panes, "acc", 1, where, err, errlen))) goto out;
        if ((k = pick(s, acc_names, 4)) < 0) {
            snprintf(err, errlen, "%s: field 'acc': '%.20s' is not one of both|comp|sym|seen", where, s);
            goto out;
        }
        vw->acc = (tui_acc_mode)k;
        if (!(s = get_str(panes, "heatmap", 1, where, err, errlen))) goto out;
        if (strcmp(s, "on") && strcmp(s, "off")) {
            snprintf(err, errlen, "%s: field 'heatmap': '%.20s' is not on or off", where, s);
            goto out;
        }
        vw->heat_shown = !strcmp(s, "on");
    }
    rc = 0;
out:
    cJSON_Delete(o);
    if (rc) {
        for (int k = 0; k < app->nruns; k++) free(app->runs[k].hist);
        app->nruns = 0;
    }
    return rc;
}
