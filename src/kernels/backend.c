/* Backend selection (backend.h). The CUDA entry points are weak references:
 * they resolve in build/achilles-cuda, which links cuda/backend_cuda.o, and
 * are NULL in every other binary, which then needs no CUDA toolkit. */
#include "backend.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern const ach_kernels *ach_cuda_kernels(void) __attribute__((weak));
extern const char *ach_cuda_error(void) __attribute__((weak));

int ach_backend_valid(const char *name) { return name && (!strcmp(name, "cpu") || !strcmp(name, "cuda")); }

const ach_kernels *ach_backend(const char *name, char *err, size_t errlen)
{
    const char *src = "--backend";
    if (!name) {
        name = getenv("ACHILLES_BACKEND");
        src = "ACHILLES_BACKEND";
        if (!name || !*name) return ach_fast_kernels();
    }
    if (!strcmp(name, "cpu")) return ach_fast_kernels();
    if (strcmp(name, "cuda")) {
        snprintf(err, errlen, "%s: unknown backend '%s' (cpu or cuda)", src, name);
        return NULL;
    }
    if (!ach_cuda_kernels) {
        snprintf(err, errlen, "backend cuda: this binary was built without CUDA; use achilles-cuda (`make cuda`)");
        return NULL;
    }
    const ach_kernels *k = ach_cuda_kernels();
    if (!k) snprintf(err, errlen, "backend cuda: %s", ach_cuda_error ? ach_cuda_error() : "unavailable");
    return k;
}

int ach_backend_arg(int *argc, char **argv, const char **name, char *err, size_t errlen)
{
    for (int i = 1; i < *argc; i++) {
        const char *a = argv[i], *v;
        int take;
        if (!strcmp(a, "--backend")) {
            if (i + 1 >= *argc) {
                snprintf(err, errlen, "--backend needs a value (cpu or cuda)");
                return -1;
            }
            v = argv[i + 1], take = 2;
        } else if (!strncmp(a, "--backend=", 10)) v = a + 10, take = 1;
        else continue;
        if (!ach_backend_valid(v)) {
            snprintf(err, errlen, "--backend: unknown backend '%s' (cpu or cuda)", v);
            return -1;
        }
        *name = v;
        memmove(argv + i, argv + i + take, (size_t)(*argc - i - take + 1) * sizeof *argv); /* keeps argv[argc] */
        *argc -= take;
        i--;
    }
    return 0;
}
