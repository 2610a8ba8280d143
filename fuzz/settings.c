/* Fuzz target: key=value run settings, one per line, applied in order by
 * runcfg_assign as `achilles train key=value ...` and the workbench's `new`
 * do, then runcfg_validate; each line also goes to sweep_parse_arg, as an
 * `achilles sweep` word (key=v1,v2,... makes a grid axis). Whatever was set
 * must read back: every key's value as runcfg_get prints it sets again to
 * the same text. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_text.h"
#include "runcfg.h"
#include "sweep.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fuzz_text(data, size), err[1024];
    ach_runcfg c;
    ach_sweep sw;
    runcfg_defaults(&c);
    sweep_init(&sw);
    for (char *line = text, *next; line; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = 0;
        runcfg_assign(&c, line, err, sizeof err);
        sweep_parse_arg(&sw, line, err, sizeof err);
    }
    sweep_free(&sw);
    runcfg_validate(&c, err, sizeof err);
    for (int i = 0; i < runcfg_nkeys(); i++) {
        char v[300], again[300];
        ach_runcfg back = c;
        runcfg_get(&c, i, v, sizeof v);
        if (runcfg_set(&back, runcfg_key_name(i), v, "round trip", err, sizeof err)) abort();
        runcfg_get(&back, i, again, sizeof again);
        if (strcmp(v, again)) abort();
    }
    free(text);
    return 0;
}
