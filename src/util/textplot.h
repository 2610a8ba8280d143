/* Text heatmaps of small matrices (conv cosine, hidden attention) for the CLI
 * and the workbench: one character cell per entry, shaded by value, with row
 * and column labels and a legend. */
#ifndef ACH_TEXTPLOT_H
#define ACH_TEXTPLOT_H
#include <stddef.h>

typedef struct {
    const char *const *row_labels; /* rows entries, or NULL for indices */
    const char *const *col_labels; /* cols entries, or NULL for indices */
    double lo, hi;                 /* value range of the shades; lo >= hi: the data's */
    int utf8;                      /* shades " ░▒▓█" instead of " .:-=+*#%@" */
    int cell;                      /* characters per cell (at least 1; 0: 2) */
    int blank_upper;               /* leave entries above the diagonal empty */
} tp_heatmap_opts;

/* Renders the rows x cols row-major matrix M into buf (snprintf-style: at
 * most n bytes, always terminated; returns the length it needed). NaN
 * entries print as '?'. Lines end with '\n'. */
size_t tp_heatmap(char *buf, size_t n, const double *M, int rows, int cols, const tp_heatmap_opts *o);

/* Whether the locale (after setlocale(LC_CTYPE, "")) uses UTF-8. */
int tp_locale_utf8(void);

/* Display width of a UTF-8 string up to its end or a newline. */
int tp_width(const char *s);

/* Two blocks of lines side by side into buf (snprintf-style): each line of
 * `left` padded to `width` columns, `gap` spaces, the line of `right`. */
size_t tp_side_by_side(char *buf, size_t n, const char *left, const char *right, int width, int gap);
#endif
