#!/usr/bin/env bash
# Builds the CUDA CPU emulator and its test kernels the way build.rs will (each .cu wrapped in a
# generated registration file, compiled as C++ with cuda_emu.h force-included), runs the checks
# with both context-switch back ends, and checks the kernels with nvcc if it is installed.
#
#   kernels/emu/tests/run_tests.sh              # from anywhere
#   DARTS_EMU_BUILD_DIR=/tmp/emu  ...            # keep the build (default: a temp dir)
#   DARTS_EMU_NO_BENCH=1 ...                     # skip the launch-rate measurements
#   DARTS_EMU_ASAN=1 ...                         # also run under AddressSanitizer (+ leak check)
# Prints PASS/FAIL per check; exits non-zero if any failed.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../../.." && pwd)  # repository root: wrappers include "kernels/..."
cd "$root"

CXX=${CXX:-g++}
FLAGS=(-O2 -std=c++17 -pthread -fPIC)
WARN=(-Wall -Wextra)

if [[ -n "${DARTS_EMU_BUILD_DIR:-}" ]]; then
    build=$DARTS_EMU_BUILD_DIR
    mkdir -p "$build"
else
    build=$(mktemp -d)
    trap 'rm -rf "$build"' EXIT
fi

failures=0
pass() { echo "PASS  $*"; }
fail() { echo "FAIL  $*"; failures=$((failures + 1)); }

# Compiles quietly; a warning counts as a failure. $1: description, rest: command.
compile() {
    local what=$1
    shift
    local log
    if ! log=$("$@" 2>&1); then
        fail "$what"
        echo "$log"
        return 1
    fi
    if [[ -n "$log" ]]; then
        fail "$what (warnings)"
        echo "$log"
        return 1
    fi
    pass "$what"
}

# Kernel names, as the Rust build script should find them: `extern "C" __global__ void NAME(`,
# allowing __launch_bounds__(...) before the name and line breaks anywhere.
kernel_names() {
    perl -0777 -ne 'while (/extern\s+"C"\s+__global__\s+void\s+(?:__launch_bounds__\s*\([^)]*\)\s*)?([A-Za-z_]\w*)\s*\(/g) { print "$1\n" }' "$1"
}

# ---------------------------------------------------------------- runtime, both back ends
compile "runtime (asm context switch) compiles warning-free with -Wall -Wextra" \
    "$CXX" "${FLAGS[@]}" "${WARN[@]}" -c kernels/emu/emu_runtime.cpp -o "$build/rt_asm.o"
compile "runtime (ucontext fallback) compiles warning-free with -Wall -Wextra" \
    "$CXX" "${FLAGS[@]}" "${WARN[@]}" -DDARTS_EMU_UCONTEXT -c kernels/emu/emu_runtime.cpp -o "$build/rt_uc.o"

# ---------------------------------------------------------------- kernels: generated wrappers
: >"$build/all_kernels.inc"
objs=()
for cu in kernels/emu/tests/*.cu; do
    stem=$(basename "$cu" .cu | tr -c 'A-Za-z0-9_\n' '_')
    # (preprocessor lines are exempt: the nvcc definition of DARTS_DYN_SMEM uses it)
    if grep -qE '^[^#]*extern[[:space:]]+__shared__' "$cu"; then
        fail "$cu uses 'extern __shared__': write DARTS_DYN_SMEM(T, name) instead (see kernels/emu/README.md)"
        continue
    fi
    {
        echo "#include \"$cu\""
        echo "DARTS_EMU_REGISTER_BEGIN($stem)"
        kernel_names "$cu" | sed 's/.*/DARTS_EMU_KERNEL(&)/'
        echo "DARTS_EMU_REGISTER_END"
    } >"$build/wrap_$stem.cpp"
    compile "$cu compiles as C++ ($(kernel_names "$cu" | tr '\n' ' '))" \
        "$CXX" "${FLAGS[@]}" "${WARN[@]}" -include kernels/emu/cuda_emu.h -I. -c "$build/wrap_$stem.cpp" \
        -o "$build/wrap_$stem.o" && objs+=("$build/wrap_$stem.o")
    echo "DARTS_TEST_FILE($stem)" >>"$build/all_kernels.inc"
done

# A literal `extern __shared__` must fail to compile rather than silently misbehave.
printf 'extern "C" __global__ void k(float* y) { extern __shared__ float s[]; y[0] = s[0]; }\n' >"$build/extern_smem.cu"
if "$CXX" "${FLAGS[@]}" -include kernels/emu/cuda_emu.h -I. -x c++ -c "$build/extern_smem.cu" -o /dev/null 2>/dev/null; then
    fail "a literal 'extern __shared__' is rejected at compile time"
else
    pass "a literal 'extern __shared__' is rejected at compile time"
fi

compile "test_main.cpp compiles" "$CXX" "${FLAGS[@]}" "${WARN[@]}" -I"$build" -c kernels/emu/tests/test_main.cpp \
    -o "$build/test_main.o"

# ---------------------------------------------------------------- run
bench_arg=()
[[ -n "${DARTS_EMU_NO_BENCH:-}" ]] && bench_arg=(--no-bench)
for variant in asm uc; do
    label=$([[ $variant == asm ]] && echo "x86-64 asm switch" || echo "ucontext switch")
    if ! "$CXX" -pthread "$build/test_main.o" "${objs[@]}" "$build/rt_$variant.o" -o "$build/test_$variant" 2>"$build/link.log"; then
        fail "link ($label)"
        cat "$build/link.log"
        continue
    fi
    echo "---- running checks ($label)"
    "$build/test_$variant" "$label" "${bench_arg[@]}" || fail "checks ($label)"
done

if [[ -n "${DARTS_EMU_ASAN:-}" ]]; then
    echo "---- AddressSanitizer build"
    san=(-O1 -g -fsanitize=address -fno-omit-frame-pointer)
    ok=1
    "$CXX" "${FLAGS[@]}" "${san[@]}" -c kernels/emu/emu_runtime.cpp -o "$build/rt_asan.o" || ok=0
    asan_objs=()
    for w in "$build"/wrap_*.cpp; do
        o="${w%.cpp}_asan.o"
        "$CXX" "${FLAGS[@]}" "${san[@]}" -include kernels/emu/cuda_emu.h -I. -c "$w" -o "$o" || ok=0
        asan_objs+=("$o")
    done
    "$CXX" "${FLAGS[@]}" "${san[@]}" -I"$build" kernels/emu/tests/test_main.cpp "${asan_objs[@]}" "$build/rt_asan.o" \
        -o "$build/test_asan" || ok=0
    if [[ $ok == 1 ]] && ASAN_OPTIONS=detect_leaks=1 "$build/test_asan" "asan" --no-bench; then
        pass "checks under AddressSanitizer + LeakSanitizer"
    else
        fail "checks under AddressSanitizer + LeakSanitizer"
    fi
fi

# ---------------------------------------------------------------- nvcc: the kernels are valid CUDA
nvcc_bin=$(command -v nvcc || true)
[[ -z "$nvcc_bin" && -x /usr/local/cuda/bin/nvcc ]] && nvcc_bin=/usr/local/cuda/bin/nvcc
if [[ -n "$nvcc_bin" ]]; then
    for cu in kernels/emu/tests/*.cu; do
        if log=$("$nvcc_bin" --ptx -arch=sm_80 "$cu" -o "$build/$(basename "$cu" .cu).ptx" 2>&1); then
            pass "nvcc --ptx -arch=sm_80 $cu"
        else
            fail "nvcc --ptx -arch=sm_80 $cu"
            echo "$log"
        fi
    done
    # With a GPU as well: run the same cases on it and compare the emulator's results.
    if nvidia-smi -L >/dev/null 2>&1; then
        if "$nvcc_bin" -O2 -std=c++17 -arch=native kernels/emu/tests/gpu/gpu_crosscheck.cu -o "$build/gpu_crosscheck" \
            >"$build/nvcc.log" 2>&1 && "$build/gpu_crosscheck" "$build/gpu_results.bin"; then
            "$build/test_asm" --compare "$build/gpu_results.bin" || fail "emulator agrees with the GPU"
        else
            cat "$build/nvcc.log"
            fail "gpu_crosscheck builds and runs"
        fi
    else
        echo "SKIP  no GPU: emulator not cross-checked against hardware"
    fi
else
    echo "SKIP  nvcc not installed: CUDA validity of the test kernels not checked"
fi

if [[ $failures -gt 0 ]]; then
    echo "run_tests.sh: $failures failure(s)"
    exit 1
fi
echo "run_tests.sh: all checks passed"
