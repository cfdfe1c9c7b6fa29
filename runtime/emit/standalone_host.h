/* standalone_host.h: what a model that `mixc emit` wrote does the same on
 * every backend: errors, inputs and outputs as f32 (converted to the storage
 * type with half.h, bit-exact with CUDA's conversions), and the weights
 * loader (safetensors). Included after the backend's mxs_model, which has
 * at least: const mxs_desc *d; char error[512]; void **ptr (per buffer);
 * int weights_loaded; the backend defines mxs_to_device and mxs_from_device
 * (copies between host memory and a buffer). C and C++. */
#ifndef MXS_STANDALONE_HOST_H
#define MXS_STANDALONE_HOST_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MX_HALF_BITS_ONLY
#include "half.h"
#include "standalone_tables.h"

static int mxs_to_device(mxs_model *m, void *dst, const void *src, size_t bytes, const char *what);
static int mxs_from_device(mxs_model *m, void *dst, const void *src, size_t bytes, const char *what);

static int mxs_fail(mxs_model *m, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m->error, sizeof m->error, fmt, ap);
    va_end(ap);
    return 1;
}

/* A zeroed model of d; NULL with the reason in err (err_size bytes, when not NULL). */
static mxs_model *mxs_new(const mxs_desc *d, char *err, size_t err_size) {
    mxs_model *m = (mxs_model *)calloc(1, sizeof *m);
    if (m)
        m->d = d;
    else if (err)
        snprintf(err, err_size, "%s: out of memory", d->name);
    return m;
}

/* The kernel arguments of all steps (the length of d->args). */
static int mxs_n_args(const mxs_desc *d) {
    int n = 0;
    for (int i = 0; i < d->n_steps; i++)
        n += d->steps[i].n_args;
    return n;
}

static int mxs_find(const mxs_tensor *t, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (strcmp(t[i].name, name) == 0)
            return t[i].buffer;
    return -1;
}

static void mxs_pack(int dtype, const float *x, long long n, void *out) {
    for (long long i = 0; i < n; i++) {
        if (dtype == MXS_F32)
            ((float *)out)[i] = x[i];
        else
            ((uint16_t *)out)[i] = dtype == MXS_F16 ? mx_f32_to_f16(x[i]) : mx_f32_to_bf16(x[i]);
    }
}

static void mxs_unpack(int dtype, const void *in, long long n, float *x) {
    for (long long i = 0; i < n; i++)
        x[i] = dtype == MXS_F32   ? ((const float *)in)[i]
               : dtype == MXS_F16 ? mx_f16_to_f32(((const uint16_t *)in)[i])
                                  : mx_bf16_to_f32(((const uint16_t *)in)[i]);
}

static int mxs_set_input(mxs_model *m, const char *name, const float *data, size_t count) {
    int b = mxs_find(m->d->inputs, m->d->n_inputs, name);
    if (b < 0)
        return mxs_fail(m, "no input named '%s'", name);
    const mxs_buffer *buf = &m->d->buffers[b];
    if ((long long)count != buf->numel)
        return mxs_fail(m, "input %s: expected %lld numbers, got %zu", name, buf->numel, count);
    void *staged = malloc(mxs_bytes(buf) + 1);
    if (!staged)
        return mxs_fail(m, "out of memory");
    mxs_pack(buf->dtype, data, buf->numel, staged);
    int failed = mxs_to_device(m, m->ptr[b], staged, mxs_bytes(buf), name);
    free(staged);
    return failed;
}

static int mxs_get_output(mxs_model *m, const char *name, float *data, size_t count) {
    int b = mxs_find(m->d->outputs, m->d->n_outputs, name);
    if (b < 0)
        return mxs_fail(m, "no output named '%s'", name);
    const mxs_buffer *buf = &m->d->buffers[b];
    if ((long long)count != buf->numel)
        return mxs_fail(m, "output %s: holds %lld numbers, room for %zu given", name, buf->numel, count);
    void *staged = malloc(mxs_bytes(buf) + 1);
    if (!staged)
        return mxs_fail(m, "out of memory");
    int failed = mxs_from_device(m, staged, m->ptr[b], mxs_bytes(buf), name);
    if (!failed)
        mxs_unpack(buf->dtype, staged, buf->numel, data);
    free(staged);
    return failed;
}

/* ---- weights (safetensors) ------------------------------------------------------------ */

/* The [begin, end) data offsets and dtype of tensor name in a safetensors
 * header, which mixc wrote: {"name":{"dtype":"F32","shape":[...],"data_offsets":[b,e]},...} */
static int mxs_header_entry(const char *header, const char *name, char dtype[8], long long *begin, long long *end) {
    size_t n = strlen(name);
    for (const char *at = header; (at = strstr(at, name)) != NULL; at += n) {
        if (at == header || at[-1] != '"' || strncmp(at + n, "\":", 2) != 0)
            continue;
        const char *close = strchr(at, '}');
        const char *dt = strstr(at, "\"dtype\":\""), *off = strstr(at, "\"data_offsets\":[");
        if (!close || !dt || !off || dt > close || off > close)
            return 0;
        return sscanf(dt + 9, "%7[A-Z0-9]", dtype) == 1 && sscanf(off + 16, "%lld,%lld", begin, end) == 2;
    }
    return 0;
}

static int mxs_load_weights(mxs_model *m, const char *path) {
    static const char *const dtype_names[] = {"F32", "F16", "BF16"};
    FILE *f = fopen(path, "rb");
    if (!f)
        return mxs_fail(m, "%s: cannot open it", path);
    unsigned char len_bytes[8];
    unsigned long long header_len = 0;
    int failed = fread(len_bytes, 1, 8, f) != 8 ? mxs_fail(m, "%s: not a safetensors file", path) : 0;
    for (int i = 7; i >= 0; i--)
        header_len = header_len << 8 | len_bytes[i];
    failed = failed || (header_len > (1ull << 30) && mxs_fail(m, "%s: a header of %llu bytes", path, header_len));
    char *header = failed ? NULL : (char *)malloc(header_len + 1);
    failed = failed || (!header && mxs_fail(m, "out of memory"));
    failed = failed || (fread(header, 1, header_len, f) != header_len && mxs_fail(m, "%s: truncated header", path));
    if (header)
        header[failed ? 0 : header_len] = 0;
    /* the data after the header: every tensor's [begin, end) must lie in it */
    long long data_size = -1;
    if (!failed && fseek(f, 0, SEEK_END) == 0)
        data_size = (long long)ftell(f) - 8 - (long long)header_len;
    failed = failed || (data_size < 0 && mxs_fail(m, "%s: cannot tell its size", path));
    for (int i = 0; !failed && i < m->d->n_buffers; i++) {
        const mxs_buffer *b = &m->d->buffers[i];
        char dtype[8];
        long long begin, end;
        if (b->kind != MXS_WEIGHT)
            continue;
        if (!mxs_header_entry(header, b->name, dtype, &begin, &end)) {
            failed = mxs_fail(m, "%s: no tensor '%s'", path, b->name);
        } else if (begin < 0 || end < begin || end > data_size) {
            failed = mxs_fail(m, "%s: tensor '%s' has data_offsets [%lld, %lld], not within its %lld bytes of data",
                              path, b->name, begin, end, data_size);
        } else if (strcmp(dtype, dtype_names[b->dtype]) != 0 || end - begin != (long long)mxs_bytes(b)) {
            failed = mxs_fail(m, "%s: tensor '%s' is %s of %lld bytes; the model wants %s of %zu", path, b->name,
                              dtype, end - begin, dtype_names[b->dtype], mxs_bytes(b));
        } else {
            void *staged = malloc(mxs_bytes(b) + 1);
            if (!staged)
                failed = mxs_fail(m, "out of memory");
            else if (fseek(f, (long)(8 + header_len + begin), SEEK_SET) != 0 ||
                     fread(staged, 1, mxs_bytes(b), f) != mxs_bytes(b))
                failed = mxs_fail(m, "%s: tensor '%s' is cut short", path, b->name);
            else
                failed = mxs_to_device(m, m->ptr[i], staged, mxs_bytes(b), b->name);
            free(staged);
        }
    }
    free(header);
    fclose(f);
    m->weights_loaded = !failed;
    return failed;
}

#endif
