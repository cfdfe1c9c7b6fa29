/* spec_fields.c: spec size fields matched to dims (spec_fields.h). */
#include "spec_fields.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

enum { MAX_FIELDS = 16 + MX_MAX_STAGES * 12 };

typedef struct {
    char path[80];
    int64_t value;
} field;

typedef struct {
    field f[MAX_FIELDS];
    int n;
} field_list;

static void add(field_list *l, int64_t value, const char *path) {
    if (value <= 1 || l->n == MAX_FIELDS)
        return;
    field *f = &l->f[l->n++];
    snprintf(f->path, sizeof f->path, "%s", path);
    f->value = value;
}

static void add_mixer(field_list *l, const char *stage, const char *which, const mx_mixer_spec *m, int width) {
    static const char *const names[] = {"d_state", "dt_rank", "d_conv", "expand"};
    if (m->kind == MX_MIXER_NONE)
        return;
    int64_t values[] = {m->d_state, mx_mixer_dt_rank(m, width), m->d_conv, (int64_t)llround(m->expand * width)};
    for (int i = 0; i < 4; i++) {
        char path[80];
        snprintf(path, sizeof path, "%s.%s.%s", stage, which, names[i]);
        add(l, values[i], path);
    }
}

static void collect(const mx_spec *s, field_list *l) {
    add(l, s->batch, "batch");
    add(l, s->length, "input.length");
    add(l, s->vocab, "input.vocab");
    add(l, s->image_size, "input.image_size");
    add(l, s->channels, "input.channels");
    add(l, s->classes, "head.classes");
    add(l, s->variates, "input.variates");
    add(l, s->lookback, "input.lookback");
    add(l, s->horizon, "head.horizon");
    add(l, s->patch_len, "patching.size");
    /* Sizes the fields make together: a vision model's tokens, and the rows
     * of every per-token product. */
    if (s->image_size > 0 && s->patch > 0) {
        int64_t side = s->image_size / s->patch;
        add(l, side, "input.image_size / stem.patch");
        add(l, side * side, "(input.image_size / stem.patch)^2 tokens");
        if (s->batch > 1)
            add(l, s->batch * side * side, "batch x (input.image_size / stem.patch)^2");
    }
    if (s->length > 0 && s->batch > 1)
        add(l, (int64_t)s->batch * s->length, "batch x input.length");
    for (int i = 0; i < s->n_stages; i++) {
        const mx_stage_spec *st = &s->stages[i];
        char stage[24], width[40];
        snprintf(stage, sizeof stage, "stages[%d]", i);
        snprintf(width, sizeof width, "%s.width", stage);
        add(l, st->width, width);
        add_mixer(l, stage, "token_mixer", &st->token, st->width);
        add_mixer(l, stage, "channel_mixer", &st->channel, st->width);
    }
}

void mx_spec_fields_of_dims(const mx_spec *s, const int64_t *dims, int rank, char *buf, size_t size) {
    field_list l = {.n = 0};
    collect(s, &l);
    size_t used = 0;
    buf[0] = 0;
    for (int i = 0; i < l.n; i++) {
        bool match = false;
        for (int k = 0; k < rank && !match; k++)
            match = dims[k] == l.f[i].value;
        if (!match || used >= size)
            continue;
        const char *sep = used ? ", " : "";
        if (strstr(l.f[i].path, ".expand")) /* the field is a factor: say what it makes */
            used += (size_t)snprintf(buf + used, size - used, "%s%s (E=%lld)", sep, l.f[i].path,
                                     (long long)l.f[i].value);
        else
            used += (size_t)snprintf(buf + used, size - used, "%s%s=%lld", sep, l.f[i].path,
                                     (long long)l.f[i].value);
    }
}
