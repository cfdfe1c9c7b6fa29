"""_lib.py: libmixc.so through ctypes: where it is, and the C signatures used.

The declarations mirror include/mixc.h (and frontend/import.h for the
checkpoint importer, runtime/explore.h for sweeps); nothing else of the
library is touched.
"""
import ctypes
import ctypes.util
import os

MX_OK = 0
DTYPES = ("f32", "f16", "bf16")  # mx_dtype
ROLE_INPUT, ROLE_PARAM, ROLE_OUTPUT = 0, 1, 2  # mx_role


class MixcError(RuntimeError):
    """An error reported by mixc; the message is mixc's own."""


class Diag(ctypes.Structure):
    _fields_ = [("msg", ctypes.c_char * 2048)]


class TensorInfo(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_char_p),
        ("dtype", ctypes.c_int),
        ("rank", ctypes.c_int),
        ("dims", ctypes.POINTER(ctypes.c_int64)),
        ("numel", ctypes.c_int64),
    ]


class LayerStats(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_char_p),
        ("params", ctypes.c_double),
        ("flops", ctypes.c_double),
        ("bytes", ctypes.c_double),
        ("exps", ctypes.c_double),
        ("peak_bytes", ctypes.c_double),
    ]


class Stats(ctypes.Structure):
    _fields_ = [("n_layers", ctypes.c_int), ("layers", ctypes.POINTER(LayerStats)), ("total", LayerStats)]


class Vary(ctypes.Structure):  # mx_vary (runtime/explore.h)
    _fields_ = [("path", ctypes.c_char_p), ("values", ctypes.POINTER(ctypes.c_char_p)), ("n_values", ctypes.c_int)]


class ExploreOptions(ctypes.Structure):  # mx_explore_options
    _fields_ = [
        ("spec", ctypes.c_char_p),
        ("overrides", ctypes.POINTER(ctypes.c_char_p)),
        ("n_overrides", ctypes.c_int),
        ("vary", ctypes.POINTER(Vary)),
        ("n_vary", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("seed", ctypes.c_uint64),
        ("shard", ctypes.c_int),
        ("n_shards", ctypes.c_int),
        ("host_device", ctypes.c_char_p),
        ("estimate_target", ctypes.c_char_p),
        ("profile", ctypes.c_bool),
        ("gpu", ctypes.c_bool),
        ("warmup", ctypes.c_int),
        ("runs", ctypes.c_int),
        ("progress", ctypes.c_void_p),
    ]


class Variant(ctypes.Structure):  # mx_variant
    _fields_ = [
        ("point", ctypes.c_int64),
        ("values", ctypes.POINTER(ctypes.c_char_p)),
        ("error", ctypes.c_char_p),
        ("params", ctypes.c_double),
        ("flops", ctypes.c_double),
        ("bytes", ctypes.c_double),
        ("peak_bytes", ctypes.c_double),
        ("kernels", ctypes.c_int),
        ("matmuls", ctypes.c_int),
        ("host_ms", ctypes.c_double),
        ("estimate_ms", ctypes.c_double),
        ("gpu_ms", ctypes.c_double),
    ]


class Explore(ctypes.Structure):  # mx_explore
    _fields_ = [
        ("spec", ctypes.c_char_p),
        ("paths", ctypes.POINTER(ctypes.c_char_p)),
        ("n_paths", ctypes.c_int),
        ("grid_size", ctypes.c_int64),
        ("host_name", ctypes.c_char * 32),
        ("estimate_name", ctypes.c_char * 32),
        ("gpu_name", ctypes.c_char * 32),
        ("host_device", ctypes.c_char * 160),
        ("estimate_target", ctypes.c_char * 160),
        ("gpu_device", ctypes.c_char * 160),
        ("estimate_method", ctypes.c_char * 48),
        ("variants", ctypes.POINTER(Variant)),
        ("n_variants", ctypes.c_int),
    ]


# mx_target is filled and passed back by pointer only: room enough for it.
TARGET_BYTES = 4096


def _find():
    path = os.environ.get("MIXC_LIBRARY")
    if path:
        if not os.path.exists(path):
            raise MixcError("MIXC_LIBRARY=%s: no such file" % path)
        return path
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "libmixc.so")
    if os.path.exists(here):
        return here
    found = ctypes.util.find_library("mixc")
    if not found:
        raise MixcError("libmixc.so not found: build mixc (cmake --build build) and set "
                        "MIXC_LIBRARY=build/libmixc.so, or install it")
    return found


P, C, I, I64, U64, SZ = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_int64, ctypes.c_uint64, ctypes.c_size_t
DIAG = ctypes.POINTER(Diag)
STRINGS = ctypes.POINTER(ctypes.c_char_p)
DIMS = ctypes.POINTER(ctypes.c_int64)

SIGNATURES = {
    # name: (result, arguments)
    "mx_model_load": (P, [C, STRINGS, I, DIAG]),
    "mx_model_parse": (P, [C, C, STRINGS, I, DIAG]),
    "mx_model_free": (None, [P]),
    "mx_model_stats": (ctypes.POINTER(Stats), [P]),
    "mx_stats_free": (None, [ctypes.POINTER(Stats)]),
    "mx_graph_load": (P, [C, DIAG]),
    "mx_graph_free": (None, [P]),
    "mx_target_choose": (I, [C, C, P, C, SZ, DIAG]),
    "mx_target_describe": (None, [P, C, SZ]),
    "mx_compile": (P, [P, P, P, DIAG]),
    "mx_compile_model": (P, [P, P, P, DIAG]),
    "mx_compiled_free": (None, [P]),
    "mx_tensor_count": (I, [P, I]),
    "mx_tensor_info_of": (I, [P, I, I, ctypes.POINTER(TensorInfo), DIAG]),
    "mx_init_weights": (I, [P, U64, DIAG]),
    "mx_load_weights": (I, [P, C, DIAG]),
    "mx_save_weights": (I, [P, C, DIAG]),
    "mx_set_input": (I, [P, C, P, I, I, DIMS, DIAG]),
    "mx_set_param": (I, [P, C, P, I, I, DIMS, DIAG]),
    "mx_run": (I, [P, DIAG]),
    "mx_get_output": (I, [P, C, P, I, SZ, DIAG]),
    "mx_import_source_parse": (I, [C, ctypes.POINTER(I), DIAG]),
    "mx_import_weights": (I, [P, I, C, C, DIAG]),
    "mx_explore_run": (I, [ctypes.POINTER(ExploreOptions), ctypes.POINTER(ctypes.POINTER(Explore)), DIAG]),
    "mx_explore_free": (None, [ctypes.POINTER(Explore)]),
}

lib = ctypes.CDLL(_find())
for _name, (_res, _args) in SIGNATURES.items():
    _fn = getattr(lib, _name)
    _fn.restype, _fn.argtypes = _res, _args


def check(status, diag):
    """Raises mixc's message when a call failed."""
    if status != MX_OK:
        raise MixcError(diag.msg.decode("utf-8", "replace"))


def strings(items):
    """A C array of UTF-8 strings (and the Python objects keeping it alive)."""
    encoded = [s.encode() for s in items]
    return (ctypes.c_char_p * max(1, len(encoded)))(*encoded), len(encoded)
