/* Fuzz target: a run config as JSON, read by runcfg_from_json as
 * `achilles train --config FILE`, a run directory's config.json and a sweep's
 * SPEC.json base are; then runcfg_validate. A config that reads must write
 * back (runcfg_to_json) to JSON that reads again to the same settings. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_text.h"
#include "runcfg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *json = fuzz_text(data, size), err[1024];
    ach_runcfg c, back;
    runcfg_defaults(&c);
    if (!runcfg_from_json(&c, json, "fuzz", err, sizeof err)) {
        runcfg_validate(&c, err, sizeof err);
        char *out = runcfg_to_json(&c);
        runcfg_defaults(&back);
        if (!out || runcfg_from_json(&back, out, "round trip", err, sizeof err)) abort();
        char *again = runcfg_to_json(&back);
        if (!again || strcmp(out, again)) abort();
        free(out);
        free(again);
    }
    free(json);
    return 0;
}
