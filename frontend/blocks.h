/* blocks.h: mixer builders (blocks.c). Each takes tokens x[Bt, L, C] (after
 * the pre-norm) and returns the mixer's output [Bt, L, C]. Params are named
 * under the builder's current layer. */
#ifndef MX_BLOCKS_H
#define MX_BLOCKS_H

#include "build.h"

/* Selective or quasi-separable token mixer over an h x w grid (h = 1: 1D). */
int mx_build_token_mixer(mx_builder *b, const mx_mixer_spec *ms, int x, int64_t h, int64_t w);
/* The cw channel mixer: a bidirectional scan over each token's channels. */
int mx_build_cw_mixer(mx_builder *b, const mx_mixer_spec *ms, int x);

#endif
