/* safetensors.h: the safetensors format's primitives, shared by the weights
 * loader and writer (safetensors.c) and the reader of input and output files
 * (tensorfile.c): an 8-byte little-endian header length, a JSON header whose
 * numbers are whole and exact in a double, little-endian data. */
#ifndef MX_SAFETENSORS_H
#define MX_SAFETENSORS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#define MX_ST_MAX_HEADER_BYTES (100u << 20)   /* 100 MB, the limit of the reference reader */
#define MX_ST_MAX_JSON_INT 9007199254740992.0 /* 2^53: integers doubles hold exactly */

/* A JSON number that is a whole value in [0, 2^53]. */
bool mx_st_json_uint(const cJSON *item, uint64_t *out);
/* The width-byte little-endian integer at p, and its inverse. */
uint64_t mx_st_load_le(const unsigned char *p, size_t width);
void mx_st_store_le(unsigned char *p, uint64_t x, size_t width);

#endif
