/* test_io.c: input and output files (tensorfile.h, npy.h).
 *
 * Round trip: random inputs set in memory and run, then the same inputs
 * written to safetensors and to .npy, read back, bound and run: the outputs
 * written to a file and read back are bit for bit the in-process ones. Then
 * the refusals (wrong name, shape, dtype, a left-over tensor) and malformed
 * bytes, each a clear error and never a crash. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "model.h"
#include "npy.h"
#include "support.h"
#include "tensorfile.h"

static const char *tmp_path(const char *name) { return support_tmp_path("io", name); }

/* The reduced Mamba block, compiled for the reference, seeded params. */
static mx_compiled *compile_block(mx_model **m) {
    *m = support_load_reduced(MIXC_SOURCE_DIR "/models/mamba-block.json", NULL);
    mx_target t;
    mx_diag d;
    mx_compiled *c = *m && mx_target_detect(MX_DEVICE_REF, &t, &d) == MX_OK ? mx_compile_model(*m, &t, NULL, &d)
                                                                           : NULL;
    if (c && mx_init_weights(c, 7, &d) != MX_OK) {
        mx_compiled_free(c);
        c = NULL;
    }
    CHECK_MSG(c != NULL, "%s", d.msg);
    return c;
}

static float *run_with_file(mx_compiled *c, const char *in_path, const char *out_path, int64_t n) {
    mx_diag d = {{0}};
    mx_tensorfile *in = NULL, *out = NULL;
    mx_status st = mx_tensorfile_read(in_path, &in, &d);
    if (st == MX_OK && (st = mx_tensorfile_set_inputs(c, in, &d)) == MX_OK && (st = mx_run(c, &d)) == MX_OK &&
        (st = mx_tensorfile_write_outputs(c, out_path, &d)) == MX_OK)
        st = mx_tensorfile_read(out_path, &out, &d);
    CHECK_MSG(st == MX_OK, "%s: %s", in_path, d.msg);
    float *y = NULL;
    if (out && out->count == 1 && out->tensors[0].numel == n && (y = malloc((size_t)n * sizeof *y)))
        memcpy(y, out->tensors[0].data, (size_t)n * sizeof *y);
    CHECK_MSG(y != NULL, "%s: no output of %lld elements read back", out_path, (long long)n);
    mx_tensorfile_free(in);
    mx_tensorfile_free(out);
    return y;
}

static void check_round_trip(void) {
    mx_model *m;
    mx_compiled *c = compile_block(&m);
    if (!c) {
        mx_model_free(m);
        return;
    }
    mx_tensor_info in, out;
    mx_diag d;
    CHECK(mx_tensor_info_of(c, MX_ROLE_INPUT, 0, &in, &d) == MX_OK);
    CHECK(mx_tensor_info_of(c, MX_ROLE_OUTPUT, 0, &out, &d) == MX_OK);
    float *x = malloc((size_t)in.numel * sizeof *x);
    check_fill(x, in.numel, -1, 1);
    CHECK(mx_set_input(c, in.name, x, MX_F32, in.rank, in.dims, &d) == MX_OK && mx_run(c, &d) == MX_OK);
    float *want = malloc((size_t)out.numel * sizeof *want);
    memcpy(want, mx_output(c, out.name), (size_t)out.numel * sizeof *want);

    mx_tf_out t = {in.name, MX_F32, in.rank, in.dims, x};
    const char *formats[][2] = {{"in.safetensors", "out.safetensors"}, {"in.npy", "out.npy"}};
    for (int k = 0; k < 2; k++) {
        CHECK_MSG(mx_tensorfile_write(tmp_path(formats[k][0]), &t, 1, &d) == MX_OK, "%s", d.msg);
        CHECK_MSG(access(tmp_path("in.npy.tmp"), F_OK) != 0, "the temp file is left");
        float *got = run_with_file(c, tmp_path(formats[k][0]), tmp_path(formats[k][1]), out.numel);
        CHECK_MSG(got && memcmp(got, want, (size_t)out.numel * sizeof *got) == 0,
                  "%s: the outputs differ from the in-process run", formats[k][0]);
        free(got);
    }

    /* refusals: the first message names the file, the tensor and both sides */
    int64_t short_dims[3] = {in.dims[0], in.dims[1] - 1, in.dims[2]};
    uint16_t *halves = calloc((size_t)in.numel, sizeof *halves);
    struct {
        mx_tf_out t[2];
        int n;
        const char *want;
    } bad[] = {
        {{{"tokenz", MX_F32, in.rank, in.dims, x}}, 1, "no tensor 'tokens' for input 'tokens'"},
        {{{in.name, MX_F32, 3, short_dims, x}}, 1, "shape [1,11,8], but input 'tokens' is [1,12,8]"},
        {{{in.name, MX_F16, in.rank, in.dims, halves}}, 1, "dtype F16, but input 'tokens' is f32"},
        {{{in.name, MX_F32, in.rank, in.dims, x}, {"extra", MX_F32, in.rank, in.dims, x}}, 2,
         "tensor 'extra' is not an input of the model (its inputs: 'tokens')"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        mx_tensorfile *f = NULL;
        mx_status st = mx_tensorfile_write(tmp_path("bad.safetensors"), bad[i].t, bad[i].n, &d);
        if (st == MX_OK && (st = mx_tensorfile_read(tmp_path("bad.safetensors"), &f, &d)) == MX_OK)
            st = mx_tensorfile_set_inputs(c, f, &d);
        CHECK_MSG(st != MX_OK && strstr(d.msg, bad[i].want) && strstr(d.msg, "bad.safetensors"),
                  "case %zu: got \"%s\", want \"%s\"", i, st ? d.msg : "success", bad[i].want);
        mx_tensorfile_free(f);
    }
    remove(tmp_path("bad.safetensors"));
    for (int k = 0; k < 2; k++)
        remove(tmp_path(formats[k][0])), remove(tmp_path(formats[k][1]));
    free(halves);
    free(x);
    free(want);
    mx_compiled_free(c);
    mx_model_free(m);
}

/* .npy bytes by hand: version, header text and data size under control. */
static size_t npy_bytes(unsigned char *buf, int version, const char *header, size_t data) {
    size_t width = version == 1 ? 2 : 4, n = strlen(header);
    memcpy(buf, "\x93NUMPY", 6);
    buf[6] = (unsigned char)version;
    buf[7] = 0;
    for (size_t k = 0; k < width; k++)
        buf[8 + k] = (unsigned char)(n >> (8 * k));
    memcpy(buf + 8 + width, header, n);
    memset(buf + 8 + width + n, 0, data);
    return 8 + width + n + data;
}

static void check_npy_parse(void) {
    static const struct {
        int version;
        const char *header;
        size_t data;
        const char *want; /* NULL: parses */
    } cases[] = {
        {1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }\n", 24, NULL},
        {2, "{'descr': '<i8', 'fortran_order': False, 'shape': (5,), }", 40, NULL},
        {3, "{'shape': (), 'fortran_order': False, 'descr': '<f2'}", 2, NULL},
        {1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 20, "needs 24 bytes of data, the file has 20"},
        {1, "{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }", 8, "dtype '>f4' is not supported"},
        {1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }", 16, "Fortran order"},
        {1, "{'descr': '<f4', 'shape': (2,), }", 8, "'fortran_order' is missing"},
        {1, "{'descr': '<f4', 'fortran_order': False, 'shape': (-2,), }", 8, "not an integer"},
        {1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,1,1,1,1,1), }", 4, "more than 5 dims"},
        {1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'x': 1}", 8, "unknown key"},
        {1, "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (2,)}", 8, "given twice"},
        {1, "{'descr': '<f4", 0, "unterminated string"},
        {4, "{}", 0, "version 4 is not supported"},
        {1, "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }", 0, "not an integer"},
    };
    unsigned char buf[512];
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        size_t n = npy_bytes(buf, cases[i].version, cases[i].header, cases[i].data);
        mx_tf_tensor t;
        mx_diag d = {{0}};
        mx_status st = mx_npy_parse(buf, n, "x.npy", &t, &d);
        if (!cases[i].want)
            CHECK_MSG(st == MX_OK, "case %zu: %s", i, d.msg);
        else
            CHECK_MSG(st != MX_OK && strstr(d.msg, cases[i].want), "case %zu: got \"%s\", want \"%s\"", i,
                      st ? d.msg : "success", cases[i].want);
        /* every truncation of a valid file is an error, never a crash */
        for (size_t cut = 0; !cases[i].want && cut < n; cut++)
            CHECK_MSG(mx_npy_parse(buf, cut, "x.npy", &t, &d) != MX_OK, "case %zu cut at %zu parsed", i, cut);
    }
    /* a header length beyond the file */
    size_t n = npy_bytes(buf, 1, "{}", 0);
    buf[8] = 0xff;
    mx_tf_tensor t;
    mx_diag d;
    CHECK(mx_npy_parse(buf, n, "x.npy", &t, &d) != MX_OK && strstr(d.msg, "larger than the file"));
}

static void check_safetensors_parse(void) {
    static const char *const cases[][2] = {
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", NULL},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", "needs 12 bytes, data_offsets give 8"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,16]}}", "data_offsets must be"},
        {"{\"a\":{\"dtype\":\"U8\",\"shape\":[8],\"data_offsets\":[0,8]}}", "dtype 'U8' is not supported"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", "shape[0] is not an integer"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", "listed twice"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1],\"data_offsets\":[0,4]}}", "6 dims"},
        {"{\"__metadata__\":3}", "__metadata__ is not an object"},
        {"[1,2]", "not a JSON object"},
        {"{\"a\":1} x", "text after the header"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        unsigned char buf[512] = {0};
        size_t len = strlen(cases[i][0]);
        for (int k = 0; k < 8; k++)
            buf[k] = (unsigned char)(len >> (8 * k));
        memcpy(buf + 8, cases[i][0], len);
        mx_tensorfile *f = NULL;
        mx_diag d = {{0}};
        mx_status st = mx_tensorfile_parse(buf, 8 + len + 8, "x.safetensors", &f, &d);
        if (!cases[i][1])
            CHECK_MSG(st == MX_OK && f->count == 1 && f->tensors[0].numel == 2, "case %zu: %s", i, d.msg);
        else
            CHECK_MSG(st != MX_OK && strstr(d.msg, cases[i][1]), "case %zu: got \"%s\", want \"%s\"", i,
                      st ? d.msg : "success", cases[i][1]);
        mx_tensorfile_free(f);
        for (size_t cut = 0; !cases[i][1] && cut < 8 + len; cut++) {
            CHECK_MSG(mx_tensorfile_parse(buf, cut, "x.safetensors", &f, &d) != MX_OK, "cut at %zu parsed", cut);
        }
    }
}

/* A spec without "batch" takes it from the data; one with it does not. */
static void check_batch_from_inputs(void) {
    /* the reduced sizes of zoo_reduced.h, but no batch */
    const char *reduced[] = {"input.length=12", "input.vocab=64", "stages[0].width=8", "stages[0].depth=2"};
    mx_model *free_batch = support_load_model(MIXC_SOURCE_DIR "/models/lm/mamba-130m.json", reduced, 4);
    mx_model *fixed = support_load_reduced(MIXC_SOURCE_DIR "/models/mamba-block.json", NULL);
    if (!free_batch || !fixed) {
        mx_model_free(free_batch);
        mx_model_free(fixed);
        return;
    }
    float ids[3 * 12] = {0};
    int64_t dims[2] = {3, 12};
    mx_tf_out t = {"token_ids", MX_F32, 2, dims, ids};
    mx_diag d;
    mx_tensorfile *f = NULL;
    CHECK(mx_tensorfile_write(tmp_path("ids.safetensors"), &t, 1, &d) == MX_OK &&
          mx_tensorfile_read(tmp_path("ids.safetensors"), &f, &d) == MX_OK);
    if (f) {
        CHECK(mx_tensorfile_batch(free_batch, f) == 3);
        CHECK(mx_tensorfile_batch(fixed, f) == 0);
    }
    mx_tensorfile_free(f);
    remove(tmp_path("ids.safetensors"));
    mx_model_free(free_batch);
    mx_model_free(fixed);
}

int main(void) {
    check_round_trip();
    check_npy_parse();
    check_safetensors_parse();
    check_batch_from_inputs();
    support_tmp_remove();
    return check_summary();
}
