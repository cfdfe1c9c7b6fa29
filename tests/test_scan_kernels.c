/* test_scan_kernels.c: the fused selective-scan kernels (codegen/emit_scan.c)
 * under host emulation against the reference interpreter, and under NVRTC
 * for sm_80 and sm_90 (registers, no spills).
 *
 * Each family is ONE graph holding many independent scan problems (their
 * values prefixed pI_), so it is one program, one module and one host
 * compile; every problem's scan group gets its own tiles. Inputs are fresh
 * random numbers (never zeros; A < 0, and delta > 0 where no softplus keeps
 * the state bounded), outputs are poisoned with NaN before the launch, and
 * every stored result of the group is compared with mx_ref_run: 1e-4
 * relative for f32 storage, 2e-2 for bf16.
 *
 * The grid (docs/scan.md, "Tests"): L in {1, 7, 49, 196, 197, 1000, 3136}
 * each at least once per decomposition; N in {1, 16, 64}; G in {1, 4}; one
 * scan forward and reverse (with h0 / hN, D, z, bias, softplus on and off),
 * bidirectional pairs (scan_scatter [row, row_rev], u gathered reversed),
 * qs pairs (shifts, u * D, a permuted gate), K = 4 orders on a grid (row /
 * col and their reverses; snake, snake_col_rev, diag, diag_rev), qs pairs
 * of K = 2 and 4 orders merged by one scan_scatter of the shifted scans
 * (ViQS's token mixer: the diagonal u * (D_0 + ...) added once), groups of
 * 16 channels and more (wide_f32), ragged
 * tails everywhere (L not a multiple of the chunk or super-chunk), partial
 * blocks of rows (lanes, rows not a multiple of the channels per block) and
 * staged B / C (rows of a block sharing (b, g)), packed rows (L < 32,
 * several rows per block: partial warps and blocks). Rows are few where L is
 * long: the emulator runs a thread switch per shuffle and barrier.
 *
 * Each family also runs on the CPU backend through the public API (the
 * family's graph compiled for the cpu target, the same inputs and params),
 * with 4, 8 and the host's lanes per vector (docs/cpu.md): rows of a group
 * whose channels divide by the lanes run as vector lanes, the others one
 * row per block; every output against the reference. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend.h"
#include "cache.h"
#include "emit.h"
#include "emu.h"
#include "gpu.h"
#include "half.h"
#include "rtc.h"
#include "scan_plan.h"
#include "support.h"

#define TOL_F32 1e-4
#define TOL_BF16 2e-2

typedef enum { SINGLE, BIDIR, QS, CROSS4, QSK } prob_kind;

typedef struct {
    prob_kind kind;
    int64_t Bt, Ch, N, G, h, w; /* L = h * w */
    int reverse, softplus;
    bool D, z, bias, h0, hN;
    mx_dtype dt;
    const char *orders; /* CROSS4: four order names; QSK: two or four */
    mx_tiles tiles;     /* all 0: the defaults */
} prob;

#define LANES(l, ch, it) {.threads = (l) * (ch), .lanes_per_state = (l), .channels = (ch), .items = (it)}
#define CHUNKED(th, it) {.chunked = 1, .threads = (th), .items = (it)}
/* packed rows: ch rows of seg lanes (the power of two whose lanes of it steps cover L) */
#define PACKED(ch, seg, it) {.chunked = 1, .channels = (ch), .threads = (ch) * (seg), .items = (it)}

/* ---- the graph ----------------------------------------------------------------- */

static const char *dts(mx_dtype t) { return mx_dtype_names[t]; }

/* The scan inputs of problem i, scan k: %pI_dlK (through a permute), %pI_AK,
 * %pI_BK, %pI_CK, %pI_DK, %pI_dbK, %pI_h0K. */
static void scan_inputs(mx_text *t, int i, int k, const prob *p) {
    long long Bt = p->Bt, Ch = p->Ch, N = p->N, G = p->G, L = p->h * p->w;
    const char *T = dts(p->dt);
    mx_text_printf(t, "  %%p%d_dlt%d = input() : %s[%lld,%lld,%lld]\n", i, k, T, Bt, L, Ch);
    mx_text_printf(t, "  %%p%d_dl%d = permute(%%p%d_dlt%d) {perm=[0,2,1]} : %s[%lld,%lld,%lld]\n", i, k, i, k, T, Bt,
                   Ch, L);
    mx_text_printf(t, "  %%p%d_A%d = param() : f32[%lld,%lld]\n", i, k, Ch, N);
    mx_text_printf(t, "  %%p%d_B%d = input() : %s[%lld,%lld,%lld,%lld]\n", i, k, T, Bt, G, N, L);
    mx_text_printf(t, "  %%p%d_C%d = input() : %s[%lld,%lld,%lld,%lld]\n", i, k, T, Bt, G, N, L);
    if (p->D)
        mx_text_printf(t, "  %%p%d_D%d = param() : f32[%lld]\n", i, k, Ch);
    if (p->bias)
        mx_text_printf(t, "  %%p%d_db%d = param() : f32[%lld]\n", i, k, Ch);
    if (p->h0)
        mx_text_printf(t, "  %%p%d_h0%d = input() : f32[%lld,%lld,%lld]\n", i, k, Bt, Ch, N);
}

static void scan_call(mx_text *t, int i, int k, const prob *p, const char *u, const char *z, int reverse) {
    long long Bt = p->Bt, Ch = p->Ch, N = p->N, L = p->h * p->w;
    char D[32] = "_", db[32] = "_", h0[32] = "_";
    if (p->D)
        snprintf(D, sizeof D, "%%p%d_D%d", i, k);
    if (p->bias)
        snprintf(db, sizeof db, "%%p%d_db%d", i, k);
    if (p->h0)
        snprintf(h0, sizeof h0, "%%p%d_h0%d", i, k);
    mx_text_printf(t, "  %%p%d_y%d", i, k);
    if (p->hN)
        mx_text_printf(t, ", %%p%d_hN%d", i, k);
    mx_text_printf(t, " = selective_scan(%s, %%p%d_dl%d, %%p%d_A%d, %%p%d_B%d, %%p%d_C%d, %s, %s, %s, %s)", u, i, k,
                   i, k, i, k, i, k, D, z, db, h0);
    mx_text_printf(t, " {reverse=%d, softplus=%d} : %s[%lld,%lld,%lld]", reverse, p->softplus, dts(p->dt), Bt, Ch,
                   L);
    if (p->hN)
        mx_text_printf(t, ", f32[%lld,%lld,%lld]", Bt, Ch, N);
    mx_text_printf(t, "\n");
    if (p->hN)
        mx_text_printf(t, "  output %%p%d_hN%d\n", i, k);
}

/* The comma-separated order names of a problem (up to 4); returns how many. */
static int parse_orders(const char *list, char orders[4][16]) {
    return sscanf(list, "%15[^,],%15[^,],%15[^,],%15s", orders[0], orders[1], orders[2], orders[3]);
}

/* The end of a qs mixer (problem i): u * D added to the merged scans (value
 * %p<i>_<sum>, [B, Ch, L]), permuted to [B, L, Ch] and gated by silu(z). */
static void qs_gate(mx_text *t, int i, const char *sum, const char *T, long long Bt, long long Ch, long long L) {
    mx_text_printf(t, "  %%p%d_Dd = param() : %s[%lld,1]\n", i, T, Ch);
    mx_text_printf(t, "  %%p%d_ud = mul(%%p%d_u, %%p%d_Dd) : %s[%lld,%lld,%lld]\n", i, i, i, T, Bt, Ch, L);
    mx_text_printf(t, "  %%p%d_t = add(%%p%d_%s, %%p%d_ud) : %s[%lld,%lld,%lld]\n", i, i, sum, i, T, Bt, Ch, L);
    mx_text_printf(t, "  %%p%d_tp = permute(%%p%d_t) {perm=[0,2,1]} : %s[%lld,%lld,%lld]\n", i, i, T, Bt, L, Ch);
    mx_text_printf(t, "  %%p%d_z = input() : %s[%lld,%lld,%lld]\n", i, T, Bt, L, Ch);
    mx_text_printf(t, "  %%p%d_zs = silu(%%p%d_z) : %s[%lld,%lld,%lld]\n", i, i, T, Bt, L, Ch);
    mx_text_printf(t, "  %%p%d_o = mul(%%p%d_tp, %%p%d_zs) : %s[%lld,%lld,%lld]\n", i, i, i, T, Bt, L, Ch);
    mx_text_printf(t, "  output %%p%d_o\n", i);
}

static void add_problem(mx_text *t, int i, const prob *p) {
    long long Bt = p->Bt, Ch = p->Ch, L = p->h * p->w;
    const char *T = dts(p->dt);
    mx_text_printf(t, "  %%p%d_u = input() : %s[%lld,%lld,%lld]\n", i, T, Bt, Ch, L);
    char u[32], z[32] = "_";
    snprintf(u, sizeof u, "%%p%d_u", i);
    switch (p->kind) {
    case SINGLE:
        scan_inputs(t, i, 0, p);
        if (p->z) {
            mx_text_printf(t, "  %%p%d_z = input() : %s[%lld,%lld,%lld]\n", i, T, Bt, Ch, L);
            snprintf(z, sizeof z, "%%p%d_z", i);
        }
        scan_call(t, i, 0, p, u, z, p->reverse);
        mx_text_printf(t, "  output %%p%d_y0\n", i);
        break;
    case BIDIR: /* MambaMixer's channel mixer: the backward core scans u reversed */
        mx_text_printf(t, "  %%p%d_ur = scan_gather(%%p%d_u) {order=row_rev, h=1, w=%lld} : %s[%lld,%lld,%lld]\n", i, i,
                       L, T, Bt, Ch, L);
        for (int k = 0; k < 2; k++) {
            char uk[32];
            snprintf(uk, sizeof uk, k ? "%%p%d_ur" : "%%p%d_u", i);
            scan_inputs(t, i, k, p);
            scan_call(t, i, k, p, uk, "_", 0);
        }
        mx_text_printf(t, "  %%p%d_m = scan_scatter(%%p%d_y0, %%p%d_y1) {orders=[row, row_rev], h=1, w=%lld} : "
                          "%s[%lld,%lld,%lld]\n",
                       i, i, i, L, T, Bt, Ch, L);
        mx_text_printf(t, "  %%p%d_mr = reshape(%%p%d_m) {shape=[%lld,%lld]} : %s[%lld,%lld]\n", i, i, Bt, Ch * L, T,
                       Bt, Ch * L);
        mx_text_printf(t, "  %%p%d_z = input() : %s[%lld,%lld]\n", i, T, Bt, Ch * L);
        mx_text_printf(t, "  %%p%d_zs = silu(%%p%d_z) : %s[%lld,%lld]\n", i, i, T, Bt, Ch * L);
        mx_text_printf(t, "  %%p%d_o = mul(%%p%d_mr, %%p%d_zs) : %s[%lld,%lld]\n", i, i, i, T, Bt, Ch * L);
        mx_text_printf(t, "  output %%p%d_o\n", i);
        break;
    case QS: /* one parameter set, both directions, shifted; diagonal u * D; gate over [B, L, Ch] */
        scan_inputs(t, i, 0, p);
        char db[32] = "_";
        if (p->bias)
            snprintf(db, sizeof db, "%%p%d_db0", i);
        mx_text_printf(t, "  %%p%d_y1 = selective_scan(%%p%d_u, %%p%d_dl0, %%p%d_A0, %%p%d_B0, %%p%d_C0, _, _, %s)"
                          " {reverse=1, softplus=%d} : %s[%lld,%lld,%lld]\n",
                       i, i, i, i, i, i, db, p->softplus, T, Bt, Ch, L);
        scan_call(t, i, 0, p, u, "_", 0);
        mx_text_printf(t, "  %%p%d_sb = shift(%%p%d_y1) {axis=2, k=-1} : %s[%lld,%lld,%lld]\n", i, i, T, Bt, Ch, L);
        mx_text_printf(t, "  %%p%d_sf = shift(%%p%d_y0) {axis=2, k=1} : %s[%lld,%lld,%lld]\n", i, i, T, Bt, Ch, L);
        mx_text_printf(t, "  %%p%d_s = add(%%p%d_sf, %%p%d_sb) : %s[%lld,%lld,%lld]\n", i, i, i, T, Bt, Ch, L);
        qs_gate(t, i, "s", T, Bt, Ch, L);
        break;
    case CROSS4: { /* ViM2's token mixer: four orders of one grid, summed back; stored as is */
        char orders[4][16];
        if (parse_orders(p->orders, orders) != 4)
            abort();
        for (int k = 0; k < 4; k++) {
            char uk[32];
            snprintf(uk, sizeof uk, "%%p%d_u%d", i, k);
            mx_text_printf(t, "  %s = scan_gather(%%p%d_u) {order=%s, h=%lld, w=%lld} : %s[%lld,%lld,%lld]\n", uk, i,
                           orders[k], (long long)p->h, (long long)p->w, T, Bt, Ch, L);
            scan_inputs(t, i, k, p);
            scan_call(t, i, k, p, uk, "_", 0);
        }
        mx_text_printf(t, "  %%p%d_m = scan_scatter(%%p%d_y0, %%p%d_y1, %%p%d_y2, %%p%d_y3) {orders=[%s, %s, %s, %s], "
                          "h=%lld, w=%lld} : %s[%lld,%lld,%lld]\n",
                       i, i, i, i, i, orders[0], orders[1], orders[2], orders[3], (long long)p->h, (long long)p->w, T,
                       Bt, Ch, L);
        mx_text_printf(t, "  output %%p%d_m\n", i);
        break;
    }
    case QSK: { /* ViQS's token mixer: a qs pair per order (parameter set k), the 2K shifted
                   scans summed back by one scan_scatter, then u * D once and a permuted gate */
        char orders[4][16], list[128] = "", ins[256] = "";
        int K = parse_orders(p->orders, orders);
        if (K < 2)
            abort();
        char bias[32] = "_";
        for (int k = 0; k < K; k++) {
            mx_text_printf(t, "  %%p%d_u%d = scan_gather(%%p%d_u) {order=%s, h=%lld, w=%lld} : %s[%lld,%lld,%lld]\n", i,
                           k, i, orders[k], (long long)p->h, (long long)p->w, T, Bt, Ch, L);
            scan_inputs(t, i, k, p);
            if (p->bias)
                snprintf(bias, sizeof bias, "%%p%d_db%d", i, k);
            for (int dir = 0; dir < 2; dir++) {
                int y = 2 * k + dir;
                mx_text_printf(t, "  %%p%d_y%d = selective_scan(%%p%d_u%d, %%p%d_dl%d, %%p%d_A%d, %%p%d_B%d, %%p%d_C%d, _, "
                                  "_, %s) {reverse=%d, softplus=%d} : %s[%lld,%lld,%lld]\n",
                               i, y, i, k, i, k, i, k, i, k, i, k, bias, dir, p->softplus, T, Bt, Ch, L);
                mx_text_printf(t, "  %%p%d_s%d = shift(%%p%d_y%d) {axis=2, k=%d} : %s[%lld,%lld,%lld]\n", i, y, i, y,
                               dir ? -1 : 1, T, Bt, Ch, L);
                size_t n = strlen(ins);
                snprintf(ins + n, sizeof ins - n, "%s%%p%d_s%d", y ? ", " : "", i, y);
                n = strlen(list);
                snprintf(list + n, sizeof list - n, "%s%s", y ? ", " : "", orders[k]);
            }
        }
        mx_text_printf(t, "  %%p%d_m = scan_scatter(%s) {orders=[%s], h=%lld, w=%lld} : %s[%lld,%lld,%lld]\n", i, ins,
                       list, (long long)p->h, (long long)p->w, T, Bt, Ch, L);
        qs_gate(t, i, "m", T, Bt, Ch, L);
        break;
    }
    }
}

/* ---- one family: build, emulate, compare ----------------------------------------------- */

typedef struct {
    mx_program *p;
    mx_module m;
    mx_buffers *b;
} family;

static int scan_group_of(const mx_program *p, int i) {
    char name[16];
    snprintf(name, sizeof name, "p%d_y0", i);
    int v = mx_graph_value_find(p->g, name);
    return v < 0 ? -1 : p->group_of[p->g->values[v].node];
}

/* Random data for every input and param, shaped for a stable scan. */
static void fill_inputs(const mx_program *p, mx_buffers *b) {
    const mx_graph *g = p->g;
    mx_buffers_fill_random(b, g, check_rng_u64());
    for (int v = 0; v < g->n_values; v++) {
        const char *name = g->values[v].name;
        if (!name || !b->data[v])
            continue;
        const char *field = strchr(name, '_');
        float *x = b->data[v];
        for (int64_t j = 0; j < b->numel[v]; j++) {
            if (field && field[1] == 'A') /* A < 0: decaying states */
                x[j] = -expf(x[j]);
            else if (field && !strncmp(field, "_dlt", 4)) /* positive even without softplus */
                x[j] = 0.05f + 0.5f * (x[j] + 1.0f);
            else if (field && !strncmp(field, "_db", 3) && j == 0)
                x[j] = 25.0f; /* channel 0 takes softplus's linear branch */
            if (mx_value_type(g, v)->dtype == MX_BF16)
                x[j] = mx_bf16_to_f32(mx_f32_to_bf16(x[j]));
            else if (mx_value_type(g, v)->dtype == MX_F16)
                x[j] = mx_f16_to_f32(mx_f32_to_f16(x[j]));
        }
    }
}

static void *device_copy(const mx_type *t, const float *x, int64_t n, bool poison) {
    size_t es = mx_dtype_size(t->dtype);
    unsigned char *buf = malloc((size_t)n * es + 16);
    for (int64_t j = 0; j < n; j++) {
        float f = poison ? NAN : x[j];
        if (t->dtype == MX_F32) {
            memcpy(buf + j * 4, &f, 4);
        } else {
            uint16_t h = t->dtype == MX_F16 ? mx_f32_to_f16(f) : mx_f32_to_bf16(f);
            memcpy(buf + j * 2, &h, 2);
        }
    }
    return buf;
}

static float host_value(const mx_type *t, const void *buf, int64_t j) {
    if (t->dtype == MX_F32)
        return ((const float *)buf)[j];
    uint16_t h = ((const uint16_t *)buf)[j];
    return t->dtype == MX_F16 ? mx_f16_to_f32(h) : mx_bf16_to_f32(h);
}

/* Runs problem i's scan kernel on the emulator and compares what it stores. */
static void run_problem(const family *f, mx_emu_module *em, int i, const prob *pr, const char *what) {
    const mx_program *p = f->p;
    const mx_graph *g = p->g;
    int group = scan_group_of(p, i);
    const mx_kernel *k = group < 0 ? NULL : mx_module_kernel(&f->m, group);
    CHECK_MSG(k != NULL, "%s: no scan kernel", what);
    if (!k)
        return;
    void *bufs[64], *args[64];
    for (int a = 0; a < k->n_args; a++) {
        int v = k->args[a].value;
        CHECK_MSG(k->args[a].written || g->nodes[g->values[v].node].op == MX_OP_INPUT ||
                      g->nodes[g->values[v].node].op == MX_OP_PARAM,
                  "%s: the kernel reads %s, not an input", what, g->values[v].name);
        bufs[a] = device_copy(mx_value_type(g, v), f->b->data[v], f->b->numel[v], k->args[a].written);
        args[a] = &bufs[a];
    }
    mx_diag d = {{0}};
    mx_status st = mx_emu_launch(em, k->name, k->grid, k->block, k->smem, args, &d);
    CHECK_MSG(st == MX_OK, "%s: launch: %s", what, d.msg);
    double tol = pr->dt == MX_F32 ? TOL_F32 : TOL_BF16;
    for (int a = 0; a < k->n_args && st == MX_OK; a++) {
        if (!k->args[a].written)
            continue;
        int v = k->args[a].value;
        const mx_type *t = mx_value_type(g, v);
        int64_t n = f->b->numel[v];
        float *got = malloc((size_t)n * sizeof *got);
        double *want = malloc((size_t)n * sizeof *want);
        for (int64_t j = 0; j < n; j++) {
            got[j] = host_value(t, bufs[a], j);
            want[j] = f->b->data[v][j];
        }
        char label[160];
        snprintf(label, sizeof label, "%s: %s", what, g->values[v].name ? g->values[v].name : "?");
        CHECK_CLOSE(got, want, n, tol, label);
        free(got);
        free(want);
    }
    for (int a = 0; a < k->n_args; a++)
        free(bufs[a]);
}

/* What NVRTC compiled for one module and arch: every scan kernel's registers
 * and spills. At default tiles (no tiles given, or a kernel whose tiles were
 * not given) it must not spill; explicit test tiles are only reported. */
static void report_nvrtc(const char *what, int sm, const mx_program *p, const mx_module *m, const mx_tiles *given,
                         const mx_cubin *c) {
    for (int gi = 0; gi < p->n_groups; gi++) {
        const mx_kernel *k = p->groups[gi].kind == MX_FUSE_SCAN ? mx_module_kernel(m, gi) : NULL;
        if (!k)
            continue;
        const mx_kernel_usage *u = mx_cubin_kernel(c, k->name);
        CHECK_MSG(u != NULL, "%s: sm_%d: no usage for %s", what, sm, k->name);
        if (!u)
            continue;
        printf("  %-10s sm_%d %-14s %s tiles (%d thr, %d items, %d lanes, %d rows, %d min blocks): %3d registers, "
               "spills %d/%d bytes, %zu smem\n",
               what, sm, k->name, !k->tiles.chunked ? "lanes  " : k->tiles.channels > 1 ? "packed " : "chunked", k->tiles.threads, k->tiles.items,
               k->tiles.lanes_per_state, k->tiles.channels, k->tiles.min_blocks, u->registers, u->spill_stores,
               u->spill_loads, k->smem);
        bool by_default = !given || given[gi].threads == 0;
        CHECK_MSG(!by_default || (u->spill_stores == 0 && u->spill_loads == 0), "%s: sm_%d: %s spills", what, sm,
                  k->name);
    }
}

/* A generated module to compile, and the tiles its test gave (NULL: all default). */
typedef struct {
    const char *what;
    const mx_program *p;
    const mx_module *m;
    const mx_tiles *given;
} nvrtc_module;

/* Every module compiled for sm_80 and sm_90 in one batch (NVRTC on every
 * core: the compiles are most of this suite's time), then reported. */
static void check_nvrtc(const nvrtc_module *ms, int n) {
    static const char *const opts[] = {"-I" MIXC_SOURCE_DIR "/runtime/emu"};
    mx_nvrtc_job *jobs = calloc(2 * (size_t)n + 1, sizeof *jobs);
    mx_cubin *bins = calloc(2 * (size_t)n + 1, sizeof *bins);
    for (int i = 0; i < 2 * n; i++)
        jobs[i] = (mx_nvrtc_job){ms[i / 2].m->source.s, ms[i / 2].what, i % 2 ? 90 : 80, opts, 1};
    mx_diag d = {{0}};
    mx_status st = mx_nvrtc_compile_many(jobs, 2 * n, bins, &d);
    CHECK_MSG(st == MX_OK, "nvrtc: %s", d.msg);
    for (int i = 0; i < 2 * n && st == MX_OK; i++)
        report_nvrtc(ms[i / 2].what, jobs[i].sm, ms[i / 2].p, ms[i / 2].m, ms[i / 2].given, &bins[i]);
    for (int i = 0; i < 2 * n; i++)
        mx_cubin_free(&bins[i]);
    free(bins);
    free(jobs);
}

/* The family's graph compiled for the cpu target with vectors of
 * vector_bits (0: the host's), given the inputs and params of b (values of
 * ref, the reference's program), run, every output compared with b. */
static void run_cpu(const char *what, const char *text, const mx_graph *ref, const mx_buffers *b, int vector_bits,
                    double tol) {
    mx_diag d = {{0}};
    mx_graph *g = mx_graph_parse(text, what, &d);
    mx_target t;
    CHECK_MSG(g && mx_target_detect(MX_DEVICE_CPU, &t, &d) == MX_OK, "%s: cpu: %s", what, d.msg);
    if (!g)
        return;
    if (vector_bits)
        t.vector_bits = vector_bits;
    mx_compiled *c = mx_compile(g, &t, NULL, &d);
    CHECK_MSG(c != NULL, "%s: cpu, %d-bit vectors: %s", what, t.vector_bits, d.msg);
    mx_status st = c ? MX_OK : MX_ERR_INVALID;
    for (int i = 0; st == MX_OK && i < mx_graph_input_count(g); i++) {
        int v = mx_graph_input(g, i), rv = mx_graph_value_find(ref, mx_graph_value_name(g, v));
        const char *name = mx_graph_value_name(g, v);
        int rank = mx_graph_value_rank(g, v);
        const int64_t *dims = mx_graph_value_dims(g, v);
        mx_dtype dt = mx_graph_value_dtype(g, v);
        void *data = dt == MX_F32 ? b->data[rv] : device_copy(mx_value_type(ref, rv), b->data[rv], b->numel[rv], false);
        st = mx_graph_value_is_param(g, v) ? mx_set_param(c, name, data, dt, rank, dims, &d)
                                           : mx_set_input(c, name, data, dt, rank, dims, &d);
        if (data != b->data[rv])
            free(data);
    }
    if (st == MX_OK)
        st = mx_run(c, &d);
    CHECK_MSG(st == MX_OK, "%s: cpu, %d-bit vectors: %s", what, t.vector_bits, d.msg);
    for (int i = 0; st == MX_OK && i < mx_graph_output_count(g); i++) {
        const char *name = mx_graph_value_name(g, mx_graph_output(g, i));
        int rv = mx_graph_value_find(ref, name);
        const float *got = mx_output(c, name);
        double *want = malloc((size_t)b->numel[rv] * sizeof *want);
        for (int64_t j = 0; want && j < b->numel[rv]; j++)
            want[j] = b->data[rv][j];
        char label[160];
        snprintf(label, sizeof label, "%s: cpu, %d-bit vectors: %s", what, t.vector_bits, name);
        CHECK_MSG(got && want, "%s: no output", label);
        if (got && want)
            CHECK_CLOSE(got, want, b->numel[rv], tol, label);
        free(want);
    }
    mx_compiled_free(c);
    mx_graph_free(g);
}

/* The family's problems under emulation and NVRTC when `emulate`, and on
 * the CPU backend, all against the reference. */
static void run_family(const char *what, const prob *probs, int n, bool emulate) {
    mx_text t = {0};
    mx_text_printf(&t, "graph %s {\n", what);
    for (int i = 0; i < n; i++)
        add_problem(&t, i, &probs[i]);
    mx_text_printf(&t, "}\n");
    mx_diag d = {{0}};
    mx_graph *g = mx_graph_parse(t.s, what, &d);
    CHECK_MSG(g != NULL, "%s: parse: %s", what, d.msg);
    if (!g) {
        mx_text_free(&t);
        return;
    }
    family f = {.p = mx_program_new(g)};
    mx_pass_options po = {.verify = true};
    mx_status st = mx_program_run_passes(f.p, &po, &d);
    CHECK_MSG(st == MX_OK, "%s: passes: %s", what, d.msg);
    mx_tiles *tiles = calloc((size_t)f.p->n_groups + 1, sizeof *tiles);
    for (int i = 0; i < n && st == MX_OK; i++) {
        int group = scan_group_of(f.p, i);
        CHECK_MSG(group >= 0 && f.p->groups[group].kind == MX_FUSE_SCAN, "%s: problem %d has no scan group", what, i);
        if (group >= 0)
            tiles[group] = probs[i].tiles;
    }
    mx_codegen_options co = {.target = support_gpu_target("sm_90"), .tiles = tiles};
    if (st == MX_OK && emulate) {
        st = mx_codegen(f.p, &co, &f.m, &d);
        CHECK_MSG(st == MX_OK, "%s: codegen: %s", what, d.msg);
    }
    mx_emu_module *em = NULL;
    if (st == MX_OK && emulate) {
        st = mx_emu_load(f.m.source.s, what, &em, &d);
        CHECK_MSG(st == MX_OK, "%s: emu: %s", what, d.msg);
    }
    if (st == MX_OK) {
        f.b = mx_buffers_new(f.p->g);
        fill_inputs(f.p, f.b);
        st = mx_ref_run(f.p->g, f.b, &d);
        CHECK_MSG(st == MX_OK, "%s: reference: %s", what, d.msg);
    }
    for (int i = 0; i < n && st == MX_OK && emulate; i++) {
        char name[64];
        snprintf(name, sizeof name, "%s[%d]", what, i);
        run_problem(&f, em, i, &probs[i], name);
    }
    if (st == MX_OK && emulate)
        check_nvrtc(&(nvrtc_module){what, f.p, &f.m, tiles}, 1);
    bool bf16 = false;
    for (int i = 0; i < n; i++)
        bf16 |= probs[i].dt == MX_BF16;
    static const int vector_bits[] = {128, 256, 0};
    for (int i = 0; st == MX_OK && mx_have_cpu_backend() && i < 3; i++)
        run_cpu(what, t.s, f.p->g, f.b, vector_bits[i], bf16 ? TOL_BF16 : TOL_F32);
    mx_text_free(&t);
    if (getenv("MIXC_TEST_SHOW"))
        fputs(f.m.source.s, stdout);
    if (em)
        mx_emu_unload(em);
    if (f.b)
        mx_buffers_free(f.b);
    mx_module_free(&f.m);
    mx_program_free(f.p);
    free(tiles);
}

/* ---- the grid -------------------------------------------------------------------------- */

/* kind, Bt, Ch, N, G, h, w, reverse, softplus, D, z, bias, h0, hN, dtype, orders, tiles */
static const prob lanes_f32[] = {
    {SINGLE, 2, 8, 16, 1, 1, 1, 0, 1, true, true, true, false, false, MX_F32, 0, LANES(16, 4, 64)},
    {SINGLE, 1, 6, 1, 1, 1, 7, 1, 0, false, false, false, true, true, MX_F32, 0, LANES(1, 4, 4)},
    {SINGLE, 2, 8, 64, 4, 7, 7, 0, 1, true, true, true, false, false, MX_F32, 0, LANES(32, 2, 32)},
    {BIDIR, 1, 4, 16, 1, 14, 14, 0, 1, true, false, true, false, false, MX_F32, 0, LANES(16, 2, 64)},
    {QS, 1, 8, 16, 4, 1, 197, 0, 1, false, false, true, false, false, MX_F32, 0, LANES(8, 2, 64)},
    {CROSS4, 1, 2, 16, 1, 25, 40, 0, 1, true, false, true, false, false, MX_F32, "row,col,row_rev,col_rev",
     LANES(16, 2, 64)},
    {SINGLE, 1, 2, 16, 1, 56, 56, 1, 1, true, true, true, true, true, MX_F32, 0, LANES(16, 2, 64)},
    {CROSS4, 2, 3, 1, 1, 7, 7, 0, 1, true, false, false, false, false, MX_F32, "snake,snake_col_rev,diag,diag_rev",
     LANES(1, 2, 8)},
    {QSK, 1, 8, 16, 4, 7, 7, 0, 1, false, false, true, false, false, MX_F32, "row,col", LANES(8, 2, 16)},
    {QSK, 2, 3, 1, 1, 5, 8, 0, 1, false, false, true, false, false, MX_F32, "snake,snake_col_rev,diag,diag_rev",
     LANES(1, 2, 8)},
};

static const prob chunked_f32[] = {
    {SINGLE, 1, 3, 16, 1, 1, 1, 0, 1, true, true, true, false, false, MX_F32, 0, CHUNKED(32, 8)},
    {SINGLE, 2, 4, 64, 4, 1, 7, 1, 0, false, false, false, true, true, MX_F32, 0, CHUNKED(32, 4)},
    {CROSS4, 1, 2, 16, 1, 7, 7, 0, 1, true, false, true, false, false, MX_F32, "snake,snake_col_rev,diag,diag_rev",
     CHUNKED(32, 2)},
    {BIDIR, 2, 2, 1, 1, 14, 14, 0, 1, true, false, true, false, false, MX_F32, 0, CHUNKED(64, 2)},
    {QS, 1, 4, 16, 4, 1, 197, 0, 1, false, false, true, false, false, MX_F32, 0, CHUNKED(32, 4)},
    {SINGLE, 1, 2, 16, 1, 25, 40, 0, 1, true, true, true, false, false, MX_F32, 0, CHUNKED(64, 4)},
    {SINGLE, 1, 1, 64, 1, 56, 56, 1, 1, true, false, true, false, true, MX_F32, 0, CHUNKED(128, 8)},
    {CROSS4, 1, 4, 16, 4, 5, 8, 0, 1, true, false, true, false, false, MX_F32, "row,col,row_rev,col_rev",
     {0}}, /* default tiles */
    {QSK, 1, 2, 16, 1, 14, 14, 0, 1, false, false, true, false, false, MX_F32, "row,col", CHUNKED(32, 4)},
    {QSK, 1, 4, 16, 4, 7, 7, 0, 1, false, false, true, false, false, MX_F32, "snake,snake_col_rev,diag,diag_rev",
     {0}}, /* default tiles */
};

static const prob mixed_bf16[] = {
    {SINGLE, 1, 4, 16, 1, 14, 14, 0, 1, true, true, true, false, false, MX_BF16, 0, LANES(16, 4, 64)},
    {QS, 1, 4, 16, 1, 1, 197, 0, 1, false, false, true, false, false, MX_BF16, 0, CHUNKED(64, 4)},
    {CROSS4, 1, 2, 16, 1, 7, 7, 0, 1, true, false, true, false, false, MX_BF16, "row,col,row_rev,col_rev",
     CHUNKED(32, 2)},
    {BIDIR, 1, 4, 16, 1, 7, 7, 0, 1, true, false, true, false, false, MX_BF16, 0, LANES(16, 2, 16)},
};

/* Packed rows (L < 32; docs/scan.md, "Packed rows"): L in {1, 4, 12, 31},
 * 1 to 8 lanes per row, exact and ragged rows (lanes x items past L),
 * partial warps and blocks (fewer rows than the block holds: their lanes
 * shuffle but take no step), blocks whose rows span several groups (b, g),
 * and every structure: h0 / hN, reverse, bidirectional, qs pairs, K orders. */
static const prob packed_f32[] = {
    {SINGLE, 2, 5, 16, 1, 1, 12, 0, 1, true, true, true, true, true, MX_F32, 0, PACKED(8, 4, 3)},
    {SINGLE, 1, 7, 16, 1, 1, 4, 1, 0, false, false, false, true, true, MX_F32, 0, PACKED(32, 1, 4)},
    {SINGLE, 3, 8, 4, 4, 1, 1, 0, 1, true, true, true, true, true, MX_F32, 0, PACKED(32, 1, 1)},
    {SINGLE, 1, 12, 16, 2, 1, 31, 1, 1, true, true, true, true, true, MX_F32, 0, PACKED(4, 8, 4)},
    {SINGLE, 1, 16, 16, 1, 1, 12, 0, 1, true, true, true, false, true, MX_F32, 0, PACKED(8, 4, 3)},
    {BIDIR, 1, 6, 16, 1, 3, 4, 0, 1, true, false, true, false, false, MX_F32, 0, PACKED(8, 4, 3)},
    {QS, 1, 10, 16, 2, 1, 12, 0, 1, false, false, true, false, false, MX_F32, 0, PACKED(8, 8, 2)},
    {CROSS4, 1, 3, 16, 1, 2, 2, 0, 1, true, false, true, false, false, MX_F32, "row,col,row_rev,col_rev",
     PACKED(16, 2, 2)},
    {CROSS4, 2, 3, 1, 1, 1, 1, 0, 1, true, false, false, false, false, MX_F32, "snake,snake_col_rev,diag,diag_rev",
     PACKED(32, 1, 1)},
    {QSK, 1, 4, 16, 1, 3, 4, 0, 1, false, false, true, false, false, MX_F32, "row,col", PACKED(8, 4, 4)},
    {QSK, 1, 5, 1, 1, 2, 2, 0, 1, false, false, true, false, false, MX_F32, "snake,snake_col_rev,diag,diag_rev",
     {0}}, /* default tiles */
    {SINGLE, 2, 20, 16, 4, 1, 31, 0, 1, true, true, true, false, false, MX_F32, 0, {0}},
};

static const prob packed_bf16[] = {
    {SINGLE, 1, 9, 16, 1, 1, 12, 0, 1, true, true, true, false, false, MX_BF16, 0, PACKED(8, 4, 3)},
    {QS, 1, 4, 16, 1, 1, 4, 0, 1, false, false, true, false, false, MX_BF16, 0, PACKED(32, 1, 4)},
    {CROSS4, 1, 2, 16, 1, 1, 1, 0, 1, true, false, true, false, false, MX_BF16, "row,col,row_rev,col_rev", {0}},
    {BIDIR, 1, 4, 16, 1, 1, 31, 0, 1, true, false, true, false, false, MX_BF16, 0, PACKED(4, 8, 4)},
    {QSK, 1, 3, 16, 1, 2, 6, 0, 1, false, false, true, false, false, MX_BF16, "row,col", PACKED(16, 2, 6)},
};

/* Channels per group that divide by 16: the CPU's widest vectors run them as lanes. */
static const prob wide_f32[] = {
    {SINGLE, 2, 32, 16, 1, 1, 49, 0, 1, true, true, true, true, true, MX_F32, 0, LANES(4, 8, 16)},
    {SINGLE, 1, 16, 16, 1, 1, 70, 1, 0, true, true, false, false, true, MX_F32, 0, LANES(2, 8, 16)},
    {BIDIR, 1, 16, 16, 1, 7, 7, 0, 1, true, false, true, false, false, MX_F32, 0, LANES(2, 16, 16)},
    {CROSS4, 1, 48, 4, 3, 5, 5, 0, 1, true, false, true, false, false, MX_F32, "row,col,row_rev,col_rev",
     LANES(4, 8, 16)},
    {QS, 1, 32, 16, 2, 1, 33, 0, 1, false, false, true, false, false, MX_F32, 0, LANES(4, 8, 16)},
    {QSK, 1, 16, 16, 1, 4, 4, 0, 1, false, false, true, false, false, MX_F32, "snake,snake_col_rev,diag,diag_rev",
     LANES(4, 4, 16)},
};

/* The CPU's lane tiles (docs/cpu.md): channels per group that divide by 16,
 * so that every vector width runs them as lanes reading u, z and delta's
 * rows through tiles of W steps and storing y through them: L not a
 * multiple of W (ragged windows), L under W, reverse (windows walking
 * backwards), bidirectional pairs, four orders, h0 / hN, rows of several
 * batches; CPU only (the emulated kernels are the grid's above). */
static const prob tiles_f32[] = {
    {SINGLE, 1, 16, 16, 1, 1, 37, 0, 1, true, true, true, false, true, MX_F32, 0, {0}},
    {SINGLE, 2, 16, 4, 1, 1, 5, 1, 1, true, true, true, true, true, MX_F32, 0, {0}},
    {SINGLE, 1, 32, 16, 2, 1, 130, 1, 0, true, true, false, false, false, MX_F32, 0, {0}},
    {SINGLE, 3, 16, 8, 1, 1, 16, 0, 1, true, false, true, false, false, MX_F32, 0, {0}},
    {BIDIR, 1, 16, 16, 1, 5, 7, 0, 1, true, false, true, false, false, MX_F32, 0, {0}},
    {CROSS4, 1, 16, 4, 1, 6, 5, 0, 1, true, false, true, false, false, MX_F32, "row,col,row_rev,col_rev", {0}},
    {QSK, 1, 16, 16, 1, 3, 7, 0, 1, false, false, true, false, false, MX_F32, "snake,snake_col_rev,diag,diag_rev",
     {0}},
};

static const prob tiles_bf16[] = {
    {SINGLE, 1, 16, 16, 1, 1, 45, 0, 1, true, true, true, false, false, MX_BF16, 0, {0}},
    {SINGLE, 2, 16, 16, 1, 1, 9, 1, 1, true, true, true, false, true, MX_BF16, 0, {0}},
    {BIDIR, 1, 16, 16, 1, 4, 5, 0, 1, true, false, true, false, false, MX_BF16, 0, {0}},
};

/* The cost model: packed rows when L < 32; else lanes when rows x states
 * fill two waves of an H100, chunked when not. Packed tiles that cannot
 * hold a row are refused with a message. */
static void test_default_tiles(void) {
    const prob big = {SINGLE, 4096, 16, 16, 1, 1, 32, 0, 1, true, true, true, false, false, MX_F32, 0, {0}};
    const prob small = {SINGLE, 2, 512, 16, 1, 1, 256, 0, 1, true, true, true, false, false, MX_F32, 0, {0}};
    const prob shorts = {SINGLE, 4096, 16, 16, 1, 1, 12, 0, 1, true, true, true, false, false, MX_F32, 0, {0}};
    /* a group per row: B and C of 16 rows at L = 31 overflow 48 KiB, of 8 fit */
    const prob shrunk = {SINGLE, 1, 16, 16, 16, 1, 31, 0, 1, true, true, true, false, false, MX_F32, 0, {0}};
    /* N = 64: not even the 4 rows of a warp fit; chunked */
    const prob wide = {SINGLE, 1, 8, 64, 8, 1, 31, 0, 1, true, true, true, false, false, MX_F32, 0, {0}};
    const prob *ps[5] = {&big, &small, &shorts, &shrunk, &wide};
    for (int c = 0; c < 5; c++) {
        mx_text t = {0};
        mx_text_printf(&t, "graph tiles {\n");
        add_problem(&t, 0, ps[c]);
        mx_text_printf(&t, "}\n");
        mx_diag d = {{0}};
        mx_graph *g = mx_graph_parse(t.s, "tiles", &d);
        mx_text_free(&t);
        CHECK_MSG(g != NULL, "tiles: %s", d.msg);
        if (!g)
            continue;
        mx_program *p = mx_program_new(g);
        mx_pass_options po = {0};
        CHECK(mx_program_run_passes(p, &po, &d) == MX_OK);
        int group = scan_group_of(p, 0);
        mx_tiles tl = mx_tiles_default(p, group, support_gpu_target("sm_90"));
        CHECK_MSG(tl.chunked == (c > 0) && (tl.channels > 1) == (c == 0 || c == 2 || c == 3),
                  "default tiles: chunked %d, %d channels, case %d", tl.chunked, tl.channels, c);
        if (c == 3)
            CHECK_MSG(tl.channels == 8 && tl.threads == 64 && tl.items == 4, "packed, shrunk: %d rows, %d threads",
                      tl.channels, tl.threads);
        if (c == 0)
            CHECK(tl.lanes_per_state == 16 && tl.channels == 8 && tl.threads == 128);
        if (c == 2) /* L = 12: 4 lanes of 3 steps per row, 32 rows */
            CHECK_MSG(tl.items == 3 && tl.channels == 32 && tl.threads == 128, "packed: %d items, %d rows, %d threads",
                      tl.items, tl.channels, tl.threads);
        if (c == 1) { /* L = 256 does not fit 32 lanes of 4 steps */
            mx_tiles *given = calloc((size_t)p->n_groups, sizeof *given);
            given[group] = (mx_tiles)PACKED(8, 32, 4);
            mx_codegen_options co = {.target = support_gpu_target("sm_90"), .tiles = given};
            mx_module m;
            mx_status st = mx_codegen(p, &co, &m, &d);
            CHECK_MSG(st != MX_OK && strstr(d.msg, "packed tiles") && strstr(d.msg, "L = 256"),
                      "packed tiles for L = 256: %s", st == MX_OK ? "accepted" : d.msg);
            if (st == MX_OK)
                mx_module_free(&m);
            free(given);
        }
        mx_program_free(p);
    }
}

/* The zoo's scan groups at default tiles, at the reduced sizes of
 * zoo_reduced.h: they generate and compile without spills. test_codegen
 * checks every kernel of every model so; this prints the scan kernels'
 * tiles and registers, for one model of each scan structure: a plain scan,
 * bidirectional pairs, qs pairs, row + row_rev, 4 orders, qs pairs of 2
 * orders. */
static void test_zoo_nvrtc(void) {
    static const char *const files[] = {"mamba-block.json", "mambamixer-block.json", "qsmixer-block.json",
                                        "vim-block.json",   "vim2-tiny.json",        "viqs-tiny.json"};
    enum { N_FILES = sizeof files / sizeof *files };
    mx_model *models[N_FILES] = {0};
    mx_compiled *cs[N_FILES] = {0};
    mx_module mods[N_FILES] = {{0}};
    nvrtc_module ms[N_FILES];
    int n = 0;
    mx_target t;
    mx_diag d = {{0}};
    CHECK_MSG(mx_target_named("sm_90", MX_DEVICE_CUDA, &t, &d) == MX_OK, "%s", d.msg);
    mx_compile_options o = {.no_load = 1};
    for (int i = 0; i < N_FILES; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/models/%s", MIXC_SOURCE_DIR, files[i]);
        models[i] = support_load_reduced(path, NULL);
        /* the module the cuda device would generate: the product's passes and codegen */
        cs[i] = models[i] ? mx_compile_model(models[i], &t, &o, &d) : NULL;
        mx_status st = cs[i] ? mx_compiled_module(cs[i], &mods[i], &d) : MX_ERR_INVALID;
        CHECK_MSG(st == MX_OK, "%s: %s", files[i], d.msg);
        if (st == MX_OK)
            ms[n++] = (nvrtc_module){files[i], mx_compiled_program(cs[i]), &mods[i], NULL};
    }
    check_nvrtc(ms, n);
    for (int i = 0; i < N_FILES; i++) {
        mx_module_free(&mods[i]);
        mx_compiled_free(cs[i]);
        mx_model_free(models[i]);
    }
}

/* ---- the module: shared functions, programs, codegen time, pruning ---------------- */

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* A model from the zoo at its reduced size and the given overrides, fused and planned. */
static mx_program *zoo_program(const char *file, const char *const *set, int n_set) {
    char path[512];
    snprintf(path, sizeof path, "%s/models/%s", MIXC_SOURCE_DIR, file);
    const char *all[24];
    int n = zoo_reduced_overrides(path, all);
    for (int i = 0; i < n_set; i++)
        all[n++] = set[i];
    mx_model *md = support_load_model(path, all, n);
    mx_pass_options po = {0};
    mx_program *p = md ? support_compile(mx_model_graph(md), file, &po) : NULL;
    mx_model_free(md);
    return p;
}

static int distinct_functions(const mx_module *m) {
    int n = 0;
    for (int i = 0; i < m->n_kernels; i++) {
        bool first = true;
        for (int j = 0; j < i && first; j++)
            first = strcmp(m->kernels[i].name, m->kernels[j].name) != 0;
        n += first;
    }
    return n;
}

/* Whether text defines function name ("\nname(" follows its launch bounds). */
static bool defines(const char *text, const char *name) {
    char pat[80];
    snprintf(pat, sizeof pat, "\n%s(", name);
    return strstr(text, pat) != NULL;
}

/* The blocks of a stage without weighted averaging are alike, so a deeper
 * stage adds kernels but no function; every function is defined once, in the program its kernels
 * name, and each program compiles on its own. */
static void test_shared_functions(void) {
    const char *shallow[] = {"stages[0].depth=2"}, *deep[] = {"stages[0].depth=6"};
    mx_program *p2 = zoo_program("vim-block.json", shallow, 1), *p6 = zoo_program("vim-block.json", deep, 1);
    if (!p2 || !p6) {
        mx_program_free(p2), mx_program_free(p6);
        return;
    }
    mx_codegen_options o = {.target = support_gpu_target("sm_90"), .programs = 3};
    mx_module m2, m6;
    mx_diag d = {{0}};
    CHECK_MSG(mx_codegen(p2, &o, &m2, &d) == MX_OK, "%s", d.msg);
    CHECK_MSG(mx_codegen(p6, &o, &m6, &d) == MX_OK, "%s", d.msg);
    int f2 = distinct_functions(&m2), f6 = distinct_functions(&m6);
    printf("  vim-block (reduced): depth 2: %d kernels, %d functions; depth 6: %d kernels, %d functions; %d programs\n",
           m2.n_kernels, f2, m6.n_kernels, f6, m6.n_programs);
    CHECK_MSG(m6.n_kernels > m2.n_kernels && f6 == f2 && f2 < m2.n_kernels,
              "deeper stage: %d -> %d kernels, %d -> %d functions", m2.n_kernels, m6.n_kernels, f2, f6);
    CHECK(m6.n_programs == 3);
    for (int i = 0; i < m6.n_kernels; i++) {
        const mx_kernel *k = &m6.kernels[i];
        int in = 0;
        for (int q = 0; q < m6.n_programs; q++)
            in += defines(m6.programs[q].s, k->name);
        CHECK_MSG(in == 1 && k->program >= 0 && k->program < m6.n_programs && defines(m6.programs[k->program].s, k->name),
                  "%s: defined in %d programs, not (only) in its own %d", k->name, in, k->program);
        CHECK_MSG(defines(m6.source.s, k->name), "%s: not in the module", k->name);
    }
    mx_cubin bins[MX_CODEGEN_MAX_PROGRAMS] = {{0}};
    mx_status st = mx_gpu_compile(&m6, "vim-block", 90, bins, &d); /* as the cuda device loads them */
    CHECK_MSG(st == MX_OK, "programs: %s", d.msg);
    for (int i = 0; i < m6.n_kernels && st == MX_OK; i++)
        CHECK_MSG(mx_cubin_kernel(&bins[m6.kernels[i].program], m6.kernels[i].name) != NULL,
                  "%s: not in the cubin of its program", m6.kernels[i].name);
    for (int q = 0; q < m6.n_programs; q++)
        mx_cubin_free(&bins[q]);
    mx_module_free(&m2), mx_module_free(&m6);
    mx_program_free(p2), mx_program_free(p6);
}

/* One mx_codegen's time. */
static double codegen_time(const mx_program *p) {
    mx_codegen_options o = {.target = support_gpu_target("sm_90")};
    mx_module m;
    mx_diag d = {{0}};
    double t0 = now_s();
    mx_status st = mx_codegen(p, &o, &m, &d);
    double t = now_s() - t0;
    CHECK_MSG(st == MX_OK, "%s", d.msg);
    if (st == MX_OK)
        mx_module_free(&m);
    return t;
}

/* Code generation is linear in depth: 4x the blocks within 8x the time
 * (it was quadratic: a per-kernel walk of the whole graph). Without
 * weighted averaging, whose block i sums i + 1 earlier outputs: the model
 * itself grows with depth squared. The best of five runs of each,
 * alternating, so that a busy machine (ctest -j) slows both alike. */
static void test_codegen_linear(void) {
    const char *shallow[] = {"stages[0].depth=32", "stages[0].weighted_average=false"};
    const char *deep[] = {"stages[0].depth=128", "stages[0].weighted_average=false"};
    mx_program *a = zoo_program("qsmixer-block.json", shallow, 2), *b = zoo_program("qsmixer-block.json", deep, 2);
    if (a && b) {
        double ta = 1e30, tb = 1e30;
        for (int r = 0; r < 5; r++) {
            double x = codegen_time(a), y = codegen_time(b);
            ta = x < ta ? x : ta, tb = y < tb ? y : tb;
        }
        printf("  qsmixer-block codegen: depth 32 %.1f ms, depth 128 %.1f ms (x%.1f)\n", 1e3 * ta, 1e3 * tb, tb / ta);
        CHECK_MSG(tb < 8 * ta, "codegen: depth 32 %.3f s, depth 128 %.3f s", ta, tb);
    }
    mx_program_free(a), mx_program_free(b);
}

/* With weighted averaging the model grows with depth squared, the module
 * must not: block l's average is sums of 64 in kernels of their own, the
 * same in every block (docs/passes.md, fuse). One kernel per block's
 * average made the distinct functions grow with depth (137 at depth 66, 270 at 132). */
static void test_averaging_functions(void) {
    const char *shallow[] = {"stages[0].depth=66", "input.length=16", "stages[0].width=16"};
    const char *deep[] = {"stages[0].depth=132", "input.length=16", "stages[0].width=16"};
    mx_program *a = zoo_program("qsmixer-block.json", shallow, 3), *b = zoo_program("qsmixer-block.json", deep, 3);
    mx_codegen_options o = {.target = support_gpu_target("sm_90")};
    mx_module ma, mb;
    mx_diag d = {{0}};
    if (a && b && mx_codegen(a, &o, &ma, &d) == MX_OK) {
        if (mx_codegen(b, &o, &mb, &d) == MX_OK) {
            int fa = distinct_functions(&ma), fb = distinct_functions(&mb);
            printf("  qsmixer-block with averaging: %d kernels, %d functions at depth 66; %d, %d at 132\n",
                   ma.n_kernels, fa, mb.n_kernels, fb);
            CHECK_MSG(mb.n_kernels > ma.n_kernels && fb <= fa + 8, "functions: %d at depth 66, %d at 132", fa, fb);
            mx_module_free(&mb);
        }
        mx_module_free(&ma);
    }
    CHECK_MSG(a && b && !d.msg[0], "%s", d.msg);
    mx_program_free(a), mx_program_free(b);
}

/* Switch of Scans pruning: an order whose softmax weight is under the
 * threshold is left out of the kernel and reported with its weight; under
 * a lower threshold nothing is. */
static void test_prune(void) {
    const char *sos[] = {"stages[0].token_mixer.switch_scans=true"};
    mx_program *p = zoo_program("vim-block.json", sos, 1);
    if (!p)
        return;
    const mx_graph *g = p->g;
    int group = -1, w = -1, scans[2], n_scans = 0;
    for (int k = 0; k < p->n_groups; k++)
        if (p->groups[k].kind == MX_FUSE_SCAN)
            group = k;
    for (int i = 0; group >= 0 && i < p->groups[group].n_nodes; i++) {
        int node = p->groups[group].nodes[i];
        if (g->nodes[node].op == MX_OP_WEIGHTED_SUM)
            w = mx_node_input(g, node, 0);
        if (g->nodes[node].op == MX_OP_SELECTIVE_SCAN && n_scans < 2)
            scans[n_scans++] = node;
    }
    CHECK_MSG(w >= 0 && n_scans == 2, "vim-block SoS: weights %d, %d scans in one group", w, n_scans);
    mx_buffers *b = mx_buffers_new(g);
    if (w >= 0 && n_scans == 2 && b) {
        static float weights[2] = {0.9995f, 0.0005f};
        b->data[w] = weights;
        static const double eps[2] = {1e-2, 1e-4};
        for (int t = 0; t < 2; t++) {
            mx_codegen_options o = {.target = support_gpu_target("sm_90"), .prune_scans = eps[t], .params = b};
            mx_module m;
            mx_diag d = {{0}};
            mx_status st = mx_codegen(p, &o, &m, &d);
            CHECK_MSG(st == MX_OK, "prune %g: %s", eps[t], d.msg);
            if (st != MX_OK)
                continue;
            const mx_kernel *k = mx_module_kernel(&m, group);
            if (t == 0)
                CHECK_MSG(k->n_pruned == 1 && k->pruned[0] == scans[1] && fabs(k->pruned_weight - 0.0005) < 1e-7 &&
                              strstr(m.source.s, "scan 0 of 1") && !strstr(m.source.s, "scan 1 of"),
                          "prune 1e-2: %d pruned, weight %g", k->n_pruned, k->pruned_weight);
            else
                CHECK_MSG(k->n_pruned == 0 && k->pruned_weight == 0 && strstr(m.source.s, "scan 1 of 2"),
                          "prune 1e-4: %d pruned", k->n_pruned);
            mx_module_free(&m);
        }
        b->data[w] = NULL;
        mx_codegen_options o = {.target = support_gpu_target("sm_90"), .prune_scans = 1e-2, .params = b};
        mx_module m;
        mx_diag d = {{0}};
        CHECK_MSG(mx_codegen(p, &o, &m, &d) != MX_OK && strstr(d.msg, "weights bound"),
                  "pruning without weights: %s", d.msg);
    }
    mx_buffers_free(b);
    mx_program_free(p);
}

int main(void) {
    test_default_tiles();
    test_shared_functions();
    test_codegen_linear();
    test_averaging_functions();
    test_prune();
    test_zoo_nvrtc();
    run_family("lanes_f32", lanes_f32, (int)(sizeof lanes_f32 / sizeof *lanes_f32), true);
    run_family("chunked_f32", chunked_f32, (int)(sizeof chunked_f32 / sizeof *chunked_f32), true);
    run_family("mixed_bf16", mixed_bf16, (int)(sizeof mixed_bf16 / sizeof *mixed_bf16), true);
    run_family("wide_f32", wide_f32, (int)(sizeof wide_f32 / sizeof *wide_f32), true);
    run_family("packed_f32", packed_f32, (int)(sizeof packed_f32 / sizeof *packed_f32), true);
    run_family("packed_bf16", packed_bf16, (int)(sizeof packed_bf16 / sizeof *packed_bf16), true);
    run_family("tiles_f32", tiles_f32, (int)(sizeof tiles_f32 / sizeof *tiles_f32), false);
    run_family("tiles_bf16", tiles_bf16, (int)(sizeof tiles_bf16 / sizeof *tiles_bf16), false);
    return check_summary();
}
