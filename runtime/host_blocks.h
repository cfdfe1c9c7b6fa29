/* host_blocks.h: generated kernels on a host CPU with blocks of one thread
 * (the C project of `mixc emit --target cpu`): the tiles that make every
 * block one thread, and how many blocks a launch of a group's kernel runs.
 * The CPU backend's JIT may run a block's threads as vector lanes instead
 * (runtime/cpu.c); with one thread a block is plain scalar C. */
#ifndef MX_HOST_BLOCKS_H
#define MX_HOST_BLOCKS_H

#include "codegen.h"

/* Tiles that give every block one thread: the scan's lanes decomposition
 * with one lane and one row per block, which keeps a row's states in one
 * thread's registers; row kernels' thread count is only checked, the CPU
 * running each row's loops whole. */
mx_tiles mx_host_tiles(mx_fusion kind);

/* The blocks of group k's kernel: a row kernel and the scan run the grid the
 * emitter chose (rows, rows of channels); an element kernel strides its
 * grid over the elements, so a grid of one block per `lanes` elements of its
 * largest value makes each block one element, or one vector of them when
 * the block's threads run as vector lanes (and a thread's share
 * contiguous). grain: the fewest blocks worth a thread of their own. */
void mx_host_blocks(const mx_program *p, int group, const mx_kernel *k, int lanes, int64_t *blocks,
                    int64_t *grain);

#endif
