/* tensorfile.c: named tensors in safetensors or .npy files, read whole and
 * written atomically, and bound to a compiled program (tensorfile.h).
 *
 * Unlike the weights loader (safetensors.c), which streams params into a
 * graph's buffers, this reader knows no graph: it turns bytes into a list of
 * typed tensors, and the binding below matches them to a program through the
 * public API alone (mx_tensor_info_of, mx_set_input, mx_get_output). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "half.h"
#include "model.h"
#include "npy.h"
#include "safetensors.h"

#define EXACT_INT_F32 16777216.0        /* 2^24: whole numbers f32 holds exactly */

const char *const mx_tf_dtype_names[MX_TF_COUNT] = {"F32", "F16", "BF16", "F64", "I32", "I64"};
static const size_t dtype_sizes[MX_TF_COUNT] = {4, 2, 2, 8, 4, 8};
static const mx_tf_dtype from_graph[MX_DTYPE_COUNT] = {MX_TF_F32, MX_TF_F16, MX_TF_BF16};

size_t mx_tf_dtype_size(mx_tf_dtype t) { return dtype_sizes[t]; }

const char *mx_tf_type_str(mx_tf_dtype dtype, int rank, const int64_t *dim, char *buf, size_t size) {
    size_t n = (size_t)snprintf(buf, size, "%s[", mx_tf_dtype_names[dtype]);
    for (int k = 0; k < rank && n < size; k++)
        n += (size_t)snprintf(buf + n, size - n, k ? ",%lld" : "%lld", (long long)dim[k]);
    if (n < size)
        snprintf(buf + n, size - n, "]");
    return buf;
}

double mx_tf_element(const mx_tf_tensor *t, int64_t i) {
    const unsigned char *p = t->data + (size_t)i * dtype_sizes[t->dtype];
    uint64_t bits = mx_st_load_le(p, dtype_sizes[t->dtype]);
    switch (t->dtype) {
    case MX_TF_F32: return mx_bits_f32((uint32_t)bits);
    case MX_TF_F16: return mx_f16_to_f32((uint16_t)bits);
    case MX_TF_BF16: return mx_bf16_to_f32((uint16_t)bits);
    case MX_TF_F64: {
        double x;
        memcpy(&x, &bits, sizeof x);
        return x;
    }
    case MX_TF_I32: return (double)(int32_t)(uint32_t)bits;
    case MX_TF_I64: return (double)(int64_t)bits;
    default: return NAN;
    }
}

/* ---- parsing ------------------------------------------------------------------------ */

static mx_tensorfile *new_file(const char *source, int count, size_t name_bytes) {
    mx_tensorfile *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    snprintf(f->source, sizeof f->source, "%s", source);
    f->count = count;
    f->tensors = calloc((size_t)count + 1, sizeof *f->tensors);
    f->names = malloc(name_bytes + 1);
    if (!f->tensors || !f->names) {
        mx_tensorfile_free(f);
        return NULL;
    }
    return f;
}

void mx_tensorfile_free(mx_tensorfile *f) {
    if (!f)
        return;
    free(f->tensors);
    free(f->names);
    free(f->owned);
    free(f);
}

const mx_tf_tensor *mx_tensorfile_find(const mx_tensorfile *f, const char *name) {
    for (int i = 0; i < f->count; i++)
        if (f->tensors[i].name && strcmp(f->tensors[i].name, name) == 0)
            return &f->tensors[i];
    return NULL;
}

/* One header entry into t: dtype, shape and a byte range of the blob that
 * holds exactly its elements. */
static mx_status parse_entry(const char *source, const cJSON *item, uint64_t blob, const unsigned char *data,
                             mx_tf_tensor *t, mx_diag *d) {
    const char *name = item->string;
    if (!cJSON_IsObject(item))
        return mx_fail(d, MX_ERR_PARSE, "%s: tensor '%s': not an object", source, name);
    const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(item, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(item, "shape");
    const cJSON *offsets = cJSON_GetObjectItemCaseSensitive(item, "data_offsets");
    if (!cJSON_IsString(dtype) || !cJSON_IsArray(shape) || !cJSON_IsArray(offsets))
        return mx_fail(d, MX_ERR_PARSE, "%s: tensor '%s': needs \"dtype\" (a string), \"shape\" and "
                       "\"data_offsets\" (arrays)", source, name);
    int k = 0;
    while (k < MX_TF_COUNT && strcmp(dtype->valuestring, mx_tf_dtype_names[k]) != 0)
        k++;
    if (k == MX_TF_COUNT)
        return mx_fail(d, MX_ERR_INVALID, "%s: tensor '%s': dtype '%s' is not supported (F32, F16, BF16; "
                       "F64, I32 and I64 where they convert exactly)", source, name, dtype->valuestring);
    t->dtype = (mx_tf_dtype)k;
    int rank = cJSON_GetArraySize(shape);
    if (rank > MX_MAX_RANK)
        return mx_fail(d, MX_ERR_INVALID, "%s: tensor '%s': %d dims (at most %d)", source, name, rank, MX_MAX_RANK);
    t->rank = rank;
    t->numel = 1;
    for (int i = 0; i < rank; i++) {
        uint64_t dim;
        if (!mx_st_json_uint(cJSON_GetArrayItem(shape, i), &dim) || dim > (UINT64_C(1) << 48))
            return mx_fail(d, MX_ERR_PARSE, "%s: tensor '%s': shape[%d] is not an integer in [0, 2^48]", source,
                           name, i);
        if (dim && (uint64_t)t->numel > (UINT64_C(1) << 56) / dim)
            return mx_fail(d, MX_ERR_INVALID, "%s: tensor '%s': the shape is too large", source, name);
        t->dim[i] = (int64_t)dim;
        t->numel *= (int64_t)dim;
    }
    uint64_t begin, end;
    if (cJSON_GetArraySize(offsets) != 2 || !mx_st_json_uint(cJSON_GetArrayItem(offsets, 0), &begin) ||
        !mx_st_json_uint(cJSON_GetArrayItem(offsets, 1), &end) || begin > end || end > blob)
        return mx_fail(d, MX_ERR_PARSE, "%s: tensor '%s': data_offsets must be [begin, end] with "
                       "begin <= end <= %llu (the data's size)", source, name, (unsigned long long)blob);
    uint64_t need = (uint64_t)t->numel * dtype_sizes[t->dtype];
    if (end - begin != need) {
        char ty[96];
        return mx_fail(d, MX_ERR_PARSE, "%s: tensor '%s': %s needs %llu bytes, data_offsets give %llu", source,
                       name, mx_tf_type_str(t->dtype, t->rank, t->dim, ty, sizeof ty), (unsigned long long)need,
                       (unsigned long long)(end - begin));
    }
    t->data = data + begin;
    return MX_OK;
}

static mx_status parse_safetensors(const unsigned char *bytes, size_t size, const char *source,
                                   mx_tensorfile **out, mx_diag *d) {
    if (size < 8)
        return mx_fail(d, MX_ERR_PARSE, "%s: %zu bytes: not a safetensors or .npy file", source, size);
    uint64_t len = mx_st_load_le(bytes, 8);
    if (len < 2 || len > size - 8 || len > MX_ST_MAX_HEADER_BYTES)
        return mx_fail(d, MX_ERR_PARSE, "%s: header length %llu does not fit the file (%zu bytes; not a "
                       "safetensors or .npy file?)", source, (unsigned long long)len, size);
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts((const char *)bytes + 8, (size_t)len, &end, 0);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return mx_fail(d, MX_ERR_PARSE, "%s: the header is not a JSON object", source);
    }
    for (const char *p = end; p < (const char *)bytes + 8 + len; p++)
        if (*p != ' ') {
            cJSON_Delete(root);
            return mx_fail(d, MX_ERR_PARSE, "%s: text after the header's JSON object", source);
        }
    int count = 0;
    size_t name_bytes = 0;
    for (const cJSON *item = root->child; item; item = item->next)
        if (strcmp(item->string, "__metadata__") != 0) {
            count++;
            name_bytes += strlen(item->string) + 1;
        }
    mx_tensorfile *f = new_file(source, count, name_bytes);
    mx_status st = f ? MX_OK : mx_fail(d, MX_ERR_NOMEM, "%s: out of memory", source);
    const unsigned char *blob = bytes + 8 + len;
    char *name = f ? f->names : NULL;
    int i = 0;
    for (const cJSON *item = root->child; item && st == MX_OK; item = item->next) {
        if (strcmp(item->string, "__metadata__") == 0) {
            if (!cJSON_IsObject(item))
                st = mx_fail(d, MX_ERR_PARSE, "%s: __metadata__ is not an object", source);
            continue;
        }
        mx_tf_tensor *t = &f->tensors[i++];
        st = parse_entry(source, item, size - 8 - len, blob, t, d);
        if (st == MX_OK && mx_tensorfile_find(f, item->string))
            st = mx_fail(d, MX_ERR_PARSE, "%s: tensor '%s' is listed twice", source, item->string);
        size_t n = strlen(item->string) + 1;
        memcpy(name, item->string, n);
        t->name = name;
        name += n;
    }
    cJSON_Delete(root);
    if (st != MX_OK) {
        mx_tensorfile_free(f);
        return st;
    }
    *out = f;
    return MX_OK;
}

mx_status mx_tensorfile_parse(const void *data, size_t size, const char *source, mx_tensorfile **out,
                              mx_diag *d) {
    *out = NULL;
    if (!mx_npy_is(data, size))
        return parse_safetensors(data, size, source, out, d);
    mx_tensorfile *f = new_file(source, 1, 0);
    if (!f)
        return mx_fail(d, MX_ERR_NOMEM, "%s: out of memory", source);
    f->npy = true;
    mx_status st = mx_npy_parse(data, size, source, &f->tensors[0], d);
    if (st != MX_OK) {
        mx_tensorfile_free(f);
        return st;
    }
    *out = f;
    return MX_OK;
}

mx_status mx_tensorfile_read(const char *path, mx_tensorfile **out, mx_diag *d) {
    *out = NULL;
    FILE *fp = fopen(path, "rb");
    struct stat sb;
    if (!fp || fstat(fileno(fp), &sb) != 0) {
        mx_status st = mx_fail(d, MX_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        if (fp)
            fclose(fp);
        return st;
    }
    size_t size = (size_t)sb.st_size;
    unsigned char *bytes = malloc(size + 1);
    size_t got = bytes ? fread(bytes, 1, size, fp) : 0;
    fclose(fp);
    mx_status st = !bytes ? mx_fail(d, MX_ERR_NOMEM, "%s: out of memory (%zu bytes)", path, size)
                   : got != size ? mx_fail(d, MX_ERR_IO, "%s: cannot read: %s", path, strerror(errno))
                                 : mx_tensorfile_parse(bytes, size, path, out, d);
    if (st != MX_OK) {
        free(bytes);
        return st;
    }
    (*out)->owned = bytes;
    return MX_OK;
}

/* ---- writing ------------------------------------------------------------------------ */

static bool is_npy_path(const char *path) {
    size_t n = strlen(path);
    return n >= 4 && strcmp(path + n - 4, ".npy") == 0;
}

static int64_t numel_of(const mx_tf_out *t) {
    int64_t n = 1;
    for (int k = 0; k < t->rank; k++)
        n *= t->dim[k];
    return n;
}

/* The safetensors header for t[0..n), back to back from offset 0, padded
 * with spaces so the data starts 8-byte aligned; malloc'd. */
static char *safetensors_header(const mx_tf_out *t, int n, size_t *len) {
    cJSON *root = cJSON_CreateObject();
    cJSON *meta = cJSON_AddObjectToObject(root, "__metadata__");
    bool ok = root && meta && cJSON_AddStringToObject(meta, "format", "mixc");
    uint64_t at = 0;
    for (int i = 0; i < n && ok; i++) {
        cJSON *e = cJSON_AddObjectToObject(root, t[i].name);
        cJSON *shape = cJSON_AddArrayToObject(e, "shape"), *off = cJSON_AddArrayToObject(e, "data_offsets");
        ok = e && shape && off && cJSON_AddStringToObject(e, "dtype", mx_tf_dtype_names[from_graph[t[i].dtype]]);
        for (int k = 0; k < t[i].rank && ok; k++)
            ok = cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)t[i].dim[k]));
        uint64_t bytes = (uint64_t)numel_of(&t[i]) * mx_dtype_size(t[i].dtype);
        ok = ok && cJSON_AddItemToArray(off, cJSON_CreateNumber((double)at)) &&
             cJSON_AddItemToArray(off, cJSON_CreateNumber((double)(at + bytes)));
        at += bytes;
    }
    char *json = ok ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    if (!json)
        return NULL;
    size_t n_json = strlen(json), padded = (8 + n_json + 7) / 8 * 8 - 8;
    char *h = realloc(json, padded + 1);
    if (!h) {
        free(json);
        return NULL;
    }
    memset(h + n_json, ' ', padded - n_json);
    h[padded] = 0;
    *len = padded;
    return h;
}

/* The data of t in the file's dtype: as given, except bf16 into .npy. */
static bool write_data(FILE *fp, const mx_tf_out *t, bool npy) {
    int64_t n = numel_of(t);
    if (!(npy && t->dtype == MX_BF16))
        return fwrite(t->data, mx_dtype_size(t->dtype), (size_t)n, fp) == (size_t)n;
    const uint16_t *h = t->data;
    for (int64_t i = 0; i < n; i++) {
        float x = mx_bf16_to_f32(h[i]);
        if (fwrite(&x, sizeof x, 1, fp) != 1)
            return false;
    }
    return true;
}

mx_status mx_tensorfile_write(const char *path, const mx_tf_out *t, int n, mx_diag *d) {
    bool npy = is_npy_path(path);
    if (npy && n != 1)
        return mx_fail(d, MX_ERR_INVALID, "%s: a .npy file holds one array; the model has %d outputs "
                       "(write a .safetensors file)", path, n);
    size_t len = 0;
    unsigned char *header = NULL;
    if (npy)
        header = mx_npy_header(t[0].dtype == MX_F16 ? MX_TF_F16 : MX_TF_F32, t[0].rank, t[0].dim, &len);
    else
        header = (unsigned char *)safetensors_header(t, n, &len);
    if (!header)
        return mx_fail(d, MX_ERR_NOMEM, "%s: out of memory", path);
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *fp = fopen(tmp, "wb");
    if (!fp) {
        free(header);
        return mx_fail(d, MX_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
    }
    unsigned char prefix[8];
    for (int k = 0; k < 8; k++)
        prefix[k] = (unsigned char)((uint64_t)len >> (8 * k));
    bool ok = (npy || fwrite(prefix, 1, 8, fp) == 8) && fwrite(header, 1, len, fp) == len;
    for (int i = 0; i < n && ok; i++)
        ok = write_data(fp, &t[i], npy);
    free(header);
    int saved = errno;
    ok = fclose(fp) == 0 && ok;
    if (ok && rename(tmp, path) == 0)
        return MX_OK;
    saved = ok ? errno : saved;
    remove(tmp);
    return mx_fail(d, MX_ERR_IO, "%s: cannot write: %s", path, strerror(saved));
}

/* ---- binding to a compiled program --------------------------------------------------- */

static const char *dims_str(int rank, const int64_t *dim, char *buf, size_t size) {
    const char *s = mx_tf_type_str(MX_TF_F32, rank, dim, buf, size);
    return s + strlen(mx_tf_dtype_names[MX_TF_F32]);
}

/* The tensor of f for program input `in`: by name, or a .npy's one array. */
static const mx_tf_tensor *tensor_for(const mx_tensorfile *f, const mx_tensor_info *in) {
    return f->npy ? &f->tensors[0] : mx_tensorfile_find(f, in->name);
}

/* t's elements as dtype `to` into aligned memory (malloc'd), or an error
 * saying why they do not fit: dtypes must agree, but whole numbers load
 * into f32 where f32 holds them exactly. */
static mx_status convert(const mx_tensorfile *f, const mx_tf_tensor *t, const mx_tensor_info *in, void **out,
                         mx_diag *d) {
    bool ints = t->dtype == MX_TF_I32 || t->dtype == MX_TF_I64;
    if (t->dtype != from_graph[in->dtype] && !(ints && in->dtype == MX_F32))
        return mx_fail(d, MX_ERR_INVALID, "%s: tensor '%s': dtype %s, but input '%s' is %s%s", f->source,
                       t->name ? t->name : "(the array)", mx_tf_dtype_names[t->dtype], in->name,
                       mx_dtype_names[in->dtype],
                       t->dtype == MX_TF_F64 ? " (convert with .astype(np.float32))" : "");
    size_t size = mx_dtype_size(in->dtype);
    *out = malloc((size_t)t->numel * size + 1);
    if (!*out)
        return mx_fail(d, MX_ERR_NOMEM, "%s: out of memory", f->source);
    if (!ints) {
        memcpy(*out, t->data, (size_t)t->numel * size);
        return MX_OK;
    }
    float *x = *out;
    for (int64_t i = 0; i < t->numel; i++) {
        double v = mx_tf_element(t, i);
        if (fabs(v) > EXACT_INT_F32) {
            free(*out);
            return mx_fail(d, MX_ERR_INVALID, "%s: tensor '%s': element %lld is %.0f, which f32 input '%s' "
                           "cannot hold exactly (|v| <= 2^24)", f->source, t->name ? t->name : "(the array)",
                           (long long)i, v, in->name);
        }
        x[i] = (float)v;
    }
    return MX_OK;
}

static mx_status set_one(mx_compiled *c, const mx_tensorfile *f, const mx_tensor_info *in, mx_diag *d) {
    const mx_tf_tensor *t = tensor_for(f, in);
    if (!t)
        return mx_fail(d, MX_ERR_INVALID, "%s: no tensor '%s' for input '%s'", f->source, in->name, in->name);
    bool same = t->rank == in->rank;
    for (int k = 0; same && k < t->rank; k++)
        same = t->dim[k] == in->dims[k];
    if (!same) {
        char got[96], want[96];
        return mx_fail(d, MX_ERR_INVALID, "%s: tensor '%s': shape %s, but input '%s' is %s", f->source,
                       t->name ? t->name : "(the array)", dims_str(t->rank, t->dim, got, sizeof got), in->name,
                       dims_str(in->rank, in->dims, want, sizeof want));
    }
    void *data = NULL;
    MX_TRY(convert(f, t, in, &data, d));
    mx_status st = mx_set_input(c, in->name, data, in->dtype, in->rank, in->dims, d);
    free(data);
    return st;
}

mx_status mx_tensorfile_set_inputs(mx_compiled *c, const mx_tensorfile *f, mx_diag *d) {
    int n = mx_tensor_count(c, MX_ROLE_INPUT);
    mx_tensor_info in;
    if (f->npy && n != 1) {
        MX_TRY(mx_tensor_info_of(c, MX_ROLE_INPUT, 0, &in, d));
        return mx_fail(d, MX_ERR_INVALID, "%s: a .npy file holds one array, but the model takes %d inputs "
                       "('%s', ...): use a safetensors file", f->source, n, in.name);
    }
    for (int i = 0; i < n; i++) {
        MX_TRY(mx_tensor_info_of(c, MX_ROLE_INPUT, i, &in, d));
        MX_TRY(set_one(c, f, &in, d));
    }
    for (int j = 0; j < f->count && !f->npy; j++) {
        bool used = false;
        for (int i = 0; i < n && !used; i++) {
            MX_TRY(mx_tensor_info_of(c, MX_ROLE_INPUT, i, &in, d));
            used = strcmp(in.name, f->tensors[j].name) == 0;
        }
        if (!used) {
            char names[512] = "";
            for (int i = 0, len = 0; i < n && mx_tensor_info_of(c, MX_ROLE_INPUT, i, &in, NULL) == MX_OK; i++)
                len += snprintf(names + len, sizeof names - (size_t)len, "%s'%s'", i ? ", " : "", in.name);
            return mx_fail(d, MX_ERR_INVALID, "%s: tensor '%s' is not an input of the model (its inputs: %s)",
                           f->source, f->tensors[j].name, names);
        }
    }
    return MX_OK;
}

mx_status mx_tensorfile_write_outputs(const mx_compiled *c, const char *path, mx_diag *d) {
    int n = mx_tensor_count(c, MX_ROLE_OUTPUT);
    mx_tf_out *outs = calloc((size_t)n + 1, sizeof *outs);
    mx_status st = outs ? MX_OK : mx_fail(d, MX_ERR_NOMEM, "out of memory");
    for (int i = 0; i < n && st == MX_OK; i++) {
        mx_tensor_info info;
        st = mx_tensor_info_of(c, MX_ROLE_OUTPUT, i, &info, d);
        if (st != MX_OK)
            break;
        size_t bytes = (size_t)info.numel * mx_dtype_size(info.dtype);
        void *data = malloc(bytes + 1);
        outs[i] = (mx_tf_out){info.name, info.dtype, info.rank, info.dims, data};
        st = data ? mx_get_output(c, info.name, data, info.dtype, bytes, d) : mx_fail(d, MX_ERR_NOMEM, "out of memory");
    }
    if (st == MX_OK)
        st = mx_tensorfile_write(path, outs, n, d);
    for (int i = 0; outs && i < n; i++)
        free((void *)outs[i].data);
    free(outs);
    return st;
}

int mx_tensorfile_batch(const mx_model *m, const mx_tensorfile *f) {
    const mx_graph *g = m->g;
    for (int i = 0; m->spec.batch_free && f->count && i < mx_graph_input_count(g); i++) {
        int v = mx_graph_input(g, i);
        if (mx_graph_value_is_param(g, v))
            continue;
        const mx_tf_tensor *t = f->npy ? &f->tensors[0] : mx_tensorfile_find(f, mx_graph_value_name(g, v));
        int rank = mx_graph_value_rank(g, v);
        const int64_t *dims = mx_graph_value_dims(g, v);
        bool rest = t && t->rank == rank && rank > 0 && t->dim[0] >= 1 && t->dim[0] <= INT32_MAX &&
                    t->dim[0] != dims[0];
        for (int k = 1; rest && k < rank; k++)
            rest = t->dim[k] == dims[k];
        return rest ? (int)t->dim[0] : 0;
    }
    return 0;
}
