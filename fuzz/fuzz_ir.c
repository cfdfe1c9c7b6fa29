/* fuzz_ir.c: the text IR parser (docs/ir.md).
 *
 * Input: IR text. Promises: it parses into a verified graph or fails with a
 * message; a parsed graph prints as text that parses back to the same text. */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = fuzz_text(data, size);
    mx_diag d = {{0}};
    mx_graph *g = mx_graph_parse(text, "fuzz.mxir", &d);
    FUZZ_REQUIRE(g || d.msg[0], "no graph and no message");
    if (g) {
        FUZZ_REQUIRE(mx_graph_verify(g, &d) == MX_OK, "parsed graph fails to verify: %s", d.msg);
        char *printed = mx_graph_print(g);
        mx_graph *again = mx_graph_parse(printed, "printed", &d);
        FUZZ_REQUIRE(again, "printed graph does not parse: %s\n%s", d.msg, printed);
        char *reprinted = mx_graph_print(again);
        FUZZ_REQUIRE(strcmp(printed, reprinted) == 0, "print/parse/print differs:\n%s\n----\n%s", printed,
                     reprinted);
        free(reprinted);
        mx_graph_free(again);
        free(printed);
        mx_graph_free(g);
    }
    free(text);
    return 0;
}
