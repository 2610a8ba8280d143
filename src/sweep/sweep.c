/* Sweeps: grid expansion, manifests, run states and locks (sweep.h). */
#define _DEFAULT_SOURCE /* flock */
#include "sweep.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsutil.h"
#include "kind.h"
#include "strbuf.h"
#include "task.h"

/* Beyond this a grid is a typo, not a plan (the paper's is 216 runs). */
#define SWEEP_MAX_RUNS 100000
#define MANIFEST_MAX (64u << 20)

/* Keys whose values are comma lists themselves: their alternatives on the
 * command line are separated by ';'. */
static const char *const list_keys[] = {"block", "block_layers", "gamma_tensors", "no_decay"};

void sweep_init(ach_sweep *s) { memset(s, 0, sizeof *s); }

static void free_kv(sweep_kv *kv, int n)
{
    for (int i = 0; i < n; i++) free(kv[i].key), free(kv[i].val);
    free(kv);
}

void sweep_free(ach_sweep *s)
{
    free_kv(s->base, s->nbase);
    for (int i = 0; i < s->naxes; i++) {
        for (int j = 0; j < s->axes[i].nvals; j++) free(s->axes[i].vals[j]);
        free(s->axes[i].vals);
        free(s->axes[i].key);
    }
    free(s->axes);
    for (int i = 0; i < s->nruns; i++) free_kv(s->runs[i].set, s->runs[i].nset);
    free(s->runs);
    memset(s, 0, sizeof *s);
}

static int oom(char *err, size_t errlen)
{
    snprintf(err, errlen, "out of memory");
    return -1;
}

/* A value is checked by setting it on a scratch configuration: the same
 * parser and the same messages as achilles train. */
static int check_value(const char *key, const char *val, const char *where, char *err, size_t errlen)
{
    ach_runcfg tmp;
    runcfg_defaults(&tmp);
    return runcfg_set(&tmp, key, val, where, err, errlen);
}

static int key_taken(const ach_sweep *s, const char *key, const char *where, char *err, size_t errlen)
{
    int dup = 0;
    for (int i = 0; i < s->nbase; i++) dup |= !strcmp(s->base[i].key, key);
    for (int i = 0; i < s->naxes; i++) dup |= !strcmp(s->axes[i].key, key);
    if (dup) snprintf(err, errlen, "%s: key '%s' is given twice", where, key);
    return dup ? -1 : 0;
}

/* A preset given as a relative path is stored absolute: the runs start
 * from wherever the sweep is continued (another shell, a Slurm node). */
static const char *preset_path(const char *key, const char *val, char *buf, size_t n)
{
    size_t len = strlen(val);
    int path = strchr(val, '/') || (len > 5 && !strcmp(val + len - 5, ".json"));
    char abs[PATH_MAX];
    if (strcmp(key, "preset") || !path || val[0] == '/' || !realpath(val, abs) || strlen(abs) >= n) return val;
    snprintf(buf, n, "%s", abs);
    return buf;
}

int sweep_add_base(ach_sweep *s, const char *key, const char *val, const char *where, char *err, size_t errlen)
{
    char abs[256];
    val = preset_path(key, val, abs, sizeof abs);
    if (key_taken(s, key, where, err, errlen) || check_value(key, val, where, err, errlen)) return -1;
    sweep_kv *b = realloc(s->base, (s->nbase + 1) * sizeof *b);
    if (!b) return oom(err, errlen);
    s->base = b;
    b[s->nbase].key = strdup(key), b[s->nbase].val = strdup(val);
    if (!b[s->nbase].key || !b[s->nbase].val) return free(b[s->nbase].key), free(b[s->nbase].val), oom(err, errlen);
    s->nbase++;
    return 0;
}

static int add_axis(ach_sweep *s, const char *key, const char *const *vals, int n, const char *where, char *err,
                    size_t errlen);

int sweep_add_axis(ach_sweep *s, const char *key, char *const *vals, int n, const char *where, char *err,
                   size_t errlen)
{
    if (key_taken(s, key, where, err, errlen)) return -1;
    if (n < 1) {
        snprintf(err, errlen, "%s: key '%s': the list of values is empty", where, key);
        return -1;
    }
    char(*abs)[256] = calloc(n, sizeof *abs);
    const char **v = calloc(n, sizeof *v);
    if (!abs || !v) return free(abs), free(v), oom(err, errlen);
    for (int i = 0; i < n; i++) v[i] = preset_path(key, vals[i], abs[i], sizeof abs[i]);
    int rc = add_axis(s, key, v, n, where, err, errlen);
    free(abs), free(v);
    return rc;
}

static int add_axis(ach_sweep *s, const char *key, const char *const *vals, int n, const char *where, char *err,
                    size_t errlen)
{
    for (int i = 0; i < n; i++) {
        if (check_value(key, vals[i], where, err, errlen)) return -1;
        for (int j = 0; j < i; j++)
            if (!strcmp(vals[i], vals[j])) {
                snprintf(err, errlen, "%s: key '%s': value '%s' is listed twice", where, key, vals[i]);
                return -1;
            }
    }
    sweep_axis *a = realloc(s->axes, (s->naxes + 1) * sizeof *a);
    if (!a) return oom(err, errlen);
    s->axes = a;
    sweep_axis *ax = &a[s->naxes];
    ax->key = strdup(key);
    ax->vals = calloc(n, sizeof *ax->vals);
    ax->nvals = n;
    int bad = !ax->key || !ax->vals;
    for (int i = 0; !bad && i < n; i++) bad = !(ax->vals[i] = strdup(vals[i]));
    s->naxes++;
    return bad ? oom(err, errlen) : 0;
}

/* A JSON scalar as the text a key=value argument would carry. Numbers get
 * their shortest form that reads back the same (0.1, not 0.1000...01). */
static int json_value_text(const cJSON *v, char *buf, size_t n)
{
    if (cJSON_IsString(v)) {
        if (strlen(v->valuestring) >= n) return -1;
        snprintf(buf, n, "%s", v->valuestring);
    } else if (cJSON_IsBool(v)) snprintf(buf, n, "%s", cJSON_IsTrue(v) ? "on" : "off");
    else if (cJSON_IsNumber(v)) {
        double d = v->valuedouble;
        if (d == floor(d) && fabs(d) < 1e15) snprintf(buf, n, "%.0f", d);
        else
            for (int p = 15; p <= 17; p++) {
                snprintf(buf, n, "%.*g", p, d);
                if (strtod(buf, NULL) == d) break;
            }
    } else return -1;
    return 0;
}

int sweep_parse_spec(ach_sweep *s, const char *json, const char *where, char *err, size_t errlen)
{
    cJSON *o = cJSON_Parse(json);
    char ctx[600], val[1024];
    int rc = -1;
    if (!cJSON_IsObject(o)) {
        snprintf(err, errlen, "%s: not a JSON object%s", where, o ? "" : " (JSON syntax error)");
        goto out;
    }
    for (const cJSON *m = o->child; m; m = m->next)
        if (strcmp(m->string, "name") && strcmp(m->string, "description") && strcmp(m->string, "base") &&
            strcmp(m->string, "grid")) {
            snprintf(err, errlen, "%s: unknown field '%s' (a sweep has name, description, base and grid)", where,
                     m->string);
            goto out;
        }
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(o, "name");
    if (name) {
        if (!cJSON_IsString(name) || !name->valuestring[0] || strlen(name->valuestring) >= sizeof s->name) {
            snprintf(err, errlen, "%s: field 'name': must be a string of 1 to %zu characters", where,
                     sizeof s->name - 1);
            goto out;
        }
        snprintf(s->name, sizeof s->name, "%s", name->valuestring);
    }
    const cJSON *base = cJSON_GetObjectItemCaseSensitive(o, "base");
    if (base && !cJSON_IsObject(base)) {
        snprintf(err, errlen, "%s: field 'base': must be an object of key: value", where);
        goto out;
    }
    for (const cJSON *m = base ? base->child : NULL; m; m = m->next) {
        snprintf(ctx, sizeof ctx, "%s: base", where);
        if (json_value_text(m, val, sizeof val)) {
            snprintf(err, errlen, "%s: base.%s: must be a string, a number or a boolean", where, m->string);
            goto out;
        }
        if (sweep_add_base(s, m->string, val, ctx, err, errlen)) goto out;
    }
    const cJSON *grid = cJSON_GetObjectItemCaseSensitive(o, "grid");
    if (!cJSON_IsObject(grid)) {
        snprintf(err, errlen, "%s: field 'grid': %s", where,
                 grid ? "must be an object of key: [values]" : "missing (an object of key: [values])");
        goto out;
    }
    for (const cJSON *m = grid->child; m; m = m->next) {
        if (!cJSON_IsArray(m)) {
            snprintf(err, errlen, "%s: grid.%s: must be a list of values", where, m->string);
            goto out;
        }
        int n = cJSON_GetArraySize(m), i = 0;
        char **vals = calloc(n ? n : 1, sizeof *vals);
        if (!vals) {
            oom(err, errlen);
            goto out;
        }
        int bad = 0;
        for (const cJSON *v = m->child; v && !bad; v = v->next, i++) {
            if (json_value_text(v, val, sizeof val)) {
                snprintf(err, errlen, "%s: grid.%s[%d]: must be a string, a number or a boolean", where, m->string, i);
                bad = 1;
            } else if (!(vals[i] = strdup(val))) bad = oom(err, errlen);
        }
        snprintf(ctx, sizeof ctx, "%s: grid", where);
        if (!bad) bad = sweep_add_axis(s, m->string, vals, n, ctx, err, errlen);
        for (int j = 0; j < n; j++) free(vals[j]);
        free(vals);
        if (bad) goto out;
    }
    rc = 0;
out:
    cJSON_Delete(o);
    return rc;
}

int sweep_parse_arg(ach_sweep *s, const char *kv, char *err, size_t errlen)
{
    const char *eq = strchr(kv, '=');
    char key[64];
    if (!eq || eq == kv || (size_t)(eq - kv) >= sizeof key) {
        snprintf(err, errlen, "'%s': expected key=value or key=v1,v2,...", kv);
        return -1;
    }
    snprintf(key, sizeof key, "%.*s", (int)(eq - kv), kv);
    const char *v = eq + 1;
    if (runcfg_key_find(key) < 0) { /* the message runcfg gives, before any splitting */
        snprintf(err, errlen, "argument '%s': unknown key '%s' (see 'achilles train --help' for the keys)", kv, key);
        return -1;
    }
    char sep = ',';
    for (size_t i = 0; i < sizeof list_keys / sizeof list_keys[0]; i++)
        if (!strcmp(key, list_keys[i])) sep = ';';
    if (strchr(v, ';')) sep = ';';
    char where[128];
    snprintf(where, sizeof where, "argument '%.100s'", kv);
    if (!strchr(v, sep)) return sweep_add_base(s, key, v, where, err, errlen);
    /* a list: split, keeping empty items so "1,,2" is an error, not 1,2 */
    char *copy = strdup(v), **vals = calloc(strlen(v) + 1, sizeof *vals);
    int n = 0, rc;
    if (!copy || !vals) {
        free(copy), free(vals);
        return oom(err, errlen);
    }
    for (char *p = copy;; p++) {
        char *e = strchr(p, sep);
        if (e) *e = 0;
        vals[n++] = p;
        if (!*p) {
            snprintf(err, errlen, "%s: key '%s': an empty value in the list", where, key);
            free(copy), free(vals);
            return -1;
        }
        if (!e) break;
        p = e;
    }
    rc = sweep_add_axis(s, key, vals, n, where, err, errlen);
    free(copy), free(vals);
    return rc;
}

/* Short names for the usual axes keep directory names readable. */
static const char *key_abbrev(const char *key)
{
    if (!strcmp(key, "n_layer")) return "L";
    if (!strcmp(key, "gamma")) return "g";
    if (!strcmp(key, "seed")) return "s";
    return NULL;
}

static void run_dir_name(const sweep_run *r, char *buf, size_t n)
{
    size_t k = snprintf(buf, n, "runs/%04d", r->index);
    for (int i = 0; i < r->nset && k + 2 < n && k < 200; i++) {
        const char *ab = key_abbrev(r->set[i].key), *v = r->set[i].val;
        char part[256], pname[128];
        if (!strcmp(r->set[i].key, "preset")) { /* a preset by its file's name, not its whole path */
            const char *b = strrchr(v, '/');
            snprintf(pname, sizeof pname, "%s", b ? b + 1 : v);
            size_t len = strlen(pname);
            if (len > 5 && !strcmp(pname + len - 5, ".json")) pname[len - 5] = 0;
            v = pname;
        }
        if (ab) snprintf(part, sizeof part, "-%s%s", ab, v);
        else snprintf(part, sizeof part, "-%s=%s", r->set[i].key, v);
        for (char *p = part + 1; *p; p++) /* safe in any shell and file system */
            if (!(*p >= 'a' && *p <= 'z') && !(*p >= 'A' && *p <= 'Z') && !(*p >= '0' && *p <= '9') &&
                !strchr("._=+-", *p))
                *p = '_';
        k += snprintf(buf + k, n - k, "%s", part);
    }
    if (k >= n) buf[n - 1] = 0;
}

static int build_cfg(ach_runcfg *c, const sweep_kv *base, int nbase, const sweep_kv *set, int nset, const char *where,
                     char *err, size_t errlen)
{
    runcfg_defaults(c);
    for (int i = 0; i < nbase; i++)
        if (runcfg_set(c, base[i].key, base[i].val, where, err, errlen)) return -1;
    for (int i = 0; i < nset; i++)
        if (runcfg_set(c, set[i].key, set[i].val, where, err, errlen)) return -1;
    return 0;
}

void sweep_run_label(const sweep_run *r, char *buf, size_t n)
{
    size_t k = 0;
    buf[0] = 0;
    for (int i = 0; i < r->nset && k < n; i++)
        k += snprintf(buf + k, n - k, "%s%s=%s", i ? " " : "", r->set[i].key, r->set[i].val);
    if (!r->nset) snprintf(buf, n, "(no settings)");
}

static void set_path(const ach_sweep *s, sweep_run *r)
{
    if (!strcmp(r->rel, ".")) snprintf(r->dir, sizeof r->dir, "%s", s->dir);
    else snprintf(r->dir, sizeof r->dir, "%.3500s/%.500s", s->dir, r->rel);
}

int sweep_expand(ach_sweep *s, char *err, size_t errlen)
{
    long total = 1;
    for (int i = 0; i < s->naxes; i++) {
        total *= s->axes[i].nvals;
        if (total > SWEEP_MAX_RUNS) {
            snprintf(err, errlen, "the grid has more than %d runs", SWEEP_MAX_RUNS);
            return -1;
        }
    }
    if (!s->naxes) {
        snprintf(err, errlen, "no grid: give at least one key with a list of values (key=v1,v2,...)");
        return -1;
    }
    if (!s->name[0]) {
        const char *b = strrchr(s->dir, '/');
        snprintf(s->name, sizeof s->name, "%.127s", b && b[1] ? b + 1 : s->dir);
    }
    s->runs = calloc(total, sizeof *s->runs);
    if (!s->runs) return oom(err, errlen);
    for (long i = 0; i < total; i++) {
        sweep_run *r = &s->runs[i];
        r->index = (int)i;
        r->set = calloc(s->naxes, sizeof *r->set);
        if (!r->set) return oom(err, errlen);
        s->nruns++;
        long rest = i;
        for (int a = s->naxes - 1; a >= 0; a--) { /* the last key varies fastest */
            const sweep_axis *ax = &s->axes[a];
            r->set[a].key = strdup(ax->key);
            r->set[a].val = strdup(ax->vals[rest % ax->nvals]);
            rest /= ax->nvals;
            if (!r->set[a].key || !r->set[a].val) return oom(err, errlen);
        }
        r->nset = s->naxes;
        char label[1024], where[1200];
        sweep_run_label(r, label, sizeof label);
        snprintf(where, sizeof where, "run %ld (%s)", i, label);
        if (build_cfg(&r->cfg, s->base, s->nbase, r->set, r->nset, where, err, errlen)) return -1;
        char why[1024];
        if (runcfg_validate(&r->cfg, why, sizeof why)) {
            snprintf(err, errlen, "%s: %s", where, why);
            return -1;
        }
        run_dir_name(r, r->rel, sizeof r->rel);
        set_path(s, r);
        /* a preset that cannot load or train would fail every run it is in: say so now */
        int seen = 0;
        for (long j = 0; j < i && !seen; j++) seen = !strcmp(s->runs[j].cfg.preset, r->cfg.preset);
        ach_task t;
        if (!seen) {
            if (task_load_with(&t, r->cfg.preset, r->cfg.seq_len, r->cfg.key_offset, NULL, why, sizeof why)) {
                snprintf(err, errlen, "%s: %s", where, why);
                return -1;
            }
            int untrainable = task_trainable(&t, why, sizeof why);
            task_free(&t);
            if (untrainable) {
                snprintf(err, errlen, "%s: %s", where, why);
                return -1;
            }
        }
    }
    return 0;
}

static cJSON *kv_object(const sweep_kv *kv, int n)
{
    cJSON *o = cJSON_CreateObject();
    for (int i = 0; i < n; i++) cJSON_AddStringToObject(o, kv[i].key, kv[i].val);
    return o;
}

char *sweep_manifest_json(const ach_sweep *s)
{
    cJSON *o = cJSON_CreateObject(), *grid = cJSON_CreateObject(), *runs = cJSON_CreateArray();
    cJSON_AddNumberToObject(o, "format", 1);
    cJSON_AddStringToObject(o, "name", s->name);
    cJSON_AddItemToObject(o, "base", kv_object(s->base, s->nbase));
    for (int i = 0; i < s->naxes; i++) {
        cJSON *a = cJSON_CreateArray();
        for (int j = 0; j < s->axes[i].nvals; j++) cJSON_AddItemToArray(a, cJSON_CreateString(s->axes[i].vals[j]));
        cJSON_AddItemToObject(grid, s->axes[i].key, a);
    }
    cJSON_AddItemToObject(o, "grid", grid);
    cJSON_AddNumberToObject(o, "nruns", s->nruns);
    for (int i = 0; i < s->nruns; i++) {
        cJSON *r = cJSON_CreateObject();
        cJSON_AddNumberToObject(r, "index", s->runs[i].index);
        cJSON_AddStringToObject(r, "dir", s->runs[i].rel);
        cJSON_AddItemToObject(r, "settings", kv_object(s->runs[i].set, s->runs[i].nset));
        cJSON_AddItemToArray(runs, r);
    }
    cJSON_AddItemToObject(o, "runs", runs);
    char *text = cJSON_Print(o);
    cJSON_Delete(o);
    if (!text) return NULL;
    size_t n = strlen(text);
    char *t = realloc(text, n + 2); /* a text file ends with a newline */
    if (!t) return free(text), NULL;
    t[n] = '\n', t[n + 1] = 0;
    return t;
}

int sweep_write_manifest(const ach_sweep *s, char *err, size_t errlen)
{
    char path[4200];
    if (make_dirs(s->dir, err, errlen)) return -1;
    snprintf(path, sizeof path, "%s/" SWEEP_MANIFEST, s->dir);
    char *text = sweep_manifest_json(s);
    if (!text) return oom(err, errlen);
    int rc = write_file_atomic(path, text, strlen(text), err, errlen);
    free(text);
    return rc;
}

int sweep_same_plan(const ach_sweep *a, const ach_sweep *b)
{
    char *x = sweep_manifest_json(a), *y = sweep_manifest_json(b);
    int same = x && y && !strcmp(x, y);
    free(x), free(y);
    return same;
}

/* --- loading ------------------------------------------------------------ */

static int read_kv(const cJSON *o, sweep_kv **out, int *n, const char *path, const char *field, char *err,
                   size_t errlen)
{
    if (!cJSON_IsObject(o)) {
        snprintf(err, errlen, "%s: field '%s': missing or not an object", path, field);
        return -1;
    }
    int cnt = cJSON_GetArraySize(o), i = 0;
    sweep_kv *kv = calloc(cnt ? cnt : 1, sizeof *kv);
    if (!kv) return oom(err, errlen);
    *out = kv, *n = 0;
    for (const cJSON *m = o->child; m; m = m->next, i++) {
        if (!cJSON_IsString(m)) {
            snprintf(err, errlen, "%s: %s.%s: must be a string", path, field, m->string);
            return -1;
        }
        if (runcfg_key_find(m->string) < 0) {
            snprintf(err, errlen, "%s: %s: unknown key '%s'", path, field, m->string);
            return -1;
        }
        kv[i].key = strdup(m->string), kv[i].val = strdup(m->valuestring);
        *n = i + 1;
        if (!kv[i].key || !kv[i].val) return oom(err, errlen);
    }
    return 0;
}

static int load_manifest(ach_sweep *s, const char *path, const char *text, char *err, size_t errlen)
{
    cJSON *o = cJSON_Parse(text);
    int rc = -1;
    char where[4300];
    if (!cJSON_IsObject(o)) {
        snprintf(err, errlen, "%s: not a JSON object%s", path, o ? "" : " (JSON syntax error)");
        goto out;
    }
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(o, "format");
    if (!cJSON_IsNumber(fmt) || fmt->valuedouble != 1) {
        snprintf(err, errlen, "%s: field 'format': %s", path, fmt ? "unsupported version (this achilles reads 1)" : "missing");
        goto out;
    }
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(o, "name");
    if (!cJSON_IsString(name) || strlen(name->valuestring) >= sizeof s->name) {
        snprintf(err, errlen, "%s: field 'name': missing or not a short string", path);
        goto out;
    }
    snprintf(s->name, sizeof s->name, "%s", name->valuestring);
    if (read_kv(cJSON_GetObjectItemCaseSensitive(o, "base"), &s->base, &s->nbase, path, "base", err, errlen)) goto out;
    const cJSON *grid = cJSON_GetObjectItemCaseSensitive(o, "grid");
    if (!cJSON_IsObject(grid)) {
        snprintf(err, errlen, "%s: field 'grid': missing or not an object", path);
        goto out;
    }
    for (const cJSON *m = grid->child; m; m = m->next) {
        int n = cJSON_GetArraySize(m), i = 0;
        char **vals = calloc(n ? n : 1, sizeof *vals);
        if (!cJSON_IsArray(m) || !vals) {
            free(vals);
            snprintf(err, errlen, "%s: grid.%s: not a list", path, m->string);
            goto out;
        }
        for (const cJSON *v = m->child; v; v = v->next) vals[i++] = cJSON_IsString(v) ? v->valuestring : NULL;
        int bad = 0;
        for (int j = 0; j < n; j++) bad |= !vals[j];
        snprintf(where, sizeof where, "%.4000s: grid", path);
        if (bad) snprintf(err, errlen, "%s: grid.%s: values must be strings", path, m->string);
        else bad = sweep_add_axis(s, m->string, vals, n, where, err, errlen);
        free(vals);
        if (bad) goto out;
    }
    const cJSON *runs = cJSON_GetObjectItemCaseSensitive(o, "runs");
    if (!cJSON_IsArray(runs)) {
        snprintf(err, errlen, "%s: field 'runs': missing or not a list", path);
        goto out;
    }
    int n = cJSON_GetArraySize(runs);
    s->runs = calloc(n ? n : 1, sizeof *s->runs);
    if (!s->runs) {
        oom(err, errlen);
        goto out;
    }
    int i = 0;
    for (const cJSON *rj = runs->child; rj; rj = rj->next, i++) {
        sweep_run *r = &s->runs[i];
        s->nruns = i + 1;
        const cJSON *idx = cJSON_GetObjectItemCaseSensitive(rj, "index"),
                    *dir = cJSON_GetObjectItemCaseSensitive(rj, "dir");
        if (!cJSON_IsNumber(idx) || idx->valuedouble != i) {
            snprintf(err, errlen, "%s: runs[%d].index: missing or not %d", path, i, i);
            goto out;
        }
        if (!cJSON_IsString(dir) || !dir->valuestring[0] || dir->valuestring[0] == '/' ||
            strstr(dir->valuestring, "..") || strlen(dir->valuestring) >= sizeof r->rel) {
            snprintf(err, errlen, "%s: runs[%d].dir: missing, or not a path inside the sweep directory", path, i);
            goto out;
        }
        r->index = i;
        snprintf(r->rel, sizeof r->rel, "%s", dir->valuestring);
        snprintf(where, sizeof where, "runs[%d].settings", i);
        if (read_kv(cJSON_GetObjectItemCaseSensitive(rj, "settings"), &r->set, &r->nset, path, where, err, errlen))
            goto out;
        snprintf(where, sizeof where, "%.4000s: runs[%d]", path, i);
        if (build_cfg(&r->cfg, s->base, s->nbase, r->set, r->nset, where, err, errlen)) goto out;
        set_path(s, r);
    }
    const cJSON *nr = cJSON_GetObjectItemCaseSensitive(o, "nruns");
    if (nr && (!cJSON_IsNumber(nr) || nr->valuedouble != n)) {
        snprintf(err, errlen, "%s: field 'nruns' says %g, but 'runs' lists %d", path, cJSON_IsNumber(nr) ? nr->valuedouble : -1.0, n);
        goto out;
    }
    s->has_manifest = 1;
    rc = 0;
out:
    cJSON_Delete(o);
    return rc;
}

static int exists(const char *dir, const char *file)
{
    char p[4400];
    struct stat st;
    snprintf(p, sizeof p, "%.4000s/%.300s", dir, file);
    return stat(p, &st) == 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Run directories (with config.json) one or two levels below dir. */
static int scan(const char *dir, const char *prefix, int depth, char ***list, int *n, char *err, size_t errlen)
{
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(err, errlen, "%s: %s", dir, strerror(errno));
        return -1;
    }
    char **names = NULL;
    int cnt = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char **nn = realloc(names, (cnt + 1) * sizeof *nn);
        if (!nn || !(nn[cnt] = strdup(e->d_name))) {
            free(nn ? nn : names);
            closedir(d);
            return oom(err, errlen);
        }
        names = nn, cnt++;
    }
    closedir(d);
    qsort(names, cnt, sizeof *names, cmp_str);
    int rc = 0;
    for (int i = 0; i < cnt; i++) {
        char path[4400], rel[1024];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        snprintf(rel, sizeof rel, "%s%s", prefix, names[i]);
        if (rc || stat(path, &st) || !S_ISDIR(st.st_mode)) continue;
        if (exists(path, "config.json")) {
            char **l = realloc(*list, (*n + 1) * sizeof *l);
            if (!l || !(l[*n] = strdup(rel))) {
                if (l) *list = l;
                rc = oom(err, errlen);
                continue;
            }
            *list = l, (*n)++;
        } else if (depth > 1) {
            char pre[1100];
            snprintf(pre, sizeof pre, "%s/", rel);
            char ignore[256];
            scan(path, pre, depth - 1, list, n, ignore, sizeof ignore); /* unreadable subdirectories: skipped */
        }
    }
    for (int i = 0; i < cnt; i++) free(names[i]);
    free(names);
    return rc;
}

/* Settings of scanned runs: the keys whose values are not the same in all. */
static int derive_settings(ach_sweep *s, char *err, size_t errlen)
{
    int nk = runcfg_nkeys();
    for (int k = 0; k < nk; k++) {
        char v0[300], v[300];
        int varies = 0;
        if (!strcmp(runcfg_key_name(k), "threads")) continue; /* no effect on results */
        runcfg_get(&s->runs[0].cfg, k, v0, sizeof v0);
        for (int i = 1; i < s->nruns && !varies; i++) {
            runcfg_get(&s->runs[i].cfg, k, v, sizeof v);
            varies = strcmp(v, v0) != 0;
        }
        if (!varies) continue;
        for (int i = 0; i < s->nruns; i++) {
            sweep_run *r = &s->runs[i];
            sweep_kv *kv = realloc(r->set, (r->nset + 1) * sizeof *kv);
            if (!kv) return oom(err, errlen);
            r->set = kv;
            runcfg_get(&r->cfg, k, v, sizeof v);
            kv[r->nset].key = strdup(runcfg_key_name(k)), kv[r->nset].val = strdup(v);
            r->nset++;
            if (!kv[r->nset - 1].key || !kv[r->nset - 1].val) return oom(err, errlen);
        }
    }
    return 0;
}

int sweep_load(ach_sweep *s, const char *dir, char *err, size_t errlen)
{
    char path[4400];
    struct stat st;
    sweep_init(s);
    if (strlen(dir) >= sizeof s->dir - 600) {
        snprintf(err, errlen, "%s: path too long", dir);
        return -1;
    }
    snprintf(s->dir, sizeof s->dir, "%s", dir);
    for (size_t n = strlen(s->dir); n > 1 && s->dir[n - 1] == '/'; n--) s->dir[n - 1] = 0;
    if (stat(s->dir, &st)) {
        snprintf(err, errlen, "%s: %s", dir, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "%s: not a directory (a sweep or a run directory)", dir);
        return -1;
    }
    snprintf(path, sizeof path, "%s/" SWEEP_MANIFEST, s->dir);
    if (!stat(path, &st)) {
        char *text = read_file(path, MANIFEST_MAX, NULL, err, errlen);
        if (!text) return -1;
        int rc = load_manifest(s, path, text, err, errlen);
        free(text);
        if (rc) sweep_free(s);
        return rc;
    }
    char **list = NULL;
    int n = 0;
    if (exists(s->dir, "config.json")) {
        list = malloc(sizeof *list);
        if (!list || !(list[0] = strdup("."))) return free(list), oom(err, errlen);
        n = 1;
    } else if (scan(s->dir, "", 4, &list, &n, err, errlen)) {
        for (int i = 0; i < n; i++) free(list[i]);
        free(list);
        return -1;
    }
    int rc = 0;
    if (!n) {
        snprintf(err, errlen, "%s: no manifest.json and no run directories (with config.json) in it", dir);
        rc = -1;
    }
    s->runs = n ? calloc(n, sizeof *s->runs) : NULL;
    if (n && !s->runs) rc = oom(err, errlen);
    for (int i = 0; !rc && i < n; i++) {
        sweep_run *r = &s->runs[i];
        s->nruns = i + 1;
        r->index = i;
        snprintf(r->rel, sizeof r->rel, "%s", list[i]);
        set_path(s, r);
        runcfg_defaults(&r->cfg);
        snprintf(path, sizeof path, "%s/config.json", r->dir);
        rc = runcfg_load_file(&r->cfg, path, err, errlen);
    }
    for (int i = 0; i < n; i++) free(list[i]);
    free(list);
    if (!rc) {
        const char *b = strrchr(s->dir, '/');
        snprintf(s->name, sizeof s->name, "%.127s", b && b[1] ? b + 1 : s->dir);
        rc = derive_settings(s, err, errlen);
    }
    if (rc) sweep_free(s);
    return rc;
}

/* --- states and metrics --------------------------------------------------- */

/* Who holds the lock, without taking it for longer than a probe. */
static int probe_lock(sweep_run *r)
{
    char path[4400];
    snprintf(path, sizeof path, "%s/" SWEEP_LOCK, r->dir);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    int held = flock(fd, LOCK_SH | LOCK_NB) && errno == EWOULDBLOCK;
    if (!held) flock(fd, LOCK_UN);
    else {
        char buf[128] = {0};
        ssize_t k = pread(fd, buf, sizeof buf - 1, 0);
        if (k > 0) {
            buf[k] = 0;
            r->lock_pid = strtol(buf, NULL, 10);
            char *sp = strchr(buf, ' ');
            if (sp) snprintf(r->lock_host, sizeof r->lock_host, "%.*s", (int)strcspn(sp + 1, "\n"), sp + 1);
        }
    }
    close(fd);
    return held;
}

static void refresh(sweep_run *r, int probe)
{
    char path[4400], err[256];
    r->have_last = 0, r->lock_pid = 0, r->lock_host[0] = 0, r->wall_s = NAN, r->stop_reason[0] = 0;
    r->epochs = r->cfg.epochs;
    int done = 0;
    snprintf(path, sizeof path, "%s/summary.json", r->dir);
    char *text = read_file(path, 1 << 24, NULL, err, sizeof err);
    cJSON *o = text ? cJSON_Parse(text) : NULL;
    free(text);
    if (cJSON_IsObject(o)) {
        char status[32];
        ach_json_string(o, "status", status, sizeof status);
        done = !strcmp(status, "done");
        double ep = ach_json_number(o, "epochs");
        if (!isnan(ep)) r->epochs = (int)ep;
        r->wall_s = ach_json_number(o, "wall_time_s");
        ach_json_string(o, "stop_reason", r->stop_reason, sizeof r->stop_reason);
        const cJSON *fin = cJSON_GetObjectItemCaseSensitive(o, "final");
        if (cJSON_IsObject(fin)) {
            ach_metrics_from_json(fin, ach_run_dir_kind(r->dir), &r->last);
            r->have_last = r->last.epoch >= 0;
        }
    }
    cJSON_Delete(o);
    if (probe && probe_lock(r)) r->state = SWEEP_RUNNING;
    else if (done) r->state = SWEEP_DONE;
    else if (exists(r->dir, "state.safetensors")) r->state = SWEEP_STOPPED;
    else if (exists(r->dir, "config.json")) r->state = SWEEP_PARTIAL;
    else r->state = SWEEP_NEW;
}

void sweep_run_refresh(sweep_run *r) { refresh(r, 1); }
void sweep_run_refresh_locked(sweep_run *r) { refresh(r, 0); }

void sweep_refresh(ach_sweep *s)
{
    for (int i = 0; i < s->nruns; i++) sweep_run_refresh(&s->runs[i]);
}

const char *sweep_state_name(sweep_state st)
{
    static const char *const names[] = {"new", "partial", "stopped", "running", "done"};
    return st >= SWEEP_NEW && st <= SWEEP_DONE ? names[st] : "?";
}

int sweep_run_history(const sweep_run *r, ach_metrics **recs, int *n, char *err, size_t errlen)
{
    char path[4400];
    *recs = NULL, *n = 0;
    snprintf(path, sizeof path, "%s/metrics.jsonl", r->dir);
    struct stat st;
    if (stat(path, &st)) return 0; /* not started: no records */
    size_t len;
    char *text = read_file(path, 1u << 30, &len, err, errlen);
    if (!text) return -1;
    int lines = 0;
    for (size_t i = 0; i < len; i++) lines += text[i] == '\n';
    ach_metrics *m = calloc(lines + 1, sizeof *m);
    if (!m) return free(text), oom(err, errlen);
    const ach_task_kind *kind = ach_run_dir_kind(r->dir);
    int k = 0, line = 0;
    for (char *p = text; *p;) {
        char *e = strchr(p, '\n');
        if (e) *e = 0;
        line++;
        if (*p) {
            cJSON *o = cJSON_Parse(p);
            if (!cJSON_IsObject(o)) {
                cJSON_Delete(o);
                /* a torn last line is what a crash mid-append leaves: stop there */
                if (!e) break;
                snprintf(err, errlen, "%s: line %d: not a JSON object", path, line);
                free(text), free(m);
                return -1;
            }
            ach_metrics_from_json(o, kind, &m[k++]);
            cJSON_Delete(o);
        }
        if (!e) break;
        p = e + 1;
    }
    free(text);
    if (!k) free(m), m = NULL;
    *recs = m, *n = k;
    return 0;
}

/* --- locks ---------------------------------------------------------------- */

int sweep_run_lock(const sweep_run *r, int *fd, char *err, size_t errlen)
{
    char path[4400];
    if (make_dirs(r->dir, err, errlen)) return -1;
    snprintf(path, sizeof path, "%s/" SWEEP_LOCK, r->dir);
    int f = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (f < 0) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    if (flock(f, LOCK_EX | LOCK_NB)) {
        int busy = errno == EWOULDBLOCK;
        if (!busy) snprintf(err, errlen, "%s: cannot lock: %s", path, strerror(errno));
        close(f);
        return busy ? 1 : -1;
    }
    *fd = f;
    return 0;
}

void sweep_lock_note(int fd, long pid)
{
    char host[64] = "?", buf[160];
    gethostname(host, sizeof host - 1);
    int n = snprintf(buf, sizeof buf, "%ld %s\n", pid, host);
    /* a note for humans and --status; the lock itself is the flock */
    if (ftruncate(fd, 0) == 0 && pwrite(fd, buf, n, 0) == n) return;
}
