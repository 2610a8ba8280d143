// The emulator's scheduler: blocks in order, each block's threads as
// coroutines (ucontext) resumed round by round. A round ends when every live
// thread has reached __syncthreads() or returned; a round in which some
// threads wait and others returned is a divergent barrier, which the
// hardware would hang on or get wrong, and is reported.
//
// The order in which a round resumes the threads is a setting: thread order,
// reverse, or a shuffle drawn afresh each round from a fixed seed. Between
// two barriers each thread runs alone to the next one, so a kernel that reads
// another thread's write without a barrier in between sees it in one order
// and not in another: running a kernel in all three orders and requiring the
// same bits exposes such races.
#include "emu.h"

#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sys/mman.h>
#include <ucontext.h>
#include <vector>

namespace ach_emu {
uint3 thread_idx, block_idx;
dim3 block_dim, grid_dim;

namespace {
enum { READY, WAITING, DONE };
const size_t STACK = 256 << 10; // per thread; kernels keep little on the stack

struct fiber {
    ucontext_t ctx;
    char *stack;
    int state;
    uint3 idx;
};

ucontext_t sched;
std::vector<fiber> fibers;
int cur = -1; // running fiber, -1 outside a launch
void (*body)(void *);
void *body_ctx;
std::vector<unsigned char> dyn;
int order_mode; // ACH_EMU_FORWARD, _REVERSE, _SHUFFLE
unsigned long long shuffle_state = 0x9e3779b97f4a7c15ull;
std::vector<unsigned> perm;
int nerrors;
char first_error[512];
unsigned long long n_launches, n_blocks, n_threads, n_barriers;

} // namespace

void report(const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    fprintf(stderr, "achilles: cuda emulator: %s\n", buf);
    if (!nerrors++) snprintf(first_error, sizeof first_error, "%s", buf);
}

namespace {

void trampoline()
{
    body(body_ctx);
    fibers[cur].state = DONE; // uc_link returns to the scheduler
}

void ensure_fibers(size_t n)
{
    while (fibers.size() < n) {
        fiber f{};
        void *p = mmap(nullptr, STACK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (p == MAP_FAILED) {
            fprintf(stderr, "achilles: cuda emulator: cannot map a thread stack\n");
            abort();
        }
        f.stack = static_cast<char *>(p);
        fibers.push_back(f);
    }
}

// Out of line: getcontext returns twice as far as the compiler knows, which
// must not touch the caller's loop.
__attribute__((noinline)) void start_fiber(unsigned i)
{
    fiber &f = fibers[i];
    f.idx.x = i % block_dim.x;
    f.idx.y = i / block_dim.x % block_dim.y;
    f.idx.z = i / (block_dim.x * block_dim.y);
    f.state = READY;
    getcontext(&f.ctx);
    f.ctx.uc_stack.ss_sp = f.stack;
    f.ctx.uc_stack.ss_size = STACK;
    f.ctx.uc_link = &sched;
    makecontext(&f.ctx, trampoline, 0);
}

// Runs one block to completion; 0, or -1 after a divergent barrier.
int run_block(const char *name, unsigned nthreads)
{
    for (unsigned i = 0; i < nthreads; i++) start_fiber(i);
    perm.resize(nthreads);
    for (unsigned i = 0; i < nthreads; i++) perm[i] = order_mode == ACH_EMU_REVERSE ? nthreads - 1 - i : i;
    for (;;) {
        unsigned waiting = 0, done = 0;
        if (order_mode == ACH_EMU_SHUFFLE)
            for (unsigned j = nthreads; j > 1; j--) { // Fisher-Yates with xorshift64
                shuffle_state ^= shuffle_state << 13, shuffle_state ^= shuffle_state >> 7, shuffle_state ^= shuffle_state << 17;
                unsigned r = (unsigned)(shuffle_state % j), t = perm[j - 1];
                perm[j - 1] = perm[r], perm[r] = t;
            }
        for (unsigned k = 0; k < nthreads; k++) {
            unsigned i = perm[k];
            if (fibers[i].state == DONE) {
                done++;
                continue;
            }
            cur = (int)i;
            thread_idx = fibers[i].idx;
            fibers[i].state = READY;
            swapcontext(&sched, &fibers[i].ctx);
            if (fibers[i].state == WAITING) waiting++;
            else done++;
        }
        cur = -1;
        if (!waiting) return 0;
        n_barriers++;
        if (done) {
            report("%s: block (%u,%u,%u): __syncthreads() reached by %u threads while %u had returned", name,
                  block_idx.x, block_idx.y, block_idx.z, waiting, done);
            return -1; // the waiting fibers are abandoned; their stacks are reset at the next launch
        }
    }
}
} // namespace

void syncthreads()
{
    if (cur < 0) {
        report("__syncthreads() outside a kernel");
        return;
    }
    fiber &f = fibers[cur];
    f.state = WAITING;
    swapcontext(&f.ctx, &sched);
}

void *dyn_shared() { return dyn.empty() ? nullptr : dyn.data(); }

std::vector<graph_op> *recording;

void launch_erased(const char *name, dim3 grid, dim3 block, size_t shmem, void (*fn)(void *), void *ctx)
{
    unsigned long long nthreads = (unsigned long long)block.x * block.y * block.z;
    if (cur >= 0) {
        report("%s: launched from inside a kernel", name);
        return;
    }
    if (!grid.x || !grid.y || !grid.z || !nthreads) {
        report("%s: empty launch (grid %u,%u,%u, block %u,%u,%u)", name, grid.x, grid.y, grid.z, block.x, block.y,
              block.z);
        return;
    }
    if (nthreads > 1024 || block.z > 64) {
        report("%s: block of %llu threads (%u,%u,%u): the hardware allows 1024, z <= 64", name, nthreads, block.x,
              block.y, block.z);
        return;
    }
    if (grid.y > 65535 || grid.z > 65535) {
        report("%s: grid (%u,%u,%u): y and z are at most 65535", name, grid.x, grid.y, grid.z);
        return;
    }
    if (shmem > (227u << 10)) {
        report("%s: %zu bytes of dynamic shared memory (at most 227 KiB per block)", name, shmem);
        return;
    }
    ensure_fibers(nthreads);
    body = fn, body_ctx = ctx;
    grid_dim = grid, block_dim = block;
    dyn.assign(shmem, 0xff);
    n_launches++;
    for (unsigned z = 0; z < grid.z; z++)
        for (unsigned y = 0; y < grid.y; y++)
            for (unsigned x = 0; x < grid.x; x++) {
                block_idx = uint3{x, y, z};
                if (shmem) memset(dyn.data(), 0xff, shmem);
                n_blocks++;
                n_threads += nthreads;
                if (run_block(name, (unsigned)nthreads)) return;
            }
}
} // namespace ach_emu

extern "C" void ach_emu_set_order(int mode)
{
    ach_emu::order_mode = mode;
    ach_emu::shuffle_state = 0x9e3779b97f4a7c15ull; // each setting replays the same shuffles
}

extern "C" int ach_emu_errors(char *msg, size_t n)
{
    int e = ach_emu::nerrors;
    if (msg && n) snprintf(msg, n, "%s", e ? ach_emu::first_error : "");
    ach_emu::nerrors = 0;
    ach_emu::first_error[0] = 0;
    return e;
}

extern "C" void ach_emu_stats(unsigned long long *launches, unsigned long long *blocks, unsigned long long *threads,
                              unsigned long long *barriers)
{
    *launches = ach_emu::n_launches, *blocks = ach_emu::n_blocks;
    *threads = ach_emu::n_threads, *barriers = ach_emu::n_barriers;
}
