/* test_safetensors.c: params round-trip through a safetensors file, files
 * written by other tools (other dtypes, padding) load, and every kind of
 * malformed file fails with its own message, leaving the buffers untouched. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "half.h"
#include "ir.h"

#define BLOB_BYTES 86 /* w1 48 + w2 10 + w3 24 + layers.0.scale 4 */

static char path[] = "/tmp/mixc_test_st_XXXXXX";

static mx_graph *make_graph(void) {
    mx_graph *g = mx_graph_new("st_test");
    int x = mx_graph_add_source(g, MX_OP_INPUT, "x", (mx_type){MX_F32, 2, {2, 3}});
    mx_graph_add_source(g, MX_OP_PARAM, "w1", (mx_type){MX_F32, 2, {4, 3}});
    mx_graph_add_source(g, MX_OP_PARAM, "w2", (mx_type){MX_F16, 1, {5}});
    mx_graph_add_source(g, MX_OP_PARAM, "w3", (mx_type){MX_BF16, 3, {2, 3, 2}});
    mx_graph_add_source(g, MX_OP_PARAM, "layers.0.scale", (mx_type){MX_F32, 0, {0}});
    mx_graph_add_output(g, mx_node_output(g, x, 0));
    return g;
}

/* Params get seeded numbers in [-1, 1). */
static void fill_params(mx_buffers *b, const mx_graph *g) {
    for (int v = 0; v < g->n_values; v++)
        if (g->nodes[g->values[v].node].op == MX_OP_PARAM)
            check_fill(b->data[v], b->numel[v], -1.0f, 1.0f);
}

static void write_bytes(const void *bytes, size_t n) {
    FILE *f = fopen(path, "wb");
    CHECK(f && fwrite(bytes, 1, n, f) == n);
    if (f)
        fclose(f);
}

static void store_u64(unsigned char *p, uint64_t x) {
    for (int k = 0; k < 8; k++)
        p[k] = (unsigned char)(x >> (8 * k));
}

/* A file with the given header and blob (NULL: blob_len bytes of 0x3c). */
static void write_safetensors(const char *header, const unsigned char *blob, size_t blob_len) {
    size_t n = strlen(header);
    unsigned char *bytes = malloc(8 + n + blob_len);
    store_u64(bytes, n);
    memcpy(bytes + 8, header, n);
    if (blob)
        memcpy(bytes + 8 + n, blob, blob_len);
    else
        memset(bytes + 8 + n, 0x3c, blob_len);
    write_bytes(bytes, 8 + n + blob_len);
    free(bytes);
}

/* Buffers whose every value holds data: params seeded numbers, others 0. */
static mx_buffers *buffers_filled(const mx_graph *g) {
    mx_buffers *b = mx_buffers_new(g);
    for (int v = 0; v < g->n_values; v++)
        if (!b->data[v])
            b->data[v] = calloc((size_t)b->numel[v], sizeof(float));
    fill_params(b, g);
    return b;
}

/* ---- round trip ----------------------------------------------------------- */

static void test_round_trip(const mx_graph *g) {
    mx_buffers *src = buffers_filled(g), *dst = mx_buffers_new(g);
    mx_diag diag = {{0}};
    CHECK_MSG(mx_weights_save(g, src, path, &diag) == MX_OK, "%s", diag.msg);
    CHECK_MSG(mx_weights_load(g, dst, path, &diag) == MX_OK, "%s", diag.msg);
    for (int v = 0; v < g->n_values; v++) {
        const mx_value *val = &g->values[v];
        if (g->nodes[val->node].op != MX_OP_PARAM)
            continue;
        int exact = dst->data[v] != NULL;
        for (int64_t i = 0; exact && i < src->numel[v]; i++)
            exact = dst->data[v][i] == mx_round_to(val->type.dtype, src->data[v][i]);
        CHECK_MSG(exact, "param '%s' did not round-trip", val->name);
    }

    /* The layout other readers rely on: an 8-aligned header carrying our
     * metadata, the data right after it, no temp file left behind. */
    FILE *f = fopen(path, "rb");
    unsigned char len_bytes[8];
    CHECK(f && fread(len_bytes, 1, 8, f) == 8);
    uint64_t n = 0;
    for (int k = 0; k < 8; k++)
        n |= (uint64_t)len_bytes[k] << (8 * k);
    char header[1024] = "";
    CHECK(n % 8 == 0 && n < sizeof header && fread(header, 1, n, f) == n);
    CHECK(strstr(header, "\"__metadata__\":{\"format\":\"mixc\",\"graph\":\"st_test\"}"));
    CHECK(strstr(header, "\"w2\":{\"dtype\":\"F16\",\"shape\":[5],\"data_offsets\":[48,58]}"));
    CHECK(strstr(header,
                 "\"layers.0.scale\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[82,86]}"));
    if (f)
        fclose(f);
    struct stat st;
    CHECK(stat(path, &st) == 0 && (uint64_t)st.st_size == 8 + n + BLOB_BYTES);
    char tmp[sizeof path + 4];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    CHECK(access(tmp, F_OK) != 0);
    mx_buffers_free(src);
    mx_buffers_free(dst);
}

/* ---- files from elsewhere ------------------------------------------------- */

static void put_element(unsigned char *p, mx_dtype dtype, float x) {
    uint32_t bits = dtype == MX_F16    ? mx_f32_to_f16(x)
                    : dtype == MX_BF16 ? mx_f32_to_bf16(x)
                                       : mx_f32_bits(x);
    for (size_t k = 0; k < mx_dtype_size(dtype); k++)
        p[k] = (unsigned char)(bits >> (8 * k));
}

/* Dtypes other than the graph's, an unaligned header padded with spaces, a
 * gap in the data and a foreign metadata entry all load; each value ends up
 * rounded to its param's dtype. */
static void test_foreign_file(const mx_graph *g) {
    static const struct {
        const char *name;
        mx_dtype file_dtype;
        int begin;
    } layout[] = {
        {"w1", MX_BF16, 0}, {"w2", MX_F32, 32}, {"w3", MX_F16, 52}, {"layers.0.scale", MX_F16, 76}};
    const char *header =
        "{\"__metadata__\":{\"format\":\"pt\"},"
        "\"w3\":{\"dtype\":\"F16\",\"shape\":[2,3,2],\"data_offsets\":[52,76]},"
        "\"w1\":{\"dtype\":\"BF16\",\"shape\":[4,3],\"data_offsets\":[0,24]},"
        "\"w2\":{\"dtype\":\"F32\",\"shape\":[5],\"data_offsets\":[32,52]},"
        "\"layers.0.scale\":{\"dtype\":\"F16\",\"shape\":[],\"data_offsets\":[76,78]}}   ";
    unsigned char blob[78] = {0};
    float want[4][12];
    for (int t = 0; t < 4; t++) {
        int v = mx_graph_value_find(g, layout[t].name);
        mx_dtype graph_dtype = g->values[v].type.dtype;
        for (int64_t i = 0; i < mx_graph_value_numel(g, v); i++) {
            float x = check_uniform(-1, 1);
            put_element(blob + layout[t].begin + i * mx_dtype_size(layout[t].file_dtype),
                        layout[t].file_dtype, x);
            want[t][i] = mx_round_to(graph_dtype, mx_round_to(layout[t].file_dtype, x));
        }
    }
    write_safetensors(header, blob, sizeof blob);
    mx_buffers *b = mx_buffers_new(g);
    mx_diag diag = {{0}};
    CHECK_MSG(mx_weights_load(g, b, path, &diag) == MX_OK, "%s", diag.msg);
    for (int t = 0; t < 4; t++) {
        int v = mx_graph_value_find(g, layout[t].name);
        CHECK_MSG(b->data[v] &&
                      memcmp(b->data[v], want[t], (size_t)b->numel[v] * sizeof(float)) == 0,
                  "param '%s' from %s", layout[t].name, mx_dtype_names[layout[t].file_dtype]);
    }
    mx_buffers_free(b);
}

/* ---- malformed files ------------------------------------------------------ */

/* The valid entries for the test graph; cases swap one for a broken one. */
#define W1 "\"w1\":{\"dtype\":\"F32\",\"shape\":[4,3],\"data_offsets\":[0,48]}"
#define W2 "\"w2\":{\"dtype\":\"F16\",\"shape\":[5],\"data_offsets\":[48,58]}"
#define W3 "\"w3\":{\"dtype\":\"BF16\",\"shape\":[2,3,2],\"data_offsets\":[58,82]}"
#define SC "\"layers.0.scale\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[82,86]}"
#define REST W2 "," W3 "," SC
#define EMPTY(name) "\"" name "\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}"
#define VALID "{" W1 "," REST "}"
#define W1_WITH(dtype, shape, offsets)                                                             \
    "{\"w1\":{\"dtype\":" dtype ",\"shape\":" shape ",\"data_offsets\":" offsets "}," REST "}"

typedef struct {
    const char *what;
    const char *header;
    size_t blob_len;
    mx_status status;
    const char *expect; /* a substring of the message */
} bad_case;

static const bad_case bad_cases[] = {
    {"truncated blob", VALID, 84, MX_ERR_PARSE,
     "tensor 'layers.0.scale': data_offsets [82, 86) reach past the end of the data (84 bytes"},
    {"header not JSON", "{\"w1\": [1, 2", 0, MX_ERR_PARSE, "header is not valid JSON"},
    {"header not an object", "[1, 2]", 0, MX_ERR_PARSE, "header is not a JSON object"},
    {"text after the JSON", VALID " x", BLOB_BYTES, MX_ERR_PARSE,
     "header has text after its JSON value"},
    {"entry not an object", "{\"w1\":5," REST "}", BLOB_BYTES, MX_ERR_PARSE,
     "tensor 'w1': expected an object"},
    {"metadata not an object", "{\"__metadata__\":3," W1 "," REST "}", BLOB_BYTES, MX_ERR_PARSE,
     "\"__metadata__\" must be an object"},
    {"metadata value not a string", "{\"__metadata__\":{\"n\":3}," W1 "," REST "}", BLOB_BYTES,
     MX_ERR_PARSE, "\"__metadata__\": \"n\" must be a string"},
    {"missing dtype", "{\"w1\":{\"shape\":[4,3],\"data_offsets\":[0,48]}," REST "}", BLOB_BYTES,
     MX_ERR_PARSE, "tensor 'w1': missing \"dtype\""},
    {"dtype not a string", W1_WITH("32", "[4,3]", "[0,48]"), BLOB_BYTES, MX_ERR_PARSE,
     "tensor 'w1': \"dtype\" must be a string, not 32"},
    {"unsupported dtype", W1_WITH("\"I64\"", "[4,3]", "[0,48]"), BLOB_BYTES, MX_ERR_PARSE,
     "tensor 'w1': dtype 'I64' is not supported"},
    {"missing shape", "{\"w1\":{\"dtype\":\"F32\",\"data_offsets\":[0,48]}," REST "}", BLOB_BYTES,
     MX_ERR_PARSE, "tensor 'w1': missing \"shape\""},
    {"negative dim", W1_WITH("\"F32\"", "[-4,3]", "[0,48]"), BLOB_BYTES, MX_ERR_PARSE,
     "tensor 'w1': shape[0] must be a non-negative integer, not -4"},
    {"fractional dim", W1_WITH("\"F32\"", "[4,1.5]", "[0,48]"), BLOB_BYTES, MX_ERR_PARSE,
     "shape[1] must be a non-negative integer, not 1.5"},
    {"huge dim", W1_WITH("\"F32\"", "[1e300,3]", "[0,48]"), BLOB_BYTES, MX_ERR_PARSE,
     "shape[0] must be a non-negative integer, not 1e+300"},
    {"rank over 5", W1_WITH("\"F32\"", "[1,1,1,1,4,3]", "[0,48]"), BLOB_BYTES, MX_ERR_PARSE,
     "tensor 'w1': rank 6 is more than 5"},
    {"missing data_offsets", "{\"w1\":{\"dtype\":\"F32\",\"shape\":[4,3]}," REST "}", BLOB_BYTES,
     MX_ERR_PARSE, "tensor 'w1': missing \"data_offsets\""},
    {"data_offsets of one int", W1_WITH("\"F32\"", "[4,3]", "[48]"), BLOB_BYTES, MX_ERR_PARSE,
     "\"data_offsets\" must be [begin, end]"},
    {"data_offsets backwards", W1_WITH("\"F32\"", "[4,3]", "[48,0]"), BLOB_BYTES, MX_ERR_PARSE,
     "tensor 'w1': data_offsets [48, 0) run backwards"},
    {"data_offsets end past the blob", W1_WITH("\"F32\"", "[4,3]", "[0,4800]"), BLOB_BYTES,
     MX_ERR_PARSE, "tensor 'w1': data_offsets [0, 4800) reach past the end of the data (86 bytes"},
    {"byte size != numel * size", W1_WITH("\"F32\"", "[4,3]", "[0,44]"), BLOB_BYTES, MX_ERR_PARSE,
     "tensor 'w1': data_offsets span 44 bytes, but shape [4,3] of F32 needs 48"},
    {"byte size overflows", W1_WITH("\"F32\"", "[4294967296,4294967296,3]", "[0,48]"), BLOB_BYTES,
     MX_ERR_PARSE, "needs 18446744073709551615 or more"},
    {"overlapping offsets", W1_WITH("\"F32\"", "[4,3]", "[12,60]"), BLOB_BYTES, MX_ERR_PARSE,
     "tensors 'w1' [12, 60) and 'w2' [48, 58) overlap in the data"},
    {"duplicate name",
     "{" W1 "," REST ",\"w1\":{\"dtype\":\"F32\",\"shape\":[4,3],\"data_offsets\":[86,134]}}", 134,
     MX_ERR_PARSE, "tensor 'w1' appears twice in the header"},
    {"shape mismatch", W1_WITH("\"F32\"", "[3,4]", "[0,48]"), BLOB_BYTES, MX_ERR_INVALID,
     "param 'w1': file has shape [3,4], graph expects [4,3]"},
    {"rank mismatch",
     "{" W1 "," W2 "," W3 ",\"layers.0.scale\":{\"dtype\":\"F32\",\"shape\":[1],"
     "\"data_offsets\":[82,86]}}",
     BLOB_BYTES, MX_ERR_INVALID, "param 'layers.0.scale': file has shape [1], graph expects []"},
    {"missing tensor", "{" W1 "," W2 "," W3 "}", BLOB_BYTES, MX_ERR_INVALID,
     "param 'layers.0.scale' of graph 'st_test' is not in the file"},
    {"extra tensor",
     "{" W1 "," REST ",\"layers.0.sclae\":{\"dtype\":\"F32\",\"shape\":[],"
     "\"data_offsets\":[86,90]}}",
     90, MX_ERR_INVALID, "1 tensor is not in graph 'st_test': 'layers.0.sclae'"},
    {"many extra tensors",
     "{" W1 "," REST "," EMPTY("a") "," EMPTY("b") "," EMPTY("c") "," EMPTY("d") "," EMPTY("e") "}",
     BLOB_BYTES, MX_ERR_INVALID, "5 tensors are not in graph 'st_test': 'a', 'b', 'c', 'd', ..."},
};

/* Loads the file at path and checks the status, the message (the path first,
 * then expect) and that the buffers kept their values. */
static void expect_load_error(const mx_graph *g, mx_buffers *b, const char *what, mx_status status,
                              const char *expect) {
    float **before = calloc((size_t)g->n_values, sizeof *before);
    for (int v = 0; v < g->n_values; v++) {
        before[v] = malloc((size_t)b->numel[v] * sizeof(float));
        memcpy(before[v], b->data[v], (size_t)b->numel[v] * sizeof(float));
    }
    mx_diag diag = {{0}};
    mx_status got = mx_weights_load(g, b, path, &diag);
    CHECK_MSG(got == status, "%s: status %d, want %d (%s)", what, got, status, diag.msg);
    CHECK_MSG(strncmp(diag.msg, path, strlen(path)) == 0 && strstr(diag.msg, expect),
              "%s: message '%s' lacks '%s'", what, diag.msg, expect);
    int kept = 1;
    for (int v = 0; v < g->n_values; v++) {
        kept &= memcmp(before[v], b->data[v], (size_t)b->numel[v] * sizeof(float)) == 0;
        free(before[v]);
    }
    free(before);
    CHECK_MSG(kept, "%s: a failed load changed the buffers", what);
}

static void test_bad_headers(const mx_graph *g, mx_buffers *b) {
    for (size_t i = 0; i < sizeof bad_cases / sizeof *bad_cases; i++) {
        const bad_case *c = &bad_cases[i];
        write_safetensors(c->header, NULL, c->blob_len);
        expect_load_error(g, b, c->what, c->status, c->expect);
    }
}

/* Broken length prefixes, written byte by byte. */
static void test_bad_lengths(const mx_graph *g, mx_buffers *b) {
    unsigned char bytes[32] = "\x05\x00\x00";
    write_bytes(bytes, 5);
    expect_load_error(g, b, "file under 8 bytes", MX_ERR_PARSE, "5 bytes is too short");

    store_u64(bytes, 1);
    bytes[8] = '{';
    write_bytes(bytes, 9);
    expect_load_error(g, b, "tiny header length", MX_ERR_PARSE, "header length 1 is too small");

    store_u64(bytes, 1000);
    memcpy(bytes + 8, "{\"w1\":{\"dtype\":\"F3", 18);
    write_bytes(bytes, 26);
    expect_load_error(g, b, "truncated header", MX_ERR_PARSE,
                      "header length 1000 is larger than the file (26 bytes");

    store_u64(bytes, UINT64_MAX);
    write_bytes(bytes, 26);
    expect_load_error(g, b, "header length 2^64-1", MX_ERR_PARSE, "is larger than the file");

    /* A sparse file, so the limit is tested without writing 100 MB. */
    uint64_t huge = 200u << 20;
    store_u64(bytes, huge);
    write_bytes(bytes, 8);
    CHECK(truncate(path, (off_t)(8 + huge)) == 0);
    expect_load_error(g, b, "header over 100 MB", MX_ERR_PARSE,
                      "header length 209715200 is over the limit");
}

static void test_save_errors(const mx_graph *g, mx_buffers *b) {
    const char *nowhere = "/nonexistent-mixc-dir/w.safetensors";
    mx_diag diag = {{0}};
    CHECK(mx_weights_save(g, b, nowhere, &diag) == MX_ERR_IO);
    CHECK_MSG(strstr(diag.msg, nowhere) && strstr(diag.msg, "No such file"), "%s", diag.msg);
    CHECK(access(nowhere, F_OK) != 0);

    int w2 = mx_graph_value_find(g, "w2");
    float *kept = b->data[w2];
    b->data[w2] = NULL;
    CHECK(mx_weights_save(g, b, path, &diag) == MX_ERR_INVALID);
    CHECK_MSG(strstr(diag.msg, "param 'w2' has no data"), "%s", diag.msg);
    b->data[w2] = kept;
}

int main(void) {
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    if (fd < 0)
        return check_summary();
    close(fd);
    mx_graph *g = make_graph();
    test_round_trip(g);
    test_foreign_file(g);

    mx_buffers *b = buffers_filled(g); /* so that "untouched" is observable */
    test_bad_headers(g, b);
    test_bad_lengths(g, b);
    test_save_errors(g, b);
    mx_buffers_free(b);
    mx_graph_free(g);
    remove(path);
    return check_summary();
}
