/* npy.c: NumPy's .npy files (npy.h).
 *
 *   "\x93NUMPY" major minor   the magic and format version (1, 2 or 3)
 *   header length             2 bytes (version 1) or 4 (2 and 3), little-endian
 *   header                    a Python dict literal, padded with spaces and '\n':
 *                             {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
 *   data                      the elements, exactly numel * itemsize bytes
 *
 * The header is parsed by a small reader of just that literal, bounded by the
 * header length: the bytes come from users and fuzzers alike. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "npy.h"

#define MAGIC "\x93NUMPY"
#define MAGIC_LEN 6
#define MAX_DIM (INT64_C(1) << 48)

/* The dtypes a .npy file may carry into mixc, by their NumPy descr. */
static const struct {
    const char *descr;
    mx_tf_dtype dtype;
} descrs[] = {
    {"<f4", MX_TF_F32}, {"<f2", MX_TF_F16}, {"<f8", MX_TF_F64}, {"<i4", MX_TF_I32}, {"<i8", MX_TF_I64},
};

bool mx_npy_is(const void *data, size_t size) {
    return size >= MAGIC_LEN && memcmp(data, MAGIC, MAGIC_LEN) == 0;
}

/* A cursor over the header text. */
typedef struct {
    const char *p, *end;
    const char *source;
    mx_diag *d;
} reader;

static mx_status bad(reader *r, const char *what) {
    return mx_fail(r->d, MX_ERR_PARSE, "%s: .npy header: %s", r->source, what);
}

static void skip_space(reader *r) {
    while (r->p < r->end && (*r->p == ' ' || *r->p == '\n' || *r->p == '\t' || *r->p == '\r'))
        r->p++;
}

static bool accept(reader *r, char c) {
    skip_space(r);
    if (r->p < r->end && *r->p == c) {
        r->p++;
        return true;
    }
    return false;
}

static bool accept_word(reader *r, const char *word) {
    skip_space(r);
    size_t n = strlen(word);
    if ((size_t)(r->end - r->p) >= n && memcmp(r->p, word, n) == 0) {
        r->p += n;
        return true;
    }
    return false;
}

/* A quoted string ('...' or "...", no escapes: NumPy writes none here). */
static mx_status string(reader *r, char *out, size_t size) {
    skip_space(r);
    if (r->p >= r->end || (*r->p != '\'' && *r->p != '"'))
        return bad(r, "expected a quoted string");
    char quote = *r->p++;
    const char *start = r->p;
    while (r->p < r->end && *r->p != quote)
        r->p++;
    if (r->p >= r->end)
        return bad(r, "unterminated string");
    size_t n = (size_t)(r->p - start);
    r->p++;
    if (n >= size)
        return bad(r, "string too long");
    memcpy(out, start, n);
    out[n] = 0;
    return MX_OK;
}

/* (d0, d1, ...) with an optional trailing comma; () is a scalar. */
static mx_status shape(reader *r, mx_tf_tensor *t) {
    if (!accept(r, '('))
        return bad(r, "'shape' must be a tuple of integers");
    t->rank = 0;
    while (!accept(r, ')')) {
        if (t->rank == MX_MAX_RANK)
            return mx_fail(r->d, MX_ERR_INVALID, "%s: the array has more than %d dims", r->source, MX_MAX_RANK);
        skip_space(r);
        int64_t v = 0;
        const char *digits = r->p;
        while (r->p < r->end && *r->p >= '0' && *r->p <= '9' && v <= MAX_DIM)
            v = v * 10 + (*r->p++ - '0');
        if (r->p == digits || v > MAX_DIM)
            return bad(r, "a dim of 'shape' is not an integer in [0, 2^48]");
        t->dim[t->rank++] = v;
        if (!accept(r, ',')) {
            if (!accept(r, ')'))
                return bad(r, "expected ',' or ')' in 'shape'");
            break;
        }
    }
    return MX_OK;
}

static mx_status descr(reader *r, mx_tf_tensor *t) {
    char s[32];
    MX_TRY(string(r, s, sizeof s));
    for (size_t i = 0; i < sizeof descrs / sizeof *descrs; i++)
        if (strcmp(s, descrs[i].descr) == 0 || (s[0] == '|' && strcmp(s + 1, descrs[i].descr + 1) == 0)) {
            t->dtype = descrs[i].dtype;
            return MX_OK;
        }
    return mx_fail(r->d, MX_ERR_INVALID,
                   "%s: dtype '%s' is not supported (little-endian f4, f2, f8, i4 or i8: "
                   "save with .astype('<f4'))",
                   r->source, s);
}

/* The dict: the three keys NumPy writes, each once, nothing else. */
static mx_status header(reader *r, mx_tf_tensor *t) {
    bool seen[3] = {false, false, false};
    static const char *const keys[] = {"descr", "fortran_order", "shape"};
    if (!accept(r, '{'))
        return bad(r, "expected '{'");
    while (!accept(r, '}')) {
        char key[32];
        MX_TRY(string(r, key, sizeof key));
        int k = 0;
        while (k < 3 && strcmp(key, keys[k]) != 0)
            k++;
        if (k == 3)
            return bad(r, "unknown key (expected 'descr', 'fortran_order', 'shape')");
        if (seen[k])
            return bad(r, "a key is given twice");
        seen[k] = true;
        if (!accept(r, ':'))
            return bad(r, "expected ':'");
        if (k == 0) {
            MX_TRY(descr(r, t));
        } else if (k == 1) {
            if (accept_word(r, "True"))
                return mx_fail(r->d, MX_ERR_INVALID,
                               "%s: the array is in Fortran order (save np.ascontiguousarray(a))", r->source);
            if (!accept_word(r, "False"))
                return bad(r, "'fortran_order' must be True or False");
        } else {
            MX_TRY(shape(r, t));
        }
        if (!accept(r, ',')) {
            if (!accept(r, '}'))
                return bad(r, "expected ',' or '}'");
            break;
        }
    }
    for (int k = 0; k < 3; k++)
        if (!seen[k]) {
            char what[64];
            snprintf(what, sizeof what, "'%s' is missing", keys[k]);
            return bad(r, what);
        }
    skip_space(r);
    return r->p == r->end ? MX_OK : bad(r, "text after the dict");
}

mx_status mx_npy_parse(const void *data, size_t size, const char *source, mx_tf_tensor *t, mx_diag *d) {
    const unsigned char *bytes = data;
    memset(t, 0, sizeof *t);
    if (!mx_npy_is(data, size) || size < MAGIC_LEN + 4)
        return mx_fail(d, MX_ERR_PARSE, "%s: not a .npy file (no \\x93NUMPY magic)", source);
    int major = bytes[MAGIC_LEN];
    if (major < 1 || major > 3)
        return mx_fail(d, MX_ERR_PARSE, "%s: .npy format version %d is not supported (1, 2 or 3 are)", source,
                       major);
    size_t width = major == 1 ? 2 : 4, start = MAGIC_LEN + 2 + width;
    if (size < start)
        return mx_fail(d, MX_ERR_PARSE, "%s: truncated .npy header", source);
    size_t len = 0;
    for (size_t k = 0; k < width; k++)
        len |= (size_t)bytes[MAGIC_LEN + 2 + k] << (8 * k);
    if (len > size - start)
        return mx_fail(d, MX_ERR_PARSE, "%s: .npy header length %zu is larger than the file (%zu bytes)", source,
                       len, size);
    reader r = {(const char *)bytes + start, (const char *)bytes + start + len, source, d};
    MX_TRY(header(&r, t));
    t->numel = 1;
    for (int k = 0; k < t->rank; k++) {
        if (t->dim[k] && t->numel > INT64_MAX / 16 / t->dim[k])
            return mx_fail(d, MX_ERR_INVALID, "%s: the array's shape is too large", source);
        t->numel *= t->dim[k];
    }
    size_t have = size - start - len;
    uint64_t need = (uint64_t)t->numel * mx_tf_dtype_size(t->dtype);
    if (have != need) {
        char ty[96];
        return mx_fail(d, MX_ERR_PARSE, "%s: %s needs %llu bytes of data, the file has %zu", source,
                       mx_tf_type_str(t->dtype, t->rank, t->dim, ty, sizeof ty), (unsigned long long)need, have);
    }
    t->data = bytes + start + len;
    return MX_OK;
}

unsigned char *mx_npy_header(mx_tf_dtype dtype, int rank, const int64_t *dim, size_t *len) {
    char dict[256], dims[160] = "";
    size_t n = 0;
    for (int k = 0; k < rank; k++)
        n += (size_t)snprintf(dims + n, sizeof dims - n, "%lld,%s", (long long)dim[k],
                              k + 1 < rank ? " " : "");
    if (rank > 1) /* (2, 3) not (2, 3,): a trailing comma only for one dim */
        dims[strlen(dims) - 1] = 0;
    const char *d = dtype == MX_TF_F16 ? "<f2" : "<f4";
    int text = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }", d, dims);
    size_t total = MAGIC_LEN + 4 + (size_t)text + 1; /* + the closing '\n' */
    total = (total + 63) / 64 * 64;
    unsigned char *h = malloc(total);
    if (!h)
        return NULL;
    size_t hlen = total - MAGIC_LEN - 4;
    memcpy(h, MAGIC, MAGIC_LEN);
    h[MAGIC_LEN] = 1;
    h[MAGIC_LEN + 1] = 0;
    h[MAGIC_LEN + 2] = (unsigned char)(hlen & 0xff);
    h[MAGIC_LEN + 3] = (unsigned char)(hlen >> 8);
    memset(h + MAGIC_LEN + 4, ' ', hlen);
    memcpy(h + MAGIC_LEN + 4, dict, (size_t)text);
    h[total - 1] = '\n';
    *len = total;
    return h;
}
