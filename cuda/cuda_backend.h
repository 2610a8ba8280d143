/* The CUDA backend of the kernel interface (kernels.h), in two builds of the
 * same source (cuda/README.md):
 *   ach_cuda_kernels()      the GPU, in binaries built by `make cuda`
 *                           (build/achilles-cuda) only;
 *   ach_cuda_emu_kernels()  the host emulator, for tests without a GPU.
 * Arrays live in device memory (alloc, to_device, to_host); the table's
 * kernels run in order on one stream and may be used by one host thread at a
 * time. */
#ifndef ACH_CUDA_BACKEND_H
#define ACH_CUDA_BACKEND_H
#ifdef __cplusplus
extern "C" {
#endif
#include "kernels.h"

/* NULL when no device can be used; ach_cuda_error() then says why. The
 * first call picks the device (ACHILLES_CUDA_DEVICE, default 0). */
const ach_kernels *ach_cuda_kernels(void);
const char *ach_cuda_error(void);
const ach_kernels *ach_cuda_emu_kernels(void);

/* Launch shapes, for tests: threads per block of the one-dimensional
 * kernels, their grid cap, threads per block of the per-sequence SSD
 * kernels; values <= 0 keep the current one. Defaults 256, 8192, 128. */
void ach_cuda_set_shape(int threads, int max_blocks, int seq_threads);
void ach_cuda_emu_set_shape(int threads, int max_blocks, int seq_threads);

/* Graphs of training steps (kernels.h graph_run): on 0 steps run kernel by
 * kernel (also ACHILLES_CUDA_GRAPHS=0 in the environment); counts of graphs
 * recorded and of replays since start. */
void ach_cuda_set_graphs(int on);
void ach_cuda_emu_set_graphs(int on);
void ach_cuda_graph_stats(unsigned long *recorded, unsigned long *replayed);
void ach_cuda_emu_graph_stats(unsigned long *recorded, unsigned long *replayed);

/* Emulator controls (emu.h): errors found since the last call; the order
 * in which a block's threads resume after a barrier (0 thread order, 1
 * reverse, 2 shuffled). */
int ach_emu_errors(char *msg, size_t n);
void ach_emu_set_order(int mode);
#ifdef __cplusplus
}
#endif
#endif
