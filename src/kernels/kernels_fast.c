/* The fast CPU backend: ach_fast_kernels() is ach_cpu_kernels with the
 * expensive kernels replaced by SIMD, multi-threaded versions (float32
 * only; the float64 build returns the reference table), plus the fused
 * Mamba-2 residual block (mamba2_block_*), which runs a whole layer per
 * block of rows in cache and recomputes its activations in the backward
 * pass instead of storing them (fast_mamba2_block.c).
 *
 * Files. This one is the driver: the scratch buffers, the instruction-set
 * instances and their tables. The kernels are in the fast_*.c parts, one
 * per concern (fast_simd.c the vectors and their math, fast_gemm.c,
 * fast_conv.c, fast_elementwise.c, fast_norm.c, fast_ssd.c,
 * fast_mamba2_block.c, fast_scan1.c, fast_loss.c, fast_embedding.c,
 * fast_adamw.c), which it includes once per instance; kernels_fast.h is
 * what they share. They are one translation unit (the Makefile compiles
 * only this file), so GCC inlines across them as within a file. A part's
 * task contexts, constants and ISA-free helpers, shared by the instances,
 * sit in its #ifndef ISA half: included once before the instances,
 * outside their target pragmas.
 *
 * Determinism. Results are bit-identical for any number of threads:
 * - work is split into tasks by fixed sizes that depend only on the shapes
 *   (CH_ROWS rows, ch_seqs(L) sequences, CH_ELEMS elements), never on the
 *   thread count; which thread runs a task does not matter;
 * - every reduction over rows (weight, bias, conv, norm, A_log, D, dt_bias
 *   gradients) is computed per task into that task's own slot of a partial
 *   buffer, then the partials are summed in task order;
 * - each output element is computed by the same instruction sequence
 *   wherever it falls (tails use masked vector loads and stores, or a padded
 *   copy run through the same micro-kernel), so block boundaries do not
 *   change the arithmetic.
 * They differ from the reference kernels by float32 reassociation (FMA,
 * vector partial sums) and by a polynomial exp (about 2 ulp): see
 * t/kernels_fast.c for the tolerances.
 *
 * SIMD. The kernel bodies are written once with GCC vector extensions of
 * VL floats and a few per-ISA helpers (fast_simd.c); the first half of this
 * file includes its second half, and so the parts, once per instance under
 * GCC target pragmas: AVX-512 (VL 16), AVX2+FMA (VL 8) and portable (VL 4,
 * plain C, any GCC target). The instance is chosen at run
 * time with __builtin_cpu_supports, so the default build needs no -march.
 *
 * Scratch. Packed weights, partial sums and per-thread temporaries live in
 * process-wide buffers that grow on first use of a larger shape and are
 * reused after (no allocation in a steady training loop). Kernels take a
 * process-wide lock, so the table may be used from several host threads
 * (their kernels then run one at a time). */
#include "kernels.h"

#ifdef ACH_F64
const ach_kernels *ach_fast_kernels(void) { return &ach_cpu_kernels; }
const ach_kernels *ach_fast_kernels_isa(const char *isa) { return NULL; }
void ach_fast_rates(const ach_kernels *k, double *exps_per_s, double *fmas_per_s) { *exps_per_s = *fmas_per_s = 0; }
#elif !defined(ACH_FAST_BODY)

#include "kernels_fast.h"

/* ---- scratch ---- */
typedef struct {
    float *p;
    size_t n;
} fbuf;
static pthread_mutex_t fast_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t order_mu = PTHREAD_MUTEX_INITIALIZER; /* m2_task_done's merge order (fast_mamba2_block.c) */
static fbuf *shared_bufs;
static int nshared_bufs;
static fbuf (*thread_bufs)[T_COUNT];
static int nthread_bufs;

static float *grow(fbuf *b, size_t n)
{
    if (n > b->n) {
        size_t bytes = (n * sizeof(float) + 64 + 63) & ~(size_t)63; /* +64: vector over-reads stay inside */
        free(b->p);
        b->p = aligned_alloc(64, bytes);
        if (!b->p) {
            fprintf(stderr, "achilles: out of memory for kernel scratch (%zu bytes)\n", bytes);
            abort();
        }
        b->n = n;
    }
    return b->p;
}
static float *sbuf(int slot, size_t n)
{
    if (slot >= nshared_bufs) {
        int m = slot + 1 > 2 * nshared_bufs ? slot + 1 : 2 * nshared_bufs;
        fbuf *nb = realloc(shared_bufs, (size_t)m * sizeof *nb);
        if (!nb) {
            fprintf(stderr, "achilles: out of memory for kernel scratch\n");
            abort();
        }
        memset(nb + nshared_bufs, 0, (size_t)(m - nshared_bufs) * sizeof *nb);
        shared_bufs = nb, nshared_bufs = m;
    }
    return grow(&shared_bufs[slot], n);
}
static float *tbuf(int slot, size_t n) { return grow(&thread_bufs[ach_thread_index()][slot], n); }

/* Takes the lock and makes sure every pool thread has its scratch slots. */
static void enter(void)
{
    pthread_mutex_lock(&fast_mu);
    int n = ach_threads_count();
    if (n > nthread_bufs) {
        fbuf(*nb)[T_COUNT] = realloc(thread_bufs, (size_t)n * sizeof *nb);
        if (!nb) {
            fprintf(stderr, "achilles: out of memory for kernel scratch\n");
            abort();
        }
        memset(nb + nthread_bufs, 0, (size_t)(n - nthread_bufs) * sizeof *nb);
        thread_bufs = nb;
        nthread_bufs = n;
    }
}
static void leave(void) { pthread_mutex_unlock(&fast_mu); }

/* ---- the ISA instances ---- */
#define ACH_FAST_BODY 1
#include "kernels_fast.c" /* no ISA: the parts' shared halves */

#ifdef ACH_X86
#define ISA avx512
#define VL 16
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,bmi,bmi2")
#include "kernels_fast.c"
#pragma GCC pop_options
#undef ISA
#undef VL

#define ISA avx2
#define VL 8
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#include "kernels_fast.c"
#pragma GCC pop_options
#undef ISA
#undef VL
#endif

#define ISA generic
#define VL 4
#include "kernels_fast.c"
#undef ISA
#undef VL

/* ---- the tables ---- */
static ach_kernels table_generic;
#ifdef ACH_X86
static ach_kernels table_avx512, table_avx2;
#endif
static const ach_kernels *table_best;

/* An instance's fill function is compiled for its ISA (it may use those
 * instructions itself), so it runs only where the CPU has them. */
static void build_tables(void)
{
    table_generic = ach_cpu_kernels;
    table_generic.name = "fast-generic";
    fill_generic(&table_generic);
    table_best = &table_generic;
#ifdef ACH_X86
    __builtin_cpu_init();
    int has_avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    int has_avx512 = has_avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                     __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
    if (has_avx2) {
        table_avx2 = ach_cpu_kernels;
        table_avx2.name = "fast-avx2";
        fill_avx2(&table_avx2);
        table_best = &table_avx2;
    }
    if (has_avx512) {
        table_avx512 = ach_cpu_kernels;
        table_avx512.name = "fast-avx512";
        fill_avx512(&table_avx512);
        table_best = &table_avx512;
    }
#endif
}

static pthread_once_t tables_once = PTHREAD_ONCE_INIT;

const ach_kernels *ach_fast_kernels(void)
{
    pthread_once(&tables_once, build_tables);
    return table_best;
}

void ach_fast_rates(const ach_kernels *k, double *exps_per_s, double *fmas_per_s)
{
    pthread_once(&tables_once, build_tables);
#ifdef ACH_X86
    if (k == &table_avx512) return rates_avx512(exps_per_s, fmas_per_s);
    if (k == &table_avx2) return rates_avx2(exps_per_s, fmas_per_s);
#endif
    if (k == &table_generic) return rates_generic(exps_per_s, fmas_per_s);
    *exps_per_s = *fmas_per_s = 0;
}

const ach_kernels *ach_fast_kernels_isa(const char *isa)
{
    pthread_once(&tables_once, build_tables);
    if (!strcmp(isa, "generic")) return &table_generic;
#ifdef ACH_X86
    if (!strcmp(isa, "avx2")) return table_best == &table_generic ? NULL : &table_avx2;
    if (!strcmp(isa, "avx512")) return table_best == &table_avx512 ? &table_avx512 : NULL;
#endif
    return NULL;
}

#else /* ACH_FAST_BODY: the parts; with ISA one instance, VL floats per vector */
/* In the order their functions had when they were one file: GCC lays the
 * object code out in it, and that layout is the one bench/RESULTS.md timed. */
#include "fast_simd.c"
#include "fast_gemm.c"
#include "fast_conv.c"
#include "fast_elementwise.c"
#include "fast_norm.c"
#include "fast_ssd.c"
#include "fast_mamba2_block.c"
#include "fast_scan1.c"
#include "fast_loss.c"
#include "fast_embedding.c"
#include "fast_adamw.c"

#ifdef ISA
static void F(fill)(ach_kernels *k)
{
    k->zero = F(zero);
    k->embedding_backward = F(embedding_backward);
    k->rmsnorm_forward = F(rmsnorm_forward);
    k->rmsnorm_backward = F(rmsnorm_backward);
    k->matmul_forward = F(matmul_forward);
    k->matmul_backward = F(matmul_backward);
    k->conv1d_forward = F(conv1d_forward);
    k->conv1d_backward = F(conv1d_backward);
    k->silu_forward = F(silu_forward);
    k->silu_backward = F(silu_backward);
    k->gate_forward = F(gate_forward);
    k->gate_backward = F(gate_backward);
    k->add_inplace = F(add_inplace);
    k->mamba1_scan_forward = F(mamba1_scan_forward);
    k->mamba1_scan_backward = F(mamba1_scan_backward);
    k->mamba2_ssd_forward = F(mamba2_ssd_forward);
    k->mamba2_ssd_backward = F(mamba2_ssd_backward);
    k->crossentropy_forward = F(crossentropy_forward);
    k->crossentropy_backward = F(crossentropy_backward);
    k->adamw_update = F(adamw_update);
    k->mamba2_block_forward = F(mamba2_block_forward);
    k->mamba2_block_backward = F(mamba2_block_backward);
    k->mamba2_train = F(mamba2_train);
}

#undef V
#undef VI
#undef VU
#endif
#endif
