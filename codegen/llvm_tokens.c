/* llvm_tokens.c: the kernel text into tokens (llvm_lower.h), with the
 * preprocessor the generated code uses: object macros (#define LANES 4),
 * #if / #ifdef / #ifndef / #else / #endif over them, #pragma unroll. */
#include <ctype.h>
#include <stdlib.h>

#include "llvm_lower.h"

void mx_lower_push_token(lower *L, token t) {
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
            mx_lower_push_token(L, (token){.kind = TK_IDENT, .s = w, .len = wl, .line = line});
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

void mx_lower_tokenize(lower *L, const char *s, const char *end, int line) {
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
                mx_lower_tokenize(L, m->body, m->body + m->len, line);
            else
                mx_lower_push_token(L, t);
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
            mx_lower_push_token(L, t);
            continue;
        }
        if (*s == '"') {
            for (s++; s < end && *s != '"'; s++)
                ;
            t.kind = TK_STR, t.len = (int)(++s - t.s);
            mx_lower_push_token(L, t);
            continue;
        }
        t.kind = TK_PUNCT, t.len = 1;
        for (size_t i = 0; i < sizeof puncts / sizeof *puncts; i++)
            if ((size_t)(end - s) >= strlen(puncts[i]) && strncmp(s, puncts[i], strlen(puncts[i])) == 0) {
                t.len = (int)strlen(puncts[i]);
                break;
            }
        s += t.len;
        mx_lower_push_token(L, t);
    }
}

