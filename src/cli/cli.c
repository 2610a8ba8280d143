/* Helpers shared by the achilles subcommands. */
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

int cli_usage_error(const char *help, const char *fmt, const char *arg)
{
    fprintf(stderr, "achilles: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n\n%s", help);
    return CLI_EXIT_USAGE;
}

int cli_parse_int(const char *s, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || end == s || v < -2147483647L || v > 2147483647L) return -1;
    *out = (int)v;
    return 0;
}

int cli_parse_double(const char *s, double *out)
{
    char *end;
    errno = 0;
    *out = strtod(s, &end);
    return errno || *end || end == s ? -1 : 0;
}

