/* The workbench without a terminal: commands in, effects and log messages
 * out; readline fed through its callback interface (INPUTRC=/dev/null);
 * completion; mistyped commands; snapshots that continue exactly. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "commands.h"
#include "fsutil.h"
#include "repl.h"
#include "session.h"
#include "tap.h"
#include "tui.h"

static char tmp[512];
/* a small, fast run: t/data/small.json, about a second an epoch */
#define SMALL "t/data/small.json n_layer=2 d_state=16 headdim=16 lr_max=1e-2 lr_min=1e-4 warmup_epochs=1 batch_size=500"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Whether one of the last n log lines holds needle. */
static int log_has(tui *app, const char *needle, int n)
{
    for (int i = 0; i < n; i++) {
        const char *l = tui_log_get(app, i);
        if (!l) break;
        if (strstr(l, needle)) return 1;
    }
    return 0;
}

/* Whether the help overlay is up with title and holds needle. */
static int page_has(tui *app, const char *title, const char *needle)
{
    if (!app->view.help_shown || strcmp(app->page.title, title) || !strstr(app->page.text, needle)) {
        diag("overlay %s '%s': %.300s", app->view.help_shown ? "shown" : "hidden", app->page.title, app->page.text);
        return 0;
    }
    return 1;
}

/* Every command's synopsis and help, whole, on lines of the overlay. */
static int page_has_every_command(tui *app)
{
    for (int i = 0; i < tui_ncommands; i++) {
        char syn[512], help[512];
        const tui_command *c = &tui_commands[i];
        snprintf(syn, sizeof syn, "\n  %s%s%s\n", c->name, *c->args ? " " : "", c->args);
        snprintf(help, sizeof help, "\n      %s\n", c->help);
        if (!strstr(app->page.text, syn) || !strstr(app->page.text, help)) {
            diag("no '%s' or its help in the overlay", c->name);
            return 0;
        }
    }
    return 1;
}

static void show_log(tui *app, int n)
{
    for (int i = n - 1; i >= 0; i--)
        if (tui_log_get(app, i)) diag("log: %s", tui_log_get(app, i));
}

static int run(tui *app, const char *line) { return tui_execute(app, line); }

static int last_epoch(tui *app, int id)
{
    tui_run *r = tui_run_find(app, id);
    return r && r->nhist ? r->hist[r->nhist - 1].epoch : -1;
}

static int state_of(tui *app, int id)
{
    tui_run *r = tui_run_find(app, id);
    return r ? (int)r->state : -1;
}

/* Pumps worker events until the run reaches epoch e or stops (timeout s). */
static int wait_epoch(tui *app, int id, int e, double s)
{
    double t0 = now_s();
    while (now_s() - t0 < s) {
        if (last_epoch(app, id) >= e) return 1;
        if (state_of(app, id) == RS_FAILED) return 0;
        tui_pump(app, 100);
    }
    return last_epoch(app, id) >= e;
}

static int wait_state(tui *app, int id, int st, double s)
{
    double t0 = now_s();
    while (now_s() - t0 < s && state_of(app, id) != st) tui_pump(app, 100);
    return state_of(app, id) == st;
}

static int wait_log(tui *app, const char *needle, double s)
{
    double t0 = now_s();
    while (now_s() - t0 < s) {
        if (log_has(app, needle, 40)) return 1;
        tui_pump(app, 100);
    }
    return 0;
}

static int open_app(tui *app, const char *session)
{
    char err[1024];
    tui_opts o = {tmp, 1, 0};
    if (tui_init(app, &o, err, sizeof err) || tui_open(app, session, err, sizeof err)) {
        diag("%s", err);
        return -1;
    }
    return 0;
}

static void close_app(tui *app)
{
    char err[1024];
    if (tui_shutdown(app, err, sizeof err)) diag("shutdown: %s", err);
    tui_free(app);
}

/* metrics.jsonl without the wall-clock fields, one canonical line each */
static char *records(const char *dir)
{
    char path[1024], err[256];
    snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
    char *text = read_file(path, 1 << 24, NULL, err, sizeof err);
    if (!text) return strdup("");
    size_t cap = strlen(text) + 1, k = 0;
    char *out = calloc(1, cap);
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        cJSON *o = cJSON_Parse(line);
        cJSON_DeleteItemFromObject(o, "seq_per_s");
        cJSON_DeleteItemFromObject(o, "elapsed_s");
        char *s = cJSON_PrintUnformatted(o);
        k += snprintf(out + k, cap - k, "%s\n", s);
        free(s);
        cJSON_Delete(o);
    }
    free(text);
    return out;
}

static int count_lines(const char *path)
{
    FILE *f = fopen(path, "r");
    int n = 0, c;
    if (!f) return -1;
    while ((c = fgetc(f)) != EOF) n += c == '\n';
    fclose(f);
    return n;
}

static int has_candidate(char **c, const char *want)
{
    for (char **p = c; p && *p; p++)
        if (!strcmp(*p, want)) return 1;
    return 0;
}

static int ncands(char **c)
{
    int n = 0;
    for (char **p = c; p && *p; p++) n++;
    return n;
}

static void test_commands(void)
{
    static tui app;
    if (open_app(&app, "cmds")) {
        ok(0, "open a fresh session");
        return;
    }
    ok(log_has(&app, "new session 'cmds'", 5), "a fresh session says so");
    char sj[1024];
    snprintf(sj, sizeof sj, "%s/cmds/session.json", tmp);
    ok(access(sj, F_OK) == 0, "a fresh session writes its session.json");

    /* mistyped and malformed: a useful message, never a crash */
    ok(run(&app, "strat") < 0 && log_has(&app, "did you mean 'start'?", 3), "'strat': did you mean 'start'");
    ok(log_has(&app, "usage: start [RUN]", 3), "and the usage");
    ok(run(&app, "nwe demo") < 0 && log_has(&app, "did you mean 'new'", 3), "'nwe': did you mean 'new'");
    ok(run(&app, "st") < 0 && log_has(&app, "could be start, stop", 3), "'st' is ambiguous: start, stop");
    ok(run(&app, "xyzzy") < 0 && log_has(&app, "unknown command 'xyzzy'; 'help' lists", 3), "nonsense: unknown");
    ok(run(&app, "new \"unclosed") < 0 && log_has(&app, "quote is not closed", 3), "an unclosed quote");
    ok(run(&app, "pause") < 0 && log_has(&app, "no runs yet", 3), "pause with no runs");
    ok(run(&app, "new " SMALL " gama=1") < 0 && log_has(&app, "did you mean 'gamma'?", 3), "new gama=1: did you mean gamma");
    ok(run(&app, "new " SMALL " bogus=1") < 0 && log_has(&app, "unknown key 'bogus'", 3), "new bogus=1: unknown key");
    ok(run(&app, "new " SMALL " n_layer=two") < 0 && log_has(&app, "'two' is not an integer", 3), "new n_layer=two");
    ok(run(&app, "new nosuchpreset") < 0 && log_has(&app, "nosuchpreset", 3), "new with a missing preset");
    ok(run(&app, "new dense-ar-small") < 0 && log_has(&app, "task kind dense_ar needs a model family that takes vectors", 3),
       "new on a dense_ar preset: no model family takes vectors yet");
    ok(app.nruns == 0, "no run was made by a bad command");
    ok(run(&app, "") == 0 && run(&app, "   ") == 0 && run(&app, "# a comment") == 0, "blank lines and comments");
    char longline[6000];
    memset(longline, 'x', sizeof longline - 1);
    longline[sizeof longline - 1] = 0;
    ok(run(&app, longline) < 0 && log_has(&app, "too long", 2), "a very long line");
    ok(run(&app, "show colour red") < 0 && log_has(&app, "nothing called 'colour'", 3), "show: an unknown pane setting");
    ok(run(&app, "help nwe") < 0 && log_has(&app, "did you mean 'new'", 3), "help nwe: did you mean new");
    ok(!app.view.help_shown, "the help overlay starts closed");
    ok(run(&app, "help") == 0 && page_has(&app, "help", "Commands (") && page_has(&app, "help", "'paper'") &&
           page_has(&app, "help", "q or Esc closes"),
       "help opens the overlay: the commands, the paper preset, how to close it");
    ok(page_has_every_command(&app), "every command's usage and help, whole, on lines of their own");
    ok(!log_has(&app, "Commands (", 5) && log_has(&app, "> help", 1), "the log only echoes the command");
    app.view.help_shown = 0;
    ok(run(&app, "help new") == 0 && page_has(&app, "help new", "new [PRESET | RUN] [key=value ...] [name=NAME]\n"),
       "help new: its usage in the overlay");
    ok(page_has(&app, "help new", "a copy of a run's settings") && !strstr(app.page.text, "paper ["), "and its help, only its");
    ok(run(&app, "help keys") == 0 && page_has(&app, "run settings", "  all_one_conv    conv1d weights") &&
           page_has(&app, "run settings", " say (live) [off]\n") &&
           page_has(&app, "run settings", "  headdim         head size P (mamba2 only) [64]\n") &&
           page_has(&app, "run settings", "  beta1           AdamW beta1 ["),
       "help keys: the settings, live ones and one family's marked from the table");
    ok(run(&app, "help heat") == 0 && page_has(&app, "help heatmap", "heatmap [RUN]"),
       "a unique prefix names a command (heat = heatmap)");
    ok(run(&app, "help nosuch") < 0 && log_has(&app, "no command 'nosuch'", 2), "help of no command: in the log");

    /* a run */
    ok(run(&app, "new " SMALL " epochs=100000 name=first") == 0, "new: a run from a preset path and settings");
    ok(app.nruns == 1 && app.runs[0].id == 1 && !strcmp(app.runs[0].name, "first"), "it is run 1, named");
    ok(app.runs[0].cfg.model.d_state == 16 && app.runs[0].cfg.epochs == 100000, "with its settings");
    ok(wait_epoch(&app, 1, 1, 60), "it is created, started and trains an epoch");
    ok(state_of(&app, 1) == RS_RUNNING, "it is running");
    char dir1[1024];
    snprintf(dir1, sizeof dir1, "%s", app.runs[0].dir);
    char p[1200];
    snprintf(p, sizeof p, "%s/config.json", dir1);
    ok(access(p, F_OK) == 0 && strstr(dir1, "/cmds/runs/1"), "its run directory is inside the session: %s", dir1);
    ok(run(&app, "pause 7") < 0 && log_has(&app, "there is no run 7", 3), "pause 7: no such run");
    ok(run(&app, "delete") < 0 && log_has(&app, "usage: delete RUN", 3), "delete without an id: usage");

    /* live interventions at a step boundary, in the run's record */
    ok(run(&app, "all_one_conv 1 on") == 0, "all_one_conv 1 on");
    ok(wait_log(&app, "all_one_conv on from epoch", 30), "applied at a step boundary, says when");
    char *rc = app.runs[0].cfg.all_one_conv ? "on" : "off";
    ok(!strcmp(rc, "on"), "the run's settings show it");
    int e_set = last_epoch(&app, 1);
    ok(wait_epoch(&app, 1, e_set + 1, 60), "training goes on");
    snprintf(p, sizeof p, "%s/interventions.jsonl", dir1);
    ok(count_lines(p) == 1, "interventions.jsonl records the switch");
    char *recs = records(dir1);
    const char *lastrec = recs + strlen(recs) - 2;
    while (lastrec > recs && lastrec[-1] != '\n') lastrec--;
    ok(strstr(lastrec, "\"all_one_conv\":true") != NULL, "the latest metrics record has all_one_conv on");
    ok(strstr(recs, "\"all_one_conv\":false") != NULL, "earlier records have it off");
    free(recs);
    ok(run(&app, "set 1 gamma=2") < 0 &&
           log_has(&app, "set: 'gamma' cannot change on a live run; live settings: all_one_conv, pos_enc, block, "
                         "block_layers, block_train; 'new 1 gamma=2' makes a new run with it", 3),
       "set gamma: not a live setting; says which are and how to make a run with it");
    ok(run(&app, "set 1 frob=2") < 0 && log_has(&app, "set: 'frob' is not a setting; live settings: all_one_conv", 3),
       "set frob: not a setting at all");
    ok(run(&app, "pos_enc 1 cosine") < 0 && log_has(&app, "cosine", 3), "pos_enc cosine: a bad value is refused now");
    ok(run(&app, "block key,anchors layers=all") == 0 && wait_log(&app, "block key,anchors from epoch", 30),
       "block key,anchors on the focused run");
    ok(run(&app, "block none") == 0 && wait_log(&app, "block none from epoch", 30), "block none");
    ok(run(&app, "all_one_conv off") == 0 && wait_log(&app, "all_one_conv off from epoch", 30), "all_one_conv off");

    /* analyses */
    ok(run(&app, "eval block 1 key,anchors n=20") == 0 && wait_log(&app, "agreement", 60), "eval block: agreement");
    ok(log_has(&app, " 43 ", 6), "per pair, pair 43 included");
    /* the table's rows: the lines logged with the agreement line, after it */
    int at = 0, table = 0, fits = 1;
    while (tui_log_get(&app, at) && !strstr(tui_log_get(&app, at), "agreement")) at++;
    for (int i = at - 1; i >= 0 && !strncmp(tui_log_get(&app, i), "            ", TUI_LOG_STAMP + 1); i--, table++)
        fits &= tui_text_cols(tui_log_get(&app, i)) <= 79;
    ok(table >= 2 && fits, "the table's %d rows fit an 80-column log with their columns", table);
    ok(run(&app, "eval subst n=20") == 0 && wait_log(&app, "collapse", 60) && log_has(&app, "of predictions unchanged", 20),
       "eval subst: collapse rates, and how many predictions it leaves unchanged");
    ok(run(&app, "eval nothing") < 0 && log_has(&app, "usage: eval", 3), "eval nothing: usage");
    ok(run(&app, "heatmap 1 layer=1") == 0 && wait_log(&app, "conv cosine, layer 1", 60), "heatmap: conv cosine of layer 1");
    ok(app.heat.kind == HEAT_COSINE && app.heat.rows == 4 && app.heat.a && app.heat.b, "a 4 x 4 matrix at epoch 0 and now");
    ok(fabs(app.heat.a[0] - 1) < 1e-6 && fabs(app.heat.b[5] - 1) < 1e-6, "with ones on the diagonal");
    ok(run(&app, "heatmap attn seq=3 layer=0") == 0 && wait_log(&app, "hidden attention, layer 0", 60),
       "heatmap attn: the SSM matrix of a sequence");
    ok(app.heat.kind == HEAT_ATTENTION && app.heat.rows == 6 && app.heat.seq == 3, "6 x 6 for sequence 3");
    ok(run(&app, "heatmap layer=9") < 0 && log_has(&app, "layers 0..1", 3), "heatmap layer=9: names the layers");

    /* panes */
    ok(run(&app, "show acc sym") == 0 && app.view.acc == ACC_SYM, "show acc sym");
    ok(run(&app, "show loss test") == 0 && app.view.loss == LOSS_TEST, "show loss test");
    ok(run(&app, "show overlay 1") == 0 && !app.view.overlay_all && app.view.noverlay == 1, "show overlay 1");
    ok(run(&app, "show overlay 5") < 0, "show overlay 5: no such run");
    ok(run(&app, "show run 1") == 0 && app.view.focus == 1, "show run 1");
    ok(run(&app, "show") == 0 && log_has(&app, "overlay 1", 2), "show: the settings");

    /* a second run, the queue, pause / resume / start / stop / delete */
    ok(run(&app, "new 1 epochs=2 name=second") == 0 && app.nruns == 2, "new 1: a copy of run 1's settings");
    ok(app.runs[1].cfg.model.d_state == 16 && app.runs[1].cfg.epochs == 2, "with them, and the override");
    ok(wait_epoch(&app, 2, 0, 60) && state_of(&app, 2) == RS_QUEUED, "it waits in the queue: one run trains at a time");
    ok(run(&app, "start 2") == 0 && state_of(&app, 2) == RS_RUNNING && state_of(&app, 1) == RS_QUEUED,
       "start 2: it runs, run 1 goes back to the queue");
    ok(wait_state(&app, 2, RS_DONE, 60), "run 2 finishes");
    ok(wait_state(&app, 1, RS_RUNNING, 10), "and run 1 goes on");
    ok(run(&app, "start 2") < 0 && log_has(&app, "finished", 3), "a finished run does not start again");
    ok(run(&app, "pause 1") == 0 && state_of(&app, 1) == RS_PAUSED, "pause 1");
    /* "(paused)": run 1 also held, queued, when run 2 took its place above */
    ok(wait_log(&app, "(paused)", 30), "its state is saved at a step boundary");
    int e_paused = last_epoch(&app, 1);
    tui_pump(&app, 1500);
    ok(last_epoch(&app, 1) == e_paused, "a paused run does not train");
    ok(run(&app, "resume 1") == 0 && state_of(&app, 1) == RS_RUNNING, "resume 1: it runs again");
    ok(run(&app, "resume 1") < 0 && log_has(&app, "not paused", 3), "resume of a running run: says why not");
    ok(run(&app, "stop 1") == 0 && state_of(&app, 1) == RS_DONE, "stop 1: done");
    ok(run(&app, "runs") == 0 && log_has(&app, "stopped at epoch", 3), "runs: the list says it was stopped");
    ok(run(&app, "config 2") == 0 && page_has(&app, "run 2 (second) settings", "\n  d_state         16\n") &&
           page_has(&app, "run 2 (second) settings", "config.json") &&
           page_has(&app, "run 2 (second) settings", "\n  dt_rank         0 (mamba2 ignores it)\n") &&
           page_has(&app, "run 2 (second) settings", "\n  headdim         16\n"),
       "config 2: the settings in the overlay, one a line; the one its family ignores says so");
    ok(run(&app, "rename 2 twin") == 0 && !strcmp(tui_run_find(&app, 2)->name, "twin"), "rename 2 twin");
    ok(run(&app, "rename twin 7") < 0 && log_has(&app, "cannot be a number", 3), "a name cannot be a number");
    ok(run(&app, "config twin") == 0 && page_has(&app, "run 2 (twin) settings", "n_layer"), "a run by its name: config twin");
    ok(run(&app, "delete nosuch") < 0 && app.nruns == 2 && log_has(&app, "no run has that number or name", 3),
       "delete with an unknown name deletes nothing");

    /* completion */
    char **c = tui_complete(&app, "sh", 0, 2);
    ok(ncands(c) == 1 && has_candidate(c, "show"), "complete 'sh': show");
    tui_free_candidates(c);
    c = tui_complete(&app, "s", 0, 1);
    ok(has_candidate(c, "show") && has_candidate(c, "start") && has_candidate(c, "save") && has_candidate(c, "set"),
       "complete 's': every command starting so");
    tui_free_candidates(c);
    c = tui_complete(&app, "show ", 5, 5);
    ok(has_candidate(c, "overlay") && has_candidate(c, "layer") && ncands(c) == 6, "complete 'show ': its settings");
    tui_free_candidates(c);
    c = tui_complete(&app, "show acc ", 9, 9);
    ok(has_candidate(c, "sym") && has_candidate(c, "comp"), "complete 'show acc ': the values");
    tui_free_candidates(c);
    c = tui_complete(&app, "new demo gam", 9, 12);
    ok(ncands(c) == 3 && has_candidate(c, "gamma=") && has_candidate(c, "gamma_tensors=") && has_candidate(c, "gamma_bias="), "complete a setting: gamma=");
    tui_free_candidates(c);
    c = tui_complete(&app, "new demo fan=", 9, 13);
    ok(ncands(c) == 3 && has_candidate(c, "fan=shape0"), "complete a setting's value from the settings table: fan=shape0");
    tui_free_candidates(c);
    c = tui_complete(&app, "new demo ", 9, 9);
    ok(has_candidate(c, "headdim=") && !has_candidate(c, "dt_rank=") && has_candidate(c, "d_state="),
       "complete 'new demo ': the settings of its family, mamba2");
    tui_free_candidates(c);
    c = tui_complete(&app, "new demo arch=mamba1 ", 21, 21);
    ok(!has_candidate(c, "headdim=") && has_candidate(c, "dt_rank=") && has_candidate(c, "d_state="),
       "complete 'new demo arch=mamba1 ': mamba1's settings");
    tui_free_candidates(c);
    c = tui_complete(&app, "pos_enc 1 ", 10, 10);
    ok(ncands(c) == 3 && has_candidate(c, "sinusoidal") && has_candidate(c, "learned"),
       "complete 'pos_enc 1 ': its values from the settings table");
    tui_free_candidates(c);
    c = tui_complete(&app, "new demo arch=", 9, 14);
    ok(has_candidate(c, "arch=mamba1") && has_candidate(c, "arch=mamba2"), "complete a setting's value: arch=mamba1|2");
    tui_free_candidates(c);
    c = tui_complete(&app, "new ", 4, 4);
    ok(has_candidate(c, "composite") && has_candidate(c, "demo") && has_candidate(c, "1"), "complete 'new ': presets and runs");
    tui_free_candidates(c);
    c = tui_complete(&app, "pause ", 6, 6);
    ok(ncands(c) == 4 && has_candidate(c, "1") && has_candidate(c, "2") && has_candidate(c, "first"),
       "complete runs: numbers and names");
    tui_free_candidates(c);
    c = tui_complete(&app, "set 1 ", 6, 6);
    ok(has_candidate(c, "all_one_conv=") && has_candidate(c, "pos_enc=") && !has_candidate(c, "gamma="),
       "complete 'set 1 ': live settings only");
    tui_free_candidates(c);
    c = tui_complete(&app, "all_one_conv 1 o", 15, 16);
    ok(ncands(c) == 2 && has_candidate(c, "on") && has_candidate(c, "off"), "complete on|off");
    tui_free_candidates(c);
    c = tui_complete(&app, "frob ", 5, 5);
    ok(c == NULL, "an unknown command completes to nothing");
    tui_free_candidates(c);

    /* readline, fed through its callback interface */
    char hist[1024];
    snprintf(hist, sizeof hist, "%s/state/achilles/history", tmp);
    char err[1024];
    ok(tui_repl_init(&app, hist, err, sizeof err) == 0, "readline handler installed");
    tui_repl_feed(&app, "ses", 3);
    tui_repl_feed(&app, "\t", 1);
    ok(!strcmp(tui_repl_line(NULL), "sessions "), "TAB completes 'ses' to 'sessions '");
    tui_repl_feed(&app, "\r", 1);
    ok(log_has(&app, "> sessions", 3) && tui_repl_line_empty(), "Enter runs it and clears the line");
    const char *typed = "show loss both\r";
    for (const char *q = typed; *q; q++) tui_repl_feed(&app, q, 1);
    ok(app.view.loss == LOSS_BOTH, "a line typed key by key runs");
    tui_repl_feed(&app, "\033[A", 3);
    ok(!strcmp(tui_repl_line(NULL), "show loss both"), "Up recalls the last line");
    tui_repl_feed(&app, "\033[A", 3);
    ok(!strcmp(tui_repl_line(NULL), "sessions "), "Up again, the one before (as it was typed)");
    tui_repl_feed(&app, "\001\013", 2);
    ok(tui_repl_line_empty(), "Ctrl-A Ctrl-K clears the line");
    tui_repl_feed(&app, "sh\t", 3);
    tui_repl_feed(&app, "ac\t", 3);
    tui_repl_feed(&app, "se", 2);
    tui_repl_feed(&app, "\t\r", 2);
    ok(app.view.acc == ACC_SEEN, "sh TAB ac TAB se TAB Enter: show acc seen");
    tui_repl_feed(&app, "pa\t", 3);
    ok(!strcmp(tui_repl_line(NULL), "pa") && log_has(&app, "completions:  paper  pause", 2),
       "an ambiguous TAB lists the candidates in the log");
    tui_repl_feed(&app, "\001\013", 2);
    tui_repl_close(&app);
    int hl = count_lines(hist);
    ok(hl >= 3, "history is saved per user (%d lines in %s)", hl, hist);

    /* snapshots */
    ok(run(&app, "save") == 0, "save");
    while (app.save_req) tui_pump(&app, 100);
    ok(log_has(&app, "session saved to", 3), "saved in place");
    ok(run(&app, "save snap1") == 0, "save snap1");
    while (app.save_req) tui_pump(&app, 100);
    ok(log_has(&app, "snapshot 'snap1' saved", 3), "a snapshot copy");
    snprintf(p, sizeof p, "%s/snap1/runs/1/state.safetensors", tmp);
    ok(access(p, F_OK) == 0, "with the runs' directories");
    snprintf(p, sizeof p, "%s/snap1/runs/2/metrics.jsonl", tmp);
    ok(count_lines(p) == 3, "and their records");
    char inner[1100];
    snprintf(inner, sizeof inner, "save %s/cmds/inner", tmp);
    ok(run(&app, inner) < 0 && log_has(&app, "cannot be inside", 3), "no snapshot inside the session");
    ok(run(&app, "sessions") == 0 && log_has(&app, "snap1", 2) && log_has(&app, "cmds*", 2), "sessions lists them");
    ok(run(&app, "load nosuch") < 0 && log_has(&app, "holds no session.json", 3), "load nosuch: says what is missing");
    ok(run(&app, "delete 2") == 0 && app.nruns == 1 && !tui_run_find(&app, 2), "delete 2");
    snprintf(p, sizeof p, "%s/cmds/runs/2", tmp);
    for (int i = 0; i < 100 && access(p, F_OK) == 0; i++) tui_pump(&app, 100);
    ok(access(p, F_OK) != 0, "its directory is gone");
    if (access(p, F_OK) == 0) show_log(&app, 8);
    snprintf(p, sizeof p, "%s/snap1/runs/2", tmp);
    ok(access(p, F_OK) == 0, "the snapshot keeps its copy");
    ok(run(&app, "load snap1") == 0 && !strcmp(app.session_name, "snap1") && app.nruns == 2, "load snap1");
    ok(tui_run_find(&app, 2) && tui_run_find(&app, 2)->nhist == 3 && !strcmp(tui_run_find(&app, 2)->name, "twin"),
       "its runs and history come back");
    ok(app.view.focus == 1 && app.view.acc == ACC_SEEN, "and its pane settings");
    ok(run(&app, "quit") == 0 && app.quit, "quit");
    close_app(&app);
    snprintf(p, sizeof p, "%s/cmds/session.json", tmp);
    char serr[256];
    char *js = read_file(p, 1 << 20, NULL, serr, sizeof serr);
    ok(js && strstr(js, "\"state\":\t\"done\"") && !strstr(js, "\"id\":\t\"2\""), "loading saved the session it left");
    free(js);
}

/* Snapshot, stop, load, continue: the same numbers as never stopping. */
static void test_exact_continuation(void)
{
    static tui a, b;
    const char *cmd = "new " SMALL " epochs=12 seed=3";
    if (open_app(&a, "straight") || run(&a, cmd)) {
        ok(0, "straight run");
        return;
    }
    ok(wait_state(&a, 1, RS_DONE, 120), "a run trains 12 epochs straight");
    char straight[1024];
    snprintf(straight, sizeof straight, "%s", a.runs[0].dir);
    close_app(&a);

    if (open_app(&b, "stopped") || run(&b, cmd)) {
        ok(0, "second run");
        return;
    }
    ok(wait_epoch(&b, 1, 2, 120), "the same run to epoch 2");
    ok(last_epoch(&b, 1) < 12, "and no further than epoch %d of 12: it stops mid-run", last_epoch(&b, 1));
    int nh = b.runs[0].nhist;
    tui_point before[16];
    memcpy(before, b.runs[0].hist, nh * sizeof *before);
    close_app(&b); /* saves at a step boundary, stops the worker */

    static tui c;
    if (open_app(&c, "stopped")) {
        ok(0, "reopen");
        return;
    }
    tui_run *r = tui_run_find(&c, 1);
    int same = r && r->nhist >= nh;
    for (int i = 0; same && i < nh; i++) {
        const tui_point *u = &r->hist[i], *v = &before[i];
        same = u->epoch == v->epoch && u->train_loss == v->train_loss && u->test_loss == v->test_loss &&
               u->comp == v->comp && u->sym == v->sym && u->seen == v->seen;
    }
    ok(same, "reopened: the curves' history is back from metrics.jsonl");
    ok(r && (r->state == RS_RUNNING || r->state == RS_QUEUED), "the run that was training trains again");
    ok(wait_state(&c, 1, RS_DONE, 120), "and finishes");
    char *x = records(straight), *y = records(r->dir);
    ok(strlen(x) > 0 && !strcmp(x, y), "every record equals the run that never stopped");
    if (strcmp(x, y)) diag("straight:\n%s\nstopped:\n%s", x, y);
    free(x);
    free(y);
    close_app(&c);
}

/* A NaN in the first weight of the final norm of a run's saved state. */
static int plant_nan(const char *run_dir)
{
    char path[1100];
    snprintf(path, sizeof path, "%s/state.safetensors", run_dir);
    FILE *f = fopen(path, "r+b");
    unsigned char len[8];
    int ok = 0;
    if (f && fread(len, 1, 8, f) == 8) {
        uint64_t n = 0;
        for (int i = 7; i >= 0; i--) n = n << 8 | len[i];
        char *h = n < (1 << 24) ? calloc(1, n + 1) : NULL;
        cJSON *j = h && fread(h, 1, n, f) == n ? cJSON_Parse(h) : NULL;
        cJSON *off = cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "backbone.norm_f.weight"),
                                                            "data_offsets"), 0);
        const unsigned char nan[4] = {0x00, 0x00, 0xc0, 0x7f}; /* float32 quiet NaN, little-endian */
        ok = off && !fseek(f, (long)(8 + n + (uint64_t)off->valuedouble), SEEK_SET) && fwrite(nan, 1, 4, f) == 4;
        cJSON_Delete(j);
        free(h);
    }
    if (f && fclose(f)) ok = 0;
    return ok;
}

/* Divergence in the workbench: a run whose state holds a NaN fails with
 * the reason shown; the other run goes on. */
static void test_divergence(void)
{
    static tui a, b;
    if (open_app(&a, "diverge") || run(&a, "new " SMALL " epochs=100000 name=bad") ||
        run(&a, "new " SMALL " epochs=2 name=good")) {
        ok(0, "two runs");
        return;
    }
    ok(wait_epoch(&a, 1, 1, 60), "run 1 trains");
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", a.runs[0].dir);
    close_app(&a); /* saves run 1's state at a step boundary */
    ok(plant_nan(dir), "a NaN planted in run 1's saved state");
    if (open_app(&b, "diverge")) {
        ok(0, "reopen");
        return;
    }
    ok(wait_state(&b, 1, RS_FAILED, 60), "run 1 trains again and fails");
    tui_run *r = tui_run_find(&b, 1);
    ok(r && strstr(r->note, "diverged at epoch") && strstr(r->note, "loss nan") && log_has(&b, "run 1 failed: ", 40),
       "the reason is its note and in the log: %s", r ? r->note : "");
    ok(wait_state(&b, 2, RS_DONE, 120), "run 2 goes on and finishes");
    close_app(&b);
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (f) fputs(text, f), fclose(f);
}

/* Bad session files: rejected with the file, the field and the problem. */
static void test_bad_sessions(void)
{
    static const struct {
        const char *json, *want;
    } bad[] = {
        {"[1,2]", "not a JSON object"},
        {"{\"format\": \"other\", \"version\": \"1\", \"next_id\": \"1\", \"runs\": []}", "field 'format'"},
        {"{\"format\": \"achilles-session\", \"version\": \"9\", \"next_id\": \"1\", \"runs\": []}", "field 'version'"},
        {"{\"format\": \"achilles-session\", \"version\": \"1\", \"next_id\": 3, \"runs\": []}", "field 'next_id' must be a string"},
        {"{\"format\": \"achilles-session\", \"version\": \"1\", \"next_id\": \"1\", \"runs\": {}}", "field 'runs' must be an array"},
        {"{\"format\": \"achilles-session\", \"version\": \"1\", \"next_id\": \"1\", \"runs\": [{\"id\": \"x\"}]}", "runs[0]: field 'id'"},
        {"{\"format\": \"achilles-session\", \"version\": \"1\", \"next_id\": \"1\", \"runs\": [{\"id\": \"1\", \"state\": \"flying\", \"queue_pos\": \"1\", \"dir\": \"runs/1\"}]}", "'flying' is not one of"},
        {"{\"format\": \"achilles-session\", \"version\": \"1\", \"next_id\": \"1\", \"runs\": [{\"id\": \"1\", \"state\": \"done\", \"queue_pos\": \"1\", \"dir\": \"../../etc\"}]}", "must be a path inside the session"},
        {"{\"format\": \"achilles-session\", \"version\": \"1\", \"next_id\": \"1\", \"runs\": [{\"id\": \"1\", \"state\": \"done\", \"queue_pos\": \"1\", \"dir\": \"runs/1\"}, {\"id\": \"1\", \"state\": \"done\", \"queue_pos\": \"1\", \"dir\": \"runs/1\"}]}", "run 1 appears twice"},
        {"{\"format\": \"achilles-session\", \"version\": \"1\", \"next_id\": \"1\", \"runs\": [], \"panes\": {\"focus\": \"0\", \"layer\": \"0\", \"overlay\": \"some\", \"loss\": \"both\", \"acc\": \"both\", \"heatmap\": \"on\"}}", "field 'overlay'"},
        {"{\"format\": \"achilles-session\", \"version\": \"1\", \"next_id\": \"1\", \"runs\": [], \"panes\": {\"focus\": \"0\", \"layer\": \"0\", \"overlay\": \"all\", \"loss\": \"both\", \"acc\": \"most\", \"heatmap\": \"on\"}}", "field 'acc'"},
        {"{\"format\": \"achilles", "not a JSON object"},
    };
    char dir[1024], path[1100];
    snprintf(dir, sizeof dir, "%s/bad", tmp);
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/session.json", dir);
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        static tui app;
        char err[1024] = "";
        tui_opts o = {tmp, 0, 0};
        write_text(path, bad[i].json);
        tui_init(&app, &o, err, sizeof err);
        int rc = tui_open(&app, dir, err, sizeof err);
        ok(rc < 0 && strstr(err, bad[i].want) && strstr(err, "session.json"), "bad session %zu: %s", i, bad[i].want);
        if (rc == 0 || !strstr(err, bad[i].want)) diag("got: %s", err);
        tui_free(&app);
    }
    /* a run whose directory is gone fails alone; the session loads */
    write_text(path, "{\"format\": \"achilles-session\", \"version\": \"1\", \"next_id\": \"2\", \"runs\": [{\"id\": \"1\", "
                     "\"name\": \"gone\", \"state\": \"paused\", \"queue_pos\": \"1\", \"dir\": \"runs/1\"}]}");
    static tui app;
    char err[1024] = "";
    tui_opts o = {tmp, 0, 0};
    tui_init(&app, &o, err, sizeof err);
    ok(tui_open(&app, dir, err, sizeof err) == 0 && app.nruns == 1 && app.runs[0].state == RS_FAILED &&
           log_has(&app, "run 1 cannot be loaded", 3),
       "a run with no directory is marked failed, the rest loads");
    tui_free(&app);
    /* a directory that is not a session is left alone */
    snprintf(dir, sizeof dir, "%s/notasession", tmp);
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/precious.txt", dir);
    write_text(path, "mine");
    tui_init(&app, &o, err, sizeof err);
    ok(tui_open(&app, dir, err, sizeof err) < 0 && strstr(err, "not a session"), "a foreign directory is not taken over");
    tui_free(&app);
}

int main(void)
{
    setenv("INPUTRC", "/dev/null", 1);
    setenv("TERM", "dumb", 1);
    setenv("ACHILLES_THREADS", "1", 0);
    snprintf(tmp, sizeof tmp, "/tmp/tui_repl.XXXXXX");
    if (!mkdtemp(tmp)) {
        printf("1..0 # SKIP no temporary directory\n");
        return 0;
    }
    test_commands();
    test_exact_continuation();
    test_divergence();
    test_bad_sessions();
    if (!tap_failed) {
        char cmd[600];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
        if (system(cmd)) diag("could not remove %s", tmp);
    } else diag("left %s for a look", tmp);
    return done_testing();
}
