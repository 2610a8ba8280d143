/* The fuzz input as a NUL-terminated string (malloc'ed; the caller frees
 * it): the parsers read C strings, libFuzzer gives bytes. */
#ifndef ACH_FUZZ_TEXT_H
#define ACH_FUZZ_TEXT_H
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static char *fuzz_text(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s) abort();
    memcpy(s, data, size);
    s[size] = 0;
    return s;
}
#endif
