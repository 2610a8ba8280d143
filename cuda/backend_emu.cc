// The CUDA backend on the host emulator (emu.h): the same kernels and the
// same host code (host.cuh) as build/achilles-cuda, with host memory and a
// plain host GEMM in place of cuBLAS. The GEMM takes cublasSgemm's arguments
// (column-major, transposes, leading dimensions) and rejects what cuBLAS
// rejects, so the matmul mapping is tested too; cuBLAS itself is not.
#include "emu.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_backend.h"

namespace {
void plat_fatal(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "achilles: cuda-emu: ");
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

void *plat_alloc(size_t bytes) { return calloc(1, bytes ? bytes : 1); }
void plat_free(void *p) { free(p); }
void plat_h2d(void *dst, const void *src, size_t bytes) { memcpy(dst, src, bytes); }
void plat_d2h(void *dst, const void *src, size_t bytes) { memcpy(dst, src, bytes); }
void plat_memset0(void *p, size_t bytes)
{
    if (ach_emu::recording) ach_emu::recording->push_back([=]() { memset(p, 0, bytes); });
    else memset(p, 0, bytes);
}

// C = op(A) op(B) + beta C (alpha 1), column-major; beta 0 never reads C.
void gemm(int ta, int tb, int m, int n, int k, const float *A, int lda, const float *B, int ldb, float beta, float *C,
          int ldc)
{
    int rows_a = ta ? k : m, rows_b = tb ? n : k;
    if (m < 0 || n < 0 || k < 0 || lda < (rows_a > 1 ? rows_a : 1) || ldb < (rows_b > 1 ? rows_b : 1) ||
        ldc < (m > 1 ? m : 1))
        plat_fatal("cublasSgemm(%c, %c, m %d, n %d, k %d, lda %d, ldb %d, ldc %d): CUBLAS_STATUS_INVALID_VALUE",
                   ta ? 'T' : 'N', tb ? 'T' : 'N', m, n, k, lda, ldb, ldc);
    for (int j = 0; j < n; j++)
        for (int i = 0; i < m; i++) {
            float s = 0;
            for (int l = 0; l < k; l++)
                s += (ta ? A[l + (size_t)i * lda] : A[i + (size_t)l * lda]) *
                     (tb ? B[j + (size_t)l * ldb] : B[l + (size_t)j * ldb]);
            float *c = &C[i + (size_t)j * ldc];
            *c = beta == 0 ? s : s + beta * *c;
        }
}

void plat_gemm(int ta, int tb, int m, int n, int k, const float *A, int lda, const float *B, int ldb, float beta,
               float *C, int ldc)
{
    if (ach_emu::recording)
        ach_emu::recording->push_back([=]() { gemm(ta, tb, m, n, k, A, lda, B, ldb, beta, C, ldc); });
    else gemm(ta, tb, m, n, k, A, lda, B, ldb, beta, C, ldc);
}

// Graphs: a recording of the stream's operations (emu.h), replayed in order.
typedef std::vector<ach_emu::graph_op> *plat_graph;
void plat_capture_begin() { ach_emu::recording = new std::vector<ach_emu::graph_op>; }
plat_graph plat_capture_end()
{
    plat_graph g = ach_emu::recording;
    ach_emu::recording = nullptr;
    return g;
}
void plat_graph_launch(plat_graph g)
{
    for (auto &op : *g) op();
}
void plat_graph_destroy(plat_graph g) { delete g; }
// The device build cannot go on after this; here the test sees it.
void plat_capture_misuse(const char *what) { ach_emu::report("%s while recording a graph", what); }
} // namespace

#define ACH_CU_NAME "cuda-emu"
#include "host.cuh"

static ach_kernels emu_table;

extern "C" const ach_kernels *ach_cuda_emu_kernels(void)
{
    if (!emu_table.name) fill_table(&emu_table);
    return &emu_table;
}

extern "C" void ach_cuda_emu_set_shape(int threads, int max_blocks, int seq_threads)
{
    set_shape(threads, max_blocks, seq_threads);
}

extern "C" void ach_cuda_emu_set_graphs(int on) { set_graphs(on); }
extern "C" void ach_cuda_emu_graph_stats(unsigned long *recorded, unsigned long *replayed)
{
    graph_stats(recorded, replayed);
}
