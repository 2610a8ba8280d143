/* Minimal TAP producer for C tests run by prove. */
#ifndef ACH_TAP_H
#define ACH_TAP_H
#include <math.h>
#include <stdarg.h>
#include <stdio.h>

static int tap_n, tap_failed;

static inline int ok(int cond, const char *fmt, ...)
{
    va_list ap;
    printf("%sok %d - ", cond ? "" : "not ", ++tap_n);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    if (!cond) tap_failed++;
    fflush(stdout);
    return cond;
}

/* |got - want| <= atol + rtol * |want| */
static inline int is_close(double got, double want, double atol, double rtol, const char *what)
{
    int c = fabs(got - want) <= atol + rtol * fabs(want);
    ok(c, "%s", what);
    if (!c) printf("#   got %.9g, want %.9g\n", got, want);
    return c;
}

static inline void diag(const char *fmt, ...)
{
    va_list ap;
    printf("# ");
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
}

static inline int done_testing(void)
{
    printf("1..%d\n", tap_n);
    return tap_failed ? 1 : 0;
}
#endif
