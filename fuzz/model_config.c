/* Fuzz target: a model config as JSON (mamba_ssm's MambaConfig form), read
 * by cfg_from_json as checkpoints' __metadata__ "config" is, and by
 * cfg_from_mamba_json as a config.json beside a checkpoint is. A config that
 * reads must write back (cfg_to_json) to JSON that reads again to the same
 * config. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_text.h"
#include "config.h"

static void round_trip(const ach_config *c)
{
    char err[1024];
    ach_config back;
    char *out = cfg_to_json(c);
    cfg_default(&back, ARCH_MAMBA1);
    if (!out || cfg_from_json(&back, out, "round trip", err, sizeof err)) abort();
    char *again = cfg_to_json(&back);
    if (!again || strcmp(out, again)) abort();
    free(out);
    free(again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *json = fuzz_text(data, size), err[1024];
    ach_config c;
    cfg_default(&c, ARCH_MAMBA2);
    if (!cfg_from_json(&c, json, "fuzz", err, sizeof err)) round_trip(&c);
    if (!cfg_from_mamba_json(&c, json, "fuzz", err, sizeof err)) round_trip(&c);
    free(json);
    return 0;
}
