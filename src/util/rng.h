/* Counter-based random numbers: draw i of stream s under seed k is a pure
 * function of (k, s, i), so results never depend on thread count or order. */
#ifndef ACH_RNG_H
#define ACH_RNG_H
#include <stdint.h>

typedef struct { uint64_t key, ctr; } ach_rng;

uint64_t rng_hash(uint64_t seed, uint64_t stream, uint64_t i);
void rng_init(ach_rng *r, uint64_t seed, uint64_t stream);
uint64_t rng_u64(ach_rng *r);
double rng_uniform(ach_rng *r);      /* [0, 1), 53 bits */
double rng_normal(ach_rng *r);       /* N(0, 1), Box-Muller */
uint64_t rng_below(ach_rng *r, uint64_t n); /* [0, n), unbiased */
#endif
