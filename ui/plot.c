/* Braille and ASCII line plots. A braille cell is U+2800 + a mask of its
 * 2 x 4 dots; dot (col, row) has bit kBits[col][row]. */
#include "plot.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const unsigned char kBits[2][4] = {{0x01, 0x02, 0x04, 0x40}, {0x08, 0x10, 0x20, 0x80}};

int plot_init(plot_canvas *c, int w, int h, int utf8)
{
    memset(c, 0, sizeof *c);
    if (w < 1) w = 1;
    if (h < 1) h = 1;
    c->w = w, c->h = h, c->utf8 = utf8;
    c->dw = utf8 ? 2 * w : w;
    c->dh = utf8 ? 4 * h : h;
    c->mask = calloc((size_t)w * h, 1);
    c->color = calloc((size_t)w * h, sizeof *c->color);
    if (!c->mask || !c->color) {
        plot_free(c);
        return -1;
    }
    return 0;
}

void plot_free(plot_canvas *c)
{
    free(c->mask);
    free(c->color);
    c->mask = NULL;
    c->color = NULL;
}

char plot_ascii_glyph(plot_style style) { return style == PLOT_DASHED ? '.' : '*'; }

static void dot(plot_canvas *c, int x, int y, plot_style style, short color)
{
    if (x < 0 || y < 0 || x >= c->dw || y >= c->dh) return;
    size_t cell;
    if (c->utf8) {
        cell = (size_t)(y / 4) * c->w + x / 2;
        c->mask[cell] |= kBits[x % 2][y % 4];
    } else {
        cell = (size_t)y * c->w + x;
        /* a solid line wins over a dashed one in a shared cell */
        if (c->mask[cell] != (unsigned char)plot_ascii_glyph(PLOT_SOLID))
            c->mask[cell] = (unsigned char)plot_ascii_glyph(style);
    }
    c->color[cell] = color;
}

/* Bresenham from (x0, y0) to (x1, y1); dashed lines keep 3 dots of every 5
 * counted along the path, so steep parts stay dashed too. */
static void line(plot_canvas *c, int x0, int y0, int x1, int y1, plot_style style, short color, int *phase)
{
    int dx = abs(x1 - x0), sx = x0 < x1 ? 1 : -1;
    int dy = -abs(y1 - y0), sy = y0 < y1 ? 1 : -1;
    int e = dx + dy;
    for (;;) {
        if (style == PLOT_SOLID || !c->utf8 || *phase % 5 < 3) dot(c, x0, y0, style, color);
        ++*phase;
        if (x0 == x1 && y0 == y1) break;
        int e2 = 2 * e;
        if (e2 >= dy) e += dy, x0 += sx;
        if (e2 <= dx) e += dx, y0 += sy;
    }
}

void plot_series(plot_canvas *c, const double *x, const double *y, int n, double x0, double x1, double y0,
                 double y1, plot_style style, short color, int *end_cx, int *end_cy)
{
    int have = 0, px = 0, py = 0, phase = 0;
    if (end_cx) *end_cx = -1;
    if (end_cy) *end_cy = -1;
    double xs = x1 > x0 ? (c->dw - 1) / (x1 - x0) : 0, ys = y1 > y0 ? (c->dh - 1) / (y1 - y0) : 0;
    for (int i = 0; i < n; i++) {
        if (!isfinite(x[i]) || !isfinite(y[i])) {
            have = 0;
            continue;
        }
        double fy = y[i] < y0 ? y0 : y[i] > y1 ? y1 : y[i];
        int qx = (int)lround((x[i] - x0) * xs), qy = (int)lround((y1 - fy) * ys);
        if (have) line(c, px, py, qx, qy, style, color, &phase);
        else dot(c, qx, qy, style, color);
        have = 1, px = qx, py = qy;
        if (end_cx) *end_cx = c->utf8 ? qx / 2 : qx;
        if (end_cy) *end_cy = c->utf8 ? qy / 4 : qy;
    }
}

const char *plot_cell(const plot_canvas *c, int cx, int cy, char buf[8])
{
    buf[0] = 0;
    if (cx < 0 || cy < 0 || cx >= c->w || cy >= c->h) return buf;
    unsigned m = c->mask[(size_t)cy * c->w + cx];
    if (!m) return buf;
    if (!c->utf8) {
        buf[0] = (char)m, buf[1] = 0;
        return buf;
    }
    unsigned cp = 0x2800 + m; /* three UTF-8 bytes: E2 A0..A3 80..BF */
    buf[0] = (char)(0xE0 | (cp >> 12));
    buf[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    buf[2] = (char)(0x80 | (cp & 0x3F));
    buf[3] = 0;
    return buf;
}

short plot_cell_color(const plot_canvas *c, int cx, int cy)
{
    if (cx < 0 || cy < 0 || cx >= c->w || cy >= c->h) return 0;
    return c->color[(size_t)cy * c->w + cx];
}

void plot_fmt_value(double v, char *buf, int n)
{
    double a = fabs(v);
    if (!isfinite(v)) snprintf(buf, n, "%s", isnan(v) ? "nan" : v > 0 ? "inf" : "-inf");
    else if (a >= 9999.5) snprintf(buf, n, "%.0fk", v / 1000);
    else if (a >= 99.95) snprintf(buf, n, "%.0f", v);
    else if (a >= 9.995) snprintf(buf, n, "%.1f", v);
    else if (a >= 0.9995 || a == 0) snprintf(buf, n, "%.2f", v);
    else {
        /* .042 rather than 0.04: three significant places in 4 characters */
        char t[16];
        snprintf(t, sizeof t, "%.3f", a);
        snprintf(buf, n, "%s%s", v < 0 ? "-" : "", t + 1);
    }
}
