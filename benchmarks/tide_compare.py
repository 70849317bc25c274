#!/usr/bin/python3
"""Compare timestep modes on the `timestep` synthetic data at matched L0 (TIDE, SPEC §6).

    /usr/bin/python3 benchmarks/tide_compare.py [--saec build/saec] [--out DIR] [--k 8]
        [--latents 520] [--modes none,bucket,adaln,separate] [--steps N] [--seeds 0,1]
        [--extra KEY=VALUE ...]

Trains a TopK SAE per mode (so L0 = k for all: matched by construction) and seed, and writes
OUT/table.md and OUT/table.json: nmse, mmcs, L0, per-bucket nmse, temporally selective latents,
and the training step time of each mode relative to `none` (the issue's bound: bucket <= 1.10).
Modes: none, bucket, adaln and separate. Every mode gets the same number of latents, a multiple
of the buckets (default 520 = 52 per bucket), because `separate` splits them into one SAE per
bucket. Each run stays in OUT/runs/MODE_seedS. Step time is the run's tokens_per_second (whole
loop, data included) on a machine that should be otherwise idle.
"""
import argparse
import datetime
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

from runcheck import config_mismatch

MODES = ["none", "bucket", "adaln", "separate"]


def run(saec, mode, seed, args, out):
    """The summary of this mode and seed's run: reused when OUT/runs holds a finished run of the
    same configuration, trained otherwise; a run there from other settings is an error."""
    run_dir = out / "runs" / f"{mode}_seed{seed}"
    want = {"timestep_mode": mode, "synthetic": "timestep", "k": args.k, "latents": args.latents,
            "seed": seed}
    if args.steps:
        want["steps"] = args.steps
    for kv in args.extra:
        key, _, value = kv.partition("=")
        want[key] = value
    bad = config_mismatch(run_dir, want)
    if bad is None:
        return json.loads((run_dir / "summary.json").read_text())
    if run_dir.exists() and bad[0] not in ("summary.json", "config.json"):
        sys.exit(f"{run_dir} is a run with other settings (config key '{bad[0]}' is {bad[1]!r} "
                 f"there, {bad[2]!r} here); choose another --out")
    cmd = [saec, "train", "--synthetic", "timestep", "--timestep-mode", mode, "--k", str(args.k),
           "--latents", str(args.latents), "--seed", str(seed), "--out", str(run_dir)]
    if args.steps:
        cmd += ["--steps", str(args.steps)]
    for kv in args.extra:
        key, _, value = kv.partition("=")
        cmd += ["--" + key.replace("_", "-"), value]
    print("$ " + shlex.join(cmd), flush=True)
    with open(out / "runs" / f"{mode}_seed{seed}.log", "w") as log:
        rc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=log).returncode
    if rc != 0:
        sys.exit(f"run {run_dir} failed with exit code {rc}; see {log.name}")
    return json.loads((run_dir / "summary.json").read_text())


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--saec", default="build/saec")
    p.add_argument("--out", default="benchmarks/results/tide_" + datetime.date.today().isoformat())
    p.add_argument("--k", type=int, default=8)
    p.add_argument("--latents", type=int, default=520)
    p.add_argument("--modes", default=",".join(MODES))
    p.add_argument("--steps", type=int, default=0)
    p.add_argument("--seeds", default="0")
    p.add_argument("--extra", action="append", default=[], metavar="KEY=VALUE")
    args = p.parse_args()
    if not os.access(args.saec, os.X_OK):
        sys.exit(f"no saec binary at {args.saec}: build it first (README)")
    out = Path(args.out)
    (out / "runs").mkdir(parents=True, exist_ok=True)
    seeds = [int(s) for s in args.seeds.split(",")]
    modes = args.modes.split(",")
    for mode in modes:
        if mode not in MODES:
            sys.exit(f"unknown mode {mode!r}: choose from {','.join(MODES)}")
    rows = []
    for seed in seeds:
        res = {mode: run(args.saec, mode, seed, args, out) for mode in modes}
        base_tps = res["none"]["tokens_per_second"] if "none" in res else None
        for mode in modes:
            s = res[mode]
            rows.append({"mode": mode, "seed": seed, "l0": s["l0"], "nmse": s["nmse"],
                         "mmcs": s.get("mmcs"), "tokens_per_second": s["tokens_per_second"],
                         "step_time_vs_none": base_tps / s["tokens_per_second"] if base_tps
                         else None,
                         "temporally_selective_latents": s.get("temporally_selective_latents"),
                         "per_bucket_nmse": [b["nmse"] for b in s.get("per_bucket", [])]})
    header = {"command": shlex.join([sys.executable] + sys.argv), "date":
              datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    try:
        header["commit"] = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True,
                                          text=True).stdout.strip()
    except OSError:
        pass
    (out / "table.json").write_text(json.dumps({"header": header, "rows": rows}, indent=1))
    lines = ["# Timestep modes on `timestep` data, TopK at k = %d (L0 matched), %d latents"
             % (args.k, args.latents), "",
             "```", header["command"], "```", "",
             "| mode | seed | L0 | nmse | mmcs | selective latents | step time / none | per-bucket nmse |",
             "|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        pb = " ".join("%.3f" % v if v is not None else "-" for v in r["per_bucket_nmse"])
        ratio = "%.3f" % r["step_time_vs_none"] if r["step_time_vs_none"] else "-"
        lines.append("| %s | %d | %.2f | %.4f | %.4f | %s | %s | %s |" % (
            r["mode"], r["seed"], r["l0"], r["nmse"], r["mmcs"] or float("nan"),
            r["temporally_selective_latents"], ratio, pb))
    (out / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
