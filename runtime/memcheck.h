/* memcheck.h: will a compiled program fit in memory? Asked before anything
 * big is allocated.
 *
 * A spec with one size too large must fail at once, with the numbers and the
 * fields to change, not after minutes of allocation and a crash. The estimate
 * follows what each device allocates: the reference interpreter keeps every
 * value of the graph in f32; the generated code (emu, cuda, cpu) keeps its
 * planned activation arena, its inputs and params in their dtypes, and the
 * host side keeps the caller's f32 inputs, params and outputs. Device memory
 * is compared with the target's memory_bytes, host memory with what this
 * machine has (and the target's memory_bytes for host devices). */
#ifndef MX_MEMCHECK_H
#define MX_MEMCHECK_H

#include "mixc.h"
#include "program.h"

typedef struct {
    double host_bytes;   /* host memory the run needs (emu's device memory included) */
    double device_bytes; /* GPU memory (cuda); 0 on host devices */
    double activations;  /* of which intermediate values */
    double weights;      /* of which params, in all their copies */
    int largest;         /* the largest intermediate value, -1 when none */
} mx_memory_need;

/* What running p on t takes. */
mx_memory_need mx_memory_estimate(const mx_program *p, const mx_target *t);

/* MX_ERR_NOMEM, with the numbers, the largest tensor and (m not NULL) the
 * spec fields that size it, when p would not fit on t; else MX_OK. */
mx_status mx_memory_check(const mx_program *p, const mx_target *t, const mx_model *m, mx_diag *d);

/* A code generator's refusal of group k ("scan group 5: the lanes tiles need
 * 262656 bytes of shared memory") names a kernel, not what the user wrote:
 * when d's message names a group of p and m is a model, appends the spec
 * fields whose values size the group's anchor (its inputs and results). */
void mx_explain_group_error(const mx_program *p, const mx_model *m, mx_diag *d);

#endif
