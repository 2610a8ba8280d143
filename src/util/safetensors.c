/* safetensors reader and writer. The reader trusts nothing in the file: every
 * size and offset is checked before it is used, so hostile bytes give an
 * error message, never an out-of-bounds read. */
#include "safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Tensor bytes are handed out as-is, so host order must be file order. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c assumes a little-endian host"
#endif

#if defined(__GNUC__)
#define ST_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define ST_PRINTF(f, a)
#endif

/* Same cap as the reference implementation: a bigger header is garbage. */
#define MAX_HEADER ((uint64_t)100000000)
/* Doubles hold every integer up to 2^53; past that JSON numbers are lossy. */
#define MAX_JSON_INT 9007199254740992.0

static const struct {
    const char *name;
    size_t size;
    st_dtype dtype;
} dtypes[] = {
    {"F32", 4, ST_F32},      {"F64", 8, ST_F64},      {"I32", 4, ST_I32},
    {"I64", 8, ST_I64},      {"BOOL", 1, ST_OTHER},   {"U8", 1, ST_OTHER},
    {"I8", 1, ST_OTHER},     {"F8_E4M3", 1, ST_OTHER}, {"F8_E5M2", 1, ST_OTHER},
    {"F16", 2, ST_OTHER},    {"BF16", 2, ST_OTHER},   {"I16", 2, ST_OTHER},
    {"U16", 2, ST_OTHER},    {"U32", 4, ST_OTHER},    {"U64", 8, ST_OTHER},
};
#define NDTYPES (sizeof dtypes / sizeof dtypes[0])

/* Where messages go and which file they name. */
typedef struct {
    const char *path;
    char *err;
    size_t errlen;
} ctx;

/* "PATH: tensor 'NAME': message" (the tensor part only if given); returns -1. */
ST_PRINTF(3, 4)
static int fail(const ctx *c, const char *tensor, const char *fmt, ...)
{
    if (!c->err || !c->errlen) return -1;
    int k = tensor ? snprintf(c->err, c->errlen, "%s: tensor '%.64s': ", c->path, tensor)
                   : snprintf(c->err, c->errlen, "%s: ", c->path);
    if (k >= 0 && (size_t)k < c->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->err + k, c->errlen - (size_t)k, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* Returns the offset of the first invalid UTF-8 sequence, or n. */
static size_t utf8_check(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint32_t c = s[i], min;
        size_t len;
        if (c < 0x80) { i++; continue; }
        if ((c & 0xE0) == 0xC0) { len = 2; min = 0x80; c &= 0x1F; }
        else if ((c & 0xF0) == 0xE0) { len = 3; min = 0x800; c &= 0x0F; }
        else if ((c & 0xF8) == 0xF0) { len = 4; min = 0x10000; c &= 0x07; }
        else return i;
        if (n - i < len) return i;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return i;
            c = c << 6 | (s[i + k] & 0x3F);
        }
        /* Overlong forms, surrogates and beyond-Unicode are not UTF-8. */
        if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) return i;
        i += len;
    }
    return n;
}

/* A JSON number that is an exact non-negative integer. */
static int json_uint(const cJSON *j, uint64_t *v)
{
    if (!cJSON_IsNumber(j)) return 0;
    double d = j->valuedouble;
    if (!(d >= 0 && d <= MAX_JSON_INT)) return 0;
    *v = (uint64_t)d;
    return (double)*v == d;
}

/* The member KEY of OBJ; *dup is set if it occurs more than once (cJSON keeps
 * duplicates, and silently taking the first would hide a corrupt header). */
static const cJSON *member(const cJSON *obj, const char *key, int *dup)
{
    const cJSON *hit = NULL;
    for (const cJSON *m = obj->child; m; m = m->next)
        if (m->string && !strcmp(m->string, key)) {
            if (hit) *dup = 1;
            hit = m;
        }
    return hit;
}

/* "[2, 3]" into buf, for messages. */
static const char *fmt_shape(char *buf, size_t len, const int64_t *shape, int ndim)
{
    size_t k = 0;
    k += (size_t)snprintf(buf, len, "[");
    for (int i = 0; i < ndim && k < len; i++)
        k += (size_t)snprintf(buf + k, len - k, "%s%" PRId64, i ? ", " : "", shape[i]);
    if (k < len) snprintf(buf + k, len - k, "]");
    return buf;
}

/* Element count times element size, or -1 on overflow. A zero dim makes the
 * tensor empty even if the other dims' product would overflow. */
static int byte_size(const int64_t *shape, int ndim, size_t elsize, uint64_t *bytes)
{
    uint64_t p = 1;
    for (int i = 0; i < ndim; i++)
        if (shape[i] == 0) { *bytes = 0; return 0; }
    for (int i = 0; i < ndim; i++) {
        uint64_t d = (uint64_t)shape[i];
        if (p > UINT64_MAX / d) return -1;
        p *= d;
    }
    if (p > UINT64_MAX / elsize) return -1;
    *bytes = p * elsize;
    return 0;
}

/* Fills t (name already set) from its JSON entry and checks it against the
 * data buffer length; coverage across tensors is checked later. */
static int parse_tensor(const ctx *c, const cJSON *j, st_tensor *t, size_t data_len)
{
    const char *nm = t->name;
    char sh[256];
    int dup = 0;
    if (!cJSON_IsObject(j)) return fail(c, nm, "entry is not an object");

    const cJSON *dt = member(j, "dtype", &dup);
    const cJSON *shape = member(j, "shape", &dup);
    const cJSON *offs = member(j, "data_offsets", &dup);
    if (dup) return fail(c, nm, "entry has a duplicate field");
    if (!dt) return fail(c, nm, "missing \"dtype\"");
    if (!cJSON_IsString(dt)) return fail(c, nm, "\"dtype\" is not a string");
    size_t d = 0;
    while (d < NDTYPES && strcmp(dtypes[d].name, dt->valuestring)) d++;
    if (d == NDTYPES) return fail(c, nm, "unknown dtype '%.32s'", dt->valuestring);
    t->dtype = dtypes[d].dtype;
    snprintf(t->dtype_name, sizeof t->dtype_name, "%s", dtypes[d].name);

    if (!shape) return fail(c, nm, "missing \"shape\"");
    if (!cJSON_IsArray(shape)) return fail(c, nm, "\"shape\" is not an array");
    int ndim = cJSON_GetArraySize(shape);
    if (ndim > ST_MAX_DIMS)
        return fail(c, nm, "shape has %d dims (at most %d supported)", ndim, ST_MAX_DIMS);
    t->ndim = 0;
    for (const cJSON *x = shape->child; x; x = x->next) {
        uint64_t v;
        if (!json_uint(x, &v))
            return fail(c, nm, "shape[%d] is not a non-negative integer", t->ndim);
        t->shape[t->ndim++] = (int64_t)v;
    }
    fmt_shape(sh, sizeof sh, t->shape, t->ndim);
    uint64_t need;
    if (byte_size(t->shape, t->ndim, dtypes[d].size, &need))
        return fail(c, nm, "shape %s is too large (byte size overflows)", sh);

    uint64_t b, e;
    if (!offs) return fail(c, nm, "missing \"data_offsets\"");
    if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2 ||
        !json_uint(offs->child, &b) || !json_uint(offs->child->next, &e))
        return fail(c, nm, "\"data_offsets\" is not an array of two non-negative integers");
    if (b > e)
        return fail(c, nm, "data_offsets [%" PRIu64 ", %" PRIu64 "] has begin > end", b, e);
    if (e > data_len)
        return fail(c, nm, "data_offsets [%" PRIu64 ", %" PRIu64 "] out of range (data is %zu bytes)",
                    b, e, data_len);
    if (e - b != need)
        return fail(c, nm, "shape %s of %s needs %" PRIu64 " bytes but data_offsets [%" PRIu64
                    ", %" PRIu64 "] span %" PRIu64, sh, t->dtype_name, need, b, e, e - b);
    t->begin = (size_t)b;
    t->end = (size_t)e;
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* A name that occurs twice in names (which gets sorted), or NULL. */
static const char *find_dup(const char **names, int n)
{
    qsort(names, (size_t)n, sizeof *names, cmp_str);
    for (int i = 1; i < n; i++)
        if (!strcmp(names[i - 1], names[i])) return names[i];
    return NULL;
}

static int cmp_begin(const void *a, const void *b)
{
    const st_tensor *x = *(const st_tensor *const *)a, *y = *(const st_tensor *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

/* Names are unique and the tensors tile [0, data_len) with no overlap and no
 * hole, as the format requires. */
static int check_layout(const ctx *c, const st_file *f)
{
    size_t n = (size_t)f->n;
    const st_tensor **by = malloc((n ? n : 1) * sizeof *by);
    const char **names = malloc((n ? n : 1) * sizeof *names);
    int rc = -1;
    if (!by || !names) { fail(c, NULL, "out of memory"); goto out; }
    for (size_t i = 0; i < n; i++) {
        by[i] = &f->tensors[i];
        names[i] = f->tensors[i].name;
    }
    const char *dup = find_dup(names, f->n);
    if (dup) { fail(c, dup, "duplicate tensor name"); goto out; }

    qsort(by, n, sizeof *by, cmp_begin);
    size_t pos = 0;
    for (size_t i = 0; i < n; i++) {
        const st_tensor *t = by[i];
        if (t->begin < pos) {
            fail(c, t->name, "data_offsets [%zu, %zu] overlap tensor '%.64s' [%zu, %zu]",
                 t->begin, t->end, by[i - 1]->name, by[i - 1]->begin, by[i - 1]->end);
            goto out;
        }
        if (t->begin > pos) {
            fail(c, NULL, "data not fully covered: gap [%zu, %zu) before tensor '%.64s'",
                 pos, t->begin, t->name);
            goto out;
        }
        pos = t->end;
    }
    if (pos != f->data_len) {
        fail(c, NULL, "data not fully covered: bytes [%zu, %zu) belong to no tensor", pos,
             f->data_len);
        goto out;
    }
    rc = 0;
out:
    free(by);
    free(names);
    return rc;
}

/* Copies the __metadata__ object's string pairs into f. */
static int parse_meta(const ctx *c, const cJSON *m, st_file *f)
{
    if (!cJSON_IsObject(m)) return fail(c, NULL, "__metadata__ is not an object");
    int n = cJSON_GetArraySize(m);
    f->meta_keys = calloc((size_t)(n ? n : 1), sizeof *f->meta_keys);
    f->meta_vals = calloc((size_t)(n ? n : 1), sizeof *f->meta_vals);
    if (!f->meta_keys || !f->meta_vals) return fail(c, NULL, "out of memory");
    for (const cJSON *x = m->child; x; x = x->next) {
        if (!cJSON_IsString(x))
            return fail(c, NULL, "__metadata__ key '%.64s': value is not a string", x->string);
        int i = f->nmeta++;
        f->meta_keys[i] = strdup(x->string);
        f->meta_vals[i] = strdup(x->valuestring);
        if (!f->meta_keys[i] || !f->meta_vals[i]) return fail(c, NULL, "out of memory");
    }
    const char **keys = malloc((size_t)(n ? n : 1) * sizeof *keys);
    if (!keys) return fail(c, NULL, "out of memory");
    memcpy(keys, f->meta_keys, (size_t)n * sizeof *keys);
    const char *dup = find_dup(keys, n);
    int rc = dup ? fail(c, NULL, "__metadata__ key '%.64s': duplicate key", dup) : 0;
    free(keys);
    return rc;
}

/* Fills f from the parsed header; data_len is already set. */
static int parse_header(const ctx *c, const cJSON *root, st_file *f)
{
    if (!cJSON_IsObject(root)) return fail(c, NULL, "header is not a JSON object");
    int n = 0, nmeta = 0;
    for (const cJSON *x = root->child; x; x = x->next)
        if (strcmp(x->string, "__metadata__")) n++;
        else if (nmeta++) return fail(c, NULL, "duplicate __metadata__");
    f->tensors = calloc((size_t)(n ? n : 1), sizeof *f->tensors);
    if (!f->tensors) return fail(c, NULL, "out of memory");
    for (const cJSON *x = root->child; x; x = x->next) {
        if (!strcmp(x->string, "__metadata__")) {
            if (parse_meta(c, x, f)) return -1;
            continue;
        }
        st_tensor *t = &f->tensors[f->n++];
        if (!(t->name = strdup(x->string))) return fail(c, NULL, "out of memory");
        if (parse_tensor(c, x, t, f->data_len)) return -1;
    }
    return check_layout(c, f);
}

/* The whole file into a malloc block; *len is its size. */
static unsigned char *slurp(const ctx *c, size_t *len)
{
    FILE *fp = fopen(c->path, "rb");
    if (!fp) { fail(c, NULL, "cannot open: %s", strerror(errno)); return NULL; }
    struct stat sb;
    unsigned char *buf = NULL;
    if (fstat(fileno(fp), &sb)) { fail(c, NULL, "cannot stat: %s", strerror(errno)); goto out; }
    if (!S_ISREG(sb.st_mode)) { fail(c, NULL, "not a regular file"); goto out; }
    if ((uintmax_t)sb.st_size > SIZE_MAX - 1) { fail(c, NULL, "file too large"); goto out; }
    *len = (size_t)sb.st_size;
    if (!(buf = malloc(*len ? *len : 1))) { fail(c, NULL, "out of memory"); goto out; }
    if (fread(buf, 1, *len, fp) != *len) {
        fail(c, NULL, "read error (file changed or unreadable)");
        free(buf);
        buf = NULL;
    }
out:
    fclose(fp);
    return buf;
}

int st_load(const char *path, st_file *out, char *err, size_t errlen)
{
    const ctx c = {path, err, errlen};
    memset(out, 0, sizeof *out);
    size_t size = 0;
    unsigned char *buf = slurp(&c, &size);
    if (!buf) return -1;
    char *hdr = NULL;
    cJSON *root = NULL;
    int rc = -1;

    if (size < 8) {
        fail(&c, NULL, "file is %zu bytes, too short for the 8-byte header size", size);
        goto out;
    }
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | buf[i];
    if (hlen > MAX_HEADER) {
        fail(&c, NULL, "header size %" PRIu64 " is absurdly large (limit %" PRIu64 ")", hlen,
             MAX_HEADER);
        goto out;
    }
    if (hlen > size - 8) {
        fail(&c, NULL, "header size %" PRIu64 " exceeds the %zu bytes after it", hlen, size - 8);
        goto out;
    }
    size_t bad = utf8_check(buf + 8, (size_t)hlen);
    if (bad != hlen) {
        fail(&c, NULL, "header is not valid UTF-8 (at header byte %zu)", bad);
        goto out;
    }
    /* A NUL-terminated copy, so the parser cannot run off the end. */
    if (!(hdr = malloc((size_t)hlen + 1))) { fail(&c, NULL, "out of memory"); goto out; }
    memcpy(hdr, buf + 8, (size_t)hlen);
    hdr[hlen] = 0;
    const char *end = NULL;
    root = cJSON_ParseWithLengthOpts(hdr, (size_t)hlen, &end, 0);
    if (!root) {
        fail(&c, NULL, "header is not valid JSON (error at header byte %td)", end ? end - hdr : 0);
        goto out;
    }
    for (; end < hdr + hlen; end++)
        if (!strchr(" \t\r\n", *end) || !*end) {
            fail(&c, NULL, "header has trailing bytes after the JSON (at header byte %td)",
                 end - hdr);
            goto out;
        }

    out->data_len = size - 8 - (size_t)hlen;
    if (parse_header(&c, root, out)) goto out;
    /* Move the data to the block's start: malloc alignment, header freed. */
    memmove(buf, buf + 8 + hlen, out->data_len);
    unsigned char *shrunk = realloc(buf, out->data_len ? out->data_len : 1);
    out->data = shrunk ? shrunk : buf;
    buf = NULL;
    rc = 0;
out:
    cJSON_Delete(root);
    free(hdr);
    free(buf);
    if (rc) st_free(out);
    return rc;
}

void st_free(st_file *f)
{
    for (int i = 0; i < f->n; i++) free(f->tensors[i].name);
    free(f->tensors);
    /* Entries past a failed strdup are NULL (calloc), so this is safe. */
    for (int i = 0; i < f->nmeta; i++) {
        free(f->meta_keys[i]);
        free(f->meta_vals[i]);
    }
    free(f->meta_keys);
    free(f->meta_vals);
    free(f->data);
    memset(f, 0, sizeof *f);
}

const st_tensor *st_find(const st_file *f, const char *name)
{
    for (int i = 0; i < f->n; i++)
        if (!strcmp(f->tensors[i].name, name)) return &f->tensors[i];
    return NULL;
}

const char *st_meta(const st_file *f, const char *key)
{
    for (int i = 0; i < f->nmeta; i++)
        if (!strcmp(f->meta_keys[i], key)) return f->meta_vals[i];
    return NULL;
}

const void *st_data(const st_file *f, const st_tensor *t)
{
    return f->data + t->begin;
}

size_t st_numel(const st_tensor *t)
{
    size_t p = 1;
    for (int i = 0; i < t->ndim; i++) p *= (size_t)t->shape[i];
    return p;
}

/* ---- writer ---- */

static const char *dtype_name(st_dtype dt, size_t *size)
{
    for (size_t d = 0; d < NDTYPES; d++)
        if (dtypes[d].dtype == dt && dt != ST_OTHER) {
            *size = dtypes[d].size;
            return dtypes[d].name;
        }
    return NULL;
}

/* Checks the entries and builds the JSON header; sizes[i] gets entry i's
 * byte count. Numbers go in as raw text so that offsets past 2^31 print as
 * plain integers (cJSON would print large doubles in exponent form). */
static char *build_header(const ctx *c, const st_entry *e, int n, const char *const *mk,
                          const char *const *mv, int nmeta, uint64_t *sizes)
{
    cJSON *root = cJSON_CreateObject();
    char *json = NULL;
    if (!root) { fail(c, NULL, "out of memory"); return NULL; }
    if (nmeta > 0) {
        cJSON *m = cJSON_AddObjectToObject(root, "__metadata__");
        if (!m) { fail(c, NULL, "out of memory"); goto out; }
        for (int i = 0; i < nmeta; i++) {
            if (!mk || !mv || !mk[i] || !mv[i]) { fail(c, NULL, "metadata %d is NULL", i); goto out; }
            for (int k = 0; k < i; k++)
                if (!strcmp(mk[k], mk[i])) {
                    fail(c, NULL, "__metadata__ key '%.64s': duplicate key", mk[i]);
                    goto out;
                }
            if (!cJSON_AddStringToObject(m, mk[i], mv[i])) { fail(c, NULL, "out of memory"); goto out; }
        }
    }
    uint64_t pos = 0;
    for (int i = 0; i < n; i++) {
        const char *nm = e[i].name;
        size_t elsize;
        const char *dt = dtype_name(e[i].dtype, &elsize);
        char buf[64], sh[256];
        if (!nm) { fail(c, NULL, "entry %d has no name", i); goto out; }
        if (!strcmp(nm, "__metadata__")) { fail(c, nm, "reserved name"); goto out; }
        for (int k = 0; k < i; k++)
            if (!strcmp(e[k].name, nm)) { fail(c, nm, "duplicate tensor name"); goto out; }
        if (!dt) { fail(c, nm, "cannot save dtype %d", (int)e[i].dtype); goto out; }
        if (e[i].ndim < 0 || e[i].ndim > ST_MAX_DIMS) {
            fail(c, nm, "ndim %d out of range [0, %d]", e[i].ndim, ST_MAX_DIMS);
            goto out;
        }
        for (int k = 0; k < e[i].ndim; k++)
            if (e[i].shape[k] < 0) { fail(c, nm, "shape[%d] is negative", k); goto out; }
        fmt_shape(sh, sizeof sh, e[i].shape, e[i].ndim);
        if (byte_size(e[i].shape, e[i].ndim, elsize, &sizes[i]) || sizes[i] > UINT64_MAX - pos) {
            fail(c, nm, "shape %s is too large (byte size overflows)", sh);
            goto out;
        }
        if (sizes[i] && !e[i].data) { fail(c, nm, "data is NULL"); goto out; }
        snprintf(buf, sizeof buf, "[%" PRIu64 ",%" PRIu64 "]", pos, pos + sizes[i]);
        pos += sizes[i];
        /* fmt_shape's ", " separators are valid JSON too. */
        cJSON *t = cJSON_AddObjectToObject(root, nm);
        if (!t || !cJSON_AddStringToObject(t, "dtype", dt) || !cJSON_AddRawToObject(t, "shape", sh) ||
            !cJSON_AddRawToObject(t, "data_offsets", buf)) {
            fail(c, NULL, "out of memory");
            goto out;
        }
    }
    if (!(json = cJSON_PrintUnformatted(root))) fail(c, NULL, "out of memory");
out:
    cJSON_Delete(root);
    return json;
}

/* Makes the rename durable. Best effort: some filesystems refuse to fsync a
 * directory, and the file itself is already safely on disk. */
static void sync_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
    if (!dir) return;
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    free(dir);
}

int st_save(const char *path, const st_entry *e, int n, const char *const *meta_keys,
            const char *const *meta_vals, int nmeta, char *err, size_t errlen)
{
    const ctx c = {path, err, errlen};
    uint64_t *sizes = calloc((size_t)(n > 0 ? n : 1), sizeof *sizes);
    char *json = NULL, *tmp = NULL;
    FILE *fp = NULL;
    int rc = -1, created = 0;
    if (n < 0 || nmeta < 0) { fail(&c, NULL, "negative count"); goto out; }
    if (!sizes) { fail(&c, NULL, "out of memory"); goto out; }
    if (!(json = build_header(&c, e, n, meta_keys, meta_vals, nmeta, sizes))) goto out;

    size_t len = strlen(json), padded = (len + 7) & ~(size_t)7;
    unsigned char hsize[8];
    for (int i = 0; i < 8; i++) hsize[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    if (!(tmp = malloc(strlen(path) + 5))) { fail(&c, NULL, "out of memory"); goto out; }
    sprintf(tmp, "%s.tmp", path);
    if (!(fp = fopen(tmp, "wb"))) {
        fail(&c, NULL, "cannot create %s: %s", tmp, strerror(errno));
        goto out;
    }
    created = 1;
    int ok = fwrite(hsize, 1, 8, fp) == 8 && fwrite(json, 1, len, fp) == len;
    for (size_t i = len; ok && i < padded; i++) ok = fputc(' ', fp) != EOF;
    for (int i = 0; ok && i < n; i++)
        ok = !sizes[i] || fwrite(e[i].data, 1, (size_t)sizes[i], fp) == sizes[i];
    if (!ok || fflush(fp) || fsync(fileno(fp))) {
        fail(&c, NULL, "cannot write %s: %s", tmp, strerror(errno));
        goto out;
    }
    int closed = fclose(fp);
    fp = NULL;
    if (closed) { fail(&c, NULL, "cannot write %s: %s", tmp, strerror(errno)); goto out; }
    if (rename(tmp, path)) {
        fail(&c, NULL, "cannot rename %s over it: %s", tmp, strerror(errno));
        goto out;
    }
    created = 0;
    sync_dir(path);
    rc = 0;
out:
    if (fp) fclose(fp);
    if (created) unlink(tmp);
    free(tmp);
    free(json);
    free(sizes);
    return rc;
}
