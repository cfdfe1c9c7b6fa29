#!/usr/bin/env python3
"""torch_ref.py: the zoo's ViM2 / TSM2 models in PyTorch, the peer of bench_model.

It builds the SAME model as mixc's frontend (frontend/model.c, blocks.c,
spec.c defaults) from the same JSON spec and overrides, with parameters named
exactly as mixc names them, so that

    model.load_state_dict(safetensors.torch.load_file("bench/results/vim2-tiny.safetensors"))

loads the weights bench_model saved. Then it times the forward pass (CUDA
events after warm-up, L2 flushed before each run, median), eager and with
torch.compile, and compares its output with mixc's (bench/results/<model>-io.safetensors,
written by bench_model): max relative error, floor 1, as mixc's tests measure.

The selective scan is mamba_ssm's forward CUDA kernel with --peer-lib
(libpeer_scan.so, built from the package's sources by bench/mamba_ssm/build.sh;
bench/run.sh passes it): "PyTorch plus the hand-written Mamba kernel". Without
it, the package's sequential reference (selective_scan_ref: exp(dt A) and dt B u
materialised over [B, E, L, N], a Python loop over L). Either is kept out of
torch.compile (torch.compiler.disable): unrolling thousands of steps makes
compiling impractical, so "torch.compile" times the compiled model around an
eager scan. The JSON says which scan ran.

    python3 bench/torch_ref.py --model vim2-tiny --set batch=64 --set input.image_size=224
    python3 bench/torch_ref.py --check-names models/vim2-tiny.json --weights W.safetensors
        (names and shapes against a safetensors header; runs on a CPU too)
"""
import argparse
import json
import os
import re
import struct
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# ---- the spec, with mixc's defaults (frontend/spec.c) ------------------------------

ROW, ROW_REV, COL, COL_REV = "row", "row_rev", "col", "col_rev"


def apply_override(spec, text):
    """'stages[2].depth=4' into the JSON tree, as mixc's --set does."""
    path, value = text.split("=", 1)
    value = json.loads(value) if re.match(r'^(-?[0-9.eE+-]+|true|false|".*"|\[.*\]|\{.*\})$', value) else value
    keys = [k for part in path.split(".") for k in re.findall(r"[^\[\]]+|\[\d+\]", part)]
    node = spec
    for i, k in enumerate(keys):
        last = i == len(keys) - 1
        if k.startswith("["):
            idx = int(k[1:-1])
            if last:
                node[idx] = value
            else:
                node = node[idx]
        else:
            if last:
                node[k] = value
            else:
                node = node.setdefault(k, {})
    return spec


def mixer_spec(raw, task, width, channel):
    m = dict(kind="selective", expand=2.0, d_state=16, d_conv=4, dt_rank=0, scans=[ROW],
             shared_conv=True, width_factor=2.0, conv2d=False, out_norm=False, bias=False, cw=False,
             switch_scans=False)
    if not channel and task == "vision":
        m.update(d_conv=3, conv2d=True, scans=[ROW, COL, ROW_REV, COL_REV], out_norm=True)
    if channel:
        m.update(scans=[ROW, ROW_REV], shared_conv=False, cw=task != "series")
    raw = raw or {}
    m["cw"] = raw.get("cw", m["cw"]) if channel else m["cw"]
    m["expand"] = float(raw.get("expand", 1.0 if m["cw"] else 2.0))
    for key in ("kind", "d_state", "dt_rank", "d_conv", "conv2d", "scans", "shared_conv", "out_norm",
                "switch_scans", "bias", "width_factor"):
        if key in raw:
            m[key] = raw[key]
    if m["kind"] == "qs" or m["switch_scans"]:
        raise SystemExit("torch_ref.py: qs and switch_scans mixers are not mirrored here")
    return m


def read_spec(path, overrides):
    with open(path) as f:
        spec = json.load(f)
    for o in overrides:
        apply_override(spec, o)
    task = spec["task"]
    s = dict(task=task, batch=spec.get("batch", 1), dtype=spec.get("dtype", "f32"))
    inp = spec.get("input", {})
    if task == "vision":
        s.update(image_size=inp.get("image_size", 224), channels=inp.get("channels", 3),
                 patch=spec.get("stem", {}).get("patch", 4), classes=spec.get("head", {}).get("classes", 1000))
    elif task == "series":
        pt = spec.get("patching", {})
        s.update(variates=inp["variates"], lookback=inp["lookback"], patch_len=pt.get("size", 16),
                 patch_stride=pt.get("stride", 8), horizon=spec.get("head", {}).get("horizon", 96),
                 revin=spec.get("revin", True))
    else:
        raise SystemExit("torch_ref.py: only vision and series models are mirrored")
    stages, prev = [], None
    for i, st in enumerate(spec["stages"]):
        width = st.get("width", prev["width"] if prev else None)
        ch = mixer_spec(st.get("channel_mixer"), task, width, True)
        every = st.get("channel_every", 0 if ch["kind"] == "none" else 1)
        stages.append(dict(width=width, depth=st.get("depth", 1), merge=st.get("merge", task == "vision" and i > 0),
                           norm=st.get("norm", "layernorm"), residual=st.get("residual", True),
                           weighted_average=st.get("weighted_average", True),
                           token=mixer_spec(st.get("token_mixer"), task, width, False), channel=ch,
                           channel_every=0 if ch["kind"] == "none" else every))
        prev = stages[-1]
    s["stages"] = stages
    return s


def scan_pos(order, h, w):
    """mx_scan_order_pos for row / col and their reverses."""
    L = h * w
    pos = []
    for l in range(L):
        if order.endswith("_rev"):
            l = L - 1 - l
        pos.append(l if order.startswith("row") else (l % h) * w + l // h)
    return pos


# ---- the model --------------------------------------------------------------------

def build_torch(peer_lib=None):
    """The model class; its scan is mamba_ssm's kernel from peer_lib (a
    libpeer_scan.so, bench/mamba_ssm/build.sh) when given, else the
    package's sequential reference."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    class Mixc(nn.Module):
        """Parameters live in nested modules so that state_dict names are mixc's
        dotted names; forward() is the graph of frontend/model.c."""

        def __init__(self, s):
            super().__init__()
            self.s = s
            self.layer = ""
            self.creating = True
            with torch.device("meta"):
                self.forward(self.example_input(1, "meta"))
            self.creating = False

        def example_input(self, batch, device):
            s = self.s
            if s["task"] == "vision":
                return torch.zeros(batch, s["channels"], s["image_size"], s["image_size"], device=device)
            return torch.zeros(batch, s["variates"], s["lookback"], device=device)

        # -- parameters
        def p(self, name, *shape):
            full = f"{self.layer}.{name}"
            *path, leaf = full.split(".")
            mod = self
            for part in path:
                if part not in mod._modules:
                    if not self.creating:
                        raise KeyError(full)
                    mod.add_module(part, nn.Module())
                mod = mod._modules[part]
            if self.creating and leaf not in mod._parameters:
                mod.register_parameter(leaf, nn.Parameter(torch.empty(*shape)))
            return mod._parameters[leaf]

        def linear(self, x, name, out, bias=False):
            w = self.p(f"{name}.weight", out, x.shape[-1])
            return F.linear(x, w, self.p(f"{name}.bias", out) if bias else None)

        def norm(self, kind, x, name):
            c = x.shape[-1]
            if kind == "none":
                return x
            if kind == "layernorm":
                return F.layer_norm(x, (c,), self.p(f"{name}.weight", c), self.p(f"{name}.bias", c), 1e-5)
            w = self.p(f"{name}.weight", c)
            return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * w

        # -- the S6 core (blocks.c: s6_core)
        def conv1d(self, u, e, k, name):
            w, b = self.p(f"{name}.weight", e, k), self.p(f"{name}.bias", e)
            return F.silu(F.conv1d(F.pad(u, (k - 1, 0)), w.unsqueeze(1), b, groups=e))

        def conv2d_grid(self, u, sh, k, name):
            bt, e, l, h, w = sh
            wt, b = self.p(f"{name}.weight", e, k, k), self.p(f"{name}.bias", e)
            y = F.conv2d(u.reshape(bt, e, h, w), wt.unsqueeze(1), b, padding=k // 2, groups=e)
            return F.silu(y.reshape(bt, e, l))

        def s6_core(self, ms, u, sh, r, z, name):
            bt, e, l, h, w = sh
            n = ms["d_state"]
            dbc = self.linear(u.transpose(1, 2), f"{name}.x_proj", r + 2 * n)
            dt_in, bm, cm = torch.split(dbc, [r, n, n], dim=-1)
            dt = self.linear(dt_in, f"{name}.dt_proj", e).transpose(1, 2)
            A = -torch.exp(self.p(f"{name}.A_log", e, n))
            D = self.p(f"{name}.D", e)
            dt_bias = self.p(f"{name}.dt_bias", e)
            return self.selective_scan(u, dt, A, bm, cm, D, z, dt_bias)  # the reference or the peer (build_torch)

        def scans(self, ms, u, sh, r, zc):
            bt, e, l, h, w = sh
            if ms["d_conv"] and ms["shared_conv"]:
                u = self.conv2d_grid(u, sh, ms["d_conv"], "conv") if ms["conv2d"] else self.conv1d(u, e, ms["d_conv"], "conv")
            fuse_gate = len(ms["scans"]) == 1 and ms["scans"][0] == ROW and zc is not None
            ys = []
            for k, order in enumerate(ms["scans"]):
                uk = u if order == ROW else u[..., scan_pos(order, h, w)]
                if ms["d_conv"] and not ms["shared_conv"]:
                    uk = self.conv1d(uk, e, ms["d_conv"], f"scans.{k}.conv")
                ys.append(self.s6_core(ms, uk, sh, r, zc if fuse_gate else None, f"scans.{k}"))
            if len(ms["scans"]) == 1 and ms["scans"][0] == ROW:
                return ys[0], fuse_gate
            out = torch.zeros_like(ys[0])
            for order, y in zip(ms["scans"], ys):  # scan_scatter: each order mapped back, summed
                out[..., scan_pos(order, h, w)] += y
            return out, fuse_gate

        def token_mixer(self, ms, x, h, w):
            bt, l, c = x.shape
            e = int(ms["expand"] * c)
            xz = self.linear(x, "in_proj", 2 * e, ms["bias"])
            x_part, z_part = torch.split(xz, [e, e], dim=-1)
            u, zc = x_part.transpose(1, 2), z_part.transpose(1, 2)
            r = ms["dt_rank"] or (c + 15) // 16
            y, gated = self.scans(ms, u, (bt, e, l, h, w), r, None if ms["out_norm"] else zc)
            yt = y.transpose(1, 2)
            if ms["out_norm"]:
                yt = self.norm("layernorm", yt, "out_norm")
            if not gated:
                yt = yt * F.silu(z_part)
            return self.linear(yt, "out_proj", c, ms["bias"])

        def cw_mixer(self, ms, x):
            bt, l, c = x.shape
            wpos, e = int(ms["width_factor"] * c), int(ms["expand"])
            uz = self.linear(x, "in_proj", 2 * wpos, ms["bias"])
            u_part, z_part = torch.split(uz, [wpos, wpos], dim=-1)
            u = u_part.reshape(bt * l, 1, wpos)
            if e > 1:
                u = self.linear(u_part.reshape(bt * l, wpos, 1), "expand", e).transpose(1, 2)
            r = ms["dt_rank"] or (e + 15) // 16
            y, _ = self.scans(ms, u, (bt * l, e, wpos, 1, wpos), r, None)
            if e > 1:
                y = self.linear(y.transpose(1, 2), "contract", 1)
            y = y.reshape(bt, l, wpos) * F.silu(z_part)
            return self.linear(y, "out_proj", c, ms["bias"])

        # -- stages (model.c)
        def apply_mixer(self, ms, channel, x, t):
            batch, h, w, c, m, p = t
            if ms["cw"]:
                if x.dim() == 3:
                    return self.cw_mixer(ms, x)
                return self.cw_mixer(ms, x.reshape(batch * m, p, c)).reshape(batch, m, p, c)
            if self.s["task"] != "series":
                return self.token_mixer(ms, x, h, w)
            if not channel:
                return self.token_mixer(ms, x.reshape(batch * m, p, c), 1, p).reshape(batch, m, p, c)
            v = x.permute(0, 2, 1, 3).reshape(batch * p, m, c)
            y = self.token_mixer(ms, v, 1, m)
            return y.reshape(batch, p, m, c).permute(0, 2, 1, 3)

        def mixer_block(self, st, channel, hist, t):
            if st["weighted_average"] and len(hist) > 1:
                wts = self.p("avg", len(hist))
                x = sum(wts[i] * hist[i] for i in range(len(hist)))
            else:
                x = hist[-1]
            ms = st["channel"] if channel else st["token"]
            y = self.apply_mixer(ms, channel, self.norm(st["norm"], x, "norm"), t)
            return x + y if st["residual"] else y

        def stage(self, si, x, t):
            st = self.s["stages"][si]
            hist = [x, x]
            for l in range(1, st["depth"] + 1):
                self.layer = f"stages.{si}.blocks.{l - 1}.token_mixer"
                hist.append(self.mixer_block(st, False, hist, t))
                if st["channel_every"] and l % st["channel_every"] == 0:
                    self.layer = f"stages.{si}.blocks.{l - 1}.channel_mixer"
                    hist.append(self.mixer_block(st, True, hist, t))
            return hist[-1]

        def forward(self, x):
            return self.vision(x) if self.s["task"] == "vision" else self.series(x)

        def vision(self, image):
            s = self.s
            batch, c = image.shape[0], s["stages"][0]["width"]
            side = s["image_size"] // s["patch"]
            self.layer = "stem"
            wt = self.p("weight", c, s["channels"], s["patch"], s["patch"])
            x = F.conv2d(image, wt, self.p("bias", c), stride=s["patch"]).permute(0, 2, 3, 1)
            x = self.norm("layernorm", x, "norm").reshape(batch, side * side, c)
            for si, st in enumerate(s["stages"]):
                if st["merge"]:
                    self.layer = f"stages.{si}.merge"
                    g = x.reshape(batch, side // 2, 2, side // 2, 2, c)  # [b, i, dh, j, dw, c]
                    merged = g.permute(0, 1, 3, 4, 2, 5).reshape(batch, side // 2, side // 2, 4 * c)
                    merged = self.linear(self.norm("layernorm", merged, "norm"), "reduction", st["width"])
                    side //= 2
                    c = st["width"]
                    x = merged.reshape(batch, side * side, c)
                x = self.stage(si, x, (batch, side, side, c, 0, 0))
            self.layer = "head"
            x = self.norm("layernorm", x, "norm").mean(1)
            return self.linear(x, "fc", s["classes"], True)

        def series(self, x):
            s = self.s
            batch, m, c = x.shape[0], s["variates"], s["stages"][0]["width"]
            plen, stride = s["patch_len"], s["patch_stride"]
            p = (s["lookback"] + stride - plen) // stride + 1
            self.layer = "revin"
            if s["revin"]:
                mean = x.mean(-1, keepdim=True)
                std = torch.sqrt(x.var(-1, keepdim=True, unbiased=False) + 1e-5)
                gamma, beta = self.p("weight", m, 1), self.p("bias", m, 1)
                x = (x - mean) / std * gamma + beta
            self.layer = "patch_embed"
            x = F.pad(x, (0, stride), mode="replicate").unfold(-1, plen, stride)[:, :, :p]
            x = self.linear(x, "proj", c, True) + self.p("pos", p, c)
            for si in range(len(s["stages"])):
                x = self.stage(si, x, (batch, 1, p, c, m, p))
            self.layer = "head"
            x = self.norm("layernorm", x, "norm_feature").transpose(2, 3)
            x = self.norm("layernorm", x, "norm_patch").transpose(2, 3)
            x = self.linear(x.reshape(batch, m, p * c), "proj", s["horizon"], True)
            if s["revin"]:
                x = (x - beta) / gamma * std + mean
            return x

    @torch.compiler.disable
    def selective_scan(u, dt, A, B, C, D, z, dt_bias):
        """mamba_ssm's selective_scan_ref with mixc's layouts: u, dt, z [b, e, l];
        A [e, n]; B, C [b, l, n] (one group); softplus(dt + dt_bias)."""
        delta = F.softplus(dt + dt_bias[:, None])
        dA = torch.exp(delta.unsqueeze(-1) * A[:, None, :])  # [b, e, l, n]
        dBu = (delta * u).unsqueeze(-1) * B.unsqueeze(1)      # [b, e, l, n]
        h = u.new_zeros(u.shape[0], u.shape[1], A.shape[1])
        ys = []
        for i in range(u.shape[2]):
            h = dA[:, :, i] * h + dBu[:, :, i]
            ys.append(torch.einsum("ben,bn->be", h, C[:, i]))
        y = torch.stack(ys, dim=-1) + D[:, None] * u
        return y * F.silu(z) if z is not None else y

    Mixc.selective_scan = staticmethod(peer_scan(torch, peer_lib) if peer_lib else selective_scan)
    return torch, Mixc


def peer_scan(torch, lib):
    """mamba_ssm's forward kernel (libpeer_scan.so, bench/mamba_ssm/peer.h)
    with the glue its selective_scan_fn has: contiguous u, dt, z, B and C
    laid out [b, n, l], the chunk states allocated, the current stream."""
    import ctypes
    f = ctypes.CDLL(lib).mx_peer_scan_fwd
    f.restype = ctypes.c_int
    f.argtypes = [ctypes.c_int] * 5 + [ctypes.c_void_p] * 12 + [ctypes.c_char_p, ctypes.c_int]
    states = ctypes.CDLL(lib).mx_peer_scan_states
    states.restype = ctypes.c_longlong
    states.argtypes = [ctypes.c_int] * 4

    def ptr(t):
        return None if t is None else t.data_ptr()

    @torch.compiler.disable
    def selective_scan(u, dt, A, B, C, D, z, dt_bias):
        if u.device.type == "meta":  # the model's construction, on the meta device: shapes only
            return torch.empty_like(u)
        if not u.is_cuda:
            raise SystemExit("torch_ref.py: --peer-lib runs on a GPU (--device cuda)")
        b, e, l = u.shape
        n = A.shape[1]
        u, dt = u.contiguous(), dt.contiguous()
        z = None if z is None else z.contiguous()
        bt, ct = B.transpose(1, 2).contiguous(), C.transpose(1, 2).contiguous()
        A, D, dt_bias = A.float().contiguous(), D.float().contiguous(), dt_bias.float().contiguous()
        out = torch.empty_like(u)
        out_z = torch.empty_like(u) if z is not None else None
        x = torch.empty(states(b, e, l, n), dtype=torch.float32, device=u.device)
        err = ctypes.create_string_buffer(256)
        rc = f(int(u.dtype == torch.bfloat16), b, e, l, n, ptr(u), ptr(dt), ptr(A), ptr(bt), ptr(ct), ptr(D),
               ptr(z), ptr(dt_bias), ptr(out), ptr(out_z), ptr(x), torch.cuda.current_stream().cuda_stream,
               err, len(err))
        if rc:
            raise RuntimeError(err.value.decode())
        selective_scan.calls += 1
        return out_z if z is not None else out

    selective_scan.calls = 0  # bench() checks the kernel ran
    return selective_scan


# ---- names against a safetensors header (no torch needed to read it) ---------------

def safetensors_header(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        head = json.loads(f.read(n))
    head.pop("__metadata__", None)
    return {k: v["shape"] for k, v in head.items()}


def check_names(spec_path, overrides, weights):
    torch, Mixc = build_torch()
    model = Mixc(read_spec(spec_path, overrides))
    mine = {k: list(v.shape) for k, v in model.state_dict().items()}
    theirs = safetensors_header(weights)
    ok = True
    for k in sorted(set(mine) | set(theirs)):
        if k not in theirs:
            print(f"only in torch_ref: {k} {mine[k]}")
            ok = False
        elif k not in mine:
            print(f"only in {weights}: {k} {theirs[k]}")
            ok = False
        elif mine[k] != theirs[k]:
            print(f"shape of {k}: torch_ref {mine[k]}, mixc {theirs[k]}")
            ok = False
    print(f"{len(mine)} torch params, {len(theirs)} in {weights}: {'same names and shapes' if ok else 'DIFFERENT'}")
    return ok


# ---- timing and the comparison --------------------------------------------------------

def time_forward(torch, fn, x, warmup, runs, device="cuda"):
    if device == "cpu":
        return time_cpu(torch, lambda: fn(x), warmup, runs)
    flush = torch.empty(int(2 * torch.cuda.get_device_properties(0).L2_cache_size) // 4 + 1, device="cuda")
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    with torch.no_grad():
        for _ in range(warmup):
            fn(x)
        torch.cuda.synchronize()
        ms = []
        for i in range(runs):
            flush.fill_(float(i))
            start.record()
            fn(x)
            stop.record()
            stop.synchronize()
            ms.append(start.elapsed_time(stop))
    ms.sort()
    return dict(runs=runs, median_ms=ms[len(ms) // 2], min_ms=ms[0], max_ms=ms[-1])


def time_cpu(torch, call, warmup, runs):
    """Wall time of each call after warm-up (the CPU has no events to record)."""
    with torch.no_grad():
        for _ in range(warmup):
            call()
        ms = []
        for _ in range(runs):
            t0 = time.perf_counter()
            call()
            ms.append((time.perf_counter() - t0) * 1e3)
    ms.sort()
    return dict(runs=runs, median_ms=ms[len(ms) // 2], min_ms=ms[0], max_ms=ms[-1])


def device_name(torch, device):
    if device == "cpu":
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        return names[0] if names else "cpu"
    return torch.cuda.get_device_properties(0).name


def bench_scan(args):
    """The scan alone at --scan B,Ch,L,N on --device, bench_cpu_scan's inputs
    (A = -(1..N), dt_bias = -4, the rest uniform in [-1, 1)); prints
    'median_ms min_ms max_ms' for bench_cpu_scan to read."""
    torch, Mixc = build_torch()
    B, Ch, L, N = (int(v) for v in args.scan.split(","))
    g = torch.Generator().manual_seed(1)
    uni = lambda *shape: (torch.rand(*shape, generator=g) * 2 - 1).to(args.device)
    u, dt, z = uni(B, Ch, L), uni(B, Ch, L), uni(B, Ch, L)
    Bm, Cm, D = uni(B, L, N), uni(B, L, N), uni(Ch)
    A = -torch.arange(1, N + 1, dtype=torch.float32, device=args.device).repeat(Ch, 1)
    dt_bias = torch.full((Ch,), -4.0, device=args.device)
    t = time_cpu(torch, lambda: Mixc.selective_scan(u, dt, A, Bm, Cm, D, z, dt_bias), args.warmup, args.runs)
    print(f"{t['median_ms']:.6g} {t['min_ms']:.6g} {t['max_ms']:.6g}")
    return True


def bench(args):
    torch, Mixc = build_torch(args.peer_lib)
    if args.device == "cuda":  # f32 as mixc computes it: no TF32 in cuDNN's convs or in products
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    from safetensors import safe_open
    from safetensors.torch import load_file
    io_path = os.path.join(args.results, args.model + "-io.safetensors")
    if not args.set:  # the overrides bench_model built the model with
        with safe_open(io_path, framework="pt") as f:
            meta = f.metadata() or {}
        args.set = [o for o in meta.get("overrides", "").split(";") if o]
        print(f"{args.model}: overrides from {io_path}: {' '.join(args.set) or 'none'}", flush=True)
    spec = read_spec(os.path.join(ROOT, "models", args.model + ".json"), args.set)
    if spec["dtype"] != "f32":
        raise SystemExit("torch_ref.py: f32 models only")
    model = Mixc(spec).to_empty(device=args.device)
    model.load_state_dict(load_file(os.path.join(args.results, args.model + ".safetensors")), strict=True)
    io = load_file(io_path)
    x = io["image" if spec["task"] == "vision" else "series"].to(args.device)
    want = io["output.0"].to(args.device)
    model.eval()
    with torch.no_grad():
        got = model(x)
    if args.peer_lib and Mixc.selective_scan.calls == 0:
        raise SystemExit("torch_ref.py: --peer-lib given, but the forward pass never called mamba_ssm's kernel")
    err = ((got - want).abs() / want.abs().clamp(min=1)).max().item()
    name = device_name(torch, args.device)
    device = re.sub(r"[^A-Za-z0-9-]", "_", name)
    path = os.path.join(args.results, f"torch_ref-{args.model}-{device}.json")
    result = dict(benchmark="torch_ref", model=args.model, overrides=args.set, device=name,
                  threads=torch.get_num_threads(),
                  torch=torch.__version__, batch=spec["batch"], max_rel_err_vs_mixc=err, eager=None,
                  torch_compile=None,
                  scan=("mamba_ssm's forward kernel (" + os.path.basename(args.peer_lib) + ", bench/mamba_ssm/)"
                        if args.peer_lib else "mamba_ssm selective_scan_ref (Python loop over L)")
                  + ", excluded from torch.compile",
                  timing="CUDA events after warm-up, L2 flushed before every run, median" if args.device == "cuda"
                  else "wall time after warm-up, median")

    def write():  # after each measurement: a run cut short keeps what it measured
        with open(path + ".tmp", "w") as f:
            json.dump(result, f, indent=2)
        os.replace(path + ".tmp", path)

    write()
    result["eager"] = time_forward(torch, model, x, args.warmup, args.runs, args.device)
    write()
    print(f"{args.model}: eager {result['eager']['median_ms']:.3f} ms, max rel err vs mixc {err:.3g}", flush=True)
    if not args.no_compile:
        t0 = time.time()
        try:
            cm = torch.compile(model)
            with torch.no_grad():
                got_c = cm(x)
            compile_s = time.time() - t0
            compiled = time_forward(torch, cm, x, args.warmup, args.runs, args.device)
            compiled["compile_s"] = compile_s
            compiled["max_rel_err_vs_mixc"] = ((got_c - want).abs() / want.abs().clamp(min=1)).max().item()
            result["torch_compile"] = compiled
            print(f"{args.model}: torch.compile {compiled['median_ms']:.3f} ms (compiled in {compile_s:.0f} s), "
                  f"max rel err vs mixc {compiled['max_rel_err_vs_mixc']:.3g}", flush=True)
        except Exception as e:  # the eager figures stand; say why there are no compiled ones
            result["torch_compile"] = {"error": f"{type(e).__name__}: {e}"[:500]}
            print(f"{args.model}: torch.compile failed: {result['torch_compile']['error']}", flush=True)
        write()
    print(f"wrote {path}")
    return err <= args.tol


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", help="a zoo model (models/NAME.json) to time and compare")
    ap.add_argument("--set", action="append", default=[],
                    help="a spec override, as mixc's --set (--model: default those bench_model recorded)")
    ap.add_argument("--results", default=os.path.join(ROOT, "bench", "results"),
                    help="where bench_model wrote the weights and -io files, and where the JSON goes")
    ap.add_argument("--check-names", metavar="SPEC", help="compare param names and shapes with --weights")
    ap.add_argument("--weights", help="a safetensors file written by mixc (save-weights or bench_model)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--tol", type=float, default=1e-3, help="max relative error accepted against mixc")
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    ap.add_argument("--threads", type=int, help="torch.set_num_threads (CPU)")
    ap.add_argument("--scan", metavar="B,Ch,L,N", help="time the selective scan alone at this shape")
    ap.add_argument("--peer-lib", metavar="SO", help="the scan as mamba_ssm's kernel: libpeer_scan.so "
                    "(bench/mamba_ssm/build.sh); default its sequential reference")
    args = ap.parse_args()
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    if args.scan:
        return 0 if bench_scan(args) else 1
    if args.check_names:
        if not args.weights:
            ap.error("--check-names needs --weights")
        return 0 if check_names(args.check_names, args.set, args.weights) else 1
    if not args.model:
        ap.error("--model, --scan or --check-names")
    return 0 if bench(args) else 1


if __name__ == "__main__":
    sys.exit(main())
