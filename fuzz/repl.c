/* Fuzz target: REPL lines, one per line of the input, each parsed and run
 * by tui_execute as the workbench's prompt does, and completed by
 * tui_complete as TAB does. The app is headless and has no worker (so no
 * training thread: the jobs commands send are dropped) and holds four runs
 * in different states. `save` and `load` would write and replace session
 * directories, so those lines only go through tui_tokenize and
 * session_resolve. Each input starts from the same app. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "fuzz_text.h"
#include "session.h"

#define NOWHERE "/nonexistent/achilles-fuzz" /* sessions and runs, never created */

static tui app;

static void add_run(int id, const char *name, tui_run_state state, int epochs)
{
    tui_run *r = &app.runs[app.nruns++];
    memset(r, 0, sizeof *r);
    r->id = id;
    r->state = state;
    r->queue_pos = id;
    snprintf(r->name, sizeof r->name, "%s", name);
    snprintf(r->dir, sizeof r->dir, NOWHERE "/session/runs/%d", id);
    tui_demo_config(&r->cfg);
    for (int e = 0; e < epochs; e++) {
        ach_metrics m;
        memset(&m, 0, sizeof m);
        m.epoch = e;
        m.eval.kind = &task_kind_composite;
        m.train_loss = m.eval.value[task_metric_index(&task_kind_composite, TASK_METRIC_TEST_LOSS)] = 5.0 - e;
        if (tui_run_add_point(r, &m)) abort();
    }
}

/* The same app for every input; the log buffer is kept. */
static void reset(void)
{
    tui_log_line *log = app.log ? app.log : calloc(TUI_LOG_LINES, sizeof *log);
    if (!log) abort();
    for (int i = 0; i < app.nruns; i++) free(app.runs[i].hist);
    free(app.heat.a);
    free(app.heat.b);
    memset(&app, 0, sizeof app);
    app.log = log;
    snprintf(app.session_name, sizeof app.session_name, "fuzz");
    snprintf(app.session_dir, sizeof app.session_dir, NOWHERE "/session");
    snprintf(app.sessions_root, sizeof app.sessions_root, NOWHERE);
    app.view.overlay_all = 1;
    app.view.heat_shown = 1;
    add_run(1, "std", RS_RUNNING, 3);
    add_run(2, "all-one", RS_QUEUED, 1);
    add_run(3, "paused", RS_PAUSED, 2);
    add_run(4, "bad", RS_FAILED, 0);
    app.next_id = 5;
    app.next_queue_pos = 5;
}

/* save and load: parsed, not run. */
static int writes_sessions(const char *line)
{
    char buf[4096], *argv[65], dir[TUI_PATH], name[128], err[1024];
    const char *why;
    if (strlen(line) >= sizeof buf) return 0; /* tui_execute refuses it */
    strcpy(buf, line);
    int argc = tui_tokenize(buf, argv, 64, &why);
    const tui_command *c = argc > 0 ? tui_command_find(argv[0]) : NULL;
    if (!c || (strcmp(c->name, "save") && strcmp(c->name, "load"))) return 0;
    if (argc == 2) session_resolve(app.sessions_root, argv[1], dir, sizeof dir, name, sizeof name, err, sizeof err);
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fuzz_text(data, size);
    reset();
    for (char *line = text, *next; line; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = 0;
        size_t n = strlen(line), start = n;
        while (start > 0 && line[start - 1] != ' ' && line[start - 1] != '\t') start--;
        tui_free_candidates(tui_complete(&app, line, (int)start, (int)n));
        if (!writes_sessions(line)) tui_execute(&app, line);
    }
    free(text);
    return 0;
}
