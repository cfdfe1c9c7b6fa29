/* host_blocks.h: how many blocks a launch of a group's generated kernel
 * runs on a host CPU (runtime/cpu.c), whose JIT runs a block's threads as
 * vector lanes or, when they do not fit, as one thread. */
#ifndef MX_HOST_BLOCKS_H
#define MX_HOST_BLOCKS_H

#include "codegen.h"

/* The blocks of group k's kernel: a row kernel and the scan run the grid the
 * emitter chose (rows, rows of channels); an element kernel strides its
 * grid over the elements, so a grid of one block per `lanes` elements of its
 * largest value makes each block one element, or one vector of them when
 * the block's threads run as vector lanes (and a thread's share
 * contiguous). grain: the fewest blocks worth a thread of their own. */
void mx_host_blocks(const mx_program *p, int group, const mx_kernel *k, int lanes, int64_t *blocks,
                    int64_t *grain);

#endif
