/* Text heatmaps: a matrix as shaded character cells with labels and a scale. */
#include "textplot.h"

#include <langinfo.h>
#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Output into a caller buffer that keeps counting past its end, so the
 * caller can learn the size it needs (as snprintf does). */
typedef struct {
    char *buf;
    size_t n, len;
} sink;

static void put(sink *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    size_t room = s->len < s->n ? s->n - s->len : 0;
    int k = vsnprintf(room ? s->buf + s->len : NULL, room, fmt, ap);
    va_end(ap);
    if (k > 0) s->len += (size_t)k;
}

static const char *const utf8_shades[] = {" ", "\u2591", "\u2592", "\u2593", "\u2588"};
static const char *const ascii_shades[] = {" ", ".", ":", "-", "=", "+", "*", "#", "%", "@"};

size_t tp_heatmap(char *buf, size_t n, const double *M, int rows, int cols, const tp_heatmap_opts *o)
{
    sink s = {buf, n, 0};
    if (n) buf[0] = 0;
    const char *const *shade = o->utf8 ? utf8_shades : ascii_shades;
    int nlev = o->utf8 ? 5 : 10;
    double lo = o->lo, hi = o->hi;
    if (!(lo < hi)) {
        lo = INFINITY, hi = -INFINITY;
        for (int i = 0; i < rows; i++)
            for (int j = 0; j < cols; j++) {
                double v = M[(size_t)i * cols + j];
                if ((o->blank_upper && j > i) || !isfinite(v)) continue;
                lo = fmin(lo, v), hi = fmax(hi, v);
            }
        if (!(lo <= hi)) lo = 0, hi = 1;   /* nothing finite */
        if (lo == hi) hi = lo + 1;         /* a constant matrix: one shade */
    }
    /* Cells at least as wide as the widest column label; labels right-aligned. */
    int cell = o->cell > 0 ? o->cell : 2, rw = 1;
    char lab[32];
    for (int j = 0; j < cols; j++) {
        int w = o->col_labels ? tp_width(o->col_labels[j]) : snprintf(lab, sizeof lab, "%d", j);
        if (w > cell) cell = w;
    }
    for (int i = 0; i < rows; i++) {
        int w = o->row_labels ? tp_width(o->row_labels[i]) : snprintf(lab, sizeof lab, "%d", i);
        if (w > rw) rw = w;
    }
    put(&s, "%*s ", rw, "");
    for (int j = 0; j < cols; j++) {
        const char *l = o->col_labels ? o->col_labels[j] : (snprintf(lab, sizeof lab, "%d", j), lab);
        put(&s, "%*s%s", cell - tp_width(l), "", l);
    }
    put(&s, "\n");
    for (int i = 0; i < rows; i++) {
        const char *l = o->row_labels ? o->row_labels[i] : (snprintf(lab, sizeof lab, "%d", i), lab);
        put(&s, "%*s%s ", rw - tp_width(l), "", l);
        for (int j = 0; j < cols; j++) {
            double v = M[(size_t)i * cols + j];
            const char *c;
            if (o->blank_upper && j > i) c = " ";
            else if (isnan(v)) c = "?";
            else {
                double f = (v - lo) / (hi - lo) * nlev;
                int k = f < 0 ? 0 : f >= nlev ? nlev - 1 : (int)f;
                c = shade[k];
            }
            for (int r = 0; r < cell; r++) put(&s, "%s", c);
        }
        put(&s, "\n");
    }
    put(&s, "%*s scale: %.3g [", rw, "", lo);
    for (int k = 0; k < nlev; k++) put(&s, "%s", shade[k]);
    put(&s, "] %.3g\n", hi);
    return s.len;
}

int tp_locale_utf8(void)
{
    if (!setlocale(LC_CTYPE, "")) return 0;
    const char *cs = nl_langinfo(CODESET);
    return cs && (!strcmp(cs, "UTF-8") || !strcmp(cs, "utf8"));
}

int tp_width(const char *s)
{
    int w = 0;
    for (; *s && *s != '\n'; s++) w += ((unsigned char)*s & 0xC0) != 0x80; /* count lead bytes only */
    return w;
}

size_t tp_side_by_side(char *buf, size_t n, const char *left, const char *right, int width, int gap)
{
    sink s = {buf, n, 0};
    if (n) buf[0] = 0;
    while (*left || *right) {
        const char *le = strchr(left, '\n'), *re = strchr(right, '\n');
        int ll = le ? (int)(le - left) : (int)strlen(left), rl = re ? (int)(re - right) : (int)strlen(right);
        put(&s, "%.*s", ll, left);
        int pad = width - tp_width(left);
        if (rl) put(&s, "%*s%.*s", (pad > 0 ? pad : 0) + gap, "", rl, right);
        put(&s, "\n");
        left += ll + (le != NULL), right += rl + (re != NULL);
    }
    return s.len;
}
