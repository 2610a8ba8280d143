/* `achilles phase`: the phase diagrams of a sweep beside the paper's Fig. 3,
 * as text heatmaps and a table, a CSV and an SVG figure. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "fsutil.h"
#include "phase.h"
#include "textplot.h"

const char *cli_phase_help =
    "usage: achilles phase DIR [--csv FILE] [--svg FILE] [--metric final|best] [--paper FILE] [--ascii]\n"
    "\n"
    "Pair-43 accuracy against the composite and the symmetric answer over layers\n"
    "(rows) and gamma (columns): the mean over seeds, the spread (min-max and\n"
    "standard deviation) and the number of runs per cell, as text heatmaps beside\n"
    "the paper's Fig. 3 and as a table. DIR is a sweep directory, or any directory\n"
    "with run directories in it; unfinished runs are left out. Runs that differ in\n"
    "other settings too (e.g. all_one_conv) get a diagram each.\n"
    "\n"
    "  --csv FILE        write the table as CSV (one row per cell)\n"
    "  --svg FILE        write the figure as SVG (composite and symmetric panels)\n"
    "  --metric final    accuracy at the last epoch (default)\n"
    "  --metric best     each answer's best epoch\n"
    "  --paper FILE      the reference figure (default paper_fig3.json in the data\n"
    "                    directory)\n"
    "  --ascii           heatmaps in ASCII even in a UTF-8 locale\n";

static int fail(const char *msg)
{
    fprintf(stderr, "achilles: phase: %s\n", msg);
    return 1;
}

static int write_out(const char *path, char *text, char *err, size_t errlen)
{
    if (!text) {
        snprintf(err, errlen, "%s: out of memory", path);
        return -1;
    }
    int rc = write_file_atomic(path, text, strlen(text), err, errlen);
    free(text);
    return rc;
}

int cli_phase(int argc, char **argv)
{
    const char *dir = NULL, *csv = NULL, *svg = NULL, *paper = NULL;
    int best = 0, ascii = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(cli_phase_help, stdout);
            return 0;
        }
        if (!strcmp(a, "--ascii")) ascii = 1;
        else if (!strcmp(a, "--csv") || !strcmp(a, "--svg") || !strcmp(a, "--metric") || !strcmp(a, "--paper")) {
            if (i + 1 >= argc) return cli_usage_error(cli_phase_help, "phase: %s needs a value", a);
            const char *v = argv[++i];
            if (!strcmp(a, "--csv")) csv = v;
            else if (!strcmp(a, "--svg")) svg = v;
            else if (!strcmp(a, "--paper")) paper = v;
            else if (!strcmp(v, "best")) best = 1;
            else if (strcmp(v, "final")) return cli_usage_error(cli_phase_help, "phase: --metric '%s': final or best", v);
        } else if (a[0] == '-' && a[1]) return cli_usage_error(cli_phase_help, "phase: unknown option '%s'", a);
        else if (dir) return cli_usage_error(cli_phase_help, "phase: one directory only ('%s' is extra)", a);
        else dir = a;
    }
    if (!dir) return cli_usage_error(cli_phase_help, "phase: which sweep directory?%s", "");
    char err[8192];
    int utf8 = !ascii && tp_locale_utf8();
    phase_paper pp;
    if (phase_paper_load(&pp, paper, err, sizeof err)) return fail(err);
    ach_sweep s;
    if (sweep_load(&s, dir, err, sizeof err)) {
        phase_paper_free(&pp);
        return fail(err);
    }
    phase_table t;
    int rc = 0;
    if (phase_build(&t, &s, best, err, sizeof err)) rc = fail(err);
    else {
        char title[256];
        snprintf(title, sizeof title, "sweep %s", s.name);
        char *text = phase_text(&t, &pp, title, utf8);
        if (!text) rc = fail("out of memory");
        else fputs(text, stdout);
        free(text);
        if (!rc && csv && write_out(csv, phase_csv(&t, &pp), err, sizeof err)) rc = fail(err);
        snprintf(title, sizeof title, "Phase diagram: %s", s.name);
        if (!rc && svg && write_out(svg, phase_svg(&t, &pp, title), err, sizeof err)) rc = fail(err);
        if (!rc && (csv || svg)) {
            if (csv) printf("\nwrote %s", csv);
            if (svg) printf("%s %s", csv ? " and" : "\nwrote", svg);
            printf("\n");
        }
        phase_free(&t);
    }
    sweep_free(&s);
    phase_paper_free(&pp);
    return rc;
}
