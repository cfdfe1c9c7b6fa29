/* support.h: what the suites share: the reduced zoo (zoo_reduced.h), a model
 * or text-IR graph loaded under a check, a graph compiled into a program of
 * its own, and the files of a folder in name order. */
#ifndef MX_SUPPORT_H
#define MX_SUPPORT_H

#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "program.h"
#include "zoo_reduced.h"

/* The model at path under the n_set overrides of set; NULL, a failed check, when it does not load. */
static inline mx_model *support_load_model(const char *path, const char *const *set, int n_set) {
    mx_diag d = {{0}};
    mx_model *m = mx_model_load(path, set, n_set, &d);
    CHECK_MSG(m != NULL, "%s: %s", path, d.msg);
    return m;
}

/* The model at path at the reduced size of zoo_reduced.h, with the override
 * extra too unless it is NULL. */
static inline mx_model *support_load_reduced(const char *path, const char *extra) {
    const char *set[17];
    int n_set = zoo_reduced_overrides(path, set);
    if (extra)
        set[n_set++] = extra;
    return support_load_model(path, set, n_set);
}

/* The text-IR graph at path; NULL, a failed check, when it does not load. */
static inline mx_graph *support_load_graph(const char *path) {
    mx_diag d = {{0}};
    mx_graph *g = mx_graph_load(path, &d);
    CHECK_MSG(g != NULL, "%s", d.msg);
    return g;
}

/* A program over a copy of g, passes run under o; NULL, a failed check,
 * when they fail. */
static inline mx_program *support_compile(const mx_graph *g, const char *name, const mx_pass_options *o) {
    mx_diag d = {{0}};
    mx_program *p = mx_program_new(mx_graph_clone(g));
    mx_status st = mx_program_run_passes(p, o, &d);
    CHECK_MSG(st == MX_OK, "%s: passes: %s", name, d.msg);
    if (st != MX_OK) {
        mx_program_free(p);
        return NULL;
    }
    return p;
}

/* A named GPU profile (mx_target_named) for code generated under a check. */
static inline const mx_target *support_gpu_target(const char *name) {
    static mx_target t;
    mx_diag d = {{0}};
    CHECK_MSG(mx_target_named(name, MX_DEVICE_EMU, &t, &d) == MX_OK, "%s", d.msg);
    return &t;
}

static inline int support_by_name(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Fills paths with "dir/NAME" for the files of dir whose NAME ends in suffix
 * (and is longer), in name order, at most cap; returns how many. Free them
 * with support_free_files. */
static inline int support_list_files(const char *dir, const char *suffix, char **paths, int cap) {
    DIR *dp = opendir(dir);
    CHECK_MSG(dp != NULL, "cannot open %s", dir);
    if (!dp)
        return 0;
    size_t ls = strlen(suffix);
    int n = 0;
    for (struct dirent *e; n < cap && (e = readdir(dp));) {
        size_t len = strlen(e->d_name);
        if (len <= ls || strcmp(e->d_name + len - ls, suffix) != 0)
            continue;
        size_t size = strlen(dir) + len + 2;
        paths[n] = malloc(size);
        snprintf(paths[n++], size, "%s/%s", dir, e->d_name);
    }
    closedir(dp);
    qsort(paths, (size_t)n, sizeof *paths, support_by_name);
    return n;
}

static inline void support_free_files(char **paths, int n) {
    for (int i = 0; i < n; i++)
        free(paths[i]);
}

/* The kernel cache dir's entries with their modification times, a line
 * each: the same listing before and after a compile means every object
 * came from the cache. Returns the number of entries. */
static inline int support_cache_listing(const char *dir, char *buf, size_t size) {
    char *paths[512];
    int n = support_list_files(dir, ".cubin", paths, 512);
    size_t len = 0;
    buf[0] = 0;
    for (int i = 0; i < n && len < size; i++) {
        struct stat st;
        if (stat(paths[i], &st) == 0)
            len += (size_t)snprintf(buf + len, size - len, "%s %lld.%09ld\n", paths[i], (long long)st.st_mtim.tv_sec,
                                    st.st_mtim.tv_nsec);
    }
    support_free_files(paths, n);
    return n;
}

/* Calls fn on the path of every file that support_list_files lists; returns how many. */
static inline int support_each_file(const char *dir, const char *suffix, void (*fn)(const char *path)) {
    char *paths[256];
    int n = support_list_files(dir, suffix, paths, 256);
    for (int i = 0; i < n; i++)
        fn(paths[i]);
    support_free_files(paths, n);
    return n;
}

/* A temp folder of the suite's own, made on first use ("/tmp/mixc-NAME-XXXXXX"),
 * and the path of file name in it (four at a time stay valid). Remove the
 * files, then the folder with support_tmp_remove. */
static char support_tmp_dir[64];
static inline const char *support_tmp_path(const char *suite, const char *name) {
    static char path[4][192];
    static int next;
    if (!support_tmp_dir[0]) {
        snprintf(support_tmp_dir, sizeof support_tmp_dir, "/tmp/mixc-%s-XXXXXX", suite);
        CHECK_MSG(mkdtemp(support_tmp_dir) != NULL, "cannot make a temp folder for %s", suite);
    }
    char *p = path[next++ % 4];
    snprintf(p, sizeof path[0], "%s/%s", support_tmp_dir, name);
    return p;
}
static inline void support_tmp_remove(void) {
    if (support_tmp_dir[0])
        rmdir(support_tmp_dir);
}

/* The file name of a path from support_list_files. */
static inline const char *support_base(const char *path) { return strrchr(path, '/') + 1; }

#endif
