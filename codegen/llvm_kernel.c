/* llvm_kernel.c: the kernel subset of CUDA C into LLVM IR (llvm_kernel.h).
 *
 * One pass, as chibicc would do it without the AST: a tokenizer with object
 * macros (#define LANES 4), then a recursive-descent parser that builds IR
 * as it reads. Scalars declared const are SSA values; other variables and
 * arrays are allocas in the entry block (mem2reg and SROA turn them into
 * registers, so a scan's state array lives in vector registers once its
 * loop is unrolled). && and || evaluate both sides and ?: both arms: the
 * generated conditions and arms are loads-free arithmetic, and straight-line
 * selects are what the vectoriser wants. Float arithmetic carries the
 * reassoc and contract flags (FMAs, tree reductions); the inline exp and
 * the bf16 rounding are built without them, since they depend on exact
 * rounding steps. */
#include <ctype.h>
#include <math.h>
#include <llvm-c/Analysis.h>
#include <llvm-c/DebugInfo.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
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

static void fail_at(lower *L, const token *t, const char *fmt, ...) __attribute__((format(printf, 3, 4), noreturn));

static void fail_at(lower *L, const token *t, const char *fmt, ...) {
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

/* ---- tokenizer ------------------------------------------------------------------- */

static void push_token(lower *L, token t) {
    tokens *k = &L->tk;
    if (k->n == k->cap) {
        k->cap = k->cap ? 2 * k->cap : 1024;
        token *grown = realloc(k->t, (size_t)k->cap * sizeof *grown);
        if (!grown) {
            L->status = mx_fail(L->d, MX_ERR_NOMEM, "cpu codegen: out of memory");
            longjmp(L->fail, 1);
        }
        k->t = grown;
    }
    k->t[k->n++] = t;
}

static const char *const puncts[] = {"<<=", ">>=", "==", "!=", "<=", ">=", "&&", "||", "++", "--", "+=", "-=",
                                     "*=",  "/=",  "%=", "&=", "|=", "<<", ">>", "->"};

static void tokenize(lower *L, const char *s, const char *end, int line);

static macro *find_macro(lower *L, const char *s, int len) {
    for (int i = 0; i < L->tk.n_macros; i++)
        if ((int)strlen(L->tk.macros[i].name) == len && strncmp(L->tk.macros[i].name, s, (size_t)len) == 0)
            return &L->tk.macros[i];
    return NULL;
}

static bool reading(const tokens *k) { return k->depth == 0 || k->active[k->depth - 1]; }

/* A #if condition: defined(NAME), integers, !, && and || (the only
 * operators generated sources test with). */
static bool pp_or(lower *L, const char **s, const char *eol);
static bool pp_unary(lower *L, const char **s, const char *eol) {
    while (*s < eol && **s == ' ')
        (*s)++;
    if (*s < eol && **s == '!') {
        (*s)++;
        return !pp_unary(L, s, eol);
    }
    if (*s < eol && **s == '(') {
        (*s)++;
        bool v = pp_or(L, s, eol);
        while (*s < eol && (**s == ' ' || **s == ')'))
            (*s)++;
        return v;
    }
    if (eol - *s > 7 && strncmp(*s, "defined", 7) == 0) {
        *s += 7;
        while (*s < eol && (**s == ' ' || **s == '('))
            (*s)++;
        const char *name = *s;
        while (*s < eol && (isalnum((unsigned char)**s) || **s == '_'))
            (*s)++;
        bool v = find_macro(L, name, (int)(*s - name)) != NULL;
        while (*s < eol && (**s == ' ' || **s == ')'))
            (*s)++;
        return v;
    }
    char *e;
    long v = strtol(*s, &e, 0);
    *s = e > *s ? e : eol;
    return v != 0;
}

static bool pp_or(lower *L, const char **s, const char *eol) {
    bool v = pp_unary(L, s, eol);
    for (;;) {
        while (*s < eol && **s == ' ')
            (*s)++;
        if (eol - *s >= 2 && strncmp(*s, "||", 2) == 0) {
            *s += 2;
            bool w = pp_unary(L, s, eol);
            v = v || w;
        } else if (eol - *s >= 2 && strncmp(*s, "&&", 2) == 0) {
            *s += 2;
            bool w = pp_unary(L, s, eol);
            v = v && w;
        } else {
            return v;
        }
    }
}

/* A preprocessor line: #define NAME body, #undef NAME, #if / #ifdef /
 * #ifndef / #else / #endif, #pragma unroll (a token `pragma` before the
 * loop: unrolled whole, so that arrays indexed by its counter, a scan's
 * states, become registers); the rest (#include) says nothing the lowering
 * needs. */
static void directive(lower *L, const char *s, const char *eol, int line) {
    tokens *k = &L->tk;
    while (s < eol && (*s == '#' || *s == ' '))
        s++;
    const char *w = s;
    while (s < eol && isalpha((unsigned char)*s))
        s++;
    int wl = (int)(s - w);
#define WORD(x) (wl == (int)strlen(x) && strncmp(w, x, (size_t)wl) == 0)
    token at = {.kind = TK_PUNCT, .s = w, .len = wl, .line = line};
    if (WORD("if") || WORD("ifdef") || WORD("ifndef")) {
        if (k->depth == (int)(sizeof k->active / sizeof *k->active))
            fail_at(L, &at, "#if nests too deep");
        bool outer = reading(k), v;
        if (WORD("if")) {
            v = pp_or(L, &s, eol);
        } else {
            while (s < eol && *s == ' ')
                s++;
            const char *name = s;
            while (s < eol && (isalnum((unsigned char)*s) || *s == '_'))
                s++;
            v = (find_macro(L, name, (int)(s - name)) != NULL) == WORD("ifdef");
        }
        k->active[k->depth] = outer && v;
        k->taken[k->depth] = v;
        k->depth++;
        return;
    }
    if (WORD("else") || WORD("endif")) {
        if (k->depth == 0)
            fail_at(L, &at, "#%.*s without #if", wl, w);
        if (WORD("endif")) {
            k->depth--;
        } else {
            bool outer = k->depth == 1 || k->active[k->depth - 2];
            k->active[k->depth - 1] = outer && !k->taken[k->depth - 1];
            k->taken[k->depth - 1] = true;
        }
        return;
    }
    if (WORD("pragma") && reading(k)) {
        const char *what = s;
        while (what < eol && *what == ' ')
            what++;
        const char *rest = what + 6;
        while (rest < eol && *rest == ' ')
            rest++;
        if (eol - what >= 6 && strncmp(what, "unroll", 6) == 0 && rest == eol)
            push_token(L, (token){.kind = TK_IDENT, .s = w, .len = wl, .line = line});
        return;
    }
    bool def = WORD("define"), undef = WORD("undef");
#undef WORD
    if ((!def && !undef) || !reading(k))
        return;
    while (s < eol && *s == ' ')
        s++;
    const char *name = s;
    while (s < eol && (isalnum((unsigned char)*s) || *s == '_'))
        s++;
    int len = (int)(s - name);
    macro *m = find_macro(L, name, len);
    at = (token){.kind = TK_PUNCT, .s = name, .len = len, .line = line};
    if (undef) {
        if (m)
            *m = k->macros[--k->n_macros];
        return;
    }
    if (*s == '(' || len >= (int)sizeof m->name)
        fail_at(L, &at, "only object-like macros are supported");
    if (!m) {
        if (k->n_macros == (int)(sizeof k->macros / sizeof *k->macros))
            fail_at(L, &at, "too many macros");
        m = &k->macros[k->n_macros++];
    }
    snprintf(m->name, sizeof m->name, "%.*s", len, name);
    m->body = s;
    m->len = (int)(eol - s);
}

static void tokenize(lower *L, const char *s, const char *end, int line) {
    bool line_start = true;
    while (s < end) {
        if (*s == '\n') {
            line++, s++, line_start = true;
            continue;
        }
        if (isspace((unsigned char)*s)) {
            s++;
            continue;
        }
        if (line_start && *s == '#') {
            const char *eol = s;
            while (eol < end && *eol != '\n')
                eol++;
            directive(L, s, eol, line);
            s = eol;
            continue;
        }
        if (!reading(&L->tk)) { /* a line of a branch not taken */
            while (s < end && *s != '\n')
                s++;
            continue;
        }
        line_start = false;
        if (s[0] == '/' && s + 1 < end && s[1] == '/') {
            while (s < end && *s != '\n')
                s++;
            continue;
        }
        if (s[0] == '/' && s + 1 < end && s[1] == '*') {
            for (s += 2; s + 1 < end && !(s[0] == '*' && s[1] == '/'); s++)
                line += *s == '\n';
            s += 2;
            continue;
        }
        token t = {.s = s, .line = line};
        if (isalpha((unsigned char)*s) || *s == '_') {
            while (s < end && (isalnum((unsigned char)*s) || *s == '_'))
                s++;
            t.kind = TK_IDENT, t.len = (int)(s - t.s);
            macro *m = find_macro(L, t.s, t.len);
            if (m)
                tokenize(L, m->body, m->body + m->len, line);
            else
                push_token(L, t);
            continue;
        }
        if (isdigit((unsigned char)*s) || (*s == '.' && s + 1 < end && isdigit((unsigned char)s[1]))) {
            char *e1, *e2;
            unsigned long long iv = strtoull(s, &e1, 0);
            double fv = strtod(s, &e2);
            t.kind = TK_NUM;
            if (e2 > e1 && !(s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))) {
                t.is_float = true, t.f = fv, s = e2;
            } else {
                t.i = iv, s = e1;
            }
            for (; s < end && strchr("fFuUlL", *s); s++) {
                t.is_unsigned |= *s == 'u' || *s == 'U';
                t.is_long |= *s == 'l' || *s == 'L';
            }
            t.len = (int)(s - t.s);
            push_token(L, t);
            continue;
        }
        if (*s == '"') {
            for (s++; s < end && *s != '"'; s++)
                ;
            t.kind = TK_STR, t.len = (int)(++s - t.s);
            push_token(L, t);
            continue;
        }
        t.kind = TK_PUNCT, t.len = 1;
        for (size_t i = 0; i < sizeof puncts / sizeof *puncts; i++)
            if ((size_t)(end - s) >= strlen(puncts[i]) && strncmp(s, puncts[i], strlen(puncts[i])) == 0) {
                t.len = (int)strlen(puncts[i]);
                break;
            }
        s += t.len;
        push_token(L, t);
    }
}

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

static LLVMTypeRef llvm_type(lower *L, ty t) {
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

static bool varying(LLVMValueRef v) { return LLVMGetTypeKind(LLVMTypeOf(v)) == LLVMVectorTypeKind; }

/* Whether only some of the block's threads run the current statement. */
static bool divergent(const lower *L) { return L->mask && L->mask != L->base_mask; }

/* t, or a vector of W t's for a varying value. */
static LLVMTypeRef type_of(lower *L, ty t, bool vary) {
    return vary ? LLVMVectorType(llvm_type(L, t), (unsigned)L->W) : llvm_type(L, t);
}

/* The constant c in the shape of `like` (a scalar or a vector type). */
static LLVMValueRef const_as(LLVMTypeRef like, double c) {
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

static LLVMValueRef splat(lower *L, LLVMValueRef x) {
    LLVMTypeRef vt = LLVMVectorType(LLVMTypeOf(x), (unsigned)L->W);
    LLVMValueRef v = LLVMBuildInsertElement(L->B, LLVMGetPoison(vt), x, LLVMConstInt(L->i32, 0, 0), "");
    return LLVMBuildShuffleVector(L->B, v, LLVMGetPoison(vt), LLVMConstNull(LLVMVectorType(L->i32, (unsigned)L->W)), "");
}

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

static LLVMValueRef flagged(LLVMValueRef inst) {
    if (LLVMIsAInstruction(inst))
        LLVMSetFastMathFlags(inst, LLVMFastMathAllowReassoc | LLVMFastMathAllowContract);
    return inst;
}

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

/* ---- the inline exp and log1p -------------------------------------------------------------- */

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
static LLVMValueRef inline_math(lower *L, int k, LLVMValueRef x) {
    bool vary = varying(x);
    char name[32];
    snprintf(name, sizeof name, vary ? "%s.v%d" : "%s", k == 0 ? "mx_exp2" : "mx_log1p", L->W);
    LLVMValueRef f = LLVMGetNamedFunction(L->M, name);
    if (!f)
        f = k == 0 ? build_exp2(L, vary) : build_log1p(L, vary);
    return LLVMBuildCall2(L->B, LLVMGlobalGetValueType(f), f, &x, 1, "");
}

/* ---- builtins --------------------------------------------------------------------------- */

static LLVMValueRef intrinsic(lower *L, const char *name, LLVMValueRef *args, int n) {
    unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
    LLVMTypeRef over = LLVMTypeOf(args[0]);
    LLVMValueRef fn = LLVMGetIntrinsicDeclaration(L->M, id, &over, 1);
    LLVMTypeRef ft = LLVMIntrinsicGetType(L->C, id, &over, 1);
    return LLVMBuildCall2(L->B, ft, fn, args, (unsigned)n, "");
}

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
static LLVMValueRef entry_alloca(lower *L, LLVMTypeRef t, LLVMValueRef count);
static LLVMBasicBlockRef new_block(lower *L, const char *name);
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
        *out = fval(inline_math(L, 0, LLVMBuildFMul(L->B, x, const_as(LLVMTypeOf(x), 1.4426950408889634), "")));
        break;
    }
    case 1: *out = fval(inline_math(L, 0, as_float(L, a[0], name).v)); break;
    case 2: args[0] = as_float(L, a[0], name).v, *out = fval(intrinsic(L, "llvm.log", args, 1)); break;
    case 3: *out = fval(inline_math(L, 1, as_float(L, a[0], name).v)); break;
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

static LLVMValueRef all_lanes(lower *L) {
    return const_as(LLVMVectorType(L->i1, (unsigned)L->W), -1);
}

/* llvm.masked.gather / scatter over the running lanes. */
static LLVMValueRef gather_scatter(lower *L, LLVMValueRef addrs, LLVMValueRef value, LLVMTypeRef vt) {
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

/* ---- lane tiles ---------------------------------------------------------------------------- */

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

static LLVMValueRef store_counter(lower *L) {
    LLVMValueRef c = entry_alloca(L, L->i64, NULL);
    LLVMBuildStore(L->entry_b, LLVMConstInt(L->i64, 0, 0), c);
    return c;
}

static void add_root(lower *L, LLVMValueRef base, bool restricted) {
    if (L->n_roots == MAX_ROOTS)
        return; /* beyond: its loads gather */
    L->roots[L->n_roots] = base, L->root_restrict[L->n_roots] = restricted;
    L->tile_of[L->n_roots] = -1, L->accessed[L->n_roots] = false;
    L->root_stores[L->n_roots++] = store_counter(L);
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
static void count_store(lower *L, LLVMValueRef addr) {
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
    LLVMValueRef tile = entry_alloca(L, row_t, i64c(L, W)), lo_s = store_counter(L), hi_s = store_counter(L),
                 S_s = store_counter(L), seen_s = store_counter(L), last_s = store_counter(L), lastS_s = store_counter(L);
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
static void flush_store_tile(lower *L, struct store_tile *st) {
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
static void memory_access(lower *L, LLVMValueRef addr) {
    if (L->W == 1)
        return;
    int r = root_of(L, addr);
    if (r == -2)
        return;
    if (r == -1) {
        for (int i = 0; i < L->n_store_tiles; i++)
            flush_store_tile(L, &L->store_tiles[i]);
        if (!L->none_buffered && L->n_store_tiles) {
            L->none_buffered = true;
            longjmp(L->retry, 1);
        }
        L->none_buffered = true;
        return;
    }
    if (L->tile_of[r] >= 0)
        flush_store_tile(L, &L->store_tiles[L->tile_of[r]]);
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
    *st = (struct store_tile){r, entry_alloca(L, vt, i64c(L, L->W)), store_counter(L), store_counter(L),
                              store_counter(L), store_counter(L), store_counter(L)};
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
    flush_store_tile(L, st);
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
 * from p0: one masked vector access. */
static LLVMValueRef one_vector(lower *L, LLVMValueRef p0, LLVMValueRef value, LLVMTypeRef vt) {
    return masked_access(L, p0, value, vt, L->mask ? L->mask : all_lanes(L));
}

/* A load (value NULL) or store at the lanes' addresses: a vector load or
 * store when they are consecutive, one load for all lanes when they are the
 * same (a weight indexed by a channel that a block's lanes share), a lane
 * tile when they are a constant stride apart (loads of all lanes), else a
 * gather or scatter. */
static LLVMValueRef lane_memory(lower *L, LLVMValueRef addrs, LLVMValueRef value, LLVMTypeRef vt) {
    int r = root_of(L, addrs);
    if (value)
        count_store(L, addrs);
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
        memory_access(L, addrs);
    if (affine && c == 1 && !st) /* consecutive, seen when lowering: one vector */
        return one_vector(L, LLVMBuildExtractElement(L->B, addrs, LLVMConstInt(L->i32, 0, 0), ""), value, vt);
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
        flush_store_tile(L, st);
    got[n] = one_vector(L, LLVMBuildIntToPtr(L->B, a0, L->ptr, ""), value, vt);
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
        flush_store_tile(L, st);
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

static val load_ref(lower *L, ref r) {
    switch (r.k) {
    case R_VALUE: return r.v;
    case R_ONE:
        if (!r.var)
            memory_access(L, r.addr);
        return (val){r.t, r.elem, LLVMBuildLoad2(L->B, llvm_type(L, r.t), r.addr, ""), false};
    case R_LANES: return (val){r.t, r.elem, LLVMBuildLoad2(L->B, type_of(L, r.t, true), r.addr, ""), false};
    case R_EACH: return (val){r.t, r.elem, lane_memory(L, r.addr, NULL, type_of(L, r.t, true)), false};
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
            memory_access(L, r.addr);
            count_store(L, r.addr);
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
    lane_memory(L, r.k == R_ONE ? splat(L, r.addr) : r.addr, v.v, LLVMTypeOf(v.v));
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
                memory_access(L, NULL);
                count_store(L, NULL);
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

static LLVMBasicBlockRef new_block(lower *L, const char *name) { return LLVMAppendBasicBlockInContext(L->C, L->fn, name); }

/* After return, break or continue: later statements go to a block nobody reaches. */
static void dead_end(lower *L) { LLVMPositionBuilderAtEnd(L->B, new_block(L, "dead")); }

static LLVMValueRef entry_alloca(lower *L, LLVMTypeRef t, LLVMValueRef count) {
    LLVMValueRef a = count ? LLVMBuildArrayAlloca(L->entry_b, t, count, "") : LLVMBuildAlloca(L->entry_b, t, "");
    LLVMSetAlignment(a, 64);
    return a;
}

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
    L->others = store_counter(L);
    for (int i = 0; i < n; i++) {
        if (ps[i].t != TY_PTR)
            fail_at(L, ps[i].name, "kernel parameters must be buffers");
        LLVMValueRef idx = LLVMConstInt(L->i64, (unsigned long long)i, 0);
        LLVMValueRef slot = LLVMBuildInBoundsGEP2(L->B, L->ptr, LLVMGetParam(bf, 0), &idx, 1, "");
        LLVMValueRef pp = LLVMBuildLoad2(L->B, L->ptr, slot, "");
        sym *s = add_sym(L, ps[i].name, S_VAL);
        s->t = TY_PTR, s->elem = ps[i].elem;
        s->v = LLVMBuildLoad2(L->B, L->ptr, pp, "");
        add_root(L, s->v, ps[i].restricted);
    }
    add_root(L, LLVMGetParam(bf, 3), true); /* shared memory */
    L->block_idx = (val){TY_UINT, TY_VOID, LLVMGetParam(bf, 1), false};
    L->grid_dim = (val){TY_UINT, TY_VOID, LLVMGetParam(bf, 2), false};
    expect(L, "{");
    block(L);
    L->n_syms = scope;
    go_to(L, L->latch);
    for (int i = 0; i < L->n_store_tiles; i++)
        flush_store_tile(L, &L->store_tiles[i]);
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

/* Whether LLVM's feature string (as "+avx2,-avx512f,...") turns feature on. */
static bool feature_on(const char *features, const char *feature) {
    size_t n = strlen(feature);
    for (const char *s = features; s && (s = strstr(s, feature)); s += n)
        if (s > features && s[-1] == '+' && (s[n] == ',' || s[n] == '\0'))
            return true;
    return false;
}

mx_status mx_llvm_lower(const char *source, const char *name, size_t smem_bytes, int max_lanes, const char *features,
                        LLVMContextRef ctx, LLVMModuleRef *out, mx_diag *d) {
    *out = NULL;
    lower *L = calloc(1, sizeof *L);
    if (!L)
        return mx_fail(d, MX_ERR_NOMEM, "out of memory");
    L->d = d;
    L->smem_bytes = smem_bytes;
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
        tokenize(L, source, source + strlen(source), 1);
        token eof = {.kind = TK_EOF, .s = "", .len = 0, .line = L->tk.n ? L->tk.t[L->tk.n - 1].line : 1};
        push_token(L, eof);
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
