#!/usr/bin/env bash
# Installs nvcc/ptxas from Debian's nvidia-cuda-toolkit (CUDA 11.8 on bookworm) if absent.
# Needs root. Idempotent: does nothing when nvcc is already on PATH.
set -euo pipefail
if command -v nvcc >/dev/null 2>&1; then
  echo "nvcc present: $(nvcc --version | tail -1)"
  exit 0
fi
src=/etc/apt/sources.list.d/debian.sources
if [ -f "$src" ]; then
  # Add contrib and non-free to every Components line that lacks them.
  sed -i -E '/^Components:/{/contrib/!s/$/ contrib non-free/}' "$src"
elif [ -f /etc/apt/sources.list ]; then
  sed -i -E '/^deb /{/contrib/!s/ main( |$)/ main contrib non-free\1/}' /etc/apt/sources.list
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends nvidia-cuda-toolkit >/dev/null
echo "installed: $(nvcc --version | tail -1)"
