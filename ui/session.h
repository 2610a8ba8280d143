/* Session snapshots: a directory NAME/ holding session.json and runs/ID/,
 * each an ordinary run directory (`achilles train --resume` continues it).
 *
 * session.json (format "achilles-session", version "1"; counters and ids as
 * strings so they round-trip exactly):
 *   {"format": "achilles-session", "version": "1", "name": "demo",
 *    "next_id": "3",
 *    "runs": [{"id": "1", "name": "std", "state": "running", "queue_pos": "1",
 *              "dir": "runs/1", "note": ""}, ...],
 *    "panes": {"focus": "0", "overlay": "all", "loss": "both", "acc": "both",
 *              "layer": "0", "heatmap": "on"}}
 * The curves' history is not in it: it is re-read from each run's
 * metrics.jsonl, the run's own record. */
#ifndef TUI_SESSION_H
#define TUI_SESSION_H
#include <stddef.h>

#include "tui.h"

#define SESSION_FORMAT "achilles-session"
#define SESSION_VERSION "1"

/* Writes DIR/session.json atomically for the app's runs and panes. */
int session_write(const tui *app, const char *dir, const char *name, char *err, size_t errlen);
/* Reads DIR/session.json into app (runs, history, panes); the app's runs
 * must be empty. Messages name the file, the field and the problem. */
int session_read(tui *app, const char *dir, char *err, size_t errlen);
/* A run's curves from DIR/metrics.jsonl (replaces r->hist). */
int session_read_history(tui_run *r, char *err, size_t errlen);
/* SESSION argument to a directory and a name: a bare name is
 * ROOT/NAME, anything with a '/' is a path (its last component names it). */
int session_resolve(const char *root, const char *arg, char *dir, size_t ndir, char *name, size_t nname, char *err,
                    size_t errlen);
#endif
