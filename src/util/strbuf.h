/* A growable NUL-terminated string for building reports, manifests and
 * figures. Running out of memory is sticky: later appends do nothing and
 * sb_take returns NULL, so callers check once at the end. */
#ifndef ACH_STRBUF_H
#define ACH_STRBUF_H
#include <stddef.h>

typedef struct {
    char *s;          /* "" until the first append; owned */
    size_t len, cap;
    int oom;
} strbuf;

#if defined(__GNUC__)
#define SB_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define SB_PRINTF(a, b)
#endif

void sb_printf(strbuf *b, const char *fmt, ...) SB_PRINTF(2, 3);
void sb_puts(strbuf *b, const char *s);
/* s with XML's five special characters escaped. */
void sb_xml(strbuf *b, const char *s);
/* The text (caller frees), or NULL after an allocation failure; b is reset. */
char *sb_take(strbuf *b);
void sb_free(strbuf *b);

/* The shortest %g text (15 to 17 digits) that reads back as exactly v. */
void fmt_double_exact(char *buf, size_t n, double v);
#endif
