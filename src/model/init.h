/* Parameter initialisation: mamba_ssm's reference defaults, or the paper's
 * γ rule (docs/science.md §2.5) on the tensor kinds cfg->gamma_kinds selects. The draw
 * for tensor i uses random stream i under cfg->seed. */
#ifndef ACH_INIT_H
#define ACH_INIT_H
#include "model.h"

/* Fills m->w (host staging, then copied to the backend). 0 or -1. */
int ach_init_params(ach_model *m);
#endif
