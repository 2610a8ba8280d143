/* Pane geometry from the terminal size and the view settings. */
#include "layout.h"

#include <string.h>

#define CURVES_MIN 10 /* rows the two curve panes keep at least */

static tui_rect rect(int y, int x, int h, int w) { return (tui_rect){y, x, h, w}; }

int tui_heat_rows(const tui *app)
{
    /* box + header + matrix + legend; a 4-tap cosine until there is one,
     * so the curves keep their height when it arrives */
    if (app->heat.kind != HEAT_NONE) return app->heat.rows + 4;
    return 8;
}

void tui_layout_compute(tui_layout *l, int rows, int cols, const tui *app, int heat_narrow)
{
    memset(l, 0, sizeof *l);
    if (rows < TUI_MIN_ROWS || cols < TUI_MIN_COLS) {
        l->too_small = 1;
        return;
    }
    int logh = rows >= 40 ? 6 : rows >= 30 ? 4 : 3;
    l->status = rect(0, 0, 1, cols);
    l->keys = rect(rows - 1, 0, 1, cols);
    l->prompt = rect(rows - 2, 0, 1, cols);
    l->log = rect(rows - 2 - logh, 0, logh, cols);
    int top = 1, mid = rows - 3 - logh; /* rows between the status line and the log */
    l->wide = cols >= 100 && rows >= 28;
    if (app->view.help_shown || app->view.runs_full) {
        l->big = rect(top, 0, mid, cols);
        return;
    }
    int runs_h = app->nruns + 2;
    if (runs_h < 4) runs_h = 4;
    int heat_h = tui_heat_rows(app);
    int bottom;
    int show_heat = app->view.heat_shown && (l->wide || heat_narrow);
    if (show_heat && l->wide) bottom = runs_h > heat_h ? runs_h : heat_h;
    else if (show_heat) bottom = heat_h;
    else bottom = runs_h;
    if (bottom > mid - CURVES_MIN) bottom = mid - CURVES_MIN;
    if (bottom < 3) bottom = 3;
    int curves = mid - bottom, half = cols / 2;
    l->loss = rect(top, 0, curves, half);
    l->acc = rect(top, half, curves, cols - half);
    if (show_heat && l->wide) {
        l->runs = rect(top + curves, 0, bottom, half);
        l->heat = rect(top + curves, half, bottom, cols - half);
    } else if (show_heat) l->heat = rect(top + curves, 0, bottom, cols);
    else l->runs = rect(top + curves, 0, bottom, cols);
}
