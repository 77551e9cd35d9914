#!/usr/bin/env bash
# Makes the ground-truth table `nas rank-check` judges one-shot searches by:
# a fixed sample of NAS-Bench-201 cells, each trained from scratch as the reduced
# network (C=8, N=1) on the bundled Fashion-MNIST, several seeds each, and tested on
# its 10,000 test images.
#
#   scripts/make_ground_truth.sh            # writes data/ground-truth/nb201-c8n1-fashion.csv
#   JOBS=2 scripts/make_ground_truth.sh     # two trainings at a time (one thread each)
#
# It can be stopped and started again: every finished training is kept under $WORK
# and skipped the next time. Settings (environment): NAS (the binary), OUT, WORK,
# ARCHS (how many cells), SEEDS, EPOCHS, LIMIT (training images), JOBS, DRAW_SEED.
set -euo pipefail
cd "$(dirname "$0")/.."

NAS=${NAS:-target/release/nas}
OUT=${OUT:-data/ground-truth/nb201-c8n1-fashion.csv}
WORK=${WORK:-target/ground-truth}
ARCHS=${ARCHS:-100}
SEEDS=${SEEDS:-"0 1"}
EPOCHS=${EPOCHS:-2}
LIMIT=${LIMIT:-5000}
JOBS=${JOBS:-1}
DRAW_SEED=${DRAW_SEED:-2026}
TABLE=data/nasbench201/nb201_cifar10.csv

[ -x "$NAS" ] || { echo "no $NAS: build it first (cargo build --release --workspace)" >&2; exit 1; }
mkdir -p "$WORK/archs" "$WORK/rows" "$(dirname "$OUT")"

# The sample: ARCHS cells drawn without replacement, uniformly from the table's
# 15,625, by a seeded draw (the same cells every time). Each becomes an architecture
# file `nas train --arch` reads.
python3 - "$TABLE" "$ARCHS" "$DRAW_SEED" "$WORK/archs" <<'EOF'
import csv, json, random, sys
table, n, seed, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
with open(table) as f:
    cells = [r["arch_str"] for r in csv.DictReader(f)]
for i, s in enumerate(random.Random(seed).sample(cells, n)):
    nodes = [part.split("|") for part in s.strip("|").split("|+|")]
    arch = {}
    for j, node in enumerate(nodes, start=1):
        for edge in node:
            op, src = edge.split("~")
            arch[f"edge_{j}_{src}"] = op
    with open(f"{out}/{i:03d}.json", "w") as f:
        json.dump(arch, f)
    with open(f"{out}/{i:03d}.str", "w") as f:
        f.write(s)
EOF

# One training: its row under $WORK/rows, written whole or not at all.
train_one() {
    local i=$1 seed=$2 row="$WORK/rows/$1-$2.csv"
    [ -s "$row" ] && return 0
    local start log
    start=$(date +%s.%N)
    log=$("$NAS" --threads 1 train --space nb201 --channels 8 --cells 1 \
        --arch "$WORK/archs/$i.json" --epochs "$EPOCHS" --limit "$LIMIT" --seed "$seed" 2>&1) || {
        echo "training $i seed $seed failed:" >&2; echo "$log" >&2; return 1; }
    local secs acc params
    secs=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
    acc=$(echo "$log" | sed -n 's/.*test accuracy \([0-9.]*\)%.*/\1/p')
    params=$(echo "$log" | sed -n 's/.*(\([0-9]*\) parameters).*/\1/p' | head -1)
    [ -n "$acc" ] && [ -n "$params" ] || { echo "no result in: $log" >&2; return 1; }
    printf '%s,%s,%s,%s,%s\n' "$(cat "$WORK/archs/$i.str")" "$seed" "$acc" "$params" "$secs" > "$row.tmp"
    mv "$row.tmp" "$row"
    echo "cell $i seed $seed: $acc% (${secs%.*} s)"
}
export -f train_one
export NAS WORK EPOCHS LIMIT

for seed in $SEEDS; do
    for ((i = 0; i < ARCHS; i++)); do printf '%03d %s\n' "$i" "$seed"; done
done | xargs -P "$JOBS" -n 2 bash -c 'train_one "$0" "$1"'

{
    echo "arch_str,seed,test_accuracy,params,seconds"
    for seed in $SEEDS; do
        for ((i = 0; i < ARCHS; i++)); do cat "$WORK/rows/$(printf '%03d' "$i")-$seed.csv"; done
    done
} > "$OUT.tmp"
mv "$OUT.tmp" "$OUT"

# The protocol beside the table: how its cells were trained (`nas rank-check
# --train-export` trains an export the same way), and what the training cost.
python3 - "$OUT" "$ARCHS" "$EPOCHS" "$LIMIT" "$DRAW_SEED" $SEEDS <<'EOF2'
import csv, json, sys
out, archs, epochs, limit, draw = sys.argv[1], *map(int, sys.argv[2:6])
seeds = [int(s) for s in sys.argv[6:]]
rows = list(csv.DictReader(open(out)))
secs = sum(float(r["seconds"]) for r in rows)
protocol = {
    "space": "nb201", "channels": 8, "cells": 1, "epochs": epochs, "limit": limit,
    "seeds": seeds,
    "about": {
        "made_by": "scripts/make_ground_truth.sh",
        "cells": f"{archs} drawn uniformly without replacement from the NAS-Bench-201 table (seed {draw})",
        "training": "nas --threads 1 train --space nb201 --channels 8 --cells 1 (SGD, lr 0.05 cosine, "
                    "momentum 0.9, weight decay 5e-4, batch 64) on the first LIMIT Fashion-MNIST "
                    "training images; test_accuracy on the 10,000 test images",
        "training_seconds": round(secs),
        "trainings": len(rows),
    },
}
with open(out[:-len(".csv")] + ".json", "w") as f:
    json.dump(protocol, f, indent=2)
    f.write("\n")
EOF2
echo "wrote $OUT and its protocol ($((ARCHS)) cells x seeds $SEEDS)"
