#!/usr/bin/env bash
# Regenerates the evaluation-network fixtures in tests/fixtures/eval/ (see
# tests/fixtures/README.md) from scripts/eval_torch.py, the PyTorch reference of the
# reference implementation's NetworkCIFAR / NetworkImageNet. No data set is needed: the weights
# and images come from a generator the Rust test reproduces.
#
#   scripts/make-eval-fixtures.sh
#
# Environment:
#   PYTHON  interpreter with torch + numpy (default /usr/bin/python3; Debian: apt-get install -y
#           python3-torch)
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-/usr/bin/python3}
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1

dir=tests/fixtures/eval
mkdir -p "$dir"
log=$dir/log.jsonl
: > "$log"
"$PYTHON" scripts/eval_torch.py names --out "$dir/names.json" | tee -a "$log"
"$PYTHON" scripts/eval_torch.py step --config darts_v2 --out "$dir/step.safetensors" | tee -a "$log"
"$PYTHON" scripts/eval_torch.py step --config all_ops --out "$dir/step-all-ops.safetensors" | tee -a "$log"
"$PYTHON" scripts/eval_torch.py step --config darts_v2_l3_aux --out "$dir/outputs-l3-aux.safetensors" | tee -a "$log"
"$PYTHON" scripts/eval_torch.py step --config fair_sparse --out "$dir/step-fair-sparse.safetensors" | tee -a "$log"
du -b "$dir"/*
