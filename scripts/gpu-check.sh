#!/usr/bin/env bash
# The GPU check: run on a machine with an NVIDIA GPU and no Rust toolchain, over binaries built
# elsewhere by scripts/build-gpu-bundle.sh (which fills gpu-bin/: the release `darts` binary and
# the release test executables). Writes everything it prints into RESULTS_DIR. Under 5 minutes.
#
#   scripts/gpu-check.sh RESULTS_DIR
set -uo pipefail
out=${1:?usage: scripts/gpu-check.sh RESULTS_DIR}
cd "$(dirname "$0")/.."
mkdir -p "$out"
bin=gpu-bin
[ -x "$bin/darts" ] || { echo "no $bin/darts: run scripts/build-gpu-bundle.sh first and copy gpu-bin/" >&2; exit 2; }
status=0
step() { # step NAME TIMEOUT CMD...: runs CMD, logs to $out/NAME.txt, records failure
  local name=$1 limit=$2; shift 2
  echo "== $name: $*" | tee "$out/$name.txt"
  timeout "$limit" "$@" >>"$out/$name.txt" 2>&1
  local rc=$?
  tail -n 40 "$out/$name.txt"
  echo "== $name: exit $rc" | tee -a "$out/$name.txt"
  [ $rc -eq 0 ] || status=1
}
{
  date -u +"date: %Y-%m-%dT%H:%M:%SZ"
  nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv 2>&1
  command -v nvcc >/dev/null && nvcc --version | tail -2
  uname -a
} > "$out/machine.txt" 2>&1
cat "$out/machine.txt"

step info 60 "$bin/darts" info
# The CUDA versions of the kernel tests (ignored where there is no GPU).
step gpu-kernels 120 "$bin/tests/gpu_vs_cpu" --ignored --nocapture
# The whole suite also runs here (emulator included), as a sanity check of the binaries.
for t in "$bin"/tests/*; do
  name=$(basename "$t")
  step "suite-$name" 120 "$t" -q
done
# Every kernel at the DARTS search shapes (batch 64) against the CPU reference, with times.
step verify 240 "$bin/darts" verify --device cuda
# A short benchmark: 5 first-order and 3 second-order search steps at the paper preset, and
# the PyTorch reference's own step time on the same card when it was carried along.
bench=$(mktemp -d)
step bench-first 240 "$bin/darts" search --device cuda --preset paper --order first --max-steps 5 --out "$bench/first"
step bench-second 240 "$bin/darts" search --device cuda --preset paper --order second --max-steps 3 --out "$bench/second"
cp "$bench"/first/log.jsonl "$out/bench-first.jsonl" 2>/dev/null
cp "$bench"/second/log.jsonl "$out/bench-second.jsonl" 2>/dev/null
if [ -f "$bin/darts_torch.py" ] && python3 -c "import torch" 2>/dev/null; then
  step torch-baseline 300 python3 "$bin/darts_torch.py" time --batch 64 --order first,second --steps 5 --device cuda
fi
if command -v ptxas >/dev/null; then
  step ptxas 120 "$bin/tests/ptxas" --ignored --nocapture
fi
echo "gpu-check: $( [ $status -eq 0 ] && echo all passed || echo FAILURES ) (results in $out)"
exit $status
