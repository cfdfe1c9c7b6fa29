/* standalone_tables.h: the tables a model that `mixc emit` wrote is made of
 * (model.cu or model.c fills them), the same for the CUDA and the CPU
 * project: buffers (the activation arena at planned offsets, one buffer per
 * input and weight), products as mixc decodes them, the model's inputs and
 * outputs. A step (a kernel launch or a product) is the backend's own:
 * standalone.cuh and standalone_cpu.h define struct mxs_step. C and C++. */
#ifndef MXS_STANDALONE_TABLES_H
#define MXS_STANDALONE_TABLES_H

#include <stddef.h>

enum { MXS_F32, MXS_F16, MXS_BF16 };
enum { MXS_ARENA, MXS_INPUT, MXS_WEIGHT };
enum { MXS_ACT_NONE, MXS_ACT_RELU, MXS_ACT_GELU_TANH };

typedef struct {
    const char *name;
    int kind;          /* MXS_ARENA: at offset in the arena; else a buffer of its own */
    int dtype;
    long long numel;
    long long offset;  /* arena bytes */
} mxs_buffer;

typedef struct {
    int buffer;        /* -1: absent */
    long long offset, ld; /* elements */
    int trans;
    long long batch_stride, outer_stride;
} mxs_operand;

/* Row-major y = act(op(A) op(B) + bias + C), batch x outer times. */
typedef struct {
    int dtype;
    long long m, n, k, batch, outer;
    mxs_operand a, b, c, y;
    int bias;          /* buffer of the [n] bias, -1: none */
    int act;
    int tasks;         /* CPU: the split over the pool (standalone_split.h), as mixc's cpu device runs it */
} mxs_gemm;

typedef struct {
    const char *name;
    int buffer;
} mxs_tensor;

typedef struct mxs_step mxs_step;

typedef struct {
    const char *name;
    long long arena_bytes;
    const mxs_buffer *buffers;
    int n_buffers;
    const mxs_step *steps;
    int n_steps;
    const int *args;   /* per kernel argument: its buffer */
    const mxs_gemm *gemms;
    int n_gemms;
    const mxs_tensor *inputs, *outputs;
    int n_inputs, n_outputs;
} mxs_desc;

static size_t mxs_dtype_size(int t) { return t == MXS_F32 ? 4 : 2; }
static size_t mxs_bytes(const mxs_buffer *b) { return (size_t)b->numel * mxs_dtype_size(b->dtype); }

#endif
