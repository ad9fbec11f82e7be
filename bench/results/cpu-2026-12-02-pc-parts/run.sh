#!/usr/bin/env bash
# One command: PyTorch's DARTS at 64 and PC-DARTS at 64 and 256, then ours, first-order step, CPU.
set -euo pipefail
out=bench/results/cpu-2026-12-02-pc-parts
export DARTS_TORCH=../shared/bench/darts_torch.py
/usr/bin/python3 ../shared/bench/darts_torch.py time --batch 64 --order first --steps 1 --warmup 0 --device cpu > $out/torch-darts-64.json
/usr/bin/python3 scripts/pc_darts_torch.py time --batch 64,256 --order first --steps 1 --warmup 0 --device cpu > $out/torch-pc-darts-64-256.jsonl
for cfg in "darts 64" "pc-darts 256" "pc-darts 64"; do
  set -- $cfg
  ./target/release/darts bench step --device cpu --preset paper --order first --steps 1 --warmup 0 --method $1 --batch $2 > $out/$1-$2.json
done
