/* llvm_kernel.c: the kernel subset of CUDA C into LLVM IR (llvm_kernel.h).
 *
 * One pass, as chibicc would do it without the AST: the tokens
 * (llvm_tokens.c), then a recursive-descent parser that builds IR as it
 * reads. Scalars declared const are SSA values; other variables and arrays
 * are allocas in the entry block (mem2reg and SROA turn them into
 * registers, so a scan's state array lives in vector registers once its
 * loop is unrolled). && and || evaluate both sides and ?: both arms: the
 * generated conditions and arms are loads-free arithmetic, and straight-line
 * selects are what the vectoriser wants. Float arithmetic carries the
 * reassoc and contract flags (FMAs, tree reductions); the inline exp
 * (llvm_math.c) and the bf16 rounding are built without them, since they
 * depend on exact rounding steps. Memory at the lanes' addresses is
 * llvm_tiles.c's. */
#include <math.h>
#include <llvm-c/Analysis.h>
#include <llvm-c/DebugInfo.h>
#include <stdlib.h>

#include "llvm_lower.h"

/* ---- token helpers ------------------------------------------------------------------ */

static token *peek(lower *L) { return &L->tk.t[L->pos]; }
static token *peek_at(lower *L, int k) {
    int i = L->pos + k;
    return &L->tk.t[i < L->tk.n ? i : L->tk.n - 1];
}
static bool is(const token *t, const char *s) { return t->kind != TK_NUM && t->kind != TK_STR && t->len == (int)strlen(s) && strncmp(t->s, s, (size_t)t->len) == 0; }
static bool accept(lower *L, const char *s) {
    if (!is(peek(L), s))
        return false;
    L->pos++;
    return true;
}
static token *next(lower *L) {
    token *t = peek(L);
    if (t->kind != TK_EOF)
        L->pos++;
    return t;
}
static void expect(lower *L, const char *s) {
    if (!accept(L, s))
        fail_at(L, peek(L), "expected '%s'", s);
}
static token *expect_ident(lower *L) {
    token *t = next(L);
    if (t->kind != TK_IDENT)
        fail_at(L, t, "expected a name");
    return t;
}

/* ---- symbols ------------------------------------------------------------------------ */

static sym *find_sym(lower *L, const char *s, int len) {
    for (int i = L->n_syms - 1; i >= 0; i--)
        if (L->syms[i].len == len && strncmp(L->syms[i].name, s, (size_t)len) == 0)
            return &L->syms[i];
    return NULL;
}

static sym *add_sym(lower *L, const token *name, sym_kind kind) {
    if (L->n_syms == L->cap_syms) {
        L->cap_syms = L->cap_syms ? 2 * L->cap_syms : 256;
        sym *grown = realloc(L->syms, (size_t)L->cap_syms * sizeof *grown);
        if (!grown)
            fail_at(L, name, "out of memory");
        L->syms = grown;
    }
    sym *s = &L->syms[L->n_syms++];
    *s = (sym){.name = name->s, .len = name->len, .kind = kind};
    return s;
}

/* ---- types ---------------------------------------------------------------------------- */

static val widen(lower *L, val a) {
    if (!varying(a.v))
        a.v = splat(L, a.v);
    return a;
}

/* A varying constant with the same value in every lane is uniform
 * (threadIdx.x % 1): keeping it scalar keeps loops over it uniform. */
static val fold_uniform(val a) {
    if (!varying(a.v) || !LLVMIsConstant(a.v) || LLVMIsUndef(a.v))
        return a;
    LLVMValueRef first = LLVMGetAggregateElement(a.v, 0);
    unsigned n = LLVMGetVectorSize(LLVMTypeOf(a.v));
    for (unsigned i = 1; i < n; i++)
        if (!first || LLVMGetAggregateElement(a.v, i) != first)
            return a;
    if (first)
        a.v = first;
    return a;
}

/* A type name at the cursor (with its qualifiers), or false. */
static bool type_name(lower *L, ty *out, bool *is_const) {
    static const char *const quals[] = {"const", "static", "__device__", "__forceinline__", "__shared__",
                                        "__restrict__", "inline", "volatile"};
    bool any = false;
    for (;;) {
        bool q = false;
        for (size_t i = 0; i < sizeof quals / sizeof *quals; i++)
            if (is(peek(L), quals[i])) {
                if (i == 0 && is_const)
                    *is_const = true;
                L->pos++, q = any = true;
                break;
            }
        if (!q)
            break;
    }
    token *t = peek(L);
    ty r;
    if (is(t, "float"))
        r = TY_FLOAT;
    else if (is(t, "int"))
        r = TY_INT;
    else if (is(t, "bool"))
        r = TY_BOOL;
    else if (is(t, "void"))
        r = TY_VOID;
    else if (is(t, "__half"))
        r = TY_HALF;
    else if (is(t, "__nv_bfloat16"))
        r = TY_BF16;
    else if (is(t, "unsigned"))
        r = TY_UINT;
    else if (is(t, "long"))
        r = TY_LL;
    else {
        if (any)
            fail_at(L, t, "expected a type");
        return false;
    }
    L->pos++;
    if (r == TY_UINT)
        accept(L, "int");
    if (r == TY_LL) {
        accept(L, "long");
        accept(L, "int");
    }
    if (is(peek(L), "const")) {
        L->pos++;
        if (is_const)
            *is_const = true;
    }
    *out = r;
    return true;
}

/* ---- conversions ----------------------------------------------------------------------- */

static LLVMValueRef bf16_to_f32(lower *L, LLVMValueRef bits) {
    bool v = varying(bits);
    LLVMValueRef w = LLVMBuildZExt(L->B, bits, type_of(L, TY_INT, v), "");
    w = LLVMBuildShl(L->B, w, const_as(LLVMTypeOf(w), 16), "");
    return LLVMBuildBitCast(L->B, w, type_of(L, TY_FLOAT, v), "");
}

/* Round to nearest even, NaN kept quiet (ir/half.h's rule). */
static LLVMValueRef f32_to_bf16(lower *L, LLVMValueRef x) {
    bool v = varying(x);
    LLVMTypeRef it = type_of(L, TY_INT, v);
    LLVMValueRef bits = LLVMBuildBitCast(L->B, x, it, "");
    LLVMValueRef hi = LLVMBuildLShr(L->B, bits, const_as(it, 16), "");
    LLVMValueRef odd = LLVMBuildAnd(L->B, hi, const_as(it, 1), "");
    LLVMValueRef r = LLVMBuildAdd(L->B, bits, const_as(it, 0x7FFF), "");
    r = LLVMBuildAdd(L->B, r, odd, "");
    r = LLVMBuildLShr(L->B, r, const_as(it, 16), "");
    LLVMValueRef nan = LLVMBuildFCmp(L->B, LLVMRealUNO, x, x, "");
    LLVMValueRef quiet = LLVMBuildOr(L->B, hi, const_as(it, 0x40), "");
    return LLVMBuildTrunc(L->B, LLVMBuildSelect(L->B, nan, quiet, r, ""), type_of(L, TY_BF16, v), "");
}

static val convert(lower *L, val a, ty to, const token *at) {
    if (a.t == to)
        return a;
    LLVMBuilderRef B = L->B;
    bool vary = varying(a.v);
    LLVMTypeRef T = type_of(L, to, vary);
    if (a.t == TY_HALF || a.t == TY_BF16) {
        val f = {TY_FLOAT, TY_VOID,
                 a.t == TY_HALF ? LLVMBuildFPExt(B, a.v, type_of(L, TY_FLOAT, vary), "") : bf16_to_f32(L, a.v), false};
        return convert(L, f, to, at);
    }
    if (to == TY_HALF || to == TY_BF16) {
        val f = convert(L, a, TY_FLOAT, at);
        return (val){to, TY_VOID, to == TY_HALF ? LLVMBuildFPTrunc(B, f.v, T, "") : f32_to_bf16(L, f.v), false};
    }
    if (a.t == TY_PTR || to == TY_PTR || a.t == TY_VOID || to == TY_VOID)
        fail_at(L, at, "cannot convert between these types");
    if (to == TY_BOOL)
        return (val){TY_BOOL, TY_VOID,
                     a.t == TY_FLOAT ? LLVMBuildFCmp(B, LLVMRealUNE, a.v, LLVMConstNull(LLVMTypeOf(a.v)), "")
                                     : LLVMBuildICmp(B, LLVMIntNE, a.v, LLVMConstNull(LLVMTypeOf(a.v)), ""), false};
    LLVMValueRef v;
    if (a.t == TY_FLOAT)
        v = to == TY_UINT ? LLVMBuildFPToUI(B, a.v, T, "") : LLVMBuildFPToSI(B, a.v, T, "");
    else if (to == TY_FLOAT)
        v = a.t == TY_INT || a.t == TY_LL ? LLVMBuildSIToFP(B, a.v, T, "") : LLVMBuildUIToFP(B, a.v, T, "");
    else if (LLVMTypeOf(a.v) == T)
        v = a.v; /* int <-> unsigned */
    else if (to == TY_LL)
        v = a.t == TY_INT ? LLVMBuildSExt(B, a.v, T, "") : LLVMBuildZExt(B, a.v, T, "");
    else if (a.t == TY_BOOL)
        v = LLVMBuildZExt(B, a.v, T, "");
    else
        v = LLVMBuildTrunc(B, a.v, T, "");
    return (val){to, TY_VOID, v, false};
}

/* The usual arithmetic conversions of C, for the types of the subset. */
static ty common(ty a, ty b) {
    if (a == TY_FLOAT || b == TY_FLOAT || a == TY_HALF || b == TY_HALF || a == TY_BF16 || b == TY_BF16)
        return TY_FLOAT;
    if (a == TY_LL || b == TY_LL)
        return TY_LL;
    if (a == TY_UINT || b == TY_UINT)
        return TY_UINT;
    return TY_INT;
}

/* ---- builtins --------------------------------------------------------------------------- */

/* A libm function float f(float), pure; lane by lane for a varying x. */
static LLVMValueRef libm(lower *L, const char *name, LLVMValueRef x) {
    if (varying(x)) {
        LLVMValueRef r = LLVMGetPoison(LLVMTypeOf(x));
        for (int i = 0; i < L->W; i++) {
            LLVMValueRef at = LLVMConstInt(L->i32, (unsigned long long)i, 0);
            r = LLVMBuildInsertElement(L->B, r, libm(L, name, LLVMBuildExtractElement(L->B, x, at, "")), at, "");
        }
        return r;
    }
    LLVMTypeRef ft = LLVMFunctionType(L->f32, &L->f32, 1, 0);
    LLVMValueRef fn = LLVMGetNamedFunction(L->M, name);
    if (!fn) {
        fn = LLVMAddFunction(L->M, name, ft);
        unsigned mem = LLVMGetEnumAttributeKindForName("memory", 6);
        unsigned nounwind = LLVMGetEnumAttributeKindForName("nounwind", 8);
        LLVMAddAttributeAtIndex(fn, LLVMAttributeFunctionIndex, LLVMCreateEnumAttribute(L->C, mem, 0));
        LLVMAddAttributeAtIndex(fn, LLVMAttributeFunctionIndex, LLVMCreateEnumAttribute(L->C, nounwind, 0));
    }
    return LLVMBuildCall2(L->B, ft, fn, &x, 1, "");
}

static val expr(lower *L);
static val assign(lower *L);
static void go_to(lower *L, LLVMBasicBlockRef bb);

static val as_float(lower *L, val a, const token *at) { return convert(L, a, TY_FLOAT, at); }

static val fval(LLVMValueRef v) { return (val){TY_FLOAT, TY_VOID, v, false}; }

/* mx_block_reduce(v, red, max): the sum (or max) of v over the block's
 * lanes, uniform; a block of one thread has v itself. */
static val block_reduce(lower *L, val v, val max, const token *at) {
    if (L->W == 1)
        return v;
    if (divergent(L))
        fail_at(L, at, "a block reduction that only some lanes reach");
    max = convert(L, max, TY_BOOL, at);
    if (varying(max.v))
        fail_at(L, at, "a reduction whose kind differs between lanes");
    LLVMValueRef x = widen(L, v).v, start = LLVMConstReal(L->f32, 0.0), y = x;
    if (L->base_mask) { /* lanes past the threads count as 0 (a sum) or -inf (a max) */
        x = LLVMBuildSelect(L->B, L->base_mask, x, LLVMConstNull(LLVMTypeOf(x)), "");
        y = LLVMBuildSelect(L->B, L->base_mask, y, const_as(LLVMTypeOf(y), -INFINITY), "");
    }
    LLVMValueRef add_args[2] = {start, x};
    unsigned id = LLVMLookupIntrinsicID("llvm.vector.reduce.fadd", 23);
    LLVMTypeRef over = LLVMTypeOf(x);
    LLVMValueRef sum = LLVMBuildCall2(L->B, LLVMIntrinsicGetType(L->C, id, &over, 1),
                                      LLVMGetIntrinsicDeclaration(L->M, id, &over, 1), add_args, 2, "");
    LLVMSetFastMathFlags(sum, LLVMFastMathAllowReassoc);
    LLVMValueRef most = intrinsic(L, "llvm.vector.reduce.fmax", &y, 1);
    return fval(LLVMBuildSelect(L->B, max.v, most, sum, ""));
}

/* Calls to the functions of the subset that are not defined in the text. */
static bool builtin_call(lower *L, const token *name, val *out) {
    static const char *const names[] = {"expf", "exp2f", "logf", "log1pf", "sqrtf", "tanhf", "erff",
                                        "fmaxf", "fminf", "min", "max", "__int_as_float", "__half2float",
                                        "__bfloat162float", "__float2half_rn", "__float2bfloat16_rn",
                                        "mx_block_reduce", "__syncthreads", "__syncwarp", "fabsf"};
    int which = -1;
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (is(name, names[i]))
            which = (int)i;
    if (which < 0)
        return false;
    val a[4];
    int n = 0;
    if (!is(peek(L), ")"))
        do {
            if (n == 4)
                fail_at(L, name, "too many arguments");
            a[n++] = assign(L);
        } while (accept(L, ","));
    expect(L, ")");
    static const int arity[] = {1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 1, 1, 1, 1, 1, 3, 0, -1, 1};
    if (arity[which] >= 0 && n != arity[which])
        fail_at(L, name, "expects %d arguments", arity[which]);
    if (n == 2 && varying(a[0].v) != varying(a[1].v))
        a[0] = widen(L, a[0]), a[1] = widen(L, a[1]);
    LLVMValueRef args[2];
    switch (which) {
    case 0: { /* expf(x) = 2^(x log2 e) */
        LLVMValueRef x = as_float(L, a[0], name).v;
        *out = fval(mx_lower_inline_math(L, 0, LLVMBuildFMul(L->B, x, const_as(LLVMTypeOf(x), 1.4426950408889634), "")));
        break;
    }
    case 1: *out = fval(mx_lower_inline_math(L, 0, as_float(L, a[0], name).v)); break;
    case 2: args[0] = as_float(L, a[0], name).v, *out = fval(intrinsic(L, "llvm.log", args, 1)); break;
    case 3: *out = fval(mx_lower_inline_math(L, 1, as_float(L, a[0], name).v)); break;
    case 4: args[0] = as_float(L, a[0], name).v, *out = fval(intrinsic(L, "llvm.sqrt", args, 1)); break;
    case 5: *out = fval(libm(L, "tanhf", as_float(L, a[0], name).v)); break;
    case 6: *out = fval(libm(L, "erff", as_float(L, a[0], name).v)); break;
    case 7:
    case 8:
        args[0] = as_float(L, a[0], name).v, args[1] = as_float(L, a[1], name).v;
        *out = fval(intrinsic(L, which == 7 ? "llvm.maxnum" : "llvm.minnum", args, 2));
        break;
    case 9:
    case 10: {
        ty t = common(a[0].t, a[1].t);
        val x = convert(L, a[0], t, name), y = convert(L, a[1], t, name);
        LLVMValueRef lt = t == TY_FLOAT ? LLVMBuildFCmp(L->B, LLVMRealOLT, x.v, y.v, "")
                                        : LLVMBuildICmp(L->B, t == TY_UINT ? LLVMIntULT : LLVMIntSLT, x.v, y.v, "");
        *out = (val){t, TY_VOID, which == 9 ? LLVMBuildSelect(L->B, lt, x.v, y.v, "")
                                            : LLVMBuildSelect(L->B, lt, y.v, x.v, ""), false};
        break;
    }
    case 11: {
        LLVMValueRef bits = convert(L, a[0], TY_INT, name).v;
        *out = fval(LLVMBuildBitCast(L->B, bits, type_of(L, TY_FLOAT, varying(bits)), ""));
        break;
    }
    case 12:
    case 13: *out = as_float(L, a[0], name); break;
    case 14: *out = convert(L, a[0], TY_HALF, name); break;
    case 15: *out = convert(L, a[0], TY_BF16, name); break;
    case 16: *out = block_reduce(L, as_float(L, a[0], name), a[2], name); break;
    case 17:
    case 18: *out = (val){TY_VOID, TY_VOID, NULL, false}; break;
    case 19: args[0] = as_float(L, a[0], name).v, *out = fval(intrinsic(L, "llvm.fabs", args, 1)); break;
    }
    return true;
}

/* ---- expressions ------------------------------------------------------------------------- */

/* Where an lvalue lives: one address of a t (uniform), one address of a
 * <W x t> (a varying variable, or a per-lane array at a uniform index), or
 * a vector of addresses (gathered and scattered). */
typedef enum { R_VALUE, R_ONE, R_LANES, R_EACH } ref_kind;

typedef struct {
    ref_kind k;
    LLVMValueRef addr;
    ty t, elem;
    val v;     /* R_VALUE */
    sym *var;  /* a variable (not memory) */
} ref;

static val load_ref(lower *L, ref r) {
    switch (r.k) {
    case R_VALUE: return r.v;
    case R_ONE:
        if (!r.var)
            mx_lower_memory_access(L, r.addr);
        return (val){r.t, r.elem, LLVMBuildLoad2(L->B, llvm_type(L, r.t), r.addr, ""), false};
    case R_LANES: return (val){r.t, r.elem, LLVMBuildLoad2(L->B, type_of(L, r.t, true), r.addr, ""), false};
    case R_EACH: return (val){r.t, r.elem, mx_lower_lane_memory(L, r.addr, NULL, type_of(L, r.t, true)), false};
    }
    return r.v;
}

static ref rvalue(val v) { return (ref){.k = R_VALUE, .t = v.t, .elem = v.elem, .v = v}; }

static bool is_varying_var(lower *L, int decl) {
    for (int i = 0; i < L->n_varying; i++)
        if (L->varying_vars[i] == decl)
            return true;
    return false;
}

/* A uniform variable is given a value that differs between lanes, or is
 * assigned by only some: it is varying; the kernel is lowered again. */
static void make_varying(lower *L, sym *var) {
    if (L->n_varying == L->cap_varying) {
        L->cap_varying = L->cap_varying ? 2 * L->cap_varying : 64;
        int *grown = realloc(L->varying_vars, (size_t)L->cap_varying * sizeof *grown);
        if (!grown) {
            L->status = mx_fail(L->d, MX_ERR_NOMEM, "cpu codegen: out of memory");
            longjmp(L->fail, 1);
        }
        L->varying_vars = grown;
    }
    L->varying_vars[L->n_varying++] = var->decl;
    longjmp(L->retry, 1);
}

static void store_ref(lower *L, ref r, val v, const token *at) {
    if (r.k == R_VALUE)
        fail_at(L, at, "not assignable");
    v = r.t == TY_PTR ? v : convert(L, v, r.t, at);
    if (r.k == R_ONE && r.var && (varying(v.v) || L->mask != r.var->mask))
        make_varying(L, r.var);
    if (r.k == R_ONE && (r.var || (!varying(v.v) && !divergent(L)))) {
        if (!r.var) {
            mx_lower_memory_access(L, r.addr);
            mx_lower_count_store(L, r.addr);
        }
        LLVMBuildStore(L->B, v.v, r.addr);
        return;
    }
    v = widen(L, v);
    if (r.k == R_LANES) {
        LLVMValueRef x = v.v;
        if (L->mask)
            x = LLVMBuildSelect(L->B, L->mask, x, LLVMBuildLoad2(L->B, LLVMTypeOf(x), r.addr, ""), "");
        LLVMBuildStore(L->B, x, r.addr);
        return;
    }
    mx_lower_lane_memory(L, r.k == R_ONE ? splat(L, r.addr) : r.addr, v.v, LLVMTypeOf(v.v));
}

static val binary_op(lower *L, const token *op, val a, val b);

static ref postfix(lower *L);
static void block(lower *L);

/* Whether alloca a holds a varying value. */
static bool varying_type(LLVMValueRef a) { return LLVMGetTypeKind(LLVMGetAllocatedType(a)) == LLVMVectorTypeKind; }

/* A helper called with varying arguments: its body lowered again in place,
 * over the lanes (the scalar function stays for uniform calls). */
static val inline_call(lower *L, sym *f, val *args) {
    int pos = L->pos, scope = L->n_syms, loops = L->n_loops;
    LLVMValueRef slot = L->ret_slot, mask = L->ret_mask;
    LLVMBasicBlockRef to = L->ret_to;
    ty rt = L->ret_t;
    bool inlining = L->inlining;
    for (int i = 0; i < f->n_params; i++) {
        sym *p = add_sym(L, f->names[i], S_VAR);
        p->t = args[i].t, p->elem = args[i].elem, p->decl = (int)(f->names[i] - L->tk.t), p->mask = L->mask;
        bool vary = varying(args[i].v) || is_varying_var(L, p->decl);
        p->v = entry_alloca(L, type_of(L, p->t, vary), NULL);
        LLVMBuildStore(L->B, vary ? widen(L, args[i]).v : args[i].v, p->v);
    }
    L->ret_t = f->t, L->ret_mask = L->mask, L->inlining = true, L->n_loops = 0;
    L->ret_slot = f->t == TY_VOID ? NULL : entry_alloca(L, type_of(L, f->t, true), NULL);
    L->ret_to = new_block(L, "inlined");
    L->pos = f->body;
    expect(L, "{");
    block(L);
    go_to(L, L->ret_to);
    val r = {f->t, TY_VOID, L->ret_slot ? LLVMBuildLoad2(L->B, type_of(L, f->t, true), L->ret_slot, "") : NULL, false};
    L->pos = pos, L->n_syms = scope, L->n_loops = loops;
    L->ret_slot = slot, L->ret_mask = mask, L->ret_to = to, L->ret_t = rt, L->inlining = inlining;
    return r;
}

static ref primary(lower *L) {
    token *t = next(L);
    if (t->kind == TK_NUM) {
        if (t->is_float)
            return rvalue(fval(LLVMConstReal(L->f32, t->f)));
        ty k = t->is_long ? TY_LL : t->is_unsigned || t->i > 0x7FFFFFFFull ? TY_UINT : TY_INT;
        if (t->i > 0xFFFFFFFFull)
            k = TY_LL;
        return rvalue((val){k, TY_VOID, LLVMConstInt(llvm_type(L, k), t->i, 0), false});
    }
    if (is(t, "(")) {
        val v = expr(L);
        expect(L, ")");
        return rvalue(v);
    }
    if (t->kind != TK_IDENT)
        fail_at(L, t, "expected an expression");
    if (is(t, "true") || is(t, "false"))
        return rvalue((val){TY_BOOL, TY_VOID, LLVMConstInt(L->i1, is(t, "true"), 0), false});
    if (is(t, "threadIdx") || is(t, "blockIdx") || is(t, "blockDim") || is(t, "gridDim")) {
        expect(L, ".");
        token *c = expect_ident(L);
        bool x = is(c, "x");
        if (!L->in_kernel && !is(t, "blockDim"))
            fail_at(L, t, "block coordinates outside a kernel");
        unsigned long long k = is(t, "blockDim") || is(t, "gridDim") ? 1 : 0;
        if (x && is(t, "blockIdx"))
            return rvalue(L->block_idx);
        if (x && is(t, "gridDim"))
            return rvalue(L->grid_dim);
        if (x && is(t, "blockDim"))
            k = (unsigned long long)L->threads;
        if (x && is(t, "threadIdx") && L->W > 1) { /* the lane */
            LLVMValueRef lanes[64];
            for (int i = 0; i < L->W; i++)
                lanes[i] = LLVMConstInt(L->i32, (unsigned long long)i, 0);
            return rvalue((val){TY_UINT, TY_VOID, LLVMConstVector(lanes, (unsigned)L->W), false});
        }
        return rvalue((val){TY_UINT, TY_VOID, LLVMConstInt(L->i32, k, 0), false});
    }
    if (peek(L)->kind == TK_PUNCT && is(peek(L), "(")) {
        L->pos++;
        val out;
        if (builtin_call(L, t, &out))
            return rvalue(out);
        sym *f = find_sym(L, t->s, t->len);
        if (!f || f->kind != S_FN)
            fail_at(L, t, "unknown function");
        val args[8];
        int n = 0;
        bool vary = false;
        if (!is(peek(L), ")"))
            do {
                if (n == f->n_params)
                    fail_at(L, t, "too many arguments");
                args[n] = convert(L, assign(L), f->params[n], t);
                vary |= varying(args[n].v);
                n++;
            } while (accept(L, ","));
        expect(L, ")");
        if (n != f->n_params)
            fail_at(L, t, "expects %d arguments", f->n_params);
        if (vary)
            return rvalue(inline_call(L, f, args));
        for (int i = 0; i < n; i++)
            if (args[i].t == TY_PTR) { /* memory this function may read or write */
                mx_lower_memory_access(L, NULL);
                mx_lower_count_store(L, NULL);
            }
        LLVMValueRef vs[8];
        for (int i = 0; i < n; i++)
            vs[i] = args[i].v;
        return rvalue((val){f->t, TY_VOID, LLVMBuildCall2(L->B, LLVMGlobalGetValueType(f->v), f->v, vs, (unsigned)n, ""), false});
    }
    sym *s = find_sym(L, t->s, t->len);
    if (!s)
        fail_at(L, t, "unknown name");
    switch (s->kind) {
    case S_VAL: return rvalue((val){s->t, s->elem, s->v, s->lanes});
    case S_VAR:
        return (ref){.k = varying_type(s->v) ? R_LANES : R_ONE, .addr = s->v, .t = s->t, .elem = s->elem, .var = s};
    case S_ARR: return rvalue((val){TY_PTR, s->elem, s->v, s->lanes});
    default: fail_at(L, t, "a function is not a value");
    }
}

/* base[i]: one address, a per-lane row, or an address per lane. */
static ref element(lower *L, val base, val i) {
    LLVMTypeRef et = llvm_type(L, base.elem);
    if (base.lanes && !varying(i.v))
        return (ref){.k = R_LANES, .t = base.elem,
                     .addr = LLVMBuildInBoundsGEP2(L->B, type_of(L, base.elem, true), base.v, &i.v, 1, "")};
    if (base.lanes) { /* lane k's element i is at i * W + k */
        LLVMValueRef lanes[64];
        for (int k = 0; k < L->W; k++)
            lanes[k] = LLVMConstInt(L->i64, (unsigned long long)k, 0);
        LLVMValueRef at = LLVMBuildMul(L->B, i.v, const_as(LLVMTypeOf(i.v), L->W), "");
        at = LLVMBuildAdd(L->B, at, LLVMConstVector(lanes, (unsigned)L->W), "");
        return (ref){.k = R_EACH, .t = base.elem, .addr = LLVMBuildInBoundsGEP2(L->B, et, base.v, &at, 1, "")};
    }
    LLVMValueRef addr = LLVMBuildInBoundsGEP2(L->B, et, base.v, &i.v, 1, "");
    return (ref){.k = varying(addr) ? R_EACH : R_ONE, .addr = addr, .t = base.elem};
}

static ref postfix(lower *L) {
    ref r = primary(L);
    for (;;) {
        token *t = peek(L);
        if (is(t, "[")) {
            L->pos++;
            val base = load_ref(L, r);
            if (base.t != TY_PTR)
                fail_at(L, t, "indexing a value that is not an array or buffer");
            val i = convert(L, expr(L), TY_LL, t);
            expect(L, "]");
            r = element(L, base, i);
        } else if (is(t, "++") || is(t, "--")) {
            L->pos++;
            val old = load_ref(L, r);
            val one = {TY_INT, TY_VOID, LLVMConstInt(L->i32, 1, 0), false};
            token op = *t;
            op.len = 1;
            store_ref(L, r, binary_op(L, &op, old, one), t);
            r = rvalue(old);
        } else {
            return r;
        }
    }
}

static val unary(lower *L) {
    token *t = peek(L);
    if (is(t, "-")) {
        L->pos++;
        val a = unary(L);
        if (a.t == TY_HALF || a.t == TY_BF16)
            a = as_float(L, a, t);
        if (a.t == TY_FLOAT)
            return fval(LLVMBuildFNeg(L->B, a.v, ""));
        a = convert(L, a, common(a.t, TY_INT), t);
        return (val){a.t, TY_VOID, LLVMBuildNeg(L->B, a.v, ""), false};
    }
    if (is(t, "+")) {
        L->pos++;
        return unary(L);
    }
    if (is(t, "!")) {
        L->pos++;
        val a = convert(L, unary(L), TY_BOOL, t);
        return (val){TY_BOOL, TY_VOID, LLVMBuildNot(L->B, a.v, ""), false};
    }
    if (is(t, "~")) {
        L->pos++;
        val a = unary(L);
        a = convert(L, a, common(a.t, TY_INT), t);
        return (val){a.t, TY_VOID, LLVMBuildNot(L->B, a.v, ""), false};
    }
    if (is(t, "(")) { /* a cast? */
        int save = L->pos;
        L->pos++;
        ty to;
        bool c = false;
        if (type_name(L, &to, &c) && !is(peek(L), "*")) {
            expect(L, ")");
            return convert(L, unary(L), to, t);
        }
        L->pos = save;
    }
    return load_ref(L, postfix(L));
}

static int precedence(const token *t) {
    static const struct {
        const char *op;
        int prec;
    } table[] = {{"||", 1}, {"&&", 2}, {"|", 3},  {"^", 4},  {"&", 5},  {"==", 6}, {"!=", 6},
                 {"<", 7},  {">", 7},  {"<=", 7}, {">=", 7}, {"<<", 8}, {">>", 8}, {"+", 9},
                 {"-", 9},  {"*", 10}, {"/", 10}, {"%", 10}};
    if (t->kind != TK_PUNCT)
        return 0;
    for (size_t i = 0; i < sizeof table / sizeof *table; i++)
        if (is(t, table[i].op))
            return table[i].prec;
    return 0;
}

/* x / y or x % y of 32-bit lanes by a divisor not known when lowering: a
 * vector has no integer division (it would be W scalar ones), but f64
 * division then truncation is exact for 32-bit operands: a quotient n
 * that a / b falls short of is at least 1 / |b| away, more than half a
 * unit in the last place of n (|n| <= 2^32 / |b|). */
static LLVMValueRef lane_divide(lower *L, LLVMValueRef x, LLVMValueRef y, bool is_unsigned, bool remainder) {
    LLVMBuilderRef B = L->B;
    LLVMTypeRef dt = LLVMVectorType(LLVMDoubleTypeInContext(L->C), (unsigned)L->W), it = LLVMTypeOf(x);
    LLVMValueRef fx = is_unsigned ? LLVMBuildUIToFP(B, x, dt, "") : LLVMBuildSIToFP(B, x, dt, "");
    LLVMValueRef fy = is_unsigned ? LLVMBuildUIToFP(B, y, dt, "") : LLVMBuildSIToFP(B, y, dt, "");
    LLVMValueRef fq = LLVMBuildFDiv(B, fx, fy, "");
    LLVMValueRef q = is_unsigned ? LLVMBuildFPToUI(B, fq, it, "") : LLVMBuildFPToSI(B, fq, it, "");
    return remainder ? LLVMBuildSub(B, x, LLVMBuildMul(B, q, y, ""), "") : q;
}

static val binary_op(lower *L, const token *op, val a, val b) {
    LLVMBuilderRef B = L->B;
    if (is(op, "&&") || is(op, "||")) {
        val x = convert(L, a, TY_BOOL, op), y = convert(L, b, TY_BOOL, op);
        if (varying(x.v) != varying(y.v))
            x = widen(L, x), y = widen(L, y);
        return (val){TY_BOOL, TY_VOID, is(op, "&&") ? LLVMBuildAnd(B, x.v, y.v, "") : LLVMBuildOr(B, x.v, y.v, ""), false};
    }
    if (a.lanes || b.lanes)
        fail_at(L, op, "arithmetic on a per-lane array");
    if (a.t == TY_PTR && (is(op, "+") || is(op, "-"))) {
        val i = convert(L, b, TY_LL, op);
        LLVMValueRef off = is(op, "-") ? LLVMBuildNeg(B, i.v, "") : i.v;
        return (val){TY_PTR, a.elem, LLVMBuildInBoundsGEP2(B, llvm_type(L, a.elem), a.v, &off, 1, ""), false};
    }
    if (a.t == TY_PTR || b.t == TY_PTR || a.t == TY_VOID || b.t == TY_VOID)
        fail_at(L, op, "operands of this type are not supported");
    if (varying(a.v) != varying(b.v))
        a = widen(L, a), b = widen(L, b);
    ty t = common(a.t, b.t);
    bool shift = is(op, "<<") || is(op, ">>");
    if (shift)
        t = common(a.t, TY_INT);
    val x = convert(L, a, t, op), y = convert(L, b, t, op);
    bool f = t == TY_FLOAT, u = t == TY_UINT;
    const char *cmp[] = {"==", "!=", "<", ">", "<=", ">="};
    static const LLVMRealPredicate fp[] = {LLVMRealOEQ, LLVMRealUNE, LLVMRealOLT, LLVMRealOGT, LLVMRealOLE, LLVMRealOGE};
    static const LLVMIntPredicate sp[] = {LLVMIntEQ, LLVMIntNE, LLVMIntSLT, LLVMIntSGT, LLVMIntSLE, LLVMIntSGE};
    static const LLVMIntPredicate up[] = {LLVMIntEQ, LLVMIntNE, LLVMIntULT, LLVMIntUGT, LLVMIntULE, LLVMIntUGE};
    for (int i = 0; i < 6; i++)
        if (is(op, cmp[i]))
            return (val){TY_BOOL, TY_VOID,
                         f ? LLVMBuildFCmp(B, fp[i], x.v, y.v, "") : LLVMBuildICmp(B, u ? up[i] : sp[i], x.v, y.v, ""), false};
    LLVMValueRef v;
    char c = op->s[0];
    if (f) {
        switch (c) {
        case '+': v = flagged(LLVMBuildFAdd(B, x.v, y.v, "")); break;
        case '-': v = flagged(LLVMBuildFSub(B, x.v, y.v, "")); break;
        case '*': v = flagged(LLVMBuildFMul(B, x.v, y.v, "")); break;
        case '/': v = flagged(LLVMBuildFDiv(B, x.v, y.v, "")); break;
        default: fail_at(L, op, "not a float operator");
        }
        return fval(v);
    }
    bool nsw = !u; /* signed overflow is undefined in C: say so to LLVM */
    if ((c == '/' || c == '%') && varying(x.v) && !LLVMIsConstant(y.v) && (t == TY_INT || t == TY_UINT))
        return (val){t, TY_VOID, lane_divide(L, x.v, y.v, u, c == '%'), false};
    switch (c) {
    case '+': v = nsw ? LLVMBuildNSWAdd(B, x.v, y.v, "") : LLVMBuildAdd(B, x.v, y.v, ""); break;
    case '-': v = nsw ? LLVMBuildNSWSub(B, x.v, y.v, "") : LLVMBuildSub(B, x.v, y.v, ""); break;
    case '*': v = nsw ? LLVMBuildNSWMul(B, x.v, y.v, "") : LLVMBuildMul(B, x.v, y.v, ""); break;
    case '/': v = u ? LLVMBuildUDiv(B, x.v, y.v, "") : LLVMBuildSDiv(B, x.v, y.v, ""); break;
    case '%': v = u ? LLVMBuildURem(B, x.v, y.v, "") : LLVMBuildSRem(B, x.v, y.v, ""); break;
    case '&': v = LLVMBuildAnd(B, x.v, y.v, ""); break;
    case '|': v = LLVMBuildOr(B, x.v, y.v, ""); break;
    case '^': v = LLVMBuildXor(B, x.v, y.v, ""); break;
    case '<': v = LLVMBuildShl(B, x.v, y.v, ""); break;
    case '>': v = u ? LLVMBuildLShr(B, x.v, y.v, "") : LLVMBuildAShr(B, x.v, y.v, ""); break;
    default: fail_at(L, op, "unknown operator");
    }
    return (val){t, TY_VOID, v, false};
}

static val binary(lower *L, int min_prec) {
    val a = unary(L);
    for (;;) {
        token *op = peek(L);
        int p = precedence(op);
        if (p < min_prec || p == 0)
            return a;
        L->pos++;
        val b = binary(L, p + 1);
        a = fold_uniform(binary_op(L, op, a, b));
    }
}

static val conditional(lower *L) {
    val c = binary(L, 1);
    token *q = peek(L);
    if (!accept(L, "?"))
        return c;
    c = convert(L, c, TY_BOOL, q);
    val a = assign(L);
    expect(L, ":");
    val b = conditional(L);
    ty t = a.t == TY_PTR ? TY_PTR : common(a.t, b.t);
    if (t != TY_PTR)
        a = convert(L, a, t, q), b = convert(L, b, t, q);
    if (varying(c.v) || varying(a.v) != varying(b.v))
        a = widen(L, a), b = widen(L, b);
    return (val){t, a.elem, LLVMBuildSelect(L->B, c.v, a.v, b.v, ""), false};
}

/* Whether the cursor is at `name ([...])* op=`: an assignment, whose left
 * side is an lvalue (decided on the tokens, before building anything). */
static bool at_assignment(lower *L) {
    int k = 0;
    if (peek(L)->kind != TK_IDENT)
        return false;
    for (k = 1; is(peek_at(L, k), "[");) {
        int depth = 0;
        do {
            token *t = peek_at(L, k++);
            if (t->kind == TK_EOF)
                return false;
            depth += is(t, "[") - is(t, "]");
        } while (depth > 0);
    }
    static const char *const ops[] = {"=", "+=", "-=", "*=", "/=", "%=", "&=", "|=", "<<=", ">>="};
    for (size_t i = 0; i < sizeof ops / sizeof *ops; i++)
        if (is(peek_at(L, k), ops[i]))
            return true;
    return false;
}

static val assign(lower *L) {
    if (!at_assignment(L))
        return conditional(L);
    ref r = postfix(L);
    token *op = next(L);
    val v = assign(L);
    if (op->len > 1) {
        token bop = *op;
        bop.len = op->len - 1;
        v = binary_op(L, &bop, load_ref(L, r), v);
    }
    store_ref(L, r, v, op);
    if (r.var || r.k == R_LANES)
        return load_ref(L, r);
    return r.t == TY_PTR ? v : convert(L, v, r.t, op); /* not read back from memory (a store tile may hold it) */
}

static val expr(lower *L) {
    val v = assign(L);
    while (accept(L, ","))
        v = assign(L);
    return v;
}

/* ---- statements ------------------------------------------------------------------------- */

static void go_to(lower *L, LLVMBasicBlockRef bb) {
    if (!LLVMGetBasicBlockTerminator(LLVMGetInsertBlock(L->B)))
        LLVMBuildBr(L->B, bb);
    LLVMPositionBuilderAtEnd(L->B, bb);
}

/* After return, break or continue: later statements go to a block nobody reaches. */
static void dead_end(lower *L) { LLVMPositionBuilderAtEnd(L->B, new_block(L, "dead")); }

static void statement(lower *L);

static int64_t const_int(lower *L, const token *at, val v) {
    if (!LLVMIsAConstantInt(v.v))
        fail_at(L, at, "an array size must be a constant");
    return LLVMConstIntGetSExtValue(v.v);
}

/* One declarator of a declaration of base type t. */
static void declarator(lower *L, ty t, bool is_const) {
    bool pointer = false;
    while (accept(L, "*")) {
        pointer = true;
        is_const = false;
        while (is(peek(L), "const") || is(peek(L), "__restrict__"))
            is_const |= is(next(L), "const");
    }
    token *name = expect_ident(L);
    if (accept(L, "[")) {
        token *at = peek(L);
        int64_t n = const_int(L, at, expr(L));
        expect(L, "]");
        if (n <= 0 || n > (1 << 20))
            fail_at(L, at, "array size %lld out of range", (long long)n);
        sym *s = add_sym(L, name, S_ARR);
        s->elem = t;
        s->lanes = L->W > 1; /* a thread's own array */
        s->v = entry_alloca(L, type_of(L, t, s->lanes), LLVMConstInt(L->i64, (unsigned long long)n, 0));
        return;
    }
    ty vt = pointer ? TY_PTR : t;
    val init = {TY_VOID, TY_VOID, NULL, false};
    if (accept(L, "=")) {
        init = assign(L);
        if (!pointer)
            init = convert(L, init, t, name);
        else if (init.t != TY_PTR)
            fail_at(L, name, "a pointer needs a pointer value");
    }
    if (init.lanes)
        fail_at(L, name, "a pointer to a per-lane array");
    if (is_const && init.v) {
        sym *s = add_sym(L, name, S_VAL);
        s->t = vt, s->elem = pointer ? t : TY_VOID, s->v = init.v;
        return;
    }
    sym *s = add_sym(L, name, S_VAR);
    s->t = vt, s->elem = pointer ? t : TY_VOID;
    s->decl = (int)(name - L->tk.t), s->mask = L->mask;
    bool vary = init.v && varying(init.v);
    if (L->W > 1 && (vary || is_varying_var(L, s->decl)))
        vary = true, init = init.v ? widen(L, init) : init;
    s->v = entry_alloca(L, type_of(L, vt, vary), NULL);
    if (init.v)
        LLVMBuildStore(L->B, init.v, s->v);
}

static bool declaration(lower *L) {
    int save = L->pos;
    ty t;
    bool is_const = false;
    if (!type_name(L, &t, &is_const))
        return false;
    if (!is(peek(L), "*") && peek(L)->kind != TK_IDENT) { /* not a declaration after all */
        L->pos = save;
        return false;
    }
    do
        declarator(L, t, is_const);
    while (accept(L, ","));
    expect(L, ";");
    return true;
}

static void block(lower *L) {
    int scope = L->n_syms;
    while (!accept(L, "}")) {
        if (peek(L)->kind == TK_EOF)
            fail_at(L, peek(L), "unterminated block");
        statement(L);
    }
    L->n_syms = scope;
}

static LLVMValueRef any_lane(lower *L, LLVMValueRef mask) {
    LLVMValueRef bits = LLVMBuildBitCast(L->B, mask, LLVMIntTypeInContext(L->C, (unsigned)L->W), "");
    return LLVMBuildICmp(L->B, LLVMIntNE, bits, LLVMConstNull(LLVMTypeOf(bits)), "");
}

/* if (c) with c differing between lanes: each arm over its lanes, skipped
 * when it has none. */
static void masked_if(lower *L, LLVMValueRef c) {
    LLVMValueRef outer = L->mask;
    for (int arm = 0; arm < 2; arm++) {
        if (arm == 1 && !accept(L, "else"))
            break;
        LLVMValueRef m = arm ? LLVMBuildNot(L->B, c, "") : c;
        if (outer)
            m = LLVMBuildAnd(L->B, outer, m, "");
        LLVMBasicBlockRef run = new_block(L, "lanes.then"), done = new_block(L, "lanes.end");
        LLVMBuildCondBr(L->B, any_lane(L, m), run, done);
        LLVMPositionBuilderAtEnd(L->B, run);
        L->mask = m;
        statement(L);
        L->mask = outer;
        go_to(L, done);
    }
}

/* llvm.loop metadata on the loop's back edge: unroll it whole. */
static void unroll_fully(lower *L, LLVMValueRef back) {
    LLVMMetadataRef self = LLVMTemporaryMDNode(L->C, NULL, 0);
    LLVMMetadataRef full = LLVMMDStringInContext2(L->C, "llvm.loop.unroll.full", 21);
    LLVMMetadataRef hint = LLVMMDNodeInContext2(L->C, &full, 1);
    LLVMMetadataRef ops[2] = {self, hint};
    LLVMMetadataRef loop = LLVMMDNodeInContext2(L->C, ops, 2);
    LLVMMetadataReplaceAllUsesWith(self, loop);
    LLVMSetMetadata(back, LLVMGetMDKindIDInContext(L->C, "llvm.loop", 9), LLVMMetadataAsValue(L->C, loop));
}

static void statement(lower *L) {
    token *t = peek(L);
    if (accept(L, "{")) {
        block(L);
    } else if (accept(L, ";")) {
    } else if (accept(L, "if")) {
        expect(L, "(");
        val c = convert(L, expr(L), TY_BOOL, t);
        expect(L, ")");
        if (varying(c.v)) {
            masked_if(L, c.v);
            return;
        }
        LLVMBasicBlockRef yes = new_block(L, "then"), no = new_block(L, "else"), done = new_block(L, "endif");
        LLVMBuildCondBr(L->B, c.v, yes, no);
        LLVMPositionBuilderAtEnd(L->B, yes);
        statement(L);
        go_to(L, done);
        LLVMPositionBuilderAtEnd(L->B, no);
        if (accept(L, "else"))
            statement(L);
        go_to(L, done);
    } else if (accept(L, "pragma")) { /* unroll the loop that follows */
        L->unroll = true;
        statement(L);
    } else if (accept(L, "for") || is(t, "while")) {
        bool unroll = L->unroll;
        L->unroll = false;
        bool is_while = is(t, "while");
        if (is_while)
            L->pos++;
        int scope = L->n_syms;
        expect(L, "(");
        if (!is_while && !declaration(L)) {
            if (!accept(L, ";")) {
                expr(L);
                expect(L, ";");
            }
        }
        LLVMBasicBlockRef cond = new_block(L, "for.cond"), body = new_block(L, "for.body"),
                          step = new_block(L, "for.step"), done = new_block(L, "for.end");
        /* across lanes, a condition that differs between them runs the loop
         * until no lane is left; its lanes are kept in `running` */
        LLVMValueRef outer = L->mask, running = NULL, active = NULL;
        if (L->W > 1) {
            running = entry_alloca(L, LLVMVectorType(L->i1, (unsigned)L->W), NULL);
            LLVMBuildStore(L->B, outer ? outer : all_lanes(L), running);
        }
        go_to(L, cond);
        if (!is(peek(L), ";") && !is(peek(L), ")")) {
            val c = convert(L, expr(L), TY_BOOL, t);
            if (varying(c.v)) {
                active = LLVMBuildAnd(L->B, LLVMBuildLoad2(L->B, LLVMTypeOf(c.v), running, ""), c.v, "");
                LLVMBuildCondBr(L->B, any_lane(L, active), body, done);
                L->mask = active;
            } else {
                LLVMBuildCondBr(L->B, c.v, body, done);
            }
        } else {
            LLVMBuildBr(L->B, body);
        }
        int step_at = -1;
        if (!is_while) {
            expect(L, ";");
            step_at = L->pos;
            int depth = 0; /* skip the step: it is built after the body */
            while (depth > 0 || !is(peek(L), ")")) {
                if (peek(L)->kind == TK_EOF)
                    fail_at(L, t, "unterminated for");
                depth += is(peek(L), "(") - is(peek(L), ")");
                L->pos++;
            }
        }
        expect(L, ")");
        if (L->n_loops == (int)(sizeof L->brk / sizeof *L->brk))
            fail_at(L, t, "loops nest too deep");
        L->brk[L->n_loops] = done, L->cont[L->n_loops] = step, L->loop_mask[L->n_loops] = L->mask;
        L->whole[L->n_loops++] = unroll;
        LLVMPositionBuilderAtEnd(L->B, body);
        statement(L);
        L->n_loops--;
        go_to(L, step);
        if (step_at >= 0 && !is(&L->tk.t[step_at], ")")) {
            int end = L->pos;
            L->pos = step_at;
            expr(L);
            L->pos = end;
        }
        if (active)
            LLVMBuildStore(L->B, active, running);
        if (!LLVMGetBasicBlockTerminator(LLVMGetInsertBlock(L->B))) {
            LLVMValueRef back = LLVMBuildBr(L->B, cond);
            if (unroll)
                unroll_fully(L, back);
        }
        go_to(L, cond);
        LLVMPositionBuilderAtEnd(L->B, done);
        L->mask = outer;
        L->n_syms = scope;
    } else if (accept(L, "return")) {
        if (L->inlining) {
            if (L->mask != L->ret_mask)
                fail_at(L, t, "a return that only some lanes take");
            if (L->ret_slot) {
                val r = convert(L, expr(L), L->ret_t, t);
                LLVMBuildStore(L->B, widen(L, r).v, L->ret_slot);
            }
            LLVMBuildBr(L->B, L->ret_to);
        } else if (divergent(L)) {
            fail_at(L, t, "a return that only some lanes take");
        } else if (L->in_kernel) {
            LLVMBuildBr(L->B, L->latch);
        } else if (L->fn_result == TY_VOID) {
            LLVMBuildRetVoid(L->B);
        } else {
            LLVMBuildRet(L->B, convert(L, expr(L), L->fn_result, t).v);
        }
        expect(L, ";");
        dead_end(L);
    } else if (accept(L, "break") || accept(L, "continue")) {
        if (!L->n_loops)
            fail_at(L, t, "outside a loop");
        if (L->mask != L->loop_mask[L->n_loops - 1])
            fail_at(L, t, "a %.*s that only some lanes take", t->len, t->s);
        LLVMBuildBr(L->B, is(t, "break") ? L->brk[L->n_loops - 1] : L->cont[L->n_loops - 1]);
        expect(L, ";");
        dead_end(L);
    } else if (accept(L, "MX_DYNAMIC_SMEM")) { /* the block's shared memory: a stack array */
        expect(L, "(");
        ty elem;
        if (!type_name(L, &elem, NULL))
            fail_at(L, peek(L), "expected a type");
        expect(L, ",");
        token *name = expect_ident(L);
        expect(L, ")");
        expect(L, ";");
        sym *s = add_sym(L, name, S_ARR);
        s->elem = elem;
        s->v = LLVMGetParam(L->fn, 3); /* the smem argument of the block function */
    } else if (!declaration(L)) {
        expr(L);
        expect(L, ";");
    }
}

/* ---- functions ------------------------------------------------------------------------- */

static void skip_braces(lower *L) {
    int depth = 0;
    do {
        token *t = next(L);
        if (t->kind == TK_EOF)
            fail_at(L, t, "unterminated function");
        depth += is(t, "{") - is(t, "}");
    } while (depth > 0);
}

typedef struct {
    token *name;
    ty t, elem;
    bool restricted; /* __restrict__: no other parameter reaches its memory */
} param;

static int parse_params(lower *L, param *ps, int cap) {
    int n = 0;
    expect(L, "(");
    if (accept(L, ")"))
        return 0;
    do {
        ty t;
        bool c = false;
        if (!type_name(L, &t, &c))
            fail_at(L, peek(L), "expected a parameter type");
        bool pointer = false, restricted = false;
        while (accept(L, "*")) {
            pointer = true;
            while (is(peek(L), "const") || is(peek(L), "__restrict__"))
                restricted |= is(next(L), "__restrict__");
        }
        if (n == cap)
            fail_at(L, peek(L), "too many parameters");
        ps[n].restricted = restricted;
        ps[n].name = expect_ident(L);
        ps[n].t = pointer ? TY_PTR : t;
        ps[n].elem = pointer ? t : TY_VOID;
        n++;
    } while (accept(L, ","));
    expect(L, ")");
    return n;
}

/* A __global__ kernel: the block loop around the body (llvm_kernel.h),
 * the block's `threads` threads as the lanes of vectors. */
static void kernel_attempt(lower *L, token *name, param *ps, int n);

static void kernel(lower *L, token *name, param *ps, int n, int threads) {
    int body = L->pos, scope = L->n_syms;
    volatile int attempts = 0;
    L->n_varying = 0;
    memset(L->unbuffered, 0, sizeof L->unbuffered);
    L->none_buffered = false;
    char kname[128];
    snprintf(kname, sizeof kname, "%.*s", name->len, name->s);
    while (setjmp(L->retry)) { /* a variable turned out varying: start over */
        LLVMValueRef f = LLVMGetNamedFunction(L->M, kname);
        LLVMDeleteFunction(LLVMGetPreviousFunction(f)); /* the block function */
        LLVMDeleteFunction(f);
        if (++attempts > 1000)
            fail_at(L, name, "too many varying variables");
    }
    L->pos = body, L->n_syms = scope, L->n_loops = 0, L->inlining = false;
    L->threads = threads;
    for (L->W = 1; L->W < threads;)
        L->W *= 2;
    LLVMValueRef running[64];
    for (int k = 0; k < L->W; k++)
        running[k] = LLVMConstInt(L->i1, k < threads, 0);
    L->mask = L->base_mask = L->W > threads ? LLVMConstVector(running, (unsigned)L->W) : NULL;
    kernel_attempt(L, name, ps, n);
    L->W = L->threads = 1, L->mask = L->base_mask = NULL;
}

static void kernel_attempt(lower *L, token *name, param *ps, int n) {
    /* the body runs as its own function per block so that its allocas are per
     * block; the outer function loops over the blocks and is the entry point */
    LLVMTypeRef bargs[4] = {L->ptr, L->i32, L->i32, L->ptr};
    LLVMTypeRef bft = LLVMFunctionType(L->vd, bargs, 4, 0);
    char bname[160];
    snprintf(bname, sizeof bname, "%.*s.block", name->len, name->s);
    LLVMValueRef bf = LLVMAddFunction(L->M, bname, bft);
    LLVMSetLinkage(bf, LLVMInternalLinkage);
    LLVMTypeRef kargs[4] = {L->ptr, L->i64, L->i64, L->i32};
    char kname[128];
    snprintf(kname, sizeof kname, "%.*s", name->len, name->s);
    LLVMValueRef kf = LLVMAddFunction(L->M, kname, LLVMFunctionType(L->vd, kargs, 4, 0));

    /* the block function: (params, blockIdx.x, gridDim.x, smem) */
    L->fn = bf, L->in_kernel = true, L->fn_result = TY_VOID;
    LLVMBasicBlockRef entry = LLVMAppendBasicBlockInContext(L->C, bf, "entry");
    LLVMPositionBuilderAtEnd(L->entry_b, entry);
    LLVMBasicBlockRef start = new_block(L, "start");
    L->latch = new_block(L, "exit");
    LLVMPositionBuilderAtEnd(L->B, start);
    int scope = L->n_syms;
    L->n_roots = 0, L->n_store_tiles = 0;
    L->others = mx_lower_store_counter(L);
    for (int i = 0; i < n; i++) {
        if (ps[i].t != TY_PTR)
            fail_at(L, ps[i].name, "kernel parameters must be buffers");
        LLVMValueRef idx = LLVMConstInt(L->i64, (unsigned long long)i, 0);
        LLVMValueRef slot = LLVMBuildInBoundsGEP2(L->B, L->ptr, LLVMGetParam(bf, 0), &idx, 1, "");
        LLVMValueRef pp = LLVMBuildLoad2(L->B, L->ptr, slot, "");
        sym *s = add_sym(L, ps[i].name, S_VAL);
        s->t = TY_PTR, s->elem = ps[i].elem;
        s->v = LLVMBuildLoad2(L->B, L->ptr, pp, "");
        mx_lower_add_root(L, s->v, ps[i].restricted);
    }
    L->smem_root = L->n_roots;
    mx_lower_add_root(L, LLVMGetParam(bf, 3), true); /* shared memory */
    L->block_idx = (val){TY_UINT, TY_VOID, LLVMGetParam(bf, 1), false};
    L->grid_dim = (val){TY_UINT, TY_VOID, LLVMGetParam(bf, 2), false};
    expect(L, "{");
    block(L);
    L->n_syms = scope;
    go_to(L, L->latch);
    for (int i = 0; i < L->n_store_tiles; i++)
        mx_lower_flush_store_tile(L, &L->store_tiles[i]);
    LLVMBuildRetVoid(L->B);
    LLVMPositionBuilderAtEnd(L->entry_b, entry);
    LLVMBuildBr(L->entry_b, start);

    /* the entry point: blocks lo .. hi-1, one shared-memory array reused */
    LLVMBasicBlockRef e = LLVMAppendBasicBlockInContext(L->C, kf, "entry"), head = LLVMAppendBasicBlockInContext(L->C, kf, "head"),
                      body = LLVMAppendBasicBlockInContext(L->C, kf, "body"), done = LLVMAppendBasicBlockInContext(L->C, kf, "done");
    LLVMPositionBuilderAtEnd(L->B, e);
    LLVMValueRef smem = LLVMBuildArrayAlloca(L->B, LLVMInt8TypeInContext(L->C), LLVMConstInt(L->i64, L->smem_bytes, 0), "smem");
    LLVMSetAlignment(smem, 64);
    LLVMBuildBr(L->B, head);
    LLVMPositionBuilderAtEnd(L->B, head);
    LLVMValueRef blk = LLVMBuildPhi(L->B, L->i64, "blk");
    LLVMBuildCondBr(L->B, LLVMBuildICmp(L->B, LLVMIntSLT, blk, LLVMGetParam(kf, 2), ""), body, done);
    LLVMPositionBuilderAtEnd(L->B, body);
    LLVMValueRef args[4] = {LLVMGetParam(kf, 0), LLVMBuildTrunc(L->B, blk, L->i32, ""), LLVMGetParam(kf, 3), smem};
    LLVMBuildCall2(L->B, bft, bf, args, 4, "");
    LLVMValueRef nxt = LLVMBuildNSWAdd(L->B, blk, LLVMConstInt(L->i64, 1, 0), "");
    LLVMBuildBr(L->B, head);
    LLVMValueRef in_v[2] = {LLVMGetParam(kf, 1), nxt};
    LLVMBasicBlockRef in_b[2] = {e, body};
    LLVMAddIncoming(blk, in_v, in_b, 2);
    LLVMPositionBuilderAtEnd(L->B, done);
    LLVMBuildRetVoid(L->B);
    L->in_kernel = false;
}

/* A __device__ helper: an internal function. */
static void helper(lower *L, token *name, ty result, param *ps, int n) {
    LLVMTypeRef pt[8];
    for (int i = 0; i < n; i++)
        pt[i] = llvm_type(L, ps[i].t);
    char fname[128];
    snprintf(fname, sizeof fname, "%.*s", name->len, name->s);
    LLVMValueRef f = LLVMAddFunction(L->M, fname, LLVMFunctionType(llvm_type(L, result), pt, (unsigned)n, 0));
    LLVMSetLinkage(f, LLVMInternalLinkage);
    sym *fs = add_sym(L, name, S_FN);
    fs->t = result, fs->v = f, fs->n_params = n, fs->body = L->pos;
    for (int i = 0; i < n; i++)
        fs->params[i] = ps[i].t, fs->names[i] = ps[i].name;
    L->fn = f, L->fn_result = result, L->W = 1;
    LLVMBasicBlockRef entry = LLVMAppendBasicBlockInContext(L->C, f, "entry"), start = new_block(L, "start");
    LLVMPositionBuilderAtEnd(L->entry_b, entry);
    LLVMPositionBuilderAtEnd(L->B, start);
    int scope = L->n_syms;
    for (int i = 0; i < n; i++) { /* parameters are variables: helpers assign to them */
        sym *s = add_sym(L, ps[i].name, S_VAR);
        s->t = ps[i].t, s->elem = ps[i].elem, s->v = entry_alloca(L, pt[i], NULL);
        LLVMBuildStore(L->B, LLVMGetParam(f, (unsigned)i), s->v);
    }
    expect(L, "{");
    block(L);
    L->n_syms = scope;
    if (!LLVMGetBasicBlockTerminator(LLVMGetInsertBlock(L->B))) {
        if (result == TY_VOID)
            LLVMBuildRetVoid(L->B);
        else
            LLVMBuildUnreachable(L->B);
    }
    LLVMPositionBuilderAtEnd(L->entry_b, entry);
    LLVMBuildBr(L->entry_b, start);
}

/* __launch_bounds__(threads[, ...]): the kernel's threads per block. */
static bool launch_bounds(lower *L, int *threads) {
    if (!accept(L, "__launch_bounds__"))
        return false;
    expect(L, "(");
    token *t = next(L);
    if (t->kind == TK_NUM && !t->is_float && t->i >= 1 && t->i <= 1024)
        *threads = (int)t->i;
    while (!accept(L, ")"))
        next(L);
    return true;
}

static void translation_unit(lower *L) {
    while (peek(L)->kind != TK_EOF) {
        if (accept(L, "MX_EMU_ENTRY")) { /* the emulator's thunk: nothing here */
            expect(L, "(");
            expect_ident(L);
            expect(L, ")");
            continue;
        }
        bool global = false;
        int threads = 1;
        for (;;) {
            if (accept(L, "extern")) {
                if (peek(L)->kind == TK_STR)
                    L->pos++;
            } else if (accept(L, "__global__")) {
                global = true;
            } else if (!launch_bounds(L, &threads)) {
                break;
            }
        }
        ty result;
        if (!type_name(L, &result, NULL))
            fail_at(L, peek(L), "expected a function definition");
        launch_bounds(L, &threads); /* it may follow the result type */
        token *name = expect_ident(L);
        param ps[256];
        int n = parse_params(L, ps, 256);
        if (is(name, "mx_block_reduce")) { /* a builtin on the CPU */
            skip_braces(L);
            continue;
        }
        L->function = name;
        if (global)
            kernel(L, name, ps, n, threads <= L->max_lanes ? threads : 1);
        else
            helper(L, name, result, ps, n);
        L->function = NULL;
    }
}

/* Whether LLVM's feature string (as "+avx2,-avx512f,...") turns feature
 * on: its last edit, as LLVM reads it (MIXC_CPU_DISABLE appends "-feature"
 * after the host's "+feature"). */
static bool feature_on(const char *features, const char *feature) {
    size_t n = strlen(feature);
    bool on = false;
    for (const char *s = features; s && (s = strstr(s, feature)); s += n)
        if (s > features && (s[-1] == '+' || s[-1] == '-') && (s[n] == ',' || s[n] == '\0'))
            on = s[-1] == '+';
    return on;
}

mx_status mx_llvm_lower(const char *source, const char *name, size_t smem_bytes, int max_lanes, const char *features,
                        LLVMContextRef ctx, LLVMModuleRef *out, mx_diag *d) {
    *out = NULL;
    lower *L = calloc(1, sizeof *L);
    if (!L)
        return mx_fail(d, MX_ERR_NOMEM, "out of memory");
    L->d = d;
    L->smem_bytes = smem_bytes;
    L->smem_root = -1;
    L->W = L->threads = 1, L->max_lanes = max_lanes < 64 ? max_lanes : 64;
    L->avx512f = feature_on(features, "avx512f");
    L->avx512dq = L->avx512f && feature_on(features, "avx512dq");
    L->C = ctx;
    L->M = LLVMModuleCreateWithNameInContext(name, ctx);
    L->B = LLVMCreateBuilderInContext(ctx);
    L->entry_b = LLVMCreateBuilderInContext(ctx);
    L->f32 = LLVMFloatTypeInContext(ctx), L->f16 = LLVMHalfTypeInContext(ctx);
    L->i1 = LLVMInt1TypeInContext(ctx), L->i16 = LLVMInt16TypeInContext(ctx);
    L->i32 = LLVMInt32TypeInContext(ctx), L->i64 = LLVMInt64TypeInContext(ctx);
    L->ptr = LLVMPointerTypeInContext(ctx, 0), L->vd = LLVMVoidTypeInContext(ctx);
    mx_status st = MX_OK;
    if (setjmp(L->fail) == 0) {
        mx_lower_tokenize(L, source, source + strlen(source), 1);
        token eof = {.kind = TK_EOF, .s = "", .len = 0, .line = L->tk.n ? L->tk.t[L->tk.n - 1].line : 1};
        mx_lower_push_token(L, eof);
        translation_unit(L);
        char *msg = NULL;
        if (LLVMVerifyModule(L->M, LLVMReturnStatusAction, &msg)) {
            st = mx_fail(d, MX_ERR_INVALID, "cpu codegen: the lowered module does not verify: %.400s", msg);
        }
        LLVMDisposeMessage(msg);
    } else {
        st = L->status;
    }
    LLVMDisposeBuilder(L->B);
    LLVMDisposeBuilder(L->entry_b);
    if (st == MX_OK)
        *out = L->M;
    else
        LLVMDisposeModule(L->M);
    free(L->tk.t);
    free(L->syms);
    free(L->varying_vars);
    free(L);
    return st;
}
