/* spec.c: JSON model specs into mx_spec, with task-dependent defaults and
 * checks that name the JSON path. The field list is docs/spec.md. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "spec.h"

const char *const mx_task_names[] = {"sequence", "vision", "series", "language", NULL};
const char *const mx_mixer_names[] = {"none", "selective", "qs", NULL};
const char *const mx_norm_names[] = {"layernorm", "rmsnorm", "none", NULL};
const char *const mx_lm_head_names[] = {"tied", "untied", "none", NULL};
static const char *const dtype_names[] = {"f32", "f16", "bf16", NULL};

#define BIG 1000000000

int mx_mixer_dt_rank(const mx_mixer_spec *m, int width) {
    return m->dt_rank ? m->dt_rank : (width + 15) / 16;
}

/* Defaults of a mixer for a task; a token mixer (channel = false) or a
 * channel mixer. These are the readings of MODELS.md. */
static mx_mixer_spec default_mixer(mx_task task, bool channel) {
    mx_mixer_spec m = {
        .kind = MX_MIXER_SELECTIVE, .expand = 2, .d_state = 16, .d_conv = 4,
        .n_scans = 1, .scans = {MX_ORDER_ROW}, .shared_conv = true, .width_factor = 2,
    };
    if (!channel && task == MX_TASK_VISION) {
        /* SS2D: 3x3 conv on the grid, four cross-scans, LayerNorm before the gate */
        m.d_conv = 3;
        m.conv2d = true;
        m.n_scans = 4;
        memcpy(m.scans, (int[]){MX_ORDER_ROW, MX_ORDER_COL, MX_ORDER_ROW_REV, MX_ORDER_COL_REV},
               4 * sizeof(int));
        m.out_norm = true;
    }
    if (channel) {
        /* bidirectional: forward and backward cores, each with its own conv */
        m.n_scans = 2;
        m.scans[1] = MX_ORDER_ROW_REV;
        m.shared_conv = false;
        if (task != MX_TASK_SERIES) {
            m.cw = true; /* along the channel axis, one feature per position */
        }
    }
    return m;
}

static void read_mixer(js_obj *parent, const char *key, mx_task task, int width, bool channel,
                       mx_mixer_spec *m) {
    js_obj o;
    js_child(parent, key, &o);
    *m = default_mixer(task, channel);
    m->kind = js_keyword(&o, "kind", m->kind, mx_mixer_names);
    if (channel)
        m->cw = js_bool(&o, "cw", m->cw);
    /* a cw mixer's positions carry one feature each: expand it little */
    m->expand = js_number(&o, "expand", m->cw ? 1 : 2, 0.0625, 16);
    m->d_state = (int)js_int(&o, "d_state", m->d_state, 1, BIG);
    m->dt_rank = (int)js_int(&o, "dt_rank", m->dt_rank, 0, 4096);
    m->d_conv = (int)js_int(&o, "d_conv", m->d_conv, 0, 15);
    m->conv2d = js_bool(&o, "conv2d", m->conv2d);
    int def[MX_MAX_SCANS];
    memcpy(def, m->scans, sizeof def);
    m->n_scans = js_keywords(&o, "scans", def, m->n_scans, m->scans, MX_MAX_SCANS, mx_order_names);
    m->shared_conv = js_bool(&o, "shared_conv", m->shared_conv);
    m->out_norm = js_bool(&o, "out_norm", m->out_norm);
    m->switch_scans = js_bool(&o, "switch_scans", m->switch_scans);
    m->bias = js_bool(&o, "bias", m->bias);
    m->width_factor = js_number(&o, "width_factor", m->width_factor, 0.0625, 16);
    js_close(&o);
    js_ctx *ctx = o.ctx;
    if (ctx->status != MX_OK)
        return;
    if (!channel && m->kind == MX_MIXER_NONE)
        js_error(ctx, o.path, "kind", "a token mixer is \"selective\" or \"qs\", got \"none\"");
    else if (m->cw && task == MX_TASK_SERIES)
        js_error(ctx, o.path, "cw", "a series model mixes its variates; cw is for sequence and vision");
    else if (channel && m->kind != MX_MIXER_NONE && !m->cw && task != MX_TASK_SERIES)
        /* without cw it would scan the tokens again: a second token mixer */
        js_error(ctx, o.path, "cw", "a %s model has no second token axis; its channel mixer "
                 "scans each token's channels (cw true)", mx_task_names[task]);
    else if (m->conv2d && task != MX_TASK_VISION)
        js_error(ctx, o.path, "conv2d", "a 2D conv needs an image grid (task \"vision\")");
    else if (m->conv2d && channel)
        js_error(ctx, o.path, "conv2d", "a channel mixer scans a 1D sequence; use a 1D conv");
    else if (m->conv2d && m->d_conv && m->d_conv % 2 == 0) /* d_conv 0: no conv */
        js_error(ctx, o.path, "d_conv", "a 2D \"same\" conv needs an odd kernel, got %d", m->d_conv);
    else if (m->conv2d && !m->shared_conv)
        js_error(ctx, o.path, "shared_conv", "a 2D conv runs on the grid once, before the scans; "
                                              "it cannot be per scan");
    else if (m->cw && m->out_norm) /* mx_build_cw_mixer has no such norm: do not ignore it */
        js_error(ctx, o.path, "out_norm", "a cw mixer has no LayerNorm(E) before its gate");
    else if (!m->cw && js_has(&o, "width_factor"))
        js_error(ctx, o.path, "width_factor", "only a cw channel mixer has channel positions to size");
    else if (m->switch_scans && m->n_scans < 2)
        js_error(ctx, o.path, "switch_scans", "Switch of Scans needs at least 2 scans");
    for (int i = 0; i < m->n_scans && ctx->status == MX_OK; i++) {
        char at[32]; /* the item's own path, like a bad keyword's */
        snprintf(at, sizeof at, "scans[%d]", i);
        bool one_d = task != MX_TASK_VISION || channel;
        if (one_d && (m->scans[i] & ~1) != MX_ORDER_ROW)
            js_error(ctx, o.path, at, "\"%s\" needs an image grid; a 1D sequence has only \"row\" "
                     "(forward) and \"row_rev\" (backward)", mx_order_names[m->scans[i]]);
        for (int j = 0; j < i && ctx->status == MX_OK; j++)
            if (m->scans[j] == m->scans[i])
                js_error(ctx, o.path, at, "\"%s\" is listed twice (also scans[%d])",
                         mx_order_names[m->scans[i]], j);
    }
    double e = m->expand * (m->cw ? 1 : width), w = m->width_factor * width;
    if (ctx->status == MX_OK && e != floor(e))
        js_error(ctx, o.path, "expand", "%g x %d features is not a whole number of channels",
                 m->expand, m->cw ? 1 : width);
    else if (ctx->status == MX_OK && m->cw && w != floor(w))
        js_error(ctx, o.path, "width_factor", "%g x %d channels is not a whole number of positions",
                 m->width_factor, width);
}

static void read_stage(js_obj *root, int i, const mx_spec *s, mx_stage_spec *st) {
    js_obj o;
    js_array_obj(root, "stages", i, &o);
    const mx_stage_spec *prev = i ? &s->stages[i - 1] : NULL;
    st->width = (int)js_int(&o, "width", prev ? prev->width : 0, 1, 65536);
    st->depth = (int)js_int(&o, "depth", 1, 1, 256);
    st->merge = js_bool(&o, "merge", s->task == MX_TASK_VISION && i > 0);
    st->norm = js_keyword(&o, "norm", MX_NORM_LAYERNORM, mx_norm_names);
    st->norm_eps = js_number(&o, "norm_eps", 1e-5, 0, 1);
    st->residual = js_bool(&o, "residual", true);
    st->weighted_average = js_bool(&o, "weighted_average", true);
    read_mixer(&o, "token_mixer", s->task, st->width, false, &st->token);
    read_mixer(&o, "channel_mixer", s->task, st->width, true, &st->channel);
    int every = st->channel.kind == MX_MIXER_NONE ? 0 : 1;
    st->channel_every = (int)js_int(&o, "channel_every", every, 0, 256);
    if (st->channel.kind == MX_MIXER_NONE)
        st->channel_every = 0;
    js_ctx *ctx = o.ctx;
    if (ctx->status == MX_OK && !js_has(&o, "width") && !prev)
        js_error(ctx, o.path, "width", "missing (the first stage sets the model width)");
    js_close(&o);
    if (ctx->status != MX_OK)
        return;
    if (st->merge && s->task != MX_TASK_VISION)
        js_error(ctx, o.path, "merge", "patch merging needs an image grid (task \"vision\")");
    else if (st->merge && !prev)
        js_error(ctx, o.path, "merge", "the first stage cannot start with patch merging");
    else if (prev && !st->merge && st->width != prev->width)
        js_error(ctx, o.path, "width", "changes from %d to %d without patch merging", prev->width,
                 st->width);
    else if (st->channel_every > st->depth)
        js_error(ctx, o.path, "channel_every", "is %d but the stage has only %d token mixers",
                 st->channel_every, st->depth);
}

static void read_input(js_obj *root, mx_spec *s) {
    js_obj in;
    js_child(root, "input", &in);
    js_ctx *ctx = in.ctx;
    if (ctx->status == MX_OK && !in.json)
        js_error(ctx, "", "input", "missing (the input's sizes)");
    switch (s->task) {
    case MX_TASK_SEQUENCE:
        s->length = (int)js_int(&in, "length", 0, 1, BIG);
        break;
    case MX_TASK_LANGUAGE: /* ids travel as f32: whole numbers are exact up to 2^24 */
        s->length = (int)js_int(&in, "length", 0, 1, BIG);
        s->vocab = (int)js_int(&in, "vocab", 0, 1, 1 << 24);
        break;
    case MX_TASK_VISION:
        s->image_size = (int)js_int(&in, "image_size", 224, 1, 65536);
        s->channels = (int)js_int(&in, "channels", 3, 1, 4096);
        break;
    case MX_TASK_SERIES:
        s->variates = (int)js_int(&in, "variates", 0, 1, BIG);
        s->lookback = (int)js_int(&in, "lookback", 0, 1, BIG);
        break;
    }
    const char *need = s->task == MX_TASK_SEQUENCE || s->task == MX_TASK_LANGUAGE ? "length"
                       : s->task == MX_TASK_SERIES                                ? "variates"
                                                                                  : NULL;
    if (need && ctx->status == MX_OK && !js_has(&in, need))
        js_error(ctx, in.path, need, "missing");
    if (s->task == MX_TASK_SERIES && ctx->status == MX_OK && !js_has(&in, "lookback"))
        js_error(ctx, in.path, "lookback", "missing");
    if (s->task == MX_TASK_LANGUAGE && ctx->status == MX_OK && !js_has(&in, "vocab"))
        js_error(ctx, in.path, "vocab", "missing (the number of token ids, rows of the embedding)");
    js_close(&in);
}

/* The ends of the model: vision stem and head, series patching and head. */
static void read_ends(js_obj *root, mx_spec *s) {
    js_obj stem, head, patching;
    js_child(root, "stem", &stem);
    js_child(root, "head", &head);
    js_child(root, "patching", &patching);
    if (s->task == MX_TASK_VISION) {
        s->patch = (int)js_int(&stem, "patch", 4, 1, 64);
        s->classes = (int)js_int(&head, "classes", 1000, 1, BIG);
    } else if (s->task == MX_TASK_SERIES) {
        s->patch_len = (int)js_int(&patching, "size", 16, 1, BIG);
        s->patch_stride = (int)js_int(&patching, "stride", 8, 1, BIG);
        s->horizon = (int)js_int(&head, "horizon", 96, 1, BIG);
        s->revin = js_bool(root, "revin", true);
    } else if (s->task == MX_TASK_LANGUAGE) {
        s->head_norm = js_keyword(&head, "norm", MX_NORM_RMSNORM, mx_norm_names);
        s->lm_head = js_keyword(&head, "lm_head", MX_LM_HEAD_TIED, mx_lm_head_names);
    }
    js_ctx *ctx = root->ctx;
    /* Sections of another task are mistakes, not options to ignore. */
    if (s->task != MX_TASK_VISION && ctx->status == MX_OK && stem.json)
        js_error(ctx, "", "stem", "only a \"vision\" model has a stem");
    if (s->task != MX_TASK_SERIES && ctx->status == MX_OK && patching.json)
        js_error(ctx, "", "patching", "only a \"series\" model has patching");
    if (s->task == MX_TASK_SEQUENCE && ctx->status == MX_OK && head.json)
        js_error(ctx, "", "head", "a \"sequence\" model has no head");
    js_close(&stem);
    js_close(&head);
    js_close(&patching);
}

/* Shape checks that need the whole spec. */
static void check_sizes(js_ctx *ctx, const mx_spec *s) {
    if (s->task == MX_TASK_VISION) {
        int side = s->image_size;
        if (side % s->patch)
            js_error(ctx, "stem", "patch", "%d does not divide input.image_size %d", s->patch, side);
        side /= s->patch;
        for (int i = 0; i < s->n_stages && ctx->status == MX_OK; i++) {
            char path[32];
            snprintf(path, sizeof path, "stages[%d]", i);
            if (s->stages[i].merge && side % 2)
                js_error(ctx, path, "merge", "the grid is %dx%d here; patch merging needs an even side",
                         side, side);
            side /= s->stages[i].merge ? 2 : 1;
        }
    }
    if (s->task == MX_TASK_SERIES && s->lookback + s->patch_stride < s->patch_len)
        js_error(ctx, "patching", "size", "%d is longer than input.lookback %d (+ one stride of padding)",
                 s->patch_len, s->lookback);
}

mx_status mx_spec_parse(const char *json, const char *source, const char *const *overrides,
                        int n_overrides, mx_spec *spec, mx_diag *diag) {
    memset(spec, 0, sizeof *spec);
    /* The whole text must be one JSON value: trailing text is an error too. */
    const char *at = NULL;
    cJSON *root_json = cJSON_ParseWithOpts(json, &at, 1);
    if (!root_json) {
        int line = 1, col = 1;
        for (const char *p = json; at && p < at && *p; p++, col++)
            if (*p == '\n')
                line++, col = 0;
        return mx_fail(diag, MX_ERR_PARSE, "%s:%d:%d: error: malformed JSON", source, line, col);
    }
    mx_status st = MX_OK;
    for (int i = 0; i < n_overrides && st == MX_OK; i++)
        st = js_override(root_json, overrides[i], diag);
    if (st != MX_OK) {
        cJSON_Delete(root_json);
        return st;
    }
    js_ctx ctx = {diag, MX_OK};
    js_obj root;
    js_open(&ctx, &root, root_json, "");
    if (ctx.status == MX_OK && !js_has(&root, "name"))
        js_error(&ctx, "", "name", "missing (the model's name)");
    const char *name = js_string(&root, "name", "");
    if (strlen(name) >= sizeof spec->name)
        js_error(&ctx, "", "name", "longer than %d characters", (int)sizeof spec->name - 1);
    snprintf(spec->name, sizeof spec->name, "%s", name);
    if (ctx.status == MX_OK && !js_has(&root, "task"))
        js_error(&ctx, "", "task", "missing (one of \"sequence\", \"vision\", \"series\", \"language\")");
    spec->task = js_keyword(&root, "task", MX_TASK_SEQUENCE, mx_task_names);
    spec->batch_free = !js_has(&root, "batch");
    spec->batch = (int)js_int(&root, "batch", 1, 1, BIG);
    spec->dtype = js_keyword(&root, "dtype", MX_F32, dtype_names);
    read_input(&root, spec);
    read_ends(&root, spec);
    spec->n_stages = js_array_len(&root, "stages", 1, MX_MAX_STAGES);
    for (int i = 0; i < spec->n_stages && ctx.status == MX_OK; i++)
        read_stage(&root, i, spec, &spec->stages[i]);
    js_close(&root);
    if (ctx.status == MX_OK)
        check_sizes(&ctx, spec);
    cJSON_Delete(root_json);
    if (ctx.status != MX_OK && diag) {
        /* prefix the source so the user knows which file */
        char msg[sizeof diag->msg];
        snprintf(msg, sizeof msg, "%s: error: %s", source, diag->msg);
        snprintf(diag->msg, sizeof diag->msg, "%s", msg);
    }
    return ctx.status;
}
