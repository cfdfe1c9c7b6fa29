#!/usr/bin/env python3
"""cpu_models.py: whole models, forward, on the CPU: mixc's cpu device against
its reference interpreter and PyTorch eager on the CPU, the same weights and
inputs, in one run.

For each model: `mixc save-weights` writes the seeded params, a seeded input
is written as safetensors, then `mixc run --device cpu|ref --time N --inputs
--outputs` times each device (median, min, max after warm-up, compile
excluded) and bench/torch_ref.py's model times PyTorch eager and
torch.compile (the selective scan, a Python loop over L, kept out of the
compiled graph as torch_ref.py does) with the same threads on those weights
and inputs (ViM2 and TSM2 models: the ones
torch_ref.py builds), its output compared with mixc's. Results:
bench/results/cpu_models-<cpu>.json, with the load average (the machine may
be shared) at each model. The cpu device and PyTorch are timed in
--rounds rounds, alternating (mixc, eager, torch.compile, mixc, ...), and
a speedup is the median of the rounds' ratios: on a shared host the
machine's speed drifts over tens of seconds (PyTorch eager took 0.45 s in
one run and 1.0 s in the next), which a single timing of each side turns
into the ratio. --no-torch leaves PyTorch out, --no-compile
torch.compile. An OPENBLAS_CORETYPE inherited from the environment is
cleared for mixc, which then picks OpenBLAS's kernels for the host (AVX-512
ones where it has AVX-512; a machine-wide OPENBLAS_CORETYPE=Haswell held
mixc's products to AVX2 kernels); --keep-openblas-coretype keeps it. The
results record what was inherited.

    python3 bench/cpu_models.py [--mixc build/mixc] [--threads 2] [--runs 5] [--rounds 3] [--models a,b]
                                [--no-torch] [--no-compile] [--keep-openblas-coretype]
"""
import argparse
import json
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
RESULTS = os.path.join(ROOT, "bench", "results")
MODELS = ["mamba-block", "tsm2-etth1", "vim2-tiny"]
TORCH_BUILDS = {"tsm2-etth1", "vim2-tiny"}  # the models torch_ref.py builds


def run(cmd, env):
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"cpu_models.py: {' '.join(cmd)} failed:\n{p.stderr}")
    return p.stdout + p.stderr


def mixc_time(args, model, device, inputs, outputs, runs, env):
    out = run([args.mixc, "run", os.path.join(ROOT, "models", model + ".json"), "--device", device,
               "--weights", os.path.join(RESULTS, model + ".safetensors"), "--inputs", inputs,
               "--outputs", outputs, "--time", str(runs)], env)
    m = re.search(r"time: median ([0-9.]+) ms, min ([0-9.]+) ms, max ([0-9.]+) ms", out)
    if not m:
        raise SystemExit(f"cpu_models.py: no time in mixc's output:\n{out}")
    return dict(runs=runs, median_ms=float(m[1]), min_ms=float(m[2]), max_ms=float(m[3]))


def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2] if len(xs) % 2 else (xs[len(xs) // 2 - 1] + xs[len(xs) // 2]) / 2


def over_rounds(times):
    """One side's timings of the rounds: the median of their medians, the
    extremes, and each round's."""
    return dict(runs=sum(t["runs"] for t in times), median_ms=median([t["median_ms"] for t in times]),
                min_ms=min(t["min_ms"] for t in times), max_ms=max(t["max_ms"] for t in times),
                rounds=[t["median_ms"] for t in times])


def speedup(peer, mixc):
    """The median and the extremes of the rounds' ratios peer / mixc."""
    r = [p / m for p, m in zip(peer["rounds"], mixc["rounds"])]
    return median(r), min(r), max(r)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mixc", default=os.path.join(ROOT, "build", "mixc"))
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--ref-runs", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds of mixc and PyTorch timings")
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--no-torch", action="store_true", help="leave PyTorch out")
    ap.add_argument("--no-compile", action="store_true", help="leave torch.compile out (eager only)")
    ap.add_argument("--keep-openblas-coretype", action="store_true",
                    help="keep an inherited OPENBLAS_CORETYPE (else mixc picks OpenBLAS's kernels for the host)")
    args = ap.parse_args()
    import torch
    from safetensors.torch import load_file, save_file
    torch.set_num_threads(args.threads)
    env = dict(os.environ, MIXC_THREADS=str(args.threads))
    inherited = os.environ.get("OPENBLAS_CORETYPE")
    if not args.keep_openblas_coretype:
        env.pop("OPENBLAS_CORETYPE", None)
    sys.path.insert(0, HERE)
    import torch_ref
    results = []
    for model in args.models.split(","):
        path = os.path.join(ROOT, "models", model + ".json")
        with open(path) as f:
            spec = json.load(f)
        if model in TORCH_BUILDS:
            spec = torch_ref.read_spec(path, [])
        weights = os.path.join(RESULTS, model + ".safetensors")
        run([args.mixc, "save-weights", os.path.join(ROOT, "models", model + ".json"), weights], env)
        shape = [int(v) for v in re.search(r"input\(\) : f32\[([0-9,]+)\]",
                                           run([args.mixc, "print", os.path.join(ROOT, "models", model + ".json")],
                                               env))[1].split(",")]
        name = {"vision": "image", "series": "series"}.get(spec.get("task"), "tokens")
        g = torch.Generator().manual_seed(7)
        x = torch.rand(*shape, generator=g) * 2 - 1
        inputs = os.path.join(RESULTS, model + "-in.safetensors")
        save_file({name: x}, inputs)
        out_cpu, out_ref = (os.path.join(RESULTS, f"{model}-out-{d}.safetensors") for d in ("cpu", "ref"))
        t0 = time.time()
        ref = mixc_time(args, model, "ref", inputs, out_ref, args.ref_runs, env)
        torch_sides = {}
        if model in TORCH_BUILDS and not args.no_torch:
            _, Mixc = torch_ref.build_torch()
            net = Mixc(spec).to_empty(device="cpu")
            net.load_state_dict(load_file(weights), strict=True)
            net.eval()
            with torch.no_grad():
                tout = net(x)
            torch_sides["eager"] = (lambda: net(x), [])
            if not args.no_compile:
                compiled, compile_s = torch.compile(net), time.time()
                with torch.no_grad():
                    cout = compiled(x)  # the first call compiles
                compile_s = time.time() - compile_s
                torch_sides["compile"] = (lambda: compiled(x), [])
        cpu_rounds = []
        for _ in range(args.rounds):
            cpu_rounds.append(mixc_time(args, model, "cpu", inputs, out_cpu, args.runs, env))
            for call, times in torch_sides.values():
                times.append(torch_ref.time_cpu(torch, call, 1, max(2, args.runs // 2)))
        cpu = over_rounds(cpu_rounds)
        got, want = load_file(out_cpu), load_file(out_ref)
        key = sorted(got)[0]
        err = ((got[key] - want[key]).abs() / want[key].abs().clamp(min=1)).max().item()
        entry = dict(model=model, batch=spec["batch"], threads=args.threads, rounds=args.rounds, mixc_cpu=cpu,
                     mixc_ref=ref, cpu_vs_ref_max_rel_err=err, speedup_vs_ref=ref["median_ms"] / cpu["median_ms"],
                     load_average=os.getloadavg()[0])
        line = (f"{model}: cpu {cpu['median_ms']:.2f} ms, ref {ref['median_ms']:.1f} ms "
                f"({entry['speedup_vs_ref']:.1f}x), err {err:.2g}")
        if "eager" in torch_sides:
            eager = over_rounds(torch_sides["eager"][1])
            mid, lo, hi = speedup(eager, cpu)
            terr = ((tout - got[key]).abs() / got[key].abs().clamp(min=1)).max().item()
            entry.update(torch_eager_cpu=eager, torch_vs_mixc_max_rel_err=terr, speedup_vs_torch_eager=mid,
                         speedup_vs_torch_eager_range=[lo, hi])
            line += (f"; torch eager {eager['median_ms']:.1f} ms ({mid:.1f}x, rounds {lo:.1f}-{hi:.1f}x), "
                     f"err {terr:.2g}")
        if "compile" in torch_sides:
            timed = over_rounds(torch_sides["compile"][1])
            mid, lo, hi = speedup(timed, cpu)
            cerr = ((cout - got[key]).abs() / got[key].abs().clamp(min=1)).max().item()
            entry.update(torch_compile_cpu=dict(timed, compile_s=compile_s), torch_compile_vs_mixc_max_rel_err=cerr,
                         speedup_vs_torch_compile=mid, speedup_vs_torch_compile_range=[lo, hi])
            line += (f"; torch.compile {timed['median_ms']:.1f} ms ({mid:.1f}x, rounds {lo:.1f}-{hi:.1f}x, "
                     f"compiled in {compile_s:.0f} s), err {cerr:.2g}")
        print(line + f"  [{time.time() - t0:.0f} s]", flush=True)
        results.append(entry)
        for f in (inputs, out_cpu, out_ref):
            os.remove(f)
    cpu_name = torch_ref.device_name(torch, "cpu")
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    path = os.path.join(RESULTS, "cpu_models-" + re.sub(r"[^A-Za-z0-9-]", "_", cpu_name) + ".json")
    doc = dict(benchmark="cpu_models", machine=os.uname().nodename, cpu=cpu_name, cores=os.cpu_count(),
               commit=commit, date=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), torch=torch.__version__,
               timing="wall time per forward pass after warm-up (mixc run --time; torch_ref.time_cpu), median; "
                      "mixc and PyTorch in alternating rounds, the median of the rounds' medians, a speedup the "
                      "median of the rounds' ratios",
               scan_in_torch="mamba_ssm selective_scan_ref (a Python loop over L)",
               openblas_coretype=dict(inherited=inherited, kept_for_mixc=args.keep_openblas_coretype),
               results=results)
    with open(path + ".tmp", "w") as f:
        json.dump(doc, f, indent=2)
    os.replace(path + ".tmp", path)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
