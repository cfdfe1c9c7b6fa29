/* safetensors.c: model weights in the safetensors format (docs/weights.md).
 *
 * A file is an 8-byte little-endian header length N, N bytes of JSON mapping
 * tensor names to {dtype, shape, data_offsets}, then the data blob. Loading
 * validates the whole header against the graph before it touches a buffer, so
 * a bad file leaves the caller's buffers as they were; the data is then read
 * tensor by tensor through a small staging buffer. Every byte order and width
 * is spelled out, so files read the same on any host. */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "half.h"
#include "ir.h"
#include "safetensors.h"

#define LISTED_NAMES 4                  /* unknown tensors named in an error */
#define CHUNK_ELEMS 4096                /* elements per staged read or write */

static const char *const st_dtype_names[] = {"F32", "F16", "BF16"};
_Static_assert(sizeof st_dtype_names / sizeof *st_dtype_names == MX_DTYPE_COUNT,
               "one safetensors name per mx_dtype");

typedef struct {
    const char *name; /* in the parsed JSON */
    mx_dtype dtype;
    int rank;
    int64_t dim[MX_MAX_RANK];
    uint64_t begin, end; /* relative to the blob */
    bool matched;        /* a graph param has this name */
} st_tensor;

typedef struct {
    const char *path;
    FILE *f;
    uint64_t blob_start, blob_size;
    char *header;
    cJSON *root;
    st_tensor *tensors;
    int n_tensors;
} st_file;

/* Every message starts with the file's path. */
__attribute__((format(printf, 4, 5))) static mx_status
fail_in(const char *path, mx_diag *d, mx_status status, const char *fmt, ...) {
    mx_diag inner;
    va_list ap;
    va_start(ap, fmt);
    mx_vfail(&inner, status, fmt, ap);
    va_end(ap);
    return mx_fail(d, status, "%s: %s", path, inner.msg);
}

/* "[64,32]" into buf; returns buf. */
static const char *shape_str(int rank, const int64_t *dim, char *buf, size_t size) {
    size_t n = (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < rank && n < size; i++)
        n += (size_t)snprintf(buf + n, size - n, i ? ",%lld" : "%lld", (long long)dim[i]);
    if (n < size)
        snprintf(buf + n, size - n, "]");
    return buf;
}

/* What a JSON item is, for messages: "-2", "a string", "an array". */
static const char *json_describe(const cJSON *item, char *buf, size_t size) {
    if (cJSON_IsNumber(item)) {
        snprintf(buf, size, "%.15g", item->valuedouble);
        return buf;
    }
    if (cJSON_IsString(item))
        return "a string";
    if (cJSON_IsArray(item))
        return "an array";
    if (cJSON_IsObject(item))
        return "an object";
    if (cJSON_IsBool(item))
        return "a boolean";
    return "null";
}

bool mx_st_json_uint(const cJSON *item, uint64_t *out) {
    if (!cJSON_IsNumber(item))
        return false;
    double x = item->valuedouble;
    if (!(x >= 0 && x <= MX_ST_MAX_JSON_INT) || x != (double)(uint64_t)x)
        return false;
    *out = (uint64_t)x;
    return true;
}

uint64_t mx_st_load_le(const unsigned char *p, size_t width) {
    uint64_t x = 0;
    for (size_t k = 0; k < width; k++)
        x |= (uint64_t)p[k] << (8 * k);
    return x;
}

void mx_st_store_le(unsigned char *p, uint64_t x, size_t width) {
    for (size_t k = 0; k < width; k++)
        p[k] = (unsigned char)(x >> (8 * k));
}

static float decode_element(mx_dtype dtype, const unsigned char *p) {
    uint32_t bits = (uint32_t)mx_st_load_le(p, mx_dtype_size(dtype));
    switch (dtype) {
    case MX_F16:
        return mx_f16_to_f32((uint16_t)bits);
    case MX_BF16:
        return mx_bf16_to_f32((uint16_t)bits);
    default:
        return mx_bits_f32(bits);
    }
}

static void encode_element(mx_dtype dtype, float x, unsigned char *p) {
    uint32_t bits = dtype == MX_F16    ? mx_f32_to_f16(x)
                    : dtype == MX_BF16 ? mx_f32_to_bf16(x)
                                       : mx_f32_bits(x);
    mx_st_store_le(p, bits, mx_dtype_size(dtype));
}

/* ---- the graph's side ----------------------------------------------------- */

static int param_value(const mx_graph *g, int node) {
    return g->nodes[node].op == MX_OP_PARAM ? mx_node_output(g, node, 0) : MX_NONE;
}

/* Buffers that belong to g; on save every param must hold data. */
static mx_status check_buffers(const mx_graph *g, const mx_buffers *b, const char *path,
                               bool need_data, mx_diag *d) {
    if (b->count != g->n_values)
        return fail_in(path, d, MX_ERR_INVALID, "buffers hold %d values, graph '%s' has %d",
                       b->count, g->name, g->n_values);
    for (int n = 0; n < g->n_nodes; n++) {
        int v = param_value(g, n);
        if (v == MX_NONE)
            continue;
        const char *name = g->values[v].name;
        if (!name)
            return fail_in(path, d, MX_ERR_INVALID, "param value %d has no name to store it by", v);
        if (need_data && !b->data[v])
            return fail_in(path, d, MX_ERR_INVALID, "param '%s' has no data", name);
        if (b->data[v] && b->numel[v] != mx_type_numel(&g->values[v].type))
            return fail_in(path, d, MX_ERR_INVALID,
                           "param '%s': buffer holds %lld elements, graph expects %lld", name,
                           (long long)b->numel[v], (long long)mx_type_numel(&g->values[v].type));
    }
    return MX_OK;
}

/* ---- reading the header --------------------------------------------------- */

static mx_status open_file(st_file *sf, mx_diag *d) {
    sf->f = fopen(sf->path, "rb");
    if (!sf->f)
        return fail_in(sf->path, d, MX_ERR_IO, "cannot open: %s", strerror(errno));
    struct stat st;
    if (fstat(fileno(sf->f), &st) != 0)
        return fail_in(sf->path, d, MX_ERR_IO, "cannot stat: %s", strerror(errno));
    if (!S_ISREG(st.st_mode))
        return fail_in(sf->path, d, MX_ERR_IO, "not a regular file");
    uint64_t file_size = (uint64_t)st.st_size;
    unsigned char len_bytes[8];
    if (file_size < sizeof len_bytes || fread(len_bytes, 1, sizeof len_bytes, sf->f) != 8)
        return fail_in(sf->path, d, MX_ERR_PARSE,
                       "%llu bytes is too short for a safetensors file (8-byte header length)",
                       (unsigned long long)file_size);
    uint64_t n = mx_st_load_le(len_bytes, sizeof len_bytes);
    if (n < 2)
        return fail_in(sf->path, d, MX_ERR_PARSE, "header length %llu is too small for JSON",
                       (unsigned long long)n);
    if (n > file_size - 8)
        return fail_in(sf->path, d, MX_ERR_PARSE,
                       "header length %llu is larger than the file (%llu bytes; truncated, or not "
                       "a safetensors file?)",
                       (unsigned long long)n, (unsigned long long)file_size);
    if (n > MX_ST_MAX_HEADER_BYTES)
        return fail_in(sf->path, d, MX_ERR_PARSE, "header length %llu is over the limit of %u",
                       (unsigned long long)n, MX_ST_MAX_HEADER_BYTES);
    sf->blob_start = 8 + n;
    sf->blob_size = file_size - sf->blob_start;
    sf->header = malloc(n + 1); /* NUL-terminated too, belt and braces for cJSON */
    if (!sf->header)
        return fail_in(sf->path, d, MX_ERR_NOMEM, "no memory for a %llu-byte header",
                       (unsigned long long)n);
    if (fread(sf->header, 1, n, sf->f) != n)
        return fail_in(sf->path, d, MX_ERR_IO, "cannot read the header");
    sf->header[n] = 0;
    const char *end = NULL;
    sf->root = cJSON_ParseWithLengthOpts(sf->header, n, &end, false);
    if (!sf->root)
        return fail_in(sf->path, d, MX_ERR_PARSE, "header is not valid JSON (at header byte %lld)",
                       end ? (long long)(end - sf->header) : -1LL);
    /* Writers pad the header with spaces; cJSON stops right after the value. */
    while (end < sf->header + n && *end && strchr(" \t\r\n", *end))
        end++;
    if (end != sf->header + n)
        return fail_in(sf->path, d, MX_ERR_PARSE,
                       "header has text after its JSON value (at header byte %lld)",
                       (long long)(end - sf->header));
    if (!cJSON_IsObject(sf->root))
        return fail_in(sf->path, d, MX_ERR_PARSE, "header is not a JSON object");
    return MX_OK;
}

static mx_status parse_metadata(const st_file *sf, const cJSON *meta, mx_diag *d) {
    if (!cJSON_IsObject(meta))
        return fail_in(sf->path, d, MX_ERR_PARSE, "\"__metadata__\" must be an object");
    for (const cJSON *item = meta->child; item; item = item->next)
        if (!cJSON_IsString(item))
            return fail_in(sf->path, d, MX_ERR_PARSE, "\"__metadata__\": \"%s\" must be a string",
                           item->string);
    return MX_OK;
}

static mx_status parse_dtype(const st_file *sf, const st_tensor *t, const cJSON *item,
                             mx_dtype *out, mx_diag *d) {
    char buf[32];
    if (!item)
        return fail_in(sf->path, d, MX_ERR_PARSE, "tensor '%s': missing \"dtype\"", t->name);
    if (!cJSON_IsString(item))
        return fail_in(sf->path, d, MX_ERR_PARSE, "tensor '%s': \"dtype\" must be a string, not %s",
                       t->name, json_describe(item, buf, sizeof buf));
    for (int i = 0; i < MX_DTYPE_COUNT; i++)
        if (strcmp(item->valuestring, st_dtype_names[i]) == 0) {
            *out = (mx_dtype)i;
            return MX_OK;
        }
    return fail_in(sf->path, d, MX_ERR_PARSE,
                   "tensor '%s': dtype '%s' is not supported (F32, F16 and BF16 are)", t->name,
                   item->valuestring);
}

static mx_status parse_shape(const st_file *sf, st_tensor *t, const cJSON *item, mx_diag *d) {
    char buf[32];
    if (!item)
        return fail_in(sf->path, d, MX_ERR_PARSE, "tensor '%s': missing \"shape\"", t->name);
    if (!cJSON_IsArray(item))
        return fail_in(sf->path, d, MX_ERR_PARSE, "tensor '%s': \"shape\" must be an array, not %s",
                       t->name, json_describe(item, buf, sizeof buf));
    int rank = cJSON_GetArraySize(item);
    if (rank > MX_MAX_RANK)
        return fail_in(sf->path, d, MX_ERR_PARSE, "tensor '%s': rank %d is more than %d", t->name,
                       rank, MX_MAX_RANK);
    t->rank = rank;
    int i = 0;
    for (const cJSON *dim = item->child; dim; dim = dim->next, i++) {
        uint64_t x;
        if (!mx_st_json_uint(dim, &x))
            return fail_in(sf->path, d, MX_ERR_PARSE,
                           "tensor '%s': shape[%d] must be a non-negative integer, not %s", t->name,
                           i, json_describe(dim, buf, sizeof buf));
        t->dim[i] = (int64_t)x;
    }
    return MX_OK;
}

static mx_status parse_offsets(const st_file *sf, st_tensor *t, const cJSON *item, mx_diag *d) {
    if (!item)
        return fail_in(sf->path, d, MX_ERR_PARSE, "tensor '%s': missing \"data_offsets\"", t->name);
    if (!cJSON_IsArray(item) || cJSON_GetArraySize(item) != 2 ||
        !mx_st_json_uint(item->child, &t->begin) || !mx_st_json_uint(item->child->next, &t->end))
        return fail_in(sf->path, d, MX_ERR_PARSE,
                       "tensor '%s': \"data_offsets\" must be [begin, end], two non-negative "
                       "integers",
                       t->name);
    if (t->begin > t->end)
        return fail_in(sf->path, d, MX_ERR_PARSE,
                       "tensor '%s': data_offsets [%llu, %llu) run backwards", t->name,
                       (unsigned long long)t->begin, (unsigned long long)t->end);
    if (t->end > sf->blob_size)
        return fail_in(sf->path, d, MX_ERR_PARSE,
                       "tensor '%s': data_offsets [%llu, %llu) reach past the end of the data "
                       "(%llu bytes; truncated file?)",
                       t->name, (unsigned long long)t->begin, (unsigned long long)t->end,
                       (unsigned long long)sf->blob_size);
    return MX_OK;
}

/* numel * dtype size, saturating at UINT64_MAX instead of wrapping. */
static uint64_t shape_bytes(const st_tensor *t) {
    for (int i = 0; i < t->rank; i++)
        if (t->dim[i] == 0)
            return 0;
    uint64_t bytes = mx_dtype_size(t->dtype);
    for (int i = 0; i < t->rank; i++) {
        uint64_t dim = (uint64_t)t->dim[i];
        if (bytes > UINT64_MAX / dim)
            return UINT64_MAX;
        bytes *= dim;
    }
    return bytes;
}

static mx_status check_byte_size(const st_file *sf, const st_tensor *t, mx_diag *d) {
    uint64_t span = t->end - t->begin, bytes = shape_bytes(t);
    if (bytes == span)
        return MX_OK;
    char shape[160];
    return fail_in(sf->path, d, MX_ERR_PARSE,
                   "tensor '%s': data_offsets span %llu bytes, but shape %s of %s needs %llu%s",
                   t->name, (unsigned long long)span,
                   shape_str(t->rank, t->dim, shape, sizeof shape), st_dtype_names[t->dtype],
                   (unsigned long long)bytes, bytes == UINT64_MAX ? " or more" : "");
}

static mx_status parse_tensor(const st_file *sf, const cJSON *item, st_tensor *t, mx_diag *d) {
    t->name = item->string;
    if (!cJSON_IsObject(item))
        return fail_in(sf->path, d, MX_ERR_PARSE, "tensor '%s': expected an object", t->name);
    mx_status st =
        parse_dtype(sf, t, cJSON_GetObjectItemCaseSensitive(item, "dtype"), &t->dtype, d);
    if (st == MX_OK)
        st = parse_shape(sf, t, cJSON_GetObjectItemCaseSensitive(item, "shape"), d);
    if (st == MX_OK)
        st = parse_offsets(sf, t, cJSON_GetObjectItemCaseSensitive(item, "data_offsets"), d);
    if (st == MX_OK)
        st = check_byte_size(sf, t, d);
    return st;
}

static mx_status parse_tensors(st_file *sf, mx_diag *d) {
    int count = cJSON_GetArraySize(sf->root);
    sf->tensors = calloc(count ? (size_t)count : 1, sizeof *sf->tensors);
    if (!sf->tensors)
        return fail_in(sf->path, d, MX_ERR_NOMEM, "no memory for %d tensors", count);
    for (const cJSON *item = sf->root->child; item; item = item->next) {
        mx_status st = strcmp(item->string, "__metadata__") == 0
                           ? parse_metadata(sf, item, d)
                           : parse_tensor(sf, item, &sf->tensors[sf->n_tensors++], d);
        if (st != MX_OK)
            return st;
    }
    return MX_OK;
}

static int by_range(const void *a, const void *b) {
    const st_tensor *x = a, *y = b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    return (x->end > y->end) - (x->end < y->end);
}

static int by_name(const void *a, const void *b) {
    return strcmp(((const st_tensor *)a)->name, ((const st_tensor *)b)->name);
}

/* Sorted by begin (then end, so empty tensors never collide), each range must
 * start at or after the previous one's end. Leaves the tensors sorted by name,
 * with no name twice. */
static mx_status check_layout(st_file *sf, mx_diag *d) {
    st_tensor *t = sf->tensors;
    qsort(t, (size_t)sf->n_tensors, sizeof *t, by_range);
    for (int i = 1; i < sf->n_tensors; i++)
        if (t[i].begin < t[i - 1].end)
            return fail_in(sf->path, d, MX_ERR_PARSE,
                           "tensors '%s' [%llu, %llu) and '%s' [%llu, %llu) overlap in the data",
                           t[i - 1].name, (unsigned long long)t[i - 1].begin,
                           (unsigned long long)t[i - 1].end, t[i].name,
                           (unsigned long long)t[i].begin, (unsigned long long)t[i].end);
    qsort(t, (size_t)sf->n_tensors, sizeof *t, by_name);
    for (int i = 1; i < sf->n_tensors; i++)
        if (strcmp(t[i].name, t[i - 1].name) == 0)
            return fail_in(sf->path, d, MX_ERR_PARSE, "tensor '%s' appears twice in the header",
                           t[i].name);
    return MX_OK;
}

static st_tensor *find_tensor(const st_file *sf, const char *name) {
    st_tensor key = {.name = name};
    return bsearch(&key, sf->tensors, (size_t)sf->n_tensors, sizeof key, by_name);
}

/* ---- matching file and graph ---------------------------------------------- */

static mx_status match_param(const mx_graph *g, int v, st_file *sf, mx_diag *d) {
    const mx_value *val = &g->values[v];
    st_tensor *t = find_tensor(sf, val->name);
    if (!t)
        return fail_in(sf->path, d, MX_ERR_INVALID, "param '%s' of graph '%s' is not in the file",
                       val->name, g->name);
    t->matched = true;
    bool same = t->rank == val->type.rank;
    for (int i = 0; same && i < t->rank; i++)
        same = t->dim[i] == val->type.dim[i];
    if (same)
        return MX_OK;
    char have[160], want[160];
    return fail_in(sf->path, d, MX_ERR_INVALID, "param '%s': file has shape %s, graph expects %s",
                   val->name, shape_str(t->rank, t->dim, have, sizeof have),
                   shape_str(val->type.rank, val->type.dim, want, sizeof want));
}

/* A typo'd export must not pass silently: tensors the graph lacks are errors. */
static mx_status check_unmatched(const mx_graph *g, const st_file *sf, mx_diag *d) {
    char list[512] = "";
    size_t used = 0;
    int count = 0;
    for (int i = 0; i < sf->n_tensors; i++) {
        if (sf->tensors[i].matched)
            continue;
        if (count++ < LISTED_NAMES && used < sizeof list)
            used += (size_t)snprintf(list + used, sizeof list - used, "%s'%s'",
                                     count > 1 ? ", " : "", sf->tensors[i].name);
    }
    if (count == 0)
        return MX_OK;
    return fail_in(sf->path, d, MX_ERR_INVALID, "%d tensor%s not in graph '%s': %s%s", count,
                   count > 1 ? "s are" : " is", g->name, list, count > LISTED_NAMES ? ", ..." : "");
}

static mx_status match_graph(const mx_graph *g, st_file *sf, mx_diag *d) {
    for (int n = 0; n < g->n_nodes; n++) {
        int v = param_value(g, n);
        mx_status st = v == MX_NONE ? MX_OK : match_param(g, v, sf, d);
        if (st != MX_OK)
            return st;
    }
    return check_unmatched(g, sf, d);
}

/* ---- reading the data ----------------------------------------------------- */

/* Converts the tensor to f32 and rounds it to the graph's dtype, so that the
 * buffer holds what the graph would store whatever dtype the file used. */
static mx_status read_tensor(const st_file *sf, const st_tensor *t, mx_dtype graph_dtype,
                             float *dst, mx_diag *d) {
    size_t size = mx_dtype_size(t->dtype);
    uint64_t numel = (t->end - t->begin) / size;
    unsigned char chunk[CHUNK_ELEMS * sizeof(float)]; /* the widest dtype */
    if (fseeko(sf->f, (off_t)(sf->blob_start + t->begin), SEEK_SET) != 0)
        return fail_in(sf->path, d, MX_ERR_IO, "tensor '%s': cannot seek: %s", t->name,
                       strerror(errno));
    for (uint64_t done = 0; done < numel;) {
        size_t n = numel - done < CHUNK_ELEMS ? (size_t)(numel - done) : CHUNK_ELEMS;
        if (fread(chunk, size, n, sf->f) != n)
            return fail_in(sf->path, d, MX_ERR_IO, "tensor '%s': read failed (file changed?)",
                           t->name);
        for (size_t i = 0; i < n; i++)
            dst[done + i] = mx_round_to(graph_dtype, decode_element(t->dtype, chunk + i * size));
        done += n;
    }
    return MX_OK;
}

static mx_status read_params(const mx_graph *g, mx_buffers *b, const st_file *sf, mx_diag *d) {
    for (int n = 0; n < g->n_nodes; n++) {
        int v = param_value(g, n);
        if (v == MX_NONE)
            continue;
        int64_t numel = mx_type_numel(&g->values[v].type);
        if (!b->data[v]) {
            b->data[v] = malloc((numel ? (size_t)numel : 1) * sizeof(float));
            if (!b->data[v])
                return fail_in(sf->path, d, MX_ERR_NOMEM, "no memory for param '%s'",
                               g->values[v].name);
            b->numel[v] = numel;
        }
        mx_status st = read_tensor(sf, find_tensor(sf, g->values[v].name), g->values[v].type.dtype,
                                   b->data[v], d);
        if (st != MX_OK)
            return st;
    }
    return MX_OK;
}

mx_status mx_weights_load(const mx_graph *g, mx_buffers *b, const char *path, mx_diag *diag) {
    st_file sf = {.path = path};
    mx_status st = check_buffers(g, b, path, false, diag);
    if (st == MX_OK)
        st = open_file(&sf, diag);
    if (st == MX_OK)
        st = parse_tensors(&sf, diag);
    if (st == MX_OK)
        st = check_layout(&sf, diag);
    if (st == MX_OK)
        st = match_graph(g, &sf, diag);
    if (st == MX_OK)
        st = read_params(g, b, &sf, diag);
    free(sf.tensors);
    cJSON_Delete(sf.root);
    free(sf.header);
    if (sf.f)
        fclose(sf.f);
    return st;
}

/* ---- saving --------------------------------------------------------------- */

static bool append_number(cJSON *array, double x) {
    cJSON *item = cJSON_CreateNumber(x);
    return item && cJSON_AddItemToArray(array, item);
}

static bool add_header_entry(cJSON *root, const char *name, const mx_type *t, uint64_t begin,
                             uint64_t end) {
    cJSON *entry = cJSON_AddObjectToObject(root, name);
    if (!entry || !cJSON_AddStringToObject(entry, "dtype", st_dtype_names[t->dtype]))
        return false;
    cJSON *shape = cJSON_AddArrayToObject(entry, "shape");
    cJSON *offsets = cJSON_AddArrayToObject(entry, "data_offsets");
    if (!shape || !offsets)
        return false;
    for (int i = 0; i < t->rank; i++)
        if (!append_number(shape, (double)t->dim[i]))
            return false;
    return append_number(offsets, (double)begin) && append_number(offsets, (double)end);
}

/* The header JSON, padded with spaces to a multiple of 8 bytes so that the
 * data starts 8-aligned; NULL when out of memory. */
static char *build_header(const mx_graph *g, size_t *len) {
    cJSON *root = cJSON_CreateObject();
    cJSON *meta = root ? cJSON_AddObjectToObject(root, "__metadata__") : NULL;
    bool ok = meta && cJSON_AddStringToObject(meta, "format", "mixc") &&
              cJSON_AddStringToObject(meta, "graph", g->name ? g->name : "");
    uint64_t offset = 0;
    for (int n = 0; ok && n < g->n_nodes; n++) {
        int v = param_value(g, n);
        if (v == MX_NONE)
            continue;
        const mx_type *t = &g->values[v].type;
        uint64_t bytes = (uint64_t)mx_type_numel(t) * mx_dtype_size(t->dtype);
        ok = add_header_entry(root, g->values[v].name, t, offset, offset + bytes);
        offset += bytes;
    }
    char *json = ok ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    if (!json)
        return NULL;
    size_t json_len = strlen(json);
    *len = (json_len + 7) & ~(size_t)7;
    char *header = malloc(*len);
    if (header) {
        memcpy(header, json, json_len);
        memset(header + json_len, ' ', *len - json_len);
    }
    cJSON_free(json);
    return header;
}

/* Returns false on a write error (errno says why). */
static bool write_tensor(FILE *f, const float *src, const mx_type *t) {
    size_t size = mx_dtype_size(t->dtype);
    int64_t numel = mx_type_numel(t);
    unsigned char chunk[CHUNK_ELEMS * sizeof(float)]; /* the widest dtype */
    for (int64_t done = 0; done < numel;) {
        size_t n = numel - done < CHUNK_ELEMS ? (size_t)(numel - done) : CHUNK_ELEMS;
        for (size_t i = 0; i < n; i++)
            encode_element(t->dtype, src[done + i], chunk + i * size);
        if (fwrite(chunk, size, n, f) != n)
            return false;
        done += (int64_t)n;
    }
    return true;
}

static bool write_file(FILE *f, const mx_graph *g, const mx_buffers *b, const char *header,
                       size_t header_len) {
    unsigned char len_bytes[8];
    mx_st_store_le(len_bytes, header_len, sizeof len_bytes);
    if (fwrite(len_bytes, 1, sizeof len_bytes, f) != sizeof len_bytes ||
        fwrite(header, 1, header_len, f) != header_len)
        return false;
    for (int n = 0; n < g->n_nodes; n++) {
        int v = param_value(g, n);
        if (v != MX_NONE && !write_tensor(f, b->data[v], &g->values[v].type))
            return false;
    }
    return true;
}

/* Written to "path.tmp" and renamed, so path never holds a partial file. */
mx_status mx_weights_save(const mx_graph *g, const mx_buffers *b, const char *path, mx_diag *diag) {
    mx_status st = check_buffers(g, b, path, true, diag);
    if (st != MX_OK)
        return st;
    size_t header_len = 0, path_len = strlen(path);
    char *header = build_header(g, &header_len);
    char *tmp = malloc(path_len + sizeof ".tmp");
    if (!header || !tmp) {
        free(header);
        free(tmp);
        return fail_in(path, diag, MX_ERR_NOMEM, "no memory for the header");
    }
    memcpy(tmp, path, path_len);
    memcpy(tmp + path_len, ".tmp", sizeof ".tmp");
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        st = fail_in(path, diag, MX_ERR_IO, "cannot create '%s': %s", tmp, strerror(errno));
    } else {
        bool written = write_file(f, g, b, header, header_len);
        int write_errno = errno;
        bool closed = fclose(f) == 0; /* a full disk may show only here */
        if (!written || !closed)
            st = fail_in(path, diag, MX_ERR_IO, "cannot write '%s': %s", tmp,
                         strerror(written ? errno : write_errno));
        else if (rename(tmp, path) != 0)
            st = fail_in(path, diag, MX_ERR_IO, "cannot rename '%s' to it: %s", tmp,
                         strerror(errno));
        if (st != MX_OK)
            remove(tmp);
    }
    free(tmp);
    free(header);
    return st;
}
