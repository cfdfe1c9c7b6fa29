/* tune_search.h: the tuner's state, shared by the search (tune.c) and its
 * last steps in the forward pass (tune_forward.c). Internal to mx_tune. */
#ifndef MX_TUNE_SEARCH_H
#define MX_TUNE_SEARCH_H

#include "tune.h"

#define WIN_MARGIN 0.97 /* measured: the ratio a winner must beat (the noise of a shared machine) */

typedef struct {
    mx_tune_unit unit;      /* what is tuned (its identity keys the record): a kernel, or a CPU product's split */
    int rep;                /* the group it is timed at */
    int n_groups;           /* groups that run it */
    char label[128];
    mx_tune_space space;
    int *queue;             /* space indices still to try */
    int n_queue, head;
    bool *tried;            /* per space index */
    mx_tune_record rec;     /* candidates tried so far; [0] the default */
    int best;               /* into rec.candidates */
    double best_before_beam;
    int current;            /* the space index in the round, -1: none */
    int from[MX_TUNE_MAX_CANDIDATES]; /* per candidate: its space index */
    bool confirming;        /* the round re-times the best against the default */
    int default_spills;     /* modelled: bytes the default spills (a candidate may not spill more) */
    bool done, written;
} kernel_search;

typedef struct {
    mx_compiled *c;
    const mx_program *p;
    mx_target t;
    const mx_backend *be;
    const mx_tune_options *o;
    const mx_tune_hooks *hooks;
    mx_buffers *pb;          /* the program's bound inputs and params */
    mx_buffers *want;        /* the default's outputs */
    mx_tiles *base;          /* per group: the device's defaults */
    mx_tune_build *default_build; /* measured: the default program, open */
    int jobs;                /* rounds opened at once */
    kernel_search *k;
    int n_k;
    int *class_of;           /* per group: its kernel_search, -1 */
    double start;
    char db[1024], sig[256];
    uint64_t rng;
} tuner;

/* The median of v[0 .. n) (sorts v). */
double mx_tune_median(double *v, int n);
/* Whether got's outputs match want's: the same non-finite positions, the
 * rest within the dtype's tolerance of the output's largest magnitude. */
bool mx_tune_outputs_match(const mx_program *p, const mx_buffers *got, const mx_buffers *want);
/* An output buffer set sharing the program's inputs and params; NULL: out of memory. */
mx_buffers *mx_tune_output_buffers(const tuner *tu);
/* The outputs of a program with tiles, b opened here unless it was (see tune.c). */
mx_status mx_tune_run_program(tuner *tu, const mx_tiles *tiles, mx_tune_build *b, mx_buffers *out, double *est,
                              int *spills, mx_diag *d);

/* The default's time in the pass in the judging round of r's winner
 * (pass_ms / pass_ratio: the rounds' loads differ, so the default's own
 * pass_ms, from the last round that judged the kernel, is not its
 * measure), or that pass_ms when the default won. */
double mx_tune_default_pass_ms(const mx_tune_record *r);
/* Whether the kernels' best candidates are judged in the forward pass
 * (the device times groups in a pass, or the test's times are injected);
 * else the best is re-timed alone, longer. */
bool mx_tune_judges_in_pass(const tuner *tu);
/* Each kernel's best few candidates (timed alone) timed again in whole
 * forward passes against the default program, their winners chosen there
 * (tune_forward.c). */
mx_status mx_tune_judge_in_pass(tuner *tu, mx_diag *d);
/* The winners together on the whole forward pass against the defaults:
 * kept only where the pass is faster (tune_forward.c). */
mx_status mx_tune_check_forward(tuner *tu, mx_tune_summary *out, mx_diag *d);

#endif
