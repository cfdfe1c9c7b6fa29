/* exec.h: running a generated module over a planned program.
 *
 * One walk serves every device. Open loads the module through the device,
 * lays out the activation arena (one allocation, every materialised value
 * at its planned offset, p->slots) and a buffer of its own for every input,
 * param, const and weight, uploads those in their dtype and poisons the
 * arena. Forward runs the groups in schedule order: a kernel launch, or a
 * matmul group given to the device's GEMM, each decoded by mx_gemm_decode
 * (gemm.h), so the emulation checks the very description cuBLASLt gets.
 * Download brings the graph outputs back as f32. A loaded program runs any
 * number of forwards (graph capture and replay, benchmarks).
 *
 * A device is a table of the few things that differ: memory, copies, the
 * module, launch, matmul, and a hook after each group (event timing). The
 * host emulation is here (mx_exec_emu), the CUDA driver and cuBLASLt in
 * gpu.h (mx_gpu_load). docs/codegen.md, "Running". */
#ifndef MX_EXEC_H
#define MX_EXEC_H

#include "codegen.h"

typedef struct mx_exec mx_exec;

/* What a device provides. Pointers are the device's (host memory under
 * emulation); ctx is the device's own state, passed back to every entry. */
typedef struct {
    const char *name;
    void *ctx;
    /* Its memory is this process's (the cpu): f32 inputs and params are read
     * where the buffers given to upload hold them, not copied, so those
     * must outlive the exec and keep their addresses (a compiled model's
     * buffers do); a model's weights are then held once, not twice. */
    bool reads_host;
    mx_status (*alloc)(void *ctx, size_t bytes, void **out, mx_diag *d);
    void (*release)(void *ctx, void *ptr);
    mx_status (*upload)(void *ctx, void *dst, const void *src, size_t bytes, mx_diag *d);
    /* Waits for the forward passes enqueued before it. */
    mx_status (*download)(void *ctx, void *dst, const void *src, size_t bytes, mx_diag *d);
    /* Compiles and loads m (once, by open); unload undoes a load that
     * succeeded (close). */
    mx_status (*load)(void *ctx, const mx_program *p, const mx_module *m, mx_diag *d);
    void (*unload)(void *ctx);
    /* params: kernelParams, one pointer to each buffer pointer, in k->args
     * order; k runs group `group`. */
    mx_status (*launch)(void *ctx, int group, const mx_kernel *k, void **params, mx_diag *d);
    /* Runs matmul group `group`; mx_exec_value_ptr gives its buffers. */
    mx_status (*matmul)(void *ctx, const mx_exec *x, int group, mx_diag *d);
    /* Optional (NULL: none): called after each group is enqueued. */
    mx_status (*group_done)(void *ctx, int group, mx_diag *d);
} mx_exec_device;

/* Loads m on dev and uploads b's inputs and params of p->g (as f32; derived
 * params bound first with mx_program_bind_init; b NULL: nothing uploaded
 * yet, mx_exec_upload later). p must be fused and planned;
 * p, m and dev must outlive the result. On error *out is NULL and everything
 * is released. */
mx_status mx_exec_open(const mx_program *p, const mx_module *m, const mx_exec_device *dev,
                       const mx_buffers *b, mx_exec **out, mx_diag *d);
/* Uploads b's inputs and params again (new data, same program). */
mx_status mx_exec_upload(mx_exec *x, const mx_buffers *b, mx_diag *d);
/* Fills the arena with 0xFF bytes (NaN in every dtype), so a value read
 * before it is written shows; open does it once. */
mx_status mx_exec_poison(mx_exec *x, mx_diag *d);
/* Enqueues one forward pass: every group in schedule order. */
mx_status mx_exec_forward(mx_exec *x, mx_diag *d);
/* Enqueues group k alone (a kernel launch or a matmul). */
mx_status mx_exec_group(mx_exec *x, int k, mx_diag *d);
/* The graph outputs into b as f32 (allocating where NULL). */
mx_status mx_exec_download(mx_exec *x, mx_buffers *b, mx_diag *d);
/* Releases the buffers and unloads the module; NULL is fine. */
void mx_exec_close(mx_exec *x);

/* n numbers of dtype t from / to f32 (round to nearest even, ir/half.h). */
void mx_storage_pack(mx_dtype t, const float *x, int64_t n, void *out);
void mx_storage_unpack(mx_dtype t, const void *in, int64_t n, float *x);

/* The device buffer of value v in its dtype (arena slot, or a source's or
 * weight's own buffer); NULL for a value with no buffer (computed inside a
 * kernel). */
void *mx_exec_value_ptr(const mx_exec *x, int v);

/* The whole walk once on the host emulation: compiles m->source with the
 * host compiler (runtime/emu.h), runs kernels as fibers and matmul groups as
 * mx_gemm_run_host over f32 copies of their operands, results rounded to
 * their dtype and stored. b as for mx_exec_open; it receives the outputs. */
mx_status mx_exec_emu(const mx_program *p, const mx_module *m, mx_buffers *b, mx_diag *d);
/* The host emulation's device table; *slot receives the loaded module. */
struct mx_emu_module;
mx_exec_device mx_exec_emu_device(struct mx_emu_module **slot);

#endif
