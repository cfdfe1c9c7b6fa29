"""_lib.py: libmixc.so through ctypes: where it is, and the C signatures used.

The declarations mirror include/mixc.h (and frontend/import.h for the
checkpoint importer); nothing else of the library is touched.
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
