/* fuzz_spec.c: JSON model specs and --set overrides through the frontend.
 *
 * Input: a spec's JSON text, optionally followed by overrides, each after a
 * NUL byte ("path=value", as mixc run --set takes them). Promises: a spec
 * builds or fails with a message; a built graph prints as text that parses
 * back to the same text. */
#include "fuzz.h"

enum { MAX_PRINTED_NODES = 2000 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = fuzz_text(data, size);
    const char *overrides[FUZZ_MAX_OVERRIDES];
    int n = fuzz_overrides(text, size, overrides, FUZZ_MAX_OVERRIDES);
    mx_diag d = {{0}};
    mx_model *m = mx_model_parse(text, "fuzz.json", overrides, n, &d);
    FUZZ_REQUIRE(m || d.msg[0], "no model and no message");
    if (m) {
        const mx_graph *g = mx_model_graph(m);
        FUZZ_REQUIRE(mx_graph_verify(g, &d) == MX_OK, "built graph fails to verify: %s", d.msg);
        mx_stats_free(mx_model_stats(m));
        if (mx_graph_value_count(g) <= MAX_PRINTED_NODES) {
            char *printed = mx_graph_print(g);
            mx_graph *again = mx_graph_parse(printed, "printed", &d);
            FUZZ_REQUIRE(again, "printed graph does not parse: %s", d.msg);
            char *reprinted = mx_graph_print(again);
            FUZZ_REQUIRE(strcmp(printed, reprinted) == 0, "print/parse/print differs");
            free(reprinted);
            mx_graph_free(again);
            free(printed);
        }
        mx_model_free(m);
    }
    free(text);
    return 0;
}
