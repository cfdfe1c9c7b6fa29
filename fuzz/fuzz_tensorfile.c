/* fuzz_tensorfile.c: input and output files, safetensors or .npy, parsed
 * from memory (frontend/tensorfile.h, frontend/npy.c; docs/io.md).
 *
 * Input: a file's bytes. Promises: it parses or fails with a message; every
 * tensor of a parsed file lies inside the bytes (its first and last elements
 * are read, so ASan sees any overrun). */
#include "fuzz.h"
#include "tensorfile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    mx_tensorfile *f = NULL;
    mx_diag d = {{0}};
    mx_status st = mx_tensorfile_parse(data, size, "fuzz.bin", &f, &d);
    FUZZ_FAILED_WITH_MESSAGE(st, d);
    for (int i = 0; st == MX_OK && i < f->count; i++) {
        const mx_tf_tensor *t = &f->tensors[i];
        FUZZ_REQUIRE(t->data >= data && t->numel >= 0 &&
                         (size_t)(t->data - data) + (size_t)t->numel * mx_tf_dtype_size(t->dtype) <= size,
                     "tensor %d lies outside the file", i);
        if (t->numel > 0)
            (void)(mx_tf_element(t, 0) + mx_tf_element(t, t->numel - 1));
    }
    mx_tensorfile_free(f);
    return 0;
}
