/* tune_show.c: the tuning database as a table, and merging databases
 * (mx_tune_show, mx_tune_merge; mixc.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tune.h"

static mx_status open_db(const char *path, mx_tune_db *db, mx_diag *d) {
    char def[1024];
    if (!path && !mx_tune_db_path(def, sizeof def))
        return mx_fail(d, MX_ERR_INVALID, "no tuning database: the kernel cache is off (MIXC_NO_CACHE); name one");
    return mx_tune_db_read(path ? path : def, db, stderr, d);
}

mx_status mx_tune_show(const char *path, FILE *out, mx_diag *d) {
    mx_tune_db db;
    MX_TRY(open_db(path, &db, d));
    fprintf(out, "tuning database %s: %d record%s\n", db.path, db.n, db.n == 1 ? "" : "s");
    if (db.n)
        fprintf(out, "%5s  %-16s %-9s %5s %11s %11s %7s  %-28s %s\n", "line", "kernel", "how", "cands", "default",
                "winner", "speedup", "winner tiles", "label / target");
    for (int i = 0; i < db.n; i++) {
        const mx_tune_record *r = &db.records[i];
        const mx_tune_candidate *w = &r->candidates[r->winner];
        char tiles[160];
        mx_tiles_describe(&w->tiles, tiles, sizeof tiles);
        const char *unit = r->measured ? "ms" : "ms est";
        fprintf(out, "%5d  %016llx %-9s %5d %8.4f %-2s %8.4f %-2s %6.2fx  %-28s %s\n", r->line,
                (unsigned long long)r->kernel, r->measured ? "measured" : "modelled", r->n_candidates,
                r->candidates[0].ms, r->measured ? unit : "", w->ms, r->measured ? unit : "",
                w->ratio > 0 ? 1 / w->ratio : 1, tiles, r->label);
        char together[64] = "";
        if (r->forward > 0) /* the whole forward pass with every winner of that tuning */
            snprintf(together, sizeof together, "; whole forward %.2fx", 1 / r->forward);
        fprintf(out, "%5s  %-16s %s, %s%s\n", "", "", r->target, r->when, together);
    }
    mx_tune_db_free(&db);
    return MX_OK;
}

mx_status mx_tune_merge(const char *const *in, int n, const char *out, mx_diag *d) {
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s.tmp", out);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return mx_fail(d, MX_ERR_IO, "%s: cannot write: %s", tmp, strerror(errno));
    mx_status st = MX_OK;
    char **seen = NULL;
    int n_seen = 0;
    for (int i = 0; i < n && st == MX_OK; i++) {
        mx_tune_db db;
        FILE *probe = fopen(in[i], "r"); /* merging a file that is not there is a mistake */
        if (!probe) {
            st = mx_fail(d, MX_ERR_IO, "%s: %s", in[i], strerror(errno));
            break;
        }
        fclose(probe);
        if ((st = mx_tune_db_read(in[i], &db, stderr, d)) != MX_OK)
            break;
        for (int r = 0; r < db.n && st == MX_OK; r++) {
            char *line = mx_tune_record_json(&db.records[r]);
            char **grown = line ? realloc(seen, ((size_t)n_seen + 1) * sizeof *seen) : NULL;
            if (!grown) {
                free(line);
                st = mx_fail(d, MX_ERR_NOMEM, "merging: out of memory");
                break;
            }
            seen = grown;
            bool dup = false;
            for (int s = 0; s < n_seen && !dup; s++)
                dup = strcmp(seen[s], line) == 0;
            if (dup) {
                free(line);
                continue;
            }
            seen[n_seen++] = line;
            fprintf(f, "%s\n", line);
        }
        mx_tune_db_free(&db);
    }
    for (int s = 0; s < n_seen; s++)
        free(seen[s]);
    free(seen);
    if (fclose(f) != 0 && st == MX_OK)
        st = mx_fail(d, MX_ERR_IO, "%s: %s", tmp, strerror(errno));
    if (st == MX_OK && rename(tmp, out) != 0)
        st = mx_fail(d, MX_ERR_IO, "%s: %s", out, strerror(errno));
    if (st != MX_OK)
        unlink(tmp);
    return st;
}
