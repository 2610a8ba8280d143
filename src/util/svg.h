/* Hand-written SVG for the phase diagrams and the report's curves: a
 * document, heatmap panels with axes and per-cell text, a colour bar, and
 * line charts. Everything appends to a strbuf; text is XML-escaped, numbers
 * are written under the C locale's rules (the CLI never sets LC_NUMERIC). */
#ifndef ACH_SVG_H
#define ACH_SVG_H
#include "strbuf.h"

/* <svg ...> with a white background and a title element / </svg>. */
void svg_begin(strbuf *b, int width, int height, const char *title);
void svg_end(strbuf *b);
void svg_text(strbuf *b, double x, double y, int size, const char *anchor, const char *weight, const char *text);

/* The colour of v in [lo, hi] on a viridis-like scale ("#rrggbb"); NaN is
 * light grey. Whether text on that colour should be dark. */
void svg_color(double v, double lo, double hi, char out[8]);
int svg_dark_text(double v, double lo, double hi);

typedef struct {
    const char *title, *xlabel, *ylabel;
    int rows, cols;
    const char *const *row_labels, *const *col_labels;
    const double *value;        /* rows x cols, row-major: colour and the big number; NaN: no data */
    const char *const *line2;   /* rows x cols small lines under the number, or NULL */
    const char *const *line3;
    double lo, hi;              /* colour range */
} svg_heatmap;

/* Size of a panel drawn with these cell sizes (axes and title included). */
void svg_heatmap_size(const svg_heatmap *h, double cw, double ch, double *w, double *hgt);
void svg_heatmap_panel(strbuf *b, double x, double y, double cw, double ch, const svg_heatmap *h);
/* A vertical colour bar from lo (bottom) to hi (top) with five ticks. */
void svg_colorbar(strbuf *b, double x, double y, double w, double h, double lo, double hi, const char *label);

typedef struct {
    const char *label;
    int n;
    const double *x, *y;        /* NaN y: a gap */
    int color;                  /* palette index */
    int dashed;
} svg_series;

/* A line chart in the box (x, y, w, h): y from 0 to 1, x from 0 to xmax,
 * with ticks, grid and a legend under the plot (legend rows: ceil(n/2)). */
void svg_linechart(strbuf *b, double x, double y, double w, double h, const char *title, const char *xlabel,
                   const char *ylabel, double xmax, const svg_series *s, int ns);
/* Extra height the legend of n series needs under a chart. */
double svg_legend_height(int n);
#endif
