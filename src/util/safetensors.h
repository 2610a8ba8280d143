/* safetensors checkpoint files: a validating reader and an atomic writer.
 * Format: u64 little-endian header size N, N bytes of JSON (padded with
 * spaces), then the data buffer that the tensors' data_offsets index. */
#ifndef ACH_SAFETENSORS_H
#define ACH_SAFETENSORS_H
#include <stddef.h>
#include <stdint.h>

/* The dtypes the trainer uses; any other known dtype (F16, BF16, U8, ...)
 * loads as ST_OTHER with its name in dtype_name, for the caller to judge. */
typedef enum { ST_F32, ST_F64, ST_I32, ST_I64, ST_OTHER } st_dtype;

#define ST_MAX_DIMS 8

typedef struct {
    char *name;
    st_dtype dtype;
    char dtype_name[8];             /* as in the file, e.g. "BF16" */
    int ndim;                       /* 0 is a scalar */
    int64_t shape[ST_MAX_DIMS];
    size_t begin, end;              /* byte offsets into data */
} st_tensor;

typedef struct {
    st_tensor *tensors;             /* in header order */
    int n;
    char **meta_keys, **meta_vals;  /* __metadata__, in header order */
    int nmeta;
    /* The data buffer (private). It is the start of a malloc block, so it
     * is max-aligned, but a tensor is only aligned for its element type if
     * its begin is: files that mix dtype sizes may need memcpy. */
    unsigned char *data;
    size_t data_len;
} st_file;

/* Reads and validates the whole file. On failure returns -1, leaves *out
 * empty and writes into err a message naming the file, the tensor or field
 * and the problem, e.g. "ckpt.safetensors: tensor 'x.weight': data_offsets
 * [0, 96] out of range (data is 64 bytes)". */
int st_load(const char *path, st_file *out, char *err, size_t errlen);

/* Frees everything st_load allocated; safe on a zeroed st_file. */
void st_free(st_file *f);

/* NULL if no tensor has that name. */
const st_tensor *st_find(const st_file *f, const char *name);

/* NULL if absent. */
const char *st_meta(const st_file *f, const char *key);

/* The tensor's bytes (little-endian), end - begin of them. */
const void *st_data(const st_file *f, const st_tensor *t);

/* Product of the shape; 1 for a scalar. */
size_t st_numel(const st_tensor *t);

/* One tensor to save; dtype must not be ST_OTHER. */
typedef struct {
    const char *name;
    st_dtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    const void *data;
} st_entry;

/* Writes the tensors in the given order, contiguous, after an 8-byte-aligned
 * header (padded with spaces). Writes PATH.tmp, fflush+fsync, then renames
 * it over PATH, so a crash leaves the old or the new file, never a torn one.
 * Returns 0, or -1 with a message in err (and no PATH.tmp left behind). */
int st_save(const char *path, const st_entry *e, int n,
            const char *const *meta_keys, const char *const *meta_vals, int nmeta,
            char *err, size_t errlen);

#endif
