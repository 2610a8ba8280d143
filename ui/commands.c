/* The command table and its handlers, the line parser, "did you mean" and
 * completion candidates. */
#include "commands.h"

#include <ctype.h>
#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "files.h"
#include "session.h"
#include "task.h"

#define MAX_ARGS 64

/* ---- helpers ------------------------------------------------------------ */

static int is_uint(const char *s)
{
    if (!*s) return 0;
    for (; *s; s++)
        if (!isdigit((unsigned char)*s)) return 0;
    return 1;
}

static int is_kv(const char *s) { return strchr(s, '=') != NULL; }

/* "cmd: message", then the usage line; always -1. */
static int usage(tui *app, const char *cmd, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int usage(tui *app, const char *cmd, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    const tui_command *c = tui_command_find(cmd);
    tui_log(app, "%s: %s\nusage: %s %s", cmd, msg, cmd, c ? c->args : "");
    return -1;
}

static int fail(tui *app, const char *cmd, const char *msg)
{
    tui_log(app, "%s: %s", cmd, msg);
    return -1;
}

/* A run by its name (names need not be unique: the first). */
static tui_run *run_named(tui *app, const char *name)
{
    for (int i = 0; i < app->nruns; i++)
        if (app->runs[i].name[0] && !strcmp(app->runs[i].name, name)) return &app->runs[i];
    return NULL;
}

/* The run argument: argv[*i] when it is a number or a run's name and
 * `after` positional arguments remain after it; else the focused run.
 * NULL after logging. */
static tui_run *arg_run(tui *app, int argc, char **argv, int *i, int after)
{
    int positional = 0;
    for (int k = *i; k < argc; k++) positional += !is_kv(argv[k]);
    if (*i < argc && !is_uint(argv[*i]) && !is_kv(argv[*i]) && positional > after && run_named(app, argv[*i]))
        return run_named(app, argv[(*i)++]);
    if (*i < argc && is_uint(argv[*i]) && positional > after) {
        long id = strtol(argv[*i], NULL, 10);
        tui_run *r = id > 0 && id < INT_MAX ? tui_run_find(app, (int)id) : NULL;
        if (!r) {
            char ids[256] = "";
            size_t k = 0;
            for (int j = 0; j < app->nruns && k < sizeof ids - 8; j++)
                k += snprintf(ids + k, sizeof ids - k, "%s%d", j ? ", " : "", app->runs[j].id);
            tui_log(app, "%s: there is no run %s (%s%s)", argv[0], argv[*i], app->nruns ? "runs: " : "no runs yet",
                    ids);
            return NULL;
        }
        ++*i;
        return r;
    }
    tui_run *r = tui_focus(app);
    if (!r) tui_log(app, "%s: no runs yet; 'new demo' or 'paper' makes one", argv[0]);
    return r;
}

int tui_edit_distance(const char *a, const char *b)
{
    int la = (int)strlen(a), lb = (int)strlen(b);
    if (la > 63 || lb > 63) return 99;
    int d[64][64];
    for (int i = 0; i <= la; i++) d[i][0] = i;
    for (int j = 0; j <= lb; j++) d[0][j] = j;
    for (int i = 1; i <= la; i++)
        for (int j = 1; j <= lb; j++) {
            int c = d[i - 1][j - 1] + (tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]));
            if (d[i - 1][j] + 1 < c) c = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < c) c = d[i][j - 1] + 1;
            /* a swap of two neighbours counts as one */
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && d[i - 2][j - 2] + 1 < c)
                c = d[i - 2][j - 2] + 1;
            d[i][j] = c;
        }
    return d[la][lb];
}

/* The closest of n names to s within a distance that fits its length. */
static const char *closest(const char *s, const char *const *names, int n)
{
    const char *best = NULL;
    int bd = 99, limit = strlen(s) <= 3 ? 1 : strlen(s) <= 6 ? 2 : 3;
    for (int i = 0; i < n; i++) {
        int dl = (int)strlen(names[i]) - (int)strlen(s);
        if (dl > limit || -dl > limit) continue; /* the lengths alone say it is too far */
        int d = tui_edit_distance(s, names[i]);
        if (d < bd) bd = d, best = names[i];
    }
    return bd <= limit ? best : NULL;
}

static const char *closest_key(const char *key)
{
    const char *names[128];
    int n = 0;
    for (int i = 0; i < runcfg_nkeys() && n < 127; i++) names[n++] = runcfg_key_name(i);
    names[n++] = "name";
    return closest(key, names, n);
}

/* key=value for a new run; "name" is the run's name, not a setting. */
static int apply_setting(tui *app, const char *cmd, ach_runcfg *c, const char *kv, char *name, size_t nname)
{
    char err[1024];
    if (!strncmp(kv, "name=", 5)) {
        snprintf(name, nname, "%s", kv + 5);
        return 0;
    }
    if (!runcfg_assign(c, kv, err, sizeof err)) return 0;
    char key[64];
    size_t kl = strcspn(kv, "=");
    snprintf(key, sizeof key, "%.*s", (int)(kl < 63 ? kl : 63), kv);
    const char *near = strstr(err, "unknown key") ? closest_key(key) : NULL;
    if (near) tui_log(app, "%s: %s; did you mean '%s'? ('help keys' lists the settings)", cmd, err, near);
    else tui_log(app, "%s: %s", cmd, err);
    return -1;
}

static int make_run(tui *app, const char *cmd, ach_runcfg *c, int argc, char **argv, int from, const char *name0)
{
    char name[48], err[1024];
    snprintf(name, sizeof name, "%s", name0);
    for (int i = from; i < argc; i++) {
        if (!is_kv(argv[i])) return usage(app, cmd, "'%s' is not a key=value setting", argv[i]);
        if (apply_setting(app, cmd, c, argv[i], name, sizeof name)) return -1;
    }
    if (tui_new_run(app, c, name, err, sizeof err)) return fail(app, cmd, err);
    tui_run *r = &app->runs[app->nruns - 1];
    char sum[160];
    tui_run_summary(app, r, sum, sizeof sum);
    tui_log(app, "run %d '%s': %s, %d epochs; queued (epoch 0 is being evaluated)", r->id, r->name, sum,
            r->cfg.epochs);
    return 0;
}

/* ---- commands ----------------------------------------------------------- */

void tui_help_page(tui *app, const tui_command *c)
{
    if (c) {
        char title[64];
        snprintf(title, sizeof title, "help %s", c->name);
        tui_page_open(app, title);
        tui_page_add(app, "%s%s%s", c->name, *c->args ? " " : "", c->args);
        tui_page_add(app, "    %s", c->help);
        tui_page_add(app, "%s", "");
        tui_page_add(app, "'help' lists every command; 'man achilles' (REPL COMMANDS) has them in full.");
        return;
    }
    tui_page_open(app, "help");
    /* lines that fit 80 columns: the overlay's text is 76 wide there */
    tui_page_add(app, "Keys");
    tui_page_add(app, "  F1/? help   F2 runs   F3 heatmap   F5 pause/resume   F10/q quit");
    tui_page_add(app, "  PgUp/PgDn log   TAB completes   Up/Down history   Ctrl-C drops the line");
    tui_page_add(app, "  Ctrl-L repaints; q and ? are keys only on an empty prompt");
    tui_page_add(app, "  Here: Up/Down, PgUp/PgDn, Home/End scroll; q or Esc closes");
    tui_page_add(app, "The paper's run: 'paper' (full task, 200 epochs). A quick one: 'new demo'.");
    tui_page_add(app, "%s", "");
    tui_page_add(app, "Commands ('help NAME': one; 'help keys': the settings; 'man achilles': all)");
    for (int i = 0; i < tui_ncommands; i++) {
        const tui_command *k = &tui_commands[i];
        tui_page_add(app, "  %s%s%s", k->name, *k->args ? " " : "", k->args);
        tui_page_add(app, "      %s", k->help);
    }
}

static int cmd_help(tui *app, int argc, char **argv)
{
    if (argc > 2) return usage(app, "help", "one command at a time");
    if (argc == 2 && !strcmp(argv[1], "keys")) {
        ach_runcfg d;
        char v[300], help[300];
        runcfg_defaults(&d);
        tui_page_open(app, "run settings");
        tui_page_add(app, "Run settings, key=value for new and paper (those marked live also for set):");
        for (int i = 0; i < runcfg_nkeys(); i++) {
            runcfg_get(&d, i, v, sizeof v);
            runcfg_key_describe(i, help, sizeof help);
            tui_page_add(app, "  %-15s %s [%s]", runcfg_key_name(i), help, v);
        }
        return 0;
    }
    if (argc == 2) {
        const tui_command *c = tui_command_find(argv[1]);
        if (!c) {
            const char *names[64];
            for (int i = 0; i < tui_ncommands; i++) names[i] = tui_commands[i].name;
            const char *near = closest(argv[1], names, tui_ncommands);
            tui_log(app, "help: no command '%s'%s%s%s", argv[1], near ? "; did you mean '" : "", near ? near : "",
                    near ? "'?" : "");
            return -1;
        }
        tui_help_page(app, c);
        return 0;
    }
    tui_help_page(app, NULL);
    return 0;
}

static int cmd_new(tui *app, int argc, char **argv)
{
    ach_runcfg c;
    char err[1024];
    int i = 1;
    const char *name = "";
    runcfg_defaults(&c);
    if (i < argc && !is_kv(argv[i])) {
        const char *a = argv[i++];
        if (is_uint(a)) {
            tui_run *src = tui_run_find(app, (int)strtol(a, NULL, 10));
            if (!src) return fail(app, "new", "no such run to copy the settings of");
            c = src->cfg;
            name = src->name;
        } else if (!strcmp(a, "demo")) {
            tui_demo_config(&c);
            name = "demo";
        } else if (runcfg_set(&c, "preset", a, "new", err, sizeof err)) return fail(app, "new", err);
        else {
            const char *slash = strrchr(a, '/');
            name = slash ? slash + 1 : a;
        }
    }
    return make_run(app, "new", &c, argc, argv, i, name);
}

static int cmd_paper(tui *app, int argc, char **argv)
{
    ach_runcfg c;
    runcfg_defaults(&c); /* the defaults are the paper's recipe and preset */
    return make_run(app, "paper", &c, argc, argv, 1, "paper");
}

typedef int (*run_op)(tui *, tui_run *, char *, size_t);

static int state_cmd(tui *app, int argc, char **argv, run_op op, const char *done)
{
    int i = 1;
    char err[1024];
    if (argc > 2) return usage(app, argv[0], "one run at a time");
    tui_run *r = arg_run(app, argc, argv, &i, 0);
    if (!r) return -1;
    if (i < argc) return usage(app, argv[0], "'%s' is not a run id", argv[i]);
    if (op(app, r, err, sizeof err)) return fail(app, argv[0], err);
    tui_log(app, "run %d %s", r->id, done);
    return 0;
}

static int cmd_start(tui *app, int argc, char **argv) { return state_cmd(app, argc, argv, tui_start_run, "starts"); }
static int cmd_pause(tui *app, int argc, char **argv)
{
    return state_cmd(app, argc, argv, tui_pause_run, "paused (its state is saved at the next step boundary)");
}
static int cmd_resume(tui *app, int argc, char **argv)
{
    return state_cmd(app, argc, argv, tui_resume_run, "queued again (it trains when no other run does)");
}
static int cmd_stop(tui *app, int argc, char **argv)
{
    return state_cmd(app, argc, argv, tui_stop_run, "stopped ('resume' would continue it)");
}

static int cmd_delete(tui *app, int argc, char **argv)
{
    char err[1024];
    if (argc != 2) return usage(app, "delete", "give the run's number or name explicitly");
    int i = 1;
    tui_run *r = arg_run(app, argc, argv, &i, 0);
    if (!r) return -1;
    if (i != 2) return fail(app, "delete", "no run has that number or name ('runs' lists them)"); /* never the focus */
    int id = r->id;
    char dir[TUI_PATH];
    snprintf(dir, sizeof dir, "%s", r->dir);
    if (tui_delete_run(app, r, err, sizeof err)) return fail(app, "delete", err);
    tui_log(app, "run %d deleted with its directory %s", id, dir);
    return 0;
}

/* Sends one live setting, checked here first so a bad value is told now. */
static int send_set(tui *app, const char *cmd, tui_run *r, const char *key, const char *value)
{
    char err[1024];
    if (runcfg_live_check(key, err, sizeof err)) {
        if (runcfg_key_find(key) < 0) return fail(app, cmd, err);
        tui_log(app, "%s: %s; 'new %d %s=%s' makes a new run with it", cmd, err, r->id, key, value);
        return -1;
    }
    ach_runcfg probe = r->cfg;
    if (runcfg_set(&probe, key, value, cmd, err, sizeof err)) return fail(app, cmd, err);
    if (r->state == RS_FAILED) {
        tui_log(app, "%s: run %d has failed; it cannot change", cmd, r->id);
        return -1;
    }
    tui_job *j = tui_job_new(JOB_SET);
    if (!j) return fail(app, cmd, "out of memory");
    snprintf(j->key, sizeof j->key, "%s", key);
    snprintf(j->arg, sizeof j->arg, "%s", value);
    tui_send(app, r, j);
    return 0;
}

static int cmd_set(tui *app, int argc, char **argv)
{
    int i = 1;
    tui_run *r = arg_run(app, argc, argv, &i, 0);
    if (!r) return -1;
    if (i >= argc) return usage(app, "set", "which setting?");
    for (; i < argc; i++) {
        char *eq = strchr(argv[i], '=');
        if (!eq) return usage(app, "set", "'%s' is not key=value", argv[i]);
        *eq = 0;
        int rc = send_set(app, "set", r, argv[i], eq + 1);
        *eq = '=';
        if (rc) return -1;
    }
    tui_log(app, "run %d: applied at the next step boundary", r->id);
    return 0;
}

static int one_value_set(tui *app, int argc, char **argv, const char *key)
{
    int i = 1;
    tui_run *r = arg_run(app, argc, argv, &i, 1);
    if (!r) return -1;
    if (argc - i != 1) return usage(app, argv[0], "give one value: %s", runcfg_key_choices(runcfg_key_find(key)));
    if (send_set(app, argv[0], r, key, argv[i])) return -1;
    tui_log(app, "run %d: %s %s at the next step boundary", r->id, key, argv[i]);
    return 0;
}

static int cmd_all_one_conv(tui *app, int argc, char **argv)
{
    return one_value_set(app, argc, argv, "all_one_conv");
}
static int cmd_pos_enc(tui *app, int argc, char **argv)
{
    return one_value_set(app, argc, argv, "pos_enc");
}

static int cmd_block(tui *app, int argc, char **argv)
{
    int i = 1;
    tui_run *r = arg_run(app, argc, argv, &i, 1);
    if (!r) return -1;
    const char *pos = NULL, *layers = NULL, *train = NULL;
    for (; i < argc; i++) {
        if (!strncmp(argv[i], "layers=", 7)) layers = argv[i] + 7;
        else if (!strncmp(argv[i], "train=", 6)) train = argv[i] + 6;
        else if (!is_kv(argv[i]) && !pos) pos = argv[i];
        else return usage(app, "block", "unexpected '%s'", argv[i]);
    }
    if (!pos) return usage(app, "block", "which positions? none, key, anchor1, anchor2, anchors or indices");
    if (send_set(app, "block", r, "block", pos)) return -1;
    if (layers && send_set(app, "block", r, "block_layers", layers)) return -1;
    if (train && send_set(app, "block", r, "block_train", train)) return -1;
    tui_log(app, "run %d: block %s%s%s%s%s at the next step boundary", r->id, pos, layers ? " layers=" : "",
            layers ? layers : "", train ? " train=" : "", train ? train : "");
    return 0;
}

static int parse_int_opt(const char *v, int lo, int hi, int *out)
{
    if (!is_uint(v) || strlen(v) > 9) return -1;
    long x = strtol(v, NULL, 10);
    if (x < lo || x > hi) return -1;
    *out = (int)x;
    return 0;
}

static int cmd_eval(tui *app, int argc, char **argv)
{
    if (argc < 2 || (strcmp(argv[1], "block") && strcmp(argv[1], "subst")))
        return usage(app, "eval", "say what to evaluate: block or subst");
    int subst = !strcmp(argv[1], "subst"), i = 2;
    tui_run *r = arg_run(app, argc, argv, &i, subst ? 0 : 1);
    if (!r) return -1;
    tui_job *j = tui_job_new(subst ? JOB_SUBST : JOB_BLOCK);
    if (!j) return fail(app, "eval", "out of memory");
    j->per_pair = 480; /* the paper's count */
    snprintf(j->arg, sizeof j->arg, "%s", subst ? "after" : "");
    snprintf(j->arg2, sizeof j->arg2, "all");
    for (; i < argc; i++) {
        const char *a = argv[i];
        int bad = 0;
        if (!strncmp(a, "n=", 2)) bad = parse_int_opt(a + 2, 0, 1000000000, &j->per_pair);
        else if (!subst && !strncmp(a, "layers=", 7)) snprintf(j->arg2, sizeof j->arg2, "%s", a + 7);
        else if (subst && !strncmp(a, "layer=", 6)) bad = parse_int_opt(a + 6, 0, r->cfg.model.n_layer - 1, &j->layer);
        else if (subst && !strncmp(a, "from=", 5)) snprintf(j->arg, sizeof j->arg, "%s", a + 5);
        else if (!subst && !is_kv(a) && !j->arg[0]) snprintf(j->arg, sizeof j->arg, "%s", a);
        else bad = 1;
        if (bad) {
            tui_job_free(j);
            return usage(app, "eval", "bad argument '%s'", a);
        }
    }
    if (!subst && !j->arg[0]) {
        tui_job_free(j);
        return usage(app, "eval", "which positions to block? key, anchor1, anchor2, anchors or indices");
    }
    tui_send(app, r, j);
    tui_log(app, "run %d: evaluating %s at the next step boundary ...", r->id, subst ? "substitution" : "blocking");
    return 0;
}

/* Asks the worker for the cosine heatmap of the focused run's layer. */
static int request_cosine(tui *app, tui_run *r, int layer)
{
    tui_job *j = tui_job_new(JOB_COSINE);
    if (!j) return -1;
    j->layer = layer;
    tui_send(app, r, j);
    return 0;
}

static int cmd_heatmap(tui *app, int argc, char **argv)
{
    int i = 1;
    tui_run *r = arg_run(app, argc, argv, &i, 0);
    if (!r) return -1;
    const char *kind = "cos";
    int layer = app->view.layer, head = -1, seq = -1;
    for (; i < argc; i++) {
        const char *a = argv[i];
        int bad = 0;
        if (!strcmp(a, "cos") || !strcmp(a, "attn") || !strcmp(a, "off")) kind = a;
        else if (!strncmp(a, "layer=", 6)) bad = parse_int_opt(a + 6, 0, r->cfg.model.n_layer - 1, &layer);
        else if (!strncmp(a, "head=", 5)) bad = parse_int_opt(a + 5, 0, 1 << 20, &head);
        else if (!strncmp(a, "seq=", 4)) bad = parse_int_opt(a + 4, 0, INT_MAX, &seq);
        else bad = 1;
        if (bad) return usage(app, "heatmap", "bad argument '%s' (run %d has layers 0..%d)", a, r->id,
                              r->cfg.model.n_layer - 1);
    }
    if (!strcmp(kind, "off")) {
        app->view.heat_shown = 0;
        tui_log(app, "heatmap pane hidden (F3 or 'heatmap' shows it)");
        return 0;
    }
    app->view.layer = layer;
    if (!strcmp(kind, "cos")) {
        if (request_cosine(app, r, layer)) return fail(app, "heatmap", "out of memory");
    } else {
        tui_job *j = tui_job_new(JOB_ATTN);
        if (!j) return fail(app, "heatmap", "out of memory");
        j->layer = layer, j->head = head, j->seq = seq;
        tui_send(app, r, j);
    }
    tui_log(app, "run %d: %s heatmap of layer %d at the next step boundary", r->id,
            !strcmp(kind, "cos") ? "conv cosine" : "hidden attention", layer);
    return 0;
}

static const char *const show_what[] = {"overlay", "run", "loss", "acc", "layer", "heatmap"};

static int cmd_show(tui *app, int argc, char **argv)
{
    tui_view *v = &app->view;
    static const char *const loss_names[] = {"both", "train", "test"}, *const acc_names[] = {"both", "comp", "sym", "seen"};
    if (argc == 1) {
        char ov[256] = "all";
        if (!v->overlay_all) {
            size_t k = 0;
            ov[0] = 0;
            for (int i = 0; i < v->noverlay; i++) k += snprintf(ov + k, sizeof ov - k, "%s%d", i ? "," : "", v->overlay[i]);
            if (!v->noverlay) snprintf(ov, sizeof ov, "none");
        }
        char run[16] = "auto";
        if (v->focus) snprintf(run, sizeof run, "%d", v->focus);
        tui_log(app, "show overlay %s · run %s · loss %s · acc %s · layer %d · heatmap %s", ov, run, loss_names[v->loss],
                acc_names[v->acc], v->layer, v->heat_shown ? "on" : "off");
        return 0;
    }
    if (argc != 3) return usage(app, "show", "say what and how: show overlay all");
    const char *what = argv[1], *val = argv[2];
    if (!strcmp(what, "overlay")) {
        if (!strcmp(val, "all") || !strcmp(val, "none")) {
            v->overlay_all = !strcmp(val, "all");
            v->noverlay = 0;
        } else {
            int ids[TUI_MAX_RUNS], n = 0;
            for (const char *p = val; *p;) {
                char *end;
                long id = strtol(p, &end, 10);
                if (end == p || !tui_run_find(app, (int)id) || n >= TUI_MAX_RUNS)
                    return usage(app, "show", "'%s': all, none or run ids like 1,3", val);
                ids[n++] = (int)id;
                p = *end == ',' ? end + 1 : end;
                if (*end && *end != ',') return usage(app, "show", "'%s': all, none or run ids like 1,3", val);
            }
            v->overlay_all = 0;
            memcpy(v->overlay, ids, n * sizeof *ids);
            v->noverlay = n;
        }
    } else if (!strcmp(what, "run")) {
        if (!strcmp(val, "auto")) v->focus = 0;
        else if (is_uint(val) && tui_run_find(app, (int)strtol(val, NULL, 10))) v->focus = (int)strtol(val, NULL, 10);
        else return usage(app, "show", "'%s': a run id or auto (the running run)", val);
    } else if (!strcmp(what, "loss") || !strcmp(what, "acc")) {
        int loss = !strcmp(what, "loss"), k = -1;
        for (int i = 0; i < (loss ? 3 : 4); i++)
            if (!strcmp(val, loss ? loss_names[i] : acc_names[i])) k = i;
        if (k < 0) return usage(app, "show", "%s: %s", what, loss ? "both, train or test" : "both, comp, sym or seen");
        if (loss) v->loss = (tui_loss_mode)k;
        else v->acc = (tui_acc_mode)k;
    } else if (!strcmp(what, "layer")) {
        tui_run *r = tui_focus(app);
        int max = r ? r->cfg.model.n_layer - 1 : 63, layer;
        if (parse_int_opt(val, 0, max, &layer)) return usage(app, "show", "layer: 0..%d", max);
        v->layer = layer;
        if (r && (app->heat.kind != HEAT_ATTENTION)) request_cosine(app, r, layer);
    } else if (!strcmp(what, "heatmap")) {
        if (strcmp(val, "on") && strcmp(val, "off")) return usage(app, "show", "heatmap: on or off");
        v->heat_shown = !strcmp(val, "on");
    } else {
        const char *near = closest(what, show_what, 6);
        return usage(app, "show", "nothing called '%s'%s%s%s (overlay, run, loss, acc, layer, heatmap)", what,
                     near ? "; did you mean '" : "", near ? near : "", near ? "'?" : "");
    }
    app->dirty = 1;
    tui_log(app, "show %s %s", what, val);
    return 0;
}

static int cmd_runs(tui *app, int argc, char **argv)
{
    if (argc > 1) return usage(app, "runs", "no arguments");
    if (!app->nruns) {
        tui_log(app, "no runs yet; 'new demo' or 'paper' makes one");
        return 0;
    }
    for (int i = 0; i < app->nruns; i++) {
        tui_run *r = &app->runs[i];
        char sum[160];
        tui_run_summary(app, r, sum, sizeof sum);
        int ep = r->nhist ? r->hist[r->nhist - 1].epoch : 0;
        tui_log(app, "%3d %-10s %-8s ep %d/%d  %s  %s%s%s", r->id, r->name, tui_state_names[r->state], ep, r->cfg.epochs,
                sum, r->dir, r->note[0] ? "  " : "", r->note);
    }
    return 0;
}

static int cmd_config(tui *app, int argc, char **argv)
{
    int i = 1;
    tui_run *r = arg_run(app, argc, argv, &i, 0);
    if (!r) return -1;
    if (i < argc) return usage(app, "config", "'%s' is not a run id", argv[i]);
    char title[96];
    snprintf(title, sizeof title, "run %d (%s) settings", r->id, r->name);
    tui_page_open(app, title);
    tui_page_add(app, "From %s/config.json ('new %d key=value ...' makes a run like it):", r->dir, r->id);
    for (int n = 0; n < runcfg_nkeys(); n++) {
        char v[300], note[48] = "";
        runcfg_get(&r->cfg, n, v, sizeof v);
        if (!runcfg_key_applies(n, r->cfg.model.arch))
            snprintf(note, sizeof note, " (%s ignores it)", cfg_arch_name(r->cfg.model.arch));
        tui_page_add(app, "  %-15s %s%s", runcfg_key_name(n), v, note);
    }
    return 0;
}

static int cmd_save(tui *app, int argc, char **argv)
{
    char err[1024] = "";
    if (argc > 2) return usage(app, "save", "one name or path");
    if (tui_save(app, argc == 2 ? argv[1] : NULL, 0, err, sizeof err)) return fail(app, "save", err);
    tui_log(app, "saving (states at the next step boundary) ...");
    return 0;
}

static int cmd_load(tui *app, int argc, char **argv)
{
    char dir[TUI_PATH], name[128], err[1024] = "", sj[TUI_PATH + 32];
    if (argc != 2) return usage(app, "load", "which snapshot? ('sessions' lists them)");
    if (session_resolve(app->sessions_root, argv[1], dir, sizeof dir, name, sizeof name, err, sizeof err))
        return fail(app, "load", err);
    snprintf(sj, sizeof sj, "%s/session.json", dir);
    if (!tui_exists(sj)) {
        tui_log(app, "load: %s holds no session.json ('sessions' lists the snapshots under %s/)", dir, app->sessions_root);
        return -1;
    }
    if (!strcmp(dir, app->session_dir)) return fail(app, "load", "that session is the one open");
    char prev[TUI_PATH];
    snprintf(prev, sizeof prev, "%s", app->session_dir);
    if (tui_shutdown(app, err, sizeof err)) return fail(app, "load", err);
    for (int i = 0; i < app->nruns; i++) free(app->runs[i].hist);
    app->nruns = 0;
    app->next_id = 1;
    app->next_queue_pos = 1;
    free(app->heat.a);
    free(app->heat.b);
    memset(&app->heat, 0, sizeof app->heat);
    app->heat_pending = 0;
    memset(&app->view, 0, sizeof app->view);
    app->view.overlay_all = 1;
    app->view.heat_shown = 1;
    if (!(app->worker = tui_worker_start(err, sizeof err))) return fail(app, "load", err);
    if (tui_open(app, dir, err, sizeof err)) {
        char err2[1024];
        tui_log(app, "load: %s; back to %s", err, prev);
        for (int i = 0; i < app->nruns; i++) free(app->runs[i].hist);
        app->nruns = 0;
        if (tui_open(app, prev, err2, sizeof err2)) tui_log(app, "load: %s", err2);
        return -1;
    }
    return 0;
}

static int cmd_sessions(tui *app, int argc, char **argv)
{
    if (argc > 1) return usage(app, "sessions", "no arguments");
    int n;
    char **l = tui_list_sessions(app->sessions_root, &n);
    if (!n) {
        tui_log(app, "no snapshots under %s/ ('save NAME' makes one)", app->sessions_root);
        return 0;
    }
    char line[TUI_LOG_WIDTH];
    size_t k = snprintf(line, sizeof line, "snapshots under %s/:", app->sessions_root);
    for (int i = 0; i < n; i++) {
        if (k + strlen(l[i]) + 4 > 100) {
            tui_log(app, "%s", line);
            k = snprintf(line, sizeof line, " ");
        }
        k += snprintf(line + k, sizeof line - k, " %s%s", l[i], !strcmp(l[i], app->session_name) ? "*" : "");
    }
    tui_log(app, "%s", line);
    tui_free_list(l, n);
    return 0;
}

static int cmd_rename(tui *app, int argc, char **argv)
{
    if (argc != 3) return usage(app, "rename", "a run and a name");
    int i = 1;
    tui_run *r = arg_run(app, argc, argv, &i, 1);
    if (!r || i != 2) return r ? usage(app, "rename", "'%s' is not a run", argv[1]) : -1;
    if (is_uint(argv[2])) return fail(app, "rename", "a name cannot be a number (numbers are run ids)");
    if (strlen(argv[2]) >= sizeof r->name) return fail(app, "rename", "names are at most 47 bytes");
    snprintf(r->name, sizeof r->name, "%s", argv[2]);
    tui_log(app, "run %d is now '%s'", r->id, r->name);
    return 0;
}

static int cmd_quit(tui *app, int argc, char **argv)
{
    if (argc > 1) return usage(app, "quit", "no arguments");
    app->quit = 1;
    tui_log(app, "saving the session and leaving ...");
    return 0;
}

const tui_command tui_commands[] = {
    {"help", "[COMMAND | keys]", "list the commands, one command's usage, or the run settings", cmd_help, COMPLETE_COMMAND},
    {"new", "[PRESET | RUN] [key=value ...] [name=NAME]",
     "a new run from a task preset (demo: the reduced demo) or a copy of a run's settings", cmd_new, COMPLETE_NEW},
    {"paper", "[key=value ...] [name=NAME]", "a new run with the paper's preset and recipe (200 epochs, batch 2048)", cmd_paper, COMPLETE_KEYS},
    {"start", "[RUN]", "train this run now (the running one goes back to the queue)", cmd_start, COMPLETE_RUN},
    {"pause", "[RUN]", "stop training a run and keep its place (state saved)", cmd_pause, COMPLETE_RUN},
    {"resume", "[RUN]", "queue a paused or stopped run again", cmd_resume, COMPLETE_RUN},
    {"stop", "[RUN]", "end a run early (it is done; resume can still continue it)", cmd_stop, COMPLETE_RUN},
    {"delete", "RUN", "remove a run from the session, with its run directory", cmd_delete, COMPLETE_RUN},
    {"set", "[RUN] key=value ...", "change live settings of a run at the next step boundary", cmd_set, COMPLETE_LIVE},
    {"all_one_conv", "[RUN] on|off", "every conv1d weight 1, bias 0, frozen (or back to learning)", cmd_all_one_conv,
     COMPLETE_SETTING},
    {"pos_enc", "[RUN] none|sinusoidal|learned", "positional encoding added to the embeddings", cmd_pos_enc,
     COMPLETE_SETTING},
    {"block", "[RUN] POSITIONS [layers=all|LIST] [train=on|off]",
     "block the SSM's flow from key/anchor positions (none, key, anchor1, anchor2, anchors, indices)", cmd_block,
     COMPLETE_BLOCK},
    {"eval", "block [RUN] POSITIONS [layers=LIST] [n=N] | subst [RUN] [layer=L] [from=WHERE] [n=N]",
     "blocking agreement or substitution collapse per pair, into the log", cmd_eval, COMPLETE_EVAL},
    {"heatmap", "[RUN] [cos | attn | off] [layer=L] [seq=I] [head=H]",
     "conv cosine similarity (epoch 0 beside now) or hidden attention of a test sequence", cmd_heatmap,
     COMPLETE_HEATMAP},
    {"show", "[overlay all|none|IDS | run ID|auto | loss both|train|test | acc both|comp|sym|seen | layer L | heatmap on|off]",
     "what the panes show", cmd_show, COMPLETE_SHOW},
    {"runs", "", "list the runs with their states, settings and directories", cmd_runs, COMPLETE_NONE},
    {"config", "[RUN]", "every setting of a run", cmd_config, COMPLETE_RUN},
    {"rename", "RUN NAME", "give a run a name", cmd_rename, COMPLETE_RUN},
    {"save", "[NAME | PATH]", "save the session (with a name: a snapshot copy; this session goes on)", cmd_save,
     COMPLETE_SESSION},
    {"load", "NAME | PATH", "save this session and open a snapshot", cmd_load, COMPLETE_SESSION},
    {"sessions", "", "list the snapshots under sessions/", cmd_sessions, COMPLETE_NONE},
    {"quit", "", "save the session and leave (also q or F10 on an empty line)", cmd_quit, COMPLETE_NONE},
};
const int tui_ncommands = (int)(sizeof tui_commands / sizeof tui_commands[0]);

const tui_command *tui_command_find(const char *name)
{
    const tui_command *hit = NULL;
    size_t n = strlen(name);
    if (!n) return NULL;
    for (int i = 0; i < tui_ncommands; i++) {
        if (!strcmp(tui_commands[i].name, name)) return &tui_commands[i];
        if (!strncmp(tui_commands[i].name, name, n)) {
            if (hit) return NULL; /* ambiguous */
            hit = &tui_commands[i];
        }
    }
    return hit;
}

/* ---- parsing and dispatch ------------------------------------------------ */

/* Splits at blanks; "double quotes" group, backslash escapes inside them. */
int tui_tokenize(char *s, char **argv, int max, const char **why)
{
    int argc = 0;
    char *out = s;
    while (*s) {
        while (*s == ' ' || *s == '\t') s++;
        if (!*s) break;
        if (argc == max) {
            *why = "too many arguments";
            return -1;
        }
        argv[argc++] = out;
        int quoted = 0;
        while (*s && (quoted || (*s != ' ' && *s != '\t'))) {
            if (*s == '"') quoted = !quoted, s++;
            else if (quoted && *s == '\\' && s[1]) *out++ = s[1], s += 2;
            else *out++ = *s++;
        }
        if (quoted) {
            *why = "a quote is not closed";
            return -1;
        }
        if (*s) s++;
        *out++ = 0;
    }
    return argc;
}

int tui_execute(tui *app, const char *line)
{
    while (*line == ' ' || *line == '\t') line++;
    if (!*line || *line == '#') return 0;
    tui_log(app, "> %s", line);
    size_t n = strlen(line);
    if (n > 4000) {
        tui_log(app, "the line is too long (%zu bytes)", n);
        return -1;
    }
    char buf[4096], *argv[MAX_ARGS + 1];
    memcpy(buf, line, n + 1);
    const char *why = "";
    int argc = tui_tokenize(buf, argv, MAX_ARGS, &why);
    if (argc < 0) {
        tui_log(app, "%s", why);
        return -1;
    }
    if (!argc) return 0;
    argv[argc] = NULL;
    const tui_command *c = tui_command_find(argv[0]);
    if (!c) {
        char amb[512] = "";
        size_t k = 0, len = strlen(argv[0]);
        for (int i = 0; i < tui_ncommands; i++)
            if (!strncmp(tui_commands[i].name, argv[0], len))
                k += snprintf(amb + k, sizeof amb - k, "%s%s", k ? ", " : "", tui_commands[i].name);
        if (k) {
            tui_log(app, "'%s' could be %s", argv[0], amb);
            return -1;
        }
        const char *names[64];
        for (int i = 0; i < tui_ncommands; i++) names[i] = tui_commands[i].name;
        const char *near = closest(argv[0], names, tui_ncommands);
        if (near) {
            const tui_command *nc = tui_command_find(near);
            tui_log(app, "unknown command '%s'; did you mean '%s'?\nusage: %s %s", argv[0], near, near, nc->args);
        } else
            tui_log(app, "unknown command '%s'; 'help' lists the commands", argv[0]);
        return -1;
    }
    argv[0] = (char *)c->name;
    app->dirty = 1;
    return c->run(app, argc, argv);
}

/* ---- completion ------------------------------------------------------------ */

typedef struct {
    char **v;
    int n, cap;
    const char *prefix;
} cands;

static void add(cands *c, const char *s)
{
    if (strncmp(s, c->prefix, strlen(c->prefix))) return;
    for (int i = 0; i < c->n; i++)
        if (!strcmp(c->v[i], s)) return;
    if (c->n + 1 >= c->cap) {
        int cap = c->cap ? 2 * c->cap : 32;
        char **v = realloc(c->v, cap * sizeof *v);
        if (!v) return;
        c->v = v, c->cap = cap;
    }
    if ((c->v[c->n] = strdup(s))) c->n++;
    c->v[c->n] = NULL;
}

static void add_list(cands *c, const char *const *l, int n)
{
    for (int i = 0; i < n; i++) add(c, l[i]);
}

static void add_run_ids(cands *c, tui *app)
{
    for (int i = 0; i < app->nruns; i++) {
        char id[16];
        snprintf(id, sizeof id, "%d", app->runs[i].id);
        add(c, id);
    }
}

/* Where a run goes: its number or its name. */
static void add_runs(cands *c, tui *app)
{
    add_run_ids(c, app);
    for (int i = 0; i < app->nruns; i++)
        if (app->runs[i].name[0] && !strchr(app->runs[i].name, ' ')) add(c, app->runs[i].name);
}

/* Values a key=VALUE can take, for completion: a run setting's from the
 * settings table, the rest (list-valued settings, command words) here. */
static const char *key_choices(const char *key)
{
    static const struct {
        const char *key, *choices;
    } t[] = {{"block", "none key anchor1 anchor2 anchors"}, {"block_layers", "all"}, {"layers", "all"},
             {"train", "on off"}, {"from", "after anchors"}, {"gamma_tensors", "all none"}, {"no_decay", "none"}};
    static char buf[256];
    int k = runcfg_key_find(key);
    if (k >= 0 && runcfg_key_choices(k)) {
        snprintf(buf, sizeof buf, "%s", runcfg_key_choices(k));
        for (char *p = buf; (p = strchr(p, '|'));) *p = ' ';
        return buf;
    }
    for (size_t i = 0; i < sizeof t / sizeof *t; i++)
        if (!strcmp(t[i].key, key)) return t[i].choices;
    return NULL;
}

static void add_presets(cands *c)
{
    DIR *d = opendir(task_data_dir());
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        /* paper_*.json are the paper's figures, not presets */
        if (n > 5 && !strcmp(e->d_name + n - 5, ".json") && strncmp(e->d_name, "paper_", 6)) {
            char name[256];
            snprintf(name, sizeof name, "%.*s", (int)(n - 5), e->d_name);
            add(c, name);
        }
    }
    closedir(d);
}

/* key=... completion: "key=" names, or "key=value" once the key is typed. */
static void add_kv(cands *c, const char *word, const char *const *keys, int nkeys)
{
    const char *eq = strchr(word, '=');
    if (!eq) {
        for (int i = 0; i < nkeys; i++) {
            char k[96];
            snprintf(k, sizeof k, "%s=", keys[i]);
            add(c, k);
        }
        return;
    }
    char key[64];
    snprintf(key, sizeof key, "%.*s", (int)(eq - word < 63 ? eq - word : 63), word);
    const char *ch = key_choices(key);
    if (!strcmp(key, "preset")) {
        cands sub = {NULL, 0, 0, eq + 1};
        add_presets(&sub);
        for (int i = 0; i < sub.n; i++) {
            char kv[320];
            snprintf(kv, sizeof kv, "preset=%s", sub.v[i]);
            add(c, kv);
        }
        tui_free_candidates(sub.v);
        return;
    }
    while (ch && *ch) {
        size_t n = strcspn(ch, " ");
        char kv[160];
        snprintf(kv, sizeof kv, "%s=%.*s", key, (int)n, ch);
        add(c, kv);
        ch += n + (ch[n] == ' ');
    }
}

/* The model family of the run a line speaks of so far: its base (the run
 * whose number follows the command, else the defaults) with the key=value
 * words typed before. */
static ach_arch line_arch(tui *app, int argc, char **argv)
{
    ach_runcfg c;
    char err[256];
    tui_run *src = argc > 1 && is_uint(argv[1]) ? tui_run_find(app, (int)strtol(argv[1], NULL, 10)) : NULL;
    if (src) c = src->cfg;
    else runcfg_defaults(&c);
    for (int i = 1; i < argc; i++) runcfg_assign(&c, argv[i], err, sizeof err); /* a bad word changes nothing */
    return c.model.arch;
}

/* The settings of this model family; with live_only those a running run
 * may change (set). */
static void add_setting_keys(cands *c, const char *word, int live_only, ach_arch arch)
{
    const char *keys[160];
    int n = 0;
    for (int i = 0; i < runcfg_nkeys() && n < 150; i++)
        if ((!live_only || runcfg_key_live(i)) && runcfg_key_applies(i, arch)) keys[n++] = runcfg_key_name(i);
    if (!live_only) keys[n++] = "name";
    add_kv(c, word, keys, n);
}

static void add_words(cands *c, const char *words)
{
    while (*words) {
        size_t n = strcspn(words, " ");
        char w[64];
        snprintf(w, sizeof w, "%.*s", (int)(n < 63 ? n : 63), words);
        add(c, w);
        words += n + (words[n] == ' ');
    }
}

char **tui_complete(tui *app, const char *line, int start, int end)
{
    char head[4096], word[512];
    if (start < 0 || end < start || start > 4000 || end - start > 500) return NULL;
    snprintf(head, sizeof head, "%.*s", start, line);
    snprintf(word, sizeof word, "%.*s", end - start, line + start);
    char *argv[MAX_ARGS + 1];
    const char *why;
    int argc = tui_tokenize(head, argv, MAX_ARGS, &why);
    if (argc < 0) return NULL;
    cands c = {NULL, 0, 0, word};
    if (argc == 0) {
        for (int i = 0; i < tui_ncommands; i++) add(&c, tui_commands[i].name);
        return c.v;
    }
    const tui_command *cmd = tui_command_find(argv[0]);
    if (!cmd) return NULL;
    int pos = argc - 1; /* arguments before this word */
    int has_run = pos >= 1 && (is_uint(argv[1]) || run_named(app, argv[1]));
    switch (cmd->complete) {
    case COMPLETE_NONE: break;
    case COMPLETE_COMMAND:
        if (pos == 0) {
            for (int i = 0; i < tui_ncommands; i++) add(&c, tui_commands[i].name);
            add(&c, "keys");
        }
        break;
    case COMPLETE_NEW:
        if (pos == 0 && !strchr(word, '=')) {
            add_presets(&c);
            add_run_ids(&c, app);
        }
        add_setting_keys(&c, word, 0, line_arch(app, argc, argv));
        break;
    case COMPLETE_KEYS: add_setting_keys(&c, word, 0, line_arch(app, argc, argv)); break;
    case COMPLETE_RUN:
        if (pos == 0) add_runs(&c, app);
        break;
    case COMPLETE_LIVE:
        if (pos == 0 && !strchr(word, '=')) add_runs(&c, app);
        add_setting_keys(&c, word, 1, line_arch(app, argc, argv));
        break;
    case COMPLETE_SETTING:
        if (pos == 0) add_runs(&c, app);
        if (pos == 0 || (pos == 1 && has_run)) add_words(&c, key_choices(cmd->name));
        break;
    case COMPLETE_BLOCK: {
        static const char *const opts[] = {"layers", "train"};
        if (pos == 0) add_runs(&c, app);
        if (!strchr(word, '=')) add_words(&c, "none key anchor1 anchor2 anchors");
        if (pos >= 1) add_kv(&c, word, opts, 2);
        break;
    }
    case COMPLETE_EVAL:
        if (pos == 0) add_words(&c, "block subst");
        else if (!strcmp(argv[1], "block")) {
            static const char *const opts[] = {"layers", "n"};
            if (pos == 1) add_runs(&c, app);
            if (!strchr(word, '=')) add_words(&c, "key anchor1 anchor2 anchors");
            add_kv(&c, word, opts, 2);
        } else if (!strcmp(argv[1], "subst")) {
            static const char *const opts[] = {"layer", "from", "n"};
            if (pos == 1) add_runs(&c, app);
            add_kv(&c, word, opts, 3);
        }
        break;
    case COMPLETE_HEATMAP: {
        static const char *const opts[] = {"layer", "seq", "head"};
        if (pos == 0) add_runs(&c, app);
        if (!strchr(word, '=')) add_words(&c, "cos attn off");
        add_kv(&c, word, opts, 3);
        break;
    }
    case COMPLETE_SHOW:
        if (pos == 0) add_list(&c, show_what, 6);
        else if (pos == 1) {
            const char *w = argv[1];
            if (!strcmp(w, "overlay")) add_words(&c, "all none"), add_run_ids(&c, app);
            else if (!strcmp(w, "run")) add_words(&c, "auto"), add_run_ids(&c, app);
            else if (!strcmp(w, "loss")) add_words(&c, "both train test");
            else if (!strcmp(w, "acc")) add_words(&c, "both comp sym seen");
            else if (!strcmp(w, "heatmap")) add_words(&c, "on off");
        }
        break;
    case COMPLETE_SESSION:
        if (pos == 0) {
            int n;
            char **l = tui_list_sessions(app->sessions_root, &n);
            add_list(&c, (const char *const *)l, n);
            tui_free_list(l, n);
        }
        break;
    }
    return c.v;
}

void tui_free_candidates(char **c)
{
    if (!c) return;
    for (char **p = c; *p; p++) free(*p);
    free(c);
}
