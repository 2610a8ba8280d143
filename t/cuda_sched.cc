// The host emulator of the CUDA execution model (cuda/emu.h) on kernels
// written for it here: indices, barriers, shared memory per block, dynamic
// shared memory, the three thread orders, and the misuse it reports.
#include "emu.h"

#include <cmath>
#include <cstring>
#include <vector>

#include "tap.h"

// Each thread writes its slot, waits, then reads its neighbour's: correct
// only if the barrier holds every thread until all have written.
static __global__ void k_rotate(int *out)
{
    __shared__ int sh[1024];
    int t = (int)threadIdx.x, n = (int)blockDim.x;
    sh[t] = (int)(blockIdx.x * 10000 + t);
    __syncthreads();
    out[blockIdx.x * n + t] = sh[(t + 1) % n];
}

// The same without the barrier: a race that the thread order exposes.
static __global__ void k_rotate_racy(int *out)
{
    __shared__ int sh[1024];
    int t = (int)threadIdx.x, n = (int)blockDim.x;
    sh[t] = (int)(blockIdx.x * 10000 + t);
    out[blockIdx.x * n + t] = sh[(t + 1) % n];
}

// Many barriers in a loop: a prefix sum through shared memory (each round
// adds the value `off` places back, off doubling).
static __global__ void k_scan(int *out, int rounds)
{
    __shared__ int sh[1024];
    int t = (int)threadIdx.x;
    sh[t] = 1;
    __syncthreads();
    for (int r = 0; r < rounds; r++) {
        int off = 1 << r, v = sh[t] + (t >= off ? sh[t - off] : 0);
        __syncthreads();
        sh[t] = v;
        __syncthreads();
    }
    out[t] = sh[t];
}

// 3-D blocks and grids: every thread records its coordinates.
static __global__ void k_coords(unsigned *out)
{
    unsigned b = (blockIdx.z * gridDim.y + blockIdx.y) * gridDim.x + blockIdx.x;
    unsigned t = (threadIdx.z * blockDim.y + threadIdx.y) * blockDim.x + threadIdx.x;
    unsigned *o = out + 6 * (b * blockDim.x * blockDim.y * blockDim.z + t);
    o[0] = threadIdx.x, o[1] = threadIdx.y, o[2] = threadIdx.z;
    o[3] = blockIdx.x, o[4] = blockIdx.y, o[5] = blockIdx.z;
}

// Dynamic shared memory: NaN until written, private to the block.
static __global__ void k_dyn(float *out)
{
    ACH_DYN_SHARED(float, d);
    int t = (int)threadIdx.x;
    out[blockIdx.x * 2 * blockDim.x + t] = d[t]; // before writing: the poison
    __syncthreads();
    d[t] = (float)blockIdx.x;
    __syncthreads();
    out[(blockIdx.x * 2 + 1) * blockDim.x + t] = d[(t + 1) % blockDim.x];
}

// A barrier that only some threads reach.
static __global__ void k_divergent(int *out)
{
    if (threadIdx.x < 5) return;
    __syncthreads();
    out[threadIdx.x] = 1;
}

static int errors_now(char *msg, size_t n) { return ach_emu_errors(msg, n); }
static int scratch_out[2048];

int main()
{
    char msg[512];
    for (int order = 0; order < 3; order++) {
        static const char *names[] = {"thread order", "reverse", "shuffled"};
        ach_emu_set_order(order);
        std::vector<int> out(7 * 96, -1);
        ACH_LAUNCH(k_rotate, 7, 96, 0, out.data());
        int good = 1;
        for (int b = 0; b < 7; b++)
            for (int t = 0; t < 96; t++) good &= out[b * 96 + t] == b * 10000 + (t + 1) % 96;
        ok(good, "barrier: every thread sees its neighbour's write (%s, 7 blocks of 96)", names[order]);
        std::vector<int> s(1024);
        ACH_LAUNCH(k_scan, 1, 1024, 0, s.data(), 10);
        good = 1;
        for (int t = 0; t < 1024; t++) good &= s[t] == t + 1;
        ok(good, "21 barriers over 1024 threads: the exact prefix sums (%s)", names[order]);
    }
    // the race: thread order lets thread t read t+1's slot before it is
    // written (stale: the previous block's value), reverse order after
    std::vector<int> fwd(4 * 64), rev(4 * 64);
    ach_emu_set_order(0);
    ACH_LAUNCH(k_rotate_racy, 4, 64, 0, fwd.data());
    ach_emu_set_order(1);
    ACH_LAUNCH(k_rotate_racy, 4, 64, 0, rev.data());
    ach_emu_set_order(0);
    ok(fwd != rev, "a missing barrier gives different results in thread order and in reverse");
    ok(rev[1 * 64 + 5] == 10000 + 6 && fwd[1 * 64 + 5] == 6, "the race: thread 5 of block 1 reads the stale %d in thread order, %d in reverse",
       fwd[1 * 64 + 5], rev[1 * 64 + 5]);

    std::vector<unsigned> c(6 * 3 * 2 * 4 * 2 * 3);
    ACH_LAUNCH(k_coords, dim3(3, 2), dim3(4, 2, 3), 0, c.data());
    int good = 1;
    for (unsigned b = 0; b < 6; b++)
        for (unsigned t = 0; t < 24; t++) {
            const unsigned *o = &c[6 * (b * 24 + t)];
            good &= o[0] == t % 4 && o[1] == t / 4 % 2 && o[2] == t / 8 && o[3] == b % 3 && o[4] == b / 3 && o[5] == 0;
        }
    ok(good, "3-D indices: grid (3,2,1) x block (4,2,3), every thread once with its coordinates");

    std::vector<float> d(3 * 2 * 32);
    ACH_LAUNCH(k_dyn, 3, 32, 32 * sizeof(float), d.data());
    good = 1;
    for (int b = 0; b < 3; b++)
        for (int t = 0; t < 32; t++) good &= std::isnan(d[b * 64 + t]) && d[b * 64 + 32 + t] == (float)b;
    ok(good, "dynamic shared memory: NaN before each block writes it, the block's own after");
    int ne = errors_now(msg, sizeof msg);
    ok(ne == 0, "no emulator errors so far%s%s", ne ? ": " : "", msg);

    std::vector<int> dv(64);
    ACH_LAUNCH(k_divergent, 2, 64, 0, dv.data());
    ne = errors_now(msg, sizeof msg);
    ok(ne == 1 && strstr(msg, "k_divergent") && strstr(msg, "59 threads while 5 had returned"),
       "a barrier that 5 of 64 threads skip is reported once and stops the launch: %s", msg);
    ACH_LAUNCH(k_rotate, 1, 1025, 0, scratch_out);
    ne = errors_now(msg, sizeof msg);
    ok(ne == 1 && strstr(msg, "1025 threads"), "a block of 1025 threads is refused: %s", msg);
    ACH_LAUNCH(k_rotate, 0, 32, 0, scratch_out);
    ne = errors_now(msg, sizeof msg);
    ok(ne == 1 && strstr(msg, "empty launch"), "an empty grid is refused: %s", msg);
    ACH_LAUNCH(k_dyn, 1, 32, 300 << 10, (float *)nullptr);
    ne = errors_now(msg, sizeof msg);
    ok(ne == 1 && strstr(msg, "shared memory"), "300 KiB of shared memory is refused: %s", msg);
    unsigned long long l, b, t, s;
    ach_emu_stats(&l, &b, &t, &s);
    diag("%llu launches, %llu blocks, %llu threads, %llu barrier rounds", l, b, t, s);
    return done_testing();
}
