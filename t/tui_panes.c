/* The workbench's pure drawing pieces: pane layout at several terminal
 * sizes, braille and ASCII plot cells, heatmap cells and axis labels. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "heatmap.h"
#include "layout.h"
#include "plot.h"
#include "tap.h"
#include "tui.h"

static int inside(tui_rect r, int rows, int cols) { return r.h == 0 || (r.y >= 0 && r.x >= 0 && r.y + r.h <= rows && r.x + r.w <= cols); }

static int overlap(tui_rect a, tui_rect b)
{
    if (!a.h || !b.h) return 0;
    return a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
}

static void test_layout(void)
{
    static tui app;
    tui_layout l;
    app.nruns = 2;
    app.view.heat_shown = 1;
    tui_layout_compute(&l, 23, 80, &app, 0);
    ok(l.too_small, "80x23 is too small");
    tui_layout_compute(&l, 24, 79, &app, 0);
    ok(l.too_small, "79x24 is too small");
    static const int sizes[][2] = {{24, 80}, {30, 100}, {28, 100}, {40, 120}, {24, 200}, {60, 90}};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        int rows = sizes[i][0], cols = sizes[i][1];
        tui_layout_compute(&l, rows, cols, &app, 0);
        tui_rect all[] = {l.status, l.loss, l.acc, l.runs, l.heat, l.log, l.prompt, l.keys};
        int good = !l.too_small, area = 0;
        for (int a = 0; a < 8; a++) {
            good &= inside(all[a], rows, cols);
            area += all[a].h * all[a].w;
            for (int b = a + 1; b < 8; b++) good &= !overlap(all[a], all[b]);
        }
        ok(good && area == rows * cols, "%dx%d: panes inside the screen, tiling it without overlap", cols, rows);
        ok(l.loss.h >= 10 && l.acc.h == l.loss.h && l.loss.w + l.acc.w == cols, "%dx%d: the two curve panes, side by side",
           cols, rows);
        int wide = cols >= 100 && rows >= 28;
        ok(wide ? l.heat.h > 0 && l.runs.h > 0 : l.heat.h == 0 && l.runs.h > 0,
           "%dx%d: the heatmap %s", cols, rows, wide ? "beside the runs" : "folded away");
    }
    tui_layout_compute(&l, 24, 80, &app, 1);
    ok(l.heat.h > 0 && l.runs.h == 0, "80x24 with F3: the heatmap in place of the runs");
    app.view.help_shown = 1;
    tui_layout_compute(&l, 24, 80, &app, 0);
    ok(l.big.h == 24 - 3 - 3 && l.loss.h == 0, "help takes the middle of the screen");
    app.view.help_shown = 0;
    app.view.heat_shown = 0;
    tui_layout_compute(&l, 30, 100, &app, 0);
    ok(l.heat.h == 0 && l.runs.w == 100, "heatmap off: the runs take the width");
    app.view.heat_shown = 1;
    app.heat.kind = HEAT_NONE;
    int h0 = tui_heat_rows(&app);
    app.heat.kind = HEAT_COSINE;
    app.heat.rows = 4;
    ok(tui_heat_rows(&app) == h0, "a 4-tap cosine heatmap keeps the pane's height (the curves do not jump)");
}

static void test_plot(void)
{
    plot_canvas c;
    char cell[8];
    ok(plot_init(&c, 10, 4, 1) == 0 && c.dw == 20 && c.dh == 16, "braille canvas: 2x4 dots per cell");
    double x[] = {0, 1}, y[] = {1, 0};
    int ex, ey;
    plot_series(&c, x, y, 2, 0, 1, 0, 1, PLOT_SOLID, 3, &ex, &ey);
    plot_cell(&c, 0, 0, cell);
    unsigned cp = ((unsigned char)cell[0] & 0x0F) << 12 | ((unsigned char)cell[1] & 0x3F) << 6 | ((unsigned char)cell[2] & 0x3F);
    ok(strlen(cell) == 3 && cp >= 0x2800 && cp <= 0x28FF && (cp & 1), "a falling line starts at the top-left dot (U+%04X)", cp);
    plot_cell(&c, 9, 3, cell);
    ok((unsigned char)cell[0] == 0xE2 && (unsigned char)cell[1] >= 0xA0 && (unsigned char)cell[1] <= 0xA3,
       "bottom-right cell is braille");
    ok(ex == 9 && ey == 3 && plot_cell_color(&c, 9, 3) == 3, "the end point and its colour");
    plot_cell(&c, 0, 3, cell);
    ok(cell[0] == 0, "off the line: empty");
    plot_free(&c);
    ok(plot_init(&c, 10, 4, 0) == 0 && c.dw == 10 && c.dh == 4, "ASCII canvas: one dot per cell");
    plot_series(&c, x, y, 2, 0, 1, 0, 1, PLOT_DASHED, 1, NULL, NULL);
    plot_series(&c, x, y, 2, 0, 1, 0, 1, PLOT_SOLID, 2, NULL, NULL);
    int ascii = 1, drawn = 0;
    for (int cy = 0; cy < 4; cy++)
        for (int cx = 0; cx < 10; cx++) {
            plot_cell(&c, cx, cy, cell);
            for (char *p = cell; *p; p++) ascii &= (unsigned char)*p < 0x80;
            drawn += cell[0] != 0;
        }
    ok(ascii && drawn >= 10, "ASCII curves are ASCII (%d cells)", drawn);
    plot_cell(&c, 0, 0, cell);
    ok(!strcmp(cell, "*"), "solid over dashed: '*'");
    plot_free(&c);
    ok(plot_init(&c, 8, 3, 1) == 0, "a canvas");
    double yn[] = {0.5, NAN, 0.5};
    double xn[] = {0, 1, 2};
    plot_series(&c, xn, yn, 3, 0, 2, 0, 1, PLOT_SOLID, 1, NULL, NULL);
    int mid = 0;
    for (int cx = 2; cx < 6; cx++) mid += plot_cell(&c, cx, 1, cell)[0] != 0;
    ok(mid == 0, "a NaN breaks the line");
    plot_free(&c);
    char b[16];
    plot_fmt_value(5.3163, b, sizeof b);
    ok(!strcmp(b, "5.32"), "axis label 5.32");
    plot_fmt_value(0.0423, b, sizeof b);
    ok(!strcmp(b, ".042"), "axis label .042");
    plot_fmt_value(12345, b, sizeof b);
    ok(!strcmp(b, "12k"), "axis label 12k");
}

static void test_heat(void)
{
    char b[64];
    heat_cell(b, sizeof b, 1.0, 1.0, 5, 1, 1);
    ok(!strcmp(b, "\xe2\x96\x88" "1.0 "), "cell: full shade and 1.0");
    heat_cell(b, sizeof b, -0.11, 1.0, 6, 1, 1);
    ok(!strcmp(b, " -.11 ") || strstr(b, "-.11"), "cell: a negative number (%s)", b);
    heat_cell(b, sizeof b, 0.5, 1.0, 2, 0, 0);
    ok(!strcmp(b, "==") || !strcmp(b, "--") || strlen(b) == 2, "ASCII cell: two shade characters (%s)", b);
    heat_cell(b, sizeof b, 1.0, 1.0, 3, 0, 0);
    ok(!strcmp(b, "@@@"), "ASCII full shade: @");
    heat_cell(b, sizeof b, 0.0, 1.0, 3, 0, 0);
    ok(!strcmp(b, "   "), "zero: blank");
    heat_cell(b, sizeof b, NAN, 1.0, 3, 1, 1);
    ok(b[0] == '?', "NaN: ?");
    heat_number(b, sizeof b, 0.91, 3);
    ok(!strcmp(b, ".91"), "number .91");
    heat_number(b, sizeof b, -0.11, 4);
    ok(!strcmp(b, "-.11"), "number -.11");
    heat_number(b, sizeof b, -1, 4);
    ok(!strcmp(b, "-1.0"), "number -1.0");
    heat_legend(b, sizeof b, 1, 0);
    ok(strstr(b, " .:-=+*#%@") != NULL, "ASCII legend");
}

int main(void)
{
    test_layout();
    test_plot();
    test_heat();
    return done_testing();
}
