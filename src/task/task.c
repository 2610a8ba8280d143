/* Task presets: loading and checking the JSON (schema: data/README.md),
 * and the deterministic sequence generator. */
#include "task.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "kind.h"
#include "preset_json.h"
#include "rng.h"

#ifndef ACH_DATADIR
#define ACH_DATADIR "data"
#endif

#define MAX_SHIFT (1 << 20)
#define MAX_PER_PAIR 1000000000000LL /* 1e12: exact in a double, far below the 2^56 stream bits */

/* {"from": a, "below": b}: the half-open range [a, b), non-empty, inside [0, max]. */
static int get_range(preset_ctx *c, const cJSON *o, const char *field, int max, const char *maxname, int *lo, int *hi)
{
    static const char *const keys[] = {"from", "below", NULL};
    char f[200];
    if (preset_object(c, o, field) || preset_keys(c, o, field, keys)) return -1;
    snprintf(f, sizeof f, "%s.from", field);
    if (preset_int(c, preset_member(o, "from"), f, 0, max, lo)) return -1;
    snprintf(f, sizeof f, "%s.below", field);
    if (preset_int(c, preset_member(o, "below"), f, 0, 1 << 30, hi)) return -1;
    if (*hi > max) return preset_fail(c, f, "%d is beyond %s (%d)", *hi, maxname, max);
    if (*hi <= *lo) return preset_fail(c, f, "the range [%d, %d) is empty", *lo, *hi);
    return 0;
}

static int anchor_index(const ach_task *t, int token)
{
    for (int i = 0; i < t->nanchors; i++)
        if (t->anchor[i] == token) return i;
    return -1;
}

int task_pair_index(const ach_task *t, int a1, int a2)
{
    int i = anchor_index(t, a1), j = anchor_index(t, a2);
    return i < 0 || j < 0 ? -1 : i * t->nanchors + j;
}

/* [a1, a2] of declared anchors: the pair's index, or -1 with a message. */
static int get_pair(preset_ctx *c, const ach_task *t, const cJSON *v, const char *field, int *k)
{
    if (!v) return preset_fail(c, field, "missing");
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) != 2) return preset_fail(c, field, "expected [a1, a2], two anchor tokens");
    int a[2];
    for (int i = 0; i < 2; i++) {
        char f[200];
        snprintf(f, sizeof f, "%s[%d]", field, i);
        if (preset_int(c, cJSON_GetArrayItem(v, i), f, -MAX_SHIFT, MAX_SHIFT, &a[i])) return -1;
        if (anchor_index(t, a[i]) < 0) return preset_fail(c, f, "%d is not one of the declared anchors", a[i]);
    }
    *k = task_pair_index(t, a[0], a[1]);
    return 0;
}

static int parse_anchors(preset_ctx *c, ach_task *t, const cJSON *arr)
{
    static const char *const keys[] = {"token", "shift", NULL};
    if (!arr) return preset_fail(c, "anchors", "missing");
    if (!cJSON_IsArray(arr)) return preset_fail(c, "anchors", "expected an array of {\"token\", \"shift\"}");
    int n = cJSON_GetArraySize(arr);
    if (n < 1 || n > TASK_MAX_ANCHORS) return preset_fail(c, "anchors", "%d anchors; expected 1 to %d", n, TASK_MAX_ANCHORS);
    t->nanchors = 0;
    for (int i = 0; i < n; i++) {
        const cJSON *a = cJSON_GetArrayItem(arr, i);
        char f[64], g[96];
        snprintf(f, sizeof f, "anchors[%d]", i);
        if (preset_object(c, a, f) || preset_keys(c, a, f, keys)) return -1;
        snprintf(g, sizeof g, "%s.token", f);
        int tok, sh;
        if (preset_int(c, preset_member(a, "token"), g, 0, t->vocab_size - 1, &tok)) return -1;
        if (anchor_index(t, tok) >= 0) return preset_fail(c, g, "anchor %d is declared twice", tok);
        /* An anchor that could also be drawn as key or noise would make sequences ambiguous. */
        if ((tok >= t->key_lo && tok < t->key_hi) || (tok >= t->noise_lo && tok < t->noise_hi))
            return preset_fail(c, g, "anchor %d lies inside the key or noise token range", tok);
        snprintf(g, sizeof g, "%s.shift", f);
        if (preset_int(c, preset_member(a, "shift"), g, -MAX_SHIFT, MAX_SHIFT, &sh)) return -1;
        t->anchor[i] = tok;
        t->anchor_shift[i] = sh;
        t->nanchors = i + 1;
    }
    t->npairs = n * n;
    for (int k = 0; k < t->npairs; k++) {
        ach_pair *p = &t->pairs[k];
        memset(p, 0, sizeof *p);
        p->a1 = t->anchor[k / n];
        p->a2 = t->anchor[k % n];
        p->comp_shift = t->anchor_shift[k / n] + t->anchor_shift[k % n];
        p->shift = p->comp_shift;
    }
    return 0;
}

/* special_pairs overrides the trained shift; `direct` remembers which
 * overrides named the pair itself (not via a mirror's both_orders). */
static int parse_special(preset_ctx *c, ach_task *t, const cJSON *arr, int *direct)
{
    static const char *const keys[] = {"pair", "shift", "both_orders", "note", NULL};
    int set[TASK_MAX_PAIRS] = {0};
    if (!arr || cJSON_IsNull(arr)) return 0;
    if (!cJSON_IsArray(arr)) return preset_fail(c, "special_pairs", "expected an array");
    int n = cJSON_GetArraySize(arr);
    for (int i = 0; i < n; i++) {
        const cJSON *s = cJSON_GetArrayItem(arr, i);
        char f[64], g[96];
        const char *note = NULL;
        int k, sh, both = 0;
        snprintf(f, sizeof f, "special_pairs[%d]", i);
        if (preset_object(c, s, f) || preset_keys(c, s, f, keys)) return -1;
        snprintf(g, sizeof g, "%s.pair", f);
        if (get_pair(c, t, preset_member(s, "pair"), g, &k)) return -1;
        snprintf(g, sizeof g, "%s.shift", f);
        if (preset_int(c, preset_member(s, "shift"), g, -MAX_SHIFT, MAX_SHIFT, &sh)) return -1;
        snprintf(g, sizeof g, "%s.both_orders", f);
        if (preset_bool(c, preset_member(s, "both_orders"), g, &both)) return -1;
        snprintf(g, sizeof g, "%s.note", f);
        if (preset_member(s, "note") && preset_string(c, preset_member(s, "note"), g, &note)) return -1;
        int mirror = task_pair_index(t, t->pairs[k].a2, t->pairs[k].a1);
        for (int side = 0; side < (both && mirror != k ? 2 : 1); side++) {
            int q = side ? mirror : k;
            if (set[q]) {
                char name[32];
                task_pair_name(t, q, name, sizeof name);
                snprintf(g, sizeof g, "%s.pair", f);
                return preset_fail(c, g, "pair %s already has a special shift", name);
            }
            set[q] = 1;
            t->pairs[q].shift = sh;
            t->pairs[q].special = 1;
            if (!side) direct[q] = 1;
        }
    }
    return 0;
}

static int parse_held_out(preset_ctx *c, ach_task *t, const cJSON *arr, const int *direct)
{
    static const char *const keys[] = {"pair", "test_label", "composite_shift", "symmetric_shift", "note", NULL};
    static const char *const labels[] = {"composite", "symmetric", NULL};
    int trained[TASK_MAX_PAIRS];
    /* The symmetric answer of (a, b) is what (b, a) is trained with. */
    for (int k = 0; k < t->npairs; k++) trained[k] = t->pairs[k].shift;
    for (int k = 0; k < t->npairs; k++)
        t->pairs[k].sym_shift = trained[task_pair_index(t, t->pairs[k].a2, t->pairs[k].a1)];
    if (!arr || cJSON_IsNull(arr)) return 0;
    if (!cJSON_IsArray(arr)) return preset_fail(c, "held_out", "expected an array");
    int n = cJSON_GetArraySize(arr);
    for (int i = 0; i < n; i++) {
        const cJSON *h = cJSON_GetArrayItem(arr, i);
        char f[64], g[96], name[32];
        const char *note = NULL;
        int k, which, v;
        snprintf(f, sizeof f, "held_out[%d]", i);
        if (preset_object(c, h, f) || preset_keys(c, h, f, keys)) return -1;
        snprintf(g, sizeof g, "%s.pair", f);
        if (get_pair(c, t, preset_member(h, "pair"), g, &k)) return -1;
        ach_pair *p = &t->pairs[k];
        task_pair_name(t, k, name, sizeof name);
        if (p->held_out) return preset_fail(c, g, "pair %s is held out twice", name);
        if (direct[k])
            return preset_fail(c, g, "pair %s is held out, so it cannot have a special shift of its own (give its mirror both_orders)",
                        name);
        snprintf(g, sizeof g, "%s.test_label", f);
        if (preset_enum(c, preset_member(h, "test_label"), g, labels, &which)) return -1;
        /* The stated answers are optional; when present they must agree with the anchors. */
        snprintf(g, sizeof g, "%s.composite_shift", f);
        if (preset_member(h, "composite_shift")) {
            if (preset_int(c, preset_member(h, "composite_shift"), g, -MAX_SHIFT, MAX_SHIFT, &v)) return -1;
            if (v != p->comp_shift)
                return preset_fail(c, g, "%d, but the anchors' shifts add up to %d for pair %s", v, p->comp_shift, name);
        }
        snprintf(g, sizeof g, "%s.symmetric_shift", f);
        if (preset_member(h, "symmetric_shift")) {
            if (preset_int(c, preset_member(h, "symmetric_shift"), g, -MAX_SHIFT, MAX_SHIFT, &v)) return -1;
            if (v != p->sym_shift)
                return preset_fail(c, g, "%d, but the mirror of pair %s is trained with shift %d", v, name, p->sym_shift);
        }
        snprintf(g, sizeof g, "%s.note", f);
        if (preset_member(h, "note") && preset_string(c, preset_member(h, "note"), g, &note)) return -1;
        p->held_out = 1;
        p->special = 0;
        p->shift = which ? p->sym_shift : p->comp_shift;
    }
    return 0;
}

/* How many keys in [key_lo, key_hi) have key mod M == r. */
static int keys_with_residue(const ach_task *t, int r, int *first)
{
    int m = t->key_mod;
    *first = t->key_lo + ((r - t->key_lo % m) % m + m) % m;
    return *first < t->key_hi ? (t->key_hi - 1 - *first) / m + 1 : 0;
}

static int residue(const ach_task *t, int p)
{
    long long r = ((long long)p + t->key_offset) % t->key_mod;
    return (int)(r < 0 ? r + t->key_mod : r);
}

static int parse_split(preset_ctx *c, ach_task *t, const cJSON *o, int s)
{
    static const char *const keys[] = {"pairs", "per_pair", "key_vs_position", NULL};
    static const char *const rules[] = {"any", "differs", "equals", NULL};
    static const char *const names[] = {"train", "test"};
    ach_split *sp = &t->split[s];
    char f[64], g[80], name[32];
    long long per;
    int rule;
    snprintf(f, sizeof f, "splits.%s", names[s]);
    if (preset_object(c, o, f) || preset_keys(c, o, f, keys)) return -1;
    snprintf(g, sizeof g, "%s.per_pair", f);
    if (preset_ll(c, preset_member(o, "per_pair"), g, 0, MAX_PER_PAIR, &per)) return -1;
    sp->per_pair = (uint64_t)per;
    snprintf(g, sizeof g, "%s.key_vs_position", f);
    if (preset_enum(c, preset_member(o, "key_vs_position"), g, rules, &rule)) return -1;
    sp->key_rule = (ach_key_rule)rule;
    for (int p = t->pos_lo; p < t->pos_hi; p++) {
        int first, eq = keys_with_residue(t, residue(t, p), &first), n = t->key_hi - t->key_lo;
        if ((rule == KEY_EQUALS && !eq) || (rule == KEY_DIFFERS && eq == n))
            return preset_fail(c, g, "no key in [%d, %d) has key mod %d %s (p + %d) mod %d at p = %d", t->key_lo, t->key_hi,
                        t->key_mod, rule == KEY_EQUALS ? "==" : "!=", t->key_offset, t->key_mod, p);
    }
    snprintf(g, sizeof g, "%s.pairs", f);
    const cJSON *pv = preset_member(o, "pairs");
    sp->npairs = 0;
    if (cJSON_IsString(pv) && (!strcmp(pv->valuestring, "all") || !strcmp(pv->valuestring, "seen"))) {
        int seen = !strcmp(pv->valuestring, "seen");
        for (int k = 0; k < t->npairs; k++)
            if (!(seen && t->pairs[k].held_out)) sp->pairs[sp->npairs++] = k;
    } else if (cJSON_IsArray(pv)) {
        int n = cJSON_GetArraySize(pv);
        if (n > t->npairs) return preset_fail(c, g, "%d pairs, but the anchors make only %d", n, t->npairs);
        for (int i = 0; i < n; i++) {
            char h[96];
            int k;
            snprintf(h, sizeof h, "%s[%d]", g, i);
            if (get_pair(c, t, cJSON_GetArrayItem(pv, i), h, &k)) return -1;
            task_pair_name(t, k, name, sizeof name);
            for (int j = 0; j < sp->npairs; j++)
                if (sp->pairs[j] == k) return preset_fail(c, h, "pair %s is listed twice", name);
            sp->pairs[sp->npairs++] = k;
        }
    } else if (!pv) {
        return preset_fail(c, g, "missing");
    } else {
        return preset_fail(c, g, "expected \"all\", \"seen\" or an array of [a1, a2] pairs");
    }
    for (int j = 0; j < sp->npairs; j++) {
        ach_pair *p = &t->pairs[sp->pairs[j]];
        if (s == TASK_TRAIN && p->held_out) {
            task_pair_name(t, sp->pairs[j], name, sizeof name);
            return preset_fail(c, g, "pair %s is held out, so it cannot be in the train split", name);
        }
        p->in_split[s] = 1;
    }
    return 0;
}

/* Every label any split can produce (and both answers of a held-out pair) must be a token. */
static int check_labels(preset_ctx *c, const ach_task *t)
{
    if (t->label_modulus) return 0; /* labels are in [0, m) and m <= vocab_size was checked */
    for (int k = 0; k < t->npairs; k++) {
        const ach_pair *p = &t->pairs[k];
        if (!p->in_split[TASK_TRAIN] && !p->in_split[TASK_TEST]) continue;
        int shifts[3] = {p->shift, p->held_out ? p->comp_shift : p->shift, p->held_out ? p->sym_shift : p->shift};
        for (int i = 0; i < 3; i++) {
            long long lo = (long long)t->key_lo + shifts[i], hi = (long long)t->key_hi - 1 + shifts[i];
            char name[32];
            task_pair_name(t, k, name, sizeof name);
            if (lo < 0)
                return preset_fail(c, "vocab_size", "label %lld (pair %s: key %d %+d) is negative; set label_modulus or move the keys",
                            lo, name, t->key_lo, shifts[i]);
            if (hi >= t->vocab_size)
                return preset_fail(c, "vocab_size", "label %lld (pair %s: key %d %+d) does not fit in the vocabulary of %d", hi,
                            name, t->key_hi - 1, shifts[i], t->vocab_size);
        }
    }
    return 0;
}

/* The composite kind's parser: every field of data/README.md. */
static int composite_parse(ach_task *t, const cJSON *o, const char *where, char *err, size_t errlen)
{
    static const char *const keys[] = {"kind", "name", "description", "seq_len", "vocab_size", "key_tokens",
                                       "noise_tokens", "key_positions", "anchors", "label_modulus", "special_pairs",
                                       "held_out", "key_rule", "splits", NULL};
    static const char *const rule_keys[] = {"modulus", "position_offset", NULL};
    static const char *const split_keys[] = {"train", "test", NULL};
    preset_ctx c = {where, err, errlen};
    int direct[TASK_MAX_PAIRS] = {0};
    if (preset_keys(&c, o, "", keys)) return -1;
    if (preset_name_description(&c, t, o)) return -1;
    if (preset_int(&c, preset_member(o, "seq_len"), "seq_len", 3, 4096, &t->seq_len) ||
        preset_int(&c, preset_member(o, "vocab_size"), "vocab_size", 2, 1 << 20, &t->vocab_size) ||
        get_range(&c, preset_member(o, "key_tokens"), "key_tokens", t->vocab_size, "vocab_size", &t->key_lo, &t->key_hi) ||
        get_range(&c, preset_member(o, "noise_tokens"), "noise_tokens", t->vocab_size, "vocab_size", &t->noise_lo, &t->noise_hi) ||
        get_range(&c, preset_member(o, "key_positions"), "key_positions", t->seq_len - 2, "seq_len - 2, so both anchors fit",
                  &t->pos_lo, &t->pos_hi))
        return -1;
    const cJSON *m = preset_member(o, "label_modulus");
    if (m && !cJSON_IsNull(m) && preset_int(&c, m, "label_modulus", 1, t->vocab_size, &t->label_modulus)) return -1;
    if (parse_anchors(&c, t, preset_member(o, "anchors")) || parse_special(&c, t, preset_member(o, "special_pairs"), direct) ||
        parse_held_out(&c, t, preset_member(o, "held_out"), direct))
        return -1;
    const cJSON *kr = preset_member(o, "key_rule");
    if (preset_object(&c, kr, "key_rule") || preset_keys(&c, kr, "key_rule", rule_keys) ||
        preset_int(&c, preset_member(kr, "modulus"), "key_rule.modulus", 1, 1 << 20, &t->key_mod))
        return -1;
    if (preset_member(kr, "position_offset") &&
        preset_int(&c, preset_member(kr, "position_offset"), "key_rule.position_offset", -(1 << 20), 1 << 20, &t->key_offset))
        return -1;
    const cJSON *sp = preset_member(o, "splits");
    if (preset_object(&c, sp, "splits") || preset_keys(&c, sp, "splits", split_keys) ||
        parse_split(&c, t, preset_member(sp, "train"), TASK_TRAIN) || parse_split(&c, t, preset_member(sp, "test"), TASK_TEST) ||
        check_labels(&c, t))
        return -1;
    return 0;
}

int task_from_json(ach_task *t, const char *json, const char *where, char *err, size_t errlen)
{
    const char *end = NULL;
    int rc = -1;
    memset(t, 0, sizeof *t);
    snprintf(t->path, sizeof t->path, "%s", where);
    cJSON *o = cJSON_ParseWithOpts(json, &end, 1);
    if (!o) {
        int line = 1, col = 1;
        for (const char *q = json; end && q < end && *q; q++) {
            if (*q == '\n') line++, col = 1;
            else col++;
        }
        snprintf(err, errlen, "%s: malformed JSON at line %d, column %d", where, line, col);
        return -1;
    }
    if (!cJSON_IsObject(o)) snprintf(err, errlen, "%s: expected a JSON object", where);
    else if ((t->kind = task_kind_of(o, where, err, errlen))) rc = t->kind->parse(t, o, where, err, errlen);
    cJSON_Delete(o);
    if (rc) task_free(t);
    return rc;
}

/* $ACHILLES_DATA, else the build tree's data/ while it exists, else the
 * installed copy (make install). */
const char *task_data_dir(void)
{
    const char *d = getenv("ACHILLES_DATA");
    struct stat st;
    if (d && *d) return d;
    return stat(ACH_DATADIR, &st) == 0 && S_ISDIR(st.st_mode) ? ACH_DATADIR : ACH_SHAREDIR;
}

/* The run settings seq_len and key_offset written into the preset's text,
 * so that the preset's own checks judge them and the run keeps the preset it
 * trained on. */
static int patch(char **buf, int seq_len, int key_offset, const char *path, char *err, size_t errlen)
{
    if (seq_len <= 0 && key_offset < 0) return 0;
    cJSON *o = cJSON_Parse(*buf), *kr = o ? cJSON_GetObjectItemCaseSensitive(o, "key_rule") : NULL;
    if (!cJSON_IsObject(o) || (key_offset >= 0 && !cJSON_IsObject(kr))) {
        snprintf(err, errlen, "%s: %s", path, !cJSON_IsObject(o) ? "not a JSON object" : "field 'key_rule': missing or not an object");
        cJSON_Delete(o);
        return -1;
    }
    if (seq_len > 0) cJSON_DeleteItemFromObjectCaseSensitive(o, "seq_len"), cJSON_AddNumberToObject(o, "seq_len", seq_len);
    if (key_offset >= 0) {
        cJSON_DeleteItemFromObjectCaseSensitive(kr, "position_offset");
        cJSON_AddNumberToObject(kr, "position_offset", key_offset);
    }
    char *s = cJSON_Print(o);
    cJSON_Delete(o);
    if (!s) {
        snprintf(err, errlen, "%s: out of memory", path);
        return -1;
    }
    free(*buf);
    *buf = s;
    return 0;
}

int task_load_with(ach_task *t, const char *name, int seq_len, int key_offset, char **text, char *err, size_t errlen)
{
    char path[1024];
    size_t n = strlen(name);
    int bare = !strchr(name, '/') && !(n >= 5 && !strcmp(name + n - 5, ".json"));
    memset(t, 0, sizeof *t);
    if (bare) snprintf(path, sizeof path, "%s/%s.json", task_data_dir(), name);
    else snprintf(path, sizeof path, "%s", name);
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (bare && errno == ENOENT)
            snprintf(err, errlen, "%s: no preset '%s' in %s (set ACHILLES_DATA, or give a path)", path, name,
                     task_data_dir());
        else snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    /* Presets are small; anything over 1 MiB is not one. */
    char *buf = malloc((1 << 20) + 1);
    size_t len = buf ? fread(buf, 1, 1 << 20, f) : 0;
    int toobig = buf && len == 1 << 20 && fgetc(f) != EOF, bad = ferror(f);
    fclose(f);
    if (!buf || toobig || bad) {
        snprintf(err, errlen, "%s: %s", path, !buf ? "out of memory" : toobig ? "larger than 1 MiB" : "read error");
        free(buf);
        return -1;
    }
    buf[len] = 0;
    if (strlen(buf) != len) {
        snprintf(err, errlen, "%s: not a text file (contains a NUL byte)", path);
        free(buf);
        return -1;
    }
    int rc = patch(&buf, seq_len, key_offset, path, err, errlen);
    if (!rc) rc = task_from_json(t, buf, path, err, errlen);
    if (!rc && text) *text = buf, buf = NULL;
    free(buf);
    return rc;
}

int task_load(ach_task *t, const char *name, char *err, size_t errlen)
{
    return task_load_with(t, name, 0, -1, NULL, err, errlen);
}

void task_free(ach_task *t)
{
    free(t->description);
    free(t->kind_data);
    t->description = NULL;
    t->kind_data = NULL;
}

uint64_t task_split_size(const ach_task *t, int split)
{
    return (uint64_t)t->split[split].npairs * t->split[split].per_pair;
}

int task_npairs(const ach_task *t, int split) { return t->split[split].npairs; }

int task_split_has_pair(const ach_task *t, int split, int a1, int a2)
{
    int k = task_pair_index(t, a1, a2);
    return k >= 0 && t->pairs[k].in_split[split];
}

int task_has_pair(const ach_task *t, int a1, int a2) { return task_split_has_pair(t, TASK_TEST, a1, a2); }

void task_pair_name(const ach_task *t, int pair, char *buf, size_t n)
{
    const ach_pair *p = &t->pairs[pair];
    if (p->a1 >= 0 && p->a1 <= 9 && p->a2 >= 0 && p->a2 <= 9) snprintf(buf, n, "%d%d", p->a1, p->a2);
    else snprintf(buf, n, "(%d,%d)", p->a1, p->a2);
}

int32_t task_label(const ach_task *t, int key, int shift)
{
    int32_t v = key + shift, m = t->label_modulus;
    return m ? (v % m + m) % m : v;
}

/* A key for position p under the split's rule. "equals" pins the residue,
 * so the key is drawn directly among those keys; otherwise by rejection,
 * which accepts at least 1/3 of draws once the loader has checked that some
 * key qualifies. */
static int draw_key(const ach_task *t, ach_rng *r, ach_key_rule rule, int p)
{
    int res = residue(t, p), first;
    if (rule == KEY_EQUALS) {
        int n = keys_with_residue(t, res, &first);
        return first + t->key_mod * (int)rng_below(r, (uint64_t)n);
    }
    for (;;) {
        int k = t->key_lo + (int)rng_below(r, (uint64_t)(t->key_hi - t->key_lo));
        if (rule == KEY_ANY || k % t->key_mod != res) return k;
    }
}

void task_sequence(const ach_task *t, uint64_t seed, int split, uint64_t i, int32_t *tokens, int32_t *label,
                   ach_seq_info *info)
{
    const ach_split *s = &t->split[split];
    int k = s->pairs[i / s->per_pair];
    const ach_pair *pr = &t->pairs[k];
    ach_rng r;
    rng_init(&r, seed, TASK_STREAM(split, i));
    int p = t->pos_lo + (int)rng_below(&r, (uint64_t)(t->pos_hi - t->pos_lo));
    int key = draw_key(t, &r, s->key_rule, p);
    /* Noise for every position, so the draws do not depend on p. */
    for (int j = 0; j < t->seq_len; j++) tokens[j] = t->noise_lo + (int32_t)rng_below(&r, (uint64_t)(t->noise_hi - t->noise_lo));
    tokens[p] = key;
    tokens[p + 1] = pr->a1;
    tokens[p + 2] = pr->a2;
    *label = task_label(t, key, pr->shift);
    if (info) {
        info->pair = k;
        info->key = key;
        info->pos = p;
        info->a1 = pr->a1;
        info->a2 = pr->a2;
        info->label = *label;
        info->label_comp = task_label(t, key, pr->comp_shift);
        info->label_sym = task_label(t, key, pr->sym_shift);
    }
}

/* --- the composite kind -------------------------------------------------- */

static const char *const composite_splits[] = {"train", "test"};

/* The records' keys and column order since the first runs: reports, sweeps
 * and old run directories read these names. */
enum { M_TEST_LOSS, M_ACC43_COMP, M_ACC43_SYM, M_ACC_SEEN, M_COUNT };
static const ach_metric_def composite_metrics[M_COUNT] = {
    {TASK_METRIC_TEST_LOSS, "test", "mean cross-entropy over the test split", 0, 9, 4},
    {TASK_METRIC_ACC43_COMP, "comp43", "held-out pair 43 against the compositional answer (NaN if the test split lacks it)", 1, 6, 3},
    {TASK_METRIC_ACC43_SYM, "sym43", "held-out pair 43 against the symmetric answer (NaN if the test split lacks it)", 1, 6, 3},
    {TASK_METRIC_ACC_SEEN, "seen", "accuracy over the test split's pairs seen in training", 1, 6, 3},
};

typedef struct {
    double loss;
    long n;
    long correct[TASK_MAX_PAIRS], comp[TASK_MAX_PAIRS], sym[TASK_MAX_PAIRS], count[TASK_MAX_PAIRS];
} composite_acc;

static void composite_score_add(const ach_task *t, void *accp, const int32_t *labels, const ach_seq_info *info,
                                const int32_t *pred, int n, double loss_sum)
{
    composite_acc *acc = accp;
    acc->loss += loss_sum;
    acc->n += n;
    for (int b = 0; b < n; b++) {
        int p = info[b].pair;
        acc->count[p]++;
        acc->correct[p] += pred[b] == labels[b];
        acc->comp[p] += pred[b] == info[b].label_comp;
        acc->sym[p] += pred[b] == info[b].label_sym;
    }
}

/* Per pair in the split's layout order, the seen pairs pooled, and pair 43
 * against both of its answers. */
static void composite_score_end(const ach_task *t, int split, const void *accp, ach_named_metrics *out)
{
    const composite_acc *acc = accp;
    const ach_split *sp = &t->split[split];
    long seen_ok = 0, seen_n = 0;
    int held = task_pair_index(t, 4, 3);
    out->kind = &task_kind_composite;
    for (int i = 0; i < TASK_MAX_METRICS; i++) out->value[i] = NAN;
    out->value[M_TEST_LOSS] = acc->n ? acc->loss / acc->n : NAN;
    out->ngroups = sp->npairs;
    for (int i = 0; i < sp->npairs; i++) {
        int p = sp->pairs[i];
        out->group_value[i] = acc->count[p] ? (double)acc->correct[p] / acc->count[p] : NAN;
        task_pair_name(t, p, out->group_name[i], sizeof out->group_name[i]);
        if (!t->pairs[p].held_out) seen_ok += acc->correct[p], seen_n += acc->count[p];
        if (p == held && acc->count[p]) {
            out->value[M_ACC43_COMP] = (double)acc->comp[p] / acc->count[p];
            out->value[M_ACC43_SYM] = (double)acc->sym[p] / acc->count[p];
        }
    }
    out->value[M_ACC_SEEN] = seen_n ? (double)seen_ok / seen_n : NAN;
}

const ach_task_kind task_kind_composite = {
    .name = "composite",
    .summary = "a key, two anchor tokens and noise; the label is the key plus the anchors' shift (docs/science.md §1)",
    .shape = EXAMPLE_TOKENS,
    .nsplits = 2,
    .split_names = composite_splits,
    .parse = composite_parse,
    .split_size = task_split_size,
    .example = task_sequence,
    .nmetrics = M_COUNT,
    .metrics = composite_metrics,
    .group_key = "acc_pair",
    .group_column = "acc_",
    .score_size = sizeof(composite_acc),
    .score_add = composite_score_add,
    .score_end = composite_score_end,
};
