/* splitmix64's finaliser over a (seed, stream, counter) key: a stateless
 * hash, so any draw can be computed directly from its index. */
#include "rng.h"

#include <math.h>

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

uint64_t rng_hash(uint64_t seed, uint64_t stream, uint64_t i)
{
    uint64_t k = mix64(seed + 0x9e3779b97f4a7c15ULL) ^ mix64(stream * 0xd1b54a32d192ed03ULL + 0x632be59bd9b4e019ULL);
    return mix64(k + (i + 1) * 0x9e3779b97f4a7c15ULL);
}

void rng_init(ach_rng *r, uint64_t seed, uint64_t stream)
{
    r->key = mix64(seed + 0x9e3779b97f4a7c15ULL) ^ mix64(stream * 0xd1b54a32d192ed03ULL + 0x632be59bd9b4e019ULL);
    r->ctr = 0;
}

uint64_t rng_u64(ach_rng *r)
{
    r->ctr++;
    return mix64(r->key + r->ctr * 0x9e3779b97f4a7c15ULL);
}

double rng_uniform(ach_rng *r) { return (double)(rng_u64(r) >> 11) * 0x1.0p-53; }

double rng_normal(ach_rng *r)
{
    double u1 = 1.0 - rng_uniform(r); /* (0, 1]: log is finite */
    double u2 = rng_uniform(r);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

uint64_t rng_below(ach_rng *r, uint64_t n)
{
    uint64_t lim = UINT64_MAX - UINT64_MAX % n, x;
    do x = rng_u64(r); while (x >= lim);
    return x % n;
}
