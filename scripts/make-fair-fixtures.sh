#!/usr/bin/env bash
# Regenerates the FairDARTS PyTorch reference fixtures in tests/fixtures/fair-darts/ (see
# tests/fixtures/README.md, section "fair-darts/"): one first-order step in float64 from an
# initial state with alpha = N(0, 1), on batch pair 0 of tests/fixtures/f64/batches.safetensors.
#
#   scripts/make-fair-fixtures.sh
#
# Environment:
#   DARTS_TORCH  path of darts_torch.py          (default ../shared/bench/darts_torch.py)
#   PYTHON       interpreter with torch + numpy  (default /usr/bin/python3)
set -euo pipefail
cd "$(dirname "$0")/.."
export DARTS_TORCH=${DARTS_TORCH:-../shared/bench/darts_torch.py}
PYTHON=${PYTHON:-/usr/bin/python3}
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
dir=tests/fixtures/fair-darts
rm -rf "$dir"
mkdir -p "$dir"
log=$dir/log.jsonl
run() {
  echo "+ $PYTHON scripts/fair_darts_torch.py $*" >&2
  "$PYTHON" scripts/fair_darts_torch.py "$@" | tee -a "$log"
}
run export-init --out "$dir/init.safetensors" --channels 2 --layers 5 --seed 2 --dtype float64 \
  --alpha-scale 1
run step --checkpoint "$dir/init.safetensors" --batches tests/fixtures/f64/batches.safetensors \
  --order first --steps 1 --out "$dir/first-1.safetensors" --threads 1 --dtype float64
du -b "$dir"/*
