/* test_prune.c: Switch of Scans pruning through the public API
 * (mx_compile_options.prune_scans) on the host emulation.
 *
 * tests/ir/sos_mixer.mxir mixes three scan orders with softmax weights and
 * outputs M (permuted) itself. With logits that make one order light, a
 * compile with prune_scans above its weight leaves that order out: the
 * kernel reports it (mx_compiled_module), and M differs from the exact
 * reference by at most the pruned weight x the largest |term|, the bound
 * docs/scan.md states; it equals the reference with that term removed.
 * New weights regenerate the code: with every order above the threshold the
 * result is exact again. Misuse fails with a message. Inputs and params are
 * fresh random numbers set by the caller; the output is checked against the
 * reference interpreter run on the same numbers. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "support.h"

#define SEED 23u
#define EPS 0.05

typedef struct {
    mx_graph *g;
    mx_buffers *b; /* inputs and params; the reference fills the rest */
    int logits, out, terms[3];
} sos;

/* The softmax of the logits in b. */
static void weights_of(const sos *s, double w[3]) {
    const float *l = s->b->data[s->logits];
    double z = exp(l[0]) + exp(l[1]) + exp(l[2]);
    for (int k = 0; k < 3; k++)
        w[k] = exp(l[k]) / z;
}

/* Runs c on s's numbers; the worst |got - want| over %out, where want is
 * the reference's M less the terms in drop (weight times term). */
static double run_error(mx_compiled *c, sos *s, const bool drop[3], double *largest_term) {
    mx_diag d = {{0}};
    mx_status st = mx_compiled_set_buffers(c, s->b, &d);
    if (st == MX_OK)
        st = mx_run(c, &d);
    CHECK_MSG(st == MX_OK, "run: %s", d.msg);
    CHECK_MSG(mx_ref_run(s->g, s->b, &d) == MX_OK, "reference: %s", d.msg);
    const float *got = st == MX_OK ? mx_output(c, "out") : NULL;
    if (!got)
        return INFINITY;
    double w[3], worst = 0;
    weights_of(s, w);
    *largest_term = 0;
    const int64_t *dims = mx_graph_value_dims(s->g, s->out); /* [1, L, E]; the terms are [1, E, L] */
    int64_t L = dims[1], E = dims[2];
    for (int64_t l = 0; l < L; l++)
        for (int64_t e = 0; e < E; e++) {
            double want = s->b->data[s->out][l * E + e];
            for (int k = 0; k < 3; k++) {
                double term = s->b->data[s->terms[k]][e * L + l];
                *largest_term = fmax(*largest_term, fabs(term));
                want -= drop[k] ? w[k] * term : 0;
            }
            worst = fmax(worst, fabs(got[l * E + e] - want));
        }
    return worst;
}

int main(void) {
    sos s = {.g = support_load_graph(MIXC_SOURCE_DIR "/tests/ir/sos_mixer.mxir")};
    if (!s.g)
        return check_summary();
    s.b = mx_buffers_new(s.g);
    mx_buffers_fill_random(s.b, s.g, SEED);
    s.logits = mx_graph_value_find(s.g, "sos.logits");
    s.out = mx_graph_value_find(s.g, "out");
    static const char *const terms[3] = {"g.row", "g.snake", "g.diag"};
    for (int k = 0; k < 3; k++)
        s.terms[k] = mx_graph_value_find(s.g, terms[k]);
    /* snake weighs about 0.015: under EPS; row and diag stay */
    static const float light[3] = {2.0f, -2.0f, 0.5f}, even[3] = {0.3f, -0.2f, 0.1f};
    memcpy(s.b->data[s.logits], light, sizeof light);

    mx_target t;
    mx_diag d = {{0}};
    CHECK_MSG(mx_target_named("sm_90", MX_DEVICE_EMU, &t, &d) == MX_OK, "%s", d.msg);
    mx_compile_options o = {.prune_scans = EPS};
    mx_compiled *c = mx_compile(s.g, &t, &o, &d);
    CHECK_MSG(c != NULL, "compile: %s", d.msg);
    if (c) {
        double w[3], largest;
        weights_of(&s, w);
        /* The exact result less the snake term, within f32 rounding; and
         * the distance to the exact result within the stated bound. */
        bool snake[3] = {false, true, false}, none[3] = {false, false, false};
        double err = run_error(c, &s, snake, &largest);
        printf("pruned: |got - (M - w_snake T_snake)| = %.3g\n", err);
        CHECK_MSG(err <= 1e-5 * fmax(1, largest), "pruned result: %.3g from the reference less the pruned term", err);
        double exact_err = run_error(c, &s, none, &largest), bound = w[1] * largest;
        printf("pruned: |got - M| = %.4g <= bound %.4g (weight %.4g x largest |term| %.4g)\n", exact_err, bound, w[1],
               largest);
        CHECK_MSG(exact_err <= bound * (1 + 1e-4) && exact_err > 0.05 * bound,
                  "pruned: error %.4g against the bound %.4g", exact_err, bound);
        mx_module m;
        CHECK_MSG(mx_compiled_module(c, &m, &d) == MX_OK, "module: %s", d.msg);
        int pruned = 0;
        for (int k = 0; k < m.n_kernels; k++)
            if (m.kernels[k].n_pruned) {
                pruned += m.kernels[k].n_pruned;
                CHECK_MSG(fabs(m.kernels[k].pruned_weight - w[1]) < 1e-6, "pruned weight %.6g, want %.6g",
                          m.kernels[k].pruned_weight, w[1]);
            }
        CHECK_MSG(pruned == 1, "%d scans pruned, want 1", pruned);
        mx_module_free(&m);
        /* New weights, new code: every order above EPS, nothing left out. */
        memcpy(s.b->data[s.logits], even, sizeof even);
        err = run_error(c, &s, none, &largest);
        CHECK_MSG(err <= 1e-5 * fmax(1, largest), "even weights after pruning: %.3g from the reference", err);
    }
    mx_compiled_free(c);

    /* Misuse: a threshold outside [0, 1), pruning on the reference, running
     * before the weights are set. */
    o.prune_scans = 1.5;
    CHECK(mx_compile(s.g, &t, &o, &d) == NULL && strstr(d.msg, "prune_scans 1.5"));
    o.prune_scans = NAN;
    CHECK(mx_compile(s.g, &t, &o, &d) == NULL && strstr(d.msg, "prune_scans"));
    o.prune_scans = EPS;
    mx_target ref;
    mx_target_detect(MX_DEVICE_REF, &ref, &d);
    CHECK(mx_compile(s.g, &ref, &o, &d) == NULL && strstr(d.msg, "not to device ref"));
    c = mx_compile(s.g, &t, &o, &d);
    CHECK(c && mx_set_random_inputs(c, SEED, &d) == MX_OK && mx_run(c, &d) != MX_OK && strstr(d.msg, "not set"));
    mx_compiled_free(c);

    mx_buffers_free(s.b);
    mx_graph_free(s.g);
    return check_summary();
}
