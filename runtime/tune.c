/* tune.c: the search (mx_tune, mixc.h; docs/tune.md).
 *
 * The distinct kernels of a compiled model (one per identity, timed at its
 * first group; on the CPU its distinct products too, whose one knob is
 * their split over the pool: mx_tune_unit_of) are searched together, in
 * rounds: each round gives every
 * kernel still searching its next candidate, compiles the model with those
 * tiles (on the CPU only the changed kernels' functions compile: the others'
 * objects come from the kernel cache), runs a forward pass and compares the
 * outputs with the default's, then times each kernel's group alone against
 * the default's, side by side (the default program stays open, so both see
 * the same machine load). The next rounds' programs are compiled at once,
 * one per core (tune_round.c), then run and timed one after the other. A
 * round that fails to compile or whose outputs differ is split in halves,
 * down to the kernel whose candidate was at fault. A space small enough is
 * searched whole; a larger one from a seeded random sample, then by beam
 * steps (the neighbours of the best two) until a step improves nothing; a
 * candidate clearly slower than the best after its first runs stops there
 * (3x: dropped). Timing alone only ranks: where the device times groups in
 * a forward pass (the CPU), each kernel's best few are judged there
 * (tune_forward.c); elsewhere the best is timed once more alone, three
 * times longer, in a last round of its own. Either way a candidate must be
 * 3% faster than the default to win (the noise of a shared machine), and
 * the winners together must make the whole forward pass 2% faster
 * (tune_forward.c). Modelled (the roofline estimate of the host
 * emulation's profile, GPU targets without a GPU), any gain of 1% wins. GPU
 * candidates that spill more than the default as NVRTC compiles them are
 * pruned, measured or modelled. */
#include <fnmatch.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend.h"
#include "exec.h"
#include "gpu.h"
#include "profile.h"
#include "progress.h"
#include "tune_search.h"

#define SAMPLE 16          /* random candidates of a large space */
#define EXHAUSTIVE 24      /* a space up to this size is searched whole */
#define BEAM_STEP 8        /* neighbours tried per beam step */
#define DROP_AFTER 3       /* runs before the 3x rule may drop a candidate */
#define EARLY_STOP 1.10    /* after DROP_AFTER runs, a candidate this much slower than the best stops */
#define CONFIRM_RUNS 3     /* the confirming round times this many times the repeats */
#define SAMPLE_MS 2.0      /* a timed sample lasts at least this long (launches batched) */
#define MAX_BATCH 256
#define MODEL_MARGIN 0.99  /* modelled: the same, against rounding */


/* ---- small things -------------------------------------------------------------------------- */

static uint64_t next_random(uint64_t *s) { /* splitmix64 */
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static int by_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double mx_tune_median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, by_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Finite numbers within tol of the output's scale (the default's largest |x|). */
bool mx_tune_outputs_match(const mx_program *p, const mx_buffers *got, const mx_buffers *want) {
    const mx_graph *g = p->g;
    for (int i = 0; i < g->n_outputs; i++) {
        int v = g->outputs[i];
        mx_dtype dt = mx_value_type(g, v)->dtype;
        double tol = dt == MX_BF16 ? 2e-2 : dt == MX_F16 ? 2e-3 : 1e-4, scale = 1e-30;
        const float *a = got->data[v], *b = want->data[v];
        if (!a || !b)
            return false;
        for (int64_t e = 0; e < want->numel[v]; e++)
            if (isfinite(b[e]) && fabs(b[e]) > scale)
                scale = fabs(b[e]);
        for (int64_t e = 0; e < want->numel[v]; e++) {
            if (isfinite(a[e]) != isfinite(b[e]))
                return false;
            if (isfinite(b[e]) && fabs((double)a[e] - b[e]) > tol * scale)
                return false;
        }
    }
    return true;
}

static void utc_now(char *buf, size_t size) {
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* ---- the kernels ----------------------------------------------------------------------------- */

static bool wanted(const tuner *tu, const mx_tune_unit *u) {
    const char *pat = tu->o->kernels;
    return !pat || fnmatch(pat, u->name, 0) == 0 || fnmatch(pat, mx_fusion_names[u->kind], 0) == 0;
}

/* "scan f32[1,384,196] (mx_g12_scan, 24 groups)", of the unit at group rep */
static void label_of(const mx_program *p, int rep, const mx_tune_unit *u, int n_groups, char *buf, size_t size) {
    const mx_graph *g = p->g;
    char type[96];
    mx_type_str(mx_value_type(g, mx_node_output(g, p->groups[rep].anchor, 0)), type, sizeof type);
    snprintf(buf, size, "%s %s (%s, %d group%s)", mx_fusion_names[u->kind], type, u->name, n_groups,
             n_groups > 1 ? "s" : "");
}

static void queue_push(kernel_search *ks, int index) {
    if (!ks->tried[index] && ks->n_queue < MX_TUNE_SPACE_MAX) {
        ks->tried[index] = true;
        ks->queue[ks->n_queue++] = index;
    }
}

/* The first candidates: all of a small space, else a seeded sample. */
static void seed_queue(tuner *tu, kernel_search *ks) {
    queue_push(ks, 0);
    if (ks->space.n <= EXHAUSTIVE) {
        for (int i = 1; i < ks->space.n; i++)
            queue_push(ks, i);
        ks->best_before_beam = -1; /* no beam: the whole space is in the queue */
        return;
    }
    for (int tries = 0; ks->n_queue < SAMPLE + 1 && tries < 8 * SAMPLE; tries++)
        queue_push(ks, 1 + (int)(next_random(&tu->rng) % (uint64_t)(ks->space.n - 1)));
    ks->best_before_beam = INFINITY;
}

/* A beam step when the queue ran dry: the untried neighbours of the best two;
 * false when there is none, or the last step improved nothing. */
static bool beam_step(kernel_search *ks) {
    if (ks->best_before_beam < 0 || ks->rec.n_candidates >= MX_TUNE_MAX_CANDIDATES - BEAM_STEP)
        return false;
    double best = ks->rec.candidates[ks->best].ratio;
    if (!(best < ks->best_before_beam))
        return false;
    ks->best_before_beam = best;
    int top[2] = {ks->best, -1};
    for (int i = 0; i < ks->rec.n_candidates; i++)
        if (i != ks->best && ks->rec.candidates[i].status == MX_CAND_OK &&
            (top[1] < 0 || ks->rec.candidates[i].ratio < ks->rec.candidates[top[1]].ratio))
            top[1] = i;
    int before = ks->n_queue;
    for (int j = 0; j < 2 && top[j] >= 0; j++) {
        int near[BEAM_STEP];
        int n = mx_tune_space_neighbours(&ks->space, &ks->rec.candidates[top[j]].tiles, near, BEAM_STEP);
        for (int i = 0; i < n && ks->n_queue - before < BEAM_STEP; i++)
            queue_push(ks, near[i]);
    }
    return ks->n_queue > before;
}

static mx_status find_kernels(tuner *tu, mx_diag *d) {
    mx_module m;
    mx_codegen_options co = {.target = &tu->t, .tiles = tu->base};
    MX_TRY(mx_codegen(tu->p, &co, &m, d));
    mx_status st = MX_OK;
    for (int g = 0; g < tu->p->n_groups; g++) {
        tu->class_of[g] = -1;
        mx_tune_unit u;
        if (!mx_tune_unit_of(tu->p, &tu->t, &m, g, &u) || !wanted(tu, &u))
            continue;
        int c = 0;
        while (c < tu->n_k && tu->k[c].unit.identity != u.identity)
            c++;
        if (c == tu->n_k) {
            kernel_search *ks = &tu->k[tu->n_k++];
            ks->unit = u;
            ks->rep = g;
            ks->current = -1;
            ks->queue = calloc(MX_TUNE_SPACE_MAX, sizeof *ks->queue);
            ks->tried = calloc(MX_TUNE_SPACE_MAX, sizeof *ks->tried);
            if (!ks->queue || !ks->tried) {
                st = mx_fail(d, MX_ERR_NOMEM, "tune: out of memory");
                break;
            }
            mx_tune_space_fill(tu->p, g, &tu->t, &tu->base[g], &ks->space);
            if (tu->hooks->extend)
                tu->hooks->extend(tu->hooks->ctx, tu->p, g, &ks->space);
            seed_queue(tu, ks);
        }
        tu->class_of[g] = c;
        tu->k[c].n_groups++;
    }
    for (int c = 0; st == MX_OK && c < tu->n_k; c++) {
        kernel_search *ks = &tu->k[c];
        label_of(tu->p, ks->rep, &ks->unit, ks->n_groups, ks->label, sizeof ks->label);
        ks->rec = (mx_tune_record){.kernel = ks->unit.identity, .measured = !tu->o->model_only};
        snprintf(ks->rec.label, sizeof ks->rec.label, "%s", ks->label);
        snprintf(ks->rec.target, sizeof ks->rec.target, "%s", tu->sig);
    }
    mx_module_free(&m);
    return st;
}

/* ---- running a round ------------------------------------------------------------------------- */

/* The tiles of a round: the defaults, with the candidates of the kernels in it. */
static void round_tiles(const tuner *tu, const bool *in, mx_tiles *tiles) {
    memcpy(tiles, tu->base, (size_t)tu->p->n_groups * sizeof *tiles);
    for (int g = 0; g < tu->p->n_groups; g++) {
        int c = tu->class_of[g];
        if (c >= 0 && in[c] && tu->k[c].current >= 0)
            tiles[g] = tu->k[c].space.tiles[tu->k[c].current];
    }
}

/* The modelled time of a kernel: the roofline of the bytes its sectors move
 * (so that coalescing counts) and its exps, over the share of the GPU's
 * resident threads its launch fills with work (at most one thread per f32
 * element it stores). */
static double modelled_ms(const mx_target *t, const mx_kernel *k, const mx_kernel_profile *kp) {
    const mx_emu_counters *c = &kp->c;
    double bytes = 32.0 * (double)(c->sectors[MX_EMU_LOAD] + c->sectors[MX_EMU_STORE]);
    double s = bytes / t->bytes_per_s > (double)c->exps / t->exps_per_s ? bytes / t->bytes_per_s
                                                                          : (double)c->exps / t->exps_per_s;
    double threads = (double)k->grid[0] * k->grid[1] * k->grid[2] * k->block[0] * k->block[1] * k->block[2];
    double outputs = (double)c->unique_bytes[MX_EMU_STORE] / 4; /* a thread that stores nothing idles */
    double fill = (threads < outputs ? threads : outputs) / ((double)t->sm_count * t->max_threads_per_sm);
    return 1e3 * s / (fill < 1 ? fill : 1);
}

/* Bytes each group's kernel spills as NVRTC compiles m for the target
 * (INT32_MAX: its registers leave no room for one block on an SM): the
 * compiler's report prunes GPU candidates, measured or modelled. NVRTC
 * needs no GPU, and its cache hands the cubins to the open that follows. */
static mx_status nvrtc_spills(const tuner *tu, const mx_module *m, int *spills, mx_diag *d) {
    mx_cubin cubins[MX_CODEGEN_MAX_PROGRAMS] = {{0}}; /* one per program */
    mx_status st = mx_gpu_compile(m, tu->p->g->name, tu->t.sm, cubins, d);
    for (int g = 0; st == MX_OK && g < tu->p->n_groups; g++) {
        const mx_kernel *k = mx_module_kernel(m, g);
        const mx_kernel_usage *u = k ? mx_cubin_kernel(&cubins[k->program], k->name) : NULL;
        spills[g] = u ? u->spill_stores + u->spill_loads : 0;
        if (u && (int64_t)u->registers * k->block[0] * k->block[1] * k->block[2] > tu->t.regs_per_sm)
            spills[g] = INT32_MAX; /* not one block fits an SM */
    }
    for (int q = 0; q < m->n_programs; q++)
        mx_cubin_free(&cubins[q]);
    return st;
}

/* The outputs of a program with tiles: a forward pass on the device (b,
 * opened here unless it was with others), or under the emulation
 * (modelled: est[g] each group's modelled time). On a GPU target spills[g]
 * is what nvrtc_spills says of each group's kernel, else 0. */
mx_status mx_tune_run_program(tuner *tu, const mx_tiles *tiles, mx_tune_build *b, mx_buffers *out, double *est,
                              int *spills, mx_diag *d) {
    bool gpu = tu->t.device == MX_DEVICE_CUDA || tu->t.device == MX_DEVICE_EMU;
    mx_module m = {0};
    mx_status st = MX_OK;
    if (gpu) {
        mx_codegen_options co = {.target = &tu->t, .tiles = tiles};
        st = mx_codegen(tu->p, &co, &m, d);
        if (st == MX_OK)
            st = nvrtc_spills(tu, &m, spills, d);
    }
    if (tu->o->model_only) {
        mx_profile pr = {0};
        mx_compiled_set_tiles(tu->c, tiles);
        if (st == MX_OK)
            st = mx_profile_run(tu->p, &m, &tu->t, tu->pb, NULL, &pr, d);
        for (int g = 0; st == MX_OK && g < tu->p->n_groups; g++) {
            const mx_kernel *k = mx_module_kernel(&m, g);
            const mx_kernel_profile *kp = mx_profile_kernel(&pr, g);
            est[g] = k && kp ? modelled_ms(&tu->t, k, kp) : 0;
        }
        if (st == MX_OK)
            st = mx_exec_emu(tu->p, &m, out, d);
        mx_profile_free(&pr);
        mx_module_free(&m);
        mx_compiled_set_tiles(tu->c, NULL);
        return st;
    }
    mx_module_free(&m);
    if (st == MX_OK && !b->opened)
        mx_tune_open_all(tu->be, &tu->t, &b, 1, 1);
    if (st == MX_OK && (st = b->st) != MX_OK)
        *d = b->why;
    if (st == MX_OK)
        st = tu->be->upload(b->state, tu->pb, d);
    if (st == MX_OK)
        st = tu->be->forward(b->state, d);
    if (st == MX_OK)
        st = tu->be->sync(b->state, d);
    if (st == MX_OK)
        st = tu->be->download(b->state, out, d);
    if (st != MX_OK && b->state) {
        tu->be->close(b->state);
        b->state = NULL;
    }
    return st;
}

mx_buffers *mx_tune_output_buffers(const tuner *tu) {
    mx_buffers *b = mx_buffers_new(tu->p->g);
    if (!b)
        return NULL;
    for (int v = 0; v < b->count; v++) {
        mx_op op = tu->p->g->nodes[tu->p->g->values[v].node].op;
        if ((op == MX_OP_INPUT || op == MX_OP_PARAM) && tu->pb->data[v]) {
            b->data[v] = malloc((size_t)(b->numel[v] ? b->numel[v] : 1) * sizeof(float));
            if (!b->data[v]) {
                mx_buffers_free(b);
                return NULL;
            }
            memcpy(b->data[v], tu->pb->data[v], (size_t)b->numel[v] * sizeof(float));
        }
    }
    return b;
}

/* One timed sample of kernel ks's group in state (or the injected time):
 * the mean of `batch` launches, so that a kernel of microseconds is not
 * measured at the clock's and the thread pool's granularity. */
static mx_status time_once(tuner *tu, void *state, const kernel_search *ks, const mx_tiles *tiles, int batch,
                           double *ms, mx_diag *d) {
    if (tu->hooks->time) {
        *ms = tu->hooks->time(tu->hooks->ctx, tiles);
        return MX_OK;
    }
    double each[MAX_BATCH], sum = 0;
    MX_TRY(tu->be->time_group(state, ks->rep, batch, each, d));
    for (int i = 0; i < batch; i++)
        sum += each[i];
    *ms = sum / batch;
    return MX_OK;
}

/* Times kernel ks's group in state against the default's, interleaved. */
static mx_status time_candidate(tuner *tu, void *state, kernel_search *ks, mx_tune_candidate *cand, int times,
                                mx_diag *d) {
    int runs = (tu->o->repeats > 0 ? tu->o->repeats : 5) * (times > 0 ? times : 1);
    double mine[64], theirs[64], sorted[64];
    const mx_tiles *base = &ks->space.tiles[0];
    runs = runs > 64 ? 64 : runs;
    MX_TRY(time_once(tu, state, ks, &cand->tiles, 1, mine, d)); /* warm-up, and the batch */
    MX_TRY(time_once(tu, tu->default_build->state, ks, base, 1, theirs, d));
    int batch = mine[0] > 0 ? (int)(SAMPLE_MS / mine[0]) + 1 : MAX_BATCH;
    batch = batch > MAX_BATCH ? MAX_BATCH : batch;
    double best = ks->rec.candidates[ks->best].ratio;
    for (int i = 0; i < runs; i++) {
        MX_TRY(time_once(tu, state, ks, &cand->tiles, batch, &mine[i], d));
        MX_TRY(time_once(tu, tu->default_build->state, ks, base, batch, &theirs[i], d));
        if (i + 1 == DROP_AFTER || i + 1 == runs) {
            memcpy(sorted, mine, (size_t)(i + 1) * sizeof *mine);
            double m = mx_tune_median(sorted, i + 1);
            cand->spread = m > 0 ? (sorted[i] - sorted[0]) / m : 0;
            memcpy(sorted, theirs, (size_t)(i + 1) * sizeof *theirs);
            double def = mx_tune_median(sorted, i + 1);
            cand->ms = m;
            cand->ratio = cand == ks->rec.candidates ? 1 : def > 0 ? m / def : 1; /* the default is 1 by definition */
            if (i + 1 == DROP_AFTER && !ks->confirming && ks->rec.n_candidates > 1 && cand->ratio > 3 * best) {
                cand->status = MX_CAND_DROPPED;
                return MX_OK;
            }
            if (i + 1 == DROP_AFTER && !ks->confirming && ks->rec.n_candidates > 1 && cand->ratio > EARLY_STOP * best)
                break; /* it will not be the best: its first runs are its time */
        }
    }
    cand->status = MX_CAND_OK;
    return MX_OK;
}

/* Records kernel ks's candidate of this round. */
static mx_tune_candidate *new_candidate(kernel_search *ks, mx_cand_status status) {
    ks->from[ks->rec.n_candidates] = ks->current;
    mx_tune_candidate *cand = &ks->rec.candidates[ks->rec.n_candidates++];
    *cand = (mx_tune_candidate){.tiles = ks->space.tiles[ks->current], .status = status, .ratio = 1};
    return cand;
}

static void finish_candidate(kernel_search *ks, const mx_tune_candidate *cand) {
    int i = (int)(cand - ks->rec.candidates);
    if (cand->status == MX_CAND_OK && cand->ratio < ks->rec.candidates[ks->best].ratio)
        ks->best = i;
    ks->current = -1;
}

/* Kernel c's candidate in a round that failed (st) or whose outputs
 * differed (st MX_OK): recorded as such, never to win. */
static void refuse(tuner *tu, int c, mx_status st, const mx_diag *why) {
    kernel_search *ks = &tu->k[c];
    mx_tune_candidate *cand = new_candidate(ks, st == MX_OK ? MX_CAND_MISMATCH : MX_CAND_INVALID);
    if (mx_debug_level() >= 1)
        fprintf(stderr, "mixc: tune: %s: candidate %d %s%s\n", ks->label, ks->rec.n_candidates - 1,
                st == MX_OK ? "does not match the default's outputs" : "refused: ", st == MX_OK ? "" : why->msg);
    finish_candidate(ks, cand);
}

/* The kernels of `in` split in two halves (counting those with a candidate). */
static void split_halves(const tuner *tu, const bool *in, int n, bool *first, bool *second) {
    int seen = 0;
    for (int c = 0; c < tu->n_k; c++) {
        bool has = in[c] && tu->k[c].current >= 0;
        first[c] = has && seen < n / 2;
        second[c] = has && !first[c];
        seen += has;
    }
}

/* The kernel of the round (in `in`) a compile error names by its function
 * ("in mx_g14_scan, line 292") or its group ("scan group 0: ..."); -1:
 * none. */
static int blamed_kernel(const tuner *tu, const bool *in, const char *msg) {
    static const char *const marks[] = {"mx_g", "group "};
    for (int m = 0; m < 2; m++)
        for (const char *at = strstr(msg, marks[m]); at; at = strstr(at + 1, marks[m])) {
            const char *digits = at + strlen(marks[m]);
            char *end;
            long g = strtol(digits, &end, 10);
            if (end == digits || (*end != '_' && *end != ':') || g < 0 || g >= tu->p->n_groups)
                continue;
            int c = tu->class_of[g];
            if (c >= 0 && in[c] && tu->k[c].current >= 0 && !tu->k[c].confirming) /* a confirming best is judged alone */
                return c;
        }
    return -1;
}

/* Whether the default program still runs after a round failed on a GPU. A
 * kernel that faults (an illegal address) leaves the process's CUDA
 * context unusable: every later call fails, and each would be taken for
 * a candidate's fault, refusing them all. The default, which ran before,
 * tells the two apart. */
static bool gpu_still_runs(tuner *tu, mx_diag *why) {
    void *s = tu->default_build ? tu->default_build->state : NULL;
    if (tu->t.device != MX_DEVICE_CUDA || tu->o->model_only || !s)
        return true;
    return tu->be->forward(s, why) == MX_OK && tu->be->sync(s, why) == MX_OK;
}

/* Runs the candidates of the kernels marked in `in`, with b their program
 * (opened with other rounds; NULL: opened here), which it frees. A failure
 * of several is retried in halves, down to the kernel at fault: log2 of the
 * round's kernels extra rounds per fault rather than one per kernel; a
 * compile error that names the kernel it is in needs no search. */
static mx_status run_round(tuner *tu, bool *in, mx_tune_build *b, mx_diag *d) {
    int n = 0, only = -1;
    for (int c = 0; c < tu->n_k; c++)
        if (in[c] && tu->k[c].current >= 0)
            n++, only = c;
    if (n == 0) {
        mx_tune_build_free(tu->be, b);
        return MX_OK;
    }
    mx_tiles *tiles = malloc(((size_t)tu->p->n_groups + 1) * sizeof *tiles);
    if (tiles)
        round_tiles(tu, in, tiles);
    if (!b && tiles)
        b = mx_tune_build_new(tu->p, tiles);
    mx_buffers *out = mx_tune_output_buffers(tu);
    double *est = calloc((size_t)tu->p->n_groups + 1, sizeof *est);
    int *spills = calloc((size_t)tu->p->n_groups + 1, sizeof *spills);
    bool *halves = calloc(2 * (size_t)tu->n_k + 2, sizeof *halves);
    if (!tiles || !b || !out || !est || !spills || !halves) {
        free(tiles), free(est), free(spills), free(halves);
        mx_buffers_free(out);
        mx_tune_build_free(tu->be, b);
        return mx_fail(d, MX_ERR_NOMEM, "tune: out of memory");
    }
    mx_diag why;
    mx_status st = mx_tune_run_program(tu, tiles, b, out, est, spills, &why);
    if (st == MX_OK && tu->hooks->outputs)
        tu->hooks->outputs(tu->hooks->ctx, tu->p, tiles, out);
    bool ok = st == MX_OK && (!tu->want || mx_tune_outputs_match(tu->p, out, tu->want));
    int blamed = st != MX_OK && st != MX_ERR_NOMEM && n > 1 ? blamed_kernel(tu, in, why.msg) : -1;
    mx_diag lost;
    if (st != MX_OK && st != MX_ERR_NOMEM && tu->want && !gpu_still_runs(tu, &lost)) {
        char tiles_text[160] = "";
        if (n == 1)
            mx_tiles_describe(&tu->k[only].space.tiles[tu->k[only].current], tiles_text, sizeof tiles_text);
        st = mx_fail(d, MX_ERR_INVALID,
                     "tune: the GPU failed running a round of %d kernel%s%s%s (%s), and the default program no "
                     "longer runs either (%s): a fault left the process's CUDA context unusable; tuning stopped, "
                     "the kernels finished so far are recorded",
                     n, n == 1 ? "" : "s", n == 1 ? ", tiles " : "", tiles_text, why.msg, lost.msg);
    } else if (st == MX_ERR_NOMEM || (!tu->want && !ok)) { /* out of memory, or the defaults do not run */
        *d = why;
        if (st == MX_OK)
            st = mx_fail(d, MX_ERR_INVALID, "tune: the default program does not run");
    } else if (!ok && n > 1 && blamed >= 0) { /* the compiler named the kernel: refused, the rest again */
        refuse(tu, blamed, st, &why);
        memcpy(halves, in, (size_t)tu->n_k * sizeof *halves);
        halves[blamed] = false;
        st = run_round(tu, halves, NULL, d);
    } else if (!ok && n > 1) { /* whose candidate? each half alone */
        split_halves(tu, in, n, halves, halves + tu->n_k + 1);
        st = run_round(tu, halves, NULL, d);
        if (st == MX_OK)
            st = run_round(tu, halves + tu->n_k + 1, NULL, d);
    } else if (!ok && tu->k[only].confirming) { /* fine alone before, not now: it does not win */
        kernel_search *ks = &tu->k[only];
        ks->rec.candidates[ks->best].status = st == MX_OK ? MX_CAND_MISMATCH : MX_CAND_INVALID;
        ks->best = 0;
        ks->current = -1;
        st = MX_OK;
    } else if (!ok) {
        refuse(tu, only, st, &why);
        st = MX_OK;
    } else {
        if (!tu->want) { /* the default's round: its outputs are the reference, its program stays open */
            tu->want = out;
            out = NULL;
            tu->default_build = b;
            b = NULL;
        }
        void *state = tu->o->model_only ? NULL : (b ? b : tu->default_build)->state;
        for (int c = 0; c < tu->n_k && st == MX_OK; c++) {
            kernel_search *ks = &tu->k[c];
            if (!in[c] || ks->current < 0)
                continue;
            if (ks->confirming) { /* the best, timed again longer: this measurement decides */
                mx_tune_candidate *best = &ks->rec.candidates[ks->best], again = *best;
                st = time_candidate(tu, state, ks, &again, CONFIRM_RUNS, d);
                *best = again;
                ks->current = -1;
                continue;
            }
            mx_tune_candidate *cand = new_candidate(ks, MX_CAND_OK);
            if (cand == ks->rec.candidates)
                ks->default_spills = spills[ks->rep];
            else if (spills[ks->rep] > ks->default_spills) /* pruned by the compiler's report */
                cand->status = MX_CAND_INVALID;
            if (cand->status == MX_CAND_OK && tu->o->model_only) {
                cand->ms = est[ks->rep];
                double base = ks->rec.candidates[0].ms;
                cand->ratio = base > 0 ? cand->ms / base : 1;
            } else if (cand->status == MX_CAND_OK) {
                st = time_candidate(tu, state, ks, cand, 0, d);
            }
            finish_candidate(ks, cand);
        }
    }
    mx_tune_build_free(tu->be, b);
    mx_buffers_free(out);
    free(tiles);
    free(est);
    free(spills);
    free(halves);
    return st;
}

/* ---- the records ------------------------------------------------------------------------------ */

/* The winner of a searched kernel: its best, if it beat the default by the margin. */
static void choose_winner(const tuner *tu, kernel_search *ks) {
    double margin = tu->o->model_only ? MODEL_MARGIN : WIN_MARGIN;
    ks->rec.winner = ks->best > 0 && ks->rec.candidates[ks->best].ratio < margin ? ks->best : 0;
}

/* The record with its winner's function identity, appended to the database. */
static mx_status write_record(tuner *tu, kernel_search *ks, mx_diag *d) {
    mx_tune_record *r = &ks->rec;
    utc_now(r->when, sizeof r->when);
    mx_tiles *tiles = malloc(((size_t)tu->p->n_groups + 1) * sizeof *tiles);
    if (!tiles)
        return mx_fail(d, MX_ERR_NOMEM, "tune: out of memory");
    memcpy(tiles, tu->base, (size_t)tu->p->n_groups * sizeof *tiles);
    tiles[ks->rep] = r->candidates[r->winner].tiles;
    mx_codegen_options co = {.target = &tu->t, .tiles = tiles};
    mx_module m;
    mx_status st = mx_codegen(tu->p, &co, &m, d);
    free(tiles);
    if (st == MX_OK) {
        mx_tune_unit u;
        r->winner_source = mx_tune_unit_of(tu->p, &tu->t, &m, ks->rep, &u) ? u.identity : 0;
        mx_module_free(&m);
        st = mx_tune_db_append(tu->db, r, d);
    }
    ks->written = st == MX_OK;
    return st;
}

/* ---- the search ---------------------------------------------------------------------------------- */

static void progress_label(const tuner *tu, char *buf, size_t size) {
    int active = 0, best = -1;
    double best_ratio = 1;
    for (int c = 0; c < tu->n_k; c++) {
        const kernel_search *ks = &tu->k[c];
        active += !ks->done;
        if (ks->rec.n_candidates && ks->rec.candidates[ks->best].ratio < best_ratio)
            best_ratio = ks->rec.candidates[ks->best].ratio, best = c;
    }
    int tried = 0;
    for (int c = 0; c < tu->n_k; c++)
        tried += tu->k[c].rec.n_candidates;
    snprintf(buf, size, "%d of %d kernels searching, %d candidates done; best %.2fx%s%s", active, tu->n_k, tried,
             best_ratio, best >= 0 ? " on " : "", best >= 0 ? tu->k[best].label : "");
}

/* Rounds still queued (beam steps may add more). */
static int rounds_left(const tuner *tu) {
    int most = 0;
    for (int c = 0; c < tu->n_k; c++)
        most = tu->k[c].n_queue - tu->k[c].head > most ? tu->k[c].n_queue - tu->k[c].head : most;
    return most;
}

/* Kernel c's next candidate in a round opened ahead: from its queue only; a beam step or the confirming round
 * waits for the rounds before to be timed. */
static bool take_ahead(tuner *tu, int c, int *cur) {
    kernel_search *ks = &tu->k[c];
    if (ks->done || ks->confirming || ks->head == ks->n_queue)
        return false;
    *cur = ks->queue[ks->head++];
    return true;
}

/* Kernel c's candidate in the first round of a batch; false when it has
 * none (searched: done). */
static bool take_first(tuner *tu, int c) {
    kernel_search *ks = &tu->k[c];
    if (ks->done)
        return false;
    bool searched = ks->confirming || (ks->head == ks->n_queue && !beam_step(ks));
    /* One more round, the best against the default, longer: only for a best
     * that could win (under the margin); noise puts most kernels' best just
     * under 1, and confirming them all costs a round of long timings. */
    if (searched && !ks->confirming && !tu->o->model_only && ks->best > 0 &&
        ks->rec.candidates[ks->best].ratio < WIN_MARGIN && !mx_tune_judges_in_pass(tu)) {
        ks->confirming = true;
        ks->current = ks->from[ks->best];
        return true;
    }
    if (searched) {
        ks->done = true;
        choose_winner(tu, ks);
        return false;
    }
    ks->current = ks->queue[ks->head++];
    return true;
}

/* Rounds in batches of up to tu->jobs: the first as the search stands, the
 * others with the kernels' next queued candidates; the batch's programs
 * opened at once, then run and timed one after the other, in the order a
 * serial search runs them (each kernel tries the same candidates in the
 * same order, whatever the batch size). */
static mx_status search(tuner *tu, mx_diag *d) {
    size_t per = (size_t)tu->n_k + 1;
    bool *in = calloc((size_t)tu->jobs * per, sizeof *in);
    int *cur = calloc((size_t)tu->jobs * per, sizeof *cur);
    mx_tiles *tiles = malloc(((size_t)tu->p->n_groups + 1) * sizeof *tiles);
    mx_tune_build *builds[MX_TUNE_MAX_JOBS] = {0};
    if (!in || !cur || !tiles) {
        free(in), free(cur), free(tiles);
        return mx_fail(d, MX_ERR_NOMEM, "tune: out of memory");
    }
    mx_progress bar;
    mx_progress_start(&bar, tu->o->progress, "round", rounds_left(tu));
    mx_status st = MX_OK;
    for (int round = 0; st == MX_OK;) {
        if (tu->o->budget_s > 0 && round > 1 && mx_progress_now() - tu->start > tu->o->budget_s)
            for (int c = 0; c < tu->n_k; c++) /* spent (after the default and one candidate): the rest is not tried */
                tu->k[c].head = tu->k[c].n_queue, tu->k[c].best_before_beam = -1;
        int slots = 0;
        for (int j = 0; j < tu->jobs; j++) {
            int n = 0;
            for (int c = 0; c < tu->n_k; c++) {
                in[j * per + c] = j == 0 ? take_first(tu, c) : take_ahead(tu, c, &cur[j * per + c]);
                if (j == 0 && in[c])
                    cur[c] = tu->k[c].current;
                n += in[j * per + c];
            }
            if (n == 0)
                break;
            for (int c = 0; c < tu->n_k; c++) /* the round's tiles, from its candidates */
                tu->k[c].current = in[j * per + c] ? cur[j * per + c] : -1;
            round_tiles(tu, &in[j * per], tiles);
            builds[slots++] = mx_tune_build_new(tu->p, tiles);
            if (!builds[slots - 1])
                st = mx_fail(d, MX_ERR_NOMEM, "tune: out of memory");
        }
        if (st != MX_OK || slots == 0)
            break;
        if (!tu->o->model_only)
            mx_tune_open_all(tu->be, &tu->t, builds, slots, tu->jobs);
        for (int j = 0; j < slots; j++, round++) {
            for (int c = 0; c < tu->n_k; c++)
                tu->k[c].current = in[j * per + c] ? cur[j * per + c] : -1;
            int left = rounds_left(tu) + slots - 1 - j;
            bar.total = round + 1 + left > bar.total ? round + 1 + left : bar.total;
            char label[320];
            progress_label(tu, label, sizeof label);
            mx_progress_step(&bar, round, label);
            mx_tune_build *b = builds[j];
            builds[j] = NULL;
            if (st == MX_OK)
                st = run_round(tu, &in[j * per], b, d);
            else
                mx_tune_build_free(tu->be, b);
            mx_progress_item_done(&bar);
        }
    }
    mx_progress_finish(&bar);
    free(in), free(cur), free(tiles);
    return st;
}

/* The records, once every kernel is searched and the winners were checked together. */
static mx_status write_records(tuner *tu, mx_diag *d) {
    for (int c = 0; c < tu->n_k; c++)
        if (tu->k[c].done)
            MX_TRY(write_record(tu, &tu->k[c], d));
    return MX_OK;
}

static void summarise(const tuner *tu, mx_tune_summary *out) {
    for (int c = 0; c < tu->n_k; c++) {
        const mx_tune_record *r = &tu->k[c].rec;
        if (!tu->k[c].written)
            continue;
        out->kernels++;
        out->products += tu->k[c].unit.kind == MX_FUSE_MATMUL;
        out->improved += r->winner > 0;
        out->candidates += r->n_candidates;
        /* as judged: in the pass where the winner was timed there, against its round's default */
        bool in_pass = r->candidates[r->winner].pass_ratio > 0;
        out->default_ms += in_pass ? mx_tune_default_pass_ms(r) : r->candidates[0].ms * tu->k[c].n_groups;
        out->tuned_ms += in_pass ? r->candidates[r->winner].pass_ms : r->candidates[r->winner].ms * tu->k[c].n_groups;
    }
}

mx_status mx_tune(mx_compiled *c, const mx_tune_options *o, mx_tune_summary *out, mx_diag *d) {
    return mx_tune_hooked(c, o, NULL, out, d);
}

mx_status mx_tune_hooked(mx_compiled *c, const mx_tune_options *o, const mx_tune_hooks *h, mx_tune_summary *out,
                         mx_diag *d) {
    static const mx_tune_options none = {0};
    static const mx_tune_hooks no_hooks = {0};
    o = o ? o : &none;
    memset(out, 0, sizeof *out);
    tuner tu = {.c = c, .p = mx_compiled_program(c), .t = *mx_compiled_target(c), .o = o, .hooks = h ? h : &no_hooks,
                .start = mx_progress_now(), .rng = o->seed ^ 0x74756e65ull};
    tu.be = mx_backend_of(tu.t.device);
    /* the CPU compiles a round on one core; NVRTC already compiles a GPU round's programs in parallel */
    tu.jobs = o->jobs > 0 ? o->jobs : tu.t.device == MX_DEVICE_CPU && tu.t.threads > 1 ? tu.t.threads : 1;
    tu.jobs = tu.jobs < MX_TUNE_MAX_JOBS ? tu.jobs : MX_TUNE_MAX_JOBS;
    if (o->model_only && tu.t.device != MX_DEVICE_EMU && tu.t.device != MX_DEVICE_CUDA)
        return mx_fail(d, MX_ERR_INVALID, "tune: --model-only ranks GPU code by its roofline estimate: "
                                          "device %s is no GPU (use cuda or emu with a --target)",
                       mx_device_name(tu.t.device));
    if (!o->model_only && (!tu.be || !tu.be->time_group))
        return mx_fail(d, MX_ERR_INVALID, "tune: device %s cannot time kernels%s", mx_device_name(tu.t.device),
                       tu.t.device == MX_DEVICE_EMU || tu.t.device == MX_DEVICE_CUDA
                           ? " here: rank GPU candidates by the roofline estimate with model_only (--model-only)"
                           : ": tune on cpu or cuda");
    if (!o->db && !mx_tune_db_path(tu.db, sizeof tu.db))
        return mx_fail(d, MX_ERR_INVALID, "tune: no database file: the kernel cache is off (MIXC_NO_CACHE); "
                                          "name one (--db FILE or MIXC_TUNE_DB)");
    if (o->db)
        snprintf(tu.db, sizeof tu.db, "%s", o->db);
    snprintf(out->db, sizeof out->db, "%s", tu.db);
    MX_TRY(mx_tune_db_writable(tu.db, d));
    mx_tune_signature(&tu.t, tu.sig, sizeof tu.sig);
    /* fresh random inputs of the seed, as mx_set_random_inputs draws them:
     * token ids must be whole numbers in [0, V), or every embedding reads
     * NaN and every candidate "matches" */
    MX_TRY(mx_compiled_fresh_inputs(c, o->seed * 0x9e3779b97f4a7c15ull + 1, d));
    MX_TRY(mx_compiled_bind(c, &tu.pb, d));
    int groups = tu.p->n_groups;
    tu.base = calloc((size_t)groups + 1, sizeof *tu.base);
    tu.class_of = calloc((size_t)groups + 1, sizeof *tu.class_of);
    tu.k = calloc((size_t)groups + 1, sizeof *tu.k);
    mx_status st = tu.base && tu.class_of && tu.k ? MX_OK : mx_fail(d, MX_ERR_NOMEM, "tune: out of memory");
    for (int g = 0; st == MX_OK && g < groups; g++)
        tu.base[g] = mx_tune_default_tiles(tu.p, &tu.t, g);
    if (st == MX_OK)
        st = find_kernels(&tu, d);
    if (st == MX_OK && tu.n_k == 0)
        st = mx_fail(d, MX_ERR_INVALID, "tune: nothing to tune: %s%s", o->kernels ? "no kernel matches " : "",
                     o->kernels ? o->kernels : "every group is a matmul, which cuBLASLt runs");
    if (st == MX_OK)
        st = search(&tu, d);
    if (st == MX_OK && mx_tune_judges_in_pass(&tu))
        st = mx_tune_judge_in_pass(&tu, d);
    if (st == MX_OK)
        st = mx_tune_check_forward(&tu, out, d);
    if (st == MX_OK)
        st = write_records(&tu, d);
    summarise(&tu, out);
    out->seconds = mx_progress_now() - tu.start;
    mx_tune_build_free(tu.be, tu.default_build);
    mx_buffers_free(tu.want);
    for (int k = 0; k < tu.n_k; k++)
        free(tu.k[k].queue), free(tu.k[k].tried);
    free(tu.k), free(tu.class_of), free(tu.base);
    return st;
}
