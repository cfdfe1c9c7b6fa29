/* ops.c: the op descriptor table built from ops.def, the attribute schemas and
 * the enum keyword tables. */
#include <assert.h>
#include <string.h>

#include "ir.h"
#include "ops_impl.h"

const char *const mx_dtype_names[MX_DTYPE_COUNT] = {"f32", "f16", "bf16"};

const char *const mx_attr_names[MX_A_COUNT] = {
    "",
#define X(id, name) name,
    MX_ATTR_KEYS(X)
#undef X
};

const char *const mx_fusion_names[MX_FUSE_COUNT] = {
    "source", "elementwise", "reduce", "norm", "matmul",
    "conv", "layout", "gather", "scan", "wsum",
};

static const char *const reduce_names[] = {"sum", "mean", "max", "var", NULL};
static const char *const conv_mode_names[] = {"causal", "same", NULL};
static const char *const gelu_names[] = {"erf", "tanh", NULL};
static const char *const dtype_keywords[] = {"f32", "f16", "bf16", NULL};
const char *const mx_order_names[] = {
    "row", "row_rev", "col", "col_rev", "snake", "snake_rev",
    "snake_col", "snake_col_rev", "diag", "diag_rev", NULL,
};

#define BIG 1e18
#define END {MX_A_NONE, 0, 0, 0, 0, 0, NULL}
/* key, kind, required, default, lo, hi, names */
#define INT(key, def, lo, hi) {MX_A_##key, MX_AK_INT, false, def, lo, hi, NULL}
#define NEED_INT(key, lo, hi) {MX_A_##key, MX_AK_INT, true, 0, lo, hi, NULL}
#define FLOAT(key, def, lo, hi) {MX_A_##key, MX_AK_FLOAT, false, def, lo, hi, NULL}
#define NEED_INTS(key, lo, hi) {MX_A_##key, MX_AK_INTS, true, 0, lo, hi, NULL}
#define ENUM(key, def, names) {MX_A_##key, MX_AK_ENUM, false, def, 0, 0, names}
#define NEED_ENUM(key, names) {MX_A_##key, MX_AK_ENUM, true, 0, 0, 0, names}
#define NEED_ENUMS(key, names) {MX_A_##key, MX_AK_ENUMS, true, 0, 0, 0, names}
#define FLAG(key) INT(key, 0, 0, 1)

static const mx_attr_spec attrs_none[] = {END};
static const mx_attr_spec attrs_const[] = {FLOAT(VALUE, 0, -BIG, BIG), END};
static const mx_attr_spec attrs_conv2d[] = {INT(STRIDE, 1, 1, 1024), INT(PAD, 0, 0, 1024), END};
static const mx_attr_spec attrs_dwconv[] = {
    ENUM(MODE, MX_CONV_CAUSAL, conv_mode_names), INT(AXIS, -1, -MX_MAX_RANK, MX_MAX_RANK - 1), END};
static const mx_attr_spec attrs_dwconv2d[] = {END};
static const mx_attr_spec attrs_softplus[] = {FLOAT(THRESHOLD, 20, -BIG, BIG), END};
static const mx_attr_spec attrs_gelu[] = {ENUM(APPROX, MX_GELU_ERF, gelu_names), END};
static const mx_attr_spec attrs_scale[] = {FLOAT(VALUE, 1, -BIG, BIG), END};
static const mx_attr_spec attrs_cast[] = {NEED_ENUM(DTYPE, dtype_keywords), END};
static const mx_attr_spec attrs_reduce[] = {
    NEED_ENUM(KIND, reduce_names), INT(AXIS, -1, -MX_MAX_RANK, MX_MAX_RANK - 1), FLAG(KEEPDIM), END};
static const mx_attr_spec attrs_norm[] = {FLOAT(EPS, 1e-5, 0, 1), END};
static const mx_attr_spec attrs_axis[] = {INT(AXIS, -1, -MX_MAX_RANK, MX_MAX_RANK - 1), END};
static const mx_attr_spec attrs_reshape[] = {NEED_INTS(SHAPE, -1, BIG), END};
static const mx_attr_spec attrs_permute[] = {NEED_INTS(PERM, 0, MX_MAX_RANK - 1), END};
static const mx_attr_spec attrs_shift[] = {
    INT(AXIS, -1, -MX_MAX_RANK, MX_MAX_RANK - 1), NEED_INT(K, -BIG, BIG), END};
static const mx_attr_spec attrs_slice[] = {
    INT(AXIS, -1, -MX_MAX_RANK, MX_MAX_RANK - 1), INT(START, 0, 0, BIG), NEED_INT(END, 0, BIG),
    INT(STEP, 1, 1, BIG), END};
static const mx_attr_spec attrs_split[] = {
    INT(AXIS, -1, -MX_MAX_RANK, MX_MAX_RANK - 1), NEED_INTS(SIZES, 1, BIG), END};
static const mx_attr_spec attrs_space_to_depth[] = {INT(BLOCK, 2, 1, 64), END};
static const mx_attr_spec attrs_unfold[] = {
    INT(AXIS, -1, -MX_MAX_RANK, MX_MAX_RANK - 1), NEED_INT(SIZE, 1, BIG), NEED_INT(STRIDE, 1, BIG),
    INT(PAD, 0, 0, BIG), END};
static const mx_attr_spec attrs_scan_gather[] = {
    NEED_ENUM(ORDER, mx_order_names), NEED_INT(H, 1, BIG), NEED_INT(W, 1, BIG),
    INT(AXIS, -1, -MX_MAX_RANK, MX_MAX_RANK - 1), END};
static const mx_attr_spec attrs_scan_scatter[] = {
    NEED_ENUMS(ORDERS, mx_order_names), NEED_INT(H, 1, BIG), NEED_INT(W, 1, BIG),
    INT(AXIS, -1, -MX_MAX_RANK, MX_MAX_RANK - 1), END};
static const mx_attr_spec attrs_selective_scan[] = {FLAG(REVERSE), FLAG(SOFTPLUS), END};

const mx_op_desc mx_ops[MX_OP_COUNT] = {
#define X(id, name, min_in, max_in, min_out, max_out, fusion, attrs, infer, ref, cost, fpe, epe) \
    [MX_OP_##id] = {name, min_in, max_in, min_out, max_out, fusion, attrs, infer, ref, cost, fpe, epe},
#include "ops.def"
#undef X
};

/* Checked once by the tests: every slot filled, schemas fit in a node. */
static_assert(sizeof mx_ops / sizeof mx_ops[0] == MX_OP_COUNT, "op table size");

mx_op mx_op_find(const char *name, size_t len) {
    for (int op = 0; op < MX_OP_COUNT; op++)
        if (strlen(mx_ops[op].name) == len && memcmp(mx_ops[op].name, name, len) == 0)
            return (mx_op)op;
    return MX_OP_COUNT;
}

int64_t mx_scan_order_pos(mx_scan_order order, int64_t h, int64_t w, int64_t l) {
    int64_t L = h * w;
    assert(l >= 0 && l < L);
    if (order & 1) /* every _REV twin is odd and walks its base order backwards */
        l = L - 1 - l;
    switch ((mx_scan_order)(order & ~1)) {
    case MX_ORDER_ROW:
        return l;
    case MX_ORDER_COL:
        return (l % h) * w + l / h;
    case MX_ORDER_SNAKE: {
        int64_t i = l / w, j = l % w;
        return i * w + ((i & 1) ? w - 1 - j : j);
    }
    case MX_ORDER_SNAKE_COL: {
        int64_t j = l / h, i = l % h;
        return ((j & 1) ? h - 1 - i : i) * w + j;
    }
    case MX_ORDER_DIAG: {
        /* Anti-diagonal d = i + j holds min(d+1, h, w, h+w-1-d) cells; walk
         * the diagonals in turn, each from its smallest row. */
        int64_t d = 0;
        for (;; d++) {
            int64_t i0 = d - (w - 1) > 0 ? d - (w - 1) : 0;
            int64_t i1 = d < h - 1 ? d : h - 1;
            int64_t cells = i1 - i0 + 1;
            if (l < cells)
                return (i0 + l) * w + (d - (i0 + l));
            l -= cells;
        }
    }
    default:
        assert(!"unknown scan order");
        return 0;
    }
}
