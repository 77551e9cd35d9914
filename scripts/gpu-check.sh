#!/usr/bin/env bash
# The one GPU check: on a machine with an NVIDIA GPU and driver (H100 class), builds,
# runs the CUDA kernel tests (PTX compile and assemble, then every accelerator primitive
# against the CPU reference), trains the seed network on cuda:0 beside the CPU, runs a
# one-shot search there, profiles a seed-net and a DARTS supernet step on it (ms per
# step, fused against unfused), benchmarks GEMM, the seed-net step and the DARTS
# supernet step on cuda:0 beside PyTorch on the same GPU (scripts/torch_bench.py, when
# PyTorch is installed) and the CPU paths, and prints a table last. NVRTC comes from the
# CUDA toolkit if installed, else from NVIDIA's wheel.
# Meant to finish in well under 8 minutes.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-target/gpu-check}"
mkdir -p "$out"
log="$out/gpu-check.log"
: > "$log"
step() { echo "== $*" | tee -a "$log"; }

step "machine"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 | tee -a "$log" || true

if ! ldconfig -p 2>/dev/null | grep -q libnvrtc.so.12; then
  tools="$PWD/target/cuda-tools"
  if [ ! -x "$tools/nvidia/cuda_nvcc/bin/ptxas" ]; then
    step "installing NVRTC and ptxas wheels"
    python3 -m pip install --quiet --disable-pip-version-check --target "$tools" \
      nvidia-cuda-nvrtc-cu12==12.9.86 nvidia-cuda-nvcc-cu12==12.9.86 2>&1 | tail -2 | tee -a "$log"
  fi
  export LD_LIBRARY_PATH="$tools/nvidia/cuda_nvrtc/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export NAS_PTXAS="$tools/nvidia/cuda_nvcc/bin/ptxas"
fi

step "build"
cargo build --release --workspace 2>&1 | tail -3 | tee -a "$log"

step "CUDA kernels: PTX for sm_80/sm_90 and the equivalence tests"
results=()
for t in cuda_ptx cuda_equivalence; do
  if cargo test --release -p nas-kernels --test "$t" -- --nocapture --test-threads 1 >>"$log" 2>&1; then
    results+=("$t: pass")
  else
    results+=("$t: FAIL (see $log)")
  fi
done
skipped=$(grep -c "skipped, no CUDA device" "$log" || true)

nas=./target/release/nas
step "end to end on cuda:0 against the CPU: training, a one-shot search, profiles"
acc() { grep -o 'test accuracy [0-9.]*%' | tail -1; }
cpu_acc=$($nas train --epochs 1 --limit 3200 --seed 3 2>&1 | tee -a "$log" | acc)
t0=$(date +%s.%N)
cuda_acc=$(timeout 300 $nas train --device cuda --epochs 1 --limit 3200 --seed 3 2>&1 | tee -a "$log" | acc)
t1=$(date +%s.%N)
e2e=("train seed-net 1 epoch on 3200 images, seed 3: cpu ${cpu_acc:-FAILED}, cuda ${cuda_acc:-FAILED} ($(awk "BEGIN{printf \"%.1f\", $t1 - $t0}") s incl. test)")
if timeout 300 $nas search --space seed-net --strategy gdas --epochs 1 --limit 3200 \
    --device cuda --out "$out/search-gdas" >>"$log" 2>&1; then
  e2e+=("search seed-net gdas 1 epoch on cuda: pass ($(tail -1 "$out/search-gdas/progress.jsonl" 2>/dev/null | head -c 160))")
else
  e2e+=("search seed-net gdas 1 epoch on cuda: FAIL (see $log)")
fi
for space in seed-net darts; do
  steps=5; [ "$space" = darts ] && steps=2
  line=$(timeout 300 $nas profile --space "$space" --device cuda --steps $steps \
    --trace "$out/profile-$space-cuda.trace.json" 2>&1 | tee -a "$log" | grep 'fused against unfused')
  e2e+=("profile $space batch 32 on cuda: ${line:-FAILED}")
done

step "benchmarks: nas on cuda:0 (GEMM, seed-net step, DARTS supernet step), then on the CPU"
timeout 240 $nas bench --device cuda --darts --only gemm,seed,mixed 2>&1 | tee -a "$log" \
  | grep -E '^(sgemm|seed|DARTS)' > "$out/bench-cuda.txt" || echo "nas bench --device cuda: FAILED (see $log)" >> "$out/bench-cuda.txt"
$nas bench --darts 2>&1 | tee -a "$log" | tail -14 > "$out/bench.txt"

torch_lines="PyTorch: not installed here"
if python3 -c "import torch" 2>/dev/null; then
  step "PyTorch on the same GPU"
  torch_lines=$(timeout 180 python3 scripts/torch_bench.py cuda 2>&1 | tee -a "$log" | grep '^PyTorch' || echo "PyTorch bench: FAILED (see $log)")
fi

echo
echo "================ gpu-check summary ================"
printf '%s\n' "${results[@]}"
echo "equivalence tests skipped for want of a device: $skipped"
printf '%s\n' "${e2e[@]}"
echo "-- nas on cuda:0 (each device call copies its operands; figures beside PyTorch below)"
cat "$out/bench-cuda.txt"
echo "$torch_lines"
echo "-- nas on the CPU (PyTorch column: the reference machine's CPU figures)"
cat "$out/bench.txt"
echo "full log: $log"
