/* The prompt: GNU readline through its callback interface. The curses key
 * loop (or a test) feeds bytes in; readline edits the line, completes from
 * the command table and hands finished lines to tui_execute. Readline never
 * touches the terminal: the screen draws the line from tui_repl_line. */
#ifndef TUI_REPL_H
#define TUI_REPL_H
#include <stddef.h>

#include "tui.h"

#define TUI_PROMPT "achilles> "

/* Installs the handler; loads history from history_path ("" = none). */
int tui_repl_init(tui *app, const char *history_path, char *err, size_t errlen);
/* Feeds the bytes of one key (a character, a UTF-8 sequence or an escape
 * sequence) to readline. */
void tui_repl_feed(tui *app, const char *bytes, size_t n);
/* The line being edited and the cursor's byte offset in it. */
const char *tui_repl_line(int *point);
int tui_repl_line_empty(void);
/* Saves history, removes the handler. */
void tui_repl_close(tui *app);
/* $XDG_STATE_HOME/achilles/history, else ~/.local/state/achilles/history;
 * "" when neither variable is set. */
void tui_history_path(char *buf, size_t n);
#endif
