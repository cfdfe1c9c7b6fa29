/* emit_dir.c: a folder written whole or not at all (emit_project.h). The temp folder
 * sits beside the target, on the same file system, so the final rename is
 * atomic; a folder being replaced (force) is moved aside first and removed
 * once the new one is in place. Both side folders carry the writer's pid, so
 * that what a killed emit left behind is recognised and cleared by the next. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "emit_project.h"
#include "ir.h"

/* 1: dir exists and holds something, 0: missing or empty, -1: not a folder. */
static int non_empty(const char *dir) {
    struct stat st;
    if (stat(dir, &st) != 0)
        return 0;
    if (!S_ISDIR(st.st_mode))
        return -1;
    DIR *dh = opendir(dir);
    if (!dh)
        return 1;
    int found = 0;
    for (struct dirent *e; !found && (e = readdir(dh)) != NULL;)
        found = strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(dh);
    return found;
}

/* Removes a folder this file made: plain files only, then the folder. */
static void remove_tree(const char *dir) {
    DIR *dh = opendir(dir);
    if (!dh)
        return;
    for (struct dirent *e; (e = readdir(dh)) != NULL;) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        size_t len = strlen(dir) + strlen(e->d_name) + 2;
        char *path = malloc(len);
        if (path) {
            snprintf(path, len, "%s/%s", dir, e->d_name);
            struct stat st;
            if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode))
                remove_tree(path);
            else
                remove(path);
            free(path);
        }
    }
    closedir(dh);
    rmdir(dir);
}

static char *with_suffix(const char *dir, const char *suffix) {
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/') /* "out/" and "out" are one folder */
        n--;
    char *s = malloc(n + strlen(suffix) + 1);
    if (s) {
        memcpy(s, dir, n);
        strcpy(s + n, suffix);
    }
    return s;
}

/* DIR.KIND-PID-XXXXXX for this process: KIND is "tmp" or "old". */
static char *side_folder(const char *dir, const char *kind) {
    char suffix[64];
    snprintf(suffix, sizeof suffix, ".%s-%ld-XXXXXX", kind, (long)getpid());
    return with_suffix(dir, suffix);
}

/* The pid in NAME if it is PREFIX followed by "PID-..." of a process that is
 * no longer running, else 0. */
static long dead_writer(const char *name, const char *prefix) {
    size_t n = strlen(prefix);
    if (strncmp(name, prefix, n) != 0)
        return 0;
    char *end;
    long pid = strtol(name + n, &end, 10);
    if (pid <= 0 || *end != '-')
        return 0;
    return kill((pid_t)pid, 0) != 0 && errno == ESRCH ? pid : 0;
}

/* What an emit into DIR killed before it finished left beside it: its temp
 * folder is removed; a folder it had moved aside to replace goes back to DIR
 * if the new one never landed, else is removed. */
static void clear_leftovers(const char *dir) {
    char *target = with_suffix(dir, "");
    if (!target)
        return;
    char *slash = strrchr(target, '/');
    const char *name = slash ? slash + 1 : target;
    char *parent = slash ? (slash == target ? strdup("/") : strndup(target, (size_t)(slash - target))) : strdup(".");
    char tmp_prefix[1024], old_prefix[1024];
    snprintf(tmp_prefix, sizeof tmp_prefix, "%s.tmp-", name);
    snprintf(old_prefix, sizeof old_prefix, "%s.old-", name);
    DIR *dh = parent ? opendir(parent) : NULL;
    for (struct dirent *e; dh && (e = readdir(dh)) != NULL;) {
        bool tmp = dead_writer(e->d_name, tmp_prefix) != 0;
        if (!tmp && !dead_writer(e->d_name, old_prefix))
            continue;
        size_t len = strlen(parent) + strlen(e->d_name) + 2;
        char *path = malloc(len);
        if (!path)
            break;
        snprintf(path, len, "%s/%s", parent, e->d_name);
        struct stat st;
        if (tmp || stat(target, &st) == 0)
            remove_tree(path);
        else
            rename(path, target); /* if that fails, the old project stays where it is */
        free(path);
    }
    if (dh)
        closedir(dh);
    free(parent);
    free(target);
}

/* mkdtemp makes the folder 0700; the project gets what mkdir(0755) gives under the
 * umask, read off a probe folder made inside it (umask() cannot be read without being
 * set, which would race the process's other threads). */
static int set_usual_mode(const char *tmp) {
    size_t len = strlen(tmp) + 8;
    char *probe = malloc(len);
    if (!probe)
        return -1;
    snprintf(probe, len, "%s/probe", tmp);
    struct stat st;
    int made = mkdir(probe, 0755) == 0, ok = made && stat(probe, &st) == 0;
    if (made)
        rmdir(probe);
    free(probe);
    return ok && chmod(tmp, st.st_mode & 07777) == 0 ? 0 : -1;
}

mx_status mx_emit_dir_open(const char *dir, bool force, mx_emit_dir *out, mx_diag *d) {
    memset(out, 0, sizeof *out);
    clear_leftovers(dir);
    int state = non_empty(dir);
    if (state < 0)
        return mx_fail(d, MX_ERR_IO, "%s: exists and is not a folder", dir);
    if (state > 0 && !force)
        return mx_fail(d, MX_ERR_IO, "%s: the folder is not empty (--force replaces it)", dir);
    out->dir = with_suffix(dir, "");
    out->tmp = side_folder(dir, "tmp");
    if (!out->dir || !out->tmp) {
        free(out->dir), free(out->tmp);
        return mx_fail(d, MX_ERR_NOMEM, "out of memory");
    }
    bool made = mkdtemp(out->tmp) != NULL;
    if (!made || set_usual_mode(out->tmp) != 0) {
        mx_status st = mx_fail(d, MX_ERR_IO, "%s: cannot create a temp folder beside it: %s", dir, strerror(errno));
        if (made)
            rmdir(out->tmp);
        free(out->dir), free(out->tmp);
        memset(out, 0, sizeof *out);
        return st;
    }
    return MX_OK;
}

char *mx_emit_dir_path(const mx_emit_dir *e, const char *name) {
    size_t len = strlen(e->tmp) + strlen(name) + 2;
    char *path = malloc(len);
    if (path)
        snprintf(path, len, "%s/%s", e->tmp, name);
    return path;
}

mx_status mx_emit_dir_write(mx_emit_dir *e, const char *name, const char *data, size_t size, mx_diag *d) {
    char *path = mx_emit_dir_path(e, name);
    if (!path)
        return mx_fail(d, MX_ERR_NOMEM, "out of memory");
    FILE *f = fopen(path, "wb");
    mx_status st = MX_OK;
    if (!f) {
        st = mx_fail(d, MX_ERR_IO, "%s: cannot create it: %s", path, strerror(errno));
    } else {
        bool written = fwrite(data, 1, size, f) == size;
        if (fclose(f) != 0 || !written)
            st = mx_fail(d, MX_ERR_IO, "%s: cannot write it: %s", path, strerror(errno));
    }
    free(path);
    return st;
}

static void release(mx_emit_dir *e) {
    free(e->dir), free(e->tmp);
    memset(e, 0, sizeof *e);
}

void mx_emit_dir_abort(mx_emit_dir *e) {
    if (e->tmp)
        remove_tree(e->tmp);
    release(e);
}

mx_status mx_emit_dir_commit(mx_emit_dir *e, mx_diag *d) {
    char *old = NULL;
    mx_status st = MX_OK;
    if (non_empty(e->dir) > 0) { /* forced: move the old folder aside, drop it once the new one is in */
        old = side_folder(e->dir, "old");
        if (!old || !mkdtemp(old) || rename(e->dir, old) != 0)
            st = mx_fail(d, MX_ERR_IO, "%s: cannot move it aside to replace it: %s", e->dir, strerror(errno));
    } else {
        rmdir(e->dir); /* an empty folder gives way; a missing one is fine */
    }
    if (st == MX_OK && rename(e->tmp, e->dir) != 0) {
        st = mx_fail(d, MX_ERR_IO, "%s: cannot rename %s to it: %s", e->dir, e->tmp, strerror(errno));
        if (old)
            rename(old, e->dir);
    }
    if (st == MX_OK && old)
        remove_tree(old);
    else if (old)
        rmdir(old);
    free(old);
    if (st != MX_OK)
        mx_emit_dir_abort(e);
    else
        release(e);
    return st;
}
