/* host_blocks.c: the blocks of a generated kernel on the host (host_blocks.h). */
#include "host_blocks.h"

void mx_host_blocks(const mx_program *p, int group, const mx_kernel *k, int lanes, int64_t *blocks,
                    int64_t *grain) {
    const mx_group *gr = &p->groups[group];
    if (gr->kind == MX_FUSE_SCAN || gr->kind == MX_FUSE_NORM || gr->kind == MX_FUSE_REDUCE) {
        *blocks = k->grid[0];
        *grain = 1;
        return;
    }
    int64_t most = 1;
    for (int i = 0; i < gr->n_nodes; i++) {
        const mx_node *n = &p->g->nodes[gr->nodes[i]];
        for (int o = 0; o < n->n_out; o++) {
            int64_t c = mx_type_numel(mx_value_type(p->g, n->first_out + o));
            most = c > most ? c : most;
        }
    }
    *blocks = (most + lanes - 1) / lanes;
    *grain = 4096 / lanes;
}
