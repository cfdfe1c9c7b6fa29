#!/usr/bin/env python3
"""scan_graphs.py: random graphs around selective scans, checked on every device.

Each graph is a scan neighbourhood as the zoo's blocks build it, its parts
drawn at random: activations stored [B, C, L] or channels last (permuted
into the scan), 1 to 4 scan orders (scan_gather of u, the results summed by
scan_scatter), B and C of 1 or 2 groups stored [B, G, N, L] or [B, L, G, N],
D, delta_bias, z, reverse, a final state output, and an epilogue of gates,
skips, permutes, flips, reshapes and a bf16 round trip. Sizes are small and
uneven (channels 8 to 80, rows of 5 to 64 steps, N from 1 to 16). Every
graph goes through `mixc check`: it must compile for every device of the
build and match the reference interpreter there. A graph the reference runs
and codegen refuses, or gets wrong, fails the run; it is kept for replay.

Weights and inputs are mixc's seeded ones; A = -exp(A_log) and softplus on
delta keep the states bounded, as a trained model's are, so that a mismatch
is the kernels' and not the data's.

    python3 tests/scan_graphs.py --mixc build/mixc               24 graphs, a fresh seed
    python3 tests/scan_graphs.py --mixc build/mixc --count 200 --seed 7
"""
import argparse
import os
import random
import subprocess
import sys
import tempfile
import time


def shape(dims, dtype="f32"):
    return "%s[%s]" % (dtype, ",".join(map(str, dims)))


def scan_graph(rng, name):
    """The text IR of one random graph."""
    batch, groups = rng.choice([1, 2, 3]), rng.choice([1, 1, 2])
    channels = rng.choice([8, 15, 16, 24, 33, 40]) * groups
    grid = rng.random() < 0.6
    h, w = rng.choice([(6, 6), (4, 5), (3, 7), (8, 8)]) if grid else (1, rng.choice([5, 7, 12, 16, 33]))
    L, N = h * w, rng.choice([1, 2, 4, 8, 16])
    orders = ["row", "row_rev", "col", "col_rev"] if grid else ["row", "row_rev"]
    K = min(rng.choice([1, 1, 2, 2, 3, 4]) if grid else rng.choice([1, 2]), len(orders))
    chosen = rng.sample(orders, K)
    act = [batch, channels, L]
    lines, outputs = [], []
    channels_last = rng.random() < 0.5

    def emit(text):
        lines.append("  " + text)

    def activation(v):
        if channels_last:
            emit("%%%s.t = input() : %s" % (v, shape([batch, L, channels])))
            emit("%%%s = permute(%%%s.t) {perm=[0,2,1]} : %s" % (v, v, shape(act)))
        else:
            emit("%%%s = input() : %s" % (v, shape(act)))

    activation("x")
    u = "x"
    if rng.random() < 0.5:
        emit("%%xs = silu(%%x) : %s" % shape(act))
        u = "xs"
    z = None
    if rng.random() < 0.5:
        activation("z")
        z = "z"
    ys = []
    for k, order in enumerate(chosen):
        uk = u
        if order != "row":
            emit("%%u%d = scan_gather(%%%s) {order=%s, h=%d, w=%d} : %s" % (k, u, order, h, w, shape(act)))
            uk = "u%d" % k
        activation("dt%d" % k)
        for bc in ("B", "C"):
            if rng.random() < 0.5:
                emit("%%%s%d.l = input() : %s" % (bc, k, shape([batch, L, groups, N])))
                emit("%%%s%d = permute(%%%s%d.l) {perm=[0,2,3,1]} : %s" % (bc, k, bc, k, shape([batch, groups, N, L])))
            else:
                emit("%%%s%d = input() : %s" % (bc, k, shape([batch, groups, N, L])))
        emit("%%A_log%d = param() : %s" % (k, shape([channels, N])))
        emit("%%A_exp%d = exp(%%A_log%d) : %s" % (k, k, shape([channels, N])))
        emit("%%A%d = neg(%%A_exp%d) : %s" % (k, k, shape([channels, N])))
        D, bias = rng.random() < 0.6, rng.random() < 0.5
        if D:
            emit("%%D%d = param() : %s" % (k, shape([channels])))
        if bias:
            emit("%%db%d = param() : %s" % (k, shape([channels])))
        gate = "%" + z if z and K == 1 and rng.random() < 0.5 else "_"
        attrs = "softplus=1" + (", reverse=1" if rng.random() < 0.3 else "")
        final_state = rng.random() < 0.15
        results = "%%y%d" % k + (", %%h%d" % k if final_state else "")
        types = shape(act) + (", " + shape([batch, channels, N]) if final_state else "")
        emit("%s = selective_scan(%%%s, %%dt%d, %%A%d, %%B%d, %%C%d, %s, %s, %s) {%s} : %s" % (
            results, uk, k, k, k, k, "%%D%d" % k if D else "_", gate, "%%db%d" % k if bias else "_", attrs, types))
        if final_state:
            outputs.append("%%h%d" % k)
        ys.append("%%y%d" % k)
    cur = ys[0][1:]
    if K > 1:
        emit("%%m = scan_scatter(%s) {orders=[%s], h=%d, w=%d} : %s" % (", ".join(ys), ", ".join(chosen), h, w, shape(act)))
        cur = "m"
    dims = list(act)
    for step in range(rng.randint(0, 4)):
        r, v = rng.random(), "e%d" % step
        if r < 0.2 and z and dims == act:
            emit("%%g%d = silu(%%%s) : %s" % (step, z, shape(dims)))
            emit("%%%s = mul(%%%s, %%g%d) : %s" % (v, cur, step, shape(dims)))
        elif r < 0.35 and dims == act:
            emit("%%%s = add(%%%s, %%%s) : %s" % (v, cur, u, shape(dims)))
        elif r < 0.55 and dims == act:
            dims = [batch, L, channels]
            emit("%%%s = permute(%%%s) {perm=[0,2,1]} : %s" % (v, cur, shape(dims)))
        elif r < 0.65:
            emit("%%%s = flip(%%%s) {axis=-1} : %s" % (v, cur, shape(dims)))
        elif r < 0.75:
            flat = [batch, dims[1] * dims[2]]
            emit("%%%s.f = reshape(%%%s) {shape=[%s]} : %s" % (v, cur, ",".join(map(str, flat)), shape(flat)))
            emit("%%%s = reshape(%%%s.f) {shape=[%s]} : %s" % (v, v, ",".join(map(str, dims)), shape(dims)))
        elif r < 0.85:
            emit("%%%s = silu(%%%s) : %s" % (v, cur, shape(dims)))
        else:
            emit("%%%s.h = cast(%%%s) {dtype=bf16} : %s" % (v, cur, shape(dims, "bf16")))
            emit("%%%s = cast(%%%s.h) {dtype=f32} : %s" % (v, v, shape(dims)))
        cur = v
        if rng.random() < 0.15:
            outputs.append("%" + cur)
    outputs.append("%" + cur)
    outputs = list(dict.fromkeys(outputs))
    return "graph %s {\n%s\n  output %s\n}\n" % (name, "\n".join(lines), ", ".join(outputs))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mixc", required=True, help="the mixc binary")
    ap.add_argument("--count", type=int, default=24, help="graphs to check (default 24)")
    ap.add_argument("--seed", type=int, help="seed of the graphs (default: from the clock, printed)")
    ap.add_argument("--keep", default=".", help="folder the failing graphs are written to (default .)")
    a = ap.parse_args()
    if a.count < 1:
        ap.error("--count: expected a whole number >= 1")
    seed = a.seed if a.seed is not None else int(time.time() * 1000) % 1000000007
    print("scan_graphs: %d graphs, seed %d (--seed %d replays them)" % (a.count, seed, seed), flush=True)
    rng = random.Random(seed)
    failed = []
    with tempfile.TemporaryDirectory(prefix="mixc-scan-graphs-") as tmp:
        for i in range(a.count):
            name = "scan_graph_%d_%d" % (seed, i)
            text = scan_graph(rng, name)
            path = os.path.join(tmp, name + ".mxir")
            with open(path, "w") as f:
                f.write(text)
            try:
                r = subprocess.run([a.mixc, "check", path], capture_output=True, text=True, timeout=300)
                rc, out = r.returncode, r.stdout + r.stderr
            except subprocess.TimeoutExpired:
                rc, out = "timeout", "no answer in 300 s"
            if rc == 0:
                continue
            kept = os.path.join(a.keep, name + ".mxir")
            with open(kept, "w") as f:
                f.write(text)
            failed.append(kept)
            print("FAILED (exit %s): %s" % (rc, kept))
            print("  " + "\n  ".join(l for l in out.strip().split("\n") if not l.endswith(" ok")))
    print("scan_graphs: %d of %d graphs failed" % (len(failed), a.count))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
