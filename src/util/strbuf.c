/* Growable strings with printf-style appends. */
#include "strbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int grow(strbuf *b, size_t need)
{
    if (b->oom) return -1;
    if (b->len + need + 1 <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + need + 1) cap *= 2;
    char *s = realloc(b->s, cap);
    if (!s) {
        b->oom = 1;
        return -1;
    }
    b->s = s, b->cap = cap;
    return 0;
}

void sb_printf(strbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || grow(b, (size_t)n)) return;
    va_start(ap, fmt);
    vsnprintf(b->s + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void sb_puts(strbuf *b, const char *s)
{
    size_t n = strlen(s);
    if (grow(b, n)) return;
    memcpy(b->s + b->len, s, n + 1);
    b->len += n;
}

void sb_xml(strbuf *b, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '<': sb_puts(b, "&lt;"); break;
        case '>': sb_puts(b, "&gt;"); break;
        case '&': sb_puts(b, "&amp;"); break;
        case '"': sb_puts(b, "&quot;"); break;
        case '\'': sb_puts(b, "&apos;"); break;
        default: {
            char c[2] = {*s, 0};
            sb_puts(b, c);
        }
        }
    }
}

char *sb_take(strbuf *b)
{
    char *s = b->oom ? NULL : b->s ? b->s : calloc(1, 1);
    if (b->oom) free(b->s);
    b->s = NULL, b->len = b->cap = 0, b->oom = 0;
    return s;
}

void sb_free(strbuf *b)
{
    free(b->s);
    b->s = NULL, b->len = b->cap = 0, b->oom = 0;
}

void fmt_double_exact(char *buf, size_t n, double v)
{
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, n, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) return;
    }
}
