/* The thread pool (threads.h). Workers wait for a new job generation: they
 * spin briefly first (the kernels of one training step follow each other
 * within microseconds, and a condition-variable wake-up costs more than a
 * small kernel), then sleep on a condition variable. Tasks are handed out
 * dynamically through an atomic counter; determinism is the callers' job
 * (see threads.h). */
#include "threads.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#define SPIN_ITERS 20000 /* ~50-200 us of polling before sleeping */

static struct {
    pthread_mutex_t dispatch; /* one job at a time */
    pthread_mutex_t lock;     /* guards the condition variables */
    pthread_cond_t wake, done;
    int nthreads;             /* caller included; 0 = not started */
    unsigned start_gen;       /* gen when the workers were started */
    pthread_t *tids;
    atomic_uint gen;          /* job generation, bumped per job */
    atomic_int stop;
    atomic_int next;          /* next task index to hand out */
    atomic_int busy;          /* workers still on the current job */
    int ntasks;
    void (*fn)(void *, int);
    void *ctx;
} pool = {.dispatch = PTHREAD_MUTEX_INITIALIZER, .lock = PTHREAD_MUTEX_INITIALIZER,
          .wake = PTHREAD_COND_INITIALIZER, .done = PTHREAD_COND_INITIALIZER};

static _Thread_local int tl_index;   /* 0 outside the pool */
static _Thread_local int tl_in_task; /* nested calls run serially */

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static void run_tasks(void)
{
    int i;
    tl_in_task = 1;
    while ((i = atomic_fetch_add(&pool.next, 1)) < pool.ntasks) pool.fn(pool.ctx, i);
    tl_in_task = 0;
}

static void *worker(void *arg)
{
    tl_index = (int)(size_t)arg;
    unsigned seen = pool.start_gen; /* not gen now: a job may already be posted */
    for (;;) {
        unsigned g;
        int spins = 0;
        while ((g = atomic_load(&pool.gen)) == seen && !atomic_load(&pool.stop) && spins < SPIN_ITERS) {
            cpu_relax();
            spins++;
        }
        if (g == seen && !atomic_load(&pool.stop)) {
            pthread_mutex_lock(&pool.lock);
            while ((g = atomic_load(&pool.gen)) == seen && !atomic_load(&pool.stop))
                pthread_cond_wait(&pool.wake, &pool.lock);
            pthread_mutex_unlock(&pool.lock);
        }
        if (atomic_load(&pool.stop)) return NULL;
        seen = g;
        run_tasks();
        if (atomic_fetch_sub(&pool.busy, 1) == 1) {
            pthread_mutex_lock(&pool.lock);
            pthread_cond_signal(&pool.done);
            pthread_mutex_unlock(&pool.lock);
        }
    }
}

static int default_threads(void)
{
    const char *s = getenv("ACHILLES_THREADS");
    if (s && *s) {
        char *end;
        long n = strtol(s, &end, 10);
        if (!*end && n >= 1 && n <= 1024) return (int)n;
    }
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n >= 1 ? (n > 1024 ? 1024 : (int)n) : 1;
}

static void stop_workers(void)
{
    if (pool.nthreads <= 1) {
        pool.nthreads = 0;
        return;
    }
    pthread_mutex_lock(&pool.lock);
    atomic_store(&pool.stop, 1);
    pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.lock);
    for (int i = 1; i < pool.nthreads; i++) pthread_join(pool.tids[i], NULL);
    free(pool.tids);
    pool.tids = NULL;
    pool.nthreads = 0;
    atomic_store(&pool.stop, 0);
}

/* Starts n - 1 workers; on failure runs with as many as started. */
static void start_workers(int n)
{
    pool.nthreads = 1;
    if (n <= 1) return;
    pool.start_gen = atomic_load(&pool.gen);
    pool.tids = calloc((size_t)n, sizeof *pool.tids);
    if (!pool.tids) return;
    for (int i = 1; i < n; i++) {
        if (pthread_create(&pool.tids[i], NULL, worker, (void *)(size_t)i)) break;
        pool.nthreads = i + 1;
    }
}

static void ensure_started(void)
{
    if (!pool.nthreads) start_workers(default_threads());
}

void ach_threads_set(int n)
{
    pthread_mutex_lock(&pool.dispatch);
    stop_workers();
    start_workers(n >= 1 ? (n > 1024 ? 1024 : n) : default_threads());
    pthread_mutex_unlock(&pool.dispatch);
}

int ach_threads_count(void)
{
    pthread_mutex_lock(&pool.dispatch);
    ensure_started();
    int n = pool.nthreads;
    pthread_mutex_unlock(&pool.dispatch);
    return n;
}

int ach_thread_index(void) { return tl_index; }

void ach_parallel_for(int ntasks, void (*fn)(void *ctx, int task), void *ctx)
{
    if (ntasks <= 0) return;
    if (tl_in_task || tl_index) { /* nested: run here */
        for (int i = 0; i < ntasks; i++) fn(ctx, i);
        return;
    }
    pthread_mutex_lock(&pool.dispatch);
    ensure_started();
    if (pool.nthreads <= 1 || ntasks == 1) {
        tl_in_task = 1;
        for (int i = 0; i < ntasks; i++) fn(ctx, i);
        tl_in_task = 0;
        pthread_mutex_unlock(&pool.dispatch);
        return;
    }
    pool.fn = fn, pool.ctx = ctx, pool.ntasks = ntasks;
    atomic_store(&pool.next, 0);
    atomic_store(&pool.busy, pool.nthreads - 1);
    pthread_mutex_lock(&pool.lock);
    atomic_fetch_add(&pool.gen, 1);
    pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.lock);
    run_tasks();
    int spins = 0;
    while (atomic_load(&pool.busy) > 0 && spins < SPIN_ITERS) {
        cpu_relax();
        spins++;
    }
    if (atomic_load(&pool.busy) > 0) {
        pthread_mutex_lock(&pool.lock);
        while (atomic_load(&pool.busy) > 0) pthread_cond_wait(&pool.done, &pool.lock);
        pthread_mutex_unlock(&pool.lock);
    }
    pthread_mutex_unlock(&pool.dispatch);
}
