/* The terminal: ncurses windows for the panes of layout.h, each drawn from
 * the tui state with werase + wnoutrefresh and one doupdate per frame (no
 * clear: over SSH only the changed cells travel). Only the UI thread calls
 * these. */
#ifndef TUI_SCREEN_H
#define TUI_SCREEN_H
#include "tui.h"

/* initscr and friends; colours unless app->color is 0. 0, or -1 with a
 * message. */
int tui_screen_init(tui *app, char *err, size_t errlen);
/* The terminal changed size to rows x cols (0, 0: ask the terminal). */
void tui_screen_resize(tui *app, int rows, int cols);
/* Draws every pane that is shown and places the cursor in the prompt. */
void tui_screen_draw(tui *app);
/* The next key, or ERR (nothing pending); *is_key says whether wch is a
 * KEY_ code (function key) rather than a character. */
int tui_screen_key(tui *app, unsigned *wch, int *is_key);
/* F3 on a narrow screen: the heatmap takes the runs pane's place. */
void tui_screen_toggle_heat(tui *app);
/* Rows the log pane shows (for PgUp/PgDn). */
int tui_screen_log_rows(const tui *app);
/* Rows of text the help overlay shows (for its PgUp/PgDn). */
int tui_screen_page_rows(const tui *app);
/* Full repaint (Ctrl-L). */
void tui_screen_repaint(tui *app);
void tui_screen_end(tui *app);
/* For a crash handler (async-signal-safe): the terminal's modes as before
 * the screen started, the cursor shown, the main screen back. */
void tui_screen_crash_restore(void);
#endif
