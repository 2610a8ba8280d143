/* Backend selection for the CLI: a name ("cpu", "cuda") to a kernel table.
 * "cpu" is the fast CPU kernels (kernels_fast.c); "cuda" exists only in
 * binaries linked with the CUDA backend (build/achilles-cuda, `make cuda`),
 * which provides ach_cuda_kernels(); elsewhere asking for it is an error
 * that says how to get it. */
#ifndef ACH_BACKEND_H
#define ACH_BACKEND_H
#include <stddef.h>

#include "kernels.h"

/* NULL name: $ACHILLES_BACKEND, else "cpu". NULL on failure, with err. */
const ach_kernels *ach_backend(const char *name, char *err, size_t errlen);
/* 1 if name is a backend name at all (for usage errors), else 0. */
int ach_backend_valid(const char *name);
/* Removes "--backend NAME" or "--backend=NAME" from argv (updating *argc)
 * and sets *name (left alone when absent). -1 when the value is missing or
 * not a backend name, with err. */
int ach_backend_arg(int *argc, char **argv, const char **name, char *err, size_t errlen);
#endif
