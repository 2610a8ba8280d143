/* The panes, drawn with ncursesw. Every string here is either ASCII or
 * comes from the glyph table, so a C locale gets pure ASCII. */
#include "screen.h"

#include <curses.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include "heatmap.h"
#include "layout.h"
#include "plot.h"
#include "repl.h"

enum { P_STATUS, P_LOSS, P_ACC, P_RUNS, P_HEAT, P_LOG, P_PROMPT, P_KEYS, P_BIG, NPANES };

/* colour pairs */
enum { PAIR_RUN = 1, /* 1..6: the runs' curve colours */
       PAIR_BAR = 7, PAIR_FKEY, PAIR_POS, PAIR_NEG, PAIR_OK, PAIR_BAD, PAIR_DIM };
#define NRUNCOLORS 6

typedef struct {
    const char *sep, *focus, *vbar, *solid, *dashed, *up, *down, *dots;
} glyphs;

static const glyphs kUtf8 = {" \xc2\xb7 ", "\xe2\x96\xb6", "\xe2\x94\x82", "\xe2\x94\x80\xe2\x94\x80",
                             "\xe2\x94\x84\xe2\x94\x84", "\xe2\x86\x91", "\xe2\x86\x93", "\xe2\x80\xa6"};
static const glyphs kAscii = {" | ", ">", "|", "*", ".", "Up", "Down", "~"};

struct tui_screen {
    WINDOW *w[NPANES];
    tui_rect r[NPANES];
    tui_layout lay;
    int rows, cols;
    int heat_narrow;
    long heat_serial;        /* the app's, when last seen */
    const glyphs *g;
};

/* What gives the terminal back after a crash, made while the screen starts:
 * a signal handler may not call curses, only write() and tcsetattr(). */
static struct {
    volatile sig_atomic_t armed;
    struct termios tio;       /* the terminal's modes before curses */
    char seq[256];            /* sgr0 rmkx cnorm rmcup, without padding */
    size_t len;
} crash;

/* Appends terminfo capability cap to crash.seq, dropping $<..> delays. */
static void crash_add(const char *cap)
{
    const char *s = tigetstr(cap);
    if (!s || s == (const char *)-1) return;
    for (; *s && crash.len < sizeof crash.seq; s++) {
        if (s[0] == '$' && s[1] == '<' && strchr(s, '>')) s = strchr(s, '>');
        else crash.seq[crash.len++] = *s;
    }
}

void tui_screen_crash_restore(void)
{
    if (!crash.armed) return;
    ssize_t ignored = write(STDOUT_FILENO, crash.seq, crash.len);
    (void)ignored;
    tcsetattr(STDIN_FILENO, TCSANOW, &crash.tio);
}

/* ---- helpers ---------------------------------------------------------------- */

/* Writes at most maxw columns of s at (y, x); returns the columns written. */
static int put(WINDOW *w, int y, int x, int maxw, const char *s, attr_t a)
{
    if (maxw <= 0) return 0;
    char buf[1024];
    int cols = 0;
    size_t k = 0;
    for (const char *p = s; *p && k < sizeof buf - 4;) {
        int len = 1;
        unsigned char c = (unsigned char)*p;
        if (c >= 0xF0) len = 4;
        else if (c >= 0xE0) len = 3;
        else if (c >= 0xC0) len = 2;
        if (cols == maxw) break;
        for (int i = 0; i < len && p[i]; i++) buf[k++] = p[i];
        p += len;
        cols++;
    }
    buf[k] = 0;
    wattron(w, a);
    mvwaddstr(w, y, x, buf);
    wattroff(w, a);
    return cols;
}

/* A row of wrapped text at (y, x), maxw columns wide with its indent. */
static void put_row(WINDOW *w, int y, int x, int maxw, tui_row r, attr_t a)
{
    char buf[1024];
    if (!r.s) return;
    snprintf(buf, sizeof buf, "%.*s", r.len, r.s);
    put(w, y, x + r.indent, maxw - r.indent, buf, a);
}

static attr_t run_attr(const tui *app, int id)
{
    return app->color ? COLOR_PAIR(PAIR_RUN + (id - 1) % NRUNCOLORS) : A_NORMAL;
}

static void frame(WINDOW *w, tui *app, const char *title, attr_t ta)
{
    /* ASCII mode draws ASCII: some terminals have no line-drawing set */
    if (app->utf8) box(w, 0, 0);
    else wborder(w, '|', '|', '-', '-', '+', '+', '+', '+');
    if (title) {
        mvwaddch(w, 0, 1, ' ');
        int n = put(w, 0, 2, getmaxx(w) - 4, title, ta | A_BOLD);
        mvwaddch(w, 0, 2 + n, ' ');
    }
}

static const char *const state_short[] = {"queued", "running", "paused", "done", "failed"};

static attr_t state_attr(const tui *app, tui_run_state s)
{
    if (!app->color) return s == RS_RUNNING ? A_BOLD : A_NORMAL;
    if (s == RS_RUNNING) return COLOR_PAIR(PAIR_OK) | A_BOLD;
    if (s == RS_FAILED) return COLOR_PAIR(PAIR_BAD) | A_BOLD;
    return A_NORMAL;
}

static void fmt_acc(double v, char *buf, size_t n)
{
    if (!isfinite(v)) snprintf(buf, n, " -- ");
    else if (v >= 0.9995) snprintf(buf, n, "1.00");
    else snprintf(buf, n, " .%02d", (int)lround(v * 100) > 99 ? 99 : (int)lround(v * 100));
}

static int run_index(const tui *app, const tui_run *r) { return (int)(r - app->runs); }

/* ---- status line and keys bar ---------------------------------------------- */

static void draw_status(tui *app, WINDOW *w)
{
    struct tui_screen *s = app->screen;
    int W = getmaxx(w);
    attr_t bar = app->color ? COLOR_PAIR(PAIR_BAR) : A_REVERSE;
    wbkgdset(w, ' ' | bar);
    werase(w);
    const char *sep = s->g->sep, *hint = "  paper preset: 'paper' ";
    char line[512], sum[160], rate[16], eta[16], ep[32] = "";
    tui_run *r = tui_focus(app);
    if (r) {
        tui_fmt_rate(r->rate, rate, sizeof rate);
        tui_fmt_duration(tui_run_eta(r), eta, sizeof eta);
        snprintf(ep, sizeof ep, "ep %d/%d", r->nhist ? r->hist[r->nhist - 1].epoch : 0, r->cfg.epochs);
    }
    /* the most that fits, from everything down to the essentials */
    for (int v = 0; v < 7; v++) {
        int detail = v <= 1 ? 2 : v == 2 ? 1 : 0, with_sum = v <= 3, terse = v >= 5;
        size_t k = snprintf(line, sizeof line, " achilles  %s%s", terse ? "" : "session ", app->session_name);
        if (!r) {
            snprintf(line + k, sizeof line - k, "%sno runs yet", sep);
        } else {
            k += snprintf(line + k, sizeof line - k, "%srun %d/%d %s", sep, run_index(app, r) + 1, app->nruns,
                          state_short[r->state]);
            if (with_sum) {
                tui_run_summary_at(app, r, detail, sum, sizeof sum);
                k += snprintf(line + k, sizeof line - k, "%s%s", sep, sum);
            }
            k += snprintf(line + k, sizeof line - k, "%s%s", sep, ep);
            if (r->state == RS_RUNNING)
                snprintf(line + k, sizeof line - k, "%s%s%s%sETA %s", sep, rate, terse || v >= 4 ? "/s" : " seq/s", sep, eta);
        }
        if (tui_text_cols(line) + (v == 0 ? (int)strlen(hint) : 0) <= W || v == 6) break;
    }
    int x = put(w, 0, 0, W, line, bar | A_BOLD);
    if (x + (int)strlen(hint) <= W) put(w, 0, W - (int)strlen(hint), W, hint, bar);
    wnoutrefresh(w);
}

static void draw_keys(tui *app, WINDOW *w)
{
    struct tui_screen *s = app->screen;
    werase(w);
    static const char *const keys[][2] = {{"F1", "help"}, {"F2", "runs"}, {"F3", "heatmap"}, {"F5", "pause"}, {"F10", "quit"}};
    attr_t fk = app->color ? COLOR_PAIR(PAIR_FKEY) : A_REVERSE;
    int x = 0, W = getmaxx(w);
    tui_run *r = tui_focus(app);
    for (int i = 0; i < 5; i++) {
        const char *label = keys[i][1];
        if (i == 3 && r && (r->state == RS_PAUSED || (r->state == RS_DONE && r->nhist && r->hist[r->nhist - 1].epoch < r->cfg.epochs)))
            label = "resume";
        char pad[16];
        snprintf(pad, sizeof pad, "%s ", label);
        x += put(w, 0, x, W - x, keys[i][0], A_BOLD);
        x += put(w, 0, x, W - x, pad, fk);
        x += put(w, 0, x, W - x, " ", A_NORMAL);
    }
    char right[96];
    snprintf(right, sizeof right, "TAB completes%s%s history%sPgUp log ", s->g->sep, s->g->up, s->g->sep);
    int rw = tui_text_cols(right);
    if (x + rw + 1 <= W) put(w, 0, W - rw, rw, right, app->color ? COLOR_PAIR(PAIR_DIM) : A_NORMAL);
    wnoutrefresh(w);
}

/* ---- curves ------------------------------------------------------------------- */

static int overlaid(const tui *app, int id)
{
    if (app->view.overlay_all) return 1;
    for (int i = 0; i < app->view.noverlay; i++)
        if (app->view.overlay[i] == id) return 1;
    return 0;
}

typedef struct {
    int field; /* 0 train, 1 test, 2 comp, 3 sym, 4 seen */
    plot_style style;
    const char *label;
} series_def;

static double point_field(const tui_point *p, int f)
{
    switch (f) {
    case 0: return p->train_loss;
    case 1: return p->test_loss;
    case 2: return p->comp;
    case 3: return p->sym;
    default: return p->seen;
    }
}

static int series_for(const tui *app, int acc, series_def *out)
{
    int n = 0;
    if (!acc) {
        if (app->view.loss != LOSS_TEST) out[n++] = (series_def){0, PLOT_SOLID, "train"};
        if (app->view.loss != LOSS_TRAIN) out[n++] = (series_def){1, PLOT_DASHED, "test"};
    } else if (app->view.acc == ACC_SEEN) out[n++] = (series_def){4, PLOT_SOLID, "seen"};
    else {
        if (app->view.acc != ACC_SYM) out[n++] = (series_def){2, PLOT_SOLID, "comp"};
        if (app->view.acc != ACC_COMP) out[n++] = (series_def){3, PLOT_DASHED, "sym"};
    }
    return n;
}

static void draw_curves(tui *app, WINDOW *w, int acc)
{
    struct tui_screen *s = app->screen;
    werase(w);
    int H = getmaxy(w), W = getmaxx(w);
    series_def sd[3];
    int ns = series_for(app, acc, sd);
    /* the title carries the run colours: "loss  1 2" */
    frame(w, app, acc ? (app->view.acc == ACC_SEEN ? "seen-pair accuracy" : "pair 43 accuracy") : "loss", A_NORMAL);
    int tx = 2 + tui_text_cols(acc ? (app->view.acc == ACC_SEEN ? "seen-pair accuracy" : "pair 43 accuracy") : "loss") + 1;
    int nshown = 0;
    tui_run *focus = tui_focus(app);
    for (int i = 0; i < app->nruns; i++) {
        tui_run *r = &app->runs[i];
        if (!overlaid(app, r->id) || !r->nhist) continue;
        nshown++;
        char lab[64];
        snprintf(lab, sizeof lab, "%d %s", r->id, r->name);
        if (tx + tui_text_cols(lab) + 3 < W - 1) {
            tx += put(w, 0, tx, 1, " ", A_NORMAL);
            tx += put(w, 0, tx, W - 1 - tx, lab, run_attr(app, r->id) | (r == focus ? A_BOLD : 0));
            tx += put(w, 0, tx, 1, " ", A_NORMAL);
        }
    }
    int ih = H - 2, iw = W - 2;
    if (ih < 3 || iw < 12) {
        wnoutrefresh(w);
        return;
    }
    /* ranges: x from 0 to the latest epoch, y from the data (loss) or [0, 1] */
    double xmax = 1, ymin = acc ? 0 : INFINITY, ymax = acc ? 1 : -INFINITY;
    for (int i = 0; i < app->nruns; i++) {
        tui_run *r = &app->runs[i];
        if (!overlaid(app, r->id)) continue;
        for (int j = 0; j < r->nhist; j++) {
            if (r->hist[j].epoch > xmax) xmax = r->hist[j].epoch;
            for (int k = 0; !acc && k < ns; k++) {
                double v = point_field(&r->hist[j], sd[k].field);
                if (isfinite(v)) ymin = v < ymin ? v : ymin, ymax = v > ymax ? v : ymax;
            }
        }
    }
    if (!nshown) {
        put(w, 1 + ih / 2, 2, iw - 2, app->nruns ? "no run shown: 'show overlay all'" : "no runs yet: 'new demo' or 'paper'",
            A_NORMAL);
        wnoutrefresh(w);
        return;
    }
    if (!acc) {
        if (!isfinite(ymin)) ymin = 0, ymax = 1;
        if (ymax - ymin < 1e-9) ymax = ymin + 1;
        ymin = ymin > 0 && ymin < (ymax - ymin) * 0.1 ? 0 : ymin; /* a floor near zero reads as zero */
    }
    char ylo[16], yhi[16], xr[16];
    plot_fmt_value(ymax, yhi, sizeof yhi);
    plot_fmt_value(ymin, ylo, sizeof ylo);
    int gw = (int)(strlen(yhi) > strlen(ylo) ? strlen(yhi) : strlen(ylo));
    int pw = iw - gw, ph = ih - 1;
    plot_canvas c;
    if (plot_init(&c, pw, ph, app->utf8)) {
        wnoutrefresh(w);
        return;
    }
    double *xs = malloc(sizeof(double) * 8192), *ys = malloc(sizeof(double) * 8192);
    int focus_id = focus ? focus->id : 0;
    typedef struct {
        int id, cx, cy;
    } endlab;
    endlab ends[TUI_MAX_RUNS];
    int nends = 0;
    /* the focused run last, so it is on top */
    for (int pass = 0; pass < 2 && xs && ys; pass++)
        for (int i = 0; i < app->nruns; i++) {
            tui_run *r = &app->runs[i];
            if (!overlaid(app, r->id) || !r->nhist || (r->id == focus_id) != pass) continue;
            int n = r->nhist < 8192 ? r->nhist : 8192;
            for (int k = 0; k < ns; k++) {
                for (int j = 0; j < n; j++) xs[j] = r->hist[j].epoch, ys[j] = point_field(&r->hist[j], sd[k].field);
                int ex, ey;
                plot_series(&c, xs, ys, n, 0, xmax, ymin, ymax, sd[k].style, (short)r->id, &ex, &ey);
                if (k == 0 && ex >= 0 && n > 1 && nends < TUI_MAX_RUNS) ends[nends++] = (endlab){r->id, ex, ey};
            }
        }
    free(xs);
    free(ys);
    char cell[8];
    for (int y = 0; y < ph; y++)
        for (int x = 0; x < pw; x++) {
            plot_cell(&c, x, y, cell);
            if (!cell[0]) continue;
            short id = plot_cell_color(&c, x, y);
            put(w, 1 + y, 1 + gw + x, 1, cell, run_attr(app, id) | (id == focus_id && nshown > 1 ? A_BOLD : 0));
        }
    /* run ids at the curves' ends, when several runs share the pane */
    for (int i = 0; nshown > 1 && i < nends; i++) {
        char lab[16];
        snprintf(lab, sizeof lab, "%d", ends[i].id);
        int x = ends[i].cx + 1 < pw ? ends[i].cx + 1 : ends[i].cx - 1;
        if (x >= 0) put(w, 1 + ends[i].cy, 1 + gw + x, 1, lab, run_attr(app, ends[i].id) | A_BOLD);
    }
    plot_free(&c);
    /* axes: y range on the left, epochs along the bottom */
    put(w, 1, 1, gw, yhi, A_NORMAL);
    put(w, ph, 1 + gw - (int)strlen(ylo), gw, ylo, A_NORMAL);
    snprintf(xr, sizeof xr, "%.0f", xmax);
    put(w, H - 2, 1 + gw, 1, "0", A_NORMAL);
    put(w, H - 2, 1 + gw + (pw - 5) / 2, 5, "epoch", A_NORMAL);
    put(w, H - 2, W - 1 - (int)strlen(xr), (int)strlen(xr), xr, A_NORMAL);
    /* legend, top right: "train ── test ┄┄" */
    char leg[96] = "";
    size_t k = 0;
    for (int i = 0; i < ns; i++)
        k += snprintf(leg + k, sizeof leg - k, "%s%s %s", i ? " " : "", sd[i].label,
                      sd[i].style == PLOT_SOLID ? s->g->solid : s->g->dashed);
    int lw = tui_text_cols(leg);
    if (lw + 2 < pw) put(w, 1, W - 2 - lw, lw, leg, A_NORMAL);
    wnoutrefresh(w);
}

/* ---- runs ---------------------------------------------------------------------- */

/* One line of the runs pane: the columns that fit, most important first. */
#define RUN_ROW_FIXED 48 /* marker, id, name, state, epoch, comp and sym */
#define RUN_ROW_ETA 12   /* "  ETA 1m20s" */

static void run_row(tui *app, WINDOW *w, int y, int x0, int W, tui_run *r, int detail)
{
    struct tui_screen *s = app->screen;
    char buf[512], sum[160], eta[16], c[8], sy[8];
    int x = x0, end = x0 + W;
    x += put(w, y, x, end - x, r == tui_focus(app) ? s->g->focus : " ", A_BOLD);
    snprintf(buf, sizeof buf, "%3d ", r->id);
    x += put(w, y, x, end - x, buf, run_attr(app, r->id) | A_BOLD);
    snprintf(buf, sizeof buf, "%-8.8s ", r->name);
    x += put(w, y, x, end - x, buf, A_NORMAL);
    snprintf(buf, sizeof buf, "%-7s ", state_short[r->state]);
    x += put(w, y, x, end - x, buf, state_attr(app, r->state));
    const tui_point *p = r->nhist ? &r->hist[r->nhist - 1] : NULL;
    snprintf(buf, sizeof buf, "%4d/%-4d", p ? p->epoch : 0, r->cfg.epochs);
    x += put(w, y, x, end - x, buf, A_NORMAL);
    fmt_acc(p ? p->comp : NAN, c, sizeof c);
    fmt_acc(p ? p->sym : NAN, sy, sizeof sy);
    snprintf(buf, sizeof buf, " comp%s sym%s", c, sy);
    if (x + tui_text_cols(buf) <= end) x += put(w, y, x, end - x, buf, A_NORMAL);
    /* what the run is (std or all-one, ...), then its time left (the rate
     * is on the status line and in the F2 table) */
    double left = tui_run_eta(r);
    tui_fmt_duration(left, eta, sizeof eta);
    char speed[64] = "";
    if (left >= 0 && r->state != RS_DONE && r->state != RS_FAILED) snprintf(speed, sizeof speed, "  ETA %s", eta);
    if (detail >= 0) {
        tui_run_summary_at(app, r, detail, sum, sizeof sum);
        snprintf(buf, sizeof buf, "  %s", sum);
        x += put(w, y, x, end - x, buf, app->color ? COLOR_PAIR(PAIR_DIM) : A_NORMAL);
    }
    if (x + tui_text_cols(speed) <= end) put(w, y, x, end - x, speed, A_NORMAL);
}

/* F2: every run, one per line, in fixed columns. */
static void full_row(tui *app, WINDOW *w, int y, int W, tui_run *r)
{
    struct tui_screen *s = app->screen;
    char buf[1024], sum[160], rate[16], eta[16], c[8], sy[8], se[8], test[16];
    const tui_point *p = r->nhist ? &r->hist[r->nhist - 1] : NULL;
    fmt_acc(p ? p->comp : NAN, c, sizeof c);
    fmt_acc(p ? p->sym : NAN, sy, sizeof sy);
    fmt_acc(p ? p->seen : NAN, se, sizeof se);
    snprintf(test, sizeof test, p && isfinite(p->test_loss) ? "%.3f" : "-", p ? p->test_loss : 0);
    tui_fmt_rate(r->state == RS_RUNNING ? r->rate : 0, rate, sizeof rate);
    tui_fmt_duration(tui_run_eta(r), eta, sizeof eta);
    if (tui_run_eta(r) < 0) snprintf(eta, sizeof eta, "-");
    tui_run_summary(app, r, sum, sizeof sum);
    int x = 1;
    x += put(w, y, x, W - x, r == tui_focus(app) ? s->g->focus : " ", A_BOLD);
    snprintf(buf, sizeof buf, "%3d ", r->id);
    x += put(w, y, x, W - x, buf, run_attr(app, r->id) | A_BOLD);
    snprintf(buf, sizeof buf, "%-8.8s ", r->name);
    x += put(w, y, x, W - x, buf, A_NORMAL);
    snprintf(buf, sizeof buf, "%-7s ", state_short[r->state]);
    x += put(w, y, x, W - x, buf, state_attr(app, r->state));
    snprintf(buf, sizeof buf, "%4d/%-4d %4s %4s %4s %6s %7s %6s  %s  %.300s%s%s", p ? p->epoch : 0, r->cfg.epochs, c, sy, se,
             test, rate, eta, sum, r->dir, r->note[0] ? "  " : "", r->note);
    put(w, y, x, W - 1 - x, buf, A_NORMAL);
}

static void draw_runs(tui *app, WINDOW *w, int full)
{
    werase(w);
    int H = getmaxy(w), W = getmaxx(w);
    frame(w, app, full ? "runs (F2 or Esc closes)" : "runs", A_NORMAL);
    int rows = H - 2, first = 0;
    if (full) {
        put(w, 1, 2, W - 3, "  id name     state   epoch     comp  sym seen   test    rate    ETA  settings  directory",
            A_BOLD);
        rows--;
    }
    tui_run *focus = tui_focus(app);
    int fi = focus ? run_index(app, focus) : 0;
    if (fi >= rows) first = fi - rows + 1;
    if (!app->nruns) put(w, 1, 2, W - 4, "no runs yet: 'new demo' (a minute) or 'paper' (the paper's run)", A_NORMAL);
    /* the most detailed settings that fit every row, so the column reads alike */
    int detail = 2;
    for (int i = 0; i < app->nruns && detail >= 0; i++) {
        char sum[160];
        tui_run_summary_at(app, &app->runs[i], detail, sum, sizeof sum);
        if (RUN_ROW_FIXED + 2 + tui_text_cols(sum) + RUN_ROW_ETA > W - 2) detail--, i = -1;
    }
    for (int i = first; i < app->nruns && i - first < rows; i++) {
        if (full) full_row(app, w, 2 + i - first, W, &app->runs[i]);
        else run_row(app, w, 1 + i - first, 1, W - 2, &app->runs[i], detail);
    }
    wnoutrefresh(w);
}

/* ---- heatmap ------------------------------------------------------------------ */

static attr_t heat_attr(const tui *app, double v)
{
    if (!app->color || !isfinite(v)) return A_NORMAL;
    return COLOR_PAIR(v < 0 ? PAIR_NEG : PAIR_POS);
}

/* One matrix at (y, x): cells of width cw, shading and (room allowing) numbers. */
static void heat_matrix(tui *app, WINDOW *w, int y, int x, const double *m, int rows, int cols, int cw, double scale,
                        int lower_only, int with_numbers)
{
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < cols; j++) {
            if (lower_only && j > i) continue;
            double v = m[i * cols + j];
            char cell[32];
            heat_cell(cell, sizeof cell, v, scale, cw, with_numbers, app->utf8);
            put(w, y + i, x + j * cw, cw, cell, heat_attr(app, v));
        }
}

static void draw_heat(tui *app, WINDOW *w)
{
    struct tui_screen *s = app->screen;
    werase(w);
    int H = getmaxy(w), W = getmaxx(w);
    tui_heat *h = &app->heat;
    char title[160];
    char head[16] = "mean";
    if (h->head >= 0) snprintf(head, sizeof head, "%d", h->head);
    if (h->kind == HEAT_COSINE)
        snprintf(title, sizeof title, "conv cos-sim  run %d layer %d: ep 0 %s ep %d", h->run, h->layer, s->g->vbar, h->epoch);
    else if (h->kind == HEAT_ATTENTION)
        snprintf(title, sizeof title, "attention  run %d layer %d head %s seq %d", h->run, h->layer, head, h->seq);
    else snprintf(title, sizeof title, "heatmap");
    frame(w, app, title, A_NORMAL);
    int iw = W - 2, ih = H - 2;
    if (h->kind == HEAT_NONE || !h->a) {
        put(w, 1, 2, iw - 2, "No heatmap yet.", A_NORMAL);
        put(w, 2, 2, iw - 2, "'heatmap': conv cosine, epoch 0 | now", A_NORMAL);
        put(w, 3, 2, iw - 2, "'heatmap attn': hidden attention", A_NORMAL);
        put(w, 4, 2, iw - 2, "F3 hides this pane.", A_NORMAL);
        wnoutrefresh(w);
        return;
    }
    if (h->kind == HEAT_COSINE) {
        int K = h->cols;
        /* two K x K matrices and a separator: the widest cell that fits */
        int cw = (iw - 4) / (2 * K);
        if (cw > 7) cw = 7;
        if (cw < 1) cw = 1;
        int numbers = cw >= 5;
        int mw = cw * K, x0 = 2;
        if (ih >= K + 1) {
            put(w, 1, x0, mw, "epoch 0", A_DIM);
            char now[32];
            snprintf(now, sizeof now, "epoch %d", h->epoch);
            put(w, 1, x0 + mw + 3, mw, now, A_DIM);
        }
        int y0 = ih >= K + 1 ? 2 : 1;
        heat_matrix(app, w, y0, x0, h->a, K, K, cw, 1.0, 0, numbers);
        for (int i = 0; i < K && y0 + i < H - 1; i++) put(w, y0 + i, x0 + mw + 1, 1, s->g->vbar, A_NORMAL);
        heat_matrix(app, w, y0, x0 + mw + 3, h->b, K, K, cw, 1.0, 0, numbers);
        if (y0 + K < H - 1) {
            char leg[128];
            heat_legend(leg, sizeof leg, 1.0, app->utf8);
            put(w, y0 + K, x0, iw - 2, leg, A_DIM);
        }
    } else {
        int L = h->rows;
        double mx = 0;
        for (int i = 0; i < L * L; i++)
            if (isfinite(h->a[i]) && fabs(h->a[i]) > mx) mx = fabs(h->a[i]);
        int lw = 5, cw = (iw - lw - 1) / (L ? L : 1);
        if (cw > 5) cw = 5;
        if (cw < 1) cw = 1;
        int numbers = cw >= 5;
        for (int j = 0; j < L && 1 < H - 1; j++) put(w, 1, 1 + lw + j * cw, cw, h->labels[j], A_DIM);
        for (int i = 0; i < L && 2 + i < H - 1; i++) {
            put(w, 2 + i, 1, lw, h->labels[i], A_DIM);
        }
        /* numbers relative to the largest |S|, which the legend gives */
        double *rel = malloc((size_t)L * L * sizeof *rel);
        if (rel) {
            for (int i = 0; i < L * L; i++) rel[i] = mx > 0 ? h->a[i] / mx : h->a[i];
            heat_matrix(app, w, 2, 1 + lw, rel, L < H - 3 ? L : H - 3, L, cw, 1, 1, numbers);
            free(rel);
        }
        if (2 + L < H - 1) {
            char leg[128];
            heat_legend(leg, sizeof leg, mx > 0 ? mx : 1, app->utf8);
            put(w, 2 + L, 2, iw - 2, leg, A_DIM);
        }
    }
    wnoutrefresh(w);
}

/* ---- log, prompt, help ----------------------------------------------------- */

static void draw_log(tui *app, WINDOW *w)
{
    werase(w);
    int W = getmaxx(w), H = getmaxy(w) < 64 ? getmaxy(w) : 64;
    tui_row rows[64];
    /* long lines wrap, so the scroll counts rows */
    int total = tui_log_rows(app, W - 1, app->view.log_scroll, H, rows);
    if (app->view.log_scroll > 0 && app->view.log_scroll > total - H) {
        app->view.log_scroll = total > H ? total - H : 0;
        tui_log_rows(app, W - 1, app->view.log_scroll, H, rows);
    }
    for (int i = 0; i < H; i++) put_row(w, i, 1, W - 1, rows[i], A_NORMAL);
    if (app->view.log_scroll) {
        char ind[48];
        snprintf(ind, sizeof ind, " [log -%d, PgDn] ", app->view.log_scroll);
        put(w, 0, W - (int)strlen(ind), (int)strlen(ind), ind, A_REVERSE);
    }
    wnoutrefresh(w);
}

static void draw_prompt(tui *app, WINDOW *w)
{
    werase(w);
    int W = getmaxx(w), point;
    const char *line = tui_repl_line(&point);
    int pw = (int)strlen(TUI_PROMPT);
    put(w, 0, 0, W, TUI_PROMPT, A_BOLD);
    /* columns up to the cursor; scroll so the cursor stays visible */
    char before[4096];
    snprintf(before, sizeof before, "%.*s", point, line);
    int cur = tui_text_cols(before), avail = W - pw - 1, skip = cur > avail ? cur - avail : 0;
    const char *p = line;
    for (int k = 0; k < skip && *p;) {
        p++;
        if (((unsigned char)*p & 0xC0) != 0x80) k++;
    }
    put(w, 0, pw, avail + 1, p, A_NORMAL);
    wmove(w, 0, pw + cur - skip);
}

static void draw_help(tui *app, WINDOW *w)
{
    struct tui_screen *s = app->screen;
    tui_page *p = &app->page;
    werase(w);
    int H = getmaxy(w), W = getmaxx(w), n = H - 2 < 256 ? H - 2 : 256, tw = W - 4;
    tui_row rows[256];
    frame(w, app, p->title, A_NORMAL);
    int total = tui_page_rows(app, tw, p->scroll, n, rows);
    if (p->scroll > 0 && p->scroll > total - n) {
        p->scroll = total > n ? total - n : 0;
        tui_page_rows(app, tw, p->scroll, n, rows);
    }
    for (int i = 0; i < n; i++) {
        /* a line that starts at the margin is a heading */
        int head = rows[i].s && !rows[i].indent && rows[i].len && rows[i].s[0] != ' ';
        put_row(w, 1 + i, 2, tw, rows[i], head ? A_BOLD : A_NORMAL);
    }
    char foot[128];
    if (total > n)
        snprintf(foot, sizeof foot, " %d-%d of %d  %s/%s PgUp/PgDn  q closes ", p->scroll + 1,
                 p->scroll + n < total ? p->scroll + n : total, total, s->g->up, s->g->down);
    else snprintf(foot, sizeof foot, " q closes ");
    int fw = tui_text_cols(foot);
    put(w, H - 1, W - 2 - fw, fw, foot, A_NORMAL);
    wnoutrefresh(w);
}

/* ---- windows --------------------------------------------------------------- */

static tui_rect pane_rect(const tui_layout *l, int p)
{
    switch (p) {
    case P_STATUS: return l->status;
    case P_LOSS: return l->loss;
    case P_ACC: return l->acc;
    case P_RUNS: return l->runs;
    case P_HEAT: return l->heat;
    case P_LOG: return l->log;
    case P_PROMPT: return l->prompt;
    case P_KEYS: return l->keys;
    default: return l->big;
    }
}

/* Makes the windows match the layout; only changed panes are re-made. */
static void sync_windows(struct tui_screen *s)
{
    for (int p = 0; p < NPANES; p++) {
        tui_rect r = pane_rect(&s->lay, p);
        if (s->w[p] && !memcmp(&r, &s->r[p], sizeof r)) continue;
        if (s->w[p]) delwin(s->w[p]);
        s->w[p] = NULL;
        s->r[p] = r;
        if (r.h > 0 && r.w > 0 && !s->lay.too_small) s->w[p] = newwin(r.h, r.w, r.y, r.x);
        if (p == P_PROMPT && s->w[p]) {
            keypad(s->w[p], TRUE);
            nodelay(s->w[p], TRUE);
        }
    }
}

int tui_screen_init(tui *app, char *err, size_t errlen)
{
    struct tui_screen *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int have_tio = tcgetattr(STDIN_FILENO, &crash.tio) == 0;
    if (!initscr()) {
        snprintf(err, errlen, "cannot start the terminal (TERM=%s)", getenv("TERM") ? getenv("TERM") : "");
        free(s);
        return -1;
    }
    crash.len = 0;
    const char *caps[] = {"sgr0", "rmkx", "cnorm", "rmcup"};
    for (size_t i = 0; i < sizeof caps / sizeof *caps; i++) crash_add(caps[i]);
    crash.armed = have_tio;
    app->screen = s;
    s->g = app->utf8 ? &kUtf8 : &kAscii;
    raw();
    noecho();
    nonl();
    keypad(stdscr, TRUE);
    nodelay(stdscr, TRUE);
    set_escdelay(200); /* over a slow link an escape sequence may come in pieces */
    curs_set(1);
    if (app->color && has_colors()) {
        start_color();
        use_default_colors();
        static const short run_colors[NRUNCOLORS] = {COLOR_CYAN, COLOR_YELLOW, COLOR_MAGENTA, COLOR_GREEN, COLOR_BLUE, COLOR_RED};
        for (int i = 0; i < NRUNCOLORS; i++) init_pair(PAIR_RUN + i, run_colors[i], -1);
        init_pair(PAIR_BAR, COLOR_BLACK, COLOR_CYAN);
        init_pair(PAIR_FKEY, COLOR_BLACK, COLOR_CYAN);
        init_pair(PAIR_POS, COLOR_CYAN, -1);
        init_pair(PAIR_NEG, COLOR_RED, -1);
        init_pair(PAIR_OK, COLOR_GREEN, -1);
        init_pair(PAIR_BAD, COLOR_RED, -1);
        init_pair(PAIR_DIM, COLORS > 8 ? 8 : COLOR_WHITE, -1);
    } else app->color = 0;
    getmaxyx(stdscr, s->rows, s->cols);
    app->dirty = 1;
    return 0;
}

void tui_screen_resize(tui *app, int rows, int cols)
{
    struct tui_screen *s = app->screen;
    if (!s) return;
    if (rows <= 0 || cols <= 0) {
        struct winsize ws;
        if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_row && ws.ws_col) rows = ws.ws_row, cols = ws.ws_col;
        else getmaxyx(stdscr, rows, cols);
    }
    if (rows != LINES || cols != COLS) resizeterm(rows, cols);
    s->rows = rows, s->cols = cols;
    app->dirty = 1;
}

void tui_screen_toggle_heat(tui *app)
{
    struct tui_screen *s = app->screen;
    if (!s) return;
    /* the current size's layout: a resize handled since the last draw (a
     * key right after it) must not toggle by the old one's width */
    tui_layout_compute(&s->lay, s->rows, s->cols, app, s->heat_narrow);
    if (s->lay.wide) app->view.heat_shown = !app->view.heat_shown;
    else if (!app->view.heat_shown) app->view.heat_shown = 1, s->heat_narrow = 1;
    else s->heat_narrow = !s->heat_narrow;
    app->dirty = 1;
}

int tui_screen_log_rows(const tui *app) { return app->screen ? app->screen->lay.log.h : 3; }

int tui_screen_page_rows(const tui *app) { return app->screen && app->screen->lay.big.h > 2 ? app->screen->lay.big.h - 2 : 1; }

void tui_screen_repaint(tui *app)
{
    clearok(curscr, TRUE);
    app->dirty = 1;
}

void tui_screen_draw(tui *app)
{
    struct tui_screen *s = app->screen;
    if (!s) return;
    /* a new heatmap on a narrow screen: show it in the runs' place */
    if (app->heat_serial != s->heat_serial) {
        s->heat_serial = app->heat_serial;
        if (!s->lay.wide) s->heat_narrow = 1;
    }
    tui_layout_compute(&s->lay, s->rows, s->cols, app, s->heat_narrow);
    sync_windows(s);
    if (s->lay.too_small) {
        char msg[160];
        werase(stdscr);
        snprintf(msg, sizeof msg, "achilles-tui needs at least %dx%d; this terminal is %dx%d.", TUI_MIN_COLS, TUI_MIN_ROWS,
                 s->cols, s->rows);
        int y = s->rows / 2 - 1;
        put(stdscr, y < 0 ? 0 : y, 0, s->cols, msg, A_BOLD);
        put(stdscr, y + 1 < s->rows ? y + 1 : 0, 0, s->cols, "Enlarge the window (F10 or q quits).", A_NORMAL);
        wnoutrefresh(stdscr);
        doupdate();
        return;
    }
    draw_status(app, s->w[P_STATUS]);
    if (s->w[P_BIG]) {
        if (app->view.help_shown) draw_help(app, s->w[P_BIG]);
        else draw_runs(app, s->w[P_BIG], 1);
    } else {
        if (s->w[P_LOSS]) draw_curves(app, s->w[P_LOSS], 0);
        if (s->w[P_ACC]) draw_curves(app, s->w[P_ACC], 1);
        if (s->w[P_RUNS]) draw_runs(app, s->w[P_RUNS], 0);
        if (s->w[P_HEAT]) draw_heat(app, s->w[P_HEAT]);
    }
    draw_log(app, s->w[P_LOG]);
    draw_keys(app, s->w[P_KEYS]);
    draw_prompt(app, s->w[P_PROMPT]);
    wnoutrefresh(s->w[P_PROMPT]); /* last: the cursor stays in the prompt */
    doupdate();
    app->dirty = 0;
}

int tui_screen_key(tui *app, unsigned *wch, int *is_key)
{
    struct tui_screen *s = app->screen;
    WINDOW *in = s && s->w[P_PROMPT] ? s->w[P_PROMPT] : stdscr;
    wint_t c;
    int rc = wget_wch(in, &c);
    if (rc == ERR) return ERR;
    *wch = (unsigned)c;
    *is_key = rc == KEY_CODE_YES;
    return OK;
}

void tui_screen_end(tui *app)
{
    struct tui_screen *s = app->screen;
    if (!s) return;
    crash.armed = 0;
    for (int p = 0; p < NPANES; p++)
        if (s->w[p]) delwin(s->w[p]);
    endwin();
    free(s);
    app->screen = NULL;
}
