/* The workbench's pure drawing pieces: pane layout at several terminal
 * sizes, braille and ASCII plot cells, heatmap cells and axis labels, long
 * lines wrapped for the log and the help overlay. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
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

/* Row i of a wrap as a string. */
static const char *row_text(const tui_row *r, char *buf, size_t n)
{
    snprintf(buf, n, "%.*s", r->s ? r->len : 0, r->s ? r->s : "");
    return buf;
}

/* Checks one wrap of line at width: no row wider than its room, the words
 * in order and whole (a word is cut only where it is longer than a row),
 * and each row as full as it can be (the next word would not have fit). */
static int wrap_is_sound(const char *line, int width, int margin, char *why, size_t nwhy)
{
    tui_row rows[512];
    int n = tui_wrap(line, width, margin, rows, 512);
    char words[4096] = "", got[4096] = "";
    size_t kw = 0, kg = 0;
    int cut = 0;
    for (const char *p = line; *p; p++)
        if (*p != ' ' || (kw && words[kw - 1] != ' ')) words[kw++] = *p;
    while (kw && words[kw - 1] == ' ') kw--;
    words[kw] = 0;
    for (int i = 0; i < n; i++) {
        const tui_row *r = &rows[i];
        char t[1024];
        row_text(r, t, sizeof t);
        int room = width - r->indent;
        if (tui_text_cols(t) > room) return snprintf(why, nwhy, "row %d is %d columns, room %d", i, tui_text_cols(t), room), 0;
        if (i && r->indent != rows[1].indent) return snprintf(why, nwhy, "row %d has another indent", i), 0;
        /* rejoin: a blank where the line had one between rows */
        if (kg && !cut) got[kg++] = ' ';
        const char *after = r->s + r->len; /* in line: what follows the row */
        cut = *after && *after != ' ';
        if (cut && strchr(t + strspn(t, " "), ' ')) return snprintf(why, nwhy, "row %d splits a word though it has a blank", i), 0;
        if (cut && tui_text_cols(t) < room) return snprintf(why, nwhy, "row %d cuts a word short of its room", i), 0;
        if (i + 1 < n && !cut) {
            const char *next = rows[i + 1].s;
            size_t wl = strcspn(next, " ");
            if (tui_text_cols(t) + (int)(next - after) + (int)wl <= room)
                return snprintf(why, nwhy, "row %d leaves out a next word that fits", i), 0;
        }
        for (int j = 0; j < r->len; j++)
            if (r->s[j] != ' ' || (kg && got[kg - 1] != ' ')) got[kg++] = r->s[j];
        got[kg] = 0;
    }
    /* the rows' text, blanks collapsed, is the line's */
    char *g = got;
    while (*g == ' ') g++;
    if (strcmp(g, words)) return snprintf(why, nwhy, "text lost or changed:\n# got  %s\n# want %s", g, words), 0;
    return 1;
}

static void test_wrap(void)
{
    tui_row r[16];
    char b[256];
    int n = tui_wrap("alpha beta gamma delta epsilon", 12, 0, r, 16);
    ok(n == 4 && !strcmp(row_text(&r[0], b, sizeof b), "alpha beta") && !strcmp(row_text(&r[1], b, sizeof b), "gamma") &&
           !strcmp(row_text(&r[2], b, sizeof b), "delta") && !strcmp(row_text(&r[3], b, sizeof b), "epsilon"),
       "30 columns at width 12: 4 rows, broken at blanks (%d)", n);
    ok(r[0].indent == 0 && r[1].indent == 2 && r[3].indent == 2, "continuation rows are indented two columns");
    ok(tui_wrap("alpha beta", 10, 0, r, 16) == 1 && r[0].len == 10, "a line as wide as the pane: one row");
    ok(tui_wrap("alpha beta", 9, 0, r, 16) == 2 && r[0].len == 5 && r[1].len == 4, "one column less: two");
    ok(tui_wrap("", 20, 0, r, 16) == 1 && r[0].len == 0, "an empty line: one empty row");
    ok(tui_wrap("one two\nthree", 20, 0, r, 16) == 1 && r[0].len == 7, "a line ends at its newline");
    n = tui_wrap("abcdefghijklmnopqrstuvwxyz0123", 10, 0, r, 16);
    ok(n == 4 && r[0].len == 10 && r[1].len == 8 && r[2].len == 8 && r[3].len == 4,
       "a word longer than a row is cut at the row's end (10+8+8+4)");
    n = tui_wrap("\xce\xb3\xce\xb3\xce\xb3\xce\xb3 \xce\xb3\xce\xb3", 4, 0, r, 16);
    ok(n == 2 && r[0].len == 8 && r[1].len == 4 && r[1].indent == 2, "UTF-8: columns, not bytes");
    n = tui_wrap("[12:00:00] run 1 created: L2 g1 mamba2 std small, epoch 0 test loss 4.159", 40, TUI_LOG_STAMP, r, 16);
    ok(n == 3 && r[1].indent == TUI_LOG_STAMP + 2, "log: continuation rows start two columns into the text (%d)", r[1].indent);
    n = tui_wrap("             new [PRESET | RUN] [key=value ...] [name=NAME]", 40, TUI_LOG_STAMP, r, 16);
    ok(n == 3 && r[1].indent == TUI_LOG_STAMP + 4 && !strcmp(row_text(&r[0], b, sizeof b), "             new [PRESET | RUN]") &&
           !strcmp(row_text(&r[1], b, sizeof b), "[key=value ...]"),
       "an indented line keeps its indent, and its continuation two more");
    n = tui_wrap("          x yy zzz", 6, 0, r, 16);
    ok(n >= 2 && r[1].indent == 3, "the hanging indent is at most half the width");

    /* many lines, widths and margins */
    char line[1200];
    unsigned seed = 12345;
    int sound = 1, tried = 0;
    char why[2048] = "";
    for (int t = 0; t < 60 && sound; t++) {
        size_t k = 0;
        int lead = t % 4 == 0 ? t % 7 : 0;
        for (int i = 0; i < lead; i++) line[k++] = ' ';
        while (k < 200 + (size_t)t * 10) {
            seed = seed * 1103515245 + 12345;
            int wl = 1 + (seed >> 16) % (t % 5 == 0 ? 30 : 9);
            for (int i = 0; i < wl; i++) line[k++] = (char)('a' + (seed >> (i % 16)) % 26);
            line[k++] = ' ';
            if ((seed >> 8) % 7 == 0) line[k++] = ' '; /* two blanks now and then */
        }
        line[k - 1] = 'z';
        line[k] = 0;
        for (int width = 8; width <= 120 && sound; width += 7, tried++)
            sound = wrap_is_sound(line, width, t % 2 ? TUI_LOG_STAMP : 0, why, sizeof why);
    }
    ok(sound, "%d wraps: rows fit, words whole and in order, rows filled, nothing lost", tried);
    if (!sound) diag("%s", why);
}

static void test_log_rows(void)
{
    static tui app;
    app.log = calloc(TUI_LOG_LINES, sizeof *app.log);
    tui_log(&app, "first");
    tui_log(&app, "a long line: one two three four five six seven eight nine ten eleven twelve");
    tui_log(&app, "last");
    tui_row r[8];
    char b[256];
    int total = tui_log_rows(&app, 40, 0, 0, NULL);
    int n = tui_wrap(tui_log_get(&app, 1), 40, TUI_LOG_STAMP, r, 8);
    ok(n == 3 && total == 5, "3 lines at width 40: the long one takes %d rows, the log %d", n, total);
    tui_log_rows(&app, 40, 0, 4, r);
    ok(!strncmp(row_text(&r[3], b, sizeof b) + TUI_LOG_STAMP, "last", 4), "the newest row at the bottom");
    ok(r[2].indent == TUI_LOG_STAMP + 2 && strstr(row_text(&r[2], b, sizeof b), "twelve"),
       "above it the long line's last row, indented");
    ok(strstr(row_text(&r[0], b, sizeof b), "a long line") && r[0].indent == 0, "its first row at the top of four");
    tui_log_rows(&app, 40, 2, 4, r);
    ok(!r[0].s && strstr(row_text(&r[1], b, sizeof b), "first") && strstr(row_text(&r[2], b, sizeof b), "a long line") &&
           r[3].indent == TUI_LOG_STAMP + 2,
       "two rows back: the long line's first rows, the oldest line, nothing above it");
    tui_log_rows(&app, 200, 0, 4, r);
    ok(!r[0].s && strstr(row_text(&r[2], b, sizeof b), "twelve") && tui_log_rows(&app, 200, 0, 0, NULL) == 3,
       "wide: one row a line");
    free(app.log);
}

static void test_page(void)
{
    static tui app;
    tui_page_open(&app, "help");
    ok(app.view.help_shown && !strcmp(app.page.title, "help"), "a page opens the overlay");
    tui_page_add(&app, "Heading");
    tui_page_add(&app, "  a line long enough to wrap at thirty columns, twice over");
    tui_page_add(&app, "%s", "");
    tui_row r[16];
    char b[256];
    int total = tui_page_rows(&app, 30, 0, 16, r);
    ok(total == 5 && !strcmp(row_text(&r[0], b, sizeof b), "Heading") && r[2].indent == 4 && !r[4].len && !r[5].s,
       "rows of the page at width 30 (%d), blank lines kept", total);
    tui_page_rows(&app, 30, 3, 2, r);
    ok(r[0].indent == 4 && !strcmp(row_text(&r[0], b, sizeof b), "over") && r[1].s && !r[1].len, "from row 3 on");
    tui_page_open(&app, "big");
    for (int i = 0; i < 2000; i++) tui_page_add(&app, "line %d of a text longer than the page holds", i);
    size_t len = strlen(app.page.text);
    ok(len == app.page.len && len < sizeof app.page.text && app.page.text[len - 1] == '\n' && strstr(app.page.text, "line 0 "),
       "a text too long keeps its beginning and ends in a newline");
}

int main(void)
{
    test_layout();
    test_plot();
    test_heat();
    test_wrap();
    test_log_rows();
    test_page();
    return done_testing();
}
