/* parse.c: the text IR -> a typed, verified graph (grammar in docs/ir.md).
 *
 * A one-token-lookahead lexer feeds a recursive-descent parser. The first
 * error ends the parse: it is formatted as "file:line:col: error: msg" with the
 * source line and a caret, and the parser longjmps out, so that no production
 * has to pass failure upwards; everything the parse allocated hangs off the
 * parser struct and is freed in one place. */
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir.h"

/* Limits: inputs beyond them are reported, never trusted. */
#define MAX_NAME 256                 /* characters of a name or keyword */
#define MAX_NUMBER 512               /* characters of a number */
#define MAX_RESULTS 16               /* results of one statement */
#define MAX_ARGS 128                 /* inputs of one statement */
#define MAX_LIST 64                  /* items of an attribute list */
#define MAX_ELEMS ((int64_t)1 << 40) /* a dim, and the elements of a type */

typedef enum {
    TK_IDENT, /* op names, keywords, dtypes, "_" */
    TK_VALUE, /* %name; text is the name without the '%' */
    TK_INT,
    TK_FLOAT,
    TK_PUNCT, /* one of = ( ) { } [ ] , : */
    TK_EOF,
} token_kind;

typedef struct {
    token_kind kind;
    const char *text;
    int len;
    int line, col;
    size_t line_start; /* offset of the token's line, for the caret display */
    int64_t i;         /* TK_INT */
    double f;          /* TK_INT and TK_FLOAT: strtod of the text, so "-0" stays -0.0 */
} token;

typedef struct {
    const char *src;
    size_t len, pos;
    int line;
    size_t line_start;
    int end_line, end_col; /* just after the last token: where EOF is reported */
    size_t end_line_start;
    const char *filename;
    token tok; /* the lookahead */
    mx_graph *g;
    mx_diag *diag;
    jmp_buf fail;
} parser;

/* ---- errors --------------------------------------------------------------- */

/* The source line of t, clipped to a window around the column so that a
 * megabyte-long line still fits the diagnostic, with a caret under t. */
static void format_caret(const parser *p, const token *t, char *out, size_t size) {
    enum { WINDOW = 120 };
    const char *line = p->src + t->line_start;
    size_t line_len = 0;
    while (t->line_start + line_len < p->len && line[line_len] != '\n')
        line_len++;
    size_t at = (size_t)t->col - 1, from = 0;
    if (at > WINDOW - 20)
        from = at - WINDOW / 2;
    size_t to = from + WINDOW < line_len ? from + WINDOW : line_len;
    const char *cut = from ? "..." : "";

    char shown[WINDOW + 1], caret[WINDOW + 8];
    size_t n = 0, c = strlen(cut);
    memset(caret, ' ', c);
    for (size_t i = from; i < to; i++) {
        unsigned char ch = (unsigned char)line[i];
        /* Tabs are kept in both lines so that the caret lines up. */
        shown[n++] = ch == '\t' || (ch >= 0x20 && ch < 0x7f) ? (char)ch : '?';
        if (i < at)
            caret[c++] = ch == '\t' ? '\t' : ' ';
    }
    shown[n] = 0;
    caret[c++] = '^';
    caret[c] = 0;
    snprintf(out, size, "%s%s\n%s", cut, shown, caret);
}

__attribute__((noreturn, format(printf, 3, 4))) static void error_at(parser *p, const token *t,
                                                                    const char *fmt, ...) {
    char msg[1200], caret[2 * 128 + 16];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    format_caret(p, t, caret, sizeof caret);
    mx_fail(p->diag, MX_ERR_PARSE, "%s:%d:%d: error: %s\n%s", p->filename, t->line, t->col, msg,
            caret);
    longjmp(p->fail, 1);
}

/* How a token reads in a message: "'linear'", "'%x'", "end of file". */
static const char *describe(const token *t, char *buf, size_t size) {
    if (t->kind == TK_EOF)
        return "end of file";
    int len = t->len > 40 ? 40 : t->len;
    snprintf(buf, size, "'%s%.*s%s'", t->kind == TK_VALUE ? "%" : "", len, t->text,
             len < t->len ? "..." : "");
    return buf;
}

__attribute__((noreturn)) static void error_expected(parser *p, const char *what) {
    char found[64];
    error_at(p, &p->tok, "expected %s, found %s", what, describe(&p->tok, found, sizeof found));
}

/* ---- lexer ---------------------------------------------------------------- */

static bool is_alpha(int c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
static bool is_digit(int c) { return c >= '0' && c <= '9'; }
static bool is_name_char(int c) { return is_alpha(c) || is_digit(c) || c == '.'; }

static int peek_char(const parser *p, size_t ahead) {
    return p->pos + ahead < p->len ? (unsigned char)p->src[p->pos + ahead] : -1;
}

static void skip_space(parser *p) {
    for (;;) {
        int c = peek_char(p, 0);
        if (c == '\n') {
            p->pos++;
            p->line++;
            p->line_start = p->pos;
        } else if (c == ' ' || c == '\t' || c == '\r') {
            p->pos++;
        } else if (c == '#') {
            while (peek_char(p, 0) != -1 && peek_char(p, 0) != '\n')
                p->pos++;
        } else {
            return;
        }
    }
}

/* A number is lexed like a C preprocessing number (digits, letters, dots and
 * an exponent sign) and then judged whole, so "1.5f" or "12ab" is one bad
 * token rather than a number followed by a stray name. */
static void lex_number(parser *p, token *t) {
    size_t start = p->pos;
    if (peek_char(p, 0) == '-')
        p->pos++;
    if (!is_digit(peek_char(p, 0)) && !(peek_char(p, 0) == '.' && is_digit(peek_char(p, 1))))
        error_at(p, t, "expected a digit after '-'");
    for (;;) {
        int c = peek_char(p, 0);
        bool exponent_sign = (c == '+' || c == '-') && strchr("eEpP", p->src[p->pos - 1]);
        if (is_name_char(c) || exponent_sign)
            p->pos++;
        else
            break;
    }
    t->len = (int)(p->pos - start);
    if (t->len > MAX_NUMBER)
        error_at(p, t, "number too long (more than %d characters)", MAX_NUMBER);
    char text[MAX_NUMBER + 1];
    memcpy(text, t->text, (size_t)t->len);
    text[t->len] = 0;

    size_t digits = text[0] == '-';
    while (is_digit(text[digits]))
        digits++;
    char *end;
    if (digits == (size_t)t->len) {
        t->kind = TK_INT;
        errno = 0;
        t->i = strtoll(text, &end, 10);
        if (errno == ERANGE)
            error_at(p, t, "integer %s is out of range (64-bit)", text);
    } else {
        t->kind = TK_FLOAT;
    }
    errno = 0;
    t->f = strtod(text, &end);
    if (*end)
        error_at(p, t, "malformed number '%s'", text);
    if (errno == ERANGE && (t->f > 1 || t->f < -1))
        error_at(p, t, "number %s is out of range (double)", text);
}

static void next(parser *p) {
    skip_space(p);
    token *t = &p->tok;
    memset(t, 0, sizeof *t);
    t->text = p->src + p->pos;
    t->line = p->line;
    t->col = (int)(p->pos - p->line_start) + 1;
    t->line_start = p->line_start;
    int c = peek_char(p, 0);
    if (c == -1) {
        /* Report "found end of file" right after the last token, not on an
         * empty last line. */
        t->kind = TK_EOF;
        t->line = p->end_line;
        t->col = p->end_col;
        t->line_start = p->end_line_start;
        return;
    }
    if (is_alpha(c)) {
        t->kind = TK_IDENT;
        while (is_alpha(peek_char(p, 0)) || is_digit(peek_char(p, 0)))
            p->pos++;
        t->len = (int)(p->pos - (size_t)(t->text - p->src));
    } else if (c == '%') {
        t->kind = TK_VALUE;
        p->pos++;
        t->text++;
        while (is_name_char(peek_char(p, 0)))
            p->pos++;
        t->len = (int)(p->pos - (size_t)(t->text - p->src));
        if (t->len == 0)
            error_at(p, t, "expected a name after '%%' (letters, digits, '_' or '.')");
    } else if (is_digit(c) || c == '-' || (c == '.' && is_digit(peek_char(p, 1)))) {
        lex_number(p, t);
    } else if (c && strchr("=(){}[],:", c)) {
        t->kind = TK_PUNCT;
        t->len = 1;
        p->pos++;
    } else if (c >= 0x20 && c < 0x7f) {
        error_at(p, t, "unexpected character '%c'", c);
    } else {
        error_at(p, t, "unexpected byte 0x%02x", (unsigned)c);
    }
    if (t->len > MAX_NAME && t->kind != TK_INT && t->kind != TK_FLOAT)
        error_at(p, t, "name too long (more than %d characters)", MAX_NAME);
    p->end_line = p->line;
    p->end_col = (int)(p->pos - p->line_start) + 1;
    p->end_line_start = p->line_start;
}

static bool is_punct(const parser *p, char c) {
    return p->tok.kind == TK_PUNCT && p->tok.text[0] == c;
}

static bool is_ident(const parser *p, const char *word) {
    return p->tok.kind == TK_IDENT && (size_t)p->tok.len == strlen(word) &&
           memcmp(p->tok.text, word, (size_t)p->tok.len) == 0;
}

/* Consumes punctuation c, or fails with "expected <what>". */
static void expect(parser *p, char c, const char *what) {
    if (!is_punct(p, c))
        error_expected(p, what);
    next(p);
}

/* ---- names ---------------------------------------------------------------- */

static int find_value(const parser *p, const token *t) {
    return mx_graph_value_find_n(p->g, t->text, (size_t)t->len);
}

static void add_value_name(parser *p, int value, const token *t) {
    mx_value_set_name_n(p->g, value, t->text, (size_t)t->len);
}

/* A value used as an input or output: it must be defined above. */
static int parse_use(parser *p) {
    if (p->tok.kind != TK_VALUE)
        error_expected(p, "a value ('%name')");
    int v = find_value(p, &p->tok);
    if (v == MX_NONE)
        error_at(p, &p->tok, "%%%.*s is not defined (values must be defined before they are used)",
                 p->tok.len, p->tok.text);
    next(p);
    return v;
}

/* ---- types ---------------------------------------------------------------- */

/* type = dtype "[" [ dim { "," dim } ] "]" */
static mx_type parse_type(parser *p) {
    mx_type type = {.rank = 0};
    if (p->tok.kind != TK_IDENT)
        error_expected(p, "a type such as f32[2,3]");
    int d = 0;
    while (d < MX_DTYPE_COUNT && !is_ident(p, mx_dtype_names[d]))
        d++;
    if (d == MX_DTYPE_COUNT)
        error_at(p, &p->tok, "unknown dtype '%.*s' (expected f32, f16 or bf16)", p->tok.len,
                 p->tok.text);
    type.dtype = (mx_dtype)d;
    next(p);
    expect(p, '[', "'[' after the dtype");
    int64_t elems = 1;
    while (!is_punct(p, ']')) {
        if (type.rank > 0)
            expect(p, ',', "',' or ']' in the type");
        if (p->tok.kind != TK_INT)
            error_expected(p, "a dimension (a positive integer)");
        if (type.rank == MX_MAX_RANK)
            error_at(p, &p->tok, "rank exceeds the limit of %d", MX_MAX_RANK);
        int64_t dim = p->tok.i;
        if (dim < 1)
            error_at(p, &p->tok, "dimension %" PRId64 " must be at least 1", dim);
        if (dim > MAX_ELEMS)
            error_at(p, &p->tok, "dimension %" PRId64 " exceeds the limit of 2^40", dim);
        if (elems > MAX_ELEMS / dim)
            error_at(p, &p->tok, "the type has more than 2^40 elements");
        elems *= dim;
        type.dim[type.rank++] = dim;
        next(p);
    }
    next(p);
    return type;
}

/* ---- attributes ----------------------------------------------------------- */

static int find_keyword(const char *const *names, const token *t) {
    for (int k = 0; names[k]; k++)
        if (strlen(names[k]) == (size_t)t->len && memcmp(names[k], t->text, (size_t)t->len) == 0)
            return k;
    return -1;
}

static int64_t parse_int(parser *p, const char *key) {
    if (p->tok.kind != TK_INT) {
        char found[64];
        error_at(p, &p->tok, "attribute '%s' expects an integer, found %s", key,
                 describe(&p->tok, found, sizeof found));
    }
    int64_t v = p->tok.i;
    next(p);
    return v;
}

static int64_t parse_keyword(parser *p, const mx_attr_spec *spec) {
    const char *key = mx_attr_names[spec->key];
    char expected[256] = "";
    for (int k = 0; spec->names[k]; k++)
        snprintf(expected + strlen(expected), sizeof expected - strlen(expected), "%s%s",
                 k ? ", " : "", spec->names[k]);
    if (p->tok.kind != TK_IDENT) {
        char found[64];
        error_at(p, &p->tok, "attribute '%s' expects a keyword (%s), found %s", key, expected,
                 describe(&p->tok, found, sizeof found));
    }
    int k = find_keyword(spec->names, &p->tok);
    if (k < 0)
        error_at(p, &p->tok, "'%.*s' is not a keyword of attribute '%s' (expected %s)", p->tok.len,
                 p->tok.text, key, expected);
    next(p);
    return k;
}

/* "[" [ item { "," item } ] "]", items ints or keywords of spec. */
static int parse_list(parser *p, const mx_attr_spec *spec, int64_t *items) {
    expect(p, '[', "'[' to start a list");
    int n = 0;
    while (!is_punct(p, ']')) {
        if (n > 0)
            expect(p, ',', "',' or ']' in the list");
        if (n == MAX_LIST)
            error_at(p, &p->tok, "list too long (at most %d items)", MAX_LIST);
        items[n++] = spec->kind == MX_AK_INTS ? parse_int(p, mx_attr_names[spec->key])
                                              : parse_keyword(p, spec);
    }
    next(p);
    return n;
}

static void parse_attr_value(parser *p, int node, const mx_attr_spec *spec) {
    const char *key = mx_attr_names[spec->key];
    switch (spec->kind) {
    case MX_AK_INT:
        mx_node_set_int(p->g, node, spec->key, parse_int(p, key));
        return;
    case MX_AK_ENUM:
        mx_node_set_int(p->g, node, spec->key, parse_keyword(p, spec));
        return;
    case MX_AK_FLOAT:
        if (p->tok.kind != TK_INT && p->tok.kind != TK_FLOAT) {
            char found[64];
            error_at(p, &p->tok, "attribute '%s' expects a number, found %s", key,
                     describe(&p->tok, found, sizeof found));
        }
        mx_node_set_float(p->g, node, spec->key, p->tok.f);
        next(p);
        return;
    case MX_AK_INTS:
    case MX_AK_ENUMS: {
        int64_t items[MAX_LIST];
        int n = parse_list(p, spec, items);
        mx_node_set_ints(p->g, node, spec->key, items, n);
        return;
    }
    }
}

/* attrs = "{" [ attr { "," attr } ] "}", attr = key "=" value. Keys come in
 * any order; each at most once; required ones must be there. */
static void parse_attrs(parser *p, int node, const token *op_tok) {
    mx_op op = p->g->nodes[node].op;
    const mx_attr_spec *schema = mx_ops[op].attrs;
    token seen[MX_MAX_ATTRS] = {0};
    if (is_punct(p, '{')) {
        next(p);
        for (int given = 0; !is_punct(p, '}'); given++) {
            if (given > 0)
                expect(p, ',', "',' or '}' after an attribute");
            if (p->tok.kind != TK_IDENT)
                error_expected(p, "an attribute name");
            token key = p->tok;
            int slot = 0;
            while (schema[slot].key != MX_A_NONE &&
                   !is_ident(p, mx_attr_names[schema[slot].key]))
                slot++;
            if (schema[slot].key == MX_A_NONE)
                error_at(p, &key, "unknown attribute '%.*s' for %s", key.len, key.text,
                         mx_ops[op].name);
            if (seen[slot].text)
                error_at(p, &key, "duplicate attribute '%.*s' (first given at column %d)", key.len,
                         key.text, seen[slot].col);
            seen[slot] = key;
            next(p);
            expect(p, '=', "'=' after the attribute name");
            parse_attr_value(p, node, &schema[slot]);
        }
        next(p);
    }
    for (int slot = 0; schema[slot].key != MX_A_NONE; slot++)
        if (schema[slot].required && !seen[slot].text)
            error_at(p, op_tok, "%s needs attribute '%s'", mx_ops[op].name,
                     mx_attr_names[schema[slot].key]);
}

/* ---- statements ----------------------------------------------------------- */

/* "1 input", "2 to 3 inputs", "at least 1 input" in arity messages. */
static const char *count_range(int lo, int hi, const char *noun, char *buf, size_t size) {
    const char *s = hi == 1 ? "" : "s";
    if (lo == hi)
        snprintf(buf, size, "%d %s%s", lo, noun, s);
    else
        snprintf(buf, size, "%d to %d %ss", lo, hi, noun);
    return buf;
}

/* args = "(" [ arg { "," arg } ] ")", arg = value | "_". Returns the count
 * with trailing absent inputs dropped, the canonical form. */
static int parse_args(parser *p, mx_op op, int *args) {
    const mx_op_desc *desc = &mx_ops[op];
    char range[64];
    count_range(desc->min_in, desc->max_in, "input", range, sizeof range);
    expect(p, '(', "'(' after the op name");
    int n = 0, present = 0;
    while (!is_punct(p, ')')) {
        if (n > 0)
            expect(p, ',', "',' or ')' after an input");
        if (n == desc->max_in)
            error_at(p, &p->tok, "too many inputs: %s takes %s", desc->name, range);
        if (is_ident(p, "_")) {
            if (n < desc->min_in)
                error_at(p, &p->tok,
                         "input %d of %s is required; '_' marks an absent optional input", n + 1,
                         desc->name);
            args[n++] = MX_NONE;
            next(p);
        } else {
            args[n++] = parse_use(p);
            present = n;
        }
    }
    if (n < desc->min_in)
        error_at(p, &p->tok, "too few inputs: %s takes %s, got %d", desc->name, range, n);
    next(p);
    return present;
}

/* stmt = result { "," result } "=" op args [ attrs ] ":" type { "," type } */
static void parse_node(parser *p) {
    int line = p->tok.line;
    token results[MAX_RESULTS];
    int n_out = 0;
    for (;;) {
        if (p->tok.kind != TK_VALUE)
            error_expected(p, "a result name ('%name')");
        if (n_out == MAX_RESULTS)
            error_at(p, &p->tok, "too many results (at most %d)", MAX_RESULTS);
        int v = find_value(p, &p->tok);
        if (v != MX_NONE)
            error_at(p, &p->tok, "%%%.*s is already defined at line %d", p->tok.len, p->tok.text,
                     p->g->nodes[p->g->values[v].node].line);
        for (int i = 0; i < n_out; i++)
            if (results[i].len == p->tok.len &&
                memcmp(results[i].text, p->tok.text, (size_t)p->tok.len) == 0)
                error_at(p, &p->tok, "%%%.*s is named twice", p->tok.len, p->tok.text);
        results[n_out++] = p->tok;
        next(p);
        if (!is_punct(p, ','))
            break;
        next(p);
    }
    expect(p, '=', "'=' after the results");

    token op_tok = p->tok;
    if (op_tok.kind != TK_IDENT)
        error_expected(p, "an op name");
    mx_op op = mx_op_find(op_tok.text, (size_t)op_tok.len);
    if (op == MX_OP_COUNT)
        error_at(p, &op_tok, "unknown op '%.*s'", op_tok.len, op_tok.text);
    const mx_op_desc *desc = &mx_ops[op];
    if (n_out < desc->min_out || n_out > desc->max_out) {
        char range[64];
        error_at(p, &op_tok, "wrong number of results: %s gives %s, %d written", desc->name,
                 count_range(desc->min_out, desc->max_out, "result", range, sizeof range), n_out);
    }
    next(p);

    int args[MAX_ARGS];
    int n_in = parse_args(p, op, args);
    int node = mx_graph_add_node(p->g, op, args, n_in, n_out);
    p->g->nodes[node].line = line;
    parse_attrs(p, node, &op_tok);

    expect(p, ':', "':' and the result types");
    token type_tok[MAX_RESULTS];
    mx_type types[MAX_RESULTS];
    for (int i = 0; i < n_out; i++) {
        if (i > 0)
            expect(p, ',', "',' and the type of the next result");
        type_tok[i] = p->tok;
        types[i] = parse_type(p);
    }
    if (is_punct(p, ','))
        error_at(p, &p->tok, "more types than results (%d)", n_out);

    /* Sources are what they declare; every other op's types are inferred and
     * the text must agree, so a printed graph documents its shapes. */
    bool source = desc->fusion == MX_FUSE_SOURCE;
    for (int i = 0; source && i < n_out; i++)
        p->g->values[mx_node_output(p->g, node, i)].type = types[i];
    for (int i = 0; i < n_out; i++)
        add_value_name(p, mx_node_output(p->g, node, i), &results[i]);
    mx_diag inner;
    if (mx_graph_infer_node(p->g, node, &inner) != MX_OK)
        error_at(p, &op_tok, "%s", inner.msg);
    for (int i = 0; i < n_out; i++) {
        const mx_type *got = mx_value_type(p->g, mx_node_output(p->g, node, i));
        if (!mx_type_equal(got, &types[i])) {
            char want_s[96], got_s[96];
            error_at(p, &type_tok[i], "declared %s but the op gives %s",
                     mx_type_str(&types[i], want_s, sizeof want_s),
                     mx_type_str(got, got_s, sizeof got_s));
        }
    }
}

/* output = "output" value { "," value } */
static void parse_output(parser *p) {
    next(p);
    mx_graph_add_output(p->g, parse_use(p));
    while (is_punct(p, ',')) {
        next(p);
        mx_graph_add_output(p->g, parse_use(p));
    }
}

/* file = "graph" name "{" { stmt | output } "}" */
static void parse_graph(parser *p) {
    next(p);
    if (!is_ident(p, "graph"))
        error_expected(p, "'graph <name> {'");
    next(p);
    if (p->tok.kind != TK_IDENT)
        error_expected(p, "the graph's name");
    char name[MAX_NAME + 1];
    snprintf(name, sizeof name, "%.*s", p->tok.len, p->tok.text);
    p->g = mx_graph_new(name);
    next(p);
    expect(p, '{', "'{' after the graph's name");
    while (!is_punct(p, '}')) {
        if (p->tok.kind == TK_VALUE)
            parse_node(p);
        else if (is_ident(p, "output"))
            parse_output(p);
        else
            error_expected(p, "a statement ('%name = op(...)', 'output %name' or '}')");
    }
    if (p->g->n_outputs == 0)
        error_at(p, &p->tok, "graph %s has no output (add a line 'output %%name')", p->g->name);
    next(p);
    if (p->tok.kind != TK_EOF) {
        char found[64];
        error_at(p, &p->tok, "unexpected %s after the end of the graph",
                 describe(&p->tok, found, sizeof found));
    }
}

/* Kept apart from parse_text so that no local variable lives across the
 * setjmp (their values would be unspecified after the longjmp). */
static bool run_parser(parser *p) {
    if (setjmp(p->fail))
        return false;
    parse_graph(p);
    return true;
}

static mx_graph *parse_text(const char *text, size_t len, const char *filename, mx_diag *diag) {
    parser p = {.src = text, .len = len, .line = 1, .end_line = 1, .end_col = 1};
    p.filename = filename ? filename : "<input>";
    p.diag = diag;
    bool ok = run_parser(&p);
    mx_diag inner;
    if (ok && mx_graph_verify(p.g, &inner) != MX_OK) {
        mx_fail(diag, MX_ERR_INVALID, "%s: error: %s", p.filename, inner.msg);
        ok = false;
    }
    if (ok)
        return p.g;
    mx_graph_free(p.g);
    return NULL;
}

mx_graph *mx_graph_parse(const char *text, const char *filename, mx_diag *diag) {
    return parse_text(text, strlen(text), filename, diag);
}

mx_graph *mx_graph_load(const char *path, mx_diag *diag) {
    size_t len;
    char *text = mx_read_file(path, &len, diag);
    mx_graph *g = text ? parse_text(text, len, path, diag) : NULL;
    free(text);
    return g;
}
