#!/usr/bin/env bash
# Our search step against the PyTorch reference's, side by side: same machine, same command,
# same configuration, one after the other. Prints a table of seconds per step and peak memory,
# ours, PyTorch's and the ratio (ours / PyTorch: below 1 is better for us), with the machine
# named, and the raw JSON lines of both.
#
#   scripts/bench-vs-pytorch.sh [--device cpu|cuda] [--preset paper|cpu-small]
#       [--order first|second|first,second] [--steps N] [--warmup N] [--threads N]
#       [--cuda-graph off|auto|both] [--network search|eval] [--out FILE]
#
# --network eval times training steps of the evaluation network instead (DARTS_V2's
# NetworkCIFAR, `darts bench train-step` against `scripts/eval_torch.py time`; --order is
# ignored, the presets are darts train's: paper C=36 L=20 B=96, cpu-small C=16 L=8 B=64).
#
# Defaults: CUDA when `darts info` finds a device, else the CPU; paper preset; first order;
# 3 timed steps after 1 warm-up on the CPU, 10 after 2 on CUDA; on the CPU both engines get
# the same thread count (all cores); on CUDA ours runs twice, launch by launch and replayed as
# a CUDA graph (--cuda-graph both), one row each. Ours is `darts bench step` ($DARTS, else
# target/release/darts, else gpu-bin/darts); the reference is `darts_torch.py time`
# ($DARTS_TORCH, else gpu-bin/darts_torch.py, else ../shared/bench/darts_torch.py) run by a
# Python that has torch (/usr/bin/python3 on Debian with python3-torch, else python3).
set -euo pipefail
cd "$(dirname "$0")/.."

device="" preset=paper orders=first steps="" warmup="" threads="" out="" graph="" network=search
while [ $# -gt 0 ]; do
  case "$1" in
    --device) device=$2; shift 2 ;;
    --preset) preset=$2; shift 2 ;;
    --order) orders=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --cuda-graph) graph=$2; shift 2 ;;
    --network) network=$2; shift 2 ;;
    -h|--help) sed -n '2,23p' "$0"; exit 0 ;;
    *) echo "bench-vs-pytorch: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

darts=${DARTS:-}
for c in target/release/darts gpu-bin/darts; do [ -z "$darts" ] && [ -x "$c" ] && darts=$c; done
[ -n "$darts" ] || { echo "bench-vs-pytorch: no darts binary (cargo build --release, or set DARTS)" >&2; exit 2; }
torch_py=${DARTS_TORCH:-}
for c in gpu-bin/darts_torch.py ../shared/bench/darts_torch.py; do [ -z "$torch_py" ] && [ -f "$c" ] && torch_py=$c; done
[ -n "$torch_py" ] || { echo "bench-vs-pytorch: darts_torch.py not found (set DARTS_TORCH)" >&2; exit 2; }
py=""
for c in /usr/bin/python3 python3; do
  if [ -z "$py" ] && "$c" -c "import torch" 2>/dev/null; then py=$c; fi
done
[ -n "$py" ] || { echo "bench-vs-pytorch: no Python with torch (Debian: apt-get install python3-torch)" >&2; exit 2; }

if [ -z "$device" ]; then
  if "$darts" info 2>/dev/null | grep -q '^CUDA: [^n]'; then device=cuda; else device=cpu; fi
fi
case "$preset" in
  paper) C=16 L=8 B=64 ;;
  cpu-small) C=4 L=5 B=32 ;;
  *) echo "bench-vs-pytorch: unknown preset $preset (paper or cpu-small)" >&2; exit 2 ;;
esac
if [ "$device" = cuda ]; then steps=${steps:-10} warmup=${warmup:-2}; else steps=${steps:-3} warmup=${warmup:-1}; fi
threads=${threads:-$(nproc)}
if [ "$device" = cuda ]; then graph=${graph:-both}; else graph=${graph:-off}; fi
case "$graph" in
  both) graphs="off auto" ;;
  off|auto) graphs=$graph ;;
  *) echo "bench-vs-pytorch: --cuda-graph must be off, auto or both, got $graph" >&2; exit 2 ;;
esac

lines=$(mktemp)
trap 'rm -f "$lines"' EXIT
if [ "$network" = eval ]; then
  case "$preset" in
    paper) C=36 L=20 B=96 ;;
    cpu-small) C=16 L=8 B=64 ;;
  esac
  orders=train graphs=off
  eval_py=$(dirname "$0")/eval_torch.py
  echo "== $device $preset eval network: ours ($darts bench train-step)" >&2
  RAYON_NUM_THREADS=$threads "$darts" bench train-step --device "$device" --preset "$preset" \
    --steps "$steps" --warmup "$warmup" | grep '^{' >>"$lines"
  echo "== $device $preset eval network: PyTorch ($eval_py time)" >&2
  "$py" "$eval_py" time --channels "$C" --layers "$L" --batch "$B" --steps "$steps" --warmup "$warmup" \
    --device "$device" --threads "$threads" | grep '^{' >>"$lines"
elif [ "$network" != search ]; then
  echo "bench-vs-pytorch: --network must be search or eval, got $network" >&2; exit 2
fi
[ "$network" = search ] && for order in ${orders//,/ }; do
  for g in $graphs; do
    echo "== $device $preset $order: ours ($darts bench step --cuda-graph $g)" >&2
    RAYON_NUM_THREADS=$threads "$darts" bench step --device "$device" --preset "$preset" --order "$order" \
      --steps "$steps" --warmup "$warmup" --cuda-graph "$g" | grep '^{' >>"$lines"
  done
  echo "== $device $preset $order: PyTorch ($torch_py time)" >&2
  targs=(time --batch "$B" --channels "$C" --layers "$L" --order "$order" --steps "$steps" --warmup "$warmup" --device "$device")
  [ "$device" = cpu ] && targs+=(--threads "$threads")
  "$py" "$torch_py" "${targs[@]}" | grep '^{' >>"$lines"
done

report=$("$py" - "$lines" "$preset" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
preset = sys.argv[2]
ours = [r for r in rows if r.get("engine") == "darts"]
ref = [r for r in rows if r.get("engine") != "darts"]
def mb(v): return "-" if v is None else "%.0f" % (v / 1e6)
def ratio(a, b): return "-" if not a or not b else "%.2fx" % (a / b)
o0 = ours[0]
print("machine: %s; device %s; %s threads (ours) / %s (PyTorch %s)" % (
    o0["device_name"], o0["device"], o0["threads"], ref[0].get("threads"), ref[0].get("torch")))
print("steps: %d timed after %d warm-up, random CIFAR-shaped batches; peak memory: ours %s, PyTorch %s" % (
    o0["steps"], o0["warmup"], o0["peak_mem_kind"], ref[0].get("peak_mem_kind")))
print()
print("| configuration | ours s/step | PyTorch s/step | time ratio | ours peak MB | PyTorch peak MB | memory ratio |")
print("|---|---|---|---|---|---|---|")
for o in ours:
    r = next(r for r in ref if r["order"] == o["order"])
    graph = ", CUDA graph" if o.get("cuda_graph") else ""
    cfg = "%s C=%d L=%d B=%d %s%s" % (preset, o["C"], o["layers"], o["batch"], o["order"], graph)
    print("| %s | %.3f | %.3f | %s | %s | %s | %s |" % (
        cfg, o["median_s"], r["median_s"], ratio(o["median_s"], r["median_s"]),
        mb(o["peak_mem_bytes"]), mb(r.get("peak_mem_bytes")), ratio(o["peak_mem_bytes"], r.get("peak_mem_bytes"))))
print()
print("ratio = ours / PyTorch (below 1: ours is faster or leaner)")
print()
for l in rows:
    print(json.dumps(l, sort_keys=True))
EOF
)
echo "$report"
if [ -n "$out" ]; then
  mkdir -p "$(dirname "$out")"
  { echo "# scripts/bench-vs-pytorch.sh --device $device --preset $preset --order $orders --steps $steps --warmup $warmup --threads $threads --cuda-graph $graph --network $network"
    echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "$report"; } >"$out"
  echo "written: $out" >&2
fi
