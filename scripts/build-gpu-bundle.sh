#!/usr/bin/env bash
# Builds everything scripts/gpu-check.sh runs into gpu-bin/ (git-ignored), for a GPU machine
# that has no Rust toolchain: the `darts` binary, the two test executables with CUDA tests
# (gpu_vs_cpu with streams and graphs, emu_tape, the fused ops), the criterion kernel bench, and the PyTorch reference script. Needs
# nvcc here: a bundle without PTX could not run a kernel. Binaries are stripped; the bundle
# must stay well under the 64 MiB a device run can carry.
#
#   scripts/build-gpu-bundle.sh          # PTX for compute_90 only (DARTS_CUDA_ARCH=80,90 for both)
#
# Every binary embeds the PTX of every kernel (about 3.4 MB per arch), so one arch keeps the
# bundle well under the limit; the lent cards are sm_90 and their driver JITs it.
#   (on the GPU machine) scripts/gpu-check.sh RESULTS_DIR
set -euo pipefail
cd "$(dirname "$0")/.."
command -v nvcc >/dev/null || { echo "build-gpu-bundle: nvcc not found (scripts/install-cuda-toolkit.sh)" >&2; exit 2; }
export DARTS_CUDA_ARCH=${DARTS_CUDA_ARCH:-90}
# Its own target directory, so the arch list does not force rebuilds of the usual one.
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target/gpu-bundle}
rm -rf gpu-bin
mkdir -p gpu-bin/tests gpu-bin/benches

cargo build --release --bin darts
cp "$CARGO_TARGET_DIR/release/darts" gpu-bin/
# Executables by target name (cargo's hash suffix dropped).
copy_executables() { # kind dir: reads cargo's JSON messages
  python3 -c '
import json, shutil, sys
kind, dest = sys.argv[1], sys.argv[2]
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and kind in m["target"]["kind"]:
        shutil.copy(m["executable"], dest + "/" + m["target"]["name"])
' "$1" "$2"
}
cargo test --release --no-run --test gpu_vs_cpu --test emu_tape --test fused_mixed --test fused_sepconv \
  --message-format=json 2>/dev/null |
  copy_executables test gpu-bin/tests
cargo bench --no-run --bench kernels --message-format=json 2>/dev/null | copy_executables bench gpu-bin/benches
for f in gpu-bin/tests/gpu_vs_cpu gpu-bin/tests/emu_tape gpu-bin/tests/fused_mixed gpu-bin/tests/fused_sepconv \
  gpu-bin/benches/kernels; do
  [ -x "$f" ] || { echo "build-gpu-bundle: $f was not built" >&2; exit 1; }
done
strip gpu-bin/darts gpu-bin/tests/* gpu-bin/benches/*
if [ -f ../shared/bench/darts_torch.py ]; then cp ../shared/bench/darts_torch.py gpu-bin/; fi

gpu-bin/darts info | grep '^PTX' || true
ls -l gpu-bin gpu-bin/tests gpu-bin/benches
bytes=$(du -sb gpu-bin | cut -f1)
awk -v b="$bytes" 'BEGIN { printf "bundle: %.1f MiB in gpu-bin/ (limit 64 MiB)\n", b / 1048576 }'
[ "$bytes" -lt $((48 * 1024 * 1024)) ] || { echo "build-gpu-bundle: the bundle is too large to carry" >&2; exit 1; }
