/* Reading a task preset's fields: the checks every kind's parser shares. */
#include "preset_json.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int preset_fail(preset_ctx *c, const char *field, const char *fmt, ...)
{
    char why[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    snprintf(c->err, c->errlen, "%s: field '%s': %s", c->where, field, why);
    return -1;
}

int preset_keys(preset_ctx *c, const cJSON *o, const char *path, const char *const *allowed)
{
    for (const cJSON *it = o->child; it; it = it->next) {
        char f[200];
        snprintf(f, sizeof f, "%s%s%s", path, *path ? "." : "", it->string);
        int known = 0;
        for (const char *const *a = allowed; *a; a++) known |= !strcmp(*a, it->string);
        if (!known) {
            snprintf(c->err, c->errlen, "%s: unknown field '%s'", c->where, f);
            return -1;
        }
        for (const cJSON *p = o->child; p != it; p = p->next)
            if (!strcmp(p->string, it->string)) {
                snprintf(c->err, c->errlen, "%s: field '%s' appears twice", c->where, f);
                return -1;
            }
    }
    return 0;
}

const cJSON *preset_member(const cJSON *o, const char *key) { return cJSON_GetObjectItemCaseSensitive(o, key); }

int preset_object(preset_ctx *c, const cJSON *v, const char *field)
{
    if (!v) return preset_fail(c, field, "missing");
    if (!cJSON_IsObject(v)) return preset_fail(c, field, "expected an object");
    return 0;
}

int preset_ll(preset_ctx *c, const cJSON *v, const char *field, long long lo, long long hi, long long *out)
{
    if (!v) return preset_fail(c, field, "missing");
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || fabs(v->valuedouble) > 9e15)
        return preset_fail(c, field, "expected an integer");
    long long x = (long long)v->valuedouble;
    if (x < lo || x > hi) return preset_fail(c, field, "%lld is out of range [%lld, %lld]", x, lo, hi);
    *out = x;
    return 0;
}

int preset_int(preset_ctx *c, const cJSON *v, const char *field, int lo, int hi, int *out)
{
    long long x;
    if (preset_ll(c, v, field, lo, hi, &x)) return -1;
    *out = (int)x;
    return 0;
}

int preset_string(preset_ctx *c, const cJSON *v, const char *field, const char **out)
{
    if (!v) return preset_fail(c, field, "missing");
    if (!cJSON_IsString(v)) return preset_fail(c, field, "expected a string");
    *out = v->valuestring;
    return 0;
}

int preset_enum(preset_ctx *c, const cJSON *v, const char *field, const char *const *words, int *out)
{
    const char *s = NULL;
    if (preset_string(c, v, field, &s)) return -1;
    char list[200] = "";
    for (int i = 0; words[i]; i++) {
        if (!strcmp(s, words[i])) {
            *out = i;
            return 0;
        }
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s'%s'", i ? ", " : "", words[i]);
    }
    return preset_fail(c, field, "'%s' is not one of %s", s, list);
}

int preset_bool(preset_ctx *c, const cJSON *v, const char *field, int *out)
{
    if (!v) return 0;
    if (!cJSON_IsBool(v)) return preset_fail(c, field, "expected true or false");
    *out = cJSON_IsTrue(v);
    return 0;
}

int preset_double(preset_ctx *c, const cJSON *v, const char *field, double lo, double hi, double *out)
{
    if (!v) return preset_fail(c, field, "missing");
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble)) return preset_fail(c, field, "expected a number");
    if (v->valuedouble < lo || v->valuedouble > hi)
        return preset_fail(c, field, "%g is out of range [%g, %g]", v->valuedouble, lo, hi);
    *out = v->valuedouble;
    return 0;
}

int preset_name_description(preset_ctx *c, ach_task *t, const cJSON *o)
{
    const char *s = NULL;
    if (preset_string(c, preset_member(o, "name"), "name", &s)) return -1;
    if (!*s || strlen(s) >= sizeof t->name) return preset_fail(c, "name", "expected 1 to %zu characters", sizeof t->name - 1);
    snprintf(t->name, sizeof t->name, "%s", s);
    if (preset_string(c, preset_member(o, "description"), "description", &s)) return -1;
    if (!(t->description = strdup(s))) return preset_fail(c, "description", "out of memory");
    return 0;
}
