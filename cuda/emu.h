/* Host emulation of the CUDA execution model, so the kernel source in
 * cuda/kernels/ compiles as plain C++ and runs without a GPU (cuda/README.md).
 *
 * What is emulated: dim3, threadIdx/blockIdx/blockDim/gridDim, the
 * __global__/__device__/__host__/__shared__ qualifiers, dynamic shared memory,
 * __syncthreads(), and launches: every block of the grid, one after another,
 * and every thread of a block as a coroutine (ucontext), so a barrier really
 * waits for every thread of its block. Threads resume in thread order,
 * reverse or shuffled (ach_emu_set_order): results that change with the
 * order reveal a missing barrier. Misuse the
 * hardware would punish is reported (ach_emu_errors): a barrier that some
 * threads reach while others have exited, more than 1024 threads per block,
 * an empty grid. What is not: warps, warp intrinsics, atomics (the kernels
 * use none), memory spaces (device memory is host memory), timing.
 *
 * __shared__ becomes `static`: one instance per kernel, which is per block
 * because blocks run one at a time. Dynamic shared memory is refilled with
 * 0xff bytes (NaN as floats) before each block, so reading it before writing
 * it shows up in the results. */
#ifndef ACH_CUDA_EMU_H
#define ACH_CUDA_EMU_H
#include <cstddef>
#include <functional>
#include <tuple>
#include <type_traits>
#include <vector>

struct uint3 {
    unsigned x, y, z;
};
struct dim3 {
    unsigned x, y, z;
    constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

namespace ach_emu {
/* The running thread's coordinates: the scheduler rewrites thread_idx at
 * every switch (syncthreads is an out-of-line call, so kernels reload it). */
extern uint3 thread_idx, block_idx;
extern dim3 block_dim, grid_dim;

void syncthreads();
void *dyn_shared();
void launch_erased(const char *name, dim3 grid, dim3 block, size_t shmem, void (*fn)(void *), void *ctx);
/* Reports misuse as the scheduler does (ach_emu_errors). */
void report(const char *fmt, ...);

/* Stream capture, as for a CUDA graph: while `recording` is set, launches
 * (and the backend's stream operations: memsets, GEMMs) are appended to it,
 * with their arguments copied, instead of run; replaying runs them in order. */
using graph_op = std::function<void()>;
extern std::vector<graph_op> *recording;

/* Runs f() as every thread of every block of the grid (or records it). */
template <class F> void launch(const char *name, dim3 grid, dim3 block, size_t shmem, F &&f)
{
    using T = std::remove_reference_t<F>;
    auto run = [](void *p) { (*static_cast<T *>(p))(); };
    if (recording) {
        recording->push_back([=]() mutable { launch_erased(name, grid, block, shmem, run, &f); });
        return;
    }
    launch_erased(name, grid, block, shmem, run, &f);
}
} // namespace ach_emu

extern "C" {
/* The order in which the threads of a block are resumed after each barrier
 * (emu.cc): thread order (the default), reverse, or shuffled. */
enum { ACH_EMU_FORWARD, ACH_EMU_REVERSE, ACH_EMU_SHUFFLE };
void ach_emu_set_order(int mode);
/* Errors the emulator found since the last call (0 if none); the first
 * message goes to msg. Each is also printed to stderr. */
int ach_emu_errors(char *msg, size_t n);
/* Totals since start, for tests and curiosity. */
void ach_emu_stats(unsigned long long *launches, unsigned long long *blocks, unsigned long long *threads,
                   unsigned long long *barriers);
}

#define threadIdx (ach_emu::thread_idx)
#define blockIdx (ach_emu::block_idx)
#define blockDim (ach_emu::block_dim)
#define gridDim (ach_emu::grid_dim)
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static
#define __syncthreads() ach_emu::syncthreads()
#define ACH_DYN_SHARED(type, name) type *name = static_cast<type *>(ach_emu::dyn_shared())
/* The arguments are evaluated and copied at the launch, as a launch (and a
 * graph) takes them. */
#define ACH_LAUNCH(kernel, grid, block, shmem, ...)                   \
    ach_emu::launch(#kernel, (grid), (block), (shmem),                \
                    [ach_args = std::make_tuple(__VA_ARGS__)]() { std::apply(kernel, ach_args); })
#endif
