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
if command -v ptxas >/dev/null; then
  step ptxas 120 "$bin/tests/ptxas" --ignored --nocapture
fi
echo "gpu-check: $( [ $status -eq 0 ] && echo all passed || echo FAILURES ) (results in $out)"
exit $status
