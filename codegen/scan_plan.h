/* scan_plan.h: what a scan group computes, recognised from its members
 * (internal to codegen/; emit_scan.c turns it into a kernel, docs/scan.md).
 *
 * A scan group (passes/fuse.c) holds one to MX_SCAN_MAX selective scans of
 * one shape [Bt, Ch, L] x N states, the folded views they read through, and
 * what fuse put after them:
 *   - the merge M, the value that sums the scans: a scan_scatter of the K
 *     scan orders, or a tree of adds, over the scans seen through shifts and
 *     flips of the L axis (a qs pair: shift(y_fwd, 1) + shift(y_bwd, -1);
 *     the qs pairs of K orders: scan_scatter(shift(y_fwd_0, 1),
 *     shift(y_bwd_0, -1), ...)), or a Switch of Scans: weighted_sum(w,
 *     T_0, ..., T_{K-1}), each term T_j an order's one-input scan_scatter
 *     (or none, for row) of an add tree of shifted scans and extra terms
 *     that read no scan (a qs diagonal u_j * D_j), weighted by w[j]; with
 *     one scan and no such node, M is the scan's result;
 *   - the epilogue: members computed from M element by element, through
 *     bijective views (reshape, permute, flip), e.g. the gate mul(M, silu(z)),
 *     the qs diagonal term u * D, a flip-back.
 * Each scan's step l lands in M at a position p(l) (its placement): first
 * q = sign * l + offset for the shifts and flips (steps whose q leaves
 * [0, L) are dropped), then p = pos_order(q) under a scatter, else p = q;
 * the positions no step reaches are 0. */
#ifndef MX_SCAN_PLAN_H
#define MX_SCAN_PLAN_H

#include "codegen.h"

#define MX_SCAN_MAX 16       /* scan_scatter's arity */
#define MX_SCAN_MERGE_MAX 96 /* nodes between the scans and their sum M */

typedef struct {
    int node;                     /* the selective_scan */
    int in[MX_SCAN_SLOTS];        /* its inputs, MX_NONE when absent */
    int y, hN;                    /* results; hN MX_NONE with one result */
    bool reverse, softplus;
    bool y_stored, hN_stored;     /* materialised (read by another group or the caller) */
    /* placement into M */
    int sign;                     /* q = sign * l + offset, dropped outside [0, L) */
    int64_t offset;
    bool by_order;                /* p = pos_order(q) over the h x w grid, else p = q */
    mx_scan_order order;
    int weight;                   /* its term of a Switch of Scans: M gets w[weight] * y; -1: unweighted */
} mx_scan_part;

/* A term of a Switch of Scans that reads no scan (a qs diagonal), added to
 * M in the last pass: M[p] += w[weight] * value[q], q the step at which the
 * term's order visits p (q = p without an order). */
typedef struct {
    int value;
    int weight;
    bool by_order;
    mx_scan_order order;
} mx_scan_extra;

/* A materialised value of the epilogue (or M itself), and the chain of views
 * from M to it, innermost first: its index is M's index mapped forward. */
typedef struct {
    int value;
    int views[8];
    int n_views;
} mx_scan_out;

typedef struct {
    int64_t Bt, Ch, L, N, G;
    int n_scans;
    mx_scan_part scan[MX_SCAN_MAX];
    int merge;                    /* M; the scan's y when there is one scan and no merge node */
    bool summed;                  /* M is a node that sums the scans (else the one scan's y) */
    int weights;                  /* the weights [K] of a Switch of Scans, MX_NONE without one */
    int n_terms;                  /* K, the weighted sum's terms */
    mx_scan_extra extra[MX_SCAN_MAX];
    int n_extra;
    int merge_nodes[MX_SCAN_MERGE_MAX]; /* M's node and the members between the scans and M */
    int n_merge_nodes;
    int64_t grid_h, grid_w;       /* of a scan_scatter merge */
    mx_scan_out out[8];           /* materialised values computed from M */
    int n_out;
    int acc;                      /* index into out: the buffer the K scans sum into; -1 for one scan */
} mx_scan_plan;

/* Recognises group `group` of p; an unsupported structure fails with a
 * message that names the group and the node in the way. */
mx_status mx_scan_plan_fill(const mx_program *p, int group, mx_scan_plan *sp, mx_diag *d);

/* Leaves out the terms of a Switch of Scans whose weight (weights[j], the
 * bound values of sp->weights) is below eps: their scans and extra terms,
 * unless a scan's result is stored for another group; the heaviest term and
 * at least one scan always stay. Sets dropped[j] per term and returns the
 * sum of the dropped weights: |M - M_pruned| <= that sum x max_j |T_j|. */
double mx_scan_plan_prune(mx_scan_plan *sp, const float *weights, double eps, bool *dropped);

/* Whether node is part of the merge (sp->merge_nodes). */
bool mx_scan_in_merge(const mx_scan_plan *sp, int node);

/* The cost model's tiles for a scan group (docs/scan.md): packed rows when
 * L < 32; else one state row per lane group walking L when Bt x Ch x N
 * fills the GPU twice over, else the chunked block scan. mx_tiles_default
 * calls it for scan groups. */
mx_tiles mx_scan_default_tiles(const mx_program *p, int group, const mx_target *t);

/* The most steps per chunk, a power of two up to `most`, whose lanes block
 * of `channels` rows (one lane per row) fits smem bytes: its steps' y, d
 * and d u, and B and C when staged. 1 when none fits (the emitter then
 * says so). */
int mx_scan_lanes_items(const mx_scan_plan *sp, int channels, int most, int smem);

#endif
