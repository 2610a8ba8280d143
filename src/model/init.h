/* Parameter initialisation: the family's reference defaults (Mamba:
 * mamba_ssm's), or the paper's γ rule (docs/science.md §2.5) on the tensor kinds cfg->gamma_kinds selects. The draw
 * for tensor i uses random stream i under cfg->seed. */
#ifndef ACH_INIT_H
#define ACH_INIT_H
#include "model.h"

/* Fills m->w (host staging, then copied to the backend). 0 or -1. */
int ach_init_params(ach_model *m);
/* A tensor's fan under a rule: torch's fan_in = shape[1] * receptive
 * field, fan_out = shape[0] * receptive field, or shape[0] alone. */
double ach_init_fan(const ach_param *p, ach_fan_rule rule);
#endif
