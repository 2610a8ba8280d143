/* Fuzz target: a workbench snapshot's session.json, read by session_read
 * as `load NAME` and `achilles-tui SESSION` do. The input is written as
 * session.json into a private directory under $TMPDIR (removed at exit)
 * that also holds one valid run, runs/1, so a snapshot naming it goes on to
 * read that run's config.json and metrics.jsonl. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fsutil.h"
#include "session.h"

static char dir[512], run_dir[600];
static tui app;

static void must(int ok, const char *what)
{
    if (!ok) {
        perror(what);
        abort();
    }
}

static void put(const char *sub, const char *text)
{
    char path[700], err[1024];
    snprintf(path, sizeof path, "%s/%s", dir, sub);
    if (write_file_atomic(path, text, strlen(text), err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        abort();
    }
}

static void cleanup(void)
{
    const char *files[] = {"runs/1/config.json", "runs/1/metrics.jsonl", "session.json"};
    char path[700];
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        unlink(path);
    }
    rmdir(run_dir);
    snprintf(path, sizeof path, "%s/runs", dir);
    rmdir(path);
    rmdir(dir);
}

static void setup(void)
{
    const char *t = getenv("TMPDIR");
    char err[1024];
    snprintf(dir, sizeof dir, "%s/achilles-fuzz-session.XXXXXX", t && *t ? t : "/tmp");
    must(mkdtemp(dir) != NULL, "mkdtemp");
    atexit(cleanup);
    snprintf(run_dir, sizeof run_dir, "%s/runs/1", dir);
    must(!make_dirs(run_dir, err, sizeof err), "make_dirs");
    ach_runcfg c;
    runcfg_defaults(&c);
    char *cfg = runcfg_to_json(&c);
    put("runs/1/config.json", cfg);
    free(cfg);
    put("runs/1/metrics.jsonl",
        "{\"epoch\":0,\"step\":0,\"train_loss\":5.3,\"test_loss\":5.3,\"acc43_comp\":0,\"acc43_sym\":0,\"acc_seen\":0.01,"
        "\"all_one_conv\":false,\"pos_enc\":\"none\",\"block\":\"none\",\"block_layers\":\"all\",\"block_train\":false}\n"
        "{\"epoch\":1,\"train_loss\":\"Inf\",\"test_loss\":4.9,\"acc43_comp\":0.1,\"acc43_sym\":0,\"acc_seen\":0.2}\n");
    app.log = calloc(TUI_LOG_LINES, sizeof *app.log);
    must(app.log != NULL, "calloc");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[700], err[1024];
    if (!dir[0]) setup();
    snprintf(path, sizeof path, "%s/session.json", dir);
    FILE *f = fopen(path, "wb");
    must(f && fwrite(data, 1, size, f) == size && !fclose(f), path);
    tui_log_line *log = app.log;
    memset(&app, 0, sizeof app);
    app.log = log;
    app.next_id = 1;
    app.next_queue_pos = 1;
    session_read(&app, dir, err, sizeof err);
    for (int i = 0; i < app.nruns; i++) free(app.runs[i].hist);
    return 0;
}
