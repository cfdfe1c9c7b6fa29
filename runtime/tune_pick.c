/* tune_pick.c: the tiles a compile takes, from the tuning database
 * (mx_tune_tiles, tune.h).
 *
 * Every backend asks here before generating code. The kernels are first
 * generated with the device's default tiles, which gives their identities;
 * a kernel the database has a winner for on this target's signature is then
 * generated with the winner's tiles, and the function that comes out must be
 * the one the winner was timed as (its identity is in the record): when
 * code generation changed since, the record is stale and the defaults stay. */
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "tune.h"

mx_tiles mx_tune_default_tiles(const mx_program *p, const mx_target *t, int group) {
    if (p->groups[group].kind == MX_FUSE_MATMUL) /* no kernel; on the CPU tasks 0, the backend's split */
        return (mx_tiles){0};
    const mx_backend *be = mx_backend_of(t->device);
    return be && be->tiles ? be->tiles(t, p, group) : mx_tiles_default(p, group, t);
}

static bool env_set(const char *name) {
    const char *s = getenv(name);
    return s && *s && strcmp(s, "0") != 0;
}

/* Generates p's kernels with tiles (emission only: nothing is compiled). */
static mx_status generate(const mx_program *p, const mx_target *t, const mx_tiles *tiles, mx_module *m, mx_diag *d) {
    mx_codegen_options co = {.target = t, .tiles = tiles};
    return mx_codegen(p, &co, m, d);
}

static void say(const mx_program *p, int group, const char *fmt, const char *detail) {
    if (mx_debug_level() >= 3)
        fprintf(stderr, "mixc: tune: group %d (%s): tiles %s%s\n", group, mx_fusion_names[p->groups[group].kind],
                fmt, detail);
}

/* Replaces tiles[g] by the database's winners where one applies. */
static mx_status apply_db(const mx_program *p, const mx_target *t, const mx_tune_db *db, mx_tiles *tiles,
                          mx_diag *d) {
    char sig[256];
    mx_tune_signature(t, sig, sizeof sig);
    /* an estimate never stands in for the GPU it estimates when that GPU is here */
    bool measured_only = t->device == MX_DEVICE_CUDA && t->detected;
    mx_module base;
    MX_TRY(generate(p, t, tiles, &base, d));
    const mx_tune_record **rec = calloc((size_t)p->n_groups + 1, sizeof *rec);
    mx_tiles *defaults = malloc(((size_t)p->n_groups + 1) * sizeof *defaults);
    if (!rec || !defaults) {
        free(rec), free(defaults);
        mx_module_free(&base);
        return mx_fail(d, MX_ERR_NOMEM, "out of memory");
    }
    memcpy(defaults, tiles, (size_t)p->n_groups * sizeof *tiles);
    int found = 0;
    for (int g = 0; g < p->n_groups; g++) {
        mx_tune_unit u;
        if (!mx_tune_unit_of(p, t, &base, g, &u))
            continue;
        rec[g] = mx_tune_db_find(db, u.identity, sig, measured_only);
        if (!rec[g]) {
            say(p, g, "defaults", " (no record for this kernel and target)");
            continue;
        }
        tiles[g] = rec[g]->candidates[rec[g]->winner].tiles;
        found++;
    }
    mx_module tuned = {0};
    mx_diag refused;
    if (found && generate(p, t, tiles, &tuned, &refused) != MX_OK) {
        /* a database never stops a compile: tiles the code generator now
         * refuses (it changed since the tune) give the defaults back */
        for (int g = 0; g < p->n_groups; g++)
            if (rec[g]) {
                char where[1400];
                snprintf(where, sizeof where, " (%s:%d is stale: the code generator refuses the winners' tiles: %s)",
                         db->path, rec[g]->line, refused.msg);
                say(p, g, "defaults", where);
                rec[g] = NULL;
            }
        memcpy(tiles, defaults, (size_t)p->n_groups * sizeof *tiles);
    }
    for (int g = 0; g < p->n_groups; g++) {
        if (!rec[g])
            continue;
        mx_tune_unit u;
        char where[1200], tiles_text[160];
        mx_tiles_describe(&rec[g]->candidates[rec[g]->winner].tiles, tiles_text, sizeof tiles_text);
        if (!mx_tune_unit_of(p, t, &tuned, g, &u) || u.identity != rec[g]->winner_source) {
            tiles[g] = defaults[g];
            snprintf(where, sizeof where, " (%s:%d is stale: the code generated for its winner changed)", db->path,
                     rec[g]->line);
            say(p, g, "defaults", where);
            continue;
        }
        snprintf(where, sizeof where, "%s from the tuning database %s:%d (%s, %.2fx the default's time)", tiles_text,
                 db->path, rec[g]->line, rec[g]->measured ? "measured" : "modelled",
                 rec[g]->candidates[rec[g]->winner].ratio);
        say(p, g, where, "");
    }
    mx_module_free(&tuned);
    mx_module_free(&base);
    free(rec);
    free(defaults);
    return MX_OK;
}

mx_status mx_tune_tiles(const mx_program *p, const mx_target *t, mx_tiles **out, mx_diag *d) {
    mx_tiles *tiles = calloc((size_t)p->n_groups + 1, sizeof *tiles);
    if (!tiles)
        return mx_fail(d, MX_ERR_NOMEM, "graph %s: out of memory", p->g->name);
    *out = tiles;
    if (p->tiles) {
        memcpy(tiles, p->tiles, (size_t)p->n_groups * sizeof *tiles);
        return MX_OK;
    }
    for (int g = 0; g < p->n_groups; g++)
        tiles[g] = mx_tune_default_tiles(p, t, g);
    if (env_set("MIXC_NO_TUNE")) {
        for (int g = 0; g < p->n_groups; g++)
            if (mx_tune_has_knobs(p, t, g))
                say(p, g, "defaults", " (MIXC_NO_TUNE)");
        return MX_OK;
    }
    char path[1024];
    mx_tune_db db;
    mx_diag why;
    if (!mx_tune_db_path(path, sizeof path))
        return MX_OK;
    if (mx_tune_db_read(path, &db, mx_debug_level() >= 1 ? stderr : NULL, &why) != MX_OK) {
        if (mx_debug_level() >= 1)
            fprintf(stderr, "mixc: tune: database not used: %s\n", why.msg);
        return MX_OK;
    }
    mx_status st = db.n ? apply_db(p, t, &db, tiles, d) : MX_OK;
    if (!db.n)
        for (int g = 0; g < p->n_groups; g++)
            if (mx_tune_has_knobs(p, t, g))
                say(p, g, "defaults", " (the tuning database has no records)");
    mx_tune_db_free(&db);
    if (st != MX_OK) {
        free(tiles);
        *out = NULL;
    }
    return st;
}
