// The CUDA backend on a GPU: device memory, one stream, cuBLAS for the
// matmuls, and the kernels and host code shared with the emulator
// (kernels/*.cuh, host.cuh). Built by `make cuda` into build/achilles-cuda.
//
// Determinism: every kernel reduces in a fixed order (no atomics); cuBLAS is
// bit-reproducible run to run on the same GPU model with one stream, atomics
// disallowed (set explicitly) and pedantic FP32 math (no TF32 or reduced
// precision, whatever NVIDIA_TF32_OVERRIDE says). Different GPU models or
// toolkits may differ in the last bits.
//
// Launch overhead: a training step (src/train/step.c) copies its batch and the
// optimizer's plan in, runs as one CUDA graph (recorded on the step's second
// call for its shapes, host.cuh graph_run), and copies the loss and the norm
// out: two waits per step, not one per kernel.
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_backend.h"

namespace {
cudaStream_t stream;
cublasHandle_t blas;

void plat_fatal(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "achilles: cuda: ");
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

void ck(cudaError_t e, const char *what)
{
    if (e != cudaSuccess) plat_fatal("%s: %s", what, cudaGetErrorString(e));
}

void ckb(cublasStatus_t s, const char *what)
{
    if (s != CUBLAS_STATUS_SUCCESS) plat_fatal("%s: cuBLAS status %d (%s)", what, (int)s, cublasGetStatusString(s));
}

// Kernels fail asynchronously; this catches bad launches (shape, resources)
// where they happen, and execution errors at the next synchronising call.
void plat_check(const char *kernel) { ck(cudaGetLastError(), kernel); }

// The zeroing goes on our stream: it is non-blocking, so it would not wait
// for a cudaMemset on the legacy default stream.
void *plat_alloc(size_t bytes)
{
    void *p = NULL;
    if (cudaMalloc(&p, bytes) != cudaSuccess) {
        cudaGetLastError(); // out of memory is not sticky: clear it so later calls work
        return NULL;
    }
    ck(cudaMemsetAsync(p, 0, bytes, stream), "cudaMemsetAsync");
    return p;
}

// Kernels still queued may use p (a scratch buffer being grown): wait first.
void plat_free(void *p)
{
    if (!p) return;
    ck(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
    ck(cudaFree(p), "cudaFree");
}

// Host buffers are the caller's and may be reused at once: wait for each copy.
void plat_h2d(void *dst, const void *src, size_t bytes)
{
    ck(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream), "cudaMemcpy to the device");
    ck(cudaStreamSynchronize(stream), "cudaMemcpy to the device");
}

void plat_d2h(void *dst, const void *src, size_t bytes)
{
    ck(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream), "cudaMemcpy to the host");
    ck(cudaStreamSynchronize(stream), "cudaMemcpy to the host (or an earlier kernel)");
}

void plat_memset0(void *p, size_t bytes) { ck(cudaMemsetAsync(p, 0, bytes, stream), "cudaMemsetAsync"); }

void plat_gemm(int ta, int tb, int m, int n, int k, const float *A, int lda, const float *B, int ldb, float beta,
               float *C, int ldc)
{
    const float one = 1;
    ckb(cublasSgemm(blas, ta ? CUBLAS_OP_T : CUBLAS_OP_N, tb ? CUBLAS_OP_T : CUBLAS_OP_N, m, n, k, &one, A, lda, B, ldb,
                    &beta, C, ldc),
        "cublasSgemm");
}

// Graphs: the stream's work between begin and end is captured, not run.
// Relaxed mode, so other threads' CUDA calls are not disturbed; host.cuh
// refuses copies and frees inside (plat_capture_misuse).
typedef cudaGraphExec_t plat_graph;
void plat_capture_begin() { ck(cudaStreamBeginCapture(stream, cudaStreamCaptureModeRelaxed), "cudaStreamBeginCapture"); }
plat_graph plat_capture_end()
{
    cudaGraph_t g;
    cudaGraphExec_t e;
    ck(cudaStreamEndCapture(stream, &g), "cudaStreamEndCapture");
    ck(cudaGraphInstantiate(&e, g, 0), "cudaGraphInstantiate");
    ck(cudaGraphDestroy(g), "cudaGraphDestroy");
    return e;
}
void plat_graph_launch(plat_graph e) { ck(cudaGraphLaunch(e, stream), "cudaGraphLaunch"); }
void plat_graph_destroy(plat_graph e) { ck(cudaGraphExecDestroy(e), "cudaGraphExecDestroy"); }
void plat_capture_misuse(const char *what)
{
    plat_fatal("%s while recording a graph of a training step (a bug: the step must not do that)", what);
}
} // namespace

#define ACH_DYN_SHARED(type, name)                         \
    extern __shared__ __align__(16) unsigned char ach_dyn_smem[]; \
    type *name = reinterpret_cast<type *>(ach_dyn_smem)
#define ACH_LAUNCH(kernel, grid, block, shmem, ...)                      \
    do {                                                                 \
        kernel<<<(grid), (block), (shmem), stream>>>(__VA_ARGS__);       \
        plat_check(#kernel);                                             \
    } while (0)

static char device_name[300] = "cuda";
#define ACH_CU_NAME device_name
#include "host.cuh"

static ach_kernels table;
static char why[512];
static int state; /* 0 untried, 1 ready, -1 unavailable */

// cuBLAS would allocate its workspace lazily, which a graph being recorded
// cannot do: give it one up front (32 MiB, NVIDIA's advice for sm_90).
static cublasStatus_t set_workspace(void)
{
    const size_t bytes = 32 << 20;
    void *ws = NULL;
    if (cudaMalloc(&ws, bytes) != cudaSuccess) return CUBLAS_STATUS_ALLOC_FAILED;
    return cublasSetWorkspace(blas, ws, bytes);
}

// Picks the device and sets up the stream and cuBLAS; on failure says why.
static int init(void)
{
    int n = 0, dev = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n == 0) {
        snprintf(why, sizeof why, "no CUDA device (cudaGetDeviceCount: %s)",
                 e != cudaSuccess ? cudaGetErrorString(e) : "0 devices");
        cudaGetLastError();
        return -1;
    }
    const char *env = getenv("ACHILLES_CUDA_DEVICE");
    if (env && *env) {
        char *end;
        long v = strtol(env, &end, 10);
        if (*end || v < 0 || v >= n) {
            snprintf(why, sizeof why, "ACHILLES_CUDA_DEVICE=%s: not a device number (0..%d)", env, n - 1);
            return -1;
        }
        dev = (int)v;
    }
    cudaDeviceProp p;
    if ((e = cudaSetDevice(dev)) != cudaSuccess || (e = cudaGetDeviceProperties(&p, dev)) != cudaSuccess ||
        (e = cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking)) != cudaSuccess) {
        snprintf(why, sizeof why, "CUDA device %d: %s", dev, cudaGetErrorString(e));
        return -1;
    }
    cublasStatus_t s;
    if ((s = cublasCreate(&blas)) != CUBLAS_STATUS_SUCCESS || (s = cublasSetStream(blas, stream)) ||
        (s = cublasSetMathMode(blas, CUBLAS_PEDANTIC_MATH)) ||
        (s = cublasSetAtomicsMode(blas, CUBLAS_ATOMICS_NOT_ALLOWED)) ||
        (s = set_workspace())) {
        snprintf(why, sizeof why, "cuBLAS on device %d: %s", dev, cublasGetStatusString(s));
        return -1;
    }
    snprintf(device_name, sizeof device_name, "cuda (%s, sm_%d%d)", p.name, p.major, p.minor);
    fill_table(&table);
    return 1;
}

extern "C" const ach_kernels *ach_cuda_kernels(void)
{
    if (!state) state = init();
    return state > 0 ? &table : NULL;
}

extern "C" const char *ach_cuda_error(void) { return why[0] ? why : "the CUDA backend has not been initialised"; }

extern "C" void ach_cuda_set_shape(int threads, int max_blocks, int seq_threads)
{
    set_shape(threads, max_blocks, seq_threads);
}

extern "C" void ach_cuda_set_graphs(int on) { set_graphs(on); }
extern "C" void ach_cuda_graph_stats(unsigned long *recorded, unsigned long *replayed)
{
    graph_stats(recorded, replayed);
}
