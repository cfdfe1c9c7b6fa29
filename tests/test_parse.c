/* test_parse.c: the parser's errors say what is wrong and exactly where.
 *
 * Each malformed text, inline or a file of tests/bad/, is checked for its
 * "file:line:col: error: " prefix and a substring of its message; a few are
 * checked whole, caret line included. Files of tests/bad/ carry their
 * expectation in the first line: "# expect: LINE:COL: message substring".
 * Then a valid text is cut and mutated at every byte: the parser must fail
 * cleanly, never crash (the suite runs under ASan and UBSan). */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "ir.h"

/* Two lines of preamble, so the statement under test is on line 3. */
#define HEAD "graph g {\n  %x = input() : f32[2,8]\n"

typedef struct {
    const char *text;
    int line, col;
    const char *want;
} bad_text;

static const bad_text bad_texts[] = {
    {"", 1, 1, "expected 'graph <name> {', found end of file"},
    {"# only a comment\n", 1, 1, "expected 'graph <name> {', found end of file"},
    {"%x = input() : f32[2]\n", 1, 1, "expected 'graph <name> {', found '%x'"},
    {"graph {\n}", 1, 7, "expected the graph's name, found '{'"},
    {HEAD "  %y = silu(%q) : f32[2,8]\n  output %y\n}\n", 3, 13, "%q is not defined"},
    {HEAD "  %y = silu(%x) {axis=1} : f32[2,8]\n  output %y\n}\n", 3, 18,
     "unknown attribute 'axis' for silu"},
    {HEAD "  %y = reduce(%x) {kind=sum, axis=0.5} : f32[8]\n  output %y\n}\n", 3, 35,
     "attribute 'axis' expects an integer, found '0.5'"},
    {HEAD "  %y = reduce(%x) {kind=sum, axis=row} : f32[8]\n  output %y\n}\n", 3, 35,
     "attribute 'axis' expects an integer, found 'row'"},
    {HEAD "  %y = gelu(%x) {approx=fast} : f32[2,8]\n  output %y\n}\n", 3, 25,
     "'fast' is not a keyword of attribute 'approx' (expected erf, tanh)"},
    {HEAD "  %y = gelu(%x) {approx=1} : f32[2,8]\n  output %y\n}\n", 3, 25,
     "attribute 'approx' expects a keyword (erf, tanh), found '1'"},
    {HEAD "  %y = scan_gather(%x) {order=row, h=2, w=4, order=col} : f32[2,8]\n  output %y\n}\n",
     3, 46, "duplicate attribute 'order'"},
    {HEAD "  %y = scan_scatter(%x) {orders=[row, sideways], h=2, w=4} : f32[2,8]\n"
          "  output %y\n}\n",
     3, 39, "'sideways' is not a keyword of attribute 'orders'"},
    {HEAD "  %y = reduce(%x) {kind=sum, axis=9} : f32[8]\n  output %y\n}\n", 3, 8,
     "node %y (reduce): attribute axis = 9 is out of range [-5, 4]"},
    {HEAD "  %c = const() {value=1e19} : f32[2]\n  output %c\n}\n", 3, 8,
     "attribute value = 1e+19 is out of range"},
    {HEAD "  %y = reduce(%x) : f32[8]\n  output %y\n}\n", 3, 8, "reduce needs attribute 'kind'"},
    {HEAD "  %a, %b = silu(%x) : f32[2,8], f32[2,8]\n  output %a\n}\n", 3, 12,
     "wrong number of results: silu gives 1 result, 2 written"},
    {HEAD "  %a, %a = split(%x) {sizes=[4,4]} : f32[2,4], f32[2,4]\n  output %a\n}\n", 3, 7,
     "%a is named twice"},
    {HEAD "  %y = add(%x) : f32[2,8]\n  output %y\n}\n", 3, 14,
     "too few inputs: add takes 2 inputs, got 1"},
    {HEAD "  %y = linear(%x, %x, %x, %x) : f32[2,8]\n  output %y\n}\n", 3, 27,
     "too many inputs: linear takes 2 to 3 inputs"},
    {HEAD "  %y = add(%x, _) : f32[2,8]\n  output %y\n}\n", 3, 16,
     "input 2 of add is required; '_' marks an absent optional input"},
    {HEAD "  %y = silu(%x) f32[2,8]\n  output %y\n}\n", 3, 17,
     "expected ':' and the result types, found 'f32'"},
    {HEAD "  %y = silu(%x) : f32[2,9]\n  output %y\n}\n", 3, 19,
     "declared f32[2,9] but the op gives f32[2,8]"},
    {HEAD "  %y = cast(%x) {dtype=f16} : f32[2,8]\n  output %y\n}\n", 3, 31,
     "declared f32[2,8] but the op gives f16[2,8]"},
    {HEAD "  %y = input() : f64[2]\n  output %y\n}\n", 3, 18,
     "unknown dtype 'f64' (expected f32, f16 or bf16)"},
    {HEAD "  %y = input() : f32[1,2,1,2,1,2]\n  output %y\n}\n", 3, 32,
     "rank exceeds the limit of 5"},
    {HEAD "  %y = input() : f32[2,0]\n  output %y\n}\n", 3, 24, "dimension 0 must be at least 1"},
    {HEAD "  %y = input() : f32[-3]\n  output %y\n}\n", 3, 22, "dimension -3 must be at least 1"},
    {HEAD "  %y = input() : f32[99999999999999999999]\n  output %y\n}\n", 3, 22,
     "integer 99999999999999999999 is out of range (64-bit)"},
    {HEAD "  %y = input() : f32[2199023255552]\n  output %y\n}\n", 3, 22,
     "dimension 2199023255552 exceeds the limit of 2^40"},
    {HEAD "  %y = input() : f32[1048576,1048576,2]\n  output %y\n}\n", 3, 38,
     "the type has more than 2^40 elements"},
    {HEAD "  %y = input() : f32[2.5]\n  output %y\n}\n", 3, 22,
     "expected a dimension (a positive integer), found '2.5'"},
    {HEAD "  %y = input() : f32[2,8\n  output %y\n}\n", 4, 3,
     "expected ',' or ']' in the type, found 'output'"},
    {HEAD "  %y = input() : f32\n  output %y\n}\n", 4, 3,
     "expected '[' after the dtype, found 'output'"},
    {HEAD "  %y = split(%x) {sizes=[8] : f32[2,8]\n  output %y\n}\n", 3, 29,
     "expected ',' or '}' after an attribute, found ':'"},
    {HEAD "  %y = split(%x) {sizes=[4,4", 3, 29,
     "expected ',' or ']' in the list, found end of file"},
    {HEAD "  %y = split(%x", 3, 16, "expected ',' or ')' after an input, found end of file"},
    {HEAD "  %y = silu(%x) : f32[2,8], f32[2,8]\n  output %y\n}\n", 3, 27,
     "more types than results (1)"},
    {HEAD "  %a, %b = split(%x) {sizes=[4,4]} : f32[2,4]\n  output %a\n}\n", 4, 3,
     "expected ',' and the type of the next result, found 'output'"},
    {HEAD "  %c = const() {value=1.5f} : f32[2]\n  output %c\n}\n", 3, 23,
     "malformed number '1.5f'"},
    {HEAD "  %c = const() {value=1e999} : f32[2]\n  output %c\n}\n", 3, 23,
     "number 1e999 is out of range (double)"},
    {HEAD "  %c = const() {value=-x} : f32[2]\n  output %c\n}\n", 3, 23,
     "expected a digit after '-'"},
    {HEAD "  %c = const() {value=x} : f32[2]\n  output %c\n}\n", 3, 23,
     "attribute 'value' expects a number, found 'x'"},
    {HEAD "  %y = neg(%x) : f32[2,8] $\n  output %y\n}\n", 3, 27, "unexpected character '$'"},
    {HEAD "  % = neg(%x) : f32[2,8]\n  output %x\n}\n", 3, 3, "expected a name after '%'"},
    {HEAD "  output %x, %nope\n}\n", 3, 14, "%nope is not defined"},
    {HEAD "  output\n}\n", 4, 1, "expected a value ('%name'), found '}'"},
    {HEAD "  %y neg(%x) : f32[2,8]\n  output %y\n}\n", 3, 6,
     "expected '=' after the results, found 'neg'"},
    {HEAD "  %y = 12(%x) : f32[2,8]\n  output %y\n}\n", 3, 8, "expected an op name, found '12'"},
    {HEAD "  input() : f32[2]\n  output %x\n}\n", 3, 3,
     "expected a statement ('%name = op(...)', 'output %name' or '}'), found 'input'"},
    {HEAD "  %y = neg(%x)\n  output %y\n}\n", 4, 3,
     "expected ':' and the result types, found 'output'"},
    {HEAD "  %p, %q = split(%x) {sizes=[3,5], axis=1} : f32[2,3], f32[2,5]\n"
          "  %r = concat(%p, %q) {axis=0} : f32[4,8]\n  output %r\n}\n",
     4, 8, "node %r (concat): "},
};

/* msg starts with "file:line:col: error: " and holds want. */
static void check_error(const char *msg, const char *file, int line, int col, const char *want) {
    char prefix[4200];
    snprintf(prefix, sizeof prefix, "%s:%d:%d: error: ", file, line, col);
    CHECK_MSG(strncmp(msg, prefix, strlen(prefix)) == 0 && strstr(msg, want),
              "want %s... %s\ngot %s", prefix, want, msg);
}

static void check_bad_texts(void) {
    for (size_t i = 0; i < sizeof bad_texts / sizeof bad_texts[0]; i++) {
        const bad_text *b = &bad_texts[i];
        mx_diag d = {{0}};
        mx_graph *g = mx_graph_parse(b->text, "t.mxir", &d);
        CHECK_MSG(g == NULL, "case %zu parsed: %s", i, b->text);
        mx_graph_free(g);
        check_error(d.msg, "t.mxir", b->line, b->col, b->want);
    }
}

/* Whole messages, to pin the source line and the caret under the token. */
static void check_carets(void) {
    static const struct {
        const char *text, *want;
    } cases[] = {
        {HEAD "  %h = lineer(%x, %W)\n  output %h\n}\n",
         "t.mxir:3:8: error: unknown op 'lineer'\n"
         "  %h = lineer(%x, %W)\n"
         "       ^"},
        {HEAD "\t%y = silu(%x) : f32[2,9]\n  output %y\n}\n",
         "t.mxir:3:18: error: declared f32[2,9] but the op gives f32[2,8]\n"
         "\t%y = silu(%x) : f32[2,9]\n"
         "\t                ^"},
        {HEAD "  %y = reduce(%x) {kind=avg} : f32[2]\n  output %y\n}\n",
         "t.mxir:3:25: error: 'avg' is not a keyword of attribute 'kind' (expected sum, mean, "
         "max, var)\n"
         "  %y = reduce(%x) {kind=avg} : f32[2]\n"
         "                        ^"},
        {HEAD "  %y = silu(%x) : f32[2,8]\n  output %y\n",
         "t.mxir:4:12: error: expected a statement ('%name = op(...)', 'output %name' or '}'), "
         "found end of file\n"
         "  output %y\n"
         "           ^"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        mx_diag d = {{0}};
        mx_graph *g = mx_graph_parse(cases[i].text, "t.mxir", &d);
        CHECK(g == NULL);
        CHECK_MSG(strcmp(d.msg, cases[i].want) == 0, "want\n%s\ngot\n%s", cases[i].want, d.msg);
    }
}

/* A 100000-column line: the message is clipped around the column and the
 * caret still sits under the token. */
static void check_long_line(void) {
    size_t pad = 100000;
    size_t len = strlen(HEAD) + pad + 64;
    char *text = malloc(len);
    char *at = text + strlen(strcpy(text, HEAD));
    memset(at, ' ', pad);
    strcpy(at + pad, "@ = input() : f32[2]\n}\n");
    mx_diag d = {{0}};
    CHECK(mx_graph_parse(text, "t.mxir", &d) == NULL);
    check_error(d.msg, "t.mxir", 3, (int)pad + 1, "unexpected character '@'");
    const char *source = strchr(d.msg, '\n'), *caret = source ? strchr(source + 1, '\n') : NULL;
    CHECK(source && caret && strncmp(source + 1, "...", 3) == 0);
    CHECK(caret && strchr(caret + 1, '^') - caret == strchr(source + 1, '@') - source);
    free(text);
}

/* The limits of ir/parse.c, each one past its bound. */
static void check_limits(void) {
    char text[4096], *at;
    mx_diag d = {{0}};

    at = text + strlen(strcpy(text, HEAD "  %"));
    memset(at, 'n', 300);
    strcpy(at + 300, " = input() : f32[2]\n  output %x\n}\n");
    CHECK(mx_graph_parse(text, "t.mxir", &d) == NULL);
    check_error(d.msg, "t.mxir", 3, 3, "name too long (more than 256 characters)");

    at = text + strlen(strcpy(text, HEAD "  %y = split(%x) {sizes=[1"));
    for (int i = 1; i < 65; i++)
        at += strlen(strcpy(at, ",1"));
    strcpy(at, "]} : f32[2,8]\n  output %y\n}\n");
    CHECK(mx_graph_parse(text, "t.mxir", &d) == NULL);
    check_error(d.msg, "t.mxir", 3, 26 + 2 * 64, "list too long (at most 64 items)");

    at = text + strlen(strcpy(text, HEAD "  %r0"));
    for (int i = 1; i < 17; i++)
        at += sprintf(at, ", %%r%d", i);
    strcpy(at, " = split(%x) {sizes=[1]} : f32[2,1]\n  output %r0\n}\n");
    CHECK(mx_graph_parse(text, "t.mxir", &d) == NULL);
    check_error(d.msg, "t.mxir", 3, (int)strlen("  %r0") + 2 + 5 * 9 + 6 * 6 + 1,
                "too many results (at most 16)");
}

static void check_bad_files(void) {
    const char *dir_path = MIXC_SOURCE_DIR "/tests/bad";
    DIR *dir = opendir(dir_path);
    CHECK_MSG(dir != NULL, "cannot open %s", dir_path);
    if (!dir)
        return;
    int files = 0;
    for (struct dirent *e; (e = readdir(dir));) {
        size_t len = strlen(e->d_name);
        if (len <= 5 || strcmp(e->d_name + len - 5, ".mxir") != 0)
            continue;
        files++;
        char path[4096], first[512] = "", want[512];
        snprintf(path, sizeof path, "%s/%s", dir_path, e->d_name);
        FILE *f = fopen(path, "rb");
        if (f) {
            if (!fgets(first, sizeof first, f))
                first[0] = 0;
            fclose(f);
        }
        int line, col;
        if (sscanf(first, "# expect: %d:%d: %511[^\n]", &line, &col, want) != 3) {
            CHECK_MSG(0, "%s: the first line must be '# expect: LINE:COL: message'", path);
            continue;
        }
        mx_diag d = {{0}};
        mx_graph *g = mx_graph_load(path, &d);
        CHECK_MSG(g == NULL, "%s parsed", path);
        mx_graph_free(g);
        check_error(d.msg, path, line, col, want);
    }
    closedir(dir);
    CHECK_MSG(files >= 10, "tests/bad holds %d .mxir files", files);
}

static void check_io_error(void) {
    mx_diag d = {{0}};
    CHECK(mx_graph_load("/nonexistent/dir/g.mxir", &d) == NULL);
    CHECK_MSG(strstr(d.msg, "/nonexistent/dir/g.mxir") && strstr(d.msg, "No such file"), "%s",
              d.msg);
    CHECK(mx_graph_load(MIXC_SOURCE_DIR "/tests", &d) == NULL);
    CHECK_MSG(strstr(d.msg, "/tests: error: cannot read: Is a directory"), "%s", d.msg);
}

static const char valid[] =
    "# a valid graph\n"
    "graph ok {\n"
    "  %x = input() : f32[2,8,4]\n"
    "  %layers.0.w = param() : f32[6,4]\n"
    "  %0 = linear(%x, %layers.0.w) : f32[2,8,6]\n"
    "  %a, %b = split(%0) {sizes=[2,4], axis=-1} : f32[2,8,2], f32[2,8,4]\n"
    "  %s = softplus(%b) {threshold=-1.5e-3} : f32[2,8,4]\n"
    "  %g = scan_gather(%s) {order=snake_rev, h=2, w=4, axis=1} : f32[2,8,4]\n"
    "  output %a, %g\n"
    "}\n";

/* Names, lines and attributes land where the text put them. */
static void check_valid(void) {
    mx_diag d = {{0}};
    mx_graph *g = mx_graph_parse(valid, "ok.mxir", &d);
    CHECK_MSG(g != NULL, "%s", d.msg);
    if (!g)
        return;
    CHECK(strcmp(g->name, "ok") == 0);
    int w = mx_graph_value_find(g, "layers.0.w"), lin = mx_graph_value_find(g, "0");
    CHECK(w == 1 && lin == 2);
    CHECK(g->nodes[g->values[lin].node].line == 5);
    int s = g->values[mx_graph_value_find(g, "s")].node;
    CHECK(mx_node_float(g, s, MX_A_THRESHOLD) == -1.5e-3);
    int gather = g->values[mx_graph_value_find(g, "g")].node;
    CHECK(mx_node_int(g, gather, MX_A_ORDER) == MX_ORDER_SNAKE_REV);
    CHECK(mx_node_int(g, gather, MX_A_AXIS) == 1);
    CHECK(g->n_outputs == 2 && g->outputs[1] == mx_graph_value_find(g, "g"));
    mx_graph_free(g);
}

/* Every prefix of a valid text, and the text with each byte replaced by a
 * troublesome one, must parse or fail with a located message. */
static void check_never_crashes(void) {
    size_t len = strlen(valid);
    char text[sizeof valid];
    int located = 0, attempts = 0;
    size_t closing = (size_t)(strrchr(valid, '}') - valid);
    for (size_t cut = 0; cut <= closing; cut++) {
        memcpy(text, valid, cut);
        text[cut] = 0;
        mx_diag d = {{0}};
        mx_graph *g = mx_graph_parse(text, "cut", &d);
        attempts++;
        located += g == NULL && strncmp(d.msg, "cut:", 4) == 0;
        mx_graph_free(g);
    }
    CHECK_MSG(located == attempts, "%d of %d prefixes failed with a location", located, attempts);
    static const char swaps[] = "%_,:[]{}()=-9.x# \n\t\x01\xff";
    for (size_t i = 0; i < len; i++)
        for (const char *c = swaps; *c; c++) {
            memcpy(text, valid, len + 1);
            text[i] = *c;
            mx_diag d = {{0}};
            mx_graph_free(mx_graph_parse(text, "swap", &d));
        }
    CHECK(1);
}

int main(void) {
    check_bad_texts();
    check_carets();
    check_long_line();
    check_limits();
    check_bad_files();
    check_io_error();
    check_valid();
    check_never_crashes();
    return check_summary();
}
