/* tensorfile.h: named tensors in a file, read whole and written atomically,
 * and bound to a compiled program's inputs and outputs (docs/io.md).
 *
 * Two formats: safetensors (any number of named tensors) and NumPy's .npy
 * (one array, no name: it binds to a program with one input). Parsing works
 * on bytes in memory and never trusts them: every size, offset and count is
 * checked before it is used, so a fuzzer can drive mx_tensorfile_parse. */
#ifndef MX_TENSORFILE_H
#define MX_TENSORFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ir.h"

/* What a file may hold. Model data is f32, f16 or bf16; integers (token ids
 * from a tokenizer) and f64 (NumPy's default) are read so that they can be
 * accepted where exact, or refused with a hint. */
typedef enum { MX_TF_F32, MX_TF_F16, MX_TF_BF16, MX_TF_F64, MX_TF_I32, MX_TF_I64, MX_TF_COUNT } mx_tf_dtype;

extern const char *const mx_tf_dtype_names[MX_TF_COUNT]; /* safetensors' spelling: "F32", ... */
size_t mx_tf_dtype_size(mx_tf_dtype t);

typedef struct {
    const char *name;          /* NULL for the array of a .npy file */
    mx_tf_dtype dtype;
    int rank;
    int64_t dim[MX_MAX_RANK];
    int64_t numel;
    const unsigned char *data; /* numel elements, little-endian, row-major */
} mx_tf_tensor;

typedef struct {
    char source[256]; /* the path (or what the caller named the bytes), for messages */
    bool npy;
    int count;
    mx_tf_tensor *tensors;
    void *owned;      /* bytes read by mx_tensorfile_read, freed with the file */
    char *names;      /* the tensors' names, back to back */
} mx_tensorfile;

/* Parses size bytes at data (safetensors, or .npy by its magic). The tensors
 * point into data, which must outlive the result; source names it in
 * messages. */
mx_status mx_tensorfile_parse(const void *data, size_t size, const char *source, mx_tensorfile **out,
                              mx_diag *d);
mx_status mx_tensorfile_read(const char *path, mx_tensorfile **out, mx_diag *d);
void mx_tensorfile_free(mx_tensorfile *f);
const mx_tf_tensor *mx_tensorfile_find(const mx_tensorfile *f, const char *name);
/* Element i of t as a double (exact for every dtype but I64 beyond 2^53). */
double mx_tf_element(const mx_tf_tensor *t, int64_t i);
/* "F32[2,16,8]" into buf; returns buf. */
const char *mx_tf_type_str(mx_tf_dtype dtype, int rank, const int64_t *dim, char *buf, size_t size);

/* A tensor to write: numel elements of dtype at data. */
typedef struct {
    const char *name;
    mx_dtype dtype;
    int rank;
    const int64_t *dim;
    const void *data;
} mx_tf_out;

/* Writes n tensors to path: a .npy file (by the extension; exactly one
 * tensor; bf16 widened to f32, which NumPy lacks) or safetensors. Written to
 * "path.tmp" and renamed, so path never holds a partial file. */
mx_status mx_tensorfile_write(const char *path, const mx_tf_out *t, int n, mx_diag *d);

/* Binds every tensor of f to the program's input of the same name (a .npy
 * array to its only input): each input must be there once, no tensor may be
 * left over, shapes must match, and dtypes too, except that whole numbers
 * (I32, I64) load into an f32 input when exact there (token ids). */
mx_status mx_tensorfile_set_inputs(mx_compiled *c, const mx_tensorfile *f, mx_diag *d);
/* Writes every output of a run, in its graph dtype, to path. */
mx_status mx_tensorfile_write_outputs(const mx_compiled *c, const char *path, mx_diag *d);

/* The batch size f's data imply for model m when m's spec leaves the batch
 * free and the tensor for the model's first input differs from the graph in
 * dim 0 alone: that dim (rebuild m with "batch=N"); else 0. */
int mx_tensorfile_batch(const mx_model *m, const mx_tensorfile *f);

#endif
