/* Line plots on a character canvas: braille dots (2 x 4 per cell) where
 * the terminal speaks UTF-8, one ASCII glyph per cell otherwise. Pure: the
 * screen copies cells to a window, the tests read them directly.
 *
 * Ownership: plot_init allocates, plot_free releases. */
#ifndef TUI_PLOT_H
#define TUI_PLOT_H

typedef enum { PLOT_SOLID = 0, PLOT_DASHED = 1 } plot_style;

typedef struct {
    int w, h;              /* cells */
    int utf8;
    int dw, dh;            /* dots: 2w x 4h (braille) or w x h (ASCII) */
    unsigned char *mask;   /* braille: dot bits per cell; ASCII: glyph (0 = empty) */
    short *color;          /* colour of the series drawn last in the cell */
} plot_canvas;

int plot_init(plot_canvas *c, int w, int h, int utf8);
void plot_free(plot_canvas *c);
/* Draws points (x[i], y[i]) of the box [x0, x1] x [y0, y1] joined by lines;
 * a NaN breaks the line. Stores the cell of the last point in *end_cx,
 * *end_cy (-1 if nothing was drawn); either may be NULL. */
void plot_series(plot_canvas *c, const double *x, const double *y, int n, double x0, double x1, double y0,
                 double y1, plot_style style, short color, int *end_cx, int *end_cy);
/* The cell's text into buf (UTF-8 braille or one ASCII glyph), "" when
 * empty; returns buf. */
const char *plot_cell(const plot_canvas *c, int cx, int cy, char buf[8]);
short plot_cell_color(const plot_canvas *c, int cx, int cy);
/* The glyph a style uses in ASCII mode (for legends). */
char plot_ascii_glyph(plot_style style);
/* Nice axis label for v in at most 5 characters ("5.31", ".042", "1.2k"). */
void plot_fmt_value(double v, char *buf, int n);
#endif
