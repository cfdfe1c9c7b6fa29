"""mixc: compile and run selective state-space mixer models from Python.

    import mixc, numpy as np
    model = mixc.compile("models/mamba-block.json", overrides={"input.length": 16})
    out = model(tokens=np.random.rand(*model.inputs["tokens"].shape).astype(np.float32))
    out["hidden"]                       # a NumPy array

A thin ctypes layer over libmixc.so (include/mixc.h): every call goes
through the C pipeline, and mixc's errors arrive as MixcError with mixc's
message. docs/python.md has worked examples.
"""
import ctypes
import json
import os
import tempfile
from collections import namedtuple

import numpy as np

from ._lib import (DTYPES, ROLE_INPUT, ROLE_OUTPUT, ROLE_PARAM, TARGET_BYTES, Diag, Explore, ExploreOptions,
                   MixcError, TensorInfo, Vary, check, lib, strings)

__all__ = ["compile", "explore", "import_weights", "save_safetensors", "Model", "MixcError", "TensorSpec",
           "ExploreRows"]
__version__ = "0.1.0"

TensorSpec = namedtuple("TensorSpec", "name shape dtype")

NUMPY_OF = {"f32": np.float32, "f16": np.float16}
SAFETENSORS_DTYPE = {np.dtype(np.float32): "F32", np.dtype(np.float16): "F16", np.dtype(np.float64): "F64",
                     np.dtype(np.int32): "I32", np.dtype(np.int64): "I64"}
EXACT_INT_F32 = 1 << 24


def _torch():
    try:
        import torch
        return torch
    except ImportError:
        return None


def _is_torch(x):
    torch = _torch()
    return torch is not None and isinstance(x, torch.Tensor)


def _bf16_bits(t):
    """A torch bf16 tensor's raw bits as uint16 NumPy (NumPy has no bf16)."""
    torch = _torch()
    return t.detach().contiguous().view(torch.int16).numpy().view(np.uint16)


def _host_array(name, x):
    """x as a C-contiguous NumPy array and its mixc dtype name (None: not a
    mixc dtype, converted by the caller's rule). Torch tensors must be on the
    CPU: mixc reads host memory and copies nothing to another device."""
    if _is_torch(x):
        if x.device.type != "cpu":
            raise MixcError("%s: the tensor is on %s; mixc reads host memory: pass it with .cpu() "
                            "(nothing is copied between devices behind your back)" % (name, x.device))
        torch = _torch()
        if x.dtype == torch.bfloat16:
            return np.ascontiguousarray(_bf16_bits(x)), "bf16"
        x = x.detach().numpy()
    a = np.ascontiguousarray(x)
    kind = {np.dtype(np.float32): "f32", np.dtype(np.float16): "f16"}.get(a.dtype)
    return a, kind


def save_safetensors(path, tensors):
    """Writes {name: array or CPU tensor} to a safetensors file."""
    header, blobs, at = {}, [], 0
    for name, x in tensors.items():
        a, kind = _host_array(name, x)
        dtype = "BF16" if kind == "bf16" else SAFETENSORS_DTYPE.get(a.dtype)
        if dtype is None:
            raise MixcError("%s: dtype %s cannot be written (float32, float16, bfloat16, float64, int32, int64)"
                            % (name, a.dtype))
        data = a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [at, at + len(data)]}
        blobs.append(data)
        at += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-(8 + len(text)) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(len(text).to_bytes(8, "little"))
        f.write(text)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


def _state_dict_of(obj):
    """A state_dict from a dict, a module, or a torch .pt / .bin file."""
    if isinstance(obj, dict):
        return obj
    if hasattr(obj, "state_dict"):
        return obj.state_dict()
    torch = _torch()
    if torch is None:
        raise MixcError("%s: reading a torch checkpoint needs torch; save it as safetensors instead" % obj)
    return torch.load(obj, map_location="cpu", weights_only=True)


def _overrides(overrides):
    if overrides is None:
        return []
    if isinstance(overrides, dict):
        return ["%s=%s" % (k, json.dumps(v) if not isinstance(v, str) else v) for k, v in overrides.items()]
    return list(overrides)


class _Spec:
    """A loaded spec (mx_model) or IR graph (mx_graph)."""

    def __init__(self, spec, overrides):
        diag = Diag()
        sets, n = strings(_overrides(overrides))
        self.model = self.graph = None
        if isinstance(spec, dict):
            self.model = lib.mx_model_parse(json.dumps(spec).encode(), b"<dict>", sets, n, ctypes.byref(diag))
        elif str(spec).endswith(".mxir"):
            if n:
                raise MixcError("%s: overrides apply to JSON specs, not to IR files" % spec)
            self.graph = lib.mx_graph_load(os.fspath(spec).encode(), ctypes.byref(diag))
        else:
            self.model = lib.mx_model_load(os.fspath(spec).encode(), sets, n, ctypes.byref(diag))
        if not (self.model or self.graph):
            raise MixcError(diag.msg.decode("utf-8", "replace"))

    def free(self):
        if self.model:
            lib.mx_model_free(self.model)
        if self.graph:
            lib.mx_graph_free(self.graph)
        self.model = self.graph = None


def import_weights(spec, state_dict, out, source="transformers", overrides=None):
    """Writes a PyTorch state_dict (a safetensors path, a dict, a module, or
    a torch .pt/.bin file) of mamba_ssm ("mamba_ssm") or transformers
    ("transformers") Mamba modules with mixc's names to out (safetensors)."""
    s = _Spec(spec, overrides)
    try:
        if s.model is None:
            raise MixcError("%s: importing checkpoints needs a model spec (.json)" % spec)
        _import(s.model, state_dict, out, source)
    finally:
        s.free()


def _import(model, state_dict, out, source):
    diag, kind = Diag(), ctypes.c_int()
    check(lib.mx_import_source_parse(source.encode(), ctypes.byref(kind), ctypes.byref(diag)), diag)
    with tempfile.TemporaryDirectory() as tmp:
        path = state_dict
        if not (isinstance(state_dict, (str, os.PathLike)) and str(state_dict).endswith(".safetensors")):
            path = os.path.join(tmp, "state.safetensors")
            save_safetensors(path, _state_dict_of(state_dict))
        check(lib.mx_import_weights(model, kind.value, os.fspath(path).encode(), out.encode(),
                                    ctypes.byref(diag)), diag)


class Model:
    """A compiled model: call it on named inputs, get a dict of outputs."""

    def __init__(self, spec, device="auto", target=None, overrides=None, seed=1):
        self._spec = _Spec(spec, overrides)
        self._compiled = None
        diag = Diag()
        self._target = ctypes.create_string_buffer(TARGET_BYTES)
        why = ctypes.create_string_buffer(512)
        check(lib.mx_target_choose(device.encode(), target.encode() if target else None, self._target, why,
                                   len(why), ctypes.byref(diag)), diag)
        if self._spec.model:
            self._compiled = lib.mx_compile_model(self._spec.model, self._target, None, ctypes.byref(diag))
        else:
            self._compiled = lib.mx_compile(self._spec.graph, self._target, None, ctypes.byref(diag))
        if not self._compiled:
            self._spec.free()
            raise MixcError(diag.msg.decode("utf-8", "replace"))
        check(lib.mx_init_weights(self._compiled, seed, ctypes.byref(diag)), diag)
        self.inputs = self._tensors(ROLE_INPUT)
        self.params = self._tensors(ROLE_PARAM)
        self.outputs = self._tensors(ROLE_OUTPUT)

    def __del__(self):
        self.close()

    def close(self):
        """Frees the compiled program now (the model must outlive it)."""
        if getattr(self, "_compiled", None):
            lib.mx_compiled_free(self._compiled)
            self._compiled = None
        if getattr(self, "_spec", None):
            self._spec.free()

    def _tensors(self, role):
        found = {}
        for i in range(lib.mx_tensor_count(self._compiled, role)):
            info, diag = TensorInfo(), Diag()
            check(lib.mx_tensor_info_of(self._compiled, role, i, ctypes.byref(info), ctypes.byref(diag)), diag)
            name = info.name.decode()
            found[name] = TensorSpec(name, tuple(info.dims[k] for k in range(info.rank)), DTYPES[info.dtype])
        return found

    @property
    def device(self):
        """One line: the device the model runs on."""
        buf = ctypes.create_string_buffer(256)
        lib.mx_target_describe(self._target, buf, len(buf))
        return buf.value.decode()

    def stats(self):
        """Parameters, FLOPs, bytes, exps and peak memory, per layer and in total."""
        if not self._spec.model:
            raise MixcError("stats are per layer of a model spec; an IR graph has no layers")
        s = lib.mx_model_stats(self._spec.model)
        if not s:
            raise MixcError("out of memory")
        row = lambda l: {"name": l.name.decode() if l.name else "total", "params": l.params, "flops": l.flops,
                         "bytes": l.bytes, "exps": l.exps, "peak_bytes": l.peak_bytes}
        try:
            return {"layers": [row(s.contents.layers[i]) for i in range(s.contents.n_layers)],
                    "total": row(s.contents.total)}
        finally:
            lib.mx_stats_free(s)

    def load_weights(self, weights, source="mixc"):
        """Params from a safetensors file of mixc's names (source "mixc"), or
        a PyTorch state_dict (path, dict, module, or torch .pt/.bin file) of
        mamba_ssm or transformers Mamba modules. Every param must be there,
        with its shape; nothing else may be."""
        diag = Diag()
        is_file = isinstance(weights, (str, os.PathLike)) and str(weights).endswith(".safetensors")
        if source == "mixc" and is_file:
            check(lib.mx_load_weights(self._compiled, os.fspath(weights).encode(), ctypes.byref(diag)), diag)
            return self
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "weights.safetensors")
            if source == "mixc":
                save_safetensors(path, _state_dict_of(weights))
            else:
                if not self._spec.model:
                    raise MixcError("importing checkpoints needs a model spec (.json)")
                _import(self._spec.model, weights, path, source)
            check(lib.mx_load_weights(self._compiled, path.encode(), ctypes.byref(diag)), diag)
        return self

    def save_weights(self, path):
        diag = Diag()
        check(lib.mx_save_weights(self._compiled, os.fspath(path).encode(), ctypes.byref(diag)), diag)

    def _set(self, spec, x):
        a, kind = _host_array(spec.name, x)
        if kind is None and spec.dtype == "f32" and a.dtype.kind in "iu":
            if a.size and np.abs(a).max() > EXACT_INT_F32:
                raise MixcError("input '%s': whole numbers beyond 2^24 do not fit f32 exactly" % spec.name)
            a, kind = a.astype(np.float32), "f32"
        if kind is None:
            raise MixcError("input '%s': dtype %s, the model takes %s%s" % (
                spec.name, a.dtype, spec.dtype, " (use .astype(np.float32))" if a.dtype == np.float64 else ""))
        dims = (ctypes.c_int64 * max(1, a.ndim))(*a.shape)
        diag = Diag()
        check(lib.mx_set_input(self._compiled, spec.name.encode(), a.ctypes.data_as(ctypes.c_void_p),
                               DTYPES.index(kind), a.ndim, dims, ctypes.byref(diag)), diag)

    def __call__(self, **inputs):
        """Runs one forward pass on named inputs (NumPy arrays, or PyTorch
        CPU tensors: then the outputs are tensors too); returns {name: output}."""
        missing = sorted(set(self.inputs) - set(inputs))
        extra = sorted(set(inputs) - set(self.inputs))
        if missing or extra:
            parts = (["missing " + ", ".join(missing)] if missing else []) + \
                    (["unknown " + ", ".join(extra)] if extra else [])
            raise MixcError("inputs: %s (the model takes: %s)" % ("; ".join(parts), ", ".join(self.inputs)))
        for name, x in inputs.items():
            self._set(self.inputs[name], x)
        diag = Diag()
        check(lib.mx_run(self._compiled, ctypes.byref(diag)), diag)
        as_torch = any(_is_torch(x) for x in inputs.values())
        result = {}
        for name, spec in self.outputs.items():
            dtype = np.float16 if spec.dtype == "f16" else np.float32
            out = np.empty(spec.shape, dtype=dtype)
            check(lib.mx_get_output(self._compiled, name.encode(), out.ctypes.data_as(ctypes.c_void_p),
                                    DTYPES.index("f16" if dtype == np.float16 else "f32"), out.nbytes,
                                    ctypes.byref(diag)), diag)
            result[name] = _torch().from_numpy(out) if as_torch else out
        return result


def compile(spec, device="auto", target=None, overrides=None, seed=1):
    """Loads a model spec (a .json path or a dict) or an IR graph (.mxir),
    applies overrides ({"stages[0].depth": 2} or ["stages[0].depth=2"]),
    compiles it for device ("auto", "ref", "cpu", "emu", "cuda") and
    initialises its params from seed. Returns a Model."""
    return Model(spec, device=device, target=target, overrides=overrides, seed=seed)


def _value_text(v):
    return v if isinstance(v, str) else json.dumps(v)


class ExploreRows(list):
    """The variants of a sweep, one dict per variant in grid order:
    point, values ({path: value}), params, flops, bytes, peak_bytes,
    kernels, matmuls, host_ms, estimate_ms, gpu_ms (None: not measured) and
    error (None, or why the variant was skipped). `columns` says what each
    latency is: measured where, or estimated for which target and how."""

    columns = {}


def explore(spec, vary, overrides=None, sample=0, seed=1, shard=None, device="cpu", target="h100",
            profile=False, gpu=True, warmup=1, runs=5, progress=False):
    """Sweeps variants of a model spec (docs/explore.md), as `mixc explore`:
    vary is {path: [values]} (a grid, the last path varying fastest);
    sample=N takes N random points of it (seed); shard=(i, n) the i-th of n
    shares (1-based); device is where latency is measured ("cpu", "ref",
    "emu", or None); target the GPU of the roofline estimate; progress=True
    draws the progress bar on stderr. Returns ExploreRows. A variant that
    fails is a row with its error; a sweep that cannot start raises
    MixcError."""
    if not vary:
        raise MixcError("explore: vary needs at least one {path: [values]}")
    keep = []  # the C strings the options point to

    def c_strings(items):
        arr, n = strings(items)
        keep.append(arr)
        return arr, n

    varies = (Vary * len(vary))()
    for i, (path, values) in enumerate(vary.items()):
        values = list(values)
        if not values:
            raise MixcError("explore: %s has no values" % path)
        arr, n = c_strings([_value_text(v) for v in values])
        varies[i] = Vary(path.encode(), arr, n)
        keep.append(varies[i].path)
    sets, n_sets = c_strings(_overrides(overrides))
    opts = ExploreOptions(spec=os.fspath(spec).encode(), overrides=sets, n_overrides=n_sets, vary=varies,
                          n_vary=len(vary), sample=sample, seed=seed, host_device=device.encode() if device else None,
                          estimate_target=target.encode(), profile=profile, gpu=gpu, warmup=warmup, runs=runs)
    if shard is not None:
        opts.shard, opts.n_shards = shard
    if progress:
        opts.progress = ctypes.c_void_p.in_dll(ctypes.CDLL(None), "stderr")
    result, diag = ctypes.POINTER(Explore)(), Diag()
    check(lib.mx_explore_run(ctypes.byref(opts), ctypes.byref(result), ctypes.byref(diag)), diag)
    try:
        e = result.contents
        paths = [e.paths[k].decode() for k in range(e.n_paths)]
        measured = lambda x: None if x != x else x  # NaN: not measured
        rows = ExploreRows()
        for i in range(e.n_variants):
            v = e.variants[i]
            rows.append({"point": v.point, "values": {p: v.values[k].decode() for k, p in enumerate(paths)},
                         "params": measured(v.params), "flops": measured(v.flops), "bytes": measured(v.bytes),
                         "peak_bytes": measured(v.peak_bytes), "kernels": v.kernels, "matmuls": v.matmuls,
                         "host_ms": measured(v.host_ms), "estimate_ms": measured(v.estimate_ms),
                         "gpu_ms": measured(v.gpu_ms), "error": v.error.decode() if v.error else None})
        rows.columns = {
            "host_ms": "measured on %s" % e.host_device.decode() if e.host_name else "not measured",
            "estimate_ms": "estimated for %s (%s)" % (e.estimate_target.decode(), e.estimate_method.decode()),
            "gpu_ms": "measured on %s" % e.gpu_device.decode() if e.gpu_name else "not measured (no GPU)",
        }
        return rows
    finally:
        lib.mx_explore_free(result)
