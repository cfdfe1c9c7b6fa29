/* memcheck.c: the memory a run takes, checked before it is allocated
 * (memcheck.h). */
#include "memcheck.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "blas.h"
#include "model.h"
#include "spec_fields.h"

static bool is_source(mx_op op) { return op == MX_OP_INPUT || op == MX_OP_PARAM || op == MX_OP_CONST; }

/* f32 bytes of every value of g: what the reference interpreter allocates. */
static double all_values_f32(const mx_graph *g) {
    double bytes = 0;
    for (int v = 0; g && v < g->n_values; v++)
        bytes += 4.0 * (double)mx_type_numel(mx_value_type(g, v));
    return bytes;
}

mx_memory_need mx_memory_estimate(const mx_program *p, const mx_target *t) {
    const mx_graph *g = p->g;
    mx_memory_need n = {.largest = -1};
    double sources_own = 0, largest = 0;
    for (int v = 0; v < g->n_values; v++) {
        const mx_type *type = mx_value_type(g, v);
        double numel = (double)mx_type_numel(type), f32 = 4.0 * numel;
        mx_op op = g->nodes[g->values[v].node].op;
        if (is_source(op)) {
            /* the caller's f32 copy (over the source graph), the program's
             * f32 copy, and the device's in its dtype */
            n.host_bytes += 2 * f32;
            sources_own += numel * (double)mx_dtype_size(type->dtype);
            if (op == MX_OP_PARAM)
                n.weights += 2 * f32 + numel * (double)mx_dtype_size(type->dtype);
            continue;
        }
        if (f32 > largest)
            largest = f32, n.largest = v;
        if (t->device == MX_DEVICE_REF)
            n.activations += f32;
    }
    for (int i = 0; i < g->n_outputs; i++) /* downloaded into the program's f32 buffers */
        if (t->device != MX_DEVICE_REF)
            n.host_bytes += 4.0 * (double)mx_type_numel(mx_value_type(g, g->outputs[i]));
    /* Derived params: the init graph runs on the reference when weights are bound. */
    double init = all_values_f32(p->init);
    n.weights += init;
    n.host_bytes += init;
    if (t->device == MX_DEVICE_REF) {
        n.host_bytes += n.activations;
        return n;
    }
    n.activations = (double)(p->planned ? p->arena_bytes : p->unplanned_bytes);
    double device = n.activations + sources_own;
    if (t->device == MX_DEVICE_CUDA)
        n.device_bytes = device + MX_BLAS_WORKSPACE_BYTES;
    else
        n.host_bytes += device; /* emu and cpu: the "device" is this machine */
    return n;
}

static double host_memory(void) {
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    return pages > 0 && page > 0 ? (double)pages * (double)page : 0;
}

static double gb(double bytes) { return bytes / 1e9; }

/* The dims of every value within a factor BIG_SHARE of the largest, each
 * once: the fields that size them are the ones to change. */
enum { BIG_SHARE = 8, MAX_DIMS = 64 };

static int big_dims(const mx_graph *g, double largest, int64_t *dims) {
    int n = 0;
    for (int v = 0; v < g->n_values; v++) {
        const mx_type *t = mx_value_type(g, v);
        if (4.0 * (double)mx_type_numel(t) * BIG_SHARE < largest)
            continue;
        for (int k = 0; k < t->rank; k++) {
            bool seen = false;
            for (int i = 0; i < n && !seen; i++)
                seen = dims[i] == t->dim[k];
            if (!seen && n < MAX_DIMS)
                dims[n++] = t->dim[k];
        }
    }
    return n;
}

/* "; the largest value: node %5 (linear) : f32[2,100000000,262144] (209715.20 GB);
 * sizes from batch=2, input.length=100000000, ..." */
static void describe_largest(const mx_program *p, const mx_model *m, int v, char *buf, size_t size) {
    buf[0] = 0;
    if (v < 0)
        return;
    const mx_graph *g = p->g;
    const mx_type *t = mx_value_type(g, v);
    double bytes = 4.0 * (double)mx_type_numel(t);
    char type[160], label[160], fields[768] = "";
    mx_type_str(t, type, sizeof type);
    mx_node_label(g, g->values[v].node, label, sizeof label);
    if (m) {
        int64_t dims[MAX_DIMS];
        mx_spec_fields_of_dims(&m->spec, dims, big_dims(g, bytes, dims), fields, sizeof fields);
    }
    snprintf(buf, size, "; the largest value: node %s : %s (%.2f GB)%s%s", label, type, gb(bytes),
             fields[0] ? "; the sizes of the largest values come from " : "", fields);
}

mx_status mx_memory_check(const mx_program *p, const mx_target *t, const mx_model *m, mx_diag *d) {
    mx_memory_need n = mx_memory_estimate(p, t);
    double host = host_memory(), device = (double)t->memory_bytes;
    if (t->device != MX_DEVICE_CUDA && device > 0 && (host <= 0 || device < host))
        host = device;
    const char *where = NULL;
    double need = 0, have = 0;
    if (t->device == MX_DEVICE_CUDA && device > 0 && n.device_bytes > device)
        where = "GPU", need = n.device_bytes, have = device;
    else if (host > 0 && n.host_bytes > host)
        where = "host", need = n.host_bytes, have = host;
    if (!where)
        return MX_OK;
    char largest[1024];
    describe_largest(p, m, n.largest, largest, sizeof largest);
    return mx_fail(d, MX_ERR_NOMEM,
                   "graph %s does not fit in memory: running it on %s (%s) needs %.2f GB of %s memory, which has "
                   "%.2f GB (activations %.2f GB, params %.2f GB)%s",
                   p->g->name, mx_device_name(t->device), t->name, gb(need), where, gb(have), gb(n.activations),
                   gb(n.weights), largest);
}

void mx_explain_group_error(const mx_program *p, const mx_model *m, mx_diag *d) {
    const char *at = d && m ? strstr(d->msg, "group ") : NULL;
    int k;
    if (!at || sscanf(at, "group %d", &k) != 1 || k < 0 || k >= p->n_groups)
        return;
    const mx_graph *g = p->g;
    const mx_node *anchor = &g->nodes[p->groups[k].anchor];
    int64_t dims[MAX_DIMS];
    int n = 0;
    for (int i = 0; i < anchor->n_in + anchor->n_out; i++) {
        int v = i < anchor->n_in ? mx_node_input(g, p->groups[k].anchor, i) : anchor->first_out + i - anchor->n_in;
        if (v == MX_NONE)
            continue;
        const mx_type *t = mx_value_type(g, v);
        for (int j = 0; j < t->rank && n < MAX_DIMS; j++)
            dims[n++] = t->dim[j];
    }
    char fields[768];
    mx_spec_fields_of_dims(&m->spec, dims, n, fields, sizeof fields);
    size_t len = strlen(d->msg);
    if (fields[0])
        snprintf(d->msg + len, sizeof d->msg - len, "; its sizes come from %s", fields);
}
