/* llvm_tiles.c: loads and stores at the lanes' addresses (llvm_lower.h):
 * one vector where they are consecutive, one load where they are the same,
 * lane tiles where they are a constant stride apart, store tiles for
 * strided stores, else gathers and scatters. */
#include "llvm_lower.h"

/* Lanes that read memory at addresses a constant stride S apart (a scan's
 * rows: one channel per lane, the channels L apart) would gather W elements
 * per step. When the addresses turn out (at run time: a few vector
 * instructions) to be a + k S, a load reads
 *   S = 1: one vector (the lanes' elements are consecutive);
 *   S > 1: from a lane tile, the next T = W elements of each lane's row
 *          read with W plain (masked) vector loads and transposed in
 *          registers, so that the following steps of a loop walking the
 *          rows (forwards or backwards) find their elements in the tile.
 * A row is S elements aligned to the start of its buffer (a dense tensor's
 * rows along the dimension of stride S), so a window never leaves the row
 * of its lane's element: a ragged end is a shorter, masked window. A store
 * into a buffer makes its tiles stale (each tile remembers the count of
 * stores into its buffer when it was read); the rest fall back to gathers. */

LLVMValueRef mx_lower_store_counter(lower *L) {
    LLVMValueRef c = entry_alloca(L, L->i64, NULL);
    LLVMBuildStore(L->entry_b, LLVMConstInt(L->i64, 0, 0), c);
    return c;
}

void mx_lower_add_root(lower *L, LLVMValueRef base, bool restricted) {
    if (L->n_roots == MAX_ROOTS)
        return; /* beyond: its loads gather */
    L->roots[L->n_roots] = base, L->root_restrict[L->n_roots] = restricted;
    L->tile_of[L->n_roots] = -1, L->accessed[L->n_roots] = false;
    L->root_stores[L->n_roots++] = mx_lower_store_counter(L);
}

/* The buffer an address (or vector of addresses) points into: the index of
 * its root, -1 when it is none of them (a local array: -2). */
static int root_of(lower *L, LLVMValueRef a) {
    if (!a)
        return -1;
    for (;;) {
        if (LLVMIsAGetElementPtrInst(a) || (LLVMIsAConstantExpr(a) && LLVMGetConstOpcode(a) == LLVMGetElementPtr))
            a = LLVMGetOperand(a, 0);
        else if (LLVMIsAShuffleVectorInst(a))
            a = LLVMGetOperand(a, 0);
        else if (LLVMIsAInsertElementInst(a))
            a = LLVMGetOperand(a, 1);
        else
            break;
    }
    for (int i = 0; i < L->n_roots; i++)
        if (L->roots[i] == a)
            return i;
    return LLVMIsAAllocaInst(a) ? -2 : -1;
}

/* A store through addr: the tiles of its buffer (of every buffer, when it
 * may be any) are stale. */
void mx_lower_count_store(lower *L, LLVMValueRef addr) {
    if (L->W == 1)
        return; /* no tiles */
    int r = root_of(L, addr);
    if (r == -2)
        return;
    LLVMValueRef c = r >= 0 && L->root_restrict[r] ? L->root_stores[r] : L->others;
    LLVMBuildStore(L->B, LLVMBuildAdd(L->B, LLVMBuildLoad2(L->B, L->i64, c, ""), LLVMConstInt(L->i64, 1, 0), ""), c);
}

static LLVMValueRef lane_iota(lower *L, LLVMTypeRef el, int n) {
    LLVMValueRef k[64];
    for (int i = 0; i < n; i++)
        k[i] = LLVMConstInt(el, (unsigned long long)i, 0);
    return LLVMConstVector(k, (unsigned)n);
}

static LLVMValueRef i64c(lower *L, long long v) { return LLVMConstInt(L->i64, (unsigned long long)v, 1); }

static LLVMValueRef masked_mem(lower *L, const char *name, LLVMTypeRef vt, LLVMValueRef *args) {
    unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
    LLVMTypeRef over[2] = {vt, L->ptr};
    return LLVMBuildCall2(L->B, LLVMIntrinsicGetType(L->C, id, over, 2), LLVMGetIntrinsicDeclaration(L->M, id, over, 2),
                          args, 4, "");
}

/* The constant k when v is a constant int or a splat of one. */
static bool constant_int(LLVMValueRef v, long long *k) {
    if (LLVMIsAConstantInt(v)) {
        *k = LLVMConstIntGetSExtValue(v);
        return true;
    }
    if (!LLVMIsConstant(v) || LLVMGetTypeKind(LLVMTypeOf(v)) != LLVMVectorTypeKind)
        return false;
    LLVMValueRef e0 = LLVMGetAggregateElement(v, 0);
    if (!e0 || !LLVMIsAConstantInt(e0))
        return false;
    *k = LLVMConstIntGetSExtValue(e0);
    for (unsigned i = 1; i < LLVMGetVectorSize(LLVMTypeOf(v)); i++) {
        LLVMValueRef e = LLVMGetAggregateElement(v, i);
        if (!e || !LLVMIsAConstantInt(e) || LLVMConstIntGetSExtValue(e) != *k)
            return false;
    }
    return true;
}

/* Whether scalar or lane vector v, an affine one (affine_lanes), has a
 * uniform part that is a multiple of m, seen in how it was built: lane 0
 * of a constant, products and shifts by a multiple of m (an element loop's
 * blk * blockDim.x), sums of such, and their remainders by multiples of m. */
static bool multiple_of(LLVMValueRef v, long long m, int depth) {
    long long k;
    if (depth > 12)
        return false;
    if (LLVMIsConstant(v)) { /* lane 0 of a vector */
        LLVMValueRef e0 = LLVMGetTypeKind(LLVMTypeOf(v)) == LLVMVectorTypeKind ? LLVMGetAggregateElement(v, 0) : v;
        return e0 && LLVMIsAConstantInt(e0) && LLVMConstIntGetSExtValue(e0) % m == 0;
    }
    if (LLVMIsAShuffleVectorInst(v)) /* a splat of lane 0 of an insert (affine_lanes checked the mask) */
        return LLVMIsAInsertElementInst(LLVMGetOperand(v, 0)) &&
               multiple_of(LLVMGetOperand(LLVMGetOperand(v, 0), 1), m, depth + 1);
    if (!LLVMIsAInstruction(v))
        return false;
    LLVMValueRef a = LLVMGetOperand(v, 0), b = LLVMGetNumOperands(v) > 1 ? LLVMGetOperand(v, 1) : NULL;
    switch (LLVMGetInstructionOpcode(v)) {
    case LLVMSExt:
    case LLVMZExt: return multiple_of(a, m, depth + 1);
    case LLVMAdd:
    case LLVMSub: return multiple_of(a, m, depth + 1) && multiple_of(b, m, depth + 1);
    case LLVMMul:
        return (constant_int(b, &k) && k % m == 0) || (constant_int(a, &k) && k % m == 0) ||
               multiple_of(a, m, depth + 1) || multiple_of(b, m, depth + 1);
    case LLVMShl:
        return constant_int(b, &k) && k >= 0 && k < 62 && ((1ll << k) % m == 0 || multiple_of(a, m, depth + 1));
    case LLVMURem: return constant_int(b, &k) && k % m == 0 && multiple_of(a, m, depth + 1);
    default: return false;
    }
}

/* Whether dividend / M is the same in every lane, the dividend's lanes x
 * apart: a uniform dividend, or an unsigned position u + k (u a multiple of
 * W, as multiple_of sees it) by a multiple of W, which no lane crosses. */
static bool uniform_quotient(LLVMValueRef dividend, long long x, long long M, bool is_unsigned, int W) {
    return x == 0 || (x == 1 && is_unsigned && M % W == 0 && multiple_of(dividend, W, 0));
}

/* Whether the lanes of integer vector v are u + k c with u uniform and c a
 * constant, seen in how v was built (lane constants, splats, +, -, * and
 * << by constants, extensions; a uniform value's quotient and remainder by
 * a constant; an unsigned u + k's by a multiple M of the W lanes when u is
 * one of W too, as an element loop's position blk W + k: no lane crosses a
 * multiple of M, so its remainder is u % M + k and its quotient uniform):
 * *c then holds c. */
static bool affine_lanes(LLVMValueRef v, int W, long long *c, int depth) {
    if (depth > 12)
        return false;
    if (LLVMIsAConstantDataVector(v) || LLVMIsAConstantVector(v)) {
        unsigned n = LLVMGetVectorSize(LLVMTypeOf(v));
        LLVMValueRef e0 = LLVMGetAggregateElement(v, 0), e1 = n > 1 ? LLVMGetAggregateElement(v, 1) : e0;
        if (!e0 || !e1 || !LLVMIsAConstantInt(e0) || !LLVMIsAConstantInt(e1))
            return false;
        long long a = LLVMConstIntGetSExtValue(e0), d = LLVMConstIntGetSExtValue(e1) - a;
        for (unsigned k = 2; k < n; k++) {
            LLVMValueRef e = LLVMGetAggregateElement(v, k);
            if (!e || !LLVMIsAConstantInt(e) || LLVMConstIntGetSExtValue(e) != a + (long long)k * d)
                return false;
        }
        *c = d;
        return true;
    }
    if (LLVMIsAShuffleVectorInst(v)) { /* a splat: every lane from lane 0 of an insert */
        unsigned n = LLVMGetNumMaskElements(v);
        for (unsigned k = 0; k < n; k++)
            if (LLVMGetMaskValue(v, k) != 0)
                return false;
        *c = 0;
        return LLVMIsAInsertElementInst(LLVMGetOperand(v, 0)) != NULL;
    }
    if (!LLVMIsAInstruction(v))
        return false;
    LLVMOpcode op = LLVMGetInstructionOpcode(v);
    long long x, y;
    switch (op) {
    case LLVMSExt:
    case LLVMZExt: return affine_lanes(LLVMGetOperand(v, 0), W, c, depth + 1);
    case LLVMAdd:
    case LLVMSub:
        if (!affine_lanes(LLVMGetOperand(v, 0), W, &x, depth + 1) || !affine_lanes(LLVMGetOperand(v, 1), W, &y, depth + 1))
            return false;
        *c = op == LLVMAdd ? x + y : x - y;
        return true;
    case LLVMMul:
    case LLVMShl: {
        LLVMValueRef a = LLVMGetOperand(v, 0), b = LLVMGetOperand(v, 1);
        LLVMValueRef k = LLVMIsConstant(b) ? b : op == LLVMMul && LLVMIsConstant(a) ? a : NULL;
        LLVMValueRef other = k == b ? a : b;
        long long m;
        if (!k || !constant_int(k, &m) || !affine_lanes(other, W, &x, depth + 1))
            return false;
        *c = op == LLVMMul ? x * m : (m >= 0 && m < 32 ? x * (1ll << m) : 0);
        return op == LLVMMul || (m >= 0 && m < 32);
    }
    case LLVMSDiv:
    case LLVMUDiv:
    case LLVMSRem:
    case LLVMURem: { /* by a constant M */
        long long M;
        if (!constant_int(LLVMGetOperand(v, 1), &M) || M <= 0 || !affine_lanes(LLVMGetOperand(v, 0), W, &x, depth + 1))
            return false;
        bool rem = op == LLVMSRem || op == LLVMURem;
        if (M == 1 || x == 0) { /* the emitters' rows of one lane (row / 1); a uniform value */
            *c = rem ? 0 : x;
            return true;
        }
        if (!uniform_quotient(LLVMGetOperand(v, 0), x, M, op == LLVMURem || op == LLVMUDiv, W))
            return false;
        *c = rem ? 1 : 0;
        return true;
    }
    default: {
        /* uniform in every lane: a splat built some other way */
        return false;
    }
    }
}

/* An integer value as a sum of coef * atom, an atom a value v or its
 * quotient v / div (div > 1, signed or not): linear_parts. */
typedef struct {
    LLVMValueRef v;
    long long div, coef;
    bool sdiv;
} linear_atom;

typedef struct {
    linear_atom atom[24];
    int n;
} linear_form;

static bool add_atom(linear_form *f, LLVMValueRef v, long long div, bool sdiv, long long coef) {
    for (int i = 0; i < f->n; i++)
        if (f->atom[i].v == v && f->atom[i].div == div && f->atom[i].sdiv == sdiv) {
            f->atom[i].coef += coef;
            return true;
        }
    if (f->n == (int)(sizeof f->atom / sizeof *f->atom))
        return false;
    f->atom[f->n++] = (linear_atom){v, div, coef, sdiv};
    return true;
}

/* A quotient by a constant as an atom, (x / a) / b taken as x / (a b) (so
 * with truncating division, a and b positive). */
static bool add_quotient(linear_form *f, LLVMValueRef x, long long div, bool sdiv, long long coef) {
    long long a;
    while (LLVMIsAInstruction(x) && LLVMGetInstructionOpcode(x) == (sdiv ? LLVMSDiv : LLVMUDiv) &&
           constant_int(LLVMGetOperand(x, 1), &a) && a > 0 && div < (1ll << 40) / a)
        div *= a, x = LLVMGetOperand(x, 0);
    return add_atom(f, x, div, sdiv, coef);
}

/* v times scale added to f, through +, -, products and shifts by
 * constants, extensions, quotients by constants (atoms of their own) and
 * remainders by them (x % M is x - M (x / M), truncating either way). */
static bool linear_parts(LLVMValueRef v, long long scale, linear_form *f, int depth) {
    long long m;
    if (depth > 16)
        return false;
    if (LLVMIsAInstruction(v)) {
        LLVMOpcode op = LLVMGetInstructionOpcode(v);
        LLVMValueRef a = LLVMGetOperand(v, 0), b = LLVMGetNumOperands(v) > 1 ? LLVMGetOperand(v, 1) : NULL;
        switch (op) {
        case LLVMSExt:
        case LLVMZExt: return linear_parts(a, scale, f, depth + 1);
        case LLVMAdd: return linear_parts(a, scale, f, depth + 1) && linear_parts(b, scale, f, depth + 1);
        case LLVMSub: return linear_parts(a, scale, f, depth + 1) && linear_parts(b, -scale, f, depth + 1);
        case LLVMMul:
            if (constant_int(b, &m))
                return linear_parts(a, scale * m, f, depth + 1);
            if (constant_int(a, &m))
                return linear_parts(b, scale * m, f, depth + 1);
            break;
        case LLVMShl:
            if (constant_int(b, &m) && m >= 0 && m < 32)
                return linear_parts(a, scale * (1ll << m), f, depth + 1);
            break;
        case LLVMSDiv:
        case LLVMUDiv:
            if (constant_int(b, &m) && m > 1)
                return add_quotient(f, a, m, op == LLVMSDiv, scale);
            break;
        case LLVMSRem:
        case LLVMURem:
            if (constant_int(b, &m) && m > 1)
                return linear_parts(a, scale, f, depth + 1) && add_quotient(f, a, m, op == LLVMSRem, -scale * m);
            break;
        default: break;
        }
    }
    return add_atom(f, v, 1, false, scale);
}

/* Whether v is affine across lanes once its remainders are written as
 * x - M (x / M) and equal quotients cancel. An index map splits an element
 * loop's position p into coordinates and multiplies them back: a 3x3
 * conv's tap over rows of 56 reads (p / 56 + i) 56 + p % 56 + j, which is
 * p + 56 i + j, where neither coordinate alone is affine (56 is no
 * multiple of the lanes) and affine_lanes gives up. The quotients left
 * must be uniform: of a uniform value, or of a position u + k (u a
 * multiple of W, unsigned) by a multiple of W. */
static bool recombined_lanes(LLVMValueRef v, int W, long long *c) {
    linear_form f = {.n = 0};
    if (!linear_parts(v, 1, &f, 0))
        return false;
    long long sum = 0, x;
    for (int i = 0; i < f.n; i++) {
        LLVMValueRef a = f.atom[i].v;
        if (!f.atom[i].coef || !varying(a))
            continue;
        if (!affine_lanes(a, W, &x, 0))
            return false;
        if (f.atom[i].div > 1 && !uniform_quotient(a, x, f.atom[i].div, !f.atom[i].sdiv, W))
            return false;
        sum += f.atom[i].div > 1 ? 0 : f.atom[i].coef * x;
    }
    *c = sum;
    return true;
}

/* Whether the lanes' addresses step by a constant *c elements of esize
 * bytes from lane to lane, seen in how they were built: a chain of
 * one-index GEPs from a uniform base, each index uniform or affine
 * (affine_lanes). A chain, since a kernel's const pointer may be a lane's
 * own (the lanes scan's ys = smem + slot, then sd = ys + 1024, then sd[s]). */
static bool address_lanes(LLVMValueRef a, unsigned esize, int W, long long *c) {
    long long bytes = 0;
    for (int depth = 0; depth < 8 && LLVMIsAGetElementPtrInst(a) && LLVMGetNumOperands(a) == 2; depth++) {
        LLVMTypeRef et = LLVMGetGEPSourceElementType(a);
        LLVMTypeKind kind = LLVMGetTypeKind(et);
        LLVMValueRef i = LLVMGetOperand(a, 1);
        long long x = 0;
        if (kind != LLVMFloatTypeKind && kind != LLVMIntegerTypeKind && kind != LLVMBFloatTypeKind &&
            kind != LLVMHalfTypeKind)
            return false;
        if (varying(i) && !affine_lanes(i, W, &x, 0) && !recombined_lanes(i, W, &x))
            return false;
        bytes += x * (kind == LLVMIntegerTypeKind ? LLVMGetIntTypeWidth(et) / 8 : kind == LLVMFloatTypeKind ? 4 : 2);
        a = LLVMGetOperand(a, 0);
        if (!varying(a)) {
            *c = bytes / (long long)esize;
            return bytes % (long long)esize == 0;
        }
    }
    return false;
}

/* Whether the lanes' addresses are a + k S, S a positive multiple of the
 * element size (bytes), or 0 too when zero_too (loads: one element for all
 * lanes): *a0 and *stride (bytes) then hold them. */
static LLVMValueRef strided(lower *L, LLVMValueRef addrs, unsigned esize, bool zero_too, LLVMValueRef *a0,
                            LLVMValueRef *stride) {
    LLVMTypeRef vt = LLVMVectorType(L->i64, (unsigned)L->W);
    LLVMValueRef a = LLVMBuildPtrToInt(L->B, addrs, vt, "");
    *a0 = LLVMBuildExtractElement(L->B, a, LLVMConstInt(L->i32, 0, 0), "");
    *stride = LLVMBuildSub(L->B, LLVMBuildExtractElement(L->B, a, LLVMConstInt(L->i32, 1, 0), ""), *a0, "");
    LLVMValueRef want = LLVMBuildAdd(L->B, splat(L, *a0), LLVMBuildMul(L->B, lane_iota(L, L->i64, L->W), splat(L, *stride), ""), "");
    LLVMValueRef same = LLVMBuildICmp(L->B, LLVMIntEQ, a, want, "");
    LLVMValueRef all = LLVMBuildICmp(L->B, LLVMIntEQ, LLVMBuildBitCast(L->B, same, LLVMIntTypeInContext(L->C, (unsigned)L->W), ""),
                                     LLVMConstAllOnes(LLVMIntTypeInContext(L->C, (unsigned)L->W)), "");
    LLVMValueRef pos = LLVMBuildICmp(L->B, zero_too ? LLVMIntSGE : LLVMIntSGT, *stride, i64c(L, 0), "");
    LLVMValueRef whole = LLVMBuildICmp(L->B, LLVMIntEQ, LLVMBuildURem(L->B, *stride, i64c(L, esize), ""), i64c(L, 0), "");
    return LLVMBuildAnd(L->B, all, LLVMBuildAnd(L->B, pos, whole, ""), "");
}

/* n vectors of n elements, transposed in registers: one bit of the row and
 * column indices swapped per stage, each a two-input shuffle per row. */
static void transpose(lower *L, LLVMValueRef *rows, int n) {
    for (int b = n / 2; b >= 1; b /= 2)
        for (int i = 0; i < n; i++) {
            if (i & b)
                continue;
            LLVMValueRef lo[64], hi[64];
            for (int j = 0; j < n; j++) {
                lo[j] = LLVMConstInt(L->i32, (unsigned long long)((j & b) ? n + j - b : j), 0);
                hi[j] = LLVMConstInt(L->i32, (unsigned long long)((j & b) ? n + j : j + b), 0);
            }
            LLVMValueRef x = rows[i], y = rows[i + b];
            rows[i] = LLVMBuildShuffleVector(L->B, x, y, LLVMConstVector(lo, (unsigned)n), "");
            rows[i + b] = LLVMBuildShuffleVector(L->B, x, y, LLVMConstVector(hi, (unsigned)n), "");
        }
}

/* A tile function's type: (tile or rows, base, index, stride, count or
 * mask), and for a fill the prefetch's distance. */
static LLVMTypeRef tile_type(lower *L, bool fill) {
    LLVMTypeRef at[6] = {L->ptr, L->ptr, L->i64, L->i64, L->i64, L->i64};
    return LLVMFunctionType(L->vd, at, fill ? 6 : 5, 0);
}

/* The function `name` of the module (W lanes of et, threads of them) when it exists (*exists),
 * else a new internal, never inlined one of type fty with L->B at its entry
 * (*saved: the builder to restore): the tiles' reads and write-backs are
 * built once per module, not at every site. */
static LLVMValueRef tile_function(lower *L, const char *kind, LLVMTypeRef et, LLVMTypeRef fty, LLVMBuilderRef *saved,
                                  bool *exists) {
    char name[64];
    snprintf(name, sizeof name, "%s.%d.%d.%s", kind, L->W, L->threads, et == L->f32 ? "f32" : et == L->f16 ? "f16" : "i16");
    LLVMValueRef f = LLVMGetNamedFunction(L->M, name);
    *exists = f != NULL;
    if (f)
        return f;
    f = LLVMAddFunction(L->M, name, fty);
    LLVMSetLinkage(f, LLVMInternalLinkage);
    unsigned noinline = LLVMGetEnumAttributeKindForName("noinline", 8);
    LLVMAddAttributeAtIndex(f, LLVMAttributeFunctionIndex, LLVMCreateEnumAttribute(L->C, noinline, 0));
    *saved = L->B;
    L->B = LLVMCreateBuilderInContext(L->C);
    LLVMPositionBuilderAtEnd(L->B, LLVMAppendBasicBlockInContext(L->C, f, "entry"));
    return f;
}

static void end_tile_function(lower *L, LLVMBuilderRef saved) {
    LLVMBuildRetVoid(L->B);
    LLVMDisposeBuilder(L->B);
    L->B = saved;
}

static unsigned elem_size(lower *L, LLVMTypeRef et) {
    return LLVMGetTypeKind(et) == LLVMIntegerTypeKind ? LLVMGetIntTypeWidth(et) / 8 : et == L->f32 ? 4 : 2;
}

/* Where lane k's row of a tile starts: first + k S elements. */
static LLVMValueRef lane_row(lower *L, LLVMValueRef first, LLVMValueRef S, int k) {
    return LLVMBuildAdd(L->B, first, LLVMBuildMul(L->B, S, i64c(L, k), ""), "");
}

/* How far ahead of a window a fill prefetches each row, in bytes: a scan
 * reads its rows' steps a chunk (64 by default) at a time, all of a chunk's
 * windows in its d pass, then spends its state loop on them, so that the
 * next chunk's lines, asked for a chunk ahead, arrive during that loop.
 * The hardware's prefetchers follow a few streams, not a block's 16 rows
 * (u, dt, z: 48 streams): from beyond the cache a scan ran at half its
 * rate, 0.38 ns per state update where 0.2 with its rows cached. */
enum { PREFETCH_AHEAD_BYTES = 256 };

/* fill(tile, base, lo, S, n, ahead): lane k's elements lo + k S .. + n - 1
 * of base (n <= W, the rest masked), transposed into tile's W rows; lanes
 * past the block's threads read nothing (their rows may lie past the
 * buffer). Each row's element lo + k S + ahead is prefetched (a prefetch
 * never faults: past the buffer it does nothing). */
static void call_fill(lower *L, LLVMTypeRef et, LLVMValueRef tile, LLVMValueRef base, LLVMValueRef lo, LLVMValueRef S,
                      LLVMValueRef n, LLVMValueRef ahead) {
    int W = L->W;
    LLVMTypeRef row_t = LLVMVectorType(et, (unsigned)W);
    LLVMBuilderRef saved = NULL;
    bool exists;
    LLVMValueRef f = tile_function(L, "mx_tile_fill", et, tile_type(L, true), &saved, &exists);
    if (!exists) {
        unsigned esize = elem_size(L, et);
        LLVMValueRef t = LLVMGetParam(f, 0), b = LLVMGetParam(f, 1), l0 = LLVMGetParam(f, 2), s = LLVMGetParam(f, 3);
        LLVMValueRef mask = LLVMBuildICmp(L->B, LLVMIntULT, lane_iota(L, L->i64, W), splat(L, LLVMGetParam(f, 4)), "");
        LLVMValueRef rows[64];
        for (int k = 0; k < W; k++) {
            LLVMValueRef a = lane_row(L, l0, s, k);
            LLVMValueRef args[4] = {LLVMBuildInBoundsGEP2(L->B, et, b, &a, 1, ""), LLVMConstInt(L->i32, esize, 0), mask,
                                    LLVMConstNull(row_t)};
            rows[k] = k < L->threads ? masked_mem(L, "llvm.masked.load", row_t, args) : LLVMConstNull(row_t);
        }
        for (int k = 0; k < L->threads; k++) { /* read, keep in every level, data */
            LLVMValueRef a = LLVMBuildAdd(L->B, lane_row(L, l0, s, k), LLVMGetParam(f, 5), "");
            LLVMValueRef args[4] = {LLVMBuildGEP2(L->B, et, b, &a, 1, ""), LLVMConstInt(L->i32, 0, 0),
                                    LLVMConstInt(L->i32, 3, 0), LLVMConstInt(L->i32, 1, 0)};
            intrinsic(L, "llvm.prefetch", args, 4);
        }
        transpose(L, rows, W);
        for (int j = 0; j < W; j++) {
            LLVMValueRef a = i64c(L, j);
            LLVMBuildStore(L->B, rows[j], LLVMBuildInBoundsGEP2(L->B, row_t, t, &a, 1, ""));
        }
        end_tile_function(L, saved);
    }
    LLVMValueRef args[6] = {tile, base, lo, S, n, ahead};
    LLVMBuildCall2(L->B, tile_type(L, true), f, args, 6, "");
}

/* flush(rows, base, first, S, written): tile rows transposed back, lane k's
 * stored at first + k S .. + W - 1 of base under the mask `written` (the
 * block's threads' lanes only). */
static void call_flush(lower *L, LLVMTypeRef et, LLVMValueRef rows_at, LLVMValueRef base, LLVMValueRef first,
                       LLVMValueRef S, LLVMValueRef written) {
    int W = L->W;
    LLVMTypeRef row_t = LLVMVectorType(et, (unsigned)W);
    LLVMBuilderRef saved = NULL;
    bool exists;
    LLVMValueRef f = tile_function(L, "mx_tile_flush", et, tile_type(L, false), &saved, &exists);
    if (!exists) {
        unsigned esize = elem_size(L, et);
        LLVMValueRef t = LLVMGetParam(f, 0), b = LLVMGetParam(f, 1), f0 = LLVMGetParam(f, 2), s = LLVMGetParam(f, 3);
        LLVMValueRef rows[64];
        for (int j = 0; j < W; j++) {
            LLVMValueRef a = i64c(L, j);
            rows[j] = LLVMBuildLoad2(L->B, row_t, LLVMBuildInBoundsGEP2(L->B, row_t, t, &a, 1, ""), "");
        }
        transpose(L, rows, W);
        LLVMTypeRef iW = LLVMIntTypeInContext(L->C, (unsigned)W);
        LLVMValueRef mask = LLVMBuildBitCast(L->B, LLVMBuildTrunc(L->B, LLVMGetParam(f, 4), iW, ""),
                                             LLVMVectorType(L->i1, (unsigned)W), "");
        for (int k = 0; k < L->threads; k++) {
            /* a backward window may start before the buffer: only the rows written are addressed */
            LLVMValueRef a = lane_row(L, f0, s, k);
            LLVMValueRef args[4] = {rows[k], LLVMBuildGEP2(L->B, et, b, &a, 1, ""), LLVMConstInt(L->i32, esize, 0), mask};
            masked_mem(L, "llvm.masked.store", row_t, args);
        }
        end_tile_function(L, saved);
    }
    LLVMValueRef args[5] = {rows_at, base, first, S, written};
    LLVMBuildCall2(L->B, tile_type(L, false), f, args, 5, "");
}

/* The stores into root r's buffer so far, with those into any. */
static LLVMValueRef stores_so_far(lower *L, int r) {
    LLVMValueRef any = LLVMBuildLoad2(L->B, L->i64, L->others, "");
    return L->root_restrict[r] ? LLVMBuildAdd(L->B, any, LLVMBuildLoad2(L->B, L->i64, L->root_stores[r], ""), "") : any;
}

/* The load of a lane tile (r: the root; i, S: element index of lane 0 and
 * the stride in elements, S > 1) from this site's tile, read first when i
 * is not in it. */
static LLVMValueRef tile_load(lower *L, int r, LLVMTypeRef et, LLVMValueRef i, LLVMValueRef S, LLVMValueRef addrs) {
    int W = L->W;
    LLVMTypeRef row_t = LLVMVectorType(et, (unsigned)W);
    LLVMValueRef tile = entry_alloca(L, row_t, i64c(L, W)), lo_s = mx_lower_store_counter(L), hi_s = mx_lower_store_counter(L),
                 S_s = mx_lower_store_counter(L), seen_s = mx_lower_store_counter(L), last_s = mx_lower_store_counter(L), lastS_s = mx_lower_store_counter(L);
    LLVMValueRef lo = LLVMBuildLoad2(L->B, L->i64, lo_s, ""), hi = LLVMBuildLoad2(L->B, L->i64, hi_s, "");
    LLVMValueRef last = LLVMBuildLoad2(L->B, L->i64, last_s, "");
    LLVMValueRef same_last = LLVMBuildICmp(L->B, LLVMIntEQ, LLVMBuildLoad2(L->B, L->i64, lastS_s, ""), S, "");
    LLVMBuildStore(L->B, i, last_s), LLVMBuildStore(L->B, S, lastS_s);
    LLVMValueRef seen = stores_so_far(L, r), same_S = LLVMBuildICmp(L->B, LLVMIntEQ, LLVMBuildLoad2(L->B, L->i64, S_s, ""), S, "");
    LLVMValueRef fresh = LLVMBuildAnd(L->B, same_S, LLVMBuildICmp(L->B, LLVMIntEQ, LLVMBuildLoad2(L->B, L->i64, seen_s, ""), seen, ""), "");
    LLVMValueRef in = LLVMBuildAnd(L->B, LLVMBuildICmp(L->B, LLVMIntSGE, i, lo, ""), LLVMBuildICmp(L->B, LLVMIntSLT, i, hi, ""), "");
    LLVMBasicBlockRef miss = new_block(L, "tile.miss"), fill = new_block(L, "tile.fill"), use = new_block(L, "tile.use"),
                      each = new_block(L, "tile.each"), done = new_block(L, "tile.done");
    LLVMBuildCondBr(L->B, LLVMBuildAnd(L->B, fresh, in, ""), use, miss);

    /* a miss: a window when the site walks its rows (one element on from
     * the last access, either way), else this access alone is gathered */
    LLVMPositionBuilderAtEnd(L->B, miss);
    LLVMValueRef back = LLVMBuildICmp(L->B, LLVMIntEQ, LLVMBuildAdd(L->B, i, i64c(L, 1), ""), last, "");
    LLVMValueRef on = LLVMBuildICmp(L->B, LLVMIntEQ, i, LLVMBuildAdd(L->B, last, i64c(L, 1), ""), "");
    LLVMBuildCondBr(L->B, LLVMBuildAnd(L->B, same_last, LLVMBuildOr(L->B, back, on, ""), ""), fill, each);

    LLVMPositionBuilderAtEnd(L->B, fill);
    LLVMValueRef row0 = LLVMBuildSub(L->B, i, LLVMBuildURem(L->B, i, S, ""), ""), row1 = LLVMBuildAdd(L->B, row0, S, "");
    LLVMValueRef blo = LLVMBuildSub(L->B, i, i64c(L, W - 1), "");
    blo = LLVMBuildSelect(L->B, LLVMBuildICmp(L->B, LLVMIntSLT, blo, row0, ""), row0, blo, "");
    LLVMValueRef fhi = LLVMBuildAdd(L->B, i, i64c(L, W), "");
    fhi = LLVMBuildSelect(L->B, LLVMBuildICmp(L->B, LLVMIntSGT, fhi, row1, ""), row1, fhi, "");
    LLVMValueRef nlo = LLVMBuildSelect(L->B, back, blo, i, ""),
                 nhi = LLVMBuildSelect(L->B, back, LLVMBuildAdd(L->B, i, i64c(L, 1), ""), fhi, "");
    /* the prefetch: the way the site walks; past the row's end (or start),
     * the next block's row of the lane, threads rows on */
    long long step = PREFETCH_AHEAD_BYTES / (long long)elem_size(L, et);
    LLVMValueRef ahead = LLVMBuildSelect(L->B, back, i64c(L, -step), i64c(L, step), ""), to = LLVMBuildAdd(L->B, i, ahead, "");
    LLVMValueRef past = LLVMBuildSelect(L->B, back, LLVMBuildICmp(L->B, LLVMIntSLT, to, row0, ""),
                                        LLVMBuildICmp(L->B, LLVMIntSGE, to, row1, ""), "");
    LLVMValueRef rows_on = LLVMBuildSelect(L->B, back, i64c(L, L->threads + 1), i64c(L, L->threads - 1), "");
    ahead = LLVMBuildSelect(L->B, past, LLVMBuildAdd(L->B, ahead, LLVMBuildMul(L->B, rows_on, S, ""), ""), ahead, "");
    call_fill(L, et, tile, L->roots[r], nlo, S, LLVMBuildSub(L->B, nhi, nlo, ""), ahead);
    LLVMBuildStore(L->B, nlo, lo_s), LLVMBuildStore(L->B, nhi, hi_s), LLVMBuildStore(L->B, S, S_s);
    LLVMBuildStore(L->B, seen, seen_s);
    LLVMBuildBr(L->B, use);

    LLVMPositionBuilderAtEnd(L->B, use);
    LLVMValueRef j = LLVMBuildSub(L->B, i, LLVMBuildLoad2(L->B, L->i64, lo_s, ""), "");
    LLVMValueRef got[2] = {LLVMBuildLoad2(L->B, row_t, LLVMBuildInBoundsGEP2(L->B, row_t, tile, &j, 1, ""), ""), NULL};
    LLVMBasicBlockRef from[2] = {use, each};
    LLVMBuildBr(L->B, done);
    LLVMPositionBuilderAtEnd(L->B, each);
    got[1] = gather_scatter(L, addrs, NULL, row_t);
    from[1] = LLVMGetInsertBlock(L->B);
    LLVMBuildBr(L->B, done);
    LLVMPositionBuilderAtEnd(L->B, done);
    LLVMValueRef phi = LLVMBuildPhi(L->B, row_t, "");
    LLVMAddIncoming(phi, got, from, 2);
    return phi;
}

/* Memory of a store tile whose rows were written: the tile transposed back
 * into each lane's window of its row, stored under the mask of the rows
 * written, and emptied. */
void mx_lower_flush_store_tile(lower *L, struct store_tile *st) {
    LLVMValueRef written = LLVMBuildLoad2(L->B, L->i64, st->written, "");
    LLVMBasicBlockRef flush = new_block(L, "store_tile.flush"), done = new_block(L, "store_tile.flushed");
    LLVMBuildCondBr(L->B, LLVMBuildICmp(L->B, LLVMIntNE, written, i64c(L, 0), ""), flush, done);
    LLVMPositionBuilderAtEnd(L->B, flush);
    LLVMTypeRef et = LLVMGetElementType(LLVMGetAllocatedType(st->rows));
    call_flush(L, et, st->rows, L->roots[st->root], LLVMBuildLoad2(L->B, L->i64, st->base, ""),
               LLVMBuildLoad2(L->B, L->i64, st->stride, ""), written);
    LLVMBuildStore(L->B, i64c(L, 0), st->written);
    LLVMBuildBr(L->B, done);
    LLVMPositionBuilderAtEnd(L->B, done);
}

/* Any other load or store of memory at addr (NULL: anywhere): the stores
 * its buffer's store tile holds reach memory first. A store tile is for a
 * buffer whose every access follows it in the text (so that, in a loop, no
 * access runs before the flush it needs); an access reaching an unknown
 * buffer leaves stores unbuffered. Either found too late: lowered again. */
void mx_lower_memory_access(lower *L, LLVMValueRef addr) {
    if (L->W == 1)
        return;
    int r = root_of(L, addr);
    if (r == -2)
        return;
    if (r == -1) {
        for (int i = 0; i < L->n_store_tiles; i++)
            mx_lower_flush_store_tile(L, &L->store_tiles[i]);
        if (!L->none_buffered && L->n_store_tiles) {
            L->none_buffered = true;
            longjmp(L->retry, 1);
        }
        L->none_buffered = true;
        return;
    }
    if (L->tile_of[r] >= 0)
        mx_lower_flush_store_tile(L, &L->store_tiles[L->tile_of[r]]);
    L->accessed[r] = true;
}

/* A store site's tile: whether root r's stores here may be buffered (else
 * NULL), lowering again when an earlier access of r turns out to need it. */
static struct store_tile *store_tile_for(lower *L, int r, LLVMTypeRef vt) {
    if (r < 0 || !L->root_restrict[r] || L->unbuffered[r] || L->none_buffered || divergent(L) ||
        L->n_store_tiles == (int)(sizeof L->store_tiles / sizeof *L->store_tiles))
        return NULL;
    if (L->accessed[r] || L->tile_of[r] >= 0) {
        L->unbuffered[r] = true;
        longjmp(L->retry, 1);
    }
    struct store_tile *st = &L->store_tiles[L->n_store_tiles];
    L->tile_of[r] = L->n_store_tiles++;
    *st = (struct store_tile){r, entry_alloca(L, vt, i64c(L, L->W)), mx_lower_store_counter(L), mx_lower_store_counter(L),
                              mx_lower_store_counter(L), mx_lower_store_counter(L), mx_lower_store_counter(L)};
    return st;
}

/* A store of v at element i of root st->root, lanes S elements apart:
 * into the tile's row i - base when i is in its window (same S), else the
 * tile is flushed first and a new window starts at i (ends at i when the
 * stores walk backwards). */
static void tile_store(lower *L, struct store_tile *st, LLVMValueRef v, LLVMValueRef i, LLVMValueRef S,
                       LLVMValueRef addrs) {
    int W = L->W;
    LLVMValueRef written = LLVMBuildLoad2(L->B, L->i64, st->written, ""), base = LLVMBuildLoad2(L->B, L->i64, st->base, "");
    LLVMValueRef last = LLVMBuildLoad2(L->B, L->i64, st->last, "");
    LLVMValueRef same_last = LLVMBuildICmp(L->B, LLVMIntEQ, LLVMBuildLoad2(L->B, L->i64, st->last_stride, ""), S, "");
    LLVMBuildStore(L->B, i, st->last), LLVMBuildStore(L->B, S, st->last_stride);
    LLVMValueRef any = LLVMBuildICmp(L->B, LLVMIntNE, written, i64c(L, 0), "");
    LLVMValueRef same = LLVMBuildAnd(L->B, any, LLVMBuildICmp(L->B, LLVMIntEQ, LLVMBuildLoad2(L->B, L->i64, st->stride, ""), S, ""), "");
    LLVMValueRef j = LLVMBuildSub(L->B, i, base, "");
    LLVMValueRef in = LLVMBuildICmp(L->B, LLVMIntULT, j, i64c(L, W), "");
    LLVMBasicBlockRef miss = new_block(L, "store_tile.miss"), start = new_block(L, "store_tile.start"),
                      each = new_block(L, "store_tile.each"), put = new_block(L, "store_tile.put"),
                      done = new_block(L, "store_tile.done");
    LLVMBuildCondBr(L->B, LLVMBuildAnd(L->B, same, in, ""), put, miss);
    /* a miss: the tile written back; a new window when the site walks its
     * rows (one element on from the last store, either way), else a scatter */
    LLVMPositionBuilderAtEnd(L->B, miss);
    mx_lower_flush_store_tile(L, st);
    LLVMValueRef back = LLVMBuildICmp(L->B, LLVMIntEQ, LLVMBuildAdd(L->B, i, i64c(L, 1), ""), last, "");
    LLVMValueRef on = LLVMBuildICmp(L->B, LLVMIntEQ, i, LLVMBuildAdd(L->B, last, i64c(L, 1), ""), "");
    LLVMBuildCondBr(L->B, LLVMBuildAnd(L->B, same_last, LLVMBuildOr(L->B, back, on, ""), ""), start, each);
    LLVMPositionBuilderAtEnd(L->B, start);
    LLVMBuildStore(L->B, LLVMBuildSelect(L->B, back, LLVMBuildSub(L->B, i, i64c(L, W - 1), ""), i, ""), st->base);
    LLVMBuildStore(L->B, S, st->stride);
    LLVMBuildBr(L->B, put);
    LLVMPositionBuilderAtEnd(L->B, each);
    gather_scatter(L, addrs, v, LLVMTypeOf(v));
    LLVMBuildBr(L->B, done);
    LLVMPositionBuilderAtEnd(L->B, put);
    j = LLVMBuildSub(L->B, i, LLVMBuildLoad2(L->B, L->i64, st->base, ""), "");
    LLVMBuildStore(L->B, v, LLVMBuildInBoundsGEP2(L->B, LLVMGetAllocatedType(st->rows), st->rows, &j, 1, ""));
    written = LLVMBuildLoad2(L->B, L->i64, st->written, "");
    LLVMBuildStore(L->B, LLVMBuildOr(L->B, written, LLVMBuildShl(L->B, i64c(L, 1), j, ""), ""), st->written);
    LLVMBuildBr(L->B, done);
    LLVMPositionBuilderAtEnd(L->B, done);
}

/* Whether the site being lowered is inside a loop unrolled whole. A lane
 * tile pays back over the accesses of one site that walk a row, but the
 * copies of a loop unrolled whole share the site (its tile and its last
 * access) while they read different elements: each copy's access is a miss
 * for the next (a scan's B and C per state, gathered at every step), or the
 * copies read one window once (a scan's initial A row, once per block).
 * The tile's checks and paths would be built in every copy, most of the
 * scans' code and compile time in ViM2-T, so such a site has none. */
static bool in_unrolled_loop(lower *L) {
    for (int i = 0; i < L->n_loops; i++)
        if (L->whole[i])
            return true;
    return false;
}

/* A masked load (value NULL) or store of vt's consecutive elements from p0. */
static LLVMValueRef masked_access(lower *L, LLVMValueRef p0, LLVMValueRef value, LLVMTypeRef vt, LLVMValueRef mask) {
    LLVMValueRef align = LLVMConstInt(L->i32, elem_size(L, LLVMGetElementType(vt)), 0);
    LLVMValueRef load[4] = {p0, align, mask, LLVMConstNull(vt)}, store[4] = {value, p0, align, mask};
    return masked_mem(L, value ? "llvm.masked.store" : "llvm.masked.load", vt, value ? store : load);
}

/* The element at a0, which every lane's address is, loaded once for all
 * lanes: a one-element masked load (no fault when no lane runs), splat. */
static LLVMValueRef same_address_load(lower *L, LLVMValueRef a0, LLVMTypeRef vt) {
    LLVMTypeRef one = LLVMVectorType(LLVMGetElementType(vt), 1);
    LLVMValueRef any = L->mask ? intrinsic(L, "llvm.vector.reduce.or", &L->mask, 1) : LLVMConstInt(L->i1, 1, 0);
    LLVMValueRef m1 = LLVMBuildInsertElement(L->B, LLVMGetPoison(LLVMVectorType(L->i1, 1)), any,
                                             LLVMConstInt(L->i32, 0, 0), "");
    LLVMValueRef p0 = LLVMTypeOf(a0) == L->ptr ? a0 : LLVMBuildIntToPtr(L->B, a0, L->ptr, "");
    LLVMValueRef x = masked_access(L, p0, NULL, one, m1);
    return LLVMBuildShuffleVector(L->B, x, LLVMGetPoison(one), LLVMConstNull(LLVMVectorType(L->i32, (unsigned)L->W)),
                                  "");
}

/* A load (value NULL) or store of the active lanes' consecutive elements
 * from p0, in root r: one masked vector access. Without AVX-512 a masked
 * store is microcoded on some CPUs (AMD Zen 3: a vmaskmovps store takes
 * about 19 cycles, a plain one under 1), and a kernel masks most of its
 * stores: an element loop's `if (lin < n)` in every block, a block with
 * fewer threads than lanes (a scan's 6 rows as 8 lanes), a ragged loop
 * over a chunk's steps. So a store whose lanes turn out all active (at run
 * time) is a plain one; else, into the block's shared memory, which no
 * other thread touches, a read of the whole vector, the active lanes
 * replaced, and a whole write, when all of its elements lie inside that
 * memory. Elsewhere the masked store stays: another block may be writing
 * the elements beside. */
static LLVMValueRef one_vector(lower *L, LLVMValueRef p0, LLVMValueRef value, LLVMTypeRef vt, int r) {
    LLVMValueRef mask = L->mask ? L->mask : all_lanes(L);
    long long every;
    if (!value || L->avx512f || (constant_int(mask, &every) && every))
        return masked_access(L, p0, value, vt, mask); /* all lanes: a plain store */
    unsigned n = LLVMGetVectorSize(vt), esize = elem_size(L, LLVMGetElementType(vt));
    LLVMTypeRef bits = LLVMIntTypeInContext(L->C, n);
    LLVMValueRef whole = LLVMBuildICmp(L->B, LLVMIntEQ, LLVMBuildBitCast(L->B, mask, bits, ""),
                                       LLVMConstAllOnes(bits), "");
    LLVMValueRef blend = NULL;
    if (r == L->smem_root) {
        LLVMValueRef a = LLVMBuildPtrToInt(L->B, p0, L->i64, ""), lo = LLVMBuildPtrToInt(L->B, L->roots[r], L->i64, "");
        LLVMValueRef end = LLVMBuildAdd(L->B, a, i64c(L, (long long)n * esize), "");
        blend = LLVMBuildAnd(L->B, LLVMBuildICmp(L->B, LLVMIntUGE, a, lo, ""),
                             LLVMBuildICmp(L->B, LLVMIntULE, end,
                                           LLVMBuildAdd(L->B, lo, i64c(L, (long long)L->smem_bytes), ""), ""), "");
        whole = LLVMBuildOr(L->B, whole, blend, "");
    }
    LLVMBasicBlockRef plain = new_block(L, "store.whole"), masked = new_block(L, "store.masked"),
                      done = new_block(L, "store.done");
    LLVMBuildCondBr(L->B, whole, plain, masked);
    LLVMPositionBuilderAtEnd(L->B, plain);
    LLVMValueRef v = value;
    if (blend) { /* all lanes active, or inside the shared memory */
        LLVMValueRef old = LLVMBuildLoad2(L->B, vt, p0, "");
        LLVMSetAlignment(old, esize);
        v = LLVMBuildSelect(L->B, mask, value, old, "");
    }
    LLVMSetAlignment(LLVMBuildStore(L->B, v, p0), esize);
    LLVMBuildBr(L->B, done);
    LLVMPositionBuilderAtEnd(L->B, masked);
    masked_access(L, p0, value, vt, mask);
    LLVMBuildBr(L->B, done);
    LLVMPositionBuilderAtEnd(L->B, done);
    return NULL;
}

/* A load (value NULL) or store at the lanes' addresses: a vector load or
 * store when they are consecutive, one load for all lanes when they are the
 * same (a weight indexed by a channel that a block's lanes share), a lane
 * tile when they are a constant stride apart (loads of all lanes), else a
 * gather or scatter. */
LLVMValueRef mx_lower_lane_memory(lower *L, LLVMValueRef addrs, LLVMValueRef value, LLVMTypeRef vt) {
    int r = root_of(L, addrs);
    if (value)
        mx_lower_count_store(L, addrs);
    bool shape = r >= 0 && L->W == (int)LLVMGetVectorSize(vt) && !(L->W & (L->W - 1));
    /* a site that runs again in the block (in a loop) is worth checking at
     * run time for consecutive lanes or a tile (else only consecutive lanes,
     * proven when lowering, are worth a vector) */
    bool again = L->n_loops > 0, tileable = again && !in_unrolled_loop(L);
    long long c = 0;
    LLVMTypeRef et = LLVMGetElementType(vt);
    bool affine = shape && address_lanes(addrs, elem_size(L, et), L->W, &c);
    /* lanes a known stride apart (proven when lowering) are not checked at
     * run time: consecutive, a tile (a positive stride), or a gather */
    bool known = affine && c != 1;
    tileable = tileable && !(known && c <= 0);
    struct store_tile *st = value && shape && tileable ? store_tile_for(L, r, vt) : NULL;
    if (!st)
        mx_lower_memory_access(L, addrs);
    if (affine && c == 1 && !st) /* consecutive, seen when lowering: one vector */
        return one_vector(L, LLVMBuildExtractElement(L->B, addrs, LLVMConstInt(L->i32, 0, 0), ""), value, vt, r);
    if (affine && c == 0 && !value && shape) /* the same element, seen when lowering */
        return same_address_load(L, LLVMBuildExtractElement(L->B, addrs, LLVMConstInt(L->i32, 0, 0), ""), vt);
    bool tiles = (!value && !divergent(L) && tileable) || st;
    if (!shape || (!again && !(affine && c == 1)) || (known && !tiles))
        return gather_scatter(L, addrs, value, vt);
    unsigned esize = elem_size(L, et);
    LLVMValueRef a0, S;
    LLVMValueRef ok = strided(L, addrs, esize, !value, &a0, &S);
    LLVMBasicBlockRef vec = new_block(L, "lanes.strided"), each = new_block(L, "lanes.each"), done = new_block(L, "lanes.done");
    LLVMBuildCondBr(L->B, ok, vec, each);
    LLVMValueRef got[4];
    LLVMBasicBlockRef from[4];
    int n = 0;

    LLVMPositionBuilderAtEnd(L->B, vec);
    LLVMValueRef one = LLVMBuildICmp(L->B, LLVMIntEQ, S, i64c(L, esize), "");
    LLVMBasicBlockRef consecutive = new_block(L, "lanes.consecutive"), tiled = tiles ? new_block(L, "lanes.tile") : each;
    LLVMBasicBlockRef same = value ? NULL : new_block(L, "lanes.same"), other = value ? tiled : new_block(L, "lanes.other");
    LLVMBuildCondBr(L->B, one, consecutive, other);
    if (same) { /* a load whose lanes share one address (S = 0) */
        LLVMPositionBuilderAtEnd(L->B, other);
        LLVMBuildCondBr(L->B, LLVMBuildICmp(L->B, LLVMIntEQ, S, i64c(L, 0), ""), same, tiled);
        LLVMPositionBuilderAtEnd(L->B, same);
        got[n] = same_address_load(L, a0, vt);
        from[n++] = LLVMGetInsertBlock(L->B);
        LLVMBuildBr(L->B, done);
    }
    LLVMPositionBuilderAtEnd(L->B, consecutive);
    if (st)
        mx_lower_flush_store_tile(L, st);
    got[n] = one_vector(L, LLVMBuildIntToPtr(L->B, a0, L->ptr, ""), value, vt, r);
    from[n++] = LLVMGetInsertBlock(L->B);
    LLVMBuildBr(L->B, done);

    if (tiles) {
        LLVMPositionBuilderAtEnd(L->B, tiled);
        LLVMValueRef i = LLVMBuildExactSDiv(L->B, LLVMBuildSub(L->B, a0, LLVMBuildPtrToInt(L->B, L->roots[r], L->i64, ""), ""),
                                            i64c(L, esize), "");
        LLVMValueRef Se = LLVMBuildExactSDiv(L->B, S, i64c(L, esize), "");
        LLVMBasicBlockRef t = new_block(L, "tile");
        LLVMBuildCondBr(L->B, LLVMBuildICmp(L->B, LLVMIntSGE, i, i64c(L, 0), ""), t, each);
        LLVMPositionBuilderAtEnd(L->B, t);
        if (st)
            tile_store(L, st, value, i, Se, addrs);
        else
            got[n] = tile_load(L, r, et, i, Se, addrs);
        from[n++] = LLVMGetInsertBlock(L->B);
        LLVMBuildBr(L->B, done);
    }

    LLVMPositionBuilderAtEnd(L->B, each);
    if (st)
        mx_lower_flush_store_tile(L, st);
    got[n] = gather_scatter(L, addrs, value, vt);
    from[n++] = LLVMGetInsertBlock(L->B);
    LLVMBuildBr(L->B, done);

    LLVMPositionBuilderAtEnd(L->B, done);
    if (value)
        return NULL;
    LLVMValueRef phi = LLVMBuildPhi(L->B, vt, "");
    LLVMAddIncoming(phi, got, from, (unsigned)n);
    return phi;
}

