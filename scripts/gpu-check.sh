#!/usr/bin/env bash
# The one GPU check: on a machine with an NVIDIA GPU and driver (H100 class), runs the
# CUDA kernel tests (PTX compile and assemble where NVRTC and ptxas are at hand, then
# every primitive, host-slice and device-resident, against the CPU reference), the
# engine's tests on cuda:0 (finite-difference gradient checks of every primitive, and
# seed-net and supernet training steps against the CPU's), trains the seed network on
# cuda:0 beside the CPU, runs a one-shot search there, profiles a seed-net and a DARTS
# supernet step on it (ms per step, fused against unfused), benchmarks GEMM, the seed-net
# step and the DARTS supernet step on cuda:0 beside PyTorch on the same GPU
# (scripts/torch_bench.py, when PyTorch is installed) and the CPU paths, and prints a
# table last. Meant to finish in well under 8 minutes. Exits non-zero if anything failed.
#
#   scripts/gpu-check.sh --prepare   on a build machine (no GPU needed): builds, and puts
#                                    stripped binaries, plugins, test binaries and the
#                                    kernels prebuilt as CUBINs (needs NVRTC) in
#                                    target/gpu-bin (about 32 MB), for a GPU machine
#                                    with no network or toolchain: carry that folder.
#   scripts/gpu-check.sh             on the GPU machine: uses target/gpu-bin if it is
#                                    there, else builds with cargo.
set -uo pipefail
cd "$(dirname "$0")/.."
bin="target/gpu-bin"

# NVRTC: an installed toolkit, PyTorch's wheel, or the wheel .ci/run installs.
find_nvrtc() {
  local d
  for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib \
    "$(python3 -c 'import nvidia.cuda_nvrtc as m, os; print(os.path.dirname(m.__file__) + "/lib")' 2>/dev/null)" \
    "$PWD/target/cuda-tools/nvidia/cuda_nvrtc/lib"; do
    if [ -n "$d" ] && [ -e "$d/libnvrtc.so.12" ]; then
      echo "$d"
      return 0
    fi
  done
  return 1
}
if nvrtc_dir=$(find_nvrtc); then
  export LD_LIBRARY_PATH="$nvrtc_dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
if [ -x "$PWD/target/cuda-tools/nvidia/cuda_nvcc/bin/ptxas" ]; then
  export NAS_PTXAS="$PWD/target/cuda-tools/nvidia/cuda_nvcc/bin/ptxas"
fi

if [ "${1:-}" = "--prepare" ]; then
  set -e
  cargo build --release --workspace
  cargo test --release -p nas-kernels --test cuda_ptx --test cuda_equivalence --no-run
  cargo test --release -p nas-core --test device_parity --test core --no-run
  rm -rf "$bin" && mkdir -p "$bin/cuda"
  strip -o "$bin/nas" target/release/nas
  # The one plugin the check runs (all of them would push the carried tree past 64 MiB).
  strip -o "$bin/libnas_strategy_gdas.so" target/release/libnas_strategy_gdas.so
  for t in cuda_ptx cuda_equivalence device_parity core; do
    f=$(ls -t target/release/deps/"$t"-* | grep -v '\.d$' | head -1)
    strip -o "$bin/$t" "$f"
  done
  "$bin/nas" cuda-kernels --arch sm_80,sm_90 --out "$bin/cuda"
  du -sh "$bin"
  exit 0
fi

out="${OUT:-target/gpu-check}"
mkdir -p "$out"
log="$out/gpu-check.log"
: > "$log"
fail=0
step() { echo "== $*" | tee -a "$log"; }

step "machine"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 | tee -a "$log" || true
echo "NVRTC: ${nvrtc_dir:-not found (the kernels load from $bin/cuda when prebuilt)}" | tee -a "$log"

results=()
if [ -x "$bin/nas" ]; then
  step "using the prebuilt binaries in $bin"
  nas="$bin/nas"
  export NAS_CUDA_KERNELS="$PWD/$bin/cuda"
  tests=("$bin/cuda_ptx" "$bin/cuda_equivalence" "$bin/device_parity" "$bin/core")
else
  step "build"
  if ! cargo build --release --workspace 2>&1 | tail -3 | tee -a "$log"; then
    echo "build FAILED (see $log)"
    exit 1
  fi
  nas=./target/release/nas
  tests=()
fi

step "CUDA: PTX for sm_80/sm_90, the kernels against the CPU, the engine's tests on cuda:0"
for t in cuda_ptx cuda_equivalence device_parity core; do
  # The engine's binaries also hold CPU and wgpu tests: only their CUDA ones run here.
  filter=()
  crate=nas-kernels
  case "$t" in
    device_parity) filter=(cuda::); crate=nas-core ;;
    core) filter=(::cuda::); crate=nas-core ;;
  esac
  if [ ${#tests[@]} -gt 0 ]; then
    cmd=("$bin/$t" "${filter[@]}" --nocapture --test-threads 1)
  else
    cmd=(cargo test --release -p "$crate" --test "$t" -- "${filter[@]}" --nocapture --test-threads 1)
  fi
  # A skip is counted from the skip log, not from the output, where libtest's own
  # "test name ... " can come first on the same line.
  skips="$(cd "$out" && pwd)/$t.skips"
  rm -f "$skips"
  if NAS_SKIP_LOG="$skips" timeout 300 "${cmd[@]}" >"$out/$t.log" 2>&1; then
    if [ -s "$skips" ]; then
      if [ "$t" != cuda_ptx ]; then
        results+=("$t: SKIPPED ($(wc -l <"$skips") tests), $(head -1 "$skips" | sed "s/^SKIPPED //")")
        fail=1
      else
        results+=("$t: skipped here (needs NVRTC and ptxas; CI runs it)")
      fi
    else
      results+=("$t: pass, $(grep -m1 -o '[0-9]* passed' "$out/$t.log") ($(grep -m1 -o 'running on .*' "$out/$t.log" || echo 'on cuda:0'))")
    fi
  else
    results+=("$t: FAIL (see $out/$t.log)")
    fail=1
  fi
  cat "$out/$t.log" >> "$log"
done

step "end to end on cuda:0 against the CPU: training, a one-shot search, profiles"
acc() { grep -o 'test accuracy [0-9.]*%' | tail -1; }
cpu_acc=$(timeout 300 "$nas" train --epochs 1 --limit 3200 --seed 3 2>&1 | tee -a "$log" | acc)
t0=$(date +%s.%N)
cuda_acc=$(timeout 300 "$nas" train --device cuda --epochs 1 --limit 3200 --seed 3 2>&1 | tee -a "$log" | acc)
t1=$(date +%s.%N)
[ -n "$cpu_acc" ] && [ -n "$cuda_acc" ] || fail=1
e2e=("train seed-net 1 epoch on 3200 images, seed 3: cpu ${cpu_acc:-FAILED}, cuda ${cuda_acc:-FAILED} ($(awk "BEGIN{printf \"%.1f\", $t1 - $t0}") s incl. test)")
rm -rf "$out/search-gdas"
if timeout 300 "$nas" search --space seed-net --strategy gdas --epochs 1 --limit 3200 \
    --device cuda --out "$out/search-gdas" >>"$log" 2>&1; then
  e2e+=("search seed-net gdas 1 epoch on cuda: pass ($(tail -1 "$out/search-gdas/progress.jsonl" 2>/dev/null | head -c 160))")
else
  e2e+=("search seed-net gdas 1 epoch on cuda: FAIL (see $log)")
  fail=1
fi
for space in seed-net darts; do
  steps=5; [ "$space" = darts ] && steps=2
  line=$(timeout 300 "$nas" profile --space "$space" --device cuda --steps $steps \
    --trace "$out/profile-$space-cuda.trace.json" 2>&1 | tee -a "$log" | grep 'fused against unfused')
  [ -n "$line" ] || fail=1
  e2e+=("profile $space batch 32 on cuda: ${line:-FAILED}")
done

step "benchmarks: nas on cuda:0 (GEMM, seed-net step, DARTS supernet step), then on the CPU"
if ! timeout 240 "$nas" bench --device cuda --darts --only gemm,seed,mixed 2>&1 | tee -a "$log" \
  | grep -E '^(sgemm|seed|DARTS)' > "$out/bench-cuda.txt"; then
  echo "nas bench --device cuda: FAILED (see $log)" >> "$out/bench-cuda.txt"
  fail=1
fi
timeout 300 "$nas" bench --darts 2>&1 | tee -a "$log" | tail -14 > "$out/bench.txt"

torch_lines="PyTorch: not installed here"
if python3 -c "import torch" 2>/dev/null; then
  step "PyTorch on the same GPU"
  torch_lines=$(timeout 180 python3 scripts/torch_bench.py cuda 2>&1 | tee -a "$log" | grep '^PyTorch' \
    || echo "PyTorch bench: FAILED (see $log)")
fi

echo
echo "================ gpu-check summary ================"
printf '%s\n' "${results[@]}"
printf '%s\n' "${e2e[@]}"
echo "-- nas on cuda:0 (tensors live on the device; figures beside PyTorch below)"
cat "$out/bench-cuda.txt"
echo "$torch_lines"
echo "-- nas on the CPU (PyTorch column: the reference machine's CPU figures)"
cat "$out/bench.txt"
echo "full log: $log"
[ "$fail" = 0 ] && echo "gpu-check: all passed" || echo "gpu-check: FAILURES above"
exit "$fail"
