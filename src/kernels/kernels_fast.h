/* What the fast CPU backend's files share: kernels_fast.c, the driver, and
 * the fast_*.c parts it includes once per instruction set. Only
 * kernels_fast.c includes it: they are one translation unit. */
#ifndef ACH_KERNELS_FAST_H
#define ACH_KERNELS_FAST_H
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels.h"
#include "mathfn.h"
#include "threads.h"

#if defined(__x86_64__) || defined(__i386__)
#define ACH_X86 1
#include <immintrin.h>
#endif

/* Task sizes: fixed by the shapes, never by the thread count (determinism) */
#define CH_ROWS 256     /* rows per task (matmuls, norms, gates) */
#define CH_ELEMS 65536  /* elements per task (elementwise kernels) */
static int ch_seqs(int L) { return L >= CH_ROWS ? 1 : CH_ROWS / L; } /* sequences per task */
static int ceil_div(long a, long b) { return (int)((a + b - 1) / b); }
static int round_up(int a, int b) { return (a + b - 1) / b * b; }

/* Scratch (kernels_fast.c): shared slots per call; a kernel working on
 * several layers at once uses layer l's slots from l * S_COUNT */
enum { S_PACK, S_BIAS, S_PACK2, S_PACK3, S_PACK4, S_PACK5, S_PART, S_PART2, S_PART3, S_PART4, S_PART5, S_PART6,
       S_MISC, S_COUNT };
enum { T_Y, T_W1, T_W2, T_W3, T_W4, T_F, T_H, T_G, T_KEYS, T_PART, T_COUNT }; /* per thread */
static float *sbuf(int slot, size_t n); /* shared slot, at least n floats (64-byte aligned) */
static float *tbuf(int slot, size_t n); /* the calling pool thread's slot, idem */
static void enter(void);                /* every kernel holds the lock while it runs */
static void leave(void);

/* An instance's names: F(x) is x_avx512, x_avx2 or x_generic. */
#define CAT_(a, b) a##_##b
#define CAT(a, b) CAT_(a, b)
#define F(name) CAT(name, ISA)
#define AI static inline __attribute__((always_inline))
#endif
