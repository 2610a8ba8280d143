/* GNU readline, callback mode, fed from the key loop. Readline's terminal
 * handling is switched off (curses owns the terminal); it only edits
 * rl_line_buffer, keeps history and completes. */
#include "repl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <readline/history.h>
#include <readline/readline.h>

#include "commands.h"
#include "fsutil.h"

#define HISTORY_MAX 1000

static int input_getc(FILE *f)
{
    (void)f;
    tui *app = tui_proc.app;
    /* never EOF: that would end the line; a NUL is harmless */
    if (!app || app->rl_in_pos >= app->rl_in_len) return 0;
    return app->rl_in[app->rl_in_pos++];
}

static int input_available(void)
{
    tui *app = tui_proc.app;
    return app && app->rl_in_pos < app->rl_in_len;
}

static void no_term(int meta) { (void)meta; }
static void no_deprep(void) {}

static void redisplay(void)
{
    if (tui_proc.app) tui_proc.app->dirty = 1;
}

static void on_line(char *line)
{
    tui *app = tui_proc.app;
    if (!line) { /* Ctrl-D on an empty line */
        app->quit = 1;
        return;
    }
    if (*line) {
        HIST_ENTRY *last = history_length ? history_get(history_base + history_length - 1) : NULL;
        if (!last || strcmp(last->line, line)) add_history(line);
    }
    tui_execute(app, line);
    free(line);
}

static char *generator(const char *text, int state)
{
    (void)text;
    tui *app = tui_proc.app;
    if (!state) app->rl_cand_next = 0;
    if (!app->rl_cands || !app->rl_cands[app->rl_cand_next]) return NULL;
    return strdup(app->rl_cands[app->rl_cand_next++]);
}

static char **complete(const char *text, int start, int end)
{
    tui *app = tui_proc.app;
    rl_attempted_completion_over = 1; /* never file names */
    tui_free_candidates(app->rl_cands);
    app->rl_cands = tui_complete(app, rl_line_buffer, start, end);
    if (!app->rl_cands) return NULL;
    int n = 0;
    while (app->rl_cands[n]) n++;
    /* "gamma=" wants its value typed next to it, not after a space */
    if (n == 1 && app->rl_cands[0][strlen(app->rl_cands[0]) - 1] == '=') rl_completion_suppress_append = 1;
    return rl_completion_matches(text, generator);
}

/* Several candidates: listed in the log instead of on the terminal. */
static void display_matches(char **matches, int num, int max)
{
    (void)max;
    tui *app = tui_proc.app;
    char line[TUI_LOG_WIDTH];
    size_t k = snprintf(line, sizeof line, "completions:");
    for (int i = 1; i <= num; i++) {
        if (k + strlen(matches[i]) + 2 > 100) {
            tui_log(app, "%s", line);
            k = snprintf(line, sizeof line, "   ");
        }
        k += snprintf(line + k, sizeof line - k, "  %s", matches[i]);
    }
    tui_log(app, "%s", line);
}

void tui_history_path(char *buf, size_t n)
{
    const char *x = getenv("XDG_STATE_HOME"), *h = getenv("HOME");
    if (x && *x == '/') snprintf(buf, n, "%s/achilles/history", x);
    else if (h && *h) snprintf(buf, n, "%s/.local/state/achilles/history", h);
    else buf[0] = 0;
}

int tui_repl_init(tui *app, const char *history_path, char *err, size_t errlen)
{
    static char word_breaks[] = " \t";
    tui_proc.app = app;
    rl_readline_name = "achilles";
    rl_catch_signals = 0;
    rl_catch_sigwinch = 0;
    rl_change_environment = 0;
    rl_prep_term_function = no_term;
    rl_deprep_term_function = no_deprep;
    rl_getc_function = input_getc;
    rl_input_available_hook = input_available;
    rl_redisplay_function = redisplay;
    rl_attempted_completion_function = complete;
    rl_completion_display_matches_hook = display_matches;
    rl_completer_word_break_characters = word_breaks;
    rl_outstream = fopen("/dev/null", "w");
    /* our defaults; the user's inputrc (read on install) may change them */
    rl_variable_bind("bell-style", "none");
    rl_variable_bind("show-all-if-ambiguous", "on");
    stifle_history(HISTORY_MAX);
    snprintf(app->history_path, sizeof app->history_path, "%s", history_path ? history_path : "");
    if (app->history_path[0]) {
        char dir[TUI_PATH];
        snprintf(dir, sizeof dir, "%s", app->history_path);
        char *slash = strrchr(dir, '/');
        if (slash) *slash = 0;
        if (slash && make_dirs(dir, err, errlen)) {
            tui_log(app, "history is not kept: %s", err);
            app->history_path[0] = 0;
        } else read_history(app->history_path); /* a missing file is a first session */
    }
    rl_callback_handler_install(TUI_PROMPT, on_line);
    err[0] = 0;
    return 0;
}

void tui_repl_feed(tui *app, const char *bytes, size_t n)
{
    if (n > sizeof app->rl_in) n = sizeof app->rl_in;
    memcpy(app->rl_in, bytes, n);
    app->rl_in_pos = 0;
    app->rl_in_len = (int)n;
    while (app->rl_in_pos < app->rl_in_len && !app->quit) rl_callback_read_char();
    app->rl_in_pos = app->rl_in_len = 0;
}

const char *tui_repl_line(int *point)
{
    if (point) *point = rl_point;
    return rl_line_buffer ? rl_line_buffer : "";
}

int tui_repl_line_empty(void) { return rl_end == 0; }

void tui_repl_close(tui *app)
{
    rl_callback_handler_remove();
    if (app->history_path[0] && !write_history(app->history_path)) history_truncate_file(app->history_path, HISTORY_MAX);
    clear_history();
    tui_free_candidates(app->rl_cands);
    app->rl_cands = NULL;
    if (rl_outstream && rl_outstream != stdout) fclose(rl_outstream);
    rl_outstream = NULL;
    if (tui_proc.app == app) tui_proc.app = NULL;
}
