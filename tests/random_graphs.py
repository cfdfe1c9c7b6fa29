#!/usr/bin/env python3
"""random_graphs.py: random valid graphs, checked by mixc check on every device.

Two families, drawn alternately:

- scan: a scan neighbourhood as the zoo's blocks build it, its parts drawn
  at random: activations stored [B, C, L] or channels last (permuted into
  the scan), 1 to 4 scan orders (scan_gather of u, the results summed by
  scan_scatter), B and C of 1 or 2 groups stored [B, G, N, L] or
  [B, L, G, N], D, delta_bias, z, reverse, a final state output, and an
  epilogue of gates, skips, permutes, flips, reshapes and a bf16 round trip.
- ops: a chain of 3 to 16 ops over one or two inputs of rank 3 or 4, each
  op drawn from the elementwise ops (with broadcasts, and f16 / bf16 round
  trips), every view (permute, reshape, flip, shift, slice, concat, split,
  space_to_depth, unfold, scan_gather), linear and matmul, the norms,
  softmax, reduce, dwconv1d, dwconv2d and weighted_sum, on a value drawn
  from those made so far; some intermediates are outputs too.

Sizes are small and uneven. Every graph goes through `mixc check`: it must
compile for every device of the build and match the reference interpreter
there. A graph the reference runs and codegen refuses, or gets wrong, fails
the run; it is kept for replay. The weights and inputs are mixc's seeded
ones, from a seed drawn for each graph (`mixc check` prints it; the run's
--seed replays them all); A = -exp(A_log) and softplus on delta keep the states bounded, exp
and log are left out of the op chains, so that a mismatch is the kernels'
and not the data's.

    python3 tests/random_graphs.py --mixc build/mixc              32 graphs, a fresh seed
    python3 tests/random_graphs.py --mixc build/mixc --count 200 --seed 7 --family ops
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
    """The text IR of one random scan neighbourhood."""
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


def ops_graph(rng, name):
    """The text IR of one random chain of ops."""
    lines, pool, outputs = [], [], []
    count = {"v": 0, "p": 0}

    def emit(text):
        lines.append("  " + text)

    def fresh(kind):
        count[kind] += 1
        return "%s%d" % (kind, count[kind])

    def param(dims):
        p = fresh("p")
        emit("%%%s = param() : %s" % (p, shape(dims)))
        return p

    dims = [rng.choice([1, 2, 3]), rng.choice([4, 6, 8, 12]), rng.choice([5, 8, 16, 24, 33])]
    if rng.random() < 0.3:
        dims.insert(2, rng.choice([2, 4, 6]))
    emit("%%x = input() : %s" % shape(dims))
    pool.append(("x", dims))
    if rng.random() < 0.4:
        emit("%%x2 = input() : %s" % shape(dims))
        pool.append(("x2", dims))
    for _ in range(rng.randint(3, 16)):
        src, d = pool[-1] if rng.random() < 0.6 else rng.choice(pool)
        rank, v, op = len(d), fresh("v"), rng.choice(OPS)
        made = [(v, d)]
        if op == "unary":
            u = rng.choice(["silu", "tanh", "sigmoid", "neg", "relu", "gelu", "softplus", "scale"])
            attrs = " {value=0.5}" if u == "scale" else " {approx=tanh}" if u == "gelu" and rng.random() < 0.5 else ""
            emit("%%%s = %s(%%%s)%s : %s" % (v, u, src, attrs, shape(d)))
        elif op == "binary":
            other = rng.choice([n for n, dd in pool if dd == d])
            emit("%%%s = %s(%%%s, %%%s) : %s" % (v, rng.choice(["add", "mul", "sub"]), src, other, shape(d)))
        elif op == "broadcast":
            p = param([d[-1]] if rank < 2 or rng.random() < 0.5 else [d[-2], 1])
            emit("%%%s = %s(%%%s, %%%s) : %s" % (v, rng.choice(["add", "mul"]), src, p, shape(d)))
        elif op == "permute" and rank >= 2:
            perm = list(range(rank))
            rng.shuffle(perm)
            made = [(v, [d[i] for i in perm])]
            emit("%%%s = permute(%%%s) {perm=[%s]} : %s" % (v, src, ",".join(map(str, perm)), shape(made[0][1])))
        elif op == "reshape":
            if rank >= 3 and rng.random() < 0.5:
                i = rng.randrange(1, rank - 1)
                nd = d[:i] + [d[i] * d[i + 1]] + d[i + 2:]
            else:
                i = rng.randrange(rank)
                divisors = [k for k in range(2, d[i]) if d[i] % k == 0]
                if not divisors or rank >= 5:
                    continue
                k = rng.choice(divisors)
                nd = d[:i] + [k, d[i] // k] + d[i + 1:]
            made = [(v, nd)]
            emit("%%%s = reshape(%%%s) {shape=[%s]} : %s" % (v, src, ",".join(map(str, nd)), shape(nd)))
        elif op == "flip":
            emit("%%%s = flip(%%%s) {axis=%d} : %s" % (v, src, rng.randrange(rank), shape(d)))
        elif op == "shift":
            emit("%%%s = shift(%%%s) {axis=%d, k=%d} : %s" % (v, src, rng.randrange(rank), rng.choice([-2, -1, 1, 2, 3]), shape(d)))
        elif op == "slice":
            a = rng.randrange(rank)
            if d[a] < 2:
                continue
            start = rng.randrange(0, d[a] - 1)
            end, step = rng.randrange(start + 1, d[a] + 1), rng.choice([1, 1, 2])
            nd = list(d)
            nd[a] = (end - start + step - 1) // step
            made = [(v, nd)]
            emit("%%%s = slice(%%%s) {axis=%d, start=%d, end=%d, step=%d} : %s" % (v, src, a, start, end, step, shape(nd)))
        elif op == "concat":
            a = rng.randrange(rank)
            other, od = rng.choice([(n, dd) for n, dd in pool
                                    if len(dd) == rank and all(dd[i] == d[i] for i in range(rank) if i != a)])
            nd = list(d)
            nd[a] = d[a] + od[a]
            made = [(v, nd)]
            emit("%%%s = concat(%%%s, %%%s) {axis=%d} : %s" % (v, src, other, a, shape(nd)))
        elif op == "split":
            a = rng.randrange(rank)
            if d[a] < 2:
                continue
            c = rng.randrange(1, d[a])
            first, second = list(d), list(d)
            first[a], second[a] = c, d[a] - c
            made = [(v + ".a", first), (v + ".b", second)]
            emit("%%%s.a, %%%s.b = split(%%%s) {axis=%d, sizes=[%d,%d]} : %s, %s"
                 % (v, v, src, a, c, d[a] - c, shape(first), shape(second)))
        elif op == "linear":
            n = rng.choice([3, 8, 16, 24])
            w = param([n, d[-1]])
            bias = ", %" + param([n]) if rng.random() < 0.4 else ""
            made = [(v, d[:-1] + [n])]
            emit("%%%s = linear(%%%s, %%%s%s) : %s" % (v, src, w, bias, shape(made[0][1])))
        elif op == "matmul" and rank >= 2:
            n = rng.choice([3, 8, 16])
            if rng.random() < 0.5:
                w = param([d[-1], n])
                made = [(v, d[:-1] + [n])]
                emit("%%%s = matmul(%%%s, %%%s) : %s" % (v, src, w, shape(made[0][1])))
            else:
                w = param([n, d[-2]])
                made = [(v, d[:-2] + [n, d[-1]])]
                emit("%%%s = matmul(%%%s, %%%s) : %s" % (v, w, src, shape(made[0][1])))
        elif op == "norm":
            if rng.random() < 0.5:
                g, b = param([d[-1]]), param([d[-1]])
                emit("%%%s = layernorm(%%%s, %%%s, %%%s) : %s" % (v, src, g, b, shape(d)))
            else:
                emit("%%%s = rmsnorm(%%%s, %%%s) : %s" % (v, src, param([d[-1]]), shape(d)))
        elif op == "softmax":
            emit("%%%s = softmax(%%%s) {axis=%d} : %s" % (v, src, rng.randrange(rank), shape(d)))
        elif op == "reduce":
            a, keep = rng.randrange(rank), rng.random() < 0.5
            nd = list(d)
            if keep:
                nd[a] = 1
            else:
                del nd[a]
            if not nd:
                continue
            made = [(v, nd)]
            emit("%%%s = reduce(%%%s) {kind=%s, axis=%d, keepdim=%d} : %s"
                 % (v, src, rng.choice(["sum", "mean", "max"]), a, int(keep), shape(nd)))
        elif op == "dwconv1d" and rank == 3:
            k = rng.choice([2, 3, 4])
            w = param([d[1], k])
            bias = ", %" + param([d[1]]) if rng.random() < 0.5 else ""
            mode = "same" if k % 2 and rng.random() < 0.5 else "causal"
            emit("%%%s = dwconv1d(%%%s, %%%s%s) {mode=%s} : %s" % (v, src, w, bias, mode, shape(d)))
        elif op == "space_to_depth" and rank == 4 and d[1] % 2 == 0 and d[2] % 2 == 0:
            made = [(v, [d[0], d[1] // 2, d[2] // 2, 4 * d[3]])]
            emit("%%%s = space_to_depth(%%%s) {block=2} : %s" % (v, src, shape(made[0][1])))
        elif op == "unfold" and rank <= 4 and d[-1] >= 4:
            size = rng.choice([2, 3, 4])
            stride, pad = rng.choice([1, 2, size]), rng.choice([0, 0, 1])
            made = [(v, d[:-1] + [(d[-1] + pad - size) // stride + 1, size])]
            emit("%%%s = unfold(%%%s) {size=%d, stride=%d, pad=%d} : %s" % (v, src, size, stride, pad, shape(made[0][1])))
        elif op == "cast":
            half = rng.choice(["bf16", "f16"])
            emit("%%%s.h = cast(%%%s) {dtype=%s} : %s" % (v, src, half, shape(d, half)))
            emit("%%%s = cast(%%%s.h) {dtype=f32} : %s" % (v, v, shape(d)))
        elif op == "dwconv2d" and rank == 4 and d[2] >= 2 and d[3] >= 2:
            k = rng.choice([1, 3])
            bias = ", %" + param([d[1]]) if rng.random() < 0.5 else ""
            w = param([d[1], k, k])
            emit("%%%s = dwconv2d(%%%s, %%%s%s) : %s" % (v, src, w, bias, shape(d)))
        elif op == "scan_gather":
            n = d[-1]
            grids = [(h, n // h) for h in range(2, n) if n % h == 0]
            if not grids:
                continue
            h, w = rng.choice(grids)
            order = rng.choice(["row_rev", "col", "col_rev", "snake", "diag", "snake_col_rev"])
            emit("%%%s = scan_gather(%%%s) {order=%s, h=%d, w=%d} : %s" % (v, src, order, h, w, shape(d)))
        elif op == "weighted_sum":
            xs = [rng.choice([n for n, dd in pool if dd == d]) for _ in range(rng.randint(2, 3))]
            w = param([len(xs)])
            emit("%%%s = weighted_sum(%%%s, %s) : %s" % (v, w, ", ".join("%" + x for x in xs), shape(d)))
        else:
            continue
        pool.extend(made)
        if rng.random() < 0.12:
            outputs.append("%" + pool[-1][0])
    outputs.append("%" + pool[-1][0])
    outputs = list(dict.fromkeys(outputs))
    return "graph %s {\n%s\n  output %s\n}\n" % (name, "\n".join(lines), ", ".join(outputs))


OPS = ["unary", "binary", "broadcast", "permute", "reshape", "flip", "shift", "slice", "concat", "split", "linear",
       "matmul", "norm", "softmax", "reduce", "dwconv1d", "space_to_depth", "unfold", "weighted_sum", "cast",
       "dwconv2d", "scan_gather"]
FAMILIES = {"scan": scan_graph, "ops": ops_graph}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mixc", required=True, help="the mixc binary")
    ap.add_argument("--count", type=int, default=32, help="graphs to check (default 32)")
    ap.add_argument("--family", choices=["scan", "ops", "all"], default="all",
                    help="which graphs: around scans, chains of ops, or both in turn (default)")
    ap.add_argument("--seed", type=int, help="seed of the graphs (default: from the clock, printed)")
    ap.add_argument("--keep", default=".", help="folder the failing graphs are written to (default .)")
    a = ap.parse_args()
    if a.count < 1:
        ap.error("--count: expected a whole number >= 1")
    seed = a.seed if a.seed is not None else int(time.time() * 1000) % 1000000007
    print("random_graphs: %d graphs, seed %d (--seed %d replays them)" % (a.count, seed, seed), flush=True)
    families = ["scan", "ops"] if a.family == "all" else [a.family]
    rng = random.Random(seed)
    failed = []
    with tempfile.TemporaryDirectory(prefix="mixc-random-graphs-") as tmp:
        for i in range(a.count):
            family = families[i % len(families)]
            name = "%s_graph_%d_%d" % (family, seed, i)
            text = FAMILIES[family](rng, name)
            path = os.path.join(tmp, name + ".mxir")
            with open(path, "w") as f:
                f.write(text)
            try:
                r = subprocess.run([a.mixc, "check", path, "--seed", str(rng.randrange(1, 1 << 31))],
                                   capture_output=True, text=True, timeout=300)
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
    print("random_graphs: %d of %d graphs failed" % (len(failed), a.count))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
