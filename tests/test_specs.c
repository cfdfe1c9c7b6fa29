/* test_specs.c: model specs (docs/spec.md) fail with messages that name the
 * JSON path and say what is wrong, overrides (--set) work in every form, and
 * each task's defaults build the graph the docs describe.
 *
 * The malformed specs are one table of {json, overrides, expected text}; the
 * whole message is matched (strstr), path and "got ..." included, since the
 * message is the user interface. The suite runs under ASan, so an error path
 * that leaks or reads freed JSON fails it. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "ir.h"
#include "mixc.h"

/* Specs are written with single quotes, which read better inside C strings;
 * q() turns them into JSON's double quotes (no spec here needs a real '). */
static char *q(const char *text) {
    char *out = malloc(strlen(text) + 1);
    size_t i = 0;
    for (; text[i]; i++)
        out[i] = text[i] == '\'' ? '"' : text[i];
    out[i] = 0;
    return out;
}

/* Small valid specs of each task, completed by their stage list. */
#define SEQ(stages) "{'name':'s','task':'sequence','input':{'length':8},'stages':[" stages "]}"
#define VIS(stages)                                                                            \
    "{'name':'v','task':'vision','input':{'image_size':32},'head':{'classes':10},'stages':[" stages "]}"
#define SER(stages)                                                                            \
    "{'name':'t','task':'series','input':{'variates':3,'lookback':32},'head':{'horizon':8},"      \
    "'stages':[" stages "]}"
#define W16 "{'width':16,'depth':2}"
#define E "t.json: error: " /* the prefix of every spec error (not of --set ones) */

typedef struct {
    const char *json;
    const char *set[3]; /* overrides, NULL-terminated */
    const char *want;
} bad_spec;

static const bad_spec bad_specs[] = {
    /* ---- JSON syntax: file:line:col of the first bad character ---- */
    {"{'name': 's',\n 'task': }", {0}, "t.json:2:10: error: malformed JSON"},
    {"", {0}, "t.json:1:1: error: malformed JSON"},
    {"{'name': 's'", {0}, "t.json:1:13: error: malformed JSON"}, /* at the end */
    /* trailing text after the root is an error too, not ignored */
    {SEQ(W16) "\n}", {0}, "t.json:2:1: error: malformed JSON"},

    /* ---- the root and its required fields ---- */
    {"[1,2]", {0}, E "(root): expected an object, got [1,2]"},
    {"{'task':'sequence','input':{'length':8},'stages':[" W16 "]}", {0},
     E "name: missing (the model's name)"},
    {"{'name':'s','input':{'length':8},'stages':[" W16 "]}", {0},
     E "task: missing (one of \"sequence\", \"vision\", \"series\", \"language\")"},
    {"{'name':'s','task':'sequence','stages':[" W16 "]}", {0}, E "input: missing (the input's sizes)"},
    {"{'name':'s','task':'vision','stages':[" W16 "]}", {0}, E "input: missing (the input's sizes)"},
    {"{'name':'s','task':'sequence','input':{'length':8}}", {0},
     E "stages: missing (expected a list of 1 to 8 items)"},
    {SEQ(""), {0}, E "stages: expected a list of 1 to 8 items, got []"},
    {SEQ(W16 "," W16 "," W16 "," W16 "," W16 "," W16 "," W16 "," W16 "," W16), {0},
     E "stages: expected a list of 1 to 8 items, got [{\"width\":16,\"depth\":2},"},
    {SEQ("{'depth':2}"), {0}, E "stages[0].width: missing (the first stage sets the model width)"},
    {"{'name':'s','task':'series','input':{'lookback':32},'stages':[" W16 "]}", {0},
     E "input.variates: missing"},
    {"{'name':'s','task':'series','input':{'variates':3},'stages':[" W16 "]}", {0},
     E "input.lookback: missing"},
    {"{'name':'s','task':'sequence','input':{},'stages':[" W16 "]}", {0}, E "input.length: missing"},

    /* ---- unknown and repeated fields ---- */
    {"{'name':'s','model':'x','task':'sequence','input':{'length':8},'stages':[" W16 "]}", {0},
     E "model: unknown field (this object takes: name, task, batch, dtype, input, stem, head, "
       "patching, stages)"},
    {SEQ("{'width':16,'token_mixer':{'dstate':8}}"), {0},
     E "stages[0].token_mixer.dstate: unknown field (this object takes: kind, expand, d_state, "
       "dt_rank, d_conv, conv2d, scans, shared_conv, out_norm, switch_scans, bias, width_factor)"},
    {SEQ("{'width':16,'dept':2}"), {0}, E "stages[0].dept: unknown field (this object takes: width, "},
    {"{'name':'s','task':'sequence','input':{'length':8,'width':4},'stages':[" W16 "]}", {0},
     E "input.width: unknown field (this object takes: length)"},
    {VIS("{'width':16}"), {"input.length=8"},
     E "input.length: unknown field (this object takes: image_size, channels)"},
    {VIS("{'width':16}"), {"revin=false"}, E "revin: unknown field"},
    {VIS("{'width':16}"), {"head.horizon=96"},
     E "head.horizon: unknown field (this object takes: classes)"},
    /* cw is a channel mixer's option only */
    {SEQ("{'width':16,'token_mixer':{'cw':true}}"), {0}, E "stages[0].token_mixer.cw: unknown field"},
    /* cJSON would keep both and read the first: the second must not be ignored */
    {SEQ("{'width':16,'depth':2,'depth':3}"), {0}, E "stages[0].depth: is given twice"},

    /* ---- wrong types ---- */
    {"{'name':5,'task':'sequence','input':{'length':8},'stages':[" W16 "]}", {0},
     E "name: expected a string, got 5"},
    {SEQ("{'width':16,'token_mixer':{'d_state':'16'}}"), {0},
     E "stages[0].token_mixer.d_state: expected an integer >= 1, got \"16\""},
    {SEQ("{'width':16,'depth':2.5}"), {0}, E "stages[0].depth: expected an integer in [1, 256], got 2.5"},
    {SEQ("{'width':16,'token_mixer':{'expand':true}}"), {0},
     E "stages[0].token_mixer.expand: expected a number in [0.0625, 16], got true"},
    {SEQ("{'width':16,'residual':'yes'}"), {0}, E "stages[0].residual: expected true or false, got \"yes\""},
    {SEQ("{'width':16,'weighted_average':1}"), {0},
     E "stages[0].weighted_average: expected true or false, got 1"},
    {"{'name':'s','task':'sequence','input':{'length':8},'stages':{'width':16}}", {0},
     E "stages: expected a list of 1 to 8 items, got {\"width\":16}"},
    {"{'name':'s','task':'sequence','input':[8],'stages':[" W16 "]}", {0},
     E "input: expected an object, got [8]"},
    {SEQ(W16 ",3"), {0}, E "stages[1]: expected an object, got 3"},
    {SEQ("{'width':16,'token_mixer':'mamba'}"), {0},
     E "stages[0].token_mixer: expected an object, got \"mamba\""},
    {SEQ("{'width':16,'token_mixer':{'scans':'row'}}"), {0},
     E "stages[0].token_mixer.scans: expected a list of 1 to 16 keywords, got \"row\""},
    {SEQ("{'width':16,'token_mixer':{'scans':[]}}"), {0},
     E "stages[0].token_mixer.scans: expected a list of 1 to 16 keywords, got []"},
    {"{'name':'s','task':3,'input':{'length':8},'stages':[" W16 "]}", {0},
     E "task: expected one of \"sequence\", \"vision\", \"series\", \"language\", got 3"},
    {VIS("{'width':16}"), {"stem=4"}, E "stem: expected an object, got 4"},

    /* ---- out of range ---- */
    {"{'name':'s','task':'sequence','batch':0,'input':{'length':8},'stages':[" W16 "]}", {0},
     E "batch: expected an integer >= 1, got 0"},
    {SEQ("{'width':16,'token_mixer':{'d_state':0}}"), {0},
     E "stages[0].token_mixer.d_state: expected an integer >= 1, got 0"},
    {SEQ("{'width':16,'token_mixer':{'expand':0}}"), {0},
     E "stages[0].token_mixer.expand: expected a number in [0.0625, 16], got 0"},
    {SEQ("{'width':16,'token_mixer':{'expand':100}}"), {0},
     E "stages[0].token_mixer.expand: expected a number in [0.0625, 16], got 100"},
    {SEQ("{'width':16,'depth':0}"), {0}, E "stages[0].depth: expected an integer in [1, 256], got 0"},
    {SEQ("{'width':0}"), {0}, E "stages[0].width: expected an integer in [1, 65536], got 0"},
    {SEQ("{'width':16,'token_mixer':{'d_conv':16}}"), {0},
     E "stages[0].token_mixer.d_conv: expected an integer in [0, 15], got 16"},
    {SEQ("{'width':16,'channel_every':-1}"), {0},
     E "stages[0].channel_every: expected an integer in [0, 256], got -1"},
    {SEQ(W16), {"input.length=0"}, E "input.length: expected an integer >= 1, got 0"},
    {VIS("{'width':16}"), {"stem.patch=65"}, E "stem.patch: expected an integer in [1, 64], got 65"},

    /* ---- keywords ---- */
    {"{'name':'s','task':'text','input':{'length':8},'stages':[" W16 "]}", {0},
     E "task: expected one of \"sequence\", \"vision\", \"series\", \"language\", got \"text\""},
    {SEQ("{'width':16,'token_mixer':{'kind':'mamba'}}"), {0},
     E "stages[0].token_mixer.kind: expected one of \"none\", \"selective\", \"qs\", got \"mamba\""},
    {SEQ("{'width':16,'norm':'batchnorm'}"), {0},
     E "stages[0].norm: expected one of \"layernorm\", \"rmsnorm\", \"none\", got \"batchnorm\""},
    {"{'name':'s','task':'sequence','dtype':'fp8','input':{'length':8},'stages':[" W16 "]}", {0},
     E "dtype: expected one of \"f32\", \"f16\", \"bf16\", got \"fp8\""},
    {VIS("{'width':16,'token_mixer':{'scans':['row','zigzag']}}"), {0},
     E "stages[0].token_mixer.scans[1]: expected one of \"row\", \"row_rev\", \"col\", \"col_rev\", "
       "\"snake\", \"snake_rev\", \"snake_col\", \"snake_col_rev\", \"diag\", \"diag_rev\", got \"zigzag\""},
    {SEQ("{'width':16,'channel_mixer':{'scans':[0]}}"), {0},
     E "stages[0].channel_mixer.scans[0]: expected one of \"row\", "},
    {SEQ("{'width':16,'token_mixer':{'kind':'none'}}"), {0},
     E "stages[0].token_mixer.kind: a token mixer is \"selective\" or \"qs\", got \"none\""},

    /* ---- scan orders ---- */
    {VIS("{'width':16,'token_mixer':{'scans':['row','col','row']}}"), {0},
     E "stages[0].token_mixer.scans[2]: \"row\" is listed twice (also scans[0])"},
    {SEQ("{'width':16,'token_mixer':{'scans':['row','col']}}"), {0},
     E "stages[0].token_mixer.scans[1]: \"col\" needs an image grid; a 1D sequence has only "
       "\"row\" (forward) and \"row_rev\" (backward)"},
    {SER("{'width':16,'token_mixer':{'scans':['snake']}}"), {0},
     E "stages[0].token_mixer.scans[0]: \"snake\" needs an image grid"},
    /* a vision channel mixer scans each token's channels: 1D as well */
    {VIS("{'width':16,'channel_mixer':{'scans':['row','diag']}}"), {0},
     E "stages[0].channel_mixer.scans[1]: \"diag\" needs an image grid"},
    {SEQ("{'width':16,'token_mixer':{'switch_scans':true}}"), {0},
     E "stages[0].token_mixer.switch_scans: Switch of Scans needs at least 2 scans"},

    /* ---- convs ---- */
    {SEQ("{'width':16,'token_mixer':{'conv2d':true,'d_conv':3}}"), {0},
     E "stages[0].token_mixer.conv2d: a 2D conv needs an image grid (task \"vision\")"},
    {SER("{'width':16,'channel_mixer':{'conv2d':true}}"), {0},
     E "stages[0].channel_mixer.conv2d: a 2D conv needs an image grid (task \"vision\")"},
    {VIS("{'width':16,'channel_mixer':{'conv2d':true,'d_conv':3}}"), {0},
     E "stages[0].channel_mixer.conv2d: a channel mixer scans a 1D sequence; use a 1D conv"},
    {VIS("{'width':16,'token_mixer':{'d_conv':4}}"), {0},
     E "stages[0].token_mixer.d_conv: a 2D \"same\" conv needs an odd kernel, got 4"},
    {VIS("{'width':16,'token_mixer':{'shared_conv':false}}"), {0},
     E "stages[0].token_mixer.shared_conv: a 2D conv runs on the grid once, before the scans; "
       "it cannot be per scan"},

    /* ---- channel mixers ---- */
    {SER("{'width':16,'channel_mixer':{'cw':true}}"), {0},
     E "stages[0].channel_mixer.cw: a series model mixes its variates; cw is for sequence and vision"},
    {SEQ("{'width':16,'channel_mixer':{'cw':false}}"), {0},
     E "stages[0].channel_mixer.cw: a sequence model has no second token axis; its channel mixer "
       "scans each token's channels (cw true)"},
    {SEQ("{'width':16,'depth':2,'channel_every':3}"), {0},
     E "stages[0].channel_every: is 3 but the stage has only 2 token mixers"},
    /* options that the builder of the mixer would ignore */
    {SEQ("{'width':16,'channel_mixer':{'out_norm':true}}"), {0},
     E "stages[0].channel_mixer.out_norm: a cw mixer has no LayerNorm(E) before its gate"},
    {SEQ("{'width':16,'token_mixer':{'width_factor':2}}"), {0},
     E "stages[0].token_mixer.width_factor: only a cw channel mixer has channel positions to size"},
    {SER("{'width':16,'channel_mixer':{'width_factor':2}}"), {0},
     E "stages[0].channel_mixer.width_factor: only a cw channel mixer has channel positions to size"},
    /* E = expand x width must be whole; a cw mixer's E is expand x 1 */
    {SEQ("{'width':10,'token_mixer':{'expand':1.25}}"), {0},
     E "stages[0].token_mixer.expand: 1.25 x 10 features is not a whole number of channels"},
    {SEQ("{'width':16,'channel_mixer':{'expand':1.5}}"), {0},
     E "stages[0].channel_mixer.expand: 1.5 x 1 features is not a whole number of channels"},
    {SEQ("{'width':10,'channel_mixer':{'width_factor':0.25}}"), {0},
     E "stages[0].channel_mixer.width_factor: 0.25 x 10 channels is not a whole number of positions"},

    /* ---- stages and merging ---- */
    {VIS("{'width':16,'merge':true}"), {0},
     E "stages[0].merge: the first stage cannot start with patch merging"},
    {SEQ(W16 ",{'width':32,'merge':true}"), {0},
     E "stages[1].merge: patch merging needs an image grid (task \"vision\")"},
    {SEQ(W16 ",{'width':32}"), {0}, E "stages[1].width: changes from 16 to 32 without patch merging"},
    {VIS("{'width':16},{'width':32,'merge':false}"), {0},
     E "stages[1].width: changes from 16 to 32 without patch merging"},

    /* ---- sizes that must fit together ---- */
    {VIS("{'width':16}"), {"stem.patch=5"}, E "stem.patch: 5 does not divide input.image_size 32"},
    /* 24 / 4 = 6, merged to 3, which cannot merge again */
    {VIS("{'width':16},{'width':32},{'width':64}"), {"input.image_size=24"},
     E "stages[2].merge: the grid is 3x3 here; patch merging needs an even side"},
    {SER(W16), {"patching.size=48"},
     E "patching.size: 48 is longer than input.lookback 32 (+ one stride of padding)"},

    /* ---- sections of another task ---- */
    {SEQ(W16), {"stem.patch=4"}, E "stem: only a \"vision\" model has a stem"},
    {VIS("{'width':16}"), {"patching.size=4"}, E "patching: only a \"series\" model has patching"},
    {SEQ(W16), {"head.classes=10"}, E "head: a \"sequence\" model has no head"},
    {SER(W16), {"stem={}"}, E "stem: only a \"vision\" model has a stem"},

    /* ---- overrides: their own messages, without the file prefix ---- */
    {SEQ(W16), {"stages[0].depth"}, "--set stages[0].depth: expected PATH=VALUE, e.g. stages[2].depth=4"},
    {SEQ(W16), {"=3"}, "--set =3: expected PATH=VALUE"},
    {SEQ(W16), {"stages[3].depth=2"},
     "--set stages[3].depth=2: index 3 is out of range (the list has 1 items)"},
    {SEQ(W16), {"stages[-1].depth=2"}, "--set stages[-1].depth=2: index -1 is out of range"},
    {SEQ(W16), {"name[0]=x"}, "--set name[0]=x: [0] follows something that is not a list"},
    {SEQ(W16), {"stages.depth=2"}, "--set stages.depth=2: 'depth' follows something that is not an object"},
    {SEQ(W16), {"stages[0].de-pth=2"}, "--set stages[0].de-pth=2: unexpected '-' in the path"},
    {SEQ(W16), {"stages[0]..depth=2"}, "--set stages[0]..depth=2: expected a field name at '.depth'"},
    {SEQ(W16), {"stages[x].depth=2"}, "--set stages[x].depth=2: expected [index] at '[x].depth'"},
    {SEQ(W16), {"stages[0]."}, "--set stages[0].: expected PATH=VALUE"},
    {SEQ(W16), {"stages[0].=2"}, "--set stages[0].=2: expected a field name after the last '.'"},
    {SEQ(W16), {"a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q=1"},
     "--set a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q=1: path too deep"},
    /* token_mixer is created, but a list is never invented */
    {SEQ(W16), {"stages[0].token_mixer.scans[0]=col"},
     "--set stages[0].token_mixer.scans[0]=col: the spec has no list 'scans' there"},
    /* the first failing override stops; the later one is not applied */
    {SEQ(W16), {"stages[0].depth=3", "stages[9].depth=1"},
     "--set stages[9].depth=1: index 9 is out of range (the list has 1 items)"},
    /* a misspelt field is created, then reported by the reader */
    {SEQ(W16), {"stages[0].dpth=3"}, E "stages[0].dpth: unknown field (this object takes: width, "},
    /* text that is not wholly JSON is a string, so the reader names the type */
    {SEQ(W16), {"stages[0].depth=two"},
     E "stages[0].depth: expected an integer in [1, 256], got \"two\""},
    {SEQ(W16), {"batch=4x"}, E "batch: expected an integer >= 1, got \"4x\""},
    {SEQ(W16), {"stages[0].token_mixer.scans=[\"row\",\"col\"]"},
     E "stages[0].token_mixer.scans[1]: \"col\" needs an image grid"},
};

static int count_overrides(const char *const *set) {
    int n = 0;
    while (n < 3 && set[n])
        n++;
    return n;
}

static void test_bad_specs(void) {
    int n = (int)(sizeof bad_specs / sizeof *bad_specs);
    for (int i = 0; i < n; i++) {
        const bad_spec *c = &bad_specs[i];
        char *json = q(c->json);
        mx_diag diag = {{0}};
        mx_model *m = mx_model_parse(json, "t.json", c->set, count_overrides(c->set), &diag);
        CHECK_MSG(m == NULL, "case %d (%s) was accepted", i, c->want);
        CHECK_MSG(strstr(diag.msg, c->want) != NULL, "case %d:\n  want: %s\n  got:  %s", i, c->want,
                  diag.msg);
        mx_model_free(m);
        free(json);
    }
    printf("%d malformed specs\n", n);
}

/* ---- valid specs --------------------------------------------------------- */

static mx_model *parse(const char *spec, const char *const *set, int n_set) {
    char *json = q(spec);
    mx_diag diag = {{0}};
    mx_model *m = mx_model_parse(json, "t.json", set, n_set, &diag);
    CHECK_MSG(m != NULL, "%s", diag.msg);
    free(json);
    return m;
}

static int count_op(const mx_model *m, mx_op op) {
    const mx_graph *g = mx_model_graph(m);
    int n = 0;
    for (int i = 0; i < g->n_nodes; i++)
        n += g->nodes[i].op == op;
    return n;
}

/* The dims of a named value as "a,b,c", "" when absent. */
static const char *dims_of(const mx_model *m, const char *name) {
    static char buf[128];
    const mx_graph *g = mx_model_graph(m);
    int v = mx_graph_value_find(g, name);
    buf[0] = 0;
    if (v < 0)
        return buf;
    size_t n = 0;
    for (int i = 0; i < mx_graph_value_rank(g, v); i++)
        n += (size_t)snprintf(buf + n, sizeof buf - n, "%s%lld", i ? "," : "",
                              (long long)mx_graph_value_dims(g, v)[i]);
    return buf;
}

#define CHECK_DIMS(m, name, want)                                                               \
    CHECK_MSG(strcmp(dims_of(m, name), want) == 0, "%s: [%s], want [%s]", name, dims_of(m, name), want)

static const char *const no_set[1] = {NULL};

/* Sequence defaults: a selective token mixer (1 forward scan, causal conv k=4,
 * expand 2, N 16, R = ceil(16/16)) and a cw channel mixer after every token
 * mixer (2 scans, a conv per scan, expand 1, w = 2C positions). */
static void test_sequence_defaults(void) {
    mx_model *m = parse(SEQ(W16), no_set, 0);
    if (!m)
        return;
    CHECK(count_op(m, MX_OP_SELECTIVE_SCAN) == 2 * (1 + 2));
    CHECK(count_op(m, MX_OP_DWCONV1D) == 2 * (1 + 2));
    CHECK(count_op(m, MX_OP_DWCONV2D) == 0);
    CHECK_DIMS(m, "tokens", "1,8,16");
    CHECK_DIMS(m, "hidden", "1,8,16");
    const char *t = "stages.0.blocks.1.token_mixer.";
    char name[128];
#define P(fmt) (snprintf(name, sizeof name, fmt, t), name)
    CHECK_DIMS(m, P("%sin_proj.weight"), "64,16");
    CHECK_DIMS(m, P("%sconv.weight"), "32,4");
    CHECK_DIMS(m, P("%sscans.0.x_proj.weight"), "33,32");
    CHECK_DIMS(m, P("%sscans.0.dt_proj.weight"), "32,1");
    CHECK_DIMS(m, P("%sscans.0.A_log"), "32,16");
    CHECK_DIMS(m, P("%sscans.0.D"), "32");
    CHECK_DIMS(m, P("%sscans.0.dt_bias"), "32");
    CHECK_DIMS(m, P("%sout_proj.weight"), "16,32");
    CHECK_DIMS(m, P("%snorm.weight"), "16");
    /* block 1's token mixer averages x, x, y_T(0), y_C(0) */
    CHECK_DIMS(m, P("%savg"), "4");
    CHECK_DIMS(m, P("%sin_proj.bias"), "");
    t = "stages.0.blocks.1.channel_mixer.";
    CHECK_DIMS(m, P("%sin_proj.weight"), "64,16");
    CHECK_DIMS(m, P("%sscans.1.conv.weight"), "1,4");
    CHECK_DIMS(m, P("%sscans.1.A_log"), "1,16");
    CHECK_DIMS(m, P("%sout_proj.weight"), "16,32");
    CHECK_DIMS(m, P("%savg"), "5");
#undef P
    mx_model_free(m);
}

/* Vision defaults: stem 4x4, SS2D token mixer (3x3 conv on the grid, 4
 * cross-scans, out_norm), patch merging from stage 1, 1000 classes. */
static void test_vision_defaults(void) {
    mx_model *m = parse("{'name':'v','task':'vision','input':{},'stages':[{'width':16,'channel_every':0},"
                        "{'width':32,'channel_mixer':{'kind':'none'}}]}",
                        no_set, 0);
    if (!m)
        return;
    CHECK(count_op(m, MX_OP_SELECTIVE_SCAN) == 2 * 4);
    CHECK(count_op(m, MX_OP_SCAN_GATHER) == 2 * 3); /* "row" needs no gather */
    CHECK(count_op(m, MX_OP_SCAN_SCATTER) == 2);
    CHECK(count_op(m, MX_OP_DWCONV2D) == 2);
    CHECK(count_op(m, MX_OP_SPACE_TO_DEPTH) == 1);
    CHECK_DIMS(m, "image", "1,3,224,224");
    CHECK_DIMS(m, "logits", "1,1000");
    CHECK_DIMS(m, "stem.weight", "16,3,4,4");
    CHECK_DIMS(m, "stages.1.merge.reduction.weight", "32,64");
    CHECK_DIMS(m, "stages.0.blocks.0.token_mixer.conv.weight", "32,3,3");
    CHECK_DIMS(m, "stages.0.blocks.0.token_mixer.scans.3.A_log", "32,16");
    CHECK_DIMS(m, "stages.0.blocks.0.token_mixer.out_norm.weight", "32");
    CHECK_DIMS(m, "head.fc.weight", "1000,32");
    mx_model_free(m);

    /* the default channel mixer is cw, bidirectional; d_conv 0 drops the conv */
    m = parse(VIS("{'width':16,'token_mixer':{'d_conv':0}}"), no_set, 0);
    if (!m)
        return;
    CHECK(count_op(m, MX_OP_DWCONV2D) == 0);
    CHECK(count_op(m, MX_OP_SELECTIVE_SCAN) == 4 + 2);
    CHECK_DIMS(m, "stages.0.blocks.0.channel_mixer.in_proj.weight", "64,16");
    CHECK_DIMS(m, "stages.0.blocks.0.channel_mixer.scans.0.conv.weight", "1,4");
    mx_model_free(m);
}

/* Series defaults: RevIN, patches of 16 with stride 8, horizon 96, a causal
 * token mixer over patches and a bidirectional mixer over variates. */
static void test_series_defaults(void) {
    mx_model *m = parse("{'name':'t','task':'series','input':{'variates':3,'lookback':64},"
                        "'stages':[{'width':16,'depth':1}]}",
                        no_set, 0);
    if (!m)
        return;
    CHECK(count_op(m, MX_OP_SELECTIVE_SCAN) == 1 + 2);
    CHECK(count_op(m, MX_OP_UNFOLD) == 1);
    CHECK_DIMS(m, "series", "1,3,64");
    CHECK_DIMS(m, "forecast", "1,3,96");
    CHECK_DIMS(m, "revin.weight", "3,1");
    /* (64 + 8 - 16) / 8 + 1 = 8 patches */
    CHECK_DIMS(m, "patch_embed.pos", "8,16");
    CHECK_DIMS(m, "patch_embed.proj.weight", "16,16");
    CHECK_DIMS(m, "stages.0.blocks.0.channel_mixer.in_proj.weight", "64,16");
    CHECK_DIMS(m, "stages.0.blocks.0.channel_mixer.scans.1.conv.weight", "32,4");
    CHECK_DIMS(m, "head.proj.weight", "96,128");
    mx_model_free(m);

    const char *const set[] = {"revin=false"};
    m = parse(SER(W16), set, 1);
    if (!m)
        return;
    CHECK_DIMS(m, "revin.weight", "");
    mx_model_free(m);
}

static void test_overrides(void) {
    const char *plain = SEQ("{'width':16,'depth':1,'channel_mixer':{'kind':'none'}}");
    mx_model *m = parse(plain, no_set, 0);
    if (m)
        CHECK(count_op(m, MX_OP_SELECTIVE_SCAN) == 1);
    mx_model_free(m);

    /* a number */
    const char *const depth[] = {"stages[0].depth=3"};
    m = parse(plain, depth, 1);
    if (m)
        CHECK(count_op(m, MX_OP_SELECTIVE_SCAN) == 3);
    mx_model_free(m);

    /* a later override wins */
    const char *const twice[] = {"stages[0].depth=3", "stages[0].depth=2"};
    m = parse(plain, twice, 2);
    if (m)
        CHECK(count_op(m, MX_OP_SELECTIVE_SCAN) == 2);
    mx_model_free(m);

    /* a missing section is created */
    const char *const none[] = {"stages[0].channel_mixer.kind=none"};
    m = parse(SEQ(W16), none, 1);
    if (m)
        CHECK(count_op(m, MX_OP_SELECTIVE_SCAN) == 2);
    mx_model_free(m);

    /* a JSON list, then one of its items replaced by a plain word */
    const char *const scans[] = {"stages[0].token_mixer.scans=[\"row\",\"row_rev\"]",
                                 "stages[0].token_mixer.scans[1]=row_rev"};
    m = parse(plain, scans, 2);
    if (m) {
        CHECK(count_op(m, MX_OP_SELECTIVE_SCAN) == 2);
        CHECK(count_op(m, MX_OP_SCAN_GATHER) == 1);
    }
    mx_model_free(m);

    /* words that are not JSON become strings: task=vision, name=1st (a JSON
     * prefix "1" must not be taken for the whole value) */
    const char *const vision[] = {"task=vision", "name=1st"};
    m = parse("{'name':'v','task':'series','input':{'image_size':32},'stages':[{'width':16}]}", vision, 2);
    if (m) {
        CHECK(count_op(m, MX_OP_DWCONV2D) == 1);
        CHECK(strcmp(mx_model_graph(m)->name, "_1st") == 0);
    }
    mx_model_free(m);

    /* a quoted JSON string, a bool, a whole object, a whole list item */
    const char *const kinds[] = {"name=\"quoted\"", "stages[0].weighted_average=false",
                                 "stages[0].token_mixer={\"kind\":\"qs\"}"};
    m = parse(plain, kinds, 3);
    if (m) {
        CHECK(strcmp(mx_model_graph(m)->name, "quoted") == 0);
        CHECK(count_op(m, MX_OP_WEIGHTED_SUM) == 0);
        CHECK(count_op(m, MX_OP_SELECTIVE_SCAN) == 2); /* qs: both directions */
    }
    mx_model_free(m);
    const char *const item[] = {"stages[0]={\"width\":8,\"depth\":2}"};
    m = parse(plain, item, 1);
    if (m) {
        CHECK_DIMS(m, "hidden", "1,8,8");
        CHECK(count_op(m, MX_OP_SELECTIVE_SCAN) == 2 * 3);
    }
    mx_model_free(m);
}

/* The limits hold exactly at their edges. */
static void test_edges(void) {
    /* a deep stage: its last mixer averages 2 + 39 + 40 = 81 entries,
     * more than one weighted_sum node takes (the builder sums in chunks) */
    mx_model *m = parse(SEQ("{'width':16,'depth':40}"), no_set, 0);
    if (m)
        CHECK_DIMS(m, "stages.0.blocks.39.channel_mixer.avg", "81");
    mx_model_free(m);
    m = parse(SEQ("{'width':16,'depth':40,'weighted_average':false}"), no_set, 0);
    if (m)
        CHECK(count_op(m, MX_OP_WEIGHTED_SUM) == 0);
    mx_model_free(m);
    /* 8 stages; the patch exactly as long as lookback + one stride */
    m = parse(SEQ(W16 "," W16 "," W16 "," W16 "," W16 "," W16 "," W16 "," W16), no_set, 0);
    mx_model_free(m);
    const char *const len[] = {"patching.size=40"};
    m = parse(SER(W16), len, 1);
    if (m)
        CHECK_DIMS(m, "patch_embed.pos", "1,16");
    mx_model_free(m);
    /* the channel mixer may be switched off with channel_every left as it was */
    const char *const off[] = {"stages[0].channel_mixer.kind=none"};
    m = parse(SEQ("{'width':16,'depth':2,'channel_every':2}"), off, 1);
    if (m)
        CHECK(count_op(m, MX_OP_SELECTIVE_SCAN) == 2);
    mx_model_free(m);
}

int main(void) {
    test_bad_specs();
    test_sequence_defaults();
    test_vision_defaults();
    test_series_defaults();
    test_overrides();
    test_edges();
    return check_summary();
}
