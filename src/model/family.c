/* The list of model families: the built-in ones at their fixed arch ids,
 * then those registered at run time. */
#include "family.h"

#include <string.h>

extern const ach_family ach_family_mamba1, ach_family_mamba2; /* mamba.c */

#define MAX_FAMILIES 16

static const ach_family *families[MAX_FAMILIES] = {
    [ARCH_MAMBA1] = &ach_family_mamba1,
    [ARCH_MAMBA2] = &ach_family_mamba2,
};

const ach_family *ach_family_of(ach_arch a)
{
    return (int)a > 0 && (int)a < MAX_FAMILIES ? families[a] : NULL;
}

ach_arch ach_family_arch(const char *name)
{
    for (int i = 1; i < MAX_FAMILIES; i++)
        if (families[i] && !strcmp(families[i]->name, name)) return (ach_arch)i;
    return ACH_ARCH_NONE;
}

ach_arch ach_family_register(const ach_family *f)
{
    if (ach_family_arch(f->name) != ACH_ARCH_NONE) return ACH_ARCH_NONE;
    for (int i = 1; i < MAX_FAMILIES; i++)
        if (!families[i]) {
            families[i] = f;
            return (ach_arch)i;
        }
    return ACH_ARCH_NONE;
}

const char *ach_family_missing_kernel(const ach_family *f, const ach_kernels *k)
{
    for (const ach_kernel_need *n = f->kernels; n->name; n++) {
        void (*fn)(void);
        memcpy(&fn, (const char *)k + n->offset, sizeof fn);
        if (!fn) return n->name;
    }
    return "";
}
