#!/usr/bin/env bash
# Regenerates the PC-DARTS reference fixtures in tests/fixtures/pc-darts/ (see
# tests/fixtures/README.md, section "PC-DARTS"), with scripts/pc_darts_torch.py (which imports
# darts_torch.py and replaces its network by PC-DARTS').
#
#   scripts/make-pc-fixtures.sh
#
# Environment: DARTS_TORCH, CIFAR_DIR, PYTHON as in scripts/make-fixtures.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

DARTS_TORCH=${DARTS_TORCH:-../shared/bench/darts_torch.py}
CIFAR_DIR=${CIFAR_DIR:-../shared/cifar10}
PYTHON=${PYTHON:-/usr/bin/python3}
export DARTS_TORCH OMP_NUM_THREADS=1 MKL_NUM_THREADS=1

C=8          # initial channels: C/4 = 2 channels through the normal cells' mixed ops, 4 and 8
             # in the reductions (FactorizedReduce on them needs an even count)
LAYERS=3     # cells: normal, reduction, reduction (so cell 2 also has a FactorizedReduce input)
BATCH=4
SEED=2
DIR=tests/fixtures/pc-darts

[ -f "$DARTS_TORCH" ] || { echo "no $DARTS_TORCH (set DARTS_TORCH)" >&2; exit 2; }
[ -f "$CIFAR_DIR/test_batch.bin" ] || { echo "no $CIFAR_DIR/test_batch.bin (set CIFAR_DIR)" >&2; exit 2; }

tmp=target/fixtures-tmp
mkdir -p "$tmp"
test_file=$tmp/test_batch_first$BATCH.bin
head -c $((BATCH * 3073)) "$CIFAR_DIR/test_batch.bin" > "$test_file"

rm -rf "$DIR"
mkdir -p "$DIR"
log=$DIR/log.jsonl
: > "$log"
run() {
  echo "+ $PYTHON scripts/pc_darts_torch.py $*" >&2
  "$PYTHON" scripts/pc_darts_torch.py "$@" | tee -a "$log"
}
run export-init --out "$DIR/init.safetensors" --channels $C --layers $LAYERS --seed $SEED --dtype float64
run batches --data "$CIFAR_DIR" --batch $BATCH --steps 1 --seed $SEED --out "$DIR/batches.safetensors" \
  --dtype float64
run eval --checkpoint "$DIR/init.safetensors" --data "$test_file" --batch $BATCH --train-mode-bn \
  --save-logits "$DIR/logits-train-bn.safetensors" --threads 1 --dtype float64
run step --checkpoint "$DIR/init.safetensors" --batches "$DIR/batches.safetensors" --order first \
  --steps 1 --out "$DIR/first-1.safetensors" --threads 1 --dtype float64
run genotype --checkpoint "$DIR/first-1.safetensors"

rm -rf "$tmp"
du -b "$DIR"/*
du -sb "$DIR"
