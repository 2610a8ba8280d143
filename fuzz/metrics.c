/* Fuzz target: a run's metrics.jsonl, one JSON record per line, read by
 * session_read_history for the workbench's curves when a session loads
 * (the run's live settings follow its records). The input is written as
 * metrics.jsonl into a private directory under $TMPDIR, removed at exit. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "session.h"

static tui_run run;
static char path[TUI_PATH + 32];

static void cleanup(void)
{
    unlink(path);
    rmdir(run.dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[1024];
    if (!run.dir[0]) {
        const char *t = getenv("TMPDIR");
        snprintf(run.dir, sizeof run.dir, "%s/achilles-fuzz-metrics.XXXXXX", t && *t ? t : "/tmp");
        if (!mkdtemp(run.dir)) {
            perror("mkdtemp");
            abort();
        }
        snprintf(path, sizeof path, "%s/metrics.jsonl", run.dir);
        atexit(cleanup);
    }
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, size, f) != size || fclose(f)) {
        perror(path);
        abort();
    }
    runcfg_defaults(&run.cfg);
    session_read_history(&run, err, sizeof err);
    for (int i = 1; i < run.nhist; i++)
        if (run.hist[i - 1].epoch >= run.hist[i].epoch) abort(); /* epochs in order, each once */
    free(run.hist);
    run.hist = NULL;
    run.nhist = run.cap = 0;
    return 0;
}
