/* model.c: a spec into a graph: the ends of each task (vision stem, patch
 * merging and head; series RevIN, patching, 2D normalisation and head), the
 * stages with their weighted averaging, and the public model API. */
#include <assert.h>
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blocks.h"
#include "build.h"
#include "model.h"

/* Where the tokens lie: x is [B, H*W, C] (vision), [B, L, C] (sequence, h=1)
 * or [B, M, P, C] (series: M variates of P patches). */
typedef struct {
    int64_t batch, h, w, c;
    int64_t m, p; /* series only */
} token_layout;

/* Runs one mixer on the normed tokens, viewing them as [Bt, L, C] sequences
 * along the axis the mixer scans. */
static int apply_mixer(mx_builder *b, const mx_spec *s, const mx_mixer_spec *ms, bool channel,
                       int x, token_layout t) {
    if (ms->cw) {
        int rank;
        bd_dims(b, x, &rank);
        if (rank == 3)
            return mx_build_cw_mixer(b, ms, x);
        int y = mx_build_cw_mixer(b, ms, bd_reshape(b, x, DIMS(t.batch * t.m, t.p, t.c)));
        return bd_reshape(b, y, DIMS(t.batch, t.m, t.p, t.c));
    }
    if (s->task != MX_TASK_SERIES)
        return mx_build_token_mixer(b, ms, x, t.h, t.w);
    if (!channel) { /* along the patches of each variate */
        int y = mx_build_token_mixer(b, ms, bd_reshape(b, x, DIMS(t.batch * t.m, t.p, t.c)), 1, t.p);
        return bd_reshape(b, y, DIMS(t.batch, t.m, t.p, t.c));
    }
    /* along the variates of each patch */
    int v = bd_reshape(b, bd_permute(b, x, DIMS(0, 2, 1, 3)), DIMS(t.batch * t.p, t.m, t.c));
    int y = mx_build_token_mixer(b, ms, v, 1, t.m);
    return bd_permute(b, bd_reshape(b, y, DIMS(t.batch, t.p, t.m, t.c)), DIMS(0, 2, 1, 3));
}

/* The candidate inputs of the next mixer, oldest first. */
typedef struct {
    int v[2 * 256 + 2];
    int n;
} history;

/* The input of a mixer: the weighted average of every earlier output (init:
 * one-hot on the most recent, a plain chain), or just the most recent. */
static int mixer_input(mx_builder *b, const mx_stage_spec *st, const history *hist) {
    if (!st->weighted_average || hist->n == 1)
        return hist->v[hist->n - 1];
    int w = bd_param(b, "avg", MX_INIT_ONE_HOT, hist->n - 1, DIMS(hist->n));
    return bd_weighted_sum(b, w, hist->n, hist->v);
}

static int mixer_block(mx_builder *b, const mx_spec *s, const mx_stage_spec *st, bool channel,
                       history *hist, token_layout t) {
    int x = mixer_input(b, st, hist);
    const mx_mixer_spec *ms = channel ? &st->channel : &st->token;
    int y = apply_mixer(b, s, ms, channel, bd_norm(b, st->norm, x, "norm", st->norm_eps), t);
    return st->residual ? bd_binary(b, MX_OP_ADD, x, y) : y;
}

/* A stage of MambaMixer blocks. The paper's weighted averaging feeds block l's
 * token mixer from y_T(i), y_C(i) for i < l and its channel mixer from y_T(i)
 * for i <= l and y_C(i) for i < l, with y_T(0) = y_C(0) = the stage input. So
 * the history holds the input twice, then every output in order; a block
 * without a channel mixer (channel_every > 1) adds only its y_T. */
static int build_stage(mx_builder *b, const mx_spec *s, int si, int x, token_layout t) {
    const mx_stage_spec *st = &s->stages[si];
    history hist = {{x, x}, 2};
    for (int l = 1; l <= st->depth; l++) {
        bd_layer(b, "stages.%d.blocks.%d.token_mixer", si, l - 1);
        int y = mixer_block(b, s, st, false, &hist, t);
        hist.v[hist.n++] = y;
        if (st->channel_every && l % st->channel_every == 0) {
            bd_layer(b, "stages.%d.blocks.%d.channel_mixer", si, l - 1);
            y = mixer_block(b, s, st, true, &hist, t);
            hist.v[hist.n++] = y;
        }
    }
    return hist.v[hist.n - 1];
}

/* ---- vision ---------------------------------------------------------------- */

static int build_vision(mx_builder *b, const mx_spec *s) {
    int64_t batch = s->batch, side = s->image_size / s->patch, c = s->stages[0].width;
    bd_layer(b, "stem");
    int image = bd_input(b, "image", DIMS(batch, s->channels, s->image_size, s->image_size));
    double bound = 1 / sqrt((double)(s->channels * s->patch * s->patch));
    int args[3] = {image,
                   bd_param(b, "weight", MX_INIT_UNIFORM, bound, DIMS(c, s->channels, s->patch, s->patch)),
                   bd_param(b, "bias", MX_INIT_UNIFORM, bound, DIMS(c))};
    int node = bd_node(b, MX_OP_CONV2D, args, 3, 1);
    mx_node_set_int(b->g, node, MX_A_STRIDE, s->patch);
    int x = bd_permute(b, bd_finish(b, node), DIMS(0, 2, 3, 1));
    x = bd_reshape(b, bd_norm(b, MX_NORM_LAYERNORM, x, "norm", MX_NORM_EPS), DIMS(batch, side * side, c));
    for (int si = 0; si < s->n_stages; si++) {
        const mx_stage_spec *st = &s->stages[si];
        if (st->merge) {
            bd_layer(b, "stages.%d.merge", si);
            int grid = bd_reshape(b, x, DIMS(batch, side, side, c));
            int merged = bd_unary(b, MX_OP_SPACE_TO_DEPTH, grid);
            merged = bd_norm(b, MX_NORM_LAYERNORM, merged, "norm", MX_NORM_EPS);
            merged = bd_linear(b, merged, "reduction", st->width, false);
            side /= 2;
            c = st->width;
            x = bd_reshape(b, merged, DIMS(batch, side * side, c));
        }
        x = build_stage(b, s, si, x, (token_layout){batch, side, side, c, 0, 0});
    }
    bd_layer(b, "head");
    x = bd_reduce(b, bd_norm(b, MX_NORM_LAYERNORM, x, "norm", MX_NORM_EPS), MX_REDUCE_MEAN, 1, false);
    return bd_linear(b, x, "fc", s->classes, true);
}

/* ---- sequence -------------------------------------------------------------- */

static int build_sequence(mx_builder *b, const mx_spec *s) {
    int64_t c = s->stages[0].width;
    bd_layer(b, "input");
    int x = bd_input(b, "tokens", DIMS(s->batch, s->length, c));
    for (int si = 0; si < s->n_stages; si++)
        x = build_stage(b, s, si, x, (token_layout){s->batch, 1, s->length, c, 0, 0});
    return x;
}

/* ---- series ---------------------------------------------------------------- */

static int build_series(mx_builder *b, const mx_spec *s) {
    int64_t batch = s->batch, m = s->variates, c = s->stages[0].width;
    int64_t p = (s->lookback + s->patch_stride - s->patch_len) / s->patch_stride + 1;
    bd_layer(b, "revin");
    int x = bd_input(b, "series", DIMS(batch, m, s->lookback));
    int mean = 0, std = 0, gamma = 0, beta = 0;
    if (s->revin) {
        /* RevIN: per-series statistics, a learned affine, undone at the end */
        mean = bd_reduce(b, x, MX_REDUCE_MEAN, -1, true);
        int var = bd_reduce(b, x, MX_REDUCE_VAR, -1, true);
        std = bd_unary(b, MX_OP_SQRT, bd_binary(b, MX_OP_ADD, var, bd_const(b, 1e-5, DIMS(1))));
        gamma = bd_param(b, "weight", MX_INIT_CONST, 1, DIMS(m, 1));
        beta = bd_param(b, "bias", MX_INIT_CONST, 0, DIMS(m, 1));
        x = bd_binary(b, MX_OP_DIV, bd_binary(b, MX_OP_SUB, x, mean), std);
        x = bd_binary(b, MX_OP_ADD, bd_binary(b, MX_OP_MUL, x, gamma), beta);
    }
    bd_layer(b, "patch_embed");
    int node = bd_node(b, MX_OP_UNFOLD, &x, 1, 1);
    mx_node_set_int(b->g, node, MX_A_SIZE, s->patch_len);
    mx_node_set_int(b->g, node, MX_A_STRIDE, s->patch_stride);
    mx_node_set_int(b->g, node, MX_A_PAD, s->patch_stride);
    x = bd_linear(b, bd_finish(b, node), "proj", c, true);
    x = bd_binary(b, MX_OP_ADD, x, bd_param(b, "pos", MX_INIT_UNIFORM, 0.02, DIMS(p, c)));
    for (int si = 0; si < s->n_stages; si++)
        x = build_stage(b, s, si, x, (token_layout){batch, 1, p, c, m, p});
    bd_layer(b, "head");
    /* 2D normalisation: over the features, then over the patches */
    x = bd_norm(b, MX_NORM_LAYERNORM, x, "norm_feature", MX_NORM_EPS);
    x = bd_permute(b, x, DIMS(0, 1, 3, 2));
    x = bd_permute(b, bd_norm(b, MX_NORM_LAYERNORM, x, "norm_patch", MX_NORM_EPS), DIMS(0, 1, 3, 2));
    x = bd_linear(b, bd_reshape(b, x, DIMS(batch, m, p * c)), "proj", s->horizon, true);
    if (s->revin) {
        bd_layer(b, "revin_out");
        x = bd_binary(b, MX_OP_DIV, bd_binary(b, MX_OP_SUB, x, beta), gamma);
        x = bd_binary(b, MX_OP_ADD, bd_binary(b, MX_OP_MUL, x, std), mean);
    }
    return x;
}

/* ---- language -------------------------------------------------------------- */

/* A Mamba language model: token ids -> embedding rows -> the stages (Mamba's
 * pre-norm residual blocks are mixc's default x + mixer(norm(x)) with
 * weighted averaging off) -> final norm -> logits through the embedding's
 * matrix (tied), a matrix of its own, or none (the hidden states). */
static int build_language(mx_builder *b, const mx_spec *s) {
    int64_t c = s->stages[0].width;
    bd_layer(b, "embedding");
    /* ids are f32 whatever the model's dtype: f16 and bf16 cannot hold them */
    mx_dtype dtype = b->dtype;
    b->dtype = MX_F32;
    int ids = bd_input(b, "token_ids", DIMS(s->batch, s->length));
    b->dtype = dtype;
    /* std 0.02, as Mamba's normal init of the embedding */
    int table = bd_param(b, "weight", MX_INIT_UNIFORM, 0.02 * sqrt(3.0), DIMS(s->vocab, c));
    int x = bd_finish(b, bd_node(b, MX_OP_EMBEDDING, (int[]){table, ids}, 2, 1));
    for (int si = 0; si < s->n_stages; si++)
        x = build_stage(b, s, si, x, (token_layout){s->batch, 1, s->length, c, 0, 0});
    bd_layer(b, "head");
    x = bd_norm(b, s->head_norm, x, "norm", s->stages[s->n_stages - 1].norm_eps);
    if (s->lm_head == MX_LM_HEAD_UNTIED)
        return bd_linear(b, x, "lm_head", s->vocab, false);
    if (s->lm_head == MX_LM_HEAD_TIED)
        return bd_finish(b, bd_node(b, MX_OP_LINEAR, (int[]){x, table}, 2, 1));
    return x;
}

mx_status mx_model_build(struct mx_model *m, mx_diag *diag) {
    /* The graph is named like the model, spelled as an IR identifier. */
    char name[sizeof m->spec.name + 1];
    snprintf(name, sizeof name, "%s%s", isalpha((unsigned char)m->spec.name[0]) ? "" : "_", m->spec.name);
    for (char *p = name; *p; p++)
        if (!isalnum((unsigned char)*p))
            *p = '_';
    m->g = mx_graph_new(name);
    mx_builder b = {.m = m, .g = m->g, .dtype = m->spec.dtype, .diag = diag};
    static int (*const build[])(mx_builder *, const mx_spec *) = {
        [MX_TASK_SEQUENCE] = build_sequence,
        [MX_TASK_VISION] = build_vision,
        [MX_TASK_SERIES] = build_series,
        [MX_TASK_LANGUAGE] = build_language,
    };
    const char *output_name = (const char *const[]){"hidden", "logits", "forecast", "logits"}[m->spec.task];
    if (m->spec.task == MX_TASK_LANGUAGE && m->spec.lm_head == MX_LM_HEAD_NONE)
        output_name = "hidden";
    int out = build[m->spec.task](&b, &m->spec);
    if (b.status != MX_OK)
        return b.status;
    if (!m->g->values[out].name)
        mx_value_set_name(m->g, out, output_name);
    mx_graph_add_output(m->g, out);
    return mx_graph_verify(m->g, diag);
}
