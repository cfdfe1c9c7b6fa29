/* run_model.c: a model compiled and run through the installed library,
 * fed with the caller's own input. Build: cc run_model.c $(pkg-config --cflags --libs mixc) */
#include <math.h>
#include <mixc.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    mx_diag d;
    mx_target t;
    mx_tensor_info in;
    mx_model *m = argc > 1 ? mx_model_load(argv[1], NULL, 0, &d) : NULL;
    mx_compiled *c = m && mx_target_choose(argc > 2 ? argv[2] : "auto", NULL, &t, NULL, 0, &d) == MX_OK
                         ? mx_compile_model(m, &t, NULL, &d) : NULL;
    if (!c || mx_init_weights(c, 1, &d) || mx_tensor_info_of(c, MX_ROLE_INPUT, 0, &in, &d))
        return fprintf(stderr, "%s\n", argc > 1 ? d.msg : "usage: run_model SPEC [DEVICE]"), 1;
    float *x = malloc((size_t)in.numel * sizeof *x);
    for (int64_t i = 0; i < in.numel; i++) /* our own input: sin(0.37 i) */
        x[i] = (float)sin(0.37 * (double)i);
    if (mx_set_input(c, in.name, x, MX_F32, in.rank, in.dims, &d) || mx_run(c, &d))
        return fprintf(stderr, "%s\n", d.msg), 1;
    const float *y = mx_output(c, NULL);
    mx_tensor_info out;
    mx_tensor_info_of(c, MX_ROLE_OUTPUT, 0, &out, &d);
    double checksum = 0; /* as mixc run prints it */
    for (int64_t i = 0; i < out.numel; i++)
        checksum += (double)y[i] * (double)(1 + i % 7);
    printf("%%%s checksum=%.9g\n", out.name, checksum);
    mx_compiled_free(c);
    mx_model_free(m);
    free(x);
    return 0;
}
