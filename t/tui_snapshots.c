/* The workbench's session saves, driven without a terminal for
 * t/tui_crash.t, which kills this program at random instants:
 *   tui_snapshots make ROOT    ROOT/live: a session with two tiny runs
 *   tui_snapshots save ROOT    opens ROOT/live, trains, and saves for ever:
 *                              in place, then as the snapshot ROOT/snap
 *   tui_snapshots check DIR    loads DIR/session.json with the workbench's
 *                              loader and resumes every run from its state;
 *                              prints "epochs S R" per run (the state's and
 *                              the last record's); exit 1 if anything fails */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "session.h"
#include "tui.h"

#define TINY "t/data/small.json n_layer=1 d_model=16 d_state=8 headdim=8 batch_size=100 epochs=100000 ckpt_every=0"

static int open_app(tui *app, const char *root, char *err, size_t errlen)
{
    tui_opts o = {root, 0, 0};
    return tui_init(app, &o, err, errlen) || tui_open(app, "live", err, errlen) ? -1 : 0;
}

static int make(const char *root)
{
    static tui app;
    char err[1024] = "";
    int rc = open_app(&app, root, err, sizeof err);
    if (!rc) rc = tui_execute(&app, "new " TINY " name=a") || tui_execute(&app, "new " TINY " seed=1 name=b");
    /* both runs recorded their epoch 0 */
    for (int i = 0; !rc && i < app.nruns; i++) {
        while (!app.runs[i].nhist && app.runs[i].state != RS_FAILED) tui_pump(&app, 100);
        if (app.runs[i].state == RS_FAILED) rc = -1;
    }
    if (tui_shutdown(&app, err, sizeof err)) rc = -1;
    if (rc) fprintf(stderr, "make: %s\n", err[0] ? err : tui_log_get(&app, 0));
    tui_free(&app);
    return rc ? 1 : 0;
}

static int save(const char *root)
{
    static tui app;
    char err[1024];
    if (open_app(&app, root, err, sizeof err)) {
        fprintf(stderr, "save: %s\n", err);
        return 1;
    }
    for (long n = 1;; n++) {
        if (tui_save(&app, NULL, 1, err, sizeof err) || tui_save(&app, "snap", 1, err, sizeof err)) {
            fprintf(stderr, "save: %s\n", err);
            return 1;
        }
        printf("%ld\n", n);
        fflush(stdout);
        tui_pump(&app, 0);
    }
}

static int check(const char *dir)
{
    static tui app;
    char err[1024];
    tui_opts o = {"/nonexistent", 0, 0};
    int rc = tui_init(&app, &o, err, sizeof err) || session_read(&app, dir, err, sizeof err);
    if (rc) fprintf(stderr, "%s\n", err);
    for (int i = 0; !rc && i < app.nruns; i++) {
        tui_run *r = &app.runs[i];
        static ach_run run;
        if (r->state == RS_FAILED) {
            fprintf(stderr, "%s: run %d: %s\n", dir, r->id, r->note);
            rc = 1;
        } else if (ach_run_resume(&run, r->dir, tui_kernels(), err, sizeof err)) {
            fprintf(stderr, "%s\n", err);
            rc = 1;
        } else {
            printf("epochs %d %d\n", run.epoch, r->nhist ? r->hist[r->nhist - 1].epoch : -1);
            ach_run_close(&run);
        }
    }
    tui_free(&app);
    return rc ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && !strcmp(argv[1], "make")) return make(argv[2]);
    if (argc == 3 && !strcmp(argv[1], "save")) return save(argv[2]);
    if (argc == 3 && !strcmp(argv[1], "check")) return check(argv[2]);
    fprintf(stderr, "usage: tui_snapshots make|save ROOT | check DIR\n");
    return 2;
}
