/* npy.h: NumPy's .npy format, one array per file (format versions 1, 2 and
 * 3: little-endian f32, f16, f64, i32, i64, C order). */
#ifndef MX_NPY_H
#define MX_NPY_H

#include "tensorfile.h"

/* Whether the bytes start with the .npy magic. */
bool mx_npy_is(const void *data, size_t size);
/* Parses a whole .npy file in memory; t->data points into data and t->name
 * is NULL. Messages start with source. */
mx_status mx_npy_parse(const void *data, size_t size, const char *source, mx_tf_tensor *t, mx_diag *d);
/* The magic, version and header of a version 1.0 file for an array of dtype
 * (F32 or F16) and shape, padded so the data starts 64-byte aligned:
 * malloc'd (NULL when out of memory), its length in *len. */
unsigned char *mx_npy_header(mx_tf_dtype dtype, int rank, const int64_t *dim, size_t *len);

#endif
