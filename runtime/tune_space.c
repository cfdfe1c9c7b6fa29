/* tune_space.c: the candidate tiles of a kernel (tune.h).
 *
 * A space is a few grids of knob values (the emitter's, or the CPU
 * backend's), their product filtered by the rules the emitters check, so
 * that few candidates are refused after generating code:
 * - GPU scan, lanes decomposition: lanes per state (powers of two dividing
 *   N), channels per block (lanes x channels from 32 to 1024 threads),
 *   items per chunk (a multiple of the lanes); chunked: threads per block,
 *   items per thread, with and without a min-blocks bound;
 * - GPU element and row kernels: threads per block;
 * - CPU: for every kernel the pool threads a launch is split over (tasks)
 *   and the vector width (threads per block, up to the host's lanes: the
 *   elements of an element kernel, a scan block's channels; a row kernel's
 *   threads per row); for a scan also its chunk of staged steps (items);
 *   for a matmul group the shares its products are split into (tasks).
 *   The CPU lowering has no unroll knob to read (LLVM's O3 decides). */
#include <string.h>

#include "gemm.h"
#include "scan_plan.h"
#include "tune.h"

#define MAX_VALUES 12

typedef struct {
    int field; /* index into the mx_tiles fields, as tile_field below */
    int values[MAX_VALUES];
    int n;
} axis;

typedef struct {
    mx_tiles fixed;
    axis axes[4];
    int n_axes;
} grid;

static int *field_of(mx_tiles *t, int field) {
    int *fields[] = {&t->threads, &t->items, &t->channels, &t->lanes_per_state, &t->min_blocks, &t->tasks};
    return fields[field];
}
enum { F_THREADS, F_ITEMS, F_CHANNELS, F_LANES, F_MIN_BLOCKS, F_TASKS };

static void axis_add(grid *g, int field, const int *values, int n) {
    if (n < 1) /* no value: the knob keeps the base's */
        return;
    axis *a = &g->axes[g->n_axes++];
    a->field = field;
    a->n = 0;
    for (int i = 0; i < n && a->n < MAX_VALUES; i++)
        a->values[a->n++] = values[i];
}

/* The scan's N: the states of its first selective_scan. */
static int64_t scan_states(const mx_program *p, int group) {
    const mx_group *gr = &p->groups[group];
    for (int i = 0; i < gr->n_nodes; i++)
        if (p->g->nodes[gr->nodes[i]].op == MX_OP_SELECTIVE_SCAN)
            return mx_node_input_type(p->g, gr->nodes[i], MX_SCAN_A)->dim[1];
    return 1;
}

bool mx_tune_has_knobs(const mx_program *p, const mx_target *t, int g) {
    return p->groups[g].kind != MX_FUSE_MATMUL || t->device == MX_DEVICE_CPU;
}

bool mx_tune_unit_of(const mx_program *p, const mx_target *t, const mx_module *m, int g, mx_tune_unit *u) {
    const mx_kernel *k = mx_module_kernel(m, g);
    if (k) {
        *u = (mx_tune_unit){.identity = k->identity, .kind = k->kind};
        snprintf(u->name, sizeof u->name, "%s", k->name);
        return true;
    }
    mx_gemm gm;
    mx_diag ignored;
    if (p->groups[g].kind != MX_FUSE_MATMUL || !mx_tune_has_knobs(p, t, g) ||
        mx_gemm_decode(p, g, &gm, &ignored) != MX_OK)
        return false;
    *u = (mx_tune_unit){.identity = mx_gemm_identity(p, &gm), .kind = MX_FUSE_MATMUL};
    snprintf(u->name, sizeof u->name, "mx_g%d_%s", g, mx_fusion_names[MX_FUSE_MATMUL]);
    return true;
}

/* The rules the GPU scan emitter checks (gpu_scan); elsewhere the emitter
 * or the CPU lowering refuses what it cannot run, and the search records
 * that candidate as invalid. */
static bool valid(const mx_tiles *t, bool gpu_scan) {
    if (!gpu_scan)
        return true;
    if (t->chunked)
        return t->threads >= 32 && t->threads <= 1024;
    int threads = t->channels * t->lanes_per_state;
    return threads >= 32 && threads <= 1024 && t->items >= t->lanes_per_state && t->items % t->lanes_per_state == 0;
}

static bool same(const mx_tiles *a, const mx_tiles *b) { return memcmp(a, b, sizeof *a) == 0; }

static void add(mx_tune_space *s, const mx_tiles *t) {
    for (int i = 0; i < s->n; i++)
        if (same(&s->tiles[i], t))
            return;
    if (s->n < MX_TUNE_SPACE_MAX)
        s->tiles[s->n++] = *t;
}

/* The grid's product; a lane-per-channel scan (GPU, and every CPU scan) has
 * its threads from channels x lanes per state. */
static void enumerate(mx_tune_space *s, const grid *g, bool scan_threads, bool gpu_scan) {
    int at[4] = {0};
    for (;;) {
        mx_tiles t = g->fixed;
        for (int a = 0; a < g->n_axes; a++)
            *field_of(&t, g->axes[a].field) = g->axes[a].values[at[a]];
        if (scan_threads && !t.chunked)
            t.threads = t.channels * t.lanes_per_state;
        if (valid(&t, gpu_scan))
            add(s, &t);
        int a = 0;
        while (a < g->n_axes && ++at[a] == g->axes[a].n)
            at[a++] = 0;
        if (a == g->n_axes)
            return;
    }
}

/* Powers of two from `from` to `to` into v; how many. */
static int powers_of_two(int from, int to, int *v) {
    int n = 0;
    for (int x = from; x <= to && n < MAX_VALUES; x *= 2)
        v[n++] = x;
    return n;
}

/* The channels per block a CPU scan can take, powers of two up to the
 * lanes: a block's rows share (b, g) (they divide Ch / G), or the rows
 * divide into whole blocks; else the emitter's early return for the rows
 * past the end is one the CPU lowering cannot run as lanes. */
static int cpu_scan_channels(const mx_program *p, int group, int lanes, int *v) {
    mx_scan_plan sp;
    mx_diag ignored;
    int n = 0;
    if (mx_scan_plan_fill(p, group, &sp, &ignored) != MX_OK)
        return 0;
    for (int c = 1; c <= lanes && n < MAX_VALUES; c *= 2)
        if ((sp.Ch / sp.G) % c == 0 || (sp.Bt * sp.Ch) % c == 0)
            v[n++] = c;
    return n;
}

void mx_tune_space_fill(const mx_program *p, int group, const mx_target *t, const mx_tiles *base,
                        mx_tune_space *s) {
    memset(s, 0, sizeof *s);
    s->tiles[s->n++] = *base; /* candidate 0: the default */
    mx_fusion kind = p->groups[group].kind;
    grid g[3];
    int n_grids = 0;
    if (t->device == MX_DEVICE_CPU) {
        /* The CPU lowering runs a block of up to `lanes` threads as vector
         * lanes (llvm_kernel.c), so threads per block is the vector width:
         * of the elements an element kernel takes at once, of the channels a
         * scan block steps together (threads = channels). A row kernel
         * (norm, reduce) takes a multiple of 32 threads per row, more than
         * the lanes: there they are the threads a row is split over. */
        int lanes = t->vector_bits >= 64 ? t->vector_bits / 32 : 4;
        int tasks[MAX_VALUES] = {0, 1}, n_tasks = 2, widths[MAX_VALUES];
        for (int k = 2; k < t->threads && n_tasks < MAX_VALUES; k *= 2)
            tasks[n_tasks++] = k;
        g[0] = (grid){.fixed = *base};
        if (kind == MX_FUSE_MATMUL && n_tasks < MAX_VALUES && t->threads > 1)
            tasks[n_tasks++] = t->threads; /* a product's 0 is the backend's rule, not all threads */
        axis_add(&g[0], F_TASKS, tasks, n_tasks);
        if (kind == MX_FUSE_SCAN) {
            static const int items[] = {2, 4, 8, 16, 32, 64, 128};
            axis_add(&g[0], F_ITEMS, items, 7);
            axis_add(&g[0], F_CHANNELS, widths, cpu_scan_channels(p, group, lanes, widths));
        } else if (kind == MX_FUSE_ELEMWISE || kind == MX_FUSE_CONV) {
            axis_add(&g[0], F_THREADS, widths, powers_of_two(1, lanes, widths));
        } else if (kind != MX_FUSE_MATMUL) { /* a product's one knob is its split (standalone_split.h) */
            axis_add(&g[0], F_THREADS, widths, powers_of_two(32, 128, widths));
        }
        n_grids = 1;
    } else if (kind == MX_FUSE_SCAN) {
        int64_t N = scan_states(p, group);
        int lanes[6], n_lanes = 0;
        for (int l = 1; l <= 32; l *= 2)
            if (N % l == 0)
                lanes[n_lanes++] = l;
        static const int channels[] = {1, 2, 4, 8, 16, 32, 64, 128}, items[] = {8, 16, 32, 64};
        g[0] = (grid){.fixed = {.vector = 1}};
        axis_add(&g[0], F_LANES, lanes, n_lanes);
        axis_add(&g[0], F_CHANNELS, channels, 8);
        axis_add(&g[0], F_ITEMS, items, 4);
        static const int threads[] = {32, 64, 128, 256, 512}, chunk[] = {2, 4, 8, 16, 32}, min_blocks[] = {0, 2, 4};
        g[1] = (grid){.fixed = {.vector = 1, .chunked = 1, .channels = 1}};
        axis_add(&g[1], F_THREADS, threads, 5);
        axis_add(&g[1], F_ITEMS, chunk, 5);
        axis_add(&g[1], F_MIN_BLOCKS, min_blocks, 3);
        n_grids = 2;
    } else {
        static const int threads[] = {32, 64, 128, 256, 512, 1024};
        g[0] = (grid){.fixed = *base};
        axis_add(&g[0], F_THREADS, threads, 6);
        n_grids = 1;
    }
    for (int i = 0; i < n_grids; i++)
        enumerate(s, &g[i], kind == MX_FUSE_SCAN, t->device != MX_DEVICE_CPU && kind == MX_FUSE_SCAN);
}

/* Neighbours: one knob moved one step (doubled or halved), the rest kept. */
int mx_tune_space_neighbours(const mx_tune_space *s, const mx_tiles *of, int *out, int cap) {
    int n = 0;
    for (int i = 0; i < s->n && n < cap; i++) {
        int differ = 0, close = 1;
        for (int f = F_THREADS; f <= F_TASKS; f++) {
            int a = *field_of((mx_tiles *)&s->tiles[i], f), b = *field_of((mx_tiles *)of, f);
            if (a == b)
                continue;
            differ++;
            close &= a == 2 * b || b == 2 * a || (a == 0) != (b == 0);
        }
        if (s->tiles[i].chunked == of->chunked && differ >= 1 && differ <= (of->chunked ? 1 : 2) && close)
            out[n++] = i;
    }
    return n;
}
