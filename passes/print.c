/* print.c: a program as text: the graph in the text IR, then its groups and
 * memory plan as comment lines, so the whole stays parseable as IR. */
#include <stdlib.h>

#include "program.h"

static void put_value(const mx_graph *g, int v, FILE *out) {
    if (g->values[v].name)
        fprintf(out, "%%%s", g->values[v].name);
    else
        fprintf(out, "%%%d", v);
}

static const char *const view_names[] = {"copy", "consumer", "producer"};

void mx_program_print(const mx_program *p, FILE *out) {
    char *text = mx_graph_print(p->g);
    fputs(text, out);
    free(text);
    if (p->init) {
        fputs("# init (evaluated once when weights are bound):\n", out);
        text = mx_graph_print(p->init);
        for (char *line = text, *end; *line; line = end + 1) {
            end = line;
            while (*end && *end != '\n')
                end++;
            fprintf(out, "#   %.*s\n", (int)(end - line), line);
            if (!*end)
                break;
        }
        free(text);
    }
    if (p->view) {
        for (int n = 0; n < p->g->n_nodes; n++) {
            if (mx_ops[p->g->nodes[n].op].fusion != MX_FUSE_LAYOUT &&
                mx_ops[p->g->nodes[n].op].fusion != MX_FUSE_GATHER)
                continue;
            fputs("# view ", out);
            put_value(p->g, p->g->nodes[n].first_out, out);
            fprintf(out, " %s: %s\n", mx_ops[p->g->nodes[n].op].name, view_names[p->view[n]]);
        }
    }
    for (int i = 0; i < p->n_groups; i++) {
        const mx_group *gr = &p->groups[i];
        fprintf(out, "# group %d %s anchor ", i, mx_fusion_names[gr->kind]);
        put_value(p->g, p->g->nodes[gr->anchor].first_out, out);
        fputs(":", out);
        for (int k = 0; k < gr->n_nodes; k++) {
            fputc(' ', out);
            put_value(p->g, p->g->nodes[gr->nodes[k]].first_out, out);
        }
        fputc('\n', out);
    }
    if (p->n_groups)
        fprintf(out, "# kernels: %d non-matmul, %d in all\n", mx_program_kernel_count(p), p->n_groups);
    if (p->planned) {
        for (int v = 0; v < p->g->n_values; v++) {
            const mx_slot *s = &p->slots[v];
            if (s->offset < 0)
                continue;
            fputs("# buffer ", out);
            put_value(p->g, v, out);
            fprintf(out, " offset %lld bytes %lld", (long long)s->offset, (long long)s->bytes);
            if (s->in_place_of >= 0) {
                fputs(" in place of ", out);
                put_value(p->g, s->in_place_of, out);
            }
            fputc('\n', out);
        }
        fprintf(out, "# memory: planned %lld bytes, unplanned %lld bytes\n", (long long)p->arena_bytes,
                (long long)p->unplanned_bytes);
    }
}
