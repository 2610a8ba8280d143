/* achilles-tui: the workbench's state and the operations on it that do not
 * need a terminal. Everything mutable lives in one struct, `tui`, owned by the
 * UI thread; the training thread (worker.h) talks to it only through its job
 * and event queues. The screen (screen.h) and the prompt (repl.h) read this
 * state to draw and call the command layer (commands.h) to change it.
 *
 * Ownership: tui_init fills a caller-owned tui and starts the worker;
 * tui_shutdown saves the session and stops the worker; tui_free releases the
 * rest. Nothing here touches ncurses, so tests drive it headless. */
#ifndef TUI_H
#define TUI_H
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>

#include "run.h"
#include "runcfg.h"
#include "worker.h"

#define TUI_MAX_RUNS 64
#define TUI_LOG_LINES 1000
#define TUI_LOG_WIDTH 240
#define TUI_LOG_STAMP 11   /* "[HH:MM:SS] " before each entry's first line */
#define TUI_PAGE_BYTES 16384
#define TUI_PATH 1024

typedef enum { RS_QUEUED = 0, RS_RUNNING, RS_PAUSED, RS_DONE, RS_FAILED } tui_run_state;
extern const char *const tui_state_names[]; /* "queued", "running", ... */

/* One epoch record as the curves need it. */
typedef struct {
    int epoch;
    double train_loss, test_loss, comp, sym, seen, seq_per_s;
} tui_point;

typedef struct {
    int id;
    char name[48];
    tui_run_state state;
    int queue_pos;            /* order among queued runs (lower first) */
    char dir[TUI_PATH];       /* the run directory (inside the session's runs/) */
    ach_runcfg cfg;           /* as created; live keys follow the latest records */
    tui_point *hist;          /* one per recorded epoch, epoch order (owned) */
    int nhist, cap;
    int batch, nbatches;      /* position inside the current epoch */
    double rate;              /* training sequences per second, latest */
    double epoch_wall;        /* wall seconds per epoch, latest (0: unknown) */
    char note[160];           /* stop reason or error */
} tui_run;

typedef enum { LOSS_BOTH = 0, LOSS_TRAIN, LOSS_TEST } tui_loss_mode;
typedef enum { ACC_BOTH = 0, ACC_COMP, ACC_SYM, ACC_SEEN } tui_acc_mode;
typedef enum { HEAT_NONE = 0, HEAT_COSINE, HEAT_ATTENTION } tui_heat_kind;

/* What the panes show: set by `show`, F-keys, and saved in the session. */
typedef struct {
    int focus;                /* run id the status line and heatmap follow; 0 = the running run */
    int overlay_all;          /* overlay every run (else the ids in overlay[]) */
    int overlay[TUI_MAX_RUNS];
    int noverlay;
    tui_loss_mode loss;
    tui_acc_mode acc;
    int layer;                /* heatmap layer */
    int heat_shown;           /* F3: heatmap pane shown (where it fits) */
    int runs_full;            /* F2: the full-screen run table */
    int help_shown;           /* the help overlay (F1, ?, help, config) */
    int log_scroll;           /* rows scrolled back (PgUp) */
} tui_view;

/* The latest heatmap the worker computed. */
typedef struct {
    tui_heat_kind kind;
    int automatic;            /* made to follow the focused run, not asked for */
    int run, layer, head, seq, epoch;
    int rows, cols;           /* cosine: K x K (two matrices); attention: L x L */
    double *a, *b;            /* cosine: epoch 0 and now; attention: a only (owned) */
    char labels[64][8];       /* attention: token labels of the sequence */
} tui_heat;

typedef struct {
    char line[TUI_LOG_WIDTH];
} tui_log_line;

/* What the help overlay shows: a text too long for the log. */
typedef struct {
    char title[128];
    char text[TUI_PAGE_BYTES]; /* lines, each ended by '\n' */
    size_t len;
    int scroll;                /* rows scrolled down */
} tui_page;

/* One screen row of wrapped text: len bytes at s, after indent blank
 * columns (s NULL: an empty row). */
typedef struct {
    const char *s;
    int len, indent;
} tui_row;

typedef struct tui {
    /* session */
    char session_name[128];
    char session_dir[TUI_PATH];
    char sessions_root[TUI_PATH]; /* where bare snapshot names go (sessions/) */
    tui_run runs[TUI_MAX_RUNS];
    int nruns, next_id, next_queue_pos;
    tui_view view;
    tui_heat heat;
    long heat_serial;             /* counts heatmaps asked for by a command */
    int heat_pending;             /* a quiet refresh is in flight */
    /* log: a ring of lines */
    tui_log_line *log;
    int log_head, log_count;
    tui_page page;                /* the help overlay's text */
    /* worker and requests in flight */
    tui_worker *worker;
    long next_req;
    long save_req;                /* the JOB_SAVE/JOB_COPY being waited for, 0 if none */
    char save_dest[TUI_PATH];     /* the session or snapshot that save writes */
    char save_stage[TUI_PATH];    /* a snapshot's staging directory, "" in place */
    char save_name[128];
    char save_error[256];         /* why the last save failed, "" if it did not */
    /* display options, and screen.c's windows (NULL without a terminal) */
    int utf8, color;
    struct tui_screen *screen;
    /* the prompt's pending input bytes (repl.c feeds readline from here) */
    unsigned char rl_in[256];
    int rl_in_pos, rl_in_len;
    char **rl_cands;              /* completion candidates being offered */
    int rl_cand_next;
    char history_path[TUI_PATH];
    /* flags the main loop reads */
    int quit;                     /* leave the main loop */
    int dirty;                    /* something changed: redraw */
} tui;

/* The one piece of process-wide mutable state: readline's callbacks and
 * signal handlers take no user pointer, so they find the app, and record
 * signals, here (defined in app.c). */
typedef struct {
    tui *app;
    volatile sig_atomic_t hup, term, winch;
    int sig_pipe[2];              /* written by handlers: wakes poll() */
} tui_process;
extern tui_process tui_proc;

typedef struct {
    const char *sessions_root;    /* default "sessions" */
    int utf8, color;
} tui_opts;

int tui_init(tui *app, const tui_opts *o, char *err, size_t errlen);
/* Opens SESSION (a name under sessions_root, or a path holding
 * session.json); NULL or "default": sessions/default, made from the
 * built-in demo when it does not exist. */
int tui_open(tui *app, const char *session, char *err, size_t errlen);
/* Saves the session (waits for the worker) and stops the worker. */
int tui_shutdown(tui *app, char *err, size_t errlen);
void tui_free(tui *app);

/* Appends a line (or several, split at '\n') to the log, time-stamped. */
void tui_log(tui *app, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void tui_logv(tui *app, const char *fmt, va_list ap);
/* Line i back from the newest (0 = newest), or NULL. */
const char *tui_log_get(const tui *app, int i);

/* Columns of a UTF-8 string: every glyph the workbench draws is one wide. */
int tui_text_cols(const char *s);
/* Wraps one line (it ends at '\n' or NUL) at width columns, breaking at
 * blanks where a row has one and inside a word only where it does not fit
 * a row. Rows after the first start two columns in from the line's text,
 * which begins after margin columns (the log's time stamp) and the blanks
 * after them. Fills rows[< max] and returns how many rows the line takes. */
int tui_wrap(const char *line, int width, int margin, tui_row *rows, int max);
/* The log wrapped at width: the n rows ending back rows above the newest
 * into out[0..n), top to bottom (s NULL above the oldest line). Returns the
 * rows the whole log takes, to bound back; n 0 only counts. */
int tui_log_rows(const tui *app, int width, int back, int n, tui_row *out);

/* Opens the help overlay on a new text; tui_page_add appends lines to it. */
void tui_page_open(tui *app, const char *title);
void tui_page_add(tui *app, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The overlay's text wrapped at width: rows top, top+1, ... into
 * out[0..n) (s NULL past the end). Returns the rows the whole text takes. */
int tui_page_rows(const tui *app, int width, int top, int n, tui_row *out);

tui_run *tui_run_find(tui *app, int id);
/* The run the status line and heatmap follow: the focus, else the running
 * run, else the last one; NULL when there are none. */
tui_run *tui_focus(tui *app);
/* "L2 γ1 mamba2 std" (ASCII "g1" without UTF-8), live settings included. */
void tui_run_summary(const tui *app, const tui_run *r, char *buf, size_t n);
/* The same, shorter: detail 2 everything, 1 without the preset, 0 also
 * without the architecture. */
void tui_run_summary_at(const tui *app, const tui_run *r, int detail, char *buf, size_t n);
/* Seconds left for a run, or -1 when unknown. */
double tui_run_eta(const tui_run *r);
void tui_fmt_duration(double s, char *buf, size_t n);
/* Copies src into dst[n], cut to fit. */
void tui_strlcpy(char *dst, const char *src, size_t n);
void tui_fmt_rate(double r, char *buf, size_t n);

/* Adds a run record to the history (replaces one of the same epoch). */
int tui_run_add_point(tui_run *r, const ach_metrics *m);
/* The live settings in force at a record (all_one_conv, pos_enc, block...). */
void tui_run_sync_live(tui_run *r, const ach_metrics *m);
/* A new run: created in the worker (epoch 0 evaluated), queued. */
int tui_new_run(tui *app, const ach_runcfg *cfg, const char *name, char *err, size_t errlen);
/* Starts the first queued run when none is running. */
void tui_schedule(tui *app);
/* State changes on one run; each says what is wrong when it cannot. */
int tui_start_run(tui *app, tui_run *r, char *err, size_t errlen);
int tui_pause_run(tui *app, tui_run *r, char *err, size_t errlen);
int tui_resume_run(tui *app, tui_run *r, char *err, size_t errlen);
int tui_stop_run(tui *app, tui_run *r, char *err, size_t errlen);
int tui_delete_run(tui *app, tui_run *r, char *err, size_t errlen);
/* Sends a job about run r to the worker (fills run id, dir and request id). */
long tui_send(tui *app, tui_run *r, tui_job *job);

/* Saves: states at a step boundary, then session.json. dest NULL: this
 * session in place; else a copy as a snapshot named or at dest. With wait,
 * returns after session.json is written; else when the worker replies. */
int tui_save(tui *app, const char *dest, int wait, char *err, size_t errlen);
/* Handles every pending worker event; returns how many. */
int tui_handle_events(tui *app);
/* Waits up to timeout_ms for worker events and handles them. */
int tui_pump(tui *app, int timeout_ms);

/* The built-in demo session's two runs, and the demo's settings (the
 * paper's model on data/demo.json with a recipe fit for it). */
int tui_make_demo(tui *app, char *err, size_t errlen);
void tui_demo_config(ach_runcfg *c);
#endif
