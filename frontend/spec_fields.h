/* spec_fields.h: which JSON fields of a spec give a tensor its sizes.
 *
 * Errors found long after the spec was read (a run that would not fit in
 * memory, a kernel that needs more shared memory than the GPU has) must still
 * name the spec field to change. The graph only knows dims; this matches them
 * back to the fields of the spec that hold the same numbers. */
#ifndef MX_SPEC_FIELDS_H
#define MX_SPEC_FIELDS_H

#include "spec.h"

/* "input.length=100000000, stages[0].width=65536": the size fields of s whose
 * value (above 1) is one of dims, at most once each, into buf ("" if none). */
void mx_spec_fields_of_dims(const mx_spec *s, const int64_t *dims, int rank, char *buf, size_t size);

#endif
