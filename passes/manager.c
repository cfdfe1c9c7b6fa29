/* manager.c: the pass table, its options and the program around a graph. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "program.h"

const mx_pass_desc mx_passes[MX_PASS_COUNT] = {
#define X(name, letter, doc) {#name, letter, doc, mx_pass_##name},
    MX_PASSES(X)
#undef X
};

mx_program *mx_program_new(mx_graph *g) {
    mx_program *p = calloc(1, sizeof *p);
    if (p)
        p->g = g;
    return p;
}

void mx_program_free(mx_program *p) {
    if (!p)
        return;
    mx_graph_free(p->g);
    mx_graph_free(p->init);
    free(p->view);
    free(p->group_of);
    free(p->groups);
    free(p->slots);
    mx_arena_free(&p->arena);
    free(p);
}

/* The annotations describe one graph; a graph-changing pass drops them. */
void mx_program_drop_annotations(mx_program *p) {
    free(p->view);
    free(p->group_of);
    free(p->groups);
    free(p->slots);
    p->view = NULL;
    p->group_of = NULL;
    p->groups = NULL;
    p->slots = NULL;
    p->n_groups = 0;
    p->planned = false;
}

static int pass_by_name(const char *name, size_t len) {
    for (int i = 0; i < MX_PASS_COUNT; i++)
        if ((strlen(mx_passes[i].name) == len && strncmp(mx_passes[i].name, name, len) == 0) ||
            (len == 1 && mx_passes[i].letter == name[0]))
            return i;
    return -1;
}

mx_status mx_pass_options_set(bool *flags, const char *list, mx_diag *d) {
    for (const char *p = list; *p;) {
        size_t len = strcspn(p, ",");
        if (len == 3 && strncmp(p, "all", 3) == 0) {
            for (int i = 0; i < MX_PASS_COUNT; i++)
                flags[i] = true;
        } else if (len) {
            int id = pass_by_name(p, len);
            if (id < 0) {
                char known[256] = "";
                size_t n = 0;
                for (int i = 0; i < MX_PASS_COUNT; i++)
                    n += (size_t)snprintf(known + n, sizeof known - n, "%s%s (%c)", i ? ", " : "",
                                          mx_passes[i].name, mx_passes[i].letter);
                return mx_fail(d, MX_ERR_INVALID, "unknown pass '%.*s' (passes: %s, or all)", (int)len, p,
                               known);
            }
            flags[id] = true;
        }
        p += len + (p[len] == ',');
    }
    return MX_OK;
}

mx_status mx_pass_options_from_env(mx_pass_options *o, mx_diag *d) {
    memset(o, 0, sizeof *o);
#ifndef NDEBUG
    o->verify = true;
#endif
    const char *s;
    const char *lists[] = {"MIXC_DISABLE_PASSES", "MIXC_PRINT_AFTER"};
    bool *flags[] = {o->disabled, o->print_after};
    for (int i = 0; i < 2; i++)
        if ((s = getenv(lists[i])) && mx_pass_options_set(flags[i], s, d) != MX_OK) {
            char why[sizeof d->msg - 64];
            snprintf(why, sizeof why, "%s", d->msg);
            return mx_fail(d, MX_ERR_INVALID, "%s: %s", lists[i], why);
        }
    /* Kill switches turn a feature off, not a pass: the program must still
     * run on every device, so fuse and plan run in their plainest form. */
    if ((s = getenv("MIXC_NO_FUSION")) && *s && strcmp(s, "0") != 0)
        o->no_merge = true;
    if ((s = getenv("MIXC_NO_PLANNER")) && *s && strcmp(s, "0") != 0)
        o->no_reuse = true;
    if (mx_debug_level() >= 5)
        for (int i = 0; i < MX_PASS_COUNT; i++)
            o->print_after[i] = true;
    return MX_OK;
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

mx_status mx_program_run_passes(mx_program *p, const mx_pass_options *o, mx_diag *d) {
    FILE *out = o->out ? o->out : stderr;
    p->no_merge = o->no_merge;
    p->no_reuse = o->no_reuse;
    for (int i = 0; i < MX_PASS_COUNT; i++) {
        const mx_pass_desc *pass = &mx_passes[i];
        if (o->disabled[i]) {
            if (o->time)
                fprintf(out, "pass %-13s disabled\n", pass->name);
            continue;
        }
        if (o->print_before[i]) {
            fprintf(out, "# ---- before %s\n", pass->name);
            mx_program_print(p, out);
        }
        double t0 = now_ms();
        mx_status st = pass->run(p, d);
        if (st != MX_OK)
            return st;
        if (o->time)
            fprintf(out, "pass %-13s %9.3f ms  (%d nodes)\n", pass->name, now_ms() - t0, p->g->n_nodes);
        if (o->verify && mx_graph_verify(p->g, d) != MX_OK) {
            char msg[sizeof d->msg];
            snprintf(msg, sizeof msg, "after pass %s: %s", pass->name, d->msg);
            return mx_fail(d, MX_ERR_INVALID, "%s", msg);
        }
        if (o->print_after[i]) {
            fprintf(out, "# ---- after %s\n", pass->name);
            mx_program_print(p, out);
        }
    }
    return MX_OK;
}

int mx_program_kernel_count(const mx_program *p) {
    int count = 0;
    for (int i = 0; i < p->n_groups; i++)
        count += p->groups[i].kind != MX_FUSE_MATMUL;
    return count;
}
