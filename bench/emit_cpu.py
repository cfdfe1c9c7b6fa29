#!/usr/bin/env python3
"""emit_cpu.py: the project `mixc emit --target cpu` writes, timed against
the cpu device it was emitted from, in the same run.

For each model: `mixc emit --target cpu` into a temp folder, built with its
Makefile (plain-C products, and `make BLAS=openblas`), then ROUNDS rounds
alternating `mixc run --device cpu --time RUNS` and each build's `./example 1
weights.safetensors RUNS` (both: wall time per forward pass after one
untimed pass, median over RUNS), the same threads (MIXC_THREADS and
MXS_THREADS), the load average recorded with each round. The checksums of
both are compared (1e-4 relative). Result: the median over rounds of each
round's median, the spread (min and max over rounds) and the ratio to the
cpu device's; bench/results/emit_cpu-<cpu>.json.

    python3 bench/emit_cpu.py [--mixc build/mixc] [--threads N] [--runs 20] [--rounds 3]
"""
import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
RESULTS = os.path.join(ROOT, "bench", "results")
MODELS = ["mamba-block", "vim2-tiny"]


def run(cmd, env, cwd=None):
    p = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"emit_cpu.py: {' '.join(cmd)} failed:\n{p.stdout}{p.stderr}")
    return p.stdout + p.stderr


def checksums(text):
    return [float(c) for c in re.findall(r"checksum=(\S+)", text)]


def median_ms(text, pattern, what):
    m = re.search(pattern, text)
    if not m:
        raise SystemExit(f"emit_cpu.py: no time in the output of {what}:\n{text}")
    return float(m[1])


def cpu_name():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return os.uname().machine


def summary(medians, peer):
    mid = statistics.median(medians)
    out = dict(median_ms=mid, min_ms=min(medians), max_ms=max(medians), rounds_ms=medians)
    if peer is not None:
        out["ratio_to_cpu_device"] = mid / peer
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mixc", default=os.path.join(ROOT, "build", "mixc"))
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--models", default=",".join(MODELS))
    args = ap.parse_args()
    # OpenBLAS's threads sleep at once after a product (mixc sets this for
    # itself; the emitted Makefile tells users of the example to).
    env = dict(os.environ, MIXC_THREADS=str(args.threads), MXS_THREADS=str(args.threads),
               OPENBLAS_NUM_THREADS=str(args.threads), OPENBLAS_THREAD_TIMEOUT="4")
    # The example links OpenBLAS, which then picks its kernels by CPU model;
    # the cpu device names them from the CPU's features (docs/cpu.md). Both
    # sides run the kernels the device chose.
    said = run([args.mixc, "run", os.path.join(ROOT, "models", "mamba-block.json"), "--device", "cpu"],
               dict(env, MIXC_DEBUG="1"))
    core = re.search(r"OpenBLAS with its (\w+) kernels", said)
    if core and "OPENBLAS_CORETYPE" not in env:
        env["OPENBLAS_CORETYPE"] = core[1]
    work = tempfile.mkdtemp(prefix="mixc-emit-cpu-")
    results = []
    try:
        for model in args.models.split(","):
            spec = os.path.join(ROOT, "models", model + ".json")
            project = os.path.join(work, model)
            run([args.mixc, "emit", spec, "-o", project, "--target", "cpu", "--seed", "1"], env)
            builds = {}
            for blas in ("", "openblas"):
                name = blas or "plain"
                shutil.copytree(project, project + "-" + name)
                run(["make", "-s", "BLAS=" + blas], env, cwd=project + "-" + name)
                builds[name] = project + "-" + name
            times = {"cpu_device": [], **{b: [] for b in builds}}
            loads = []
            want = None
            for _ in range(args.rounds):
                loads.append(os.getloadavg()[0])
                out = run([args.mixc, "run", spec, "--device", "cpu", "--seed", "1", "--time", str(args.runs)], env)
                want = checksums(out)
                times["cpu_device"].append(median_ms(out, r"time: median ([0-9.]+) ms", "mixc run"))
                for b, folder in builds.items():
                    out = run(["./example", "1", "weights.safetensors", str(args.runs)], env, cwd=folder)
                    got = checksums(out)
                    if len(got) != len(want) or any(abs(g - w) > 1e-4 * max(1, abs(w)) for g, w in zip(got, want)):
                        raise SystemExit(f"emit_cpu.py: {model} ({b}): checksums {got} != mixc run's {want}")
                    times[b].append(median_ms(out, r"forward: median ([0-9.]+) ms", "./example"))
            device = statistics.median(times["cpu_device"])
            entry = dict(model=model, threads=args.threads, runs=args.runs, rounds=args.rounds,
                         load_average_1min=loads, cpu_device=summary(times["cpu_device"], None),
                         example_plain_c=summary(times["plain"], device),
                         example_openblas=summary(times["openblas"], device))
            print(f"{model}: cpu device {device:.2f} ms; example {entry['example_plain_c']['median_ms']:.2f} ms "
                  f"plain C ({entry['example_plain_c']['ratio_to_cpu_device']:.2f}x), "
                  f"{entry['example_openblas']['median_ms']:.2f} ms OpenBLAS "
                  f"({entry['example_openblas']['ratio_to_cpu_device']:.2f}x); load {loads}", flush=True)
            results.append(entry)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    name = cpu_name()
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    path = os.path.join(RESULTS, "emit_cpu-" + re.sub(r"[^A-Za-z0-9-]", "_", " ".join(name.split()[:2])) + ".json")
    doc = dict(benchmark="emit_cpu", machine=os.uname().nodename, cpu=name, cores=os.cpu_count(), commit=commit,
               date=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
               openblas_kernels=env.get("OPENBLAS_CORETYPE", "OpenBLAS's own choice"),
               openblas_thread_timeout=env["OPENBLAS_THREAD_TIMEOUT"],
               shapes="the models' own specs (models/*.json), batch as given there",
               timing="wall time per forward pass after one untimed pass, median of RUNS per round; "
                      "median, min and max over rounds; mixc run --device cpu --time and ./example alternate",
               results=results)
    with open(path + ".tmp", "w") as f:
        json.dump(doc, f, indent=2)
    os.replace(path + ".tmp", path)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
