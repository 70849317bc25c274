#!/usr/bin/env bash
# MoE-MAE science runs on synthetic `eo` data (issue 16, "Science"): for SEEDS seeds, pretrain
# with metadata and with metadata zeroed (`--moe-metadata 0`, which also zeroes it when the run
# embeds), then on one fixed labelled set (`saec gen eo`, its own seed, 60/20/20 split):
#   - probes of the encoder and of the same encoder at its random initialisation, on 1%, 10% and
#     100% of the train labels (label efficiency), and of per-band pixel means;
#   - each tile's routing per encoder block (saec embed's expert_load), for expert load by class
#     and by latitude band.
# benchmarks/moe_mae_science_report.py then writes the table, plots and raw JSON to OUT.
#
# usage: benchmarks/moe_mae_science.sh [OUT]   (default benchmarks/results/moe_mae_<date>)
# environment: SAEC (default build/saec), PYTHON (/usr/bin/python3 with numpy, h5py,
#   matplotlib), SEEDS ("0 1 2"), STEPS (the default job's 160), EVAL_TILES (3000),
#   FRACTIONS ("0.01 0.1 1"), RUNS (where the run directories go, default /tmp/saec_moe_science:
#   a run already finished there is reused; OUT/runs keeps each run's config, metrics, summary
#   and expert-load record: no weights, no PNGs).
# On 2 cores each pretraining takes about 4 minutes at the default size: about 30 minutes in all.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SAEC=${SAEC:-$ROOT/build/saec}
PYTHON=${PYTHON:-/usr/bin/python3}
SEEDS=${SEEDS:-0 1 2}
STEPS=${STEPS:-160}
EVAL_TILES=${EVAL_TILES:-3000}
FRACTIONS=${FRACTIONS:-0.01 0.1 1}
OUT=${1:-$ROOT/benchmarks/results/moe_mae_$(date -u +%Y-%m-%d)}
RUNS=${RUNS:-/tmp/saec_moe_science}
[[ -x $SAEC ]] || { echo "moe_mae_science.sh: $SAEC not found; build it first" >&2; exit 2; }
"$PYTHON" -c 'import numpy, h5py, matplotlib' 2>/dev/null \
  || { echo "moe_mae_science.sh: $PYTHON lacks numpy, h5py or matplotlib" >&2; exit 2; }
mkdir -p "$OUT/runs" "$OUT/probes" "$RUNS"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/saec_moe_science.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
log() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }

log "labelled set: $EVAL_TILES synthetic eo tiles (seed 1000)"
"$SAEC" gen eo --out "$WORK/eval.h5" --tokens "$EVAL_TILES" --seed 1000 2>"$OUT/gen.log"
for seed in $SEEDS; do
  for meta in 1 0; do
    name=meta${meta}_seed$seed
    run=$RUNS/$name
    if [[ ! -f $run/summary.json ]]; then
      log "pretraining $name ($STEPS steps)"
      rm -rf "$run"
      "$SAEC" train --model moe-mae --seed "$seed" --moe-metadata "$meta" --steps "$STEPS" \
        --probe-tiles 0 --out "$run" >"$OUT/runs/$name.out" 2>"$OUT/runs/$name.log"
    fi
    for kind in encoder random_init; do
      "$SAEC" embed "$run" --data "$WORK/eval.h5" --features $kind --out "$WORK/${name}_$kind.h5" \
        >/dev/null 2>>"$OUT/runs/$name.log"
    done
    [[ -f $WORK/band_means.h5 ]] || "$SAEC" embed "$run" --data "$WORK/eval.h5" \
      --features band_means --out "$WORK/band_means.h5" >/dev/null 2>>"$OUT/runs/$name.log"
    for f in $FRACTIONS; do
      "$SAEC" probe "$WORK/${name}_encoder.h5" "$WORK/${name}_random_init.h5" "$WORK/band_means.h5" \
        --train-fraction "$f" --seed "$seed" --out "$OUT/probes/${name}_f$f.json" \
        >/dev/null 2>>"$OUT/runs/$name.log"
    done
    # the routing records (trained and at initialisation, the control), for expert load by class
    # and latitude, with the tiles' metadata and labels beside them
    for kind in encoder random_init; do
      "$PYTHON" - "$WORK/${name}_$kind.h5" "$OUT/probes/${name}_routing_$kind.npz" <<'EOF'
import sys
import h5py
import numpy as np
f = h5py.File(sys.argv[1], "r")
np.savez_compressed(sys.argv[2], expert_load=f["expert_load"][...].astype(np.float16), metadata=f["metadata"][...],
                    labels=f["labels"][...], split=f["split"][...],
                    class_names=np.array(f["labels"].attrs["class_names"].split("\n")))
EOF
    done
    mkdir -p "$OUT/runs/$name"
    cp "$run"/{config.json,summary.json,metrics.jsonl,expert_load.jsonl} \
      "$OUT/runs/$name/"
    log "done $name: $(tr -d '\n\t ' <"$OUT/probes/${name}_f1.json" | head -c 160)..."
  done
done
"$PYTHON" "$ROOT/benchmarks/moe_mae_science_report.py" "$OUT"
