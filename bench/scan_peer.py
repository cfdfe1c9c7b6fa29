#!/usr/bin/env python3
"""scan_peer.py: mixc's fused scan beside mamba_ssm's forward kernel.

Reads bench_scan's result file (the newest bench_scan-*.json in the results
folder that is not a --smoke run, or --scan FILE), runs mamba_ssm's kernel
(peer_scan, built by bench/mamba_ssm/build.sh) at each of its shapes and
storage types, in the same session on the same GPU, and writes
scan_vs_mamba_ssm-<device>.json beside it: both medians, min and max, the
speedup (mamba_ssm's median over mixc's), each side's % of the floor
(bench_scan's floor: u, dt, z, B, C read once, y written once, against the
target's roofline) and the issue's targets: mixc at >= 70% of the floor on
the three larger shapes, and faster than mamba_ssm on all four.

    python3 bench/scan_peer.py --peer build-bench/mamba_ssm/peer_scan
"""
import argparse
import glob
import json
import os
import subprocess
import sys
import time


def newest_scan_result(folder, after):
    found = []
    since = os.path.getmtime(after) if after else 0
    for path in glob.glob(os.path.join(folder, "bench_scan-*.json")):
        if os.path.getmtime(path) < since:
            continue
        try:
            with open(path) as f:
                data = json.load(f)
        except (OSError, ValueError) as e:
            print(f"scan_peer.py: {path}: skipped: {e}", file=sys.stderr)
            continue
        if not data.get("smoke"):
            found.append((os.path.getmtime(path), path, data))
    if not found:
        sys.exit(f"scan_peer.py: no bench_scan result of a GPU in {folder}"
                 + (f" newer than {after}" if after else "") + ": run bench_scan first")
    return max(found)[1:]


def run_peer(peer, r, runs, timeout):
    cmd = [peer, str(r["B"]), str(r["Ch"]), str(r["L"]), str(r["N"]), r["dtype"], str(runs)]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, f"{' '.join(cmd)}: no answer in {timeout} s"
    if p.returncode != 0:
        return None, f"{' '.join(cmd)}: exit {p.returncode}: {p.stderr.strip()}"
    try:
        return json.loads(p.stdout.strip().splitlines()[-1]), None
    except (ValueError, IndexError):
        return None, f"{' '.join(cmd)}: no JSON in its output: {p.stdout[-300:]!r}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--peer", required=True, help="the peer_scan binary (bench/mamba_ssm/build.sh)")
    ap.add_argument("--results", default=os.environ.get("MIXC_BENCH_RESULTS", "bench/results"),
                    help="where bench_scan wrote its file and this one goes (default bench/results)")
    ap.add_argument("--scan", help="bench_scan's result file (default: the newest GPU one in --results)")
    ap.add_argument("--runs", type=int, default=100, help="timed launches per shape (default 100, as bench_scan)")
    ap.add_argument("--timeout", type=int, default=120, help="seconds one shape may take (default 120)")
    ap.add_argument("--after", metavar="FILE", help="take only a bench_scan result written after FILE was")
    ap.add_argument("--sdist", default="", help="the source distribution's name, recorded in the result")
    a = ap.parse_args()
    if a.scan:
        with open(a.scan) as f:
            scan_path, scan = a.scan, json.load(f)
    else:
        scan_path, scan = newest_scan_result(a.results, a.after)
    if not scan.get("results"):
        sys.exit(f"scan_peer.py: {scan_path} holds no results")

    largest_first = sorted({(r["B"] * r["Ch"] * r["L"] * r["N"]) for r in scan["results"]}, reverse=True)
    larger = set(largest_first[:3])
    rows, failures = [], []
    print(f"{'dtype':5} {'B':>3} {'Ch':>5} {'L':>5} {'N':>3}  {'mixc ms':>9} {'floor%':>6}  "
          f"{'mamba_ssm ms':>12} {'floor%':>6}  speedup")
    for r in scan["results"]:
        shape = {k: r[k] for k in ("B", "Ch", "L", "N", "dtype")}
        if "error" in r:  # mixc failed this case: the peer alone would compare with nothing
            rows.append(dict(shape, error="bench_scan: " + r["error"]))
            print(f"{r['dtype']:5} {r['B']:>3} {r['Ch']:>5} {r['L']:>5} {r['N']:>3}  mixc failed: {r['error']}")
            continue
        peer, err = run_peer(a.peer, r, a.runs, a.timeout)
        if err:
            failures.append(err)
            print(f"{r['dtype']:5} {r['B']:>3} {r['Ch']:>5} {r['L']:>5} {r['N']:>3}  {r['median_ms']:9.3f}: {err}")
            rows.append(dict(shape, error=err))
            continue
        floor_ms = r["floor_ms"]
        row = dict(shape,
                   larger_shape=r["B"] * r["Ch"] * r["L"] * r["N"] in larger,
                   mixc={k: r[k] for k in ("median_ms", "min_ms", "max_ms", "runs", "pct_of_floor", "max_rel_err")},
                   mamba_ssm={k: peer[k] for k in ("median_ms", "min_ms", "max_ms", "runs", "rows_checked",
                                                   "max_rel_err")},
                   floor_ms=floor_ms,
                   speedup=peer["median_ms"] / r["median_ms"])
        row["mamba_ssm"]["pct_of_floor"] = 100 * floor_ms / peer["median_ms"]
        rows.append(row)
        print(f"{r['dtype']:5} {r['B']:>3} {r['Ch']:>5} {r['L']:>5} {r['N']:>3}  {r['median_ms']:9.3f} "
              f"{r['pct_of_floor']:6.1f}  {peer['median_ms']:12.3f} {row['mamba_ssm']['pct_of_floor']:6.1f}  "
              f"{row['speedup']:.2f}x")

    measured = [x for x in rows if "error" not in x]
    targets = {
        "floor_70pct_on_larger_shapes": bool(measured) and len(measured) == len(rows) and all(
            x["mixc"]["pct_of_floor"] >= 70 for x in measured if x["larger_shape"]),
        "faster_than_mamba_ssm_on_all": bool(measured) and len(measured) == len(rows) and all(
            x["speedup"] > 1 for x in measured),
    }
    out = {
        "benchmark": "scan_vs_mamba_ssm",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": scan.get("machine"), "cpu": scan.get("cpu"), "commit": scan.get("commit"),
        "device": scan.get("device"), "peak": scan.get("peak"),
        "mixc_results": os.path.basename(scan_path),
        "peer": "mamba_ssm selective_scan_fwd_cuda (its tile ladder on L), built from the source distribution "
                + (a.sdist or "(name not given)") + " with its own nvcc flags; it also writes the ungated output "
                "and the chunk states, which the floor does not count",
        "timing": "both sides: CUDA events around each launch or pass after warm-up, the L2 flushed before each; "
                  "median, min and max; run one after the other on the same GPU",
        "results": rows, "targets": targets,
    }
    name = "".join(c if c.isalnum() or c == "-" else "_" for c in scan.get("device", {}).get("name", "gpu"))
    path = os.path.join(a.results, f"scan_vs_mamba_ssm-{name}.json")
    with open(path + ".tmp", "w") as f:
        json.dump(out, f, indent=2)
        f.write("\n")
    os.replace(path + ".tmp", path)
    print(f"targets: >= 70% of floor on the larger shapes: {targets['floor_70pct_on_larger_shapes']}; "
          f"faster than mamba_ssm on all: {targets['faster_than_mamba_ssm_on_all']}")
    print(f"wrote {path}")
    for f in failures:
        print(f"scan_peer.py: {f}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
