#!/usr/bin/env python3
"""cpu_jit.py: the CPU backend's JIT: how long `mixc run --device cpu` takes
to get a model's kernels ready, cold (an empty kernel cache: every program
lowered, optimised and emitted) and warm (the objects from the cache), and
the forward pass the kernels then run, against a peer build (an earlier
mixc) in the same run, runs alternating.

Per run it records the load average, the time mixc reports for the kernels
(MIXC_DEBUG=1: "N kernels compiled ... in X ms"), the process's CPU time
(user + sys) and, where the build prints it (MIXC_DEBUG=2), the phase table:
lower, optimise, emit (wall and CPU time summed over the programs) and the
JIT's link. With --time N, each build's `mixc run --time N` median, min and
max too. Results: bench/results/cpu_jit-<cpu>.json.

    python3 bench/cpu_jit.py [--mixc build/mixc] [--peer OLD_MIXC] [--runs 5]
                             [--models vim2-tiny,tsm2-etth1] [--time 10]
                             [--label TEXT] [--peer-label TEXT]
"""
import argparse
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
RESULTS = os.path.join(ROOT, "bench", "results")
PHASE = re.compile(r"mixc: cpu:\s+(lower|optimise|emit)\s+([0-9.]+) ms wall,\s+([0-9.]+) ms CPU")
LINK = re.compile(r"mixc: cpu:\s+link\s+([0-9.]+) ms wall")
KERNELS = re.compile(r"mixc: cpu: (\d+) kernels (compiled|linked from the object cache)(?: \([^)]*\))? in ([0-9.]+) ms")
PROGRAMS = re.compile(r"mixc: cpu: (\d+) programs, (\d+) compiled on (\d+) threads \((\d+) functions, (\d+) IR "
                      r"instructions lowered, (\d+) optimised")
TIME = re.compile(r"time: median ([0-9.]+) ms, min ([0-9.]+) ms, max ([0-9.]+) ms")


def one_run(mixc, spec, cache, extra):
    """mixc run on the cpu device; what it printed about its kernels."""
    env = dict(os.environ, MIXC_DEBUG="2", MIXC_CACHE_DIR=cache)
    env.pop("MIXC_NO_CACHE", None)
    load = os.getloadavg()[0]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    p = subprocess.run([mixc, "run", spec, "--device", "cpu"] + extra, env=env, capture_output=True, text=True)
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode != 0:
        raise SystemExit(f"cpu_jit.py: {mixc} run {spec} failed:\n{p.stderr}")
    m = KERNELS.search(p.stderr)
    if not m:
        raise SystemExit(f"cpu_jit.py: {mixc} printed no kernel time:\n{p.stderr}")
    r = dict(load=load, kernels=int(m[1]), cached=m[2] != "compiled", kernels_ms=float(m[3]),
             process_wall_s=round(wall, 3),
             process_cpu_s=round(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, 3))
    phases = {ph: dict(wall_ms=float(w), cpu_ms=float(c)) for ph, w, c in PHASE.findall(p.stderr)}
    if phases:
        r["phases"] = phases
    link = LINK.search(p.stderr)
    if link:
        r["link_ms"] = float(link[1])
    prog = PROGRAMS.search(p.stderr)
    if prog:
        r.update(programs=int(prog[1]), compiled=int(prog[2]), threads=int(prog[3]), functions=int(prog[4]),
                 ir_lowered=int(prog[5]), ir_optimised=int(prog[6]))
    t = TIME.search(p.stdout + p.stderr)
    if t:
        r["forward"] = dict(median_ms=float(t[1]), min_ms=float(t[2]), max_ms=float(t[3]))
    return r


def summary(runs, key):
    xs = [r[key] for r in runs]
    return dict(median=statistics.median(xs), min=min(xs), max=max(xs))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mixc", default=os.path.join(ROOT, "build", "mixc"))
    ap.add_argument("--peer", help="another mixc build, timed in the same run")
    ap.add_argument("--label", default="this build", help="what --mixc is, for the results")
    ap.add_argument("--peer-label", default="the peer build", help="what --peer is, for the results")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--models", default="vim2-tiny")
    ap.add_argument("--time", type=int, default=0, help="also time N forward passes per build and model")
    args = ap.parse_args()
    builds = {"this": args.mixc}
    if args.peer:
        builds["peer"] = args.peer
    cpu_name = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu_name = " ".join(line.split(":", 1)[1].split()[:2])
                break
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    doc = dict(benchmark="cpu_jit", machine=os.uname().nodename, cpu=cpu_name, cores=os.cpu_count(), commit=commit,
               date=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
               builds={b: args.label if b == "this" else args.peer_label for b in builds}, runs=args.runs, models={})
    for model in args.models.split(","):
        spec = os.path.join(ROOT, "models", model + ".json")
        res = {b: dict(cold=[], warm=[], forward=[]) for b in builds}
        warm_dirs = {b: tempfile.mkdtemp(prefix="mixc-cpu-jit-warm-") for b in builds}
        for b, mixc in builds.items():  # fill the warm caches
            one_run(mixc, spec, warm_dirs[b], [])
        for _ in range(args.runs):
            for b, mixc in builds.items():  # alternating, so that the load falls on both
                cold = tempfile.mkdtemp(prefix="mixc-cpu-jit-cold-")
                res[b]["cold"].append(one_run(mixc, spec, cold, []))
                shutil.rmtree(cold)
                res[b]["warm"].append(one_run(mixc, spec, warm_dirs[b], []))
                if args.time:
                    res[b]["forward"].append(one_run(mixc, spec, warm_dirs[b], ["--time", str(args.time)]))
        for b in builds:
            shutil.rmtree(warm_dirs[b])
            for kind in ("cold", "warm"):
                res[b][kind + "_kernels_ms"] = summary(res[b][kind], "kernels_ms")
                res[b][kind + "_process_cpu_s"] = summary(res[b][kind], "process_cpu_s")
            if args.time:
                fw = [r["forward"]["median_ms"] for r in res[b]["forward"]]
                res[b]["forward_median_ms"] = dict(median=statistics.median(fw), min=min(fw), max=max(fw))
        doc["models"][model] = res
        for b in builds:
            print(f"{model} {b}: cold {res[b]['cold_kernels_ms']['median']:.0f} ms "
                  f"(min {res[b]['cold_kernels_ms']['min']:.0f}, max {res[b]['cold_kernels_ms']['max']:.0f}), "
                  f"warm {res[b]['warm_kernels_ms']['median']:.1f} ms"
                  + (f", forward {res[b]['forward_median_ms']['median']:.1f} ms" if args.time else ""))
    os.makedirs(RESULTS, exist_ok=True)
    path = os.path.join(RESULTS, "cpu_jit-" + re.sub(r"[^A-Za-z0-9-]", "_", cpu_name) + ".json")
    with open(path, "w") as f:
        json.dump(doc, f, indent=1)
    print("wrote", path)


if __name__ == "__main__":
    main()
