#!/usr/bin/python3
"""Train every SAE variant on the same `hierarchy` synthetic data at a matched L0 and compare them.

Run with Debian's interpreter (numpy and matplotlib come from python3-numpy, python3-matplotlib):

    /usr/bin/python3 benchmarks/sweep_variants.py [--target-l0 8] [--archs topk,relu] \
        [--extra steps=1000]

Each variant has one sparsity knob, tuned run by run until the measured L0 (summary.json, on the
held-out eval stream) is within ±tolerance (relative) of the target:

- topk, batchtopk: the integer `k`. Start at round(target); next k = round(k · target / L0),
  moved by at least 1 and kept strictly between the largest k that gave too small an L0 and the
  smallest k that gave too large one; when no integer is left there, the arch cannot be matched.
- relu, atm (`l1_coef`) and jumprelu (`jumprelu_l0_coef`): λ, where a larger λ is sparser. Start
  at a default guess (or --start ARCH=VALUE). Until the target is bracketed (one run too dense,
  one too sparse), multiply or divide λ by 4, or by the factor that the secant of log L0 against
  log λ through the last two runs predicts, clamped to [4, 64] (16 when L0 is flat in λ, which
  is also logged as a warning: the knob may do nothing at that run length). Once bracketed,
  interpolate (regula falsi in log λ vs log L0, kept inside the middle 80% of the bracket), and
  bisect geometrically instead when the same end of the bracket moved twice in a row or an end
  has L0 0.

Every run lives in OUT/runs/ARCH_try<i> (its stderr in OUT/runs/ARCH_try<i>.log). Rerunning the
same command with the same --out reuses the runs that finished (their config.json must agree).
Outputs: OUT/sweep.log, OUT/table.json, OUT/table.md, OUT/plot.png, each written atomically. An
arch that cannot be matched within --max-tries is reported with its closest run and
`matched: false`, as is an arch whose run fails (with the run's stderr tail); the script then
exits 1 after writing everything. Exit 2: a usage error, a missing binary, or a run directory
left by a different sweep in OUT/runs; 130: interrupted (the finished archs are written).
"""

import argparse
import datetime
import json
import math
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from runcheck import config_mismatch

REPO = Path(__file__).resolve().parent.parent
ALL_ARCHS = ["topk", "batchtopk", "relu", "jumprelu", "atm"]
KNOB = {"topk": "k", "batchtopk": "k", "relu": "l1_coef", "atm": "l1_coef",
        "jumprelu": "jumprelu_l0_coef"}
DEFAULT_START = {"relu": 0.03, "atm": 0.03, "jumprelu": 0.01}
# Fixed per-variant settings of every try (README, "Variants"). JumpReLU at SPEC's θ₀ = 0.001 and
# ε = 0.001: Adam moves log θ by about lr per step, so in 3000 steps θ cannot reach the scale of
# the pre-activations (~1); and in saec's units (E‖xn‖² = d) a window of 0.001 holds so few
# pre-activations that θ's gradient is mostly zero and λ barely changes L0. θ₀ = 0.1 and ε = 0.01
# make L0 follow λ.
ARCH_EXTRA = {"jumprelu": [("jumprelu_theta_init", "0.1"), ("jumprelu_bandwidth", "0.01")]}
METRICS = ["l0", "nmse", "explained_variance", "dead_fraction", "mmcs", "absorption_fraction",
           "full_absorption", "seconds"]
# Keys the sweep sets itself; --extra may not override them.
RESERVED = {"arch", "out", "seed", "synthetic", "data", "resume", "config", "k", "l1_coef",
            "jumprelu_l0_coef"}
BRACKET_FACTOR = 4.0
MAX_FACTOR = 64.0


class SweepError(Exception):
    """A failure of one arch's search, with a message meant for the user."""


class StaleRunDir(Exception):
    """OUT/runs holds a run of another configuration: the whole sweep stops."""


def norm_key(key):
    return key.strip().lstrip("-").replace("-", "_")


def atomic_write(path, data):
    """Write bytes or text to a temporary file beside `path`, then rename it over `path`."""
    path = Path(path)
    if isinstance(data, str):
        data = data.encode()
    fd, tmp = tempfile.mkstemp(prefix="." + path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def git_info():
    try:
        commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain",
                                "--untracked-files=no"], capture_output=True, text=True,
                               check=True).stdout.strip() != ""
        return commit, dirty
    except (OSError, subprocess.CalledProcessError):
        return None, None


def fmt_knob(name, value):
    return str(int(value)) if name == "k" else "%.6g" % value


def rel_err(l0, target):
    return abs(l0 - target) / target


class Sweep:
    def __init__(self, args):
        self.args = args
        self.out = Path(args.out)
        self.runs = self.out / "runs"
        self.runs.mkdir(parents=True, exist_ok=True)
        self.log_path = self.out / "sweep.log"
        self.log_file = open(self.log_path, "a", encoding="utf-8")
        self.lo = args.target_l0 * (1 - args.tolerance)
        self.hi = args.target_l0 * (1 + args.tolerance)

    def log(self, line, echo=True):
        stamp = datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S")
        self.log_file.write("%s %s\n" % (stamp, line))
        self.log_file.flush()
        if echo:
            print(line, flush=True)

    # ---- one training run ----
    def train_cmd(self, arch, knob_value, run_dir):
        a = self.args
        knob = KNOB[arch]
        cmd = [a.saec, "train", "--synthetic", "hierarchy", "--arch", arch, "--out", str(run_dir),
               "--seed", str(a.seed), "--" + knob.replace("_", "-"), fmt_knob(knob, knob_value)]
        if a.steps is not None:
            cmd += ["--steps", str(a.steps)]
        for key, value in ARCH_EXTRA.get(arch, []) + a.extra:
            cmd += ["--" + key.replace("_", "-"), value]
        return cmd

    def reusable(self, arch, knob_value, run_dir):
        """True when run_dir is a finished run of exactly this configuration."""
        want = {"arch": arch, "synthetic": "hierarchy", "seed": str(self.args.seed),
                KNOB[arch]: fmt_knob(KNOB[arch], knob_value)}
        if self.args.steps is not None:
            want["steps"] = str(self.args.steps)
        for key, value in ARCH_EXTRA.get(arch, []) + self.args.extra:
            want[key] = value
        bad = config_mismatch(run_dir, want)
        if bad is None:
            return True
        key, have, value = bad
        if key in ("summary.json", "config.json"):
            return False
        raise StaleRunDir(
            "%s exists from a different sweep (config key '%s' is %r there, %r here); "
            "choose another --out" % (run_dir, key, have, value))

    def run(self, arch, tri, knob_value):
        run_dir = self.runs / ("%s_try%d" % (arch, tri))
        log_path = self.runs / ("%s_try%d.log" % (arch, tri))
        cmd = self.train_cmd(arch, knob_value, run_dir)
        if self.reusable(arch, knob_value, run_dir):
            reused = True
        else:
            reused = False
            if run_dir.exists():           # an unfinished run of ours: start it again
                shutil.rmtree(run_dir)
            with open(log_path, "w", encoding="utf-8") as err:
                err.write("$ %s\n" % shlex.join(cmd))
                err.flush()
                rc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=err).returncode
            if rc != 0:
                tail = log_path.read_text(errors="replace").splitlines()[-15:]
                raise SweepError("run %s failed with exit code %d:\n  $ %s\n  stderr (last lines, "
                                 "full log in %s):\n%s" % (run_dir, rc, shlex.join(cmd), log_path,
                                                           "\n".join("    " + l for l in tail)))
        try:
            summary = json.loads((run_dir / "summary.json").read_text())
            l0 = float(summary["l0"])
        except (OSError, ValueError, KeyError) as e:
            raise SweepError("run %s finished but its summary.json is unreadable or lacks l0: %s"
                             % (run_dir, e))
        return {"try": tri, "knob_value": knob_value, "l0": l0, "run_dir": str(run_dir),
                "command": shlex.join(cmd), "reused": reused, "summary": summary}

    # ---- the searches ----
    def next_k(self, tried):
        """tried: {k: l0}. The next integer k, or None when no untried integer can match."""
        target = self.args.target_l0
        too_low = [k for k, l0 in tried.items() if l0 < self.lo]     # k too small
        too_high = [k for k, l0 in tried.items() if l0 > self.hi]    # k too large
        floor_k = max(too_low, default=0)
        ceil_k = min(too_high, default=math.inf)
        last_k, last_l0 = list(tried.items())[-1]
        k = round(last_k * target / last_l0) if last_l0 > 0 else last_k * 2
        if k == last_k:
            k += 1 if last_l0 < target else -1
        k = max(k, floor_k + 1)
        if k >= ceil_k:
            k = ceil_k - 1
        if k <= floor_k or k < 1 or k in tried:
            # The best untried k strictly inside the bracket, nearest to the estimate.
            inside = [c for c in range(floor_k + 1, int(min(ceil_k, floor_k + 10 * target + 2)))
                      if c not in tried and c >= 1]
            if not inside:
                return None
            k = min(inside, key=lambda c: abs(c - k))
        return k

    def next_lambda(self, points):
        """points: [(λ, l0)] in the order run. L0 falls as λ grows. Returns the next λ."""
        target = self.args.target_l0
        dense = [(lam, l0) for lam, l0 in points if l0 > self.hi]    # λ too small
        sparse = [(lam, l0) for lam, l0 in points if l0 < self.lo]   # λ too large
        if not dense or not sparse:
            # Not bracketed yet: step from the extreme run in the direction that is needed.
            if dense:
                base_lam, base_l0 = max(dense)
                up = True
            else:
                base_lam, base_l0 = min(sparse)
                up = False
            factor = BRACKET_FACTOR
            same_side = dense if up else sparse
            if len(same_side) >= 2 and base_l0 > 0:
                (l1, y1), (l2, y2) = sorted(same_side)[-2:] if up else sorted(same_side)[:2]
                if y1 > 0 and y2 > 0 and l1 != l2:
                    slope = (math.log(y2) - math.log(y1)) / (math.log(l2) - math.log(l1))
                    if slope > -0.05:
                        factor = 16.0   # L0 is (nearly) flat in λ here: take bigger steps
                    else:
                        want = math.exp((math.log(target) - math.log(base_l0)) / slope)
                        want = want if up else 1 / want
                        factor = min(max(want, BRACKET_FACTOR), MAX_FACTOR)
            return base_lam * factor if up else base_lam / factor
        # Bracketed: the densest-side λ just below the target and the sparse-side λ just above.
        la, ya = max(dense)
        lb, yb = min(sparse)
        if la >= lb:
            # Noise made L0 non-monotone in λ: bisect between the two runs nearest to the target.
            return math.sqrt(la * lb)
        xa, xb = math.log(la), math.log(lb)
        # The last two runs on the same side: one end of the bracket moved twice in a row, so
        # the interpolation is converging from one side only (regula falsi's weakness): bisect.
        side = lambda l0: l0 > target
        twice = side(points[-1][1]) == side(points[-2][1])
        if yb <= 0 or twice:
            x = 0.5 * (xa + xb)
        else:
            ta, tb = math.log(ya), math.log(yb)
            x = xa + (math.log(target) - ta) * (xb - xa) / (tb - ta)
            w = xb - xa
            x = min(max(x, xa + 0.1 * w), xb - 0.1 * w)
        return math.exp(x)

    def tune(self, arch):
        a = self.args
        knob = KNOB[arch]
        history = []
        error = None
        if knob == "k":
            value = max(1, round(a.target_l0))
        else:
            value = a.start.get(arch, DEFAULT_START[arch])
        warned_flat = False
        for tri in range(1, a.max_tries + 1):
            try:
                r = self.run(arch, tri, value)
            except SweepError as e:
                error = str(e)
                self.log("%-9s try %d  %-29s FAILED"
                         % (arch, tri, "%s = %s" % (knob, fmt_knob(knob, value))))
                self.log(error)
                break
            history.append(r)
            ok = self.lo <= r["l0"] <= self.hi
            self.log("%-9s try %d  %-29s L0 = %-8.3f %s%s" % (
                arch, tri, "%s = %s" % (knob, fmt_knob(knob, value)), r["l0"],
                "matched" if ok else ("too dense" if r["l0"] > self.hi else "too sparse"),
                " (reused)" if r["reused"] else ""))
            if ok:
                break
            if tri == a.max_tries:
                break
            if knob == "k":
                value = self.next_k({h["knob_value"]: h["l0"] for h in history})
                if value is None:
                    self.log("%-9s no integer k gives L0 within %.3g..%.3g; stopping"
                             % (arch, self.lo, self.hi))
                    break
            else:
                points = [(h["knob_value"], h["l0"]) for h in history]
                (l1, y1), (l2, y2) = points[-2:] if len(points) >= 2 else ((1, 0), (1, 1))
                if not warned_flat and max(l1, l2) >= 4 * min(l1, l2) and \
                        abs(y2 - y1) <= 0.01 * max(y1, y2):
                    warned_flat = True
                    self.log("%-9s warning: L0 does not change between %s = %s and %s; the knob "
                             "may have no effect at this run length" % (
                                 arch, knob, fmt_knob(knob, l1), fmt_knob(knob, l2)))
                value = float("%.6g" % self.next_lambda(points))
                if any(math.isclose(value, h["knob_value"], rel_tol=1e-6) for h in history):
                    self.log("%-9s λ search converged to %s without matching; stopping"
                             % (arch, fmt_knob(knob, value)))
                    break
        return self.row(arch, history, error, tri)

    def row(self, arch, history, error, tries):
        a = self.args
        knob = KNOB[arch]
        row = {"arch": arch, "knob": knob, "knob_value": None, "tries": tries,
               "matched": False}
        row.update({m: None for m in METRICS})
        if history:
            best = min(history, key=lambda h: rel_err(h["l0"], a.target_l0))
            row["matched"] = self.lo <= best["l0"] <= self.hi
            row["knob_value"] = int(best["knob_value"]) if knob == "k" else best["knob_value"]
            for m in METRICS:
                v = best["summary"].get(m)
                row[m] = float(v) if isinstance(v, (int, float)) else None
            row["run_dir"] = best["run_dir"]
            row["command"] = best["command"]
        row["history"] = [{"try": h["try"], knob: h["knob_value"], "l0": h["l0"],
                           "run_dir": h["run_dir"]} for h in history]
        if error:
            row["error"] = error
        return row


# ---- outputs ----
def fmt(v, digits=4):
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "**no**"
    if isinstance(v, (int, str)):
        return str(v)
    return "%.*g" % (digits, v)


def table_md(header, rows):
    lines = ["# SAE variants at matched L0 on `hierarchy` data", "",
             "```", header["command"], "```", "",
             "target L0 %g ± %g%% (%.3g..%.3g); commit %s%s; %s" % (
                 header["target_l0"], 100 * header["tolerance"], header["l0_range"][0],
                 header["l0_range"][1], header["git_commit"] or "unknown",
                 " (dirty tree)" if header["git_dirty"] else "", header["date"]), ""]
    cols = [("arch", "arch"), ("knob", "knob"), ("knob_value", "value"), ("tries", "tries"),
            ("matched", "matched"), ("l0", "L0"), ("nmse", "nmse"),
            ("explained_variance", "expl. var."), ("dead_fraction", "dead"), ("mmcs", "mmcs"),
            ("absorption_fraction", "absorption"), ("full_absorption", "full abs."),
            ("seconds", "seconds")]
    lines.append("| " + " | ".join(c[1] for c in cols) + " |")
    lines.append("|" + "|".join("---" if i < 2 else "---:" for i in range(len(cols))) + "|")
    for r in rows:
        cells = []
        for key, _ in cols:
            v = r.get(key)
            digits = {"seconds": 3, "knob_value": 6}.get(key, 4)
            cells.append(("`%s`" % v) if key == "knob" else fmt(v, digits))
        lines.append("| " + " | ".join(cells) + " |")
    errs = [r for r in rows if r.get("error")]
    if errs:
        lines += ["", "Errors:", ""]
        for r in errs:
            msg = r["error"].splitlines()
            why = [l.strip() for l in msg if "error:" in l][-1:]
            lines.append("- %s: %s" % (r["arch"], " ".join(msg[:1] + why)))
    lines.append("")
    return "\n".join(lines)


def plot(path, header, rows):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    import io

    labels = [r["arch"] + ("\nL0 %.2f" % r["l0"] if r.get("l0") is not None else "")
              + ("" if r["matched"] else "\n(unmatched)") for r in rows]
    x = np.arange(len(rows))
    val = lambda r, k: np.nan if r.get(k) is None else r[k]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(min(16, 1.5 * len(rows) + 6), 4.4),
                                   gridspec_kw={"width_ratios": [1.5, 1]})
    w = 0.38
    absf = [val(r, "absorption_fraction") for r in rows]
    full = [val(r, "full_absorption") for r in rows]
    b1 = ax1.bar(x - w / 2, absf, w, label="absorption fraction")
    b2 = ax1.bar(x + w / 2, full, w, label="full absorption")
    ax1.bar_label(b1, fmt="%.3f", fontsize=7)
    ax1.bar_label(b2, fmt="%.3f", fontsize=7)
    ax1.set_xticks(x, labels)
    ax1.set_ylabel("mean over parents (lower is better)")
    ax1.set_title("absorption")
    ax1.legend(fontsize=8)
    nm = [val(r, "nmse") for r in rows]
    b3 = ax2.bar(x, nm, 0.6, color="tab:gray")
    ax2.bar_label(b3, fmt="%.3f", fontsize=7)
    ax2.set_xticks(x, labels)
    ax2.set_ylabel("nmse (fraction of variance unexplained)")
    ax2.set_title("reconstruction")
    for ax in (ax1, ax2):
        ax.set_ylim(bottom=0)
        ax.set_xlim(-0.7, max(len(rows), 2) - 0.3)
    fig.suptitle("SAE variants on hierarchy data at matched L0 ≈ %g (±%g%%)"
                 % (header["target_l0"], 100 * header["tolerance"]))
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    plt.close(fig)
    atomic_write(path, buf.getvalue())


def parse_args(argv):
    today = datetime.date.today().isoformat()
    p = argparse.ArgumentParser(
        description="Train the SAE variants on `hierarchy` synthetic data at matched L0 and "
                    "compare absorption and reconstruction.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--saec", default=str(REPO / "build" / "saec"), help="the saec binary")
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / ("sweep_" + today)),
                   help="output directory")
    p.add_argument("--target-l0", type=float, default=8.0, help="the L0 to match")
    p.add_argument("--tolerance", type=float, default=0.10,
                   help="relative tolerance on the measured L0")
    p.add_argument("--archs", default=",".join(ALL_ARCHS), help="comma-separated variants")
    p.add_argument("--steps", type=int, default=None,
                   help="training steps per run (default: the engine's default)")
    p.add_argument("--seed", type=int, default=0, help="seed of every run (data, init)")
    p.add_argument("--max-tries", type=int, default=8, help="training runs per arch at most")
    p.add_argument("--extra", action="append", default=[], metavar="KEY=VALUE",
                   help="config key passed to every train call as --KEY VALUE (repeatable)")
    p.add_argument("--start", action="append", default=[], metavar="ARCH=LAMBDA",
                   help="first λ for relu, atm or jumprelu (repeatable; defaults %s)"
                   % ", ".join("%s=%g" % kv for kv in DEFAULT_START.items()))
    a = p.parse_args(argv)
    a.archs = [s.strip() for s in a.archs.split(",") if s.strip()]
    bad = [s for s in a.archs if s not in ALL_ARCHS]
    if bad or not a.archs:
        p.error("--archs: unknown variant(s) %s; choose from %s" % (bad, ",".join(ALL_ARCHS)))
    if len(set(a.archs)) != len(a.archs):
        p.error("--archs: a variant is listed twice")
    if not a.target_l0 > 0:
        p.error("--target-l0 must be > 0")
    if not 0 < a.tolerance < 1:
        p.error("--tolerance must be in (0, 1)")
    if a.max_tries < 1:
        p.error("--max-tries must be >= 1")
    if a.steps is not None and a.steps < 1:
        p.error("--steps must be >= 1")
    extra = []
    for item in a.extra:
        if "=" not in item:
            p.error("--extra %r: expected KEY=VALUE" % item)
        key, value = item.split("=", 1)
        key = norm_key(key)
        if not key:
            p.error("--extra %r: empty key" % item)
        if key in RESERVED:
            p.error("--extra %s: the sweep sets '%s' itself" % (item, key))
        if key == "steps" and a.steps is not None:
            p.error("--extra %s: --steps is given too" % item)
        if key in [k for k, _ in extra]:
            p.error("--extra %s: '%s' is given twice" % (item, key))
        extra.append((key, value))
    a.extra = extra
    start = {}
    for item in a.start:
        arch, _, value = item.partition("=")
        if arch not in DEFAULT_START:
            p.error("--start %r: ARCH must be one of %s" % (item, ",".join(DEFAULT_START)))
        try:
            start[arch] = float(value)
        except ValueError:
            p.error("--start %r: not a number" % item)
        if not start[arch] > 0:
            p.error("--start %r: λ must be > 0" % item)
    a.start = start
    return a


def main(argv):
    a = parse_args(argv)
    saec = Path(a.saec)
    if not saec.is_file() or not os.access(saec, os.X_OK):
        print("sweep_variants: error: saec binary '%s' is missing or not executable\n"
              "  hint: build it (cmake -S . -B build -G Ninja && cmake --build build) or pass "
              "--saec PATH" % a.saec, file=sys.stderr)
        return 2
    a.saec = str(saec.resolve())
    import importlib.util
    missing = [m for m in ("numpy", "matplotlib") if importlib.util.find_spec(m) is None]
    if missing:   # fail before hours of training, not after
        print("sweep_variants: error: %s not importable by %s\n"
              "  hint: run it with /usr/bin/python3 (Debian: "
              "python3-numpy python3-matplotlib)" % (" and ".join(missing), sys.executable),
              file=sys.stderr)
        return 2

    commit, dirty = git_info()
    header = {
        "command": shlex.join([sys.executable] + sys.argv),
        "cwd": os.getcwd(),
        "saec": a.saec,
        "target_l0": a.target_l0,
        "tolerance": a.tolerance,
        "l0_range": [a.target_l0 * (1 - a.tolerance), a.target_l0 * (1 + a.tolerance)],
        "archs": a.archs,
        "seed": a.seed,
        "steps": a.steps,
        "extra": {k: v for k, v in a.extra},
        "max_tries": a.max_tries,
        "git_commit": commit,
        "git_dirty": dirty,
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
    }
    try:
        sweep = Sweep(a)
    except OSError as e:
        print("sweep_variants: error: cannot create output directory '%s': %s" % (a.out, e),
              file=sys.stderr)
        return 1
    sweep.log("sweep: %s" % header["command"])
    sweep.log("target L0 %g (%.3g..%.3g), archs %s, out %s"
              % (a.target_l0, sweep.lo, sweep.hi, ",".join(a.archs), sweep.out))
    rows = []
    stop = None
    try:
        for arch in a.archs:
            rows.append(sweep.tune(arch))
    except KeyboardInterrupt:
        sweep.log("interrupted; writing the archs that finished")
        stop = 130
    except StaleRunDir as e:
        sweep.log("error: %s" % e)
        stop = 2
    write_outputs(sweep, header, rows)
    if stop is not None:
        return stop
    unmatched = [r["arch"] for r in rows if not r["matched"]]
    missing = [x for x in a.archs if x not in [r["arch"] for r in rows]]
    for r in rows:
        sweep.log("%-9s %-29s L0 = %-8s %s  absorption %s  full %s  nmse %s" % (
            r["arch"], "%s = %s" % (r["knob"], fmt(r["knob_value"], 6)),
            "–" if r["l0"] is None else "%.3f" % r["l0"],
            "matched  " if r["matched"] else "UNMATCHED", fmt(r["absorption_fraction"]),
            fmt(r["full_absorption"]), fmt(r["nmse"])))
    sweep.log("wrote %s, %s, %s" % (sweep.out / "table.json", sweep.out / "table.md",
                                    sweep.out / "plot.png"))
    if unmatched or missing:
        sweep.log("not matched: %s" % ", ".join(unmatched + missing))
        return 1
    return 0


def write_outputs(sweep, header, rows):
    out = sweep.out
    atomic_write(out / "table.json", json.dumps({"header": header, "rows": rows}, indent=2) + "\n")
    atomic_write(out / "table.md", table_md(header, rows))
    if rows:
        plot(out / "plot.png", header, rows)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
