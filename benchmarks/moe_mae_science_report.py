#!/usr/bin/python3
"""Table, plots and raw JSON of benchmarks/moe_mae_science.sh's runs (issue 16, "Science").

usage: moe_mae_science_report.py OUT

Reads OUT/probes/meta{0,1}_seed{S}_f{F}.json (saec probe reports: encoder, random_init,
band_means) and OUT/probes/meta{M}_seed{S}_routing_{encoder,random_init}.npz (saec embed's expert_load with the tiles'
labels, metadata and split); writes OUT/results.json, OUT/README.md (the tables) and
OUT/label_efficiency.png, OUT/expert_load_by_class.png, OUT/expert_load_by_latitude.png.
"""
import glob
import json
import os
import re
import sys

import numpy as np

LAT_BANDS = [(-60, -30), (-30, 0), (0, 30), (30, 60), (60, 72)]


def load_probes(out):
    rows = []  # (meta, seed, fraction, kind, micro, macro)
    for path in sorted(glob.glob(os.path.join(out, "probes", "meta*_seed*_f*.json"))):
        m = re.search(r"meta(\d)_seed(\d+)_f([0-9.]+)\.json$", path)
        meta, seed, frac = int(m.group(1)), int(m.group(2)), float(m.group(3))
        for entry in json.load(open(path)):
            enc = entry["encoder"]
            kind = ("random_init" if enc.startswith("random_init") else
                    "band_means" if enc.startswith("band_means") else "encoder")
            rows.append((meta, seed, frac, kind, entry["micro_map"], entry["macro_map"],
                         entry["train_rows"], entry["test_rows"]))
    return rows


def stats(values):
    v = np.array(values, dtype=float)
    return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0,
            "n": int(len(v)), "values": [float(x) for x in v]}


def routing(out, meta, kind="encoder"):
    """Mean expert load per (block, expert) by class and by latitude band, over the seeds' test
    and train tiles (every tile of the set: routing needs no labels to be fit)."""
    by_class, by_lat, names = [], [], None
    for path in sorted(glob.glob(os.path.join(out, "probes", f"meta{meta}_seed*_routing_{kind}.npz"))):
        z = np.load(path)
        load = z["expert_load"].astype(np.float64)  # stored as float16: shares are multiples of 1/210
        labels, lat = z["labels"].astype(bool), z["metadata"][:, 2]
        names = [str(n) for n in z["class_names"]]
        mean = load.mean(0)  # [blocks, experts]
        by_class.append(np.stack([load[labels[:, c]].mean(0) - mean if labels[:, c].any()
                                  else np.zeros_like(mean) for c in range(labels.shape[1])]))
        by_lat.append(np.stack([load[(lat >= lo) & (lat < hi)].mean(0) - mean
                                if ((lat >= lo) & (lat < hi)).any() else np.zeros_like(mean)
                                for lo, hi in LAT_BANDS]))
    if not by_class:
        return None
    # per seed: an expert's number means nothing across seeds, so nothing is averaged over them
    return {"class_names": names, "by_class": by_class, "by_lat": by_lat, "seeds": len(by_class)}


def specialisation(r):
    """One number per block: the largest |deviation| of any class's (or band's) mean load from the
    all-tile mean, over experts: 0 = every class routed alike."""
    return {"by_class": np.mean([np.abs(d).max(axis=(0, 2)) for d in r["by_class"]], 0).tolist(),
            "by_latitude": np.mean([np.abs(d).max(axis=(0, 2)) for d in r["by_lat"]], 0).tolist()}


def main():
    out = sys.argv[1]
    probes = load_probes(out)
    if not probes:
        sys.exit(f"moe_mae_science_report.py: no probe reports under {out}/probes")
    fractions = sorted({p[2] for p in probes})
    table = {}
    for meta in (1, 0):
        for kind in ("encoder", "random_init", "band_means"):
            for frac in fractions:
                sel = [p for p in probes if p[0] == meta and p[3] == kind and p[2] == frac]
                if sel:
                    table[f"meta{meta}/{kind}/{frac:g}"] = {
                        "micro_map": stats([p[4] for p in sel]),
                        "macro_map": stats([p[5] for p in sel]),
                        "train_rows": sel[0][6], "test_rows": sel[0][7]}
    rout = {m: routing(out, m) for m in (1, 0)}
    init = routing(out, 1, "random_init")  # the control: routing before any training
    result = {"probes": table,
              "specialisation": {**{f"meta{m}": specialisation(r) for m, r in rout.items() if r},
                                 **({"meta1_random_init": specialisation(init)} if init else {})},
              "expert_load_deviation": {
                  f"meta{m}": {"class_names": r["class_names"], "latitude_bands": LAT_BANDS,
                               "by_class_per_seed": [d.tolist() for d in r["by_class"]],
                               "by_latitude_per_seed": [d.tolist() for d in r["by_lat"]]}
                  for m, r in rout.items() if r}}
    json.dump(result, open(os.path.join(out, "results.json"), "w"), indent=1)

    def cell(key, metric="micro_map"):
        s = table.get(key)
        return f"{s[metric]['mean']:.4f} ± {s[metric]['std']:.4f}" if s else "n/a"

    md = ["# MoE-MAE science runs on synthetic `eo` data", "",
          "Made by `benchmarks/moe_mae_science.sh` (raw reports under `probes/`, each run's "
          "config, metrics and expert-load record under `runs/`). Mean ± sample std over the seeds "
          f"({sorted({p[1] for p in probes})}). Probe: liblinear logistic regression, one-vs-rest, "
          "C chosen by saec probe; micro mAP on the test split of one fixed labelled set.", "",
          "## Probe quality: metadata in pretraining and probing against metadata zeroed", "",
          "| train labels | features | metadata (micro mAP) | zeroed (micro mAP) | metadata (macro mAP) | zeroed (macro mAP) |",
          "|---|---|---:|---:|---:|---:|"]
    for frac in fractions:
        for kind in ("encoder", "random_init", "band_means"):
            md.append(f"| {frac:.0%} | {kind} | {cell(f'meta1/{kind}/{frac:g}')} | "
                      f"{cell(f'meta0/{kind}/{frac:g}')} | {cell(f'meta1/{kind}/{frac:g}', 'macro_map')} | "
                      f"{cell(f'meta0/{kind}/{frac:g}', 'macro_map')} |")
    md += ["", "band_means do not depend on the metadata setting (the same pixels).", "",
           "## Expert specialisation", "",
           "Per encoder block, the largest deviation of a class's (latitude band's) mean routing "
           "share from the all-tile mean, over experts (0: every class routed alike; shares are of "
           "the tile's top-2 slots). Computed per seed, then averaged. The control: the same encoders at their "
           "random initialisation (metadata on), whose routers already react to their inputs.", "",
           "| block | by class (metadata) | by latitude (metadata) | by class (zeroed) | by latitude (zeroed) | by class (init) | by latitude (init) |",
           "|---:|---:|---:|---:|---:|---:|---:|"]
    sp = result["specialisation"]
    if all(k in sp for k in ("meta1", "meta0", "meta1_random_init")):
        for b in range(len(sp["meta1"]["by_class"])):
            md.append("| %d | " % b + " | ".join(
                "%.3f" % sp[k][w][b] for k in ("meta1", "meta0", "meta1_random_init")
                for w in ("by_class", "by_latitude")) + " |")
    open(os.path.join(out, "README.md"), "w").write("\n".join(md) + "\n")
    print("\n".join(md))
    plots(out, table, fractions, rout)


def plots(out, table, fractions, rout):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4))
    for meta, style in ((1, "-"), (0, "--")):
        for kind, color in (("encoder", "C0"), ("random_init", "C1"), ("band_means", "C2")):
            keys = [f"meta{meta}/{kind}/{f:g}" for f in fractions]
            if not all(k in table for k in keys) or (kind == "band_means" and meta == 0):
                continue
            m = [table[k]["micro_map"]["mean"] for k in keys]
            s = [table[k]["micro_map"]["std"] for k in keys]
            ax.errorbar([f * 100 for f in fractions], m, yerr=s, fmt=style + "o", color=color,
                        capsize=3, label=f"{kind}" + ("" if kind == "band_means" else
                                                      (", metadata" if meta else ", zeroed")))
    ax.set_xscale("log")
    ax.set_xlabel("train labels used (%)")
    ax.set_ylabel("test micro mAP")
    ax.set_title("MoE-MAE linear probes, synthetic eo (mean ± std over seeds)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "label_efficiency.png"), dpi=120)
    plt.close(fig)
    r = rout.get(1)
    if not r:
        return
    for what, data, labels in (("class", r["by_class"][0], r["class_names"]),
                               ("latitude", r["by_lat"][0], [f"{lo}..{hi}°" for lo, hi in LAT_BANDS])):
        blocks = data.shape[1]
        fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
        for ax, b in zip(axes, (0, blocks // 2, blocks - 1)):
            v = data[:, b, :]
            lim = max(np.abs(v).max(), 1e-6)
            im = ax.imshow(v, cmap="RdBu_r", vmin=-lim, vmax=lim, aspect="auto")
            ax.set_yticks(range(len(labels)), labels, fontsize=7)
            ax.set_xlabel("expert")
            ax.set_title(f"block {b}")
            fig.colorbar(im, ax=ax, fraction=0.05)
        fig.suptitle(f"routing share by {what} minus the all-tile share (metadata run, first seed)")
        fig.tight_layout()
        fig.savefig(os.path.join(out, f"expert_load_by_{what}.png"), dpi=110)
        plt.close(fig)


if __name__ == "__main__":
    main()
