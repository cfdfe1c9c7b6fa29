/* stats.c: parameters, FLOPs, bytes and peak activation memory per layer.
 *
 * Costs are the op table's (ir/cost.c) for the unfused graph. Peak activation
 * memory comes from liveness over the schedule (the node order): a value other
 * than a param or const lives from its producer to its last consumer (graph
 * outputs to the end), and each layer reports the largest live total seen
 * while its nodes run. That is what an allocator that frees at last use and
 * never shares buffers in place would need. */
#include <stdio.h>
#include <stdlib.h>

#include "model.h"

static bool is_weight(const mx_graph *g, int v) {
    mx_op op = g->nodes[g->values[v].node].op;
    return op == MX_OP_PARAM || op == MX_OP_CONST;
}

static double value_bytes(const mx_graph *g, int v) {
    const mx_type *t = &g->values[v].type;
    return (double)mx_type_numel(t) * (double)mx_dtype_size(t->dtype);
}

/* last_use[v]: the last node reading v (n_nodes for graph outputs). */
static int *last_uses(const mx_graph *g) {
    int *last = malloc((size_t)(g->n_values ? g->n_values : 1) * sizeof *last);
    for (int v = 0; v < g->n_values; v++)
        last[v] = g->values[v].node;
    for (int n = 0; n < g->n_nodes; n++)
        for (int i = 0; i < g->nodes[n].n_in; i++) {
            int v = mx_node_input(g, n, i);
            if (v != MX_NONE)
                last[v] = n;
        }
    for (int i = 0; i < g->n_outputs; i++)
        last[g->outputs[i]] = g->n_nodes;
    return last;
}

mx_stats *mx_model_stats(const mx_model *m) {
    const mx_graph *g = m->g;
    mx_stats *s = calloc(1, sizeof *s);
    s->n_layers = m->n_layers;
    s->layers = calloc((size_t)(m->n_layers ? m->n_layers : 1), sizeof *s->layers);
    for (int l = 0; l < m->n_layers; l++)
        s->layers[l].name = m->layer_names[l];
    s->total.name = "total";
    int *last = last_uses(g);
    /* Live bytes change at each node: + its outputs, - values last used there. */
    double live = 0;
    for (int n = 0; n < g->n_nodes; n++) {
        mx_layer_stats *ls = &s->layers[m->layer[n]];
        const mx_node *node = &g->nodes[n];
        if (node->op == MX_OP_PARAM) {
            ls->params += (double)mx_type_numel(&g->values[node->first_out].type);
        } else {
            mx_cost c = mx_node_cost(g, n);
            ls->flops += c.flops;
            ls->bytes += c.bytes;
            ls->exps += c.exps;
        }
        for (int i = 0; i < node->n_out; i++)
            if (!is_weight(g, node->first_out + i))
                live += value_bytes(g, node->first_out + i);
        if (live > ls->peak_bytes)
            ls->peak_bytes = live;
        /* Free what dies here: inputs read for the last time (once, even when
         * read twice) and outputs nobody reads. */
        for (int i = 0; i < node->n_in + node->n_out; i++) {
            int v = i < node->n_in ? mx_node_input(g, n, i) : node->first_out + i - node->n_in;
            if (v != MX_NONE && last[v] == n && !is_weight(g, v)) {
                live -= value_bytes(g, v);
                last[v] = -1;
            }
        }
    }
    free(last);
    for (int l = 0; l < s->n_layers; l++) {
        s->total.params += s->layers[l].params;
        s->total.flops += s->layers[l].flops;
        s->total.bytes += s->layers[l].bytes;
        s->total.exps += s->layers[l].exps;
        if (s->layers[l].peak_bytes > s->total.peak_bytes)
            s->total.peak_bytes = s->layers[l].peak_bytes;
    }
    return s;
}

void mx_stats_free(mx_stats *s) {
    if (!s)
        return;
    free(s->layers);
    free(s);
}

static void table_row(FILE *out, const mx_layer_stats *l) {
    fprintf(out, "%-44s %13.0f %12.4f %12.3f %12.3f %10.3f\n", l->name, l->params, l->flops / 1e9,
            l->bytes / 1e6, l->exps / 1e6, l->peak_bytes / 1e6);
}

void mx_stats_print_table(const mx_stats *s, const mx_graph *g, FILE *out) {
    fprintf(out, "model %s: %.3fM params, %.3f GFLOPs, %.1f MB moved (unfused), peak activations %.1f MB\n\n",
            g->name, s->total.params / 1e6, s->total.flops / 1e9, s->total.bytes / 1e6,
            s->total.peak_bytes / 1e6);
    fprintf(out, "%-44s %13s %12s %12s %12s %10s\n", "layer", "params", "GFLOPs", "MB moved",
            "Mexps", "peak MB");
    for (int i = 0; i < s->n_layers; i++)
        table_row(out, &s->layers[i]);
    table_row(out, &s->total);
}

static void json_layer(FILE *out, const mx_layer_stats *l) {
    fprintf(out, "{\"name\": \"%s\", \"params\": %.0f, \"flops\": %.0f, \"bytes\": %.0f, \"exps\": %.0f, "
                 "\"peak_bytes\": %.0f}",
            l->name, l->params, l->flops, l->bytes, l->exps, l->peak_bytes);
}

/* Layer names are built from identifiers and digits: nothing to escape. */
void mx_stats_print_json(const mx_stats *s, const mx_graph *g, FILE *out) {
    fprintf(out, "{\n  \"model\": \"%s\",\n  \"layers\": [\n", g->name);
    for (int i = 0; i < s->n_layers; i++) {
        fputs("    ", out);
        json_layer(out, &s->layers[i]);
        fputs(i + 1 < s->n_layers ? ",\n" : "\n", out);
    }
    fputs("  ],\n  \"total\": ", out);
    json_layer(out, &s->total);
    fputs("\n}\n", out);
}
