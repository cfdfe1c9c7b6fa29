/* cuda_shim.h: just enough of CUDA, in C++17 for the host, to run generated
 * kernels in the emulator (runtime/emu.h, docs/emulation.md).
 *
 * A launch runs the blocks of the grid one after another on the calling
 * thread; the threads of a block are fibers that run until they reach a
 * barrier, a warp operation or their end, and then hand over to the next. So __syncthreads is a real
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

/* ASan proper; a module built to profile borrows its instrumentation
 * (-fsanitize=kernel-address, which defines __SANITIZE_ADDRESS__ too) without
 * its run time. */
#if defined(__SANITIZE_ADDRESS__) && !defined(MX_EMU_PROFILE)
#define MX_EMU_ASAN 1
#elif defined(__has_feature) && !defined(MX_EMU_PROFILE)
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

/* ---- contexts: where a fiber stopped ---- */

#if defined(__x86_64__) && !defined(MX_EMU_UCONTEXT)
/* A switch saves what the System V ABI says a call preserves (rbx, rbp,
 * r12-r15, the SSE and x87 control words) on the old stack and restores it
 * from the new one: a few nanoseconds, where swapcontext also saves the
 * signal mask with a system call. */
extern "C" __attribute__((visibility("hidden"))) void mx_emu_switch(void **save_sp, void *sp);
asm(".text\n"
    ".p2align 4\n"
    ".type mx_emu_switch, @function\n"
    "mx_emu_switch:\n"
    "    pushq %rbp\n"
    "    pushq %rbx\n"
    "    pushq %r12\n"
    "    pushq %r13\n"
    "    pushq %r14\n"
    "    pushq %r15\n"
    "    subq $8, %rsp\n"
    "    stmxcsr (%rsp)\n"
    "    fnstcw 4(%rsp)\n"
    "    movq %rsp, (%rdi)\n"
    "    movq %rsi, %rsp\n"
    "    ldmxcsr (%rsp)\n"
    "    fldcw 4(%rsp)\n"
    "    addq $8, %rsp\n"
    "    popq %r15\n"
    "    popq %r14\n"
    "    popq %r13\n"
    "    popq %r12\n"
    "    popq %rbx\n"
    "    popq %rbp\n"
    "    ret\n"
    ".size mx_emu_switch, .-mx_emu_switch\n");

struct Context {
    void *sp;
};

inline void context_switch(Context &from, const Context &to) { mx_emu_switch(&from.sp, to.sp); }

/* A context that starts entry() on the given stack, as if called there. */
inline void context_make(Context &c, char *stack, size_t size, void (*entry)()) {
    uint64_t *sp = reinterpret_cast<uint64_t *>(stack + size); /* 16-byte aligned */
    *--sp = 0;                                  /* entry's return address: it never returns */
    *--sp = reinterpret_cast<uint64_t>(entry); /* the switch's ret goes there */
    for (int i = 0; i < 6; i++)
        *--sp = 0; /* rbp, rbx, r12-r15 */
    uint32_t mxcsr;
    uint16_t fpcw;
    asm volatile("stmxcsr %0\n\tfnstcw %1" : "=m"(mxcsr), "=m"(fpcw));
    *--sp = mxcsr | static_cast<uint64_t>(fpcw) << 32;
    c.sp = sp;
}
#else
/* Elsewhere the portable way; each switch costs a system call. */
struct Context {
    ucontext_t uc;
};

inline void context_switch(Context &from, const Context &to) { swapcontext(&from.uc, &to.uc); }

__attribute__((noinline)) inline void context_make(Context &c, char *stack, size_t size,
                                                   void (*entry)()) {
    getcontext(&c.uc);
    c.uc.uc_stack.ss_sp = stack;
    c.uc.uc_stack.ss_size = size;
    c.uc.uc_link = nullptr;
    makecontext(&c.uc, entry, 0);
#ifdef MX_EMU_ASAN
    /* ASan's swapcontext would clear the whole stack named in uc_stack on
     * every switch; makecontext has already put the stack pointer in the
     * context, so the field can go. */
    c.uc.uc_stack.ss_sp = nullptr;
    c.uc.uc_stack.ss_size = 0;
#endif
}
#endif

struct Block;

struct Thread {
    Context ctx;
    uint3 tid;
    unsigned linear; /* x + y*bx + z*bx*by: lanes and warps follow it */
    State state;
    int line; /* where it waits: __syncthreads or a warp operation */
    const char *func;
    WarpOp op;
    void *fake_stack; /* ASan's, while the fiber is switched out */
    Block *block;
};

/* The lanes of one mask that have reached a warp operation. */
struct Meeting {
    unsigned mask, arrived;
    unsigned first; /* the lane that came first: the others must match its op */
};

struct Warp {
    unsigned exists; /* lanes of the block's shape: the last warp may be partial */
    unsigned exited;
    int n_meetings; /* open ones; lanes of disjoint masks meet apart */
    Meeting meetings[32];
};

struct Profile;

struct Block {
    const char *kernel;
    dim3 grid, dim;
    uint3 idx;
    Thread *threads;
    Warp *warps;
    unsigned n, n_done;
    char *stacks; /* n slots of one guard page then the stack */
    size_t stack_size, slot_size;
    Context sched;
    const void *sched_stack; /* the scheduler's stack, for ASan */
    size_t sched_stack_size;
    unsigned char *dyn_smem;
    size_t dyn_smem_size;
    void (*invoke)(const void *closure);
    const void *closure;
    Profile *profile; /* counting, in modules built to profile; else null */
    char *err;
    size_t err_size;
    bool failed;
    bool reverse; /* MIXC_EMU_ORDER=reverse: threads scheduled from the last */
};

/* The running fiber, null in the scheduler. Launches of a module are
 * serialised (launch_mutex) and each module has its own copy, so it need not
 * be thread-local (which costs a call per access in a shared object). */
inline Thread *cur = nullptr;

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

/* The first thread after `from` (in linear order, wrapping; backwards when
 * the block runs in reverse) that can run. */
inline Thread *next_ready(Block &b, unsigned from) {
    for (unsigned k = 1; k <= b.n; k++) {
        unsigned i = b.reverse ? (from + b.n - k) % b.n : from + k < b.n ? from + k : from + k - b.n;
        if (b.threads[i].state == State::ready)
            return &b.threads[i];
    }
    return nullptr;
}

/* MIXC_EMU_ORDER=reverse runs each block's threads from the last to the
 * first, between the same barriers. A kernel whose result changes with the
 * order has threads that read what others write with no barrier between:
 * a race on a GPU, which one fixed order hides (docs/emulation.md). */
inline bool reverse_order() {
    const char *order = getenv("MIXC_EMU_ORDER");
    return order && strcmp(order, "reverse") == 0;
}

/* From the running context to fiber `to`, or to the scheduler when `to` is
 * null. Fibers hand over to each other directly: the scheduler only runs
 * when none can go on (a barrier to release, an error, the block's end).
 * Returns when something switches back to `from`. */
inline void transfer(Block &b, Context &from, void **fake_save, Thread *to) {
    cur = to;
    asan_start_switch(fake_save, to ? stack_of(b, to->linear) : b.sched_stack,
                      to ? b.stack_size : b.sched_stack_size);
    context_switch(from, to ? to->ctx : b.sched);
    asan_finish_switch(fake_save ? *fake_save : nullptr, nullptr, nullptr);
}

/* The calling fiber waits; returns when it may go on. */
inline void yield(Thread &t) {
    Block &b = *t.block;
    transfer(b, t.ctx, &t.fake_stack, next_ready(b, t.linear));
}

/* The launch is over for this fiber: it is never resumed. */
[[noreturn]] inline void thread_fail(Thread &t) {
    t.state = State::failed;
    transfer(*t.block, t.ctx, &t.fake_stack, nullptr);
    __builtin_unreachable();
}

[[noreturn]] inline void fiber_main() {
    Thread &t = *cur;
    Block &b = *t.block;
    /* The first fiber of a launch is entered from the scheduler: its stack. */
    const void *from = nullptr;
    size_t from_size = 0;
    asan_finish_switch(nullptr, &from, &from_size);
    if (!b.sched_stack) {
        b.sched_stack = from;
        b.sched_stack_size = from_size;
    }
    b.invoke(b.closure);
    t.state = State::done;
    b.n_done++;
    b.warps[t.linear / 32].exited |= 1u << t.linear % 32;
    transfer(b, t.ctx, nullptr, next_ready(b, t.linear)); /* this stack dies */
    __builtin_unreachable();
}

/* ---- counting, in modules built to profile (docs/profile.md) ----
 *
 * The module is compiled with -fsanitize=kernel-address and no run time:
 * every load and store calls __asan_{load,store}N_noabort(address), defined
 * here. An access inside a buffer the launch watches (a kernel argument) is
 * a global one. Lanes of a warp run one after another, so a warp-level
 * request is put together afterwards: the k-th execution of one access site
 * (the call's return address) by each lane of the warp is one request, as
 * SIMT hardware issues it; its 32-byte sectors are the distinct ones its
 * lanes touch. Pairing restarts where the whole warp meets (a full-warp
 * operation, __syncthreads), which bounds the tables. */
#ifdef MX_EMU_PROFILE
#define MX_EMU_UNCOUNTED __attribute__((no_sanitize("kernel-address")))

/* A key of three words and a counter, in a table that empties by epoch. */
struct Slot {
    uint64_t a, b, c;
    uint32_t epoch, value;
};

struct Table {
    Slot *slots;
    uint32_t cap, used, epoch;
};

/* A watched buffer and the sectors loaded from and stored to it so far. */
struct Watched {
    uintptr_t lo, hi;
    uint64_t *seen[2]; /* bitmaps over its sectors: [MX_EMU_LOAD], [MX_EMU_STORE] */
    bool weight;       /* mx_emu_buffer.weight */
};

struct Profile {
    mx_emu_counters *counters;
    Watched *bufs;
    int n_bufs;
    uintptr_t lo, hi; /* the span of all of them */
    Table *warps;     /* one per warp of the block */
    unsigned n_warps;
    bool oom;
};

/* Keys beside sector numbers (addresses >> 5): a lane's count of a site, a
 * request, an address (its top bit set). */
enum : uint64_t { KEY_LANE = ~0ull, KEY_REQUEST = ~0ull - 1, KEY_ADDRESS = 1ull << 63 };

MX_EMU_UNCOUNTED inline uint32_t table_hash(uint64_t a, uint64_t b, uint64_t c) {
    uint64_t h = a * 0x9E3779B97F4A7C15ull ^ b * 0xC2B2AE3D27D4EB4Full ^ c * 0x165667B19E3779F9ull;
    return static_cast<uint32_t>(h ^ h >> 29);
}

MX_EMU_UNCOUNTED inline void table_clear(Table &t) {
    t.used = 0;
    if (++t.epoch == 0) { /* after 2^32 clears: old slots would look live */
        memset(t.slots, 0, sizeof(Slot) * t.cap);
        t.epoch = 1;
    }
}

MX_EMU_UNCOUNTED inline Slot *table_probe(Slot *slots, uint32_t cap, uint32_t epoch, uint64_t a,
                                          uint64_t b, uint64_t c) {
    for (uint32_t i = table_hash(a, b, c) & (cap - 1);; i = (i + 1) & (cap - 1)) {
        Slot &s = slots[i];
        if (s.epoch != epoch || (s.a == a && s.b == b && s.c == c))
            return &s;
    }
}

/* The counter of key (a, b, c); *fresh when it was not there (then 0). Null
 * when out of memory. */
MX_EMU_UNCOUNTED inline uint32_t *table_find(Table &t, uint64_t a, uint64_t b, uint64_t c,
                                             bool *fresh) {
    if (2 * (t.used + 1) > t.cap) {
        uint32_t cap = t.cap ? 2 * t.cap : 256;
        Slot *slots = static_cast<Slot *>(calloc(cap, sizeof(Slot)));
        if (!slots)
            return nullptr;
        for (uint32_t i = 0; i < t.cap; i++)
            if (t.slots[i].epoch == t.epoch)
                *table_probe(slots, cap, 1, t.slots[i].a, t.slots[i].b, t.slots[i].c) =
                    Slot{t.slots[i].a, t.slots[i].b, t.slots[i].c, 1, t.slots[i].value};
        free(t.slots);
        t.slots = slots;
        t.cap = cap;
        t.epoch = 1;
    }
    Slot *s = table_probe(t.slots, t.cap, t.epoch, a, b, c);
    *fresh = s->epoch != t.epoch;
    if (*fresh) {
        *s = Slot{a, b, c, t.epoch, 0};
        t.used++;
    }
    return &s->value;
}

/* One access of the running lane: `kind` MX_EMU_LOAD or MX_EMU_STORE, pc its
 * site. */
MX_EMU_UNCOUNTED inline void count_access(uintptr_t addr, size_t size, int kind, uintptr_t pc) {
    Thread *t = cur;
    Profile *p = t ? t->block->profile : nullptr;
    if (!p || addr < p->lo || addr >= p->hi || size == 0)
        return;
    Watched *w = nullptr;
    for (int i = 0; i < p->n_bufs && !w; i++)
        if (addr >= p->bufs[i].lo && addr < p->bufs[i].hi)
            w = &p->bufs[i];
    if (!w)
        return;
    mx_emu_counters &c = *p->counters;
    uint64_t first = addr >> 5, last = (addr + size - 1) >> 5, base = w->lo >> 5;
    for (uint64_t s = first; s <= last && s <= (w->hi - 1) >> 5; s++) {
        uint64_t &word = w->seen[kind][(s - base) / 64], bit = 1ull << (s - base) % 64;
        /* a sector the launch stored is in the cache when it is loaded back
         * (an accumulator's second pass), as a sector loaded twice is */
        bool stored = kind == MX_EMU_LOAD && (w->seen[MX_EMU_STORE][(s - base) / 64] & bit);
        c.unique_bytes[kind] += (word & bit) || stored ? 0 : 32;
        word |= bit;
    }
    Table &tb = p->warps[t->linear / 32];
    bool fresh;
    uint32_t *occ = table_find(tb, pc, t->linear % 32, KEY_LANE, &fresh);
    if (!occ) {
        p->oom = true;
        return;
    }
    uint64_t k = (*occ)++; /* this lane's k-th execution of the site */
    if (!table_find(tb, pc, k, KEY_REQUEST, &fresh)) {
        p->oom = true;
        return;
    }
    c.requests[kind] += fresh;
    /* Lanes reading one address (a broadcast) ask for its bytes once. */
    if (!table_find(tb, pc, k, addr | KEY_ADDRESS, &fresh)) {
        p->oom = true;
        return;
    }
    c.bytes[kind] += fresh && !w->weight ? size : 0;
    for (uint64_t s = first; s <= last; s++) {
        if (!table_find(tb, pc, k, s, &fresh)) {
            p->oom = true;
            return;
        }
        c.sectors[kind] += fresh;
        c.bytes[kind] += fresh && w->weight ? 32 : 0;
    }
}

/* The lanes of warp w (or every warp) have met: requests start afresh. */
MX_EMU_UNCOUNTED inline void profile_warp_met(Block &b, unsigned w) {
    if (b.profile)
        table_clear(b.profile->warps[w]);
}
MX_EMU_UNCOUNTED inline void profile_block_met(Block &b) {
    for (unsigned w = 0; b.profile && w < b.profile->n_warps; w++)
        table_clear(b.profile->warps[w]);
}
#define MX_EMU_TALLY(b, field) ((b).profile ? (void)(b).profile->counters->field++ : (void)0)

/* The profile of one launch over the buffers d names; false when out of memory. */
inline bool profile_open(Profile &p, const mx_emu_launch_desc &d, unsigned n_warps) {
    p.counters = d.counters;
    *p.counters = mx_emu_counters{};
    p.n_warps = n_warps;
    p.n_bufs = d.n_buffers;
    p.bufs = static_cast<Watched *>(calloc(d.n_buffers + 1, sizeof(Watched)));
    p.warps = static_cast<Table *>(calloc(n_warps, sizeof(Table)));
    if (!p.bufs || !p.warps)
        return false;
    p.lo = UINTPTR_MAX;
    for (int i = 0; i < d.n_buffers; i++) {
        Watched &w = p.bufs[i];
        w.lo = reinterpret_cast<uintptr_t>(d.buffers[i].base);
        w.hi = w.lo + d.buffers[i].bytes;
        w.weight = d.buffers[i].weight;
        size_t words = w.hi > w.lo ? (((w.hi - 1) >> 5) - (w.lo >> 5)) / 64 + 1 : 1;
        for (int k = 0; k < 2; k++)
            if (!(w.seen[k] = static_cast<uint64_t *>(calloc(words, sizeof(uint64_t)))))
                return false;
        p.lo = w.lo < p.lo ? w.lo : p.lo;
        p.hi = w.hi > p.hi ? w.hi : p.hi;
    }
    return true;
}

inline void profile_close(Profile &p) {
    for (int i = 0; p.bufs && i < p.n_bufs; i++)
        free(p.bufs[i].seen[0]), free(p.bufs[i].seen[1]);
    for (unsigned w = 0; p.warps && w < p.n_warps; w++)
        free(p.warps[w].slots);
    free(p.bufs);
    free(p.warps);
}
#else
inline void profile_warp_met(Block &, unsigned) {}
inline void profile_block_met(Block &) {}
#define MX_EMU_TALLY(b, field) ((void)0)
#endif

/* ---- warps ---- */

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

/* Every lane of `mask` in warp w waits at the same operation: give each its
 * result and let it run. */
inline void resolve_warp(Block &b, unsigned w, unsigned mask) {
    Thread *lanes = b.threads + 32 * w;
    WarpKind kind = lanes[__builtin_ctz(mask)].op.kind;
    unsigned ballot = 0;
    for (unsigned m = mask; m; m &= m - 1) {
        unsigned l = __builtin_ctz(m);
        ballot |= lanes[l].op.arg != 0 ? 1u << l : 0;
    }
    for (unsigned m = mask; m; m &= m - 1) {
        unsigned l = __builtin_ctz(m);
        WarpOp &op = lanes[l].op;
        int vote = 0;
        switch (kind) {
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
                memcpy(op.out, lanes[src].op.in, op.size);
            else
                memset(op.out, 0xFF, op.size);
        }
        }
        lanes[l].state = State::ready;
    }
    if (kind >= WarpKind::shfl && kind <= WarpKind::shfl_xor)
        MX_EMU_TALLY(b, shuffles);
    if (mask == b.warps[w].exists)
        profile_warp_met(b, w);
}

/* The calling lane's side of a warp operation; the result lands in cur->op.out. */
inline void warp_op(const WarpOp &op, int line, const char *func) {
    Thread &t = *cur;
    Block &b = *t.block;
    unsigned lane = t.linear % 32, w = t.linear / 32;
    Warp &warp = b.warps[w];
    const char *what = warp_kind_name(op.kind);
    t.op = op;
    t.line = line;
    t.func = func;
    if (!in_mask(op.mask, lane)) {
        fail_block(b, "%s: %s in %s (line %d): mask 0x%08x lacks the calling lane %u", Name(t).s,
                   what, func, line, op.mask, lane);
        thread_fail(t);
    }
    if (op.mask & ~warp.exists) {
        fail_block(b, "%s: %s in %s (line %d): mask 0x%08x names lanes that do not exist (this "
                      "warp has lanes 0x%08x)",
                   Name(t).s, what, func, line, op.mask, warp.exists);
        thread_fail(t);
    }
    if (op.width < 1 || op.width > 32 || (op.width & (op.width - 1))) {
        fail_block(b, "%s: %s in %s (line %d): width %d is not a power of two in 1..32", Name(t).s,
                   what, func, line, op.width);
        thread_fail(t);
    }
    if (op.mask & warp.exited) {
        fail_block(b, "%s: %s in %s (line %d): mask 0x%08x names lane %u, which has exited",
                   Name(t).s, what, func, line, op.mask, __builtin_ctz(op.mask & warp.exited));
        thread_fail(t);
    }
    Meeting *m = warp.meetings;
    while (m < warp.meetings + warp.n_meetings && m->mask != op.mask)
        m++;
    if (m == warp.meetings + warp.n_meetings) {
        *m = Meeting{op.mask, 0, lane};
        warp.n_meetings++;
    }
    const Thread &first = b.threads[32 * w + m->first];
    if (first.op.kind != op.kind || first.op.size != op.size) {
        fail_block(b, "%s: %s in %s (line %d) meets lane %u at %s (line %d), mask 0x%08x",
                   Name(t).s, what, func, line, m->first, warp_kind_name(first.op.kind),
                   first.line, op.mask);
        thread_fail(t);
    }
    m->arrived |= 1u << lane;
    t.state = State::at_warp;
    if (m->arrived != op.mask) {
        yield(t);
        return;
    }
    *m = warp.meetings[--warp.n_meetings];
    resolve_warp(b, w, op.mask); /* the last to arrive goes on at once */
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
    MX_EMU_TALLY(b, barriers);
    profile_block_met(b);
    return true;
}

/* Runs one block: fibers hand over to each other (transfer) and come back
 * here when none can go on. */
inline bool run_block(Block &b) {
    for (unsigned i = 0; i < b.n; i++) {
        Thread &t = b.threads[i];
        t.state = State::ready;
#ifdef MX_EMU_ASAN
        /* What the fiber of an earlier block left on this stack. */
        ASAN_UNPOISON_MEMORY_REGION(stack_of(b, i), b.stack_size);
#endif
        context_make(t.ctx, stack_of(b, i), b.stack_size, fiber_main);
    }
    for (unsigned w = 0; w * 32 < b.n; w++) {
        unsigned lanes = b.n - w * 32;
        b.warps[w] = Warp{};
        b.warps[w].exists = lanes >= 32 ? 0xFFFFFFFFu : (1u << lanes) - 1;
    }
    b.n_done = 0;
    profile_block_met(b);
    if (b.dyn_smem)
        memset(b.dyn_smem, 0xFF, b.dyn_smem_size);
    while (b.n_done < b.n) {
        Thread *t = next_ready(b, b.reverse ? 0 : b.n - 1);
        if (!t) {
            if (!release_barrier(b))
                return false;
            continue;
        }
        void *fake = nullptr;
        transfer(b, b.sched, &fake, t);
        cur = nullptr;
        if (b.failed)
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
    b.reverse = reverse_order();
    size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    b.stack_size = (d.stack_size + page - 1) / page * page;
    b.slot_size = b.stack_size + page; /* a PROT_NONE page below each stack */
    size_t total = b.slot_size * b.n;
    void *stacks = mmap(nullptr, total, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    b.threads = static_cast<Thread *>(calloc(b.n, sizeof(Thread)));
    b.warps = static_cast<Warp *>(calloc((b.n + 31) / 32, sizeof(Warp)));
    b.dyn_smem_size = d.smem;
    b.dyn_smem = d.smem ? static_cast<unsigned char *>(malloc(d.smem)) : nullptr;
    bool ok = stacks != MAP_FAILED && b.threads && b.warps && (!d.smem || b.dyn_smem);
#ifdef MX_EMU_PROFILE
    Profile profile{};
    if (ok && d.counters) {
        ok = profile_open(profile, d, (b.n + 31) / 32);
        b.profile = &profile;
    }
#endif
    if (!ok) {
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
#ifdef MX_EMU_PROFILE
    if (profile.oom && !b.failed) {
        snprintf(d.err, d.err_size, "kernel '%s': out of memory while profiling", kernel);
        b.failed = true;
    }
    profile_close(profile);
#endif
    if (stacks != MAP_FAILED) {
#ifdef MX_EMU_ASAN
        /* Fibers abandoned by a failed launch leave their frames poisoned. */
        ASAN_UNPOISON_MEMORY_REGION(stacks, total);
#endif
        munmap(stacks, total);
    }
    free(b.threads);
    free(b.warps);
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

#ifdef MX_EMU_PROFILE
/* The instrumentation's entry points (the counting section above); the
 * return address is the access's site in the kernel. */
#define MX_EMU_ACCESS_HOOKS(n)                                                 \
    extern "C" __attribute__((visibility("hidden"))) MX_EMU_UNCOUNTED void     \
        __asan_load##n##_noabort(uintptr_t a) {                                \
        ::mx_emu::count_access(a, n, MX_EMU_LOAD,                              \
                               reinterpret_cast<uintptr_t>(__builtin_return_address(0))); \
    }                                                                          \
    extern "C" __attribute__((visibility("hidden"))) MX_EMU_UNCOUNTED void     \
        __asan_store##n##_noabort(uintptr_t a) {                               \
        ::mx_emu::count_access(a, n, MX_EMU_STORE,                             \
                               reinterpret_cast<uintptr_t>(__builtin_return_address(0))); \
    }
MX_EMU_ACCESS_HOOKS(1)
MX_EMU_ACCESS_HOOKS(2)
MX_EMU_ACCESS_HOOKS(4)
MX_EMU_ACCESS_HOOKS(8)
MX_EMU_ACCESS_HOOKS(16)
#undef MX_EMU_ACCESS_HOOKS
extern "C" __attribute__((visibility("hidden"))) MX_EMU_UNCOUNTED void
__asan_loadN_noabort(uintptr_t a, size_t n) {
    ::mx_emu::count_access(a, n, MX_EMU_LOAD,
                           reinterpret_cast<uintptr_t>(__builtin_return_address(0)));
}
extern "C" __attribute__((visibility("hidden"))) MX_EMU_UNCOUNTED void
__asan_storeN_noabort(uintptr_t a, size_t n) {
    ::mx_emu::count_access(a, n, MX_EMU_STORE,
                           reinterpret_cast<uintptr_t>(__builtin_return_address(0)));
}
/* Called before a call that does not return (a failing fiber's last switch):
 * nothing to unpoison without shadow memory. */
extern "C" __attribute__((visibility("hidden"))) MX_EMU_UNCOUNTED void __asan_handle_no_return() {}
#endif

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

#ifdef MX_EMU_PROFILE
/* Transcendental functions count as exps (the SFU's work, as ir/cost.c
 * counts it), the CUDA intrinsics below included, which call them. */
namespace mx_emu {
MX_EMU_UNCOUNTED inline void count_exp() {
    if (cur && cur->block->profile)
        cur->block->profile->counters->exps++;
}
} // namespace mx_emu
#define MX_EMU_COUNTED(call) (::mx_emu::count_exp(), call)
#define expf(x) MX_EMU_COUNTED(::expf(x))
#define exp2f(x) MX_EMU_COUNTED(::exp2f(x))
#define expm1f(x) MX_EMU_COUNTED(::expm1f(x))
#define logf(x) MX_EMU_COUNTED(::logf(x))
#define log2f(x) MX_EMU_COUNTED(::log2f(x))
#define log10f(x) MX_EMU_COUNTED(::log10f(x))
#define log1pf(x) MX_EMU_COUNTED(::log1pf(x))
#define sqrtf(x) MX_EMU_COUNTED(::sqrtf(x))
#define tanhf(x) MX_EMU_COUNTED(::tanhf(x))
#define erff(x) MX_EMU_COUNTED(::erff(x))
#define sinf(x) MX_EMU_COUNTED(::sinf(x))
#define cosf(x) MX_EMU_COUNTED(::cosf(x))
#define tanf(x) MX_EMU_COUNTED(::tanf(x))
#define powf(x, y) MX_EMU_COUNTED(::powf(x, y))
#endif

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
