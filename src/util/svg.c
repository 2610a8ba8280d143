/* SVG figures (svg.h). Plain SVG 1.1 elements only, so any browser and
 * xmllint read them. */
#include "svg.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static const char *const font = "font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\"";

void svg_begin(strbuf *b, int width, int height, const char *title)
{
    sb_printf(b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    sb_printf(b, "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"%d\" height=\"%d\" "
                 "viewBox=\"0 0 %d %d\">\n<title>", width, height, width, height);
    sb_xml(b, title);
    sb_printf(b, "</title>\n<rect x=\"0\" y=\"0\" width=\"%d\" height=\"%d\" fill=\"#ffffff\"/>\n", width, height);
}

void svg_end(strbuf *b) { sb_puts(b, "</svg>\n"); }

void svg_text(strbuf *b, double x, double y, int size, const char *anchor, const char *weight, const char *text)
{
    sb_printf(b, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"%d\" text-anchor=\"%s\" %s", x, y, size, anchor, font);
    if (weight) sb_printf(b, " font-weight=\"%s\"", weight);
    sb_puts(b, ">");
    sb_xml(b, text);
    sb_puts(b, "</text>\n");
}

/* Viridis at nine points, linearly interpolated. */
static const unsigned char viridis[9][3] = {
    {68, 1, 84},    {71, 44, 122},  {59, 81, 139},  {44, 113, 142}, {33, 144, 141},
    {39, 173, 129}, {92, 200, 99},  {170, 220, 50}, {253, 231, 37},
};

static double unit(double v, double lo, double hi)
{
    double f = hi > lo ? (v - lo) / (hi - lo) : 0;
    return f < 0 ? 0 : f > 1 ? 1 : f;
}

void svg_color(double v, double lo, double hi, char out[8])
{
    if (isnan(v)) {
        snprintf(out, 8, "#dddddd");
        return;
    }
    double f = unit(v, lo, hi) * 8;
    int i = f >= 8 ? 7 : (int)f;
    double t = f - i;
    int c[3];
    for (int k = 0; k < 3; k++) c[k] = (int)lround(viridis[i][k] + t * (viridis[i + 1][k] - viridis[i][k]));
    snprintf(out, 8, "#%02x%02x%02x", c[0] & 255, c[1] & 255, c[2] & 255);
}

int svg_dark_text(double v, double lo, double hi) { return isnan(v) || unit(v, lo, hi) > 0.6; }

/* Margins of a heatmap panel: room for the title, tick labels and axis labels. */
#define HM_LEFT 62.0
#define HM_TOP 30.0
#define HM_BOTTOM 44.0

void svg_heatmap_size(const svg_heatmap *h, double cw, double ch, double *w, double *hgt)
{
    *w = HM_LEFT + h->cols * cw + 8;
    *hgt = HM_TOP + h->rows * ch + HM_BOTTOM;
}

void svg_heatmap_panel(strbuf *b, double x, double y, double cw, double ch, const svg_heatmap *h)
{
    double x0 = x + HM_LEFT, y0 = y + HM_TOP, W = h->cols * cw, H = h->rows * ch;
    sb_puts(b, "<g>\n");
    svg_text(b, x0 + W / 2, y + 18, 14, "middle", "bold", h->title);
    for (int i = 0; i < h->rows; i++)
        for (int j = 0; j < h->cols; j++) {
            double v = h->value[i * h->cols + j];
            char col[8], num[32];
            svg_color(v, h->lo, h->hi, col);
            double cx = x0 + j * cw, cy = y0 + i * ch;
            sb_printf(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\" stroke=\"#ffffff\" "
                         "stroke-width=\"1\"/>\n", cx, cy, cw, ch, col);
            const char *ink = svg_dark_text(v, h->lo, h->hi) ? "#000000" : "#ffffff";
            if (isnan(v)) snprintf(num, sizeof num, "no runs");
            else snprintf(num, sizeof num, "%.2f", v);
            int lines = 1 + (h->line2 != NULL) + (h->line3 != NULL);
            double ty = cy + ch / 2 - (lines - 1) * 6.5 + 4;
            sb_printf(b, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"%d\" text-anchor=\"middle\" fill=\"%s\" %s>", cx + cw / 2,
                      ty, isnan(v) ? 10 : 13, ink, font);
            sb_xml(b, num);
            sb_puts(b, "</text>\n");
            const char *const *extra[2] = {h->line2, h->line3};
            for (int k = 0; k < 2; k++) {
                if (!extra[k] || !extra[k][i * h->cols + j] || !extra[k][i * h->cols + j][0]) continue;
                ty += 13;
                sb_printf(b, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"9\" text-anchor=\"middle\" fill=\"%s\" %s>",
                          cx + cw / 2, ty, ink, font);
                sb_xml(b, extra[k][i * h->cols + j]);
                sb_puts(b, "</text>\n");
            }
        }
    sb_printf(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"#333333\"/>\n", x0,
              y0, W, H);
    for (int i = 0; i < h->rows; i++) svg_text(b, x0 - 6, y0 + (i + 0.5) * ch + 4, 11, "end", NULL, h->row_labels[i]);
    for (int j = 0; j < h->cols; j++) svg_text(b, x0 + (j + 0.5) * cw, y0 + H + 15, 11, "middle", NULL, h->col_labels[j]);
    svg_text(b, x0 + W / 2, y0 + H + 34, 12, "middle", NULL, h->xlabel);
    sb_printf(b, "<text x=\"0\" y=\"0\" font-size=\"12\" text-anchor=\"middle\" %s transform=\"translate(%.1f %.1f) "
                 "rotate(-90)\">", font, x + 14, y0 + H / 2);
    sb_xml(b, h->ylabel);
    sb_puts(b, "</text>\n</g>\n");
}

void svg_colorbar(strbuf *b, double x, double y, double w, double h, double lo, double hi, const char *label)
{
    /* a gradient through the scale's nine points; the id is unique per position */
    char id[48];
    snprintf(id, sizeof id, "cbar_%d_%d", (int)x, (int)y);
    sb_printf(b, "<g>\n<defs><linearGradient id=\"%s\" x1=\"0\" y1=\"1\" x2=\"0\" y2=\"0\">\n", id);
    for (int k = 0; k <= 8; k++) {
        char col[8];
        svg_color(lo + (hi - lo) * k / 8, lo, hi, col);
        sb_printf(b, "<stop offset=\"%.3f\" stop-color=\"%s\"/>\n", k / 8.0, col);
    }
    sb_printf(b, "</linearGradient></defs>\n<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
                 "fill=\"url(#%s)\" stroke=\"#333333\"/>\n", x, y, w, h, id);
    for (int t = 0; t <= 4; t++) {
        double v = lo + (hi - lo) * t / 4, ty = y + h - h * t / 4;
        char s[32];
        snprintf(s, sizeof s, "%.2g", v);
        sb_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#333333\"/>\n", x + w, ty, x + w + 4,
                  ty);
        svg_text(b, x + w + 7, ty + 4, 10, "start", NULL, s);
    }
    sb_printf(b, "<text x=\"0\" y=\"0\" font-size=\"11\" text-anchor=\"middle\" %s transform=\"translate(%.1f %.1f) "
                 "rotate(-90)\">", font, x + w + 40, y + h / 2);
    sb_xml(b, label);
    sb_puts(b, "</text>\n</g>\n");
}

/* Tableau-like categorical colours. */
static const char *const palette[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e",
                                      "#9467bd", "#8c564b", "#e377c2", "#17becf"};

double svg_legend_height(int n) { return 18.0 * ((n + 1) / 2) + 8; }

void svg_linechart(strbuf *b, double x, double y, double w, double h, const char *title, const char *xlabel,
                   const char *ylabel, double xmax, const svg_series *s, int ns)
{
    double px = x + 52, py = y + 28, pw = w - 64, ph = h - 28 - 42;
    if (!(xmax > 0)) xmax = 1;
    sb_puts(b, "<g>\n");
    svg_text(b, px + pw / 2, y + 18, 14, "middle", "bold", title);
    for (int t = 0; t <= 4; t++) { /* y grid at 0, .25, ..., 1 */
        double ty = py + ph - ph * t / 4;
        char lab[16];
        snprintf(lab, sizeof lab, "%.2g", t / 4.0);
        sb_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e0e0e0\"/>\n", px, ty, px + pw, ty);
        svg_text(b, px - 6, ty + 4, 10, "end", NULL, lab);
    }
    double step = pow(10, floor(log10(xmax / 2)));
    if (xmax / step > 10) step *= xmax / step > 20 ? 5 : 2;
    if (step < 1) step = 1;
    for (double v = 0; v <= xmax + 1e-9; v += step) {
        double tx = px + pw * v / xmax;
        char lab[32];
        snprintf(lab, sizeof lab, "%g", v);
        sb_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#333333\"/>\n", tx, py + ph, tx,
                  py + ph + 4);
        svg_text(b, tx, py + ph + 16, 10, "middle", NULL, lab);
    }
    sb_printf(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"#333333\"/>\n", px,
              py, pw, ph);
    svg_text(b, px + pw / 2, py + ph + 34, 12, "middle", NULL, xlabel);
    sb_printf(b, "<text x=\"0\" y=\"0\" font-size=\"12\" text-anchor=\"middle\" %s transform=\"translate(%.1f %.1f) "
                 "rotate(-90)\">", font, x + 14, py + ph / 2);
    sb_xml(b, ylabel);
    sb_puts(b, "</text>\n");
    for (int k = 0; k < ns; k++) {
        const char *col = palette[s[k].color % 8];
        int open = 0;
        for (int i = 0; i < s[k].n; i++) {
            double v = s[k].y[i];
            if (isnan(v) || isnan(s[k].x[i])) {
                if (open) sb_puts(b, "\"/>\n"), open = 0;
                continue;
            }
            if (!open) {
                sb_printf(b, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.8\"%s points=\"", col,
                          s[k].dashed ? " stroke-dasharray=\"6 3\"" : "");
                open = 1;
            }
            double vx = s[k].x[i] > xmax ? xmax : s[k].x[i], vy = v < 0 ? 0 : v > 1 ? 1 : v;
            sb_printf(b, "%.1f,%.1f ", px + pw * vx / xmax, py + ph - ph * vy);
        }
        if (open) sb_puts(b, "\"/>\n");
        /* legend: two columns under the plot */
        double lx = px + (k % 2) * pw / 2, ly = py + ph + 50 + 18 * (k / 2);
        sb_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"2\"%s/>\n", lx,
                  ly - 4, lx + 24, ly - 4, col, s[k].dashed ? " stroke-dasharray=\"6 3\"" : "");
        svg_text(b, lx + 30, ly, 11, "start", NULL, s[k].label);
    }
    sb_puts(b, "</g>\n");
}
