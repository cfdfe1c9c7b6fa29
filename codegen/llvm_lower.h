/* llvm_lower.h: the lowering of llvm_kernel.h from the inside: its state
 * (the tokens, the symbols, the LLVM builder and the lanes of the kernel
 * being lowered) and what its files share. Internal to the lowering:
 *
 *   llvm_tokens.c   the tokenizer and its preprocessor (#define, #if, #pragma)
 *   llvm_kernel.c   the parser, which builds IR as it reads, and the entry
 *   llvm_math.c     the inline exp2 and log1p
 *   llvm_tiles.c    memory at the lanes' addresses: vectors, lane tiles,
 *                   store tiles, gathers */
#ifndef MX_LLVM_LOWER_H
#define MX_LLVM_LOWER_H

#include <llvm-c/Core.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "ir.h"
#include "llvm_kernel.h"

/* ---- tokens ---------------------------------------------------------------------- */

typedef enum { TK_IDENT, TK_NUM, TK_PUNCT, TK_STR, TK_EOF } tk_kind;

typedef struct {
    tk_kind kind;
    const char *s;
    int len, line;
    bool is_float, is_unsigned, is_long;
    double f;
    unsigned long long i;
} token;

typedef struct {
    char name[32];
    const char *body; /* the rest of the #define line */
    int len;
} macro;

typedef struct {
    token *t;
    int n, cap;
    macro macros[16];
    int n_macros;
    /* #if nesting: per level, whether its text is read and whether a branch was taken */
    bool active[16], taken[16];
    int depth;
} tokens;

/* ---- types and values ------------------------------------------------------------ */

typedef enum { TY_VOID, TY_BOOL, TY_INT, TY_UINT, TY_LL, TY_FLOAT, TY_HALF, TY_BF16, TY_PTR } ty;

/* A value is uniform (one for the block, a scalar) or varying (one per
 * lane, an LLVM vector): varying(v) tells them apart by the LLVM type. */
typedef struct {
    ty t;
    ty elem; /* TY_PTR: what it points to */
    LLVMValueRef v;
    bool lanes; /* TY_PTR to a per-lane array: element i of every lane is one <W x elem> */
} val;

typedef enum { S_VAL, S_VAR, S_ARR, S_FN } sym_kind;

enum { MAX_ROOTS = 258 }; /* a kernel's parameters and its shared memory */

typedef struct {
    const char *name;
    int len;
    sym_kind kind;
    ty t, elem;        /* S_VAL / S_VAR: its type (elem for pointers); S_ARR: elem; S_FN: result */
    LLVMValueRef v;    /* the value, the alloca, or the function */
    bool lanes;        /* S_ARR: one copy per lane (a thread's local array) */
    int decl;          /* S_VAR: the token of its name (the key of a varying variable) */
    LLVMValueRef mask; /* S_VAR: the lanes running where it was declared (NULL: all) */
    ty params[8];      /* S_FN */
    token *names[8];   /* S_FN: its parameters, */
    int n_params, body; /* and the token of its body's { (inlined across lanes) */
} sym;

typedef struct {
    tokens tk;
    int pos;
    LLVMContextRef C;
    LLVMModuleRef M;
    LLVMBuilderRef B, entry_b; /* entry_b: allocas at the top of the entry block */
    LLVMTypeRef f32, f16, i1, i16, i32, i64, ptr, vd;
    LLVMValueRef fn;
    ty fn_result;
    /* Across lanes (llvm_kernel.h): a block of threads > 1 runs as W vector
     * lanes, W the threads rounded up to a power of two (15 rows of a scan
     * as 16 lanes: whole registers, AVX-512's exp2, lane tiles); mask is the
     * lanes running the current statement (NULL: all), base_mask the
     * block's threads when W is more (NULL otherwise), where a kernel starts */
    int W, threads, max_lanes;
    bool avx512f;  /* the host's: exp2 of 16 lanes through vscalefps */
    bool avx512dq; /* and its fraction through vreduceps */
    LLVMValueRef mask, base_mask, loop_mask[16];
    int *varying_vars; /* tokens of variables that hold varying values */
    int n_varying, cap_varying;
    jmp_buf retry; /* a variable turned out varying: lower the kernel again */
    LLVMValueRef ret_slot, ret_mask; /* an inlined helper's result and the lanes that entered it */
    LLVMBasicBlockRef ret_to;
    ty ret_t;
    bool inlining;
    bool unroll; /* the next loop had #pragma unroll */
    bool in_kernel;
    const token *function; /* being lowered: failures name it */
    LLVMBasicBlockRef latch;       /* a kernel's next block: where return goes */
    LLVMBasicBlockRef brk[16], cont[16];
    bool whole[16]; /* the loop is unrolled whole (#pragma unroll) */
    int n_loops;
    val block_idx, grid_dim;
    size_t smem_bytes; /* a block's shared memory */
    int smem_root;     /* its index in roots */
    /* The buffers a kernel's lanes may read as lane tiles (its parameters and
     * its shared memory), each with a count of the stores into it; `others`
     * counts stores that may reach any of them (through a buffer that is not
     * __restrict__, or a pointer whose buffer is not known). */
    LLVMValueRef roots[MAX_ROOTS], root_stores[MAX_ROOTS], others;
    bool root_restrict[MAX_ROOTS];
    int n_roots;
    /* Store tiles (stores buffered per site): per root the tile of its one
     * buffered site (-1: none) and whether other accesses were built before
     * it; unbuffered (kept across attempts): roots whose stores are not
     * buffered, all of them when an access may reach any buffer. */
    struct store_tile {
        int root;
        LLVMValueRef rows, base, stride, written, last, last_stride;
    } store_tiles[16];
    int n_store_tiles, tile_of[MAX_ROOTS];
    bool accessed[MAX_ROOTS], unbuffered[MAX_ROOTS], none_buffered;
    sym *syms;
    int n_syms, cap_syms;
    jmp_buf fail;
    mx_status status; /* of the failure longjmp'd from */
    mx_diag *d;
} lower;

/* ---- what every file of the lowering uses ----------------------------------------------- */

/* Fails the lowering at token t: the message names the function being
 * lowered and the line, and the lowering unwinds to mx_llvm_lower. */
static inline void fail_at(lower *L, const token *t, const char *fmt, ...) __attribute__((format(printf, 3, 4), noreturn));

static inline void fail_at(lower *L, const token *t, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (L->function)
        L->status = mx_fail(L->d, MX_ERR_INVALID, "cpu codegen: in %.*s, line %d, at '%.*s': %s", L->function->len,
                            L->function->s, t->line, t->len, t->s, msg);
    else
        L->status = mx_fail(L->d, MX_ERR_INVALID, "cpu codegen: line %d, at '%.*s': %s", t->line, t->len, t->s, msg);
    longjmp(L->fail, 1);
}

static inline LLVMTypeRef llvm_type(lower *L, ty t) {
    switch (t) {
    case TY_VOID: return L->vd;
    case TY_BOOL: return L->i1;
    case TY_INT:
    case TY_UINT: return L->i32;
    case TY_LL: return L->i64;
    case TY_FLOAT: return L->f32;
    case TY_HALF: return L->f16;
    case TY_BF16: return L->i16; /* bits; arithmetic converts through f32 */
    case TY_PTR: return L->ptr;
    }
    return L->vd;
}

static inline bool varying(LLVMValueRef v) { return LLVMGetTypeKind(LLVMTypeOf(v)) == LLVMVectorTypeKind; }

/* Whether only some of the block's threads run the current statement. */
static inline bool divergent(const lower *L) { return L->mask && L->mask != L->base_mask; }

/* t, or a vector of W t's for a varying value. */
static inline LLVMTypeRef type_of(lower *L, ty t, bool vary) {
    return vary ? LLVMVectorType(llvm_type(L, t), (unsigned)L->W) : llvm_type(L, t);
}

/* The constant c in the shape of `like` (a scalar or a vector type). */
static inline LLVMValueRef const_as(LLVMTypeRef like, double c) {
    bool vec = LLVMGetTypeKind(like) == LLVMVectorTypeKind;
    LLVMTypeRef el = vec ? LLVMGetElementType(like) : like;
    LLVMTypeKind k = LLVMGetTypeKind(el);
    LLVMValueRef one = k == LLVMIntegerTypeKind ? LLVMConstInt(el, (unsigned long long)(long long)c, 1) : LLVMConstReal(el, c);
    if (!vec)
        return one;
    LLVMValueRef lanes[64];
    unsigned n = LLVMGetVectorSize(like);
    for (unsigned i = 0; i < n; i++)
        lanes[i] = one;
    return LLVMConstVector(lanes, n);
}

static inline LLVMValueRef splat(lower *L, LLVMValueRef x) {
    LLVMTypeRef vt = LLVMVectorType(LLVMTypeOf(x), (unsigned)L->W);
    LLVMValueRef v = LLVMBuildInsertElement(L->B, LLVMGetPoison(vt), x, LLVMConstInt(L->i32, 0, 0), "");
    return LLVMBuildShuffleVector(L->B, v, LLVMGetPoison(vt), LLVMConstNull(LLVMVectorType(L->i32, (unsigned)L->W)), "");
}

static inline LLVMValueRef flagged(LLVMValueRef inst) {
    if (LLVMIsAInstruction(inst))
        LLVMSetFastMathFlags(inst, LLVMFastMathAllowReassoc | LLVMFastMathAllowContract);
    return inst;
}

static inline LLVMValueRef intrinsic(lower *L, const char *name, LLVMValueRef *args, int n) {
    unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
    LLVMTypeRef over = LLVMTypeOf(args[0]);
    LLVMValueRef fn = LLVMGetIntrinsicDeclaration(L->M, id, &over, 1);
    LLVMTypeRef ft = LLVMIntrinsicGetType(L->C, id, &over, 1);
    return LLVMBuildCall2(L->B, ft, fn, args, (unsigned)n, "");
}

static inline LLVMValueRef all_lanes(lower *L) {
    return const_as(LLVMVectorType(L->i1, (unsigned)L->W), -1);
}

/* llvm.masked.gather / scatter over the running lanes. */
static inline LLVMValueRef gather_scatter(lower *L, LLVMValueRef addrs, LLVMValueRef value, LLVMTypeRef vt) {
    bool store = value != NULL;
    const char *name = store ? "llvm.masked.scatter" : "llvm.masked.gather";
    unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
    LLVMTypeRef over[2] = {vt, LLVMTypeOf(addrs)};
    LLVMValueRef mask = L->mask ? L->mask : all_lanes(L), align = LLVMConstInt(L->i32, 4, 0);
    LLVMValueRef args[4] = {addrs, align, mask, LLVMConstNull(vt)};
    if (store)
        args[0] = value, args[1] = addrs, args[2] = align, args[3] = mask;
    return LLVMBuildCall2(L->B, LLVMIntrinsicGetType(L->C, id, over, 2), LLVMGetIntrinsicDeclaration(L->M, id, over, 2),
                          args, 4, "");
}

static inline LLVMBasicBlockRef new_block(lower *L, const char *name) { return LLVMAppendBasicBlockInContext(L->C, L->fn, name); }

static inline LLVMValueRef entry_alloca(lower *L, LLVMTypeRef t, LLVMValueRef count) {
    LLVMValueRef a = count ? LLVMBuildArrayAlloca(L->entry_b, t, count, "") : LLVMBuildAlloca(L->entry_b, t, "");
    LLVMSetAlignment(a, 64);
    return a;
}

/* ---- llvm_tokens.c ---------------------------------------------------------------------- */

/* Appends the tokens of [s, end), its first line numbered line, to L->tk,
 * macros expanded and #if / #else / #endif / #pragma read. */
void mx_lower_tokenize(lower *L, const char *s, const char *end, int line);
void mx_lower_push_token(lower *L, token t);

/* ---- llvm_math.c ------------------------------------------------------------------------ */

/* Calls the inline 0: exp2, 1: log1p on x (a scalar or a vector), built
 * into the module on first use. */
LLVMValueRef mx_lower_inline_math(lower *L, int k, LLVMValueRef x);

/* ---- llvm_tiles.c ----------------------------------------------------------------------- */

/* A counter of stores into a buffer, in the entry block. */
LLVMValueRef mx_lower_store_counter(lower *L);
/* Base is a buffer the lanes may read as lane tiles (a __restrict__ one
 * when restricted). */
void mx_lower_add_root(lower *L, LLVMValueRef base, bool restricted);
/* A store through addr: the tiles of its buffer (of every buffer, when it
 * may be any) are stale. */
void mx_lower_count_store(lower *L, LLVMValueRef addr);
/* Writes a store tile's buffered rows back to memory and empties it. */
void mx_lower_flush_store_tile(lower *L, struct store_tile *st);
/* Any other access of memory at addr (NULL: anywhere): the stores its
 * buffer's store tile holds reach memory first. */
void mx_lower_memory_access(lower *L, LLVMValueRef addr);
/* A load (value NULL) or store at the lanes' addresses. */
LLVMValueRef mx_lower_lane_memory(lower *L, LLVMValueRef addrs, LLVMValueRef value, LLVMTypeRef vt);

#endif
