#!/usr/bin/env bash
# The GPU check: one prepared run on a borrowed GPU machine (no Rust toolchain there) over the
# bundle that scripts/build-gpu-bundle.sh built here (gpu-bin/). At most 8 minutes: every part
# has its own time budget and a failure in one part does not stop the next. Everything goes
# into 8 files in RESULTS_DIR (the budgets add up to 474 s; GPU_CHECK_SECONDS sets the overall
# limit, 480 by default):
#
#   summary.txt    machine, driver, and per part: pass / FAIL / skipped (why), seconds
#   info.txt       darts info: device, PTX target, per-kernel registers and spills after JIT
#   tests.txt      the CUDA tests: gpu_vs_cpu (every kernel), emu_tape (tape, search steps, the
#                  eval network) and the fused ops (fused_mixed, fused_sepconv); gpu_vs_cpu includes
#                  streams, staging and graphs
#   sanitizer.txt  compute-sanitizer memcheck, racecheck, synccheck over darts verify, batch 2
#   verify.txt     darts verify --device cuda at batch 64
#   kernels.txt    the criterion CUDA group (benches/kernels.rs) and the roofline table
#   search.txt     paper-preset search, first and second order, each run twice (the step
#                  replayed as a CUDA graph, and launch by launch): bitwise equal?
#   pytorch.txt    our search step (graphs off and on) and evaluation-network training step
#                  against the PyTorch reference's on this card (bench-vs-pytorch.sh)
#
#   scripts/gpu-check.sh RESULTS_DIR
#
# Without a GPU (a rehearsal) every CUDA part is skipped with its reason and the script still
# finishes and writes the same files.
set -uo pipefail
out=${1:?usage: scripts/gpu-check.sh RESULTS_DIR}
cd "$(dirname "$0")/.."
mkdir -p "$out"
bin=gpu-bin
[ -x "$bin/darts" ] || { echo "no $bin/darts: run scripts/build-gpu-bundle.sh first and carry gpu-bin/" >&2; exit 2; }
start=$(date +%s)
deadline=$((start + ${GPU_CHECK_SECONDS:-480}))  # 8 minutes in all, whatever the parts take
summary="$out/summary.txt"
failures=0

# part NAME FILE BUDGET CMD...: runs CMD under `timeout BUDGET` (less if the 8 minutes would
# run out first), appends its output to FILE and a line to the summary.
part() {
  local name=$1 file=$2 limit=$3; shift 3
  local t0 rc secs verdict
  t0=$(date +%s)
  if [ $((deadline - t0)) -lt "$limit" ]; then limit=$((deadline - t0)); fi
  if [ "$limit" -lt 5 ]; then
    skip "$name" "$file" "no time left of the check's 8 minutes"
    failures=$((failures + 1))
    return
  fi
  { echo; echo "== $name (budget ${limit}s): $*"; } >>"$out/$file"
  timeout --kill-after=5 "$limit" "$@" >>"$out/$file" 2>&1
  rc=$?
  secs=$(( $(date +%s) - t0 ))
  case $rc in
    0) verdict=pass ;;
    124|137) verdict="FAIL (over its ${limit}s budget; output so far kept)"; failures=$((failures + 1)) ;;
    *) verdict="FAIL (exit $rc)"; failures=$((failures + 1)) ;;
  esac
  echo "== $name: $verdict, ${secs}s" >>"$out/$file"
  printf '%-34s %-44s %4ss\n' "$name" "$verdict" "$secs" | tee -a "$summary"
}

# skip NAME FILE WHY: records a part that cannot run here.
skip() {
  { echo; echo "== $1: skipped: $3"; } >>"$out/$2"
  printf '%-34s %-44s\n' "$1" "skipped: $3" | tee -a "$summary"
}

for f in summary info tests sanitizer verify kernels search pytorch; do : >"$out/$f.txt"; done
{
  echo "gpu-check $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv 2>&1
  else
    echo "nvidia-smi: not found"
  fi
  command -v nvcc >/dev/null && nvcc --version | tail -1
  command -v compute-sanitizer >/dev/null && compute-sanitizer --version 2>&1 | head -1
  python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)' 2>/dev/null ||
    echo "torch: not importable by python3"
  uname -srm
  echo
} >>"$summary"
cat "$summary"

part "darts info" info.txt 25 "$bin/darts" info
cuda=""
if grep -q '^CUDA: [^n]' "$out/info.txt"; then cuda=yes; fi
no_gpu="no CUDA device (info.txt says why)"

if [ -n "$cuda" ]; then
  part "tests: gpu_vs_cpu (CUDA)" tests.txt 40 "$bin/tests/gpu_vs_cpu" --ignored --nocapture
  part "tests: emu_tape (CUDA)" tests.txt 20 "$bin/tests/emu_tape" --ignored --nocapture
  part "tests: fused ops (CUDA)" tests.txt 10 sh -c \
    "'$bin/tests/fused_mixed' --ignored --nocapture && '$bin/tests/fused_sepconv' --ignored --nocapture"
else
  skip "tests: gpu_vs_cpu (CUDA)" tests.txt "$no_gpu"
  skip "tests: emu_tape (CUDA)" tests.txt "$no_gpu"
  skip "tests: fused ops (CUDA)" tests.txt "$no_gpu"
fi

if [ -z "$cuda" ]; then
  for tool in memcheck racecheck synccheck; do skip "sanitizer: $tool" sanitizer.txt "$no_gpu"; done
elif ! command -v compute-sanitizer >/dev/null; then
  for tool in memcheck racecheck synccheck; do skip "sanitizer: $tool" sanitizer.txt "compute-sanitizer not found"; done
elif ! compute-sanitizer --error-exitcode 99 /bin/true >>"$out/sanitizer.txt" 2>&1; then
  for tool in memcheck racecheck synccheck; do
    skip "sanitizer: $tool" sanitizer.txt "compute-sanitizer does not run here (its output above)"
  done
else
  for tool in memcheck racecheck synccheck; do
    part "sanitizer: $tool" sanitizer.txt 28 compute-sanitizer --tool "$tool" --error-exitcode 99 \
      --print-limit 20 "$bin/darts" verify --device cuda --batch 2 --reps 1
  done
fi

if [ -n "$cuda" ]; then
  part "verify (batch 64)" verify.txt 35 "$bin/darts" verify --device cuda
  part "criterion CUDA group" kernels.txt 60 env DARTS_BENCH_DEVICES=cuda "$bin/benches/kernels" --bench \
    --warm-up-time 0.05 --measurement-time 0.15 --noplot
  part "roofline" kernels.txt 25 "$bin/darts" bench kernels --device cuda --samples 10
else
  skip "verify (batch 64)" verify.txt "$no_gpu"
  skip "criterion CUDA group" kernels.txt "$no_gpu"
  skip "roofline" kernels.txt "$no_gpu"
fi

# Two runs of each order from the same seed, the step replayed as a CUDA graph (a: the first
# step eager, the second captured, the third replayed) and issued launch by launch (b): the
# checkpoints (weights, alphas, BN statistics, optimiser state) must be equal byte for byte.
search_twice() {
  local order=$1 dir
  dir=$(mktemp -d)
  "$bin/darts" search --device cuda --preset paper --order "$order" --max-steps 3 --out "$dir/a" || return 1
  "$bin/darts" search --device cuda --preset paper --order "$order" --max-steps 3 --cuda-graph off \
    --out "$dir/b" || return 1
  grep -h '"step"' "$dir"/a/log.jsonl "$dir"/b/log.jsonl | head -6
  if cmp "$dir/a/checkpoint.safetensors" "$dir/b/checkpoint.safetensors"; then
    echo "$order order: the two runs' checkpoints (graph, no graph) are bitwise equal"
  else
    echo "$order order: the two runs' checkpoints DIFFER"
    return 1
  fi
}
if [ -n "$cuda" ]; then
  part "search paper first x2" search.txt 30 bash -c "$(declare -f search_twice); bin=$bin; search_twice first"
  part "search paper second x2" search.txt 35 bash -c "$(declare -f search_twice); bin=$bin; search_twice second"
else
  skip "search paper first x2" search.txt "$no_gpu"
  skip "search paper second x2" search.txt "$no_gpu"
fi

torch_cuda() {
  for py in python3 /usr/bin/python3; do
    "$py" -c 'import torch; assert torch.cuda.is_available()' 2>/dev/null && return 0
  done
  return 1
}
if [ -z "$cuda" ]; then
  skip "PyTorch side by side" pytorch.txt "$no_gpu"
  skip "PyTorch side by side, training" pytorch.txt "$no_gpu"
elif ! torch_cuda; then
  skip "PyTorch side by side" pytorch.txt "no PyTorch with CUDA here"
  skip "PyTorch side by side, training" pytorch.txt "no PyTorch with CUDA here"
else
  part "PyTorch side by side" pytorch.txt 80 env DARTS="$bin/darts" DARTS_TORCH="$bin/darts_torch.py" \
    scripts/bench-vs-pytorch.sh --device cuda --preset paper --order first,second --steps 5 --warmup 1
  part "PyTorch side by side, training" pytorch.txt 30 env DARTS="$bin/darts" \
    scripts/bench-vs-pytorch.sh --device cuda --network eval --preset paper --steps 5 --warmup 1
fi

total=$(( $(date +%s) - start ))
{
  echo
  echo "total ${total}s; $failures part(s) failed"
} | tee -a "$summary"
[ "$failures" -eq 0 ]
