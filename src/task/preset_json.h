/* Reading a task preset's JSON fields, for every kind's parser: each check
 * fails with "<file>: field '<path>': <problem>" (or "unknown field",
 * "appears twice"), so a bad preset names the file, the field and the
 * problem whatever its kind. */
#ifndef ACH_PRESET_JSON_H
#define ACH_PRESET_JSON_H
#include <stddef.h>

#include "task.h"

struct cJSON;

/* Where messages go. */
typedef struct {
    const char *where; /* the file */
    char *err;
    size_t errlen;
} preset_ctx;

/* Writes the message; returns -1. */
int preset_fail(preset_ctx *c, const char *field, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Rejects unknown and repeated keys of o (path: its field, "" at the top),
 * so a typo never silently means "default". */
int preset_keys(preset_ctx *c, const struct cJSON *o, const char *path, const char *const *allowed);
const struct cJSON *preset_member(const struct cJSON *o, const char *key);
/* Each reads a present field of its type (missing: an error), in range. */
int preset_object(preset_ctx *c, const struct cJSON *v, const char *field);
int preset_ll(preset_ctx *c, const struct cJSON *v, const char *field, long long lo, long long hi, long long *out);
int preset_int(preset_ctx *c, const struct cJSON *v, const char *field, int lo, int hi, int *out);
/* A finite number in [lo, hi]. */
int preset_double(preset_ctx *c, const struct cJSON *v, const char *field, double lo, double hi, double *out);
int preset_string(preset_ctx *c, const struct cJSON *v, const char *field, const char **out);
/* One of the NULL-terminated words; its index in *out. */
int preset_enum(preset_ctx *c, const struct cJSON *v, const char *field, const char *const *words, int *out);
/* Optional: absent leaves *out as it is. */
int preset_bool(preset_ctx *c, const struct cJSON *v, const char *field, int *out);
/* The fields every kind has: "name" (into t->name) and "description"
 * (t->description, malloc'd). */
int preset_name_description(preset_ctx *c, ach_task *t, const struct cJSON *o);
#endif
