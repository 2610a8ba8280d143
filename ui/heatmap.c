/* Shades and numbers for heatmap cells. */
#include "heatmap.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static const char *const kUtf8Shades[] = {" ", "\xe2\x96\x91", "\xe2\x96\x92", "\xe2\x96\x93", "\xe2\x96\x88"};
static const char kAsciiShades[] = " .:-=+*#%@";

static const char *shade(double level, int utf8, char tmp[2])
{
    if (!isfinite(level)) level = 0;
    if (level < 0) level = 0;
    if (level > 1) level = 1;
    if (utf8) return kUtf8Shades[(int)lround(level * 4)];
    tmp[0] = kAsciiShades[(int)lround(level * 9)];
    tmp[1] = 0;
    return tmp;
}

void heat_number(char *buf, size_t n, double v, int w)
{
    char t[32];
    if (!isfinite(v)) {
        snprintf(buf, n, "%*s", w, "?");
        return;
    }
    double a = fabs(v);
    if (w <= 3) {
        if (v <= -0.95) snprintf(t, sizeof t, "-1.");
        else if (v < 0) snprintf(t, sizeof t, "-.%d", (int)lround(a * 10) > 9 ? 9 : (int)lround(a * 10));
        else if (a >= 0.995) snprintf(t, sizeof t, "%.1f", a >= 9.95 ? 9.9 : a);
        else snprintf(t, sizeof t, ".%02d", (int)lround(a * 100));
    } else {
        if (v <= -0.995) snprintf(t, sizeof t, "%.1f", v <= -9.95 ? -9.9 : v);
        else if (v < 0) snprintf(t, sizeof t, "-.%02d", (int)lround(a * 100));
        else if (a >= 0.995) snprintf(t, sizeof t, "%.2f", a >= 9.995 ? 9.99 : a);
        else snprintf(t, sizeof t, ".%02d", (int)lround(a * 100));
    }
    snprintf(buf, n, "%*s", w, t);
}

void heat_cell(char *buf, size_t n, double v, double scale, int cw, int numbers, int utf8)
{
    char tmp[2], num[16];
    const char *g = shade(isfinite(v) && scale > 0 ? fabs(v) / scale : 0, utf8, tmp);
    size_t k = 0;
    buf[0] = 0;
    if (!isfinite(v)) {
        snprintf(buf, n, "%-*s", cw, "?");
        return;
    }
    if (numbers && cw >= 5) {
        /* shade, the number, a space: "▓.91 " or "▓ -.11 " */
        int nw = cw - 2 >= 4 ? 4 : 3, pad = cw - 2 - nw;
        for (int i = 0; i < pad + 1 && k + 4 < n; i++) k += snprintf(buf + k, n - k, "%s", g);
        heat_number(num, sizeof num, v, nw);
        snprintf(buf + k, n - k, "%s ", num);
        return;
    }
    for (int i = 0; i < cw && k + 4 < n; i++) k += snprintf(buf + k, n - k, "%s", g);
}

void heat_legend(char *buf, size_t n, double scale, int utf8)
{
    char s[32] = "";
    if (scale != 1) snprintf(s, sizeof s, " / %.3g", scale);
    if (utf8)
        snprintf(buf, n, "|v|%s: %s .25 %s .5 %s .75 %s 1", s, kUtf8Shades[1], kUtf8Shades[2], kUtf8Shades[3],
                 kUtf8Shades[4]);
    else snprintf(buf, n, "|v|%s: \"%s\" = 0 .. 1", s, kAsciiShades);
}
