/* test_scan.c: selective_scan on the reference interpreter, checked in depth
 * against an independent implementation written here from docs/ops.md ("The
 * selective scan") in plain double loops. Nothing of the library's reference
 * code is called by the oracle; the library is only driven through the graph
 * builder, mx_graph_infer_node and mx_ref_run.
 *
 * Tolerance: 1e-5 relative (absolute below magnitude 1). Both sides keep the
 * state in double and read the same f32 inputs, so they differ only by the
 * final f32 rounding of y (6e-8), the f32 rounding of the per-step operands a
 * reference may take in f32 (exp(d*A), d*B*u: ~1e-7 each, which compounds
 * over at most ~100 steps of decay to a few 1e-6) and libm differences. A
 * wrong index, group, direction or term is off by far more than that. */
#include <dirent.h>
#include <stdbool.h>
#include <stdlib.h>

#include "check.h"
#include "ir.h"
#include "mixc.h"

#define TOL 1e-5
#define TOL_BF16 1e-2 /* bf16 keeps 8 significant bits: 2^-9 = 0.2% per rounding */

/* ---- one scan problem ----------------------------------------------------- */

typedef struct {
    int64_t Bt, Ch, L, N, G;
    int reverse, softplus;
    bool D, z, bias, h0; /* which optional inputs are present */
    bool hN;             /* ask for the final state as a second result */
    mx_dtype dtype;      /* of u, delta, B, C, z (and so of y) */
    mx_dtype a_dtype;    /* of A (the op allows any dtype) */
} scan_cfg;

/* A plain configuration: forward, no options, f32. */
static scan_cfg cfg_basic(int64_t Bt, int64_t Ch, int64_t L, int64_t N, int64_t G) {
    scan_cfg c = {Bt, Ch, L, N, G, 0, 0, false, false, false, false, false, MX_F32, MX_F32};
    return c;
}

/* Host data of one problem; absent inputs are NULL. Layouts as docs/ops.md:
 * u, delta, z [Bt,Ch,L]; A [Ch,N]; B, C [Bt,G,N,L]; D, bias [Ch]; h0 [Bt,Ch,N]. */
typedef struct {
    float *u, *delta, *A, *B, *C, *D, *z, *bias, *h0;
} scan_io;

static int64_t n_seq(const scan_cfg *c) { return c->Bt * c->Ch * c->L; }
static int64_t n_bc(const scan_cfg *c) { return c->Bt * c->G * c->N * c->L; }
static int64_t n_state(const scan_cfg *c) { return c->Bt * c->Ch * c->N; }

static float *xmalloc_f(int64_t n) {
    float *p = malloc((size_t)(n > 0 ? n : 1) * sizeof *p);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    return p;
}

static float *random_array(int64_t n, float lo, float hi) {
    float *p = xmalloc_f(n);
    check_fill(p, n, lo, hi);
    return p;
}

static float *copy_array(const float *src, int64_t n) {
    if (!src)
        return NULL;
    float *p = xmalloc_f(n);
    memcpy(p, src, (size_t)n * sizeof *p);
    return p;
}

/* Round to bf16, nearest-even (inputs are finite). */
static float round_bf16(float x) {
    uint32_t bits;
    memcpy(&bits, &x, sizeof bits);
    bits += 0x7fffu + ((bits >> 16) & 1u);
    bits &= 0xffff0000u;
    memcpy(&x, &bits, sizeof x);
    return x;
}

static void round_array_bf16(float *p, int64_t n) {
    for (int64_t i = 0; p && i < n; i++)
        p[i] = round_bf16(p[i]);
}

/* Random data that keeps the scan stable: A = -exp(uniform) in [-2.7, -0.37],
 * small positive steps (after softplus when it is on), never all zeros. */
static scan_io io_random(const scan_cfg *c) {
    scan_io io = {0};
    io.u = random_array(n_seq(c), -1, 1);
    io.delta = c->softplus ? random_array(n_seq(c), -3.0f, -1.0f) /* softplus: 0.05..0.31 */
                           : random_array(n_seq(c), 0.01f, 0.2f);
    io.A = xmalloc_f(c->Ch * c->N);
    for (int64_t i = 0; i < c->Ch * c->N; i++)
        io.A[i] = -expf(check_uniform(-1, 1));
    io.B = random_array(n_bc(c), -1, 1);
    io.C = random_array(n_bc(c), -1, 1);
    if (c->D)
        io.D = random_array(c->Ch, -1, 1);
    if (c->z)
        io.z = random_array(n_seq(c), -2, 2);
    if (c->bias) /* without softplus a negative step would grow the state */
        io.bias = c->softplus ? random_array(c->Ch, -1, 1) : random_array(c->Ch, 0, 0.1f);
    if (c->h0)
        io.h0 = random_array(n_state(c), -1, 1);
    if (c->dtype == MX_BF16) {
        round_array_bf16(io.u, n_seq(c));
        round_array_bf16(io.delta, n_seq(c));
        round_array_bf16(io.B, n_bc(c));
        round_array_bf16(io.C, n_bc(c));
        round_array_bf16(io.z, n_seq(c));
    }
    if (c->a_dtype == MX_BF16)
        round_array_bf16(io.A, c->Ch * c->N);
    return io;
}

static void io_free(scan_io *io) {
    free(io->u);
    free(io->delta);
    free(io->A);
    free(io->B);
    free(io->C);
    free(io->D);
    free(io->z);
    free(io->bias);
    free(io->h0);
    memset(io, 0, sizeof *io);
}

/* Copy time steps [l0, l1) of the per-step arrays; the per-channel ones are
 * copied whole. c_out gets the configuration of the piece. */
static scan_io io_slice(const scan_cfg *c, const scan_io *io, int64_t l0, int64_t l1,
                        scan_cfg *c_out) {
    *c_out = *c;
    c_out->L = l1 - l0;
    int64_t Lp = l1 - l0;
    scan_io s = {0};
    s.u = xmalloc_f(n_seq(c_out));
    s.delta = xmalloc_f(n_seq(c_out));
    s.z = io->z ? xmalloc_f(n_seq(c_out)) : NULL;
    for (int64_t r = 0; r < c->Bt * c->Ch; r++) {
        memcpy(s.u + r * Lp, io->u + r * c->L + l0, (size_t)Lp * sizeof(float));
        memcpy(s.delta + r * Lp, io->delta + r * c->L + l0, (size_t)Lp * sizeof(float));
        if (s.z)
            memcpy(s.z + r * Lp, io->z + r * c->L + l0, (size_t)Lp * sizeof(float));
    }
    s.B = xmalloc_f(n_bc(c_out));
    s.C = xmalloc_f(n_bc(c_out));
    for (int64_t r = 0; r < c->Bt * c->G * c->N; r++) {
        memcpy(s.B + r * Lp, io->B + r * c->L + l0, (size_t)Lp * sizeof(float));
        memcpy(s.C + r * Lp, io->C + r * c->L + l0, (size_t)Lp * sizeof(float));
    }
    s.A = copy_array(io->A, c->Ch * c->N);
    s.D = copy_array(io->D, c->Ch);
    s.bias = copy_array(io->bias, c->Ch);
    s.h0 = copy_array(io->h0, n_state(c));
    return s;
}

/* Exchange time steps t1 and t2 of every per-step input (u, delta, B, C, z). */
static void io_swap_steps(const scan_cfg *c, scan_io *io, int64_t t1, int64_t t2) {
    float *seq[] = {io->u, io->delta, io->z};
    for (int k = 0; k < 3; k++)
        for (int64_t r = 0; seq[k] && r < c->Bt * c->Ch; r++) {
            float t = seq[k][r * c->L + t1];
            seq[k][r * c->L + t1] = seq[k][r * c->L + t2];
            seq[k][r * c->L + t2] = t;
        }
    float *bc[] = {io->B, io->C};
    for (int k = 0; k < 2; k++)
        for (int64_t r = 0; r < c->Bt * c->G * c->N; r++) {
            float t = bc[k][r * c->L + t1];
            bc[k][r * c->L + t1] = bc[k][r * c->L + t2];
            bc[k][r * c->L + t2] = t;
        }
}

/* ---- the independent oracle ------------------------------------------------ */

/* docs/ops.md, line by line, in double. y: [Bt,Ch,L]; hN: [Bt,Ch,N] or NULL. */
static void oracle_scan(const scan_cfg *c, const scan_io *io, double *y, double *hN) {
    const int64_t Bt = c->Bt, Ch = c->Ch, L = c->L, N = c->N, G = c->G;
    double *h = malloc((size_t)N * sizeof *h);
    for (int64_t b = 0; b < Bt; b++)
        for (int64_t ch = 0; ch < Ch; ch++) {
            const int64_t g = ch / (Ch / G);
            for (int64_t n = 0; n < N; n++)
                h[n] = io->h0 ? io->h0[(b * Ch + ch) * N + n] : 0.0;
            for (int64_t step = 0; step < L; step++) {
                const int64_t l = c->reverse ? L - 1 - step : step;
                const int64_t at = (b * Ch + ch) * L + l;
                double d = io->delta[at];
                if (io->bias)
                    d += io->bias[ch];
                if (c->softplus)
                    d = d > 20 ? d : log1p(exp(d));
                const double u = io->u[at];
                double acc = 0;
                for (int64_t n = 0; n < N; n++) {
                    const int64_t bc = ((b * G + g) * N + n) * L + l;
                    h[n] = exp(d * io->A[ch * N + n]) * h[n] + d * io->B[bc] * u;
                    acc += h[n] * io->C[bc];
                }
                if (io->D)
                    acc += io->D[ch] * u;
                if (io->z) {
                    const double z = io->z[at];
                    acc *= z / (1 + exp(-z));
                }
                y[at] = acc;
            }
            for (int64_t n = 0; hN && n < N; n++)
                hN[(b * Ch + ch) * N + n] = h[n];
        }
    free(h);
}

/* ---- the library ------------------------------------------------------------ */

static mx_type make_type(mx_dtype dt, int rank, const int64_t *dims) {
    mx_type t = {dt, rank, {0}};
    for (int i = 0; i < rank; i++)
        t.dim[i] = dims[i];
    return t;
}

/* A source's value id. */
static int add_value(mx_graph *g, mx_op op, const char *name, mx_type t) {
    return mx_node_output(g, mx_graph_add_source(g, op, name, t), 0);
}

/* Put a copy of host data into the buffer of value v. */
static void put(mx_buffers *b, int v, const float *src) {
    if (!b->data[v])
        b->data[v] = xmalloc_f(b->numel[v]);
    memcpy(b->data[v], src, (size_t)b->numel[v] * sizeof(float));
}

/* Builds the one-node graph of c and runs it on the reference interpreter.
 * y ([Bt,Ch,L]) and hN ([Bt,Ch,N], when c->hN) receive copies of the results.
 * Returns false (after recording a failed check) when the library refuses. */
static bool lib_scan(const scan_cfg *c, const scan_io *io, float *y, float *hN) {
    mx_graph *g = mx_graph_new("scan");
    const int64_t seq[3] = {c->Bt, c->Ch, c->L};
    const int64_t bc[4] = {c->Bt, c->G, c->N, c->L};
    const int64_t a[2] = {c->Ch, c->N};
    const int64_t ch[1] = {c->Ch};
    const int64_t st[3] = {c->Bt, c->Ch, c->N};
    const float *src[MX_SCAN_SLOTS] = {0};
    int in[MX_SCAN_SLOTS];
    for (int i = 0; i < MX_SCAN_SLOTS; i++)
        in[i] = MX_NONE;

    in[MX_SCAN_U] = add_value(g, MX_OP_INPUT, "u", make_type(c->dtype, 3, seq));
    in[MX_SCAN_DELTA] = add_value(g, MX_OP_INPUT, "delta", make_type(c->dtype, 3, seq));
    in[MX_SCAN_A] = add_value(g, MX_OP_PARAM, "A", make_type(c->a_dtype, 2, a));
    in[MX_SCAN_B] = add_value(g, MX_OP_INPUT, "B", make_type(c->dtype, 4, bc));
    in[MX_SCAN_C] = add_value(g, MX_OP_INPUT, "C", make_type(c->dtype, 4, bc));
    src[MX_SCAN_U] = io->u;
    src[MX_SCAN_DELTA] = io->delta;
    src[MX_SCAN_A] = io->A;
    src[MX_SCAN_B] = io->B;
    src[MX_SCAN_C] = io->C;
    if (c->D) {
        in[MX_SCAN_D] = add_value(g, MX_OP_PARAM, "D", make_type(MX_F32, 1, ch));
        src[MX_SCAN_D] = io->D;
    }
    if (c->z) {
        in[MX_SCAN_Z] = add_value(g, MX_OP_INPUT, "z", make_type(c->dtype, 3, seq));
        src[MX_SCAN_Z] = io->z;
    }
    if (c->bias) {
        in[MX_SCAN_DELTA_BIAS] = add_value(g, MX_OP_PARAM, "delta_bias", make_type(MX_F32, 1, ch));
        src[MX_SCAN_DELTA_BIAS] = io->bias;
    }
    if (c->h0) {
        in[MX_SCAN_H0] = add_value(g, MX_OP_INPUT, "h0", make_type(MX_F32, 3, st));
        src[MX_SCAN_H0] = io->h0;
    }
    /* Trailing absent inputs are left out, as the text parser does. */
    int n_in = MX_SCAN_SLOTS;
    while (in[n_in - 1] == MX_NONE)
        n_in--;
    int node = mx_graph_add_node(g, MX_OP_SELECTIVE_SCAN, in, n_in, c->hN ? 2 : 1);
    mx_node_set_int(g, node, MX_A_REVERSE, c->reverse);
    mx_node_set_int(g, node, MX_A_SOFTPLUS, c->softplus);

    mx_diag d = {{0}};
    mx_status status = mx_graph_infer_node(g, node, &d);
    CHECK_MSG(status == MX_OK, "%s", d.msg);
    bool ok = status == MX_OK;
    if (ok) {
        /* y takes the dtype of u; hN is always f32. */
        mx_type want_y = make_type(c->dtype, 3, seq), want_h = make_type(MX_F32, 3, st);
        CHECK(mx_type_equal(mx_value_type(g, mx_node_output(g, node, 0)), &want_y));
        if (c->hN)
            CHECK(mx_type_equal(mx_value_type(g, mx_node_output(g, node, 1)), &want_h));
        for (int i = 0; i < (c->hN ? 2 : 1); i++)
            mx_graph_add_output(g, mx_node_output(g, node, i));

        mx_buffers *b = mx_buffers_new(g);
        for (int i = 0; i < MX_SCAN_SLOTS; i++)
            if (in[i] != MX_NONE)
                put(b, in[i], src[i]);
        status = mx_ref_run(g, b, &d);
        CHECK_MSG(status == MX_OK, "%s", d.msg);
        ok = status == MX_OK;
        if (ok) {
            memcpy(y, b->data[mx_node_output(g, node, 0)], (size_t)n_seq(c) * sizeof *y);
            if (c->hN)
                memcpy(hN, b->data[mx_node_output(g, node, 1)], (size_t)n_state(c) * sizeof *hN);
        }
        mx_buffers_free(b);
    }
    mx_graph_free(g);
    return ok;
}

/* ---- comparing the two -------------------------------------------------------- */

/* Results of both sides for one problem. */
typedef struct {
    float *y, *hN;       /* library */
    double *wy, *whN;    /* oracle */
    bool ok;
} scan_result;

static scan_result run_both(const scan_cfg *c, const scan_io *io) {
    scan_result r;
    r.y = xmalloc_f(n_seq(c));
    r.hN = xmalloc_f(n_state(c));
    r.wy = malloc((size_t)n_seq(c) * sizeof *r.wy);
    r.whN = malloc((size_t)(n_state(c) > 0 ? n_state(c) : 1) * sizeof *r.whN);
    oracle_scan(c, io, r.wy, r.whN);
    r.ok = lib_scan(c, io, r.y, c->hN ? r.hN : NULL);
    return r;
}

static void result_free(scan_result *r) {
    free(r->y);
    free(r->hN);
    free(r->wy);
    free(r->whN);
}

/* Runs c on random data and compares y (and hN) with the oracle. */
static void check_case(const char *what, const scan_cfg *c, const scan_io *io) {
    scan_result r = run_both(c, io);
    if (r.ok) {
        double tol = c->dtype == MX_BF16 ? TOL_BF16 : TOL;
        char label[200];
        snprintf(label, sizeof label, "%s: y", what);
        CHECK_CLOSE(r.y, r.wy, n_seq(c), tol, label);
        if (c->hN) {
            /* hN is f32 and the state is f64 whatever the storage: tight even for bf16. */
            snprintf(label, sizeof label, "%s: hN", what);
            CHECK_CLOSE(r.hN, r.whN, n_state(c), TOL, label);
        }
    }
    result_free(&r);
}

static void check_random(const char *what, const scan_cfg *c) {
    scan_io io = io_random(c);
    check_case(what, c, &io);
    io_free(&io);
}

/* ---- the tests ----------------------------------------------------------------- */

/* Worked out by hand (Bt = Ch = N = G = 1, L = 3, no softplus):
 *   u = [1, 2, 3], delta = [1, 2, 1], A = -ln 2, B = [1, 0.5, 2], C = [1, 2, 0.5], D = 0.5
 * so the decay exp(d*A) is 1/2 at d = 1 and 1/4 at d = 2, and d*B*u = 1, 2, 6.
 * Forward:
 *   l=0: h = 0.5*0    + 1 = 1      y = 1*1      + 0.5*1 = 1.5
 *   l=1: h = 0.25*1   + 2 = 2.25   y = 2.25*2   + 0.5*2 = 5.5
 *   l=2: h = 0.5*2.25 + 6 = 7.125  y = 7.125*0.5 + 0.5*3 = 5.0625     hN = 7.125
 * Reverse (l = 2, 1, 0):
 *   l=2: h = 0.5*0    + 6 = 6      y = 6*0.5    + 1.5 = 4.5
 *   l=1: h = 0.25*6   + 2 = 3.5    y = 3.5*2    + 1   = 8
 *   l=0: h = 0.5*3.5  + 1 = 2.75   y = 2.75*1   + 0.5 = 3.25         hN = 2.75
 * With the gate z = [0, 1, -1] on the forward pass: silu(0) = 0, silu(1) =
 * 1/(1+e^-1) = 0.7310585786, silu(-1) = -0.2689414214, so
 *   y = [0, 5.5*0.7310585786, 5.0625*-0.2689414214] = [0, 4.0208221823, -1.3615159458]. */
static void test_hand_computed(void) {
    float u[] = {1, 2, 3}, delta[] = {1, 2, 1}, A[] = {-0.69314718055994531f};
    float B[] = {1, 0.5f, 2}, C[] = {1, 2, 0.5f}, D[] = {0.5f}, z[] = {0, 1, -1};
    scan_io io = {u, delta, A, B, C, D, NULL, NULL, NULL};
    scan_cfg c = cfg_basic(1, 1, 3, 1, 1);
    c.D = c.hN = true;
    float y[3], hN[1];

    if (lib_scan(&c, &io, y, hN)) {
        const double want[] = {1.5, 5.5, 5.0625}, want_h[] = {7.125};
        CHECK_CLOSE(y, want, 3, TOL, "hand forward: y");
        CHECK_CLOSE(hN, want_h, 1, TOL, "hand forward: hN");
    }
    c.reverse = 1;
    if (lib_scan(&c, &io, y, hN)) {
        const double want[] = {3.25, 8, 4.5}, want_h[] = {2.75};
        CHECK_CLOSE(y, want, 3, TOL, "hand reverse: y");
        CHECK_CLOSE(hN, want_h, 1, TOL, "hand reverse: hN");
    }
    c.reverse = 0;
    c.z = true;
    io.z = z;
    if (lib_scan(&c, &io, y, hN)) {
        const double want[] = {0, 4.0208221823, -1.3615159458};
        CHECK_CLOSE(y, want, 3, TOL, "hand gated: y");
    }
    /* The oracle must agree with the hand too, or the other tests mean little. */
    double wy[3], wh[1];
    c.z = false;
    io.z = NULL;
    oracle_scan(&c, &io, wy, wh);
    CHECK(fabs(wy[0] - 1.5) < 1e-6 && fabs(wy[1] - 5.5) < 1e-6 && fabs(wy[2] - 5.0625) < 1e-6);
    CHECK(fabs(wh[0] - 7.125) < 1e-6);
}

static void test_directions(void) {
    for (int rev = 0; rev <= 1; rev++) {
        scan_cfg c = cfg_basic(2, 4, 16, 4, 1);
        c.reverse = rev;
        c.hN = true;
        check_random(rev ? "reverse" : "forward", &c);
        c.D = c.z = c.bias = true;
        c.softplus = 1;
        check_random(rev ? "reverse, all options" : "forward, all options", &c);
    }
}

static void test_groups(void) {
    const int64_t groups[] = {1, 2, 4, 8};
    for (int i = 0; i < 4; i++)
        for (int rev = 0; rev <= 1; rev++) {
            scan_cfg c = cfg_basic(2, 8, 12, 4, groups[i]);
            c.reverse = rev;
            c.D = true;
            char what[64];
            snprintf(what, sizeof what, "G=%lld Ch=8 reverse=%d", (long long)groups[i], rev);
            check_random(what, &c);
        }
}

/* A scan shares B and C across the channels of one group only: making group 1's
 * B different must move exactly the channels of group 1. */
static void test_group_isolation(void) {
    scan_cfg c = cfg_basic(1, 8, 9, 3, 4); /* 2 channels per group */
    scan_io io = io_random(&c);
    scan_result before = run_both(&c, &io);
    for (int64_t n = 0; n < c.N; n++)
        for (int64_t l = 0; l < c.L; l++)
            io.B[((0 * c.G + 1) * c.N + n) * c.L + l] += 0.5f;
    scan_result after = run_both(&c, &io);
    if (before.ok && after.ok)
        for (int64_t ch = 0; ch < c.Ch; ch++) {
            bool moved = false;
            for (int64_t l = 0; l < c.L; l++)
                moved |= before.y[ch * c.L + l] != after.y[ch * c.L + l];
            CHECK_MSG(moved == (ch / 2 == 1), "channel %lld moved=%d", (long long)ch, moved);
        }
    if (after.ok)
        CHECK_CLOSE(after.y, after.wy, n_seq(&c), TOL, "group isolation: y");
    result_free(&before);
    result_free(&after);
    io_free(&io);
}

static void test_lengths(void) {
    const int64_t lengths[] = {1, 2, 7, 13, 97};
    for (int i = 0; i < 5; i++)
        for (int rev = 0; rev <= 1; rev++) {
            scan_cfg c = cfg_basic(2, 6, lengths[i], 5, 3);
            c.reverse = rev;
            c.D = c.z = c.hN = true;
            char what[64];
            snprintf(what, sizeof what, "L=%lld reverse=%d", (long long)lengths[i], rev);
            check_random(what, &c);
        }
}

static void test_state_sizes(void) {
    const int64_t sizes[] = {1, 2, 16};
    for (int i = 0; i < 3; i++) {
        scan_cfg c = cfg_basic(2, 4, 11, sizes[i], 2);
        c.D = c.z = c.bias = c.hN = true;
        c.softplus = 1;
        char what[64];
        snprintf(what, sizeof what, "N=%lld", (long long)sizes[i]);
        check_random(what, &c);
    }
}

static void test_batches(void) {
    const int64_t batches[] = {1, 3, 5};
    for (int i = 0; i < 3; i++) {
        scan_cfg c = cfg_basic(batches[i], 4, 10, 4, 2);
        c.D = c.hN = true;
        char what[64];
        snprintf(what, sizeof what, "Bt=%lld", (long long)batches[i]);
        check_random(what, &c);
    }
    /* Batches are independent: batch 1 of a Bt=2 problem equals the Bt=1
     * problem made of its data alone. */
    scan_cfg c2 = cfg_basic(2, 4, 10, 4, 2);
    c2.z = c2.hN = true;
    scan_io io2 = io_random(&c2);
    scan_cfg c1 = c2;
    c1.Bt = 1;
    scan_io io1 = {io2.u + n_seq(&c1), io2.delta + n_seq(&c1), io2.A, io2.B + n_bc(&c1),
                   io2.C + n_bc(&c1), NULL, io2.z + n_seq(&c1), NULL, NULL};
    scan_result r2 = run_both(&c2, &io2), r1 = run_both(&c1, &io1);
    if (r1.ok && r2.ok) {
        CHECK(memcmp(r1.y, r2.y + n_seq(&c1), (size_t)n_seq(&c1) * sizeof(float)) == 0);
        CHECK(memcmp(r1.hN, r2.hN + n_state(&c1), (size_t)n_state(&c1) * sizeof(float)) == 0);
    }
    result_free(&r1);
    result_free(&r2);
    io_free(&io2);
}

/* All four combinations of the D skip and the z gate, with and without bias. */
static void test_optional_terms(void) {
    for (int mask = 0; mask < 8; mask++) {
        scan_cfg c = cfg_basic(2, 4, 9, 3, 2);
        c.D = mask & 1;
        c.z = mask & 2;
        c.bias = mask & 4;
        c.softplus = 1;
        char what[64];
        snprintf(what, sizeof what, "D=%d z=%d bias=%d", c.D, c.z, c.bias);
        check_random(what, &c);
    }
    /* The terms are really used: D's absence and z's absence must change y. */
    scan_cfg c = cfg_basic(1, 4, 9, 3, 1);
    c.D = c.z = true;
    scan_io io = io_random(&c);
    scan_result full = run_both(&c, &io);
    scan_cfg no_d = c, no_z = c;
    no_d.D = false;
    no_z.z = false;
    scan_result rd = run_both(&no_d, &io), rz = run_both(&no_z, &io);
    if (full.ok && rd.ok && rz.ok) {
        CHECK(memcmp(full.y, rd.y, (size_t)n_seq(&c) * sizeof(float)) != 0);
        CHECK(memcmp(full.y, rz.y, (size_t)n_seq(&c) * sizeof(float)) != 0);
    }
    result_free(&full);
    result_free(&rd);
    result_free(&rz);
    io_free(&io);
}

/* Fills delta with v and bias with b (bias only when b_on). */
static void set_step(const scan_cfg *c, scan_io *io, float v, float b) {
    for (int64_t i = 0; i < n_seq(c); i++)
        io->delta[i] = v;
    for (int64_t i = 0; io->bias && i < c->Ch; i++)
        io->bias[i] = b;
}

/* softplus(d) = d > 20 ? d : log1p(exp(d)), applied to delta + bias. At 20 the
 * two branches differ by log1p(exp(-20)) ~ 2e-9, below f32 resolution, so the
 * threshold's side cannot be seen in y at 20 +- 0.1; what can be seen, and is
 * checked: the bias is added before softplus (-3 + 23 = 20, not softplus(-3) +
 * 23 = 23.05), the step stays finite above the threshold even where exp would
 * overflow f32 (d = 100), the log1p branch in the middle (d = 1 -> 1.3133),
 * and softplus=0 leaves d alone (d = -0.5 stays negative). */
static void test_softplus(void) {
    struct {
        const char *what;
        float delta, bias;
        int softplus;
    } cases[] = {
        {"softplus d=20 exactly", 20, 0, 1},
        {"softplus d=19.9", 19.9f, 0, 1},
        {"softplus d=20.1", 20.1f, 0, 1},
        {"softplus delta -3 + bias 23 = 20", -3, 23, 1},
        {"softplus delta -2 + bias 21.9 = 19.9", -2, 21.9f, 1},
        {"softplus delta -1.9 + bias 22 = 20.1", -1.9f, 22, 1},
        {"softplus d=100", 100, 0, 1},
        {"softplus d=1", 1, 0, 1},
        {"softplus delta 3 + bias -2 = 1", 3, -2, 1},
        {"softplus=0 d=-0.5", -0.5f, 0, 0},
        {"softplus=0 d=20", 20, 0, 0},
        {"softplus=0 delta 0.3 + bias -0.2", 0.3f, -0.2f, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        scan_cfg c = cfg_basic(1, 4, 6, 3, 1);
        c.softplus = cases[i].softplus;
        c.bias = cases[i].bias != 0;
        c.D = c.hN = true;
        scan_io io = io_random(&c);
        set_step(&c, &io, cases[i].delta, cases[i].bias);
        check_case(cases[i].what, &c, &io);
        io_free(&io);
    }
    /* Random steps across the whole softplus range, both branches in one scan. */
    scan_cfg c = cfg_basic(2, 4, 20, 3, 2);
    c.softplus = c.bias = c.hN = true;
    scan_io io = io_random(&c);
    for (int64_t i = 0; i < n_seq(&c); i++)
        io.delta[i] = check_uniform(-6, 26);
    check_case("softplus mixed branches", &c, &io);
    io_free(&io);
}

/* h0 and hN: scanning [0, L1) then [L1, L) from the first piece's final state
 * equals one scan over [0, L). A reverse scan walks L-1 .. 0, so its mirror
 * runs [L1, L) first and hands its state to [0, L1). */
static void test_chaining(void) {
    const int64_t splits[] = {1, 5, 12};
    for (int rev = 0; rev <= 1; rev++)
        for (int s = 0; s < 3; s++) {
            scan_cfg c = cfg_basic(2, 4, 13, 4, 2);
            c.reverse = rev;
            c.D = c.z = c.bias = c.h0 = c.hN = true;
            c.softplus = 1;
            scan_io io = io_random(&c);
            scan_result full = run_both(&c, &io);
            const int64_t L1 = splits[s];

            scan_cfg c_lo, c_hi;
            scan_io lo = io_slice(&c, &io, 0, L1, &c_lo), hi = io_slice(&c, &io, L1, c.L, &c_hi);
            scan_io *first = rev ? &hi : &lo, *second = rev ? &lo : &hi;
            scan_cfg *c_first = rev ? &c_hi : &c_lo, *c_second = rev ? &c_lo : &c_hi;
            scan_result r1 = run_both(c_first, first);
            memcpy(second->h0, r1.hN, (size_t)n_state(&c) * sizeof(float));
            scan_result r2 = run_both(c_second, second);

            char what[96];
            snprintf(what, sizeof what, "chain reverse=%d L1=%lld", rev, (long long)L1);
            if (full.ok && r1.ok && r2.ok) {
                /* Stitch the pieces back in time order and compare with the whole. */
                float *y = xmalloc_f(n_seq(&c));
                const scan_result *rlo = rev ? &r2 : &r1, *rhi = rev ? &r1 : &r2;
                for (int64_t r = 0; r < c.Bt * c.Ch; r++) {
                    memcpy(y + r * c.L, rlo->y + r * L1, (size_t)L1 * sizeof(float));
                    memcpy(y + r * c.L + L1, rhi->y + r * (c.L - L1),
                           (size_t)(c.L - L1) * sizeof(float));
                }
                CHECK_CLOSE(y, full.wy, n_seq(&c), TOL, what);
                CHECK_CLOSE(r2.hN, full.whN, n_state(&c), TOL, what);
                /* The library against itself too: same numbers either way. */
                double *lib_full = malloc((size_t)n_seq(&c) * sizeof *lib_full);
                for (int64_t i = 0; i < n_seq(&c); i++)
                    lib_full[i] = full.y[i];
                CHECK_CLOSE(y, lib_full, n_seq(&c), TOL, what);
                free(lib_full);
                free(y);
            }
            result_free(&full);
            result_free(&r1);
            result_free(&r2);
            io_free(&lo);
            io_free(&hi);
            io_free(&io);
        }
    /* h0 matters: the same data from a zero state gives another y. */
    scan_cfg c = cfg_basic(1, 2, 5, 2, 1);
    c.h0 = true;
    scan_io io = io_random(&c);
    scan_cfg c0 = c;
    c0.h0 = false;
    scan_result with = run_both(&c, &io), without = run_both(&c0, &io);
    if (with.ok && without.ok) {
        CHECK(memcmp(with.y, without.y, (size_t)n_seq(&c) * sizeof(float)) != 0);
        CHECK_CLOSE(with.y, with.wy, n_seq(&c), TOL, "h0 random");
    }
    result_free(&with);
    result_free(&without);
    io_free(&io);
}

/* Largest |a - b| over all (b, c) rows at time step l. */
static double step_diff(const scan_cfg *c, const float *a, const float *b, int64_t l) {
    double worst = 0;
    for (int64_t r = 0; r < c->Bt * c->Ch; r++) {
        double e = fabs((double)a[r * c->L + l] - b[r * c->L + l]);
        worst = e > worst ? e : worst;
    }
    return worst;
}

/* The scan is a recurrence, not a sum: swapping time steps t1 < t2 of the
 * inputs must leave every step walked before t1 bit-identical and change the
 * ones from t1 on (for reverse: unchanged after t2, changed from t2 down). */
static void test_order_matters(void) {
    const int64_t t1 = 4, t2 = 8;
    for (int rev = 0; rev <= 1; rev++) {
        scan_cfg c = cfg_basic(2, 4, 13, 4, 2);
        c.reverse = rev;
        c.D = true;
        scan_io io = io_random(&c);
        scan_result a = run_both(&c, &io);
        io_swap_steps(&c, &io, t1, t2);
        scan_result b = run_both(&c, &io);
        if (a.ok && b.ok) {
            CHECK_CLOSE(b.y, b.wy, n_seq(&c), TOL, "swapped steps");
            for (int64_t l = 0; l < c.L; l++) {
                bool before = rev ? l > t2 : l < t1; /* walked before either swapped step */
                double e = step_diff(&c, a.y, b.y, l);
                if (before)
                    CHECK_MSG(e == 0, "reverse=%d step %lld changed by %g", rev, (long long)l, e);
                else
                    CHECK_MSG(e > 1e-4, "reverse=%d step %lld unchanged (%g)", rev, (long long)l, e);
            }
        }
        result_free(&a);
        result_free(&b);
        io_free(&io);
    }
}

/* bf16 storage of u, delta, B, C, z: y is rounded to bf16, the state is not. */
static void test_bf16(void) {
    for (int rev = 0; rev <= 1; rev++) {
        scan_cfg c = cfg_basic(2, 4, 13, 4, 2);
        c.dtype = MX_BF16;
        c.reverse = rev;
        c.D = c.z = c.bias = c.hN = true;
        c.softplus = 1;
        check_random(rev ? "bf16 reverse" : "bf16", &c);
    }
    /* A may have its own dtype. */
    scan_cfg c = cfg_basic(1, 4, 8, 4, 1);
    c.a_dtype = MX_BF16;
    c.hN = true;
    check_random("bf16 A", &c);
    /* The output really is rounded to bf16. */
    c = cfg_basic(1, 4, 8, 4, 1);
    c.dtype = MX_BF16;
    scan_io io = io_random(&c);
    scan_result r = run_both(&c, &io);
    if (r.ok) {
        bool rounded = true;
        for (int64_t i = 0; i < n_seq(&c); i++)
            rounded &= r.y[i] == round_bf16(r.y[i]);
        CHECK(rounded);
    }
    result_free(&r);
    io_free(&io);
}

/* Shape rule violations are reported, not crashed on. */
static void test_bad_shapes(void) {
    struct {
        const char *what;
        int64_t Ch, G, a_rows, bc_len;
    } cases[] = {
        {"Ch % G != 0", 6, 4, 6, 5},
        {"A rows != Ch", 4, 2, 3, 5},
        {"B length != L", 4, 2, 4, 6},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        mx_graph *g = mx_graph_new("bad");
        const int64_t seq[3] = {1, cases[i].Ch, 5}, a[2] = {cases[i].a_rows, 3};
        const int64_t bc[4] = {1, cases[i].G, 3, cases[i].bc_len};
        int in[5] = {
            add_value(g, MX_OP_INPUT, "u", make_type(MX_F32, 3, seq)),
            add_value(g, MX_OP_INPUT, "delta", make_type(MX_F32, 3, seq)),
            add_value(g, MX_OP_PARAM, "A", make_type(MX_F32, 2, a)),
            add_value(g, MX_OP_INPUT, "B", make_type(MX_F32, 4, bc)),
            add_value(g, MX_OP_INPUT, "C", make_type(MX_F32, 4, bc)),
        };
        int node = mx_graph_add_node(g, MX_OP_SELECTIVE_SCAN, in, 5, 1);
        mx_diag d = {{0}};
        CHECK_MSG(mx_graph_infer_node(g, node, &d) != MX_OK, "%s accepted", cases[i].what);
        CHECK_MSG(d.msg[0] != 0, "%s: no message", cases[i].what);
        mx_graph_free(g);
    }
}

/* Every selective_scan node of the IR corpus (tests/ir, the syntax_* files
 * excepted: they test the parser, not models), run on the reference with the
 * CLI's seeded random inputs, checked against the oracle on the very inputs
 * the node saw: the scan inside real graphs (G=4 cross scans, bf16, chained
 * states, reverse directions). */
static int check_graph_scans(const char *path) {
    mx_diag d = {{0}};
    mx_graph *g = mx_graph_load(path, &d);
    CHECK_MSG(g != NULL, "%s", d.msg);
    if (!g)
        return 0;
    mx_buffers *b = mx_buffers_new(g);
    mx_buffers_fill_random(b, g, 1);
    mx_status status = mx_ref_run(g, b, &d);
    CHECK_MSG(status == MX_OK, "%s: %s", path, d.msg);
    int scans = 0;
    for (int node = 0; status == MX_OK && node < g->n_nodes; node++) {
        if (g->nodes[node].op != MX_OP_SELECTIVE_SCAN)
            continue;
        const mx_type *u = mx_node_input_type(g, node, MX_SCAN_U);
        const mx_type *B = mx_node_input_type(g, node, MX_SCAN_B);
        scan_cfg c = cfg_basic(u->dim[0], u->dim[1], u->dim[2], B->dim[2], B->dim[1]);
        c.dtype = u->dtype;
        c.reverse = (int)mx_node_int(g, node, MX_A_REVERSE);
        c.softplus = (int)mx_node_int(g, node, MX_A_SOFTPLUS);
        c.hN = g->nodes[node].n_out == 2;
        float *in[MX_SCAN_SLOTS];
        for (int i = 0; i < MX_SCAN_SLOTS; i++) {
            int v = mx_node_input(g, node, i);
            in[i] = v == MX_NONE ? NULL : b->data[v];
        }
        scan_io io = {in[MX_SCAN_U], in[MX_SCAN_DELTA], in[MX_SCAN_A], in[MX_SCAN_B], in[MX_SCAN_C],
                      in[MX_SCAN_D], in[MX_SCAN_Z], in[MX_SCAN_DELTA_BIAS], in[MX_SCAN_H0]};
        double *wy = malloc((size_t)n_seq(&c) * sizeof *wy);
        double *wh = malloc((size_t)n_state(&c) * sizeof *wh);
        oracle_scan(&c, &io, wy, wh);
        char what[300];
        snprintf(what, sizeof what, "%s: scan node %d: y", path, node);
        CHECK_CLOSE(b->data[mx_node_output(g, node, 0)], wy, n_seq(&c),
                    c.dtype == MX_BF16 ? TOL_BF16 : TOL, what);
        if (c.hN) {
            snprintf(what, sizeof what, "%s: scan node %d: hN", path, node);
            CHECK_CLOSE(b->data[mx_node_output(g, node, 1)], wh, n_state(&c), TOL, what);
        }
        free(wy);
        free(wh);
        scans++;
    }
    mx_buffers_free(b);
    mx_graph_free(g);
    return scans;
}

static void test_corpus(void) {
    const char *dir_path = MIXC_SOURCE_DIR "/tests/ir";
    DIR *dir = opendir(dir_path);
    CHECK_MSG(dir != NULL, "cannot open %s", dir_path);
    if (!dir)
        return;
    int files = 0, scans = 0;
    for (struct dirent *e; (e = readdir(dir));) {
        size_t len = strlen(e->d_name);
        if (len < 5 || strcmp(e->d_name + len - 5, ".mxir") != 0 ||
            strncmp(e->d_name, "syntax_", 7) == 0)
            continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir_path, e->d_name);
        scans += check_graph_scans(path);
        files++;
    }
    closedir(dir);
    /* The corpus holds at least 22 model graphs and most of them scan. */
    CHECK_MSG(files >= 22, "only %d IR files", files);
    CHECK_MSG(scans >= 15, "only %d scans in the corpus", scans);
}

int main(void) {
    test_hand_computed();
    test_directions();
    test_groups();
    test_group_isolation();
    test_lengths();
    test_state_sizes();
    test_batches();
    test_optional_terms();
    test_softplus();
    test_chaining();
    test_order_matters();
    test_bf16();
    test_bad_shapes();
    test_corpus();
    return check_summary();
}
