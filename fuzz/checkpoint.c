/* Fuzz target: a safetensors checkpoint. st_load reads it (header size,
 * UTF-8, JSON, dtypes, shapes, offsets, layout) from a memfd, so its own
 * file reading runs and nothing touches the disk; every tensor's bytes are
 * then read, so a bad offset shows under ASan; and ach_ckpt_load_st checks
 * it against the config in its metadata, or the one inferred from its
 * shapes, as `achilles grad`, `analyze` and resume do. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "checkpoint.h"

/* The input as a file: one memfd per process, rewritten for each input. */
static const char *as_file(const uint8_t *data, size_t size)
{
    static int fd = -1;
    static char path[64];
    if (fd < 0) {
        if ((fd = memfd_create("fuzz-input", 0)) < 0) {
            perror("memfd_create");
            abort();
        }
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    }
    if (ftruncate(fd, 0) || (size && pwrite(fd, data, size, 0) != (ssize_t)size)) {
        perror("memfd write");
        abort();
    }
    return path;
}

static volatile unsigned sink; /* keeps the tensor reads */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[1024];
    st_file f;
    if (st_load(as_file(data, size), &f, err, sizeof err)) return 0;
    unsigned sum = 0;
    for (int i = 0; i < f.n; i++) {
        const st_tensor *t = &f.tensors[i];
        const unsigned char *p = st_data(&f, t);
        for (size_t k = 0; k < t->end - t->begin; k++) sum += p[k];
        if (st_find(&f, t->name) != t) abort(); /* names are unique */
    }
    for (int i = 0; i < f.nmeta; i++)
        if (strcmp(st_meta(&f, f.meta_keys[i]), f.meta_vals[i])) abort();
    sink = sum;
    ach_model m;
    if (!ach_ckpt_load_st(&m, &ach_cpu_kernels, &f, "fuzz.safetensors", err, sizeof err)) ach_model_free(&m);
    st_free(&f);
    return 0;
}
