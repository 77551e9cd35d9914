#!/usr/bin/env bash
# The one GPU check: on a machine with an NVIDIA GPU and driver (H100 class), builds,
# runs the CUDA kernel tests (PTX compile and assemble, then every accelerator primitive
# against the CPU reference), trains the seed network on cuda:0 beside the CPU, runs a
# one-shot search there, profiles a seed-net and a DARTS supernet step on it (ms per
# step, fused against unfused), benchmarks the CPU paths, and prints a table last. NVRTC comes from the CUDA toolkit if installed, else from NVIDIA's wheel.
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

step "CPU benchmarks on this machine"
$nas bench --darts 2>&1 | tee -a "$log" | tail -14 > "$out/bench.txt"

torch_line="PyTorch: not installed here"
if python3 -c "import torch" 2>/dev/null; then
  torch_line=$(python3 - <<'PY' 2>&1
import torch, time
d = "cuda" if torch.cuda.is_available() else "cpu"
a = torch.randn(1024, 1024, device=d); b = torch.randn(1024, 1024, device=d)
for _ in range(3): a @ b
if d == "cuda": torch.cuda.synchronize()
t = time.perf_counter(); n = 50
for _ in range(n): a @ b
if d == "cuda": torch.cuda.synchronize()
s = (time.perf_counter() - t) / n
print(f"PyTorch {torch.__version__} on {d}: SGEMM 1024^3 {2*1024**3/s/1e9:.0f} GFLOP/s")
PY
)
fi

echo
echo "================ gpu-check summary ================"
printf '%s\n' "${results[@]}"
echo "equivalence tests skipped for want of a device: $skipped"
printf '%s\n' "${e2e[@]}"
echo "$torch_line"
cat "$out/bench.txt"
echo "full log: $log"
