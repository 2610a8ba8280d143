/* A small persistent thread pool for the CPU kernels.
 *
 * ach_parallel_for(ntasks, fn, ctx) runs fn(ctx, 0..ntasks-1), each task
 * exactly once, on the caller plus the pool's workers, and returns when all
 * are done. Which thread runs which task is unspecified, so callers that need
 * reproducible results make each task's output depend only on its index
 * (fixed-size chunks, partial sums in per-task slots combined in task order):
 * then 1, 2 or N threads give bit-identical results.
 *
 * The number of threads (caller included) comes from ach_threads_set, else
 * the ACHILLES_THREADS environment variable, else the number of online CPUs.
 * Calls from inside a task run serially on the calling thread; concurrent
 * calls from several host threads are serialised. */
#ifndef ACH_THREADS_H
#define ACH_THREADS_H

/* n >= 1: use n threads from now on; n <= 0: back to the default. Must not be
 * called from inside a task. */
void ach_threads_set(int n);
/* The number of threads ach_parallel_for uses (starting the pool if needed). */
int ach_threads_count(void);
/* Index of the calling thread in the pool: 0 for the caller of
 * ach_parallel_for (and any thread outside the pool), 1..count-1 for workers.
 * Lets tasks use per-thread scratch. */
int ach_thread_index(void);
void ach_parallel_for(int ntasks, void (*fn)(void *ctx, int task), void *ctx);
#endif
