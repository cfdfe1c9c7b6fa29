/* dynlib.c: shared libraries loaded on first use (see dynlib.h). */
#include "dynlib.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

/* Guards every library's state: compiles and runs ask from several threads. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

/* dlopen(file), or NULL with the reason in l->error and *missing set when
 * there was simply no such file. */
static void *open_file(mx_dynlib *l, const char *file, bool *missing) {
    void *h = dlopen(file, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *why = dlerror();
        *missing = !why || strstr(why, "No such file");
        snprintf(l->error, sizeof l->error, "cannot load %s (%s): %s", l->name, file, why ? why : "dlopen failed");
    }
    return h;
}

static bool load(mx_dynlib *l) {
    bool missing;
    void *h = open_file(l, l->soname, &missing);
    if (!h && missing && l->path)
        h = open_file(l, l->path, &missing);
    if (!h) {
        if (missing)
            snprintf(l->error, sizeof l->error, "%s (%s) not found: %s", l->name, l->soname, l->if_missing);
        return false;
    }
    for (size_t i = 0; i < l->n_entries; i++) {
        void *fn = dlsym(h, l->entries[i].symbol);
        if (!fn) {
            snprintf(l->error, sizeof l->error, "%s (%s) has no %s: %s", l->name, l->soname, l->entries[i].symbol,
                     l->if_older);
            dlclose(h);
            return false;
        }
        /* dlsym returns void *; POSIX guarantees it converts to a function pointer. */
        *(void **)((char *)l->api + l->entries[i].offset) = fn;
    }
    return true;
}

const void *mx_dynlib_get(mx_dynlib *l, mx_diag *d) {
    pthread_mutex_lock(&lock);
    if (!l->tried) {
        l->tried = true;
        l->loaded = load(l);
    }
    bool loaded = l->loaded;
    pthread_mutex_unlock(&lock);
    if (loaded)
        return l->api;
    mx_fail(d, MX_ERR_IO, "%s", l->error);
    return NULL;
}

bool mx_dynlib_loaded(mx_dynlib *l) {
    pthread_mutex_lock(&lock);
    bool loaded = l->loaded;
    pthread_mutex_unlock(&lock);
    return loaded;
}
