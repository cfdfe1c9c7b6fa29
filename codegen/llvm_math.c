/* llvm_math.c: exp2 and log1p as inline LLVM functions (llvm_lower.h):
 * straight-line polynomials the vectoriser widens, where libm would be one
 * call per lane. */
#include <math.h>

#include "llvm_lower.h"

/* A new internal, always-inlined function float f(float) (or of W-lane
 * vectors), *B at its entry and *x its argument. */
static LLVMValueRef math_function(lower *L, const char *kind, bool vary, LLVMBuilderRef *B, LLVMValueRef *x) {
    LLVMTypeRef t = type_of(L, TY_FLOAT, vary);
    char name[32];
    snprintf(name, sizeof name, vary ? "%s.v%d" : "%s", kind, L->W);
    LLVMValueRef f = LLVMAddFunction(L->M, name, LLVMFunctionType(t, &t, 1, 0));
    LLVMSetLinkage(f, LLVMInternalLinkage);
    unsigned inl = LLVMGetEnumAttributeKindForName("alwaysinline", 12);
    LLVMAddAttributeAtIndex(f, LLVMAttributeFunctionIndex, LLVMCreateEnumAttribute(L->C, inl, 0));
    *B = LLVMCreateBuilderInContext(L->C);
    LLVMPositionBuilderAtEnd(*B, LLVMAppendBasicBlockInContext(L->C, f, "entry"));
    *x = LLVMGetParam(f, 0);
    return f;
}

/* 2^x for f32 as straight-line code the vectoriser can widen: x clamped
 * (selects that keep NaN), n = round(x), 2^r on r = x - n in [-1/2, 1/2] by
 * Cephes' exp2f polynomial (relative error 2e-7), then scaled by 2^n. With
 * AVX-512 and 16 lanes, n is one vrndscaleps and p 2^n one vscalefps, which
 * overflows to inf and underflows through the subnormals to 0 as exp2f
 * does: 3 of the 14 instructions a scan's state update spent on exp (the
 * scan alone 8% faster, AMD EPYC). With AVX-512DQ too, r is one vreduceps
 * (x less x rounded, exactly; 0 for x = +-inf, NaN for NaN), so x needs no
 * clamp: +-inf gives p = 1 scaled to inf or 0, as exp2f does, where
 * x - n would be inf - inf. Two instructions fewer again, and r no longer
 * waits for n. With vscalefps alone, x is clamped to [-200, 200] for that.
 * Else n through the 1.5 * 2^23 trick (no float-to-int conversion, which
 * NaN would poison) and 2^(n - 1) put in the exponent bits, the
 * polynomial's coefficients doubled: x in [-125.5, 128] keeps that exponent
 * a normal one, and x = 128 gives 2 * 2^127 = inf; below -125.5 the result
 * is 2^-125.5 (2e-38), not 0. */
static LLVMValueRef avx512_call(lower *L, LLVMBuilderRef B, const char *name, LLVMValueRef *args, int n) {
    LLVMTypeRef ps[5];
    for (int i = 0; i < n; i++)
        ps[i] = LLVMTypeOf(args[i]);
    LLVMTypeRef fty = LLVMFunctionType(ps[0], ps, (unsigned)n, 0);
    LLVMValueRef fn = LLVMGetNamedFunction(L->M, name);
    return LLVMBuildCall2(B, fty, fn ? fn : LLVMAddFunction(L->M, name, fty), args, (unsigned)n, "");
}

static LLVMValueRef build_exp2(lower *L, bool vary) {
    LLVMBuilderRef B;
    LLVMValueRef x;
    LLVMValueRef f = math_function(L, "mx_exp2", vary, &B, &x);
    LLVMTypeRef ft = LLVMTypeOf(x), it = type_of(L, TY_INT, vary);
    bool scalef = vary && L->W == 16 && L->avx512f, reduce = scalef && L->avx512dq;
    double lo = scalef ? -200.0 : -125.49, hi = scalef ? 200.0 : 128.0, k = scalef ? 1.0 : 2.0;
#define K(c) const_as(ft, c)
    LLVMValueRef all = LLVMConstInt(L->i16, 0xFFFF, 0), current = LLVMConstInt(L->i32, 4, 0); /* rounding */
    if (!reduce) {
        x = LLVMBuildSelect(B, LLVMBuildFCmp(B, LLVMRealOGT, x, K(hi), ""), K(hi), x, "");
        x = LLVMBuildSelect(B, LLVMBuildFCmp(B, LLVMRealOLT, x, K(lo), ""), K(lo), x, "");
    }
    LLVMValueRef magic = K(12582912.0f), t = NULL, n, r; /* 1.5 * 2^23 */
    if (scalef) {
        unsigned id = LLVMLookupIntrinsicID("llvm.roundeven", 14);
        n = LLVMBuildCall2(B, LLVMIntrinsicGetType(L->C, id, &ft, 1), LLVMGetIntrinsicDeclaration(L->M, id, &ft, 1),
                           &x, 1, "");
    } else {
        t = LLVMBuildFAdd(B, x, magic, "");
        n = LLVMBuildFSub(B, t, magic, "");
    }
    if (reduce) { /* imm 0: to nearest even, no fraction bits kept */
        LLVMValueRef args[5] = {x, LLVMConstInt(L->i32, 0, 0), x, all, current};
        r = avx512_call(L, B, "llvm.x86.avx512.mask.reduce.ps.512", args, 5);
    } else {
        r = LLVMBuildFSub(B, x, n, "");
    }
    static const double c[] = {1.535336188319500e-4, 1.339887440266574e-3, 9.618437357674640e-3,
                               5.550332471162809e-2, 2.402264791363012e-1, 6.931472028550421e-1, 1.0};
    LLVMValueRef p = K(k * c[0]); /* Horner's steps as FMAs (contract); only n's rounding needs exact steps */
    for (size_t i = 1; i < sizeof c / sizeof *c; i++)
        p = flagged(LLVMBuildFAdd(B, flagged(LLVMBuildFMul(B, p, r, "")), K(k * c[i]), ""));
    LLVMValueRef y;
    if (scalef) { /* all lanes, the current rounding mode */
        LLVMValueRef args[5] = {p, n, p, all, current};
        y = avx512_call(L, B, "llvm.x86.avx512.mask.scalef.ps.512", args, 5);
    } else { /* (n - 1 + 127) << 23, n - 1 being t's bits less magic's, less 1 */
        LLVMValueRef e = LLVMBuildSub(B, LLVMBuildBitCast(B, t, it, ""), const_as(it, 0x4B400000 - 126), "");
        y = LLVMBuildFMul(B, p, LLVMBuildBitCast(B, LLVMBuildShl(B, e, const_as(it, 23), ""), ft, ""), "");
    }
    LLVMBuildRet(B, y);
#undef K
    LLVMDisposeBuilder(B);
    return f;
}

/* log(1 + x) as straight-line code (a softplus is log1p(exp(x)) per step
 * of a scan): u = 1 + x split as m 2^e with m in [sqrt(1/2), sqrt(2)),
 * log(m) by Cephes' logf polynomial (relative error 1e-7), e ln 2 in two
 * parts, then (x - (u - 1)) / u for what rounding u lost. u == 1 gives x;
 * x = inf, NaN, -1 and below give inf, NaN, -inf and NaN as log1pf does. */
static LLVMValueRef build_log1p(lower *L, bool vary) {
    LLVMBuilderRef B;
    LLVMValueRef x;
    LLVMValueRef f = math_function(L, "mx_log1p", vary, &B, &x);
    LLVMTypeRef ft = LLVMTypeOf(x), it = type_of(L, TY_INT, vary);
#define K(c) const_as(ft, c)
#define I(c) const_as(it, c)
    LLVMValueRef u = LLVMBuildFAdd(B, x, K(1.0), "");
    LLVMValueRef bits = LLVMBuildBitCast(B, u, it, "");
    LLVMValueRef e = LLVMBuildSub(B, LLVMBuildLShr(B, bits, I(23), ""), I(127), "");
    LLVMValueRef m = LLVMBuildBitCast(B, LLVMBuildOr(B, LLVMBuildAnd(B, bits, I(0x7FFFFF), ""), I(0x3F800000), ""), ft, "");
    LLVMValueRef big = LLVMBuildFCmp(B, LLVMRealOGT, m, K(1.41421356), "");
    m = LLVMBuildSelect(B, big, LLVMBuildFMul(B, m, K(0.5), ""), m, "");
    e = LLVMBuildAdd(B, e, LLVMBuildZExt(B, big, it, ""), "");
    LLVMValueRef fe = LLVMBuildSIToFP(B, e, ft, "");
    LLVMValueRef r = LLVMBuildFSub(B, m, K(1.0), "");
    static const double c[] = {7.0376836292e-2,  -1.1514610310e-1, 1.1676998740e-1,
                               -1.2420140846e-1, 1.4249322787e-1,  -1.6668057665e-1,
                               2.0000714765e-1,  -2.4999993993e-1, 3.3333331174e-1};
    LLVMValueRef z = LLVMBuildFMul(B, r, r, ""), p = K(c[0]);
    for (size_t i = 1; i < sizeof c / sizeof *c; i++)
        p = flagged(LLVMBuildFAdd(B, flagged(LLVMBuildFMul(B, p, r, "")), K(c[i]), ""));
    LLVMValueRef y = LLVMBuildFMul(B, LLVMBuildFMul(B, p, r, ""), z, "");
    y = LLVMBuildFAdd(B, y, LLVMBuildFMul(B, fe, K(-2.12194440e-4), ""), "");
    y = LLVMBuildFSub(B, y, LLVMBuildFMul(B, z, K(0.5), ""), "");
    LLVMValueRef lg = LLVMBuildFAdd(B, LLVMBuildFAdd(B, r, y, ""), LLVMBuildFMul(B, fe, K(0.693359375), ""), "");
    LLVMValueRef lost = LLVMBuildFDiv(B, LLVMBuildFSub(B, x, LLVMBuildFSub(B, u, K(1.0), ""), ""), u, "");
    lg = LLVMBuildFAdd(B, lg, lost, "");
    lg = LLVMBuildSelect(B, LLVMBuildFCmp(B, LLVMRealOEQ, u, K(1.0), ""), x, lg, "");
    lg = LLVMBuildSelect(B, LLVMBuildFCmp(B, LLVMRealOEQ, u, K(INFINITY), ""), u, lg, "");
    lg = LLVMBuildSelect(B, LLVMBuildFCmp(B, LLVMRealOEQ, u, K(0.0), ""), K(-INFINITY), lg, "");
    lg = LLVMBuildSelect(B, LLVMBuildFCmp(B, LLVMRealULT, u, K(0.0), ""), K(NAN), lg, ""); /* and NaN */
    LLVMBuildRet(B, lg);
#undef I
#undef K
    LLVMDisposeBuilder(B);
    return f;
}

/* 0 exp2, 1 log1p, of x's shape (built on first use). */
LLVMValueRef mx_lower_inline_math(lower *L, int k, LLVMValueRef x) {
    bool vary = varying(x);
    char name[32];
    snprintf(name, sizeof name, vary ? "%s.v%d" : "%s", k == 0 ? "mx_exp2" : "mx_log1p", L->W);
    LLVMValueRef f = LLVMGetNamedFunction(L->M, name);
    if (!f)
        f = k == 0 ? build_exp2(L, vary) : build_log1p(L, vary);
    return LLVMBuildCall2(L->B, LLVMGlobalGetValueType(f), f, &x, 1, "");
}

