/* cuda_shim.h: just enough of CUDA, in C++17 for the host, to run generated
 * kernels in the emulator (runtime/emu.h, docs/emulation.md).
 *
 * A launch runs the blocks of the grid one after another on the calling
 * thread; the threads of a block are fibers (ucontext) that run until they
 * reach a barrier, a warp operation or their end. So __syncthreads is a real
 * block barrier and a shuffle a real exchange between the lanes of a warp, and
 * no two fibers ever run at once: plain read-modify-write is atomic here.
 *
 * Shared memory: `__shared__` becomes `static`, one copy per kernel that the
 * blocks of a launch reuse in turn (CUDA leaves it uninitialised at block
 * start; here it holds what the previous block left). Under ASan such arrays
 * get redzones, so an out-of-bounds index is reported. Dynamic shared memory
 * is one buffer per launch, filled with 0xFF bytes (a NaN for floats) at the
 * start of every block; kernels reach it through MX_DYNAMIC_SMEM.
 *
 * Checks that real hardware would leave undefined: threads that exit while
 * others wait at __syncthreads, threads that wait at different __syncthreads,
 * a warp operation whose mask lacks the calling lane or names a lane that has
 * exited or does not exist, lanes of one mask at different warp operations.
 * Each fails the launch with a message; none crashes the process. A shuffle
 * that reads a lane outside its mask gets 0xFF bytes (NaN). */
#ifndef MIXC_CUDA_SHIM_H
#define MIXC_CUDA_SHIM_H

#if __cplusplus < 201703L
#error "cuda_shim.h needs C++17"
#endif

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <cmath>
#include <mutex>
#include <tuple>
#include <type_traits>
#include <utility>

#include "../../ir/half.h"
#include "../emu.h"

#if defined(__SANITIZE_ADDRESS__)
#define MX_EMU_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MX_EMU_ASAN 1
#endif
#endif
#ifdef MX_EMU_ASAN
#include <sanitizer/asan_interface.h>
#endif

/* ---- qualifiers ------------------------------------------------------------- */

#define __global__
#define __device__
#define __host__
#define __constant__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
#define __shared__ static

/* ---- vector types ------------------------------------------------------------ */

struct uint3 {
    unsigned x, y, z;
};

struct dim3 {
    unsigned x, y, z;
    constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

/* The alignments are CUDA's: a float4 load must be 16-byte aligned there. */
#define MX_EMU_VEC2(T, name, align)                                            \
    struct alignas(align) name {                                               \
        T x, y;                                                                \
    };                                                                         \
    static inline name make_##name(T x, T y) { return name{x, y}; }
#define MX_EMU_VEC4(T, name, align)                                            \
    struct alignas(align) name {                                               \
        T x, y, z, w;                                                          \
    };                                                                         \
    static inline name make_##name(T x, T y, T z, T w) { return name{x, y, z, w}; }
MX_EMU_VEC2(float, float2, 8)
MX_EMU_VEC4(float, float4, 16)
MX_EMU_VEC2(double, double2, 16)
MX_EMU_VEC2(int, int2, 8)
MX_EMU_VEC4(int, int4, 16)
MX_EMU_VEC2(unsigned, uint2, 8)
MX_EMU_VEC4(unsigned, uint4, 16)
#undef MX_EMU_VEC2
#undef MX_EMU_VEC4

constexpr int warpSize = 32;

/* ---- the emulator --------------------------------------------------------------- */

namespace mx_emu {

enum class State : unsigned char { ready, at_barrier, at_warp, done, failed };
enum class WarpKind : unsigned char {
    syncwarp, shfl, shfl_up, shfl_down, shfl_xor, ballot, all, any
};

inline const char *warp_kind_name(WarpKind k) {
    static const char *const names[] = {"__syncwarp",       "__shfl_sync",     "__shfl_up_sync",
                                        "__shfl_down_sync", "__shfl_xor_sync", "__ballot_sync",
                                        "__all_sync",       "__any_sync"};
    return names[static_cast<int>(k)];
}

/* One lane's side of a warp operation: its request, then its result. */
struct WarpOp {
    WarpKind kind;
    unsigned mask;
    int arg; /* source lane, delta, lane mask, or the vote's predicate */
    int width;
    size_t size; /* bytes of the shuffled value */
    alignas(16) unsigned char in[16];
    alignas(16) unsigned char out[16];
};

struct Block;

struct Thread {
    ucontext_t ctx;
    uint3 tid;
    unsigned linear; /* x + y*bx + z*bx*by: lanes and warps follow it */
    State state;
    int line; /* where it waits: __syncthreads or a warp operation */
    const char *func;
    WarpOp op;
    void *fake_stack; /* ASan's, while the fiber is switched out */
    Block *block;
};

struct Block {
    const char *kernel;
    dim3 grid, dim;
    uint3 idx;
    Thread *threads;
    unsigned n;
    char *stacks; /* n slots of one guard page then the stack */
    size_t stack_size, slot_size;
    ucontext_t sched;
    const void *sched_stack; /* the scheduler's stack, for ASan */
    size_t sched_stack_size;
    unsigned char *dyn_smem;
    size_t dyn_smem_size;
    void (*invoke)(const void *closure);
    const void *closure;
    char *err;
    size_t err_size;
    bool failed;
};

/* The running fiber; fibers share the OS thread, so it changes on every switch. */
inline thread_local Thread *cur = nullptr;

/* static __shared__ arrays exist once per module: one launch at a time. */
inline std::mutex launch_mutex;

/* Tell ASan which stack is live (no-ops without it). */
#ifdef MX_EMU_ASAN
inline void asan_start_switch(void **fake_save, const void *bottom, size_t size) {
    __sanitizer_start_switch_fiber(fake_save, bottom, size);
}
inline void asan_finish_switch(void *fake_save, const void **bottom_old, size_t *size_old) {
    __sanitizer_finish_switch_fiber(fake_save, bottom_old, size_old);
}
#else
inline void asan_start_switch(void **, const void *, size_t) {}
inline void asan_finish_switch(void *, const void **, size_t *) {}
#endif

#ifdef MX_EMU_ASAN
/* ASan and UBSan reports name the source line but not the CUDA thread. */
inline void on_sanitizer_death() {
    if (const Thread *t = cur)
        fprintf(stderr, "mixc: emu: in kernel '%s', block (%u,%u,%u), thread (%u,%u,%u)\n",
                t->block->kernel, t->block->idx.x, t->block->idx.y, t->block->idx.z, t->tid.x,
                t->tid.y, t->tid.z);
}
#endif

/* "thread (x,y,z)" */
struct Name {
    char s[48];
    explicit Name(const Thread &t) {
        snprintf(s, sizeof s, "thread (%u,%u,%u)", t.tid.x, t.tid.y, t.tid.z);
    }
};

/* Keeps the first error of the launch. */
__attribute__((format(printf, 2, 3))) inline void fail_block(Block &b, const char *fmt, ...) {
    if (b.failed)
        return;
    b.failed = true;
    int k = snprintf(b.err, b.err_size, "kernel '%s', block (%u,%u,%u): ", b.kernel, b.idx.x,
                     b.idx.y, b.idx.z);
    if (k < 0 || static_cast<size_t>(k) >= b.err_size)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b.err + k, b.err_size - k, fmt, ap);
    va_end(ap);
}

/* The lowest address of thread i's stack. */
inline char *stack_of(const Block &b, unsigned i) {
    return b.stacks + i * b.slot_size + (b.slot_size - b.stack_size);
}

/* Scheduler -> fiber t, until t blocks, ends or fails. */
inline void switch_to(Block &b, Thread &t) {
    cur = &t;
    void *fake = nullptr;
    asan_start_switch(&fake, stack_of(b, t.linear), b.stack_size);
    swapcontext(&b.sched, &t.ctx);
    asan_finish_switch(fake, nullptr, nullptr);
    cur = nullptr;
}

/* Fiber -> scheduler; returns when the scheduler resumes this thread. */
inline void yield(Thread &t) {
    Block &b = *t.block;
    asan_start_switch(&t.fake_stack, b.sched_stack, b.sched_stack_size);
    swapcontext(&t.ctx, &b.sched);
    asan_finish_switch(t.fake_stack, nullptr, nullptr);
}

/* The launch is over for this fiber: it is never resumed. */
[[noreturn]] inline void thread_fail(Thread &t) {
    t.state = State::failed;
    yield(t);
    __builtin_unreachable();
}

inline void fiber_main() {
    Thread &t = *cur;
    Block &b = *t.block;
    asan_finish_switch(nullptr, &b.sched_stack, &b.sched_stack_size);
    b.invoke(b.closure);
    t.state = State::done;
    asan_start_switch(nullptr, b.sched_stack, b.sched_stack_size); /* this stack dies */
    setcontext(&b.sched);
    __builtin_unreachable();
}

/* ---- warps ---- */

/* The lanes of warp w that exist: the last warp of a block may be partial. */
inline unsigned warp_exists(const Block &b, unsigned w) {
    unsigned n = b.n - w * 32;
    return n >= 32 ? 0xFFFFFFFFu : (1u << n) - 1;
}

inline bool in_mask(unsigned mask, unsigned lane) { return lane < 32 && (mask >> lane & 1u); }

/* PTX shfl.sync's source lane for lane l within segments of `width` lanes;
 * l itself where the source falls outside l's segment. */
inline unsigned source_lane(const WarpOp &op, unsigned l) {
    unsigned w = static_cast<unsigned>(op.width), seg = l & ~(w - 1);
    unsigned a = static_cast<unsigned>(op.arg);
    switch (op.kind) {
    case WarpKind::shfl:
        return seg + (a & (w - 1));
    case WarpKind::shfl_up:
        return (l - seg) >= a ? l - a : l;
    case WarpKind::shfl_down:
        return a < w - (l - seg) ? l + a : l;
    default: /* shfl_xor: earlier segments may be read, later ones not */
        return (l ^ a) <= (seg | (w - 1)) ? l ^ a : l;
    }
}

/* Every lane of `mask` in warp `base` waits at the same operation: give each
 * its result and let it run. */
inline void resolve_warp(Block &b, unsigned base, unsigned mask) {
    unsigned ballot = 0;
    for (unsigned l = 0; l < 32; l++)
        if (in_mask(mask, l) && b.threads[base + l].op.arg != 0)
            ballot |= 1u << l;
    for (unsigned l = 0; l < 32; l++) {
        if (!in_mask(mask, l))
            continue;
        Thread &t = b.threads[base + l];
        WarpOp &op = t.op;
        int vote = 0;
        switch (op.kind) {
        case WarpKind::syncwarp:
            break;
        case WarpKind::ballot:
            memcpy(op.out, &ballot, sizeof ballot);
            break;
        case WarpKind::all:
            vote = ballot == mask;
            memcpy(op.out, &vote, sizeof vote);
            break;
        case WarpKind::any:
            vote = ballot != 0;
            memcpy(op.out, &vote, sizeof vote);
            break;
        default: {
            unsigned src = source_lane(op, l);
            if (in_mask(mask, src))
                memcpy(op.out, b.threads[base + src].op.in, op.size);
            else
                memset(op.out, 0xFF, op.size);
        }
        }
        t.state = State::ready;
    }
}

/* The calling lane's side of a warp operation; the result lands in cur->op.out. */
inline void warp_op(const WarpOp &op, int line, const char *func) {
    Thread &t = *cur;
    Block &b = *t.block;
    unsigned lane = t.linear % 32, base = t.linear - lane, exists = warp_exists(b, base / 32);
    const char *what = warp_kind_name(op.kind);
    t.op = op;
    t.line = line;
    t.func = func;
    if (!in_mask(op.mask, lane)) {
        fail_block(b, "%s: %s in %s (line %d): mask 0x%08x lacks the calling lane %u", Name(t).s,
                   what, func, line, op.mask, lane);
        thread_fail(t);
    }
    if (op.mask & ~exists) {
        fail_block(b, "%s: %s in %s (line %d): mask 0x%08x names lanes that do not exist (this "
                      "warp has lanes 0x%08x)",
                   Name(t).s, what, func, line, op.mask, exists);
        thread_fail(t);
    }
    if (op.width < 1 || op.width > 32 || (op.width & (op.width - 1))) {
        fail_block(b, "%s: %s in %s (line %d): width %d is not a power of two in 1..32", Name(t).s,
                   what, func, line, op.width);
        thread_fail(t);
    }
    bool complete = true;
    for (unsigned l = 0; l < 32; l++) {
        if (!in_mask(op.mask, l) || l == lane)
            continue;
        const Thread &o = b.threads[base + l];
        if (o.state == State::done) {
            fail_block(b, "%s: %s in %s (line %d): mask 0x%08x names lane %u, which has exited",
                       Name(t).s, what, func, line, op.mask, l);
            thread_fail(t);
        }
        if (o.state == State::at_warp && o.op.mask == op.mask &&
            (o.op.kind != op.kind || o.op.size != op.size)) {
            fail_block(b, "%s: %s in %s (line %d) meets lane %u at %s (line %d), mask 0x%08x",
                       Name(t).s, what, func, line, l, warp_kind_name(o.op.kind), o.line, op.mask);
            thread_fail(t);
        }
        complete = complete && o.state == State::at_warp && o.op.mask == op.mask;
    }
    t.state = State::at_warp;
    if (complete)
        resolve_warp(b, base, op.mask); /* the last to arrive goes on at once */
    else
        yield(t);
}

template <typename T>
inline T shuffle(WarpKind kind, unsigned mask, T var, int arg, int width, int line,
                 const char *func) {
    static_assert(std::is_trivially_copyable_v<T> && sizeof(T) <= sizeof(WarpOp::in),
                  "shuffled values are plain data of at most 16 bytes");
    WarpOp op{};
    op.kind = kind;
    op.mask = mask;
    op.arg = arg;
    op.width = width;
    op.size = sizeof(T);
    memcpy(op.in, &var, sizeof var);
    warp_op(op, line, func);
    T r;
    memcpy(&r, cur->op.out, sizeof r);
    return r;
}

inline int vote(WarpKind kind, unsigned mask, int pred, int line, const char *func) {
    WarpOp op{};
    op.kind = kind;
    op.mask = mask;
    op.arg = pred != 0;
    op.width = 32;
    warp_op(op, line, func);
    int r;
    memcpy(&r, cur->op.out, sizeof r);
    return r;
}

/* ---- blocks ---- */

inline void syncthreads(int line, const char *func) {
    Thread &t = *cur;
    t.state = State::at_barrier;
    t.line = line;
    t.func = func;
    yield(t);
}

/* Why the threads of a warp operation can never all arrive. */
inline void diagnose_warp(Block &b, const Thread &t) {
    unsigned lane = t.linear % 32, base = t.linear - lane;
    for (unsigned l = 0; l < 32; l++) {
        if (!in_mask(t.op.mask, l))
            continue;
        const Thread &o = b.threads[base + l];
        char why[160];
        if (o.state == State::done)
            snprintf(why, sizeof why, "has exited");
        else if (o.state == State::at_barrier)
            snprintf(why, sizeof why, "waits at __syncthreads in %s (line %d)", o.func, o.line);
        else if (o.op.mask != t.op.mask)
            snprintf(why, sizeof why, "waits at %s in %s (line %d) with mask 0x%08x",
                     warp_kind_name(o.op.kind), o.func, o.line, o.op.mask);
        else
            continue;
        fail_block(b, "deadlock: %s waits at %s in %s (line %d) with mask 0x%08x, but lane %u %s",
                   Name(t).s, warp_kind_name(t.op.kind), t.func, t.line, t.op.mask, l, why);
        return;
    }
    fail_block(b, "deadlock: %s waits at %s in %s (line %d)", Name(t).s, warp_kind_name(t.op.kind),
               t.func, t.line);
}

/* No thread can run: release the threads at __syncthreads, or say why not. */
inline bool release_barrier(Block &b) {
    const Thread *waiter = nullptr, *exited = nullptr;
    unsigned n_exited = 0;
    for (unsigned i = 0; i < b.n; i++) {
        const Thread &t = b.threads[i];
        if (t.state == State::at_warp) {
            diagnose_warp(b, t);
            return false;
        }
        if (t.state == State::done) {
            exited = exited ? exited : &t;
            n_exited++;
        } else if (!waiter) {
            waiter = &t;
        } else if (t.line != waiter->line || t.func != waiter->func) {
            fail_block(b, "barrier divergence: %s waits at __syncthreads in %s (line %d), %s at "
                          "__syncthreads in %s (line %d)",
                       Name(*waiter).s, waiter->func, waiter->line, Name(t).s, t.func, t.line);
            return false;
        }
    }
    if (exited) {
        fail_block(b, "barrier divergence: %s waits at __syncthreads in %s (line %d), but %s has "
                      "exited (%u of %u threads exited)",
                   Name(*waiter).s, waiter->func, waiter->line, Name(*exited).s, n_exited, b.n);
        return false;
    }
    for (unsigned i = 0; i < b.n; i++)
        b.threads[i].state = State::ready;
    return true;
}

/* A fresh fiber at the start of fiber_main. Kept out of run_block, whose
 * locals getcontext (returns_twice) would otherwise put at risk. */
__attribute__((noinline)) inline void make_fiber(Thread &t, char *stack, size_t size) {
    t.state = State::ready;
    getcontext(&t.ctx);
    t.ctx.uc_stack.ss_sp = stack;
    t.ctx.uc_stack.ss_size = size;
    t.ctx.uc_link = nullptr;
    makecontext(&t.ctx, fiber_main, 0);
#ifdef MX_EMU_ASAN
    /* Clear what earlier fibers left on this stack once here. ASan's
     * swapcontext would clear the whole stack named in uc_stack on every
     * switch (the main cost of a launch); makecontext has already put the
     * stack pointer in the context, so the field can go. */
    ASAN_UNPOISON_MEMORY_REGION(stack, size);
    t.ctx.uc_stack.ss_sp = nullptr;
    t.ctx.uc_stack.ss_size = 0;
#endif
}

inline bool run_block(Block &b) {
    for (unsigned i = 0; i < b.n; i++)
        make_fiber(b.threads[i], stack_of(b, i), b.stack_size);
    if (b.dyn_smem)
        memset(b.dyn_smem, 0xFF, b.dyn_smem_size);
    unsigned done = 0;
    while (done < b.n) {
        bool ran = false;
        for (unsigned i = 0; i < b.n; i++) {
            Thread &t = b.threads[i];
            if (t.state != State::ready)
                continue;
            switch_to(b, t);
            if (b.failed)
                return false;
            ran = true;
            done += t.state == State::done;
        }
        if (!ran && !release_barrier(b))
            return false;
    }
    return true;
}

inline int run_grid(const char *kernel, const mx_emu_launch_desc &d,
                    void (*invoke)(const void *closure), const void *closure) {
    std::lock_guard<std::mutex> lock(launch_mutex);
#ifdef MX_EMU_ASAN
    __sanitizer_set_death_callback(on_sanitizer_death);
#endif
    Block b{};
    b.kernel = kernel;
    b.grid = dim3(d.grid[0], d.grid[1], d.grid[2]);
    b.dim = dim3(d.block[0], d.block[1], d.block[2]);
    b.n = d.block[0] * d.block[1] * d.block[2];
    b.invoke = invoke;
    b.closure = closure;
    b.err = d.err;
    b.err_size = d.err_size;
    size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    b.stack_size = (d.stack_size + page - 1) / page * page;
    b.slot_size = b.stack_size + page; /* a PROT_NONE page below each stack */
    size_t total = b.slot_size * b.n;
    void *stacks = mmap(nullptr, total, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    b.threads = static_cast<Thread *>(calloc(b.n, sizeof(Thread)));
    b.dyn_smem_size = d.smem;
    b.dyn_smem = d.smem ? static_cast<unsigned char *>(malloc(d.smem)) : nullptr;
    if (stacks == MAP_FAILED || !b.threads || (d.smem && !b.dyn_smem)) {
        snprintf(d.err, d.err_size, "kernel '%s': out of memory for %u fibers", kernel, b.n);
        b.failed = true;
    } else {
        b.stacks = static_cast<char *>(stacks);
        for (unsigned i = 0; i < b.n; i++)
            mprotect(b.stacks + i * b.slot_size, page, PROT_NONE);
        for (unsigned i = 0; i < b.n; i++) {
            Thread &t = b.threads[i];
            t.linear = i;
            t.tid = uint3{i % b.dim.x, i / b.dim.x % b.dim.y, i / (b.dim.x * b.dim.y)};
            t.block = &b;
        }
    }
    for (unsigned z = 0; z < b.grid.z && !b.failed; z++)
        for (unsigned y = 0; y < b.grid.y && !b.failed; y++)
            for (unsigned x = 0; x < b.grid.x && !b.failed; x++) {
                b.idx = uint3{x, y, z};
                run_block(b);
            }
    if (stacks != MAP_FAILED) {
#ifdef MX_EMU_ASAN
        /* Fibers abandoned by a failed launch leave their frames poisoned. */
        ASAN_UNPOISON_MEMORY_REGION(stacks, total);
#endif
        munmap(stacks, total);
    }
    free(b.threads);
    free(b.dyn_smem);
#ifdef MX_EMU_ASAN
    __sanitizer_set_death_callback(nullptr); /* this module may be unloaded */
#endif
    return b.failed ? 1 : 0;
}

/* Unpacks kernelParams into one tuple; each fiber's call copies it into its
 * own parameters, as every CUDA thread has its own. */
template <typename... A, size_t... I>
inline int launch_with(const char *kernel, const mx_emu_launch_desc &d, void (*fn)(A...),
                       std::index_sequence<I...>) {
    struct Closure {
        void (*fn)(A...);
        std::tuple<A...> args;
    };
    const Closure c{fn, std::tuple<A...>(*static_cast<A *>(d.args[I])...)};
    return run_grid(
        kernel, d,
        [](const void *p) {
            const Closure &cl = *static_cast<const Closure *>(p);
            std::apply(cl.fn, cl.args);
        },
        &c);
}

template <typename... A>
inline int launch(const char *kernel, const mx_emu_launch_desc &d, void (*fn)(A...)) {
    return launch_with(kernel, d, fn, std::index_sequence_for<A...>{});
}

inline Thread &current() { return *cur; }

} // namespace mx_emu

#define MX_EMU_ENTRY(kernel)                                                   \
    extern "C" __attribute__((visibility("default"))) int mx_emu_launch_##kernel( \
        const mx_emu_launch_desc *desc) {                                      \
        return ::mx_emu::launch(#kernel, *desc, kernel);                       \
    }

#define MX_DYNAMIC_SMEM(type, name)                                            \
    type *const name = reinterpret_cast<type *>(::mx_emu::current().block->dyn_smem)

/* ---- built-in variables -------------------------------------------------------- */

#define threadIdx (static_cast<const uint3 &>(::mx_emu::current().tid))
#define blockIdx (static_cast<const uint3 &>(::mx_emu::current().block->idx))
#define blockDim (static_cast<const dim3 &>(::mx_emu::current().block->dim))
#define gridDim (static_cast<const dim3 &>(::mx_emu::current().block->grid))

/* ---- synchronisation and warp intrinsics ----------------------------------------
 * The trailing defaulted arguments record the caller for error messages. */

inline void __syncthreads(int line = __builtin_LINE(), const char *func = __builtin_FUNCTION()) {
    mx_emu::syncthreads(line, func);
}

inline void __syncwarp(unsigned mask = 0xFFFFFFFFu, int line = __builtin_LINE(),
                       const char *func = __builtin_FUNCTION()) {
    mx_emu::WarpOp op{};
    op.kind = mx_emu::WarpKind::syncwarp;
    op.mask = mask;
    op.width = 32;
    mx_emu::warp_op(op, line, func);
}

/* The lanes of the caller's warp that have not exited. Hardware answers with
 * the lanes converged at this point, which fibers cannot know, and fibers run
 * one at a time between synchronisations, so a lane that ran ahead to its end
 * is missing here: exact only where no lane of the warp can have exited.
 * Generated code computes its masks from the block shape instead. */
inline unsigned __activemask() {
    const mx_emu::Thread &t = mx_emu::current();
    unsigned base = t.linear - t.linear % 32, mask = 0;
    for (unsigned l = 0; l < 32; l++)
        if (base + l < t.block->n && t.block->threads[base + l].state != mx_emu::State::done)
            mask |= 1u << l;
    return mask;
}

template <typename T>
inline T __shfl_sync(unsigned mask, T var, int srcLane, int width = warpSize,
                     int line = __builtin_LINE(), const char *func = __builtin_FUNCTION()) {
    return mx_emu::shuffle(mx_emu::WarpKind::shfl, mask, var, srcLane, width, line, func);
}
template <typename T>
inline T __shfl_up_sync(unsigned mask, T var, unsigned delta, int width = warpSize,
                        int line = __builtin_LINE(), const char *func = __builtin_FUNCTION()) {
    return mx_emu::shuffle(mx_emu::WarpKind::shfl_up, mask, var, static_cast<int>(delta), width,
                           line, func);
}
template <typename T>
inline T __shfl_down_sync(unsigned mask, T var, unsigned delta, int width = warpSize,
                          int line = __builtin_LINE(), const char *func = __builtin_FUNCTION()) {
    return mx_emu::shuffle(mx_emu::WarpKind::shfl_down, mask, var, static_cast<int>(delta), width,
                           line, func);
}
template <typename T>
inline T __shfl_xor_sync(unsigned mask, T var, int laneMask, int width = warpSize,
                         int line = __builtin_LINE(), const char *func = __builtin_FUNCTION()) {
    return mx_emu::shuffle(mx_emu::WarpKind::shfl_xor, mask, var, laneMask, width, line, func);
}

inline unsigned __ballot_sync(unsigned mask, int pred, int line = __builtin_LINE(),
                              const char *func = __builtin_FUNCTION()) {
    return static_cast<unsigned>(mx_emu::vote(mx_emu::WarpKind::ballot, mask, pred, line, func));
}
inline int __all_sync(unsigned mask, int pred, int line = __builtin_LINE(),
                      const char *func = __builtin_FUNCTION()) {
    return mx_emu::vote(mx_emu::WarpKind::all, mask, pred, line, func);
}
inline int __any_sync(unsigned mask, int pred, int line = __builtin_LINE(),
                      const char *func = __builtin_FUNCTION()) {
    return mx_emu::vote(mx_emu::WarpKind::any, mask, pred, line, func);
}

/* Fibers never run at once and see one memory: fences have nothing to order. */
inline void __threadfence() {}
inline void __threadfence_block() {}

/* ---- atomics: plain read-modify-write, since fibers are never preempted ---------- */

namespace mx_emu {
template <typename T> struct same {
    using type = T;
};
} // namespace mx_emu
#define MX_EMU_ATOMIC(name, expr)                                              \
    template <typename T> inline T name(T *addr, typename mx_emu::same<T>::type val) { \
        T old = *addr;                                                         \
        *addr = (expr);                                                        \
        return old;                                                            \
    }
MX_EMU_ATOMIC(atomicAdd, old + val)
MX_EMU_ATOMIC(atomicSub, old - val)
MX_EMU_ATOMIC(atomicMax, old < val ? val : old)
MX_EMU_ATOMIC(atomicMin, val < old ? val : old)
MX_EMU_ATOMIC(atomicExch, val)
MX_EMU_ATOMIC(atomicAnd, old & val)
MX_EMU_ATOMIC(atomicOr, old | val)
MX_EMU_ATOMIC(atomicXor, old ^ val)
#undef MX_EMU_ATOMIC

template <typename T>
inline T atomicCAS(T *addr, typename mx_emu::same<T>::type compare,
                   typename mx_emu::same<T>::type val) {
    T old = *addr;
    if (old == compare)
        *addr = val;
    return old;
}

/* ---- loads and stores with cache hints ------------------------------------------ */

template <typename T> inline T __ldg(const T *p) { return *p; }
template <typename T> inline T __ldcg(const T *p) { return *p; }
template <typename T> inline T __ldcs(const T *p) { return *p; }
template <typename T> inline void __stcg(T *p, T v) { *p = v; }
template <typename T> inline void __stcs(T *p, T v) { *p = v; }

/* ---- math: <cmath> has the C99 functions; these are CUDA's additions ------------- */

inline float __expf(float x) { return expf(x); }
inline float __exp10f(float x) { return powf(10.0f, x); }
inline float __logf(float x) { return logf(x); }
inline float __log2f(float x) { return log2f(x); }
inline float __powf(float x, float y) { return powf(x, y); }
inline float __sinf(float x) { return sinf(x); }
inline float __cosf(float x) { return cosf(x); }
inline float __tanf(float x) { return tanf(x); }
inline float __fdividef(float x, float y) { return x / y; }
inline float fdividef(float x, float y) { return x / y; }
inline float __frcp_rn(float x) { return 1.0f / x; }
inline float __fsqrt_rn(float x) { return sqrtf(x); }
inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline double rsqrt(double x) { return 1.0 / sqrt(x); }
inline float __frsqrt_rn(float x) { return 1.0f / sqrtf(x); }
inline float __fmaf_rn(float x, float y, float z) { return fmaf(x, y, z); }
inline float __fadd_rn(float x, float y) { return x + y; }
inline float __fsub_rn(float x, float y) { return x - y; }
inline float __fmul_rn(float x, float y) { return x * y; }
inline float __saturatef(float x) { return x >= 1.0f ? 1.0f : x > 0.0f ? x : 0.0f; } /* NaN -> 0 */
inline int __float2int_rn(float x) { return static_cast<int>(nearbyintf(x)); }
inline int __float2int_rz(float x) { return static_cast<int>(x); }

inline int __float_as_int(float x) {
    int i;
    memcpy(&i, &x, sizeof i);
    return i;
}
inline float __int_as_float(int i) {
    float x;
    memcpy(&x, &i, sizeof x);
    return x;
}
inline unsigned __float_as_uint(float x) { return static_cast<unsigned>(__float_as_int(x)); }
inline float __uint_as_float(unsigned u) { return __int_as_float(static_cast<int>(u)); }
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __clz(int x) { return x ? __builtin_clz(static_cast<unsigned>(x)) : 32; }
inline int __ffs(int x) { return __builtin_ffs(x); }

/* CUDA's min/max are overloaded for each arithmetic type. */
#define MX_EMU_MINMAX(T)                                                       \
    inline T min(T a, T b) { return b < a ? b : a; }                           \
    inline T max(T a, T b) { return a < b ? b : a; }
MX_EMU_MINMAX(int)
MX_EMU_MINMAX(unsigned)
MX_EMU_MINMAX(long long)
MX_EMU_MINMAX(unsigned long long)
#undef MX_EMU_MINMAX
inline float min(float a, float b) { return fminf(a, b); }
inline float max(float a, float b) { return fmaxf(a, b); }
inline double min(double a, double b) { return fmin(a, b); }
inline double max(double a, double b) { return fmax(a, b); }

/* ---- half types: bit-exact round-to-nearest-even, as ir/half.h ------------------- */

struct __half {
    unsigned short __x;
    __half() = default;
    __half(float f) : __x(mx_f32_to_f16(f)) {}
    operator float() const { return mx_f16_to_f32(__x); }
};
struct __nv_bfloat16 {
    unsigned short __x;
    __nv_bfloat16() = default;
    __nv_bfloat16(float f) : __x(mx_f32_to_bf16(f)) {}
    operator float() const { return mx_bf16_to_f32(__x); }
};
struct alignas(4) __half2 {
    __half x, y;
};
struct alignas(4) __nv_bfloat162 {
    __nv_bfloat16 x, y;
};
typedef __half half;
typedef __nv_bfloat16 nv_bfloat16;

inline __half __float2half(float f) { return __half(f); }
inline __half __float2half_rn(float f) { return __half(f); }
inline float __half2float(__half h) { return mx_f16_to_f32(h.__x); }
inline __nv_bfloat16 __float2bfloat16(float f) { return __nv_bfloat16(f); }
inline __nv_bfloat16 __float2bfloat16_rn(float f) { return __nv_bfloat16(f); }
inline float __bfloat162float(__nv_bfloat16 h) { return mx_bf16_to_f32(h.__x); }
inline unsigned short __half_as_ushort(__half h) { return h.__x; }
inline __half __ushort_as_half(unsigned short u) {
    __half h;
    h.__x = u;
    return h;
}
inline unsigned short __bfloat16_as_ushort(__nv_bfloat16 h) { return h.__x; }
inline __nv_bfloat16 __ushort_as_bfloat16(unsigned short u) {
    __nv_bfloat16 h;
    h.__x = u;
    return h;
}
inline __half2 __floats2half2_rn(float a, float b) { return __half2{__half(a), __half(b)}; }
inline float2 __half22float2(__half2 h) { return float2{__half2float(h.x), __half2float(h.y)}; }
inline __nv_bfloat162 __floats2bfloat162_rn(float a, float b) {
    return __nv_bfloat162{__nv_bfloat16(a), __nv_bfloat16(b)};
}
inline float2 __bfloat1622float2(__nv_bfloat162 h) {
    return float2{__bfloat162float(h.x), __bfloat162float(h.y)};
}

#endif
