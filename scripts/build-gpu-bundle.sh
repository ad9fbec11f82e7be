#!/usr/bin/env bash
# Builds everything scripts/gpu-check.sh runs and copies it into gpu-bin/ (git-ignored), for a
# GPU machine that has no Rust toolchain. Run here, then carry gpu-bin/ to the GPU machine:
#   scripts/build-gpu-bundle.sh            # release binary + release test executables
#   (on the GPU machine) scripts/gpu-check.sh bench/results/<card>-<date>
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf gpu-bin
mkdir -p gpu-bin/tests
cargo build --release
cp target/release/darts gpu-bin/
# Each test target's executable, named by target (the hash suffix dropped).
cargo test --release --no-run --message-format=json 2>/dev/null |
  python3 -c '
import json, sys, shutil
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"]:
        kind = m["target"]["kind"][0]
        name = m["target"]["name"] + ("-lib" if kind == "lib" else "")
        shutil.copy(m["executable"], "gpu-bin/tests/" + name)
        print("  gpu-bin/tests/" + name)
'
# The PyTorch reference, for a side-by-side baseline on the same card.
if [ -f ../shared/bench/darts_torch.py ]; then cp ../shared/bench/darts_torch.py gpu-bin/; fi
ls -la gpu-bin gpu-bin/tests
