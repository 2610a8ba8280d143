/* Fuzz target: a sweep's SPEC.json ({"name", "base", "grid"}), read by
 * sweep_parse_spec as `achilles sweep SPEC.json` does; a plan of at most 64
 * runs is then expanded (each run's whole config checked, its preset read)
 * and written out as its manifest text, in memory. Bigger grids (up to
 * 100000 runs) only repeat that work. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_text.h"
#include "sweep.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *json = fuzz_text(data, size), err[1024];
    ach_sweep s;
    sweep_init(&s);
    snprintf(s.dir, sizeof s.dir, "/nonexistent/achilles-fuzz/sweep");
    if (!sweep_parse_spec(&s, json, "fuzz.json", err, sizeof err)) {
        long runs = 1;
        for (int i = 0; i < s.naxes && runs <= 64; i++) runs *= s.axes[i].nvals;
        if (runs <= 64 && !sweep_expand(&s, err, sizeof err)) free(sweep_manifest_json(&s));
    }
    sweep_free(&s);
    free(json);
    return 0;
}
