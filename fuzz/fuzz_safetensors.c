/* fuzz_safetensors.c: the safetensors weights loader (docs/weights.md).
 *
 * Input: a .safetensors file, loaded against a small fixed graph whose params
 * cover every dtype. The loader takes a path, so each input is written to one
 * temporary file per process first. Promises: a load succeeds, filling every
 * param, or fails with a message, leaving the buffers untouched. */
#include <unistd.h>

#include "fuzz.h"

static const char graph_text[] =
    "graph weights {\n"
    "  %x = input() : f32[2,3]\n"
    "  %in_proj.weight = param() : f32[4,3]\n"
    "  %layers.0.A_log = param() : bf16[4]\n"
    "  %norm.bias = param() : f16[2,2]\n"
    "  %y = linear(%x, %in_proj.weight) : f32[2,4]\n"
    "  output %y\n"
    "  output %layers.0.A_log\n"
    "  output %norm.bias\n"
    "}\n";

static mx_graph *graph;
static char path[64];

static void setup(void) {
    mx_diag d = {{0}};
    graph = mx_graph_parse(graph_text, "weights.mxir", &d);
    FUZZ_REQUIRE(graph, "the fixed graph: %s", d.msg);
    snprintf(path, sizeof path, "/tmp/mixc-fuzz-%ld.safetensors", (long)getpid());
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!graph)
        setup();
    FILE *f = fopen(path, "wb");
    FUZZ_REQUIRE(f && fwrite(data, 1, size, f) == size && fclose(f) == 0, "cannot write %s", path);
    mx_buffers *b = mx_buffers_new(graph);
    mx_diag d = {{0}};
    mx_status st = mx_weights_load(graph, b, path, &d);
    FUZZ_FAILED_WITH_MESSAGE(st, d);
    for (int i = 0; i < mx_graph_input_count(graph); i++) {
        int v = mx_graph_input(graph, i);
        if (mx_graph_value_is_param(graph, v))
            FUZZ_REQUIRE((b->data[v] != NULL) == (st == MX_OK), "param %s: %s after status %d",
                         mx_graph_value_name(graph, v), b->data[v] ? "filled" : "empty", (int)st);
    }
    mx_buffers_free(b);
    unlink(path);
    return 0;
}
