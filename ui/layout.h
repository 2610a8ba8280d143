/* Where each pane goes for a terminal size: pure arithmetic, so tests can
 * check every size without a terminal. From 100x28 up the screen is the
 * status line, loss | accuracy curves, runs | heatmap, log, prompt, keys.
 * Below 100 columns or 28 rows the heatmap folds away (F3 swaps it in for
 * the runs); below 80x24 the screen only says what it needs. */
#ifndef TUI_LAYOUT_H
#define TUI_LAYOUT_H
#include "tui.h"

#define TUI_MIN_COLS 80
#define TUI_MIN_ROWS 24

typedef struct {
    int y, x, h, w;           /* h == 0: not shown */
} tui_rect;

typedef struct {
    int too_small;
    int wide;                 /* room for the heatmap beside the runs */
    tui_rect status, loss, acc, runs, heat, log, prompt, keys;
    tui_rect big;             /* help or the full run table, when shown */
} tui_layout;

/* heat_narrow: the heatmap replaces the runs pane on a narrow screen. */
void tui_layout_compute(tui_layout *l, int rows, int cols, const tui *app, int heat_narrow);
/* Rows the heatmap pane wants for the app's current heatmap. */
int tui_heat_rows(const tui *app);
#endif
