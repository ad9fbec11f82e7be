#!/usr/bin/env bash
# Regenerates the PyTorch reference fixtures in tests/fixtures/ (see tests/fixtures/README.md).
#
#   scripts/make-fixtures.sh
#
# Environment:
#   DARTS_TORCH  path of darts_torch.py          (default ../shared/bench/darts_torch.py)
#   CIFAR_DIR    CIFAR-10 binary directory       (default ../shared/cifar10: 1,000 records per
#                file; which images `batches` picks depends on the record count, so another
#                directory gives other batches and other step files)
#   PYTHON       interpreter with torch + numpy  (default /usr/bin/python3; Debian: apt-get
#                install -y python3-torch)
#
# Every command runs single-threaded (--threads 1 where the command takes it, and
# OMP_NUM_THREADS=1 / MKL_NUM_THREADS=1 for all). Each command's JSON line is printed and also
# collected in tests/fixtures/<set>/log.jsonl. Only the same torch build on the same CPU kind
# reproduces the files bitwise.
set -euo pipefail
cd "$(dirname "$0")/.."

DARTS_TORCH=${DARTS_TORCH:-../shared/bench/darts_torch.py}
CIFAR_DIR=${CIFAR_DIR:-../shared/cifar10}
PYTHON=${PYTHON:-/usr/bin/python3}

C=2          # initial channels
LAYERS=5     # cells (reductions at cells 1 and 3)
BATCH=4      # batch size of every step and of the logits
SEED=2       # export-init seed and batches seed
STEPS=2      # batch pairs in batches.safetensors
EVAL_IMAGES=4  # first images of test_batch.bin for the logits

export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1

[ -f "$DARTS_TORCH" ] || { echo "no $DARTS_TORCH (set DARTS_TORCH)" >&2; exit 2; }
[ -f "$CIFAR_DIR/test_batch.bin" ] || { echo "no $CIFAR_DIR/test_batch.bin (set CIFAR_DIR)" >&2; exit 2; }

# `eval` with running (eval-mode) BN statistics goes over every record of its file, so it gets
# a copy of the first EVAL_IMAGES records of test_batch.bin (3073 bytes each). The path is fixed
# (target/ is ignored) because the logits files' metadata records it. Train-mode `eval` takes
# the first --batch images of the same file, so both logits files hold the same images: the
# first 4 records of test_batch.bin, which are also the first 4 of data/sample/test_batch.bin.
tmp=target/fixtures-tmp
mkdir -p "$tmp"
test_file=$tmp/test_batch_first$EVAL_IMAGES.bin
head -c $((EVAL_IMAGES * 3073)) "$CIFAR_DIR/test_batch.bin" > "$test_file"

run() { # run LOG ARGS...: one darts_torch.py command; its JSON line goes to stdout and LOG
  local log=$1; shift
  echo "+ $PYTHON $DARTS_TORCH $*" >&2
  "$PYTHON" "$DARTS_TORCH" "$@" | tee -a "$log"
}

make_set() { # make_set DTYPE DIR ORDERS STEP_COUNTS
  local dtype=$1 dir=$2 orders=$3 counts=$4 log
  rm -rf "$dir"
  mkdir -p "$dir"
  log=$dir/log.jsonl
  : > "$log"
  run "$log" export-init --out "$dir/init.safetensors" --channels $C --layers $LAYERS \
    --seed $SEED --dtype "$dtype"
  run "$log" batches --data "$CIFAR_DIR" --batch $BATCH --steps $STEPS --seed $SEED \
    --out "$dir/batches.safetensors" --dtype "$dtype"
  run "$log" eval --checkpoint "$dir/init.safetensors" --data "$test_file" --batch $BATCH \
    --train-mode-bn --save-logits "$dir/logits-train-bn.safetensors" --threads 1 --dtype "$dtype"
  run "$log" eval --checkpoint "$dir/init.safetensors" --data "$test_file" --batch $BATCH \
    --save-logits "$dir/logits-eval-bn.safetensors" --threads 1 --dtype "$dtype"
  local order n
  for order in $orders; do
    for n in $counts; do
      run "$log" step --checkpoint "$dir/init.safetensors" --batches "$dir/batches.safetensors" \
        --order "$order" --steps "$n" --out "$dir/$order-$n.safetensors" --threads 1 --dtype "$dtype"
    done
  done
}

make_set float64 tests/fixtures/f64 "first second" "1 2"
make_set float32 tests/fixtures/f32 "first second" "1"

rm -rf "$tmp"
du -b tests/fixtures/f64/* tests/fixtures/f32/*
du -sb tests/fixtures
