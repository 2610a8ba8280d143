/* Phase diagrams (paper Fig. 3): pair-43 accuracy against the composite and
 * the symmetric answer over layers x gamma, the mean over seeds with its
 * spread, beside the paper's numbers (data/paper_fig3.json); as text
 * heatmaps, CSV and SVG.
 *
 * Runs are grouped by the settings other than n_layer, gamma and seed that
 * vary among them (a sweep over all_one_conv gives one diagram for each
 * value); only finished runs count.
 *
 * Ownership: phase_build / phase_paper_load fill caller structs that
 * phase_free / phase_paper_free release; the text outputs are malloc'd. */
#ifndef ACH_PHASE_H
#define ACH_PHASE_H
#include <stddef.h>

#include "sweep.h"

enum { PHASE_COMP = 0, PHASE_SYM = 1 };

typedef struct {
    char path[4200], source[512];
    int nlayers, ngammas;
    int *layers;            /* row order of the paper (7 down to 2) */
    double *gammas;
    double *comp;           /* nlayers x ngammas, exact */
    double *sym;            /* nlayers x ngammas: the exact exceptions, NaN elsewhere */
    double sym_lo, sym_hi;  /* the range every other symmetric cell lies in */
} phase_paper;

/* Loads path, or NULL: paper_fig3.json in the data directory (task.h). */
int phase_paper_load(phase_paper *p, const char *path, char *err, size_t errlen);
void phase_paper_free(phase_paper *p);
/* The paper's value of one cell: 1 exact (*lo == *hi), 0 only a range,
 * -1 the paper has no such cell. */
int phase_paper_cell(const phase_paper *p, int which, int n_layer, double gamma, double *lo, double *hi);

typedef struct {
    int n;                  /* runs in the cell */
    double mean, min, max, std; /* std: sample standard deviation (0 for one run); NaN when n = 0 */
} phase_stat;

typedef struct {
    char label[512];        /* the group's other settings ("" when nothing else varies) */
    int nrows, ncols;
    int *layers;            /* descending, as the paper draws them */
    double *gammas;         /* ascending */
    phase_stat *cell[2];    /* [PHASE_COMP / PHASE_SYM][row * ncols + col] */
    int nruns;              /* finished runs counted */
} phase_group;

typedef struct {
    int best;               /* 0: the final epoch's accuracy; 1: the best epoch's (each answer on its own) */
    int ngroups;
    phase_group *groups;
    int nunfinished;        /* runs left out because they have not finished */
} phase_table;

/* From a loaded sweep (states are refreshed here). */
int phase_build(phase_table *t, ach_sweep *s, int best, char *err, size_t errlen);
void phase_free(phase_table *t);

/* Heatmaps (ours beside the paper's) and a table of every cell. */
char *phase_text(const phase_table *t, const phase_paper *p, const char *title, int utf8);
/* One row per group and cell: group,n_layer,gamma,runs, comp_{mean,min,max,std},
 * sym_{mean,min,max,std}, paper_comp, paper_sym_lo, paper_sym_hi. */
char *phase_csv(const phase_table *t, const phase_paper *p);
/* Two panels (composite, symmetric) per group, with a colour bar. */
char *phase_svg(const phase_table *t, const phase_paper *p, const char *title);
#endif
