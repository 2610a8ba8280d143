/* Heatmap cells as text: a shade for |value| / scale (" ░▒▓█" in UTF-8,
 * " .:-=+*#%@" in ASCII) and, when the cell is wide enough, the number.
 * Pure, so tests read them; the screen colours them by sign. */
#ifndef TUI_HEATMAP_H
#define TUI_HEATMAP_H
#include <stddef.h>

/* The text of one cell of width cw columns into buf (always cw columns). */
void heat_cell(char *buf, size_t n, double v, double scale, int cw, int numbers, int utf8);
/* "shade |v|: ░ .25 ▒ .5 ▓ .75 █ 1" for a scale. */
void heat_legend(char *buf, size_t n, double scale, int utf8);
/* v in exactly w (3 or 4) characters: "1.0", ".91", "-.1"; "1.00", " .91", "-.11". */
void heat_number(char *buf, size_t n, double v, int w);
#endif
