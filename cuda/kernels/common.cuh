/* What every kernel file shares. Kernel files are included by the device
 * build (cuda/backend_cuda.cu, nvcc) and by the emulated one
 * (cuda/backend_emu.cc, emu.h first), so the logic tested is the logic
 * shipped; they use only what emu.h provides (no warp intrinsics, no atomics).
 *
 * Determinism: every reduction is a fixed-order sum. Sums over rows are cut
 * into chunks of ACH_CU_CHUNK rows (a constant, not the launch shape): a
 * kernel writes one partial per chunk and k_reduce_chunks adds the partials
 * in chunk order. The chunking, not the grid, decides the summation order, so
 * the results do not depend on the block or grid size either. */
#ifndef ACH_CUDA_COMMON_CUH
#define ACH_CUDA_COMMON_CUH
#include <stddef.h>

#include "mathfn.h"

#define ACH_CU_CHUNK 64 /* rows per partial sum */

/* Grid-stride loop over [0, n): any grid covers any n. */
#define ACH_FOR(i, n) \
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < (size_t)(n); i += (size_t)gridDim.x * blockDim.x)
/* Block-stride loop over [0, n) by the threads of one block. */
#define ACH_FOR_BLOCK(i, n) for (int i = (int)threadIdx.x; i < (int)(n); i += (int)blockDim.x)

/* out[c] += sum_k part[k * C + c] over k = 0..nchunks-1, in order: the second
 * pass of every chunked reduction. */
static __global__ void k_reduce_chunks(real *out, const real *part, int nchunks, size_t C)
{
    ACH_FOR(c, C)
    {
        real acc = 0;
        for (int k = 0; k < nchunks; k++) acc += part[(size_t)k * C + c];
        out[c] += acc;
    }
}

/* part[k * C + c] = sum of in[r * ld + c] over the rows r of chunk k. */
static __global__ void k_colsum_part(real *part, const real *in, int rows, int C, int ld)
{
    int nchunks = (rows + ACH_CU_CHUNK - 1) / ACH_CU_CHUNK;
    ACH_FOR(e, (size_t)nchunks * C)
    {
        int k = (int)(e / C), c = (int)(e % C), r1 = (k + 1) * ACH_CU_CHUNK < rows ? (k + 1) * ACH_CU_CHUNK : rows;
        real acc = 0;
        for (int r = k * ACH_CU_CHUNK; r < r1; r++) acc += in[(size_t)r * ld + c];
        part[e] = acc;
    }
}
#endif
