/* safetensors reader/writer: round trips, the on-disk layout, and one crafted
 * bad file per validation rule, plus truncated and mutated files that must
 * fail cleanly (run under -fsanitize=address to catch stray reads). */
#include "safetensors.h"
#include "tap.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[64];

static void path_of(char *buf, size_t len, const char *name)
{
    snprintf(buf, len, "%s/%s", dir, name);
}

static void write_bytes(const char *path, const void *b, size_t n)
{
    FILE *fp = fopen(path, "wb");
    if (!fp || fwrite(b, 1, n, fp) != n || fclose(fp)) {
        perror(path);
        exit(2);
    }
}

static unsigned char *read_bytes(const char *path, size_t *n)
{
    FILE *fp = fopen(path, "rb");
    static unsigned char buf[1 << 16];
    if (!fp) return NULL;
    *n = fread(buf, 1, sizeof buf, fp);
    fclose(fp);
    return buf;
}

static void put_u64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}

/* Header size hsize (normally strlen(json)), json, then data_len zero bytes. */
static void write_st(const char *path, uint64_t hsize, const char *json, size_t data_len)
{
    size_t jl = strlen(json);
    unsigned char *b = calloc(1, 8 + jl + data_len);
    put_u64(b, hsize);
    memcpy(b + 8, json, jl);
    write_bytes(path, b, 8 + jl + data_len);
    free(b);
}

/* st_load must fail, leave *out empty, and name the file and the problem. */
static void check_fail(const char *path, const char *want, const char *what)
{
    char err[512] = "";
    st_file f;
    memset(&f, 0x5a, sizeof f);
    int rc = st_load(path, &f, err, sizeof err);
    int good = rc == -1 && strstr(err, path) && strstr(err, want) && !f.tensors && !f.n &&
               !f.data && !f.meta_keys;
    if (!ok(good, "rejects %s", what)) diag("rc %d, err: %s (want '%s')", rc, err, want);
}

static void bad_json(const char *json, size_t data_len, const char *want, const char *what)
{
    char path[128];
    static int k;
    char name[32];
    snprintf(name, sizeof name, "bad%d.safetensors", k++);
    path_of(path, sizeof path, name);
    write_st(path, strlen(json), json, data_len);
    check_fail(path, want, what);
}

#define ENT(name, dt, shape, off) \
    "\"" name "\":{\"dtype\":\"" dt "\",\"shape\":" shape ",\"data_offsets\":" off "}"

static void test_bad_files(void)
{
    char path[128];
    unsigned char b[16] = {0};

    path_of(path, sizeof path, "empty.safetensors");
    write_bytes(path, "", 0);
    check_fail(path, "too short", "an empty file");
    path_of(path, sizeof path, "short.safetensors");
    write_bytes(path, "abcde", 5);
    check_fail(path, "too short", "a file shorter than 8 bytes");

    path_of(path, sizeof path, "hsize.safetensors");
    write_st(path, 1000, "{}", 0);
    check_fail(path, "header size 1000 exceeds", "a header size larger than the file");
    path_of(path, sizeof path, "huge.safetensors");
    put_u64(b, 200000000);
    write_bytes(path, b, 8);
    check_fail(path, "absurdly large", "a header size over 100 MB");
    put_u64(b, UINT64_MAX);
    write_bytes(path, b, 16);
    check_fail(path, "header size", "a header size of 2^64-1");
    path_of(path, sizeof path, "zero.safetensors");
    write_st(path, 0, "", 4);
    check_fail(path, "not valid JSON", "a zero-length header");

    bad_json("{\"a\":", 0, "not valid JSON", "a truncated JSON header");
    bad_json("{\"a\" 1}", 0, "not valid JSON", "malformed JSON");
    bad_json("[1,2]", 0, "not a JSON object", "a JSON array header");
    bad_json("\"x\"", 0, "not a JSON object", "a JSON string header");
    bad_json("{\"\xff\":1}", 0, "UTF-8", "a header that is not UTF-8");
    bad_json("{\"\xc0\xaf\":1}", 0, "UTF-8", "an overlong UTF-8 sequence");
    bad_json("{} x", 0, "trailing", "trailing garbage after the JSON");
    {
        /* A NUL inside the header must not end it early. */
        char nul[] = "{}\0 ";
        path_of(path, sizeof path, "nul.safetensors");
        unsigned char fb[12];
        put_u64(fb, 4);
        memcpy(fb + 8, nul, 4);
        write_bytes(path, fb, 12);
        check_fail(path, "trailing", "a NUL byte in the header padding");
    }

    bad_json("{\"a\":3}", 0, "tensor 'a': entry is not an object", "a tensor entry that is a number");
    bad_json("{\"a\":[1]}", 0, "entry is not an object", "a tensor entry that is an array");
    bad_json("{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "missing \"dtype\"",
             "a missing dtype");
    bad_json("{\"a\":{\"dtype\":4,\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
             "\"dtype\" is not a string", "a numeric dtype");
    bad_json("{" ENT("a", "Q7", "[1]", "[0,4]") "}", 4, "unknown dtype 'Q7'", "an unknown dtype");
    bad_json("{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, "missing \"shape\"",
             "a missing shape");
    bad_json("{" ENT("a", "F32", "4", "[0,4]") "}", 4, "\"shape\" is not an array",
             "a shape that is a number");
    bad_json("{" ENT("a", "F32", "[-1]", "[0,4]") "}", 4, "shape[0] is not a non-negative integer",
             "a negative dim");
    bad_json("{" ENT("a", "F32", "[2,1.5]", "[0,12]") "}", 12,
             "shape[1] is not a non-negative integer", "a fractional dim");
    bad_json("{" ENT("a", "F32", "[\"2\"]", "[0,8]") "}", 8, "shape[0] is not a non-negative integer",
             "a string dim");
    bad_json("{" ENT("a", "F32", "[1e300]", "[0,8]") "}", 8, "shape[0] is not a non-negative integer",
             "a dim beyond 2^53");
    bad_json("{" ENT("a", "U8", "[1,1,1,1,1,1,1,1,1]", "[0,1]") "}", 1, "9 dims", "too many dims");
    bad_json("{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, "missing \"data_offsets\"",
             "missing data_offsets");
    bad_json("{" ENT("a", "F32", "[1]", "[0]") "}", 4, "array of two", "a one-element data_offsets");
    bad_json("{" ENT("a", "F32", "[1]", "[0,4,8]") "}", 4, "array of two",
             "a three-element data_offsets");
    bad_json("{" ENT("a", "F32", "[1]", "[0,4.5]") "}", 4, "array of two",
             "a fractional data offset");
    bad_json("{" ENT("a", "F32", "[1]", "{}") "}", 4, "array of two", "data_offsets as an object");
    bad_json("{" ENT("a", "F32", "[1]", "[-4,0]") "}", 4, "array of two", "a negative data offset");
    bad_json("{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
             "duplicate field", "a field given twice");
    bad_json("{" ENT("a", "F32", "[0]", "[8,4]") "}", 8, "begin > end", "begin > end");
    bad_json("{" ENT("x.weight", "F32", "[24]", "[0,96]") "}", 64,
             "tensor 'x.weight': data_offsets [0, 96] out of range (data is 64 bytes)",
             "data_offsets past the data");
    bad_json("{" ENT("a", "F32", "[2,3]", "[0,20]") "}", 20, "needs 24 bytes",
             "a shape that does not match the byte span");
    bad_json("{" ENT("a", "BF16", "[3]", "[0,8]") "}", 8, "needs 6 bytes",
             "a BF16 shape that does not match the byte span");
    bad_json("{" ENT("a", "F32", "[4294967296,4294967296,4294967296]", "[0,4]") "}", 4, "overflows",
             "a shape whose size overflows");
    bad_json("{" ENT("a", "F32", "[2]", "[0,8]") "," ENT("b", "F32", "[2]", "[4,12]") "}", 12,
             "overlap", "overlapping tensors");
    bad_json("{" ENT("a", "F32", "[2]", "[0,8]") "," ENT("b", "U8", "[0]", "[4,4]") "}", 8,
             "overlap", "an empty tensor inside another");
    bad_json("{" ENT("a", "F32", "[1]", "[0,4]") "," ENT("b", "F32", "[1]", "[8,12]") "}", 12,
             "gap [4, 8)", "a gap between tensors");
    bad_json("{" ENT("a", "F32", "[1]", "[4,8]") "}", 8, "gap [0, 4)", "data not starting at 0");
    bad_json("{" ENT("a", "F32", "[1]", "[0,4]") "}", 8, "not fully covered",
             "trailing data no tensor covers");
    bad_json("{}", 4, "not fully covered", "data with no tensors");
    bad_json("{" ENT("a", "F32", "[1]", "[0,4]") "," ENT("a", "F32", "[1]", "[4,8]") "}", 8,
             "tensor 'a': duplicate tensor name", "a duplicate tensor name");
    bad_json("{\"__metadata__\":\"x\"}", 0, "__metadata__ is not an object",
             "__metadata__ that is a string");
    bad_json("{\"__metadata__\":{\"k\":1}}", 0, "key 'k': value is not a string",
             "a non-string metadata value");
    bad_json("{\"__metadata__\":{\"k\":null}}", 0, "not a string", "a null metadata value");
    bad_json("{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}", 0, "duplicate key",
             "a duplicate metadata key");
    bad_json("{\"__metadata__\":{},\"__metadata__\":{}}", 0, "duplicate __metadata__",
             "__metadata__ given twice");

    path_of(path, sizeof path, "missing.safetensors");
    check_fail(path, "No such file", "a nonexistent path");
    check_fail(dir, "not a regular file", "a directory");
}

/* Files that are unusual but valid. */
static void test_good_files(void)
{
    char path[128], err[512] = "";
    st_file f;

    path_of(path, sizeof path, "good.safetensors");
    write_st(path, 2, "{}", 0);
    ok(st_load(path, &f, err, sizeof err) == 0 && f.n == 0 && f.data_len == 0 && f.nmeta == 0,
       "loads an empty file '{}'");
    st_free(&f);

    const char *j = "{" ENT("h", "BF16", "[3]", "[0,6]") "," ENT("s", "F64", "[]", "[6,14]") ","
                    ENT("z", "I64", "[0,5]", "[14,14]") "," ENT("b", "BOOL", "[2]", "[14,16]")
                    ",\"__metadata__\":{}}      ";
    write_st(path, strlen(j), j, 16);
    int rc = st_load(path, &f, err, sizeof err);
    if (!ok(rc == 0, "loads BF16, a scalar, an empty tensor and space padding")) diag("%s", err);
    const st_tensor *h = rc ? NULL : st_find(&f, "h");
    ok(h && h->dtype == ST_OTHER && !strcmp(h->dtype_name, "BF16") && st_numel(h) == 3,
       "BF16 loads as ST_OTHER with its name");
    const st_tensor *s = rc ? NULL : st_find(&f, "s");
    ok(s && s->dtype == ST_F64 && s->ndim == 0 && st_numel(s) == 1 && s->begin == 6,
       "a scalar has ndim 0 and one element");
    const st_tensor *z = rc ? NULL : st_find(&f, "z");
    ok(z && z->ndim == 2 && st_numel(z) == 0 && z->begin == z->end, "an empty tensor has no bytes");
    ok(!rc && f.nmeta == 0 && !st_meta(&f, "x"), "empty __metadata__ gives no keys");
    ok(!rc && !st_find(&f, "nope"), "st_find misses an absent name");
    st_free(&f);
    ok(f.n == 0 && !f.tensors && !f.data, "st_free empties the struct");
    st_free(&f);
}

static void test_round_trip(void)
{
    char path[128], tmp[140], err[512] = "";
    float w[6] = {1.5f, -2.25f, 3, 0, 1e-30f, 6};
    int32_t ids[4] = {7, -1, INT32_MAX, INT32_MIN};
    int64_t step = 123456789012345;
    double lr = 3e-4;
    st_entry e[] = {
        {"layers.0.w", ST_F32, 2, {2, 3}, w},
        {"ids", ST_I32, 1, {4}, ids},
        {"step", ST_I64, 0, {0}, &step},
        {"lr", ST_F64, 1, {1}, &lr},
        {"empty", ST_F32, 2, {0, 7}, NULL},
    };
    const char *mk[] = {"format", "config"}, *mv[] = {"pt", "{\"d_model\": 64, \"name\": \"\xc3\xa9\"}"};

    path_of(path, sizeof path, "rt.safetensors");
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int rc = st_save(path, e, 5, mk, mv, 2, err, sizeof err);
    if (!ok(rc == 0, "st_save writes F32, I32, I64, F64 and an empty tensor")) diag("%s", err);
    ok(access(tmp, F_OK) != 0, "no PATH.tmp left behind");

    size_t n = 0;
    unsigned char *b = read_bytes(path, &n);
    uint64_t hs = 0;
    for (int i = 7; b && n >= 8 && i >= 0; i--) hs = hs << 8 | b[i];
    ok(b && hs % 8 == 0 && 8 + hs <= n, "header size %llu is a multiple of 8", (unsigned long long)hs);
    ok(b && hs && b[8] == '{' && (b[8 + hs - 1] == ' ' || b[8 + hs - 1] == '}') &&
           !memchr(b + 8, 0, hs), "header is a JSON object padded with spaces");
    ok(n == 8 + hs + sizeof w + sizeof ids + 8 + 8, "data is contiguous (%zu bytes)", n);

    st_file f;
    rc = st_load(path, &f, err, sizeof err);
    if (!ok(rc == 0, "st_load reads it back")) {
        diag("%s", err);
        return;
    }
    ok(f.n == 5 && !strcmp(f.tensors[0].name, "layers.0.w") && !strcmp(f.tensors[4].name, "empty"),
       "tensors come back in order");
    const st_tensor *t = st_find(&f, "layers.0.w");
    ok(t && t->dtype == ST_F32 && !strcmp(t->dtype_name, "F32") && t->ndim == 2 &&
           t->shape[0] == 2 && t->shape[1] == 3 && st_numel(t) == 6 && t->begin == 0 &&
           t->end == sizeof w, "F32 tensor: dtype, shape, offsets");
    ok(t && !memcmp(st_data(&f, t), w, sizeof w), "F32 bytes match");
    float w5;
    if (t) memcpy(&w5, (const char *)st_data(&f, t) + 5 * sizeof w5, sizeof w5);
    is_close(t ? w5 : 0, 6.0, 0, 0, "F32 element 5 reads back exactly");
    t = st_find(&f, "ids");
    ok(t && t->dtype == ST_I32 && t->ndim == 1 && t->shape[0] == 4 &&
           !memcmp(st_data(&f, t), ids, sizeof ids), "I32 tensor round-trips");
    t = st_find(&f, "step");
    ok(t && t->dtype == ST_I64 && t->ndim == 0 && !memcmp(st_data(&f, t), &step, 8),
       "I64 scalar round-trips");
    t = st_find(&f, "lr");
    ok(t && t->dtype == ST_F64 && !memcmp(st_data(&f, t), &lr, 8), "F64 tensor round-trips");
    t = st_find(&f, "empty");
    ok(t && t->ndim == 2 && t->shape[1] == 7 && st_numel(t) == 0 && t->begin == t->end,
       "empty tensor round-trips");
    ok(f.nmeta == 2 && !strcmp(f.meta_keys[0], "format") && st_meta(&f, "format") &&
           !strcmp(st_meta(&f, "format"), "pt") && st_meta(&f, "config") &&
           !strcmp(st_meta(&f, "config"), mv[1]) && !st_meta(&f, "absent"),
       "metadata round-trips, quotes and UTF-8 included");
    ok(((uintptr_t)f.data % 8) == 0, "data buffer is 8-byte aligned in memory");
    st_free(&f);

    /* Overwrite: the new contents replace the old ones. */
    w[0] = 42;
    rc = st_save(path, e, 1, NULL, NULL, 0, err, sizeof err);
    ok(rc == 0 && st_load(path, &f, err, sizeof err) == 0 && f.n == 1 && f.nmeta == 0 &&
           ((const float *)st_data(&f, &f.tensors[0]))[0] == 42, "st_save replaces an existing file");
    st_free(&f);
    ok(access(tmp, F_OK) != 0, "no PATH.tmp left after overwrite");

    /* Writer rejects what it could not write correctly, before touching disk. */
    char p2[128];
    path_of(p2, sizeof p2, "rej.safetensors");
    st_entry dup[] = {{"a", ST_F32, 1, {1}, w}, {"a", ST_F32, 1, {1}, w}};
    rc = st_save(p2, dup, 2, NULL, NULL, 0, err, sizeof err);
    ok(rc == -1 && strstr(err, "duplicate") && strstr(err, p2) && access(p2, F_OK) != 0,
       "st_save rejects duplicate names and writes nothing");
    st_entry other[] = {{"a", ST_OTHER, 1, {1}, w}};
    rc = st_save(p2, other, 1, NULL, NULL, 0, err, sizeof err);
    ok(rc == -1 && strstr(err, "tensor 'a'") && access(p2, F_OK) != 0, "st_save rejects ST_OTHER");
    st_entry neg[] = {{"a", ST_F32, 1, {-1}, w}};
    rc = st_save(p2, neg, 1, NULL, NULL, 0, err, sizeof err);
    ok(rc == -1 && strstr(err, "negative"), "st_save rejects a negative dim");
    const char *dk[] = {"k", "k"}, *dv[] = {"1", "2"};
    rc = st_save(p2, e, 1, dk, dv, 2, err, sizeof err);
    ok(rc == -1 && strstr(err, "duplicate key") && access(p2, F_OK) != 0,
       "st_save rejects a duplicate metadata key");

    char nodir[160], nodir_tmp[170];
    snprintf(nodir, sizeof nodir, "%s/no/such/dir/x.safetensors", dir);
    snprintf(nodir_tmp, sizeof nodir_tmp, "%s.tmp", nodir);
    rc = st_save(nodir, e, 1, NULL, NULL, 0, err, sizeof err);
    ok(rc == -1 && strstr(err, nodir) && strstr(err, "No such file"),
       "st_save into a missing directory fails, naming the path");
    ok(access(nodir, F_OK) != 0 && access(nodir_tmp, F_OK) != 0, "and leaves nothing");
}

/* Every truncation of a valid file fails; random byte damage never crashes
 * and anything that still loads is self-consistent. */
static void test_damage(void)
{
    char path[128], src[128], err[512];
    float w[6] = {1, 2, 3, 4, 5, 6};
    int32_t ids[3] = {1, 2, 3};
    st_entry e[] = {{"a.w", ST_F32, 2, {2, 3}, w}, {"b", ST_I32, 1, {3}, ids}};
    const char *mk[] = {"k"}, *mv[] = {"v"};
    path_of(src, sizeof src, "src.safetensors");
    path_of(path, sizeof path, "dmg.safetensors");
    if (st_save(src, e, 2, mk, mv, 1, err, sizeof err)) {
        ok(0, "write damage source: %s", err);
        return;
    }
    size_t n = 0;
    unsigned char orig[4096], buf[4096];
    unsigned char *b = read_bytes(src, &n);
    memcpy(orig, b, n);

    int bad = 0;
    st_file f;
    for (size_t len = 0; len < n; len++) {
        write_bytes(path, orig, len);
        if (st_load(path, &f, err, sizeof err) != -1 || !strstr(err, path)) bad++;
        st_free(&f);
    }
    ok(bad == 0, "all %zu truncations are rejected", n);

    static const char pick[] = "0123456789[]{},:\"-.e \\xF";
    uint32_t seed = 12345;
    int loaded = 0;
    bad = 0;
    for (int iter = 0; iter < 3000; iter++) {
        memcpy(buf, orig, n);
        for (int k = 0; k < 1 + iter % 3; k++) {
            seed = seed * 1103515245u + 12345u;
            size_t at = (seed >> 8) % n;
            seed = seed * 1103515245u + 12345u;
            buf[at] = (seed >> 16) & 1 ? (unsigned char)(seed >> 8) : (unsigned char)pick[(seed >> 8) % (sizeof pick - 1)];
        }
        write_bytes(path, buf, n);
        if (st_load(path, &f, err, sizeof err) == 0) {
            loaded++;
            size_t covered = 0;
            for (int i = 0; i < f.n; i++) {
                const st_tensor *t = &f.tensors[i];
                if (t->begin > t->end || t->end > f.data_len || st_find(&f, t->name) != t) bad++;
                covered += t->end - t->begin;
            }
            if (covered != f.data_len) bad++;
        } else if (!strstr(err, path)) {
            bad++;
        }
        st_free(&f);
    }
    ok(bad == 0, "3000 mutated files: no inconsistency (%d still loaded)", loaded);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/ach-st-XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 2;
    }
    test_round_trip();
    test_good_files();
    test_bad_files();
    test_damage();

    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd)) diag("could not remove %s", dir);
    return done_testing();
}
