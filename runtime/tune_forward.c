/* tune_forward.c: the tuner's last steps, in the forward pass (docs/tune.md).
 *
 * A kernel timed alone, launched again and again on warm buffers, is not
 * the kernel of a forward pass: there its inputs come from the group before
 * it, the matmuls' threads and the pool's share the cores, and a split over
 * the pool's threads pays to wake them. Winners each faster alone were
 * slower together on ViM2-T (403 against 332 ms). So the search's ranking
 * (alone, cheap) only nominates: each kernel's best few are timed again
 * inside whole forward passes, every kernel's k-th best in programs of
 * kernels that never run next to one another, the times of each kernel's
 * groups and of the groups right after them in the pass against the same
 * groups' in the default program, alternately; that decides the winner.
 * Last, the winners together must make the whole pass faster, else only
 * those whose gain is large enough for the whole pass to show are tried,
 * else the defaults stay: tuning never makes the model slower. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "progress.h"
#include "tune_search.h"

#define PASS_TOP 3            /* a kernel's best candidates (timed alone) judged in the pass */
#define PASS_PAIRS 5          /* passes timed per judging round, each program, alternately */
#define FORWARD_PASSES 7      /* whole forward passes timed each, default and tuned */
#define FORWARD_MARGIN 0.98   /* the tuned forward pass must beat the default's by this ratio */
#define FORWARD_WINS 6        /* ... and be the faster of the two in this many of its FORWARD_PASSES pairs */
#define VISIBLE_SHARE 0.01    /* a kernel's gain the whole pass can show: 1% of it */

double mx_tune_default_pass_ms(const mx_tune_record *r) {
    const mx_tune_candidate *win = &r->candidates[r->winner];
    return r->winner > 0 && win->pass_ratio > 0 ? win->pass_ms / win->pass_ratio : r->candidates[0].pass_ms;
}

bool mx_tune_judges_in_pass(const tuner *tu) {
    return !tu->o->model_only && tu->default_build && (tu->hooks->time || tu->be->time_pass);
}

/* Kernel ks's rank-th best candidate timed alone, among those faster alone
 * than the default (rec.candidates index); 0: none. */
static int ranked(const kernel_search *ks, int rank) {
    int order[MX_TUNE_MAX_CANDIDATES], n = 0;
    for (int i = 1; i < ks->rec.n_candidates; i++) {
        const mx_tune_candidate *c = &ks->rec.candidates[i];
        if (c->status != MX_CAND_OK || !(c->ratio < 1))
            continue;
        int j = n++;
        for (; j > 0 && ks->rec.candidates[order[j - 1]].ratio > c->ratio; j--)
            order[j] = order[j - 1];
        order[j] = i;
    }
    return rank < n ? order[rank] : 0;
}

/* Each group's time in one forward pass of b: injected, else measured. */
static mx_status pass_times(tuner *tu, mx_tune_build *b, double *ms, mx_diag *d) {
    const mx_tune_hooks *h = tu->hooks;
    if (!h->time)
        return tu->be->time_pass(b->state, ms, d);
    for (int g = 0; g < tu->p->n_groups; g++)
        ms[g] = h->in_pass ? h->in_pass(h->ctx, b->tiles, g) : tu->class_of[g] < 0 ? 0 : h->time(h->ctx, &b->tiles[g]);
    return MX_OK;
}

/* The program of tiles, opened and run once: whether its outputs match the
 * default's (b: NULL when it did not open). */
static mx_status open_checked(tuner *tu, const mx_tiles *tiles, mx_tune_build **b, bool *ok, mx_diag *d) {
    *b = mx_tune_build_new(tu->p, tiles);
    mx_buffers *got = mx_tune_output_buffers(tu);
    double *est = calloc((size_t)tu->p->n_groups + 1, sizeof *est);
    int *spills = calloc((size_t)tu->p->n_groups + 1, sizeof *spills);
    mx_status st = *b && got && est && spills ? MX_OK : mx_fail(d, MX_ERR_NOMEM, "tune: out of memory");
    mx_diag why;
    *ok = st == MX_OK && mx_tune_run_program(tu, tiles, *b, got, est, spills, &why) == MX_OK;
    if (*ok && tu->hooks->outputs)
        tu->hooks->outputs(tu->hooks->ctx, tu->p, tiles, got);
    *ok = *ok && mx_tune_outputs_match(tu->p, got, tu->want);
    mx_buffers_free(got);
    free(est), free(spills);
    return st;
}

/* The kernel a group's time in the pass is charged to: its own, else the
 * kernel of the group right before it (what a kernel leaves the next group,
 * the pool's threads asleep or its caches, is its cost too); -1: neither
 * is picked. Kernels picked together never run next to one another, so no
 * group is both. */
static int charged_to(const tuner *tu, const int *pick, int g) {
    int own = tu->class_of[g], before = g > 0 ? tu->class_of[g - 1] : -1;
    return own >= 0 && pick[own] > 0 ? own : before >= 0 && pick[before] > 0 ? before : -1;
}

/* One judging round: pick[c] (a rec.candidates index, 0: none) for every
 * kernel at once, PASS_PAIRS passes of that program and of the default's,
 * alternately (each going first every other pass); each picked candidate's
 * pass_ms and pass_ratio from the sums of the groups charged to it,
 * medians compared. */
static mx_status judge_round(tuner *tu, const int *pick, mx_diag *d) {
    int groups = tu->p->n_groups;
    mx_tiles *tiles = malloc(((size_t)groups + 1) * sizeof *tiles);
    double *ms = calloc(2 * (size_t)groups + 1, sizeof *ms);
    double *sums = calloc(2 * (size_t)tu->n_k * PASS_PAIRS + 1, sizeof *sums); /* [kernel][mine, theirs][pass] */
    if (!tiles || !ms || !sums) {
        free(tiles), free(ms), free(sums);
        return mx_fail(d, MX_ERR_NOMEM, "tune: out of memory");
    }
    memcpy(tiles, tu->base, (size_t)groups * sizeof *tiles);
    for (int g = 0; g < groups; g++)
        if (tu->class_of[g] >= 0 && pick[tu->class_of[g]] > 0)
            tiles[g] = tu->k[tu->class_of[g]].rec.candidates[pick[tu->class_of[g]]].tiles;
    mx_tune_build *b;
    bool ok;
    mx_status st = open_checked(tu, tiles, &b, &ok, d);
    if (st == MX_OK && !ok && mx_debug_level() >= 1) /* each matched alone: not expected, and then none is judged */
        fprintf(stderr, "mixc: tune: the best candidates together differ from the default: not judged\n");
    for (int i = 0; ok && st == MX_OK && i < PASS_PAIRS; i++) {
        mx_tune_build *first = i % 2 ? b : tu->default_build, *second = i % 2 ? tu->default_build : b;
        st = pass_times(tu, first, i % 2 ? ms : ms + groups, d);
        if (st == MX_OK)
            st = pass_times(tu, second, i % 2 ? ms + groups : ms, d);
        for (int g = 0; st == MX_OK && g < groups; g++) {
            int c = charged_to(tu, pick, g);
            if (c >= 0)
                sums[(2 * c) * PASS_PAIRS + i] += ms[g], sums[(2 * c + 1) * PASS_PAIRS + i] += ms[groups + g];
        }
    }
    for (int c = 0; ok && st == MX_OK && c < tu->n_k; c++) {
        kernel_search *ks = &tu->k[c];
        if (pick[c] <= 0)
            continue;
        double mine = mx_tune_median(&sums[2 * c * PASS_PAIRS], PASS_PAIRS);
        double theirs = mx_tune_median(&sums[(2 * c + 1) * PASS_PAIRS], PASS_PAIRS);
        mx_tune_candidate *cand = &ks->rec.candidates[pick[c]], *def = &ks->rec.candidates[0];
        cand->pass_ms = mine;
        cand->pass_ratio = theirs > 0 ? mine / theirs : 1;
        def->pass_ms = theirs;
        def->pass_ratio = 1;
    }
    mx_tune_build_free(tu->be, b);
    free(tiles), free(ms), free(sums);
    return st;
}

/* adj[c * n_k + e]: whether a group of kernel c runs right before or after one of kernel e. */
static bool *adjacency(const tuner *tu) {
    bool *adj = calloc((size_t)tu->n_k * (size_t)tu->n_k + 1, sizeof *adj);
    for (int g = 1; adj && g < tu->p->n_groups; g++) {
        int a = tu->class_of[g - 1], b = tu->class_of[g];
        if (a >= 0 && b >= 0 && a != b)
            adj[a * tu->n_k + b] = adj[b * tu->n_k + a] = true;
    }
    return adj;
}

/* Per rank, every kernel's candidate of that rank, in waves: a kernel goes
 * to the first wave holding none of its neighbours (charged_to), and each
 * wave is one judging round. */
mx_status mx_tune_judge_in_pass(tuner *tu, mx_diag *d) {
    int *ranked_at = calloc(3 * (size_t)tu->n_k + 1, sizeof *ranked_at), *wave = ranked_at + tu->n_k,
        *pick = wave + tu->n_k;
    bool *adj = adjacency(tu);
    if (!ranked_at || !adj) {
        free(ranked_at), free(adj);
        return mx_fail(d, MX_ERR_NOMEM, "tune: out of memory");
    }
    mx_status st = MX_OK;
    for (int rank = 0; st == MX_OK && rank < PASS_TOP; rank++) {
        int waves = 0;
        for (int c = 0; c < tu->n_k; c++) {
            ranked_at[c] = tu->k[c].done ? ranked(&tu->k[c], rank) : 0;
            wave[c] = -1;
            for (int w = 0; ranked_at[c] > 0 && wave[c] < 0; w++) {
                bool free_here = true;
                for (int e = 0; e < c && free_here; e++)
                    free_here = !(wave[e] == w && adj[c * tu->n_k + e]);
                wave[c] = free_here ? w : -1;
            }
            waves = wave[c] + 1 > waves ? wave[c] + 1 : waves;
        }
        for (int w = 0; st == MX_OK && w < waves; w++) {
            int n = 0;
            for (int c = 0; c < tu->n_k; c++)
                n += (pick[c] = wave[c] == w ? ranked_at[c] : 0) > 0;
            if (mx_debug_level() >= 1)
                fprintf(stderr, "mixc: tune: judging in the pass: %d kernels' candidate %d of %d, wave %d of %d\n",
                        n, rank + 1, PASS_TOP, w + 1, waves);
            st = judge_round(tu, pick, d);
        }
    }
    for (int c = 0; st == MX_OK && c < tu->n_k; c++) { /* the pass decides, by the margin */
        mx_tune_record *r = &tu->k[c].rec;
        r->winner = 0;
        double best = WIN_MARGIN;
        for (int i = 1; i < r->n_candidates; i++)
            if (r->candidates[i].pass_ratio > 0 && r->candidates[i].pass_ratio < best)
                best = r->candidates[i].pass_ratio, r->winner = i;
    }
    free(ranked_at), free(adj);
    return st;
}

/* ---- the winners together ------------------------------------------------------------------- */

/* One forward pass of b (ms): the injected forward time, else the sum of
 * the injected kernel times over the tuned groups, else measured (the
 * backend's timer, or the wall clock around forward and sync). */
static mx_status forward_ms(tuner *tu, mx_tune_build *b, double *ms, mx_diag *d) {
    if (tu->hooks->forward) {
        *ms = tu->hooks->forward(tu->hooks->ctx, b->tiles);
        return MX_OK;
    }
    if (tu->hooks->time) {
        *ms = 0;
        for (int g = 0; g < tu->p->n_groups; g++)
            if (tu->class_of[g] >= 0)
                *ms += tu->hooks->time(tu->hooks->ctx, &b->tiles[g]);
        return MX_OK;
    }
    if (tu->be->time)
        return tu->be->time(b->state, 1, ms, d);
    double t0 = mx_progress_now();
    MX_TRY(tu->be->forward(b->state, d));
    MX_TRY(tu->be->sync(b->state, d));
    *ms = 1e3 * (mx_progress_now() - t0);
    return MX_OK;
}

/* The whole pass with the winners of the kernels in `use` against the
 * defaults: outputs compared, then a warm-up and FORWARD_PASSES each,
 * alternately (each going first every other pass); *ok false when the
 * outputs differ; *wins: the pairs the tuned pass was the faster of. */
static mx_status time_set(tuner *tu, const bool *use, bool *ok, double *def_ms, double *tuned_ms, int *wins,
                          mx_diag *d) {
    mx_tiles *tiles = malloc(((size_t)tu->p->n_groups + 1) * sizeof *tiles);
    if (!tiles)
        return mx_fail(d, MX_ERR_NOMEM, "tune: out of memory");
    memcpy(tiles, tu->base, (size_t)tu->p->n_groups * sizeof *tiles);
    for (int g = 0; g < tu->p->n_groups; g++) {
        int c = tu->class_of[g];
        if (c >= 0 && use[c])
            tiles[g] = tu->k[c].rec.candidates[tu->k[c].rec.winner].tiles;
    }
    mx_tune_build *b;
    mx_status st = open_checked(tu, tiles, &b, ok, d);
    double def[FORWARD_PASSES], tuned[FORWARD_PASSES], warm;
    if (*ok && st == MX_OK)
        st = forward_ms(tu, tu->default_build, &warm, d);
    if (*ok && st == MX_OK)
        st = forward_ms(tu, b, &warm, d);
    for (int i = 0; *ok && st == MX_OK && i < FORWARD_PASSES; i++) {
        st = forward_ms(tu, i % 2 ? b : tu->default_build, i % 2 ? &tuned[i] : &def[i], d);
        if (st == MX_OK)
            st = forward_ms(tu, i % 2 ? tu->default_build : b, i % 2 ? &def[i] : &tuned[i], d);
    }
    *wins = 0;
    for (int i = 0; *ok && st == MX_OK && i < FORWARD_PASSES; i++)
        *wins += tuned[i] < def[i];
    if (*ok && st == MX_OK) {
        *def_ms = mx_tune_median(def, FORWARD_PASSES);
        *tuned_ms = mx_tune_median(tuned, FORWARD_PASSES);
    }
    mx_tune_build_free(tu->be, b);
    free(tiles);
    return st;
}

/* What kernel ks's winner saves per forward pass (ms), as judged: against
 * the default of its own judging round where it was timed in the pass,
 * else alone. */
static double saving(const kernel_search *ks) {
    const mx_tune_record *r = &ks->rec;
    const mx_tune_candidate *def = &r->candidates[0], *win = &r->candidates[r->winner];
    return win->pass_ratio > 0 ? mx_tune_default_pass_ms(r) - win->pass_ms : (def->ms - win->ms) * ks->n_groups;
}

/* The winners together on the whole forward pass against the defaults.
 * Kernels each faster can still be slower together (the pool's threads,
 * caches), and a gain of a fraction of a percent is under the noise of the
 * whole pass, so: every winner; if that is not FORWARD_MARGIN faster by
 * the medians and the faster in FORWARD_WINS of the pairs (each pair timed
 * back to back, so that a load that changes by the minute moves both: on
 * a loaded machine the medians alone kept winners that were slower), only
 * the winners whose gain is VISIBLE_SHARE of the pass or more; if that is
 * not either, every record keeps its default. Every record stores the
 * ratio of the last set timed as `forward`. Modelled tunes skip this. */
mx_status mx_tune_check_forward(tuner *tu, mx_tune_summary *out, mx_diag *d) {
    bool *use = calloc((size_t)tu->n_k + 1, sizeof *use);
    if (!use)
        return mx_fail(d, MX_ERR_NOMEM, "tune: out of memory");
    int n = 0;
    for (int c = 0; c < tu->n_k; c++)
        n += use[c] = tu->k[c].rec.winner > 0;
    if (n == 0 || tu->o->model_only || !tu->default_build) {
        free(use);
        return MX_OK;
    }
    mx_status st = MX_OK;
    bool ok = false;
    double ratio = INFINITY;
    for (int attempt = 0; attempt < 2; attempt++) {
        double def = 0, tuned = 0;
        int wins = 0;
        st = time_set(tu, use, &ok, &def, &tuned, &wins, d);
        if (st != MX_OK)
            break;
        ratio = ok && def > 0 ? tuned / def : INFINITY;
        out->forward_default_ms = ok ? def : 0;
        out->forward_tuned_ms = ok ? tuned : 0;
        out->forward_kept = ok && ratio <= FORWARD_MARGIN && wins >= FORWARD_WINS;
        out->forward_wins = ok ? wins : 0;
        out->forward_pairs = ok ? FORWARD_PASSES : 0;
        if (mx_debug_level() >= 1)
            fprintf(stderr,
                    "mixc: tune: whole forward pass with %d winner%s %s: default %.3f ms, tuned %.3f ms, the faster "
                    "in %d of %d pairs%s\n",
                    n, n > 1 ? "s" : "", ok ? "timed" : "differs", def, tuned, wins, FORWARD_PASSES,
                    out->forward_kept ? ": kept" : "");
        if (out->forward_kept || !ok)
            break;
        int visible = 0; /* only the gains the whole pass can show */
        for (int c = 0; c < tu->n_k; c++)
            visible += use[c] = use[c] && saving(&tu->k[c]) >= VISIBLE_SHARE * def;
        if (visible == 0 || visible == n)
            break;
        n = visible;
    }
    for (int c = 0; st == MX_OK && c < tu->n_k; c++) {
        tu->k[c].rec.forward = ok ? ratio : 0;
        if (!out->forward_kept || !use[c])
            tu->k[c].rec.winner = 0;
    }
    free(use);
    return st;
}
