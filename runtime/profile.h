/* profile.h: what generated kernels do, counted without a GPU (docs/profile.md).
 *
 * A forward pass of a planned program runs under the host emulation with
 * every kernel built to count (mx_emu_load_profiling): per kernel, its warp-
 * level global load and store requests, the 32-byte sectors they touch, the
 * distinct bytes it moves (the DRAM estimate), its transcendental functions
 * (exps), shuffles and barriers. Set against what the kernel must do (each
 * argument read or written once; the exps of its ops, ir/cost.c) and a GPU
 * target's roofline, they say how far a kernel is from its floor, before any
 * GPU has run it. Matmul groups (cuBLASLt) are not profiled. */
#ifndef MX_PROFILE_H
#define MX_PROFILE_H

#include <stdio.h>

#include "codegen.h"
#include "emu.h"

typedef struct {
    int group;
    const char *kernel; /* the module's function name */
    mx_fusion kind;
    mx_emu_counters c;  /* what the kernel executed */
    /* what it must do */
    double min_bytes;     /* every argument read (or written) once */
    double min_exps;      /* the transcendental functions of its ops (ir/cost.c) */
    double state_updates; /* scan groups: B x Ch x L x N summed over their scans; else 0 */
    /* derived */
    double bytes;            /* distinct bytes loaded + stored: the DRAM estimate */
    double load_efficiency;  /* bytes the lanes asked for / (sectors x 32); 1 when none */
    double store_efficiency;
    double exps_per_update;  /* scan groups: exps / state_updates; else 0 */
    double exp_ratio;        /* exps / min_exps (1 when both are 0) */
    double bytes_ratio;      /* bytes / min_bytes */
    double roofline_s;       /* max(bytes / bytes_per_s, exps / exps_per_s) on the target */
    double floor_s;          /* the same for min_bytes and min_exps */
} mx_kernel_profile;

typedef struct {
    mx_target target;
    const char *graph;          /* the program's graph name */
    mx_kernel_profile *kernels; /* one per generated kernel, in schedule order */
    int n_kernels;
    int n_matmuls;              /* groups left to the matmul library */
    double roofline_s, floor_s; /* sums over the kernels */
} mx_profile;

/* Runs one forward pass of p (fused and planned) with module m (generated for
 * t) under the counting emulation. b holds the inputs and params of p->g;
 * NULL: seeded uniform numbers in [-1, 1) for all of them (control flow, such
 * as softplus's threshold, can depend on the data). t must be a GPU target
 * (emu or cuda) with its roofline rates. A bar of the kernels run goes to
 * progress (NULL: none; a whole model takes minutes). *out is freed with
 * mx_profile_free. */
mx_status mx_profile_run(const mx_program *p, const mx_module *m, const mx_target *t,
                         const mx_buffers *b, FILE *progress, mx_profile *out, mx_diag *d);
void mx_profile_free(mx_profile *pr);

/* The kernel profile of group k, NULL when k runs no generated kernel. */
const mx_kernel_profile *mx_profile_kernel(const mx_profile *pr, int group);

/* A table (one line per kernel and a total), or JSON
 * ({"graph", "target", "kernels": [...], "roofline_s", "floor_s"}). */
void mx_profile_print(const mx_profile *pr, FILE *out);
void mx_profile_print_json(const mx_profile *pr, FILE *out);

#endif
