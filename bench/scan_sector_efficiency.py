#!/usr/bin/env python3
"""scan_sector_efficiency.py: the zoo's scan kernels as the profile counts them
(docs/profile.md), before and after a change of the scan emitter, side by side.

Each input is what `MIXC_PROFILE_RECORD=FILE build/tests/test_profile_targets`
appends: one JSON object a line per scan kernel of every zoo model at the
reduced sizes of tests/zoo_reduced.h (h100). The two runs' kernels are paired
by model and position (the groups are the same; only the kernels differ).
Result: bench/results/scan_sector_efficiency.json.

    python3 bench/scan_sector_efficiency.py BEFORE.jsonl AFTER.jsonl \
        --before-commit C --after-commit C [--out FILE]
"""
import argparse
import json
import os
import platform
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
FIELDS = ["tiles", "load_efficiency", "store_efficiency", "exps_per_update", "exp_ratio", "bytes_ratio"]


def read(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("before")
    ap.add_argument("after")
    ap.add_argument("--before-commit", required=True)
    ap.add_argument("--after-commit", required=True)
    ap.add_argument("--out", default=os.path.join(HERE, "results", "scan_sector_efficiency.json"))
    a = ap.parse_args()
    before, after = read(a.before), read(a.after)
    if len(before) != len(after):
        sys.exit("scan_sector_efficiency: %d kernels before, %d after: not the same groups" % (len(before), len(after)))
    kernels = []
    for b, f in zip(before, after):
        if (b["model"], b["L"], b["rows"], b["N"], b["scans"]) != (f["model"], f["L"], f["rows"], f["N"], f["scans"]):
            sys.exit("scan_sector_efficiency: %s %s and %s %s do not pair" % (b["model"], b["kernel"], f["model"], f["kernel"]))
        k = {key: f[key] for key in ("model", "kernel", "rows", "L", "N", "scans", "merge_permuted")}
        k["before"] = {key: b[key] for key in FIELDS}
        k["after"] = {key: f[key] for key in FIELDS}
        kernels.append(k)
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    out = {
        "what": "load / store sector efficiency, exps per state update and bytes against the minimum of every zoo "
                "scan kernel, counted by the host emulation's profile (mixc profile, test_profile_targets): counts, "
                "not timings; no GPU ran anything",
        "machine": "%d cores, no GPU; %s" % (os.cpu_count(), load),
        "cpu": cpu_model(),
        "device": "emu (host emulation), code generated for h100",
        "shapes": "the zoo at tests/zoo_reduced.h: batch 1, vision 32x32 width 16 (L = 64, 16, 4, 1 by stage; "
                  "vim2's token mixers L = 64, 16, 4, 1, its channel mixers L = 32), series 3 variates x 64 "
                  "steps (tsm2: L = 8 and 3), blocks 12 tokens width 8",
        "before_commit": a.before_commit,
        "after_commit": a.after_commit,
        "before": "one row (b, c) per block for L < 32 (chunked), device buffers 256-byte aligned",
        "after": "packed rows for L < 32 (several rows per block, the scans' sum in shared memory)",
        "min_load_efficiency": min(k["after"]["load_efficiency"] for k in kernels),
        "min_load_efficiency_before": min(k["before"]["load_efficiency"] for k in kernels),
        "kernels": kernels,
    }
    with open(a.out + ".tmp", "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    os.replace(a.out + ".tmp", a.out)
    print("%s: %d kernels, load efficiency min %.1f%% -> %.1f%%" % (a.out, len(kernels),
          100 * out["min_load_efficiency_before"], 100 * out["min_load_efficiency"]))


if __name__ == "__main__":
    main()
