/* The REPL's commands: one table (name, arguments, help, completion, handler)
 * that dispatch, `help`, completion, the man page test and
 * `achilles-tui --list-commands` all read. Handlers report through the log
 * (tui_log) and never touch the terminal. */
#ifndef TUI_COMMANDS_H
#define TUI_COMMANDS_H
#include "tui.h"

/* What a command's arguments complete to. */
typedef enum {
    COMPLETE_NONE = 0,
    COMPLETE_COMMAND,  /* help */
    COMPLETE_NEW,      /* preset names or run ids, then settings */
    COMPLETE_KEYS,     /* settings */
    COMPLETE_RUN,      /* run ids */
    COMPLETE_LIVE,     /* run ids, then live settings */
    COMPLETE_SETTING,  /* run ids, then the values of the setting the command is named after */
    COMPLETE_BLOCK,    /* run ids, then positions, layers=, train= */
    COMPLETE_EVAL,     /* block|subst, then their options */
    COMPLETE_HEATMAP,  /* cos|attn|off and options */
    COMPLETE_SHOW,     /* pane settings and their values */
    COMPLETE_SESSION,  /* snapshot names */
} tui_complete_kind;

typedef struct {
    const char *name;
    const char *args;      /* synopsis, as in the man page */
    const char *help;      /* one line */
    int (*run)(tui *app, int argc, char **argv); /* argv[0] is the name; 0, or -1 after logging why */
    tui_complete_kind complete;
} tui_command;

extern const tui_command tui_commands[];
extern const int tui_ncommands;

/* Opens the help overlay on the keys and every command (c NULL), or on
 * one command's usage. */
void tui_help_page(tui *app, const tui_command *c);
/* Parses and runs one line (echoed to the log). Unknown or mistyped
 * commands get the closest name and the usage. 0, or -1 on error. */
int tui_execute(tui *app, const char *line);
/* The words of a line as tui_execute sees them: s is split in place into
 * argv[<= max]. argc, or -1 with *why (too many words, an open quote). */
int tui_tokenize(char *s, char **argv, int max, const char **why);
/* Exact name, or a unique prefix; NULL otherwise. */
const tui_command *tui_command_find(const char *name);
/* The candidates for the word line[start, end) (NULL-terminated, malloc'd
 * strings in a malloc'd array; NULL if none). */
char **tui_complete(tui *app, const char *line, int start, int end);
void tui_free_candidates(char **c);
/* Edit distance, for "did you mean". */
int tui_edit_distance(const char *a, const char *b);
#endif
